//! One registry entry: a named tunnel's settings and where it is in its lifecycle.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use bob_codec::{TunnelCounters, TunnelStatus};
use keytools::PrivateKeys;

use crate::backend::{BoxFuture, Options, Session, StreamingCore};
use crate::storage::state::TunnelRecord;
use crate::tunnel::{StartError, StatsSnapshot, TunnelLimits, TunnelSpec, TunnelStats};

/// Host used for `inhost`/`outhost` until set (Java's default).
pub const DEFAULT_HOST: &str = "localhost";

/// A started tunnel as the registry holds it.
///
/// Implemented by [`crate::tunnel::RunningTunnel`]; tests may supply their own.
pub trait ActiveTunnel: Send + Sync + fmt::Debug {
    /// The backend session (for `ping` through the tunnel's destination).
    fn session(&self) -> Arc<dyn Session>;

    /// Where the inbound listener is bound, if the tunnel has an inbound side.
    fn inbound_addr(&self) -> Option<SocketAddr>;

    /// Closes listener and session and ends live connections.
    fn stop(self: Box<Self>) -> BoxFuture<'static, ()>;

    /// The tunnel's live counters, if it keeps any (`stats`, metrics). The registry
    /// keeps them after the tunnel stops, so the numbers of the last run stay readable.
    fn stats(&self) -> Option<Arc<TunnelStats>> {
        None
    }
}

/// Starts a tunnel: returns once it is usable or failed.
pub type Launcher = Arc<
    dyn Fn(
            Arc<dyn StreamingCore>,
            TunnelSpec,
            TunnelLimits,
        ) -> BoxFuture<'static, Result<Box<dyn ActiveTunnel>, StartError>>
        + Send
        + Sync,
>;

/// Where an entry is in its lifecycle (Java's STARTING/RUNNING/STOPPING flags).
#[derive(Debug)]
pub(super) enum Phase {
    /// not running; settings may change
    Idle,
    /// `start` is bringing it up
    Starting,
    /// up; the handle stops it
    Running(Box<dyn ActiveTunnel>),
    /// `stop` is tearing it down
    Stopping,
}

impl Phase {
    pub(super) fn is_active(&self) -> bool {
        !matches!(self, Self::Idle)
    }
}

/// One named tunnel and its settings.
#[derive(Debug)]
pub struct Entry {
    /// distinguishes this entry from a later one of the same name (setnick replaces)
    pub(super) id: u64,
    /// the nickname
    pub(super) nickname: String,
    /// private keys, once `newkeys`/`setkeys` ran
    pub keys: Option<PrivateKeys>,
    /// inbound listen host
    pub inhost: String,
    /// inbound listen port; the inbound side runs iff set
    pub inport: Option<u16>,
    /// outbound connect host
    pub outhost: String,
    /// outbound connect port; the outbound side runs iff set
    pub outport: Option<u16>,
    /// do not send the peer destination line to the outbound application
    pub quiet: bool,
    /// server defaults, the two nickname options, then `option`s (sorted by key)
    pub properties: BTreeMap<String, String>,
    /// lifecycle
    pub(super) phase: Phase,
    /// the tunnel was started and not stopped by a client: it is saved as running and
    /// started again after a restart
    pub(super) autostart: bool,
    /// counters of the current or last run
    pub(super) stats: Option<Arc<TunnelStats>>,
}

impl Entry {
    pub(super) fn new(id: u64, nickname: &str, defaults: &Options) -> Self {
        let mut properties: BTreeMap<String, String> = defaults.iter().cloned().collect();
        properties.insert("inbound.nickname".to_owned(), nickname.to_owned());
        properties.insert("outbound.nickname".to_owned(), nickname.to_owned());
        Self {
            id,
            nickname: nickname.to_owned(),
            keys: None,
            inhost: DEFAULT_HOST.to_owned(),
            inport: None,
            outhost: DEFAULT_HOST.to_owned(),
            outport: None,
            quiet: false,
            properties,
            phase: Phase::Idle,
            autostart: false,
            stats: None,
        }
    }

    /// The nickname.
    pub fn nickname(&self) -> &str {
        &self.nickname
    }

    /// STARTING, RUNNING or STOPPING.
    pub fn is_active(&self) -> bool {
        self.phase.is_active()
    }

    /// Whether the tunnel is RUNNING.
    pub fn is_running(&self) -> bool {
        matches!(self.phase, Phase::Running(_))
    }

    /// Counters of the current run, or of the last one once stopped (zero if never run).
    pub fn counters(&self) -> StatsSnapshot {
        self.stats
            .as_ref()
            .map(|s| s.snapshot())
            .unwrap_or_default()
    }

    /// [`Entry::counters`] with the name and running flag, as `stats` and the metrics
    /// endpoint show them.
    pub fn tunnel_counters(&self) -> TunnelCounters {
        let c = self.counters();
        TunnelCounters {
            nickname: self.nickname.clone(),
            running: self.is_running(),
            accepted: c.accepted,
            active: c.active,
            failed: c.failed,
            bytes_in: c.bytes_in,
            bytes_out: c.bytes_out,
        }
    }

    /// The stored form of this entry, keys left out (they are encoded by the caller,
    /// outside the registry lock).
    pub(super) fn record_without_keys(&self) -> TunnelRecord {
        TunnelRecord {
            nickname: self.nickname.clone(),
            keys: None,
            inhost: self.inhost.clone(),
            inport: self.inport,
            outhost: self.outhost.clone(),
            outport: self.outport,
            quiet: self.quiet,
            options: self
                .properties
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            running: self.autostart,
        }
    }

    /// The ten-field record of `list`/`status`/`show`.
    pub fn status(&self) -> TunnelStatus {
        let (starting, running, stopping) = match self.phase {
            Phase::Idle => (false, false, false),
            Phase::Starting => (true, false, false),
            Phase::Running(_) => (false, true, false),
            Phase::Stopping => (false, false, true),
        };
        TunnelStatus {
            nickname: self.nickname.clone(),
            starting,
            running,
            stopping,
            keys: self.keys.is_some(),
            quiet: self.quiet,
            inport: self.inport,
            inhost: self.inhost.clone(),
            outport: self.outport,
            outhost: self.outhost.clone(),
        }
    }
}
