//! The local backend's relay: bytes move between an application's socket and a
//! [`LocalStream`] without being copied by the server.
//!
//! Bytes are read from the socket straight into an owned chunk of at most
//! [`PIPE_BUFFER`] bytes, which is queued on the stream as it is; the other tunnel
//! writes that chunk to its socket. A direction holds at most one buffer being read
//! into, the stream's bounded queue and one chunk being written; small reads are copied
//! out of the read buffer so that no queued chunk keeps an allocation more than 4 times
//! its size alive. A buffer is allocated only once the socket has data, and given back
//! when the socket runs dry, so an idle connection holds no buffer.
//!
//! On Linux, once a connection reads in bulk (one read of at least a quarter of
//! [`PIPE_BUFFER`]), bytes go socket → kernel pipe → socket with `splice(2)` instead:
//! the stream's queue then holds "n bytes wait in the pipe" items, in order with the
//! chunks and within the same bound, and the server copies nothing. A read shorter
//! than 16 KiB ends bulk mode; the pipe is closed once drained, so idle connections
//! hold no extra file descriptors. If splicing fails as unsupported, the connection
//! falls back to chunks.
//!
//! Half-close, errors and cancellation follow the rules of [`crate::backend::relay`].

use std::io;
#[cfg(target_os = "linux")]
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
#[cfg(target_os = "linux")]
use tokio::io::Interest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio_util::sync::CancellationToken;

#[cfg(target_os = "linux")]
use super::Pipe;
use super::{LocalStream, Received};
use crate::backend::relay::{RelayCounters, RelayEnd, both_ways, shutdown};

/// Largest chunk read from a socket at once into a local stream.
pub const PIPE_BUFFER: usize = 256 * 1024;

/// A read shorter than this marks a connection as not busy: its read buffer is
/// released until the socket is readable again.
const IDLE_READ: usize = 16 * 1024;

/// Relays between `socket` and `local`: owned chunks, no copy between the sockets.
pub(super) async fn relay_local(
    mut socket: TcpStream,
    local: LocalStream,
    counters: &RelayCounters,
    cancel: &CancellationToken,
) -> RelayEnd {
    let (read, write) = socket.split();
    let forward = socket_to_local(read, &local, &counters.out);
    let backward = local_to_socket(&local, write, &counters.back);
    both_ways(forward, backward, cancel).await
}

/// Reads `socket` into chunks queued on `local` until end of stream, then shuts down
/// `local`'s write side. On Linux, once reads come in bulk, bytes are spliced from
/// the socket into the stream's pipe instead (see [`splice_in`]).
async fn socket_to_local(
    mut socket: ReadHalf<'_>,
    local: &LocalStream,
    counter: &AtomicU64,
) -> io::Result<()> {
    let mut buf = BytesMut::new();
    // Whether a chunk of at least a quarter of `buf`'s allocation has been handed over
    // from it (after which further chunks from the same allocation cost nothing more).
    let mut paid = false;
    // The pipe while splicing; `splice_off` once splicing failed for this stream.
    #[cfg(target_os = "linux")]
    let (mut pipe, mut splice_off) = (None::<Arc<Pipe>>, false);
    loop {
        // Read only what the stream can take: a full queue holds the socket back.
        local.ready_send().await?;
        #[cfg(target_os = "linux")]
        if let Some(p) = &pipe {
            // Boxed: the splice state would otherwise enlarge every connection's
            // task, idle ones included.
            match Box::pin(splice_in(socket.as_ref(), p, local)).await {
                Ok(Spliced::End) => break,
                Ok(Spliced::Bytes(n)) => {
                    counter.fetch_add(n as u64, Ordering::Relaxed);
                    if n < IDLE_READ {
                        // No longer bulk: back to (lazily allocated) buffers, and
                        // the pipe is closed once drained.
                        pipe = None;
                        local.release_send_pipe();
                    }
                }
                Ok(Spliced::Again) => {}
                Err(e) if unsupported(&e) && local.unsent_piped() == 0 => {
                    tracing::debug!(error = %e, "splice failed; copying instead");
                    (pipe, splice_off) = (None, true);
                    local.release_send_pipe();
                }
                Err(e) => return Err(e),
            }
            continue;
        }
        if buf.capacity() == 0 {
            // No buffer until there is something to read.
            socket.readable().await?;
        }
        // A new allocation (or the old one reclaimed, once all its chunks have been
        // written) when little room is left.
        if buf.capacity() < PIPE_BUFFER / 4 {
            buf.reserve(PIPE_BUFFER);
            paid = false;
        }
        // `read_buf` (unlike `try_read_buf`) notes a short read as "socket drained",
        // which saves the next read's `EAGAIN` round trip.
        let n = socket.read_buf(&mut buf).await?;
        if n == 0 {
            break;
        }
        let chunk = if !paid && n < PIPE_BUFFER / 4 {
            // A small read is copied out rather than handed over, so no allocation is
            // kept alive by chunks of less than a quarter of its size: the memory held
            // stays proportional to the bytes queued.
            let chunk = Bytes::copy_from_slice(&buf);
            buf.clear();
            chunk
        } else {
            paid = true;
            buf.split().freeze()
        };
        local.push(chunk)?;
        counter.fetch_add(n as u64, Ordering::Relaxed);
        if n < IDLE_READ {
            // An interactive or idle connection: give the buffer back, so that idle
            // connections hold none. During bulk transfer it is kept.
            buf = BytesMut::new();
        }
        #[cfg(target_os = "linux")]
        if n >= PIPE_BUFFER / 4 && !splice_off {
            // Bulk transfer: splice from now on.
            match local.send_pipe() {
                Ok(p) => {
                    pipe = Some(p);
                    buf = BytesMut::new();
                }
                Err(e) => {
                    tracing::debug!(error = %e, "no pipe for splicing; copying instead");
                    splice_off = true;
                }
            }
        }
    }
    local.shutdown_write();
    Ok(())
}

/// What one [`splice_in`] did.
#[cfg(target_os = "linux")]
enum Spliced {
    /// end of stream on the socket
    End,
    /// this many bytes were moved into the pipe and queued
    Bytes(usize),
    /// nothing moved (socket drained or pipe full); try again
    Again,
}

/// Errors after which splicing is given up for a stream (the kernel or the file
/// types do not support it) rather than failing the stream.
#[cfg(target_os = "linux")]
fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported
    )
}

/// Waits until `socket` is readable and the pipe has room, then splices what is there
/// (up to [`PIPE_BUFFER`]) into the pipe and queues it on `local`.
#[cfg(target_os = "linux")]
async fn splice_in(socket: &TcpStream, pipe: &Pipe, local: &LocalStream) -> io::Result<Spliced> {
    let piped = local.unsent_piped();
    let room = pipe.size().saturating_sub(piped).min(PIPE_BUFFER);
    if room == 0 {
        local.piped_below(pipe.size()).await?;
        return Ok(Spliced::Again);
    }
    socket.readable().await?;
    let moved = socket.try_io(Interest::READABLE, || match pipe.fill_from(socket, room) {
        // With bytes still in the pipe, EAGAIN may mean "pipe full" (small pages use
        // up its slots before its bytes) rather than "socket drained": then the
        // socket's readiness must be kept, and the reader must make room first.
        Err(e) if e.kind() == io::ErrorKind::WouldBlock && piped > 0 => Ok(None),
        other => other.map(Some),
    });
    match moved {
        Ok(Some(0)) => Ok(Spliced::End),
        Ok(Some(n)) => {
            local.push_piped(n)?;
            Ok(Spliced::Bytes(n))
        }
        Ok(None) => {
            local.piped_below(piped).await?;
            Ok(Spliced::Again)
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Spliced::Again),
        Err(e) => Err(e),
    }
}

/// Writes the chunks of `local` to `socket` until end of stream, then shuts down the
/// socket's write side. Piped bytes are spliced into the socket.
async fn local_to_socket(
    local: &LocalStream,
    mut socket: WriteHalf<'_>,
    counter: &AtomicU64,
) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    let mut splice_off = false;
    while let Some(item) = local.recv().await {
        let n = match item {
            Received::Data(chunk) => {
                socket.write_all(&chunk).await?;
                chunk.len()
            }
            Received::Piped(pipe, n) => {
                #[cfg(target_os = "linux")]
                if !splice_off {
                    // Boxed, as `splice_in` above.
                    match Box::pin(splice_out(socket.as_ref(), &pipe, n)).await {
                        Ok(moved) => {
                            local.consume_piped(moved);
                            counter.fetch_add(moved as u64, Ordering::Relaxed);
                            continue;
                        }
                        Err(e) if unsupported(&e) => {
                            tracing::debug!(error = %e, "splice failed; copying instead");
                            splice_off = true;
                        }
                        Err(e) => return Err(e),
                    }
                }
                // Copy out of the pipe (it holds `n` bytes, so the read does not wait).
                let mut bytes = vec![0u8; n.min(PIPE_BUFFER)];
                let got = pipe.read(&mut bytes)?;
                socket.write_all(&bytes[..got]).await?;
                local.consume_piped(got);
                got
            }
        };
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
    shutdown(&mut socket).await
}

/// Waits until `socket` is writable, then splices up to `n` bytes out of the pipe
/// into it; returns how many moved.
#[cfg(target_os = "linux")]
async fn splice_out(socket: &TcpStream, pipe: &Pipe, n: usize) -> io::Result<usize> {
    loop {
        socket.writable().await?;
        match socket.try_io(Interest::WRITABLE, || pipe.drain_into(socket, n)) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(moved) => return Ok(moved),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::backend::relay::testing::{half_closing_app, shared_counters};

    /// A TCP connection over loopback: (client end, server end).
    async fn tcp_pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// Bulk bytes from a socket into a local stream (spliced through a pipe on
    /// Linux), half-close, then a reply the other way; the pipe is closed at the end.
    #[tokio::test]
    async fn local_relay_bulk_half_close_and_reply() {
        let (app, server_side) = tcp_pair().await;
        let (ours, theirs) = LocalStream::pair(256 * 1024);
        let (counters, up, down) = shared_counters();
        let cancel = CancellationToken::new();
        let task = tokio::spawn({
            let cancel = cancel.clone();
            async move { relay_local(server_side, ours, &counters, &cancel).await }
        });
        let data = pattern(8 << 20);
        let writer = half_closing_app(app, data.clone());
        // Read through the chunk/pipe interface, as the other tunnel does.
        let (mut got, mut piped_items) = (Vec::new(), 0);
        while let Some(item) = theirs.recv().await {
            match item {
                Received::Data(chunk) => got.extend_from_slice(&chunk),
                Received::Piped(pipe, n) => {
                    piped_items += 1;
                    let mut part = vec![0u8; n];
                    let k = pipe.read(&mut part).unwrap();
                    assert!(k > 0 && k <= n);
                    got.extend_from_slice(&part[..k]);
                    theirs.consume_piped(k);
                }
            }
        }
        assert!(got == data, "bytes differ");
        if cfg!(target_os = "linux") {
            assert!(piped_items > 0, "bulk bytes were not spliced");
        }
        assert!(!theirs.holds_pipe(), "the drained pipe was not closed");
        let mut theirs = theirs;
        theirs.write_all(b"reply after EOF").await.unwrap();
        theirs.shutdown().await.unwrap();
        assert_eq!(writer.await.unwrap(), b"reply after EOF");
        assert!(matches!(task.await.unwrap(), RelayEnd::Finished));
        assert_eq!(up.load(Ordering::Relaxed), 8 << 20);
        assert_eq!(down.load(Ordering::Relaxed), 15);
    }

    /// Piped bytes are written out by the other side's relay (pipe -> socket), and
    /// a reader that does not read holds the writer back: what the server holds stays
    /// bounded, and nothing is lost once it reads.
    #[tokio::test]
    async fn local_relay_pipe_to_socket_is_bounded() {
        let (mut app, app_side) = tcp_pair().await;
        let (sink_side, mut sink) = tcp_pair().await;
        let (ours, theirs) = LocalStream::pair(256 * 1024);
        let cancel = CancellationToken::new();
        let zero = || Arc::new(AtomicU64::new(0));
        let (up, delivered) = (zero(), zero());
        let inbound = tokio::spawn({
            let (up, cancel) = (up.clone(), cancel.clone());
            async move {
                let counters = RelayCounters {
                    out: up,
                    back: zero(),
                };
                relay_local(app_side, ours, &counters, &cancel).await
            }
        });
        let outbound = tokio::spawn({
            let (delivered, cancel) = (delivered.clone(), cancel.clone());
            async move {
                let counters = RelayCounters {
                    out: zero(),
                    back: delivered,
                };
                relay_local(sink_side, theirs, &counters, &cancel).await
            }
        });
        let total = 64usize << 20;
        let data = pattern(total);
        let writer = {
            let data = data.clone();
            tokio::spawn(async move {
                app.write_all(&data).await.unwrap();
                app.shutdown().await.unwrap();
                app
            })
        };
        // The sink does not read: wait until the relay stops making progress.
        let mut last = (u64::MAX, 0);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        while last.1 < 10 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "relay never stalled"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let now = up.load(Ordering::Relaxed);
            last = if now == last.0 {
                (now, last.1 + 1)
            } else {
                (now, 0)
            };
        }
        assert!(!writer.is_finished(), "64 MiB fit into the socket buffers");
        // Held inside the server: queued in the stream (at most its capacity plus one
        // read); the rest is in the kernel's socket buffers.
        let held = up.load(Ordering::Relaxed) - delivered.load(Ordering::Relaxed);
        assert!(held <= (256 + 256) * 1024, "server holds {held} bytes");
        let mut got = Vec::with_capacity(total);
        sink.read_to_end(&mut got).await.unwrap();
        assert!(got == data, "bytes differ");
        drop(writer.await.unwrap());
        sink.shutdown().await.unwrap();
        assert!(matches!(outbound.await.unwrap(), RelayEnd::Finished));
        assert!(matches!(inbound.await.unwrap(), RelayEnd::Finished));
        assert_eq!(delivered.load(Ordering::Relaxed), total as u64);
    }
}
