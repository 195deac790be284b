//! Helpers shared by the test files of bob-server (`mod support;`): the bob-server
//! specific ones here, the rest from `bob-testkit` (one home for every test helper).
//!
//! Each test file is its own crate and uses only some of these.
#![allow(dead_code, unused_imports)]

use bob_server::tunnel::Endpoint;
use keytools::{CryptoType, PrivateKeys, SigType};

pub(crate) use bob_testkit::{DEADLINE, free_port, line_echo, pattern, within};

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

/// The application behind a server tunnel that is not quiet: reads the peer line (sent
/// on the channel), then echoes every byte after it.
pub(crate) async fn echo_app() -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    bob_testkit::echo_app(false).await
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
