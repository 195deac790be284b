//! Server configuration: where to listen, which dialect to speak, limits, and which
//! streaming backend (core) the tunnels use.
//!
//! The binary fills a [`Config`] from its command line; tests build one with
//! [`Config::default`] and change the fields they need.

pub mod file;
mod hints;
pub mod tunnels;
pub mod values;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use bob_codec::Dialect;
use keytools::{CryptoType, SigType};

use crate::backend::Options;
use crate::tunnel::TunnelLimits;

/// The BOB port, `0xB0B`.
pub const DEFAULT_PORT: u16 = 2827;

/// Default cap on simultaneous control connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;

/// Default cap on registry entries (`setnick` of a new name beyond it is refused).
pub const DEFAULT_MAX_TUNNELS: usize = 1024;

/// Most options a client may add to one tunnel (`option` beyond it is refused), besides
/// the server's default options and the two nickname options (see
/// [`bob_codec::types::max_properties`]).
pub const MAX_OPTIONS_PER_TUNNEL: usize = bob_codec::types::MAX_OPTIONS_PER_TUNNEL;

/// Default of [`Config::control_write_timeout`].
pub const DEFAULT_CONTROL_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a `lookup`/`ping` may take before the client gets an `ERROR`.
pub const DEFAULT_LOOKUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How long `start` waits for a tunnel's session before answering `OK tunnel starting`
/// anyway (`--start-wait`; see docs/compatibility.md for why 3 s).
pub const DEFAULT_START_WAIT: Duration = Duration::from_secs(3);

/// Which streaming core the tunnels run on.
///
/// `local` (the default) is an in-process network that reaches no I2P network;
/// `Sam` (`--router sam://HOST:PORT`) runs tunnels on a real router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendConfig {
    /// In-process network of the tunnels of this server only.
    Local {
        /// hosts.txt (`name=base64dest` lines) for name lookups
        hosts: Option<PathBuf>,
    },
    /// A real I2P router through its SAMv3 bridge.
    Sam(crate::backend::sam::SamConfig),
    /// An emissary router (or a private devnet of them) in this process, through its
    /// SAMv3 bridge on a loopback port only this process knows (`--router embedded`,
    /// `--router devnet[=N]`; feature `embedded-router`).
    Embedded(crate::backend::embedded::EmbeddedConfig),
}

impl Default for BackendConfig {
    fn default() -> Self {
        Self::Local { hosts: None }
    }
}

/// Default cap on the bytes of all registry entries together (`--max-registry-bytes`):
/// with the default 1024 tunnels this leaves each an average of 32 KiB of names, hosts
/// and options, and keeps the whole registry (and any copy of it in replies) small.
pub const DEFAULT_MAX_REGISTRY_BYTES: usize = 32 << 20;

/// Everything the server needs besides its core.
#[derive(Debug, Clone)]
pub struct Config {
    /// control listener address (loopback unless `allow_remote`)
    pub listen: SocketAddr,
    /// allow a non-loopback `listen` address: BOB has no authentication
    pub allow_remote: bool,
    /// reply strings to speak; never changes what a command does
    pub dialect: Dialect,
    /// signature type `newkeys` makes without an argument (DSA_SHA1 like Java BOB)
    pub newkeys_sig: SigType,
    /// crypto type `newkeys` makes without a second argument (ElGamal like both servers)
    pub newkeys_crypto: CryptoType,
    /// simultaneous control connections; more are answered with an `ERROR` and closed
    pub max_connections: usize,
    /// most tunnels in the registry; `setnick` of a new name beyond it is refused
    pub max_tunnels: usize,
    /// most bytes all registry entries may count for together (names, hosts, options
    /// plus a fixed overhead per entry and per option); a change beyond it is refused
    pub max_registry_bytes: usize,
    /// options every new tunnel starts with (Java's bob.config tunnel defaults)
    pub default_options: Options,
    /// data-path limits handed to every tunnel
    pub tunnel_limits: TunnelLimits,
    /// bound on `lookup` and `ping`
    pub lookup_timeout: Duration,
    /// longest a control client may take to accept one reply (or one chunk of `list`)
    /// before its connection is closed and logged
    pub control_write_timeout: Duration,
    /// how long `start` waits for the session before answering (`--start-wait`)
    pub start_wait: Duration,
    /// the core the tunnels run on
    pub backend: BackendConfig,
    /// directory where the registry is saved on every change and restored from on start
    /// (`--state-dir`); `None` keeps the registry in memory only
    pub state_dir: Option<PathBuf>,
    /// address of the Prometheus text endpoint (`--metrics`); `None` serves none
    pub metrics_listen: Option<SocketAddr>,
    /// UIDs that may use the control port (`--allow-user`, resolved at start-up); empty
    /// lets every local user in, as every BOB server does
    pub allow_users: Vec<u32>,
    /// a second control listener on a Unix socket, mode 0600 (`--control-socket`)
    pub control_socket: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_PORT)),
            allow_remote: false,
            dialect: Dialect::Java,
            newkeys_sig: SigType::DsaSha1,
            newkeys_crypto: CryptoType::ElGamal,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_tunnels: DEFAULT_MAX_TUNNELS,
            max_registry_bytes: DEFAULT_MAX_REGISTRY_BYTES,
            default_options: java_default_options(),
            tunnel_limits: TunnelLimits::default(),
            lookup_timeout: DEFAULT_LOOKUP_TIMEOUT,
            control_write_timeout: DEFAULT_CONTROL_WRITE_TIMEOUT,
            start_wait: DEFAULT_START_WAIT,
            backend: BackendConfig::default(),
            state_dir: None,
            metrics_listen: None,
            allow_users: Vec::new(),
            control_socket: None,
        }
    }
}

/// The tunnel options Java BOB writes into a fresh bob.config and copies into every
/// tunnel (the `BOB.*` and `i2cp.tcp.*` keys are left out: they configure BOB itself).
pub fn java_default_options() -> Options {
    [
        ("inbound.length", "3"),
        ("inbound.lengthVariance", "0"),
        ("outbound.length", "3"),
        ("outbound.lengthVariance", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// A configuration that must not be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The control port would be reachable from other machines.
    #[error(
        "refusing to listen on non-loopback address {0}: BOB has no authentication \
         (pass --allow-remote to do it anyway)"
    )]
    RemoteNotAllowed(SocketAddr),
    /// `max_connections` is zero.
    #[error("max connections must be at least 1")]
    NoConnections,
}

impl Config {
    /// Checks the configuration before anything is bound.
    ///
    /// # Errors
    /// [`ConfigError::RemoteNotAllowed`] for a non-loopback listen address without
    /// `allow_remote`; [`ConfigError::NoConnections`] for `max_connections == 0`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_listen_addr(self.listen)?;
        if self.max_connections == 0 {
            return Err(ConfigError::NoConnections);
        }
        Ok(())
    }

    /// Checks one address against the loopback rule (also used on the bound address).
    ///
    /// # Errors
    /// [`ConfigError::RemoteNotAllowed`].
    pub fn check_listen_addr(&self, addr: SocketAddr) -> Result<(), ConfigError> {
        if !self.allow_remote && !addr.ip().is_loopback() {
            return Err(ConfigError::RemoteNotAllowed(addr));
        }
        Ok(())
    }
}

/// Parses a signature type given as its code or its name (`0`, `DSA_SHA1`, `7`,
/// `EdDSA_SHA512_Ed25519`, `ed25519`, …; names are case-insensitive). `None` for types
/// keytools cannot generate.
pub fn parse_sig_type(s: &str) -> Option<SigType> {
    s.parse().ok()
}

/// Parses a crypto type given as its code or its name (`0`, `ElGamal`, `4`,
/// `ECIES_X25519`, `x25519`).
pub fn parse_crypto_type(s: &str) -> Option<CryptoType> {
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_rule() {
        let mut c = Config::default();
        assert_eq!(c.validate(), Ok(()));
        c.listen = "0.0.0.0:2827".parse().unwrap();
        assert!(matches!(
            c.validate(),
            Err(ConfigError::RemoteNotAllowed(_))
        ));
        c.allow_remote = true;
        assert_eq!(c.validate(), Ok(()));
        c.listen = "[::1]:0".parse().unwrap();
        c.allow_remote = false;
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn sig_type_names() {
        assert_eq!(parse_sig_type("0"), Some(SigType::DsaSha1));
        assert_eq!(
            parse_sig_type("eddsa_sha512_ed25519"),
            Some(SigType::Ed25519)
        );
        assert_eq!(parse_sig_type("7"), Some(SigType::Ed25519));
        assert_eq!(parse_sig_type("4"), None);
        assert_eq!(parse_sig_type("99999999999"), None);
        assert_eq!(parse_crypto_type("4"), Some(CryptoType::X25519));
        assert_eq!(parse_crypto_type("1"), None);
    }
}
