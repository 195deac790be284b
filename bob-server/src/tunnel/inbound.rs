//! The inbound (client) side: applications connect to `inhost:inport`, name a
//! destination on the first line, and are relayed to it.
//!
//! # Format
//! ```text
//! app -> tunnel:  <base64 destination | xxx.b32.i2p | name.i2p>\n   (a \r anywhere is dropped)
//!                 <application data ...>                           (may follow in the same write)
//! tunnel -> app:  ERROR <reason>\n                                 (only on failure, then close)
//! ```
//! The line is bounded by `TunnelLimits::max_first_line` and must arrive within
//! `TunnelLimits::first_line_timeout`. Bytes that arrive after the line in the same read
//! are written to the I2P stream before anything else, so nothing the application sent
//! early is lost. End of stream before a `\n` ends the line too.
//!
//! Failure replies (Java BOB reports errors here too; i2pd closes silently):
//! `Can't find destination: <name>`, `bad destination: <why>`, `line too long`,
//! `timeout waiting for destination line`, `empty destination line`, or the backend's
//! error text (for instance `Can't reach peer: …`).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;

use super::{Accepted, TunnelContext};
use crate::backend::{BoxStream, CoreError, Target};

/// Serial numbers for inbound connections, for log spans.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// After an `ERROR` reply, how long the tunnel keeps reading (and discarding) what the
/// application still sends before closing. Closing a socket with unread input makes
/// the kernel send a reset, which can destroy the `ERROR` line before the application
/// reads it; reading to end of stream first avoids that.
const LINGER_TIME: Duration = Duration::from_secs(2);

/// How many bytes the linger phase discards at most.
const LINGER_BYTES: usize = 1 << 20;

/// Accepts TCP connections until the tunnel stops, each served by its own task.
pub(super) async fn accept_loop(listener: TcpListener, shared: TunnelContext) {
    let listener = &listener;
    let accept = || async move {
        match listener.accept().await {
            Ok(conn) => Accepted::Conn(conn),
            Err(e) => Accepted::Failed(e.to_string()),
        }
    };
    let serve = |(socket, from): (TcpStream, SocketAddr)| {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let span = tracing::debug_span!("in", conn = id, %from);
        Some(serve(socket, shared.clone()).instrument(span))
    };
    super::accept_loop(&shared, "a TCP connection", accept, serve).await;
}

/// One application connection, from the first line to the end of the relay.
async fn serve(socket: TcpStream, shared: TunnelContext) {
    let _active = shared.stats.open_connection();
    tokio::select! {
        () = shared.cancel.cancelled() => tracing::debug!("connection ended by stop"),
        () = relay(socket, &shared) => {}
    }
}

async fn relay(socket: TcpStream, shared: &TunnelContext) {
    // Everything of the set-up (line, target, early bytes) is freed before relaying:
    // a long-lived connection holds only its sockets, stream and relay state.
    let Some((socket, stream)) = set_up(socket, shared).await else {
        return;
    };
    shared.relay(socket, stream).await;
}

/// Reads the destination line, connects, forwards the early bytes. `None` when the
/// connection has been dealt with (rejected or failed).
async fn set_up(mut socket: TcpStream, shared: &TunnelContext) -> Option<(TcpStream, BoxStream)> {
    let _ = socket.set_nodelay(true);
    let limits = &shared.limits;
    let read = read_first_line(&mut socket, limits.max_first_line);
    let (line, early) = match tokio::time::timeout(limits.first_line_timeout, read).await {
        Ok(Ok(Some(found))) => found,
        Ok(Ok(None)) => {
            shared.stats.count_failure();
            tracing::debug!("application closed before sending a destination");
            return None;
        }
        Ok(Err(LineError::TooLong)) => {
            reject(socket, shared, "line too long").await;
            return None;
        }
        Ok(Err(LineError::Io(e))) => {
            shared.stats.count_failure();
            tracing::debug!(error = %e, "reading the destination line failed");
            return None;
        }
        Err(_) => {
            reject(socket, shared, "timeout waiting for destination line").await;
            return None;
        }
    };
    let target = match parse_target(&line) {
        Ok(target) => target,
        Err(reason) => {
            reject(socket, shared, &reason).await;
            return None;
        }
    };
    // One deadline for both: waiting for a STARTING tunnel's session, then connecting.
    let deadline = tokio::time::Instant::now() + limits.connect_timeout;
    let session = match tokio::time::timeout_at(deadline, shared.session.ready()).await {
        Ok(Ok(session)) => session,
        Ok(Err(reason)) => {
            reject(socket, shared, &reason).await;
            return None;
        }
        Err(_) => {
            reject(socket, shared, "timed out waiting for the tunnel to start").await;
            return None;
        }
    };
    let connect = session.connect(target);
    let mut stream = match tokio::time::timeout_at(deadline, connect).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(CoreError::NotFound)) => {
            let reason = format!("Can't find destination: {line}");
            reject(socket, shared, &reason).await;
            return None;
        }
        Ok(Err(e)) => {
            reject(socket, shared, &e.to_string()).await;
            return None;
        }
        Err(_) => {
            reject(socket, shared, &CoreError::Timeout.to_string()).await;
            return None;
        }
    };
    tracing::debug!(early = early.len(), "connected");
    if !early.is_empty() {
        let sent = async {
            stream.write_all(&early).await?;
            stream.flush().await
        };
        if let Err(e) = sent.await {
            shared.stats.count_failure();
            tracing::debug!(error = %e, "forwarding early bytes failed");
            return None;
        }
        shared
            .stats
            .bytes_out
            .fetch_add(early.len() as u64, Ordering::Relaxed);
    }
    Some((socket, stream))
}

/// Why the first line could not be read.
#[derive(Debug)]
enum LineError {
    TooLong,
    Io(io::Error),
}

/// Reads the destination line: up to `\n` or end of stream, at most `max` bytes after
/// `\r`s are dropped. Returns the line (trimmed of spaces and tabs) and the bytes that
/// followed it, or `None` if the stream ended before any byte.
async fn read_first_line<R: AsyncRead + Unpin>(
    socket: &mut R,
    max: usize,
) -> Result<Option<(String, BytesMut)>, LineError> {
    // The raw line may hold a few `\r`s more than `max`; this bounds the buffer.
    let raw_limit = max.saturating_add(2);
    let mut buf = BytesMut::with_capacity(raw_limit.min(4096) + 1);
    let mut scanned = 0;
    let mut content = 0usize;
    loop {
        if let Some(at) = buf[scanned..].iter().position(|&b| b == b'\n') {
            let mut raw = buf.split_to(scanned + at + 1);
            raw.truncate(scanned + at);
            return finish_line(&raw, max).map(|line| Some((line, buf)));
        }
        // Only `\r`s are dropped from the line, so once the other bytes alone exceed
        // `max` the line is too long whatever follows: say so at once, not at the timeout.
        content += buf[scanned..].iter().filter(|&&b| b != b'\r').count();
        scanned = buf.len();
        if buf.len() > raw_limit || content > max {
            return Err(LineError::TooLong);
        }
        // Never read more than one byte past the limit: bounded memory, and the
        // connection is rejected as soon as the line is certain to be too long.
        let room = (raw_limit.saturating_add(1) - buf.len()) as u64;
        buf.reserve(room.min(8192) as usize);
        let n = (&mut *socket)
            .take(room)
            .read_buf(&mut buf)
            .await
            .map_err(LineError::Io)?;
        if n == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            let line = finish_line(&buf, max)?;
            return Ok(Some((line, BytesMut::new())));
        }
    }
}

/// Drops `\r`s, checks the length, trims spaces and tabs.
fn finish_line(raw: &[u8], max: usize) -> Result<String, LineError> {
    let bytes: Vec<u8> = raw.iter().copied().filter(|&b| b != b'\r').collect();
    if bytes.len() > max {
        return Err(LineError::TooLong);
    }
    let text = String::from_utf8_lossy(&bytes);
    Ok(text.trim_matches([' ', '\t']).to_owned())
}

/// Turns the line into a connect target, or the reason it is not one.
fn parse_target(line: &str) -> Result<Target, String> {
    if line.is_empty() {
        return Err("empty destination line".to_owned());
    }
    let lower = line.to_ascii_lowercase();
    if lower.ends_with(".i2p") {
        return Ok(Target::Name(lower));
    }
    // Java BOB semantics: the base64 must start with a well-formed destination.
    keytools::verify_bob(line)
        .map(Target::Destination)
        .map_err(|e| format!("bad destination: {e}"))
}

/// The first-line steps of a connection without the socket, for the fuzz targets
/// (feature `fuzzing`, see `crate::fuzzing`): reads the line from `reader` with the
/// limit `max` exactly as [`relay`] does, then parses it.
///
/// Returns `None` when the stream ended before any byte; otherwise the line, what the
/// line parsed to, and the bytes read after it.
///
/// # Errors
/// The text the connection would get in its `ERROR` line (`line too long`) or the I/O
/// error's text.
#[cfg(feature = "fuzzing")]
pub(crate) async fn first_line_for_fuzzing<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> Result<Option<(String, Result<Target, String>, BytesMut)>, String> {
    match read_first_line(reader, max).await {
        Ok(Some((line, early))) => {
            let target = parse_target(&line);
            Ok(Some((line, target, early)))
        }
        Ok(None) => Ok(None),
        Err(LineError::TooLong) => Err("line too long".to_owned()),
        Err(LineError::Io(e)) => Err(e.to_string()),
    }
}

/// Sends `ERROR <reason>\n`, then closes without provoking a reset (see [`LINGER_TIME`]).
async fn reject(socket: TcpStream, shared: &TunnelContext, reason: &str) {
    shared.stats.count_failure();
    tracing::debug!(reason, "rejecting connection");
    reply_and_close(socket, format!("ERROR {reason}\n").as_bytes()).await;
}

/// Writes `reply`, then closes without provoking a reset (see [`LINGER_TIME`]): reads
/// and discards what the application still sends, bounded by [`LINGER_BYTES`] and
/// [`LINGER_TIME`]. Shared with the proxy tunnels' error replies.
pub(super) async fn reply_and_close(mut socket: TcpStream, reply: &[u8]) {
    let linger = async {
        socket.write_all(reply).await?;
        socket.shutdown().await?;
        let mut sink = vec![0u8; 4096];
        let mut discarded = 0;
        while discarded < LINGER_BYTES {
            match socket.read(&mut sink).await? {
                0 => break,
                n => discarded += n,
            }
        }
        io::Result::Ok(())
    };
    let _ = tokio::time::timeout(LINGER_TIME, linger).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_cleanup() {
        assert_eq!(finish_line(b"ab\rc\r", 10).unwrap(), "abc");
        assert_eq!(finish_line(b" \tfoo.i2p \t", 20).unwrap(), "foo.i2p");
        assert!(matches!(finish_line(b"abcdef", 5), Err(LineError::TooLong)));
        assert_eq!(finish_line(b"abcde\r", 5).unwrap(), "abcde");
    }

    #[test]
    fn names_are_lower_cased_targets() {
        assert_eq!(
            parse_target("Example.I2P"),
            Ok(Target::Name("example.i2p".to_owned()))
        );
        assert_eq!(
            parse_target("AAAA.b32.i2p"),
            Ok(Target::Name("aaaa.b32.i2p".to_owned()))
        );
        assert_eq!(parse_target(""), Err("empty destination line".to_owned()));
    }
}
