//! The shared state's data-path methods: peers, conversations, name lookups and
//! delivery in both directions.

use super::*;

impl Shared {
    pub(super) fn dropped(&self, reason: DropReason) {
        self.stats.udp.drop_one(reason);
        tracing::trace!(?reason, "datagram dropped");
    }

    pub(super) fn count_peers(&self) {
        let convos = self.inport.as_ref().map_or(0, |i| lock(&i.convos).len());
        let peers = self
            .outport
            .as_ref()
            .map_or(0, |o| lock(&o.peers).map.len());
        let n = (convos + peers) as u64;
        self.stats.udp.peers.store(n, Ordering::Relaxed);
        self.stats.active.store(n, Ordering::Relaxed);
    }

    pub(super) fn new_mapping(&self) {
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// The style of the next datagram to `to` on this port pair.
    pub(super) fn style_for(
        &self,
        to: &Destination,
        from_port: u16,
        to_port: u16,
    ) -> DatagramStyle {
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
    pub(super) fn enqueue(&self, to: Destination, from_port: u16, to_port: u16, payload: Bytes) {
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
    pub(super) fn send_named(
        self: &Arc<Self>,
        name: &str,
        from_port: u16,
        to_port: u16,
        payload: Bytes,
    ) {
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
    pub(super) fn fixed_dest(&self, fixed: &str) -> Option<Destination> {
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
    pub(super) async fn to_inport(
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
    pub(super) async fn deliver(
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
    pub(super) async fn to_outport(
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
    pub(super) fn peer_socket(
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
