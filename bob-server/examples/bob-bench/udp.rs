//! Benchmark `udp`: UDP tunnels through the `local` backend and through an offline
//! i2pd, against direct UDP on loopback, measured in the same run.
//!
//! 1. Rate sweep: one application socket sends 1 KiB datagrams at increasing offered
//!    rates (paced by this program in 1 ms slices) either straight to a sink socket
//!    (baseline) or into a client UDP tunnel with `bob.udp.dest` whose server tunnel
//!    (`quiet true`) hands them to the same kind of sink. Paths: `local` (unpaced,
//!    `bob.udp.rate=0`, so the tunnels' own capacity shows) and, when `BOB_BENCH_SAM`
//!    names an i2pd SAM bridge (scripts/bench-udp.sh starts one offline), a second
//!    `bob-server --router sam://` with two pairs on it: unpaced (what i2pd's SAM UDP
//!    forwarding carries) and at the default `bob.udp.rate`. The paths take turns step
//!    by step, each step repeated (`BOB_BENCH_UDP_REPEAT`, default 3; medians reported).
//!    Reported: datagrams/s delivered, the loss, and for the tunnels where it happened
//!    (from the tunnels' `stats` counters).
//! 2. Peer mappings (`local`): 10,000 application sockets (10,000 source ports) each
//!    send one datagram through a pair: 10,000 conversations on the client tunnel and
//!    10,000 peers (each with its own local socket) on the `quiet true` server tunnel.
//!    Reported: the server's RSS before and after, and per mapping.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use crate::common::*;
use crate::scale::{open_fds, open_files_limit};

/// Offered rates of the sweep, datagrams per second.
const RATES: [u64; 6] = [1_000, 2_000, 5_000, 10_000, 20_000, 50_000];
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

/// Reads what is still queued on `sink` (late datagrams of the previous step).
async fn drain(sink: &UdpSocket) {
    let mut buf = vec![0u8; 65_536];
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(100), sink.recv(&mut buf)).await
    {}
}

/// A UDP tunnel pair on `server`: a `quiet true` server tunnel to `sink` and a client
/// tunnel with `bob.udp.dest` and `client_options`; returns the client's inport once
/// the client reports `RUNNING: true` (within `ready`).
async fn udp_pair(
    server: SocketAddr,
    sink: SocketAddr,
    tag: &str,
    client_options: &[&str],
    ready: Duration,
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
                let deadline = Instant::now() + ready;
                while Instant::now() < deadline {
                    let status = bob.ok(&format!("status cli-{tag}")).await?;
                    if status.contains("RUNNING: true") {
                        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                return Err(format!("the client tunnel cli-{tag} did not come up").into());
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| "could not start the client UDP tunnel".into()))
}

/// Sends a probe to `to` every 500 ms until one reaches `sink` (a router's sessions and
/// LeaseSets come up after `RUNNING: true`), within `limit`; returns the time taken.
async fn until_delivered(sink: &UdpSocket, to: SocketAddr, limit: Duration) -> Res<Duration> {
    let app = UdpSocket::bind("127.0.0.1:0").await?;
    let started = Instant::now();
    let mut buf = vec![0u8; 65_536];
    while started.elapsed() < limit {
        app.send_to(b"probe", to).await?;
        if let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(500), sink.recv(&mut buf)).await
        {
            return Ok(started.elapsed());
        }
    }
    Err(format!("no probe through the tunnels within {limit:?}").into())
}

/// A tunnel's UDP counters from `stats NICK` (`udp_*=n` pairs).
async fn udp_counters(server: SocketAddr, nick: &str) -> Res<HashMap<String, u64>> {
    let mut bob = Bob::connect(server).await?;
    let stats = bob.ok(&format!("stats {nick}")).await?;
    Ok(stats
        .split(' ')
        .filter_map(|t| t.split_once('='))
        .filter(|(k, _)| k.starts_with("udp_"))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect())
}

/// One path of the sweep: where the application sends and where it arrives; for a
/// tunnel pair, the server process and the pair's tag (`srv-TAG`, `cli-TAG`), whose
/// counters tell where the loss happened.
struct Path {
    name: &'static str,
    to: SocketAddr,
    sink: UdpSocket,
    tunnels: Option<(SocketAddr, String)>,
    /// per rate: delivered/s and loss (%) of each repeat
    per_s: Vec<Vec<f64>>,
    loss: Vec<Vec<f64>>,
    /// the router's SAM UDP port, whose kernel socket drops are read per step
    bridge: Option<u16>,
    /// per rate, summed over the repeats: offered, dropped by bob-server's send queue,
    /// sent into the backend, received by the server tunnel, delivered to the sink,
    /// dropped by the kernel at the router's SAM UDP socket
    split: Vec<[u64; 6]>,
}

impl Path {
    fn new(
        name: &'static str,
        to: SocketAddr,
        sink: UdpSocket,
        tunnels: Option<(SocketAddr, String)>,
    ) -> Self {
        Self {
            name,
            to,
            sink,
            tunnels,
            per_s: vec![Vec::new(); RATES.len()],
            loss: vec![Vec::new(); RATES.len()],
            bridge: None,
            split: vec![[0; 6]; RATES.len()],
        }
    }

    async fn counters(&self) -> Res<Option<[u64; 3]>> {
        let Some((server, tag)) = &self.tunnels else {
            return Ok(None);
        };
        let cli = udp_counters(*server, &format!("cli-{tag}")).await?;
        let srv = udp_counters(*server, &format!("srv-{tag}")).await?;
        let get = |m: &HashMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
        Ok(Some([
            get(&cli, "udp_dropped_queue_full"),
            get(&cli, "udp_sent"),
            get(&srv, "udp_received"),
        ]))
    }

    /// One unrecorded step at the lowest rate: a router's first datagrams to a new peer
    /// are slower (i2pd 2.45 with ElGamal LeaseSets encrypts them whole until session
    /// tags are confirmed); returns its loss (%).
    async fn warm_up(&self) -> Res<f64> {
        let (sent, got, _) = step(&self.sink, self.to, RATES[0]).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        drain(&self.sink).await;
        Ok(100.0 * sent.saturating_sub(got) as f64 / sent.max(1) as f64)
    }

    /// One step at `RATES[i]`, recorded.
    async fn run(&mut self, i: usize) -> Res<()> {
        let before = self.counters().await?;
        let bridge_before = self.bridge.and_then(socket_drops);
        let (sent, got, per_s) = step(&self.sink, self.to, RATES[i]).await?;
        let after = self.counters().await?;
        if let (Some(b), Some(a)) = (bridge_before, self.bridge.and_then(socket_drops)) {
            self.split[i][5] += a.saturating_sub(b);
        }
        self.per_s[i].push(per_s);
        self.loss[i].push(100.0 * sent.saturating_sub(got) as f64 / sent.max(1) as f64);
        let split = &mut self.split[i];
        split[0] += sent;
        split[4] += got;
        if let (Some(b), Some(a)) = (before, after) {
            for k in 0..3 {
                split[k + 1] += a[k].saturating_sub(b[k]);
            }
        }
        // late datagrams must not count for the next step
        tokio::time::sleep(Duration::from_millis(200)).await;
        drain(&self.sink).await;
        Ok(())
    }
}

/// The kernel's drop count (receive buffer full) of the UDP sockets bound to
/// 127.0.0.1:`port`, from /proc/net/udp; `None` when it cannot be read.
fn socket_drops(port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/udp").ok()?;
    let local = format!("0100007F:{port:04X}");
    let mut found = None;
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) == Some(&local.as_str()) {
            let drops: u64 = fields.last()?.parse().ok()?;
            found = Some(found.unwrap_or(0) + drops);
        }
    }
    found
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The offline i2pd's SAM address and tunnel options (`BOB_BENCH_SAM`,
/// `BOB_BENCH_SAM_OPTS`, `BOB_BENCH_SAM_UDP`; set by scripts/bench-udp.sh) as
/// bob-server arguments, and the bridge's UDP port (default: the SAM port - 1); or why not.
fn i2pd_args() -> Result<(Vec<String>, Option<u16>), &'static str> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let sam = var("BOB_BENCH_SAM").ok_or("BOB_BENCH_SAM (i2pd's SAM address) is not set")?;
    let mut args = vec![
        "--router".to_owned(),
        format!("sam://{sam}"),
        "--start-wait".to_owned(),
        "0".to_owned(),
        "--session-timeout".to_owned(),
        ROUTER_LIMIT.as_secs().to_string(),
    ];
    let port = |addr: &str| addr.rsplit_once(':')?.1.parse::<u16>().ok();
    let bridge = match var("BOB_BENCH_SAM_UDP") {
        Some(udp) => {
            let bridge = port(&udp);
            args.extend(["--sam-udp".to_owned(), udp]);
            bridge
        }
        None => port(&sam).and_then(|p| p.checked_sub(1)),
    };
    for kv in var("BOB_BENCH_SAM_OPTS")
        .unwrap_or_default()
        .split_whitespace()
    {
        args.extend(["--tunnel-option".to_owned(), kv.to_owned()]);
    }
    Ok((args, bridge))
}

/// Bound on each wait for the router (a SAM session takes ~20 s on i2pd 2.45).
const ROUTER_LIMIT: Duration = Duration::from_secs(150);

/// The rate sweep over direct UDP, a `local` pair and (with `BOB_BENCH_SAM`) two pairs
/// on the offline i2pd: unpaced and at the default `bob.udp.rate`.
async fn rate_sweep(binary: &PathBuf, local: &ServerProc) -> Res<()> {
    let repeat: usize = std::env::var("BOB_BENCH_UDP_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(3);
    let mut paths = Vec::new();
    let (direct_sink, direct_addr) = sink().await?;
    paths.push(Path::new("direct", direct_addr, direct_sink, None));
    let (local_sink, local_sink_addr) = sink().await?;
    let local_in = udp_pair(
        local.addr,
        local_sink_addr,
        "rate",
        &["bob.udp.rate=0"],
        Duration::from_secs(2),
    )
    .await?;
    paths.push(Path::new(
        "local",
        local_in,
        local_sink,
        Some((local.addr, "rate".into())),
    ));
    // kept alive until the sweep ends
    let mut _i2pd_server = None;
    match i2pd_args() {
        Err(why) => println!("\n# udp via i2pd: SKIPPED: {why} (run scripts/bench-udp.sh)"),
        Ok((args, bridge)) => {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let server = ServerProc::start(binary, &args).await?;
            let (fast_sink, fast_addr) = sink().await?;
            let (paced_sink, paced_addr) = sink().await?;
            let setup = Instant::now();
            // the four sessions come up together (start answers at once)
            let (fast, paced) = tokio::join!(
                udp_pair(
                    server.addr,
                    fast_addr,
                    "i2pd",
                    &["bob.udp.rate=0"],
                    ROUTER_LIMIT
                ),
                udp_pair(server.addr, paced_addr, "i2pd-paced", &[], ROUTER_LIMIT),
            );
            let (fast, paced) = (fast?, paced?);
            let up = setup.elapsed();
            let (t_fast, t_paced) = tokio::join!(
                until_delivered(&fast_sink, fast, ROUTER_LIMIT),
                until_delivered(&paced_sink, paced, ROUTER_LIMIT),
            );
            let (t_fast, t_paced) = (t_fast?, t_paced?);
            println!(
                "\n# i2pd: four SAM datagram sessions running after {:.1} s, first probes through {} ms / {} ms later",
                up.as_secs_f64(),
                t_fast.as_millis(),
                t_paced.as_millis()
            );
            drain(&fast_sink).await;
            drain(&paced_sink).await;
            let mut path = Path::new("i2pd", fast, fast_sink, Some((server.addr, "i2pd".into())));
            path.bridge = bridge;
            paths.push(path);
            let mut path = Path::new(
                "i2pd paced",
                paced,
                paced_sink,
                Some((server.addr, "i2pd-paced".into())),
            );
            path.bridge = bridge;
            paths.push(path);
            _i2pd_server = Some(server);
        }
    }

    let mut warm = Vec::new();
    for path in &paths {
        let loss = path
            .warm_up()
            .await
            .map_err(|e| format!("{} warm-up: {e}", path.name))?;
        warm.push(format!("{} {loss:.2} %", path.name));
    }
    println!(
        "# warm-up step ({} datagrams/s, not counted), loss: {}",
        RATES[0],
        warm.join(", ")
    );
    // the paths take turns step by step, so the machine's load hits them alike
    for (i, rate) in RATES.iter().enumerate() {
        for _ in 0..repeat {
            for path in &mut paths {
                path.run(i)
                    .await
                    .map_err(|e| format!("{} at {rate}/s: {e}", path.name))?;
            }
        }
    }

    println!(
        "\n## udp: 1 KiB datagrams, {STEP:?} per step, median of {repeat}; ×direct = delivered/s vs direct UDP in the same run"
    );
    println!(
        "# local and i2pd: `bob.udp.rate=0` (unpaced); i2pd paced: the default `bob.udp.rate` (1,000/s)"
    );
    let mut head = String::from("| offered/s |");
    let mut rule = String::from("|---|");
    for (k, path) in paths.iter().enumerate() {
        head += &format!(" {0}: delivered/s | {0}: loss |", path.name);
        rule += "---|---|";
        if k > 0 {
            head += " ×direct |";
            rule += "---|";
        }
    }
    println!("{head}\n{rule}");
    let mut rows = Vec::new();
    for (i, rate) in RATES.iter().enumerate() {
        let direct = median(&paths[0].per_s[i]);
        let mut line = format!("| {rate} |");
        let mut json = format!("{{\"offered\":{rate}");
        for (k, path) in paths.iter().enumerate() {
            let per_s = median(&path.per_s[i]);
            let loss = median(&path.loss[i]);
            line += &format!(" {per_s:.0} | {loss:.2} % |");
            if k > 0 {
                line += &format!(" {:.2} |", per_s / direct.max(1e-9));
            }
            let key = path.name.replace(' ', "_");
            json += &format!(",\"{key}_per_s\":{per_s:.0},\"{key}_loss_pct\":{loss:.3}");
        }
        println!("{line}");
        rows.push(json + "}");
    }
    json_line("udp-rate", &[("rows", format!("[{}]", rows.join(",")))]);

    println!("\n## udp: where the tunnels' loss happens (sums over the repeats, % of offered)");
    println!(
        "| offered/s | path | lost at the inport (never read) | dropped by bob-server (send queue full) | lost between the tunnels (sent by client, not received by server) | of which the kernel dropped at the router's SAM UDP socket | lost after the server tunnel |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for (i, rate) in RATES.iter().enumerate() {
        for path in paths.iter().filter(|p| p.tunnels.is_some()) {
            let [offered, queue, sent, received, got, bridge] = path.split[i];
            rows.push(format!(
                "{{\"offered\":{rate},\"path\":\"{}\",\"sent_by_app\":{offered},\"queue_full\":{queue},\"sent_by_client\":{sent},\"received_by_server\":{received},\"delivered\":{got},\"bridge_kernel_drops\":{}}}",
                path.name,
                path.bridge.map_or_else(|| "null".to_owned(), |_| bridge.to_string())
            ));
            let pct = |n: u64| 100.0 * n as f64 / offered.max(1) as f64;
            println!(
                "| {rate} | {} | {:.2} % | {:.2} % | {:.2} % | {} | {:.2} % |",
                path.name,
                pct(offered.saturating_sub(queue + sent)),
                pct(queue),
                pct(sent.saturating_sub(received)),
                path.bridge
                    .map_or_else(|| "-".to_owned(), |_| format!("{:.2} %", pct(bridge))),
                pct(received.saturating_sub(got))
            );
        }
    }
    json_line("udp-loss", &[("rows", format!("[{}]", rows.join(",")))]);
    Ok(())
}

pub(crate) async fn bench_udp(binary: &PathBuf) -> Res<()> {
    let server = ServerProc::start(binary, &[]).await?;
    rate_sweep(binary, &server).await?;

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
        Duration::from_secs(2),
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
