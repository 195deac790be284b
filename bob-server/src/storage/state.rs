//! Registry state that survives restarts (`--state-dir DIR`).
//!
//! # One file per tunnel
//! Each tunnel is one TOML file, `DIR/tunnels/<name>.toml`, where `<name>` is the
//! nickname's bytes in lower-case hex (nicknames longer than [`MAX_HEX_NICKNAME`] bytes:
//! `sha256-<hex of the SHA-256 of the nickname>`, so every name fits a file-system entry
//! together with its temporary-file prefix). A save writes only the files of tunnels
//! that changed since the last save and removes those of tunnels that are gone, so its
//! cost follows the change, not the registry: the previous format rewrote and fsynced
//! one file holding every tunnel on every change (85 ms per command at 24 MB).
//!
//! Per-tunnel files were chosen over an append-only journal because every file is then
//! always a complete, current record: there is no replay, no compaction to schedule, no
//! journal to grow between compactions, and a damaged file loses one tunnel, not the
//! tail of a log. Each file is written like a key file (an `O_CREAT|O_EXCL|O_NOFOLLOW`
//! temporary file with an unpredictable name, mode 0600 from creation, fsync, rename over
//! the target, fsync of the directory; see [`keytools::keyfile::write_private_file`]), so
//! a crash leaves each file either old or new, never torn, and a symlink at a tunnel's
//! path is replaced, never written through. A removal is followed by an fsync of the
//! directory before the save returns.
//!
//! One save may write several files (a group commit covering several clients'
//! changes): a crash in its middle leaves some of them new and some old, each complete,
//! and none of those clients has been answered yet. A rename (`setnick` on an existing
//! tunnel) writes the new file before it removes the old one, so a crash in between
//! keeps the tunnel twice rather than losing its keys.
//!
//! On start every `*.toml` file in `DIR/tunnels` is read back. A file that cannot be
//! read (a FIFO or a device is refused at once, never waited on), does not parse, holds
//! an entry that does not validate (values over the caps of [`bob_codec::types`]
//! included), or whose name does not belong to its nickname is reported and kept aside
//! as `<file>.corrupt-<unix time>` (mode 0600); the other tunnels are restored.
//!
//! A `DIR/registry.toml` of the previous version (one file, `version = 1`) is read
//! once: its entries are restored, written as per-tunnel files by the first save, and
//! the file is then renamed to `registry.toml.migrated`. Damage in it is reported and
//! kept aside the same way (`registry.toml.corrupt-<unix time>`).
//!
//! `options` are the tunnel's whole property set as `showprops` shows it (the server
//! defaults it was created with included), so a restored tunnel is handed exactly the
//! options it had. `running` is true for a tunnel that was started and not stopped by a
//! client; the server's own shutdown leaves it true, so the tunnel starts again.
//! [`crate::service::persist::Persister`] saves the live registry.
//!
//! # Format of a tunnel file
//! ```toml
//! version = 2
//! [tunnel]
//! nickname = "web"
//! keys = "<I2P base64 KEYS blob>"
//! inhost = "localhost"
//! outhost = "127.0.0.1"
//! outport = 8080
//! quiet = false
//! running = true
//! options = [["inbound.length", "1"]]
//! ```

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::Digest;
use zeroize::Zeroizing;

use keytools::keyfile::{KeyFileError, write_private_file};

mod record;

pub use record::{LEGACY_STATE_VERSION, STATE_VERSION, TunnelRecord, write_legacy_file};
use record::{TunnelFile, Versioned, encode, parse_legacy, validate};

/// The directory of the tunnel files inside the state directory.
pub const TUNNELS_DIR: &str = "tunnels";

/// The previous version's single state file, migrated once (see the module docs).
pub const LEGACY_STATE_FILE: &str = "registry.toml";

/// What [`LEGACY_STATE_FILE`] is renamed to once its entries are saved as tunnel files.
pub const MIGRATED_STATE_FILE: &str = "registry.toml.migrated";

/// Nicknames up to this many bytes name their file in hex; longer ones by their SHA-256.
pub const MAX_HEX_NICKNAME: usize = 100;

/// Temporary files of an interrupted save at least this old are removed by
/// [`StateStore::open`].
pub const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// Largest state file read back (the legacy file of a registry of the most tunnels with
/// the most options stays far below it); a larger file is refused rather than read into
/// memory.
pub const MAX_STATE_FILE: u64 = 256 * 1024 * 1024;

/// Largest tunnel file read back: one entry with every option at its cap stays below.
pub const MAX_TUNNEL_FILE: u64 = 16 * 1024 * 1024;

/// Reads a state file: `None` when there is none. Read like a key file (bounded,
/// opened non-blocking and checked to be a regular file, so a FIFO or a device at
/// the path cannot hang the server before it greets anyone); a symlink is followed
/// when reading and replaced by the next save.
fn read_state(path: &Path, max: u64) -> Result<Option<Zeroizing<Vec<u8>>>, StateError> {
    match keytools::keyfile::read_file_bounded(path, max) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(KeyFileError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(None)
        }
        Err(e) => Err(StateError::Read(e)),
    }
}

/// The file name (inside [`TUNNELS_DIR`]) of the tunnel `nickname`.
pub fn tunnel_file_name(nickname: &str) -> String {
    use std::fmt::Write;
    let mut name = String::with_capacity(2 * MAX_HEX_NICKNAME + 5);
    if nickname.len() <= MAX_HEX_NICKNAME {
        for b in nickname.bytes() {
            let _ = write!(name, "{b:02x}");
        }
    } else {
        name.push_str("sha256-");
        for b in sha2::Sha256::digest(nickname.as_bytes()) {
            let _ = write!(name, "{b:02x}");
        }
    }
    name.push_str(".toml");
    name
}

/// Problems with the state directory; `Display` is what the operator reads, once: the
/// variants carry no separate `source`, so a report that prints the error chain does not
/// repeat the OS error.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The directory could not be created, listed or synced, or a file not removed.
    #[error("state directory {path}: {error}")]
    Io {
        /// the path involved
        path: PathBuf,
        /// what the OS said
        error: std::io::Error,
    },
    /// Writing a file failed (shown in `Display`, so not a `source()`).
    #[error("saving state: {0}")]
    Write(KeyFileError),
    /// The legacy state file is not a regular file (a FIFO, a device, a directory), is
    /// larger than [`MAX_STATE_FILE`], or cannot be read.
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

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |error| StateError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// What [`StateStore::load`] found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// the entries that validated (tunnel files in directory order, then the entries of
    /// a legacy file not found as tunnel files)
    pub tunnels: Vec<TunnelRecord>,
    /// problems found; each was logged by the caller and its file kept aside
    pub problems: Vec<String>,
    /// where damaged files were kept
    pub kept_aside: Vec<PathBuf>,
}

/// What the tunnel files hold, as far as this store knows.
#[derive(Debug, Default)]
struct Disk {
    /// generation of the last snapshot saved: older snapshots are skipped, so a slow
    /// writer can never overwrite a newer state with an older one
    generation: u64,
    /// nickname → the record its file holds (written or read by this store)
    files: HashMap<String, TunnelRecord>,
    /// a legacy file was read and is renamed aside after the next complete save
    legacy_pending: bool,
}

/// The state directory and a guard that orders concurrent saves.
#[derive(Debug)]
pub struct StateStore {
    dir: PathBuf,
    tunnels: PathBuf,
    disk: Mutex<Disk>,
    /// saves that changed something since `open`
    writes: AtomicU64,
    /// tunnel files written since `open`
    files_written: AtomicU64,
    /// tunnel files removed since `open`
    files_removed: AtomicU64,
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// fsyncs a directory, so the renames and removals in it are durable.
fn sync_dir(dir: &Path) -> Result<(), StateError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

fn remove_stale_temps(dir: &Path) {
    // A save killed between writing its temporary file and renaming it leaves the
    // file behind, keys inside. Younger ones may be a save of a process still running.
    match keytools::keyfile::remove_stale_temp_files(dir, STALE_TEMP_AGE) {
        Ok(removed) => {
            for path in removed {
                tracing::warn!(file = %path.display(), "removed a temporary state file left by an interrupted save");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot clean the state directory's temporary files")
        }
    }
}

impl StateStore {
    /// Opens (creating, mode 0700) the state directory and its `tunnels` directory and
    /// removes temporary files of saves that were interrupted at least
    /// [`STALE_TEMP_AGE`] ago.
    ///
    /// # Errors
    /// [`StateError::Io`] if a directory cannot be created.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StateError> {
        let dir = dir.into();
        let tunnels = dir.join(TUNNELS_DIR);
        fs::create_dir_all(&dir).map_err(io_error(&dir))?;
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
        match fs::symlink_metadata(&tunnels) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(StateError::Io {
                    path: tunnels,
                    error: std::io::Error::other("not a directory"),
                });
            }
            Err(_) => {
                fs::create_dir(&tunnels).map_err(io_error(&tunnels))?;
                sync_dir(&dir)?;
            }
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = fs::set_permissions(&tunnels, fs::Permissions::from_mode(0o700));
        }
        remove_stale_temps(&dir);
        remove_stale_temps(&tunnels);
        Ok(Self {
            dir,
            tunnels,
            disk: Mutex::default(),
            writes: AtomicU64::new(0),
            files_written: AtomicU64::new(0),
            files_removed: AtomicU64::new(0),
        })
    }

    fn disk(&self) -> std::sync::MutexGuard<'_, Disk> {
        self.disk
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many saves changed something on disk since [`StateStore::open`].
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// How many tunnel files were written since [`StateStore::open`].
    pub fn files_written(&self) -> u64 {
        self.files_written.load(Ordering::Relaxed)
    }

    /// How many tunnel files were removed since [`StateStore::open`].
    pub fn files_removed(&self) -> u64 {
        self.files_removed.load(Ordering::Relaxed)
    }

    /// The directory of the tunnel files.
    pub fn path(&self) -> PathBuf {
        self.tunnels.clone()
    }

    /// The path of the previous version's single state file.
    pub fn legacy_path(&self) -> PathBuf {
        self.dir.join(LEGACY_STATE_FILE)
    }

    /// The path of the tunnel `nickname`'s file.
    pub fn tunnel_path(&self, nickname: &str) -> PathBuf {
        self.tunnels.join(tunnel_file_name(nickname))
    }

    /// Reads the stored registry: every tunnel file, then a legacy file if there is one
    /// (see the module docs). Damaged files are kept aside and reported; the rest is
    /// returned. An empty directory is an empty registry.
    ///
    /// # Errors
    /// [`StateError::Io`] if the tunnel directory cannot be listed,
    /// [`StateError::Read`] if a legacy file exists but cannot be read (or is no regular
    /// file), [`StateError::Write`] if a damaged file cannot be kept aside.
    pub fn load(&self) -> Result<Loaded, StateError> {
        let mut loaded = Loaded::default();
        let mut files = HashMap::new();
        let mut seen = HashSet::new();
        let mut names: Vec<_> = fs::read_dir(&self.tunnels)
            .map_err(io_error(&self.tunnels))?
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .filter(|n| {
                !keytools::keyfile::is_temp_file_name(n)
                    && n.to_str().is_some_and(|n| n.ends_with(".toml"))
            })
            .collect();
        names.sort();
        for name in names {
            let path = self.tunnels.join(&name);
            let name = name.to_string_lossy().into_owned();
            match self.load_tunnel_file(&path, &name)? {
                Ok(record) => {
                    seen.insert(record.nickname.clone());
                    // a symlink is read through once, then replaced by the next save
                    let regular = fs::symlink_metadata(&path).is_ok_and(|m| m.is_file());
                    if regular {
                        files.insert(record.nickname.clone(), record.clone());
                    }
                    loaded.tunnels.push(record);
                }
                Err((why, aside)) => {
                    loaded.problems.push(format!("{}: {why}", path.display()));
                    loaded.kept_aside.extend(aside);
                }
            }
        }
        let legacy = self.legacy_path();
        let legacy_pending = match read_state(&legacy, MAX_STATE_FILE)? {
            None => false,
            Some(text) => {
                let before = loaded.problems.len();
                match parse_legacy(&text) {
                    Ok(records) => {
                        for record in records {
                            match validate(&record) {
                                Err(why) => loaded.problems.push(format!(
                                    "{}: tunnel {:?}: {why}; entry dropped",
                                    legacy.display(),
                                    record.nickname
                                )),
                                // already saved as a tunnel file (a migration that was
                                // interrupted): that file is as new as this entry
                                Ok(()) if !seen.insert(record.nickname.clone()) => {}
                                Ok(()) => loaded.tunnels.push(record),
                            }
                        }
                    }
                    Err(why) => loaded
                        .problems
                        .push(format!("cannot parse {}: {why}", legacy.display())),
                }
                if loaded.problems.len() > before {
                    loaded.kept_aside.push(self.write_aside(
                        &self.dir,
                        LEGACY_STATE_FILE,
                        &text,
                    )?);
                }
                true
            }
        };
        let mut disk = self.disk();
        disk.files = files;
        disk.legacy_pending = legacy_pending;
        Ok(loaded)
    }

    /// Reads one tunnel file: its record, or why not and where the file was kept.
    #[allow(clippy::type_complexity)]
    fn load_tunnel_file(
        &self,
        path: &Path,
        name: &str,
    ) -> Result<Result<TunnelRecord, (String, Option<PathBuf>)>, StateError> {
        let text = match keytools::keyfile::read_file_bounded(path, MAX_TUNNEL_FILE) {
            Ok(text) => text,
            Err(KeyFileError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(Err(("vanished while reading".into(), None)));
            }
            Err(e) => {
                // A FIFO, a device, a directory, an oversized file: nothing to copy;
                // move it out of the way so it is not met again.
                let aside = self.tunnels.join(format!("{name}.corrupt-{}", unix_secs()));
                let why = e.to_string();
                return Ok(match fs::rename(path, &aside) {
                    Ok(()) => Err((why, Some(aside))),
                    Err(_) => Err((why, None)),
                });
            }
        };
        let parsed = std::str::from_utf8(&text)
            .map_err(|e| e.to_string())
            .and_then(|t| {
                let v = toml::from_str::<Versioned>(t).map_err(|e| e.to_string())?;
                if v.version != STATE_VERSION {
                    return Err(format!("unsupported state version {}", v.version));
                }
                toml::from_str::<TunnelFile>(t).map_err(|e| e.to_string())
            })
            .and_then(|file| {
                validate(&file.tunnel)
                    .map_err(|why| format!("tunnel {:?}: {why}", file.tunnel.nickname))?;
                if tunnel_file_name(&file.tunnel.nickname) != name {
                    return Err(format!(
                        "tunnel {:?} is not stored under its file name",
                        file.tunnel.nickname
                    ));
                }
                Ok(file.tunnel)
            });
        match parsed {
            Ok(record) => Ok(Ok(record)),
            Err(why) => {
                let aside = self.write_aside(&self.tunnels, name, &text)?;
                fs::remove_file(path).map_err(io_error(path))?;
                Ok(Err((format!("{why}; entry dropped"), Some(aside))))
            }
        }
    }

    /// Keeps a copy of `record` as `<its file>.corrupt-<unix time>` (mode 0600) before
    /// it is dropped for a reason [`StateStore::load`] cannot see (registry limits);
    /// returns the copy's path.
    ///
    /// # Errors
    /// [`StateError`] if the copy cannot be written.
    pub fn keep_aside(&self, record: &TunnelRecord) -> Result<PathBuf, StateError> {
        let text = encode(record)?;
        self.write_aside(
            &self.tunnels,
            &tunnel_file_name(&record.nickname),
            text.as_bytes(),
        )
    }

    fn write_aside(&self, dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, StateError> {
        let aside = dir.join(format!("{name}.corrupt-{}", unix_secs()));
        write_private_file(&aside, bytes)?;
        Ok(aside)
    }

    /// Saves a snapshot taken at registry generation `generation`: writes the files of
    /// the tunnels whose record differs from what their file holds and removes the
    /// files of tunnels no longer in `tunnels`. Snapshots older than the last one saved
    /// are skipped (they are already superseded).
    ///
    /// # Errors
    /// [`StateError`] if a file cannot be written or removed; every file is then either
    /// its old or its new version, and the next save writes what is still missing.
    pub fn save(&self, generation: u64, tunnels: &[TunnelRecord]) -> Result<(), StateError> {
        let mut disk = self.disk();
        if generation < disk.generation {
            return Ok(());
        }
        let mut changed = false;
        let mut present = HashSet::with_capacity(tunnels.len());
        for record in tunnels {
            present.insert(record.nickname.as_str());
            if disk.files.get(&record.nickname) == Some(record) {
                continue;
            }
            let text = encode(record)?;
            write_private_file(&self.tunnel_path(&record.nickname), text.as_bytes())?;
            self.files_written.fetch_add(1, Ordering::Relaxed);
            disk.files.insert(record.nickname.clone(), record.clone());
            changed = true;
        }
        let gone: Vec<String> = disk
            .files
            .keys()
            .filter(|n| !present.contains(n.as_str()))
            .cloned()
            .collect();
        for nickname in &gone {
            let path = self.tunnel_path(nickname);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(&path)(e)),
            }
            self.files_removed.fetch_add(1, Ordering::Relaxed);
            disk.files.remove(nickname);
        }
        if !gone.is_empty() {
            sync_dir(&self.tunnels)?;
            changed = true;
        }
        if disk.legacy_pending {
            // every entry of the legacy file is now a tunnel file
            let legacy = self.legacy_path();
            fs::rename(&legacy, self.dir.join(MIGRATED_STATE_FILE)).map_err(io_error(&legacy))?;
            sync_dir(&self.dir)?;
            disk.legacy_pending = false;
            tracing::info!(
                file = %legacy.display(),
                migrated_to = %self.tunnels.display(),
                "state file converted to one file per tunnel; the old file is kept as {MIGRATED_STATE_FILE}"
            );
            changed = true;
        }
        if changed {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        disk.generation = generation;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
