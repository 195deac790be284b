//! One registry entry: a named tunnel's settings and where it is in its lifecycle.

use std::collections::BTreeMap;
use std::sync::Arc;

use bob_codec::{TunnelCounters, TunnelStatus};
use keytools::PrivateKeys;

use bob_codec::types::{Host, Port};

use crate::backend::Options;
use crate::config::MAX_OPTIONS_PER_TUNNEL;
use crate::storage::state::TunnelRecord;
use crate::tunnel::{ActiveTunnel, StatsSnapshot, TunnelKind, TunnelStats};

/// Host used for `inhost`/`outhost` until set (Java's default).
pub const DEFAULT_HOST: &str = "localhost";

/// The most properties one entry holds: the server's default options, the two nickname
/// options and the client's `option`s together. The one limit of every way options get
/// into an entry (`option`, the tunnels file, the state file).
pub const MAX_PROPERTIES: usize = MAX_OPTIONS_PER_TUNNEL;

/// Options refused because the entry would hold more than [`MAX_PROPERTIES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many options (limit {limit})")]
pub struct TooManyOptions {
    /// the limit ([`MAX_PROPERTIES`])
    pub limit: usize,
}

/// Which side of a tunnel a host or port belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// the inbound (client) side: `inhost`/`inport`, where applications connect
    Inbound,
    /// the outbound (server) side: `outhost`/`outport`, where incoming streams go
    Outbound,
}

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
    /// what the tunnel does with its connections
    pub(super) kind: TunnelKind,
    /// private keys, once `newkeys`/`setkeys` ran
    pub(super) keys: Option<PrivateKeys>,
    /// inbound listen host
    pub(super) inhost: String,
    /// inbound listen port; the inbound side runs iff set
    pub(super) inport: Option<u16>,
    /// outbound connect host
    pub(super) outhost: String,
    /// outbound connect port; the outbound side runs iff set
    pub(super) outport: Option<u16>,
    /// do not send the peer destination line to the outbound application
    pub(super) quiet: bool,
    /// server defaults, the two nickname options, then `option`s (sorted by key); never
    /// more than [`MAX_PROPERTIES`]
    pub(super) properties: BTreeMap<String, String>,
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
            kind: TunnelKind::default(),
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

    /// What the tunnel does with its connections.
    pub fn kind(&self) -> TunnelKind {
        self.kind
    }

    /// The private keys, once set.
    pub fn keys(&self) -> Option<&PrivateKeys> {
        self.keys.as_ref()
    }

    /// Sets the private keys (`newkeys`, `setkeys`, a tunnels file's key file).
    pub fn set_keys(&mut self, keys: PrivateKeys) {
        self.keys = Some(keys);
    }

    /// The host of one side (`localhost` until set).
    pub fn host(&self, side: Side) -> &str {
        match side {
            Side::Inbound => &self.inhost,
            Side::Outbound => &self.outhost,
        }
    }

    /// Sets the host of one side; a [`Host`] holds no whitespace or control character
    /// and is at most 255 bytes.
    pub fn set_host(&mut self, side: Side, host: Host) {
        let host = host.into_inner();
        match side {
            Side::Inbound => self.inhost = host,
            Side::Outbound => self.outhost = host,
        }
    }

    /// The port of one side; the side runs iff it is set.
    pub fn port(&self, side: Side) -> Option<u16> {
        match side {
            Side::Inbound => self.inport,
            Side::Outbound => self.outport,
        }
    }

    /// Sets the port of one side (1..=65535 by its type).
    pub fn set_port(&mut self, side: Side, port: Port) {
        match side {
            Side::Inbound => self.inport = Some(port.get()),
            Side::Outbound => self.outport = Some(port.get()),
        }
    }

    /// Whether the peer's destination line is left out on outbound connections.
    pub fn quiet(&self) -> bool {
        self.quiet
    }

    /// Sets the quiet flag.
    pub fn set_quiet(&mut self, quiet: bool) {
        self.quiet = quiet;
    }

    /// Every property: server defaults, the two nickname options, then `option`s.
    pub fn properties(&self) -> &BTreeMap<String, String> {
        &self.properties
    }

    /// Adds or replaces `pairs`, all or nothing: refused, changing nothing, when the
    /// entry would then hold more than [`MAX_PROPERTIES`] (replacing a key it holds
    /// never counts against the limit).
    ///
    /// # Errors
    /// [`TooManyOptions`].
    pub fn set_options<I>(&mut self, pairs: I) -> Result<(), TooManyOptions>
    where
        I: IntoIterator<Item = (String, String)>,
        I::IntoIter: Clone,
    {
        // A key given twice in one batch counts twice, as `option` always counted it.
        let pairs = pairs.into_iter();
        let new_keys = pairs
            .clone()
            .filter(|(k, _)| !self.properties.contains_key(k))
            .count();
        if self.properties.len() + new_keys > MAX_PROPERTIES {
            return Err(TooManyOptions {
                limit: MAX_PROPERTIES,
            });
        }
        self.properties.extend(pairs);
        Ok(())
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
