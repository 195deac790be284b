//! The streaming-core seam: everything the registry and tunnels need from an I2P
//! implementation, object-safe so that no other module knows which backend runs.
//!
//! A backend offers sessions (one per started tunnel, holding its keys and options);
//! a session connects to destinations, accepts incoming streams with the peer's
//! destination, and resolves names.

pub mod embedded;
pub mod sam;

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use keytools::{Destination, PrivateKeys};
use tokio::io::{AsyncRead, AsyncWrite};

/// A boxed, `Send` future (object-safe async trait methods).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A bidirectional byte stream to a remote destination.
///
/// `Any` lets the relay recognise streams it can move without copying
/// ([`local::LocalStream`]); every other stream is relayed through `AsyncRead` and
/// `AsyncWrite`.
pub trait ByteStream: AsyncRead + AsyncWrite + Send + Unpin + fmt::Debug + Any {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + fmt::Debug + Any> ByteStream for T {}

/// A boxed stream as the backends hand them out.
pub type BoxStream = Box<dyn ByteStream>;

impl dyn ByteStream {
    /// The stream as a [`local::LocalStream`] if it is one, else unchanged.
    ///
    /// # Errors
    /// The stream itself when it is of another type.
    pub fn into_local(self: Box<Self>) -> Result<local::LocalStream, BoxStream> {
        if !(&*self as &dyn Any).is::<local::LocalStream>() {
            return Err(self);
        }
        let any: Box<dyn Any> = self;
        match any.downcast::<local::LocalStream>() {
            Ok(local) => Ok(*local),
            Err(_) => unreachable!("the type was checked just above"),
        }
    }
}

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
    /// The backend cannot do this (e.g. `ping`).
    #[error("not supported by the {0} backend")]
    Unsupported(&'static str),
    /// An I/O error, with its text.
    #[error("{0}")]
    Io(String),
}

/// A streaming core: the I2P network as the server sees it.
pub trait StreamingCore: Send + Sync + fmt::Debug + 'static {
    /// Short name for logs and `--help` (`"local"`, `"sam"`).
    fn name(&self) -> &'static str;

    /// Creates a session for `keys` with `options`; resolves only once the session can
    /// connect and accept (for SAM: after `SESSION CREATE` succeeded).
    fn open_session(
        &self,
        keys: PrivateKeys,
        options: Options,
    ) -> BoxFuture<'_, Result<Arc<dyn Session>, CoreError>>;

    /// Resolves a `.b32.i2p` address, a host name or a base64 destination without a session.
    fn lookup(&self, name: &str) -> BoxFuture<'_, Result<Destination, CoreError>>;
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
    /// [`CoreError::Unsupported`].
    fn ping(&self, target: Target) -> BoxFuture<'_, Result<Duration, CoreError>> {
        let _ = target;
        Box::pin(async { Err(CoreError::Unsupported("this")) })
    }

    /// Ends the session: pending and later `accept`s fail with [`CoreError::Closed`],
    /// the destination stops being reachable. Streams already handed out are not
    /// closed by this (the tunnel closes them).
    fn close(&self) -> BoxFuture<'_, ()>;
}

pub mod local;
