//! The global tunnel registry (Java BOB's `NamedDB` database).
//!
//! One entry per nickname, created by `setnick`, visible at once to every control
//! connection. A connection only remembers the nickname it selected; every command reads
//! and writes the entry here, so nothing goes stale when another connection changes it.
//!
//! # Locking
//! [`Registry`] is an `Arc<std::sync::Mutex<…>>`: every critical section is a few field
//! reads or writes and never awaits. Starting and stopping a tunnel take time, so they are
//! split: `begin_*` marks the entry STARTING/STOPPING under the lock and hands out what the
//! slow part needs; the caller does the slow part with the lock released; `finish_*`
//! records the result. While an entry is STARTING or STOPPING every setter refuses with
//! `tunnel is active`, so nobody can change what is being started.
//!
//! # Generations
//! Every change that the state file (`--state-dir`) must reflect bumps a generation
//! counter under the same lock; [`Registry::generation`] tells whether anything changed
//! since a save, and a snapshot carries the generation it was taken at, so a slow save
//! of an older snapshot never overwrites a newer one (see [`crate::storage::state`]).
//! The remembered "was running" flag of an entry is set when a `start` succeeds and
//! cleared by `stop` or a failed start, but not by the server's own shutdown: tunnels that
//! run when the server stops run again after a restart.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bob_codec::{TunnelCounters, TunnelStatus};
use keytools::PrivateKeys;

use crate::backend::{Options, Session};
use crate::config::MAX_OPTIONS_PER_TUNNEL;
use crate::storage::state::TunnelRecord;
use crate::tunnel::{Endpoint, TunnelKind, TunnelSpec, is_server_option};
use bob_codec::types::{Host, Nickname, OptionKey, OptionValue};
mod entry;
mod lifecycle;

pub use crate::tunnel::{ActiveTunnel, Launcher};
use entry::Phase;
pub use entry::{
    DEFAULT_HOST, ENTRY_OVERHEAD, Entry, PROPERTY_OVERHEAD, Side, StartErrorRecord, TooManyOptions,
};
use tokio_util::sync::CancellationToken;

/// Why the registry refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// No entry of that name (or none selected).
    #[error("no such nickname")]
    NotFound,
    /// The entry is STARTING, RUNNING or STOPPING.
    #[error("tunnel is active")]
    Active,
    /// `stop` of a tunnel that is not RUNNING.
    #[error("tunnel is inactive")]
    Inactive,
    /// `start` without keys.
    #[error("keys are not set")]
    NoKeys,
    /// `start` with neither inport nor outport.
    #[error("no port set")]
    NoPort,
    /// `setnick` of a new name while the registry holds its maximum of entries.
    #[error("too many tunnels (limit {0})")]
    Full(usize),
    /// The change would take the registry over its byte cap.
    #[error("registry full (limit {0} bytes)")]
    TooBig(usize),
}

/// Proof that `begin_start` marked an entry STARTING; hand it back to `finish_start`.
#[derive(Debug)]
pub struct StartTicket {
    nickname: String,
    id: u64,
    kind: TunnelKind,
}

impl StartTicket {
    /// The kind of the tunnel being started.
    pub fn kind(&self) -> TunnelKind {
        self.kind
    }
}

/// What [`Registry::begin_stop`] left to do.
#[derive(Debug)]
pub enum StopWork {
    /// Stop this tunnel, then hand the ticket to [`Registry::finish_stop`].
    Running(Box<dyn ActiveTunnel>, StopTicket),
    /// A start was cancelled; its task finishes the stop.
    Starting,
}

/// Proof that `begin_stop` marked an entry STOPPING; hand it back to `finish_stop`.
#[derive(Debug)]
pub struct StopTicket {
    nickname: String,
    id: u64,
}

#[derive(Debug, Default)]
struct State {
    /// sorted by nickname, so `list` is stable
    entries: BTreeMap<String, Entry>,
    /// next entry id
    next_id: u64,
    /// bumped by every change the state file reflects
    generation: u64,
    /// sum of the entries' [`Entry::footprint`]s
    bytes: usize,
    /// the entries changed since the last save, when a saver tracks them
    /// ([`Registry::track_changes`])
    dirty: Option<Dirty>,
}

/// Change marks: which nicknames changed (or went away) at which generation, so a save
/// costs what changed, not what the registry holds.
#[derive(Debug, Default)]
struct Dirty {
    /// generation of its last unsaved change -> nickname (one mark per nickname)
    by_generation: BTreeMap<u64, String>,
    /// nickname -> generation of its last unsaved change
    by_nickname: std::collections::HashMap<String, u64>,
}

impl State {
    /// A change of `nickname` that the state file must reflect: a new generation, and
    /// the nickname marked with it.
    fn touch(&mut self, nickname: &str) {
        self.generation += 1;
        if let Some(dirty) = &mut self.dirty {
            if let Some(old) = dirty
                .by_nickname
                .insert(nickname.to_owned(), self.generation)
            {
                dirty.by_generation.remove(&old);
            }
            dirty
                .by_generation
                .insert(self.generation, nickname.to_owned());
        }
    }
}

/// The entries changed since the last save ([`Registry::changes`]).
#[derive(Debug)]
pub struct Changes {
    /// the generation the changes were read at
    pub generation: u64,
    /// the changed entries as the state file stores them (`keys` field empty), with
    /// their keys
    pub changed: Vec<(TunnelRecord, Option<PrivateKeys>)>,
    /// nicknames changed and then removed
    pub removed: Vec<String>,
}

impl Changes {
    /// The changed records, keys encoded.
    pub fn into_records(self) -> (Vec<TunnelRecord>, Vec<String>) {
        let records = Snapshot {
            generation: self.generation,
            entries: self.changed,
        }
        .into_records();
        (records, self.removed)
    }
}

pub use crate::config::DEFAULT_MAX_REGISTRY_BYTES;

/// The registry as the state file stores it, at one generation.
#[derive(Debug)]
pub struct Snapshot {
    /// the generation the snapshot was taken at
    pub generation: u64,
    /// every entry (its `keys` field empty) with its keys
    pub entries: Vec<(TunnelRecord, Option<PrivateKeys>)>,
}

impl Snapshot {
    /// The complete records, keys encoded (slow-ish: do it off the async runtime).
    pub fn into_records(self) -> Vec<TunnelRecord> {
        self.entries
            .into_iter()
            .map(|(mut record, keys)| {
                record.keys = keys.map(|k| k.to_base64());
                record
            })
            .collect()
    }
}

/// Why a stored entry could not be put back into the registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// The stored key blob does not parse.
    #[error("bad keys: {0}")]
    Keys(String),
    /// An entry of that name already exists.
    #[error("duplicate nickname")]
    Duplicate,
    /// The registry is full.
    #[error("too many tunnels (limit {0})")]
    Full(usize),
    /// More options than a tunnel may hold.
    #[error("too many options (limit {0})")]
    TooManyOptions(usize),
    /// A nickname, host or option that breaks its type's rules (too long, whitespace…).
    #[error("{0}")]
    Invalid(#[from] bob_codec::types::ValueError),
    /// The registry would go over its byte cap.
    #[error("registry full (limit {0} bytes)")]
    TooBig(usize),
}

/// Handle to the shared registry; cheap to clone.
#[derive(Debug, Clone)]
pub struct Registry {
    inner: Arc<Mutex<State>>,
    /// options every new entry starts with
    defaults: Arc<Options>,
    /// most entries (bounded memory)
    max_entries: usize,
    /// most bytes all entries may count for together ([`Entry::footprint`])
    max_bytes: usize,
}

impl Registry {
    /// An empty registry whose new entries start with `defaults` as properties and
    /// which holds at most `max_entries` entries.
    pub fn new(defaults: Options, max_entries: usize) -> Self {
        Self {
            inner: Arc::default(),
            defaults: Arc::new(defaults),
            max_entries,
            max_bytes: DEFAULT_MAX_REGISTRY_BYTES,
        }
    }

    /// The same registry with a cap of `max_bytes` on the bytes of all entries together.
    #[must_use]
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// The byte cap.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The bytes the entries count against the cap now.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Most properties one entry may hold: the one formula
    /// [`bob_codec::types::max_properties`] over this registry's defaults.
    pub fn max_properties(&self) -> usize {
        bob_codec::types::max_properties(self.defaults.len())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave an entry half-written in a way that
        // matters more than refusing all further service, so keep going with the data.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `setnick`: creates a fresh entry, replacing an inactive one of the same name.
    ///
    /// # Errors
    /// [`RegistryError::Active`] if an entry of that name is active,
    /// [`RegistryError::Full`] if the registry holds its maximum of entries.
    pub fn create(&self, nickname: &str) -> Result<(), RegistryError> {
        let mut state = self.lock();
        match state.entries.get(nickname) {
            Some(entry) if entry.is_active() => return Err(RegistryError::Active),
            Some(_) => {}
            None if state.entries.len() >= self.max_entries => {
                return Err(RegistryError::Full(self.max_entries));
            }
            None => {}
        }
        let id = state.next_id;
        let entry = Entry::new(id, nickname, &self.defaults);
        let replaced = state.entries.get(nickname).map_or(0, Entry::footprint);
        let bytes = state.bytes - replaced + entry.footprint();
        if bytes > self.max_bytes {
            return Err(RegistryError::TooBig(self.max_bytes));
        }
        state.next_id += 1;
        state.bytes = bytes;
        state.entries.insert(nickname.to_owned(), entry);
        state.touch(nickname);
        Ok(())
    }

    /// Puts a stored entry back (server start with `--state-dir`). The entry is
    /// inactive; returns whether it was running when saved (the caller starts it).
    ///
    /// # Errors
    /// [`RestoreError`] when the record cannot be used; nothing is changed then.
    pub fn restore(&self, record: &TunnelRecord) -> Result<bool, RestoreError> {
        let keys = record
            .keys
            .as_deref()
            .map(PrivateKeys::from_base64)
            .transpose()
            .map_err(|e| RestoreError::Keys(e.to_string()))?;
        if record.options.len() > self.max_properties() {
            return Err(RestoreError::TooManyOptions(MAX_OPTIONS_PER_TUNNEL));
        }
        // the same caps as at the command
        Nickname::new(record.nickname.as_str())?;
        for host in [&record.inhost, &record.outhost] {
            Host::new(host.as_str())?;
        }
        for (key, value) in &record.options {
            OptionKey::new(key.as_str())?;
            OptionValue::new(value.as_str())?;
        }
        let mut state = self.lock();
        if state.entries.contains_key(&record.nickname) {
            return Err(RestoreError::Duplicate);
        }
        if state.entries.len() >= self.max_entries {
            return Err(RestoreError::Full(self.max_entries));
        }
        let id = state.next_id;
        state.next_id += 1;
        let mut entry = Entry::new(id, &record.nickname, &self.defaults);
        entry.keys = keys;
        entry.inhost.clone_from(&record.inhost);
        entry.inport = record.inport;
        entry.outhost.clone_from(&record.outhost);
        entry.outport = record.outport;
        entry.quiet = record.quiet;
        entry.kind = record.kind;
        entry.properties = record.options.iter().cloned().collect();
        // Remembered until the start succeeds or fails, so a save meanwhile keeps it.
        entry.autostart = record.running && entry.keys.is_some();
        let start = entry.autostart;
        let bytes = state.bytes + entry.footprint();
        if bytes > self.max_bytes {
            return Err(RestoreError::TooBig(self.max_bytes));
        }
        state.bytes = bytes;
        state.entries.insert(record.nickname.clone(), entry);
        state.touch(&record.nickname);
        Ok(start)
    }

    /// The current generation: it changes with every change the state file reflects.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// All entries as the state file stores them, with the generation they belong to.
    pub fn snapshot(&self) -> Snapshot {
        let state = self.lock();
        Snapshot {
            generation: state.generation,
            entries: state
                .entries
                .values()
                .map(|e| (e.record_without_keys(), e.keys.clone()))
                .collect(),
        }
    }

    /// From now on, marks every changed entry until [`Registry::saved`] says it is on
    /// disk, for [`Registry::changes`]. Changes made before are not marked: the caller
    /// saves the whole registry once.
    pub fn track_changes(&self) {
        let mut state = self.lock();
        if state.dirty.is_none() {
            state.dirty = Some(Dirty::default());
        }
    }

    /// The entries changed since the last [`Registry::saved`] (all marked ones), at the
    /// current generation. Costs what changed, not the registry's size. Empty unless
    /// [`Registry::track_changes`] was called.
    pub fn changes(&self) -> Changes {
        let state = self.lock();
        let mut changed = Vec::new();
        let mut removed = Vec::new();
        for nickname in state.dirty.iter().flat_map(|d| d.by_generation.values()) {
            match state.entries.get(nickname) {
                Some(e) => changed.push((e.record_without_keys(), e.keys.clone())),
                None => removed.push(nickname.clone()),
            }
        }
        Changes {
            generation: state.generation,
            changed,
            removed,
        }
    }

    /// Changes up to `generation` are on disk: their marks go.
    pub fn saved(&self, generation: u64) {
        let mut state = self.lock();
        if let Some(dirty) = &mut state.dirty {
            let later = dirty.by_generation.split_off(&(generation + 1));
            for nickname in std::mem::replace(&mut dirty.by_generation, later).into_values() {
                dirty.by_nickname.remove(&nickname);
            }
        }
    }

    /// How many entries are marked changed and not yet saved (tests, diagnostics).
    pub fn unsaved(&self) -> usize {
        self.lock()
            .dirty
            .as_ref()
            .map_or(0, |d| d.by_generation.len())
    }

    /// Counters of one entry (`stats`): whether it runs, and its current or last run's
    /// numbers.
    pub fn counters(&self, nickname: &str) -> Option<TunnelCounters> {
        self.lock()
            .entries
            .get(nickname)
            .map(Entry::tunnel_counters)
    }

    /// Every entry's counters, sorted by nickname (the metrics endpoint).
    pub fn metrics(&self) -> Vec<TunnelCounters> {
        self.lock()
            .entries
            .values()
            .map(Entry::tunnel_counters)
            .collect()
    }

    /// Whether an entry of that name exists.
    pub fn contains(&self, nickname: &str) -> bool {
        self.lock().entries.contains_key(nickname)
    }

    /// Reads an entry.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`].
    pub fn read<R>(&self, nickname: &str, f: impl FnOnce(&Entry) -> R) -> Result<R, RegistryError> {
        let state = self.lock();
        state
            .entries
            .get(nickname)
            .map(f)
            .ok_or(RegistryError::NotFound)
    }

    /// Changes an inactive entry (all setters go through here).
    ///
    /// # Errors
    /// [`RegistryError::NotFound`], [`RegistryError::Active`].
    pub fn update<R>(
        &self,
        nickname: &str,
        f: impl FnOnce(&mut Entry) -> R,
    ) -> Result<R, RegistryError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let entry = state
            .entries
            .get_mut(nickname)
            .ok_or(RegistryError::NotFound)?;
        if entry.is_active() {
            return Err(RegistryError::Active);
        }
        let before = entry.footprint();
        entry.room = self.max_bytes.saturating_sub(state.bytes);
        let result = f(entry);
        // Setters check `room` before growing an entry; this keeps the total exact.
        state.bytes = state.bytes - before + entry.footprint();
        // Setters that refused change nothing, but telling them apart is not worth it:
        // an extra save of the same content is harmless.
        state.touch(nickname);
        Ok(result)
    }

    /// `clear`: removes an inactive entry.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`], [`RegistryError::Active`].
    pub fn remove(&self, nickname: &str) -> Result<(), RegistryError> {
        let mut state = self.lock();
        let entry = state.entries.get(nickname).ok_or(RegistryError::NotFound)?;
        if entry.is_active() {
            return Err(RegistryError::Active);
        }
        if let Some(entry) = state.entries.remove(nickname) {
            state.bytes -= entry.footprint();
        }
        state.touch(nickname);
        Ok(())
    }

    /// Status records of all entries, sorted by nickname (`list`).
    pub fn list(&self) -> Vec<TunnelStatus> {
        self.lock().entries.values().map(Entry::status).collect()
    }

    /// Status of one entry (`status`, `show`).
    pub fn status(&self, nickname: &str) -> Option<TunnelStatus> {
        self.lock().entries.get(nickname).map(Entry::status)
    }

    /// The session of a RUNNING entry.
    pub fn session(&self, nickname: &str) -> Option<Arc<dyn Session>> {
        match &self.lock().entries.get(nickname)?.phase {
            Phase::Running(t) => Some(t.session()),
            _ => None,
        }
    }

    /// The bound inbound listener of a RUNNING entry.
    pub fn inbound_addr(&self, nickname: &str) -> Option<SocketAddr> {
        match &self.lock().entries.get(nickname)?.phase {
            Phase::Running(t) => t.inbound_addr(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
