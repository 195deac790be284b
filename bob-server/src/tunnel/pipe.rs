//! The relay between an application's TCP connection and an I2P stream.
//!
//! Both directions are copied at once through bounded buffers, so a slow receiver
//! slows the sender down instead of growing memory.
//!
//! # Zero-copy local streams
//! When the stream is a [`LocalStream`] (the in-process backend), bytes are read from
//! the socket straight into an owned chunk of at most [`PIPE_BUFFER`] bytes, which is
//! queued on the stream as it is; the other tunnel writes that chunk to its socket. A
//! direction holds at most one buffer being read into, the stream's bounded queue and
//! one chunk being written; small reads are copied out of the read buffer so that no
//! queued chunk keeps an allocation more than 4 times its size alive. A buffer is allocated only once the socket has data, and
//! given back when the socket runs dry, so an idle connection holds no buffer.
//!
//! Any other stream is relayed through `AsyncRead`/`AsyncWrite` with one buffer per
//! direction that starts at 4 KiB and grows to [`COPY_BUFFER`] bytes while reads fill it.
//!
//! # Half-close
//! Unlike Java BOB and i2pd, which drop the whole connection as soon as either
//! direction ends (losing bytes still in flight the other way), end of stream on one
//! side is passed on as a write shutdown to the other side, and the opposite direction
//! keeps running until it ends too. An application may therefore send a request, shut
//! down its write side, and still read the complete answer. An I/O error in either
//! direction ends both. Cancellation (tunnel `stop`) ends both at once.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio_util::sync::CancellationToken;

use crate::backend::BoxStream;
use crate::backend::local::LocalStream;

/// Largest chunk read from a socket at once into a local stream.
pub const PIPE_BUFFER: usize = 256 * 1024;

/// A read shorter than this marks a connection as not busy: its read buffer is
/// released until the socket is readable again.
const IDLE_READ: usize = 16 * 1024;

/// Largest buffer per direction when relaying a stream of another backend.
pub const COPY_BUFFER: usize = 64 * 1024;

/// First buffer per direction when relaying a stream of another backend.
const COPY_START: usize = 4 * 1024;

/// How a pipe ended.
#[derive(Debug)]
pub(crate) enum PipeEnd {
    /// Both directions reached end of stream.
    Finished,
    /// One direction failed; the other was dropped.
    Failed(io::Error),
    /// The tunnel is stopping.
    Cancelled,
}

/// Relays between an application's `socket` and a backend `stream` (see the module
/// docs); `out` counts bytes from the socket into the stream, `back` the other way.
pub(crate) async fn relay(
    socket: TcpStream,
    stream: BoxStream,
    out: Arc<AtomicU64>,
    back: Arc<AtomicU64>,
    cancel: &CancellationToken,
) -> PipeEnd {
    match stream.into_local() {
        Ok(local) => relay_local(socket, local, &out, &back, cancel).await,
        Err(stream) => pipe(socket, stream, out, back, cancel).await,
    }
}

/// [`relay`] for an in-process stream: owned chunks, no copy between the sockets.
async fn relay_local(
    mut socket: TcpStream,
    local: LocalStream,
    out: &AtomicU64,
    back: &AtomicU64,
    cancel: &CancellationToken,
) -> PipeEnd {
    let (read, write) = socket.split();
    let forward = socket_to_local(read, &local, out);
    let backward = local_to_socket(&local, write, back);
    tokio::select! {
        result = async { tokio::try_join!(forward, backward) } => match result {
            Ok(_) => PipeEnd::Finished,
            Err(e) => PipeEnd::Failed(e),
        },
        () = cancel.cancelled() => PipeEnd::Cancelled,
    }
}

/// Reads `socket` into chunks queued on `local` until end of stream, then shuts down
/// `local`'s write side.
async fn socket_to_local(
    mut socket: ReadHalf<'_>,
    local: &LocalStream,
    counter: &AtomicU64,
) -> io::Result<()> {
    let mut buf = BytesMut::new();
    // Whether a chunk of at least a quarter of `buf`'s allocation has been handed over
    // from it (after which further chunks from the same allocation cost nothing more).
    let mut paid = false;
    loop {
        // Read only what the stream can take: a full queue holds the socket back.
        local.ready_send().await?;
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
    }
    local.shutdown_write();
    Ok(())
}

/// Writes the chunks of `local` to `socket` until end of stream, then shuts down the
/// socket's write side.
async fn local_to_socket(
    local: &LocalStream,
    mut socket: WriteHalf<'_>,
    counter: &AtomicU64,
) -> io::Result<()> {
    while let Some(chunk) = local.recv().await {
        socket.write_all(&chunk).await?;
        counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
    shutdown(&mut socket).await
}

/// Shuts down the write side; a peer that is already fully gone is not an error.
async fn shutdown<W: AsyncWrite + Unpin>(to: &mut W) -> io::Result<()> {
    match to.shutdown().await {
        // The other side may already be fully closed; nothing was lost by us.
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
        other => other,
    }
}

/// Copies `a -> b` and `b -> a` until both directions have ended, one fails, or
/// `cancel` fires. `a_to_b` and `b_to_a` are increased as bytes are delivered, so
/// readers of the counters see live progress. Both streams are closed on return.
pub(crate) async fn pipe<A, B>(
    a: A,
    b: B,
    a_to_b: Arc<AtomicU64>,
    b_to_a: Arc<AtomicU64>,
    cancel: &CancellationToken,
) -> PipeEnd
where
    A: AsyncRead + AsyncWrite + Send + Unpin,
    B: AsyncRead + AsyncWrite + Send + Unpin,
{
    let (mut a_read, mut a_write) = tokio::io::split(a);
    let (mut b_read, mut b_write) = tokio::io::split(b);
    let forward = copy_half(&mut a_read, &mut b_write, &a_to_b);
    let backward = copy_half(&mut b_read, &mut a_write, &b_to_a);
    tokio::select! {
        result = async { tokio::try_join!(forward, backward) } => match result {
            Ok(_) => PipeEnd::Finished,
            Err(e) => PipeEnd::Failed(e),
        },
        () = cancel.cancelled() => PipeEnd::Cancelled,
    }
}

/// Copies `from` into `to` until end of stream, then shuts down `to`'s write side.
async fn copy_half<R, W>(from: &mut R, to: &mut W, counter: &AtomicU64) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Starts small, so that idle connections stay cheap, and grows up to
    // COPY_BUFFER while reads keep filling it.
    let mut buf = vec![0u8; COPY_START];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        if n == buf.len() && buf.len() < COPY_BUFFER {
            let grown = (buf.len() * 4).min(COPY_BUFFER);
            buf.resize(grown, 0);
        }
        to.write_all(&buf[..n]).await?;
        // Streams that buffer internally must not sit on data while we wait to read.
        to.flush().await?;
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
    shutdown(to).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Half-close through a pipe of two duplex pairs: the left end writes and shuts
    /// down, the right end echoes after reading everything, the left end gets it all.
    #[tokio::test]
    async fn half_close_delivers_reply() {
        let (mut left, a) = tokio::io::duplex(1024);
        let (b, mut right) = tokio::io::duplex(1024);
        let up = Arc::new(AtomicU64::new(0));
        let down = Arc::new(AtomicU64::new(0));
        let cancel = CancellationToken::new();
        let task = tokio::spawn({
            let (up, down, cancel) = (up.clone(), down.clone(), cancel.clone());
            async move { pipe(a, b, up, down, &cancel).await }
        });
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let writer = {
            let data = data.clone();
            tokio::spawn(async move {
                left.write_all(&data).await.unwrap();
                left.shutdown().await.unwrap();
                let mut back = Vec::new();
                left.read_to_end(&mut back).await.unwrap();
                back
            })
        };
        let mut got = Vec::new();
        right.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, data);
        right.write_all(b"reply after EOF").await.unwrap();
        right.shutdown().await.unwrap();
        assert_eq!(writer.await.unwrap(), b"reply after EOF");
        assert!(matches!(task.await.unwrap(), PipeEnd::Finished));
        assert_eq!(up.load(Ordering::Relaxed), 100_000);
        assert_eq!(down.load(Ordering::Relaxed), 15);
    }

    #[tokio::test]
    async fn cancel_ends_both_sides() {
        let (mut left, a) = tokio::io::duplex(1024);
        let (b, mut right) = tokio::io::duplex(1024);
        let cancel = CancellationToken::new();
        let task = tokio::spawn({
            let cancel = cancel.clone();
            async move {
                let zero = || Arc::new(AtomicU64::new(0));
                pipe(a, b, zero(), zero(), &cancel).await
            }
        });
        left.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        right.read_exact(&mut one).await.unwrap();
        cancel.cancel();
        assert!(matches!(task.await.unwrap(), PipeEnd::Cancelled));
        let mut rest = Vec::new();
        assert_eq!(left.read_to_end(&mut rest).await.unwrap(), 0);
        assert_eq!(right.read_to_end(&mut rest).await.unwrap(), 0);
    }
}
