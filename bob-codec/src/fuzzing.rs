//! Bodies of the cargo-fuzz targets in `bob-codec/fuzz/`, shared with the stable corpus
//! replay test (`tests/fuzz_corpus.rs`). Each function panics when an invariant breaks;
//! for the fuzzer a panic is a crash.
//!
//! Not part of the stable API: only compiled with feature `fuzzing`.

use crate::command::{Command, parse_port};
use crate::line::{LineCodec, LineItem, MAX_LINE_LEN};
use crate::operand::Operand;
use crate::reply::{Reply, TunnelStatus};
use crate::{Dialect, LineError};

/// Runs `body` over every file of a committed seed corpus directory (sorted by name), so
/// that stable `cargo test` replays what the fuzzer starts from; returns the number of
/// files. Panics when the directory cannot be read or holds fewer than `min` files.
pub fn replay_corpus(dir: &std::path::Path, min: usize, body: fn(&[u8])) -> usize {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    assert!(
        files.len() >= min,
        "seed corpus {} is too small: {} files, expected at least {min}",
        dir.display(),
        files.len()
    );
    files.sort();
    for file in &files {
        let data =
            std::fs::read(file).unwrap_or_else(|e| panic!("corpus file {}: {e}", file.display()));
        body(&data);
    }
    files.len()
}

/// Small limit so that the fuzzer reaches the over-long-line path quickly.
const SMALL_LIMIT: usize = 32;

/// Target `command`: bytes → [`LineCodec`] → [`Command::parse`] → `encode` → `parse`.
///
/// Checks that framing matches a simple reference model whether the bytes arrive at once,
/// in small chunks or byte by byte; that no line exceeds the limit or holds a newline; and
/// that every parsed command survives an encode/parse round trip in both dialects.
pub fn command(data: &[u8]) {
    let chunk = data.first().map_or(1, |b| usize::from(*b % 7) + 1);
    for limit in [SMALL_LIMIT, MAX_LINE_LEN] {
        let expected = reference_frames(data, limit);
        assert_eq!(frame(data, data.len().max(1), limit), expected);
        assert_eq!(frame(data, chunk, limit), expected);
        if data.len() <= 256 {
            assert_eq!(frame(data, 1, limit), expected);
        }
    }
    for item in frame(data, data.len().max(1), MAX_LINE_LEN) {
        let Ok(line) = item else { continue };
        assert!(line.len() <= MAX_LINE_LEN);
        assert!(!line.contains('\n'));
        for dialect in [Dialect::Java, Dialect::I2pd] {
            check_command(&line, dialect);
        }
    }
}

fn check_command(line: &str, dialect: Dialect) {
    match Command::parse(line, dialect) {
        Ok(cmd) => {
            let encoded = cmd.encode();
            assert!(
                !encoded.contains(['\r', '\n']),
                "encoded command spans lines"
            );
            assert_eq!(
                Command::parse(&encoded, dialect),
                Ok(cmd.clone()),
                "{line:?}"
            );
            match &cmd {
                Command::InPort(op) | Command::OutPort(op) => {
                    if let Operand::Valid(port) = op {
                        assert_ne!(port.get(), 0);
                        assert_eq!(parse_port(Some(&port.to_string()), dialect), Ok(port.get()));
                    }
                    check_operand(op);
                }
                Command::Option(op) => {
                    if let Operand::Valid(options) = op {
                        assert!(!options.is_empty());
                        for option in options {
                            let (key, value) = (option.key().as_str(), option.value().as_str());
                            assert!(!key.is_empty() && !value.is_empty());
                            assert!(!key.contains('=') && !value.contains('='));
                        }
                    }
                    check_operand(op);
                }
                Command::SetNick(op)
                | Command::GetNick(op)
                | Command::Status(op)
                | Command::Stats(op) => check_operand(op),
                Command::InHost(op) | Command::OutHost(op) => check_operand(op),
                _ => {}
            }
        }
        Err(err) => {
            let reply = Reply::from(&err).encode();
            assert_eq!(reply.iter().filter(|b| **b == b'\n').count(), 1);
        }
    }
}

/// A parsed operand is never an empty token, and an invalid one keeps a token with no
/// separator in it.
fn check_operand<T>(op: &Operand<T>) {
    if let Operand::Invalid { raw, .. } = op {
        assert!(!raw.is_empty());
        assert!(!raw.contains(['\t', '\r', '\n']));
    }
}

/// Target `reply`: line → [`Reply::decode`] → `encode` → `decode`, plus the
/// [`TunnelStatus`] record inside any reply that carries one.
pub fn reply(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for line in text.split('\n') {
        let Ok(reply) = Reply::decode(line) else {
            continue;
        };
        let encoded = reply.encode();
        assert_eq!(encoded.last(), Some(&b'\n'));
        assert_eq!(encoded.iter().filter(|b| **b == b'\n').count(), 1);
        if !line.ends_with('\r') {
            assert_eq!(encoded, format!("{line}\n").into_bytes(), "not byte-exact");
        }
        let body = std::str::from_utf8(&encoded[..encoded.len() - 1]).expect("UTF-8 in, UTF-8 out");
        assert_eq!(Reply::decode(body).as_ref(), Ok(&reply));
        if let Ok(status) = TunnelStatus::from_reply(&reply) {
            let again: TunnelStatus = status.to_string().parse().expect("own record parses");
            assert_eq!(again, status);
            assert_eq!(
                TunnelStatus::from_reply(&status.to_status_reply()),
                Ok(status.clone())
            );
            assert_eq!(
                TunnelStatus::from_reply(&status.to_list_reply()),
                Ok(status)
            );
        }
    }
}

/// Feeds `data` to a fresh framer in chunks of `chunk` bytes, then signals end of input.
fn frame(data: &[u8], chunk: usize, limit: usize) -> Vec<LineItem> {
    let mut codec = LineCodec::with_max_len(limit);
    let mut buf = Vec::new();
    let mut items = Vec::new();
    for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        while let Some(item) = codec.decode_line(&mut buf) {
            items.push(item);
        }
    }
    while let Some(item) = codec.decode_line_eof(&mut buf) {
        items.push(item);
    }
    assert!(buf.is_empty(), "bytes left after end of input");
    items
}

/// What framing must produce, written as plainly as possible.
fn reference_frames(data: &[u8], limit: usize) -> Vec<LineItem> {
    let mut pieces: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    if pieces.last().is_some_and(|p| p.is_empty()) {
        pieces.pop();
    }
    pieces
        .into_iter()
        .map(|piece| {
            let line = piece.strip_suffix(b"\r").unwrap_or(piece);
            if line.len() > limit {
                Err(LineError::TooLong { limit })
            } else {
                String::from_utf8(line.to_vec()).map_err(|_| LineError::InvalidUtf8)
            }
        })
        .collect()
}
