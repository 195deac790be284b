//! The streaming-core seam: everything the registry and tunnels need from an I2P
//! implementation, object-safe so that no other module knows which backend runs.
//!
//! A backend offers sessions (one per started tunnel, holding its keys and options);
//! a session connects to destinations, accepts incoming streams with the peer's
//! destination, and resolves names. The streams it hands out relay themselves
//! ([`ByteStream::relay`]), so a backend with a faster data path than
//! `AsyncRead`/`AsyncWrite` copying keeps it behind this seam.
//!
//! # Datagrams
//! UDP tunnels need repliable and raw datagrams (SAM `STYLE=DATAGRAM`/`RAW`, or the
//! embedded router's), which do not fit [`Session`]: that seam is [`datagram`], a
//! second object-safe trait that a backend offers through
//! [`StreamingCore::datagrams`]. The registry, the service and the control code see
//! only the tunnel's kind.

pub mod datagram;
pub mod embedded;
pub mod relay;
pub mod sam;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use keytools::{Destination, PrivateKeys};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use self::relay::{RelayCounters, RelayEnd};

/// A boxed, `Send` future (object-safe async trait methods).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A bidirectional byte stream to a remote destination.
///
/// A backend implements it for the streams it hands out; [`ByteStream::relay`] is how
/// a tunnel moves bytes between an application's socket and the stream. The default
/// copies through `AsyncRead`/`AsyncWrite` ([`relay::copy`]); a backend that can do
/// better overrides it (the local backend moves chunks without copying and splices on
/// Linux), so the tunnel code never needs to know which backend runs.
pub trait ByteStream: AsyncRead + AsyncWrite + Send + Unpin + fmt::Debug + 'static {
    /// Relays between the application's `socket` and this stream until both directions
    /// have ended, one fails, or `cancel` fires; `counters` grow as bytes are delivered.
    /// Follows the half-close rules of [`relay`].
    fn relay(
        self: Box<Self>,
        socket: TcpStream,
        counters: RelayCounters,
        cancel: &CancellationToken,
    ) -> BoxFuture<'_, RelayEnd> {
        Box::pin(relay::copy(socket, self, counters, cancel))
    }
}

/// A boxed stream as the backends hand them out.
pub type BoxStream = Box<dyn ByteStream>;

/// A TCP connection as a stream (backends and tests that hand out plain sockets).
impl ByteStream for TcpStream {}

/// An in-memory pipe as a stream (tests, and backends that bridge through one).
impl ByteStream for tokio::io::DuplexStream {}

/// What an inbound application asked to reach: a full destination, or a name
/// (`xxxx.b32.i2p` or a host name such as `example.i2p`) that the backend resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A parsed base64 destination.
    Destination(Destination),
    /// A `.b32.i2p` address or a host name.
    Name(String),
}

/// An accepted incoming stream and the destination of the peer that opened it.
#[derive(Debug)]
pub struct Incoming {
    /// the stream
    pub stream: BoxStream,
    /// the peer's destination (written to the application unless the tunnel is quiet)
    pub peer: Destination,
}

/// Tunnel options handed to the backend at session creation (`option k=v`), in order.
pub type Options = Vec<(String, String)>;

/// Backend failures; `Display` is the text the BOB client sees after `ERROR `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// A name that no naming source knows.
    #[error("Address Not found.")]
    NotFound,
    /// The destination is known but cannot be reached (no such session, no LeaseSet).
    #[error("Can't reach peer: {0}")]
    Unreachable(String),
    /// The router said no (SAM `RESULT=…` with its message).
    #[error("router error: {0}")]
    Router(String),
    /// The router is not reachable or the control connection broke.
    #[error("router unavailable: {0}")]
    RouterUnavailable(String),
    /// The destination is already in use by another session.
    #[error("destination already in use")]
    DuplicateDestination,
    /// The operation took too long.
    #[error("timed out")]
    Timeout,
    /// The session has been closed.
    #[error("session closed")]
    Closed,
    /// The backend cannot do this (e.g. `ping`); the backend's name, or `""` when the
    /// caller does not know it (`not supported by this backend`).
    #[error("{}", unsupported(.0))]
    Unsupported(&'static str),
    /// An I/O error, with its text.
    #[error("{0}")]
    Io(String),
}

/// The text of [`CoreError::Unsupported`].
fn unsupported(backend: &str) -> String {
    if backend.is_empty() {
        "not supported by this backend".to_owned()
    } else {
        format!("not supported by the {backend} backend")
    }
}

/// The state of a router running in this process (`--router embedded|devnet`), as the
/// metrics endpoint and status page show it: why tunnels may not be ready yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouterReport {
    /// the router kind (`embedded`, `devnet`)
    pub kind: &'static str,
    /// routers the netDb held at start (stored, reseed files, HTTPS reseed)
    pub known_routers: u64,
    /// routers connected now
    pub connected_routers: u64,
    /// tunnels built so far (exploratory and client)
    pub tunnels_built: u64,
    /// tunnel builds that failed so far
    pub tunnel_build_failures: u64,
    /// transit tunnels carried for other routers now
    pub transit_tunnels: u64,
    /// whether the router's SAM port answered the last health check
    pub sam_healthy: bool,
}

impl RouterReport {
    /// The share of tunnel builds that succeeded, 0.0..=1.0 (`None` before the first).
    pub fn build_success(&self) -> Option<f64> {
        let total = self.tunnels_built + self.tunnel_build_failures;
        // counts stay far below 2^52, the conversion is exact
        #[allow(clippy::cast_precision_loss)]
        (total > 0).then(|| self.tunnels_built as f64 / total as f64)
    }
}

/// A streaming core: the I2P network as the server sees it.
pub trait StreamingCore: Send + Sync + fmt::Debug + 'static {
    /// Short name for logs and `--help` (`"local"`, `"sam"`).
    fn name(&self) -> &'static str;

    /// The state of the router this core runs in this process; `None` (the default) for
    /// cores without one (`local`, an external router over SAM).
    fn router_report(&self) -> Option<RouterReport> {
        None
    }

    /// Creates a session for `keys` with `options`; resolves only once the session can
    /// connect and accept (for SAM: after `SESSION CREATE` succeeded).
    fn open_session(
        &self,
        keys: PrivateKeys,
        options: Options,
    ) -> BoxFuture<'_, Result<Arc<dyn Session>, CoreError>>;

    /// As [`Self::open_session`], for a tunnel that may also open a datagram session
    /// for the same destination (a SOCKS proxy tunnel's UDP ASSOCIATE): SAM opens a
    /// PRIMARY session where the router has them. The default is `open_session`.
    fn open_session_sharing(
        &self,
        keys: PrivateKeys,
        options: Options,
    ) -> BoxFuture<'_, Result<Arc<dyn Session>, CoreError>> {
        self.open_session(keys, options)
    }

    /// Resolves a `.b32.i2p` address, a host name or a base64 destination without a session.
    fn lookup(&self, name: &str) -> BoxFuture<'_, Result<Destination, CoreError>>;

    /// The backend's datagram side, when it can carry datagrams (UDP tunnels); `None`
    /// (the default) makes starting a UDP tunnel fail with a clear error.
    fn datagrams(&self) -> Option<&dyn datagram::DatagramCore> {
        None
    }
}

/// One tunnel's presence on the network.
pub trait Session: Send + Sync + fmt::Debug {
    /// This session's public destination.
    fn destination(&self) -> &Destination;

    /// Opens a stream to `target`.
    fn connect(&self, target: Target) -> BoxFuture<'_, Result<BoxStream, CoreError>>;

    /// Waits for the next incoming stream. May be called concurrently; each call
    /// returns a different stream. Returns [`CoreError::Closed`] after [`Session::close`].
    fn accept(&self) -> BoxFuture<'_, Result<Incoming, CoreError>>;

    /// Resolves a name through this session.
    fn lookup(&self, name: &str) -> BoxFuture<'_, Result<Destination, CoreError>>;

    /// Round-trip time to `target` (i2pd `ping`); backends that cannot answer
    /// [`CoreError::Unsupported`] with their name (the default, which does not know the
    /// backend's name, says `not supported by this backend`).
    fn ping(&self, target: Target) -> BoxFuture<'_, Result<Duration, CoreError>> {
        let _ = target;
        Box::pin(async { Err(CoreError::Unsupported("")) })
    }

    /// Ends the session: pending and later `accept`s fail with [`CoreError::Closed`],
    /// the destination stops being reachable. Streams already handed out are not
    /// closed by this (the tunnel closes them).
    fn close(&self) -> BoxFuture<'_, ()>;
}

pub mod local;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_names_the_backend_or_none() {
        assert_eq!(
            CoreError::Unsupported("sam").to_string(),
            "not supported by the sam backend"
        );
        assert_eq!(
            CoreError::Unsupported("").to_string(),
            "not supported by this backend"
        );
    }
}
