//! `bob-server`: the BOB control server.
//!
//! Listens on loopback (`127.0.0.1:2827` by default), speaks Java BOB's protocol (or
//! i2pd's reply strings with `--dialect i2pd`), and runs tunnels on the in-process
//! `local` core (reaches no I2P network) or on a real router through SAMv3.
//!
//! Settings come from flags, `BOB_*` environment variables, a TOML file (`--config`)
//! and built-in defaults, in that order of precedence (see `bob_server::config::file`).
//! `--tunnels FILE` declares tunnels that are created and started at boot.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::num::{NonZeroU64, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bob_server::backend::StreamingCore;
use bob_server::backend::embedded::settings::RouterSettings;
use bob_server::backend::local::LocalCore;
use bob_server::backend::sam::SamCore;
use bob_server::config::file::{
    DialectName, RouterUrl, SamUdpAddr, Settings, SigTypeName, TunnelOptions,
};
use bob_server::config::tunnels as tunnels_file;
use bob_server::config::values::parse_listen_addr;
use bob_server::config::{BackendConfig, Config};
use bob_server::server::{Server, ServerError};
use bob_server::service::boot;
use clap::builder::BoolishValueParser;
use clap::{CommandFactory, Parser, ValueEnum};
use tokio_util::sync::CancellationToken;
use tracing::info;
use tracing_subscriber::EnvFilter;

/// What the server logs at start and `--help` says about the backend.
macro_rules! backend_note {
    () => {
        "Without --router the backend is `local`: an in-process network that reaches NO I2P \
network; tunnels of this server can only reach each other. With --router \
sam://HOST:PORT tunnels run on a real I2P router (i2pd, Java I2P) through SAMv3; with \
--router embedded on an emissary router in this process (the real network), with --router \
devnet on a private network of emissary routers in this process that reaches NO real I2P \
network (both need the `embedded-router` build feature)."
    };
}

/// The text after `--help`'s option list: the backend, then where settings come from.
const AFTER_HELP: &str = concat!(
    backend_note!(),
    "

Every option can also be set by the environment variable named after it (BOB_LISTEN, \
BOB_STATE_DIR, ...) or in the --config file (listen = \"...\", state-dir = \"...\"); a \
flag beats the environment, which beats the file, which beats the built-in default. \
--print-config shows the result."
);

/// Extra time a declared tunnel may take to start, over the session timeout.
const BOOT_MARGIN: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DialectArg {
    /// Java I2P BOB reply strings (what most clients were written against)
    Java,
    /// i2pd BOB reply strings (same semantics)
    I2pd,
}

/// BOB (Basic Open Bridge) server for I2P.
#[derive(Debug, Parser)]
#[command(name = "bob-server", version, about, after_help = AFTER_HELP)]
struct Args {
    /// TOML configuration file; flags and BOB_* variables override its values
    #[arg(long, value_name = "FILE", env = "BOB_CONFIG")]
    config: Option<PathBuf>,

    /// Print the effective configuration as TOML (a valid --config file) and exit
    #[arg(long)]
    print_config: bool,

    /// Control address to listen on: HOST:PORT or PORT (on 127.0.0.1); non-loopback needs
    /// --allow-remote [default: 127.0.0.1:2827]
    #[arg(long, value_name = "ADDR", env = "BOB_LISTEN", value_parser = parse_listen_addr)]
    listen: Option<SocketAddr>,

    /// Allow non-loopback --listen and --metrics addresses (BOB has no authentication)
    #[arg(
        long,
        env = "BOB_ALLOW_REMOTE",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = BoolishValueParser::new(),
    )]
    allow_remote: Option<bool>,

    /// Reply strings to speak; never changes what a command does [default: java]
    #[arg(long, value_enum, env = "BOB_DIALECT")]
    dialect: Option<DialectArg>,

    /// Signature type `newkeys` makes without an argument (code or name:
    /// 0/DSA_SHA1, 1, 2, 3, 7/EdDSA_SHA512_Ed25519, 11) [default: DSA_SHA1]
    #[arg(long, value_name = "TYPE", env = "BOB_NEWKEYS_TYPE", value_parser = parse_sig_arg)]
    newkeys_type: Option<SigTypeName>,

    /// Most simultaneous control connections [default: 64]
    #[arg(long, value_name = "N", env = "BOB_MAX_CONNECTIONS")]
    max_connections: Option<NonZeroUsize>,

    /// Most tunnels in the registry [default: 1024]
    #[arg(long, value_name = "N", env = "BOB_MAX_TUNNELS")]
    max_tunnels: Option<NonZeroUsize>,

    /// Most bytes all tunnels' names, hosts and options may take together (plus 1 KiB
    /// per tunnel and 64 bytes per option) [default: 33554432]
    #[arg(long, value_name = "BYTES", env = "BOB_MAX_REGISTRY_BYTES")]
    max_registry_bytes: Option<NonZeroUsize>,

    /// hosts.txt (`name=base64dest` lines) for name lookups of the local backend
    #[arg(
        long,
        value_name = "FILE",
        env = "BOB_HOSTS",
        conflicts_with = "router"
    )]
    hosts: Option<PathBuf>,

    /// Run tunnels on a real I2P router through its SAMv3 bridge (`sam://127.0.0.1:7656`;
    /// also HOST:PORT or PORT), on an emissary router in this process (`embedded`), or on
    /// a private in-process network of N emissary routers (`devnet`, `devnet=N`; reaches
    /// no real network)
    #[arg(long, value_name = "sam://HOST:PORT|embedded|devnet[=N]", env = "BOB_ROUTER", value_parser = parse_router)]
    router: Option<RouterUrl>,

    /// The SAM bridge's UDP port, where UDP tunnels send their datagrams (HOST:PORT or
    /// PORT; needs --router sam://…) [default: the SAM port − 1, i2pd's; Java I2P: 7655]
    #[arg(long, value_name = "HOST:PORT", env = "BOB_SAM_UDP", value_parser = parse_sam_udp)]
    sam_udp: Option<SamUdpAddr>,

    #[command(flatten)]
    router_settings: RouterSettings,

    /// Default option for every tunnel, under each tunnel's own `option`s (repeatable;
    /// BOB_TUNNEL_OPTIONS takes several separated by spaces)
    #[arg(
        long = "tunnel-option",
        value_name = "KEY=VALUE",
        env = "BOB_TUNNEL_OPTIONS",
        value_delimiter = ' ',
        value_parser = TunnelOptions::parse_pair,
    )]
    tunnel_options: Vec<(String, String)>,

    /// Seconds the backend may take to create a tunnel's session [default: 90]
    #[arg(long, value_name = "SECS", env = "BOB_SESSION_TIMEOUT")]
    session_timeout: Option<NonZeroU64>,

    /// Seconds `start` waits for the tunnel's session before answering `OK tunnel
    /// starting` anyway (the session keeps coming up; 0 answers at once) [default: 3]
    #[arg(long, value_name = "SECS", env = "BOB_START_WAIT")]
    start_wait: Option<u64>,

    /// Seconds a `lookup` or `ping` may take [default: 60]
    #[arg(long, value_name = "SECS", env = "BOB_LOOKUP_TIMEOUT")]
    lookup_timeout: Option<NonZeroU64>,

    /// Seconds an application connecting to an inbound port has to send its
    /// destination line [default: 60]
    #[arg(long, value_name = "SECS", env = "BOB_FIRST_LINE_TIMEOUT")]
    first_line_timeout: Option<NonZeroU64>,

    /// Seconds an inbound connection to a destination may take to open [default: 60]
    #[arg(long, value_name = "SECS", env = "BOB_CONNECT_TIMEOUT")]
    connect_timeout: Option<NonZeroU64>,

    /// Most connections one side (inbound or outbound) of a tunnel serves at once; more
    /// wait in the kernel's or the session's queue [default: 1024]
    #[arg(long, value_name = "N", env = "BOB_MAX_TUNNEL_CONNECTIONS")]
    max_tunnel_connections: Option<NonZeroUsize>,

    /// Save the tunnel registry (keys included, mode 0600) in DIR on every change and
    /// restore it, restarting running tunnels, on start
    #[arg(long, value_name = "DIR", env = "BOB_STATE_DIR")]
    state_dir: Option<PathBuf>,

    /// Serve Prometheus metrics at http://ADDR/metrics and a status page at http://ADDR/
    /// (HOST:PORT or PORT, e.g. `127.0.0.1:9100`; non-loopback needs --allow-remote)
    #[arg(long = "metrics", value_name = "ADDR", env = "BOB_METRICS", value_parser = parse_listen_addr)]
    metrics: Option<SocketAddr>,

    /// Tunnels file: tunnels created (keys made if missing) and started at boot
    #[arg(long, value_name = "FILE", env = "BOB_TUNNELS")]
    tunnels: Option<PathBuf>,

    /// Only this user (name or UID) may use the control port; others get `ERROR access
    /// denied` before the greeting (repeatable; BOB_ALLOW_USERS takes several separated by
    /// spaces or commas; Linux) [default: every user]
    #[arg(long = "allow-user", value_name = "USER|UID", env = "BOB_ALLOW_USERS")]
    allow_users: Vec<String>,

    /// Also serve the control protocol on this Unix socket (created mode 0600, removed at
    /// exit; --allow-user checks its clients by their socket credentials)
    #[arg(long, value_name = "PATH", env = "BOB_CONTROL_SOCKET")]
    control_socket: Option<PathBuf>,
}

fn parse_sig_arg(s: &str) -> Result<SigTypeName, String> {
    s.parse()
}

fn parse_router(s: &str) -> Result<RouterUrl, String> {
    s.parse()
}

fn parse_sam_udp(s: &str) -> Result<SamUdpAddr, String> {
    s.parse()
}

impl Args {
    /// The flag-and-environment layer (clap already let flags beat variables).
    fn settings(&self) -> Settings {
        Settings {
            listen: self.listen,
            allow_remote: self.allow_remote,
            dialect: self.dialect.map(|d| match d {
                DialectArg::Java => DialectName::Java,
                DialectArg::I2pd => DialectName::I2pd,
            }),
            router: self.router.clone(),
            sam_udp: self.sam_udp.clone(),
            hosts: self.hosts.clone(),
            newkeys_type: self.newkeys_type,
            session_timeout: self.session_timeout,
            start_wait: self.start_wait,
            max_connections: self.max_connections,
            max_tunnels: self.max_tunnels,
            max_registry_bytes: self.max_registry_bytes,
            lookup_timeout: self.lookup_timeout,
            first_line_timeout: self.first_line_timeout,
            connect_timeout: self.connect_timeout,
            max_tunnel_connections: self.max_tunnel_connections,
            state_dir: self.state_dir.clone(),
            metrics: self.metrics,
            tunnels: self.tunnels.clone(),
            allow_users: (!self.allow_users.is_empty()).then(|| {
                bob_server::access::split_users(self.allow_users.iter().map(String::as_str))
            }),
            control_socket: self.control_socket.clone(),
            tunnel_options: (!self.tunnel_options.is_empty())
                .then(|| TunnelOptions(self.tunnel_options.iter().cloned().collect())),
            embedded_router: (!self.router_settings.is_empty())
                .then(|| self.router_settings.clone()),
        }
    }

    /// Flags and environment over the file (if any) over the built-in defaults.
    fn effective(&self) -> anyhow::Result<Settings> {
        let file = match &self.config {
            Some(path) => Settings::load(path)?,
            None => Settings::default(),
        };
        let set = self.settings().over(file);
        let builtin = set.builtin_for();
        Ok(set.over(builtin))
    }
}

/// Builds the core the configuration asks for.
fn make_core(backend: &BackendConfig) -> anyhow::Result<Arc<dyn StreamingCore>> {
    match backend {
        BackendConfig::Local { hosts: None } => Ok(Arc::new(LocalCore::new())),
        BackendConfig::Local { hosts: Some(path) } => {
            let core = LocalCore::load_hosts_file(path)
                .with_context(|| format!("loading hosts file {}", path.display()))?;
            Ok(Arc::new(core))
        }
        BackendConfig::Sam(sam) => Ok(Arc::new(SamCore::new(sam.clone()))),
        BackendConfig::Embedded(_) => anyhow::bail!("the embedded router is started by serve()"),
    }
}

/// How long a declared tunnel may take to start.
fn boot_deadline(config: &Config) -> Duration {
    config.tunnel_limits.session_timeout + BOOT_MARGIN
}

fn main() -> ExitCode {
    if let Some(code) = cli_docs::handle_generate_args("bob-server", Args::command) {
        return code;
    }
    let args = Args::try_parse().unwrap_or_else(|e| {
        if let Some(message) = blame_variable(&e, std::env::args_os().skip(1)) {
            eprintln!("bob-server: {message}");
            std::process::exit(2);
        }
        e.exit()
    });
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bob-server: {e:#}");
            if let Some(hint) = hint(&e) {
                eprintln!("bob-server: hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

/// clap reports a bad value by the flag's name even when it came from the flag's
/// environment variable (`BOB_MAX_TUNNELS=abc` → "invalid value 'abc' for
/// '--max-tunnels <N>'"). When the flag is not on the command line, the message names
/// the variable instead.
fn blame_variable(
    e: &clap::Error,
    argv: impl Iterator<Item = std::ffi::OsString>,
) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        e.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return None;
    }
    let Some(ContextValue::String(shown)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    // "--max-tunnels <N>" -> "max-tunnels"
    let long = shown
        .strip_prefix("--")?
        .split([' ', '='])
        .next()?
        .to_owned();
    let argv: Vec<_> = argv.collect();
    let on_command_line = argv.iter().any(|a| {
        a.to_str()
            .is_some_and(|a| a == format!("--{long}") || a.starts_with(&format!("--{long}=")))
    });
    if on_command_line {
        return None;
    }
    let cmd = Args::command();
    let arg = cmd
        .get_arguments()
        .find(|a| a.get_long() == Some(long.as_str()))?;
    let var = arg.get_env()?.to_string_lossy().into_owned();
    let value = std::env::var_os(&var)?;
    // clap's own reason, the last part of its first line
    let rendered = e.to_string();
    let first = rendered.lines().next().unwrap_or_default();
    let reason = first.rsplit_once("': ").map_or("", |(_, r)| r);
    let mut message = format!(
        "invalid value {:?} in the environment variable {var} (the --{long} setting)",
        value.to_string_lossy()
    );
    if !reason.is_empty() {
        message.push_str(": ");
        message.push_str(reason);
    }
    Some(message)
}

/// What the user can do about a fatal error, when there is something.
fn hint(e: &anyhow::Error) -> Option<String> {
    use std::io::ErrorKind;
    let server = e.chain().find_map(|c| c.downcast_ref::<ServerError>())?;
    match server {
        ServerError::Bind { addr, error } if error.kind() == ErrorKind::AddrInUse => {
            let mut hint = format!(
                "another program listens on {addr}; give bob-server another control address \
                 with --listen (BOB_LISTEN, `listen` in the config file), e.g. --listen 127.0.0.1:{}",
                addr.port().wrapping_add(1).max(1)
            );
            if addr.port() == bob_server::config::DEFAULT_PORT {
                hint.push_str(
                    ", or stop the other BOB server: i2pd's own BOB listens on 2827 when \
                     enabled (`[bob] enabled = true` in i2pd.conf)",
                );
            }
            Some(hint)
        }
        ServerError::Bind { addr, error } if error.kind() == ErrorKind::PermissionDenied => {
            Some(format!(
                "port {} needs privileges; use a port above 1023 with --listen",
                addr.port()
            ))
        }
        ServerError::MetricsBind { addr, error } if error.kind() == ErrorKind::AddrInUse => {
            Some(format!(
                "another program listens on {addr}; choose another metrics address with --metrics"
            ))
        }
        _ => None,
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let settings = args.effective()?.clamped();
    let tunnels_path = settings.tunnels.clone();
    let config = settings.clone().into_config()?;
    config.validate()?;
    let decls = match &tunnels_path {
        Some(path) => tunnels_file::load(path)?,
        None => Vec::new(),
    };
    if args.print_config {
        let absolute = settings
            .with_absolute_paths()
            .context("finding the current directory")?;
        print!("{}", absolute.to_toml());
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // colour codes only for a terminal, not for journald, files or pipes
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(serve(config, tunnels_path.as_deref(), decls))
}

async fn serve(
    config: Config,
    tunnels_path: Option<&Path>,
    decls: Vec<tunnels_file::TunnelDecl>,
) -> anyhow::Result<()> {
    let embedded = match &config.backend {
        BackendConfig::Embedded(e) => Some(
            bob_server::backend::embedded::start(e, config.state_dir.as_deref())
                .await
                .context("starting the embedded router")?,
        ),
        _ => None,
    };
    let core = match &embedded {
        Some(started) => Arc::clone(&started.core),
        None => make_core(&config.backend)?,
    };
    match &config.backend {
        BackendConfig::Sam(sam) => info!(
            backend = core.name(),
            "tunnels run on the I2P router at sam://{} (SAMv3)", sam.addr
        ),
        BackendConfig::Local { .. } | BackendConfig::Embedded(_) => {
            info!(backend = core.name(), backend_note!());
        }
    }
    let failed = embedded
        .as_ref()
        .map(|e| e.failed.clone())
        .unwrap_or_default();
    let result = serve_on(config, core, tunnels_path, decls, failed.clone()).await;
    if let Some(started) = embedded {
        // after the BOB listeners: gracefully within the grace, then at once
        started.shutdown().await;
    }
    if failed.is_cancelled() {
        anyhow::bail!("the embedded router's SAM server stopped answering; tunnels were down");
    }
    result
}

async fn serve_on(
    config: Config,
    core: Arc<dyn StreamingCore>,
    tunnels_path: Option<&Path>,
    decls: Vec<tunnels_file::TunnelDecl>,
    failed: CancellationToken,
) -> anyhow::Result<()> {
    let deadline = boot_deadline(&config);
    let mut server = Server::bind(config.clone(), core)
        .await
        .context("starting bob-server")?;
    let prepared = match tunnels_path {
        Some(path) => server.prepare_tunnels(path, &decls)?,
        None => Vec::new(),
    };
    for t in &prepared {
        info!(nickname = %t.nickname, b32 = %t.b32, created_keys = t.created_keys, replaced = t.replaced, "tunnel declared");
    }
    let addr = server.local_addr();
    let service = server.service().clone();
    // Fixed lines on stderr, whatever RUST_LOG says, so scripts can find the ports.
    if let Some(metrics) = server.metrics_addr() {
        eprintln!("bob-server metrics on http://{metrics}/metrics");
    }
    if let Some(path) = server.control_socket_path() {
        eprintln!("bob-server control socket at {}", path.display());
    }
    eprintln!("bob-server listening on {addr}");

    let shutdown = CancellationToken::new();
    tokio::spawn(forward_signals(shutdown.clone()));
    let stop = shutdown.clone();
    tokio::spawn(async move {
        failed.cancelled().await;
        stop.cancel();
    });
    let mut running = tokio::spawn(server.run(shutdown.clone()));
    if let Some(path) = tunnels_path {
        let started = tokio::select! {
            r = boot::start_declared(&service, path, &prepared, deadline) => r,
            r = &mut running => {
                r.context("server task")??;
                return Ok(());
            }
        };
        if let Err(e) = started {
            // A signal during boot ends the starts too: that is a clean stop, not a failure.
            let interrupted = shutdown.is_cancelled();
            shutdown.cancel();
            running.await.context("server task")??;
            return if interrupted { Ok(()) } else { Err(e.into()) };
        }
        let count = prepared.iter().filter(|t| t.start).count();
        // A fixed line too: scripts and tests wait for it before using the tunnels.
        eprintln!("bob-server tunnels ready: {count} started");
    }
    running.await.context("server task")??;
    Ok(())
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
async fn forward_signals(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => info!("SIGINT received"),
                    _ = term.recv() => info!("SIGTERM received"),
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                info!("SIGINT received");
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        info!("interrupt received");
    }
    shutdown.cancel();
}

#[cfg(test)]
#[path = "main/tests.rs"]
mod tests;
