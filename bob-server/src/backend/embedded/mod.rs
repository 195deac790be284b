//! The embedded router backends: `--router embedded` (an emissary I2P router in this
//! process, on the real network) and `--router devnet[=N]` (a private I2P network of
//! emissary routers on 127.0.0.1, reaching nothing outside this process).
//!
//! emissary has no Rust stream API: the app talks to its own router over emissary's SAMv3
//! server on a loopback port that only this process is told about (port 0, ephemeral).
//! So both backends are "start the router(s) in-process, then the ordinary
//! [`sam`](super::sam) backend pointed at that port", with a [`quirks`] table for what
//! emissary's SAM server does differently.
//!
//! - [`settings`]: the `--router-*` flags, `BOB_ROUTER_*` variables and the
//!   `[embedded-router]` table of the config file (always compiled, so a config file and
//!   `--print-config` mean the same with or without the feature).
//! - [`quirks`]: hop-count clamps, signature types, datagram limits (always compiled).
//! - with the cargo feature `embedded-router`: `router` (one emissary router: storage,
//!   keys, config), `devnet` (the private network), `reseed` (`.su3`/routerInfo files and
//!   HTTPS), `health` (the SAM port watchdog that fails loudly), `core` (the
//!   [`StreamingCore`] over the SAM backend) and [`start`].
//!
//! Without the feature, [`start`] fails with [`EmbeddedError::NotBuilt`], naming the
//! feature and the build command.

pub mod quirks;
pub mod settings;

#[cfg(feature = "embedded-router")]
mod core;
#[cfg(feature = "embedded-router")]
pub mod devnet;
#[cfg(feature = "embedded-router")]
mod health;
#[cfg(feature = "embedded-router")]
mod lookup;
#[cfg(feature = "embedded-router")]
pub mod reseed;
#[cfg(feature = "embedded-router")]
pub mod router;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::StreamingCore;
use super::sam::SamConfig;

#[cfg(feature = "embedded-router")]
pub use self::core::EmbeddedCore;
#[cfg(feature = "embedded-router")]
pub use self::router::{RouterHandle, RouterStatus};

/// Routers in a devnet when `--router devnet` names no number.
pub const DEFAULT_DEVNET_ROUTERS: usize = 4;
/// Fewest routers a devnet may have besides the one the tunnels use: emissary builds no
/// exploratory tunnels with fewer (a 2-router network never became ready).
pub const MIN_DEVNET_ROUTERS: usize = 4;
/// Most routers in a devnet (each is a few MB and a few tasks).
pub const MAX_DEVNET_ROUTERS: usize = 64;
/// The I2P network id of the real network.
pub const MAINNET_ID: u8 = 2;

/// What `--router` asked for besides a SAM bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouterKind {
    /// One emissary router on the real I2P network (or the private one `net_id` names).
    Embedded,
    /// A private network of `routers` emissary routers plus the one the tunnels use.
    Devnet {
        /// routers besides the tunnels' own
        routers: usize,
    },
}

impl RouterKind {
    /// Parses `embedded`, `devnet` or `devnet=N` (the non-SAM values of `--router`);
    /// `None` for anything else.
    ///
    /// # Errors
    /// A message when `devnet=N` has a bad `N`.
    pub fn parse(s: &str) -> Option<Result<Self, String>> {
        match s {
            "embedded" => Some(Ok(Self::Embedded)),
            "devnet" => Some(Ok(Self::Devnet {
                routers: DEFAULT_DEVNET_ROUTERS,
            })),
            _ => {
                let n = s.strip_prefix("devnet=")?;
                Some(match n.parse::<usize>() {
                    Ok(routers) if (MIN_DEVNET_ROUTERS..=MAX_DEVNET_ROUTERS).contains(&routers) => {
                        Ok(Self::Devnet { routers })
                    }
                    _ => Err(format!(
                        "--router devnet={n}: the number of routers must be \
                         {MIN_DEVNET_ROUTERS}..={MAX_DEVNET_ROUTERS}"
                    )),
                })
            }
        }
    }
}

impl std::fmt::Display for RouterKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Embedded => f.write_str("embedded"),
            Self::Devnet { routers } if *routers == DEFAULT_DEVNET_ROUTERS => f.write_str("devnet"),
            Self::Devnet { routers } => write!(f, "devnet={routers}"),
        }
    }
}

/// Everything the embedded backends need; built by the config layering from
/// [`settings::RouterSettings`]. Tests build one with [`EmbeddedConfig::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedConfig {
    /// embedded or devnet
    pub kind: RouterKind,
    /// The router's directory (keys, netDb, profiles). `None`: `STATE_DIR/router` with
    /// `--state-dir`, else `$XDG_DATA_HOME/bob-server/router` (never `~/.emissary`).
    /// A devnet keeps nothing on disk.
    pub dir: Option<PathBuf>,
    /// NTCP2 port; 0 picks a free one on first start and keeps it (saved in the dir).
    pub ntcp2_port: u16,
    /// The IPv4 address published in the RouterInfo; `None` publishes none (a hidden,
    /// outbound-only router) unless the network is private (then 127.0.0.1).
    pub host: Option<Ipv4Addr>,
    /// SSU2 (UDP) port, off by default; 0 picks one.
    pub ssu2_port: Option<u16>,
    /// `.su3` bundles, routerInfo files, or directories of them, read at every start.
    pub reseed_files: Vec<PathBuf>,
    /// HTTPS reseed hosts (`https://host/`); empty: emissary's built-in list.
    pub reseed_hosts: Vec<String>,
    /// PEM file of CA certificates trusted for `reseed_hosts` besides the system's.
    pub reseed_ca: Option<PathBuf>,
    /// Reseed over HTTPS when the netDb knows fewer than `reseed_threshold` routers.
    pub net_reseed: bool,
    /// See `net_reseed`.
    pub reseed_threshold: usize,
    /// Network id; `None` is the real network (2), or a random private id for a devnet.
    /// A private id (not 2) also allows loopback addresses and 1-hop tunnels.
    pub net_id: Option<u8>,
    /// Act as a floodfill.
    pub floodfill: bool,
    /// Most transit tunnels this router carries for others.
    pub transit_tunnels: usize,
    /// How long a graceful router shutdown may take before it is cut short.
    pub shutdown_grace: Duration,
    /// The SAM backend's settings; its address is replaced by the router's SAM port.
    pub sam: SamConfig,
}

/// Built-in defaults of the `--router-*` settings.
pub mod defaults {
    use std::time::Duration;
    /// `--router-reseed-threshold`
    pub const RESEED_THRESHOLD: usize = 25;
    /// `--router-transit-tunnels`
    pub const TRANSIT_TUNNELS: usize = 1000;
    /// `--router-shutdown-grace`
    pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
}

impl EmbeddedConfig {
    /// Defaults for `kind` (see each field).
    pub fn new(kind: RouterKind) -> Self {
        let mut sam = SamConfig::new("127.0.0.1:0");
        // a LeaseSet takes longer to appear on a young router than on i2pd
        sam.connect_retry = Duration::from_secs(120);
        Self {
            kind,
            dir: None,
            ntcp2_port: 0,
            host: None,
            ssu2_port: None,
            reseed_files: Vec::new(),
            reseed_hosts: Vec::new(),
            reseed_ca: None,
            net_reseed: true,
            reseed_threshold: defaults::RESEED_THRESHOLD,
            net_id: None,
            floodfill: false,
            transit_tunnels: defaults::TRANSIT_TUNNELS,
            shutdown_grace: defaults::SHUTDOWN_GRACE,
            sam,
        }
    }

    /// The router directory for a server with `state_dir`: the configured one, else
    /// `STATE_DIR/router`, else `$XDG_DATA_HOME/bob-server/router` (or
    /// `$HOME/.local/share/bob-server/router`). `None` when none of these is known.
    pub fn resolve_dir(&self, state_dir: Option<&std::path::Path>) -> Option<PathBuf> {
        if let Some(dir) = &self.dir {
            return Some(dir.clone());
        }
        if let Some(state) = state_dir {
            return Some(state.join("router"));
        }
        let data = std::env::var_os("XDG_DATA_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|h| PathBuf::from(h).join(".local/share"))
            })?;
        Some(data.join("bob-server").join("router"))
    }
}

/// Why an embedded router could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// This binary was built without the feature.
    #[error(
        "--router {0} needs the `embedded-router` feature, which this bob-server was built \
         without; build it with: cargo build --release -p bob-server --features embedded-router"
    )]
    NotBuilt(RouterKind),
    /// The router directory is not known or not usable.
    #[error("router directory: {0}")]
    Dir(String),
    /// A reseed file could not be used.
    #[error("reseed: {0}")]
    Reseed(String),
    /// emissary refused to start.
    #[error("starting the emissary router: {0}")]
    Router(String),
    /// The router's SAM server did not answer.
    #[error("the embedded router's SAM server does not answer: {0}")]
    Sam(String),
}

/// A started embedded backend: the core the server uses, and the routers to stop after
/// the server.
pub struct Started {
    /// cancelled when the router's SAM server stopped answering for good: the server
    /// must stop (with an error) since no tunnel can work any more
    pub failed: tokio_util::sync::CancellationToken,
    /// the streaming core to hand to [`Server::bind`](crate::server::Server::bind)
    pub core: Arc<dyn StreamingCore>,
    /// stops the router(s); call after the server has stopped its listeners
    #[cfg(feature = "embedded-router")]
    pub routers: RouterHandle,
}

impl Started {
    /// Stops the router(s): gracefully within the configured grace, then at once.
    pub async fn shutdown(self) {
        #[cfg(feature = "embedded-router")]
        self.routers.shutdown().await;
    }
}

/// Starts the router(s) `config` asks for and the SAM backend on top; `state_dir` is the
/// server's `--state-dir` (for the default router directory).
///
/// # Errors
/// [`EmbeddedError::NotBuilt`] without the feature; otherwise what went wrong.
#[cfg(not(feature = "embedded-router"))]
pub async fn start(
    config: &EmbeddedConfig,
    state_dir: Option<&std::path::Path>,
) -> Result<Started, EmbeddedError> {
    let _ = state_dir;
    Err(EmbeddedError::NotBuilt(config.kind))
}

/// Starts the router(s) `config` asks for and the SAM backend on top; `state_dir` is the
/// server's `--state-dir` (for the default router directory).
///
/// # Errors
/// What went wrong (directory, reseed, emissary, SAM not answering).
#[cfg(feature = "embedded-router")]
pub async fn start(
    config: &EmbeddedConfig,
    state_dir: Option<&std::path::Path>,
) -> Result<Started, EmbeddedError> {
    let routers = match config.kind {
        RouterKind::Embedded => RouterHandle::start_embedded(config, state_dir).await?,
        RouterKind::Devnet { routers } => devnet::start(config, routers).await?,
    };
    let mut routers = routers;
    let core = EmbeddedCore::new(config, &routers);
    if let Err(e) = core.probe().await {
        routers.shutdown().await;
        return Err(e);
    }
    let failed = tokio_util::sync::CancellationToken::new();
    routers.health = Some(health::spawn(
        core.sam_config().clone(),
        &quirks::EMISSARY,
        Arc::clone(core.status()),
        failed.clone(),
    ));
    Ok(Started {
        failed,
        core: Arc::new(core),
        routers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn router_kinds() {
        assert_eq!(
            RouterKind::parse("embedded"),
            Some(Ok(RouterKind::Embedded))
        );
        assert_eq!(
            RouterKind::parse("devnet"),
            Some(Ok(RouterKind::Devnet { routers: 4 }))
        );
        assert_eq!(
            RouterKind::parse("devnet=9"),
            Some(Ok(RouterKind::Devnet { routers: 9 }))
        );
        for bad in ["devnet=1", "devnet=3", "devnet=65", "devnet=x", "devnet="] {
            assert!(matches!(RouterKind::parse(bad), Some(Err(_))), "{bad}");
        }
        assert_eq!(RouterKind::parse("sam://x:1"), None);
        for k in ["embedded", "devnet", "devnet=7"] {
            assert_eq!(RouterKind::parse(k).unwrap().unwrap().to_string(), k);
        }
    }

    #[test]
    fn router_dir_never_dot_emissary() {
        let c = EmbeddedConfig::new(RouterKind::Embedded);
        let state = std::path::Path::new("/var/lib/bob");
        assert_eq!(c.resolve_dir(Some(state)), Some(state.join("router")));
        let d = c.resolve_dir(None);
        if let Some(d) = d {
            assert!(d.ends_with("bob-server/router"), "{}", d.display());
            assert!(!d.to_string_lossy().contains(".emissary"));
        }
        let mut c = c;
        c.dir = Some("/x".into());
        assert_eq!(c.resolve_dir(Some(state)), Some(PathBuf::from("/x")));
    }

    #[cfg(not(feature = "embedded-router"))]
    #[tokio::test]
    async fn without_the_feature_the_error_names_it() {
        let Err(e) = start(
            &EmbeddedConfig::new(RouterKind::Devnet { routers: 4 }),
            None,
        )
        .await
        else {
            panic!("must fail without the feature")
        };
        let text = e.to_string();
        assert!(text.contains("--router devnet"), "{text}");
        assert!(text.contains("embedded-router"), "{text}");
        assert!(text.contains("--features embedded-router"), "{text}");
    }
}
