//! Reading and writing key files as users keep them.
//!
//! A key file is either the binary private-key blob that i2pd and Java I2P write
//! (`Destination ‖ private key ‖ signing private key`) or one line of I2P base64 holding
//! the same blob (what BOB's `getkeys` prints). Files we write hold the binary form with
//! mode 0600, written to a temporary name, fsynced and renamed into place.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use keytools::PrivateKeys;

/// Why a key file could not be used; `Display` names the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// the file
        path: PathBuf,
        /// what the OS said
        source: std::io::Error,
    },
    /// The file holds neither a base64 nor a binary key blob.
    #[error("{path}: not a key file: {reason}")]
    Invalid {
        /// the file
        path: PathBuf,
        /// keytools' reason
        reason: keytools::KeyError,
    },
}

/// Reads keys from `path` (binary blob or a base64 line).
///
/// # Errors
/// [`KeyFileError`] when the file is unreadable or holds no valid keys.
pub fn read_key_file(path: &Path) -> Result<PrivateKeys, KeyFileError> {
    let bytes = fs::read(path).map_err(|source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if let Ok(text) = std::str::from_utf8(&bytes)
        && let Ok(keys) = PrivateKeys::from_base64(text.trim())
    {
        return Ok(keys);
    }
    PrivateKeys::from_bytes(&bytes).map_err(|reason| KeyFileError::Invalid {
        path: path.to_path_buf(),
        reason,
    })
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename, fsync of the
/// directory) with mode 0600. An existing file is replaced.
///
/// # Errors
/// [`KeyFileError::Io`] when any step fails; the temporary file is removed then.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Writes keys as a binary key file (i2pd/Java compatible), mode 0600, atomically.
///
/// # Errors
/// [`KeyFileError::Io`].
pub fn write_key_file(path: &Path, keys: &PrivateKeys) -> Result<(), KeyFileError> {
    write_private_file(path, &keys.to_bytes())
}
