//! End-to-end data-path tests: tunnels on one in-process `LocalCore`, real TCP sockets
//! on port 0, exact bytes. No sleeps: every wait is bounded by a deadline.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bob_server::backend::local::LocalCore;
use bob_server::backend::{BoxFuture, BoxStream, CoreError, Session, StreamingCore, Target};
use bob_server::tunnel::{Endpoint, RunningTunnel, StartError, TunnelLimits, TunnelSpec};
use keytools::PrivateKeys;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{DEADLINE, keys, local, pattern, within};

/// Polls `condition` until it holds, failing the test after [`DEADLINE`].
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A client tunnel (inbound on `inbound`, new keys) on `core`.
async fn client_tunnel(
    core: &Arc<dyn StreamingCore>,
    inbound: Endpoint,
    limits: TunnelLimits,
) -> RunningTunnel {
    let mut client_spec = spec("client", keys());
    client_spec.inbound = Some(inbound);
    RunningTunnel::start(core.clone(), client_spec, limits)
        .await
        .expect("client tunnel starts")
}

fn spec(nickname: &str, keys: PrivateKeys) -> TunnelSpec {
    TunnelSpec {
        nickname: nickname.to_owned(),
        keys,
        options: Vec::new(),
        server_options: Vec::new(),
        inbound: None,
        outbound: None,
        quiet: false,
    }
}

/// A TCP server that echoes every connection: it copies until end of stream, then
/// shuts down its write side (so half-close is exercised end to end).
async fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = socket.into_split();
                if tokio::io::copy(&mut r, &mut w).await.is_ok() {
                    let _ = w.shutdown().await;
                }
            });
        }
    });
    port
}

/// Two tunnels on one core: `server` (outbound to `outport`) and `client` (inbound on
/// a free port).
struct Pair {
    core: Arc<dyn StreamingCore>,
    server: RunningTunnel,
    client: RunningTunnel,
}

impl Pair {
    async fn start(core: LocalCore, outport: u16, quiet: bool, limits: TunnelLimits) -> Self {
        let core: Arc<dyn StreamingCore> = Arc::new(core);
        let mut server_spec = spec("server", keys());
        server_spec.outbound = Some(local(outport));
        server_spec.quiet = quiet;
        let server = RunningTunnel::start(core.clone(), server_spec, limits.clone())
            .await
            .expect("server tunnel starts");
        let client = client_tunnel(&core, local(0), limits).await;
        Self {
            core,
            server,
            client,
        }
    }

    /// A pair on a fresh [`LocalCore`] with the default limits.
    async fn to_port(outport: u16, quiet: bool) -> Self {
        Self::start(LocalCore::new(), outport, quiet, TunnelLimits::default()).await
    }

    async fn echo(quiet: bool) -> Self {
        Self::to_port(echo_server().await, quiet).await
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.client.inbound_addr().unwrap())
            .await
            .unwrap()
    }

    /// A connection to the client tunnel that names the server tunnel and sends `first`.
    async fn open(&self, first: &str) -> TcpStream {
        let mut app = self.connect().await;
        app.write_all(format!("{}{first}", self.server_line()).as_bytes())
            .await
            .unwrap();
        app
    }

    fn server_line(&self) -> String {
        format!("{}\n", self.server.destination().to_base64())
    }
}

async fn read_all(mut r: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut out = Vec::new();
    within("read to end", r.read_to_end(&mut out))
        .await
        .expect("read");
    out
}

/// Sends `line` and returns everything the tunnel answers before closing.
async fn reply_to_line(pair: &Pair, line: &[u8]) -> String {
    let mut app = pair.connect().await;
    app.write_all(line).await.unwrap();
    String::from_utf8(read_all(&mut app).await).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_mib_echo_is_byte_exact() {
    let pair = Pair::echo(true).await;
    let data = pattern(10 * 1024 * 1024);
    let app = pair.connect().await;
    let (mut r, mut w) = app.into_split();
    let line = pair.server_line();
    let writer = {
        let data = data.clone();
        tokio::spawn(async move {
            w.write_all(line.as_bytes()).await.unwrap();
            w.write_all(&data).await.unwrap();
            w.shutdown().await.unwrap();
        })
    };
    let echoed = read_all(&mut r).await;
    within("writer", writer).await.unwrap();
    assert_eq!(echoed.len(), data.len());
    assert!(echoed == data, "echo differs");
    let server = pair.server.stats().snapshot();
    let client = pair.client.stats().snapshot();
    assert_eq!(client.bytes_in, data.len() as u64);
    assert_eq!(server.bytes_in, data.len() as u64);
    assert_eq!(server.bytes_out, data.len() as u64);
    assert_eq!((client.accepted, server.accepted), (1, 1));
    pair.client.stop().await;
    pair.server.stop().await;
}

#[tokio::test]
async fn not_quiet_sends_peer_line_first() {
    let sink = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pair = Pair::to_port(sink.local_addr().unwrap().port(), false).await;
    let mut app = pair.open("hello").await;
    let (mut sunk, _) = within("sink accept", sink.accept()).await.unwrap();
    let expected = format!("{}\n", pair.client.destination().to_base64());
    let mut line = vec![0u8; expected.len()];
    within("peer line", sunk.read_exact(&mut line))
        .await
        .unwrap();
    assert_eq!(String::from_utf8(line).unwrap(), expected);
    let mut hello = [0u8; 5];
    within("data", sunk.read_exact(&mut hello)).await.unwrap();
    assert_eq!(&hello, b"hello");
    sunk.write_all(b"pong").await.unwrap();
    drop(sunk);
    assert_eq!(read_all(&mut app).await, b"pong");
}

#[tokio::test]
async fn quiet_sends_data_only() {
    let sink = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pair = Pair::to_port(sink.local_addr().unwrap().port(), true).await;
    let mut app = pair.open("hello").await;
    app.shutdown().await.unwrap();
    let (sunk, _) = within("sink accept", sink.accept()).await.unwrap();
    assert_eq!(read_all(sunk).await, b"hello");
}

#[tokio::test]
async fn b32_target_any_case_with_crlf() {
    let pair = Pair::echo(true).await;
    let b32 = pair.server.destination().b32().to_uppercase();
    let mut app = pair.connect().await;
    app.write_all(format!("{b32}\r\n").as_bytes())
        .await
        .unwrap();
    app.write_all(b"over b32").await.unwrap();
    app.shutdown().await.unwrap();
    assert_eq!(read_all(&mut app).await, b"over b32");
}

#[tokio::test]
async fn hosts_name_target() {
    let server_keys = keys();
    let mut hosts = HashMap::new();
    hosts.insert("echo.i2p".to_owned(), server_keys.destination().clone());
    let core: Arc<dyn StreamingCore> = Arc::new(LocalCore::with_hosts(hosts));
    let mut server_spec = spec("server", server_keys);
    server_spec.outbound = Some(local(echo_server().await));
    server_spec.quiet = true;
    let limits = TunnelLimits::default();
    let _server = RunningTunnel::start(core.clone(), server_spec, limits.clone())
        .await
        .unwrap();
    let localhost = Endpoint {
        host: "localhost".to_owned(),
        port: 0,
    };
    let client = client_tunnel(&core, localhost, limits).await;
    // like Java: `localhost` binds the IPv4 loopback
    let addr = client.inbound_addr().unwrap();
    assert_eq!(addr.ip(), std::net::Ipv4Addr::LOCALHOST);
    let mut app = TcpStream::connect(addr).await.unwrap();
    app.write_all(b"Echo.I2P\nby name").await.unwrap();
    app.shutdown().await.unwrap();
    assert_eq!(read_all(&mut app).await, b"by name");
}

#[tokio::test]
async fn early_data_in_the_same_write_arrives() {
    let pair = Pair::echo(true).await;
    let mut app = pair.connect().await;
    let mut first = pair.server_line().into_bytes();
    first.extend_from_slice(b"early bytes");
    app.write_all(&first).await.unwrap();
    let mut got = [0u8; 11];
    within("early echo", app.read_exact(&mut got))
        .await
        .unwrap();
    assert_eq!(&got, b"early bytes");
    app.write_all(b" and later").await.unwrap();
    app.shutdown().await.unwrap();
    assert_eq!(read_all(&mut app).await, b" and later");
}

#[tokio::test]
async fn bad_lines_get_an_error_line_then_eof() {
    let pair = Pair::echo(true).await;

    let reply = reply_to_line(&pair, b"garbage!!\n").await;
    assert!(
        reply.starts_with("ERROR bad destination: ") && reply.ends_with('\n'),
        "{reply:?}"
    );
    assert_eq!(reply.matches('\n').count(), 1, "{reply:?}");

    // valid base64, but too short to hold a destination
    let reply = reply_to_line(&pair, b"AAAAAAAA\n").await;
    assert!(reply.starts_with("ERROR bad destination: "), "{reply:?}");

    let reply = reply_to_line(&pair, b"nobody.i2p\n").await;
    assert_eq!(reply, "ERROR Can't find destination: nobody.i2p\n");

    let offline = keys().destination().to_base64();
    let reply = reply_to_line(&pair, format!("{offline}\n").as_bytes()).await;
    assert!(
        reply.starts_with("ERROR Can't reach peer: ") && reply.ends_with('\n'),
        "{reply:?}"
    );

    let reply = reply_to_line(&pair, b"\r\n").await;
    assert_eq!(reply, "ERROR empty destination line\n");

    // end of stream also ends the line
    let mut app = pair.connect().await;
    app.write_all(b"Missing.I2P").await.unwrap();
    app.shutdown().await.unwrap();
    let reply = String::from_utf8(read_all(&mut app).await).unwrap();
    assert_eq!(reply, "ERROR Can't find destination: Missing.I2P\n");

    let stats = pair.client.stats().clone();
    eventually("all connections closed", || stats.snapshot().active == 0).await;
    assert_eq!((stats.snapshot().accepted, stats.snapshot().failed), (6, 6));
}

#[tokio::test]
async fn over_long_line_is_rejected() {
    let limits = TunnelLimits {
        max_first_line: 100,
        ..TunnelLimits::default()
    };
    let pair = Pair::start(LocalCore::new(), echo_server().await, true, limits).await;
    // one byte over the limit
    let mut over = vec![b'A'; 101];
    over.push(b'\n');
    let reply = reply_to_line(&pair, &over).await;
    assert_eq!(reply, "ERROR line too long\n");
    // exactly at the limit (a CR does not count): parsed, and refused as a bad destination
    let mut at_limit = vec![b'A'; 100];
    at_limit.extend_from_slice(b"\r\n");
    let reply = reply_to_line(&pair, &at_limit).await;
    assert!(reply.starts_with("ERROR bad destination"), "{reply:?}");
    // far over the limit, with no newline at all, and the application keeps the
    // connection open: the error still arrives
    let mut app = pair.connect().await;
    app.write_all(&vec![b'x'; 64 * 1024]).await.unwrap();
    let mut reply = vec![0u8; "ERROR line too long\n".len()];
    within("error line", app.read_exact(&mut reply))
        .await
        .unwrap();
    assert_eq!(reply, b"ERROR line too long\n");
}

#[tokio::test]
async fn first_line_timeout() {
    let limits = TunnelLimits {
        first_line_timeout: Duration::from_millis(200),
        ..TunnelLimits::default()
    };
    let pair = Pair::start(LocalCore::new(), echo_server().await, true, limits).await;
    let mut app = pair.connect().await;
    app.write_all(b"partial-line-without-newline")
        .await
        .unwrap();
    assert_eq!(
        read_all(&mut app).await,
        b"ERROR timeout waiting for destination line\n"
    );
}

#[tokio::test]
async fn half_close_still_receives_full_echo() {
    let pair = Pair::echo(true).await;
    let mut app = pair.connect().await;
    let data = pattern(300_000);
    app.write_all(pair.server_line().as_bytes()).await.unwrap();
    // small enough to fit socket and stream buffers while we are not reading
    app.write_all(&data).await.unwrap();
    app.shutdown().await.unwrap();
    assert!(read_all(&mut app).await == data);
}

#[tokio::test]
async fn stop_ends_live_connections_and_frees_the_port() {
    let pair = Pair::echo(true).await;
    let mut app = pair.open("live").await;
    let mut got = [0u8; 4];
    within("echo", app.read_exact(&mut got)).await.unwrap();
    assert_eq!(&got, b"live");
    let addr = pair.client.inbound_addr().unwrap();
    let client_stats = pair.client.stats().clone();
    pair.client.stop().await;
    // the live connection ends (EOF or reset, but not a hang)
    let mut rest = Vec::new();
    let _ = within("connection end", app.read_to_end(&mut rest)).await;
    assert!(rest.is_empty());
    assert_eq!(
        client_stats.snapshot().active,
        0,
        "stop waited for the connection"
    );
    // the port is free again
    let rebound = TcpListener::bind(addr).await.expect("re-bind after stop");
    drop(rebound);

    // the stopped client's destination is gone; the server's is still reachable
    let server_dest = pair.server.destination().clone();
    assert!(pair.core.lookup(&server_dest.b32()).await.is_ok());
    pair.server.stop().await;
    assert_eq!(
        pair.core.lookup(&server_dest.b32()).await,
        Err(CoreError::NotFound)
    );
}

#[tokio::test]
async fn restart_on_same_keys_and_port() {
    let core: Arc<dyn StreamingCore> = Arc::new(LocalCore::new());
    let k = keys();
    let mut s = spec("again", k.clone());
    s.inbound = Some(local(0));
    let first = RunningTunnel::start(core.clone(), s.clone(), TunnelLimits::default())
        .await
        .unwrap();
    let addr = first.inbound_addr().unwrap();
    first.stop().await;
    s.inbound = Some(local(addr.port()));
    let second = RunningTunnel::start(core, s, TunnelLimits::default())
        .await
        .expect("restart");
    assert_eq!(second.inbound_addr(), Some(addr));
    assert_eq!(second.destination(), k.destination());
    second.stop().await;
}

#[tokio::test]
async fn start_errors() {
    let core: Arc<dyn StreamingCore> = Arc::new(LocalCore::new());
    let busy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut s = spec("busy", keys());
    s.inbound = Some(local(busy.local_addr().unwrap().port()));
    let err = RunningTunnel::start(core.clone(), s, TunnelLimits::default())
        .await
        .unwrap_err();
    let StartError::Bind(text) = &err else {
        panic!("expected a bind error, got {err:?}");
    };
    assert!(text.contains("in use"), "{text}");
    // the failed start left nothing registered
    let k = keys();
    let running = RunningTunnel::start(core.clone(), spec("a", k.clone()), TunnelLimits::default())
        .await
        .unwrap();
    let err = RunningTunnel::start(core.clone(), spec("b", k), TunnelLimits::default())
        .await
        .unwrap_err();
    assert_eq!(err, StartError::Core(CoreError::DuplicateDestination));
    assert_eq!(err.to_string(), "destination already in use");
    running.stop().await;
}

#[tokio::test]
async fn outbound_connect_failure_closes_the_stream() {
    // a port that was just free: nothing listens there
    let closed_port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let pair = Pair::to_port(closed_port, false).await;
    let mut app = pair.open("data").await;
    let mut rest = Vec::new();
    let _ = within("close", app.read_to_end(&mut rest)).await;
    assert!(rest.is_empty());
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while pair.server.stats().snapshot().failed != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "failure not counted"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn tunnel_without_outbound_refuses_streams() {
    let core: Arc<dyn StreamingCore> = Arc::new(LocalCore::new());
    let limits = TunnelLimits::default();
    let silent = RunningTunnel::start(core.clone(), spec("silent", keys()), limits.clone())
        .await
        .unwrap();
    let client = client_tunnel(&core, local(0), limits).await;
    // like Java: `localhost` binds the IPv4 loopback
    let addr = client.inbound_addr().unwrap();
    assert_eq!(addr.ip(), std::net::Ipv4Addr::LOCALHOST);
    let mut app = TcpStream::connect(addr).await.unwrap();
    app.write_all(format!("{}\nhello", silent.destination().to_base64()).as_bytes())
        .await
        .unwrap();
    let mut rest = Vec::new();
    let _ = within("refused", app.read_to_end(&mut rest)).await;
    assert!(rest.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_parallel_connections() {
    let pair = Arc::new(Pair::echo(false).await);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let pair = pair.clone();
            tokio::spawn(async move {
                let msg = format!("message {i}");
                let mut app = pair.open(&msg).await;
                app.shutdown().await.unwrap();
                let got = String::from_utf8(read_all(&mut app).await).unwrap();
                // not quiet: the echo server returns the client's destination line too
                let expected = format!("{}\n{msg}", pair.client.destination().to_base64());
                assert_eq!(got, expected);
            })
        })
        .collect();
    for t in tasks {
        within("parallel", t).await.unwrap();
    }
}

/// A backend whose sessions never come up.
#[derive(Debug)]
struct NeverReady;

impl StreamingCore for NeverReady {
    fn name(&self) -> &'static str {
        "never-ready"
    }

    fn open_session(
        &self,
        _keys: PrivateKeys,
        _options: bob_server::backend::Options,
    ) -> BoxFuture<'_, Result<Arc<dyn Session>, CoreError>> {
        Box::pin(std::future::pending())
    }

    fn lookup(&self, _name: &str) -> BoxFuture<'_, Result<keytools::Destination, CoreError>> {
        Box::pin(async { Err(CoreError::NotFound) })
    }
}

/// A backend whose sessions come up at once but whose connects never complete.
#[derive(Debug)]
struct SlowNetwork;

#[derive(Debug)]
struct SlowSession(keytools::Destination);

impl StreamingCore for SlowNetwork {
    fn name(&self) -> &'static str {
        "slow"
    }

    fn open_session(
        &self,
        keys: PrivateKeys,
        _options: bob_server::backend::Options,
    ) -> BoxFuture<'_, Result<Arc<dyn Session>, CoreError>> {
        let session: Arc<dyn Session> = Arc::new(SlowSession(keys.destination().clone()));
        Box::pin(async move { Ok(session) })
    }

    fn lookup(&self, _name: &str) -> BoxFuture<'_, Result<keytools::Destination, CoreError>> {
        Box::pin(std::future::pending())
    }
}

impl Session for SlowSession {
    fn destination(&self) -> &keytools::Destination {
        &self.0
    }

    fn connect(&self, _target: Target) -> BoxFuture<'_, Result<BoxStream, CoreError>> {
        Box::pin(std::future::pending())
    }

    fn accept(&self) -> BoxFuture<'_, Result<bob_server::backend::Incoming, CoreError>> {
        Box::pin(std::future::pending())
    }

    fn lookup(&self, _name: &str) -> BoxFuture<'_, Result<keytools::Destination, CoreError>> {
        Box::pin(std::future::pending())
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

#[tokio::test]
async fn connect_timeout_is_reported() {
    let limits = TunnelLimits {
        connect_timeout: Duration::from_millis(100),
        ..TunnelLimits::default()
    };
    let mut s = spec("slow", keys());
    s.inbound = Some(local(0));
    let tunnel = RunningTunnel::start(Arc::new(SlowNetwork), s, limits)
        .await
        .unwrap();
    let mut app = TcpStream::connect(tunnel.inbound_addr().unwrap())
        .await
        .unwrap();
    app.write_all(b"somewhere.i2p\nearly").await.unwrap();
    assert_eq!(read_all(&mut app).await, b"ERROR timed out\n");
    // stop does not wait for the hung accept or anything else
    within("stop", tunnel.stop()).await;
}

#[tokio::test]
async fn session_timeout_releases_the_port() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let limits = TunnelLimits {
        session_timeout: Duration::from_millis(100),
        ..TunnelLimits::default()
    };
    let mut s = spec("slow", keys());
    s.inbound = Some(local(port));
    let err = within(
        "start",
        RunningTunnel::start(Arc::new(NeverReady), s, limits),
    )
    .await
    .unwrap_err();
    assert_eq!(err, StartError::Timeout);
    TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("port released after a failed start");
}

#[tokio::test]
async fn unresolvable_inhost_is_unknown_host() {
    let core: Arc<dyn StreamingCore> = Arc::new(LocalCore::new());
    let mut s = spec("nohost", keys());
    // an empty name fails in the resolver itself, without any DNS traffic
    s.inbound = Some(Endpoint {
        host: String::new(),
        port: 0,
    });
    let err = RunningTunnel::start(core, s, TunnelLimits::default())
        .await
        .unwrap_err();
    assert_eq!(err, StartError::UnknownHost(String::new()));
}
