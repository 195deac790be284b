//! [`RunningTunnel`]: starting a stream tunnel, running and stopping it.

use super::*;

/// A started tunnel: the backend session, the inbound listener (if any) and the
/// outbound acceptor (if any), with their connections.
///
/// Dropping a `RunningTunnel` without [`RunningTunnel::stop`] still cancels its tasks
/// (connections end, the listener closes soon after), but does not wait for them.
#[derive(Debug)]
pub struct RunningTunnel {
    nickname: String,
    destination: Destination,
    session: Arc<dyn Session>,
    inbound_addr: Option<SocketAddr>,
    shared: TunnelContext,
}

impl RunningTunnel {
    /// Starts a tunnel: binds the inbound listener (if `spec.inbound` is set), opens the
    /// backend session, then starts accepting on both sides. Returns only once the
    /// listener is bound and the session is up.
    ///
    /// The listener is bound first so that a busy port fails fast, before a possibly
    /// slow session is built; it accepts at once, and connections made while the
    /// session comes up are held (their destination line read) until it is up, bounded
    /// by `limits.connect_timeout`.
    ///
    /// # Errors
    /// - [`StartError::UnknownHost`]: `inhost` does not resolve;
    /// - [`StartError::Bind`]: no address of `inhost` could be bound (OS error text);
    /// - [`StartError::Core`]: the backend refused the session;
    /// - [`StartError::Timeout`]: the session took longer than `limits.session_timeout`.
    pub async fn start(
        core: Arc<dyn StreamingCore>,
        spec: TunnelSpec,
        limits: TunnelLimits,
    ) -> Result<Self, StartError> {
        Self::start_with(
            TunnelKind::Stream,
            core,
            spec,
            limits,
            StartControl::detached(),
        )
        .await
    }

    /// [`RunningTunnel::start`] for a tunnel of `kind` (the kind decides which tasks
    /// run on the listener and the session, [`TunnelKind`]), reporting the end of the
    /// synchronous part through `control` and giving up when it is cancelled.
    ///
    /// # Errors
    /// As [`RunningTunnel::start`], and [`StartError::Stopped`] when cancelled. Held
    /// connections are told the reason (`ERROR <reason>`) and the port is released
    /// (bounded by [`STOP_GRACE`]) before this returns an error.
    pub async fn start_with(
        kind: TunnelKind,
        core: Arc<dyn StreamingCore>,
        spec: TunnelSpec,
        limits: TunnelLimits,
        mut control: StartControl,
    ) -> Result<Self, StartError> {
        let span = tracing::info_span!("tunnel", nick = %spec.nickname);
        async move {
            let listener = match &spec.inbound {
                Some(endpoint) => Some(bind(endpoint).await?),
                None => None,
            };
            let inbound_addr = match &listener {
                Some(l) => Some(
                    l.local_addr()
                        .map_err(|e| StartError::Bind(e.to_string()))?,
                ),
                None => None,
            };
            let (slot_tx, slot_rx) = tokio::sync::watch::channel(SlotState::Pending);
            let cancel = CancellationToken::new();
            let shared = TunnelContext {
                session: SessionSlot(slot_rx),
                limits,
                stats: Arc::default(),
                accepting: cancel.child_token(),
                cancel,
                tracker: TaskTracker::new(),
            };
            if let Some(listener) = listener {
                kind.run_inbound(&shared, listener, &spec, &core);
            }
            control.bound();
            // a SOCKS tunnel's destination may also need a datagram session (UDP
            // ASSOCIATE); other tunnels keep plain sessions
            let open_session = if kind == TunnelKind::Socks {
                core.open_session_sharing(spec.keys.clone(), spec.options.clone())
            } else {
                core.open_session(spec.keys.clone(), spec.options.clone())
            };
            let open = tokio::time::timeout(shared.limits.session_timeout, open_session);
            // Dropping `open` on cancel closes the backend's half-built session (for
            // SAM: its control socket, which makes the router abandon it).
            let opened = tokio::select! {
                biased;
                () = control.cancelled().cancelled() => Err(StartError::Stopped),
                r = open => r.map_err(|_| StartError::Timeout).and_then(|r| r.map_err(StartError::from)),
            };
            let session = match opened {
                Ok(session) => session,
                Err(e) => {
                    abandon(&shared, slot_tx, &e).await;
                    return Err(e);
                }
            };
            let destination = session.destination().clone();
            let _ = slot_tx.send(SlotState::Ready(session.clone()));
            let outbound = spec.outbound.clone().map(|target| (target, spec.quiet));
            kind.run_outbound(&shared, session.clone(), outbound);
            tracing::info!(
                %kind,
                b32 = %destination.b32(),
                inbound = ?inbound_addr,
                outbound = ?spec.outbound,
                quiet = spec.quiet,
                "tunnel started"
            );
            Ok(Self {
                nickname: spec.nickname,
                destination,
                session,
                inbound_addr,
                shared,
            })
        }
        .instrument(span)
        .await
    }

    /// Stops the tunnel: closes the listener, ends live connections, closes the session,
    /// and waits (at most [`STOP_GRACE`]) for its tasks to finish. When this returns
    /// the inbound port can be bound again (unless a task overran the grace period,
    /// which is logged).
    pub async fn stop(self) {
        let span = tracing::info_span!("tunnel", nick = %self.nickname);
        async {
            self.shared.cancel.cancel();
            self.shared.tracker.close();
            self.session.close().await;
            if tokio::time::timeout(STOP_GRACE, self.shared.tracker.wait())
                .await
                .is_err()
            {
                tracing::warn!(
                    tasks = self.shared.tracker.len(),
                    "tunnel tasks still running after stop grace period"
                );
            }
            tracing::info!(stats = ?self.shared.stats.snapshot(), "tunnel stopped");
        }
        .instrument(span)
        .await;
    }

    /// The tunnel's public destination.
    pub fn destination(&self) -> &Destination {
        &self.destination
    }

    /// The backend session (for `lookup`/`ping` through this tunnel).
    pub fn session(&self) -> &Arc<dyn Session> {
        &self.session
    }

    /// The address the inbound listener is bound to, if the tunnel has an inbound side.
    pub fn inbound_addr(&self) -> Option<SocketAddr> {
        self.inbound_addr
    }

    /// The tunnel's nickname.
    pub fn nickname(&self) -> &str {
        &self.nickname
    }

    /// Live counters of this tunnel.
    pub fn stats(&self) -> &Arc<TunnelStats> {
        &self.shared.stats
    }
}

impl Drop for RunningTunnel {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
        self.shared.tracker.close();
    }
}

/// A start that did not come up: held connections are told `error` (they write
/// `ERROR <error>` and close), the listener closes, and the tasks get [`STOP_GRACE`]
/// to end before they are cancelled, so the port is free when this returns.
async fn abandon(
    shared: &TunnelContext,
    slot: tokio::sync::watch::Sender<SlotState>,
    error: &StartError,
) {
    let _ = slot.send(SlotState::Failed(error.to_string()));
    shared.accepting.cancel();
    shared.tracker.close();
    if tokio::time::timeout(STOP_GRACE, shared.tracker.wait())
        .await
        .is_err()
    {
        shared.cancel.cancel();
        shared.tracker.wait().await;
    }
    shared.cancel.cancel();
}

/// Binds the inbound listener: the first address of `endpoint.host` that binds,
/// IPv4 addresses before IPv6 ones.
async fn bind(endpoint: &Endpoint) -> Result<TcpListener, StartError> {
    let mut addrs: Vec<SocketAddr> =
        tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(|_| StartError::UnknownHost(endpoint.host.clone()))?
            .collect();
    // IPv4 first, as Java does: `localhost` must mean 127.0.0.1, where applications
    // written for BOB connect, even when the resolver lists ::1 first.
    addrs.sort_by_key(|addr| !addr.is_ipv4());
    let mut last_error = None;
    for addr in addrs {
        match listen(addr).await {
            Ok(listener) => return Ok(listener),
            Err(e) => {
                tracing::debug!(%addr, error = %e, "cannot bind");
                last_error = Some(e);
            }
        }
    }
    Err(match last_error {
        Some(e) => StartError::Bind(e.to_string()),
        None => StartError::UnknownHost(endpoint.host.clone()),
    })
}
