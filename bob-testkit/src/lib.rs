//! Helpers shared by every test of the workspace (and the benchmarks), in one place:
//!
//! - [`within`], [`poll_until`]: every wait has a deadline ([`DEADLINE`]); nothing sleeps
//!   to wait for start-up.
//! - [`free_port`]: a loopback port that was free a moment ago; [`scratch_dir`]: a fresh
//!   directory.
//! - [`pattern`], [`pattern_seeded`]: deterministic test bytes.
//! - [`echo_app`], [`line_echo`]: applications behind tunnels.
//! - [`process`]: the bob-server binary in a test ([`process::spawn_listening`] up to its
//!   listening line, [`process::drain`] of its log, [`process::sigterm`]).
//! - [`TestClient`]: a BOB control connection for tests of servers, on
//!   [`bob_client::Client`], that checks reply bytes exactly and can send raw bytes.
//!
//! Everything here panics on failure: it is for tests.
#![warn(missing_docs)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bob_client::{Client, ClientError};
use bob_codec::Reply;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::mpsc;

pub use bob_client;

pub mod process;

/// Upper bound for any single step of a test: a broken server fails the test, never
/// hangs it.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The greeting every BOB connection starts with.
pub const GREETING: &[u8] = b"BOB 00.00.10\nOK\n";

/// Runs `fut` with the [`DEADLINE`], panicking with `what` when it expires.
///
/// # Panics
/// When the deadline passes.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {DEADLINE:?}: {what}"),
    }
}

/// [`within`] with another limit (steps that wait for a real router).
///
/// # Panics
/// When `limit` passes.
pub async fn within_for<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?}: {what}"),
    }
}

/// Polls `check` until it returns `Some`, up to the [`DEADLINE`].
///
/// # Panics
/// When the deadline passes.
pub async fn poll_until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    within(what, async {
        loop {
            if let Some(v) = check().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

/// A port that was free a moment ago on 127.0.0.1 (bound to 0, then released), for
/// settings that need a number up front.
///
/// # Panics
/// If binding fails.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind port 0")
        .local_addr()
        .expect("local address")
        .port()
}

/// A fresh, empty scratch directory under the temp dir, named after `tag` and this
/// process (removed and made again if it exists).
///
/// # Panics
/// If it cannot be made.
pub fn scratch_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("bob-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// [`pattern_seeded`] with a fixed seed.
pub fn pattern(len: usize) -> Vec<u8> {
    pattern_seeded(len, 0x9e37_79b9)
}

/// Deterministic test bytes (xorshift64), so that a mismatch shows an offset and a
/// shifted or repeated block does not compare equal.
pub fn pattern_seeded(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The application behind a server tunnel: unless `quiet`, first reads the peer
/// destination line (sent on the channel, with its `\n`); then echoes every byte and
/// closes its side at the end of input.
///
/// # Panics
/// If it cannot bind.
pub async fn echo_app(quiet: bool) -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind echo app");
    let addr = listener.local_addr().expect("echo app address");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                if !quiet {
                    let mut line = String::new();
                    if r.read_line(&mut line).await.is_err() {
                        return;
                    }
                    let _ = tx.send(line);
                }
                let _ = tokio::io::copy_buf(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    (addr, rx)
}

/// A TCP server that echoes every line it receives; returns its address.
///
/// # Panics
/// If it cannot bind.
pub async fn line_echo() -> SocketAddr {
    let echo = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
    let addr = echo.local_addr().expect("echo address");
    tokio::spawn(async move {
        while let Ok((s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut r = BufReader::new(r);
                let mut line = String::new();
                while r.read_line(&mut line).await.unwrap_or(0) > 0 {
                    if w.write_all(line.as_bytes()).await.is_err() {
                        break;
                    }
                    line.clear();
                }
            });
        }
    });
    addr
}

/// A BOB control connection for tests of servers: lines are read with
/// [`bob_client::Client`] and handed back byte-exact (with their `\n` or `\r\n`), raw
/// bytes can be sent, and every step has the [`DEADLINE`].
#[derive(Debug)]
pub struct TestClient {
    client: Client<TcpStream>,
}

impl TestClient {
    /// Connects and checks the exact greeting bytes.
    ///
    /// # Panics
    /// If the connection fails or the greeting differs.
    pub async fn connect(addr: impl ToSocketAddrs) -> Self {
        let mut c = Self::connect_raw(addr).await;
        let greeting = format!("{}{}", c.read_line().await, c.read_line().await);
        assert_eq!(greeting.as_bytes(), GREETING, "greeting bytes");
        c
    }

    /// Connects without reading anything.
    ///
    /// # Panics
    /// If the connection fails.
    pub async fn connect_raw(addr: impl ToSocketAddrs) -> Self {
        let stream = within("connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        let mut client = Client::without_greeting(stream);
        client.set_timeout(Some(DEADLINE));
        Self { client }
    }

    /// Changes the limit of every later step (default [`DEADLINE`]).
    pub fn set_deadline(&mut self, limit: Duration) {
        self.client.set_timeout(Some(limit));
    }

    /// The [`bob_client::Client`] underneath, for typed calls.
    pub fn client(&mut self) -> &mut Client<TcpStream> {
        &mut self.client
    }

    /// Writes raw bytes, unchecked.
    ///
    /// # Panics
    /// On write failure.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.client.write_unchecked(bytes).await.expect("send");
    }

    /// Reads one reply line including its `\n` (or `\r\n`).
    ///
    /// # Panics
    /// On EOF, I/O error, a line that is not UTF-8, or timeout.
    pub async fn read_line(&mut self) -> String {
        match self.client.read_line().await {
            Ok(line) => {
                let end = if self.client.last_line_was_crlf() {
                    "\r\n"
                } else {
                    "\n"
                };
                line + end
            }
            Err(ClientError::Closed) => panic!("connection closed while waiting for a reply"),
            Err(e) => panic!("reading a reply: {e}"),
        }
    }

    /// Sends `line` + `\n` (unchecked, so tests can send what no client would) and
    /// returns the raw reply line (with `\n`).
    pub async fn cmd(&mut self, line: &str) -> String {
        self.send_raw(format!("{line}\n").as_bytes()).await;
        self.read_line().await
    }

    /// [`TestClient::cmd`] without the line end.
    pub async fn line(&mut self, line: &str) -> String {
        self.cmd(line)
            .await
            .trim_end_matches(['\r', '\n'])
            .to_owned()
    }

    /// Sends `line` and asserts the exact reply (give it without the `\n`).
    ///
    /// # Panics
    /// If the reply differs.
    pub async fn expect(&mut self, line: &str, reply: &str) {
        let got = self.cmd(line).await;
        assert_eq!(got, format!("{reply}\n"), "reply to {line:?}");
    }

    /// Sends `line`, decodes the reply with bob-codec and returns it.
    ///
    /// # Panics
    /// If the reply does not decode.
    pub async fn reply(&mut self, line: &str) -> Reply {
        let raw = self.cmd(line).await;
        Reply::decode(raw.trim_end_matches('\n')).expect("well-formed reply")
    }

    /// Sends `line`, asserts an `OK…` reply and returns the whole reply line (without
    /// its line end).
    ///
    /// # Panics
    /// If the reply does not start with `OK`.
    pub async fn ok(&mut self, line: &str) -> String {
        let reply = self.line(line).await;
        assert!(reply.starts_with("OK"), "{line}: {reply}");
        reply
    }

    /// Sends `line` and returns the text of an `OK <text>` reply.
    ///
    /// # Panics
    /// If the reply is not `OK <text>`.
    pub async fn ok_text(&mut self, line: &str) -> String {
        match self.reply(line).await {
            Reply::Ok(Some(text)) => text,
            other => panic!("expected OK <text> to {line:?}, got {other:?}"),
        }
    }

    /// Sends `line` and asserts an `ERROR …` reply, returning its text.
    ///
    /// # Panics
    /// If the reply is not an error.
    pub async fn err_text(&mut self, line: &str) -> String {
        match self.reply(line).await {
            Reply::Error(text) => text,
            other => panic!("expected ERROR to {line:?}, got {other:?}"),
        }
    }

    /// `list`: returns the `DATA` lines' text, checking the final `OK Listing done`.
    ///
    /// # Panics
    /// On an unexpected line.
    pub async fn list(&mut self) -> Vec<String> {
        self.send_raw(b"list\n").await;
        let mut out = Vec::new();
        loop {
            let line = self.read_line().await;
            if line == "OK Listing done\n" {
                return out;
            }
            let data = line
                .strip_prefix("DATA ")
                .unwrap_or_else(|| panic!("unexpected list line {line:?}"));
            out.push(data.trim_end_matches('\n').to_owned());
        }
    }

    /// Asserts that the server closes the connection without sending anything more.
    ///
    /// # Panics
    /// If data arrives or the deadline passes.
    pub async fn expect_eof(&mut self) {
        match self.client.read_to_end().await {
            Ok(rest) => assert!(rest.is_empty(), "unexpected bytes before EOF: {rest:?}"),
            Err(ClientError::Io(e)) => {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
            }
            Err(e) => panic!("waiting for EOF: {e}"),
        }
    }

    /// Makes a tunnel: `setnick`, `newkeys`; returns the destination.
    pub async fn new_tunnel(&mut self, nickname: &str) -> String {
        self.expect(
            &format!("setnick {nickname}"),
            &format!("OK Nickname set to {nickname}"),
        )
        .await;
        self.ok_text("newkeys").await
    }

    /// A started quiet server tunnel `nickname` connecting to `outport` (on the default
    /// outhost); returns its destination.
    pub async fn quiet_server_tunnel(&mut self, nickname: &str, outport: u16) -> String {
        let dest = self.new_tunnel(nickname).await;
        self.expect(&format!("outport {outport}"), "OK outbound port set")
            .await;
        self.expect("quiet true", "OK Quiet set").await;
        let started = self.cmd("start").await;
        assert!(
            started.eq_ignore_ascii_case("OK tunnel starting\n"),
            "{started}"
        );
        dest
    }

    /// `inport <free port>` + `start` on the selected tunnel; returns the port. Retries
    /// with another port when the one picked was taken in between (a lost port race).
    ///
    /// # Panics
    /// If `start` answers anything but the starting reply (either dialect's case) or
    /// that error, or no port works in 5 tries.
    pub async fn start_inbound(&mut self) -> u16 {
        for _ in 0..5 {
            let port = free_port();
            self.expect(&format!("inport {port}"), "OK inbound port set")
                .await;
            let reply = self.cmd("start").await;
            if reply == "OK tunnel starting\n" || reply == "OK Tunnel starting\n" {
                return port;
            }
            assert!(reply.starts_with("ERROR starting tunnel: "), "{reply}");
        }
        panic!("no free port for the inbound side");
    }

    /// Polls `status <nickname>` until the reply contains `needle`.
    pub async fn wait_status(&mut self, nickname: &str, needle: &str) -> String {
        within("status", async {
            loop {
                let line = self.cmd(&format!("status {nickname}")).await;
                if line.contains(needle) {
                    return line;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
    }
}
