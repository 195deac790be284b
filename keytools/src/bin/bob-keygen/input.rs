//! Reading bob-keygen's inputs: a file, `-` for stdin, or the base64 text itself, parsed
//! as private keys or a destination.

use std::fs;
use std::io::{self, Read};

use anyhow::{Context, bail};
use keytools::keyfile;
use keytools::{Destination, PrivateKeys};
use zeroize::Zeroizing;

/// Largest input accepted from a file or stdin (key blobs are < 2 KiB; certificates < 64 KiB).
const MAX_INPUT: u64 = 256 * 1024;

/// Parsed input: a private-key blob or a bare destination.
pub(crate) enum Parsed {
    Keys(Box<PrivateKeys>),
    Dest(Destination),
}

impl Parsed {
    pub(crate) fn destination(&self) -> &Destination {
        match self {
            Self::Keys(k) => k.destination(),
            Self::Dest(d) => d,
        }
    }
}

/// Reads `arg`: `-` is stdin, an existing path is a file (regular files only, bounded), anything
/// else is the text itself.
pub(crate) fn read_bytes(arg: &str) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    if arg == "-" {
        let mut buf = Zeroizing::new(Vec::new());
        io::stdin()
            .take(MAX_INPUT + 1)
            .read_to_end(&mut buf)
            .context("cannot read stdin")?;
        if buf.len() as u64 > MAX_INPUT {
            bail!("stdin: larger than {MAX_INPUT} bytes");
        }
        return Ok(buf);
    }
    let p = std::path::Path::new(arg);
    if fs::symlink_metadata(p).is_ok() {
        return Ok(keyfile::read_file_bounded(p, MAX_INPUT)?);
    }
    if arg.contains(['/', '.']) || arg.is_empty() {
        // base64 never contains '/' or '.', so this was meant as a path
        bail!("cannot read {arg}: no such file");
    }
    if arg.len() as u64 > MAX_INPUT {
        bail!("argument is larger than {MAX_INPUT} bytes");
    }
    Ok(Zeroizing::new(arg.as_bytes().to_vec()))
}

pub(crate) fn read_text(arg: &str) -> anyhow::Result<String> {
    let raw = read_bytes(arg)?;
    let text = std::str::from_utf8(&raw).context("input is not base64 text")?;
    Ok(text.trim().to_owned())
}

/// Private keys from a file, stdin or base64 (binary or base64 content).
pub(crate) fn read_keys(arg: &str) -> anyhow::Result<PrivateKeys> {
    let raw = read_bytes(arg)?;
    keyfile::parse_key_bytes(&raw)
        .map_err(|e| anyhow::anyhow!("{arg}: not a private key blob: {e}"))
}

/// Text input is I2P base64 (surrounding whitespace ignored); anything that is not UTF-8 is a
/// binary key file or destination.
fn decode_input(raw: &[u8]) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    match std::str::from_utf8(raw) {
        Ok(text) => Ok(Zeroizing::new(keytools::encoding::base64_decode(
            text.trim(),
        )?)),
        Err(_) => Ok(Zeroizing::new(raw.to_vec())),
    }
}

/// A key blob if it parses as one (an expired offline section included, so `info` can say
/// so), else a destination; the error names both attempts.
pub(crate) fn parse_any(raw: &[u8]) -> anyhow::Result<Parsed> {
    let bytes = decode_input(raw)?;
    match PrivateKeys::from_bytes_any_expiry(&bytes) {
        Ok(k) => Ok(Parsed::Keys(Box::new(k))),
        Err(key_err) => match Destination::from_bytes(&bytes) {
            Ok(d) => Ok(Parsed::Dest(d)),
            Err(dest_err) => {
                bail!("neither a destination ({dest_err}) nor private keys ({key_err})")
            }
        },
    }
}
