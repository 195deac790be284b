//! Hostile clients: applications that never send the destination line or send an
//! endless one, readers that never read while the other side floods, and connection
//! storms on the control port and on a tunnel's inport. Every wait is bounded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bob_codec::Dialect;
use bob_integration_tests::{
    BobClient, local_core, poll_until, start_server, start_server_with, test_config, within,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Most bytes the server may let one flooding side push into a reader that never
/// reads: socket buffers and the relay's bounded buffers, nothing that grows.
const FLOOD_BOUND: u64 = 64 << 20;

/// A writer counts as blocked once no write has completed for this long.
const STALL: Duration = Duration::from_secs(2);

/// A server tunnel `srv` (quiet, outbound to `sink`) and a client tunnel `cli`;
/// returns (srv destination, cli inport).
async fn pair(c: &mut BobClient, sink: SocketAddr) -> (String, u16) {
    let srv = c.quiet_server_tunnel("srv", sink.port()).await;
    c.new_tunnel("cli").await;
    (srv, c.start_inbound().await)
}

/// An echo application (copies until end of stream, then closes).
async fn echo_sink() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = sock.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// One echo round trip of `len` bytes through the client tunnel.
async fn round_trip(inport: u16, target: &str, len: usize) {
    let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
    let sock = TcpStream::connect(("127.0.0.1", inport))
        .await
        .expect("connect inport");
    let (mut r, mut w) = sock.into_split();
    let head = format!("{target}\n");
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        w.write_all(head.as_bytes()).await?;
        w.write_all(&sent).await?;
        w.shutdown().await
    });
    let mut back = Vec::new();
    within("echo", r.read_to_end(&mut back))
        .await
        .expect("read echo");
    writer.await.expect("writer").expect("write");
    assert!(back == data, "echo differs ({} of {len} bytes)", back.len());
}

/// Reads everything until the peer closes; a reset after the data counts as a close.
async fn read_until_closed(sock: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    within("close", async {
        loop {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    got
}

/// Writes 64 KiB chunks to `w` until a write makes no progress for [`STALL`] (or
/// fails), or more than [`FLOOD_BOUND`] bytes went out; returns the bytes written.
async fn flood(w: &mut (impl AsyncWriteExt + Unpin), counter: &AtomicU64) -> u64 {
    let chunk = vec![0x5a_u8; 64 * 1024];
    loop {
        match tokio::time::timeout(STALL, w.write_all(&chunk)).await {
            Ok(Ok(())) => {
                let total = counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                if total > FLOOD_BOUND {
                    return total;
                }
            }
            Ok(Err(_)) | Err(_) => return counter.load(Ordering::Relaxed),
        }
    }
}

#[tokio::test]
async fn silent_and_slow_first_lines_time_out() {
    let mut config = test_config(Dialect::Java);
    config.tunnel_limits.first_line_timeout = Duration::from_millis(300);
    let server = start_server_with(config, local_core()).await;
    let mut c = server.client().await;
    let sink = echo_sink().await;
    let (srv, inport) = pair(&mut c, sink).await;

    // never a byte; and a line started but never finished (slowloris)
    for opening in [&b""[..], b"AAAAAAAAAAAAAAAA"] {
        let started = Instant::now();
        let mut app = TcpStream::connect(("127.0.0.1", inport)).await.unwrap();
        app.write_all(opening).await.unwrap();
        let got = read_until_closed(&mut app).await;
        assert_eq!(
            String::from_utf8_lossy(&got),
            "ERROR timeout waiting for destination line\n"
        );
        assert!(started.elapsed() >= Duration::from_millis(300));
    }
    // the tunnel still serves well-behaved applications
    round_trip(inport, &srv, 10_000).await;
    server.stop().await;
}

#[tokio::test]
async fn endless_first_line_gets_an_error_then_close() {
    let server = start_server(Dialect::I2pd).await;
    let mut c = server.client().await;
    let sink = echo_sink().await;
    let (srv, inport) = pair(&mut c, sink).await;

    let app = TcpStream::connect(("127.0.0.1", inport)).await.unwrap();
    let (mut r, mut w) = app.into_split();
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let written = written.clone();
        // no newline ever: only the server closing the connection ends this
        tokio::spawn(async move { flood(&mut w, &written).await })
    };
    let mut reply = vec![0u8; "ERROR line too long\n".len()];
    within("error line", r.read_exact(&mut reply))
        .await
        .expect("error line");
    assert_eq!(reply, b"ERROR line too long\n");
    let mut rest = Vec::new();
    match within("close", r.read_to_end(&mut rest)).await {
        Ok(_) => assert!(rest.is_empty(), "{rest:?}"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }
    // the server stopped taking bytes long before the bound
    let pushed = within("writer ends", writer).await.unwrap();
    assert!(pushed < FLOOD_BOUND, "server kept reading {pushed} bytes");
    round_trip(inport, &srv, 10_000).await;
    server.stop().await;
}

/// Neither side of a tunnel pair buffers without bound when its reader stops reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_into_readers_that_never_read_stay_bounded() {
    let server = start_server(Dialect::Java).await;
    let mut c = server.client().await;

    // the sink never reads; it only reports its connections so they stay open
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink = listener.local_addr().unwrap();
    let (held_tx, mut held) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let _ = held_tx.send(sock);
        }
    });
    let (srv, inport) = pair(&mut c, sink).await;

    // application -> tunnel -> I2P -> tunnel -> sink that never reads
    let mut app = TcpStream::connect(("127.0.0.1", inport)).await.unwrap();
    app.write_all(format!("{srv}\n").as_bytes()).await.unwrap();
    let counter = AtomicU64::new(0);
    let upstream = within("upstream flood", flood(&mut app, &counter)).await;
    let _sink_side = within("sink connection", held.recv()).await.unwrap();
    println!("application could write {upstream} bytes into a sink that never reads");
    assert!(upstream < FLOOD_BOUND, "{upstream} bytes buffered");
    assert!(upstream > 0);

    // sink floods -> tunnel -> I2P -> tunnel -> application that never reads
    let mut reader_app = TcpStream::connect(("127.0.0.1", inport)).await.unwrap();
    reader_app
        .write_all(format!("{srv}\n").as_bytes())
        .await
        .unwrap();
    let mut sink_side = within("second sink connection", held.recv()).await.unwrap();
    let counter = AtomicU64::new(0);
    let downstream = within("downstream flood", flood(&mut sink_side, &counter)).await;
    println!("sink could write {downstream} bytes into an application that never reads");
    assert!(downstream < FLOOD_BOUND, "{downstream} bytes buffered");
    assert!(downstream > 0);

    // the control port and the tunnel still answer
    let list = c.list().await;
    assert_eq!(list.len(), 2, "{list:?}");
    drop((app, reader_app, sink_side));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_port_storm_is_refused_and_the_server_keeps_answering() {
    const LIMIT: usize = 4;
    const STORM: usize = 200;
    let mut config = test_config(Dialect::Java);
    config.max_connections = LIMIT;
    let server = start_server_with(config, local_core()).await;
    let mut held = Vec::new();
    for _ in 0..LIMIT {
        held.push(server.client().await);
    }
    let addr = server.addr;
    let storm: Vec<_> = (0..STORM)
        .map(|_| {
            tokio::spawn(async move {
                let mut extra = BobClient::connect_raw(addr).await;
                assert_eq!(extra.read_line().await, "ERROR too many connections\n");
                extra.expect_eof().await;
            })
        })
        .collect();
    for task in storm {
        within("storm connection", task)
            .await
            .expect("refused cleanly");
    }
    // the connections inside the limit were not disturbed
    for c in &mut held {
        c.expect("list", "OK Listing done").await;
    }
    // and a slot that frees up serves a normal client again
    let mut first = held.remove(0);
    first.expect("quit", "OK Bye!").await;
    let mut fresh = poll_until("a free slot", || async {
        let mut d = BobClient::connect_raw(addr).await;
        (d.read_line().await == "BOB 00.00.10\n").then_some(d)
    })
    .await;
    assert_eq!(fresh.read_line().await, "OK\n");
    fresh.new_tunnel("after-storm").await;
    assert_eq!(fresh.list().await.len(), 1);
    server.stop().await;
}

/// Per-tunnel connection cap (`--max-tunnel-connections`) used by the storm test.
const TUNNEL_CAP: usize = 32;

/// [`TUNNEL_CAP`] idle applications fill a tunnel's inport; the next one waits
/// (in the kernel's backlog, not refused) and is served as soon as a slot frees up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inport_storm_beyond_the_per_tunnel_cap_waits_then_is_served() {
    let mut config = test_config(Dialect::Java);
    config.tunnel_limits.max_connections = TUNNEL_CAP;
    let server = start_server_with(config, local_core()).await;
    let mut c = server.client().await;
    let sink = echo_sink().await;
    let (srv, inport) = pair(&mut c, sink).await;

    let mut idle = Vec::with_capacity(TUNNEL_CAP);
    for _ in 0..TUNNEL_CAP {
        idle.push(
            within("idle connect", TcpStream::connect(("127.0.0.1", inport)))
                .await
                .expect("connect"),
        );
    }
    // one more, with a real request: it cannot be served while every slot is taken
    let mut late = within("late connect", TcpStream::connect(("127.0.0.1", inport)))
        .await
        .expect("the kernel queues it");
    late.write_all(format!("{srv}\nping").as_bytes())
        .await
        .unwrap();
    late.shutdown().await.unwrap();
    let mut one = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(300), late.read(&mut one)).await;
    assert!(early.is_err(), "served beyond the cap: {early:?}");
    // a slot frees up: the waiting application is served in full
    drop(idle.pop());
    let mut back = Vec::new();
    within("late echo", late.read_to_end(&mut back))
        .await
        .unwrap();
    assert_eq!(back, b"ping");
    // and the control port answered throughout
    assert!(c.cmd("status cli").await.contains("RUNNING: true"));
    drop(idle);
    server.stop().await;
}
