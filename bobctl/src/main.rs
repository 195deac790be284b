//! `bobctl`: drive any BOB server from shell scripts.
//!
//! Every subcommand opens one control connection (with [`bob_client::Client`]), sends
//! the BOB commands it needs, one line each, and stops at the first `ERROR` reply: the
//! server's text goes to stderr and the exit code is non-zero. Output is made for people
//! by default and for programs with `--json`.
//!
//! Every name and argument is validated before the first byte is sent (nicknames, hosts,
//! ports and options with [`bob_codec::types`]); one with whitespace or a control
//! character is refused with exit code 2, so no argument can select another tunnel or
//! smuggle a second command. `create` never replaces an existing tunnel unless asked
//! (`--replace`), and it is all or nothing: when a step fails, the tunnel it made is
//! removed again.
//!
//! Exit codes: 0 success, 1 the server refused (an `ERROR …` reply, no such tunnel, a
//! tunnel that already exists), 2 usage or local error (bad arguments, unreadable key
//! file), 3 the server could not be reached or broke the protocol.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use bob_client::{Client, ClientError};
use bob_codec::types::{Host, Nickname, Port, TunnelOption};
use bob_codec::{Command, Reply, TunnelCounters, TunnelStatus};
use clap::{Parser, Subcommand};
use keytools::{Destination, PrivateKeys};
use tokio::net::TcpStream;

#[derive(Debug, Parser)]
#[command(
    name = "bobctl",
    version,
    about = "Control a BOB (Basic Open Bridge) server from scripts"
)]
struct Cli {
    /// BOB server to talk to
    #[arg(
        long,
        global = true,
        default_value = "127.0.0.1:2827",
        env = "BOBCTL_SERVER"
    )]
    server: String,
    /// print machine-readable JSON instead of text
    #[arg(long, global = true)]
    json: bool,
    /// seconds to wait for the server (connect and each reply)
    #[arg(long, global = true, default_value_t = 120)]
    timeout: u64,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// list every tunnel (an aligned table; --json for the records)
    List,
    /// show one tunnel, with its connection and byte counters when the server has them
    Status {
        /// tunnel nickname
        name: String,
    },
    /// create a tunnel (all or nothing), optionally starting it
    Create(CreateArgs),
    /// start a tunnel
    Start {
        /// tunnel nickname
        name: String,
    },
    /// stop a running tunnel
    Stop {
        /// tunnel nickname
        name: String,
    },
    /// remove an inactive tunnel
    Clear {
        /// tunnel nickname
        name: String,
    },
    /// print a tunnel's public destination (base64)
    Dest {
        /// tunnel nickname
        name: String,
    },
    /// send one raw command line (no line breaks) and print the reply lines
    Raw {
        /// the command line, e.g. 'lookup example.i2p'
        line: String,
    },
    /// show the state of the router in the server's process (`--router embedded` or
    /// `devnet`): peers, tunnels built, SAM health. Read from the server's metrics
    /// endpoint (bob-server `--metrics`), not from the BOB port
    Router {
        /// the server's metrics address (its `--metrics` value)
        #[arg(long, value_name = "HOST:PORT", env = "BOBCTL_METRICS")]
        metrics: String,
    },
}

#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// tunnel nickname
    name: String,
    /// key file (binary i2pd/Java key file, or a base64 KEYS line)
    #[arg(long, conflicts_with = "newkeys")]
    keys: Option<PathBuf>,
    /// let the server make new keys (the default); `--newkeys=TYPE` picks the signature
    /// type (i2pd extension)
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "",
        value_name = "TYPE"
    )]
    newkeys: Option<String>,
    /// inbound side: listen on HOST:PORT for applications that want to reach I2P
    #[arg(long = "in", value_name = "HOST:PORT")]
    inbound: Option<String>,
    /// outbound side: hand incoming I2P streams to HOST:PORT (with --socks or
    /// --http-proxy: the upstream outproxy for hosts outside I2P)
    #[arg(long = "out", value_name = "HOST:PORT")]
    outbound: Option<String>,
    /// a SOCKS proxy tunnel (SOCKS4, 4a, 5 into I2P) listening on HOST:PORT
    /// (`settunneltype socks`)
    #[arg(long, value_name = "HOST:PORT", conflicts_with_all = ["inbound", "http_proxy"])]
    socks: Option<String>,
    /// an HTTP proxy tunnel into I2P listening on HOST:PORT (`settunneltype httpproxy`)
    #[arg(
        long = "http-proxy",
        value_name = "HOST:PORT",
        conflicts_with = "inbound"
    )]
    http_proxy: Option<String>,
    /// do not send the peer destination line to the outbound application
    #[arg(long)]
    quiet: bool,
    /// a UDP tunnel (`settunneltype udp`): --in and --out are UDP endpoints
    /// (docs/udp.md)
    #[arg(long, conflicts_with_all = ["socks", "http_proxy"])]
    udp: bool,
    /// UDP tunnels: send everything from --in to this destination (b64, .b32.i2p or
    /// .i2p name; `option bob.udp.dest=`); without it each datagram names its own
    #[arg(long, value_name = "DEST", requires = "udp")]
    udp_dest: Option<String>,
    /// tunnel option key=value (repeatable)
    #[arg(long = "option", value_name = "KEY=VALUE")]
    options: Vec<String>,
    /// start the tunnel after creating it
    #[arg(long)]
    start: bool,
    /// replace an inactive tunnel of the same name (its keys are lost)
    #[arg(long)]
    replace: bool,
}

/// Why bobctl failed; decides the exit code.
#[derive(Debug)]
enum Failure {
    /// the server refused: an `ERROR` reply, no such tunnel, an existing tunnel
    Refused(String),
    /// bad arguments or local input
    Usage(String),
    /// connection or protocol trouble
    Transport(String),
}

impl Failure {
    fn exit_code(&self) -> u8 {
        match self {
            Self::Refused(_) => 1,
            Self::Usage(_) => 2,
            Self::Transport(_) => 3,
        }
    }

    fn message(&self) -> &str {
        match self {
            Self::Refused(text) | Self::Usage(text) | Self::Transport(text) => text,
        }
    }

    /// Appends a line (the outcome of a clean-up) to the message.
    fn with_note(self, note: &str) -> Self {
        let add = |text: String| format!("{text}\nbobctl: {note}");
        match self {
            Self::Refused(text) => Self::Refused(add(text)),
            Self::Usage(text) => Self::Usage(add(text)),
            Self::Transport(text) => Self::Transport(add(text)),
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Server { .. } => Self::Refused(e.to_string()),
            ClientError::BadRequest { .. } => Self::Usage(e.to_string()),
            ClientError::Io(_)
            | ClientError::Timeout(_)
            | ClientError::Closed
            | ClientError::NotBob(_)
            | ClientError::Protocol(_) => Self::Transport(e.to_string()),
        }
    }
}

type Bob = Client<TcpStream>;

/// A tunnel name from the command line.
fn nickname(name: &str) -> Result<Nickname, Failure> {
    name.parse()
        .map_err(|e| Failure::Usage(format!("invalid tunnel name {name:?}: {e}")))
}

/// `HOST:PORT` with the port split at the last colon (IPv6 literals may be bracketed).
fn endpoint(flag: &str, value: &str) -> Result<(Host, Port), Failure> {
    let bad = |why: String| Failure::Usage(format!("{flag} {value:?}: {why}"));
    let (host, port) = value
        .rsplit_once(':')
        .ok_or_else(|| bad("expected HOST:PORT".into()))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let host: Host = host.parse().map_err(|e| bad(format!("{e}")))?;
    let port: Port = port.parse().map_err(|e| bad(format!("{e}")))?;
    Ok((host, port))
}

/// Reads a key file with keytools' reader (binary blob or a base64 line; bounded size,
/// FIFOs and devices refused instead of read).
fn read_key_file(path: &Path) -> Result<PrivateKeys, Failure> {
    keytools::keyfile::read_key_file(path).map_err(|e| Failure::Usage(e.to_string()))
}

fn status_json(s: &TunnelStatus) -> serde_json::Value {
    serde_json::json!({
        "nickname": s.nickname,
        "starting": s.starting,
        "running": s.running,
        "stopping": s.stopping,
        "keys": s.keys,
        "quiet": s.quiet,
        "inport": s.inport,
        "inhost": s.inhost,
        "outport": s.outport,
        "outhost": s.outhost,
        // fields after OUTHOST (proxy and UDP tunnels), keys lower-cased
        "extra": s
            .extra
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), serde_json::Value::from(v.as_str())))
            .collect::<serde_json::Map<_, _>>(),
    })
}

fn state(s: &TunnelStatus) -> &'static str {
    if s.stopping {
        "stopping"
    } else if s.starting {
        "starting"
    } else if s.running {
        "running"
    } else {
        "stopped"
    }
}

fn side(host: &str, port: Option<u16>) -> String {
    match port {
        Some(port) => format!("{host}:{port}"),
        None => "-".to_owned(),
    }
}

/// A `last_error_at` time (seconds since the Unix epoch) as an HTTP date in UTC
/// ("Mon, 07 Dec 2026 03:14:02 GMT").
fn when(at: u64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(at))
}

fn print_status(status: &TunnelStatus, counters: Option<&TunnelCounters>, json: bool) {
    if json {
        let mut value = status_json(status);
        if let (Some(c), Some(object)) = (counters, value.as_object_mut()) {
            object.insert(
                "counters".into(),
                serde_json::json!({
                    "accepted": c.accepted,
                    "active": c.active,
                    "failed": c.failed,
                    "bytes_in": c.bytes_in,
                    "bytes_out": c.bytes_out,
                    "extra": c
                        .extra
                        .iter()
                        .map(|(k, v)| (k.clone(), serde_json::Value::from(*v)))
                        .collect::<serde_json::Map<String, serde_json::Value>>(),
                }),
            );
            if let Some((at, reason)) = &c.last_error {
                object.insert(
                    "last_start_error".into(),
                    serde_json::json!({ "at": at, "reason": reason }),
                );
            }
        }
        println!("{value}");
    } else {
        let port = |p: Option<u16>| p.map_or_else(|| "not_set".to_string(), |p| p.to_string());
        let s = status;
        println!(
            "nickname: {}\nstate:    {}\nkeys:     {}\nquiet:    {}\ninbound:  {}:{}\noutbound: {}:{}",
            s.nickname,
            state(s),
            s.keys,
            s.quiet,
            s.inhost,
            port(s.inport),
            s.outhost,
            port(s.outport)
        );
        for (key, value) in &s.extra {
            let key = format!("{}:", key.to_ascii_lowercase());
            println!("{key:<9} {value}");
        }
        if let Some(c) = counters {
            println!(
                "conns:    {} accepted, {} active, {} failed\nbytes:    {} in (from I2P), {} out (to I2P)",
                c.accepted, c.active, c.failed, c.bytes_in, c.bytes_out
            );
            if let Some((at, reason)) = &c.last_error {
                println!("error:    start failed {}: {reason}", when(*at));
            }
            let get = |key: &str| c.extra.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
            if let (Some(received), Some(sent)) = (get("udp_received"), get("udp_sent")) {
                let drops: Vec<String> = c
                    .extra
                    .iter()
                    .filter(|(k, v)| *v > 0 && k.starts_with("udp_dropped_"))
                    .map(|(k, v)| format!("{v} {}", &k["udp_dropped_".len()..]))
                    .collect();
                println!(
                    "datagrams: {received} received (from I2P), {sent} sent (to I2P), {} dropped{}, {} peers",
                    get("udp_dropped").unwrap_or(0),
                    if drops.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", drops.join(", "))
                    },
                    get("udp_peers").unwrap_or(0),
                );
            }
        }
    }
}

/// The `list` table: a header and one row per tunnel, columns padded to their widest
/// cell (the last one is not padded). An unset side shows `-`.
fn list_table(tunnels: &[TunnelStatus]) -> String {
    let rows: Vec<[String; 6]> = tunnels
        .iter()
        .map(|t| {
            [
                t.nickname.clone(),
                state(t).to_owned(),
                if t.keys { "yes" } else { "no" }.to_owned(),
                if t.quiet { "yes" } else { "no" }.to_owned(),
                side(&t.inhost, t.inport),
                side(&t.outhost, t.outport),
            ]
        })
        .collect();
    let header = ["NAME", "STATE", "KEYS", "QUIET", "INBOUND", "OUTBOUND"].map(str::to_owned);
    let mut widths = [0usize; 6];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                let pad = widths[i] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn print_dest(dest: &str, json: bool) {
    let b32 = Destination::from_base64(dest).map(|d| d.b32()).ok();
    if json {
        println!("{}", serde_json::json!({ "destination": dest, "b32": b32 }));
    } else {
        println!("{dest}");
    }
}

/// `getnick NAME`, with "no tunnel named NAME" for an `ERROR`.
async fn select(c: &mut Bob, name: &Nickname) -> Result<(), Failure> {
    match c.getnick(name).await {
        Err(ClientError::Server { .. }) => Err(no_tunnel(name)),
        other => Ok(other?),
    }
}

fn no_tunnel(name: &Nickname) -> Failure {
    Failure::Refused(format!("no tunnel named {name}"))
}

async fn connect(cli: &Cli) -> Result<Bob, Failure> {
    let timeout = Duration::from_secs(cli.timeout.max(1));
    Client::connect_timeout(cli.server.as_str(), timeout)
        .await
        .map_err(|e| match e {
            ClientError::Io(e) => {
                Failure::Transport(format!("cannot connect to {}: {e}", cli.server))
            }
            other => Failure::Transport(format!("{}: {other}", cli.server)),
        })
}

async fn run(cli: &Cli) -> Result<(), Failure> {
    // Everything is validated before the connection is opened.
    match &cli.command {
        Cmd::List => {
            let mut c = connect(cli).await?;
            let tunnels = c.list().await?;
            if cli.json {
                let all: Vec<_> = tunnels.iter().map(status_json).collect();
                println!("{}", serde_json::Value::Array(all));
            } else if !tunnels.is_empty() {
                print!("{}", list_table(&tunnels));
            }
            quit(c).await;
        }
        Cmd::Status { name } => {
            let name = nickname(name)?;
            let mut c = connect(cli).await?;
            let status = match c.status(&name).await {
                Err(ClientError::Server { .. }) => return Err(no_tunnel(&name)),
                other => other?,
            };
            // Counters are a bob-server extension: other servers answer `stats` with
            // their unknown-command error, and then the status is shown without them.
            match c.stats(Some(&name)).await {
                Ok(counters) => print_status(&status, Some(&counters), cli.json),
                Err(ClientError::Server { .. } | ClientError::Protocol(_)) => {
                    print_status(&status, None, cli.json);
                }
                Err(e) => {
                    print_status(&status, None, cli.json);
                    eprintln!("bobctl: counters unavailable: {e}");
                    return Ok(());
                }
            }
            quit(c).await;
        }
        Cmd::Create(args) => create(cli, args).await?,
        Cmd::Start { name } => simple(cli, name, Command::Start).await?,
        Cmd::Stop { name } => simple(cli, name, Command::Stop).await?,
        Cmd::Clear { name } => simple(cli, name, Command::Clear).await?,
        Cmd::Dest { name } => {
            let name = nickname(name)?;
            let mut c = connect(cli).await?;
            select(&mut c, &name).await?;
            let dest = c.getdest().await?;
            print_dest(&dest, cli.json);
            quit(c).await;
        }
        Cmd::Router { metrics } => {
            let timeout = Duration::from_secs(cli.timeout.max(1));
            let text = fetch_metrics(metrics, timeout).await?;
            let Some((kind, gauges)) = router_gauges(&text) else {
                return Err(Failure::Refused(format!(
                    "the server with metrics at {metrics} runs no router in its process \
                     (--router local or sam://…): nothing to show"
                )));
            };
            print_router(&kind, &gauges, cli.json);
        }
        Cmd::Raw { line } => {
            if line.chars().any(char::is_control) {
                return Err(Failure::Usage(
                    "raw: the line contains a line break or another control character; \
                     send one command per call"
                        .into(),
                ));
            }
            let mut c = connect(cli).await?;
            let replies = c.raw(line).await?;
            let lines: Vec<String> = replies
                .iter()
                .map(|r| String::from_utf8_lossy(&r.encode()).trim_end().to_string())
                .collect();
            if cli.json {
                println!("{}", serde_json::json!({ "replies": lines }));
            } else {
                for l in &lines {
                    println!("{l}");
                }
            }
            if let Some(Reply::Error(text)) = replies.iter().find(|r| matches!(r, Reply::Error(_)))
            {
                let word = line.split(' ').find(|w| !w.is_empty()).unwrap_or("");
                return Err(Failure::Refused(format!("{word}: ERROR {text}")));
            }
            quit(c).await;
        }
    }
    Ok(())
}

/// Largest metrics body read (the server caps its own at 4 MiB).
const MAX_METRICS_BODY: usize = 8 * 1024 * 1024;

/// `GET /metrics` from `addr`: the body, or why not.
async fn fetch_metrics(addr: &str, timeout: Duration) -> Result<String, Failure> {
    use http_body_util::{BodyExt, Empty, Limited};
    use hyper::body::Bytes;
    use hyper_util::rt::TokioIo;

    let unreachable = |e: &dyn std::fmt::Display| {
        Failure::Transport(format!("cannot read metrics from {addr}: {e}"))
    };
    let get = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| unreachable(&e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(&e))?;
        let conn = tokio::spawn(conn);
        let request = hyper::Request::get("/metrics")
            .header(hyper::header::HOST, addr)
            .body(Empty::<Bytes>::new())
            .map_err(|e| Failure::Usage(format!("--metrics {addr}: {e}")))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| unreachable(&e))?;
        if !response.status().is_success() {
            return Err(unreachable(&format!("HTTP status {}", response.status())));
        }
        let body = Limited::new(response.into_body(), MAX_METRICS_BODY)
            .collect()
            .await
            .map_err(|e| unreachable(&e))?
            .to_bytes();
        conn.abort();
        String::from_utf8(body.to_vec()).map_err(|_| unreachable(&"the body is not UTF-8"))
    };
    tokio::time::timeout(timeout, get)
        .await
        .map_err(|_| unreachable(&format!("no answer within {} s", timeout.as_secs())))?
}

/// The router gauges of a metrics body (`bob_router_*`), in order of appearance;
/// `kind` from `bob_router_info{kind="…"}`. `None` without `bob_router_info`: the
/// server runs no router in its process.
fn router_gauges(metrics: &str) -> Option<(String, Vec<(String, u64)>)> {
    let mut kind = None;
    let mut gauges = Vec::new();
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        if let Some(rest) = line.strip_prefix("bob_router_info{kind=\"") {
            kind = rest.split_once('"').map(|(k, _)| k.to_owned());
        } else if let Some(rest) = line.strip_prefix("bob_router_")
            && let Some((name, value)) = rest.split_once(' ')
            && let Ok(value) = value.trim().parse::<u64>()
        {
            gauges.push((name.to_owned(), value));
        }
    }
    kind.map(|k| (k, gauges))
}

/// `bobctl router`: the text for people, or a JSON object.
fn print_router(kind: &str, gauges: &[(String, u64)], json: bool) {
    let get = |name: &str| gauges.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
    if json {
        let mut object = serde_json::Map::new();
        object.insert("kind".into(), kind.into());
        for (name, value) in gauges {
            let value = if name == "sam_healthy" {
                serde_json::Value::Bool(*value != 0)
            } else {
                (*value).into()
            };
            object.insert(name.clone(), value);
        }
        println!("{}", serde_json::Value::Object(object));
        return;
    }
    let n = |name: &str| get(name).map_or_else(|| "?".to_owned(), |v| v.to_string());
    let built = get("tunnels_built").unwrap_or(0);
    let failed = get("tunnel_build_failures").unwrap_or(0);
    let success = if built + failed == 0 {
        "none finished yet".to_owned()
    } else {
        // counts stay far below 2^52: exact
        #[allow(clippy::cast_precision_loss)]
        let share = built as f64 * 100.0 / (built + failed) as f64;
        format!("{share:.0} % succeeded")
    };
    let healthy = get("sam_healthy") == Some(1);
    println!("router    {kind} (in the server's process)");
    println!(
        "SAM port  {}",
        if healthy { "healthy" } else { "NOT ANSWERING" }
    );
    println!(
        "routers   {} known at start, {} connected",
        n("known_routers"),
        n("connected_routers")
    );
    println!("tunnels   {built} built, {failed} failed ({success})");
    println!(
        "transit   {} tunnels for other routers",
        n("transit_tunnels")
    );
    if !healthy {
        println!("note      no tunnel can start while the SAM port does not answer");
    } else if built == 0 {
        println!("note      the router has built no tunnel yet: tunnels start after that");
    }
}

/// `getnick NAME` then `verb`; prints `NAME: <reply text>`.
async fn simple(cli: &Cli, name: &str, verb: Command) -> Result<(), Failure> {
    let name = nickname(name)?;
    let mut c = connect(cli).await?;
    select(&mut c, &name).await?;
    let text = c.ok(&verb).await?;
    if cli.json {
        println!(
            "{}",
            serde_json::json!({ "nickname": name.as_str(), "reply": text })
        );
    } else {
        println!("{name}: {text}");
    }
    quit(c).await;
    Ok(())
}

/// Ends the session politely; errors here do not matter any more.
async fn quit(c: Bob) {
    let _ = c.quit().await;
}

/// What `create` will send, validated.
struct Plan {
    name: Nickname,
    keys: Option<PrivateKeys>,
    key_type: Option<String>,
    inbound: Option<(Host, Port)>,
    outbound: Option<(Host, Port)>,
    options: Vec<TunnelOption>,
    /// `settunneltype` operand for a proxy or UDP tunnel
    tunnel_type: Option<&'static str>,
}

fn plan(args: &CreateArgs) -> Result<Plan, Failure> {
    let name = nickname(&args.name)?;
    let (tunnel_type, inbound) = match (&args.socks, &args.http_proxy) {
        (Some(addr), _) => (Some("socks"), Some(endpoint("--socks", addr)?)),
        (None, Some(addr)) => (Some("httpproxy"), Some(endpoint("--http-proxy", addr)?)),
        (None, None) => {
            if args.inbound.is_none() && args.outbound.is_none() {
                return Err(Failure::Usage(
                    "create needs --in HOST:PORT (a client tunnel), --out HOST:PORT (a \
                     server tunnel), or both; or --socks HOST:PORT / --http-proxy HOST:PORT \
                     (a proxy tunnel)"
                        .into(),
                ));
            }
            let inbound = args
                .inbound
                .as_deref()
                .map(|v| endpoint("--in", v))
                .transpose()?;
            (args.udp.then_some("udp"), inbound)
        }
    };
    let outbound = args
        .outbound
        .as_deref()
        .map(|v| endpoint("--out", v))
        .transpose()?;
    let mut options: Vec<TunnelOption> = args
        .options
        .iter()
        .map(|o| {
            o.parse()
                .map_err(|e| Failure::Usage(format!("--option {o:?}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    if let Some(dest) = &args.udp_dest {
        let option = format!("bob.udp.dest={dest}");
        options.push(
            option
                .parse()
                .map_err(|e| Failure::Usage(format!("--udp-dest {dest:?}: {e}")))?,
        );
    }
    let key_type = match args.newkeys.as_deref() {
        None | Some("") => None,
        Some(t) if t.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            return Err(Failure::Usage(format!(
                "--newkeys={t:?}: a key type holds no whitespace or control characters"
            )));
        }
        Some(t) => Some(t.to_owned()),
    };
    let keys = args.keys.as_deref().map(read_key_file).transpose()?;
    Ok(Plan {
        name,
        keys,
        key_type,
        inbound,
        outbound,
        options,
        tunnel_type,
    })
}

/// `create`: all or nothing. Refuses an existing tunnel unless `--replace`; when a step
/// after `setnick` fails, the tunnel it made is cleared again (only that one: `clear`
/// acts on the selected tunnel, which is ours).
async fn create(cli: &Cli, args: &CreateArgs) -> Result<(), Failure> {
    let plan = plan(args)?;
    let mut c = connect(cli).await?;
    if !args.replace && c.exists(&plan.name).await? {
        return Err(Failure::Refused(format!(
            "a tunnel named {} exists already (--replace replaces it if it is inactive)",
            plan.name
        )));
    }
    c.setnick(&plan.name).await?;
    match configure(&mut c, &plan, args).await {
        Ok(dest) => {
            print_dest(&dest, cli.json);
            quit(c).await;
            Ok(())
        }
        Err(failure) => {
            let note = match undo(cli, &mut c, &plan.name).await {
                Ok(()) => format!(
                    "the tunnel {} made by this create was removed again",
                    plan.name
                ),
                Err(e) => format!(
                    "the tunnel {} made by this create could not be removed: {}",
                    plan.name,
                    e.message()
                ),
            };
            Err(failure.with_note(&note))
        }
    }
}

/// The steps after `setnick`; returns the destination.
async fn configure(c: &mut Bob, plan: &Plan, args: &CreateArgs) -> Result<String, Failure> {
    let dest = match (&plan.keys, &plan.key_type) {
        (Some(keys), _) => c.setkeys(&keys.to_base64()).await?,
        (None, key_type) => c.newkeys(key_type.as_deref(), None).await?,
    };
    if let Some(kind) = plan.tunnel_type {
        c.ok(&Command::SetTunnelType(Some(kind.to_owned()))).await?;
    }
    if let Some((host, port)) = &plan.inbound {
        c.inhost(host).await?;
        c.inport(*port).await?;
    }
    if let Some((host, port)) = &plan.outbound {
        c.outhost(host).await?;
        c.outport(*port).await?;
    }
    if args.quiet {
        c.quiet(true).await?;
    }
    for option in &plan.options {
        c.option(option).await?;
    }
    if args.start {
        c.start().await?;
    }
    Ok(dest)
}

/// Removes the half-made tunnel: `clear` on this connection (the tunnel is still
/// selected), or on a new one after `getnick` when this one broke.
async fn undo(cli: &Cli, c: &mut Bob, name: &Nickname) -> Result<(), Failure> {
    match c.clear().await {
        Ok(()) => Ok(()),
        Err(ClientError::Server { text, .. }) => {
            Err(Failure::Refused(format!("clear: ERROR {text}")))
        }
        Err(_) => {
            let mut fresh = connect(cli).await?;
            select(&mut fresh, name).await?;
            fresh.clear().await?;
            quit(fresh).await;
            Ok(())
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // hidden `--generate-completions SHELL` / `--generate-man` (scripts/gen-completions.sh)
    if let Some(code) =
        cli_docs::handle_generate_args("bobctl", <Cli as clap::CommandFactory>::command)
    {
        return code;
    }
    let cli = Cli::parse();
    match run(&cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("bobctl: {}", failure.message());
            ExitCode::from(failure.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(name: &str, inport: Option<u16>, outport: Option<u16>) -> TunnelStatus {
        TunnelStatus {
            nickname: name.into(),
            running: inport.is_some(),
            keys: true,
            inhost: "127.0.0.1".into(),
            inport,
            outhost: "localhost".into(),
            extra: Vec::new(),
            outport,
            ..TunnelStatus::default()
        }
    }

    #[test]
    fn list_is_an_aligned_table() {
        let table = list_table(&[
            status("a", Some(8080), None),
            status("a-much-longer-name", None, Some(80)),
        ]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert_eq!(
            lines[0],
            "NAME                STATE    KEYS  QUIET  INBOUND         OUTBOUND"
        );
        assert_eq!(
            lines[1],
            "a                   running  yes   no     127.0.0.1:8080  -"
        );
        assert_eq!(
            lines[2],
            "a-much-longer-name  stopped  yes   no     -               localhost:80"
        );
    }

    #[test]
    fn endpoints() {
        let (h, p) = endpoint("--out", "[::1]:80").unwrap();
        assert_eq!((h.as_str(), p.get()), ("::1", 80));
        for bad in ["nohostport", "h:0", "h:99999", ":80", "a b:80", "h:8x"] {
            let err = endpoint("--out", bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
        }
    }

    #[test]
    fn router_gauges_are_read_from_the_metrics_text() {
        let text = "# HELP bob_router_info x\n# TYPE bob_router_info gauge\n\
bob_router_info{kind=\"devnet\"} 1\n# HELP bob_router_known_routers y\n\
bob_router_known_routers 5\nbob_router_sam_healthy 1\nbob_tunnels 2\n\
bob_tunnel_running{tunnel=\"bob_router_x\"} 1\n";
        let (kind, gauges) = router_gauges(text).unwrap();
        assert_eq!(kind, "devnet");
        assert_eq!(
            gauges,
            [
                ("known_routers".to_owned(), 5),
                ("sam_healthy".to_owned(), 1)
            ]
        );
        // a server without a router in its process has no bob_router_info
        assert!(router_gauges("bob_tunnels 0\n").is_none());
    }
}
