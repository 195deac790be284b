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
//! [`crate::service::persist::Persister`] writes the file from the live registry.
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
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bob_codec::types::{Host, Nickname, OptionKey, OptionValue, Port, ValueError};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use keytools::keyfile::{KeyFileError, write_private_file};

/// The state file's name inside the state directory.
pub const STATE_FILE: &str = "registry.toml";

/// Temporary files of an interrupted save at least this old are removed by
/// [`StateStore::open`].
pub const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// Largest state file read back (a registry of the most tunnels with the most options
/// stays far below it); a larger file is refused rather than read into memory.
pub const MAX_STATE_FILE: u64 = 256 * 1024 * 1024;

/// Reads the state file: `None` when there is none. Read like a key file (bounded,
/// opened non-blocking and checked to be a regular file, so a FIFO or a device at
/// the path cannot hang the server before it greets anyone); a symlink is followed
/// when reading and replaced by the next save.
fn read_state(path: &std::path::Path) -> Result<Option<Zeroizing<Vec<u8>>>, StateError> {
    match keytools::keyfile::read_file_bounded(path, MAX_STATE_FILE) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(KeyFileError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(None)
        }
        Err(e) => Err(StateError::Read(e)),
    }
}

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

/// Problems with the state directory; `Display` is what the operator reads, once: the
/// variants carry no separate `source`, so a report that prints the error chain does not
/// repeat the OS error.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The directory could not be created.
    #[error("state directory {path}: {error}")]
    Io {
        /// the path involved
        path: PathBuf,
        /// what the OS said
        error: std::io::Error,
    },
    /// Writing the file failed (shown in `Display`, so not a `source()`).
    #[error("saving state: {0}")]
    Write(KeyFileError),
    /// The state file is not a regular file (a FIFO, a device, a directory), is larger
    /// than [`MAX_STATE_FILE`], or cannot be read.
    #[error("reading state: {0}")]
    Read(KeyFileError),
    /// Serializing failed (should not happen for valid records).
    #[error("saving state: {0}")]
    Encode(String),
}

impl From<KeyFileError> for StateError {
    fn from(e: KeyFileError) -> Self {
        Self::Write(e)
    }
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
    /// Opens (creating, mode 0700) the state directory and removes temporary files of
    /// saves that were interrupted at least [`STALE_TEMP_AGE`] ago.
    ///
    /// # Errors
    /// [`StateError::Io`] if the directory cannot be created.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StateError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|error| StateError::Io {
            path: dir.clone(),
            error,
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o700));
            match keytools::keyfile::check_key_dir(&dir) {
                Ok(access) if !access.is_private() => tracing::warn!(
                    dir = %dir.display(),
                    mode = format_args!("{:o}", access.mode),
                    "the state directory holds private keys but others can access it"
                ),
                _ => {}
            }
        }
        // A save killed between writing its temporary file and renaming it leaves the
        // file behind, keys inside. Younger ones may be a save of a process still running.
        match keytools::keyfile::remove_stale_temp_files(&dir, STALE_TEMP_AGE) {
            Ok(removed) => {
                for path in removed {
                    tracing::warn!(file = %path.display(), "removed a temporary state file left by an interrupted save");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot clean the state directory's temporary files")
            }
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
    /// [`StateError::Read`] if the file exists but cannot be read (or is no regular
    /// file), [`StateError::Write`] if it cannot be kept aside.
    pub fn load(&self) -> Result<Loaded, StateError> {
        let path = self.path();
        let Some(text) = read_state(&path)? else {
            return Ok(Loaded::default());
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
        match read_state(&self.path())? {
            Some(bytes) => self.write_aside(&bytes).map(Some),
            None => Ok(None),
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

/// Checks one stored entry: keys decode, ports in range, hosts and options without
/// whitespace (they came through BOB, whose operands never hold spaces).
fn validate(record: &TunnelRecord) -> Result<(), String> {
    // The operands' own types: what a command could have stored, and nothing else
    // (an empty nickname, a control character or an oversized value is refused).
    let text = |e: ValueError| e.to_string();
    Nickname::new(record.nickname.as_str()).map_err(text)?;
    Host::new(record.inhost.as_str()).map_err(|e| format!("inhost: {e}"))?;
    Host::new(record.outhost.as_str()).map_err(|e| format!("outhost: {e}"))?;
    for port in [record.inport, record.outport].into_iter().flatten() {
        Port::new(port).map_err(text)?;
    }
    for (k, v) in &record.options {
        OptionKey::new(k.as_str()).map_err(text)?;
        OptionValue::new(v.as_str()).map_err(text)?;
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

    /// A FIFO at the state file's path is refused at once (it would otherwise block the
    /// server before it greets anyone); the error names the path once.
    #[cfg(unix)]
    #[test]
    fn a_fifo_state_file_is_refused_not_waited_on() {
        let dir = tempdir("fifo");
        let store = StateStore::open(&dir).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(store.path())
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(store.load().map(|_| ()).map_err(|e| e.to_string()));
        });
        let result = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("load returned instead of waiting on the FIFO");
        let err = result.unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
        assert_eq!(err.matches("registry.toml").count(), 1, "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A symlink at the state file's path is replaced by the next save, never followed.
    #[cfg(unix)]
    #[test]
    fn a_symlinked_state_file_is_replaced_not_written_through() {
        let dir = tempdir("link");
        let store = StateStore::open(&dir).unwrap();
        let victim = dir.join("victim");
        fs::write(&victim, b"keep me").unwrap();
        std::os::unix::fs::symlink(&victim, store.path()).unwrap();
        store.save(1, &[record("web", false)]).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep me");
        assert!(fs::symlink_metadata(store.path()).unwrap().is_file());
        assert_eq!(store.load().unwrap().tunnels.len(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Entries a command could not have made (an empty nickname, a control character in
    /// a host) are dropped on load and reported, not restored as ghosts.
    #[test]
    fn impossible_entries_are_dropped() {
        let dir = tempdir("ghost");
        let store = StateStore::open(&dir).unwrap();
        fs::write(
            store.path(),
            "version = 1\n\
             [[tunnel]]\nnickname = \"\"\ninhost = \"localhost\"\nouthost = \"localhost\"\n\
             [[tunnel]]\nnickname = \"x\"\ninhost = \"a\\u0007b\"\nouthost = \"localhost\"\n\
             [[tunnel]]\nnickname = \"ok\"\ninhost = \"localhost\"\nouthost = \"localhost\"\n",
        )
        .unwrap();
        let loaded = store.load().unwrap();
        let names: Vec<_> = loaded.tunnels.iter().map(|t| t.nickname.as_str()).collect();
        assert_eq!(names, ["ok"]);
        assert!(
            loaded.problems[0].contains("nickname is empty"),
            "{:?}",
            loaded.problems
        );
        assert!(
            loaded.problems[1].contains("inhost"),
            "{:?}",
            loaded.problems
        );
        assert!(loaded.kept_aside.is_some());
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A temporary file an interrupted save left behind (keys inside) is removed when
    /// the directory is opened again; a fresh one (a save in progress) and other files
    /// are kept.
    #[cfg(unix)]
    #[test]
    fn open_removes_stale_temp_files_only() {
        let dir = tempdir("stale");
        fs::create_dir_all(&dir).unwrap();
        let stale = dir.join(".registry.toml.bobtmp-0123456789abcdef");
        let fresh = dir.join(".registry.toml.bobtmp-fedcba9876543210");
        let other = dir.join("notes.txt");
        for f in [&stale, &fresh, &other] {
            fs::write(f, b"x").unwrap();
        }
        let aged = std::process::Command::new("touch")
            .args(["-d", "2 hours ago"])
            .arg(&stale)
            .status()
            .expect("touch runs");
        assert!(aged.success());
        let _store = StateStore::open(&dir).unwrap();
        assert!(!stale.exists(), "the stale temp file was removed");
        assert!(fresh.exists() && other.exists());
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
