//! Benchmark `udp`: UDP tunnels through the `local` backend against direct UDP on
//! loopback, measured in the same run.
//!
//! 1. Rate sweep: one application socket sends 1 KiB datagrams at increasing offered
//!    rates (paced by this program in 1 ms slices) either straight to a sink socket
//!    (baseline) or into a client UDP tunnel with `bob.udp.dest` whose server tunnel
//!    (`quiet true`) hands them to the same kind of sink. The tunnel is unpaced
//!    (`bob.udp.rate=0`) so its own capacity shows. Reported: datagrams/s delivered
//!    and the loss.
//! 2. Peer mappings: 10,000 application sockets (10,000 source ports) each send one
//!    datagram through the pair: 10,000 conversations on the client tunnel and 10,000
//!    peers (each with its own local socket) on the `quiet true` server tunnel. Reported:
//!    the server's RSS before and after, and per mapping.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use crate::common::*;
use crate::scale::{open_fds, open_files_limit};

/// Offered rates of the sweep, datagrams per second.
const RATES: [u64; 5] = [1_000, 5_000, 10_000, 20_000, 50_000];
/// Length of each step of the sweep.
const STEP: Duration = Duration::from_secs(2);
/// Payload size of the sweep.
const SIZE: usize = 1024;

/// A sink socket with a large receive buffer; counts what arrives until `quiet`
/// passes without a datagram. Returns (received, time from start to the last one).
async fn sink() -> Res<(UdpSocket, SocketAddr)> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    socket2::SockRef::from(&socket).set_recv_buffer_size(4 << 20)?;
    let addr = socket.local_addr()?;
    Ok((socket, addr))
}

async fn count(socket: &UdpSocket, expect: u64, started: Instant) -> (u64, Duration) {
    let mut buf = vec![0u8; 65_536];
    let mut got = 0u64;
    let mut last = started.elapsed();
    while got < expect {
        match tokio::time::timeout(Duration::from_millis(500), socket.recv(&mut buf)).await {
            Ok(Ok(_)) => {
                got += 1;
                last = started.elapsed();
            }
            _ => break,
        }
    }
    (got, last)
}

/// Sends `rate` datagrams per second for [`STEP`] to `to`; returns how many were sent.
async fn offer(to: SocketAddr, rate: u64) -> Res<u64> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    socket.connect(to).await?;
    let total = rate * STEP.as_secs();
    let payload = vec![0xA5u8; SIZE];
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        // how many should be out by now
        let due = (started.elapsed().as_secs_f64() * rate as f64).ceil() as u64;
        let due = due.min(total).max(sent + 1);
        while sent < due {
            socket.send(&payload).await?;
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(sent)
}

/// One step: returns (sent, received, delivered per second).
async fn step(sink: &UdpSocket, to: SocketAddr, rate: u64) -> Res<(u64, u64, f64)> {
    let started = Instant::now();
    let total = rate * STEP.as_secs();
    let (sent, (got, last)) = tokio::join!(offer(to, rate), count(sink, total, started));
    let sent = sent?;
    let per_s = got as f64 / last.as_secs_f64().max(1e-9);
    Ok((sent, got, per_s))
}

/// A UDP tunnel pair on `server`: a `quiet true` server tunnel to `sink` and a client
/// tunnel with `bob.udp.dest` and `client_options`; returns the client's inport.
async fn udp_pair(
    server: SocketAddr,
    sink: SocketAddr,
    tag: &str,
    client_options: &[&str],
) -> Res<SocketAddr> {
    let mut bob = Bob::connect(server).await?;
    bob.ok(&format!("setnick srv-{tag}")).await?;
    let dest = bob.ok("newkeys").await?;
    bob.ok("settunneltype udp").await?;
    bob.ok(&format!("outhost {}", sink.ip())).await?;
    bob.ok(&format!("outport {}", sink.port())).await?;
    bob.ok("quiet true").await?;
    bob.ok("start").await?;
    bob.ok(&format!("setnick cli-{tag}")).await?;
    bob.ok("newkeys").await?;
    bob.ok("settunneltype udp").await?;
    bob.ok(&format!("option bob.udp.dest={dest}")).await?;
    for option in client_options {
        bob.ok(&format!("option {option}")).await?;
    }
    bob.ok("inhost 127.0.0.1").await?;
    let mut last = None;
    for _ in 0..20 {
        let port = UdpSocket::bind("127.0.0.1:0").await?.local_addr()?.port();
        bob.ok(&format!("inport {port}")).await?;
        match bob.ok("start").await {
            Ok(_) => {
                // the session comes up right after `start` on local; wait for it
                for _ in 0..200 {
                    let status = bob.ok(&format!("status cli-{tag}")).await?;
                    if status.contains("RUNNING: true") {
                        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                return Err("the client tunnel did not come up".into());
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| "could not start the client UDP tunnel".into()))
}

pub(crate) async fn bench_udp(binary: &PathBuf) -> Res<()> {
    let server = ServerProc::start(binary, &[]).await?;
    println!(
        "\n## udp: 1 KiB datagrams, {STEP:?} per step, direct loopback vs a local UDP tunnel pair (unpaced)"
    );
    println!(
        "| offered/s | direct: delivered/s | direct loss | tunnel: delivered/s | tunnel loss | tunnel/direct |"
    );
    println!("|---|---|---|---|---|---|");
    let (tunnel_sink, tunnel_sink_addr) = sink().await?;
    let inport = udp_pair(server.addr, tunnel_sink_addr, "rate", &["bob.udp.rate=0"]).await?;
    let mut rows = Vec::new();
    for rate in RATES {
        let (direct_sink, direct_addr) = sink().await?;
        let (d_sent, d_got, d_rate) = step(&direct_sink, direct_addr, rate).await?;
        let (t_sent, t_got, t_rate) = step(&tunnel_sink, inport, rate).await?;
        let loss =
            |sent: u64, got: u64| 100.0 * sent.saturating_sub(got) as f64 / sent.max(1) as f64;
        println!(
            "| {rate} | {d_rate:.0} | {:.2} % | {t_rate:.0} | {:.2} % | {:.2} |",
            loss(d_sent, d_got),
            loss(t_sent, t_got),
            t_rate / d_rate.max(1e-9)
        );
        rows.push(format!(
            "{{\"offered\":{rate},\"direct_per_s\":{d_rate:.0},\"direct_loss_pct\":{:.3},\"tunnel_per_s\":{t_rate:.0},\"tunnel_loss_pct\":{:.3}}}",
            loss(d_sent, d_got),
            loss(t_sent, t_got)
        ));
        // let the queues drain before the next step
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut buf = vec![0u8; 65_536];
        while let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(50), tunnel_sink.recv(&mut buf)).await
        {
        }
    }
    json_line("udp-rate", &[("rows", format!("[{}]", rows.join(",")))]);

    // peer mappings
    let mappings: usize = std::env::var("BOB_BENCH_UDP_PEERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    if let Some(limit) = open_files_limit() {
        println!("# open files limit (soft) of the bench and the server: {limit}");
    }
    let (peer_sink, peer_sink_addr) = sink().await?;
    let peers_in = udp_pair(
        server.addr,
        peer_sink_addr,
        "peers",
        &["bob.udp.rate=0", "bob.udp.idle=3600"],
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = server.rss_kib();
    let fds_before = open_fds(server.pid());
    let started = Instant::now();
    let mut apps = Vec::with_capacity(mappings);
    let drain = tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        let mut got = 0usize;
        while got < mappings {
            match tokio::time::timeout(Duration::from_secs(5), peer_sink.recv(&mut buf)).await {
                Ok(Ok(_)) => got += 1,
                _ => break,
            }
        }
        got
    });
    for i in 0..mappings {
        let app = UdpSocket::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("application socket {i}: {e} (raise `ulimit -n`)"))?;
        app.send_to(b"x", peers_in).await?;
        apps.push(app);
        if i % 500 == 499 {
            // stay under the unpaced tunnel's burst capacity
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let delivered = drain.await?;
    let open_time = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = server.rss_kib();
    let fds_after = open_fds(server.pid());
    let mut bob = Bob::connect(server.addr).await?;
    let stats = bob.ok("stats srv-peers").await?;
    let peers = stats
        .split(' ')
        .find_map(|t| t.strip_prefix("udp_peers="))
        .unwrap_or("?")
        .to_owned();
    let per = after.saturating_sub(before) as f64 / mappings as f64;
    println!(
        "\n## udp: {mappings} peer mappings (client conversations + quiet server peers with one socket each)"
    );
    println!(
        "| RSS with tunnels | RSS with mappings | KiB per mapping | server peers | delivered | server fds | time |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {:.1} MB | {:.1} MB | {per:.1} | {peers} | {delivered} | {fds_before} -> {fds_after} | {:.1} s |",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        open_time.as_secs_f64()
    );
    json_line(
        "udp-peers",
        &[
            ("mappings", mappings.to_string()),
            ("tunnels_rss_kib", before.to_string()),
            ("loaded_rss_kib", after.to_string()),
            ("kib_per_mapping", format!("{per:.2}")),
            ("server_peers", format!("\"{peers}\"")),
            ("delivered", delivered.to_string()),
            ("server_fds", fds_after.to_string()),
        ],
    );
    drop(apps);
    Ok(())
}
