//! What the bobctl tests share: a bob-server in this process.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use bob_server::backend::local::LocalCore;
use bob_server::config::Config;
use bob_server::server::Server;
use tokio_util::sync::CancellationToken;

/// A bob-server in this process (local backend, control port 0); cancelled on drop.
pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    pub(crate) metrics: Option<SocketAddr>,
    shutdown: CancellationToken,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts one, with a metrics endpoint on port 0 if `metrics`.
pub(crate) async fn start_server(metrics: bool) -> TestServer {
    start_server_on(metrics, Arc::new(LocalCore::new())).await
}

/// Starts one on the backend given.
pub(crate) async fn start_server_on(
    metrics: bool,
    core: Arc<dyn bob_server::backend::StreamingCore>,
) -> TestServer {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: metrics.then(|| "127.0.0.1:0".parse().unwrap()),
        ..Config::default()
    };
    let server = Server::bind(config, core).await.expect("server binds");
    let shutdown = CancellationToken::new();
    let out = TestServer {
        addr: server.local_addr(),
        metrics: server.metrics_addr(),
        shutdown: shutdown.clone(),
    };
    tokio::spawn(server.run(shutdown));
    out
}
