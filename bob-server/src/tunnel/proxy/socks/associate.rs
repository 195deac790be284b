//! SOCKS5 `UDP ASSOCIATE` (RFC 1928 §4, §7): datagrams between a SOCKS client and I2P,
//! sent from the proxy tunnel's own destination.
//!
//! # The relay
//! A proxy tunnel opens one datagram session for its destination (repliable style) on
//! the first `UDP ASSOCIATE` ([`UdpRelay`]) and keeps it until the tunnel stops. Each
//! association gets:
//! - a UDP socket bound on the address the client reached the proxy at (loopback by
//!   default), whose address is the reply's BND.ADDR/BND.PORT;
//! - an I2CP port of its own, the from-port of every datagram it sends; datagrams
//!   coming back to that port are its own (the session's receiver routes them by
//!   to-port, [`Hub`]). A datagram to a port no association holds is dropped
//!   (`unknown_peer`): this backend must carry I2CP ports.
//!
//! The client's datagrams are accepted only from the TCP control connection's peer IP,
//! and from the DST.ADDR/DST.PORT the request announced when they are not zero; the
//! first accepted datagram fixes the client's address, where replies go. Everything
//! else is dropped and counted (`foreign`). Headers ([`super::udp_header`]) must name
//! an I2P host (ATYP 3: a `.i2p` name, a `.b32.i2p` address or a base64 destination);
//! IP addresses and clearnet names are dropped (`not_i2p`: there is no UDP outproxy),
//! fragments (FRAG ≠ 0) too (`fragment`), payloads over `bob.udp.maxsize` (capped by
//! the backend) as well (`oversize`), never truncated. DST.PORT is the I2CP to-port.
//!
//! A datagram from I2P reaches the client with ATYP 3 and the sender's `.b32.i2p`
//! address (which the client can send to: the association remembers the sender's
//! destination, so no lookup is needed) and its I2CP from-port as DST.PORT; a raw
//! (anonymous) one with ATYP 1 `0.0.0.0`.
//!
//! The association ends when the TCP control connection closes (or the tunnel stops):
//! its socket is closed and its port released. Each association remembers at most
//! [`MAX_ASSOC_PEERS`] peers (names and senders), each for `bob.udp.idle`.
//!
//! # Backends
//! Only where a destination can hold a datagram session beside its stream session
//! ([`crate::backend::datagram::DatagramCore::shares_destination`]): the `local`
//! core, and SAM routers with PRIMARY sessions (the SOCKS tunnel's session is opened
//! with [`crate::backend::StreamingCore::open_session_sharing`]; emissary 0.4, the
//! embedded router). On other SAM routers (i2pd 2.45) one destination is one session,
//! so `UDP ASSOCIATE` is answered with 7 (command not supported) and a log line saying
//! why.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use keytools::{Destination, PrivateKeys};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::udp_header::{self, ReplySource};
use super::{RequestHost, Version, final_reply, rep};
use crate::backend::datagram::{Datagram, DatagramError, DatagramSession, DatagramStyle};
use crate::backend::{Options, StreamingCore, Target};
use crate::tunnel::proxy::{Host, ProxyContext, classify_host};
use crate::tunnel::udp::options::UdpOptions;
use crate::tunnel::udp::{DropReason, LOOKUP_TIMEOUT};
use crate::tunnel::{TunnelContext, TunnelSpec, TunnelStats};

/// Associations of one tunnel at once (each also holds a connection, so the tunnel's
/// connection cap usually bounds them first).
pub(crate) const MAX_ASSOCIATIONS: usize = 4096;

/// Peers one association remembers (names it resolved, senders it heard from); the
/// least recently used is forgotten first.
pub(crate) const MAX_ASSOC_PEERS: usize = 1024;

/// Datagrams from I2P waiting for one association before further ones are dropped
/// (`queue_full`).
pub(crate) const ASSOC_QUEUE: usize = 256;

/// The largest UDP payload (IPv4): a datagram for the client with its header must fit.
const UDP_MAX: usize = 65_507;

/// The first I2CP port given to an association.
const FIRST_PORT: u16 = 1;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The UDP side of one SOCKS proxy tunnel (see the module docs): opens the datagram
/// session on first use.
pub(crate) struct UdpRelay {
    core: Arc<dyn StreamingCore>,
    keys: PrivateKeys,
    options: Options,
    server_options: Options,
    session_timeout: Duration,
    stats: Arc<TunnelStats>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    hub: tokio::sync::Mutex<Option<Arc<Hub>>>,
}

impl fmt::Debug for UdpRelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpRelay")
            .field("core", &self.core.name())
            .finish_non_exhaustive()
    }
}

impl UdpRelay {
    /// The relay of a SOCKS tunnel started from `spec` on `core`.
    pub(in crate::tunnel) fn new(
        core: Arc<dyn StreamingCore>,
        spec: &TunnelSpec,
        context: &TunnelContext,
    ) -> Self {
        Self {
            core,
            keys: spec.keys.clone(),
            options: spec.options.clone(),
            server_options: spec.server_options.clone(),
            session_timeout: context.limits.session_timeout,
            stats: Arc::clone(&context.stats),
            cancel: context.cancel.clone(),
            tracker: context.tracker.clone(),
            hub: tokio::sync::Mutex::new(None),
        }
    }

    /// Why this backend cannot relay datagrams for a proxy tunnel, if it cannot.
    fn unsupported(&self) -> Option<String> {
        let name = self.core.name();
        match self.core.datagrams() {
            None => Some(format!("the {name} backend carries no datagrams")),
            Some(d) if !d.shares_destination(self.keys.destination()) => Some(format!(
                "on the {name} backend this destination cannot have a datagram session beside \
                 its stream session (one destination, one SAM session: the router has no SAM \
                 3.3 PRIMARY sessions with DATAGRAM subsessions)"
            )),
            Some(_) => None,
        }
    }

    /// The open datagram session's hub, opening it on first use (or after it failed).
    async fn hub(&self) -> Result<Arc<Hub>, String> {
        let mut slot = self.hub.lock().await;
        if let Some(hub) = slot.as_ref()
            && !hub.closed.load(Ordering::Relaxed)
        {
            return Ok(Arc::clone(hub));
        }
        let opts = UdpOptions::from_options(&self.server_options)?;
        let datagrams = self
            .core
            .datagrams()
            .ok_or_else(|| "the backend carries no datagrams".to_owned())?;
        let open = datagrams.open_datagram_session(
            self.keys.clone(),
            self.options.clone(),
            DatagramStyle::Repliable,
        );
        let session = tokio::time::timeout(self.session_timeout, open)
            .await
            .map_err(|_| "timed out opening the datagram session".to_owned())?
            .map_err(|e| e.to_string())?;
        let maxsize = opts.maxsize.min(session.max_payload());
        let hub = Arc::new(Hub {
            session,
            maxsize,
            idle: opts.idle,
            stats: Arc::clone(&self.stats),
            routes: Mutex::default(),
            closed: AtomicBool::new(false),
        });
        self.stats.mark_datagram();
        tracing::info!(
            b32 = %hub.session.destination().b32(),
            maxsize,
            "datagram session opened for SOCKS UDP ASSOCIATE"
        );
        self.tracker
            .spawn(recv_loop(Arc::clone(&hub), self.cancel.clone()).in_current_span());
        *slot = Some(Arc::clone(&hub));
        Ok(hub)
    }
}

/// The tunnel's datagram session and where its datagrams go.
struct Hub {
    session: Arc<dyn DatagramSession>,
    maxsize: usize,
    idle: Duration,
    stats: Arc<TunnelStats>,
    routes: Mutex<Routes>,
    /// the session ended: the next association opens a new one
    closed: AtomicBool,
}

#[derive(Default)]
struct Routes {
    /// association inboxes by their I2CP port
    by_port: HashMap<u16, mpsc::Sender<Datagram>>,
    /// the last port given out
    last: u16,
}

impl Hub {
    fn dropped(&self, reason: DropReason) {
        self.stats.udp.drop_one(reason);
    }

    /// A free I2CP port and the association's inbox, `None` when
    /// [`MAX_ASSOCIATIONS`] are open.
    fn register(self: &Arc<Self>) -> Option<(Route, mpsc::Receiver<Datagram>)> {
        let mut routes = lock(&self.routes);
        if routes.by_port.len() >= MAX_ASSOCIATIONS {
            return None;
        }
        loop {
            let port = routes.last.checked_add(1).unwrap_or(FIRST_PORT);
            routes.last = port;
            if let std::collections::hash_map::Entry::Vacant(slot) = routes.by_port.entry(port) {
                let (tx, rx) = mpsc::channel(ASSOC_QUEUE);
                slot.insert(tx);
                let route = Route {
                    hub: Arc::clone(self),
                    port,
                };
                return Some((route, rx));
            }
        }
    }
}

/// An association's I2CP port, released when dropped.
struct Route {
    hub: Arc<Hub>,
    port: u16,
}

impl Drop for Route {
    fn drop(&mut self) {
        lock(&self.hub.routes).by_port.remove(&self.port);
    }
}

/// Hands each datagram of the session to the association holding its to-port, until
/// the tunnel stops; then closes the session.
async fn recv_loop(hub: Arc<Hub>, cancel: CancellationToken) {
    loop {
        let received = tokio::select! {
            () = cancel.cancelled() => break,
            r = hub.session.recv() => r,
        };
        let datagram = match received {
            Ok(d) => d,
            Err(DatagramError::Closed) => {
                if !cancel.is_cancelled() {
                    tracing::warn!("the SOCKS UDP datagram session closed");
                }
                break;
            }
            Err(error) => {
                tracing::debug!(%error, "receiving a datagram failed");
                // a persistent error must not spin
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
                continue;
            }
        };
        hub.stats.udp.count_received();
        let inbox = lock(&hub.routes).by_port.get(&datagram.to_port).cloned();
        match inbox {
            Some(inbox) => {
                if inbox.try_send(datagram).is_err() {
                    hub.dropped(DropReason::QueueFull);
                }
            }
            None => hub.dropped(DropReason::UnknownPeer),
        }
    }
    hub.closed.store(true, Ordering::Relaxed);
    // the associations' inboxes close: they end
    lock(&hub.routes).by_port.clear();
    hub.session.close().await;
}

/// Serves a `UDP ASSOCIATE` request whose DST.ADDR/DST.PORT were `host`/`port` (see
/// the module docs): replies, relays until the control connection closes.
pub(crate) async fn serve(
    mut socket: TcpStream,
    proxy: ProxyContext,
    host: RequestHost,
    port: u16,
) {
    let refuse = |code: u8| final_reply(Version::V5, code);
    let Some(relay) = proxy.udp_relay() else {
        proxy
            .reject(socket, &refuse(rep::COMMAND_NOT_SUPPORTED))
            .await;
        return;
    };
    if let Some(why) = relay.unsupported() {
        tracing::info!("SOCKS5 UDP ASSOCIATE refused (command not supported): {why}");
        proxy
            .reject(socket, &refuse(rep::COMMAND_NOT_SUPPORTED))
            .await;
        return;
    }
    let (Ok(client), Ok(local)) = (socket.peer_addr(), socket.local_addr()) else {
        proxy.reject(socket, &refuse(rep::GENERAL_FAILURE)).await;
        return;
    };
    let hub = match relay.hub().await {
        Ok(hub) => hub,
        Err(error) => {
            tracing::warn!(%error, "cannot open the datagram session for UDP ASSOCIATE");
            proxy.reject(socket, &refuse(rep::GENERAL_FAILURE)).await;
            return;
        }
    };
    let bound = async {
        let udp = UdpSocket::bind((local.ip().to_canonical(), 0)).await?;
        let addr = udp.local_addr()?;
        Ok::<_, std::io::Error>((udp, addr))
    };
    let (udp, bound) = match bound.await {
        Ok(bound) => bound,
        Err(error) => {
            tracing::warn!(%error, "cannot bind the UDP ASSOCIATE relay socket");
            proxy.reject(socket, &refuse(rep::GENERAL_FAILURE)).await;
            return;
        }
    };
    let Some((route, inbox)) = hub.register() else {
        tracing::warn!("UDP ASSOCIATE refused: {MAX_ASSOCIATIONS} associations are open");
        proxy.reject(socket, &refuse(rep::GENERAL_FAILURE)).await;
        return;
    };
    if let Err(error) = socket.write_all(&success_reply(bound)).await {
        tracing::debug!(%error, "writing the SOCKS reply failed");
        proxy.count_failure();
        return;
    }
    let announced_ip = match host {
        RequestHost::Ip(ip) if !ip.is_unspecified() => Some(ip.to_canonical()),
        // a name says nothing about where datagrams come from
        _ => None,
    };
    tracing::debug!(
        relay = %bound,
        i2cp_port = route.port,
        announced = ?(announced_ip, port),
        "UDP association open"
    );
    let mut association = Association {
        hub: Arc::clone(&hub),
        port: route.port,
        client_ip: client.ip().to_canonical(),
        announced_ip,
        announced_port: port,
        client: None,
        peers: PeerTable::new(Arc::clone(&hub.stats)),
    };
    association.run(&mut socket, &udp, inbox).await;
    drop(route);
    tracing::debug!(relay = %bound, "UDP association closed");
}

/// `5 0 0 ATYP BND.ADDR BND.PORT` for the relay socket at `bound`.
fn success_reply(bound: SocketAddr) -> Vec<u8> {
    let mut reply = vec![5, rep::SUCCEEDED, 0];
    match bound.ip() {
        IpAddr::V4(ip) => {
            reply.push(1);
            reply.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            reply.push(4);
            reply.extend_from_slice(&ip.octets());
        }
    }
    reply.extend_from_slice(&bound.port().to_be_bytes());
    reply
}

/// One association's state.
struct Association {
    hub: Arc<Hub>,
    /// the I2CP port of this association
    port: u16,
    /// the control connection's peer IP
    client_ip: IpAddr,
    /// DST.ADDR of the request, when it was an address other than zeros
    announced_ip: Option<IpAddr>,
    /// DST.PORT of the request (0: any)
    announced_port: u16,
    /// where the client's first accepted datagram came from: replies go there
    client: Option<SocketAddr>,
    peers: PeerTable,
}

impl Association {
    async fn run(
        &mut self,
        control: &mut TcpStream,
        udp: &UdpSocket,
        mut inbox: mpsc::Receiver<Datagram>,
    ) {
        let mut scratch = [0u8; 512];
        let mut buf = vec![0u8; UDP_MAX + 1];
        let mut sweep = tokio::time::interval(self.hub.idle.min(Duration::from_secs(60)));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                read = control.read(&mut scratch) => match read {
                    // the RFC: the association ends with the TCP connection; bytes the
                    // client sends on it mean nothing and are discarded
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                },
                received = udp.recv_from(&mut buf) => match received {
                    Ok((n, from)) => self.outgoing(&buf[..n], from).await,
                    Err(error) => tracing::debug!(%error, "receiving on the relay socket failed"),
                },
                datagram = inbox.recv() => match datagram {
                    Some(datagram) => self.incoming(udp, datagram).await,
                    None => {
                        tracing::debug!("the datagram session ended");
                        break;
                    }
                },
                _ = sweep.tick() => self.peers.expire(self.hub.idle),
            }
        }
    }

    /// A datagram the client sent to the relay socket: checked, sent into I2P.
    async fn outgoing(&mut self, datagram: &[u8], from: SocketAddr) {
        let hub = Arc::clone(&self.hub);
        let from_ip = from.ip().to_canonical();
        let foreign = from_ip != self.client_ip
            || self.announced_ip.is_some_and(|ip| ip != from_ip)
            || (self.announced_port != 0 && from.port() != self.announced_port)
            || self.client.is_some_and(|client| client != from);
        if foreign {
            tracing::debug!(%from, "datagram from outside the association dropped");
            hub.dropped(DropReason::Foreign);
            return;
        }
        self.client = Some(from);
        let request = match udp_header::parse(datagram) {
            Ok(request) => request,
            Err(error) => {
                tracing::debug!(%error, "datagram dropped");
                hub.dropped(DropReason::Malformed);
                return;
            }
        };
        if request.frag != 0 {
            hub.dropped(DropReason::Fragment);
            return;
        }
        let target = match request.host {
            RequestHost::Ip(_) => None,
            RequestHost::Name(name) => {
                let host = String::from_utf8(name)
                    .map_err(|_| "host name is not UTF-8".to_owned())
                    .and_then(|name| classify_host(&name));
                match host {
                    Ok(Host::I2p(target)) => Some(target),
                    Ok(Host::Other(_)) => None,
                    Err(error) => {
                        tracing::debug!(%error, "datagram dropped");
                        hub.dropped(DropReason::Malformed);
                        return;
                    }
                }
            }
        };
        let Some(target) = target else {
            hub.dropped(DropReason::NotI2p);
            return;
        };
        if request.payload.len() > hub.maxsize {
            hub.dropped(DropReason::Oversize);
            return;
        }
        let Some(to) = self.resolve(target).await else {
            hub.dropped(DropReason::Unresolved);
            return;
        };
        let sent = hub.session.send_to(
            &to,
            DatagramStyle::Repliable,
            self.port,
            request.port,
            request.payload,
        );
        match sent.await {
            Ok(()) => {
                hub.stats.udp.count_sent();
                hub.stats
                    .bytes_out
                    .fetch_add(request.payload.len() as u64, Ordering::Relaxed);
            }
            Err(DatagramError::Oversize { .. }) => hub.dropped(DropReason::Oversize),
            Err(error) => {
                tracing::debug!(%error, "sending a datagram failed");
                hub.dropped(DropReason::SendFailed);
            }
        }
    }

    /// The destination of `target`: a peer already known, else a lookup (bounded by
    /// [`LOOKUP_TIMEOUT`]; the association waits for it).
    async fn resolve(&mut self, target: Target) -> Option<Destination> {
        let name = match target {
            Target::Destination(destination) => return Some(destination),
            Target::Name(name) => name,
        };
        if let Some(destination) = self.peers.get(&name) {
            return Some(destination);
        }
        let lookup = self.hub.session.lookup(&name);
        match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
            Ok(Ok(destination)) => {
                self.peers.insert(name, destination.clone());
                Some(destination)
            }
            Ok(Err(error)) => {
                tracing::debug!(%name, %error, "datagram to an unknown name dropped");
                None
            }
            Err(_) => {
                tracing::debug!(%name, "lookup timed out; datagram dropped");
                None
            }
        }
    }

    /// A datagram from I2P for this association: to the client, with the header.
    async fn incoming(&mut self, udp: &UdpSocket, datagram: Datagram) {
        let hub = Arc::clone(&self.hub);
        let Some(client) = self.client else {
            // the client has not sent from its address yet: nowhere to deliver
            hub.dropped(DropReason::UnknownPeer);
            return;
        };
        if datagram.payload.len() > hub.maxsize {
            hub.dropped(DropReason::Oversize);
            return;
        }
        let bytes = match datagram.from {
            Some(from) => {
                let name = from.b32();
                let bytes = udp_header::format(
                    ReplySource::Name(&name),
                    datagram.from_port,
                    &datagram.payload,
                );
                self.peers.insert(name, from);
                bytes
            }
            None => udp_header::format(
                ReplySource::Anonymous,
                datagram.from_port,
                &datagram.payload,
            ),
        };
        if bytes.len() > UDP_MAX {
            hub.dropped(DropReason::Oversize);
            return;
        }
        match udp.send_to(&bytes, client).await {
            Ok(_) => {
                hub.stats
                    .bytes_in
                    .fetch_add(datagram.payload.len() as u64, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::debug!(%error, "delivering a datagram to the client failed");
                hub.dropped(DropReason::SendFailed);
            }
        }
    }
}

/// The peers of one association by name (`.b32.i2p` addresses of senders, names it
/// resolved), bounded by [`MAX_ASSOC_PEERS`], counted in `udp_peers`.
struct PeerTable {
    map: HashMap<String, (Destination, Instant)>,
    stats: Arc<TunnelStats>,
}

impl PeerTable {
    fn new(stats: Arc<TunnelStats>) -> Self {
        Self {
            map: HashMap::new(),
            stats,
        }
    }

    fn get(&mut self, name: &str) -> Option<Destination> {
        let (destination, seen) = self.map.get_mut(name)?;
        *seen = Instant::now();
        Some(destination.clone())
    }

    fn insert(&mut self, name: String, destination: Destination) {
        if let Some(entry) = self.map.get_mut(&name) {
            *entry = (destination, Instant::now());
            return;
        }
        if self.map.len() >= MAX_ASSOC_PEERS
            && let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, (_, seen))| *seen)
                .map(|(name, _)| name.clone())
        {
            self.map.remove(&oldest);
            self.stats.udp.peers_changed(0, 1);
        }
        self.map.insert(name, (destination, Instant::now()));
        self.stats.udp.peers_changed(1, 0);
    }

    /// Forgets peers unused for `idle`.
    fn expire(&mut self, idle: Duration) {
        let before = self.map.len();
        self.map.retain(|_, (_, seen)| seen.elapsed() < idle);
        self.stats
            .udp
            .peers_changed(0, (before - self.map.len()) as u64);
    }
}

impl Drop for PeerTable {
    fn drop(&mut self) {
        self.stats.udp.peers_changed(0, self.map.len() as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_replies_name_the_relay_socket() {
        assert_eq!(
            success_reply("127.0.0.1:4660".parse().unwrap()),
            [5, 0, 0, 1, 127, 0, 0, 1, 0x12, 0x34]
        );
        let v6 = success_reply("[::1]:1".parse().unwrap());
        assert_eq!(&v6[..4], &[5, 0, 0, 4]);
        assert_eq!(v6.len(), 4 + 16 + 2);
    }

    #[test]
    fn socks_drop_reasons_show_once_not_zero() {
        let stats = TunnelStats::default();
        let keys = |stats: &TunnelStats| -> Vec<&'static str> {
            stats
                .udp
                .snapshot()
                .pairs()
                .iter()
                .map(|(k, _)| *k)
                .collect()
        };
        assert!(!keys(&stats).contains(&"udp_dropped_fragment"));
        assert_eq!(keys(&stats).last(), Some(&"udp_peers"));
        stats.udp.drop_one(DropReason::Fragment);
        let with = keys(&stats);
        assert!(with.contains(&"udp_dropped_foreign"), "{with:?}");
        assert_eq!(with.last(), Some(&"udp_peers"));
        let snapshot = stats.udp.snapshot();
        assert_eq!((snapshot.dropped_fragment, snapshot.dropped()), (1, 1));
    }

    #[test]
    fn the_peer_table_is_bounded_and_counted() {
        let stats = Arc::new(TunnelStats::default());
        let dest = PrivateKeys::generate(keytools::SigType::Ed25519, keytools::CryptoType::ElGamal)
            .unwrap()
            .destination()
            .clone();
        let mut table = PeerTable::new(Arc::clone(&stats));
        for i in 0..MAX_ASSOC_PEERS + 10 {
            table.insert(format!("p{i}.i2p"), dest.clone());
        }
        assert_eq!(table.map.len(), MAX_ASSOC_PEERS);
        assert_eq!(stats.udp.snapshot().peers, MAX_ASSOC_PEERS as u64);
        table.expire(Duration::ZERO);
        assert_eq!(stats.udp.snapshot().peers, 0);
        table.insert("a.i2p".into(), dest);
        drop(table);
        assert_eq!(stats.udp.snapshot().peers, 0);
    }
}
