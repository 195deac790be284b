//! Writing private keys: a base64 line on stdout, or a key file (0600, atomic, never
//! through a symlink, never over an existing file without --force).

use std::io::{self, Write};
use std::time::Duration;

use anyhow::{Context, bail};
use keytools::PrivateKeys;
use keytools::keyfile::{self, KeyFileError, WriteMode};
use zeroize::Zeroizing;

use crate::{Format, OutArgs};

/// Age after which a temporary key file of ours is abandoned.
const STALE_TEMP_AGE: Duration = Duration::from_secs(600);

/// The bytes of `keys` in `format` (binary by default).
pub(crate) fn key_file_bytes(keys: &PrivateKeys, format: Option<Format>) -> Zeroizing<Vec<u8>> {
    match format.unwrap_or(Format::Binary) {
        Format::Binary => Zeroizing::new(keys.to_bytes()),
        Format::Base64 => {
            let mut s = keys.to_base64().into_bytes();
            s.push(b'\n');
            Zeroizing::new(s)
        }
    }
}

/// Writes a private key file (0600, atomic, never through a symlink); without `force` an
/// existing file (or symlink) is left alone and reported.
pub(crate) fn write_private(
    path: &std::path::Path,
    data: &[u8],
    force: bool,
) -> anyhow::Result<()> {
    let mode = if force {
        WriteMode::Replace
    } else {
        WriteMode::CreateNew
    };
    // temp files of a writer killed mid-write hold private keys: remove ours once they are
    // clearly abandoned (no write takes ten minutes)
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if let Ok(removed) = keyfile::remove_stale_temp_files(dir, STALE_TEMP_AGE) {
        for r in removed {
            eprintln!("removed stale temporary key file {}", r.display());
        }
    }
    match keyfile::write_private_file_with(path, data, mode) {
        Ok(()) => {}
        Err(KeyFileError::Exists { .. }) => bail!(
            "{} already exists (use --force to overwrite)",
            path.display()
        ),
        Err(e) => return Err(e.into()),
    }
    warn_open_dir(path.parent());
    Ok(())
}

/// Warns when the directory of a key file lets others replace it.
fn warn_open_dir(dir: Option<&std::path::Path>) {
    let dir = match dir {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if let Ok(a) = keyfile::check_key_dir(dir)
        && a.group_or_world_writable
    {
        eprintln!(
            "warning: {} is writable by group or others (mode {:04o}): they can replace the key \
             file; chmod go-w it",
            dir.display(),
            a.mode
        );
    }
}

/// Writes keys: base64 line to stdout, or a file (never overwritten without --force).
pub(crate) fn emit_keys(keys: &PrivateKeys, out: &OutArgs) -> anyhow::Result<()> {
    match &out.out {
        None => {
            if out.format == Some(Format::Binary) {
                bail!("--format binary needs --out FILE");
            }
            let line = Zeroizing::new(keys.to_base64());
            let mut stdout = io::stdout().lock();
            writeln!(stdout, "{}", line.as_str())
                .and_then(|()| stdout.flush())
                .context("cannot write to stdout")?;
            eprintln!("{}", keys.destination());
        }
        Some(path) => {
            write_private(path, &key_file_bytes(keys, out.format), out.force)?;
            eprintln!("wrote {} ({})", path.display(), keys.destination().b32());
        }
    }
    Ok(())
}
