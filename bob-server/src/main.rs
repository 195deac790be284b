//! `bob-server`: the BOB control server.
//!
//! Listens on loopback (`127.0.0.1:2827` by default), speaks Java BOB's protocol (or
//! i2pd's reply strings with `--dialect i2pd`), and runs tunnels on the in-process
//! `local` core, which reaches no I2P network: tunnels of this server can only talk to
//! each other.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use bob_codec::Dialect;
use bob_server::backend::StreamingCore;
use bob_server::backend::local::LocalCore;
use bob_server::backend::sam::{SamConfig, SamCore};
use bob_server::config::{BackendConfig, Config, DEFAULT_MAX_CONNECTIONS, parse_sig_type};
use bob_server::server::Server;
use clap::{Parser, ValueEnum};
use keytools::SigType;
use tokio_util::sync::CancellationToken;
use tracing::info;
use tracing_subscriber::EnvFilter;

/// What `--help` says about the backend.
const BACKEND_NOTE: &str = "Without --router the backend is `local`: an in-process network \
that reaches NO I2P network; tunnels of this server can only reach each other. With \
--router sam://HOST:PORT tunnels run on a real I2P router (i2pd, Java I2P) through SAMv3.";

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DialectArg {
    /// Java I2P BOB reply strings (what most clients were written against)
    Java,
    /// i2pd BOB reply strings (same semantics)
    I2pd,
}

/// BOB (Basic Open Bridge) server for I2P.
#[derive(Debug, Parser)]
#[command(version, about, after_help = BACKEND_NOTE)]
struct Args {
    /// Control address to listen on (a non-loopback address needs --allow-remote)
    #[arg(long, default_value = "127.0.0.1:2827")]
    listen: SocketAddr,

    /// Allow a non-loopback --listen address (BOB has no authentication)
    #[arg(long)]
    allow_remote: bool,

    /// Reply strings to speak; never changes what a command does
    #[arg(long, value_enum, default_value = "java")]
    dialect: DialectArg,

    /// Signature type `newkeys` makes without an argument (code or name:
    /// 0/DSA_SHA1, 1, 2, 3, 7/EdDSA_SHA512_Ed25519, 11)
    #[arg(long, default_value = "DSA_SHA1", value_parser = parse_sig_arg)]
    newkeys_type: SigType,

    /// Most simultaneous control connections
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,

    /// hosts.txt (`name=base64dest` lines) for name lookups of the local backend
    #[arg(long, value_name = "FILE", conflicts_with = "router")]
    hosts: Option<PathBuf>,

    /// Run tunnels on a real I2P router through its SAMv3 bridge (`sam://127.0.0.1:7656`)
    #[arg(long, value_name = "sam://HOST:PORT", value_parser = SamConfig::from_url)]
    router: Option<SamConfig>,

    /// Default option for every tunnel, under each tunnel's own `option`s (repeatable)
    #[arg(long = "tunnel-option", value_name = "KEY=VALUE", value_parser = parse_tunnel_option)]
    tunnel_options: Vec<(String, String)>,

    /// Seconds the router may take to create a tunnel's session (SAM backend)
    #[arg(long, value_name = "SECS", default_value_t = 90)]
    session_timeout: u64,

    /// Save the tunnel registry (keys included, mode 0600) in DIR on every change and
    /// restore it, restarting running tunnels, on start
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// Serve Prometheus metrics on ADDR (`127.0.0.1:9100`; non-loopback needs --allow-remote)
    #[arg(long = "metrics", value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Most simultaneous connections per tunnel side (inbound and outbound each)
    #[arg(long, value_name = "N", default_value_t = bob_server::tunnel::DEFAULT_MAX_CONNECTIONS as u64, value_parser = clap::value_parser!(u64).range(1..))]
    max_tunnel_connections: u64,
}

fn parse_tunnel_option(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !v.is_empty() && !s.contains(char::is_whitespace) => {
            Ok((k.to_string(), v.to_string()))
        }
        _ => Err(format!("`{s}`: expected KEY=VALUE without spaces")),
    }
}

fn parse_sig_arg(s: &str) -> Result<SigType, String> {
    parse_sig_type(s).ok_or_else(|| format!("unsupported signature type `{s}`"))
}

impl Args {
    fn into_config(self) -> Config {
        // --tunnel-option values sit over the Java defaults that every tunnel starts with
        // (and under each tunnel's own `option`s).
        let default_options = bob_server::backend::sam::merge_options(
            &bob_server::config::java_default_options(),
            self.tunnel_options.clone(),
        );
        Config {
            default_options,
            listen: self.listen,
            allow_remote: self.allow_remote,
            dialect: match self.dialect {
                DialectArg::Java => Dialect::Java,
                DialectArg::I2pd => Dialect::I2pd,
            },
            newkeys_sig: self.newkeys_type,
            max_connections: self.max_connections,
            backend: match self.router {
                Some(mut sam) => {
                    sam.default_options = self.tunnel_options;
                    sam.session_timeout = std::time::Duration::from_secs(self.session_timeout);
                    BackendConfig::Sam(sam)
                }
                None => BackendConfig::Local { hosts: self.hosts },
            },
            state_dir: self.state_dir,
            metrics_listen: self.metrics,
            tunnel_limits: bob_server::tunnel::TunnelLimits {
                max_connections: usize::try_from(self.max_tunnel_connections).unwrap_or(usize::MAX),
                ..Default::default()
            },
            ..Config::default()
        }
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
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let config = Args::parse().into_config();
    let core = make_core(&config.backend)?;
    info!(backend = core.name(), "{BACKEND_NOTE}");
    let server = Server::bind(config, core)
        .await
        .context("starting bob-server")?;
    // Fixed lines on stderr, whatever RUST_LOG says, so scripts can find the ports.
    if let Some(addr) = server.metrics_addr() {
        eprintln!("bob-server metrics on http://{addr}/metrics");
    }
    eprintln!("bob-server listening on {}", server.local_addr());

    let shutdown = CancellationToken::new();
    tokio::spawn(forward_signals(shutdown.clone()));
    server.run(shutdown).await?;
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
