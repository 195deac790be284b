//! Benchmark 4: the control plane (pipelined commands, concurrent tunnel life cycles).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::common::*;

/// Pipelines `count` command lines on one connection and waits for as many replies.
pub(crate) async fn pipelined(
    addr: SocketAddr,
    count: usize,
    greeting: bool,
    cmds: &[&str],
) -> Res<Duration> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (r, mut w) = stream.into_split();
    let mut reader = BufReader::with_capacity(256 * 1024, r);
    let mut line = String::new();
    if greeting {
        reader.read_line(&mut line).await?;
        reader.read_line(&mut line).await?;
    }
    let mut batch = String::new();
    for (i, c) in cmds.iter().cycle().take(count).enumerate() {
        let _ = i;
        batch.push_str(c);
        batch.push('\n');
    }
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        w.write_all(batch.as_bytes()).await?;
        Ok::<_, std::io::Error>(w)
    });
    let mut replies = 0usize;
    while replies < count {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Err(format!("connection closed after {replies} replies").into());
        }
        if line.starts_with("ERROR") && greeting {
            return Err(format!("unexpected {line:?}").into());
        }
        replies += 1;
    }
    let elapsed = started.elapsed();
    drop(writer.await??);
    Ok(elapsed)
}

/// Baseline: a line-echo server (one reply line per request line, same framing).
pub(crate) async fn line_echo_server() -> Res<SocketAddr> {
    let listener = listen_loopback()?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (r, w) = s.into_split();
                let mut r = BufReader::new(r);
                let mut w = tokio::io::BufWriter::new(w);
                let mut line = String::new();
                loop {
                    line.clear();
                    match r.read_line(&mut line).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    if w.write_all(b"OK ").await.is_err()
                        || w.write_all(line.as_bytes()).await.is_err()
                    {
                        break;
                    }
                    if r.buffer().is_empty() && w.flush().await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// Longest a single control cycle may take before it counts as failed (a hang must
/// show up as a failure, not as a benchmark that never ends).
pub(crate) const CYCLE_DEADLINE: Duration = Duration::from_secs(120);

pub(crate) async fn cycle(addr: SocketAddr, i: usize) -> Res<()> {
    tokio::time::timeout(CYCLE_DEADLINE, cycle_inner(addr, i))
        .await
        .map_err(|_| format!("cycle {i} did not finish within {CYCLE_DEADLINE:?}"))?
}

pub(crate) async fn cycle_inner(addr: SocketAddr, i: usize) -> Res<()> {
    let mut bob = bob_client::Client::connect(addr).await?;
    let port = 20000 + (i % 40000) as u16;
    bob.setnick(&format!("cycle-{i}").parse()?).await?;
    bob.newkeys(None, None).await?;
    bob.outhost(&"127.0.0.1".parse()?).await?;
    bob.outport(bob_codec::types::Port::new(port)?).await?;
    bob.option(&"inbound.length=1".parse()?).await?;
    bob.start().await?;
    bob.stop().await?;
    // stop completes asynchronously in Java's model; wait until clear is accepted
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match bob.clear().await {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline && e.to_string().contains("active") => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    bob.quit().await?;
    Ok(())
}

pub(crate) async fn bench_control(binary: &PathBuf) -> Res<()> {
    let server = ServerProc::start(
        binary,
        &["--max-connections", "2000", "--newkeys-type", "7"],
    )
    .await?;
    let mut setup = Bob::connect(server.addr).await?;
    setup.ok("setnick bench").await?;
    setup.ok("newkeys").await?;
    setup.ok("quit").await?;
    let cmds = [
        "getnick bench",
        "inhost localhost",
        "status bench",
        "option a=b",
        "show",
    ];
    let count = 200_000;
    let echo = line_echo_server().await?;
    pipelined(server.addr, 10_000, true, &cmds).await?; // warm-up
    let base = pipelined(echo, count, false, &cmds).await?;
    let bob = pipelined(server.addr, count, true, &cmds).await?;
    let (b_rate, s_rate) = (
        count as f64 / base.as_secs_f64(),
        count as f64 / bob.as_secs_f64(),
    );
    println!("\n## control plane");
    println!("| what | count | baseline (line echo) /s | bob-server /s | ratio |");
    println!("|---|---|---|---|---|");
    println!(
        "| pipelined commands, one connection | {count} | {b_rate:.0} | {s_rate:.0} | {:.2} |",
        s_rate / b_rate
    );
    json_line(
        "control_pipelined",
        &[
            ("commands", count.to_string()),
            ("baseline_per_s", format!("{b_rate:.0}")),
            ("bob_per_s", format!("{s_rate:.0}")),
            ("ratio", format!("{:.3}", s_rate / b_rate)),
        ],
    );

    let conns = 1000;
    // Baseline: the same number of connections doing 9 round trips each on the line echo.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        tasks.push(tokio::spawn(async move {
            pipelined(echo, 9, false, &["x"]).await
        }));
    }
    for t in tasks {
        t.await??;
    }
    let base_wall = started.elapsed();
    let mut failed_total = 0;
    // `newkeys` as clients send it: once with the server's default signature type set
    // to Ed25519 (7), once with the stock default DSA_SHA1.
    let dsa = ServerProc::start(binary, &["--max-connections", "2000"]).await?;
    for (keys, addr) in [("Ed25519", server.addr), ("DSA_SHA1", dsa.addr)] {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..conns {
            tasks.push(tokio::spawn(cycle(addr, i)));
        }
        let mut failed = 0;
        for t in tasks {
            if let Err(e) = t.await? {
                failed += 1;
                if failed < 5 {
                    eprintln!("cycle failed: {e}");
                }
            }
        }
        let wall = started.elapsed();
        failed_total += failed;
        println!(
            "| concurrent full cycles (setnick..newkeys({keys})..start..stop..clear) | {conns} | {:.0} | {:.0} | {:.2} |",
            conns as f64 / base_wall.as_secs_f64(),
            conns as f64 / wall.as_secs_f64(),
            base_wall.as_secs_f64() / wall.as_secs_f64()
        );
        json_line(
            "control_cycles",
            &[
                ("connections", conns.to_string()),
                ("newkeys", format!("\"{keys}\"")),
                ("failed", failed.to_string()),
                ("wall_s", format!("{:.3}", wall.as_secs_f64())),
                (
                    "cycles_per_s",
                    format!("{:.0}", conns as f64 / wall.as_secs_f64()),
                ),
                (
                    "baseline_per_s",
                    format!("{:.0}", conns as f64 / base_wall.as_secs_f64()),
                ),
            ],
        );
    }
    if failed_total > 0 {
        return Err(format!("{failed_total} control cycles failed").into());
    }
    Ok(())
}
