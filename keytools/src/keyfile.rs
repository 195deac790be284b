//! Reading and writing key files safely.
//!
//! A key file is either the binary private-key blob that i2pd and Java I2P write
//! (`Destination ‖ private key ‖ signing private key`) or one line of I2P base64 holding the
//! same blob (what BOB's `getkeys` prints).
//!
//! Reading ([`read_file_bounded`], [`read_key_file`]): the file is opened non-blocking (so a
//! FIFO cannot hang the open), its type is checked on the opened descriptor (directories,
//! FIFOs, sockets and devices are refused with [`KeyFileError::NotRegular`]) and at most a
//! bounded number of bytes is read ([`KeyFileError::TooLarge`] beyond it, so `/dev/zero` or a
//! huge file cannot exhaust memory). Symlinks are followed when reading.
//!
//! Writing ([`write_private_file`], [`write_private_file_with`], [`write_key_file`]): the data
//! goes to a temporary file in the target's directory, created with
//! `O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600 from creation, under an unpredictable name
//! (`.NAME.bobtmp-<16 random hex digits>`); it is fsynced, then renamed over the target (or,
//! with [`WriteMode::CreateNew`], hard-linked to it, which fails if anything exists there),
//! and the directory is fsynced. A symlink at the target is replaced, never followed; a
//! directory, FIFO, socket or device at the target is refused. Temp files left behind by a
//! killed process are removed by [`remove_stale_temp_files`]; [`check_key_dir`] and
//! [`tighten_key_dir`] report and fix group/world access to a key directory.
//!
//! A superset of `bob-server`'s own key-file helpers (`storage::keyfile`), which can switch
//! to this module name for name: `read_key_file` → [`read_key_file`] (now bounded and
//! FIFO-safe), `write_private_file` → [`write_private_file`] (same replace-the-target
//! semantics, now symlink-safe with an unpredictable `O_EXCL` temp file), `write_key_file` →
//! [`write_key_file`]; its error type maps to [`KeyFileError`], whose `Io` and `Invalid`
//! variants keep their meaning.

use std::ffi::OsString;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use zeroize::Zeroizing;

use crate::error::KeyError;
use crate::keys::PrivateKeys;

/// Largest key file [`read_key_file`] accepts. A key blob is under 2 KiB (base64 under
/// 3 KiB); the bound leaves room for long certificates while keeping reads small.
pub const MAX_KEY_FILE_LEN: u64 = 64 * 1024;

/// Marker in temporary file names: `.NAME.bobtmp-<16 hex digits>`.
const TEMP_MARK: &str = ".bobtmp-";

/// Why a key file could not be read or written; `Display` names the file once.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// the file
        path: PathBuf,
        /// what the OS said
        source: io::Error,
    },
    /// The path is a directory, FIFO, socket or device, not a regular file.
    #[error("{path}: is a {kind}, not a regular file")]
    NotRegular {
        /// the file
        path: PathBuf,
        /// "directory", "FIFO", "socket", "character device", "block device"
        kind: &'static str,
    },
    /// The file is larger than the bound.
    #[error("{path}: larger than {max} bytes")]
    TooLarge {
        /// the file
        path: PathBuf,
        /// the bound
        max: u64,
    },
    /// [`WriteMode::CreateNew`] and something already exists at the target.
    #[error("{path}: already exists")]
    Exists {
        /// the file
        path: PathBuf,
    },
    /// The file holds neither a base64 nor a binary key blob.
    #[error("{path}: not a key file: {reason}")]
    Invalid {
        /// the file
        path: PathBuf,
        /// keytools' reason
        reason: KeyError,
    },
}

impl KeyFileError {
    fn io(path: &Path) -> impl FnOnce(io::Error) -> Self + '_ {
        move |source| Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What to do when the target of a write exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Fail with [`KeyFileError::Exists`] if anything (even a dangling symlink) is there.
    CreateNew,
    /// Replace a regular file or a symlink (the link itself; its target is untouched).
    Replace,
}

/// The kind of a non-regular file, for error messages.
fn special_kind(m: &Metadata) -> Option<&'static str> {
    let t = m.file_type();
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("directory")
    } else if t.is_fifo() {
        Some("FIFO")
    } else if t.is_socket() {
        Some("socket")
    } else if t.is_char_device() {
        Some("character device")
    } else if t.is_block_device() {
        Some("block device")
    } else if t.is_symlink() {
        Some("symlink")
    } else {
        Some("special file")
    }
}

/// Reads at most `max` bytes of the regular file at `path` (symlinks followed).
///
/// # Errors
/// [`KeyFileError::NotRegular`] for directories, FIFOs, sockets and devices (checked on the
/// opened descriptor; the open itself is non-blocking, so a FIFO never hangs),
/// [`KeyFileError::TooLarge`] beyond `max`, [`KeyFileError::Io`] otherwise.
pub fn read_file_bounded(path: &Path, max: u64) -> Result<Zeroizing<Vec<u8>>, KeyFileError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(KeyFileError::io(path))?;
    let meta = file.metadata().map_err(KeyFileError::io(path))?;
    if let Some(kind) = special_kind(&meta) {
        return Err(KeyFileError::NotRegular {
            path: path.to_path_buf(),
            kind,
        });
    }
    if meta.len() > max {
        return Err(KeyFileError::TooLarge {
            path: path.to_path_buf(),
            max,
        });
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(meta.len() as usize));
    // the size may change while reading: bound the read itself too
    file.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(KeyFileError::io(path))?;
    if buf.len() as u64 > max {
        return Err(KeyFileError::TooLarge {
            path: path.to_path_buf(),
            max,
        });
    }
    Ok(buf)
}

/// Parses key-file contents: a base64 line (surrounding whitespace ignored) or a binary blob.
///
/// # Errors
/// The [`KeyError`] of the binary parse when neither form parses.
pub fn parse_key_bytes(bytes: &[u8]) -> Result<PrivateKeys, KeyError> {
    if let Ok(text) = std::str::from_utf8(bytes)
        && let Ok(keys) = PrivateKeys::from_base64(text.trim())
    {
        return Ok(keys);
    }
    PrivateKeys::from_bytes(bytes)
}

/// Reads keys from `path` (binary blob or a base64 line), at most [`MAX_KEY_FILE_LEN`] bytes.
///
/// # Errors
/// [`KeyFileError`] when the file is not a readable regular file of bounded size or holds no
/// valid keys.
pub fn read_key_file(path: &Path) -> Result<PrivateKeys, KeyFileError> {
    let bytes = read_file_bounded(path, MAX_KEY_FILE_LEN)?;
    parse_key_bytes(&bytes).map_err(|reason| KeyFileError::Invalid {
        path: path.to_path_buf(),
        reason,
    })
}

/// Writes keys as a binary key file (i2pd/Java compatible), mode 0600, atomically, replacing
/// an existing file. See [`write_private_file`].
///
/// # Errors
/// As [`write_private_file`].
pub fn write_key_file(path: &Path, keys: &PrivateKeys) -> Result<(), KeyFileError> {
    let bytes = Zeroizing::new(keys.to_bytes());
    write_private_file(path, &bytes)
}

/// Writes `bytes` to `path` atomically with mode 0600, replacing a regular file or symlink
/// there ([`WriteMode::Replace`]).
///
/// # Errors
/// As [`write_private_file_with`].
pub fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), KeyFileError> {
    write_private_file_with(path, bytes, WriteMode::Replace)
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn random_hex() -> Result<String, io::Error> {
    let mut r = [0u8; 8];
    getrandom::fill(&mut r).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(r.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `bytes` to `path` atomically with mode 0600 (see the module documentation for the
/// steps). The temporary file is removed if any step fails.
///
/// # Errors
/// [`KeyFileError::Exists`] ([`WriteMode::CreateNew`] and the target exists),
/// [`KeyFileError::NotRegular`] (a directory, FIFO, socket or device is at the target),
/// [`KeyFileError::Io`] for any failing step.
pub fn write_private_file_with(
    path: &Path,
    bytes: &[u8],
    mode: WriteMode,
) -> Result<(), KeyFileError> {
    let Some(name) = path.file_name() else {
        return Err(KeyFileError::NotRegular {
            path: path.to_path_buf(),
            kind: "directory",
        });
    };
    match fs::symlink_metadata(path) {
        Ok(m) => {
            if mode == WriteMode::CreateNew {
                return Err(KeyFileError::Exists {
                    path: path.to_path_buf(),
                });
            }
            if !m.file_type().is_symlink()
                && let Some(kind) = special_kind(&m)
            {
                return Err(KeyFileError::NotRegular {
                    path: path.to_path_buf(),
                    kind,
                });
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(KeyFileError::io(path)(e)),
    }
    let dir = parent_dir(path);
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(TEMP_MARK);
    tmp_name.push(random_hex().map_err(KeyFileError::io(path))?);
    let tmp = dir.join(tmp_name);
    let result = (|| -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true) // O_CREAT | O_EXCL
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        // the umask may have removed bits, never added: make it exactly 0600
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        match mode {
            // rename(2) replaces a symlink itself and never follows it
            WriteMode::Replace => fs::rename(&tmp, path)?,
            // link(2) fails with EEXIST if anything appeared at the target meanwhile
            WriteMode::CreateNew => {
                fs::hard_link(&tmp, path)?;
                fs::remove_file(&tmp)?;
            }
        }
        // make the rename durable
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        if e.kind() == io::ErrorKind::AlreadyExists && mode == WriteMode::CreateNew {
            return Err(KeyFileError::Exists {
                path: path.to_path_buf(),
            });
        }
        return Err(KeyFileError::io(path)(e));
    }
    Ok(())
}

/// Whether `name` is a temporary file name of [`write_private_file_with`].
pub fn is_temp_file_name(name: &std::ffi::OsStr) -> bool {
    let b = name.as_bytes();
    let mark = TEMP_MARK.as_bytes();
    b.len() > 1 + mark.len() + 16
        && b[0] == b'.'
        && b[b.len() - 16 - mark.len()..b.len() - 16] == *mark
        && b[b.len() - 16..]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

/// Removes temporary files of [`write_private_file_with`]'s naming scheme (regular files only)
/// from `dir` whose modification time is at least `min_age` ago; returns the removed paths.
/// Run it at start-up: a process killed between creating and renaming its temp file leaves
/// one behind, with key material inside.
///
/// # Errors
/// [`KeyFileError::Io`] if the directory cannot be listed or a file cannot be removed.
pub fn remove_stale_temp_files(
    dir: &Path,
    min_age: Duration,
) -> Result<Vec<PathBuf>, KeyFileError> {
    let mut removed = Vec::new();
    let now = SystemTime::now();
    for entry in fs::read_dir(dir).map_err(KeyFileError::io(dir))? {
        let entry = entry.map_err(KeyFileError::io(dir))?;
        if !is_temp_file_name(&entry.file_name()) {
            continue;
        }
        let p = entry.path();
        let Ok(m) = fs::symlink_metadata(&p) else {
            continue;
        };
        let age = m
            .modified()
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .unwrap_or(Duration::ZERO);
        if m.file_type().is_file() && age >= min_age {
            fs::remove_file(&p).map_err(KeyFileError::io(&p))?;
            removed.push(p);
        }
    }
    Ok(removed)
}

/// The access a key directory grants beyond its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDirAccess {
    /// permission bits (`mode & 0o7777`)
    pub mode: u32,
    /// group or others can list or enter it (`mode & 0o055`)
    pub group_or_world_readable: bool,
    /// group or others can create, rename or delete entries (`mode & 0o022`, without the
    /// sticky bit): they could replace a key file
    pub group_or_world_writable: bool,
}

impl KeyDirAccess {
    /// Whether anyone but the owner has any access.
    pub fn is_private(&self) -> bool {
        self.mode & 0o077 == 0
    }
}

/// Reports the access `dir` grants to group and others.
///
/// # Errors
/// [`KeyFileError::Io`] if it cannot be examined or is not a directory.
pub fn check_key_dir(dir: &Path) -> Result<KeyDirAccess, KeyFileError> {
    let m = fs::metadata(dir).map_err(KeyFileError::io(dir))?;
    if !m.is_dir() {
        return Err(KeyFileError::Io {
            path: dir.to_path_buf(),
            source: io::Error::from(io::ErrorKind::NotADirectory),
        });
    }
    let mode = m.mode() & 0o7777;
    Ok(KeyDirAccess {
        mode,
        group_or_world_readable: mode & 0o055 != 0,
        group_or_world_writable: mode & 0o022 != 0 && mode & 0o1000 == 0,
    })
}

/// Removes group and world access from `dir` (`chmod go-rwx`); returns the access before.
///
/// # Errors
/// [`KeyFileError::Io`] if it cannot be examined or changed (for example, not the owner).
pub fn tighten_key_dir(dir: &Path) -> Result<KeyDirAccess, KeyFileError> {
    let before = check_key_dir(dir)?;
    if !before.is_private() {
        fs::set_permissions(dir, fs::Permissions::from_mode(before.mode & 0o7700))
            .map_err(KeyFileError::io(dir))?;
    }
    Ok(before)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CryptoType, SigType};

    struct Dir(PathBuf);
    impl Dir {
        fn new(tag: &str) -> Self {
            let p = std::env::temp_dir().join(format!(
                "keyfile-{tag}-{}-{}",
                std::process::id(),
                random_hex().unwrap()
            ));
            fs::create_dir(&p).unwrap();
            Self(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn round_trip_binary_and_base64_mode_0600() {
        let d = Dir::new("rt");
        let k = PrivateKeys::generate(SigType::Ed25519, CryptoType::X25519).unwrap();
        let f = d.0.join("k.dat");
        write_key_file(&f, &k).unwrap();
        assert_eq!(fs::metadata(&f).unwrap().mode() & 0o777, 0o600);
        assert_eq!(read_key_file(&f).unwrap().to_bytes(), k.to_bytes());
        write_private_file(&f, format!("{}\n", k.to_base64()).as_bytes()).unwrap();
        assert_eq!(read_key_file(&f).unwrap().to_bytes(), k.to_bytes());
        fs::write(&f, b"garbage").unwrap();
        assert!(matches!(
            read_key_file(&f),
            Err(KeyFileError::Invalid { .. })
        ));
        // no temp files left behind
        assert_eq!(fs::read_dir(&d.0).unwrap().count(), 1);
    }

    #[test]
    fn existing_file_mode_is_not_inherited() {
        let d = Dir::new("mode");
        let f = d.0.join("k");
        fs::write(&f, b"old").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        write_private_file(&f, b"new").unwrap();
        assert_eq!(fs::metadata(&f).unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::read(&f).unwrap(), b"new");
    }

    #[test]
    fn symlink_target_is_replaced_not_followed() {
        let d = Dir::new("link");
        let victim = d.0.join("victim");
        fs::write(&victim, b"precious").unwrap();
        let link = d.0.join("k");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(matches!(
            write_private_file_with(&link, b"secret", WriteMode::CreateNew),
            Err(KeyFileError::Exists { .. })
        ));
        write_private_file(&link, b"secret").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_file());
        assert_eq!(fs::read(&link).unwrap(), b"secret");
        // a dangling symlink is "existing" for CreateNew, and replaced by Replace
        let dangling = d.0.join("dangling");
        std::os::unix::fs::symlink(d.0.join("nowhere"), &dangling).unwrap();
        assert!(write_private_file_with(&dangling, b"x", WriteMode::CreateNew).is_err());
        assert!(!d.0.join("nowhere").exists());
    }

    #[test]
    fn create_new_refuses_existing_files() {
        let d = Dir::new("new");
        let f = d.0.join("k");
        write_private_file_with(&f, b"one", WriteMode::CreateNew).unwrap();
        let e = write_private_file_with(&f, b"two", WriteMode::CreateNew).unwrap_err();
        assert_eq!(e.to_string(), format!("{}: already exists", f.display()));
        assert_eq!(fs::read(&f).unwrap(), b"one");
        assert_eq!(fs::read_dir(&d.0).unwrap().count(), 1);
    }

    #[test]
    fn fifos_devices_and_directories_are_refused() {
        let d = Dir::new("fifo");
        let fifo = d.0.join("fifo");
        let st = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(st.success());
        // read: no hang (non-blocking open), clear error
        let e = read_file_bounded(&fifo, 100).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: is a FIFO, not a regular file", fifo.display())
        );
        // write: refused, the FIFO is left alone
        assert!(matches!(
            write_private_file(&fifo, b"x"),
            Err(KeyFileError::NotRegular { kind: "FIFO", .. })
        ));
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        assert!(matches!(
            read_key_file(Path::new("/dev/zero")),
            Err(KeyFileError::NotRegular {
                kind: "character device",
                ..
            })
        ));
        assert!(matches!(
            read_file_bounded(&d.0, 10),
            Err(KeyFileError::NotRegular {
                kind: "directory",
                ..
            })
        ));
        assert!(write_private_file(&d.0, b"x").is_err());
        let big = d.0.join("big");
        fs::write(&big, vec![b'A'; 101]).unwrap();
        assert!(matches!(
            read_file_bounded(&big, 100),
            Err(KeyFileError::TooLarge { max: 100, .. })
        ));
        assert_eq!(read_file_bounded(&big, 101).unwrap().len(), 101);
    }

    #[test]
    fn temp_names_are_unpredictable_and_stale_ones_are_removed() {
        let d = Dir::new("tmp");
        assert_ne!(random_hex().unwrap(), random_hex().unwrap());
        let stale = d.0.join(".k.bobtmp-0123456789abcdef");
        fs::write(&stale, b"old key").unwrap();
        let other = d.0.join(".k.bobtmp-nothex");
        fs::write(&other, b"keep").unwrap();
        let keep = d.0.join("k");
        fs::write(&keep, b"keep").unwrap();
        assert!(is_temp_file_name(stale.file_name().unwrap()));
        assert!(!is_temp_file_name(other.file_name().unwrap()));
        // too young for a one-hour minimum age
        assert!(
            remove_stale_temp_files(&d.0, Duration::from_secs(3600))
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            remove_stale_temp_files(&d.0, Duration::ZERO).unwrap(),
            vec![stale.clone()]
        );
        assert!(!stale.exists() && other.exists() && keep.exists());
    }

    #[test]
    fn key_dir_access_is_reported_and_tightened() {
        let d = Dir::new("dir");
        fs::set_permissions(&d.0, fs::Permissions::from_mode(0o777)).unwrap();
        let a = check_key_dir(&d.0).unwrap();
        assert!(a.group_or_world_writable && a.group_or_world_readable && !a.is_private());
        assert_eq!(tighten_key_dir(&d.0).unwrap().mode, 0o777);
        let a = check_key_dir(&d.0).unwrap();
        assert_eq!(a.mode, 0o700);
        assert!(a.is_private() && !a.group_or_world_writable);
        // sticky world-writable (like /tmp) cannot have entries replaced by others
        fs::set_permissions(&d.0, fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(!check_key_dir(&d.0).unwrap().group_or_world_writable);
        fs::set_permissions(&d.0, fs::Permissions::from_mode(0o700)).unwrap();
        assert!(check_key_dir(&d.0.join("nope")).is_err());
    }
}
