//! What every benchmark shares: the server process, the BOB client (`bob-client`),
//! tunnel set-up, sinks and reporting.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command as Process};

use bob_client::Client;
use bob_codec::types::Port;
use bob_codec::{Command, Dialect};

pub(crate) type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Upper bound for any single benchmark step.
pub(crate) const STEP_DEADLINE: Duration = Duration::from_secs(300);

pub(crate) struct ServerProc {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    /// The `--metrics` address, when the server was given one.
    pub(crate) metrics: Option<SocketAddr>,
}

impl ServerProc {
    pub(crate) async fn start(binary: &PathBuf, extra: &[&str]) -> Res<Self> {
        Self::start_within(binary, extra, Duration::from_secs(30)).await
    }

    /// [`ServerProc::start`] waiting up to `limit` for the listening line (a devnet
    /// starts its routers first).
    pub(crate) async fn start_within(
        binary: &PathBuf,
        extra: &[&str],
        limit: Duration,
    ) -> Res<Self> {
        let mut child = Process::new(binary)
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
        let mut metrics = None;
        let addr = tokio::time::timeout(limit, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.strip_prefix("bob-server metrics on http://") {
                    metrics = rest.trim().trim_end_matches("/metrics").parse().ok();
                }
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
        Ok(Self {
            child,
            addr,
            metrics,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Resident set size in KiB, from /proc.
    pub(crate) fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }
}

pub(crate) fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// A control connection on `bob-client`, with the request written as a line (parsed
/// into a `Command` and sent through the client's checks).
pub(crate) struct Bob(Client<TcpStream>);

impl Bob {
    pub(crate) async fn connect(addr: SocketAddr) -> Res<Self> {
        Ok(Self(Client::connect(addr).await?))
    }

    /// Sends one command; returns the reply text after `OK` or fails on `ERROR`.
    pub(crate) async fn ok(&mut self, line: &str) -> Res<String> {
        let command = Command::parse(line, Dialect::Java)?;
        Ok(self.0.ok(&command).await?)
    }
}

/// A loopback listener with a long accept queue, so that the baselines, like the
/// server, take bursts of connections without the kernel dropping handshakes.
pub(crate) fn listen_loopback() -> Res<TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    Ok(socket.listen(4096)?)
}

/// A free loopback port (bound, read, released). Benchmarks only: a race with another
/// program taking the port in between is possible and reported as a start error.
pub(crate) async fn free_port() -> Res<u16> {
    Ok(TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port())
}

/// Creates a server tunnel to `sink` and a client tunnel; returns (inport, server dest).
pub(crate) async fn tunnel_pair(
    server: SocketAddr,
    sink: SocketAddr,
    quiet: bool,
    tag: &str,
) -> Res<(SocketAddr, String)> {
    let mut bob = Client::connect(server).await?;
    bob.setnick(&format!("srv-{tag}").parse()?).await?;
    let dest = bob.newkeys(None, None).await?;
    bob.outhost(&sink.ip().to_string().parse()?).await?;
    bob.outport(Port::new(sink.port())?).await?;
    bob.quiet(quiet).await?;
    bob.start().await?;
    bob.setnick(&format!("cli-{tag}").parse()?).await?;
    bob.newkeys(None, None).await?;
    bob.inhost(&"127.0.0.1".parse()?).await?;
    let mut last = None;
    for _ in 0..20 {
        let port = free_port().await?;
        bob.inport(Port::new(port)?).await?;
        match bob.start().await {
            Ok(()) => {
                bob.quit().await.ok();
                return Ok((SocketAddr::from(([127, 0, 0, 1], port)), dest));
            }
            Err(e) => last = Some(e.into()),
        }
    }
    Err(last.unwrap_or_else(|| "could not start the client tunnel".into()))
}

/// Echoes everything back, with a small buffer so that idle connections stay cheap.
pub(crate) async fn echo_sink() -> Res<SocketAddr> {
    echo_sink_with(false).await
}

/// [`echo_sink`]; with `nodelay`, its sockets have `TCP_NODELAY` (as an interactive
/// server's would), so that what is timed through it is not its own Nagle.
pub(crate) async fn echo_sink_with(nodelay: bool) -> Res<SocketAddr> {
    let listener = listen_loopback()?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            if nodelay {
                let _ = s.set_nodelay(true);
            }
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    Ok(addr)
}

/// `d` in milliseconds.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub(crate) fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / d.as_secs_f64()
}

pub(crate) fn json_line(name: &str, fields: &[(&str, String)]) {
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    println!("JSON {{\"bench\":\"{name}\",{}}}", body.join(","));
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}
