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
use crate::storage::state::TunnelRecord;
use crate::tunnel::{Endpoint, TunnelKind, TunnelSpec};
mod entry;

pub use crate::tunnel::{ActiveTunnel, Launcher};
use entry::Phase;
pub use entry::{DEFAULT_HOST, Entry, MAX_PROPERTIES, Side, TooManyOptions};

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
}

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
}

/// Handle to the shared registry; cheap to clone.
#[derive(Debug, Clone)]
pub struct Registry {
    inner: Arc<Mutex<State>>,
    /// options every new entry starts with
    defaults: Arc<Options>,
    /// most entries (bounded memory)
    max_entries: usize,
}

impl Registry {
    /// An empty registry whose new entries start with `defaults` as properties and
    /// which holds at most `max_entries` entries.
    pub fn new(defaults: Options, max_entries: usize) -> Self {
        Self {
            inner: Arc::default(),
            defaults: Arc::new(defaults),
            max_entries,
        }
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
        state.next_id += 1;
        let entry = Entry::new(id, nickname, &self.defaults);
        state.entries.insert(nickname.to_owned(), entry);
        state.generation += 1;
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
        if record.options.len() > MAX_PROPERTIES {
            return Err(RestoreError::TooManyOptions(MAX_PROPERTIES));
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
        entry.properties = record.options.iter().cloned().collect();
        // Remembered until the start succeeds or fails, so a save meanwhile keeps it.
        entry.autostart = record.running && entry.keys.is_some();
        let start = entry.autostart;
        state.entries.insert(record.nickname.clone(), entry);
        state.generation += 1;
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
        let mut state = self.lock();
        let entry = state
            .entries
            .get_mut(nickname)
            .ok_or(RegistryError::NotFound)?;
        if entry.is_active() {
            return Err(RegistryError::Active);
        }
        let result = f(entry);
        // Setters that refused change nothing, but telling them apart is not worth it:
        // an extra save of the same content is harmless.
        state.generation += 1;
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
        state.entries.remove(nickname);
        state.generation += 1;
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

    /// `start`, first half: checks Java's preconditions, marks the entry STARTING and
    /// snapshots what the tunnel needs.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`], [`RegistryError::NoKeys`], [`RegistryError::NoPort`],
    /// [`RegistryError::Active`] (checked in this order, like Java).
    pub fn begin_start(&self, nickname: &str) -> Result<(TunnelSpec, StartTicket), RegistryError> {
        let mut state = self.lock();
        let entry = state
            .entries
            .get_mut(nickname)
            .ok_or(RegistryError::NotFound)?;
        let keys = entry.keys.clone().ok_or(RegistryError::NoKeys)?;
        if entry.kind.needs_a_port() && entry.inport.is_none() && entry.outport.is_none() {
            return Err(RegistryError::NoPort);
        }
        if entry.is_active() {
            return Err(RegistryError::Active);
        }
        let spec = TunnelSpec {
            nickname: entry.nickname.clone(),
            keys,
            options: entry
                .properties
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            inbound: entry.inport.map(|port| Endpoint {
                host: entry.inhost.clone(),
                port,
            }),
            outbound: entry.outport.map(|port| Endpoint {
                host: entry.outhost.clone(),
                port,
            }),
            quiet: entry.quiet,
        };
        entry.phase = Phase::Starting;
        Ok((
            spec,
            StartTicket {
                nickname: entry.nickname.clone(),
                id: entry.id,
                kind: entry.kind,
            },
        ))
    }

    /// `start`, second half: records the outcome (RUNNING, or back to inactive).
    ///
    /// Returns the tunnel back if its entry vanished meanwhile (cannot happen through
    /// the commands, which refuse to touch a STARTING entry); the caller must stop it.
    pub fn finish_start(
        &self,
        ticket: StartTicket,
        outcome: Option<Box<dyn ActiveTunnel>>,
    ) -> Option<Box<dyn ActiveTunnel>> {
        let mut state = self.lock();
        let changed = match state.entries.get_mut(&ticket.nickname) {
            Some(entry) if entry.id == ticket.id && matches!(entry.phase, Phase::Starting) => {
                let was = entry.autostart;
                match outcome {
                    Some(tunnel) => {
                        entry.stats = tunnel.stats();
                        entry.phase = Phase::Running(tunnel);
                        entry.autostart = true;
                    }
                    None => {
                        entry.phase = Phase::Idle;
                        entry.autostart = false;
                    }
                }
                was != entry.autostart
            }
            _ => return outcome,
        };
        if changed {
            state.generation += 1;
        }
        None
    }

    /// `start` given up because the server is shutting down: the entry is inactive
    /// again but keeps its "was running" flag (it starts again after a restart).
    pub fn abandon_start(&self, ticket: StartTicket) {
        let mut state = self.lock();
        if let Some(entry) = state.entries.get_mut(&ticket.nickname)
            && entry.id == ticket.id
            && matches!(entry.phase, Phase::Starting)
        {
            entry.phase = Phase::Idle;
        }
    }

    /// `stop`, first half: marks a RUNNING entry STOPPING and hands out its tunnel.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`], [`RegistryError::Inactive`] unless RUNNING.
    pub fn begin_stop(
        &self,
        nickname: &str,
    ) -> Result<(Box<dyn ActiveTunnel>, StopTicket), RegistryError> {
        let mut state = self.lock();
        let entry = state
            .entries
            .get_mut(nickname)
            .ok_or(RegistryError::NotFound)?;
        if !matches!(entry.phase, Phase::Running(_)) {
            return Err(RegistryError::Inactive);
        }
        let Phase::Running(tunnel) = std::mem::replace(&mut entry.phase, Phase::Stopping) else {
            unreachable!("checked above under the same lock")
        };
        let changed = std::mem::replace(&mut entry.autostart, false);
        let ticket = StopTicket {
            nickname: entry.nickname.clone(),
            id: entry.id,
        };
        if changed {
            state.generation += 1;
        }
        Ok((tunnel, ticket))
    }

    /// `stop`, second half: the tunnel is down; the entry is inactive again.
    pub fn finish_stop(&self, ticket: StopTicket) {
        let mut state = self.lock();
        if let Some(entry) = state.entries.get_mut(&ticket.nickname)
            && entry.id == ticket.id
            && matches!(entry.phase, Phase::Stopping)
        {
            entry.phase = Phase::Idle;
        }
    }

    /// Shutdown: marks every RUNNING entry STOPPING and hands out all tunnels. The
    /// entries keep their "was running" flag (they start again after a restart).
    pub fn begin_stop_all(&self) -> Vec<(Box<dyn ActiveTunnel>, StopTicket)> {
        let mut state = self.lock();
        let mut out = Vec::new();
        for entry in state.entries.values_mut() {
            if matches!(entry.phase, Phase::Running(_))
                && let Phase::Running(tunnel) = std::mem::replace(&mut entry.phase, Phase::Stopping)
            {
                out.push((
                    tunnel,
                    StopTicket {
                        nickname: entry.nickname.clone(),
                        id: entry.id,
                    },
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
