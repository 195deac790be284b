//! `start` and `stop` as the control connection answers them; the service
//! ([`crate::service::Service::start_tunnel`], [`crate::service::Service::stop_tunnel`])
//! does the work.

use bob_codec::Reply;

use super::{Connection, Frontend};
use crate::control::messages::Missing;
use crate::registry::RegistryError;
use crate::service::StartFailure;

/// `start`: replies once the tunnel is usable (`OK tunnel starting`) or has failed
/// (`ERROR starting tunnel: <reason>`).
pub(super) async fn start(conn: &Connection, front: &Frontend) -> Reply {
    let m = front.messages;
    let Some(nickname) = conn.nickname.as_deref() else {
        return m.start_incomplete(Missing::Nickname);
    };
    match front.service.start_tunnel(nickname).await {
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

/// `stop`: marks the tunnel STOPPING and replies at once (Java); the service tears it
/// down in the background. (The caller saves the registry, now remembering the tunnel
/// as stopped, before the reply goes out.)
pub(super) fn stop(conn: &Connection, front: &Frontend) -> Reply {
    let m = front.messages;
    let Some(nickname) = conn.nickname.as_deref() else {
        return m.no_nickname();
    };
    match front.service.stop_tunnel(nickname) {
        Ok(()) => m.tunnel_stopping(),
        Err(RegistryError::NotFound) => m.no_nickname(),
        Err(_) => m.tunnel_inactive(),
    }
}
