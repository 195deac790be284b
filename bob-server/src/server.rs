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

use crate::backend::StreamingCore;
use crate::config::{Config, ConfigError};
use crate::control;
use crate::messages::Messages;
use crate::registry::{Launcher, Registry};

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
}

/// State shared by the accept loop, every connection and every tunnel task.
#[derive(Debug)]
pub(crate) struct Shared {
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
}

impl Server {
    /// Validates `config` and binds its `listen` address; tunnels run on `core`.
    ///
    /// # Errors
    /// [`ServerError::Config`] for a refused configuration (non-loopback without
    /// `allow_remote`), [`ServerError::Bind`] if the address cannot be bound.
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
    /// [`ServerError::Config`], [`ServerError::Io`] if the listener has no address.
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
        let registry = Registry::new(config.default_options.clone(), config.max_tunnels);
        Ok(Self {
            listener,
            local_addr,
            config,
            core,
            launcher: LauncherHolder(launcher),
            registry,
        })
    }

    /// The bound control address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The tunnel registry (for embedding and tests).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Serves until `shutdown` is cancelled or a client sends `zap`, then closes all
    /// control connections, stops all tunnels and returns.
    ///
    /// # Errors
    /// None today; the `Result` leaves room for fatal listener failures.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ServerError> {
        let Self {
            listener,
            local_addr,
            config,
            core,
            launcher,
            registry,
        } = self;
        let shared = Arc::new(Shared {
            messages: Messages::new(config.dialect),
            config,
            core,
            registry,
            launcher,
            stop: shutdown.child_token(),
            zap: CancellationToken::new(),
            tunnel_tasks: TaskTracker::new(),
        });
        info!(%local_addr, backend = shared.core.name(), dialect = ?shared.config.dialect, "BOB control server running");

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

async fn accept_loop(
    listener: &TcpListener,
    shared: &Arc<Shared>,
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
