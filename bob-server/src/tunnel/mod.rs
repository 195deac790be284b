//! A running tunnel: its session, the inbound listener and the outbound acceptor.
//!
//! This is the interface between the control side (registry, commands) and the data path:
//! ```text
//! RunningTunnel::start(core, spec, limits).await -> Result<RunningTunnel, StartError>
//! running.stop().await   // closes listener and session, ends live connections
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use keytools::{Destination, PrivateKeys};

use crate::backend::{CoreError, Options, Session, StreamingCore};

/// A `host:port` pair as the BOB client gave it (host may be a name or an IP literal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// host name or IP literal, resolved when used
    pub host: String,
    /// port, 1..=65535
    pub port: u16,
}

/// Everything a tunnel needs to start, snapshotted from the registry entry at `start`.
#[derive(Debug, Clone)]
pub struct TunnelSpec {
    /// nickname, for logs
    pub nickname: String,
    /// the tunnel's keys
    pub keys: PrivateKeys,
    /// options handed to the backend session (tunnel options over server defaults)
    pub options: Options,
    /// inbound (client) side: listen here, if set
    pub inbound: Option<Endpoint>,
    /// outbound (server) side: connect accepted streams here, if set
    pub outbound: Option<Endpoint>,
    /// do not write the peer destination line on outbound connections
    pub quiet: bool,
}

/// Limits and timeouts of the data path.
#[derive(Debug, Clone)]
pub struct TunnelLimits {
    /// how long an inbound application may take to send its destination line
    pub first_line_timeout: Duration,
    /// longest destination line accepted (bytes, without terminator)
    pub max_first_line: usize,
    /// how long `start` may wait for the backend session
    pub session_timeout: Duration,
    /// how long an inbound connect to a destination may take
    pub connect_timeout: Duration,
}

impl Default for TunnelLimits {
    fn default() -> Self {
        Self {
            first_line_timeout: Duration::from_secs(60),
            max_first_line: 4096,
            session_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(60),
        }
    }
}

/// Why a tunnel did not start; `Display` is the text after `ERROR starting tunnel: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// The inbound listener could not be bound (e.g. `Address already in use`).
    #[error("{0}")]
    Bind(String),
    /// `inhost` did not resolve.
    #[error("unknown host {0}")]
    UnknownHost(String),
    /// The backend refused or failed to create the session.
    #[error("{0}")]
    Core(#[from] CoreError),
    /// The session did not come up within the limit.
    #[error("timed out waiting for the session")]
    Timeout,
}

// The data-path helper implements `RunningTunnel` here (and in inbound.rs, outbound.rs,
// pipe.rs) with this API:
//
//   pub struct RunningTunnel { .. }
//   impl RunningTunnel {
//       pub async fn start(core: Arc<dyn StreamingCore>, spec: TunnelSpec, limits: TunnelLimits)
//           -> Result<Self, StartError>;       // returns once the listener is bound and the session is up
//       pub async fn stop(self);              // listener + session closed, live connections ended
//       pub fn destination(&self) -> &Destination;
//       pub fn session(&self) -> &Arc<dyn Session>;
//       pub fn inbound_addr(&self) -> Option<SocketAddr>;   // the bound listener address
//   }
#[allow(dead_code)]
fn _contract(_: Arc<dyn StreamingCore>, _: Arc<dyn Session>, _: Destination, _: SocketAddr) {}
