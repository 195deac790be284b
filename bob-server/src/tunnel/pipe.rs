//! The relay between an application's TCP connection and an I2P stream.
//!
//! Both directions are copied at once through bounded buffers ([`PIPE_BUFFER`] bytes
//! each), so a slow receiver slows the sender down instead of growing memory.
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

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// Bytes read per chunk, per direction.
pub const PIPE_BUFFER: usize = 16 * 1024;

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
    let mut buf = vec![0u8; PIPE_BUFFER];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        to.write_all(&buf[..n]).await?;
        // Streams that buffer internally must not sit on data while we wait to read.
        to.flush().await?;
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
    match to.shutdown().await {
        // The other side may already be fully closed; nothing was lost by us.
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
        other => other,
    }
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
