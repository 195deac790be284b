//! `hostile`: the server's worst case when hostile local clients fill every limit, and
//! the cost of one saved change at 1, 100 and 1024 tunnels with `--state-dir`.
//!
//! Worst case: as many tunnels as allowed with the longest nicknames and hosts, then
//! options of the longest keys and values until the registry's byte cap refuses more;
//! then every other control connection the server allows selects the largest tunnel and
//! pipelines `showprops` and `list` without ever reading. The server's peak RSS
//! (`VmHWM`) is compared with its RSS right after start-up.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::common::*;

/// A raw control connection: one line out, one line back (the `ERROR`s are data here).
struct Raw(BufReader<TcpStream>);

impl Raw {
    async fn connect(addr: std::net::SocketAddr) -> Res<Self> {
        let mut raw = Self(BufReader::new(TcpStream::connect(addr).await?));
        raw.line().await?; // greeting
        raw.line().await?;
        Ok(raw)
    }

    async fn line(&mut self) -> Res<String> {
        let mut line = String::new();
        if self.0.read_line(&mut line).await? == 0 {
            return Err("server closed the control connection".into());
        }
        Ok(line)
    }

    async fn cmd(&mut self, line: &str) -> Res<String> {
        self.0
            .get_mut()
            .write_all(format!("{line}\n").as_bytes())
            .await?;
        self.line().await
    }
}

fn peak_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

pub(crate) async fn bench_hostile(binary: &PathBuf) -> Res<()> {
    worst_case(binary).await?;
    save_cost(binary).await
}

async fn worst_case(binary: &PathBuf) -> Res<()> {
    const TUNNELS: usize = 1024; // the default --max-tunnels
    const HOGS: usize = 63; // the default --max-connections, minus the filler
    let server = ServerProc::start(binary, &[]).await?;
    let pid = server.pid();
    let idle = server.rss_kib();
    let started = Instant::now();
    let mut c = Raw::connect(server.addr).await?;
    let host = "h".repeat(255);
    let mut tunnels = 0;
    for i in 0..TUNNELS {
        let nick = format!("{i:04}{}", "n".repeat(251));
        if !c.cmd(&format!("setnick {nick}")).await?.starts_with("OK") {
            break;
        }
        tunnels += 1;
        c.cmd(&format!("inhost {host}")).await?;
        c.cmd(&format!("outhost {host}")).await?;
    }
    // options of the longest keys and values, three to a line (16 KiB lines), on the
    // first tunnels, until the byte cap (or the per-tunnel limit) refuses
    let mut options = 0usize;
    let mut refused = String::new();
    'fill: for i in 0..tunnels {
        let nick = format!("{i:04}{}", "n".repeat(251));
        c.cmd(&format!("getnick {nick}")).await?;
        for j in 0.. {
            let pairs: Vec<String> = (0..3)
                .map(|k| format!("{:0>255}={}", j * 3 + k, "v".repeat(4096)))
                .collect();
            let reply = c.cmd(&format!("option {}", pairs.join(" "))).await?;
            if !reply.starts_with("OK") {
                if reply.contains("registry full") {
                    refused = reply.trim().to_owned();
                    break 'fill;
                }
                break; // this tunnel holds its most options: next one
            }
            options += 3;
        }
    }
    let filled = server.rss_kib();
    let fill_time = started.elapsed();
    // hogs: the largest tunnel, then `showprops` and `list` pipelined, never read
    let mut hogs = Vec::new();
    for _ in 0..HOGS {
        let mut hog = Raw::connect(server.addr).await?;
        let nick = format!("{:04}{}", 0, "n".repeat(251));
        hog.cmd(&format!("getnick {nick}")).await?;
        let mut stream = hog.0.into_inner();
        let burst = b"showprops\nlist\n".repeat(1024);
        // write until the server stops taking commands (its replies are backed up)
        while let Ok(Ok(())) =
            tokio::time::timeout(Duration::from_millis(200), stream.write_all(&burst)).await
        {
        }
        hogs.push(stream);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let hogged = server.rss_kib();
    // the server still answers an honest client (in the filler's connection slot)
    drop(c);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    let mut honest = Raw::connect(server.addr).await;
    let honest_ms = match &mut honest {
        Ok(h) => {
            h.cmd("status 0000").await?;
            t.elapsed().as_secs_f64() * 1000.0
        }
        Err(_) => f64::NAN, // all connection slots taken by hogs: refused, as documented
    };
    let peak = peak_kib(pid);
    drop(hogs);
    println!("## hostile: worst case with default limits");
    println!("tunnels filled               {tunnels}");
    println!("options added                {options} (then: {refused})");
    println!(
        "fill time                    {:.1} s",
        fill_time.as_secs_f64()
    );
    println!(
        "RSS idle                     {:.1} MiB",
        idle as f64 / 1024.0
    );
    println!(
        "RSS filled                   {:.1} MiB",
        filled as f64 / 1024.0
    );
    println!(
        "RSS + {HOGS} non-reading hogs   {:.1} MiB",
        hogged as f64 / 1024.0
    );
    println!(
        "peak RSS (VmHWM)             {:.1} MiB ({:.1}x idle)",
        peak as f64 / 1024.0,
        peak as f64 / idle.max(1) as f64
    );
    println!("honest client status         {honest_ms:.1} ms");
    json_line(
        "hostile",
        &[
            ("tunnels", tunnels.to_string()),
            ("options", options.to_string()),
            ("rss_idle_kib", idle.to_string()),
            ("rss_filled_kib", filled.to_string()),
            ("rss_hogged_kib", hogged.to_string()),
            ("peak_kib", peak.to_string()),
            (
                "honest_ms",
                if honest_ms.is_nan() {
                    "null".to_owned()
                } else {
                    format!("{honest_ms:.1}")
                },
            ),
        ],
    );
    Ok(())
}

/// Median time of one `option` change (saved before its reply) with `n` tunnels.
pub(crate) async fn save_cost(binary: &PathBuf) -> Res<()> {
    println!("## hostile: per-command cost with --state-dir (median of 50 `option` changes)");
    println!("tunnels  no state-dir  state-dir  ratio");
    let mut fields = Vec::new();
    for n in [1usize, 100, 1024] {
        let mut medians = Vec::new();
        for with_state in [false, true] {
            let dir =
                std::env::temp_dir().join(format!("bob-bench-hostile-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            let dir_s = dir.to_string_lossy().into_owned();
            let extra: Vec<&str> = if with_state {
                vec!["--state-dir", &dir_s]
            } else {
                vec![]
            };
            let server = ServerProc::start(binary, &extra).await?;
            let mut c = Raw::connect(server.addr).await?;
            for i in 0..n {
                c.cmd(&format!("setnick t{i}")).await?;
            }
            c.cmd("getnick t0").await?;
            let mut times = Vec::new();
            for j in 0..50 {
                let t = Instant::now();
                let reply = c.cmd(&format!("option bench.k=v{j}")).await?;
                times.push(t.elapsed());
                if !reply.starts_with("OK") {
                    return Err(format!("option refused: {reply}").into());
                }
            }
            times.sort();
            medians.push(percentile(&times, 0.5));
            drop(server);
            let _ = std::fs::remove_dir_all(&dir);
        }
        let (plain, saved) = (medians[0], medians[1]);
        println!(
            "{n:>7}  {:>9.3} ms  {:>6.3} ms  {:.1}x",
            plain.as_secs_f64() * 1000.0,
            saved.as_secs_f64() * 1000.0,
            saved.as_secs_f64() / plain.as_secs_f64().max(1e-9)
        );
        fields.push((
            format!("save_ms_{n}"),
            format!("{:.3}", saved.as_secs_f64() * 1000.0),
        ));
        fields.push((
            format!("plain_ms_{n}"),
            format!("{:.3}", plain.as_secs_f64() * 1000.0),
        ));
    }
    let fields: Vec<(&str, String)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    json_line("hostile_save", &fields);
    Ok(())
}
