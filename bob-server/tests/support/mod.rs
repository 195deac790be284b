//! Helpers shared by the binary-level test files of bob-server (`mod support;`).
//!
//! Each test file is its own crate and uses only some of these.
#![allow(dead_code)]

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, ToSocketAddrs};

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
