//! Datagram sessions on the SAM bridge ([`DatagramCore`] for [`SamCore`]).
//!
//! One `SESSION CREATE STYLE=DATAGRAM|RAW ID=… DESTINATION=<keys> PORT=<p> HOST=<ip>`
//! per UDP tunnel, its control socket kept open (and the session re-created after a
//! router restart) by the same [`Link`] supervisor as stream sessions. The router
//! forwards every datagram for the session to our own UDP socket `ip:p`; we send from
//! that socket to the bridge's UDP port ([`SamConfig::udp_bridge`]) with a
//! `3.0 ID DEST` header line (see [`super::dgram`]). Never `DATAGRAM SEND` on the control
//! socket: i2pd 2.45 kills the session for a datagram over 8 KB there.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use keytools::{Destination, PrivateKeys};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::conn::SamConn;
use super::dgram::{
    BridgeKind, MAX_UDP_DATAGRAM, UdpLimit, bridge_has_ports, parse_forwarded, send_header,
    session_style,
};
use super::session::{
    DatagramSub, Link, LinkState, LinkStyle, MAX_SESSION_ID_LEN, MAX_SUB_ID_LEN, resolve_until,
};
use super::{Claim, DATAGRAM_RESERVED, SamConfig, SamCore, SamState, merge_options, proto};
use crate::backend::datagram::{
    Datagram, DatagramCore, DatagramError, DatagramSession, DatagramStyle,
};
use crate::backend::{BoxFuture, CoreError, Options};

/// Peers whose last ports are remembered on a bridge without I2CP ports (see
/// [`PortMemory`]); the oldest is forgotten first.
const MAX_PORT_MEMORY: usize = 4096;

/// Kernel receive buffer asked for on our UDP socket (bursts from the router wait there
/// while the tunnel is busy; the kernel may grant less).
const RECV_BUFFER: usize = 4 << 20;

impl DatagramCore for SamCore {
    fn open_datagram_session(
        &self,
        keys: PrivateKeys,
        options: Options,
        style: DatagramStyle,
    ) -> BoxFuture<'_, Result<Arc<dyn DatagramSession>, CoreError>> {
        Box::pin(async move {
            let session = open(&self.shared, keys, options, style).await?;
            Ok(Arc::new(session) as Arc<dyn DatagramSession>)
        })
    }

    /// True for a destination whose stream session is a PRIMARY session: the datagram
    /// session is added to it as subsessions.
    fn shares_destination(&self, destination: &Destination) -> bool {
        super::primary_of(&self.shared, destination).is_some()
    }
}

/// Opens a datagram session (see the module docs).
pub(crate) async fn open(
    shared: &Arc<SamState>,
    keys: PrivateKeys,
    options: Options,
    style: DatagramStyle,
) -> Result<SamDatagramSession, CoreError> {
    let cfg = Arc::clone(&shared.cfg);
    let options = merge_options(&cfg.default_options, options);
    if let Some((k, _)) = options
        .iter()
        .find(|(k, _)| DATAGRAM_RESERVED.contains(&k.as_str()))
    {
        return Err(CoreError::Router(format!(
            "option {k} is set by the bridge itself and cannot be given"
        )));
    }
    proto::command(
        "SESSION CREATE",
        options.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    )
    .map_err(|e| CoreError::Router(e.to_string()))?;
    if let Some(link) = super::primary_of(shared, keys.destination()) {
        return open_sub(shared, link, style).await;
    }
    let key = keys.destination().as_bytes().to_vec();
    let claim = Claim::new(shared, key.clone())?;
    // A stream session with these keys parked for a fast restart goes first: i2pd would
    // share the destination between the two sessions.
    let parked = shared.parked.lock().ok().and_then(|mut p| p.remove(&key));
    if let Some(p) = parked {
        p.link.shutdown().await;
    }
    let ep = Endpoint::prepare(&cfg, false).await?;
    let link = Link::create_styled(
        Arc::clone(&cfg),
        &keys,
        LinkStyle::Datagram {
            style: session_style(style),
            forward: ep.forward,
        },
        options,
    )
    .await?;
    debug!(forward = %ep.forward, bridge = %ep.bridge, router = %ep.kind, buffer = ep.buffer, ports = ep.ports, "SAM datagram session created");
    Ok(SamDatagramSession::new(
        link,
        cfg,
        ep,
        style,
        MAX_SESSION_ID_LEN,
        Some(claim),
        None,
    ))
}

/// A datagram session on the PRIMARY session `link` of a stream tunnel: datagram
/// subsessions (one per I2CP port sent from, added on first use) forwarding to our
/// socket. Closing it leaves the PRIMARY session to its stream tunnel.
async fn open_sub(
    shared: &Arc<SamState>,
    link: Arc<Link>,
    style: DatagramStyle,
) -> Result<SamDatagramSession, CoreError> {
    let cfg = Arc::clone(&shared.cfg);
    let ep = Endpoint::prepare(&cfg, true).await?;
    debug!(forward = %ep.forward, bridge = %ep.bridge, router = %ep.kind, buffer = ep.buffer, ports = ep.ports, "SAM datagram subsessions for a PRIMARY session");
    Ok(SamDatagramSession::new(
        link,
        cfg,
        ep,
        style,
        MAX_SUB_ID_LEN,
        None,
        Some(tokio::sync::Mutex::new(std::collections::HashSet::new())),
    ))
}

/// Our side of a datagram session: the UDP socket the router forwards to, the bridge's
/// UDP port we send to, and what the router is (size cap, I2CP ports).
struct Endpoint {
    socket: UdpSocket,
    forward: SocketAddr,
    bridge: SocketAddr,
    kind: BridgeKind,
    ports: bool,
    buffer: usize,
}

impl Endpoint {
    /// Asks the bridge which IP it reaches us at (our end of a control connection) and
    /// which router it is, then binds our socket on that IP. `subsessions`: datagram
    /// subsessions of a PRIMARY session, whose I2CP ports also depend on
    /// [`SamConfig::datagram_ports`].
    async fn prepare(cfg: &SamConfig, subsessions: bool) -> Result<Self, CoreError> {
        let probe = SamConn::open(&cfg.addr, cfg.command_timeout).await?;
        let local_ip = probe
            .local_addr()
            .map_err(|e| CoreError::Io(format!("SAM bridge connection: {e}")))?
            .ip();
        let kind = BridgeKind::from_hello_version(probe.version());
        let ports = bridge_has_ports(probe.version()) && (!subsessions || cfg.datagram_ports);
        let buffer = cfg.datagram_buffer.unwrap_or_else(|| kind.udp_buffer());
        drop(probe);
        let bridge = resolve_bridge(cfg, local_ip).await?;
        let socket = bind_udp(local_ip)?;
        let forward = socket
            .local_addr()
            .map_err(|e| CoreError::Io(format!("datagram socket: {e}")))?;
        Ok(Self {
            socket,
            forward,
            bridge,
            kind,
            ports,
            buffer,
        })
    }
}

impl SamDatagramSession {
    fn new(
        link: Arc<Link>,
        cfg: Arc<SamConfig>,
        ep: Endpoint,
        style: DatagramStyle,
        max_id_len: usize,
        claim: Option<Claim>,
        sub_ports: Option<tokio::sync::Mutex<std::collections::HashSet<u16>>>,
    ) -> Self {
        Self {
            link,
            cfg,
            socket: ep.socket,
            bridge: ep.bridge,
            style,
            ports: ep.ports,
            port_memory: std::sync::Mutex::new(PortMemory::default()),
            limit: UdpLimit {
                buffer: ep.buffer,
                max_id_len,
            },
            cancel: CancellationToken::new(),
            closed: AtomicBool::new(false),
            buf: tokio::sync::Mutex::new(vec![0u8; MAX_UDP_DATAGRAM]),
            dropped: AtomicU64::new(0),
            claim: std::sync::Mutex::new(claim),
            sub_ports,
        }
    }
}

/// The bridge's UDP address, resolved (the address family of `local` first).
async fn resolve_bridge(cfg: &SamConfig, local: IpAddr) -> Result<SocketAddr, CoreError> {
    let addr = cfg.udp_bridge().map_err(CoreError::Router)?;
    let found: Vec<SocketAddr> = tokio::net::lookup_host(addr.as_str())
        .await
        .map_err(|e| CoreError::RouterUnavailable(format!("SAM UDP bridge {addr}: {e}")))?
        .collect();
    found
        .iter()
        .find(|a| a.is_ipv4() == local.is_ipv4())
        .or_else(|| found.first())
        .copied()
        .ok_or_else(|| CoreError::RouterUnavailable(format!("SAM UDP bridge {addr}: no address")))
}

/// Our UDP socket on `ip`, port chosen by the system, with a large receive buffer.
fn bind_udp(ip: IpAddr) -> Result<UdpSocket, CoreError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let io = |e: std::io::Error| CoreError::Io(format!("datagram socket: {e}"));
    let addr = SocketAddr::new(ip, 0);
    let socket =
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(io)?;
    // best effort: the kernel caps it at net.core.rmem_max
    let _ = socket.set_recv_buffer_size(RECV_BUFFER);
    socket.set_nonblocking(true).map_err(io)?;
    socket.bind(&addr.into()).map_err(io)?;
    UdpSocket::from_std(socket.into()).map_err(io)
}

/// One UDP tunnel's SAM datagram session.
pub(crate) struct SamDatagramSession {
    link: Arc<Link>,
    cfg: Arc<SamConfig>,
    /// receives what the router forwards; sends to the bridge
    socket: UdpSocket,
    /// the bridge's UDP port
    bridge: SocketAddr,
    style: DatagramStyle,
    /// the bridge knows I2CP ports (SAM 3.2+); else none are written
    ports: bool,
    /// without ports: what we last sent to each peer, to give its replies
    port_memory: std::sync::Mutex<PortMemory>,
    limit: UdpLimit,
    cancel: CancellationToken,
    closed: AtomicBool,
    /// the receive buffer (one reader at a time)
    buf: tokio::sync::Mutex<Vec<u8>>,
    /// forwarded datagrams dropped: not from the bridge, or unparsable (shown by `Debug`;
    /// the seam has no counter for them, each drop is logged at debug level)
    dropped: AtomicU64,
    claim: std::sync::Mutex<Option<Claim>>,
    /// on a PRIMARY session: the I2CP ports whose datagram subsession was added
    sub_ports: Option<tokio::sync::Mutex<std::collections::HashSet<u16>>>,
}

impl fmt::Debug for SamDatagramSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SamDatagramSession")
            .field("link", &self.link)
            .field("style", &self.style)
            .field("ports", &self.ports)
            .field("bridge", &self.bridge)
            .field("forward", &self.socket.local_addr().ok())
            .field("max_payload", &self.limit.max_payload())
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Drop for SamDatagramSession {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl SamDatagramSession {
    /// The session id for datagrams from I2CP port `from_port` (on a PRIMARY session:
    /// its subsession's, added first when it is new).
    async fn sender_id(&self, from_port: u16) -> Result<Arc<str>, DatagramError> {
        let Some(ports) = &self.sub_ports else {
            return self.current_id();
        };
        if self.closed.load(Ordering::Acquire) {
            return Err(DatagramError::Closed);
        }
        {
            let mut added = ports.lock().await;
            if !added.contains(&from_port) {
                let forward = self
                    .socket
                    .local_addr()
                    .map_err(|e| DatagramError::Io(format!("datagram socket: {e}")))?;
                self.link
                    .add_datagram_sub(DatagramSub {
                        port: from_port,
                        style: session_style(self.style),
                        forward,
                    })
                    .await
                    .map_err(|e| DatagramError::Router(e.to_string()))?;
                added.insert(from_port);
            }
        }
        Self::id_of(self.link.datagram_sub_id(from_port))
    }

    fn current_id(&self) -> Result<Arc<str>, DatagramError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(DatagramError::Closed);
        }
        Self::id_of(self.link.state())
    }

    fn id_of(state: LinkState) -> Result<Arc<str>, DatagramError> {
        match state {
            LinkState::Up(id) => Ok(id),
            LinkState::Down(reason) => Err(DatagramError::Router(format!(
                "router unavailable: {reason}"
            ))),
            LinkState::Closed => Err(DatagramError::Closed),
        }
    }

    async fn do_send(
        &self,
        to: &Destination,
        from_port: u16,
        to_port: u16,
        payload: &[u8],
    ) -> Result<(), DatagramError> {
        let max = self.limit.max_payload();
        if payload.len() > max {
            return Err(DatagramError::Oversize {
                size: payload.len(),
                max,
            });
        }
        // SAM 3.1 has no ports: sent without them (see `bridge_has_ports`), and
        // remembered so that the peer's replies get them back
        let (from_port, to_port) = if self.ports {
            (from_port, to_port)
        } else {
            if let Ok(mut memory) = self.port_memory.lock() {
                memory.sent(to.hash(), from_port, to_port);
            }
            (0, 0)
        };
        let id = self.sender_id(from_port).await?;
        let header = send_header(&id, &to.to_base64(), from_port, to_port);
        if !self.limit.fits(header.len(), payload.len()) {
            return Err(DatagramError::Oversize {
                size: payload.len(),
                max: self.limit.buffer.saturating_sub(header.len()),
            });
        }
        let mut packet = Vec::with_capacity(header.len() + payload.len());
        packet.extend_from_slice(header.as_bytes());
        packet.extend_from_slice(payload);
        self.socket
            .send_to(&packet, self.bridge)
            .await
            .map_err(|e| DatagramError::Io(format!("sending to the SAM UDP bridge: {e}")))?;
        Ok(())
    }

    async fn do_recv(&self) -> Result<Datagram, DatagramError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(DatagramError::Closed);
        }
        let mut state = self.link.watch();
        let mut buf = tokio::select! {
            () = self.cancel.cancelled() => return Err(DatagramError::Closed),
            b = self.buf.lock() => b,
        };
        loop {
            let (n, from) = tokio::select! {
                () = self.cancel.cancelled() => return Err(DatagramError::Closed),
                _ = state.wait_for(|s| *s == LinkState::Closed) => return Err(DatagramError::Closed),
                r = self.socket.recv_from(&mut buf[..]) => r.map_err(|e| {
                    DatagramError::Io(format!("receiving from the SAM bridge: {e}"))
                })?,
            };
            if !from_bridge(from.ip(), self.bridge.ip()) {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                debug!(%from, "dropping a datagram that is not from the SAM bridge");
                continue;
            }
            match parse_forwarded(self.style, Bytes::copy_from_slice(&buf[..n])) {
                Ok(f) => {
                    let (mut from_port, mut to_port) = (f.from_port, f.to_port);
                    if !self.ports
                        && let Some(from) = &f.from
                        && let Some((ours, theirs)) = self
                            .port_memory
                            .lock()
                            .ok()
                            .and_then(|m| m.reply_ports(&from.hash()))
                    {
                        (from_port, to_port) = (theirs, ours);
                    }
                    return Ok(Datagram {
                        from: f.from,
                        style: self.style,
                        from_port,
                        to_port,
                        payload: f.payload,
                    });
                }
                Err(e) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    debug!(error = %e, "dropping a forwarded datagram");
                }
            }
        }
    }

    async fn do_close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.cancel.cancel();
        if self.sub_ports.is_some() {
            // the PRIMARY session belongs to its stream tunnel
            if let Ok(forward) = self.socket.local_addr() {
                self.link.forget_datagram_subs(forward);
            }
            return;
        }
        // closing the control socket ends the session on the router
        self.link.shutdown().await;
        let claim = self.claim.lock().ok().and_then(|mut c| c.take());
        drop(claim);
    }
}

/// I2CP ports for a bridge that has none (SAM 3.1, i2pd 2.45): every datagram arrives
/// with ports 0, so a tunnel could not tell which local conversation a reply is for. As
/// i2pd's own UDP tunnels do, the ports of the last datagram sent to a peer are
/// remembered, and a repliable datagram from that peer is given them mirrored (its
/// to-port = our last from-port). Exact for one conversation per peer; with several,
/// replies go to the most recent one (the bridge carries nothing to tell them apart).
#[derive(Debug, Default)]
struct PortMemory {
    /// peer hash -> (our from-port, their to-port, age stamp)
    peers: std::collections::HashMap<[u8; 32], (u16, u16, u64)>,
    stamp: u64,
}

impl PortMemory {
    fn sent(&mut self, peer: [u8; 32], from_port: u16, to_port: u16) {
        if from_port == 0 && to_port == 0 && !self.peers.contains_key(&peer) {
            return;
        }
        self.stamp += 1;
        if self.peers.len() >= MAX_PORT_MEMORY
            && !self.peers.contains_key(&peer)
            && let Some(oldest) = self
                .peers
                .iter()
                .min_by_key(|(_, (_, _, age))| *age)
                .map(|(k, _)| *k)
        {
            self.peers.remove(&oldest);
        }
        self.peers.insert(peer, (from_port, to_port, self.stamp));
    }

    /// (our port, their port) for a datagram from `peer`.
    fn reply_ports(&self, peer: &[u8; 32]) -> Option<(u16, u16)> {
        self.peers
            .get(peer)
            .map(|&(ours, theirs, _)| (ours, theirs))
    }
}

/// Whether a datagram from `from` may be the bridge forwarding: the bridge's own IP, or
/// any loopback address when the bridge is on loopback (emissary forwards from another
/// socket than its UDP port).
fn from_bridge(from: IpAddr, bridge: IpAddr) -> bool {
    from == bridge || (from.is_loopback() && bridge.is_loopback())
}

impl DatagramSession for SamDatagramSession {
    fn destination(&self) -> &Destination {
        self.link.destination()
    }

    fn max_payload(&self) -> usize {
        self.limit.max_payload()
    }

    fn send_to<'a>(
        &'a self,
        to: &'a Destination,
        _style: DatagramStyle,
        from_port: u16,
        to_port: u16,
        payload: &'a [u8],
    ) -> BoxFuture<'a, Result<(), DatagramError>> {
        Box::pin(self.do_send(to, from_port, to_port, payload))
    }

    fn recv(&self) -> BoxFuture<'_, Result<Datagram, DatagramError>> {
        Box::pin(self.do_recv())
    }

    fn lookup<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Destination, DatagramError>> {
        Box::pin(async move {
            if self.closed.load(Ordering::Acquire) {
                return Err(DatagramError::Closed);
            }
            // retried for a while: a new destination's LeaseSet may not be published yet
            let deadline = tokio::time::Instant::now() + self.cfg.connect_retry;
            resolve_until(&self.cfg, name, Some(deadline))
                .await
                .map_err(lookup_error)
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.do_close())
    }
}

/// A lookup failure as the datagram seam reports it.
fn lookup_error(e: CoreError) -> DatagramError {
    match e {
        CoreError::NotFound => DatagramError::NotFound,
        CoreError::Closed => DatagramError::Closed,
        e => DatagramError::Router(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_bridge_may_forward() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let lo2: IpAddr = "127.0.0.2".parse().unwrap();
        let lan: IpAddr = "192.168.1.2".parse().unwrap();
        assert!(from_bridge(lo, lo));
        assert!(from_bridge(lo2, lo));
        assert!(!from_bridge(lan, lo));
        assert!(from_bridge(lan, lan));
        assert!(!from_bridge(lo, lan));
    }

    #[test]
    fn udp_bridge_defaults_to_the_port_below() {
        let cfg = SamConfig::new("127.0.0.1:7656");
        assert_eq!(cfg.udp_bridge().unwrap(), "127.0.0.1:7655");
        let mut cfg = SamConfig::new("[::1]:17756");
        assert_eq!(cfg.udp_bridge().unwrap(), "[::1]:17755");
        cfg.udp_addr = Some("127.0.0.1:7655".into());
        assert_eq!(cfg.udp_bridge().unwrap(), "127.0.0.1:7655");
        assert!(SamConfig::new("h:1").udp_bridge().is_err());
    }

    #[test]
    fn port_memory_mirrors_the_last_send_and_is_bounded() {
        let mut m = PortMemory::default();
        let (p, q) = ([1u8; 32], [2u8; 32]);
        assert_eq!(m.reply_ports(&p), None);
        m.sent(p, 0, 0);
        assert_eq!(m.reply_ports(&p), None, "ports 0 need no memory");
        m.sent(p, 5000, 7);
        m.sent(p, 5001, 7);
        assert_eq!(m.reply_ports(&p), Some((5001, 7)));
        m.sent(q, 6000, 0);
        assert_eq!(m.reply_ports(&q), Some((6000, 0)));
        for i in 0..MAX_PORT_MEMORY as u32 {
            let mut k = [0u8; 32];
            k[..4].copy_from_slice(&i.to_be_bytes());
            k[31] = 9;
            m.sent(k, 1, 1);
        }
        assert!(m.peers.len() <= MAX_PORT_MEMORY);
        assert_eq!(m.reply_ports(&p), None, "the oldest went first");
    }

    #[test]
    fn lookup_errors() {
        assert_eq!(lookup_error(CoreError::NotFound), DatagramError::NotFound);
        assert!(matches!(
            lookup_error(CoreError::Timeout),
            DatagramError::Router(_)
        ));
    }
}
