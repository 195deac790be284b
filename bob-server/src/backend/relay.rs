//! The relay between an application's TCP connection and a backend stream, as every
//! backend gets it by default ([`ByteStream::relay`](super::ByteStream::relay)).
//!
//! Both directions are copied at once through bounded buffers, so a slow receiver
//! slows the sender down instead of growing memory: one buffer per direction that
//! starts at 4 KiB and grows to [`COPY_BUFFER`] bytes while reads fill it. A backend
//! that can move bytes more cheaply overrides the method (the local backend: zero-copy
//! chunks and `splice(2)`, see `local::relay`).
//!
//! # Half-close
//! Unlike Java BOB and i2pd, which drop the whole connection as soon as either
//! direction ends (losing bytes still in flight the other way), end of stream on one
//! side is passed on as a write shutdown to the other side, and the opposite direction
//! keeps running until it ends too. An application may therefore send a request, shut
//! down its write side, and still read the complete answer. An I/O error in either
//! direction ends both. Cancellation (tunnel `stop`) ends both at once. Every relay,
//! the overriding ones included, keeps these rules.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// Largest buffer per direction when relaying through `AsyncRead`/`AsyncWrite`.
pub const COPY_BUFFER: usize = 64 * 1024;

/// First buffer per direction when relaying through `AsyncRead`/`AsyncWrite`.
const COPY_START: usize = 4 * 1024;

/// How a relay ended.
#[derive(Debug)]
pub enum RelayEnd {
    /// Both directions reached end of stream.
    Finished,
    /// One direction failed; the other was dropped.
    Failed(io::Error),
    /// The tunnel is stopping.
    Cancelled,
}

/// The byte counters a relay increases as bytes are delivered, so readers see live
/// progress.
#[derive(Debug, Clone, Default)]
pub struct RelayCounters {
    /// bytes from the application's socket into the stream
    pub out: Arc<AtomicU64>,
    /// bytes from the stream to the application's socket
    pub back: Arc<AtomicU64>,
}

/// Shuts down the write side; a peer that is already fully gone is not an error.
pub(crate) async fn shutdown<W: AsyncWrite + Unpin>(to: &mut W) -> io::Result<()> {
    match to.shutdown().await {
        // The other side may already be fully closed; nothing was lost by us.
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
        other => other,
    }
}

/// Copies `a -> b` and `b -> a` until both directions have ended, one fails, or
/// `cancel` fires. `counters.out` counts `a -> b`, `counters.back` `b -> a`, as bytes
/// are delivered. Both streams are closed on return.
pub async fn copy<A, B>(a: A, b: B, counters: RelayCounters, cancel: &CancellationToken) -> RelayEnd
where
    A: AsyncRead + AsyncWrite + Send + Unpin,
    B: AsyncRead + AsyncWrite + Send + Unpin,
{
    let (mut a_read, mut a_write) = tokio::io::split(a);
    let (mut b_read, mut b_write) = tokio::io::split(b);
    let forward = copy_half(&mut a_read, &mut b_write, &counters.out);
    let backward = copy_half(&mut b_read, &mut a_write, &counters.back);
    both_ways(forward, backward, cancel).await
}

/// Runs the two directions of a relay at once until both have ended, one fails (the
/// other is dropped), or `cancel` fires: the rules every relay keeps (see the module
/// documentation), in one place.
pub(crate) async fn both_ways(
    forward: impl Future<Output = io::Result<()>>,
    backward: impl Future<Output = io::Result<()>>,
    cancel: &CancellationToken,
) -> RelayEnd {
    tokio::select! {
        result = async { tokio::try_join!(forward, backward) } => match result {
            Ok(_) => RelayEnd::Finished,
            Err(e) => RelayEnd::Failed(e),
        },
        () = cancel.cancelled() => RelayEnd::Cancelled,
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

/// What the relay tests of every backend share.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    use tokio::task::JoinHandle;

    use super::RelayCounters;

    /// Counters for a relay and the two totals a test reads while it runs:
    /// (counters, out, back).
    pub(crate) fn shared_counters() -> (RelayCounters, Arc<AtomicU64>, Arc<AtomicU64>) {
        let counters = RelayCounters::default();
        let (out, back) = (counters.out.clone(), counters.back.clone());
        (counters, out, back)
    }

    /// An application that writes `data`, shuts its write side down, then reads the
    /// reply to its end; the task yields the reply.
    pub(crate) fn half_closing_app<S>(mut app: S, data: Vec<u8>) -> JoinHandle<Vec<u8>>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        tokio::spawn(async move {
            app.write_all(&data).await.unwrap();
            app.shutdown().await.unwrap();
            let mut back = Vec::new();
            app.read_to_end(&mut back).await.unwrap();
            back
        })
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{half_closing_app, shared_counters};
    use super::*;

    /// Half-close through a pipe of two duplex pairs: the left end writes and shuts
    /// down, the right end echoes after reading everything, the left end gets it all.
    #[tokio::test]
    async fn half_close_delivers_reply() {
        let (left, a) = tokio::io::duplex(1024);
        let (b, mut right) = tokio::io::duplex(1024);
        let (counters, up, down) = shared_counters();
        let cancel = CancellationToken::new();
        let task = tokio::spawn({
            let cancel = cancel.clone();
            async move { copy(a, b, counters, &cancel).await }
        });
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let writer = half_closing_app(left, data.clone());
        let mut got = Vec::new();
        right.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, data);
        right.write_all(b"reply after EOF").await.unwrap();
        right.shutdown().await.unwrap();
        assert_eq!(writer.await.unwrap(), b"reply after EOF");
        assert!(matches!(task.await.unwrap(), RelayEnd::Finished));
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
            async move { copy(a, b, RelayCounters::default(), &cancel).await }
        });
        left.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        right.read_exact(&mut one).await.unwrap();
        cancel.cancel();
        assert!(matches!(task.await.unwrap(), RelayEnd::Cancelled));
        let mut rest = Vec::new();
        assert_eq!(left.read_to_end(&mut rest).await.unwrap(), 0);
        assert_eq!(right.read_to_end(&mut rest).await.unwrap(), 0);
    }
}
