//! Benchmark 5: i2pd's own BOB against bob-server over SAM on the same i2pd.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::*;

/// Where the real router is: i2pd's own BOB port, its SAM bridge and the session options
/// an offline i2pd needs. Set by `scripts/bench-router.sh` (or `scripts/test.sh`'s names).
pub(crate) struct RouterEnv {
    pub(crate) i2pd_bob: SocketAddr,
    pub(crate) sam: String,
    pub(crate) options: Vec<String>,
}

pub(crate) fn env_either(a: &str, b: &str) -> Option<String> {
    std::env::var(a)
        .or_else(|_| std::env::var(b))
        .ok()
        .filter(|v| !v.trim().is_empty())
}

pub(crate) fn router_env() -> Result<RouterEnv, String> {
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
pub(crate) async fn counting_sink() -> Res<(SocketAddr, Arc<AtomicU64>)> {
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
pub(crate) async fn router_pair(
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
pub(crate) async fn wait_ready(inport: SocketAddr, dest: &str, sink: &AtomicU64) -> Res<Duration> {
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
pub(crate) async fn router_push(
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

/// Time to first byte: from connecting to `inport` until the sink has the first data
/// byte (the destination line, the stream open through the router, one byte).
pub(crate) async fn ttfb(inport: SocketAddr, dest: &str, sink: &AtomicU64) -> Res<Duration> {
    let before = sink.load(Ordering::Relaxed);
    let started = Instant::now();
    let mut s = TcpStream::connect(inport).await?;
    s.set_nodelay(true)?;
    s.write_all(format!("{dest}\nx").as_bytes()).await?;
    tokio::time::timeout(Duration::from_secs(60), async {
        while sink.load(Ordering::Relaxed) <= before {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    })
    .await
    .map_err(|_| "no first byte within 60 s")?;
    let took = started.elapsed();
    drop(s);
    Ok(took)
}

/// A connection through `inport` to `dest` whose far end echoes: retried until one
/// byte comes back (tunnels on a real router take a while to be usable).
async fn echo_connection(inport: SocketAddr, dest: &str) -> Res<TcpStream> {
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        if let Ok(mut s) = TcpStream::connect(inport).await {
            s.set_nodelay(true)?;
            let mut one = [0u8; 1];
            let echoed = async {
                s.write_all(format!("{dest}\n!").as_bytes()).await?;
                s.read_exact(&mut one).await
            };
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(40), echoed).await {
                return Ok(s);
            }
        }
        if Instant::now() > deadline {
            return Err("the echo pair did not answer within 150 s".into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Writes `size` bytes on `s` and reads them back; the time it took.
async fn round_trip(s: &mut TcpStream, size: usize) -> Res<Duration> {
    let out = vec![0x5au8; size];
    let mut back = vec![0u8; size];
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(60), async {
        s.write_all(&out).await?;
        s.read_exact(&mut back).await
    })
    .await
    .map_err(|_| "no echo within 60 s")??;
    Ok(started.elapsed())
}

/// min, median and max of `samples` (MiB/s, ms); the median of an even count is the mean
/// of the middle two.
pub(crate) fn spread(samples: &[f64]) -> (f64, f64, f64) {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return (0.0, 0.0, 0.0);
    }
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (v[0], median, v[n - 1])
}

fn env_count(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

fn json_list(samples: &[f64]) -> String {
    let items: Vec<String> = samples.iter().map(|v| format!("{v:.2}")).collect();
    format!("[{}]", items.join(","))
}

/// Benchmark 5: the same transfers through (A) i2pd's own BOB server and (B) bob-server
/// with `--router sam://` on the same i2pd, `BOB_BENCH_ROUTER_RUNS` (default 5) times
/// each, A and B alternating; reports min/median/max MiB/s per side and the ratio of the
/// medians. Skipped (not failed) without a router.
pub(crate) async fn bench_router(binary: &PathBuf) -> Res<()> {
    let env = match router_env() {
        Ok(env) => env,
        Err(why) => {
            println!("\n## router: SKIPPED: {why} (run scripts/bench-router.sh)");
            return Ok(());
        }
    };
    let mib = env_count("BOB_BENCH_ROUTER_MIB", 32);
    let runs = env_count("BOB_BENCH_ROUTER_RUNS", 5) as usize;
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
    // both pairs are built at once: the router builds tunnels in parallel. i2pd's BOB
    // keeps tunnels after their control connection closes: nicknames unique per run
    let tag = format!("i2pd-{}", std::process::id());
    let echo = echo_sink_with(true).await?;
    let echo_tag = format!("{tag}-echo");
    let (a, b, echo_a, echo_b) = tokio::join!(
        router_pair(env.i2pd_bob, sink_a, &tag, &env.options),
        router_pair(ours.addr, sink_b, "ours", &[]),
        router_pair(env.i2pd_bob, echo, &echo_tag, &env.options),
        router_pair(ours.addr, echo, "ours-echo", &[]),
    );
    let (in_a, dest_a, _keep_a) = a.map_err(|e| format!("i2pd BOB setup: {e}"))?;
    let (in_b, dest_b, _keep_b) = b.map_err(|e| format!("bob-server setup: {e}"))?;
    let (echo_in_a, echo_dest_a, _keep_echo_a) =
        echo_a.map_err(|e| format!("i2pd BOB echo setup: {e}"))?;
    let (echo_in_b, echo_dest_b, _keep_echo_b) =
        echo_b.map_err(|e| format!("bob-server echo setup: {e}"))?;
    let (ready_a, ready_b) = tokio::join!(
        wait_ready(in_a, &dest_a, &total_a),
        wait_ready(in_b, &dest_b, &total_b),
    );
    let ready_a = ready_a.map_err(|e| format!("i2pd BOB: {e}"))?;
    let ready_b = ready_b.map_err(|e| format!("bob-server: {e}"))?;
    println!(
        "\n## router: i2pd's BOB (A) vs bob-server over SAM (B), same offline i2pd, \
         {mib} MiB payload, {runs} runs per side"
    );
    println!(
        "setup: both pairs built in {:.1} s (A ready after {:.1} s, B after {:.1} s of probing)",
        setup.elapsed().as_secs_f64(),
        ready_a.as_secs_f64(),
        ready_b.as_secs_f64()
    );
    // time to first byte: a new stream each time, A and B alternating, one right after
    // the other as a client opening several connections would (a SAM acceptor is then
    // re-armed a few milliseconds before the next stream arrives)
    let ttfb_runs = env_count("BOB_BENCH_ROUTER_TTFB_RUNS", 20) as usize;
    ttfb(in_a, &dest_a, &total_a).await?;
    ttfb(in_b, &dest_b, &total_b).await?;
    let (mut fa, mut fb) = (Vec::new(), Vec::new());
    for _ in 0..ttfb_runs {
        fa.push(ms(ttfb(in_a, &dest_a, &total_a)
            .await
            .map_err(|e| format!("i2pd BOB ttfb: {e}"))?));
        fb.push(ms(ttfb(in_b, &dest_b, &total_b)
            .await
            .map_err(|e| format!("bob-server ttfb: {e}"))?));
    }
    let (fa_min, fa_med, fa_max) = spread(&fa);
    let (fb_min, fb_med, fb_max) = spread(&fb);
    println!(
        "time to first byte, {ttfb_runs} streams per side: A {fa_min:.2} / {fa_med:.2} / \
         {fa_max:.2} ms, B {fb_min:.2} / {fb_med:.2} / {fb_max:.2} ms (min / median / max), \
         B/A (medians) {:.2}",
        fb_med / fa_med
    );
    json_line(
        "router_ttfb",
        &[
            ("runs", ttfb_runs.to_string()),
            ("i2pd_bob_median_ms", format!("{fa_med:.3}")),
            ("bob_server_median_ms", format!("{fb_med:.3}")),
            ("ratio", format!("{:.3}", fb_med / fa_med)),
            ("i2pd_bob_ms_runs", json_list(&fa)),
            ("bob_server_ms_runs", json_list(&fb)),
        ],
    );
    // request/response: one connection per side, a message of each size echoed back
    // (an interactive protocol whose messages span several streaming packets)
    let rounds = env_count("BOB_BENCH_ROUTER_RTT_ROUNDS", 40) as usize;
    let (mut conn_a, mut conn_b) = tokio::try_join!(
        echo_connection(echo_in_a, &echo_dest_a),
        echo_connection(echo_in_b, &echo_dest_b),
    )?;
    for size in [100usize, 3000, 20_000] {
        let (mut ra, mut rb) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            ra.push(
                round_trip(&mut conn_a, size)
                    .await
                    .map_err(|e| format!("i2pd BOB echo: {e}"))?,
            );
            rb.push(
                round_trip(&mut conn_b, size)
                    .await
                    .map_err(|e| format!("bob-server echo: {e}"))?,
            );
        }
        ra.sort();
        rb.sort();
        let in_ms = |v: &[Duration]| v.iter().copied().map(ms).collect::<Vec<_>>();
        let (a_min, a_med, _) = spread(&in_ms(&ra));
        let (b_min, b_med, _) = spread(&in_ms(&rb));
        let (a90, b90) = (ms(percentile(&ra, 0.9)), ms(percentile(&rb, 0.9)));
        println!(
            "round trip of {size} B echoed, {rounds} rounds on one connection: \
             A {a_min:.2} / {a_med:.2} / {a90:.2} ms, B {b_min:.2} / {b_med:.2} / {b90:.2} ms \
             (min / median / p90), B/A (medians) {:.2}",
            b_med / a_med
        );
        json_line(
            "router_round_trip",
            &[
                ("bytes", size.to_string()),
                ("rounds", rounds.to_string()),
                ("i2pd_bob_median_ms", format!("{a_med:.3}")),
                ("i2pd_bob_p90_ms", format!("{a90:.3}")),
                ("bob_server_median_ms", format!("{b_med:.3}")),
                ("bob_server_p90_ms", format!("{b90:.3}")),
                ("ratio", format!("{:.3}", b_med / a_med)),
            ],
        );
    }
    drop((conn_a, conn_b));
    println!(
        "| connections | bytes | A: i2pd BOB MiB/s min / median / max | \
         B: bob-server MiB/s min / median / max | B/A (medians) |"
    );
    println!("|---|---|---|---|---|");
    let mut worst = f64::INFINITY;
    let mut runs_text = Vec::new();
    for conns in [1usize, 4] {
        let per = payload / conns as u64;
        let bytes = per * conns as u64;
        // warm-up (the first streams pay for lookups), then the runs, alternating A
        // and B so that neither gets a quieter machine
        router_push(in_a, &dest_a, conns, 256 << 10, &total_a).await?;
        router_push(in_b, &dest_b, conns, 256 << 10, &total_b).await?;
        let (mut sa, mut sb) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let ta = router_push(in_a, &dest_a, conns, per, &total_a)
                .await
                .map_err(|e| format!("i2pd BOB: {e}"))?;
            sa.push(mib_s(bytes, ta));
            let tb = router_push(in_b, &dest_b, conns, per, &total_b)
                .await
                .map_err(|e| format!("bob-server: {e}"))?;
            sb.push(mib_s(bytes, tb));
        }
        let (a_min, a_med, a_max) = spread(&sa);
        let (b_min, b_med, b_max) = spread(&sb);
        let ratio = b_med / a_med;
        worst = worst.min(ratio);
        println!(
            "| {conns} | {} MiB | {a_min:.1} / {a_med:.1} / {a_max:.1} | \
             {b_min:.1} / {b_med:.1} / {b_max:.1} | {ratio:.2} |",
            bytes >> 20,
        );
        let list = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.1}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        runs_text.push(format!(
            "{conns} connection(s), in run order: A {} | B {}",
            list(&sa),
            list(&sb)
        ));
        json_line(
            "router",
            &[
                ("connections", conns.to_string()),
                ("bytes", bytes.to_string()),
                ("runs", runs.to_string()),
                ("i2pd_bob_min_mib_s", format!("{a_min:.2}")),
                ("i2pd_bob_median_mib_s", format!("{a_med:.2}")),
                ("i2pd_bob_max_mib_s", format!("{a_max:.2}")),
                ("bob_server_min_mib_s", format!("{b_min:.2}")),
                ("bob_server_median_mib_s", format!("{b_med:.2}")),
                ("bob_server_max_mib_s", format!("{b_max:.2}")),
                ("ratio", format!("{ratio:.3}")),
                ("i2pd_bob_mib_s_runs", json_list(&sa)),
                ("bob_server_mib_s_runs", json_list(&sb)),
            ],
        );
    }
    for line in runs_text {
        println!("{line}");
    }
    println!(
        "goal B/A >= 0.9 (medians): {}",
        if worst >= 0.9 { "met" } else { "MISSED" }
    );
    Ok(())
}
