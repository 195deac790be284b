//! One registry entry: a named tunnel's settings and where it is in its lifecycle.

use std::collections::BTreeMap;
use std::sync::Arc;

use bob_codec::{TunnelCounters, TunnelStatus};
use keytools::PrivateKeys;

use bob_codec::types::{Host, Port};
use tokio_util::sync::CancellationToken;

use crate::backend::Options;
use crate::config::MAX_OPTIONS_PER_TUNNEL;
use crate::storage::state::TunnelRecord;
use crate::tunnel::{ActiveTunnel, StatsSnapshot, TunnelKind, TunnelStats};

/// Host used for `inhost`/`outhost` until set (Java's default).
pub const DEFAULT_HOST: &str = "localhost";

/// Options refused because the entry would hold more than its most properties: the
/// server's default options, the two nickname options and [`MAX_OPTIONS_PER_TUNNEL`]
/// user options (the one formula, [`bob_codec::types::max_properties`], of every way
/// options get into an entry: `option`, the tunnels file, the state file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many options (limit {limit})")]
pub struct TooManyOptions {
    /// the limit on user options ([`MAX_OPTIONS_PER_TUNNEL`])
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
    /// `start` is bringing it up; cancelling the token gives up (`stop`)
    Starting(CancellationToken),
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
    /// more than `max_properties`
    pub(super) properties: BTreeMap<String, String>,
    /// lifecycle
    pub(super) phase: Phase,
    /// the tunnel was started and not stopped by a client: it is saved as running and
    /// started again after a restart
    pub(super) autostart: bool,
    /// counters of the current or last run
    pub(super) stats: Option<Arc<TunnelStats>>,
    /// bytes the entry may still grow by (set by `Registry::update`)
    pub(super) room: usize,
    /// most properties: `bob_codec::types::max_properties` of the server's defaults
    pub(super) max_properties: usize,
    /// why the last start failed, and when (cleared by a successful start)
    pub(super) last_error: Option<StartErrorRecord>,
}

/// A start that failed: the reason (the text after `starting tunnel: `) and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartErrorRecord {
    /// the reason
    pub reason: String,
    /// when it failed
    pub at: std::time::SystemTime,
}

/// Fixed bytes counted per entry against the registry's byte cap (keys, struct, map node).
pub const ENTRY_OVERHEAD: usize = 1024;

/// Fixed bytes counted per property against the registry's byte cap (map node).
pub const PROPERTY_OVERHEAD: usize = 64;

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
            room: 0,
            max_properties: bob_codec::types::max_properties(defaults.len()),
            last_error: None,
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

    /// Sets what the tunnel does with its connections (`settunneltype`, the tunnels
    /// file); only while inactive, as every setter ([`crate::registry::Registry::update`]).
    pub fn set_kind(&mut self, kind: TunnelKind) {
        self.kind = kind;
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
    /// entry would then hold more than its defaults, nickname options and
    /// [`MAX_OPTIONS_PER_TUNNEL`] user options (replacing a key it holds
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
        if self.properties.len() + new_keys > self.max_properties {
            return Err(TooManyOptions {
                limit: MAX_OPTIONS_PER_TUNNEL,
            });
        }
        self.properties.extend(pairs);
        Ok(())
    }

    /// STARTING, RUNNING or STOPPING.
    pub fn is_active(&self) -> bool {
        self.phase.is_active()
    }

    /// Why the last start failed and when, unless a start succeeded since.
    pub fn last_start_error(&self) -> Option<&StartErrorRecord> {
        self.last_error.as_ref()
    }

    /// Whether the tunnel is RUNNING (and none of its accept loops has failed).
    pub fn is_running(&self) -> bool {
        matches!(self.phase, Phase::Running(_)) && !self.has_failed()
    }

    /// Whether an accept loop of the current run died: the tunnel takes no more
    /// connections; `stop` cleans it up.
    pub fn has_failed(&self) -> bool {
        self.stats.as_ref().is_some_and(|s| s.has_failed())
    }

    /// Bytes this entry counts for against the registry's byte cap: its strings plus a
    /// fixed overhead per entry (keys, struct, map node) and per property (map node).
    pub fn footprint(&self) -> usize {
        ENTRY_OVERHEAD
            + self.nickname.len()
            + self.inhost.len()
            + self.outhost.len()
            + self
                .properties
                .iter()
                .map(|(k, v)| PROPERTY_OVERHEAD + k.len() + v.len())
                .sum::<usize>()
    }

    /// How many more bytes this entry may grow by before the registry's byte cap
    /// (valid inside [`crate::registry::Registry::update`]).
    pub fn room(&self) -> usize {
        self.room
    }

    /// What setting `pairs` adds to [`Entry::footprint`] (shrinking counts as zero).
    pub fn growth_by_options(&self, pairs: &[(String, String)]) -> usize {
        pairs
            .iter()
            .map(|(k, v)| match self.properties.get(k) {
                Some(old) => v.len().saturating_sub(old.len()),
                None => PROPERTY_OVERHEAD + k.len() + v.len(),
            })
            .sum()
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
            extra: c
                .udp
                .map(|u| {
                    u.pairs()
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect()
                })
                .unwrap_or_default(),
            last_error: self.last_error.as_ref().map(|e| {
                let at =
                    e.at.duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                (at, e.reason.clone())
            }),
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
            kind: self.kind,
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
            Phase::Starting(_) => (true, false, false),
            // a failed accept loop: not RUNNING, though `stop` is still needed
            Phase::Running(_) => (false, !self.has_failed(), false),
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
            extra: self.kind.status_fields(&self.properties),
        }
    }
}
