//! `bob-bench`: data-path, scale and control-plane benchmarks of a real `bob-server`
//! process on loopback, each against a baseline measured in the same run.
//!
//! ```text
//! cargo run --release -p bob-server --example bob-bench -- [--server PATH] [BENCH...]
//! BENCH = throughput | setup | scale | control | soak | router | all (default: all but soak, router)
//! ```
//! Every benchmark prints a table and one `JSON {...}` line. All traffic stays on
//! loopback; every loop is bounded in count and time. The server is started as a child
//! process (`--server`, default: the `bob-server` binary next to this example) so that
//! its memory can be read from `/proc`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Upper bound for any single benchmark step.
const STEP_DEADLINE: Duration = Duration::from_secs(300);

// ---------------------------------------------------------------- server process

struct ServerProc {
    child: Child,
    addr: SocketAddr,
}

impl ServerProc {
    async fn start(binary: &PathBuf, extra: &[&str]) -> Res<Self> {
        let mut child = Command::new(binary)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.strip_prefix("bob-server listening on ") {
                    return Ok::<_, std::io::Error>(Some(rest.trim().parse::<SocketAddr>().ok()));
                }
            }
            Ok(None)
        })
        .await
        .map_err(|_| "server did not report its address")??
        .flatten()
        .ok_or("server exited before listening")?;
        // Keep draining stderr so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { child, addr })
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Resident set size in KiB, from /proc.
    fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

// ---------------------------------------------------------------- BOB client

struct Bob {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Bob {
    async fn connect(addr: SocketAddr) -> Res<Self> {
        let (r, w) = TcpStream::connect(addr).await?.into_split();
        let mut bob = Self {
            reader: BufReader::new(r),
            writer: w,
        };
        let banner = bob.line().await?;
        let ok = bob.line().await?;
        if !banner.starts_with("BOB ") || ok != "OK" {
            return Err(format!("bad greeting {banner:?} {ok:?}").into());
        }
        Ok(bob)
    }

    async fn line(&mut self) -> Res<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).await? == 0 {
            return Err("server closed the control connection".into());
        }
        Ok(line.trim_end().to_string())
    }

    /// Sends one command; returns the reply text after `OK` or fails on `ERROR`.
    async fn ok(&mut self, cmd: &str) -> Res<String> {
        self.writer.write_all(format!("{cmd}\n").as_bytes()).await?;
        let reply = self.line().await?;
        match reply.strip_prefix("OK") {
            Some(rest) => Ok(rest.trim_start().to_string()),
            None => Err(format!("{}: {reply}", cmd.split(' ').next().unwrap_or("")).into()),
        }
    }
}

/// A loopback listener with a long accept queue, so that the baselines, like the
/// server, take bursts of connections without the kernel dropping handshakes.
fn listen_loopback() -> Res<TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    Ok(socket.listen(4096)?)
}

/// A free loopback port (bound, read, released). Benchmarks only: a race with another
/// program taking the port in between is possible and reported as a start error.
async fn free_port() -> Res<u16> {
    Ok(TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port())
}

/// Creates a server tunnel to `sink` and a client tunnel; returns (inport, server dest).
async fn tunnel_pair(
    server: SocketAddr,
    sink: SocketAddr,
    quiet: bool,
    tag: &str,
) -> Res<(SocketAddr, String)> {
    let mut bob = Bob::connect(server).await?;
    bob.ok(&format!("setnick srv-{tag}")).await?;
    let dest = bob.ok("newkeys").await?;
    bob.ok(&format!("outhost {}", sink.ip())).await?;
    bob.ok(&format!("outport {}", sink.port())).await?;
    bob.ok(&format!("quiet {quiet}")).await?;
    bob.ok("start").await?;
    bob.ok(&format!("setnick cli-{tag}")).await?;
    bob.ok("newkeys").await?;
    bob.ok("inhost 127.0.0.1").await?;
    let mut last = None;
    for _ in 0..20 {
        let port = free_port().await?;
        bob.ok(&format!("inport {port}")).await?;
        match bob.ok("start").await {
            Ok(_) => {
                bob.ok("quit").await.ok();
                return Ok((SocketAddr::from(([127, 0, 0, 1], port)), dest));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| "could not start the client tunnel".into()))
}

// ---------------------------------------------------------------- sinks

/// Reads and discards everything; reports each connection's byte count on EOF.
async fn discard_sink() -> Res<(SocketAddr, tokio::sync::mpsc::UnboundedReceiver<u64>)> {
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

/// Echoes everything back, with a small buffer so that idle connections stay cheap.
async fn echo_sink() -> Res<SocketAddr> {
    let listener = listen_loopback()?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    Ok(addr)
}

/// The cheapest relay a proxy can be, as a second baseline for throughput: every
/// accepted connection gets a thread that connects to `sink` and moves the bytes with
/// blocking `splice(2)` through a 1 MiB pipe (Linux), or a plain 256 KiB read/write
/// loop elsewhere. No protocol, no limits, no accounting: what any relay between two
/// loopback TCP connections costs at least on this machine.
fn minimal_relay(sink: SocketAddr) -> Res<SocketAddr> {
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
fn relay_one(app: &std::net::TcpStream, sink: SocketAddr) -> std::io::Result<()> {
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
fn relay_bytes(from: &std::net::TcpStream, to: &std::net::TcpStream) -> std::io::Result<()> {
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
fn relay_bytes(from: &std::net::TcpStream, to: &std::net::TcpStream) -> std::io::Result<()> {
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

// ---------------------------------------------------------------- reporting

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / d.as_secs_f64()
}

fn json_line(name: &str, fields: &[(&str, String)]) {
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    println!("JSON {{\"bench\":\"{name}\",{}}}", body.join(","));
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

// ---------------------------------------------------------------- 1. throughput

/// Sends `per_conn` bytes on each of `conns` connections to `target` (after `line`, if
/// any) and waits until the sink has counted them all.
async fn push(
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
fn cpu_time(pid: u32) -> Duration {
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
async fn push_cpu(
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

async fn bench_throughput(server: &ServerProc) -> Res<()> {
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

// ---------------------------------------------------------------- 2. connection setup

async fn one_echo(target: SocketAddr, line: Option<&str>, payload: &[u8]) -> Res<Duration> {
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

async fn setup_run(
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

async fn bench_setup(server: &ServerProc) -> Res<()> {
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

// ---------------------------------------------------------------- 3. scale

/// The soft limit on open files of this process, from /proc.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Open file descriptors of process `pid`.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// An echo sink in a child process (this program with `--echo-sink-child`), so that
/// its sockets do not count against this process's file limit.
struct SinkProc {
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
async fn echo_sink_child() -> Res<()> {
    let addr = echo_sink().await?;
    println!("{addr}");
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    while stdin.read(&mut buf).await? > 0 {}
    Ok(())
}

async fn bench_scale(binary: &PathBuf, target_conns: usize) -> Res<()> {
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

// ---------------------------------------------------------------- 4. control plane

/// Pipelines `count` command lines on one connection and waits for as many replies.
async fn pipelined(addr: SocketAddr, count: usize, greeting: bool, cmds: &[&str]) -> Res<Duration> {
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
async fn line_echo_server() -> Res<SocketAddr> {
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
const CYCLE_DEADLINE: Duration = Duration::from_secs(120);

async fn cycle(addr: SocketAddr, i: usize) -> Res<()> {
    tokio::time::timeout(CYCLE_DEADLINE, cycle_inner(addr, i))
        .await
        .map_err(|_| format!("cycle {i} did not finish within {CYCLE_DEADLINE:?}"))?
}

async fn cycle_inner(addr: SocketAddr, i: usize) -> Res<()> {
    let mut bob = Bob::connect(addr).await?;
    let port = 20000 + (i % 40000) as u16;
    bob.ok(&format!("setnick cycle-{i}")).await?;
    bob.ok("newkeys").await?;
    bob.ok("outhost 127.0.0.1").await?;
    bob.ok(&format!("outport {port}")).await?;
    bob.ok("option inbound.length=1").await?;
    bob.ok("start").await?;
    bob.ok("stop").await?;
    // stop completes asynchronously in Java's model; wait until clear is accepted
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match bob.ok("clear").await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline && e.to_string().contains("active") => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => return Err(e),
        }
    }
    bob.ok("quit").await?;
    Ok(())
}

async fn bench_control(binary: &PathBuf) -> Res<()> {
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

// ---------------------------------------------------------------- soak

/// Connections of the soak benchmark (`BOB_BENCH_SOAK_CONNS`, default 32).
fn soak_conns() -> usize {
    std::env::var("BOB_BENCH_SOAK_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(32)
}

/// What the soak sink saw on one connection: the id the client sent first, the bytes
/// after it and their SHA-256.
type SinkReport = (u64, u64, Vec<u8>);

/// An echo application that hashes what it receives: each connection starts with an
/// 8-byte id; the sink echoes everything after it and reports `(id, bytes, sha256)`.
async fn hashing_echo_sink() -> Res<(SocketAddr, tokio::sync::mpsc::UnboundedReceiver<SinkReport>)>
{
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
async fn soak_connection(
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
async fn bench_soak(server: &ServerProc, total: u64, conns: usize) -> Res<()> {
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

// ---------------------------------------------------------------- router (benchmark 5)

/// Where the real router is: i2pd's own BOB port, its SAM bridge and the session options
/// an offline i2pd needs. Set by `scripts/bench-router.sh` (or `scripts/test.sh`'s names).
struct RouterEnv {
    i2pd_bob: SocketAddr,
    sam: String,
    options: Vec<String>,
}

fn env_either(a: &str, b: &str) -> Option<String> {
    std::env::var(a)
        .or_else(|_| std::env::var(b))
        .ok()
        .filter(|v| !v.trim().is_empty())
}

fn router_env() -> Result<RouterEnv, String> {
    let bob = env_either("BOB_BENCH_I2PD_BOB", "BOB_TEST_I2PD_BOB")
        .ok_or("BOB_BENCH_I2PD_BOB (i2pd's BOB address) is not set")?;
    let sam = env_either("BOB_BENCH_SAM", "BOB_TEST_SAM")
        .ok_or("BOB_BENCH_SAM (i2pd's SAM address) is not set")?;
    let options = env_either("BOB_BENCH_SAM_OPTS", "BOB_TEST_SAM_OPTS")
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    Ok(RouterEnv {
        i2pd_bob: bob
            .parse()
            .map_err(|e| format!("BOB_BENCH_I2PD_BOB {bob:?}: {e}"))?,
        sam,
        options,
    })
}

/// A sink that counts every byte it receives, over all connections.
async fn counting_sink() -> Res<(SocketAddr, Arc<AtomicU64>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let total = Arc::new(AtomicU64::new(0));
    let counter = total.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(k) = s.read(&mut buf).await {
                    if k == 0 {
                        break;
                    }
                    counter.fetch_add(k as u64, Ordering::Relaxed);
                }
            });
        }
    });
    Ok((addr, total))
}

/// Sets up a quiet server tunnel to `sink` and a client tunnel on `control` (i2pd's BOB
/// or ours), each on its own control connection and in parallel (a SAM session takes
/// ~20 s on i2pd 2.45); returns (inport, server destination, the open connections).
async fn router_pair(
    control: SocketAddr,
    sink: SocketAddr,
    tag: &str,
    options: &[String],
) -> Res<(SocketAddr, String, Vec<Bob>)> {
    let server_side = async {
        let mut bob = Bob::connect(control).await?;
        bob.ok(&format!("setnick rsrv-{tag}")).await?;
        let dest = bob.ok("newkeys").await?;
        for kv in options {
            bob.ok(&format!("option {kv}")).await?;
        }
        bob.ok("outhost 127.0.0.1").await?;
        bob.ok(&format!("outport {}", sink.port())).await?;
        // i2pd: `quiet <anything>` means quiet; the sink then counts data only
        bob.ok("quiet true").await?;
        bob.ok("start").await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((dest, bob))
    };
    let client_side = async {
        let mut bob = Bob::connect(control).await?;
        bob.ok(&format!("setnick rcli-{tag}")).await?;
        bob.ok("newkeys").await?;
        for kv in options {
            bob.ok(&format!("option {kv}")).await?;
        }
        bob.ok("inhost 127.0.0.1").await?;
        let mut last = None;
        for _ in 0..10 {
            let port = free_port().await?;
            bob.ok(&format!("inport {port}")).await?;
            match bob.ok("start").await {
                Ok(_) => return Ok((SocketAddr::from(([127, 0, 0, 1], port)), bob)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| "could not start the client tunnel".into()))
    };
    let ((dest, a), (inport, b)) = tokio::try_join!(server_side, client_side)?;
    Ok((inport, dest, vec![a, b]))
}

/// Waits until data sent through `inport` reaches the sink: tunnels on a real router
/// take a while to be built and published, and i2pd's BOB accepts and then silently
/// closes connections made before that.
async fn wait_ready(inport: SocketAddr, dest: &str, sink: &AtomicU64) -> Res<Duration> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(150);
    let probe = [0x42u8; 64];
    while Instant::now() < deadline {
        let before = sink.load(Ordering::Relaxed);
        if let Ok(mut s) = TcpStream::connect(inport).await {
            let mut first = format!("{dest}\n").into_bytes();
            first.extend_from_slice(&probe);
            if s.write_all(&first).await.is_ok() {
                // until the bytes arrive, the connection closes, or 40 s pass (our SAM
                // backend retries an unreachable peer for 30 s on its own)
                let mut one = [0u8; 1];
                let attempt = Instant::now();
                loop {
                    if sink.load(Ordering::Relaxed) >= before + probe.len() as u64 {
                        return Ok(started.elapsed());
                    }
                    if attempt.elapsed() > Duration::from_secs(40) {
                        break;
                    }
                    let read = tokio::time::timeout(Duration::from_millis(20), s.read(&mut one));
                    if let Ok(Ok(0) | Err(_)) = read.await {
                        break;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err("tunnel pair did not carry data within 150 s".into())
}

/// Sends `per_conn` bytes on each of `conns` connections through `inport` and measures
/// until the sink has received them all. The senders keep their connections open until
/// then: neither Java BOB nor i2pd passes a half-close on, they drop the stream.
async fn router_push(
    inport: SocketAddr,
    dest: &str,
    conns: usize,
    per_conn: u64,
    sink: &AtomicU64,
) -> Res<Duration> {
    let base = sink.load(Ordering::Relaxed);
    let want = base + per_conn * conns as u64;
    let started = Instant::now();
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            let line = format!("{dest}\n");
            tokio::spawn(async move {
                let mut s = TcpStream::connect(inport).await?;
                s.set_nodelay(true)?;
                s.write_all(line.as_bytes()).await?;
                let chunk = vec![0x5au8; 64 * 1024];
                let mut left = per_conn;
                while left > 0 {
                    let k = left.min(chunk.len() as u64) as usize;
                    s.write_all(&chunk[..k]).await?;
                    left -= k as u64;
                }
                Ok::<_, std::io::Error>(s)
            })
        })
        .collect();
    let wait = async {
        let mut open = Vec::new();
        for t in tasks {
            open.push(t.await??);
        }
        while sink.load(Ordering::Relaxed) < want {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(open)
    };
    match tokio::time::timeout(Duration::from_secs(120), wait).await {
        Ok(Ok(open)) => {
            let took = started.elapsed();
            drop(open);
            Ok(took)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!(
            "sink got {} of {} bytes within 120 s",
            sink.load(Ordering::Relaxed) - base,
            want - base
        )
        .into()),
    }
}

/// Benchmark 5: the same transfers through (A) i2pd's own BOB server and (B) bob-server
/// with `--router sam://` on the same i2pd; reports MiB/s and B/A. Skipped (not failed)
/// without a router.
async fn bench_router(binary: &PathBuf) -> Res<()> {
    let env = match router_env() {
        Ok(env) => env,
        Err(why) => {
            println!("\n## router: SKIPPED: {why} (run scripts/bench-router.sh)");
            return Ok(());
        }
    };
    let mib: u64 = std::env::var("BOB_BENCH_ROUTER_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(16);
    let payload = mib << 20;
    let mut args = vec!["--router".to_string(), format!("sam://{}", env.sam)];
    for kv in &env.options {
        args.push("--tunnel-option".into());
        args.push(kv.clone());
    }
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let ours = ServerProc::start(binary, &arg_refs).await?;

    let (sink_a, total_a) = counting_sink().await?;
    let (sink_b, total_b) = counting_sink().await?;
    let setup = Instant::now();
    // both pairs are built at once: the router builds tunnels in parallel
    let (a, b) = tokio::join!(
        router_pair(env.i2pd_bob, sink_a, "i2pd", &env.options),
        router_pair(ours.addr, sink_b, "ours", &[]),
    );
    let (in_a, dest_a, _keep_a) = a.map_err(|e| format!("i2pd BOB setup: {e}"))?;
    let (in_b, dest_b, _keep_b) = b.map_err(|e| format!("bob-server setup: {e}"))?;
    let (ready_a, ready_b) = tokio::join!(
        wait_ready(in_a, &dest_a, &total_a),
        wait_ready(in_b, &dest_b, &total_b),
    );
    let ready_a = ready_a.map_err(|e| format!("i2pd BOB: {e}"))?;
    let ready_b = ready_b.map_err(|e| format!("bob-server: {e}"))?;
    println!(
        "\n## router: i2pd's BOB (A) vs bob-server over SAM (B), same offline i2pd, {} MiB payload",
        mib
    );
    println!(
        "setup: both pairs built in {:.1} s (A ready after {:.1} s, B after {:.1} s of probing)",
        setup.elapsed().as_secs_f64(),
        ready_a.as_secs_f64(),
        ready_b.as_secs_f64()
    );
    println!("| connections | bytes | A: i2pd BOB MiB/s | B: bob-server MiB/s | B/A |");
    println!("|---|---|---|---|---|");
    let mut worst = f64::INFINITY;
    for conns in [1usize, 4] {
        let per = payload / conns as u64;
        // warm-up (the first streams pay for lookups), then the best of three runs,
        // alternating A and B so that neither gets a quieter machine
        router_push(in_a, &dest_a, conns, 256 << 10, &total_a).await?;
        router_push(in_b, &dest_b, conns, 256 << 10, &total_b).await?;
        let (mut ta, mut tb) = (Duration::MAX, Duration::MAX);
        for _ in 0..3 {
            ta = ta.min(
                router_push(in_a, &dest_a, conns, per, &total_a)
                    .await
                    .map_err(|e| format!("i2pd BOB: {e}"))?,
            );
            tb = tb.min(
                router_push(in_b, &dest_b, conns, per, &total_b)
                    .await
                    .map_err(|e| format!("bob-server: {e}"))?,
            );
        }
        let bytes = per * conns as u64;
        let (ma, mb) = (mib_s(bytes, ta), mib_s(bytes, tb));
        worst = worst.min(mb / ma);
        println!(
            "| {conns} | {} MiB | {ma:.1} | {mb:.1} | {:.2} |",
            bytes >> 20,
            mb / ma
        );
        json_line(
            "router",
            &[
                ("connections", conns.to_string()),
                ("bytes", bytes.to_string()),
                ("i2pd_bob_mib_s", format!("{ma:.2}")),
                ("bob_server_mib_s", format!("{mb:.2}")),
                ("ratio", format!("{:.3}", mb / ma)),
            ],
        );
    }
    println!(
        "goal B/A >= 0.9: {}",
        if worst >= 0.9 { "met" } else { "MISSED" }
    );
    Ok(())
}

// ---------------------------------------------------------------- main

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--echo-sink-child") {
        return match echo_sink_child().await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("echo sink: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let mut binary = std::env::current_exe()
        .ok()
        .and_then(|p| {
            p.parent()
                .and_then(|d| d.parent())
                .map(|d| d.join("bob-server"))
        })
        .unwrap_or_else(|| PathBuf::from("bob-server"));
    if let Some(i) = args.iter().position(|a| a == "--server") {
        if i + 1 >= args.len() {
            eprintln!("--server needs a path");
            return std::process::ExitCode::from(2);
        }
        binary = PathBuf::from(args.remove(i + 1));
        args.remove(i);
    }
    let scale_conns = std::env::var("BOB_BENCH_SCALE_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let soak_bytes = std::env::var("BOB_BENCH_SOAK_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1024)
        << 20;
    if args.is_empty() || args.iter().any(|a| a == "all") {
        args = ["throughput", "setup", "scale", "control"]
            .map(String::from)
            .to_vec();
    }
    println!(
        "# bob-bench on {} cores; server {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        binary.display()
    );
    let mut failed = false;
    for bench in &args {
        let result = match bench.as_str() {
            "throughput" | "setup" | "soak" => match ServerProc::start(&binary, &[]).await {
                Ok(server) => match bench.as_str() {
                    "throughput" => bench_throughput(&server).await,
                    "setup" => bench_setup(&server).await,
                    _ => bench_soak(&server, soak_bytes, soak_conns()).await,
                },
                Err(e) => Err(e),
            },
            "scale" => bench_scale(&binary, scale_conns).await,
            "control" => bench_control(&binary).await,
            "router" => bench_router(&binary).await,
            other => Err(format!("unknown benchmark {other:?}").into()),
        };
        if let Err(e) = result {
            eprintln!("{bench}: FAILED: {e}");
            failed = true;
        }
    }
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
