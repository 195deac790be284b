//! `bobctl`: drive any BOB server from shell scripts.
//!
//! Every subcommand opens one control connection, sends the BOB commands it needs, and
//! stops at the first `ERROR` reply: the server's text goes to stderr and the exit code
//! is non-zero. Output is made for people by default and for programs with `--json`.
//!
//! Exit codes: 0 success, 1 the server answered `ERROR …`, 2 usage or local error
//! (bad arguments, unreadable key file), 3 the server could not be reached or broke the
//! protocol.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bob_codec::{Reply, TunnelCounters, TunnelStatus};
use clap::{Parser, Subcommand};
use keytools::Destination;

/// Longest reply line bobctl accepts (a key blob is well under this).
const MAX_REPLY_LINE: usize = 64 * 1024;

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
    /// list every tunnel
    List,
    /// show one tunnel, with its connection and byte counters when the server has them
    Status {
        /// tunnel nickname
        name: String,
    },
    /// create (or replace an inactive) tunnel, optionally starting it
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
    /// send one raw command line and print the reply lines
    Raw {
        /// the command line, e.g. 'lookup example.i2p'
        line: String,
    },
}

#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// tunnel nickname
    name: String,
    /// key file (binary i2pd/Java key file, or a base64 KEYS line)
    #[arg(long, conflicts_with = "newkeys")]
    keys: Option<PathBuf>,
    /// let the server make new keys, optionally of this signature type (i2pd extension)
    #[arg(long, num_args = 0..=1, default_missing_value = "")]
    newkeys: Option<String>,
    /// inbound side: listen on HOST:PORT for applications that want to reach I2P
    #[arg(long = "in", value_name = "HOST:PORT")]
    inbound: Option<String>,
    /// outbound side: hand incoming I2P streams to HOST:PORT
    #[arg(long = "out", value_name = "HOST:PORT")]
    outbound: Option<String>,
    /// do not send the peer destination line to the outbound application
    #[arg(long)]
    quiet: bool,
    /// tunnel option key=value (repeatable)
    #[arg(long = "option", value_name = "KEY=VALUE")]
    options: Vec<String>,
    /// start the tunnel after creating it
    #[arg(long)]
    start: bool,
}

/// Why bobctl failed; decides the exit code.
#[derive(Debug)]
enum Failure {
    /// the server said `ERROR <text>` to `command`
    Server { command: String, text: String },
    /// bad arguments or local input
    Usage(String),
    /// connection or protocol trouble
    Transport(String),
}

impl Failure {
    fn exit_code(&self) -> u8 {
        match self {
            Self::Server { .. } => 1,
            Self::Usage(_) => 2,
            Self::Transport(_) => 3,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Server { command, text } => write!(f, "{command}: ERROR {text}"),
            Self::Usage(text) | Self::Transport(text) => f.write_str(text),
        }
    }
}

/// One control connection, blocking; replies decoded with bob-codec.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(server: &str, timeout: Duration) -> Result<Self, Failure> {
        let addrs: Vec<_> = server
            .to_socket_addrs()
            .map_err(|e| Failure::Transport(format!("cannot resolve {server}: {e}")))?
            .collect();
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(stream) => {
                    let t = Some(timeout);
                    stream
                        .set_read_timeout(t)
                        .and_then(|()| stream.set_write_timeout(t))
                        .map_err(|e| Failure::Transport(e.to_string()))?;
                    let writer = stream
                        .try_clone()
                        .map_err(|e| Failure::Transport(e.to_string()))?;
                    let mut client = Self {
                        reader: BufReader::new(stream),
                        writer,
                    };
                    client.greeting(server)?;
                    return Ok(client);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(Failure::Transport(match last {
            Some(e) => format!("cannot connect to {server}: {e}"),
            None => format!("cannot resolve {server}: no addresses"),
        }))
    }

    fn greeting(&mut self, server: &str) -> Result<(), Failure> {
        let first = self.line()?;
        if !first.starts_with("BOB ") {
            return Err(Failure::Transport(format!(
                "{server} is not a BOB server (greeting {first:?})"
            )));
        }
        match Reply::decode(&self.line()?) {
            Ok(Reply::Ok(_)) => Ok(()),
            other => Err(Failure::Transport(format!(
                "unexpected greeting reply {other:?}"
            ))),
        }
    }

    /// Reads one `\n`-terminated line (bounded), without the terminator.
    fn line(&mut self) -> Result<String, Failure> {
        let mut buf = Vec::new();
        let n = (&mut self.reader)
            .take(MAX_REPLY_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| Failure::Transport(format!("reading from server: {e}")))?;
        if n == 0 {
            return Err(Failure::Transport("server closed the connection".into()));
        }
        if buf.last() != Some(&b'\n') {
            return Err(Failure::Transport(if buf.len() > MAX_REPLY_LINE {
                "reply line too long".into()
            } else {
                "server closed the connection mid-line".into()
            }));
        }
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        String::from_utf8(buf).map_err(|_| Failure::Transport("reply is not UTF-8".into()))
    }

    fn send(&mut self, line: &str) -> Result<(), Failure> {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|e| Failure::Transport(format!("writing to server: {e}")))
    }

    fn reply(&mut self) -> Result<Reply, Failure> {
        let line = self.line()?;
        Reply::decode(&line).map_err(|e| Failure::Transport(e.to_string()))
    }

    /// Sends `line` and expects one `OK` reply; returns its text.
    fn ok(&mut self, line: &str) -> Result<String, Failure> {
        self.send(line)?;
        match self.reply()? {
            Reply::Ok(text) => Ok(text.unwrap_or_default()),
            Reply::Error(text) => Err(Failure::Server {
                command: command_word(line),
                text,
            }),
            Reply::Data(_) => Err(Failure::Transport(format!(
                "unexpected DATA reply to {}",
                command_word(line)
            ))),
        }
    }

    /// Sends `line` and collects replies up to and including the first `OK`/`ERROR`.
    fn until_done(&mut self, line: &str) -> Result<Vec<Reply>, Failure> {
        self.send(line)?;
        let mut replies = Vec::new();
        loop {
            let reply = self.reply()?;
            let done = !matches!(reply, Reply::Data(_));
            replies.push(reply);
            if done {
                return Ok(replies);
            }
        }
    }

    /// The `stats` extension: `Ok(None)` when the server does not know it (an `ERROR`
    /// reply) or answers something that is not a counters record.
    fn counters(&mut self, name: &str) -> Result<Option<TunnelCounters>, Failure> {
        self.send(&format!("stats {name}"))?;
        Ok(TunnelCounters::from_reply(&self.reply()?).ok())
    }

    /// Ends the session politely; errors here do not matter any more.
    fn quit(mut self) {
        let _ = self.send("quit");
        let _ = self.line();
    }
}

/// Only the command word of a line, so that key blobs never reach an error message.
fn command_word(line: &str) -> String {
    line.split_whitespace().next().unwrap_or("").to_string()
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
    })
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
                }),
            );
        }
        println!("{value}");
    } else {
        println!("{}", status_text(status));
        if let Some(c) = counters {
            println!(
                "conns:    {} accepted, {} active, {} failed\nbytes:    {} in (from I2P), {} out (to I2P)",
                c.accepted, c.active, c.failed, c.bytes_in, c.bytes_out
            );
        }
    }
}

fn status_text(s: &TunnelStatus) -> String {
    let port = |p: Option<u16>| p.map_or_else(|| "not_set".to_string(), |p| p.to_string());
    let state = if s.stopping {
        "stopping"
    } else if s.starting {
        "starting"
    } else if s.running {
        "running"
    } else {
        "stopped"
    };
    format!(
        "nickname: {}\nstate:    {state}\nkeys:     {}\nquiet:    {}\ninbound:  {}:{}\noutbound: {}:{}",
        s.nickname,
        s.keys,
        s.quiet,
        s.inhost,
        port(s.inport),
        s.outhost,
        port(s.outport)
    )
}

fn parse_status(record: &str) -> Result<TunnelStatus, Failure> {
    record
        .parse::<TunnelStatus>()
        .map_err(|e| Failure::Transport(e.to_string()))
}

/// `HOST:PORT` with the port split at the last colon (IPv6 literals may be bracketed).
fn split_endpoint(value: &str) -> Result<(String, String), Failure> {
    let (host, port) = value
        .rsplit_once(':')
        .ok_or_else(|| Failure::Usage(format!("{value:?}: expected HOST:PORT")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(Failure::Usage(format!("{value:?}: bad host")));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok((host.to_string(), port.to_string())),
        _ => Err(Failure::Usage(format!("{value:?}: port must be 1..65535"))),
    }
}

fn run(cli: &Cli) -> Result<(), Failure> {
    let timeout = Duration::from_secs(cli.timeout.max(1));
    let mut c = Client::connect(&cli.server, timeout)?;
    match &cli.command {
        Cmd::List => {
            let replies = c.until_done("list")?;
            let mut tunnels = Vec::new();
            for reply in replies {
                match reply {
                    Reply::Data(record) => tunnels.push(parse_status(&record)?),
                    Reply::Ok(_) => {}
                    Reply::Error(text) => {
                        return Err(Failure::Server {
                            command: "list".into(),
                            text,
                        });
                    }
                }
            }
            if cli.json {
                let all: Vec<_> = tunnels.iter().map(status_json).collect();
                println!("{}", serde_json::Value::Array(all));
            } else {
                for t in &tunnels {
                    println!("{}", status_text(t).replace('\n', "  "));
                }
            }
        }
        Cmd::Status { name } => {
            let text = c.ok(&format!("status {name}"))?;
            let record = text.strip_prefix("DATA ").unwrap_or(&text);
            let status = parse_status(record)?;
            // Counters are a bob-server extension: other servers answer `stats` with
            // their unknown-command error, and then the status is shown without them.
            let counters = match c.counters(name) {
                Ok(counters) => counters,
                Err(failure) => {
                    print_status(&status, None, cli.json);
                    eprintln!("bobctl: counters unavailable: {failure}");
                    return Ok(());
                }
            };
            print_status(&status, counters.as_ref(), cli.json);
        }
        Cmd::Create(args) => create(&mut c, args, cli.json)?,
        Cmd::Start { name } => simple(&mut c, name, "start", cli.json)?,
        Cmd::Stop { name } => simple(&mut c, name, "stop", cli.json)?,
        Cmd::Clear { name } => simple(&mut c, name, "clear", cli.json)?,
        Cmd::Dest { name } => {
            c.ok(&format!("getnick {name}"))?;
            let dest = c.ok("getdest")?;
            print_dest(&dest, cli.json);
        }
        Cmd::Raw { line } => {
            let replies = c.until_done(line)?;
            let mut failed = None;
            let lines: Vec<String> = replies
                .iter()
                .map(|r| String::from_utf8_lossy(&r.encode()).trim_end().to_string())
                .collect();
            for r in &replies {
                if let Reply::Error(text) = r {
                    failed = Some(text.clone());
                }
            }
            if cli.json {
                println!("{}", serde_json::json!({ "replies": lines }));
            } else {
                for l in &lines {
                    println!("{l}");
                }
            }
            if let Some(text) = failed {
                return Err(Failure::Server {
                    command: command_word(line),
                    text,
                });
            }
        }
    }
    c.quit();
    Ok(())
}

fn simple(c: &mut Client, name: &str, verb: &str, json: bool) -> Result<(), Failure> {
    c.ok(&format!("getnick {name}"))?;
    let text = c.ok(verb)?;
    if json {
        println!("{}", serde_json::json!({ "nickname": name, "reply": text }));
    } else {
        println!("{name}: {text}");
    }
    Ok(())
}

fn print_dest(dest: &str, json: bool) {
    let b32 = Destination::from_base64(dest).map(|d| d.b32()).ok();
    if json {
        println!("{}", serde_json::json!({ "destination": dest, "b32": b32 }));
    } else {
        println!("{dest}");
    }
}

fn create(c: &mut Client, args: &CreateArgs, json: bool) -> Result<(), Failure> {
    // Validate everything locally before the first command changes server state.
    let inbound = args.inbound.as_deref().map(split_endpoint).transpose()?;
    let outbound = args.outbound.as_deref().map(split_endpoint).transpose()?;
    for option in &args.options {
        if option.contains(char::is_whitespace) || !option.contains('=') {
            return Err(Failure::Usage(format!(
                "option {option:?}: expected KEY=VALUE without spaces"
            )));
        }
    }
    let keys = args
        .keys
        .as_deref()
        .map(bob_server::storage::keyfile::read_key_file)
        .transpose()
        .map_err(|e| Failure::Usage(e.to_string()))?;

    c.ok(&format!("setnick {}", args.name))?;
    let dest = match (&keys, &args.newkeys) {
        (Some(keys), _) => c.ok(&format!("setkeys {}", keys.to_base64()))?,
        (None, Some(t)) if !t.is_empty() => c.ok(&format!("newkeys {t}"))?,
        (None, _) => c.ok("newkeys")?,
    };
    if let Some((host, port)) = &inbound {
        c.ok(&format!("inhost {host}"))?;
        c.ok(&format!("inport {port}"))?;
    }
    if let Some((host, port)) = &outbound {
        c.ok(&format!("outhost {host}"))?;
        c.ok(&format!("outport {port}"))?;
    }
    if args.quiet {
        c.ok("quiet true")?;
    }
    for option in &args.options {
        c.ok(&format!("option {option}"))?;
    }
    if args.start {
        c.ok("start")?;
    }
    print_dest(&dest, json);
    Ok(())
}

fn main() -> ExitCode {
    // hidden `--generate-completions SHELL` / `--generate-man` (scripts/gen-completions.sh)
    if let Some(code) =
        bob_server::cli_docs::handle_generate_args("bobctl", <Cli as clap::CommandFactory>::command)
    {
        return code;
    }
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("bobctl: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}
