//! A SAM session on the router ([`Link`]: control socket kept alive and re-created by a
//! supervisor task) and the [`Session`] handle a tunnel holds ([`SamSession`]: connect,
//! a pool of background `STREAM ACCEPT`s, lookups).

mod streams;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keytools::{Destination, PrivateKeys};
use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub(crate) use self::streams::resolve_until;
use self::streams::{acceptor, stream_connect};
use super::SamConfig;
use super::conn::{SamConn, with_timeout};
use super::proto::{ResultCode, SamError, peer_line, shorten};
use crate::backend::{BoxFuture, BoxStream, CoreError, Incoming, Options, Session, Target};

/// How long `accept` waits for a down router to come back before it fails.
const DOWN_ACCEPT_WAIT: Duration = Duration::from_secs(1);
/// Backoff of an acceptor whose own `STREAM ACCEPT` failed while the session is up.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(250);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Where a SAM session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LinkState {
    /// `SESSION CREATE` succeeded under this session id; the control socket is open.
    Up(Arc<str>),
    /// The control socket broke; the supervisor is re-creating the session.
    Down(String),
    /// Shut down for good.
    Closed,
}

/// One `SESSION CREATE` on the router, kept alive: a supervisor task owns the control
/// socket, answers `PING`s, and re-creates the session with backoff when the socket
/// breaks (router restart). Dropping the last `Arc<Link>` closes the control socket.
pub(crate) struct Link {
    destination: Destination,
    state: watch::Receiver<LinkState>,
    cancel: CancellationToken,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// a PRIMARY session: its datagram subsessions are added through this channel to
    /// the supervisor, which owns the control socket
    subs: Option<mpsc::Sender<SubCommand>>,
}

/// A datagram subsession of a PRIMARY session: `SESSION ADD STYLE=<style>
/// ID=<primary>-d<port> FROM_PORT=<port> PORT=… HOST=…`. The router hands it the
/// datagrams to I2CP port `port` (emissary routes by exact to-port, so each I2CP port
/// a tunnel sends from gets its own subsession, all forwarding to the same socket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DatagramSub {
    pub(crate) port: u16,
    pub(crate) style: &'static str,
    pub(crate) forward: std::net::SocketAddr,
}

/// What the supervisor of a PRIMARY session is asked to do.
#[derive(Debug)]
pub(crate) enum SubCommand {
    /// `SESSION ADD` a datagram subsession (and again after a re-creation)
    Add(
        DatagramSub,
        tokio::sync::oneshot::Sender<Result<(), SamError>>,
    ),
    /// stop re-adding the subsessions forwarding to this address (their session closed;
    /// the router keeps them until the primary session ends: SAM has no portable
    /// `SESSION REMOVE`, emissary 0.4 knows none)
    Forget(std::net::SocketAddr),
}

/// The id of subsession `suffix` of the PRIMARY session whose stream subsession is
/// `stream_id` (`<primary>-s`).
fn sub_id(stream_id: &str, suffix: &str) -> String {
    let base = stream_id.strip_suffix("-s").unwrap_or(stream_id);
    format!("{base}-{suffix}")
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("destination", &self.destination)
            .field("state", &*self.state.borrow())
            .finish()
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Link {
    /// Creates a session of `style` (returns after `SESSION STATUS RESULT=OK`) and
    /// starts its supervisor (a datagram session re-created by the supervisor keeps its
    /// forwarding address, a PRIMARY session its subsessions).
    ///
    /// # Errors
    /// The router's refusal, [`SamError::Timeout`] after `cfg.session_timeout`, or
    /// [`SamError::Unavailable`].
    pub(crate) async fn create_styled(
        cfg: Arc<SamConfig>,
        keys: &PrivateKeys,
        style: LinkStyle,
        options: Options,
    ) -> Result<Arc<Self>, SamError> {
        let keys_b64 = SecretB64(keys.to_base64());
        let (conn, id) = create_session(&cfg, &keys_b64.0, &style, &options, &[]).await?;
        let (tx, rx) = watch::channel(LinkState::Up(id));
        let cancel = CancellationToken::new();
        let (subs, sub_rx) = if style == LinkStyle::Primary {
            let (stx, srx) = mpsc::channel(16);
            (Some(stx), Some(srx))
        } else {
            (None, None)
        };
        let supervisor = Supervisor {
            cfg,
            keys_b64,
            style,
            options,
            state: tx,
            cancel: cancel.clone(),
            sub_rx,
            datagram_subs: Vec::new(),
        };
        let task = tokio::spawn(supervisor.run(conn));
        Ok(Arc::new(Self {
            destination: keys.destination().clone(),
            state: rx,
            cancel,
            task: std::sync::Mutex::new(Some(task)),
            subs,
        }))
    }

    /// Whether this is a PRIMARY session (datagram subsessions can be added).
    pub(crate) fn is_primary(&self) -> bool {
        self.subs.is_some()
    }

    /// Adds datagram subsession `sub` (kept, and added again when the session is
    /// re-created); resolves once the router answered.
    ///
    /// # Errors
    /// The router's refusal, or [`SamError::Unavailable`] when the session is down or
    /// not a PRIMARY session.
    pub(crate) async fn add_datagram_sub(&self, sub: DatagramSub) -> Result<(), SamError> {
        let tx = self
            .subs
            .as_ref()
            .ok_or_else(|| SamError::Unavailable("not a PRIMARY session".into()))?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        tx.send(SubCommand::Add(sub, reply))
            .await
            .map_err(|_| SamError::Unavailable("SAM session closed".into()))?;
        answer
            .await
            .map_err(|_| SamError::Unavailable("SAM session closed".into()))?
    }

    /// Stops re-adding the datagram subsessions that forward to `forward`.
    pub(crate) fn forget_datagram_subs(&self, forward: std::net::SocketAddr) {
        if let Some(tx) = &self.subs {
            let _ = tx.try_send(SubCommand::Forget(forward));
        }
    }

    /// The id of the datagram subsession for I2CP port `port`, while the session is up.
    pub(crate) fn datagram_sub_id(&self, port: u16) -> LinkState {
        match self.state() {
            LinkState::Up(id) => LinkState::Up(Arc::from(sub_id(&id, &format!("d{port}")))),
            other => other,
        }
    }

    /// The session's destination.
    pub(crate) fn destination(&self) -> &Destination {
        &self.destination
    }

    /// The current state.
    pub(crate) fn state(&self) -> LinkState {
        self.state.borrow().clone()
    }

    /// Closes the control socket and waits until it is closed.
    pub(crate) async fn shutdown(&self) {
        self.cancel.cancel();
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    pub(crate) fn watch(&self) -> watch::Receiver<LinkState> {
        self.state.clone()
    }
}

/// The longest id [`session_id`] makes: `bob` + two 8-digit hex numbers + a 20-digit
/// counter + two separators (datagram headers carry the id; their size cap allows for it).
pub(crate) const MAX_SESSION_ID_LEN: usize = 3 + 8 + 1 + 8 + 1 + 20;

/// The longest datagram subsession id: a session id + `-d65535`.
pub(crate) const MAX_SUB_ID_LEN: usize = MAX_SESSION_ID_LEN + 7;

/// A fresh, unique session id (`ID=`); unique per process and across processes sharing
/// a router.
fn session_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
        .unwrap_or_default();
    format!("bob{:x}x{:x}x{n}", std::process::id(), nanos)
}

/// What kind of session a [`Link`] holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LinkStyle {
    /// `STYLE=STREAM`
    Stream,
    /// `STYLE=PRIMARY` with a `STREAM` subsession `<id>-s` (the id streams use), for a
    /// destination that may also carry datagram subsessions (SAM 3.3)
    Primary,
    /// `STYLE=DATAGRAM|RAW PORT=… HOST=…`: datagrams forwarded to that UDP address.
    Datagram {
        /// the `STYLE=` value
        style: &'static str,
        /// where the router forwards the session's datagrams
        forward: std::net::SocketAddr,
    },
}

/// `HELLO` + `SESSION CREATE STYLE=… ID=… DESTINATION=<keys> [PORT= HOST=] <options>`.
async fn create_session(
    cfg: &SamConfig,
    keys_b64: &str,
    link_style: &LinkStyle,
    options: &Options,
    subs: &[DatagramSub],
) -> Result<(SamConn, Arc<str>), SamError> {
    with_timeout(cfg.session_timeout, async {
        let mut conn = SamConn::open(&cfg.addr, cfg.session_timeout).await?;
        let id = session_id();
        let (style, port, host) = match link_style {
            LinkStyle::Stream => ("STREAM", None, None),
            LinkStyle::Primary => ("PRIMARY", None, None),
            LinkStyle::Datagram { style, forward } => (
                *style,
                Some(forward.port().to_string()),
                Some(forward.ip().to_string()),
            ),
        };
        let forward = port
            .as_deref()
            .map(|p| ("PORT", p))
            .into_iter()
            .chain(host.as_deref().map(|h| ("HOST", h)));
        let pairs = [
            ("STYLE", style),
            ("ID", id.as_str()),
            ("DESTINATION", keys_b64),
        ]
        .into_iter()
        .chain(forward)
        .chain(options.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        conn.call("SESSION CREATE", pairs, "SESSION STATUS").await?;
        debug!(session = %id, "SAM session created");
        if *link_style != LinkStyle::Primary {
            return Ok((conn, Arc::from(id)));
        }
        // FROM_PORT is sent although 0 is its default: i2pd 2.45 never answers an ADD
        // without it
        let stream_id = format!("{id}-s");
        conn.call(
            "SESSION ADD",
            [
                ("STYLE", "STREAM"),
                ("ID", stream_id.as_str()),
                ("FROM_PORT", "0"),
            ],
            "SESSION STATUS",
        )
        .await?;
        for sub in subs {
            add_sub(&mut conn, &stream_id, sub).await?;
        }
        Ok((conn, Arc::from(stream_id)))
    })
    .await
}

/// `SESSION ADD` of datagram subsession `sub` on a PRIMARY session's control socket.
async fn add_sub(conn: &mut SamConn, stream_id: &str, sub: &DatagramSub) -> Result<(), SamError> {
    let id = sub_id(stream_id, &format!("d{}", sub.port));
    let (port, from_port, host) = (
        sub.forward.port().to_string(),
        sub.port.to_string(),
        sub.forward.ip().to_string(),
    );
    conn.call(
        "SESSION ADD",
        [
            ("STYLE", sub.style),
            ("ID", id.as_str()),
            ("FROM_PORT", from_port.as_str()),
            ("PORT", port.as_str()),
            ("HOST", host.as_str()),
        ],
        "SESSION STATUS",
    )
    .await?;
    debug!(subsession = %id, "SAM datagram subsession added");
    Ok(())
}

/// The task that owns a session's control socket.
struct Supervisor {
    cfg: Arc<SamConfig>,
    keys_b64: SecretB64,
    style: LinkStyle,
    options: Options,
    state: watch::Sender<LinkState>,
    cancel: CancellationToken,
    /// commands of a PRIMARY session's handles
    sub_rx: Option<mpsc::Receiver<SubCommand>>,
    /// the datagram subsessions added, re-added with the session
    datagram_subs: Vec<DatagramSub>,
}

/// The next command for a PRIMARY session's supervisor (never, for other sessions).
async fn next_command(rx: &mut Option<mpsc::Receiver<SubCommand>>) -> Option<SubCommand> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The private-key blob as sent in `DESTINATION=`; wiped when dropped (best effort: do
/// not leave private keys in freed memory).
struct SecretB64(String);

impl Drop for SecretB64 {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.fill(0);
        std::hint::black_box(&bytes);
    }
}

impl Supervisor {
    /// Carries out `command` on the control socket `conn` (or refuses it while down).
    async fn command(&mut self, conn: Option<&mut SamConn>, command: SubCommand) {
        match command {
            SubCommand::Forget(forward) => self.datagram_subs.retain(|s| s.forward != forward),
            SubCommand::Add(sub, reply) => {
                let stream_id = match &*self.state.borrow() {
                    LinkState::Up(id) => Some(Arc::clone(id)),
                    _ => None,
                };
                let result = match (conn, stream_id) {
                    (Some(c), Some(id)) => {
                        with_timeout(self.cfg.command_timeout, add_sub(c, &id, &sub)).await
                    }
                    _ => Err(SamError::Unavailable("SAM session is down".into())),
                };
                if result.is_ok() && !self.datagram_subs.contains(&sub) {
                    self.datagram_subs.push(sub);
                }
                let _ = reply.send(result);
            }
        }
    }

    async fn run(mut self, conn: SamConn) {
        let mut conn = Some(conn);
        let mut backoff = self.cfg.reconnect_min;
        loop {
            if let Some(c) = conn.as_mut() {
                // `read_line` keeps a partial line buffered: a command may interrupt it
                let event = tokio::select! {
                    () = self.cancel.cancelled() => break,
                    reason = watch_control(c) => Err(reason),
                    Some(command) = next_command(&mut self.sub_rx) => Ok(command),
                };
                let reason = match event {
                    Ok(command) => {
                        self.command(Some(c), command).await;
                        continue;
                    }
                    Err(reason) => reason,
                };
                warn!(%reason, "SAM session lost; re-creating it");
                conn = None;
                self.state.send_replace(LinkState::Down(reason));
                backoff = self.cfg.reconnect_min;
            } else {
                let sleep = tokio::time::sleep(backoff);
                tokio::pin!(sleep);
                loop {
                    let command = tokio::select! {
                        () = self.cancel.cancelled() => break,
                        () = &mut sleep => break,
                        Some(command) = next_command(&mut self.sub_rx) => command,
                    };
                    self.command(None, command).await;
                }
                if self.cancel.is_cancelled() {
                    break;
                }
                let attempt = tokio::select! {
                    () = self.cancel.cancelled() => break,
                    r = create_session(
                        &self.cfg,
                        &self.keys_b64.0,
                        &self.style,
                        &self.options,
                        &self.datagram_subs,
                    ) => r,
                };
                match attempt {
                    Ok((c, id)) => {
                        info!(session = %id, "SAM session re-created");
                        conn = Some(c);
                        self.state.send_replace(LinkState::Up(id));
                    }
                    Err(e) => {
                        debug!(error = %e, ?backoff, "re-creating the SAM session failed");
                        self.state
                            .send_replace(LinkState::Down(format!("re-creating session: {e}")));
                        backoff = (backoff * 2).min(self.cfg.reconnect_max);
                    }
                }
            }
        }
        self.state.send_replace(LinkState::Closed);
        // `conn` drops here: the control socket closes and the router ends the session
    }
}

/// Reads the control socket until it breaks; answers `PING` with `PONG`. Returns why
/// it ended.
async fn watch_control(conn: &mut SamConn) -> String {
    loop {
        match conn.read_line().await {
            Ok(line) => {
                if let Some(rest) = line.strip_prefix("PING")
                    && (rest.is_empty() || rest.starts_with(' '))
                {
                    if let Err(e) = conn.send(&format!("PONG{rest}")).await {
                        return e.to_string();
                    }
                    continue;
                }
                debug!(line = %shorten(&line), "ignoring line on SAM control socket");
            }
            Err(e) => return e.to_string(),
        }
    }
}

/// A tunnel's handle on a [`Link`]: what [`super::SamCore::open_session`] returns.
pub(crate) struct SamSession {
    link: Arc<Link>,
    core: Arc<super::SamState>,
    /// the options the link was created with (after merging defaults), for reuse
    options: Options,
    keys: PrivateKeys,
    incoming: Mutex<mpsc::Receiver<Incoming>>,
    /// cancelled by `close`: stops the acceptors and fails `accept` waiters
    cancel: CancellationToken,
    closed: AtomicBool,
    /// this destination is in use until `close` (or drop)
    claim: std::sync::Mutex<Option<super::Claim>>,
}

impl fmt::Debug for SamSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SamSession")
            .field("link", &self.link)
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Drop for SamSession {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl SamSession {
    /// Wraps `link` and starts `core.cfg.acceptors` background acceptors.
    pub(crate) fn start(
        core: Arc<super::SamState>,
        link: Arc<Link>,
        keys: PrivateKeys,
        options: Options,
        claim: super::Claim,
    ) -> Self {
        let n = core.cfg.acceptors.max(1);
        let (tx, rx) = mpsc::channel(n);
        let cancel = CancellationToken::new();
        for _ in 0..n {
            tokio::spawn(acceptor(
                Arc::clone(&core.cfg),
                link.watch(),
                tx.clone(),
                cancel.clone(),
            ));
        }
        Self {
            link,
            core,
            options,
            keys,
            incoming: Mutex::new(rx),
            cancel,
            closed: AtomicBool::new(false),
            claim: std::sync::Mutex::new(Some(claim)),
        }
    }

    fn current_id(&self) -> Result<Arc<str>, CoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(CoreError::Closed);
        }
        match self.link.state() {
            LinkState::Up(id) => Ok(id),
            LinkState::Down(reason) => Err(CoreError::RouterUnavailable(reason)),
            LinkState::Closed => Err(CoreError::Closed),
        }
    }

    async fn do_connect(&self, target: Target) -> Result<BoxStream, CoreError> {
        self.current_id()?;
        let cfg = &self.core.cfg;
        let deadline = tokio::time::Instant::now() + cfg.connect_retry;
        let dest = match target {
            Target::Destination(d) => d,
            Target::Name(name) => resolve_until(cfg, &name, Some(deadline)).await?,
        };
        let dest_b64 = dest.to_base64();
        loop {
            let id = self.current_id()?;
            match stream_connect(cfg, &id, &dest_b64).await {
                Ok(stream) => return Ok(stream),
                Err(e)
                    if matches!(
                        e.code(),
                        Some(ResultCode::CantReachPeer | ResultCode::PeerNotFound)
                    ) && tokio::time::Instant::now() + cfg.connect_retry_interval < deadline =>
                {
                    debug!(error = %e, "peer not reachable yet; retrying");
                    tokio::select! {
                        () = self.cancel.cancelled() => return Err(CoreError::Closed),
                        () = tokio::time::sleep(cfg.connect_retry_interval) => {}
                    }
                }
                // on a connect, the router's TIMEOUT is the peer's silence
                Err(e) if e.code() == Some(&ResultCode::Timeout) => {
                    return Err(CoreError::Unreachable(e.to_string()));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn do_accept(&self) -> Result<Incoming, CoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(CoreError::Closed);
        }
        let mut state = self.link.watch();
        // a router that is down right now gets a short chance to come back
        let up_now = matches!(&*state.borrow_and_update(), LinkState::Up(_));
        if !up_now {
            let waited = tokio::select! {
                () = self.cancel.cancelled() => return Err(CoreError::Closed),
                r = tokio::time::timeout(
                    DOWN_ACCEPT_WAIT,
                    state.wait_for(|s| !matches!(s, LinkState::Down(_))),
                ) => r,
            };
            match waited {
                Ok(Ok(s)) if matches!(&*s, LinkState::Up(_)) => {}
                Ok(_) => return Err(CoreError::Closed),
                Err(_) => {
                    return Err(match self.link.state() {
                        LinkState::Down(reason) => CoreError::RouterUnavailable(reason),
                        LinkState::Closed => CoreError::Closed,
                        LinkState::Up(_) => CoreError::RouterUnavailable("reconnecting".into()),
                    });
                }
            }
        }
        let mut incoming = tokio::select! {
            () = self.cancel.cancelled() => return Err(CoreError::Closed),
            guard = self.incoming.lock() => guard,
        };
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => Err(CoreError::Closed),
            next = incoming.recv() => next.ok_or(CoreError::Closed),
            s = state.wait_for(|s| !matches!(s, LinkState::Up(_))) => Err(match s.as_deref() {
                Ok(LinkState::Down(reason)) => CoreError::RouterUnavailable(reason.clone()),
                _ => CoreError::Closed,
            }),
        }
    }

    async fn do_close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.cancel.cancel();
        // streams accepted but not yet handed out are dropped: their peers see a close
        {
            let mut rx = self.incoming.lock().await;
            rx.close();
            while rx.try_recv().is_ok() {}
        }
        super::park(
            &self.core,
            &self.keys,
            self.options.clone(),
            Arc::clone(&self.link),
        )
        .await;
        // parked first, then released: a concurrent open finds one or the other
        let claim = self.claim.lock().ok().and_then(|mut c| c.take());
        drop(claim);
    }
}

impl Session for SamSession {
    fn destination(&self) -> &Destination {
        &self.link.destination
    }

    fn connect(&self, target: Target) -> BoxFuture<'_, Result<BoxStream, CoreError>> {
        Box::pin(self.do_connect(target))
    }

    fn accept(&self) -> BoxFuture<'_, Result<Incoming, CoreError>> {
        Box::pin(self.do_accept())
    }

    fn lookup(&self, name: &str) -> BoxFuture<'_, Result<Destination, CoreError>> {
        let name = name.to_owned();
        Box::pin(async move {
            if self.closed.load(Ordering::Acquire) {
                return Err(CoreError::Closed);
            }
            resolve_until(&self.core.cfg, &name, None).await
        })
    }

    /// SAM has no ping (SAM 3.3's `PING` is a keep-alive of the bridge connection, not
    /// a round trip to a destination): this times one `STREAM CONNECT` to `target`,
    /// from the command to the router's `RESULT=OK` (the streaming handshake with the
    /// peer), and closes the stream at once. No retries: an unreachable peer is an error.
    fn ping(&self, target: Target) -> BoxFuture<'_, Result<Duration, CoreError>> {
        Box::pin(async move {
            let id = self.current_id()?;
            let cfg = &self.core.cfg;
            let dest = match target {
                Target::Destination(d) => d,
                Target::Name(name) => resolve_until(cfg, &name, None).await?,
            };
            let started = tokio::time::Instant::now();
            match stream_connect(cfg, &id, &dest.to_base64()).await {
                Ok(stream) => {
                    let rtt = started.elapsed();
                    drop(stream);
                    Ok(rtt)
                }
                Err(e) if e.code() == Some(&ResultCode::Timeout) => {
                    Err(CoreError::Unreachable(e.to_string()))
                }
                Err(e) => Err(e.into()),
            }
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.do_close())
    }
}
