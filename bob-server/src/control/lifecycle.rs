//! `start` and `stop`: the slow halves run outside the registry lock, in tasks owned by
//! the server (not by the connection that asked), so a client that disconnects mid-start
//! cannot leave a tunnel stuck in STARTING.

use std::net::SocketAddr;
use std::sync::Arc;

use bob_codec::Reply;
use tracing::{info, warn};

use super::Connection;
use crate::backend::{BoxFuture, CoreError, Session};
use crate::messages::Missing;
use crate::registry::{ActiveTunnel, Launcher, Registry, RegistryError, StartTicket};
use crate::server::Shared;
use crate::tunnel::{RunningTunnel, StartError};

/// `start`: replies once the tunnel is usable (`OK tunnel starting`) or has failed
/// (`ERROR starting tunnel: <reason>`).
pub(super) async fn start(conn: &Connection, shared: &Arc<Shared>) -> Reply {
    let m = shared.messages;
    let Some(nickname) = conn.nickname.as_deref() else {
        return m.start_incomplete(Missing::Nickname);
    };
    let (spec, ticket) = match shared.registry.begin_start(nickname) {
        Ok(x) => x,
        Err(RegistryError::NotFound) => return m.start_incomplete(Missing::Nickname),
        Err(RegistryError::NoKeys) => return m.start_incomplete(Missing::Keys),
        Err(RegistryError::NoPort) => return m.start_incomplete(Missing::Port),
        Err(RegistryError::Active | RegistryError::Inactive | RegistryError::Full(_)) => {
            return m.tunnel_active();
        }
    };
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
    let stop = shared.stop.clone();
    let task = shared.tunnel_tasks.spawn(async move {
        let mut guard = guard;
        let result = tokio::select! {
            biased;
            () = stop.cancelled() => Err(StartError::Core(CoreError::Closed)),
            r = launch => r,
        };
        let ticket = guard.ticket.take().expect("ticket is taken only here");
        match result {
            Ok(tunnel) => match guard.registry.finish_start(ticket, Some(tunnel)) {
                None => Ok(()),
                Some(orphan) => {
                    orphan.stop().await;
                    Err("the tunnel entry vanished while starting".to_owned())
                }
            },
            Err(e) => {
                guard.registry.finish_start(ticket, None);
                Err(e.to_string())
            }
        }
    });
    match task.await {
        Ok(Ok(())) => {
            info!(nickname, "tunnel running");
            m.tunnel_starting()
        }
        Ok(Err(reason)) => {
            warn!(nickname, %reason, "tunnel did not start");
            m.start_failed(&reason)
        }
        Err(e) => {
            warn!(nickname, error = %e, "tunnel start task failed");
            m.start_failed("internal error")
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
/// background; the entry is inactive again when that is done.
pub(super) fn stop(conn: &Connection, shared: &Arc<Shared>) -> Reply {
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
}
