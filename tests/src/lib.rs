//! Harness for the integration tests: start a server on `127.0.0.1:0`, talk BOB to it.
//!
//! Everything has a deadline ([`DEADLINE`]); nothing sleeps to wait for start-up: the
//! helpers poll with a deadline instead.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bob_codec::{Dialect, Reply};
use bob_server::backend::StreamingCore;
use bob_server::backend::local::LocalCore;
use bob_server::config::Config;
use bob_server::registry::Launcher;
use bob_server::server::{Server, ServerError};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Upper bound for any single step of a test.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The greeting every connection starts with.
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

/// The core the tests run on: the in-process local backend.
pub fn local_core() -> Arc<dyn StreamingCore> {
    local_core_with_hosts(None)
}

/// The local backend with a hosts.txt file.
pub fn local_core_with_hosts(hosts: Option<&std::path::Path>) -> Arc<dyn StreamingCore> {
    match hosts {
        None => Arc::new(LocalCore::new()),
        Some(path) => Arc::new(LocalCore::load_hosts_file(path).expect("hosts file loads")),
    }
}

/// A server running in this process.
#[derive(Debug)]
pub struct TestServer {
    /// where it listens
    pub addr: SocketAddr,
    /// cancel to shut it down
    pub shutdown: CancellationToken,
    /// the core it runs on
    pub core: Arc<dyn StreamingCore>,
    handle: JoinHandle<Result<(), ServerError>>,
}

/// A config for tests: loopback, port 0, given dialect.
pub fn test_config(dialect: Dialect) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().expect("literal address"),
        dialect,
        ..Config::default()
    }
}

/// Starts a server on `127.0.0.1:0` with the local core.
pub async fn start_server(dialect: Dialect) -> TestServer {
    start_server_with(test_config(dialect), local_core()).await
}

/// Starts a server with a given config and core.
///
/// # Panics
/// If the server cannot bind.
pub async fn start_server_with(config: Config, core: Arc<dyn StreamingCore>) -> TestServer {
    start_server_with_launcher(config, core, bob_server::tunnel_launcher()).await
}

/// Starts a server whose tunnels are started by `launcher`.
///
/// # Panics
/// If the server cannot bind.
pub async fn start_server_with_launcher(
    config: Config,
    core: Arc<dyn StreamingCore>,
    launcher: Launcher,
) -> TestServer {
    let server = Server::bind_with_launcher(config, core.clone(), launcher)
        .await
        .expect("server binds");
    let addr = server.local_addr();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(server.run(shutdown.clone()));
    TestServer {
        addr,
        shutdown,
        core,
        handle,
    }
}

impl TestServer {
    /// A new control connection (greeting already checked).
    pub async fn client(&self) -> BobClient {
        BobClient::connect(self.addr).await
    }

    /// Waits until the server's `run` returns by itself (after `zap`).
    ///
    /// # Panics
    /// If it does not return within the deadline or returns an error.
    pub async fn wait_exit(self) {
        within("server exit", self.handle)
            .await
            .expect("server task")
            .expect("server run");
    }

    /// Cancels the server and waits for it to end.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.wait_exit().await;
    }
}

/// A BOB control connection speaking raw lines.
#[derive(Debug)]
pub struct BobClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl BobClient {
    /// Connects and checks the exact greeting bytes.
    ///
    /// # Panics
    /// If the connection fails or the greeting differs.
    pub async fn connect(addr: SocketAddr) -> Self {
        let mut client = Self::connect_raw(addr).await;
        let mut greeting = [0u8; GREETING.len()];
        within("greeting", client.reader.read_exact(&mut greeting))
            .await
            .expect("greeting");
        assert_eq!(&greeting[..], GREETING, "greeting bytes");
        client
    }

    /// Connects without reading anything.
    ///
    /// # Panics
    /// If the connection fails.
    pub async fn connect_raw(addr: SocketAddr) -> Self {
        let stream = within("connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        let (read, writer) = stream.into_split();
        Self {
            reader: BufReader::new(read),
            writer,
        }
    }

    /// Writes raw bytes.
    ///
    /// # Panics
    /// On write failure.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        within("send", self.writer.write_all(bytes))
            .await
            .expect("send");
    }

    /// Reads one raw reply line including its `\n`.
    ///
    /// # Panics
    /// On EOF, I/O error or timeout.
    pub async fn read_line(&mut self) -> String {
        let mut line = Vec::new();
        let n = within("reply line", self.reader.read_until(b'\n', &mut line))
            .await
            .expect("read reply");
        assert!(n > 0, "connection closed while waiting for a reply");
        assert!(
            line.ends_with(b"\n"),
            "reply not terminated: {:?}",
            String::from_utf8_lossy(&line)
        );
        String::from_utf8(line).expect("reply is UTF-8")
    }

    /// Sends `line` + `\n` and returns the raw reply line (with `\n`).
    pub async fn cmd(&mut self, line: &str) -> String {
        self.send_raw(format!("{line}\n").as_bytes()).await;
        self.read_line().await
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
        let mut rest = Vec::new();
        let read = within("EOF", self.reader.read_to_end(&mut rest)).await;
        match read {
            Ok(_) => assert!(rest.is_empty(), "unexpected bytes before EOF: {rest:?}"),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
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

/// A port that was free a moment ago on 127.0.0.1 (bound to 0, then released).
///
/// # Panics
/// If binding fails.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("addr").port()
}
