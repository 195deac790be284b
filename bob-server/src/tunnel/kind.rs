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
//! - `run_inbound` / `run_outbound`: the tasks a tunnel runs on its listener (from
//!   the moment it is bound) and on its session (once it is up);
//! - [`TunnelKind::name`] / [`str::parse`]: the kind's name (for the state file, the
//!   tunnels file and `settunneltype`);
//! - [`TunnelKind::status_fields`]: what `list`/`status` print after OUTHOST (nothing
//!   for BOB's own tunnels, so their lines stay Java's).
//!
//! An entry that was never given a kind is a BOB TCP tunnel ([`TunnelKind::Stream`],
//! named `tcp`; `stream` is accepted as another name for it). The other kinds:
//! - SOCKS and HTTP proxy tunnels: stream kinds too; they differ from
//!   [`TunnelKind::Stream`] only in how the inbound side learns the destination (a SOCKS
//!   handshake or an HTTP request instead of BOB's destination line), so their `run`
//!   arm swaps the inbound accept loop and keeps the session, the relay
//!   ([`crate::backend::ByteStream::relay`]) and the outbound side.
//! - UDP tunnels: a datagram kind ([`super::udp`]). Its data path uses the datagram
//!   seam beside [`crate::backend::StreamingCore`] ([`crate::backend::datagram`]) and
//!   binds UDP sockets instead of a listener, so `launch` starts it directly and
//!   `run_inbound`/`run_outbound` never see it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tracing::Instrument;

use super::proxy::{self, Protocol, ProxySettings};
use super::{
    ActiveTunnel, Endpoint, Launcher, RunningTunnel, StartControl, StartError, TunnelContext,
    TunnelLimits, TunnelSpec, inbound, outbound,
};
use crate::backend::{BoxFuture, Session, StreamingCore};

/// What a tunnel does with its connections (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TunnelKind {
    /// BOB's TCP stream tunnel: the inbound side reads a destination line from each
    /// application and connects to it; the outbound side hands each incoming stream to
    /// `outhost:outport`, after the peer's destination line unless quiet.
    #[default]
    Stream,
    /// A UDP tunnel: datagrams between local UDP sockets and I2P (`settunneltype udp`).
    Udp,
    /// A SOCKS proxy on `inhost:inport` reaching I2P from the tunnel's destination
    /// (`settunneltype socks`, as i2pd 2.57+).
    Socks,
    /// An HTTP proxy on `inhost:inport` reaching I2P from the tunnel's destination
    /// (`settunneltype httpproxy`, as i2pd 2.57+).
    HttpProxy,
}

impl TunnelKind {
    /// Every kind, in the order they are documented.
    pub const ALL: [Self; 4] = [Self::Stream, Self::Udp, Self::Socks, Self::HttpProxy];

    /// The kind's name, as `settunneltype`, the state file and the tunnels file spell
    /// it (other spellings [`str::parse`] accepts: `stream`, `http-proxy`, `http`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Stream => "tcp",
            Self::Udp => "udp",
            Self::Socks => "socks",
            Self::HttpProxy => "httpproxy",
        }
    }

    /// The kind as `settunneltype` names it in its reply (`OK tunnel type set to …`,
    /// i2pd's wording for its two kinds).
    pub fn title(self) -> &'static str {
        match self {
            Self::Stream => "TCP",
            Self::Udp => "UDP",
            Self::Socks => "SOCKS",
            Self::HttpProxy => "HTTP proxy",
        }
    }

    /// Whether a start needs `inport` or `outport` set (checked by
    /// [`crate::registry::Registry::begin_start`]).
    pub fn needs_a_port(self) -> bool {
        match self {
            Self::Stream | Self::Udp | Self::Socks | Self::HttpProxy => true,
        }
    }

    /// The fields `list`/`status` print after OUTHOST for a tunnel of this kind with
    /// `properties`: none for BOB's TCP tunnels (their lines stay Java's), `TUNNELTYPE`
    /// and `UDPDEST` for UDP tunnels, i2pd's `PROXYTYPE` for proxy tunnels.
    pub fn status_fields(self, properties: &BTreeMap<String, String>) -> Vec<(String, String)> {
        let field = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        match self {
            Self::Stream => Vec::new(),
            Self::Udp => {
                let dest = properties.get(super::udp::options::DEST).map_or_else(
                    || "not_set".to_owned(),
                    |d| super::udp::options::status_dest(d),
                );
                vec![field("TUNNELTYPE", "UDP"), field("UDPDEST", &dest)]
            }
            Self::Socks => vec![field("PROXYTYPE", "SOCKS")],
            Self::HttpProxy => vec![field("PROXYTYPE", "HTTPPROXY")],
        }
    }

    /// Starts a tunnel of this kind from `spec` on `core`; returns once it is usable,
    /// failed or was cancelled through `control`. A stream tunnel is started by
    /// `launcher` (the data path's [`crate::service::tunnel_launcher`] unless a test
    /// supplies its own).
    pub fn launch(
        self,
        launcher: &Launcher,
        core: Arc<dyn StreamingCore>,
        spec: TunnelSpec,
        limits: TunnelLimits,
        control: StartControl,
    ) -> BoxFuture<'static, Result<Box<dyn ActiveTunnel>, StartError>> {
        match self {
            Self::Stream => launcher(core, spec, limits, control),
            Self::Udp => Box::pin(async move {
                let tunnel = super::UdpTunnel::start(core, spec, limits, control).await?;
                Ok(Box::new(tunnel) as Box<dyn ActiveTunnel>)
            }),
            Self::Socks | Self::HttpProxy => Box::pin(async move {
                if spec.inbound.is_none() {
                    return Err(StartError::Settings(format!(
                        "a {} tunnel needs inport (the proxy listens on inhost:inport)",
                        self.title()
                    )));
                }
                if self == Self::HttpProxy {
                    proxy::http::check_options(&spec.server_options)
                        .map_err(|e| StartError::Settings(e.to_string()))?;
                }
                let tunnel = RunningTunnel::start_with(self, core, spec, limits, control).await?;
                Ok(Box::new(tunnel) as Box<dyn ActiveTunnel>)
            }),
        }
    }

    /// Starts the kind's tasks on the inbound `listener` as soon as it is bound, while
    /// the session may still be coming up: connections made meanwhile wait for it
    /// ([`super::SessionSlot::ready`]).
    pub(super) fn run_inbound(
        self,
        context: &TunnelContext,
        listener: TcpListener,
        spec: &TunnelSpec,
        core: &Arc<dyn StreamingCore>,
    ) {
        match self {
            Self::Stream => {
                super::spawn_watched(
                    &context.tracker,
                    &context.stats,
                    "inbound",
                    inbound::accept_loop(listener, context.clone()).in_current_span(),
                );
            }
            Self::Socks | Self::HttpProxy => {
                let protocol = if self == Self::Socks {
                    Protocol::Socks
                } else {
                    Protocol::Http
                };
                // A proxy tunnel's outhost:outport is its outproxy (off unless outport
                // is set), as in i2pd; its `bob.*` options are the handlers' settings.
                // SOCKS5 UDP ASSOCIATE opens its datagram session on first use.
                let udp = (protocol == Protocol::Socks).then(|| {
                    Arc::new(proxy::socks::associate::UdpRelay::new(
                        Arc::clone(core),
                        spec,
                        context,
                    ))
                });
                let settings = Arc::new(ProxySettings {
                    outproxy: spec.outbound.clone(),
                    options: spec.server_options.clone(),
                    udp,
                });
                super::spawn_watched(
                    &context.tracker,
                    &context.stats,
                    "inbound",
                    proxy::accept_loop(listener, context.clone(), protocol, settings)
                        .in_current_span(),
                );
            }
            // never launched (see `launch`)
            Self::Udp => drop(listener),
        }
    }

    /// Starts the kind's tasks on a session that is up: the outbound side on the
    /// session's incoming streams, handed to `outbound` (with the quiet flag) when set.
    pub(super) fn run_outbound(
        self,
        context: &TunnelContext,
        session: Arc<dyn Session>,
        outbound: Option<(Endpoint, bool)>,
    ) {
        match self {
            Self::Stream => {
                super::spawn_watched(
                    &context.tracker,
                    &context.stats,
                    "outbound",
                    outbound::accept_loop(session, outbound, context.clone()).in_current_span(),
                );
            }
            // A proxy tunnel's destination serves nothing (outhost:outport is the
            // outproxy): incoming streams are refused at once, as on a BOB tunnel
            // without an outbound side.
            Self::Socks | Self::HttpProxy => {
                drop(outbound);
                super::spawn_watched(
                    &context.tracker,
                    &context.stats,
                    "outbound",
                    outbound::accept_loop(session, None, context.clone()).in_current_span(),
                );
            }
            // never launched (see `launch`)
            Self::Udp => drop((session, outbound)),
        }
    }
}

impl fmt::Display for TunnelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether option `key` configures the server (`bob.*`: UDP and proxy settings) rather
/// than the router: such options are kept and shown like any other, but never handed to
/// the backend.
pub fn is_server_option(key: &str) -> bool {
    key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("bob."))
}

/// A name that is not a tunnel kind; `Display` lists the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown tunnel type {0:?} (known: tcp, udp, socks, httpproxy)")]
pub struct UnknownKind(pub String);

impl FromStr for TunnelKind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let alias = [
            ("stream", Self::Stream),
            ("http-proxy", Self::HttpProxy),
            ("http", Self::HttpProxy),
        ];
        Self::ALL
            .into_iter()
            .map(|k| (k.name(), k))
            .chain(alias)
            .find(|(name, _)| name.eq_ignore_ascii_case(s))
            .map(|(_, k)| k)
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
        assert_eq!("Tcp".parse::<TunnelKind>(), Ok(TunnelKind::Stream));
        assert_eq!("UDP".parse::<TunnelKind>(), Ok(TunnelKind::Udp));
        assert_eq!("HttpProxy".parse::<TunnelKind>(), Ok(TunnelKind::HttpProxy));
        assert_eq!(
            "http-proxy".parse::<TunnelKind>(),
            Ok(TunnelKind::HttpProxy)
        );
        let err = "gopher".parse::<TunnelKind>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown tunnel type \"gopher\" (known: tcp, udp, socks, httpproxy)"
        );
    }

    #[test]
    fn only_other_kinds_add_status_fields() {
        let mut props = BTreeMap::new();
        assert!(TunnelKind::Stream.status_fields(&props).is_empty());
        assert_eq!(
            TunnelKind::Socks.status_fields(&props),
            [("PROXYTYPE".to_owned(), "SOCKS".to_owned())]
        );
        assert_eq!(TunnelKind::Udp.status_fields(&props)[1].1, "not_set");
        props.insert("bob.udp.dest".to_owned(), "X.b32.i2p".to_owned());
        assert_eq!(TunnelKind::Udp.status_fields(&props)[1].1, "x.b32.i2p");
    }

    #[test]
    fn bob_options_are_the_servers() {
        assert!(is_server_option("bob.udp.dest"));
        assert!(is_server_option("BOB.x"));
        assert!(!is_server_option("inbound.length"));
        assert!(!is_server_option("bob"));
    }

    #[test]
    fn stream_tunnels_need_a_port() {
        assert!(TunnelKind::Stream.needs_a_port());
        assert_eq!(TunnelKind::default(), TunnelKind::Stream);
    }
}
