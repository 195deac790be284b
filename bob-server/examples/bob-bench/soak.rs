//! Soak: a long transfer both ways with SHA-256 checks on every connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::*;

/// Connections of the soak benchmark (`BOB_BENCH_SOAK_CONNS`, default 32).
pub(crate) fn soak_conns() -> usize {
    std::env::var("BOB_BENCH_SOAK_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(32)
}

/// What the soak sink saw on one connection: the id the client sent first, the bytes
/// after it and their SHA-256.
pub(crate) type SinkReport = (u64, u64, Vec<u8>);

/// An echo application that hashes what it receives: each connection starts with an
/// 8-byte id; the sink echoes everything after it and reports `(id, bytes, sha256)`.
pub(crate) async fn hashing_echo_sink()
-> Res<(SocketAddr, tokio::sync::mpsc::UnboundedReceiver<SinkReport>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let mut id = [0u8; 8];
                if r.read_exact(&mut id).await.is_err() {
                    return;
                }
                let mut h = Sha256::new();
                let mut n = 0u64;
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match r.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => {
                            h.update(&buf[..k]);
                            n += k as u64;
                            if w.write_all(&buf[..k]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = w.shutdown().await;
                let _ = tx.send((u64::from_le_bytes(id), n, h.finalize().to_vec()));
            });
        }
    });
    Ok((addr, rx))
}

/// One soak connection: sends an id and `per` pseudo-random bytes, reads the echo;
/// returns (SHA-256 sent, SHA-256 received, bytes received).
pub(crate) async fn soak_connection(
    inport: SocketAddr,
    dest: String,
    id: u64,
    per: u64,
) -> Res<(Vec<u8>, Vec<u8>, u64)> {
    let s = TcpStream::connect(inport).await?;
    let (mut r, mut w) = s.into_split();
    let writer = tokio::spawn(async move {
        let mut h = Sha256::new();
        w.write_all(format!("{dest}\n").as_bytes()).await?;
        w.write_all(&id.to_le_bytes()).await?;
        let mut x = (id + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut left = per;
        let mut chunk = vec![0u8; 64 * 1024];
        while left > 0 {
            for b in chunk.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            let k = left.min(chunk.len() as u64) as usize;
            h.update(&chunk[..k]);
            w.write_all(&chunk[..k]).await?;
            left -= k as u64;
        }
        w.shutdown().await?;
        Ok::<_, std::io::Error>(h.finalize().to_vec())
    });
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    loop {
        let k = r.read(&mut buf).await?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        got += k as u64;
    }
    let sent = writer.await??;
    Ok((sent, h.finalize().to_vec(), got))
}

/// Soak: `total` bytes each way (app -> sink and the echo back) through one tunnel pair
/// over `conns` concurrent connections. SHA-256 is computed by the application (sent and
/// received) and by the sink (received); all three must be equal on every connection,
/// and no connection may be lost. The whole run is bounded by `STEP_DEADLINE`.
pub(crate) async fn bench_soak(server: &ServerProc, total: u64, conns: usize) -> Res<()> {
    let (echo, mut reports) = hashing_echo_sink().await?;
    let (inport, dest) = tunnel_pair(server.addr, echo, true, "soak").await?;
    let per = total / conns as u64;
    let rss_before = server.rss_kib();
    let peak_rss = Arc::new(AtomicU64::new(rss_before));
    let sampler = {
        let (pid, peak) = (server.pid(), peak_rss.clone());
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let started = Instant::now();
    let tasks: Vec<_> = (0..conns as u64)
        .map(|id| tokio::spawn(soak_connection(inport, dest.clone(), id, per)))
        .collect();
    let run = async {
        let mut client = Vec::with_capacity(conns);
        for t in tasks {
            client.push(t.await?);
        }
        let mut sink = std::collections::HashMap::new();
        while sink.len() < conns {
            let (id, n, sha) = reports.recv().await.ok_or("sink ended")?;
            sink.insert(id, (n, sha));
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((client, sink))
    };
    let outcome = tokio::time::timeout(STEP_DEADLINE, run).await;
    let wall = started.elapsed();
    sampler.abort();
    let (client, sink) =
        outcome.map_err(|_| format!("soak did not finish within {STEP_DEADLINE:?}"))??;
    let (mut equal, mut bytes_back, mut bytes_sink) = (0usize, 0u64, 0u64);
    let mut problems = Vec::new();
    for (id, result) in client.into_iter().enumerate() {
        let (n_sink, sha_sink) = sink.get(&(id as u64)).cloned().unwrap_or_default();
        bytes_sink += n_sink;
        match result {
            Ok((sent, back, got)) => {
                bytes_back += got;
                if sent == back && sent == sha_sink && got == per && n_sink == per {
                    equal += 1;
                } else {
                    problems.push(format!(
                        "connection {id}: sink got {n_sink} bytes, app got {got} back, hashes equal: sink {} echo {}",
                        sent == sha_sink,
                        sent == back
                    ));
                }
            }
            Err(e) => problems.push(format!("connection {id}: {e}")),
        }
    }
    let lost = conns - equal;
    let each_way = mib_s(bytes_back.min(bytes_sink), wall);
    let peak = peak_rss.load(Ordering::Relaxed);
    println!(
        "\n## soak: {} MiB each way (app -> sink, echo back) over {conns} concurrent connections",
        (per * conns as u64) >> 20
    );
    println!(
        "| connections | bytes each way | time | MiB/s each way | SHA-256 app = sink = echo | lost | server RSS before / peak | result |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {conns} | {} MiB | {:.1} s | {each_way:.0} | {equal}/{conns} | {lost} | {} / {} MiB | {} |",
        bytes_sink >> 20,
        wall.as_secs_f64(),
        rss_before >> 10,
        peak >> 10,
        if lost == 0 { "PASS" } else { "FAIL" }
    );
    json_line(
        "soak",
        &[
            ("connections", conns.to_string()),
            ("bytes_each_way", bytes_sink.to_string()),
            ("seconds", format!("{:.2}", wall.as_secs_f64())),
            ("mib_s_each_way", format!("{each_way:.1}")),
            ("sha256_equal", equal.to_string()),
            ("lost", lost.to_string()),
            ("rss_peak_kib", peak.to_string()),
            ("pass", (lost == 0).to_string()),
        ],
    );
    for p in problems.iter().take(10) {
        eprintln!("soak: {p}");
    }
    if lost != 0 {
        return Err(format!("soak lost or corrupted {lost} connection(s)").into());
    }
    Ok(())
}
