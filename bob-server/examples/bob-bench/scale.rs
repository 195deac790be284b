//! Benchmark 3: many idle piped connections (memory and descriptors per connection).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::common::*;

/// The soft limit on open files of this process, from /proc.
pub(crate) fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Open file descriptors of process `pid`.
pub(crate) fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// An echo sink in a child process (this program with `--echo-sink-child`), so that
/// its sockets do not count against this process's file limit.
pub(crate) struct SinkProc {
    _child: Child,
    addr: SocketAddr,
}

impl SinkProc {
    async fn start() -> Res<Self> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .arg("--echo-sink-child")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .map_err(|_| "echo sink did not start")??
            .ok_or("echo sink exited")?;
        Ok(Self {
            _child: child,
            addr: line.trim().parse()?,
        })
    }
}

/// `--echo-sink-child`: serves an echo sink, prints its address, ends with stdin.
pub(crate) async fn echo_sink_child() -> Res<()> {
    let addr = echo_sink().await?;
    println!("{addr}");
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    while stdin.read(&mut buf).await? > 0 {}
    Ok(())
}

pub(crate) async fn bench_scale(binary: &PathBuf, target_conns: usize) -> Res<()> {
    // The server holds two sockets per piped connection (application, sink), this
    // process one (application), the sink process one.
    if let Some(limit) = open_files_limit() {
        println!("# open files limit (soft) of the bench and the server: {limit}");
    }
    let cap = (target_conns + 16).to_string();
    let server = ServerProc::start(binary, &["--max-tunnel-connections", &cap]).await?;
    // Let the allocator settle, then read the idle footprint.
    let mut bob = Bob::connect(server.addr).await?;
    bob.ok("list").await.ok();
    drop(bob);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = server.rss_kib();

    let sink = SinkProc::start().await?;
    let echo = sink.addr;
    let (inport, dest) = tunnel_pair(server.addr, echo, true, "scale").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = server.rss_kib();
    let fds_before = open_fds(server.pid());
    // Each piped connection costs the server two descriptors (application socket,
    // sink socket); a hard limit below that is reported and the run scaled down.
    let mut target_conns = target_conns;
    if let Some(limit) = open_files_limit() {
        let room = usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .saturating_sub(fds_before)
            / 2;
        if room < target_conns {
            println!(
                "# {target_conns} connections need {} server descriptors ({fds_before} in use + 2 per connection) \
                 but the limit is {limit}: running {room}",
                fds_before + 2 * target_conns
            );
            target_conns = room;
        }
    }
    let started = Instant::now();
    let mut held = Vec::with_capacity(target_conns);
    let line = format!("{dest}\n");
    for i in 0..target_conns {
        let mut s = match TcpStream::connect(inport).await {
            Ok(s) => s,
            Err(e) => return Err(format!("connection {i}: {e} (raise `ulimit -n`)").into()),
        };
        s.write_all(line.as_bytes()).await?;
        s.write_all(b"x").await?;
        let mut one = [0u8; 1];
        tokio::time::timeout(Duration::from_secs(30), s.read_exact(&mut one))
            .await
            .map_err(|_| {
                format!(
                    "connection {i} got no echo within 30 s (server fds {})",
                    open_fds(server.pid())
                )
            })??;
        held.push(s);
    }
    let open_time = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = server.rss_kib();
    let fds_after = open_fds(server.pid());
    // All still alive?
    let mut alive = 0usize;
    for s in held.iter_mut().step_by(97) {
        s.write_all(b"y").await?;
        let mut one = [0u8; 1];
        if tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut one))
            .await
            .is_ok()
        {
            alive += 1;
        }
    }
    let sampled = held.iter().step_by(97).count();
    let per_conn = (after.saturating_sub(before)) as f64 / target_conns as f64;
    println!("\n## scale: {target_conns} concurrent piped connections through one tunnel pair");
    println!(
        "| idle server RSS | RSS with tunnels | RSS with connections | KiB per connection | server fds | open time | sampled alive |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {:.1} MB | {:.1} MB | {:.1} MB | {per_conn:.1} | {fds_before} -> {fds_after} | {:.1} s | {alive}/{sampled} |",
        idle as f64 / 1024.0,
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        open_time.as_secs_f64()
    );
    json_line(
        "scale",
        &[
            ("connections", target_conns.to_string()),
            ("idle_rss_kib", idle.to_string()),
            ("tunnels_rss_kib", before.to_string()),
            ("loaded_rss_kib", after.to_string()),
            ("kib_per_connection", format!("{per_conn:.2}")),
            ("server_fds", fds_after.to_string()),
            ("open_s", format!("{:.2}", open_time.as_secs_f64())),
            ("alive_sampled", alive.to_string()),
            ("sampled", sampled.to_string()),
        ],
    );
    if alive != sampled {
        return Err(format!("only {alive}/{sampled} sampled connections still echo").into());
    }
    Ok(())
}
