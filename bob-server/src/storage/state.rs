//! Registry state that survives restarts (`--state-dir DIR`).
//!
//! The whole registry is one TOML file, `DIR/registry.toml`, rewritten atomically on
//! every change (temporary file, fsync, rename, fsync of the directory) with mode 0600,
//! because it holds the tunnels' private keys. A crash at any moment leaves either the
//! old or the new file, never a torn one.
//!
//! On start the file is read back. A file that does not parse, or entries that do not
//! validate, are reported and the original file is kept aside as
//! `registry.toml.corrupt-<unix time>`: nothing is silently dropped.
//!
//! `options` are the tunnel's whole property set as `showprops` shows it (the server
//! defaults it was created with included), so a restored tunnel is handed exactly the
//! options it had. `running` is true for a tunnel that was started and not stopped by a
//! client; the server's own shutdown leaves it true, so the tunnel starts again.
//! [`Persister`] writes the file from the live registry (see [`crate::server`]).
//!
//! # Format
//! ```toml
//! version = 1
//! [[tunnel]]
//! nickname = "web"
//! keys = "<I2P base64 KEYS blob>"
//! inhost = "localhost"
//! outhost = "127.0.0.1"
//! outport = 8080
//! quiet = false
//! running = true
//! options = [["inbound.length", "1"]]
//! ```

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::registry::Registry;
use crate::storage::keyfile::{KeyFileError, write_private_file};

/// The state file's name inside the state directory.
pub const STATE_FILE: &str = "registry.toml";

/// Format version written to the file; files with another version are set aside.
pub const STATE_VERSION: u32 = 1;

/// One registry entry as stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelRecord {
    /// the tunnel's nickname
    pub nickname: String,
    /// the private keys as I2P base64 (secret: never logged; the file is 0600)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<String>,
    /// inbound host
    pub inhost: String,
    /// inbound port
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inport: Option<u16>,
    /// outbound host
    pub outhost: String,
    /// outbound port
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outport: Option<u16>,
    /// quiet flag
    #[serde(default)]
    pub quiet: bool,
    /// tunnel options in the order they were set
    #[serde(default)]
    pub options: Vec<(String, String)>,
    /// whether the tunnel was running (it is started again after a restart)
    #[serde(default)]
    pub running: bool,
}

impl std::fmt::Debug for TunnelRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelRecord")
            .field("nickname", &self.nickname)
            .field("keys", &self.keys.as_ref().map(|_| "<redacted>"))
            .field("inhost", &self.inhost)
            .field("inport", &self.inport)
            .field("outhost", &self.outhost)
            .field("outport", &self.outport)
            .field("quiet", &self.quiet)
            .field("options", &self.options)
            .field("running", &self.running)
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    #[serde(default, rename = "tunnel")]
    tunnels: Vec<TunnelRecord>,
}

/// Problems with the state directory; `Display` is what the operator reads.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The directory or file could not be read or written.
    #[error("state directory {path}: {source}")]
    Io {
        /// the path involved
        path: PathBuf,
        /// what the OS said
        source: std::io::Error,
    },
    /// Writing the file failed.
    #[error("saving state: {0}")]
    Write(#[from] KeyFileError),
    /// Serializing failed (should not happen for valid records).
    #[error("saving state: {0}")]
    Encode(String),
}

/// What [`StateStore::load`] found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// the entries that validated, in file order
    pub tunnels: Vec<TunnelRecord>,
    /// problems found; each was logged by the caller and the file kept aside
    pub problems: Vec<String>,
    /// where the original file was kept when there were problems
    pub kept_aside: Option<PathBuf>,
}

/// The state directory and a guard that orders concurrent saves.
#[derive(Debug)]
pub struct StateStore {
    dir: PathBuf,
    /// generation of the last snapshot written: older snapshots are skipped, so a slow
    /// writer can never overwrite a newer state with an older one
    written: Mutex<u64>,
    /// files written since `open`
    writes: AtomicU64,
}

impl StateStore {
    /// Opens (creating, mode 0700) the state directory.
    ///
    /// # Errors
    /// [`StateError::Io`] if the directory cannot be created.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StateError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| StateError::Io {
            path: dir.clone(),
            source,
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o700));
        }
        Ok(Self {
            dir,
            written: Mutex::new(0),
            writes: AtomicU64::new(0),
        })
    }

    /// How many times the state file was written since [`StateStore::open`].
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// The state file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// Reads the stored registry. A missing file is an empty registry.
    ///
    /// # Errors
    /// [`StateError::Io`] if the file exists but cannot be read or kept aside.
    pub fn load(&self) -> Result<Loaded, StateError> {
        let path = self.path();
        let text = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::default()),
            Err(source) => return Err(StateError::Io { path, source }),
        };
        let mut loaded = Loaded::default();
        match std::str::from_utf8(&text)
            .map_err(|e| e.to_string())
            .and_then(|t| toml::from_str::<StateFile>(t).map_err(|e| e.to_string()))
        {
            Ok(file) if file.version != STATE_VERSION => loaded
                .problems
                .push(format!("unsupported state version {}", file.version)),
            Ok(file) => {
                let mut seen = std::collections::HashSet::new();
                for record in file.tunnels {
                    match validate(&record) {
                        Err(why) => loaded.problems.push(format!(
                            "tunnel {:?}: {why}; entry dropped",
                            record.nickname
                        )),
                        Ok(()) if !seen.insert(record.nickname.clone()) => loaded.problems.push(
                            format!("tunnel {:?}: duplicate entry dropped", record.nickname),
                        ),
                        Ok(()) => loaded.tunnels.push(record),
                    }
                }
            }
            Err(why) => loaded
                .problems
                .push(format!("cannot parse {}: {why}", path.display())),
        }
        if !loaded.problems.is_empty() {
            loaded.kept_aside = Some(self.write_aside(&text)?);
        }
        Ok(loaded)
    }

    /// Copies the current state file to `registry.toml.corrupt-<unix time>` (mode 0600)
    /// before entries of it are dropped for reasons [`StateStore::load`] cannot see
    /// (registry limits); returns the copy's path, `None` without a state file.
    ///
    /// # Errors
    /// [`StateError`] if the file cannot be read or the copy written.
    pub fn keep_aside(&self) -> Result<Option<PathBuf>, StateError> {
        let path = self.path();
        match fs::read(&path) {
            Ok(bytes) => self.write_aside(&bytes).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Io { path, source }),
        }
    }

    fn write_aside(&self, bytes: &[u8]) -> Result<PathBuf, StateError> {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let aside = self.dir.join(format!("{STATE_FILE}.corrupt-{secs}"));
        write_private_file(&aside, bytes)?;
        Ok(aside)
    }

    /// Saves a snapshot taken at registry generation `generation`. Snapshots older than
    /// the last one written are skipped (they are already superseded).
    ///
    /// # Errors
    /// [`StateError`] if the file cannot be written; the previous file stays intact.
    pub fn save(&self, generation: u64, tunnels: &[TunnelRecord]) -> Result<(), StateError> {
        let mut written = self
            .written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if generation < *written {
            return Ok(());
        }
        let file = StateFile {
            version: STATE_VERSION,
            tunnels: tunnels.to_vec(),
        };
        let text = toml::to_string(&file).map_err(|e| StateError::Encode(e.to_string()))?;
        write_private_file(&self.path(), text.as_bytes())?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        *written = generation;
        Ok(())
    }
}

/// Saves the registry through a [`StateStore`] whenever it changed.
///
/// [`Persister::persist`] snapshots the registry and writes it on a blocking thread;
/// callers await it before they answer the client whose command changed something, so
/// an `OK` means the change is on disk. Concurrent calls commit as a group: while one
/// write is in flight the others wait, then the next writer snapshots the newest
/// registry, which covers every waiting caller's change, and those callers return
/// without writing. Every snapshot carries its registry generation and the store skips
/// older ones, so a slow write never replaces a newer file.
#[derive(Debug, Clone)]
pub struct Persister {
    store: Arc<StateStore>,
    registry: Registry,
    /// highest generation known to be on disk
    saved: Arc<AtomicU64>,
    /// one snapshot-and-write at a time (group commit)
    writer: Arc<Mutex<()>>,
}

impl Persister {
    /// Saves `registry` into `store` from now on; `saved` is the registry generation
    /// the file already holds (0: none).
    pub fn new(store: Arc<StateStore>, registry: Registry, saved: u64) -> Self {
        Self {
            store,
            registry,
            saved: Arc::new(AtomicU64::new(saved)),
            writer: Arc::default(),
        }
    }

    /// The store written to.
    pub fn store(&self) -> &StateStore {
        &self.store
    }

    /// Writes the registry unless its current generation is already saved; returns
    /// once the file is durable (or the write failed).
    ///
    /// # Errors
    /// [`StateError`] when the file cannot be written (the previous file stays intact).
    pub async fn persist(&self) -> Result<(), StateError> {
        let wanted = self.registry.generation();
        if self.saved.load(Ordering::Acquire) >= wanted {
            return Ok(());
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let _turn = this
                .writer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // the write this caller waited for may have covered its change already
            if this.saved.load(Ordering::Acquire) >= wanted {
                return Ok(());
            }
            let snapshot = this.registry.snapshot();
            let generation = snapshot.generation;
            this.store.save(generation, &snapshot.into_records())?;
            this.saved.fetch_max(generation, Ordering::AcqRel);
            Ok(())
        })
        .await
        .map_err(|e| StateError::Encode(format!("save task failed: {e}")))?
    }
}

/// Checks one stored entry: keys decode, ports in range, hosts and options without
/// whitespace (they came through BOB, whose operands never hold spaces).
fn validate(record: &TunnelRecord) -> Result<(), String> {
    let no_space = |what: &str, s: &str| {
        if s.chars().any(char::is_whitespace) {
            Err(format!("{what} contains whitespace"))
        } else {
            Ok(())
        }
    };
    no_space("nickname", &record.nickname)?;
    no_space("inhost", &record.inhost)?;
    no_space("outhost", &record.outhost)?;
    if record.inport == Some(0) || record.outport == Some(0) {
        return Err("port 0".into());
    }
    for (k, v) in &record.options {
        if k.is_empty() || v.is_empty() || k.contains('=') {
            return Err(format!("bad option {k:?}={v:?}"));
        }
        no_space("option", k)?;
        no_space("option", v)?;
    }
    if let Some(keys) = &record.keys {
        keytools::PrivateKeys::from_base64(keys).map_err(|e| format!("bad keys: {e}"))?;
    }
    if record.running && record.keys.is_none() {
        return Err("running without keys".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use keytools::{CryptoType, PrivateKeys, SigType};

    fn tempdir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "bob-state-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn record(nick: &str, running: bool) -> TunnelRecord {
        let keys = PrivateKeys::generate(SigType::Ed25519, CryptoType::ElGamal).unwrap();
        TunnelRecord {
            nickname: nick.into(),
            keys: Some(keys.to_base64()),
            inhost: "localhost".into(),
            inport: Some(4444),
            outhost: "127.0.0.1".into(),
            outport: None,
            quiet: true,
            options: vec![
                ("inbound.length".into(), "1".into()),
                ("a".into(), "b".into()),
            ],
            running,
        }
    }

    #[test]
    fn save_then_load_round_trips() {
        let dir = tempdir("rt");
        let store = StateStore::open(&dir).unwrap();
        assert!(store.load().unwrap().tunnels.is_empty());
        let records = vec![record("one", true), record("two", false)];
        store.save(1, &records).unwrap();
        let loaded = StateStore::open(&dir).unwrap().load().unwrap();
        assert_eq!(loaded.tunnels, records);
        assert!(loaded.problems.is_empty() && loaded.kept_aside.is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(store.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn older_generations_never_overwrite_newer() {
        let dir = tempdir("gen");
        let store = StateStore::open(&dir).unwrap();
        store.save(5, &[record("new", false)]).unwrap();
        store.save(3, &[record("old", false)]).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.tunnels.len(), 1);
        assert_eq!(loaded.tunnels[0].nickname, "new");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corrupt_file_is_reported_and_kept_aside() {
        let dir = tempdir("corrupt");
        let store = StateStore::open(&dir).unwrap();
        fs::write(store.path(), b"version = 1\n[[tunnel]\ngarbage").unwrap();
        let loaded = store.load().unwrap();
        assert!(loaded.tunnels.is_empty());
        assert_eq!(loaded.problems.len(), 1, "{:?}", loaded.problems);
        let aside = loaded.kept_aside.unwrap();
        assert_eq!(
            fs::read(&aside).unwrap(),
            b"version = 1\n[[tunnel]\ngarbage"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_entries_are_dropped_with_a_reason_and_the_file_kept() {
        let dir = tempdir("bad");
        let store = StateStore::open(&dir).unwrap();
        let good = record("good", true);
        let mut bad_keys = record("badkeys", false);
        bad_keys.keys = Some("not-base64!".into());
        let mut no_keys_running = record("nokeys", true);
        no_keys_running.keys = None;
        store
            .save(1, &[good.clone(), bad_keys, no_keys_running, good.clone()])
            .unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.tunnels, vec![good]);
        assert_eq!(loaded.problems.len(), 3, "{:?}", loaded.problems);
        assert!(loaded.problems[0].contains("badkeys"));
        assert!(loaded.kept_aside.is_some());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unknown_version_is_set_aside() {
        let dir = tempdir("ver");
        let store = StateStore::open(&dir).unwrap();
        fs::write(store.path(), b"version = 99\n").unwrap();
        let loaded = store.load().unwrap();
        assert!(loaded.problems[0].contains("version 99"));
        assert!(loaded.kept_aside.is_some());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_saves_commit_as_a_group() {
        let dir = tempdir("group");
        let store = Arc::new(StateStore::open(&dir).unwrap());
        let registry = Registry::new(Vec::new(), 100);
        let persister = Persister::new(store.clone(), registry.clone(), 0);
        for i in 0..32 {
            registry.create(&format!("t{i}")).unwrap();
        }
        let saves = (0..32).map(|_| {
            let p = persister.clone();
            tokio::spawn(async move { p.persist().await })
        });
        for save in futures::future::join_all(saves).await {
            save.unwrap().unwrap();
        }
        assert_eq!(store.writes(), 1, "one write covers every waiting change");
        assert_eq!(store.load().unwrap().tunnels.len(), 32);
        // nothing changed: nothing written
        persister.persist().await.unwrap();
        assert_eq!(store.writes(), 1);
        registry.remove("t0").unwrap();
        persister.persist().await.unwrap();
        assert_eq!(store.writes(), 2);
        assert_eq!(store.load().unwrap().tunnels.len(), 31);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn debug_redacts_keys() {
        let r = record("x", false);
        let shown = format!("{r:?}");
        assert!(shown.contains("<redacted>"));
        assert!(!shown.contains(r.keys.as_deref().unwrap()));
    }
}
