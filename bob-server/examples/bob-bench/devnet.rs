//! Benchmark `devnet`: the embedded router (`bob-server --router devnet`, feature
//! `embedded-router`) against the offline i2pd in the same run, reached (A) through
//! i2pd's own BOB and (B) through bob-server over i2pd's SAM: time to first byte and
//! one-connection throughput through a tunnel pair on each, and the server's memory
//! with the devnet idle and with 100 tunnels.
//!
//! The devnet is real I2P (five emissary routers in the server process, real tunnels,
//! crypto and LeaseSets) with 1-hop tunnels, the shortest emissary builds; the offline
//! i2pd is a single router with 0-hop tunnels. So the ratios say what a developer testing
//! on the devnet gets against testing on a local i2pd, not what the real network gives.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use bob_client::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;
use crate::router::*;

/// The devnet's tunnel options: 1 hop each way (emissary builds no 0-hop tunnels).
const DEVNET_OPTIONS: [&str; 4] = [
    "inbound.length=1",
    "outbound.length=1",
    "inbound.quantity=1",
    "outbound.quantity=1",
];

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    percentile(&v, 0.5)
}

/// One `GET /metrics` from the server's metrics endpoint; the value of gauge `name`.
async fn gauge(metrics: SocketAddr, name: &str) -> Res<u64> {
    let mut s = TcpStream::connect(metrics).await?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .await?;
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut body)).await??;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .ok_or_else(|| format!("no gauge {name} in /metrics").into())
}

/// Waits (bounded) until the devnet's tunnel router has built tunnels: its exploratory
/// pool is up and the router is what this benchmark calls idle.
async fn devnet_ready(server: &ServerProc) -> Res<Duration> {
    let metrics = server
        .metrics
        .ok_or("the devnet server reported no metrics address")?;
    let started = Instant::now();
    while started.elapsed() < STEP_DEADLINE {
        if gauge(metrics, "bob_router_tunnels_built").await? > 0 {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err("the devnet built no tunnels within the step deadline".into())
}

/// One tunnel pair under test.
struct Pair {
    name: &'static str,
    inport: SocketAddr,
    dest: String,
    sink: std::sync::Arc<AtomicU64>,
    _keep: Vec<Bob>,
}

async fn pair(name: &'static str, control: SocketAddr, options: &[String]) -> Res<Pair> {
    let (sink_addr, sink) = counting_sink().await?;
    let (inport, dest, keep) = router_pair(control, sink_addr, name, options)
        .await
        .map_err(|e| format!("{name} setup: {e}"))?;
    Ok(Pair {
        name,
        inport,
        dest,
        sink,
        _keep: keep,
    })
}

/// Waits until the pair carries data (see [`wait_ready`]).
async fn probe(p: &Pair) -> Res<Duration> {
    wait_ready(p.inport, &p.dest, &p.sink)
        .await
        .map_err(|e| format!("{}: {e}", p.name).into())
}

/// Creates `n` server tunnels on `control` (10 control connections in parallel) and
/// waits up to `wait` until all are RUNNING; returns how many run and when that count
/// was reached.
async fn many_tunnels(
    control: SocketAddr,
    n: usize,
    options: &[String],
    outport: u16,
    wait: Duration,
) -> Res<(usize, Duration)> {
    let started = Instant::now();
    let workers = (0..10).map(|w| {
        let options = options.to_vec();
        async move {
            let mut bob = Bob::connect(control).await?;
            for i in (w..n).step_by(10) {
                bob.ok(&format!("setnick many{i}")).await?;
                bob.ok("newkeys").await?;
                for kv in &options {
                    bob.ok(&format!("option {kv}")).await?;
                }
                bob.ok("outhost 127.0.0.1").await?;
                bob.ok(&format!("outport {outport}")).await?;
                bob.ok("quiet true").await?;
                bob.ok("start").await?;
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(bob)
        }
    });
    let _keep = futures_join_all(workers).await?;
    let mut client = Client::connect(control).await?;
    let mut running = 0;
    let mut at = started.elapsed();
    while started.elapsed() < wait {
        let now = client
            .list()
            .await?
            .iter()
            .filter(|t| t.nickname.starts_with("many") && t.running && !t.starting)
            .count();
        if now > running {
            running = now;
            at = started.elapsed();
        }
        if running >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok((running, at))
}

/// Runs the futures concurrently; the first error wins.
async fn futures_join_all<T, F>(futs: impl Iterator<Item = F>) -> Res<Vec<T>>
where
    F: Future<Output = Res<T>> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await??);
    }
    Ok(out)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The `devnet` benchmark; skipped (not failed) without the offline i2pd's addresses.
pub(crate) async fn bench_devnet(binary: &PathBuf) -> Res<()> {
    let env = match router_env() {
        Ok(env) => env,
        Err(why) => {
            println!("\n## devnet: SKIPPED: {why} (run scripts/bench-router.sh --devnet)");
            return Ok(());
        }
    };
    let payload = env_num("BOB_BENCH_DEVNET_MIB", 4) << 20;
    let runs = env_num("BOB_BENCH_DEVNET_RUNS", 5) as usize;
    let many = env_num("BOB_BENCH_DEVNET_TUNNELS", 100) as usize;
    let wait = Duration::from_secs(env_num("BOB_BENCH_DEVNET_WAIT_S", 300));
    let i2pd_pid: Option<u32> = std::env::var("BOB_BENCH_I2PD_PID")
        .ok()
        .and_then(|v| v.parse().ok());

    // the devnet server, idle: its routers up and exploratory tunnels built, no BOB tunnel
    let devnet = ServerProc::start_within(
        binary,
        &["--router", "devnet", "--metrics", "127.0.0.1:0"],
        STEP_DEADLINE,
    )
    .await
    .map_err(|e| format!("devnet server (built with --features embedded-router?): {e}"))?;
    let ready_after = devnet_ready(&devnet).await?;
    let devnet_idle = devnet.rss_kib();

    let mut sam_args = vec!["--router".to_string(), format!("sam://{}", env.sam)];
    for kv in &env.options {
        sam_args.push("--tunnel-option".into());
        sam_args.push(kv.clone());
    }
    let sam_refs: Vec<&str> = sam_args.iter().map(String::as_str).collect();
    let over_sam = ServerProc::start(binary, &sam_refs).await?;
    let sam_idle = over_sam.rss_kib();
    let i2pd_idle = i2pd_pid.map(rss_kib);

    // the three pairs, built at once, then probed until each carries data
    let devnet_opts: Vec<String> = DEVNET_OPTIONS.map(String::from).to_vec();
    let setup = Instant::now();
    let (a, b, c) = tokio::join!(
        pair("i2pd-bob", env.i2pd_bob, &env.options),
        pair("ours-sam", over_sam.addr, &[]),
        pair("devnet", devnet.addr, &devnet_opts),
    );
    let pairs = [a?, b?, c?];
    let (ra, rb, rc) = tokio::join!(probe(&pairs[0]), probe(&pairs[1]), probe(&pairs[2]));
    let ready = [ra?, rb?, rc?];
    println!(
        "\n## devnet: bob-server --router devnet (C) vs the offline i2pd through its BOB (A) \
         and through bob-server over its SAM (B); same run"
    );
    println!(
        "setup: devnet tunnels built {:.1} s after start; pairs ready in {:.1} s \
         (A {:.1} s, B {:.1} s, C {:.1} s of probing); C uses 1-hop tunnels, A and B 0-hop",
        ready_after.as_secs_f64(),
        setup.elapsed().as_secs_f64(),
        ready[0].as_secs_f64(),
        ready[1].as_secs_f64(),
        ready[2].as_secs_f64()
    );

    // time to first byte: a new stream each time, alternating A, B, C; median of `runs`
    for p in &pairs {
        ttfb(p.inport, &p.dest, &p.sink).await?; // warm-up: LeaseSet lookups
    }
    let mut firsts = vec![Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..runs {
        for (i, p) in pairs.iter().enumerate() {
            firsts[i].push(
                ttfb(p.inport, &p.dest, &p.sink)
                    .await
                    .map_err(|e| format!("{} ttfb: {e}", p.name))?,
            );
        }
    }
    let firsts: Vec<Duration> = firsts.into_iter().map(median).collect();

    // throughput of one connection: `payload` bytes, alternating A, B, C; median
    let mut times = vec![Vec::new(), Vec::new(), Vec::new()];
    for p in &pairs {
        router_push(p.inport, &p.dest, 1, 256 << 10, &p.sink).await?;
    }
    for _ in 0..runs.min(3) {
        for (i, p) in pairs.iter().enumerate() {
            times[i].push(
                router_push(p.inport, &p.dest, 1, payload, &p.sink)
                    .await
                    .map_err(|e| format!("{} throughput: {e}", p.name))?,
            );
        }
    }
    let rates: Vec<f64> = times
        .into_iter()
        .map(|t| mib_s(payload, median(t)))
        .collect();
    println!("| | A: i2pd BOB | B: bob-server over SAM | C: devnet | C/A | C/B |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| TTFB ms (median of {runs}) | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
        ms(firsts[0]),
        ms(firsts[1]),
        ms(firsts[2]),
        ms(firsts[2]) / ms(firsts[0]),
        ms(firsts[2]) / ms(firsts[1])
    );
    println!(
        "| MiB/s, 1 conn, {} MiB (median of {}) | {:.2} | {:.2} | {:.2} | {:.3} | {:.3} |",
        payload >> 20,
        runs.min(3),
        rates[0],
        rates[1],
        rates[2],
        rates[2] / rates[0],
        rates[2] / rates[1]
    );
    json_line(
        "devnet",
        &[
            ("ttfb_ms_i2pd_bob", format!("{:.3}", ms(firsts[0]))),
            ("ttfb_ms_ours_sam", format!("{:.3}", ms(firsts[1]))),
            ("ttfb_ms_devnet", format!("{:.3}", ms(firsts[2]))),
            ("mib_s_i2pd_bob", format!("{:.3}", rates[0])),
            ("mib_s_ours_sam", format!("{:.3}", rates[1])),
            ("mib_s_devnet", format!("{:.3}", rates[2])),
            ("payload", payload.to_string()),
        ],
    );
    drop(pairs);

    // memory with `many` more tunnels (server tunnels, 1 hop on the devnet); B's figure
    // is bob-server's plus i2pd's, the router it needs
    // (both at once, each RSS read when its own wait ends)
    let (sink, _) = counting_sink().await?;
    let (c, b) = tokio::join!(
        async {
            let r = many_tunnels(devnet.addr, many, &devnet_opts, sink.port(), wait).await;
            (r, devnet.rss_kib())
        },
        async {
            let r = many_tunnels(over_sam.addr, many, &env.options, sink.port(), wait).await;
            (r, over_sam.rss_kib(), i2pd_pid.map(rss_kib))
        },
    );
    let ((run_c, at_c), devnet_many) = (
        c.0.map_err(|e| format!("devnet: {many} tunnels: {e}"))?,
        c.1,
    );
    let ((run_b, at_b), sam_many, i2pd_many) = (
        b.0.map_err(|e| format!("over SAM: {many} tunnels: {e}"))?,
        b.1,
        b.2,
    );
    let both = |ours: u64, i2pd: Option<u64>| match i2pd {
        Some(k) => format!(
            "{:.1} + i2pd {:.1} = {:.1}",
            mib(ours),
            mib(k),
            mib(ours + k)
        ),
        None => format!("{:.1} (i2pd not measured)", mib(ours)),
    };
    println!("| RSS MiB | B: bob-server over SAM (+ i2pd) | C: devnet server (5 routers) | C/B |");
    println!("|---|---|---|---|");
    let total = |ours: u64, i2pd: Option<u64>| ours + i2pd.unwrap_or(0);
    println!(
        "| idle | {} | {:.1} | {:.2} |",
        both(sam_idle, i2pd_idle),
        mib(devnet_idle),
        devnet_idle as f64 / total(sam_idle, i2pd_idle) as f64
    );
    println!(
        "| {many} tunnels started | {} | {:.1} | {:.2} |",
        both(sam_many, i2pd_many),
        mib(devnet_many),
        devnet_many as f64 / total(sam_many, i2pd_many) as f64
    );
    let when = |run: usize| {
        if run >= many {
            "RSS read once all ran".to_string()
        } else {
            format!("RSS read at the {} s bound", wait.as_secs())
        }
    };
    println!(
        "{many} tunnels RUNNING: C {run_c} of {many} after {:.1} s ({}), \
         B {run_b} of {many} after {:.1} s ({})",
        at_c.as_secs_f64(),
        when(run_c),
        at_b.as_secs_f64(),
        when(run_b)
    );
    json_line(
        "devnet_rss",
        &[
            ("tunnels", many.to_string()),
            ("devnet_idle_kib", devnet_idle.to_string()),
            ("devnet_many_kib", devnet_many.to_string()),
            ("devnet_running", run_c.to_string()),
            ("sam_idle_kib", sam_idle.to_string()),
            ("sam_many_kib", sam_many.to_string()),
            ("sam_running", run_b.to_string()),
            ("i2pd_idle_kib", i2pd_idle.unwrap_or(0).to_string()),
            ("i2pd_many_kib", i2pd_many.unwrap_or(0).to_string()),
        ],
    );
    Ok(())
}
