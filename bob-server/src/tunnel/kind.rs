//! Tunnel kinds: what a tunnel does with the connections it is handed.
//!
//! Every kind-specific decision sits behind [`TunnelKind`], so a new kind is a new
//! variant with its own arms here (and its own data-path module), not an `if` in the
//! control code or the registry:
//! - [`TunnelKind::needs_a_port`]: what [`crate::registry::Registry::begin_start`]
//!   checks before a start;
//! - [`TunnelKind::launch`]: how [`crate::service::Service::start_tunnel`] starts a
//!   tunnel of the kind (for [`TunnelKind::Stream`], through the service's
//!   [`Launcher`], which tests may replace);
//! - [`TunnelKind::run`]: the tasks a started tunnel runs on its listener and session
//!   ([`super::RunningTunnel::start_kind`] calls it);
//! - [`TunnelKind::name`] / [`str::parse`]: the kind's name (for the state file, the
//!   tunnels file and i2pd's `settunneltype` once there is a second kind).
//!
//! Today the only kind is BOB's TCP stream tunnel, so the kind is not stored yet: the
//! state file and [`super::TunnelSpec`] describe stream tunnels, and an entry that was
//! never given a kind is one. The kinds other issues plan:
//! - SOCKS and HTTP proxy tunnels: stream kinds too; they differ from
//!   [`TunnelKind::Stream`] only in how the inbound side learns the destination (a SOCKS
//!   handshake or an HTTP request instead of BOB's destination line), so their `run`
//!   arm swaps the inbound accept loop and keeps the session, the relay
//!   ([`crate::backend::ByteStream::relay`]) and the outbound side.
//! - UDP tunnels: a datagram kind. Its data path needs datagrams from the backend, a
//!   seam beside [`crate::backend::StreamingCore`] (see the backend module's
//!   "Datagrams" section), and its `run` arm binds a UDP socket instead of a listener.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tracing::Instrument;

use super::{
    ActiveTunnel, Endpoint, Launcher, StartError, TunnelContext, TunnelLimits, TunnelSpec, inbound,
    outbound,
};
use crate::backend::{BoxFuture, StreamingCore};

/// What a tunnel does with its connections (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TunnelKind {
    /// BOB's TCP stream tunnel: the inbound side reads a destination line from each
    /// application and connects to it; the outbound side hands each incoming stream to
    /// `outhost:outport`, after the peer's destination line unless quiet.
    #[default]
    Stream,
}

impl TunnelKind {
    /// Every kind, in the order they are documented.
    pub const ALL: [Self; 1] = [Self::Stream];

    /// The kind's name, as the state file stores it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Stream => "stream",
        }
    }

    /// Whether a start needs `inport` or `outport` set (checked by
    /// [`crate::registry::Registry::begin_start`]).
    pub fn needs_a_port(self) -> bool {
        match self {
            Self::Stream => true,
        }
    }

    /// Starts a tunnel of this kind from `spec` on `core`; returns once it is usable
    /// or failed. A stream tunnel is started by `launcher` (the data path's
    /// [`crate::service::tunnel_launcher`] unless a test supplies its own).
    pub fn launch(
        self,
        launcher: &Launcher,
        core: Arc<dyn StreamingCore>,
        spec: TunnelSpec,
        limits: TunnelLimits,
    ) -> BoxFuture<'static, Result<Box<dyn ActiveTunnel>, StartError>> {
        match self {
            Self::Stream => launcher(core, spec, limits),
        }
    }

    /// Starts the kind's tasks for a tunnel whose session is up: the inbound side on
    /// `listener` (if the tunnel has one) and the outbound side on the session's
    /// incoming streams, handed to `outbound` (with the quiet flag) when set.
    pub(super) fn run(
        self,
        context: &TunnelContext,
        listener: Option<TcpListener>,
        outbound: Option<(Endpoint, bool)>,
    ) {
        match self {
            Self::Stream => {
                if let Some(listener) = listener {
                    context
                        .tracker
                        .spawn(inbound::accept_loop(listener, context.clone()).in_current_span());
                }
                context
                    .tracker
                    .spawn(outbound::accept_loop(outbound, context.clone()).in_current_span());
            }
        }
    }
}

impl fmt::Display for TunnelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a tunnel kind; `Display` lists the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown tunnel kind {0:?} (known: stream)")]
pub struct UnknownKind(pub String);

impl FromStr for TunnelKind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in TunnelKind::ALL {
            assert_eq!(kind.name().parse::<TunnelKind>(), Ok(kind));
            assert_eq!(kind.to_string(), kind.name());
        }
        assert_eq!("STREAM".parse::<TunnelKind>(), Ok(TunnelKind::Stream));
        let err = "udp".parse::<TunnelKind>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown tunnel kind \"udp\" (known: stream)"
        );
    }

    #[test]
    fn stream_tunnels_need_a_port() {
        assert!(TunnelKind::Stream.needs_a_port());
        assert_eq!(TunnelKind::default(), TunnelKind::Stream);
    }
}
