//! One TCP connection to the SAM bridge: bounded line reading, `HELLO`, request/reply,
//! and the hand-over of an accepted or connected socket as a byte stream.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::proto::{MAX_LINE, SamError, SamReply, command, shorten};

/// Lowest and highest SAM version we speak (3.1: signature types; 3.3: all we use).
const HELLO: &str = "HELLO VERSION MIN=3.1 MAX=3.3";

/// A connection to the SAM bridge that has said `HELLO`.
pub(crate) struct SamConn {
    stream: TcpStream,
    buf: BytesMut,
    /// the version the bridge chose in `HELLO REPLY` (`3.1`, `3.3`)
    version: String,
}

impl fmt::Debug for SamConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SamConn")
            .field("peer", &self.stream.peer_addr().ok())
            .field("buffered", &self.buf.len())
            .finish()
    }
}

impl SamConn {
    /// Connects to `addr` and performs `HELLO VERSION`, all within `limit`.
    ///
    /// # Errors
    /// [`SamError::Unavailable`] when the router cannot be reached or closes,
    /// [`SamError::Timeout`] after `limit`, [`SamError::Refused`] on `NOVERSION`, and
    /// the parse errors of [`SamReply::parse`].
    pub(crate) async fn open(addr: &str, limit: Duration) -> Result<Self, SamError> {
        with_timeout(limit, async {
            let stream = TcpStream::connect(addr).await.map_err(|e| {
                SamError::Unavailable(format!("cannot connect to SAM bridge {addr}: {e}"))
            })?;
            let _ = stream.set_nodelay(true);
            let mut conn = Self {
                stream,
                buf: BytesMut::with_capacity(1024),
                version: String::new(),
            };
            let reply = conn.request(HELLO).await?;
            reply.expect("HELLO REPLY")?;
            reply.result()?;
            conn.version = reply.get("VERSION").unwrap_or_default().to_owned();
            Ok(conn)
        })
        .await
    }

    /// The SAM version the bridge chose (`VERSION=` of `HELLO REPLY`; empty if absent).
    pub(crate) fn version(&self) -> &str {
        &self.version
    }

    /// Our end of the connection: the address the bridge sees us at (datagram sessions
    /// have their datagrams forwarded to this IP).
    pub(crate) fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.stream.local_addr()
    }

    /// Sends one line (a `\n` is appended).
    ///
    /// # Errors
    /// [`SamError::Unavailable`] on a write failure.
    pub(crate) async fn send(&mut self, line: &str) -> Result<(), SamError> {
        let mut out = Vec::with_capacity(line.len() + 1);
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
        self.stream
            .write_all(&out)
            .await
            .map_err(|e| SamError::Unavailable(format!("writing to SAM bridge: {e}")))
    }

    /// Reads one line (terminator `\n`, optional `\r` stripped), at most [`MAX_LINE`] bytes.
    ///
    /// # Errors
    /// [`SamError::Unavailable`] on EOF or a read failure, [`SamError::LineTooLong`],
    /// [`SamError::Malformed`] for invalid UTF-8.
    pub(crate) async fn read_line(&mut self) -> Result<String, SamError> {
        let mut scanned = 0;
        loop {
            if let Some(pos) = self.buf[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + pos;
                if end > MAX_LINE {
                    return Err(SamError::LineTooLong);
                }
                self.ack_now();
                let mut line = self.buf.split_to(end + 1);
                line.truncate(end);
                if line.last() == Some(&b'\r') {
                    line.truncate(end - 1);
                }
                return String::from_utf8(line.to_vec()).map_err(|_| {
                    SamError::Malformed(format!(
                        "reply is not UTF-8: {:?}",
                        shorten(&String::from_utf8_lossy(&line))
                    ))
                });
            }
            scanned = self.buf.len();
            if scanned > MAX_LINE {
                return Err(SamError::LineTooLong);
            }
            self.buf.reserve(4096);
            let n = self
                .stream
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| SamError::Unavailable(format!("reading from SAM bridge: {e}")))?;
            if n == 0 {
                // A last line ended by the close instead of `\n` is still a reply: emissary
                // 0.4.0 sends `STREAM STATUS RESULT=CANT_REACH_PEER` that way. Without the
                // result it is a cut reply.
                let text = String::from_utf8_lossy(&self.buf).into_owned();
                if text.contains(" RESULT=") {
                    self.buf.clear();
                    return Ok(text.trim_end_matches('\r').to_owned());
                }
                return Err(SamError::Unavailable(if self.buf.is_empty() {
                    "SAM bridge closed the connection".into()
                } else {
                    "SAM bridge closed the connection in the middle of a reply".into()
                }));
            }
        }
    }

    /// Acknowledges what the bridge sent at once instead of after the kernel's delayed-ACK
    /// timer (Linux `TCP_QUICKACK`; it is not sticky, hence once per line read).
    ///
    /// Why: i2pd writes to its SAM sockets with Nagle on, so a write that follows a reply
    /// we have not acknowledged yet is held until our ACK, which Linux delays by up to
    /// 40 ms on a connection that also sends. After `STREAM ACCEPT` that is the peer's
    /// destination line of a stream arriving within 40 ms of the `RESULT=OK` (every stream
    /// but the first of a burst, since the acceptor is re-armed at once); after `STREAM
    /// CONNECT` it is the first bytes of a peer that speaks first. Measured on i2pd
    /// 2.45.1 offline, one stream after another: 43.7 ms from connect to first byte,
    /// 1.7 ms with this (`docs/benchmarks.md`). A failure only loses the speed-up. The
    /// data stream does the same after every read ([`SamStream`]).
    fn ack_now(&self) {
        quickack(&self.stream);
    }

    /// Sends `line` and parses the next reply line.
    ///
    /// # Errors
    /// As [`Self::send`], [`Self::read_line`] and [`SamReply::parse`].
    pub(crate) async fn request(&mut self, line: &str) -> Result<SamReply, SamError> {
        self.send(line).await?;
        let reply = self.read_line().await?;
        SamReply::parse(&reply)
    }

    /// Sends a command built from `words` and `pairs`, reads a reply of kind `expected`
    /// and checks its `RESULT=`.
    ///
    /// # Errors
    /// As [`Self::request`], [`SamReply::expect`] and [`SamReply::result`].
    pub(crate) async fn call<'a>(
        &mut self,
        words: &str,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        expected: &'static str,
    ) -> Result<SamReply, SamError> {
        let line = command(words, pairs)?;
        let reply = self.request(&line).await?;
        reply.expect(expected)?;
        reply.result()?;
        Ok(reply)
    }

    /// Turns the connection into the data stream it has become (after `STREAM CONNECT`
    /// or an accepted `STREAM ACCEPT`); bytes already buffered are read first. With
    /// `forward_half_close` false, a write shutdown is not passed to the bridge (see
    /// [`super::SamConfig::forward_half_close`]).
    pub(crate) fn into_stream(self, forward_half_close: bool) -> SamStream {
        SamStream {
            prefix: self.buf.freeze(),
            inner: self.stream,
            forward_half_close,
            write_closed: false,
        }
    }
}

/// Asks the kernel to acknowledge what `stream` has received at once (Linux
/// `TCP_QUICKACK`, not sticky); see [`SamConn::ack_now`] for why.
///
/// On the data stream it matters for messages that span several streaming packets:
/// i2pd writes each packet's payload as it comes, Nagle holds the second write until the
/// first is acknowledged, and once the connection has carried a reply our ACK waits up to
/// 40 ms. A 20,000-byte request echoed through a tunnel pair on the offline i2pd 2.45.1:
/// 42.8 ms round trip without this, 1.3 ms with it (i2pd's own BOB: 1.2 to 42.5 ms). One
/// `setsockopt` per read; throughput did not move (`docs/benchmarks.md`).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn quickack(stream: &TcpStream) {
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_quickack(true) {
        tracing::trace!(error = %e, "TCP_QUICKACK on the SAM connection");
    }
}

/// Elsewhere there is no such option: ACKs follow the system's own policy.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn quickack(_stream: &TcpStream) {}

/// Runs `fut` for at most `limit`.
///
/// # Errors
/// [`SamError::Timeout`] when the limit passes, else `fut`'s own error.
pub(crate) async fn with_timeout<T>(
    limit: Duration,
    fut: impl Future<Output = Result<T, SamError>>,
) -> Result<T, SamError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(SamError::Timeout(limit)),
    }
}

fn write_after_shutdown() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "write after shutdown")
}

/// A SAM data socket: bytes the control parser had already read come first; what is
/// read is acknowledged at once ([`quickack`]).
pub(crate) struct SamStream {
    prefix: Bytes,
    inner: TcpStream,
    /// pass `shutdown` (half-close) on to the bridge
    forward_half_close: bool,
    /// `shutdown` was called but held back: further writes fail
    write_closed: bool,
}

/// Relayed by the default copy: a SAM stream is a plain TCP connection to the router.
impl crate::backend::ByteStream for SamStream {}

impl fmt::Debug for SamStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SamStream")
            .field("bridge", &self.inner.peer_addr().ok())
            .field("buffered", &self.prefix.len())
            .finish()
    }
}

impl AsyncRead for SamStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            quickack(&self.inner);
        }
        polled
    }
}

impl AsyncWrite for SamStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.write_closed {
            return Poll::Ready(Err(write_after_shutdown()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.forward_half_close {
            return Pin::new(&mut self.inner).poll_shutdown(cx);
        }
        // held back: the socket closes when the stream is dropped
        self.write_closed = true;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.write_closed {
            return Poll::Ready(Err(write_after_shutdown()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
