//! The relay's bounds: memory held for a receiver that does not read, and the
//! per-tunnel connection cap ([`TunnelLimits::max_connections`]).
//!
//! Real sockets on port 0 and an in-process `LocalCore`; every wait is bounded by a
//! deadline.

use std::sync::Arc;
use std::time::Duration;

use bob_server::backend::StreamingCore;
use bob_server::backend::local::{LocalCore, PIPE_BUFFER, STREAM_BUFFER};
use bob_server::tunnel::{RunningTunnel, TunnelLimits, TunnelSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{keys, local, pattern};

/// Upper bound for anything a test waits for.
const DEADLINE: Duration = Duration::from_secs(30);

fn spec(nickname: &str) -> TunnelSpec {
    TunnelSpec {
        nickname: nickname.to_owned(),
        keys: keys(),
        options: Vec::new(),
        server_options: Vec::new(),
        inbound: None,
        outbound: None,
        quiet: true,
    }
}

/// A server tunnel to `outport` and a client tunnel on a free port.
async fn pair(outport: u16, limits: TunnelLimits) -> (RunningTunnel, RunningTunnel) {
    let core: Arc<dyn StreamingCore> = Arc::new(LocalCore::new());
    let mut server = spec("server");
    server.outbound = Some(local(outport));
    let server = RunningTunnel::start(core.clone(), server, limits.clone())
        .await
        .expect("server tunnel");
    let mut client = spec("client");
    client.inbound = Some(local(0));
    let client = RunningTunnel::start(core, client, limits)
        .await
        .expect("client tunnel");
    (server, client)
}

/// A sink that accepts and does not read holds the sender back: the bytes inside the
/// server (taken from the application, not yet written to the sink) stay within the
/// stream's queue plus one chunk at each end. Once the sink reads, every byte arrives
/// in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_that_does_not_read_bounds_memory() {
    let sink = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
    let outport = sink.local_addr().expect("addr").port();
    let (server, client) = pair(outport, TunnelLimits::default()).await;

    // Far more than the kernel's socket buffers on both connections can hold.
    const TOTAL: usize = 64 << 20;
    let data = Arc::new(pattern(TOTAL));
    let mut app = TcpStream::connect(client.inbound_addr().expect("inbound"))
        .await
        .expect("connect");
    app.write_all(format!("{}\n", server.destination().to_base64()).as_bytes())
        .await
        .expect("line");
    let writer = {
        let data = Arc::clone(&data);
        tokio::spawn(async move {
            app.write_all(&data).await?;
            app.shutdown().await?;
            Ok::<_, std::io::Error>(app)
        })
    };
    let (mut accepted, _) = tokio::time::timeout(DEADLINE, sink.accept())
        .await
        .expect("outbound connection within the deadline")
        .expect("accept");

    // Wait until the server has taken all it is going to take: the count stops at a
    // bound while the sink is not reading.
    let bound = (STREAM_BUFFER + 2 * PIPE_BUFFER) as u64;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut last = u64::MAX;
    loop {
        let taken = client.stats().snapshot().bytes_out;
        let delivered = server.stats().snapshot().bytes_in;
        assert!(
            taken - delivered <= bound,
            "{taken} bytes taken, {delivered} delivered: more than {bound} held"
        );
        assert!(!writer.is_finished(), "the application wrote everything");
        if taken == last && taken > 0 {
            break;
        }
        last = taken;
        assert!(tokio::time::Instant::now() < deadline, "never settled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut got = Vec::with_capacity(TOTAL);
    tokio::time::timeout(DEADLINE, accepted.read_to_end(&mut got))
        .await
        .expect("read within the deadline")
        .expect("read");
    assert!(
        got == *data,
        "bytes differ ({} of {TOTAL} received)",
        got.len()
    );
    writer
        .await
        .expect("join")
        .expect("the application wrote everything once the sink read");
    client.stop().await;
    server.stop().await;
}

/// With `max_connections` = 2 the inbound side serves two connections; a third waits
/// (in the kernel backlog) until one ends, then is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cap_holds_back_the_next_connection() {
    let echo = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
    let outport = echo.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = socket.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    let limits = TunnelLimits {
        max_connections: 2,
        ..TunnelLimits::default()
    };
    let (server, client) = pair(outport, limits).await;
    let line = format!("{}\n", server.destination().to_base64());
    let addr = client.inbound_addr().expect("inbound");

    let mut open = Vec::new();
    for tag in [b'a', b'b', b'c'] {
        let mut app = TcpStream::connect(addr).await.expect("connect");
        app.write_all(line.as_bytes()).await.expect("line");
        app.write_all(&[tag]).await.expect("byte");
        open.push(app);
    }
    for app in &mut open[..2] {
        let mut one = [0u8; 1];
        tokio::time::timeout(DEADLINE, app.read_exact(&mut one))
            .await
            .expect("echo within the deadline")
            .expect("echo");
    }
    // The third is not served while two are open.
    let mut one = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(300), open[2].read_exact(&mut one));
    assert!(early.await.is_err(), "a third connection was served");
    assert_eq!(client.stats().snapshot().accepted, 2);

    drop(open.remove(0));
    tokio::time::timeout(DEADLINE, open[1].read_exact(&mut one))
        .await
        .expect("third served once a slot is free")
        .expect("echo");
    assert_eq!(one, [b'c']);
    client.stop().await;
    server.stop().await;
}
