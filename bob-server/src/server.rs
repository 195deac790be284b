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
//! [`Server::from_listener`] (and so [`Server::bind`]) loads `DIR/registry.toml` and puts
//! its entries back, inactive; [`Server::run`] starts again those that were running
//! (in the background: the control port serves meanwhile; a tunnel that does not start
//! is logged and stays in the registry, stopped). A damaged file is logged with the path
//! where it was kept aside and the server starts with what could be read (often
//! nothing). From then on every change is saved before its reply is sent (see
//! [`crate::storage::state::Persister`]). Stopping the server does not mark tunnels stopped.
//!
//! # Metrics (`Config::metrics_listen`)
//! The Prometheus endpoint is bound next to the control port (same loopback rule) and
//! served by [`Server::run`] until shutdown.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::backend::StreamingCore;
use crate::config::{Config, ConfigError};
use crate::control;
use crate::control::messages::Messages;
use crate::metrics;
use crate::registry::{Launcher, Registry};
use crate::storage::state::{Persister, StateError, StateStore};

/// Restored tunnels started at once after a restart (a router is not flooded with
/// hundreds of session requests).
const RESTORE_PARALLEL_STARTS: usize = 16;

/// Longest pause after a failed `accept` (e.g. out of file descriptors).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration is refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The control address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// the address asked for
        addr: SocketAddr,
        /// what the OS said
        source: io::Error,
    },
    /// Any other I/O failure of the listener.
    #[error("control listener: {0}")]
    Io(#[from] io::Error),
    /// The state directory cannot be used (`--state-dir`).
    #[error(transparent)]
    State(#[from] StateError),
    /// The metrics address could not be bound (`--metrics`).
    #[error("cannot listen for metrics on {addr}: {source}")]
    MetricsBind {
        /// the address asked for
        addr: SocketAddr,
        /// what the OS said
        source: io::Error,
    },
}

/// State shared by the accept loop, every connection and every tunnel task.
#[derive(Debug)]
pub(crate) struct Service {
    /// the configuration
    pub(crate) config: Config,
    /// reply strings of the configured dialect
    pub(crate) messages: Messages,
    /// the core every tunnel runs on
    pub(crate) core: Arc<dyn StreamingCore>,
    /// all tunnels
    pub(crate) registry: Registry,
    /// how tunnels are started
    pub(crate) launcher: LauncherHolder,
    /// cancelled when connections and pending starts must end (shutdown, or zap drained)
    pub(crate) stop: CancellationToken,
    /// cancelled by `zap`: stop accepting
    pub(crate) zap: CancellationToken,
    /// tunnel start/stop tasks (they outlive the connection that asked for them)
    pub(crate) tunnel_tasks: TaskTracker,
    /// saves the registry on every change (`--state-dir`)
    pub(crate) persister: Option<Persister>,
}

impl Service {
    /// Saves the registry if it changed since the last save, and waits until the file is
    /// durable. A failure is logged: the change stays live but would not survive a
    /// restart.
    pub(crate) async fn persist(&self) {
        if let Some(persister) = &self.persister
            && let Err(e) = persister.persist().await
        {
            error!(error = %e, "registry change NOT saved: it is live but will be lost on restart");
        }
    }
}

/// What the server found in its state directory at start-up.
#[derive(Debug, Clone, Default)]
pub struct RestoreReport {
    /// the state file read
    pub path: Option<std::path::PathBuf>,
    /// nicknames put back into the registry
    pub restored: Vec<String>,
    /// those of them that were running and are started again by [`Server::run`]
    pub to_start: Vec<String>,
    /// problems found (each was logged); entries they concern were dropped
    pub problems: Vec<String>,
    /// where the original state file was kept when there were problems
    pub kept_aside: Option<std::path::PathBuf>,
}

/// [`Launcher`] with a `Debug` impl.
pub(crate) struct LauncherHolder(pub(crate) Launcher);

impl std::fmt::Debug for LauncherHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Launcher")
    }
}

/// A bound, not yet running, BOB control server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    config: Config,
    core: Arc<dyn StreamingCore>,
    launcher: LauncherHolder,
    registry: Registry,
    persister: Option<Persister>,
    restore: RestoreReport,
    metrics: Option<(std::net::TcpListener, SocketAddr)>,
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
        Self::bind_with_launcher(config, core, crate::tunnel_launcher()).await
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
            .map_err(|source| ServerError::Bind {
                addr: config.listen,
                source,
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
        let registry = Registry::new(config.default_options.clone(), config.max_tunnels);
        let (persister, restore) = match &config.state_dir {
            Some(dir) => {
                let store = StateStore::open(dir)?;
                let restore = restore_registry(&store, &registry)?;
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
            config,
            core,
            launcher: LauncherHolder(launcher),
            registry,
            persister,
            restore,
            metrics,
        })
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
        &self.registry
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
            config,
            core,
            launcher,
            registry,
            persister,
            restore,
            metrics,
        } = self;
        let metrics = match metrics {
            Some((std_listener, addr)) => Some((TcpListener::from_std(std_listener)?, addr)),
            None => None,
        };
        let shared = Arc::new(Service {
            messages: Messages::new(config.dialect),
            config,
            core,
            registry,
            launcher,
            stop: shutdown.child_token(),
            zap: CancellationToken::new(),
            tunnel_tasks: TaskTracker::new(),
            persister,
        });
        info!(%local_addr, backend = shared.core.name(), dialect = ?shared.config.dialect, "BOB control server running");

        let metrics_task = metrics.map(|(listener, addr)| {
            info!(%addr, "serving Prometheus metrics on http://{addr}/metrics");
            let registry = shared.registry.clone();
            let source: metrics::MetricsSource = Arc::new(move || registry.metrics());
            tokio::spawn(metrics::serve(listener, source, shared.stop.clone()))
        });
        if shared.persister.is_some() {
            shared
                .tunnel_tasks
                .spawn(restart_restored(shared.clone(), restore.to_start));
        }

        let connections = TaskTracker::new();
        accept_loop(&listener, &shared, &connections, &shutdown).await;
        drop(listener);
        connections.close();

        if shared.zap.is_cancelled() && !shutdown.is_cancelled() {
            info!("zap: no longer accepting; waiting for the other control connections to end");
            tokio::select! {
                () = connections.wait() => {}
                () = shutdown.cancelled() => {}
            }
        }
        info!("shutting down: closing control connections and stopping tunnels");
        shared.stop.cancel();
        connections.wait().await;

        // No connection is left, so no new tunnel task can appear; pending starts see
        // `stop` and give up, pending stops finish.
        shared.tunnel_tasks.close();
        shared.tunnel_tasks.wait().await;
        let running = shared.registry.begin_stop_all();
        let count = running.len();
        futures::future::join_all(running.into_iter().map(|(tunnel, ticket)| {
            let registry = shared.registry.clone();
            async move {
                tunnel.stop().await;
                registry.finish_stop(ticket);
            }
        }))
        .await;
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
    Server::from_listener(listener, config, core, crate::tunnel_launcher())?
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
        .map_err(|source| ServerError::MetricsBind { addr, source })?;
    let bound = listener.local_addr()?;
    config.check_listen_addr(bound)?;
    Ok((listener, bound))
}

/// Loads the state file into `registry`: entries come back inactive; the report names
/// those to start again. Problems are logged (never key material) and the original
/// file is kept aside before anything of it is dropped.
fn restore_registry(store: &StateStore, registry: &Registry) -> Result<RestoreReport, StateError> {
    let path = store.path();
    let loaded = store.load()?;
    let mut report = RestoreReport {
        path: Some(path.clone()),
        problems: loaded.problems,
        kept_aside: loaded.kept_aside,
        ..RestoreReport::default()
    };
    let mut dropped = Vec::new();
    for record in &loaded.tunnels {
        match registry.restore(record) {
            Ok(start) => {
                report.restored.push(record.nickname.clone());
                if start {
                    report.to_start.push(record.nickname.clone());
                }
            }
            Err(e) => dropped.push(format!("tunnel {:?}: {e}; entry dropped", record.nickname)),
        }
    }
    if !dropped.is_empty() && report.kept_aside.is_none() {
        report.kept_aside = store.keep_aside()?;
    }
    report.problems.extend(dropped);
    for problem in &report.problems {
        // parser messages span lines; keep each problem on one log line
        let problem = problem.split_whitespace().collect::<Vec<_>>().join(" ");
        error!(file = %path.display(), "state file: {problem}");
    }
    if let Some(aside) = &report.kept_aside {
        error!(
            file = %path.display(),
            kept_aside = %aside.display(),
            "state file is damaged: the original is kept aside at {}; starting with the {} tunnel(s) that could be read",
            aside.display(),
            report.restored.len()
        );
        // Rewrite the file from what was read, so the damage is not found again.
        let snapshot = registry.snapshot();
        store.save(snapshot.generation, &snapshot.into_records())?;
    }
    info!(
        file = %path.display(),
        tunnels = report.restored.len(),
        running = report.to_start.len(),
        "registry restored from the state directory"
    );
    Ok(report)
}

/// Starts the restored tunnels that were running, then saves the registry once (a
/// tunnel that did not start is saved as stopped).
async fn restart_restored(shared: Arc<Service>, names: Vec<String>) {
    use futures::StreamExt;
    let starts = names.into_iter().map(|name| {
        let shared = shared.clone();
        async move {
            let result = control::start_tunnel(&shared, &name).await;
            (name, result)
        }
    });
    let mut done = futures::stream::iter(starts).buffer_unordered(RESTORE_PARALLEL_STARTS);
    while let Some((name, result)) = done.next().await {
        match result {
            Ok(()) => info!(nickname = %name, "restored tunnel running again"),
            Err(e) => error!(
                nickname = %name,
                reason = %e,
                "restored tunnel did not start; it stays in the registry, stopped"
            ),
        }
    }
    if !shared.stop.is_cancelled() {
        shared.persist().await;
    }
}

async fn accept_loop(
    listener: &TcpListener,
    shared: &Arc<Service>,
    connections: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let limit = Arc::new(Semaphore::new(shared.config.max_connections));
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            () = shared.zap.cancelled() => return,
            r = listener.accept() => r,
        };
        let (socket, peer) = match accepted {
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
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            warn!(%peer, limit = shared.config.max_connections, "too many control connections; refusing");
            connections.spawn(refuse(socket, shared.messages));
            continue;
        };
        let shared = shared.clone();
        let span = info_span!("bob", %peer);
        connections.spawn(
            async move {
                debug!("control connection opened");
                control::serve(socket, &shared).await;
                debug!("control connection closed");
                drop(permit);
            }
            .instrument(span),
        );
    }
}

async fn refuse(mut socket: TcpStream, messages: Messages) {
    let _ = socket
        .write_all(&messages.too_many_connections().encode())
        .await;
    let _ = socket.shutdown().await;
}
