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
mod shared;
mod tasks;

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
use self::tasks::{
    bind_inport, bind_towards, grow_buffer, header_reply_loop, inport_loop, outport_target,
    peer_reply_loop, recv_loop, send_loop, sweep_loop,
};
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
    /// SOCKS5 UDP ASSOCIATE: a fragment (FRAG ≠ 0), which is not reassembled
    Fragment,
    /// SOCKS5 UDP ASSOCIATE: from an address other than the association's client
    Foreign,
    /// SOCKS5 UDP ASSOCIATE: to an IP address or a name outside I2P
    NotI2p,
}

/// The datagram counters of a UDP tunnel (part of [`TunnelStats`]).
#[derive(Debug, Default)]
pub struct UdpCounters {
    received: AtomicU64,
    sent: AtomicU64,
    dropped: [AtomicU64; 10],
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
    /// dropped (SOCKS UDP): a fragment
    pub dropped_fragment: u64,
    /// dropped (SOCKS UDP): from a foreign address
    pub dropped_foreign: u64,
    /// dropped (SOCKS UDP): to a host outside I2P
    pub dropped_not_i2p: u64,
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
            + self.dropped_fragment
            + self.dropped_foreign
            + self.dropped_not_i2p
    }

    /// The counters as `key=value` pairs, as `stats` and the metrics endpoint add them
    /// (the SOCKS-only drop reasons only when one of them is not zero, so a UDP
    /// tunnel's line stays as it was).
    pub fn pairs(&self) -> Vec<(&'static str, u64)> {
        let mut pairs = vec![
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
        ];
        let socks = [
            ("udp_dropped_fragment", self.dropped_fragment),
            ("udp_dropped_foreign", self.dropped_foreign),
            ("udp_dropped_not_i2p", self.dropped_not_i2p),
        ];
        if socks.iter().any(|(_, n)| *n > 0) {
            pairs.splice(pairs.len() - 1..pairs.len() - 1, socks);
        }
        pairs
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
            dropped_fragment: d(DropReason::Fragment),
            dropped_foreign: d(DropReason::Foreign),
            dropped_not_i2p: d(DropReason::NotI2p),
            peers: self.peers.load(Ordering::Relaxed),
        }
    }

    pub(in crate::tunnel) fn drop_one(&self, reason: DropReason) {
        self.dropped[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a datagram sent into I2P.
    pub(in crate::tunnel) fn count_sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a datagram received from I2P (and delivered).
    pub(in crate::tunnel) fn count_received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `added` live peers and removes `removed` from the `udp_peers` gauge.
    pub(in crate::tunnel) fn peers_changed(&self, added: u64, removed: u64) {
        if added > 0 {
            self.peers.fetch_add(added, Ordering::Relaxed);
        }
        if removed > 0 {
            self.peers.fetch_sub(removed, Ordering::Relaxed);
        }
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

#[cfg(test)]
mod tests;
