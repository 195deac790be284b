//! Regression test: a burst of many simultaneous control connections.
//!
//! The control listener used to be bound with the standard backlog of 128. When more
//! clients connect at once than the kernel queue holds, Linux drops the handshake's
//! last ACK (or the SYN): the client either believes it is connected while the server
//! never sees the connection, and waits forever for the greeting, or cannot connect at
//! all until the queue drains. 1000 concurrent control clients hung the control
//! benchmark this way. The listener now asks for a queue of
//! [`bob_server::tunnel::LISTEN_BACKLOG`].
//!
//! Every wait is bounded by a deadline; nothing here measures speed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bob_client::{Client, ClientError};
use bob_codec::types::{Nickname, Port};
use bob_server::backend::local::LocalCore;
use bob_server::config::Config;
use bob_server::server::Server;
use keytools::SigType;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Upper bound for anything a test waits for.
const DEADLINE: Duration = Duration::from_secs(30);

/// More clients than the old backlog of 128 (and than the default connection cap).
const BURST: usize = 300;

fn config() -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("address"),
        newkeys_sig: SigType::Ed25519,
        max_connections: BURST + 10,
        ..Config::default()
    };
    config.tunnel_limits.max_connections = 8;
    config
}

/// A control connection on `stream` (connected earlier), greeting read.
async fn client(stream: TcpStream) -> Client<TcpStream> {
    let mut client = Client::without_greeting(stream);
    client.set_timeout(Some(DEADLINE));
    client.read_greeting().await.expect("greeting");
    client
}

/// One full life cycle of a tunnel on its own control connection.
async fn cycle(mut client: Client<TcpStream>, i: usize, outport: u16) {
    let name: Nickname = format!("burst-{i}").parse().expect("nickname");
    client.setnick(&name).await.expect("setnick");
    client.newkeys(None, None).await.expect("newkeys");
    client
        .outhost(&"127.0.0.1".parse().expect("host"))
        .await
        .expect("outhost");
    client
        .outport(Port::new(outport).expect("port"))
        .await
        .expect("outport");
    client.start().await.expect("start");
    client.stop().await.expect("stop");
    // `stop` replies before the tunnel is down; `clear` is refused until then.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match client.clear().await {
            Ok(()) => break,
            Err(ClientError::Server { text, .. })
                if text.contains("active") && tokio::time::Instant::now() < deadline => {}
            Err(e) => panic!("clear: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    client.quit().await.expect("quit");
}

/// All clients connect while the server is not yet accepting: every connect must
/// complete (queued by the kernel), and every client must then get its greeting and
/// run a full start/stop/clear cycle concurrently with the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_of_connections_is_queued_and_served() {
    let server = Server::bind(config(), Arc::new(LocalCore::new()))
        .await
        .expect("bind");
    let addr: SocketAddr = server.local_addr();

    // Connect everyone before the server accepts anything.
    let connects: Vec<_> = (0..BURST)
        .map(|_| tokio::spawn(tokio::time::timeout(DEADLINE, TcpStream::connect(addr))))
        .collect();
    let mut streams = Vec::with_capacity(BURST);
    for (i, connect) in connects.into_iter().enumerate() {
        let stream = connect
            .await
            .expect("connect task")
            .unwrap_or_else(|_| panic!("connect {i} not queued within the deadline"))
            .expect("connect");
        streams.push(stream);
    }

    let shutdown = CancellationToken::new();
    let running = tokio::spawn(server.run(shutdown.clone()));
    let outport = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind outport")
        .local_addr()
        .expect("addr")
        .port();
    let cycles: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(i, stream)| {
            tokio::spawn(async move {
                cycle(client(stream).await, i, outport).await;
            })
        })
        .collect();
    for cycle in cycles {
        cycle.await.expect("cycle");
    }

    // Nothing is left behind.
    let stream = tokio::time::timeout(DEADLINE, TcpStream::connect(addr))
        .await
        .expect("connect")
        .expect("connect");
    let mut client = client(stream).await;
    assert_eq!(client.list().await.expect("list"), []);
    shutdown.cancel();
    tokio::time::timeout(DEADLINE, running)
        .await
        .expect("server stops")
        .expect("join")
        .expect("server result");
}
