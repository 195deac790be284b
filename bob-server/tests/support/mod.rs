//! Helpers shared by the test files of bob-server (`mod support;`).
//!
//! Each test file is its own crate and uses only some of these.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bob_server::tunnel::Endpoint;
use keytools::{CryptoType, PrivateKeys, SigType};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::mpsc;

/// Bound on every step a test waits for: a broken server fails the test, never hangs it.
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

/// `fut`, or a test failure naming `what` after [`DEADLINE`].
pub(crate) async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A loopback port that was free a moment ago (for settings that need a number up front).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Fresh Ed25519/ElGamal keys.
pub(crate) fn keys() -> PrivateKeys {
    PrivateKeys::generate(SigType::Ed25519, CryptoType::ElGamal).expect("key generation")
}

/// `127.0.0.1:port` as a tunnel endpoint.
pub(crate) fn local(port: u16) -> Endpoint {
    Endpoint {
        host: "127.0.0.1".to_owned(),
        port,
    }
}

/// Deterministic test bytes (xorshift), so that a mismatch shows an offset and a
/// shifted or repeated block does not compare equal.
pub(crate) fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A TCP server that echoes every line it receives; returns its address.
pub(crate) async fn line_echo() -> SocketAddr {
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

/// The application behind a server tunnel that is not quiet: reads the peer line (sent
/// on the channel), then echoes every byte after it.
pub(crate) async fn echo_app() -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind app");
    let addr = listener.local_addr().expect("app address");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                let mut line = String::new();
                if r.read_line(&mut line).await.is_err() {
                    return;
                }
                let _ = tx.send(line);
                let _ = tokio::io::copy_buf(&mut r, &mut w).await;
            });
        }
    });
    (addr, rx)
}

/// A plain BOB control connection, past the greeting.
pub(crate) struct Bob(pub(crate) BufReader<TcpStream>);

impl Bob {
    /// Connects and checks the Java greeting.
    pub(crate) async fn connect(addr: impl ToSocketAddrs) -> Self {
        let stream = within("connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        let mut s = BufReader::new(stream);
        let mut greeting = [0u8; 16];
        within("greeting", s.read_exact(&mut greeting))
            .await
            .expect("greeting");
        assert_eq!(&greeting, b"BOB 00.00.10\nOK\n");
        Self(s)
    }

    /// Sends one command line; the reply line without its line end.
    pub(crate) async fn cmd(&mut self, line: &str) -> String {
        self.0
            .get_mut()
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("send command");
        let mut reply = String::new();
        within(line, self.0.read_line(&mut reply))
            .await
            .expect("read reply");
        reply.trim_end().to_owned()
    }

    /// [`Bob::cmd`] that must answer `OK`.
    pub(crate) async fn ok(&mut self, line: &str) -> String {
        let reply = self.cmd(line).await;
        assert!(reply.starts_with("OK"), "{line}: {reply}");
        reply
    }
}
