//! The service layer: the one place that runs tunnels.
//!
//! A [`Service`] owns the registry, the backend, the persistence of the registry and
//! the tasks that start and stop tunnels. Everything that starts or stops a tunnel goes
//! through it, in-process:
//! - the control handlers (`start`, `stop`, `clear`, see [`crate::control`]),
//! - the state-dir restore at start-up ([`restore`]),
//! - the tunnels-file boot ([`boot`]).
//!
//! ```text
//! control ─┐
//! restore ─┼─> Service ──> Registry (begin_*/finish_*) ──> Launcher ──> tunnel ──> backend
//! boot ────┘       └─────> Persister ──> storage::state
//! ```
//!
//! The slow halves of `start` and `stop` run in tasks owned by the service (not by the
//! connection that asked), so a client that disconnects mid-start cannot leave a tunnel
//! stuck in STARTING.

pub mod boot;
pub mod persist;
pub mod restore;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use self::persist::Persister;
use crate::backend::{CoreError, StreamingCore};
use crate::config::Config;
use crate::registry::{Launcher, Registry, RegistryError, StartTicket};
use crate::tunnel::StartError;
pub use crate::tunnel::tunnel_launcher;

/// Registry, backend, persistence and tunnel tasks: what every control connection, the
/// restore and the boot share.
pub struct Service {
    config: Config,
    core: Arc<dyn StreamingCore>,
    registry: Registry,
    launcher: Launcher,
    persister: Option<Persister>,
    /// tunnel start/stop tasks (they outlive the connection that asked for them)
    tunnel_tasks: TaskTracker,
    /// cancelled when pending starts must end (shutdown, or zap drained)
    stop: CancellationToken,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("config", &self.config)
            .field("core", &self.core)
            .field("registry", &self.registry)
            .field("persister", &self.persister)
            .finish_non_exhaustive()
    }
}

/// Why [`Service::start_tunnel`] did not leave the tunnel running.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartFailure {
    /// The registry refused before anything started (no such entry, no keys, …).
    #[error("{0}")]
    Refused(RegistryError),
    /// The tunnel was tried and did not come up (the reason after `starting tunnel: `).
    #[error("{0}")]
    Failed(String),
}

impl Service {
    /// A service over `registry`, starting tunnels on `core` with `launcher`, saving
    /// the registry through `persister` (with `--state-dir`).
    pub fn new(
        config: Config,
        core: Arc<dyn StreamingCore>,
        registry: Registry,
        launcher: Launcher,
        persister: Option<Persister>,
    ) -> Self {
        Self {
            config,
            core,
            registry,
            launcher,
            persister,
            tunnel_tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The backend every tunnel runs on.
    pub fn core(&self) -> &Arc<dyn StreamingCore> {
        &self.core
    }

    /// The tunnel registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Cancelled once the service is shutting down.
    pub fn stopping(&self) -> &CancellationToken {
        &self.stop
    }

    /// The registry's generation when the registry is saved (`--state-dir`), else
    /// `None`: a mark for [`Service::persist_since`].
    pub fn change_mark(&self) -> Option<u64> {
        self.persister.as_ref().map(|_| self.registry.generation())
    }

    /// Saves the registry if it changed since `mark` (from [`Service::change_mark`]).
    pub async fn persist_since(&self, mark: Option<u64>) {
        if let Some(before) = mark
            && self.registry.generation() != before
        {
            self.persist().await;
        }
    }

    /// Saves the registry if it changed since the last save, and waits until the file is
    /// durable. A failure is logged: the change stays live but would not survive a
    /// restart.
    pub async fn persist(&self) {
        if let Some(persister) = &self.persister
            && let Err(e) = persister.persist().await
        {
            error!(error = %e, "registry change NOT saved: it is live but will be lost on restart");
        }
    }

    /// Whether the registry is saved (`--state-dir`).
    pub fn persists(&self) -> bool {
        self.persister.is_some()
    }

    /// Starts the named tunnel and waits until it is usable or has failed. The slow part
    /// runs in a service task, so it finishes (and the outcome is recorded and saved)
    /// even if the caller goes away.
    ///
    /// # Errors
    /// [`StartFailure::Refused`] when the registry refuses (no entry, no keys, no port,
    /// active, full), [`StartFailure::Failed`] with the reason when the tunnel did not
    /// come up.
    pub async fn start_tunnel(self: &Arc<Self>, nickname: &str) -> Result<(), StartFailure> {
        let (spec, ticket) = self
            .registry
            .begin_start(nickname)
            .map_err(StartFailure::Refused)?;
        info!(nickname, inbound = ?spec.inbound, outbound = ?spec.outbound, "starting tunnel");
        let launch = (self.launcher)(self.core.clone(), spec, self.config.tunnel_limits.clone());
        let guard = StartGuard {
            registry: self.registry.clone(),
            ticket: Some(ticket),
        };
        let service = self.clone();
        let task = self.tunnel_tasks.spawn(async move {
            let mut guard = guard;
            let result = tokio::select! {
                biased;
                () = service.stop.cancelled() => None,
                r = launch => Some(r),
            };
            let ticket = guard.ticket.take().expect("ticket is taken only here");
            let outcome = match result {
                None => {
                    // Shutting down: not a failure of the tunnel, so it keeps its place
                    // among the tunnels started again after a restart.
                    guard.registry.abandon_start(ticket);
                    return Err(StartError::Core(CoreError::Closed).to_string());
                }
                Some(Ok(tunnel)) => match guard.registry.finish_start(ticket, Some(tunnel)) {
                    None => Ok(()),
                    Some(orphan) => {
                        orphan.stop().await;
                        Err("the tunnel entry vanished while starting".to_owned())
                    }
                },
                Some(Err(e)) => {
                    guard.registry.finish_start(ticket, None);
                    Err(e.to_string())
                }
            };
            service.persist().await;
            outcome
        });
        match task.await {
            Ok(Ok(())) => {
                info!(nickname, "tunnel running");
                Ok(())
            }
            Ok(Err(reason)) => {
                warn!(nickname, %reason, "tunnel did not start");
                Err(StartFailure::Failed(reason))
            }
            Err(e) => {
                warn!(nickname, error = %e, "tunnel start task failed");
                Err(StartFailure::Failed("internal error".to_owned()))
            }
        }
    }

    /// Marks the named tunnel STOPPING and returns at once (Java replies before the
    /// tunnel is down); a service task tears it down and the entry is inactive again
    /// when that is done. The registry now remembers the tunnel as stopped: the caller
    /// saves it ([`Service::persist`]).
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] without such an entry, another [`RegistryError`]
    /// when it is not running.
    pub fn stop_tunnel(&self, nickname: &str) -> Result<(), RegistryError> {
        let (tunnel, ticket) = self.registry.begin_stop(nickname)?;
        info!(nickname, "stopping tunnel");
        let registry = self.registry.clone();
        let nickname = nickname.to_owned();
        self.tunnel_tasks.spawn(async move {
            tunnel.stop().await;
            registry.finish_stop(ticket);
            info!(nickname, "tunnel stopped");
        });
        Ok(())
    }

    /// Removes the named, inactive tunnel from the registry (`clear`).
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] without such an entry, [`RegistryError::Active`]
    /// while it runs.
    pub fn clear(&self, nickname: &str) -> Result<(), RegistryError> {
        self.registry.remove(nickname)
    }

    /// Ends the service: pending starts give up, pending stops finish, then every
    /// running tunnel is stopped. Returns how many tunnels were stopped. The registry
    /// keeps remembering which tunnels ran, so they start again after a restart.
    pub async fn shutdown(&self) -> usize {
        self.stop.cancel();
        self.tunnel_tasks.close();
        self.tunnel_tasks.wait().await;
        let running = self.registry.begin_stop_all();
        let count = running.len();
        futures::future::join_all(running.into_iter().map(|(tunnel, ticket)| {
            let registry = self.registry.clone();
            async move {
                tunnel.stop().await;
                registry.finish_stop(ticket);
            }
        }))
        .await;
        count
    }

    /// Runs `task` as one of the service's tunnel tasks (waited for by
    /// [`Service::shutdown`]).
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tunnel_tasks.spawn(task);
    }
}

/// Puts a STARTING entry back to inactive if the start task ends without recording a
/// result (a panic in the data path).
struct StartGuard {
    registry: Registry,
    ticket: Option<StartTicket>,
}

impl Drop for StartGuard {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.registry.finish_start(ticket, None);
        }
    }
}
