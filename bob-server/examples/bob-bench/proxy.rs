//! Benchmark `proxy`: an HTTP GET of 1 MiB through a SOCKS proxy tunnel, against the
//! same GET through a plain BOB client tunnel and straight to the web server, same run.
//!
//! Each request is a new connection: connect, the path's own set-up (nothing; BOB's
//! destination line; the SOCKS5 greeting and CONNECT, waiting for each reply as curl
//! does), `GET /`, read the 1 MiB body to the server's close. Reported per path: the
//! set-up latency (connect to the first response byte) and the throughput of the whole
//! request (from the median request time), with ratios against the BOB client tunnel.
//! The paths take turns request by request, so load from elsewhere hits them alike.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

/// The body every GET returns.
const BODY: usize = 1 << 20;

/// GETs per path (after a warm-up of a tenth of that).
const REQUESTS: usize = 100;

/// How a request reaches the web server.
#[derive(Clone)]
enum Path {
    /// straight to the web server
    Direct(SocketAddr),
    /// a BOB client tunnel: the destination line first
    Bob(SocketAddr, String),
    /// a SOCKS5 proxy tunnel: CONNECT to the name
    Socks(SocketAddr, String),
}

impl Path {
    fn name(&self) -> &'static str {
        match self {
            Self::Direct(_) => "direct",
            Self::Bob(..) => "BOB client tunnel",
            Self::Socks(..) => "SOCKS5 tunnel",
        }
    }
}

/// A web server answering every request with [`BODY`] bytes, then closing.
async fn web_sink() -> Res<SocketAddr> {
    let listener = listen_loopback()?;
    let addr = listener.local_addr()?;
    let body: std::sync::Arc<Vec<u8>> = std::sync::Arc::new((0..BODY).map(|i| i as u8).collect());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let reply = format!("HTTP/1.0 200 OK\r\nContent-Length: {BODY}\r\n\r\n");
                let _ = s.write_all(reply.as_bytes()).await;
                let _ = s.write_all(&body).await;
                let _ = s.shutdown().await;
            });
        }
    });
    Ok(addr)
}

/// One GET through `path`: (set-up latency to the first response byte, total time).
async fn one_get(path: &Path) -> Res<(Duration, Duration)> {
    let started = Instant::now();
    let target = match path {
        Path::Direct(a) | Path::Bob(a, _) | Path::Socks(a, _) => *a,
    };
    let mut s = TcpStream::connect(target).await?;
    s.set_nodelay(true)?;
    let get = b"GET / HTTP/1.0\r\nHost: web.i2p\r\n\r\n";
    match path {
        Path::Direct(_) => s.write_all(get).await?,
        Path::Bob(_, dest) => {
            let mut first = format!("{dest}\n").into_bytes();
            first.extend_from_slice(get);
            s.write_all(&first).await?;
        }
        Path::Socks(_, host) => {
            s.write_all(&[5, 1, 0]).await?;
            let mut method = [0u8; 2];
            s.read_exact(&mut method).await?;
            if method != [5, 0] {
                return Err(format!("SOCKS method reply {method:?}").into());
            }
            let mut request = vec![5, 1, 0, 3, u8::try_from(host.len())?];
            request.extend_from_slice(host.as_bytes());
            request.extend_from_slice(&[0, 80]);
            s.write_all(&request).await?;
            let mut reply = [0u8; 10];
            s.read_exact(&mut reply).await?;
            if reply[1] != 0 {
                return Err(format!("SOCKS reply code {}", reply[1]).into());
            }
            s.write_all(get).await?;
        }
    }
    let mut buf = vec![0u8; 64 * 1024];
    let n = s.read(&mut buf).await?;
    let first_byte = started.elapsed();
    let mut total = n;
    loop {
        match s.read(&mut buf).await? {
            0 => break,
            n => total += n,
        }
    }
    if total < BODY {
        return Err(format!("{}: short response ({total} bytes)", path.name()).into());
    }
    Ok((first_byte, started.elapsed()))
}

/// `count` rounds of one GET per path, the paths interleaved so that a busy machine
/// slows them alike: per path, the sorted set-up latencies and request times.
async fn run(paths: &[Path], count: usize) -> Res<Vec<(Vec<Duration>, Vec<Duration>)>> {
    let mut out = vec![(Vec::with_capacity(count), Vec::with_capacity(count)); paths.len()];
    for _ in 0..count {
        for (path, (setup, total)) in paths.iter().zip(&mut out) {
            let (first, all) = one_get(path).await?;
            setup.push(first);
            total.push(all);
        }
    }
    for (setup, total) in &mut out {
        setup.sort();
        total.sort();
    }
    Ok(out)
}

/// Starts a SOCKS tunnel on a free port; returns its address.
async fn socks_tunnel(server: SocketAddr) -> Res<SocketAddr> {
    let mut bob = Bob::connect(server).await?;
    bob.ok("setnick socks-proxy").await?;
    bob.ok("newkeys").await?;
    bob.ok("settunneltype socks").await?;
    bob.ok("inhost 127.0.0.1").await?;
    let mut last = None;
    for _ in 0..20 {
        let port = free_port().await?;
        bob.ok(&format!("inport {port}")).await?;
        match bob.ok("start").await {
            Ok(_) => return Ok(SocketAddr::from(([127, 0, 0, 1], port))),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| "could not start the SOCKS tunnel".into()))
}

pub(crate) async fn bench_proxy(server: &ServerProc) -> Res<()> {
    let web = web_sink().await?;
    let (inport, dest) = tunnel_pair(server.addr, web, true, "proxy").await?;
    let b32 = keytools::verify_bob(&dest)?.b32();
    let socks = socks_tunnel(server.addr).await?;
    let paths = [
        Path::Direct(web),
        Path::Bob(inport, dest),
        Path::Socks(socks, b32),
    ];
    println!(
        "\n## proxy: HTTP GET of 1 MiB per connection, {REQUESTS} per path, paths interleaved"
    );
    println!(
        "| path | set-up p50 µs | set-up p90 µs | request p50 ms | MiB/s (p50) | set-up ratio vs BOB | MiB/s ratio vs BOB |"
    );
    println!("|---|---|---|---|---|---|---|");
    run(&paths, REQUESTS / 10).await?; // warm-up
    let results = tokio::time::timeout(STEP_DEADLINE, run(&paths, REQUESTS))
        .await
        .map_err(|_| "over the step deadline")??;
    let rate = |total: &[Duration]| mib_s(BODY as u64, percentile(total, 0.5));
    let bob_p50 = percentile(&results[1].0, 0.5).as_secs_f64();
    let bob_rate = rate(&results[1].1);
    let mut fields = vec![("requests".to_owned(), REQUESTS.to_string())];
    for (path, (setup, total)) in paths.iter().zip(&results) {
        let p50 = percentile(setup, 0.5);
        let mib = rate(total);
        println!(
            "| {} | {} | {} | {:.2} | {mib:.0} | {:.2} | {:.2} |",
            path.name(),
            p50.as_micros(),
            percentile(setup, 0.9).as_micros(),
            percentile(total, 0.5).as_secs_f64() * 1000.0,
            p50.as_secs_f64() / bob_p50,
            mib / bob_rate,
        );
        let key = match path {
            Path::Direct(_) => "direct",
            Path::Bob(..) => "bob",
            Path::Socks(..) => "socks",
        };
        fields.push((format!("{key}_setup_p50_us"), p50.as_micros().to_string()));
        fields.push((format!("{key}_mib_s"), format!("{mib:.1}")));
    }
    fields.push((
        "socks_vs_bob_mib_s".to_owned(),
        format!("{:.3}", rate(&results[2].1) / bob_rate),
    ));
    fields.push((
        "socks_vs_bob_setup".to_owned(),
        format!(
            "{:.3}",
            percentile(&results[2].0, 0.5).as_secs_f64() / bob_p50
        ),
    ));
    let fields: Vec<(&str, String)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    json_line("proxy", &fields);
    Ok(())
}
