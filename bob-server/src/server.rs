//! The control listener: accepts BOB connections, runs one task per connection, and
//! shuts everything down in order.
//!
//! ```no_run
//! # async fn demo(core: std::sync::Arc<dyn bob_server::backend::StreamingCore>) -> Result<(), bob_server::server::ServerError> {
//! use bob_server::{config::Config, server::Server};
//! use tokio_util::sync::CancellationToken;
//!
//! let mut config = Config::default();
//! config.listen = "127.0.0.1:0".parse().unwrap();
//! let server = Server::bind(config, core).await?;
//! println!("BOB on {}", server.local_addr());
//! let shutdown = CancellationToken::new();
//! server.run(shutdown).await
//! # }
//! ```
//!
//! # Shutdown
//! - `shutdown` (the caller's token; SIGINT/SIGTERM in the binary): stop accepting, close
//!   every control connection, stop every tunnel, return.
//! - `zap` (the command): stop accepting at once; the other control connections keep
//!   working; once they have all ended, stop every tunnel and return (Java semantics).
//!
//! # State directory (`Config::state_dir`)
//! [`Server::from_listener`] (and so [`Server::bind`]) loads the tunnel files of `DIR`
//! and puts their entries back, inactive; [`Server::run`] starts again those that were
//! running (in the background: the control port serves meanwhile; a tunnel that does not
//! start is logged and stays in the registry, stopped). A damaged tunnel file is logged
//! with the path where it was kept aside and the server starts with the tunnels that
//! could be read. From then on every change is saved before its reply is sent (see
//! [`crate::service::persist::Persister`]). Stopping the server does not mark tunnels stopped.
//!
//! # Who may connect (`Config::allow_users`, `Config::control_socket`)
//! With an allow list every control connection's user is looked up before the greeting
//! (see [`crate::access`]); others get `ERROR access denied` and are closed. The Unix
//! control socket is made by [`Server::from_listener`] (mode 0600), served next to the
//! TCP port and removed when the server stops accepting.
//!
//! # Metrics (`Config::metrics_listen`)
//! The Prometheus endpoint is bound next to the control port (same loopback rule) and
//! served by [`Server::run`] until shutdown.

use std::borrow::Cow;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::access::{self, SocketError};
use crate::backend::StreamingCore;
use crate::config::tunnels::TunnelDecl;
use crate::config::{Config, ConfigError};
use crate::control::messages::Messages;
use crate::control::{self, Frontend};
use crate::metrics;
use crate::registry::{Launcher, Registry};
use crate::service::Service;
use crate::service::boot::{self, BootError, Prepared};
use crate::service::persist::Persister;
use crate::service::restore::{self, RestoreReport};
use crate::storage::state::{StateError, StateStore};

/// Longest pause after a failed `accept` (e.g. out of file descriptors).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration is refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The control address could not be bound.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// the address asked for
        addr: SocketAddr,
        /// what the OS said (shown in `Display`, so not a `source()`)
        error: io::Error,
    },
    /// Any other I/O failure of the listener (the error is shown in `Display`, so it is
    /// not a `source()`: a cause chain must not print it twice).
    #[error("control listener: {0}")]
    Io(io::Error),
    /// The state directory cannot be used (`--state-dir`).
    #[error(transparent)]
    State(#[from] StateError),
    /// The metrics address could not be bound (`--metrics`).
    #[error("cannot listen for metrics on {addr}: {error}")]
    MetricsBind {
        /// the address asked for
        addr: SocketAddr,
        /// what the OS said (shown in `Display`, so not a `source()`)
        error: io::Error,
    },
    /// The Unix control socket could not be made (`--control-socket`).
    #[error(transparent)]
    ControlSocket(#[from] SocketError),
}

impl From<io::Error> for ServerError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// A bound, not yet running, BOB control server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    service: Arc<Service>,
    restore: RestoreReport,
    metrics: Option<(std::net::TcpListener, SocketAddr)>,
    #[cfg(unix)]
    control_socket: Option<access::ControlSocket>,
}

impl Server {
    /// Validates `config` and binds its `listen` address; tunnels run on `core`.
    ///
    /// With `config.state_dir` the saved registry is loaded here (see the module docs);
    /// with `config.metrics_listen` the metrics address is bound here too.
    ///
    /// # Errors
    /// [`ServerError::Config`] for a refused configuration (non-loopback control or
    /// metrics address without `allow_remote`), [`ServerError::Bind`] /
    /// [`ServerError::MetricsBind`] if an address cannot be bound, [`ServerError::State`]
    /// if the state directory cannot be created, read or written (a damaged state
    /// *file* is not an error: it is kept aside and reported).
    pub async fn bind(config: Config, core: Arc<dyn StreamingCore>) -> Result<Self, ServerError> {
        Self::bind_with_launcher(config, core, crate::service::tunnel_launcher()).await
    }

    /// Like [`Server::bind`] with a custom way of starting tunnels (tests).
    ///
    /// # Errors
    /// As [`Server::bind`].
    pub async fn bind_with_launcher(
        config: Config,
        core: Arc<dyn StreamingCore>,
        launcher: Launcher,
    ) -> Result<Self, ServerError> {
        config.validate()?;
        let listener = crate::tunnel::listen(config.listen)
            .await
            .map_err(|error| ServerError::Bind {
                addr: config.listen,
                error,
            })?;
        Self::from_listener(listener, config, core, launcher)
    }

    /// Wraps an already bound listener (its address is checked against the loopback rule;
    /// `config.listen` is ignored).
    ///
    /// # Errors
    /// [`ServerError::Config`], [`ServerError::Io`] if the listener has no address,
    /// [`ServerError::MetricsBind`], [`ServerError::State`] (as [`Server::bind`]).
    pub fn from_listener(
        listener: TcpListener,
        config: Config,
        core: Arc<dyn StreamingCore>,
        launcher: Launcher,
    ) -> Result<Self, ServerError> {
        let local_addr = listener.local_addr()?;
        config.check_listen_addr(local_addr)?;
        if config.max_connections == 0 {
            return Err(ConfigError::NoConnections.into());
        }
        let metrics = match config.metrics_listen {
            Some(addr) => Some(bind_metrics(&config, addr)?),
            None => None,
        };
        #[cfg(unix)]
        let control_socket = match &config.control_socket {
            Some(path) => Some(access::ControlSocket::bind(path)?),
            None => None,
        };
        let registry = Registry::new(config.default_options.clone(), config.max_tunnels)
            .with_max_bytes(config.max_registry_bytes);
        let (persister, restore) = match &config.state_dir {
            Some(dir) => {
                let store = StateStore::open(dir)?;
                let restore = restore::load(&store, &registry)?;
                // The file now matches the registry (it was just read, or rewritten
                // after damage), so nothing needs saving until the next change.
                let saved = registry.generation();
                let persister = Persister::new(Arc::new(store), registry.clone(), saved);
                (Some(persister), restore)
            }
            None => (None, RestoreReport::default()),
        };
        Ok(Self {
            listener,
            local_addr,
            service: Arc::new(Service::new(config, core, registry, launcher, persister)),
            restore,
            metrics,
            #[cfg(unix)]
            control_socket,
        })
    }

    /// The Unix control socket's path, if `Config::control_socket` is set.
    pub fn control_socket_path(&self) -> Option<&std::path::Path> {
        #[cfg(unix)]
        return self
            .control_socket
            .as_ref()
            .map(access::ControlSocket::path);
        #[cfg(not(unix))]
        None
    }

    /// What was restored from the state directory (empty without one).
    pub fn restore_report(&self) -> &RestoreReport {
        &self.restore
    }

    /// Keeps [`Server::run`] from starting `nickname` again as a restored tunnel: the
    /// caller (boot from a tunnels file, [`crate::service::boot`]) has replaced that entry and
    /// decides itself whether it runs.
    pub fn skip_restart(&mut self, nickname: &str) {
        self.restore.to_start.retain(|n| n != nickname);
    }

    /// Boot step 1 ([`boot::prepare`]) for this server: writes the tunnels declared in
    /// `file` into the registry and keeps [`Server::run`] from restarting, as a restored
    /// tunnel, any entry the file declares (the file's `start` decides).
    ///
    /// # Errors
    /// As [`boot::prepare`].
    pub fn prepare_tunnels(
        &mut self,
        file: &std::path::Path,
        decls: &[TunnelDecl],
    ) -> Result<Vec<Prepared>, BootError> {
        for decl in decls {
            self.skip_restart(&decl.name);
        }
        boot::prepare(self.service.registry(), self.service.config(), file, decls)
    }

    /// The bound metrics address, if `Config::metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(_, addr)| *addr)
    }

    /// The bound control address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The tunnel registry (for embedding and tests). Changes made through it directly
    /// are saved to the state directory with the next change made by a command.
    pub fn registry(&self) -> &Registry {
        self.service.registry()
    }

    /// The service that runs the tunnels: start and stop them in-process (boot from a
    /// tunnels file uses it once the server runs).
    pub fn service(&self) -> &Arc<Service> {
        &self.service
    }

    /// Serves until `shutdown` is cancelled or a client sends `zap`, then closes all
    /// control connections, stops all tunnels and returns.
    ///
    /// Tunnels restored from the state directory that were running are started in the
    /// background first; the metrics endpoint (if any) is served until shutdown.
    ///
    /// # Errors
    /// [`ServerError::Io`] if the metrics listener cannot be registered with the
    /// runtime; nothing else today.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ServerError> {
        let Self {
            listener,
            local_addr,
            service,
            restore,
            metrics,
            #[cfg(unix)]
            control_socket,
        } = self;
        #[cfg(unix)]
        let unix = control_socket
            .as_ref()
            .map(access::ControlSocket::tokio_listener)
            .transpose()?;
        #[cfg(not(unix))]
        let unix: Option<Never> = None;
        let metrics = match metrics {
            Some((std_listener, addr)) => Some((TcpListener::from_std(std_listener)?, addr)),
            None => None,
        };
        let front = Arc::new(Frontend::new(
            service.clone(),
            Messages::new(service.config().dialect),
        ));
        // The caller's shutdown stops the service; its token also ends the connections.
        let stop = service.stopping().clone();
        let caller = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = caller.cancelled() => stop.cancel(),
                () = stop.cancelled() => {}
            }
        });
        info!(%local_addr, backend = service.core().name(), dialect = ?service.config().dialect, "BOB control server running");

        let metrics_task = metrics.map(|(listener, addr)| {
            info!(%addr, "serving Prometheus metrics on http://{addr}/metrics and the status page on http://{addr}/");
            let source = metrics::registry_source(service.registry().clone());
            let router = service
                .core()
                .router_report()
                .is_some()
                .then(|| metrics::core_router_source(Arc::clone(service.core())));
            tokio::spawn(metrics::serve_with_router(
                listener,
                source,
                router,
                service.stopping().clone(),
                metrics::Limits::default(),
            ))
        });
        if service.persists() {
            service.spawn(restore::restart(service.clone(), restore.to_start));
        }

        let connections = TaskTracker::new();
        accept_loop(&listener, unix.as_ref(), &front, &connections, &shutdown).await;
        drop(listener);
        drop(unix);
        #[cfg(unix)]
        drop(control_socket);
        connections.close();

        if front.zap.is_cancelled() && !shutdown.is_cancelled() {
            info!("zap: no longer accepting; waiting for the other control connections to end");
            tokio::select! {
                () = connections.wait() => {}
                () = shutdown.cancelled() => {}
            }
        }
        info!("shutting down: closing control connections and stopping tunnels");
        service.stopping().cancel();
        connections.wait().await;

        // No connection is left, so no new tunnel task can appear; pending starts see
        // `stop` and give up, pending stops finish, then every tunnel stops.
        let count = service.shutdown().await;
        if let Some(task) = metrics_task {
            let _ = task.await;
        }
        info!(tunnels = count, "BOB control server stopped");
        Ok(())
    }
}

/// Binds nothing itself: serves on `listener` until `shutdown` (see [`Server::run`]).
///
/// # Errors
/// As [`Server::from_listener`] and [`Server::run`].
pub async fn run(
    listener: TcpListener,
    config: Config,
    core: Arc<dyn StreamingCore>,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    Server::from_listener(listener, config, core, crate::service::tunnel_launcher())?
        .run(shutdown)
        .await
}

/// Binds the metrics listener (loopback rule as for the control port).
fn bind_metrics(
    config: &Config,
    addr: SocketAddr,
) -> Result<(std::net::TcpListener, SocketAddr), ServerError> {
    config.check_listen_addr(addr)?;
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|error| ServerError::MetricsBind { addr, error })?;
    let bound = listener.local_addr()?;
    config.check_listen_addr(bound)?;
    Ok((listener, bound))
}

/// The Unix listener type (none off Unix).
#[cfg(unix)]
type UnixListener = tokio::net::UnixListener;
#[cfg(not(unix))]
type UnixListener = Never;

/// Stands in for the Unix listener and stream where there are none.
#[cfg(not(unix))]
#[derive(Debug)]
enum Never {}

/// One accepted control connection.
enum Incoming {
    Tcp(TcpStream, SocketAddr),
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
}

/// The next connection of the Unix control socket; never resolves without one.
async fn accept_unix(unix: Option<&UnixListener>) -> io::Result<Incoming> {
    match unix {
        #[cfg(unix)]
        Some(l) => l.accept().await.map(|(s, _)| Incoming::Unix(s)),
        #[cfg(not(unix))]
        Some(never) => match *never {},
        None => std::future::pending().await,
    }
}

async fn accept_loop(
    listener: &TcpListener,
    unix: Option<&UnixListener>,
    front: &Arc<Frontend>,
    connections: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let max_connections = front.service.config().max_connections;
    let limit = Arc::new(Semaphore::new(
        max_connections.clamp(1, Semaphore::MAX_PERMITS),
    ));
    let allow: Arc<[u32]> = front.service.config().allow_users.clone().into();
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            () = front.zap.cancelled() => return,
            r = listener.accept() => r.map(|(s, peer)| Incoming::Tcp(s, peer)),
            r = accept_unix(unix) => r,
        };
        let incoming = match accepted {
            Ok(x) => {
                backoff = Duration::from_millis(10);
                x
            }
            Err(e) => {
                warn!(error = %e, "accept failed; retrying in {backoff:?}");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                continue;
            }
        };
        let peer = match &incoming {
            Incoming::Tcp(_, peer) => peer.to_string(),
            #[cfg(unix)]
            Incoming::Unix(_) => "unix".to_owned(),
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            warn!(%peer, limit = max_connections, "too many control connections; refusing");
            let reply = Cow::Owned(front.messages.too_many_connections().encode());
            connections.spawn(refuse(incoming, reply));
            continue;
        };
        let front = front.clone();
        let allow = allow.clone();
        let span = info_span!("bob", %peer);
        connections.spawn(
            async move {
                let Some(incoming) = admit(incoming, &allow).await else {
                    drop(permit);
                    return;
                };
                debug!("control connection opened");
                match incoming {
                    Incoming::Tcp(socket, _) => {
                        let _ = socket.set_nodelay(true);
                        control::serve(socket, &front).await;
                    }
                    #[cfg(unix)]
                    Incoming::Unix(socket) => control::serve(socket, &front).await,
                }
                debug!("control connection closed");
                drop(permit);
            }
            .instrument(span),
        );
    }
}

/// Lets the connection through when its user is allowed (always without an allow
/// list); otherwise answers `ERROR access denied`, closes it and logs why.
async fn admit(incoming: Incoming, allow: &[u32]) -> Option<Incoming> {
    if allow.is_empty() {
        return Some(incoming);
    }
    let owner: Result<u32, String> = match &incoming {
        Incoming::Tcp(socket, peer) => tcp_owner(socket, *peer).await,
        #[cfg(unix)]
        Incoming::Unix(socket) => socket
            .peer_cred()
            .map(|c| c.uid())
            .map_err(|e| format!("no peer credentials: {e}")),
    };
    match owner {
        Ok(uid) if access::allowed(allow, uid) => {
            debug!(uid, "control connection allowed");
            Some(incoming)
        }
        Ok(uid) => {
            warn!(
                uid,
                "control connection refused: user not allowed (--allow-user)"
            );
            refuse(incoming, Cow::Borrowed(access::ACCESS_DENIED)).await;
            None
        }
        Err(why) => {
            warn!(reason = %why, "control connection refused: its user is unknown (--allow-user)");
            refuse(incoming, Cow::Borrowed(access::ACCESS_DENIED)).await;
            None
        }
    }
}

/// The UID owning the client end of a TCP control connection.
async fn tcp_owner(socket: &TcpStream, peer: SocketAddr) -> Result<u32, String> {
    if !peer.ip().is_loopback() && !is_mapped_loopback(peer) {
        return Err("not a loopback peer".into());
    }
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    match tokio::task::spawn_blocking(move || access::tcp_peer_uid(peer, local)).await {
        Ok(Ok(Some(uid))) => Ok(uid),
        Ok(Ok(None)) => Err("no socket table entry (the client may be gone)".into()),
        Ok(Err(e)) => Err(format!("cannot read the socket table: {e}")),
        Err(e) => Err(format!("socket table lookup failed: {e}")),
    }
}

/// `::ffff:127.x.y.z`: an IPv4 loopback client of a dual-stack listener.
fn is_mapped_loopback(peer: SocketAddr) -> bool {
    match peer {
        SocketAddr::V6(v6) => v6.ip().to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        SocketAddr::V4(_) => false,
    }
}

/// Writes `reply` and closes the connection.
async fn refuse(incoming: Incoming, reply: Cow<'static, [u8]>) {
    match incoming {
        Incoming::Tcp(mut socket, _) => {
            let _ = socket.write_all(&reply).await;
            let _ = socket.shutdown().await;
        }
        #[cfg(unix)]
        Incoming::Unix(mut socket) => {
            let _ = socket.write_all(&reply).await;
            let _ = socket.shutdown().await;
        }
    }
}
