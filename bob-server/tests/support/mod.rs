//! Helpers shared by the test files of bob-server that run its binary (`mod support;`);
//! everything else comes from `bob-testkit`, the one home of the test helpers.
//!
//! Each test file is its own crate and uses only some of these.
#![allow(dead_code, unused_imports)]

pub(crate) use bob_testkit::{DEADLINE, free_port, line_echo, within};

/// A BOB control connection, past the greeting; `cmd` returns the reply line without
/// its line end.
pub(crate) struct Bob(pub(crate) bob_testkit::TestClient);

impl Bob {
    /// Connects and checks the Java greeting.
    pub(crate) async fn connect(addr: impl tokio::net::ToSocketAddrs) -> Self {
        Self(bob_testkit::TestClient::connect(addr).await)
    }

    /// Sends one command line; the reply line without its line end.
    pub(crate) async fn cmd(&mut self, line: &str) -> String {
        self.0.line(line).await
    }

    /// [`Bob::cmd`] that must answer `OK`.
    pub(crate) async fn ok(&mut self, line: &str) -> String {
        self.0.ok(line).await
    }
}
