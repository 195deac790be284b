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

use bob_server::backend::local::LocalCore;
use bob_server::config::Config;
use bob_server::server::Server;
use keytools::SigType;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
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

/// A line-oriented BOB client.
struct Client {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Client {
    fn new(stream: TcpStream) -> Self {
        let (r, w) = stream.into_split();
        Self {
            reader: BufReader::new(r),
            writer: w,
        }
    }

    async fn line(&mut self) -> String {
        let mut line = String::new();
        let n = tokio::time::timeout(DEADLINE, self.reader.read_line(&mut line))
            .await
            .expect("reply within the deadline")
            .expect("read");
        assert!(n > 0, "server closed the connection");
        line.trim_end().to_owned()
    }

    async fn greeting(&mut self) {
        let banner = self.line().await;
        assert!(banner.starts_with("BOB "), "{banner:?}");
        assert_eq!(self.line().await, "OK");
    }

    async fn send(&mut self, command: &str) -> String {
        self.writer
            .write_all(format!("{command}\n").as_bytes())
            .await
            .expect("write");
        self.line().await
    }

    async fn ok(&mut self, command: &str) -> String {
        let reply = self.send(command).await;
        assert!(reply.starts_with("OK"), "{command}: {reply}");
        reply
    }
}

/// One full life cycle of a tunnel on its own control connection.
async fn cycle(mut client: Client, i: usize, outport: u16) {
    client.ok(&format!("setnick burst-{i}")).await;
    client.ok("newkeys").await;
    client.ok("outhost 127.0.0.1").await;
    client.ok(&format!("outport {outport}")).await;
    client.ok("start").await;
    client.ok("stop").await;
    // `stop` replies before the tunnel is down; `clear` is refused until then.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let reply = client.send("clear").await;
        if reply.starts_with("OK") {
            break;
        }
        assert!(
            reply.contains("active") && tokio::time::Instant::now() < deadline,
            "clear: {reply}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    client.ok("quit").await;
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
                let mut client = Client::new(stream);
                client.greeting().await;
                cycle(client, i, outport).await;
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
    let mut client = Client::new(stream);
    client.greeting().await;
    client.writer.write_all(b"list\n").await.expect("write");
    assert_eq!(client.line().await, "OK Listing done");
    shutdown.cancel();
    tokio::time::timeout(DEADLINE, running)
        .await
        .expect("server stops")
        .expect("join")
        .expect("server result");
}
