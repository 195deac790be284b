//! The `bob-server` configuration file (`--config FILE`) and the layering of settings.
//!
//! Every setting of the server can come from four places; the first that sets it wins:
//! 1. a command-line flag (`--listen 127.0.0.1:2827`),
//! 2. an environment variable (`BOB_LISTEN=127.0.0.1:2827`),
//! 3. the configuration file (`listen = "127.0.0.1:2827"`),
//! 4. the built-in default ([`Settings::builtin`]).
//!
//! One [`Settings`] value is one such layer, every field optional; [`Settings::over`]
//! lays one layer over another and [`Settings::into_config`] turns the merged result into
//! the server's [`Config`]. The same struct is what `bob-server --print-config` prints
//! ([`Settings::to_toml`]), so its output can be read back as a configuration file.
//!
//! # File format
//! ```toml
//! listen = "127.0.0.1:2827"        # control address
//! allow-remote = false             # permit a non-loopback listen/metrics address
//! dialect = "java"                 # or "i2pd": reply strings only
//! router = "sam://127.0.0.1:7656"  # SAMv3 backend; without it the in-process `local` core
//! hosts = "hosts.txt"              # local core only: name=base64 lines for lookups
//! newkeys-type = "DSA_SHA1"        # signature type of `newkeys` without an argument
//! session-timeout = 90             # seconds the backend may take to build a tunnel's session
//! start-wait = 3                   # seconds `start` waits for the session before answering
//! max-connections = 64             # simultaneous control connections
//! max-tunnels = 1024               # tunnels in the registry
//! lookup-timeout = 60              # seconds for `lookup` and `ping`
//! first-line-timeout = 60          # seconds an application has to send its destination line
//! connect-timeout = 60             # seconds an inbound connect to a destination may take
//! max-tunnel-connections = 1024    # connections per tunnel side (inbound, outbound) at once
//! state-dir = "/var/lib/bob-server" # save and restore the registry here
//! metrics = "127.0.0.1:9100"       # Prometheus endpoint
//! tunnels = "tunnels.toml"         # declarative tunnels started at boot
//! allow-users = ["alice", "1001"]  # only these users may use the control port (Linux)
//! control-socket = "/run/bob-server/control.sock" # also listen here (Unix socket, 0600)
//!
//! [tunnel-options]                 # default options of every tunnel
//! "inbound.length" = "2"
//!
//! [embedded-router]                 # router = "embedded" / "devnet[=N]" (flags --router-KEY)
//! ntcp2-port = 0                    # see backend::embedded::settings for every key
//! ```
//! Relative paths are taken relative to the directory of the file. Unknown keys are
//! errors (a typo must not silently leave a default in place); every error names the
//! file and the line.

use std::net::SocketAddr;
use std::num::{NonZeroU64, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bob_codec::Dialect;
use keytools::SigType;
use serde::{Deserialize, Serialize};

use super::hints::{self, KeyShape};
use crate::access::{self, AccessError};
use crate::backend::embedded::settings::RouterSettings;
use crate::backend::sam::{SamConfig, merge_options};
use crate::config::{BackendConfig, Config, java_default_options};
use crate::tunnel::TunnelLimits;

pub use super::values::{DialectName, RouterUrl, SigTypeName, TunnelOptions};

/// One layer of settings (a flag set, the environment, a file, or the defaults); `None`
/// means "not set here".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    /// control address
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::values::de_listen_addr"
    )]
    pub listen: Option<SocketAddr>,
    /// allow non-loopback listen and metrics addresses
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_remote: Option<bool>,
    /// reply strings
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dialect: Option<DialectName>,
    /// SAMv3 router; `None` runs the in-process local core
    #[serde(skip_serializing_if = "Option::is_none")]
    pub router: Option<RouterUrl>,
    /// hosts.txt of the local core
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosts: Option<PathBuf>,
    /// signature type of `newkeys` without an argument
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newkeys_type: Option<SigTypeName>,
    /// seconds the backend may take to create a tunnel's session
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_timeout: Option<NonZeroU64>,
    /// seconds `start` waits for the session before answering (0: answer at once)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_wait: Option<u64>,
    /// simultaneous control connections
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<NonZeroUsize>,
    /// tunnels in the registry
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tunnels: Option<NonZeroUsize>,
    /// bytes all registry entries may count for together
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_registry_bytes: Option<NonZeroUsize>,
    /// seconds a `lookup` or `ping` may take
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lookup_timeout: Option<NonZeroU64>,
    /// seconds an inbound application may take to send its destination line
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_line_timeout: Option<NonZeroU64>,
    /// seconds an inbound connect to a destination may take
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<NonZeroU64>,
    /// connections one side (inbound or outbound) of a tunnel serves at once
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tunnel_connections: Option<NonZeroUsize>,
    /// where the registry is saved and restored
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    /// Prometheus endpoint address
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::values::de_listen_addr"
    )]
    pub metrics: Option<SocketAddr>,
    /// declarative tunnels file started at boot
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunnels: Option<PathBuf>,
    /// users (names or UIDs) that may use the control port; unset or empty: everyone
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_users: Option<Vec<String>>,
    /// a second control listener on this Unix socket path (mode 0600)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_socket: Option<PathBuf>,
    /// default options of every tunnel (a table, so it is written last)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunnel_options: Option<TunnelOptions>,
    /// the embedded router's settings (`[embedded-router]`; flags `--router-*`)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedded_router: Option<RouterSettings>,
}

/// A configuration file that cannot be used, or settings that contradict each other.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file could not be read.
    #[error("{file}: {error}")]
    Read {
        /// the file
        file: String,
        /// what the OS said (shown in `Display`, so not a `source()`)
        error: std::io::Error,
    },
    /// The file is not valid TOML or holds a bad or unknown key; `Display` is
    /// `FILE:LINE: what is wrong`.
    #[error("{file}:{line}: {message}")]
    Parse {
        /// the file
        file: String,
        /// 1-based line
        line: usize,
        /// toml's message (names the key for unknown keys)
        message: String,
    },
    /// Two settings that cannot go together.
    #[error("invalid configuration: {0}")]
    Conflict(String),
    /// An `allow-users` entry that cannot be resolved, or a setting this platform lacks.
    #[error(transparent)]
    Access(#[from] AccessError),
}

/// What each key's value looks like, for messages about values that are not TOML.
const SHAPES: &[KeyShape] = &[
    ("listen", "an address in quotes", "\"127.0.0.1:2827\""),
    ("allow-remote", "true or false", "false"),
    ("dialect", "\"java\" or \"i2pd\" in quotes", "\"java\""),
    (
        "router",
        "a SAM address in quotes",
        "\"sam://127.0.0.1:7656\"",
    ),
    ("hosts", "a path in quotes", "\"hosts.txt\""),
    (
        "newkeys-type",
        "a signature type in quotes",
        "\"EdDSA_SHA512_Ed25519\"",
    ),
    ("session-timeout", "a number of seconds", "90"),
    ("max-connections", "a number", "64"),
    ("max-tunnels", "a number", "1024"),
    ("lookup-timeout", "a number of seconds", "60"),
    ("first-line-timeout", "a number of seconds", "60"),
    ("connect-timeout", "a number of seconds", "60"),
    ("max-tunnel-connections", "a number", "1024"),
    ("state-dir", "a path in quotes", "\"/var/lib/bob-server\""),
    ("metrics", "an address in quotes", "\"127.0.0.1:9100\""),
    ("tunnels", "a path in quotes", "\"tunnels.toml\""),
    (
        "allow-users",
        "a list of user names or UIDs",
        "[\"alice\", \"1001\"]",
    ),
    (
        "control-socket",
        "a path in quotes",
        "\"/run/bob-server/control.sock\"",
    ),
];

fn secs(s: Option<NonZeroU64>, fallback: Duration) -> Duration {
    s.map_or(fallback, |n| Duration::from_secs(n.get()))
}

/// Largest connection limit the runtime supports (tokio's semaphore permits, 2^61 - 1):
/// larger `max-connections`/`max-tunnel-connections` values are clamped to it when the
/// settings are turned into a [`Config`] (`--print-config` shows the clamp).
pub const MAX_CONNECTION_LIMIT: usize = tokio::sync::Semaphore::MAX_PERMITS;

impl Settings {
    /// The settings with connection limits above [`MAX_CONNECTION_LIMIT`] lowered to it
    /// (what the server will run with; `--print-config` shows it).
    #[must_use]
    pub fn clamped(mut self) -> Self {
        let clamp = |n: Option<NonZeroUsize>| {
            n.map(|n| n.min(NonZeroUsize::new(MAX_CONNECTION_LIMIT).unwrap_or(NonZeroUsize::MIN)))
        };
        self.max_connections = clamp(self.max_connections);
        self.max_tunnel_connections = clamp(self.max_tunnel_connections);
        self
    }

    /// The built-in defaults, every field that has one set (the fourth layer).
    pub fn builtin() -> Self {
        let config = Config::default();
        let limits = TunnelLimits::default();
        let sam = SamConfig::new("127.0.0.1:7656");
        let nz = |d: Duration| NonZeroU64::new(d.as_secs());
        Self {
            listen: Some(config.listen),
            allow_remote: Some(config.allow_remote),
            dialect: Some(match config.dialect {
                Dialect::Java => DialectName::Java,
                Dialect::I2pd => DialectName::I2pd,
            }),
            router: None,
            hosts: None,
            newkeys_type: Some(SigTypeName(config.newkeys_sig)),
            session_timeout: nz(sam.session_timeout),
            start_wait: Some(config.start_wait.as_secs()),
            max_connections: NonZeroUsize::new(config.max_connections),
            max_tunnels: NonZeroUsize::new(config.max_tunnels),
            max_registry_bytes: NonZeroUsize::new(config.max_registry_bytes),
            lookup_timeout: nz(config.lookup_timeout),
            first_line_timeout: nz(limits.first_line_timeout),
            connect_timeout: nz(limits.connect_timeout),
            max_tunnel_connections: NonZeroUsize::new(limits.max_connections),
            state_dir: None,
            metrics: None,
            tunnels: None,
            allow_users: None,
            control_socket: None,
            tunnel_options: Some(TunnelOptions::default()),
            embedded_router: None,
        }
    }

    /// The built-in defaults under this layer: [`Settings::builtin`], except that with
    /// `router = "embedded"`/`"devnet"` an unset `newkeys-type` is Ed25519, the only
    /// type emissary can run.
    pub fn builtin_for(&self) -> Self {
        let mut builtin = Self::builtin();
        if matches!(self.router, Some(RouterUrl::Embedded(_))) {
            builtin.newkeys_type = Some(SigTypeName(SigType::Ed25519));
        }
        builtin
    }

    /// Parses a configuration file's text; `path` names it in errors and anchors its
    /// relative paths.
    ///
    /// # Errors
    /// [`ConfigFileError::Parse`] naming the line of bad TOML, an unknown key or a bad
    /// value.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigFileError> {
        let mut settings: Self = toml::from_str(text).map_err(|e| {
            let (line, message) = hints::toml_error(text, &e, SHAPES);
            ConfigFileError::Parse {
                file: path.display().to_string(),
                line,
                message,
            }
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new(""));
        for p in [
            &mut settings.hosts,
            &mut settings.state_dir,
            &mut settings.tunnels,
            &mut settings.control_socket,
        ]
        .into_iter()
        .flatten()
        {
            *p = base.join(&*p);
        }
        if let Some(router) = &mut settings.embedded_router {
            router.rebase(base);
        }
        Ok(settings)
    }

    /// Reads and parses a configuration file.
    ///
    /// # Errors
    /// [`ConfigFileError::Read`] if it cannot be read, else as [`Settings::parse`].
    pub fn load(path: &Path) -> Result<Self, ConfigFileError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigFileError::Read {
            file: path.display().to_string(),
            error,
        })?;
        Self::parse(&text, path)
    }

    /// The same settings with relative paths (`hosts`, `state-dir`, `tunnels`) made
    /// absolute against the current directory, so that `--print-config`'s output is a
    /// configuration file that means the same wherever it is written.
    ///
    /// # Errors
    /// When the current directory cannot be found.
    pub fn with_absolute_paths(mut self) -> std::io::Result<Self> {
        for p in [
            &mut self.hosts,
            &mut self.state_dir,
            &mut self.tunnels,
            &mut self.control_socket,
        ]
        .into_iter()
        .flatten()
        {
            *p = std::path::absolute(&*p)?;
        }
        Ok(self)
    }

    /// This layer over `lower`: every field set here wins; tunnel options are merged
    /// key by key (this layer's value wins for a key set in both).
    #[must_use]
    pub fn over(self, lower: Self) -> Self {
        let tunnel_options = match (self.tunnel_options, lower.tunnel_options) {
            (Some(upper), Some(mut merged)) => {
                merged.0.extend(upper.0);
                Some(merged)
            }
            (upper, lower) => upper.or(lower),
        };
        let embedded_router = match (self.embedded_router, lower.embedded_router) {
            (Some(upper), Some(lower)) => Some(upper.over(lower)),
            (upper, lower) => upper.or(lower),
        };
        Self {
            listen: self.listen.or(lower.listen),
            allow_remote: self.allow_remote.or(lower.allow_remote),
            dialect: self.dialect.or(lower.dialect),
            router: self.router.or(lower.router),
            hosts: self.hosts.or(lower.hosts),
            newkeys_type: self.newkeys_type.or(lower.newkeys_type),
            session_timeout: self.session_timeout.or(lower.session_timeout),
            start_wait: self.start_wait.or(lower.start_wait),
            max_connections: self.max_connections.or(lower.max_connections),
            max_tunnels: self.max_tunnels.or(lower.max_tunnels),
            max_registry_bytes: self.max_registry_bytes.or(lower.max_registry_bytes),
            lookup_timeout: self.lookup_timeout.or(lower.lookup_timeout),
            first_line_timeout: self.first_line_timeout.or(lower.first_line_timeout),
            connect_timeout: self.connect_timeout.or(lower.connect_timeout),
            max_tunnel_connections: self.max_tunnel_connections.or(lower.max_tunnel_connections),
            state_dir: self.state_dir.or(lower.state_dir),
            metrics: self.metrics.or(lower.metrics),
            tunnels: self.tunnels.or(lower.tunnels),
            allow_users: self.allow_users.or(lower.allow_users),
            control_socket: self.control_socket.or(lower.control_socket),
            tunnel_options,
            embedded_router,
        }
    }

    /// The settings as a TOML document that [`Settings::parse`] reads back to the same
    /// value (what `--print-config` prints).
    pub fn to_toml(&self) -> String {
        // Every field is a plain value or a string map: serialization cannot fail.
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render settings: {e}\n"))
    }

    /// Builds the server configuration; fields not set take their built-in default.
    /// The tunnels file (`self.tunnels`) is not part of [`Config`]: the caller reads it.
    ///
    /// # Errors
    /// [`ConfigFileError::Conflict`] when `hosts` (local core) and `router` (SAM) are
    /// both set.
    pub fn into_config(self) -> Result<Config, ConfigFileError> {
        let builtin = self.builtin_for();
        let s = self.over(builtin);
        if s.hosts.is_some() && s.router.is_some() {
            return Err(ConfigFileError::Conflict(
                "`hosts` is for the local backend and cannot be combined with `router`".into(),
            ));
        }
        // names become UIDs once, here: an unknown user stops the start
        let allow_users = access::resolve_users(&access::split_users(
            s.allow_users.iter().flatten().map(String::as_str),
        ))?;
        if cfg!(not(unix)) && s.control_socket.is_some() {
            return Err(AccessError::Unsupported("--control-socket").into());
        }
        let defaults = Config::default();
        let limits = TunnelLimits::default();
        // One session timeout for every backend: the tunnel's bound on `open_session`
        // and, for SAM, the bridge exchange's own bound.
        let session_timeout = secs(s.session_timeout, limits.session_timeout);
        let tunnel_options: Vec<(String, String)> = s
            .tunnel_options
            .map(|o| o.0.into_iter().collect())
            .unwrap_or_default();
        // tunnel-options sit over the Java defaults every tunnel starts with (and under
        // each tunnel's own `option`s).
        let default_options = merge_options(&java_default_options(), tunnel_options.clone());
        let backend = match s.router {
            Some(RouterUrl::Sam(addr)) => {
                let mut sam = SamConfig::new(addr);
                sam.default_options = tunnel_options;
                sam.session_timeout = session_timeout;
                BackendConfig::Sam(sam)
            }
            Some(RouterUrl::Embedded(kind)) => {
                let mut e = s.embedded_router.unwrap_or_default().into_config(kind);
                e.sam.default_options = tunnel_options;
                e.sam.session_timeout = session_timeout;
                BackendConfig::Embedded(e)
            }
            None => BackendConfig::Local { hosts: s.hosts },
        };
        Ok(Config {
            listen: s.listen.unwrap_or(defaults.listen),
            allow_remote: s.allow_remote.unwrap_or(defaults.allow_remote),
            dialect: s.dialect.map_or(defaults.dialect, Dialect::from),
            newkeys_sig: s.newkeys_type.map_or(defaults.newkeys_sig, |t| t.0),
            newkeys_crypto: defaults.newkeys_crypto,
            max_connections: s
                .max_connections
                .map_or(defaults.max_connections, NonZeroUsize::get)
                .min(MAX_CONNECTION_LIMIT),
            max_tunnels: s
                .max_tunnels
                .map_or(defaults.max_tunnels, NonZeroUsize::get),
            max_registry_bytes: s
                .max_registry_bytes
                .map_or(defaults.max_registry_bytes, NonZeroUsize::get),
            default_options,
            tunnel_limits: TunnelLimits {
                first_line_timeout: secs(s.first_line_timeout, limits.first_line_timeout),
                connect_timeout: secs(s.connect_timeout, limits.connect_timeout),
                max_connections: s
                    .max_tunnel_connections
                    .map_or(limits.max_connections, NonZeroUsize::get)
                    .min(MAX_CONNECTION_LIMIT),
                session_timeout,
                ..limits
            },
            start_wait: s
                .start_wait
                .map_or(defaults.start_wait, Duration::from_secs),
            lookup_timeout: secs(s.lookup_timeout, defaults.lookup_timeout),
            control_write_timeout: defaults.control_write_timeout,
            backend,
            state_dir: s.state_dir,
            metrics_listen: s.metrics,
            allow_users,
            control_socket: s.control_socket,
        })
    }
}

#[cfg(test)]
mod tests;
