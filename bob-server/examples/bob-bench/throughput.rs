//! Benchmark 1: bulk throughput through a tunnel pair, against direct TCP and a minimal
//! splice relay.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

/// Reads and discards everything; reports each connection's byte count on EOF.
pub(crate) async fn discard_sink() -> Res<(SocketAddr, tokio::sync::mpsc::UnboundedReceiver<u64>)> {
    let listener = listen_loopback()?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut n = 0u64;
                while let Ok(k) = s.read(&mut buf).await {
                    if k == 0 {
                        break;
                    }
                    n += k as u64;
                }
                let _ = tx.send(n);
            });
        }
    });
    Ok((addr, rx))
}

/// The cheapest relay a proxy can be, as a second baseline for throughput: every
/// accepted connection gets a thread that connects to `sink` and moves the bytes with
/// blocking `splice(2)` through a 1 MiB pipe (Linux), or a plain 256 KiB read/write
/// loop elsewhere. No protocol, no limits, no accounting: what any relay between two
/// loopback TCP connections costs at least on this machine.
pub(crate) fn minimal_relay(sink: SocketAddr) -> Res<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for app in listener.incoming() {
            let Ok(app) = app else { break };
            std::thread::spawn(move || {
                if let Err(e) = relay_one(&app, sink) {
                    eprintln!("minimal relay: {e}");
                }
            });
        }
    });
    Ok(addr)
}

/// One connection of [`minimal_relay`]: app → sink until end of stream, then waits for
/// the sink to close, and closes the app's connection.
pub(crate) fn relay_one(app: &std::net::TcpStream, sink: SocketAddr) -> std::io::Result<()> {
    use std::io::Read;
    let out = std::net::TcpStream::connect(sink)?;
    out.set_nodelay(true)?;
    relay_bytes(app, &out)?;
    out.shutdown(std::net::Shutdown::Write)?;
    let mut rest = Vec::new();
    (&out).read_to_end(&mut rest)?;
    Ok(())
}

#[cfg(target_os = "linux")]
pub(crate) fn relay_bytes(
    from: &std::net::TcpStream,
    to: &std::net::TcpStream,
) -> std::io::Result<()> {
    use nix::fcntl::{FcntlArg, SpliceFFlags, fcntl, splice};
    let (pipe_r, pipe_w) = nix::unistd::pipe()?;
    let _ = fcntl(&pipe_w, FcntlArg::F_SETPIPE_SZ(1 << 20));
    let flags = SpliceFFlags::SPLICE_F_MOVE;
    loop {
        let n = splice(from, None, &pipe_w, None, 1 << 20, flags)?;
        if n == 0 {
            return Ok(());
        }
        let mut left = n;
        while left > 0 {
            let k = splice(&pipe_r, None, to, None, left, flags)?;
            if k == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            left -= k;
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn relay_bytes(
    from: &std::net::TcpStream,
    to: &std::net::TcpStream,
) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let (mut from, mut to) = (from, to);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n])?;
    }
}

/// Sends `per_conn` bytes on each of `conns` connections to `target` (after `line`, if
/// any) and waits until the sink has counted them all.
pub(crate) async fn push(
    target: SocketAddr,
    line: Option<&str>,
    conns: usize,
    per_conn: u64,
    sink: &mut tokio::sync::mpsc::UnboundedReceiver<u64>,
) -> Res<Duration> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let line = line.map(|l| format!("{l}\n"));
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(target).await?;
            s.set_nodelay(true)?;
            if let Some(l) = line {
                s.write_all(l.as_bytes()).await?;
            }
            let chunk = vec![0x5au8; 256 * 1024];
            let mut left = per_conn;
            while left > 0 {
                let k = left.min(chunk.len() as u64) as usize;
                s.write_all(&chunk[..k]).await?;
                left -= k as u64;
            }
            s.shutdown().await?;
            // Hold the socket until the peer closes, so no byte is cut off.
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).await?;
            Ok::<_, std::io::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let mut total = 0u64;
    for _ in 0..conns {
        let n = tokio::time::timeout(STEP_DEADLINE, sink.recv())
            .await?
            .ok_or("sink ended")?;
        total += n;
    }
    if total != per_conn * conns as u64 {
        return Err(format!(
            "sink counted {total} bytes, expected {}",
            per_conn * conns as u64
        )
        .into());
    }
    Ok(started.elapsed())
}

/// CPU time (user + system) of process `pid` so far, from /proc (clock ticks of 10 ms).
pub(crate) fn cpu_time(pid: u32) -> Duration {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the parenthesised command name; utime and stime are 14 and 15.
            let rest = s.rsplit_once(')')?.1.to_owned();
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// A `push` with the CPU time it cost this process and the server together.
pub(crate) async fn push_cpu(
    server_pid: u32,
    target: SocketAddr,
    line: Option<&str>,
    conns: usize,
    per_conn: u64,
    sink: &mut tokio::sync::mpsc::UnboundedReceiver<u64>,
) -> Res<(Duration, Duration)> {
    let me = std::process::id();
    let cpu0 = cpu_time(me) + cpu_time(server_pid);
    let wall = push(target, line, conns, per_conn, sink).await?;
    let cpu = (cpu_time(me) + cpu_time(server_pid)).saturating_sub(cpu0);
    Ok((wall, cpu))
}

pub(crate) async fn bench_throughput(server: &ServerProc) -> Res<()> {
    let (sink, mut counts) = discard_sink().await?;
    let (inport, dest) = tunnel_pair(server.addr, sink, true, "tp").await?;
    let relay = minimal_relay(sink)?;
    println!("\n## throughput: app -> inport -> local core -> outbound tunnel -> TCP sink");
    println!(
        "Baselines: direct = the same bytes straight to the sink; minimal relay = a bare \
         thread-per-connection relay with blocking splice(2) (the least any relay between \
         two loopback TCP connections costs). CPU = user+system time of bench and server \
         together per GiB moved. Best of 3, the three paths alternating."
    );
    println!(
        "| connections | bytes | direct MiB/s | minimal relay MiB/s | via bob-server MiB/s | ratio to direct | ratio to minimal relay | direct CPU s/GiB | relay CPU s/GiB | via CPU s/GiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let pid = server.pid();
    for (conns, total) in [(1usize, 512u64 << 20), (16, 512u64 << 20)] {
        let per = total / conns as u64;
        // warm-up, then measure three times each, alternating, and keep the best run
        push(inport, Some(&dest), conns, 1 << 20, &mut counts).await?;
        push(relay, None, conns, 1 << 20, &mut counts).await?;
        let mut best = [(Duration::MAX, Duration::MAX); 3];
        for _ in 0..3 {
            let paths = [(sink, None), (relay, None), (inport, Some(dest.as_str()))];
            for (slot, (target, line)) in best.iter_mut().zip(paths) {
                let (w, c) = push_cpu(pid, target, line, conns, per, &mut counts).await?;
                *slot = (slot.0.min(w), slot.1.min(c));
            }
        }
        let gib = total as f64 / f64::from(1u32 << 30);
        let [(d, dc), (r, rc), (v, vc)] =
            best.map(|(w, c)| (mib_s(total, w), c.as_secs_f64() / gib));
        println!(
            "| {conns} | {} MiB | {d:.0} | {r:.0} | {v:.0} | {:.2} | {:.2} | {dc:.2} | {rc:.2} | {vc:.2} |",
            total >> 20,
            v / d,
            v / r,
        );
        json_line(
            "throughput",
            &[
                ("connections", conns.to_string()),
                ("bytes", total.to_string()),
                ("direct_mib_s", format!("{d:.1}")),
                ("minimal_relay_mib_s", format!("{r:.1}")),
                ("bob_mib_s", format!("{v:.1}")),
                ("ratio", format!("{:.3}", v / d)),
                ("ratio_to_minimal_relay", format!("{:.3}", v / r)),
                ("direct_cpu_s_per_gib", format!("{dc:.3}")),
                ("minimal_relay_cpu_s_per_gib", format!("{rc:.3}")),
                ("bob_cpu_s_per_gib", format!("{vc:.3}")),
            ],
        );
    }
    Ok(())
}
