//! Benchmark 2: connection set-up latency through a tunnel, against direct TCP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

pub(crate) async fn one_echo(
    target: SocketAddr,
    line: Option<&str>,
    payload: &[u8],
) -> Res<Duration> {
    let started = Instant::now();
    let mut s = TcpStream::connect(target).await?;
    s.set_nodelay(true)?;
    let mut first = Vec::with_capacity(payload.len() + 600);
    if let Some(l) = line {
        first.extend_from_slice(l.as_bytes());
        first.push(b'\n');
    }
    first.extend_from_slice(payload);
    s.write_all(&first).await?;
    let mut back = vec![0u8; payload.len()];
    s.read_exact(&mut back).await?;
    if back != payload {
        return Err("echo mismatch".into());
    }
    drop(s);
    Ok(started.elapsed())
}

pub(crate) async fn setup_run(
    target: SocketAddr,
    line: Option<String>,
    count: usize,
    parallel: usize,
) -> Res<(Vec<Duration>, Duration)> {
    let payload: Arc<Vec<u8>> = Arc::new((0..1024u32).map(|i| (i % 251) as u8).collect());
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..parallel {
        let (payload, next, line) = (payload.clone(), next.clone(), line.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < count as u64 {
                lat.push(one_echo(target, line.as_deref(), &payload).await?);
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let wall = started.elapsed();
    all.sort();
    Ok((all, wall))
}

pub(crate) async fn bench_setup(server: &ServerProc) -> Res<()> {
    let echo = echo_sink().await?;
    let (inport, dest) = tunnel_pair(server.addr, echo, true, "setup").await?;
    println!("\n## connection setup: connect, destination line, 1 KiB echo, close");
    println!("| path | parallel | conns | p50 µs | p90 µs | p99 µs | conns/s | ratio (conns/s) |");
    println!("|---|---|---|---|---|---|---|---|");
    for parallel in [1usize, 8] {
        let count = 3000;
        setup_run(inport, Some(dest.clone()), 200, parallel).await?; // warm-up
        let (dl, dw) = setup_run(echo, None, count, parallel).await?;
        let (bl, bw) = setup_run(inport, Some(dest.clone()), count, parallel).await?;
        let drate = count as f64 / dw.as_secs_f64();
        let brate = count as f64 / bw.as_secs_f64();
        for (name, lat, rate) in [("direct", &dl, drate), ("bob-server", &bl, brate)] {
            println!(
                "| {name} | {parallel} | {count} | {} | {} | {} | {rate:.0} | {} |",
                percentile(lat, 0.5).as_micros(),
                percentile(lat, 0.9).as_micros(),
                percentile(lat, 0.99).as_micros(),
                if name == "direct" {
                    "1.00".to_string()
                } else {
                    format!("{:.2}", brate / drate)
                }
            );
        }
        json_line(
            "setup",
            &[
                ("parallel", parallel.to_string()),
                ("connections", count.to_string()),
                (
                    "direct_p50_us",
                    percentile(&dl, 0.5).as_micros().to_string(),
                ),
                ("bob_p50_us", percentile(&bl, 0.5).as_micros().to_string()),
                ("bob_p99_us", percentile(&bl, 0.99).as_micros().to_string()),
                ("direct_conns_s", format!("{drate:.0}")),
                ("bob_conns_s", format!("{brate:.0}")),
                ("ratio", format!("{:.3}", brate / drate)),
            ],
        );
    }
    Ok(())
}
