//! UDP tunnels: the data path of [`crate::tunnel::TunnelKind::Udp`] (docs/udp.md).
//!
//! A started UDP tunnel holds one datagram session ([`crate::backend::datagram`]) and
//! up to two local sides, reusing the stream tunnel's fields:
//! - **inport side** (`inhost:inport`, local applications → I2P): one UDP socket bound
//!   at `start`. Each local source port is a *conversation*: its datagrams leave with
//!   that port as I2CP from-port, and datagrams coming back to that port (to-port) are
//!   sent to it. With `bob.udp.dest` every datagram goes to that destination as is
//!   (transparent mode); without it each datagram starts with a header line naming
//!   its destination ([`header`]), and replies come back with the sender's
//!   destination on such a line (raw ones without).
//! - **outport side** (I2P → `outhost:outport`): with `quiet false` one socket hands
//!   every datagram over as `<peer b64>\n` + payload (raw: payload only), and the
//!   application answers with the same header; with `quiet true` (transparent) there is
//!   one local socket per (peer, from-port), so an unmodified UDP server answers with a
//!   plain `sendto`, and raw datagrams of an unknown pair are handed over one-way from a
//!   shared socket.
//!
//! A datagram from I2P goes to the inport side when its to-port is a live
//! conversation, else to the outport side, else it is dropped (`unknown_peer`).
//! Every send into I2P goes through one queue ([`SEND_QUEUE`] datagrams) paced to
//! `bob.udp.rate` ([`pacer`]). Payloads over `bob.udp.maxsize` (capped by the backend)
//! are dropped and counted, never truncated; so are malformed headers, unresolvable
//! names and datagrams from unknown peers. Conversations and peers expire after
//! `bob.udp.idle` without traffic and are bounded by [`MAX_PEERS`] per side.

pub mod header;
pub mod options;
pub mod pacer;

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use keytools::Destination;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use self::header::HeaderTarget;
use self::options::{HYBRID_REPLIABLE_EVERY, SendStyle, UdpOptions};
use self::pacer::Pacer;
use super::{
    ActiveTunnel, Endpoint, STOP_GRACE, StartControl, StartError, TunnelLimits, TunnelSpec,
    TunnelStats,
};
use crate::backend::datagram::{DatagramError, DatagramSession, DatagramStyle};
use crate::backend::{BoxFuture, BoxStream, CoreError, Incoming, Session, StreamingCore, Target};

/// Datagrams waiting for the pacer before further ones are dropped (`queue_full`).
pub const SEND_QUEUE: usize = 1024;

/// Most conversations (inport side) and most peers (outport side) of one tunnel;
/// a datagram that would need one more is dropped (`peers_full`).
pub const MAX_PEERS: usize = 16_384;

/// Names resolved and remembered per tunnel (header mode, `bob.udp.dest`).
pub const MAX_NAMES: usize = 1024;

/// How long a resolved name is remembered.
pub const NAME_TTL: Duration = Duration::from_secs(600);

/// Names being resolved at once per tunnel, and datagrams held per name meanwhile;
/// more are dropped (`unresolved`).
pub const MAX_PENDING_NAMES: usize = 64;
/// See [`MAX_PENDING_NAMES`].
pub const MAX_PENDING_PER_NAME: usize = 64;

/// How long one name lookup may take.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest datagram a local UDP socket receives.
const RECV_BUFFER: usize = 65_536;

/// Receive buffer asked for on the inport socket and the `quiet false` outport socket,
/// where every conversation's datagrams queue up (the kernel caps it at
/// `net.core.rmem_max`): with the default ~208 KiB a burst of a few hundred 1 KiB
/// datagrams from local applications overflows before the tunnel reads them.
pub const SOCKET_BUFFER: usize = 4 << 20;

/// The largest UDP payload (IPv4).
const UDP_MAX: usize = 65_507;

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// payload over `bob.udp.maxsize` (or the backend's cap)
    Oversize,
    /// header line missing or invalid
    Malformed,
    /// name or `bob.udp.dest` that did not resolve
    Unresolved,
    /// from I2P, but nobody here talks to that peer or port
    UnknownPeer,
    /// a new conversation or peer beyond [`MAX_PEERS`]
    PeersFull,
    /// the paced send queue was full
    QueueFull,
    /// the backend or a local socket failed to send it
    SendFailed,
}

/// The datagram counters of a UDP tunnel (part of [`TunnelStats`]).
#[derive(Debug, Default)]
pub struct UdpCounters {
    received: AtomicU64,
    sent: AtomicU64,
    dropped: [AtomicU64; 7],
    peers: AtomicU64,
}

/// A copy of [`UdpCounters`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UdpSnapshot {
    /// datagrams received from I2P
    pub received: u64,
    /// datagrams sent into I2P
    pub sent: u64,
    /// dropped: payload too big
    pub dropped_oversize: u64,
    /// dropped: bad header line
    pub dropped_malformed: u64,
    /// dropped: name did not resolve
    pub dropped_unresolved: u64,
    /// dropped: from an unknown peer or to an unknown port
    pub dropped_unknown_peer: u64,
    /// dropped: too many peers
    pub dropped_peers_full: u64,
    /// dropped: send queue full
    pub dropped_queue_full: u64,
    /// dropped: a send failed
    pub dropped_send_failed: u64,
    /// live conversations and peers
    pub peers: u64,
}

impl UdpSnapshot {
    /// Every drop, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_oversize
            + self.dropped_malformed
            + self.dropped_unresolved
            + self.dropped_unknown_peer
            + self.dropped_peers_full
            + self.dropped_queue_full
            + self.dropped_send_failed
    }

    /// The counters as `key=value` pairs, as `stats` and the metrics endpoint add them.
    pub fn pairs(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("udp_received", self.received),
            ("udp_sent", self.sent),
            ("udp_dropped", self.dropped()),
            ("udp_dropped_oversize", self.dropped_oversize),
            ("udp_dropped_malformed", self.dropped_malformed),
            ("udp_dropped_unresolved", self.dropped_unresolved),
            ("udp_dropped_unknown_peer", self.dropped_unknown_peer),
            ("udp_dropped_peers_full", self.dropped_peers_full),
            ("udp_dropped_queue_full", self.dropped_queue_full),
            ("udp_dropped_send_failed", self.dropped_send_failed),
            ("udp_peers", self.peers),
        ]
    }
}

impl UdpCounters {
    /// Reads the counters.
    pub fn snapshot(&self) -> UdpSnapshot {
        let d = |r: DropReason| self.dropped[r as usize].load(Ordering::Relaxed);
        UdpSnapshot {
            received: self.received.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            dropped_oversize: d(DropReason::Oversize),
            dropped_malformed: d(DropReason::Malformed),
            dropped_unresolved: d(DropReason::Unresolved),
            dropped_unknown_peer: d(DropReason::UnknownPeer),
            dropped_peers_full: d(DropReason::PeersFull),
            dropped_queue_full: d(DropReason::QueueFull),
            dropped_send_failed: d(DropReason::SendFailed),
            peers: self.peers.load(Ordering::Relaxed),
        }
    }

    fn drop_one(&self, reason: DropReason) {
        self.dropped[reason as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// A started UDP tunnel (see the module docs).
#[derive(Debug)]
pub struct UdpTunnel {
    nickname: String,
    shared: Arc<Shared>,
    streams: Arc<dyn Session>,
    inbound_addr: Option<SocketAddr>,
}

/// One datagram on its way into I2P.
#[derive(Debug)]
struct Outgoing {
    to: Destination,
    style: DatagramStyle,
    from_port: u16,
    to_port: u16,
    payload: Bytes,
}

/// A peer's destination hash, our I2CP port and theirs.
type PortPair = ([u8; 32], u16, u16);

/// What every task of one UDP tunnel shares.
struct Shared {
    session: Arc<dyn DatagramSession>,
    style: SendStyle,
    maxsize: usize,
    idle: Duration,
    stats: Arc<TunnelStats>,
    queue: mpsc::Sender<Outgoing>,
    inport: Option<Inport>,
    outport: Option<Outport>,
    names: Mutex<Names>,
    /// hybrid style: when each (peer, from-port, to-port) last got a repliable datagram
    hybrid: Mutex<HashMap<PortPair, Instant>>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpShared")
            .field("session", &self.session)
            .field("style", &self.style)
            .field("maxsize", &self.maxsize)
            .finish_non_exhaustive()
    }
}

/// The inport side.
struct Inport {
    socket: Arc<UdpSocket>,
    /// `bob.udp.dest` (transparent mode) or `None` (header mode)
    fixed: Option<String>,
    /// `bob.udp.dest` parsed once when it is a base64 destination
    fixed_b64: Option<Destination>,
    /// conversations by local source port
    convos: Mutex<HashMap<u16, Convo>>,
}

struct Convo {
    addr: SocketAddr,
    seen: Instant,
}

/// The outport side.
struct Outport {
    target: SocketAddr,
    /// `quiet false`: the one socket that speaks the header to the application
    header_socket: Option<Arc<UdpSocket>>,
    peers: Mutex<Peers>,
}

#[derive(Default)]
struct Peers {
    /// by (peer hash, peer's from-port); `quiet false` keeps one per peer (port 0)
    map: HashMap<([u8; 32], u16), Peer>,
    /// `quiet true`: (peer's from-port, our to-port) -> peer, so raw datagrams of a
    /// known pair find their socket
    by_ports: HashMap<(u16, u16), ([u8; 32], u16)>,
    /// `quiet true`: where raw datagrams of unknown pairs come from (one-way)
    anonymous: Option<Arc<UdpSocket>>,
}

struct Peer {
    /// the peer's I2CP port (our replies' to-port)
    their_port: u16,
    /// our I2CP port it sent to (our replies' from-port)
    our_port: u16,
    seen: Instant,
    /// `quiet true`: this peer's own local socket; its reader stops when dropped
    socket: Option<(Arc<UdpSocket>, DropGuard)>,
}

#[derive(Default)]
struct Names {
    cache: HashMap<String, (Destination, Instant)>,
    pending: HashMap<String, Vec<Pending>>,
}

struct Pending {
    from_port: u16,
    to_port: u16,
    payload: Bytes,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl UdpTunnel {
    /// Starts a UDP tunnel: binds the inport (when set) and the outport side's socket
    /// synchronously, reports that through `control`, opens the datagram session, then
    /// starts its tasks.
    ///
    /// # Errors
    /// - [`StartError::Core`] when the backend carries no datagrams, a `bob.udp.*`
    ///   option is invalid, or the backend refused the session;
    /// - [`StartError::UnknownHost`] / [`StartError::Bind`] for `inhost`/`outhost`;
    /// - [`StartError::Timeout`] / [`StartError::Stopped`] as for stream tunnels.
    pub async fn start(
        core: Arc<dyn StreamingCore>,
        spec: TunnelSpec,
        limits: TunnelLimits,
        mut control: StartControl,
    ) -> Result<Self, StartError> {
        let span = tracing::info_span!("tunnel", nick = %spec.nickname);
        async move {
            let opts = UdpOptions::from_options(&spec.server_options)
                .map_err(|e| StartError::Core(CoreError::Io(e)))?;
            let Some(datagrams) = core.datagrams() else {
                return Err(StartError::Core(CoreError::Io(format!(
                    "the {} backend carries no datagrams (UDP tunnels)",
                    core.name()
                ))));
            };
            let inport = match &spec.inbound {
                Some(endpoint) => Some(bind_inport(endpoint).await?),
                None => None,
            };
            let inbound_addr = match &inport {
                Some(s) => Some(
                    s.local_addr()
                        .map_err(|e| StartError::Bind(e.to_string()))?,
                ),
                None => None,
            };
            let outport = match &spec.outbound {
                Some(endpoint) => Some(outport_target(endpoint).await?),
                None => None,
            };
            let header_socket = match outport {
                Some(target) if !spec.quiet => {
                    let socket =
                        bind_towards(target).map_err(|e| StartError::Bind(e.to_string()))?;
                    grow_buffer(&socket);
                    Some(Arc::new(socket))
                }
                _ => None,
            };
            control.bound();
            let style = match opts.style {
                SendStyle::Raw => DatagramStyle::Raw,
                SendStyle::Repliable | SendStyle::Hybrid => DatagramStyle::Repliable,
            };
            let open = tokio::time::timeout(
                limits.session_timeout,
                datagrams.open_datagram_session(spec.keys.clone(), spec.options.clone(), style),
            );
            let session = tokio::select! {
                biased;
                () = control.cancelled().cancelled() => return Err(StartError::Stopped),
                r = open => r.map_err(|_| StartError::Timeout)??,
            };
            let maxsize = opts.maxsize.min(session.max_payload());
            if maxsize < opts.maxsize {
                tracing::warn!(
                    asked = opts.maxsize,
                    cap = maxsize,
                    "bob.udp.maxsize is above what the backend carries; using its cap"
                );
            }
            let stats = Arc::new(TunnelStats::default());
            stats.mark_datagram();
            let (queue, queued) = mpsc::channel(SEND_QUEUE);
            let shared = Arc::new(Shared {
                session: session.clone(),
                style: opts.style,
                maxsize,
                idle: opts.idle,
                stats,
                queue,
                inport: inport.map(|socket| Inport {
                    socket: Arc::new(socket),
                    fixed_b64: opts
                        .dest
                        .as_deref()
                        .and_then(|d| Destination::from_base64(d.trim()).ok()),
                    fixed: opts.dest.clone(),
                    convos: Mutex::default(),
                }),
                outport: outport.map(|target| Outport {
                    target,
                    header_socket,
                    peers: Mutex::default(),
                }),
                names: Mutex::default(),
                hybrid: Mutex::default(),
                cancel: CancellationToken::new(),
                tracker: TaskTracker::new(),
            });
            let tracker = &shared.tracker;
            tracker
                .spawn(send_loop(shared.clone(), queued, Pacer::new(opts.rate)).in_current_span());
            tracker.spawn(recv_loop(shared.clone()).in_current_span());
            tracker.spawn(sweep_loop(shared.clone()).in_current_span());
            if shared.inport.is_some() {
                tracker.spawn(inport_loop(shared.clone()).in_current_span());
            }
            if let Some(socket) = shared
                .outport
                .as_ref()
                .and_then(|o| o.header_socket.clone())
            {
                tracker.spawn(header_reply_loop(shared.clone(), socket).in_current_span());
            }
            tracing::info!(
                kind = "udp",
                b32 = %session.destination().b32(),
                inbound = ?inbound_addr,
                outbound = ?spec.outbound,
                quiet = spec.quiet,
                dest = ?opts.dest,
                maxsize,
                rate = opts.rate,
                "tunnel started"
            );
            Ok(Self {
                nickname: spec.nickname,
                streams: Arc::new(DatagramOnly(session)),
                shared,
                inbound_addr,
            })
        }
        .instrument(span)
        .await
    }

    /// Stops the tunnel: closes its sockets and session, forgets its peers, and waits
    /// (at most [`STOP_GRACE`]) for its tasks.
    pub async fn stop(self) {
        let span = tracing::info_span!("tunnel", nick = %self.nickname);
        let shared = self.shared.clone();
        async {
            shared.cancel.cancel();
            shared.tracker.close();
            shared.session.close().await;
            if tokio::time::timeout(STOP_GRACE, shared.tracker.wait())
                .await
                .is_err()
            {
                tracing::warn!("UDP tunnel tasks still running after stop grace period");
            }
            if let Some(inport) = &shared.inport {
                lock(&inport.convos).clear();
            }
            if let Some(outport) = &shared.outport {
                *lock(&outport.peers) = Peers::default();
            }
            shared.stats.udp.peers.store(0, Ordering::Relaxed);
            tracing::info!(udp = ?shared.stats.udp.snapshot(), "tunnel stopped");
        }
        .instrument(span)
        .await;
    }

    /// The tunnel's destination.
    pub fn destination(&self) -> &Destination {
        self.shared.session.destination()
    }

    /// Where the inport socket is bound, if the tunnel has an inport side.
    pub fn inbound_addr(&self) -> Option<SocketAddr> {
        self.inbound_addr
    }

    /// The tunnel's counters (their `udp` part is [`TunnelStats::udp_snapshot`]).
    pub fn stats(&self) -> &Arc<TunnelStats> {
        &self.shared.stats
    }
}

impl Drop for UdpTunnel {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
        self.shared.tracker.close();
    }
}

impl ActiveTunnel for UdpTunnel {
    fn session(&self) -> Arc<dyn Session> {
        self.streams.clone()
    }

    fn inbound_addr(&self) -> Option<SocketAddr> {
        self.inbound_addr
    }

    fn stop(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(Self::stop(*self))
    }

    fn stats(&self) -> Option<Arc<TunnelStats>> {
        Some(self.shared.stats.clone())
    }
}

/// A UDP tunnel's session as the registry sees sessions (for `lookup`): it resolves
/// names but carries no streams.
#[derive(Debug)]
struct DatagramOnly(Arc<dyn DatagramSession>);

impl Session for DatagramOnly {
    fn destination(&self) -> &Destination {
        self.0.destination()
    }

    fn connect(&self, _target: Target) -> BoxFuture<'_, Result<BoxStream, CoreError>> {
        Box::pin(async { Err(CoreError::Io("a UDP tunnel carries no streams".into())) })
    }

    fn accept(&self) -> BoxFuture<'_, Result<Incoming, CoreError>> {
        Box::pin(async { Err(CoreError::Closed) })
    }

    fn lookup(&self, name: &str) -> BoxFuture<'_, Result<Destination, CoreError>> {
        let name = name.to_owned();
        Box::pin(async move {
            self.0.lookup(&name).await.map_err(|e| match e {
                DatagramError::NotFound => CoreError::NotFound,
                DatagramError::Closed => CoreError::Closed,
                other => CoreError::Io(other.to_string()),
            })
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        self.0.close()
    }
}

/// Binds the inport: the first address of `endpoint.host` that binds, IPv4 first.
async fn bind_inport(endpoint: &Endpoint) -> Result<UdpSocket, StartError> {
    let mut addrs: Vec<SocketAddr> =
        tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(|_| StartError::UnknownHost(endpoint.host.clone()))?
            .collect();
    addrs.sort_by_key(|addr| !addr.is_ipv4());
    let mut last_error = None;
    for addr in addrs {
        match UdpSocket::bind(addr).await {
            Ok(socket) => {
                grow_buffer(&socket);
                return Ok(socket);
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(match last_error {
        Some(e) => StartError::Bind(e.to_string()),
        None => StartError::UnknownHost(endpoint.host.clone()),
    })
}

/// Asks for [`SOCKET_BUFFER`] of receive buffer (best effort: a smaller one only means
/// less room for bursts).
fn grow_buffer(socket: &UdpSocket) {
    if let Err(error) = socket2::SockRef::from(socket).set_recv_buffer_size(SOCKET_BUFFER) {
        tracing::debug!(%error, "cannot grow the UDP receive buffer");
    }
}

/// Resolves `outhost:outport` (IPv4 first).
async fn outport_target(endpoint: &Endpoint) -> Result<SocketAddr, StartError> {
    let mut addrs: Vec<SocketAddr> =
        tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(|_| StartError::UnknownHost(endpoint.host.clone()))?
            .collect();
    addrs.sort_by_key(|addr| !addr.is_ipv4());
    addrs
        .first()
        .copied()
        .ok_or_else(|| StartError::UnknownHost(endpoint.host.clone()))
}

/// A new local socket to talk to `target`: on loopback when `target` is, on an
/// ephemeral port.
fn bind_towards(target: SocketAddr) -> std::io::Result<UdpSocket> {
    let ip = match target.ip() {
        IpAddr::V4(v4) if v4.is_loopback() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(v6) if v6.is_loopback() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let socket = std::net::UdpSocket::bind((ip, 0))?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket)
}

impl Shared {
    fn dropped(&self, reason: DropReason) {
        self.stats.udp.drop_one(reason);
        tracing::trace!(?reason, "datagram dropped");
    }

    fn count_peers(&self) {
        let convos = self.inport.as_ref().map_or(0, |i| lock(&i.convos).len());
        let peers = self
            .outport
            .as_ref()
            .map_or(0, |o| lock(&o.peers).map.len());
        let n = (convos + peers) as u64;
        self.stats.udp.peers.store(n, Ordering::Relaxed);
        self.stats.active.store(n, Ordering::Relaxed);
    }

    fn new_mapping(&self) {
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// The style of the next datagram to `to` on this port pair.
    fn style_for(&self, to: &Destination, from_port: u16, to_port: u16) -> DatagramStyle {
        match self.style {
            SendStyle::Repliable => DatagramStyle::Repliable,
            SendStyle::Raw => DatagramStyle::Raw,
            SendStyle::Hybrid => {
                let now = Instant::now();
                let mut hybrid = lock(&self.hybrid);
                let key = (to.hash(), from_port, to_port);
                match hybrid.get(&key) {
                    Some(at) if now.duration_since(*at) < HYBRID_REPLIABLE_EVERY => {
                        DatagramStyle::Raw
                    }
                    _ => {
                        if hybrid.len() >= MAX_PEERS {
                            hybrid.clear();
                        }
                        hybrid.insert(key, now);
                        DatagramStyle::Repliable
                    }
                }
            }
        }
    }

    /// Queues a datagram for the paced sender.
    fn enqueue(&self, to: Destination, from_port: u16, to_port: u16, payload: Bytes) {
        let style = self.style_for(&to, from_port, to_port);
        let out = Outgoing {
            to,
            style,
            from_port,
            to_port,
            payload,
        };
        if self.queue.try_send(out).is_err() {
            self.dropped(DropReason::QueueFull);
        }
    }

    /// Sends to a base64 destination, a `.b32.i2p` address or a name, resolving (and
    /// remembering) names; datagrams wait while their name is being resolved.
    fn send_named(self: &Arc<Self>, name: &str, from_port: u16, to_port: u16, payload: Bytes) {
        if !name.to_ascii_lowercase().ends_with(".i2p") {
            match Destination::from_base64(name) {
                Ok(dest) => self.enqueue(dest, from_port, to_port, payload),
                Err(_) => self.dropped(DropReason::Unresolved),
            }
            return;
        }
        let name = name.to_ascii_lowercase();
        let mut names = lock(&self.names);
        if let Some((dest, at)) = names.cache.get(&name)
            && at.elapsed() < NAME_TTL
        {
            let dest = dest.clone();
            drop(names);
            self.enqueue(dest, from_port, to_port, payload);
            return;
        }
        let pending = Pending {
            from_port,
            to_port,
            payload,
        };
        if let Some(waiting) = names.pending.get_mut(&name) {
            if waiting.len() < MAX_PENDING_PER_NAME {
                waiting.push(pending);
            } else {
                drop(names);
                self.dropped(DropReason::Unresolved);
            }
            return;
        }
        if names.pending.len() >= MAX_PENDING_NAMES {
            drop(names);
            self.dropped(DropReason::Unresolved);
            return;
        }
        names.pending.insert(name.clone(), vec![pending]);
        drop(names);
        let shared = Arc::clone(self);
        self.tracker.spawn(
            async move {
                let found = tokio::select! {
                    () = shared.cancel.cancelled() => return,
                    r = tokio::time::timeout(LOOKUP_TIMEOUT, shared.session.lookup(&name)) => r,
                };
                let mut names = lock(&shared.names);
                let waiting = names.pending.remove(&name).unwrap_or_default();
                match found {
                    Ok(Ok(dest)) => {
                        if names.cache.len() >= MAX_NAMES {
                            names.cache.retain(|_, (_, at)| at.elapsed() < NAME_TTL);
                            if names.cache.len() >= MAX_NAMES {
                                names.cache.clear();
                            }
                        }
                        names.cache.insert(name, (dest.clone(), Instant::now()));
                        drop(names);
                        for p in waiting {
                            shared.enqueue(dest.clone(), p.from_port, p.to_port, p.payload);
                        }
                    }
                    Ok(Err(error)) => {
                        drop(names);
                        tracing::debug!(%name, %error, "name did not resolve");
                        for _ in waiting {
                            shared.dropped(DropReason::Unresolved);
                        }
                    }
                    Err(_) => {
                        drop(names);
                        tracing::debug!(%name, "name lookup timed out");
                        for _ in waiting {
                            shared.dropped(DropReason::Unresolved);
                        }
                    }
                }
            }
            .in_current_span(),
        );
    }

    /// The destination `bob.udp.dest` names, once known.
    fn fixed_dest(&self, fixed: &str) -> Option<Destination> {
        if let Some(dest) = self.inport.as_ref().and_then(|i| i.fixed_b64.clone()) {
            return Some(dest);
        }
        if !fixed.to_ascii_lowercase().ends_with(".i2p") {
            return Destination::from_base64(fixed).ok();
        }
        lock(&self.names)
            .cache
            .get(&fixed.to_ascii_lowercase())
            .map(|(d, _)| d.clone())
    }

    /// Hands a datagram from I2P to the inport side when its to-port is a live
    /// conversation; `Err` gives it back otherwise.
    async fn to_inport(
        &self,
        datagram: crate::backend::datagram::Datagram,
    ) -> Result<(), crate::backend::datagram::Datagram> {
        let Some(inport) = &self.inport else {
            return Err(datagram);
        };
        let addr = {
            let mut convos = lock(&inport.convos);
            match convos.get_mut(&datagram.to_port) {
                Some(convo) if datagram.to_port != 0 => {
                    convo.seen = Instant::now();
                    convo.addr
                }
                _ => return Err(datagram),
            }
        };
        let bytes = match (&inport.fixed, &datagram.from) {
            (Some(fixed), Some(from)) => {
                // transparent mode: only the fixed remote may answer
                if self.fixed_dest(fixed).as_ref() != Some(from) {
                    self.dropped(DropReason::UnknownPeer);
                    return Ok(());
                }
                datagram.payload.to_vec()
            }
            (Some(_), None) | (None, None) => datagram.payload.to_vec(),
            (None, Some(from)) => header::format(from, &datagram.payload),
        };
        self.deliver(&inport.socket, bytes, Some(addr), datagram.payload.len())
            .await;
        Ok(())
    }

    /// Sends `bytes` to a local application (to `addr`, or on a connected socket).
    async fn deliver(
        &self,
        socket: &UdpSocket,
        bytes: Vec<u8>,
        addr: Option<SocketAddr>,
        payload: usize,
    ) {
        if bytes.len() > UDP_MAX {
            self.dropped(DropReason::Oversize);
            return;
        }
        let sent = match addr {
            Some(addr) => socket.send_to(&bytes, addr).await,
            None => socket.send(&bytes).await,
        };
        match sent {
            Ok(_) => {
                self.stats
                    .bytes_in
                    .fetch_add(payload as u64, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::debug!(%error, "delivering a datagram locally failed");
                self.dropped(DropReason::SendFailed);
            }
        }
    }

    /// Hands a datagram from I2P to the outport side.
    async fn to_outport(
        self: &Arc<Self>,
        outport: &Outport,
        d: crate::backend::datagram::Datagram,
    ) {
        if let Some(socket) = &outport.header_socket {
            let bytes = match &d.from {
                Some(from) => {
                    let mut peers = lock(&outport.peers);
                    let key = (from.hash(), 0);
                    let now = Instant::now();
                    if let Some(peer) = peers.map.get_mut(&key) {
                        peer.seen = now;
                        peer.their_port = d.from_port;
                        peer.our_port = d.to_port;
                    } else if peers.map.len() >= MAX_PEERS {
                        drop(peers);
                        self.dropped(DropReason::PeersFull);
                        return;
                    } else {
                        peers.map.insert(
                            key,
                            Peer {
                                their_port: d.from_port,
                                our_port: d.to_port,
                                seen: now,
                                socket: None,
                            },
                        );
                        drop(peers);
                        self.new_mapping();
                        self.count_peers();
                    }
                    header::format(from, &d.payload)
                }
                None => d.payload.to_vec(),
            };
            self.deliver(socket, bytes, Some(outport.target), d.payload.len())
                .await;
            return;
        }
        // quiet: one socket per (peer, from-port)
        let socket = match self.peer_socket(outport, &d) {
            Ok(socket) => socket,
            Err(reason) => {
                self.dropped(reason);
                return;
            }
        };
        self.deliver(&socket, d.payload.to_vec(), None, d.payload.len())
            .await;
    }

    /// The local socket for a datagram on the quiet outport side, made on first use.
    fn peer_socket(
        self: &Arc<Self>,
        outport: &Outport,
        d: &crate::backend::datagram::Datagram,
    ) -> Result<Arc<UdpSocket>, DropReason> {
        let mut peers = lock(&outport.peers);
        let now = Instant::now();
        let key = match &d.from {
            Some(from) => (from.hash(), d.from_port),
            None => match peers.by_ports.get(&(d.from_port, d.to_port)) {
                Some(key) => *key,
                None => {
                    // raw, from nobody we know: handed over one-way
                    if let Some(socket) = &peers.anonymous {
                        return Ok(socket.clone());
                    }
                    let socket = bind_towards(outport.target)
                        .and_then(|s| {
                            s.into_std()
                                .and_then(|s| {
                                    s.connect(outport.target)?;
                                    Ok(s)
                                })
                                .and_then(UdpSocket::from_std)
                        })
                        .map_err(|_| DropReason::SendFailed)?;
                    let socket = Arc::new(socket);
                    peers.anonymous = Some(socket.clone());
                    return Ok(socket);
                }
            },
        };
        if let Some(peer) = peers.map.get_mut(&key) {
            peer.seen = now;
            if let Some((socket, _)) = &peer.socket {
                return Ok(socket.clone());
            }
        }
        let Some(from) = d.from.clone() else {
            return Err(DropReason::UnknownPeer);
        };
        if peers.map.len() >= MAX_PEERS {
            return Err(DropReason::PeersFull);
        }
        let socket = bind_towards(outport.target)
            .and_then(|s| {
                let s = s.into_std()?;
                s.connect(outport.target)?;
                UdpSocket::from_std(s)
            })
            .map_err(|error| {
                tracing::warn!(%error, "cannot open a local socket for a peer");
                DropReason::SendFailed
            })?;
        let socket = Arc::new(socket);
        let stop = self.cancel.child_token();
        peers.map.insert(
            key,
            Peer {
                their_port: d.from_port,
                our_port: d.to_port,
                seen: now,
                socket: Some((socket.clone(), stop.clone().drop_guard())),
            },
        );
        peers.by_ports.insert((d.from_port, d.to_port), key);
        drop(peers);
        self.new_mapping();
        self.count_peers();
        self.tracker.spawn(
            peer_reply_loop(
                Arc::clone(self),
                socket.clone(),
                stop,
                key,
                from,
                d.to_port,
                d.from_port,
            )
            .in_current_span(),
        );
        Ok(socket)
    }
}

/// Sends queued datagrams into I2P, paced.
async fn send_loop(shared: Arc<Shared>, mut queued: mpsc::Receiver<Outgoing>, mut pacer: Pacer) {
    loop {
        let out = tokio::select! {
            () = shared.cancel.cancelled() => break,
            out = queued.recv() => match out {
                Some(out) => out,
                None => break,
            },
        };
        tokio::select! {
            () = shared.cancel.cancelled() => break,
            () = pacer.wait() => {}
        }
        let sent = shared
            .session
            .send_to(&out.to, out.style, out.from_port, out.to_port, &out.payload)
            .await;
        match sent {
            Ok(()) => {
                shared.stats.udp.sent.fetch_add(1, Ordering::Relaxed);
                shared
                    .stats
                    .bytes_out
                    .fetch_add(out.payload.len() as u64, Ordering::Relaxed);
            }
            Err(DatagramError::Oversize { .. }) => shared.dropped(DropReason::Oversize),
            Err(DatagramError::Closed) => break,
            Err(error) => {
                tracing::debug!(%error, "sending a datagram failed");
                shared.dropped(DropReason::SendFailed);
            }
        }
    }
}

/// Takes datagrams from the session and hands them to a side.
async fn recv_loop(shared: Arc<Shared>) {
    loop {
        let received = tokio::select! {
            () = shared.cancel.cancelled() => break,
            r = shared.session.recv() => r,
        };
        let datagram = match received {
            Ok(d) => d,
            Err(DatagramError::Closed) => {
                if !shared.cancel.is_cancelled() {
                    tracing::warn!("the datagram session closed");
                    shared.stats.mark_failed();
                }
                break;
            }
            Err(error) => {
                tracing::debug!(%error, "receiving a datagram failed");
                // a persistent error must not spin
                tokio::select! {
                    () = shared.cancel.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
                continue;
            }
        };
        shared.stats.udp.received.fetch_add(1, Ordering::Relaxed);
        if datagram.payload.len() > shared.maxsize {
            shared.dropped(DropReason::Oversize);
            continue;
        }
        let datagram = match shared.to_inport(datagram).await {
            Ok(()) => continue,
            Err(d) => d,
        };
        match &shared.outport {
            Some(outport) => shared.to_outport(outport, datagram).await,
            None => shared.dropped(DropReason::UnknownPeer),
        }
    }
}

/// The inport side: datagrams from local applications into I2P.
async fn inport_loop(shared: Arc<Shared>) {
    let Some(inport) = &shared.inport else { return };
    let mut buf = vec![0u8; RECV_BUFFER];
    loop {
        let (n, from) = tokio::select! {
            () = shared.cancel.cancelled() => break,
            r = inport.socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(error) => {
                    // e.g. ICMP port unreachable reported for an earlier send
                    tracing::debug!(%error, "inport receive failed");
                    continue;
                }
            },
        };
        let port = from.port();
        {
            let mut convos = lock(&inport.convos);
            let now = Instant::now();
            if let Some(convo) = convos.get_mut(&port) {
                convo.seen = now;
                convo.addr = from;
            } else if convos.len() >= MAX_PEERS {
                drop(convos);
                shared.dropped(DropReason::PeersFull);
                continue;
            } else {
                convos.insert(
                    port,
                    Convo {
                        addr: from,
                        seen: now,
                    },
                );
                drop(convos);
                shared.new_mapping();
                shared.count_peers();
            }
        }
        let datagram = &buf[..n];
        match &inport.fixed {
            Some(fixed) => {
                if n > shared.maxsize {
                    shared.dropped(DropReason::Oversize);
                    continue;
                }
                let payload = Bytes::copy_from_slice(datagram);
                match &inport.fixed_b64 {
                    Some(dest) => shared.enqueue(dest.clone(), port, 0, payload),
                    None => shared.send_named(fixed, port, 0, payload),
                }
            }
            None => {
                let (head, payload) = match header::parse(datagram) {
                    Ok(parsed) => parsed,
                    Err(error) => {
                        tracing::debug!(%error, "malformed datagram header");
                        shared.dropped(DropReason::Malformed);
                        continue;
                    }
                };
                if payload.len() > shared.maxsize {
                    shared.dropped(DropReason::Oversize);
                    continue;
                }
                let to_port = head.to_port.unwrap_or(0);
                let payload = Bytes::copy_from_slice(payload);
                match head.target {
                    HeaderTarget::Destination(dest) => shared.enqueue(dest, port, to_port, payload),
                    HeaderTarget::Name(name) => shared.send_named(&name, port, to_port, payload),
                }
            }
        }
    }
}

/// `quiet false`: the application's answers (`<dest>\n` + payload) into I2P.
async fn header_reply_loop(shared: Arc<Shared>, socket: Arc<UdpSocket>) {
    let Some(outport) = &shared.outport else {
        return;
    };
    let mut buf = vec![0u8; RECV_BUFFER];
    loop {
        let n = tokio::select! {
            () = shared.cancel.cancelled() => break,
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, _)) => n,
                Err(error) => {
                    tracing::debug!(%error, "outport receive failed");
                    continue;
                }
            },
        };
        let (head, payload) = match header::parse(&buf[..n]) {
            Ok(parsed) => parsed,
            Err(error) => {
                tracing::debug!(%error, "malformed reply header");
                shared.dropped(DropReason::Malformed);
                continue;
            }
        };
        if payload.len() > shared.maxsize {
            shared.dropped(DropReason::Oversize);
            continue;
        }
        let payload = Bytes::copy_from_slice(payload);
        match head.target {
            HeaderTarget::Destination(dest) => {
                // replies go back to the peer's port, unless the header says otherwise
                let known = {
                    let mut peers = lock(&outport.peers);
                    peers.map.get_mut(&(dest.hash(), 0)).map(|p| {
                        p.seen = Instant::now();
                        (p.our_port, p.their_port)
                    })
                };
                let (ours, theirs) = known.unwrap_or((0, 0));
                shared.enqueue(
                    dest,
                    head.from_port.unwrap_or(ours),
                    head.to_port.unwrap_or(theirs),
                    payload,
                );
            }
            HeaderTarget::Name(name) => shared.send_named(
                &name,
                head.from_port.unwrap_or(0),
                head.to_port.unwrap_or(0),
                payload,
            ),
        }
    }
}

/// `quiet true`: one peer's socket; what the application sends on it goes to the peer.
async fn peer_reply_loop(
    shared: Arc<Shared>,
    socket: Arc<UdpSocket>,
    stop: CancellationToken,
    key: ([u8; 32], u16),
    peer: Destination,
    our_port: u16,
    their_port: u16,
) {
    // One byte over the limit is enough to see an oversize datagram (the kernel cuts it
    // to the buffer, and it is dropped whole): 10,000 peers cost 10,000 of these.
    let mut buf = vec![0u8; shared.maxsize + 1];
    loop {
        let n = tokio::select! {
            () = stop.cancelled() => break,
            r = socket.recv(&mut buf) => match r {
                Ok(n) => n,
                Err(error) => {
                    tracing::debug!(%error, "peer socket receive failed");
                    continue;
                }
            },
        };
        if n > shared.maxsize {
            shared.dropped(DropReason::Oversize);
            continue;
        }
        if let Some(outport) = &shared.outport
            && let Some(p) = lock(&outport.peers).map.get_mut(&key)
        {
            p.seen = Instant::now();
        }
        shared.enqueue(
            peer.clone(),
            our_port,
            their_port,
            Bytes::copy_from_slice(&buf[..n]),
        );
    }
}

/// Expires conversations, peers and remembered names.
async fn sweep_loop(shared: Arc<Shared>) {
    let every = (shared.idle / 4).clamp(Duration::from_millis(250), Duration::from_secs(30));
    loop {
        tokio::select! {
            () = shared.cancel.cancelled() => break,
            () = tokio::time::sleep(every) => {}
        }
        sweep(&shared);
    }
}

fn sweep(shared: &Shared) {
    let now = Instant::now();
    let idle = shared.idle;
    let live = |seen: Instant| now.duration_since(seen) < idle;
    if let Some(inport) = &shared.inport {
        lock(&inport.convos).retain(|_, c| live(c.seen));
    }
    if let Some(outport) = &shared.outport {
        let mut peers = lock(&outport.peers);
        peers.map.retain(|_, p| live(p.seen));
        let Peers { map, by_ports, .. } = &mut *peers;
        by_ports.retain(|_, key| map.contains_key(key));
    }
    lock(&shared.hybrid).retain(|_, at| now.duration_since(*at) < idle);
    lock(&shared.names)
        .cache
        .retain(|_, (_, at)| now.duration_since(*at) < NAME_TTL);
    shared.count_peers();
}

#[cfg(test)]
mod tests;
