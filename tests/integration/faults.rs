//! Faults on the data path: a sink that refuses connections, a sink and an application
//! that reset mid-transfer. The broken connection ends promptly and visibly, failures
//! are counted in the tunnel's `TunnelStats`, and the tunnel keeps serving.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bob_codec::Dialect;
use bob_integration_tests::{
    TestServer, free_port, local_core, pattern, poll_until, start_server_with_launcher,
    test_config, within,
};
use bob_server::registry::{ActiveTunnel, Launcher};
use bob_server::tunnel::{RunningTunnel, TunnelStats};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// The counters of every tunnel started, by nickname (the latest start wins).
type StatsMap = Arc<Mutex<HashMap<String, Arc<TunnelStats>>>>;

/// The real launcher, recording each running tunnel's counters.
fn recording_launcher() -> (Launcher, StatsMap) {
    let stats: StatsMap = Arc::default();
    let map = stats.clone();
    let launcher: Launcher = Arc::new(move |core, spec, limits| {
        let map = map.clone();
        Box::pin(async move {
            let tunnel = RunningTunnel::start(core, spec, limits).await?;
            map.lock()
                .unwrap()
                .insert(tunnel.nickname().to_owned(), tunnel.stats().clone());
            Ok(Box::new(tunnel) as Box<dyn ActiveTunnel>)
        })
    });
    (launcher, stats)
}

async fn server() -> (TestServer, StatsMap) {
    let (launcher, stats) = recording_launcher();
    let server =
        start_server_with_launcher(test_config(Dialect::Java), local_core(), launcher).await;
    (server, stats)
}

/// Waits until tunnel `nick` has counted at least `n` failed connections.
async fn failures(stats: &StatsMap, nick: &str, n: u64) -> u64 {
    poll_until(&format!("{n} failure(s) counted on {nick}"), || async {
        let failed = stats.lock().unwrap().get(nick)?.snapshot().failed;
        (failed >= n).then_some(failed)
    })
    .await
}

/// An echo application; every connection reports on `ends` when it is over.
async fn echo_on(listener: TcpListener) -> mpsc::UnboundedReceiver<std::io::Result<u64>> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (mut r, mut w) = sock.into_split();
                let copied = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
                let _ = tx.send(copied);
            });
        }
    });
    rx
}

async fn echo_sink() -> (SocketAddr, mpsc::UnboundedReceiver<std::io::Result<u64>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
    let addr = listener.local_addr().expect("addr");
    (addr, echo_on(listener).await)
}

/// Connects to the inport and sends `target` and `data` (then half-closes) from a
/// separate task; returns the socket's read half.
async fn send(inport: u16, target: &str, data: Vec<u8>) -> tokio::net::tcp::OwnedReadHalf {
    let sock = within("connect inport", TcpStream::connect(("127.0.0.1", inport)))
        .await
        .expect("connect inport");
    let (r, mut w) = sock.into_split();
    let head = format!("{target}\n");
    tokio::spawn(async move {
        let _ = w.write_all(head.as_bytes()).await;
        let _ = w.write_all(&data).await;
        let _ = w.shutdown().await;
    });
    r
}

/// Reads until the connection ends; returns the bytes and whether it ended in a reset.
async fn until_closed(r: &mut (impl AsyncReadExt + Unpin)) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    within("connection end", async {
        loop {
            match r.read(&mut buf).await {
                Ok(0) => return (got, false),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => return (got, true),
            }
        }
    })
    .await
}

async fn echo_round_trip(inport: u16, target: &str, len: usize) {
    let data = pattern(len);
    let mut r = send(inport, target, data.clone()).await;
    let (back, reset) = until_closed(&mut r).await;
    assert!(!reset, "echo connection was reset");
    assert!(back == data, "echo differs ({} of {len} bytes)", back.len());
}

#[tokio::test]
async fn refused_sink_closes_the_application_and_the_tunnel_keeps_serving() {
    let (server, stats) = server().await;
    let mut c = server.client().await;
    // nothing listens on outport (yet)
    let outport = free_port();
    let srv = c.quiet_server_tunnel("srv", outport).await;
    c.new_tunnel("cli").await;
    let inport = c.start_inbound().await;

    for round in 1..=3 {
        let mut r = send(inport, &srv, b"hello?".to_vec()).await;
        let (got, _) = until_closed(&mut r).await;
        assert!(got.is_empty(), "data from a refused sink: {got:?}");
        failures(&stats, "srv", round).await;
    }
    assert!(c.cmd("status srv").await.contains("RUNNING: true"));

    // once the sink listens, the same tunnel serves it
    let listener = poll_until("rebinding outport", || async {
        TcpListener::bind(("127.0.0.1", outport)).await.ok()
    })
    .await;
    let _ends = echo_on(listener).await;
    echo_round_trip(inport, &srv, 100_000).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_reset_mid_transfer_ends_that_connection_only() {
    let (server, stats) = server().await;
    let mut c = server.client().await;
    // the first connection to this sink is reset after 64 KiB, the others are echoed
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let flaky = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let first = seen2.fetch_add(1, Ordering::SeqCst) == 0;
            tokio::spawn(async move {
                if first {
                    let mut buf = vec![0u8; 64 * 1024];
                    let _ = sock.read_exact(&mut buf).await;
                    sock.write_all(&buf[..1000]).await.unwrap();
                    sock.set_zero_linger().unwrap();
                    drop(sock);
                } else {
                    let (mut r, mut w) = sock.into_split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                    let _ = w.shutdown().await;
                }
            });
        }
    });
    let srv = c.quiet_server_tunnel("srv", flaky.port()).await;
    c.new_tunnel("cli").await;
    let inport = c.start_inbound().await;

    // a big transfer that the sink breaks off: the application sees the end promptly
    let mut r = send(inport, &srv, pattern(16 << 20)).await;
    let (got, _) = until_closed(&mut r).await;
    assert!(got.len() <= 1000, "{} bytes after a reset", got.len());
    assert_eq!(got, pattern(64 * 1024)[..got.len()]);
    failures(&stats, "srv", 1).await;
    // the tunnel keeps serving
    echo_round_trip(inport, &srv, 1 << 20).await;
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_reset_mid_transfer_reaches_the_sink_and_spares_others() {
    let (server, stats) = server().await;
    let mut c = server.client().await;
    let (sink, mut ends) = echo_sink().await;
    let srv = c.quiet_server_tunnel("srv", sink.port()).await;
    c.new_tunnel("cli").await;
    let inport = c.start_inbound().await;

    // a long-lived well-behaved connection, open across the reset
    let steady = TcpStream::connect(("127.0.0.1", inport)).await.unwrap();
    let (mut steady_r, mut steady_w) = steady.into_split();
    steady_w
        .write_all(format!("{srv}\nbefore ").as_bytes())
        .await
        .unwrap();
    let mut before = [0u8; 7];
    within("steady echo", steady_r.read_exact(&mut before))
        .await
        .unwrap();
    assert_eq!(&before, b"before ");

    // the application that resets: relaying is under way when it aborts
    let mut rude = TcpStream::connect(("127.0.0.1", inport)).await.unwrap();
    rude.write_all(format!("{srv}\n").as_bytes()).await.unwrap();
    rude.write_all(&pattern(256 * 1024)).await.unwrap();
    let mut some = vec![0u8; 1024];
    within("rude echo", rude.read_exact(&mut some))
        .await
        .unwrap();
    rude.set_zero_linger().unwrap();
    drop(rude);

    // the sink sees that connection end (the steady one is still open)
    let ended = within("sink sees the close", ends.recv()).await.unwrap();
    drop(ended);
    failures(&stats, "cli", 1).await;

    // the steady connection is untouched
    steady_w.write_all(b"after").await.unwrap();
    steady_w.shutdown().await.unwrap();
    let (rest, reset) = until_closed(&mut steady_r).await;
    assert!(!reset);
    assert_eq!(rest, b"after");
    // and new connections are served
    echo_round_trip(inport, &srv, 1 << 20).await;
    assert!(c.cmd("status cli").await.contains("RUNNING: true"));
    server.stop().await;
}
