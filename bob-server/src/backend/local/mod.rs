//! `local`: an in-process network, the default, zero-setup backend.
//!
//! **This backend reaches no I2P network.** Every session lives inside this server
//! process: a started tunnel registers its destination here, and other tunnels of the
//! *same* server can reach it by its base64 destination, its `.b32.i2p` address
//! (any case) or a host name from the optional hosts file. Nothing outside the process
//! can reach these destinations, and nothing outside can be reached from them. It exists
//! so that the whole server (control protocol, tunnels, data path) runs and can be tested
//! end to end without a router, the way a loopback transport does for other protocols.
//!
//! # Design
//! - A [`LocalCore`] is a cheap handle (`Arc`) on one shared network: a map from
//!   destination hash to the registered session's inbox, plus the host names.
//! - A stream is a [`LocalStream`] pair: each direction a queue of owned `Bytes`
//!   chunks bounded to [`STREAM_BUFFER`] bytes (plus the chunk being queued), so a slow
//!   reader holds back the writer. The tunnel relay reads a TCP socket straight into a
//!   chunk and the other tunnel writes that same chunk to its socket: no copy in
//!   between. Shutting down one end's write side is seen by the other end as end of
//!   stream, after the bytes already written.
//! - `connect` puts the acceptor's half into the target session's bounded inbox
//!   ([`ACCEPT_BACKLOG`] entries), tagged with the connecting session's destination;
//!   `accept` takes it out. The inbox receiver sits behind a `tokio` mutex so several
//!   `accept` calls may wait at once; each one gets a different stream.
//! - A registration is identified by a serial number, so closing (or dropping) a stale
//!   session never unregisters a newer one that reused the destination.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use keytools::{Destination, PrivateKeys};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::relay::{RelayCounters, RelayEnd};
use super::{
    BoxFuture, BoxStream, ByteStream, CoreError, Incoming, Options, Session, StreamingCore, Target,
};

mod datagram;
mod relay;
#[cfg(target_os = "linux")]
mod splice;
mod stream;

pub use datagram::{DATAGRAM_BACKLOG, DatagramFaults, LOCAL_MAX_DATAGRAM};
pub use relay::PIPE_BUFFER;
pub use stream::LocalStream;
#[cfg(target_os = "linux")]
use stream::Pipe;
use stream::Received;

/// Bytes queued in each direction of a local stream before the writer waits.
pub const STREAM_BUFFER: usize = 256 * 1024;

/// Streams a session's inbox holds before `connect` waits for an `accept`.
pub const ACCEPT_BACKLOG: usize = 128;

/// Longest hosts-file line accepted (a destination with a large certificate is well
/// under 1 KiB of base64; the address-book `#!` metadata adds a few hundred bytes).
pub const MAX_HOSTS_LINE: usize = 8192;

/// Why a hosts file could not be used; `Display` is the text the operator sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostsFileError {
    /// The file could not be read.
    #[error("cannot read hosts file {path}: {reason}")]
    Io {
        /// the path as given
        path: String,
        /// the I/O error text
        reason: String,
    },
    /// A line is not `name=base64destination`.
    #[error("hosts file line {line}: {reason}")]
    Line {
        /// 1-based line number
        line: usize,
        /// what is wrong with it
        reason: String,
    },
}

/// Parses I2P `hosts.txt` text: one `name=base64destination` per line; blank lines and
/// lines starting with `#` are skipped; address-book metadata after the destination
/// (`#!key=value#…`) is ignored. Names are case-insensitive and stored lower-case; they
/// must end with `.i2p`. When a name appears twice, the first entry wins (as in the I2P
/// address book).
///
/// # Errors
/// [`HostsFileError::Line`] naming the first bad line (1-based) and what is wrong.
pub fn parse_hosts(text: &str) -> Result<HashMap<String, Destination>, HostsFileError> {
    let mut hosts = HashMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let bad = |reason: String| HostsFileError::Line {
            line: line_no,
            reason,
        };
        if raw.len() > MAX_HOSTS_LINE {
            return Err(bad(format!("line longer than {MAX_HOSTS_LINE} bytes")));
        }
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, rest)) = line.split_once('=') else {
            return Err(bad("expected name=destination".to_owned()));
        };
        let name = name.trim().to_ascii_lowercase();
        // I2P base64 has no '#', so anything from the first '#' on is metadata.
        let b64 = rest.split('#').next().unwrap_or_default().trim();
        if name.is_empty() {
            return Err(bad("empty host name".to_owned()));
        }
        if !name.ends_with(".i2p") || name.len() == ".i2p".len() {
            return Err(bad(format!("host name {name:?} does not end with .i2p")));
        }
        if name.ends_with(".b32.i2p") {
            return Err(bad(format!(
                "host name {name:?} is a .b32.i2p address, not a name"
            )));
        }
        if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad(format!("host name {name:?} contains whitespace")));
        }
        if b64.is_empty() {
            return Err(bad(format!("no destination for {name}")));
        }
        let destination = Destination::from_base64(b64)
            .map_err(|e| bad(format!("bad destination for {name}: {e}")))?;
        hosts.entry(name).or_insert(destination);
    }
    Ok(hosts)
}

/// The in-process network backend (see the module docs: it reaches no I2P network).
///
/// Cloning gives another handle on the same network.
#[derive(Clone, Default)]
pub struct LocalCore {
    network: Arc<Network>,
}

impl fmt::Debug for LocalCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalCore")
            .field("sessions", &self.network.lock().len())
            .field("hosts", &self.network.hosts.len())
            .finish()
    }
}

impl LocalCore {
    /// An empty network with no host names.
    pub fn new() -> Self {
        Self::default()
    }

    /// A network whose name lookups know `hosts` (`name -> destination`; names are
    /// matched without regard to case). A name resolves whether or not its
    /// destination is running; connecting needs it to be running.
    pub fn with_hosts(hosts: HashMap<String, Destination>) -> Self {
        let hosts = hosts
            .into_iter()
            .map(|(name, dest)| (name.to_ascii_lowercase(), dest))
            .collect();
        Self {
            network: Arc::new(Network {
                sessions: Mutex::default(),
                hosts,
                next_id: AtomicU64::new(0),
                datagrams: datagram::DatagramNet::default(),
            }),
        }
    }

    /// A network with the host names of an I2P `hosts.txt` file (see [`parse_hosts`]).
    ///
    /// # Errors
    /// [`HostsFileError::Io`] if the file cannot be read, [`HostsFileError::Line`] for
    /// the first malformed line.
    pub fn load_hosts_file(path: impl AsRef<Path>) -> Result<Self, HostsFileError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| HostsFileError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self::with_hosts(parse_hosts(&text)?))
    }

    /// How many sessions are currently registered (open).
    pub fn session_count(&self) -> usize {
        self.network.lock().len()
    }
}

impl StreamingCore for LocalCore {
    fn name(&self) -> &'static str {
        "local"
    }

    fn open_session(
        &self,
        keys: PrivateKeys,
        options: Options,
    ) -> BoxFuture<'_, Result<Arc<dyn Session>, CoreError>> {
        // Options tune tunnels and LeaseSets on a router; nothing here uses them.
        let _ = options;
        Box::pin(async move {
            let destination = keys.destination().clone();
            let hash = destination.hash();
            let (tx, rx) = mpsc::channel(ACCEPT_BACKLOG);
            let id = self.network.next_id.fetch_add(1, Ordering::Relaxed);
            register(&mut self.network.lock(), hash, id, &destination, tx)?;
            tracing::debug!(b32 = %destination.b32(), "local session registered");
            let session: Arc<dyn Session> = Arc::new(LocalSession {
                destination,
                hash,
                id,
                network: Arc::clone(&self.network),
                inbox: tokio::sync::Mutex::new(rx),
                closed: CancellationToken::new(),
            });
            Ok(session)
        })
    }

    fn lookup(&self, name: &str) -> BoxFuture<'_, Result<Destination, CoreError>> {
        let result = self.network.lookup(name);
        Box::pin(async move { result })
    }

    fn datagrams(&self) -> Option<&dyn super::datagram::DatagramCore> {
        Some(self)
    }
}

/// The shared state of one local network.
#[derive(Default)]
struct Network {
    /// open sessions by destination hash; a std mutex because no `.await` runs under it
    sessions: Mutex<HashMap<[u8; 32], Registered>>,
    /// host names (lower-case) -> destination; fixed at construction
    hosts: HashMap<String, Destination>,
    /// serial numbers for registrations
    next_id: AtomicU64,
    /// datagram sessions (see `datagram`)
    datagrams: datagram::DatagramNet,
}

/// One open session as the network sees it.
struct Registered<T = Incoming> {
    /// which registration this is (see the module docs)
    id: u64,
    /// the session's destination, for b32 lookups and `Incoming::peer`
    destination: Destination,
    /// lower-case `.b32.i2p` address, for name lookups
    b32: String,
    /// where `connect` delivers new streams (or `send_to` datagrams)
    inbox: mpsc::Sender<T>,
}

/// Registers `destination` in `sessions` (the stream or the datagram table) under
/// `hash`, refusing a destination that is already there.
fn register<T>(
    sessions: &mut HashMap<[u8; 32], Registered<T>>,
    hash: [u8; 32],
    id: u64,
    destination: &Destination,
    inbox: mpsc::Sender<T>,
) -> Result<(), CoreError> {
    if sessions.contains_key(&hash) {
        return Err(CoreError::DuplicateDestination);
    }
    sessions.insert(
        hash,
        Registered {
            id,
            destination: destination.clone(),
            b32: destination.b32(),
            inbox,
        },
    );
    Ok(())
}

/// Logs that the `local` core reaches only this server's tunnels, when a name or a
/// destination is not among them: the reply to the client keeps Java BOB's text (`ERROR
/// Can't find destination: …`, `ERROR Address Not found.`), so the hint goes to the log.
/// A warning the first time, then debug lines (a client retrying must not flood the log).
fn log_local_only(name: &str) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if WARNED.swap(true, Ordering::Relaxed) {
        tracing::debug!(name, "not a tunnel of this server (local backend)");
    } else {
        tracing::warn!(
            name,
            "not a tunnel of this server: the `local` backend reaches only this server's \
             tunnels (and --hosts names), no I2P network; run bob-server with \
             --router sam://HOST:PORT to reach I2P (logged once)"
        );
    }
}

impl Network {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Registered>> {
        // The map stays consistent even if a holder panicked: every update is one
        // insert or remove.
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Resolves a `.b32.i2p` address of an open session, a host name, or a base64
    /// destination; logs why a name is not found (see [`log_local_only`]).
    fn lookup(&self, name: &str) -> Result<Destination, CoreError> {
        let found = self.find(name);
        if found.is_err() {
            log_local_only(name.trim());
        }
        found
    }

    fn find(&self, name: &str) -> Result<Destination, CoreError> {
        let name = name.trim();
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".b32.i2p") {
            // A b32 address is a hash: only a running session can turn it back into
            // a destination (a router would fetch its LeaseSet).
            let stream = self
                .lock()
                .values()
                .find(|r| r.b32 == lower)
                .map(|r| r.destination.clone());
            return stream
                .or_else(|| self.datagrams.find_b32(&lower))
                .ok_or(CoreError::NotFound);
        }
        if lower.ends_with(".i2p") {
            return self.hosts.get(&lower).cloned().ok_or(CoreError::NotFound);
        }
        Destination::from_base64(name).map_err(|_| CoreError::NotFound)
    }

    /// The inbox of the session registered for `destination`.
    fn inbox_of(&self, destination: &Destination) -> Result<mpsc::Sender<Incoming>, CoreError> {
        let inbox = self
            .lock()
            .get(&destination.hash())
            .map(|r| r.inbox.clone());
        inbox.ok_or_else(|| {
            log_local_only(&destination.b32());
            unreachable(destination)
        })
    }

    /// Removes registration `id` of `hash`, if it is still the current one.
    fn unregister(&self, hash: &[u8; 32], id: u64) -> bool {
        let mut sessions = self.lock();
        if sessions.get(hash).is_some_and(|r| r.id == id) {
            sessions.remove(hash);
            true
        } else {
            false
        }
    }
}

fn unreachable(destination: &Destination) -> CoreError {
    CoreError::Unreachable(format!("{} is not running", destination.b32()))
}

/// A session on the local network.
struct LocalSession {
    /// this session's destination
    destination: Destination,
    /// its hash, the network's key
    hash: [u8; 32],
    /// which registration this session owns
    id: u64,
    /// the network it is registered in
    network: Arc<Network>,
    /// incoming streams; a tokio mutex so concurrent `accept`s queue up (held across
    /// `.await` on purpose)
    inbox: tokio::sync::Mutex<mpsc::Receiver<Incoming>>,
    /// cancelled by `close`: wakes every waiting `accept`
    closed: CancellationToken,
}

impl fmt::Debug for LocalSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalSession")
            .field("b32", &self.destination.b32())
            .field("closed", &self.closed.is_cancelled())
            .finish()
    }
}

impl LocalSession {
    /// Resolves what an application asked for to a destination.
    fn resolve(&self, target: Target) -> Result<Destination, CoreError> {
        match target {
            Target::Destination(dest) => Ok(dest),
            Target::Name(name) => self.network.lookup(&name),
        }
    }
}

impl Session for LocalSession {
    fn destination(&self) -> &Destination {
        &self.destination
    }

    fn connect(&self, target: Target) -> BoxFuture<'_, Result<BoxStream, CoreError>> {
        Box::pin(async move {
            if self.closed.is_cancelled() {
                return Err(CoreError::Closed);
            }
            let remote = self.resolve(target)?;
            let inbox = self.network.inbox_of(&remote)?;
            let (ours, theirs) = LocalStream::pair(STREAM_BUFFER);
            let incoming = Incoming {
                stream: Box::new(theirs),
                peer: self.destination.clone(),
            };
            // Waits while the acceptor's backlog is full (the caller bounds the wait);
            // fails if the acceptor closed in the meantime.
            tokio::select! {
                sent = inbox.send(incoming) => sent.map_err(|_| unreachable(&remote))?,
                () = self.closed.cancelled() => return Err(CoreError::Closed),
            }
            Ok(Box::new(ours) as BoxStream)
        })
    }

    fn accept(&self) -> BoxFuture<'_, Result<Incoming, CoreError>> {
        Box::pin(async move {
            let mut inbox = tokio::select! {
                guard = self.inbox.lock() => guard,
                () = self.closed.cancelled() => return Err(CoreError::Closed),
            };
            tokio::select! {
                // `biased`: once closed, never hand out a stream that raced with close.
                biased;
                () = self.closed.cancelled() => Err(CoreError::Closed),
                next = inbox.recv() => next.ok_or(CoreError::Closed),
            }
        })
    }

    fn lookup(&self, name: &str) -> BoxFuture<'_, Result<Destination, CoreError>> {
        let result = self.network.lookup(name);
        Box::pin(async move { result })
    }

    fn ping(&self, target: Target) -> BoxFuture<'_, Result<Duration, CoreError>> {
        Box::pin(async move {
            let started = Instant::now();
            let remote = self.resolve(target)?;
            self.network.inbox_of(&remote)?;
            Ok(started.elapsed())
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.closed.cancel();
            if self.network.unregister(&self.hash, self.id) {
                tracing::debug!(b32 = %self.destination.b32(), "local session closed");
            }
            // Refuse streams that were queued but never accepted: their connectors see
            // end of stream instead of waiting forever. Waiting `accept`s have seen the
            // cancellation and released the lock.
            let mut inbox = self.inbox.lock().await;
            inbox.close();
            while inbox.try_recv().is_ok() {}
        })
    }
}

impl Drop for LocalSession {
    fn drop(&mut self) {
        // A session dropped without `close` must not keep its destination taken.
        self.network.unregister(&self.hash, self.id);
    }
}

/// The zero-copy relay (see `relay`): chunks and spliced pipes instead of copies.
impl ByteStream for LocalStream {
    fn relay(
        self: Box<Self>,
        socket: tokio::net::TcpStream,
        counters: RelayCounters,
        cancel: &CancellationToken,
    ) -> BoxFuture<'_, RelayEnd> {
        Box::pin(async move { relay::relay_local(socket, *self, &counters, cancel).await })
    }
}

#[cfg(test)]
mod tests;
