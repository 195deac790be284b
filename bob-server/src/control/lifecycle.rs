//! `start` and `stop`: the slow halves run outside the registry lock, in tasks owned by
//! the server (not by the connection that asked), so a client that disconnects mid-start
//! cannot leave a tunnel stuck in STARTING.

use std::net::SocketAddr;
use std::sync::Arc;

use bob_codec::Reply;
use tracing::{info, warn};

use super::Connection;
use crate::backend::{BoxFuture, CoreError, Session};
use crate::control::messages::Missing;
use crate::registry::{ActiveTunnel, Launcher, Registry, RegistryError, StartTicket};
use crate::server::Service;
use crate::tunnel::{RunningTunnel, StartError, TunnelStats};

/// `start`: replies once the tunnel is usable (`OK tunnel starting`) or has failed
/// (`ERROR starting tunnel: <reason>`).
pub(super) async fn start(conn: &Connection, shared: &Arc<Service>) -> Reply {
    let m = shared.messages;
    let Some(nickname) = conn.nickname.as_deref() else {
        return m.start_incomplete(Missing::Nickname);
    };
    match start_tunnel(shared, nickname).await {
        Ok(()) => m.tunnel_starting(),
        Err(StartFailure::Refused(RegistryError::NotFound)) => {
            m.start_incomplete(Missing::Nickname)
        }
        Err(StartFailure::Refused(RegistryError::NoKeys)) => m.start_incomplete(Missing::Keys),
        Err(StartFailure::Refused(RegistryError::NoPort)) => m.start_incomplete(Missing::Port),
        Err(StartFailure::Refused(
            RegistryError::Active | RegistryError::Inactive | RegistryError::Full(_),
        )) => m.tunnel_active(),
        Err(StartFailure::Failed(reason)) => m.start_failed(&reason),
    }
}

/// Why [`start_tunnel`] did not leave the tunnel running.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum StartFailure {
    /// The registry refused before anything started (no such entry, no keys, …).
    #[error("{0}")]
    Refused(RegistryError),
    /// The tunnel was tried and did not come up (the reason after `starting tunnel: `).
    #[error("{0}")]
    Failed(String),
}

/// Starts the named tunnel and waits until it is usable or has failed. The slow part
/// runs in a server task, so it finishes (and the outcome is recorded and saved) even
/// if the caller goes away.
pub(crate) async fn start_tunnel(
    shared: &Arc<Service>,
    nickname: &str,
) -> Result<(), StartFailure> {
    let (spec, ticket) = shared
        .registry
        .begin_start(nickname)
        .map_err(StartFailure::Refused)?;
    info!(nickname, inbound = ?spec.inbound, outbound = ?spec.outbound, "starting tunnel");
    let launch = (shared.launcher.0)(
        shared.core.clone(),
        spec,
        shared.config.tunnel_limits.clone(),
    );
    let guard = StartGuard {
        registry: shared.registry.clone(),
        ticket: Some(ticket),
    };
    let task_shared = shared.clone();
    let task = shared.tunnel_tasks.spawn(async move {
        let shared = task_shared;
        let mut guard = guard;
        let result = tokio::select! {
            biased;
            () = shared.stop.cancelled() => None,
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
        shared.persist().await;
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

/// `stop`: marks the tunnel STOPPING, replies at once (Java), tears it down in the
/// background; the entry is inactive again when that is done. (The caller saves the
/// registry, now remembering the tunnel as stopped, before the reply goes out.)
pub(super) fn stop(conn: &Connection, shared: &Arc<Service>) -> Reply {
    let m = shared.messages;
    let Some(nickname) = conn.nickname.as_deref() else {
        return m.no_nickname();
    };
    let (tunnel, ticket) = match shared.registry.begin_stop(nickname) {
        Ok(x) => x,
        Err(RegistryError::NotFound) => return m.no_nickname(),
        Err(_) => return m.tunnel_inactive(),
    };
    info!(nickname, "stopping tunnel");
    let registry = shared.registry.clone();
    let nickname = nickname.to_owned();
    shared.tunnel_tasks.spawn(async move {
        tunnel.stop().await;
        registry.finish_stop(ticket);
        info!(nickname, "tunnel stopped");
    });
    m.tunnel_stopping()
}

/// The data path's [`RunningTunnel`] as a [`Launcher`]: what a server uses unless a
/// test supplies its own.
pub fn tunnel_launcher() -> Launcher {
    Arc::new(|core, spec, limits| {
        Box::pin(async move {
            let tunnel = RunningTunnel::start(core, spec, limits).await?;
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
