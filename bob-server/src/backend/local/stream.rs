//! [`LocalStream`]: the two ends of an in-process stream, handing over owned [`Bytes`]
//! chunks.
//!
//! Each direction is a queue of chunks bounded by a byte count. The tunnel's relay
//! reads from a TCP socket straight into a chunk, queues it ([`LocalStream::send`]),
//! and the other end writes the same chunk to its socket ([`LocalStream::recv`]):
//! between the two sockets the bytes are never copied. Other users get ordinary
//! [`AsyncRead`]/[`AsyncWrite`], which copy in and out of the chunks.
//!
//! On Linux a writer may also put bytes into the direction's kernel pipe
//! ([`LocalStream::send_pipe`], [`LocalStream::push_piped`]); the reader then gets
//! [`Received::Piped`] and splices them onward ([`LocalStream::consume_piped`]).
//!
//! # Semantics (as [`tokio::io::duplex`])
//! - Shutting down one end's write side (or dropping the end) is seen by the other
//!   end as end of stream, after every queued byte.
//! - Writing after the other end was dropped fails with `BrokenPipe`; the queued bytes
//!   nobody will read are freed at once.
//! - A writer waits while its queue holds [`LocalStream::capacity`] bytes or more.

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[cfg(target_os = "linux")]
pub(crate) use super::splice::Pipe;

/// Stand-in where `splice(2)` does not exist: never constructed.
#[cfg(not(target_os = "linux"))]
#[derive(Debug)]
pub(crate) struct Pipe(std::convert::Infallible);

#[cfg(not(target_os = "linux"))]
impl Pipe {
    fn read(&self, _buf: &mut [u8]) -> io::Result<usize> {
        match self.0 {}
    }
}

/// What a direction's queue holds, in order.
#[derive(Debug)]
enum Item {
    /// bytes handed over as they were written
    Data(Bytes),
    /// this many bytes wait in the direction's [`Pipe`]
    Piped(usize),
}

/// What [`LocalStream::poll_recv`] hands out.
#[derive(Debug)]
pub(crate) enum Received {
    /// The next chunk, as it was written; it is removed from the queue.
    Data(Bytes),
    /// The next `usize` bytes wait in this pipe. They stay queued until the reader
    /// reports what it took out with [`LocalStream::consume_piped`].
    Piped(Arc<Pipe>, usize),
}

/// One direction: chunks written by one end, read by the other.
#[derive(Default)]
struct Queue {
    chunks: VecDeque<Item>,
    /// bytes in `chunks`
    queued: usize,
    /// bytes of `chunks` that wait in `pipe`
    piped: usize,
    /// the kernel pipe of this direction, made on demand by the writer
    pipe: Option<Arc<Pipe>>,
    /// the writer no longer needs `pipe`: it is closed once `piped` is zero
    release_pipe: bool,
    /// the writing end shut down or was dropped: end of stream after `chunks`
    write_closed: bool,
    /// the reading end was dropped: writes fail
    read_closed: bool,
    /// the reader waiting for a chunk
    reader: Option<Waker>,
    /// the writer waiting for room
    writer: Option<Waker>,
}

/// A direction behind its lock.
#[derive(Default)]
struct Channel(Mutex<Queue>);

impl Channel {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Every update below leaves the queue consistent, so a poisoned lock is usable.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Keeps `cx`'s waker in `slot` (unless the one there already wakes the same task).
fn park(slot: &mut Option<Waker>, cx: &Context<'_>) {
    if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
        *slot = Some(cx.waker().clone());
    }
}

/// Wakes `waker` (taken out of the queue) after the lock is released.
fn wake(waker: Option<Waker>) {
    if let Some(w) = waker {
        w.wake();
    }
}

fn broken_pipe() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the other end of the stream is gone",
    )
}

fn shut_down() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the stream was shut down for writing",
    )
}

/// One end of an in-process byte stream (see the module docs).
pub struct LocalStream {
    /// what this end writes
    out: Arc<Channel>,
    /// what this end reads
    inn: Arc<Channel>,
    /// bytes `out` may hold before a writer waits
    capacity: usize,
}

impl fmt::Debug for LocalStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalStream")
            .field("capacity", &self.capacity)
            .field("unread", &self.inn.lock().queued)
            .field("unsent", &self.out.lock().queued)
            .finish()
    }
}

impl Queue {
    /// Whether the writing end may still queue bytes: not shut down, reader not gone.
    fn writable(&self) -> io::Result<()> {
        if self.write_closed {
            return Err(shut_down());
        }
        if self.read_closed {
            return Err(broken_pipe());
        }
        Ok(())
    }

    /// Closes the pipe if the writer released it and nothing waits in it.
    fn maybe_close_pipe(&mut self) {
        if self.release_pipe && self.piped == 0 {
            self.pipe = None;
        }
    }

    /// Takes `n` bytes off the front item (`Data` or `Piped`), which holds at least
    /// `n`; returns the waiting writer.
    fn consume_front(&mut self, n: usize) -> Option<Waker> {
        let empty = match self.chunks.front_mut() {
            Some(Item::Data(chunk)) => {
                chunk.advance(n);
                chunk.is_empty()
            }
            Some(Item::Piped(left)) => {
                *left -= n;
                self.piped -= n;
                *left == 0
            }
            None => false,
        };
        if empty {
            self.chunks.pop_front();
        }
        self.queued -= n;
        self.maybe_close_pipe();
        self.writer.take()
    }
}

impl LocalStream {
    /// Two connected ends; each direction holds up to `capacity` bytes (at least 1)
    /// before the writer waits.
    pub fn pair(capacity: usize) -> (Self, Self) {
        let capacity = capacity.max(1);
        let (a, b) = (Arc::new(Channel::default()), Arc::new(Channel::default()));
        (
            Self {
                out: Arc::clone(&a),
                inn: Arc::clone(&b),
                capacity,
            },
            Self {
                out: b,
                inn: a,
                capacity,
            },
        )
    }

    /// Bytes a direction holds before its writer waits.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Ready when a chunk may be queued: the queue holds less than `capacity` bytes.
    /// Fails if this end was shut down for writing or the other end is gone.
    pub(crate) fn poll_ready_send(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut q = self.out.lock();
        if let Err(e) = q.writable() {
            return Poll::Ready(Err(e));
        }
        if q.queued < self.capacity {
            return Poll::Ready(Ok(()));
        }
        park(&mut q.writer, cx);
        Poll::Pending
    }

    /// Waits for room (see [`LocalStream::poll_ready_send`]).
    ///
    /// # Errors
    /// `BrokenPipe` if this end was shut down for writing or the other end is gone.
    pub(crate) async fn ready_send(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_ready_send(cx)).await
    }

    /// Queues `chunk` without waiting. A queue may thus exceed `capacity` by one
    /// chunk; callers bound their chunks and call [`LocalStream::ready_send`] first.
    ///
    /// # Errors
    /// `BrokenPipe` if this end was shut down for writing or the other end is gone.
    pub(crate) fn push(&self, chunk: Bytes) -> io::Result<()> {
        if chunk.is_empty() {
            return self.check_open();
        }
        let n = chunk.len();
        self.push_item(Item::Data(chunk), n)
    }

    fn check_open(&self) -> io::Result<()> {
        self.out.lock().writable()
    }

    fn push_item(&self, item: Item, n: usize) -> io::Result<()> {
        let mut q = self.out.lock();
        q.writable()?;
        q.queued += n;
        if let Item::Piped(_) = item {
            q.piped += n;
        }
        q.chunks.push_back(item);
        let reader = q.reader.take();
        drop(q);
        wake(reader);
        Ok(())
    }

    /// Waits for room, then queues `chunk` as it is (no copy).
    ///
    /// # Errors
    /// `BrokenPipe` once the other end is gone or this end's write side is shut down.
    pub async fn send(&self, chunk: Bytes) -> io::Result<()> {
        self.ready_send().await?;
        self.push(chunk)
    }

    /// The pipe this end writes into, made on first use. Bytes put into it are
    /// announced with [`LocalStream::push_piped`].
    ///
    /// # Errors
    /// `BrokenPipe` as [`LocalStream::push`]; the pipe cannot be made.
    #[cfg(target_os = "linux")]
    pub(crate) fn send_pipe(&self) -> io::Result<Arc<Pipe>> {
        let mut q = self.out.lock();
        q.writable()?;
        q.release_pipe = false;
        if let Some(pipe) = &q.pipe {
            return Ok(Arc::clone(pipe));
        }
        let pipe = Arc::new(Pipe::new()?);
        q.pipe = Some(Arc::clone(&pipe));
        Ok(pipe)
    }

    /// Queues the `n` bytes just put into [`LocalStream::send_pipe`]'s pipe, after
    /// everything queued before. Like [`LocalStream::push`] it does not wait.
    ///
    /// # Errors
    /// As [`LocalStream::push`].
    pub(crate) fn push_piped(&self, n: usize) -> io::Result<()> {
        if n == 0 {
            return self.check_open();
        }
        self.push_item(Item::Piped(n), n)
    }

    /// Bytes this end put into its pipe that the other end has not taken out yet.
    pub(crate) fn unsent_piped(&self) -> usize {
        self.out.lock().piped
    }

    /// Waits until fewer than `limit` of this end's piped bytes are unread, or the
    /// other end is gone (then fails).
    ///
    /// # Errors
    /// `BrokenPipe` if the other end is gone.
    pub(crate) async fn piped_below(&self, limit: usize) -> io::Result<()> {
        poll_fn(|cx| {
            let mut q = self.out.lock();
            if q.read_closed {
                return Poll::Ready(Err(broken_pipe()));
            }
            if q.piped < limit {
                return Poll::Ready(Ok(()));
            }
            park(&mut q.writer, cx);
            Poll::Pending
        })
        .await
    }

    /// Whether a pipe is open in either direction (for tests of the fd budget).
    pub fn holds_pipe(&self) -> bool {
        self.out.lock().pipe.is_some() || self.inn.lock().pipe.is_some()
    }

    /// Bytes queued for this end to read.
    pub fn unread(&self) -> usize {
        self.inn.lock().queued
    }

    /// This end no longer needs its pipe: it is closed as soon as the other end has
    /// taken out every byte in it, so an idle stream holds no file descriptors.
    pub(crate) fn release_send_pipe(&self) {
        let mut q = self.out.lock();
        q.release_pipe = true;
        q.maybe_close_pipe();
    }

    /// The next chunk the other end wrote, or the pipe holding its next bytes;
    /// `None` at end of stream.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Received>> {
        let mut q = self.inn.lock();
        match q.chunks.front() {
            Some(Item::Data(_)) => {
                let Some(Item::Data(chunk)) = q.chunks.pop_front() else {
                    unreachable!("the front item was just matched");
                };
                q.queued -= chunk.len();
                let writer = q.writer.take();
                drop(q);
                wake(writer);
                Poll::Ready(Some(Received::Data(chunk)))
            }
            Some(&Item::Piped(n)) => match &q.pipe {
                Some(pipe) => Poll::Ready(Some(Received::Piped(Arc::clone(pipe), n))),
                None => unreachable!("piped bytes keep their pipe open"),
            },
            None if q.write_closed => Poll::Ready(None),
            None => {
                park(&mut q.reader, cx);
                Poll::Pending
            }
        }
    }

    /// Waits for the next chunk or pipe (see [`LocalStream::poll_recv`]).
    pub(crate) async fn recv(&self) -> Option<Received> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Reports that `n` bytes of a [`Received::Piped`] were taken out of the pipe
    /// (at most the amount it announced).
    pub(crate) fn consume_piped(&self, n: usize) {
        let mut q = self.inn.lock();
        let n = match q.chunks.front() {
            Some(&Item::Piped(left)) => n.min(left),
            _ => 0,
        };
        if n == 0 {
            return;
        }
        let writer = q.consume_front(n);
        drop(q);
        wake(writer);
    }

    /// Shuts down this end's write side: the other end reads what is queued, then end
    /// of stream. Idempotent.
    pub(crate) fn shutdown_write(&self) {
        let mut q = self.out.lock();
        q.write_closed = true;
        q.release_pipe = true;
        q.maybe_close_pipe();
        let reader = q.reader.take();
        drop(q);
        wake(reader);
    }
}

impl Drop for LocalStream {
    fn drop(&mut self) {
        self.shutdown_write();
        let mut q = self.inn.lock();
        q.read_closed = true;
        let unread = std::mem::take(&mut q.chunks);
        q.queued = 0;
        q.piped = 0;
        // Closing the pipe frees what waits in it.
        let pipe = q.pipe.take();
        let writer = q.writer.take();
        drop(q);
        wake(writer);
        drop(unread);
        drop(pipe);
    }
}

impl AsyncRead for LocalStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let mut q = self.inn.lock();
        let n = match q.chunks.front() {
            None => {
                if q.write_closed {
                    return Poll::Ready(Ok(()));
                }
                park(&mut q.reader, cx);
                return Poll::Pending;
            }
            Some(Item::Data(front)) => {
                let n = front.len().min(buf.remaining());
                buf.put_slice(&front[..n]);
                n
            }
            Some(&Item::Piped(left)) => {
                let Some(pipe) = &q.pipe else {
                    unreachable!("piped bytes keep their pipe open");
                };
                let want = left.min(buf.remaining());
                // The pipe holds `left` bytes, so this read does not wait.
                let n = pipe.read(buf.initialize_unfilled_to(want))?;
                buf.advance(n);
                n
            }
        };
        let writer = q.consume_front(n);
        drop(q);
        wake(writer);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for LocalStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut q = self.out.lock();
        if let Err(e) = q.writable() {
            return Poll::Ready(Err(e));
        }
        if q.queued >= self.capacity {
            park(&mut q.writer, cx);
            return Poll::Pending;
        }
        // Copying in, the queue never exceeds `capacity`.
        let n = buf.len().min(self.capacity - q.queued);
        q.queued += n;
        q.chunks
            .push_back(Item::Data(Bytes::copy_from_slice(&buf[..n])));
        let reader = q.reader.take();
        drop(q);
        wake(reader);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.shutdown_write();
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn bytes_then_end_of_stream_both_ways() {
        let (mut a, mut b) = LocalStream::pair(8);
        a.write_all(b"hello").await.unwrap();
        a.shutdown().await.unwrap();
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"hello");
        // The other direction still works after the first one ended.
        b.send(Bytes::from_static(b"back")).await.unwrap();
        drop(b);
        match a.recv().await {
            Some(Received::Data(chunk)) => assert_eq!(chunk, Bytes::from_static(b"back")),
            other => panic!("expected a chunk, got {other:?}"),
        }
        assert!(a.recv().await.is_none());
    }

    #[tokio::test]
    async fn writer_waits_at_capacity_and_resumes() {
        let (mut a, mut b) = LocalStream::pair(4);
        // AsyncWrite accepts only what fits.
        assert_eq!(a.write(b"123456").await.unwrap(), 4);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(a.poll_ready_send(&mut cx).is_pending());
        assert!(Pin::new(&mut a).poll_write(&mut cx, b"x").is_pending());
        let mut two = [0u8; 2];
        b.read_exact(&mut two).await.unwrap();
        assert_eq!(&two, b"12");
        assert!(a.poll_ready_send(&mut cx).is_ready());
        // A pushed chunk may overshoot by itself, never more.
        a.push(Bytes::from_static(b"abcdefgh")).unwrap();
        assert!(a.poll_ready_send(&mut cx).is_pending());
        drop(a);
        let mut rest = Vec::new();
        b.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"34abcdefgh");
    }

    #[tokio::test]
    async fn writing_to_a_dropped_end_fails_and_frees_the_queue() {
        let (a, b) = LocalStream::pair(1 << 20);
        a.push(Bytes::from(vec![7u8; 1000])).unwrap();
        drop(b);
        assert_eq!(a.out.lock().queued, 0);
        let err = a.send(Bytes::from_static(b"x")).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        let mut a = a;
        let err = a.write_all(b"x").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[tokio::test]
    async fn write_after_shutdown_fails() {
        let (mut a, _b) = LocalStream::pair(16);
        a.shutdown().await.unwrap();
        assert!(a.write_all(b"late").await.is_err());
        assert!(a.push(Bytes::from_static(b"late")).is_err());
    }

    #[tokio::test]
    async fn waiting_reader_is_woken_by_another_task() {
        let (a, mut b) = LocalStream::pair(16);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.unwrap();
            got
        });
        tokio::task::yield_now().await;
        a.send(Bytes::from_static(b"late ")).await.unwrap();
        a.send(Bytes::from_static(b"bytes")).await.unwrap();
        drop(a);
        assert_eq!(reader.await.unwrap(), b"late bytes");
    }
}
