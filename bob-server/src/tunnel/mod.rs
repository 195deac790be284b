//! A running tunnel: its session, the inbound listener and the outbound acceptor.
//!
//! This is the interface between the control side (registry, commands) and the data path:
//! ```text
//! RunningTunnel::start(core, spec, limits).await -> Result<RunningTunnel, StartError>
//! running.stop().await   // closes listener and session, ends live connections
//! ```
//!
//! # Tasks and shutdown
//! A running tunnel owns a [`CancellationToken`] and a [`TaskTracker`]. Its accept loops
//! (the TCP listener on the inbound side, `Session::accept` on the outbound side) and
//! every connection they hand off are tracked tasks that watch the token. `stop` cancels
//! the token (the listener is dropped, live connections are closed), closes the session
//! and waits, bounded by [`STOP_GRACE`], for the tasks to finish.
//!
//! # Data path
//! - Inbound (client side, [`TunnelSpec::inbound`]): an application connects to
//!   `inhost:inport` and sends one line: a base64 destination, a `.b32.i2p` address or a
//!   host name ending in `.i2p`. The tunnel connects to it and relays bytes both ways,
//!   starting with any bytes the application sent right after the line. On failure
//!   the application gets `ERROR <reason>\n` and the connection is closed.
//! - Outbound (server side, [`TunnelSpec::outbound`]): each incoming stream is connected
//!   to `outhost:outport`; unless `quiet`, the peer's base64 destination and `\n` are
//!   written first, then bytes are relayed both ways.
//! - The relay passes half-close on (see [`crate::backend::relay`]): no bytes in flight
//!   are lost.
//!
//! What runs on the listener and the session depends on the tunnel's [`TunnelKind`].

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keytools::{Destination, PrivateKeys};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::backend::relay::{RelayCounters, RelayEnd};
use crate::backend::{BoxFuture, BoxStream, CoreError, Options, Session, StreamingCore};

mod inbound;
mod kind;
mod outbound;
mod proxy;
mod running;
pub mod udp;

pub use kind::{TunnelKind, UnknownKind, is_server_option};
pub use running::RunningTunnel;
pub use udp::{UdpSnapshot, UdpTunnel};

#[cfg(feature = "fuzzing")]
pub(crate) use inbound::first_line_for_fuzzing;
#[cfg(feature = "fuzzing")]
pub(crate) use proxy::{
    SocksRequestHost, socks_handshake_for_fuzzing, socks_handshake_limit, socks_udp_header,
};

/// A started tunnel as the registry holds it.
///
/// Implemented by [`RunningTunnel`]; tests may supply their own.
pub trait ActiveTunnel: Send + Sync + fmt::Debug {
    /// The backend session (for `ping` through the tunnel's destination).
    fn session(&self) -> Arc<dyn Session>;

    /// Where the inbound listener is bound, if the tunnel has an inbound side.
    fn inbound_addr(&self) -> Option<SocketAddr>;

    /// Closes listener and session and ends live connections.
    fn stop(self: Box<Self>) -> BoxFuture<'static, ()>;

    /// The tunnel's live counters, if it keeps any (`stats`, metrics). The registry
    /// keeps them after the tunnel stops, so the numbers of the last run stay readable.
    fn stats(&self) -> Option<Arc<TunnelStats>> {
        None
    }
}

/// Starts a stream tunnel: returns once it is usable, failed, or was cancelled through
/// its [`StartControl`] ([`tunnel_launcher`], unless a test supplies its own; see
/// [`TunnelKind::launch`]).
pub type Launcher = Arc<
    dyn Fn(
            Arc<dyn StreamingCore>,
            TunnelSpec,
            TunnelLimits,
            StartControl,
        ) -> BoxFuture<'static, Result<Box<dyn ActiveTunnel>, StartError>>
        + Send
        + Sync,
>;

/// The data path's [`RunningTunnel`] as a [`Launcher`]: what a server uses unless a
/// test supplies its own.
pub fn tunnel_launcher() -> Launcher {
    Arc::new(|core, spec, limits, control| {
        Box::pin(async move {
            let tunnel =
                RunningTunnel::start_with(TunnelKind::Stream, core, spec, limits, control).await?;
            Ok(Box::new(tunnel) as Box<dyn ActiveTunnel>)
        })
    })
}

impl ActiveTunnel for RunningTunnel {
    fn session(&self) -> Arc<dyn Session> {
        Self::session(self).clone()
    }

    fn inbound_addr(&self) -> Option<SocketAddr> {
        Self::inbound_addr(self)
    }

    fn stop(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(Self::stop(*self))
    }

    fn stats(&self) -> Option<Arc<TunnelStats>> {
        Some(Self::stats(self).clone())
    }
}

/// A `host:port` pair as the BOB client gave it (host may be a name or an IP literal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// host name or IP literal, resolved when used
    pub host: String,
    /// port, 1..=65535
    pub port: u16,
}

/// Everything a tunnel needs to start, snapshotted from the registry entry at `start`.
#[derive(Debug, Clone)]
pub struct TunnelSpec {
    /// nickname, for logs
    pub nickname: String,
    /// the tunnel's keys
    pub keys: PrivateKeys,
    /// options handed to the backend session (tunnel options over server defaults),
    /// never a server option (`bob.*`, [`is_server_option`])
    pub options: Options,
    /// the tunnel's server options (`bob.*`: UDP and proxy settings), which stay here
    pub server_options: Options,
    /// inbound (client) side: listen here, if set
    pub inbound: Option<Endpoint>,
    /// outbound (server) side: connect accepted streams here, if set
    pub outbound: Option<Endpoint>,
    /// do not write the peer destination line on outbound connections
    pub quiet: bool,
}

/// Limits and timeouts of the data path.
#[derive(Debug, Clone)]
pub struct TunnelLimits {
    /// how long an inbound application may take to send its destination line
    pub first_line_timeout: Duration,
    /// longest destination line accepted (bytes, without terminator)
    pub max_first_line: usize,
    /// how long the backend may take to create the session (`--session-timeout`; the
    /// SAM backend gets the same value)
    pub session_timeout: Duration,
    /// how long an inbound connect to a destination may take
    pub connect_timeout: Duration,
    /// most connections one side (inbound or outbound) of a tunnel serves at once
    /// (`--max-tunnel-connections`). When all are busy the side stops accepting until
    /// one ends: new TCP connections wait in the kernel's backlog and new I2P streams
    /// in the session's, instead of the server running out of file descriptors.
    pub max_connections: usize,
}

impl Default for TunnelLimits {
    fn default() -> Self {
        Self {
            first_line_timeout: Duration::from_secs(60),
            max_first_line: 4096,
            session_timeout: Duration::from_secs(90),
            connect_timeout: Duration::from_secs(60),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Why a tunnel did not start; `Display` is the text after `ERROR starting tunnel: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// The inbound listener could not be bound (e.g. `Address already in use`).
    #[error("{0}")]
    Bind(String),
    /// `inhost` did not resolve.
    #[error("unknown host {0}")]
    UnknownHost(String),
    /// The backend refused or failed to create the session.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The session did not come up within the limit.
    #[error("timed out waiting for the session")]
    Timeout,
    /// The tunnel's settings do not allow a start of its kind (the reason).
    #[error("{0}")]
    Settings(String),
    /// The start was cancelled (`stop`, `zap`, shutdown) before the session was up.
    #[error("tunnel stopped")]
    Stopped,
}

/// How the service follows and steers one start ([`Launcher`]): the launcher reports
/// when the synchronous part (resolving `inhost`, binding the inport) is done, and gives
/// up, releasing the port, when the start is cancelled.
#[derive(Debug)]
pub struct StartControl {
    bound: Option<tokio::sync::oneshot::Sender<()>>,
    cancel: CancellationToken,
}

impl StartControl {
    /// A control cancelled by `cancel`, and the receiver that learns when the
    /// synchronous part is done (it sees the sender dropped if the launcher ends or
    /// never reports).
    pub fn new(cancel: CancellationToken) -> (Self, tokio::sync::oneshot::Receiver<()>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (
            Self {
                bound: Some(tx),
                cancel,
            },
            rx,
        )
    }

    /// A control nobody watches or cancels.
    pub fn detached() -> Self {
        Self {
            bound: None,
            cancel: CancellationToken::new(),
        }
    }

    /// Reports that the synchronous part succeeded: from now on the start waits only
    /// for the backend.
    pub fn bound(&mut self) {
        if let Some(tx) = self.bound.take() {
            let _ = tx.send(());
        }
    }

    /// Cancelled when the start must give up.
    pub fn cancelled(&self) -> &CancellationToken {
        &self.cancel
    }
}

/// What a tunnel's connections know of its session: still coming up, up, or failed
/// (with the reason an application waiting for it is told).
#[derive(Debug, Clone)]
enum SlotState {
    Pending,
    Ready(Arc<dyn Session>),
    Failed(String),
}

/// The session of a tunnel as its connection tasks see it: connections accepted while
/// the tunnel is STARTING wait here for it.
#[derive(Debug, Clone)]
struct SessionSlot(tokio::sync::watch::Receiver<SlotState>);

impl SessionSlot {
    /// Waits until the session is up; the reason when the start failed.
    async fn ready(&self) -> Result<Arc<dyn Session>, String> {
        let mut rx = self.0.clone();
        loop {
            match &*rx.borrow_and_update() {
                SlotState::Pending => {}
                SlotState::Ready(session) => return Ok(session.clone()),
                SlotState::Failed(reason) => return Err(reason.clone()),
            }
            if rx.changed().await.is_err() {
                return Err(StartError::Stopped.to_string());
            }
        }
    }
}

/// How long `stop` waits for the tunnel's tasks to end after cancelling them.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Default of [`TunnelLimits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Length of the kernel's queue of connections not yet accepted, for the control
/// listener and every inbound listener (capped by `net.core.somaxconn`).
///
/// The standard library and mio ask for 128. A burst of more simultaneous connects
/// than that overflows the queue, and Linux then silently drops the handshake's last
/// ACK: the client believes it is connected while the server never sees the
/// connection. BOB's server speaks first (the greeting), so such a client waits
/// forever. 1000 clients connecting at once hung the control benchmark this way.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds a TCP listener on `addr` with [`LISTEN_BACKLOG`] and `SO_REUSEADDR` (as
/// [`TcpListener::bind`] does), so a port can be bound again right after a stop.
///
/// # Errors
/// The OS error of `socket`, `bind` or `listen`.
pub async fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Pause after a failed `accept` (for instance out of file descriptors) before trying
/// again, so a persistent error does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What one accept of [`accept_loop`] gave.
enum Accepted<T> {
    /// a new connection
    Conn(T),
    /// the source is gone for good: the loop ends
    Closed,
    /// this accept failed; the loop pauses for [`ACCEPT_BACKOFF`] and goes on
    Failed(String),
}

/// The accept loop of either side of a tunnel: takes connections from `accept` until the
/// tunnel stops or the source closes, and runs the task `serve` makes of each (`None`:
/// the connection was dealt with at once). At most `max_connections` tasks run at once;
/// at the limit new connections wait in the source's backlog. `what` names the source
/// in the log.
async fn accept_loop<T, A, S>(
    shared: &TunnelContext,
    what: &str,
    mut accept: impl FnMut() -> A,
    mut serve: impl FnMut(T) -> Option<S>,
) where
    A: Future<Output = Accepted<T>>,
    S: Future<Output = ()> + Send + 'static,
{
    let permits = shared
        .limits
        .max_connections
        .clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(permits));
    loop {
        let slot = tokio::select! {
            () = shared.accepting.cancelled() => break,
            slot = Arc::clone(&slots).acquire_owned() => slot,
        };
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            () = shared.accepting.cancelled() => break,
            accepted = accept() => accepted,
        };
        match accepted {
            Accepted::Conn(conn) => {
                if let Some(task) = serve(conn) {
                    shared.tracker.spawn(async move {
                        task.await;
                        drop(slot);
                    });
                }
            }
            Accepted::Closed => break,
            Accepted::Failed(error) => {
                tracing::warn!(%error, "accepting {what} failed");
                tokio::select! {
                    () = shared.accepting.cancelled() => break,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                }
            }
        }
    }
    tracing::debug!("{what}: accept loop ended");
}

/// Live counters of one running tunnel, shared with its connection tasks.
///
/// "In" and "out" are seen from the I2P side: `bytes_out` went from local applications
/// into I2P streams, `bytes_in` came out of I2P streams to local applications.
#[derive(Debug, Default)]
pub struct TunnelStats {
    /// connections accepted (inbound TCP connections and outbound I2P streams)
    accepted: AtomicU64,
    /// connections currently relaying or being set up
    active: AtomicU64,
    /// connections that ended with an error before or while relaying
    failed: AtomicU64,
    /// bytes relayed from I2P streams to local applications
    bytes_in: Arc<AtomicU64>,
    /// bytes relayed from local applications into I2P streams
    bytes_out: Arc<AtomicU64>,
    /// an accept loop of the tunnel ended by a panic: it takes no more connections
    loop_failed: std::sync::atomic::AtomicBool,
    /// a datagram (UDP) tunnel: `udp` counts and `accepted`/`active` count peer mappings
    datagram: std::sync::atomic::AtomicBool,
    /// datagram counters (UDP tunnels only)
    udp: udp::UdpCounters,
}

/// A copy of [`TunnelStats`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// connections accepted so far
    pub accepted: u64,
    /// connections open now
    pub active: u64,
    /// connections that failed
    pub failed: u64,
    /// bytes from I2P to local applications
    pub bytes_in: u64,
    /// bytes from local applications to I2P
    pub bytes_out: u64,
    /// datagram counters, for UDP tunnels
    pub udp: Option<UdpSnapshot>,
}

impl TunnelStats {
    /// Reads all counters (each one atomically; together only approximately).
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            accepted: self.accepted.load(Ordering::Relaxed),
            active: self.active.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            udp: self.udp_snapshot(),
        }
    }

    /// The datagram counters, for a UDP tunnel.
    pub fn udp_snapshot(&self) -> Option<UdpSnapshot> {
        self.datagram
            .load(Ordering::Relaxed)
            .then(|| self.udp.snapshot())
    }

    /// Marks these as a UDP tunnel's counters.
    fn mark_datagram(&self) {
        self.datagram.store(true, Ordering::Relaxed);
    }

    /// Counts a new connection; the guard counts it as no longer active when dropped.
    fn open_connection(self: &Arc<Self>) -> ActiveGuard {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(Arc::clone(self))
    }

    fn count_failure(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether an accept loop of the tunnel died (panicked): the tunnel takes no more
    /// connections and is shown as not running.
    pub fn has_failed(&self) -> bool {
        self.loop_failed.load(Ordering::Relaxed)
    }

    fn mark_failed(&self) {
        self.loop_failed.store(true, Ordering::Relaxed);
        self.count_failure();
    }
}

/// Runs an accept loop as a task of the tunnel and watches it: if it panics, the tunnel
/// is marked failed (status, stats, log) instead of looking RUNNING with nobody accepting.
fn spawn_watched<F>(tracker: &TaskTracker, stats: &Arc<TunnelStats>, what: &'static str, task: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let handle = tracker.spawn(task);
    let stats = Arc::clone(stats);
    tracker.spawn(async move {
        if let Err(e) = handle.await
            && e.is_panic()
        {
            stats.mark_failed();
            tracing::error!("{what} accept loop panicked; the tunnel is marked failed");
        }
    });
}

/// Keeps a connection counted as active while alive.
struct ActiveGuard(Arc<TunnelStats>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What every connection task of one tunnel shares.
#[derive(Debug, Clone)]
struct TunnelContext {
    session: SessionSlot,
    limits: TunnelLimits,
    stats: Arc<TunnelStats>,
    /// ends the tunnel's connections (and, through its child `accepting`, the accepts)
    cancel: CancellationToken,
    /// ends the accept loops only (a failed start lets held connections hear why)
    accepting: CancellationToken,
    tracker: TaskTracker,
}

impl TunnelContext {
    /// Relays a connection that is set up (both sides count its bytes the same way:
    /// out of the socket is `bytes_out`), then logs how it ended and counts a failure.
    async fn relay(&self, socket: TcpStream, stream: BoxStream) {
        let counters = RelayCounters {
            out: self.stats.bytes_out.clone(),
            back: self.stats.bytes_in.clone(),
        };
        match stream.relay(socket, counters, &self.cancel).await {
            RelayEnd::Finished => tracing::debug!("connection finished"),
            RelayEnd::Cancelled => tracing::debug!("connection ended by stop"),
            RelayEnd::Failed(e) => {
                self.stats.count_failure();
                tracing::debug!(error = %e, "connection failed");
            }
        }
    }
}

#[cfg(test)]
mod tests;
