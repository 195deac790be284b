//! Socket binding and the background tasks of a started UDP tunnel.

use super::*;

/// Binds the inport: the first address of `endpoint.host` that binds, IPv4 first.
pub(super) async fn bind_inport(endpoint: &Endpoint) -> Result<UdpSocket, StartError> {
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
pub(super) fn grow_buffer(socket: &UdpSocket) {
    if let Err(error) = socket2::SockRef::from(socket).set_recv_buffer_size(SOCKET_BUFFER) {
        tracing::debug!(%error, "cannot grow the UDP receive buffer");
    }
}

/// Resolves `outhost:outport` (IPv4 first).
pub(super) async fn outport_target(endpoint: &Endpoint) -> Result<SocketAddr, StartError> {
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
pub(super) fn bind_towards(target: SocketAddr) -> std::io::Result<UdpSocket> {
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

/// Sends queued datagrams into I2P, paced.
pub(super) async fn send_loop(
    shared: Arc<Shared>,
    mut queued: mpsc::Receiver<Outgoing>,
    mut pacer: Pacer,
) {
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
pub(super) async fn recv_loop(shared: Arc<Shared>) {
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
pub(super) async fn inport_loop(shared: Arc<Shared>) {
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
pub(super) async fn header_reply_loop(shared: Arc<Shared>, socket: Arc<UdpSocket>) {
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
pub(super) async fn peer_reply_loop(
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
pub(super) async fn sweep_loop(shared: Arc<Shared>) {
    let every = (shared.idle / 4).clamp(Duration::from_millis(250), Duration::from_secs(30));
    loop {
        tokio::select! {
            () = shared.cancel.cancelled() => break,
            () = tokio::time::sleep(every) => {}
        }
        sweep(&shared);
    }
}

pub(super) fn sweep(shared: &Shared) {
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
