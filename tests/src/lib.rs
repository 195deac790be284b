//! Harness for the integration tests: start a server on `127.0.0.1:0`, talk BOB to it
//! (with `bob-testkit`'s [`BobClient`], on `bob-client`).
//!
//! Everything has a deadline ([`DEADLINE`]); nothing sleeps to wait for start-up: the
//! helpers poll with a deadline instead.

use std::net::SocketAddr;
use std::sync::Arc;

use bob_codec::Dialect;
use bob_server::backend::StreamingCore;
use bob_server::backend::local::LocalCore;
use bob_server::config::Config;
use bob_server::registry::Launcher;
use bob_server::server::{Server, ServerError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use bob_testkit::{
    DEADLINE, GREETING, TestClient as BobClient, echo_app, free_port, line_echo, pattern,
    pattern_seeded, poll_until, within, within_for,
};

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
