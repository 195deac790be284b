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
use bob_codec::{Command, Reply};
use clap::{Parser, Subcommand};
use keytools::PrivateKeys;
use tokio::net::TcpStream;

mod output;
mod router;

use output::{list_table, print_dest, print_status, status_json};
use router::{fetch_metrics, print_router, router_gauges};

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
mod tests;
