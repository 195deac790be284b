//! Proxy tunnels (i2pd's `settunneltype socks|httpproxy`): the inbound side speaks a
//! proxy protocol instead of BOB's destination line; everything else is a stream
//! tunnel's (the session, the relay, the counters, the limits).
//!
//! # The handler interface
//! [`accept_loop`] takes the place of the BOB accept loop on a proxy tunnel's listener
//! ([`super::TunnelKind::run_inbound`]). It keeps everything a BOB tunnel does for its
//! connections: at most `TunnelLimits::max_connections` at once (more wait in the
//! kernel's backlog), each counted in the tunnel's [`super::TunnelStats`] (accepted,
//! active), each ended by `stop`/`clear`/`zap`. What happens on one connection is the
//! protocol's handler:
//!
//! ```text
//! socks::serve(socket: TcpStream, proxy: ProxyContext)   // this module's sibling
//! http::serve(socket: TcpStream, proxy: ProxyContext)    // the HTTP proxy
//! ```
//!
//! A handler reads the request within [`ProxyContext::first_request_timeout`], reading
//! at most a bounded number of bytes; turns the host it names into a target with
//! [`classify_host`]; opens a stream with [`ProxyContext::connect`] (which waits for a
//! STARTING tunnel's session and bounds session wait plus connect by the tunnel's
//! connect timeout) or, for a host outside I2P, [`ProxyContext::connect_outproxy`]
//! when the tunnel has one; writes its success reply and forwards any bytes it read
//! past the request ([`ProxyContext::count_sent`]); then hands both ends to
//! [`ProxyContext::relay`] (the backend's [`crate::backend::ByteStream::relay`], counted
//! in `bytes_in`/`bytes_out`). A refused request gets a protocol error reply through
//! [`ProxyContext::reject`], which counts a failure and closes without a reset.
//! Handlers need not watch for `stop`: the accept loop drops them when it comes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;

use super::{Accepted, Endpoint, TunnelContext, TunnelLimits};
use crate::backend::{BoxStream, CoreError, Options, Target};

pub(super) mod http;
pub(super) mod socks;

#[cfg(feature = "fuzzing")]
pub(crate) use socks::{
    RequestHost as SocksRequestHost, handshake_for_fuzzing as socks_handshake_for_fuzzing,
    handshake_limit as socks_handshake_limit, udp_header as socks_udp_header,
};

/// Serial numbers for proxy connections, for log spans.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The protocol a proxy tunnel's listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// SOCKS 4, 4a and 5 ([`socks`])
    Socks,
    /// an HTTP proxy: absolute-form requests and `CONNECT` ([`http`])
    Http,
}

/// What a proxy tunnel takes from its spec besides the session: snapshotted at start.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProxySettings {
    /// `outhost:outport` when the tunnel's `outport` is set: the upstream outproxy
    /// for hosts outside I2P (SOCKS: a SOCKS5 proxy; HTTP: an HTTP proxy). `None`
    /// (the default): such hosts are refused.
    pub outproxy: Option<Endpoint>,
    /// the tunnel's options in order (the `bob.*` ones too): handler settings such as
    /// whether the HTTP proxy keeps identifying headers
    pub options: Options,
    /// SOCKS tunnels: the UDP side of `UDP ASSOCIATE` ([`socks::associate`])
    pub udp: Option<Arc<socks::associate::UdpRelay>>,
}

/// Accepts connections on a proxy tunnel's listener until the tunnel stops; each is
/// served by `protocol`'s handler in its own task (see the module docs).
pub(super) async fn accept_loop(
    listener: TcpListener,
    tunnel: TunnelContext,
    protocol: Protocol,
    settings: Arc<ProxySettings>,
) {
    let listener = &listener;
    let accept = || async move {
        match listener.accept().await {
            Ok(conn) => Accepted::Conn(conn),
            Err(e) => Accepted::Failed(e.to_string()),
        }
    };
    let serve = |(socket, from): (TcpStream, SocketAddr)| {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let span = match protocol {
            Protocol::Socks => tracing::debug_span!("socks", conn = id, %from),
            Protocol::Http => tracing::debug_span!("http", conn = id, %from),
        };
        let proxy = ProxyContext {
            tunnel: tunnel.clone(),
            settings: Arc::clone(&settings),
        };
        Some(serve(socket, proxy, protocol).instrument(span))
    };
    let what = match protocol {
        Protocol::Socks => "a SOCKS connection",
        Protocol::Http => "an HTTP proxy connection",
    };
    super::accept_loop(&tunnel, what, accept, serve).await;
}

/// One proxy connection: counted as active while it lives, ended by `stop`.
async fn serve(socket: TcpStream, proxy: ProxyContext, protocol: Protocol) {
    let _active = proxy.tunnel.stats.open_connection();
    let _ = socket.set_nodelay(true);
    let cancel = proxy.tunnel.cancel.clone();
    let handler = async move {
        match protocol {
            Protocol::Socks => socks::serve(socket, proxy).await,
            Protocol::Http => http::serve(socket, proxy).await,
        }
    };
    tokio::select! {
        () = cancel.cancelled() => tracing::debug!("connection ended by stop"),
        () = handler => {}
    }
}

/// What a proxy handler gets of its tunnel (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct ProxyContext {
    tunnel: TunnelContext,
    settings: Arc<ProxySettings>,
}

impl ProxyContext {
    /// The tunnel's limits (`max_first_line` bounds a request line or a SOCKS field).
    pub(crate) fn limits(&self) -> &TunnelLimits {
        &self.tunnel.limits
    }

    /// How long a client may take to send its whole request (SOCKS handshake, HTTP
    /// request head): the tunnel's first-line timeout.
    pub(crate) fn first_request_timeout(&self) -> Duration {
        self.tunnel.limits.first_line_timeout
    }

    /// The upstream outproxy for hosts outside I2P, if the tunnel has one.
    pub(crate) fn outproxy(&self) -> Option<&Endpoint> {
        self.settings.outproxy.as_ref()
    }

    /// The UDP side of a SOCKS tunnel (`None` for HTTP proxies).
    pub(crate) fn udp_relay(&self) -> Option<&socks::associate::UdpRelay> {
        self.settings.udp.as_deref()
    }

    /// The value of tunnel option `key` (the last one set wins).
    pub(crate) fn option(&self, key: &str) -> Option<&str> {
        self.settings
            .options
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Opens a stream to `target` through the tunnel's session, waiting for the session
    /// if the tunnel is still STARTING; both waits together are bounded by the
    /// tunnel's connect timeout.
    ///
    /// # Errors
    /// See [`ConnectError`].
    pub(crate) async fn connect(&self, target: Target) -> Result<BoxStream, ConnectError> {
        let deadline = tokio::time::Instant::now() + self.tunnel.limits.connect_timeout;
        let session = match tokio::time::timeout_at(deadline, self.tunnel.session.ready()).await {
            Ok(Ok(session)) => session,
            Ok(Err(reason)) => return Err(ConnectError::NotReady(reason)),
            Err(_) => {
                return Err(ConnectError::NotReady(
                    "timed out waiting for the tunnel to start".to_owned(),
                ));
            }
        };
        match tokio::time::timeout_at(deadline, session.connect(target)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(CoreError::NotFound)) => Err(ConnectError::NotFound),
            Ok(Err(CoreError::Unreachable(why))) => Err(ConnectError::Unreachable(why)),
            Ok(Err(CoreError::Timeout)) | Err(_) => Err(ConnectError::Timeout),
            Ok(Err(e)) => Err(ConnectError::Failed(e.to_string())),
        }
    }

    /// Opens a TCP connection to the outproxy (the handler then speaks the upstream
    /// protocol on it), bounded by the tunnel's connect timeout.
    ///
    /// # Errors
    /// [`ConnectError::NoOutproxy`] when the tunnel has none; [`ConnectError::Timeout`];
    /// [`ConnectError::Failed`] with the I/O error's text.
    pub(crate) async fn connect_outproxy(&self) -> Result<TcpStream, ConnectError> {
        let Some(endpoint) = self.outproxy() else {
            return Err(ConnectError::NoOutproxy);
        };
        let connect = TcpStream::connect((endpoint.host.as_str(), endpoint.port));
        match tokio::time::timeout(self.tunnel.limits.connect_timeout, connect).await {
            Ok(Ok(socket)) => {
                let _ = socket.set_nodelay(true);
                Ok(socket)
            }
            Ok(Err(e)) => Err(ConnectError::Failed(format!(
                "outproxy {}:{}: {e}",
                endpoint.host, endpoint.port
            ))),
            Err(_) => Err(ConnectError::Timeout),
        }
    }

    /// Relays between the client's `socket` and `stream` until both directions end,
    /// one fails or the tunnel stops; counts bytes and a failure as BOB tunnels do.
    /// An outproxy connection is relayed the same way (`Box::new(tcp_stream)`).
    pub(crate) async fn relay(&self, socket: TcpStream, stream: BoxStream) {
        self.tunnel.relay(socket, stream).await;
    }

    /// Sends `reply` (the protocol's error reply), counts a failure, and closes the
    /// connection without provoking a reset (the client reads the reply).
    pub(crate) async fn reject(&self, socket: TcpStream, reply: &[u8]) {
        self.count_failure();
        super::inbound::reply_and_close(socket, reply).await;
    }

    /// Counts a connection that failed without a reply (the client went away, a
    /// malformed request that the protocol answers by closing).
    pub(crate) fn count_failure(&self) {
        self.tunnel.stats.count_failure();
    }

    /// Counts `n` bytes the handler itself wrote from the client into the stream
    /// (bytes read past the request, a rewritten request head): `bytes_out`.
    pub(crate) fn count_sent(&self, n: usize) {
        self.tunnel
            .stats
            .bytes_out
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts `n` bytes the handler itself wrote from the stream to the client:
    /// `bytes_in`.
    pub(crate) fn count_received(&self, n: usize) {
        self.tunnel
            .stats
            .bytes_in
            .fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Why [`ProxyContext::connect`] or [`ProxyContext::connect_outproxy`] failed; each
/// protocol maps it to its own error reply (SOCKS reply codes, HTTP status pages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ConnectError {
    /// No naming source knows the name (HTTP: 404-like page).
    #[error("unknown destination")]
    NotFound,
    /// The destination is known but cannot be reached (HTTP: 504).
    #[error("Can't reach peer: {0}")]
    Unreachable(String),
    /// The connect took longer than the tunnel's connect timeout (HTTP: 504).
    #[error("timed out")]
    Timeout,
    /// The tunnel's session never came up or the tunnel stopped (the reason).
    #[error("{0}")]
    NotReady(String),
    /// A host outside I2P and the tunnel has no outproxy.
    #[error("not an I2P destination and no outproxy is configured")]
    NoOutproxy,
    /// Anything else (router errors, outproxy I/O errors), with its text.
    #[error("{0}")]
    Failed(String),
}

/// What a host named in a proxy request is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Host {
    /// An I2P destination: a `.i2p` name (`.b32.i2p` included, lower-cased) or a base64
    /// destination.
    I2p(Target),
    /// Anything else (an IP literal, a clearnet name): only an outproxy reaches it.
    Other(String),
}

/// The longest host name accepted (a DNS name is at most 253 bytes; a base64
/// destination with a certificate is longer, so this is generous).
pub(crate) const MAX_HOST_LEN: usize = 4096;

/// Classifies the host of a proxy request (without a port; see the handlers for
/// ports, which I2P streams do not use here and which are ignored).
///
/// # Errors
/// A text for the log when `host` is empty, too long, or a `.i2p` name with
/// characters no host name has.
pub(crate) fn classify_host(host: &str) -> Result<Host, String> {
    let host = host.trim();
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return Err("empty host".to_owned());
    }
    if host.len() > MAX_HOST_LEN {
        return Err("host too long".to_owned());
    }
    let lower = host.to_ascii_lowercase();
    if let Some(label) = lower.strip_suffix(".i2p") {
        let valid = !label.is_empty()
            && !label.starts_with('.')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
        return if valid {
            Ok(Host::I2p(Target::Name(lower)))
        } else {
            Err(format!("bad I2P host name {host:?}"))
        };
    }
    // A base64 destination is long and has no dot; a DNS name or an IP literal never
    // parses as one.
    if !host.contains('.')
        && !host.contains(':')
        && let Ok(destination) = keytools::verify_bob(host)
    {
        return Ok(Host::I2p(Target::Destination(destination)));
    }
    Ok(Host::Other(host.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_classified() {
        assert_eq!(
            classify_host("Example.I2P"),
            Ok(Host::I2p(Target::Name("example.i2p".to_owned())))
        );
        assert_eq!(
            classify_host("abcd.b32.i2p."),
            Ok(Host::I2p(Target::Name("abcd.b32.i2p".to_owned())))
        );
        assert_eq!(
            classify_host("127.0.0.1"),
            Ok(Host::Other("127.0.0.1".to_owned()))
        );
        assert_eq!(
            classify_host("example.com"),
            Ok(Host::Other("example.com".to_owned()))
        );
        assert!(classify_host("").is_err());
        assert!(classify_host(".i2p").is_err());
        assert!(classify_host("a b.i2p").is_err());
        assert!(classify_host(&"a".repeat(MAX_HOST_LEN + 1)).is_err());
    }

    #[test]
    fn base64_destinations_are_i2p_hosts() {
        let keys = keytools::PrivateKeys::generate(
            keytools::SigType::Ed25519,
            keytools::CryptoType::ElGamal,
        )
        .expect("key generation");
        let b64 = keys.destination().to_base64();
        assert_eq!(
            classify_host(&b64),
            Ok(Host::I2p(Target::Destination(keys.destination().clone())))
        );
    }
}
