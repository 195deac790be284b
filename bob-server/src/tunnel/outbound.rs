//! The outbound (server) side: I2P streams accepted by the session are connected to
//! `outhost:outport`.
//!
//! One task waits on `Session::accept` and hands every stream to its own task, so a
//! slow TCP connect never holds up the next stream. A tunnel without an outbound side
//! still runs this loop, refusing (closing) every incoming stream at once, so that a
//! peer learns immediately that nobody listens instead of waiting on a stream that is
//! never read.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::Instrument;

use super::{Accepted, Endpoint, TunnelContext};
use crate::backend::{BoxStream, CoreError, Incoming};

/// Serial numbers for outbound connections, for log spans.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// How long a resolved `outhost` name is reused. BOB's default `outhost` is
/// `localhost`: without this every incoming stream would wait for a blocking
/// resolver call on tokio's thread pool.
const RESOLVE_TTL: Duration = Duration::from_secs(30);

/// `outhost:outport` with its resolved addresses, shared by the tunnel's connections.
#[derive(Debug)]
struct OutboundTarget {
    endpoint: Endpoint,
    /// the addresses of a host name and when they were looked up (IP literals are
    /// never looked up)
    cache: Mutex<Option<(Instant, Arc<[SocketAddr]>)>>,
}

impl OutboundTarget {
    fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            cache: Mutex::new(None),
        }
    }

    /// The addresses to try, in resolver order.
    async fn addrs(&self) -> io::Result<Arc<[SocketAddr]>> {
        let port = self.endpoint.port;
        if let Ok(ip) = self.endpoint.host.parse::<IpAddr>() {
            return Ok(Arc::new([SocketAddr::new(ip, port)]));
        }
        {
            let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((at, addrs)) = &*cache
                && at.elapsed() < RESOLVE_TTL
            {
                return Ok(Arc::clone(addrs));
            }
        }
        let addrs: Arc<[SocketAddr]> = tokio::net::lookup_host((self.endpoint.host.as_str(), port))
            .await?
            .collect();
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} has no address", self.endpoint.host),
            ));
        }
        *self.cache.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((Instant::now(), Arc::clone(&addrs)));
        Ok(addrs)
    }

    /// Connects to the first address that accepts.
    async fn connect(&self) -> io::Result<TcpStream> {
        let addrs = self.addrs().await?;
        TcpStream::connect(&addrs[..]).await
    }
}

/// Accepts streams until the session closes or the tunnel stops. `target` is the
/// `outhost:outport` endpoint and the `quiet` flag, or `None` to refuse streams.
pub(super) async fn accept_loop(target: Option<(Endpoint, bool)>, shared: TunnelContext) {
    let target = target.map(|(endpoint, quiet)| (Arc::new(OutboundTarget::new(endpoint)), quiet));
    let session = &shared.session;
    let accept = || async move {
        match session.accept().await {
            Ok(incoming) => Accepted::Conn(incoming),
            Err(CoreError::Closed) => Accepted::Closed,
            Err(e) => Accepted::Failed(e.to_string()),
        }
    };
    let serve = |incoming: Incoming| {
        let Some((out, quiet)) = &target else {
            tracing::debug!("refusing incoming stream: tunnel has no outbound side");
            drop(incoming);
            return None;
        };
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let span = tracing::debug_span!("out", conn = id);
        Some(serve(incoming, Arc::clone(out), *quiet, shared.clone()).instrument(span))
    };
    super::accept_loop(&shared, "an I2P stream", accept, serve).await;
}

/// One incoming stream: connect, write the peer line unless quiet, relay.
async fn serve(incoming: Incoming, out: Arc<OutboundTarget>, quiet: bool, shared: TunnelContext) {
    let _active = shared.stats.open_connection();
    // The set-up's state (peer, endpoint, line) is freed before relaying.
    let Some((socket, stream)) = set_up(incoming, &out, quiet, &shared).await else {
        return;
    };
    shared.relay(socket, stream).await;
}

/// Connects to `outhost:outport` and writes the peer line unless quiet. `None` when
/// the stream has been dealt with (closed after a failure, or the tunnel stopped).
async fn set_up(
    incoming: Incoming,
    out: &OutboundTarget,
    quiet: bool,
    shared: &TunnelContext,
) -> Option<(TcpStream, BoxStream)> {
    let endpoint = &out.endpoint;
    let Incoming { mut stream, peer } = incoming;
    tracing::debug!(peer = %peer.b32(), "incoming stream");
    let connect = tokio::time::timeout(shared.limits.connect_timeout, out.connect());
    let connected = tokio::select! {
        () = shared.cancel.cancelled() => return None,
        connected = connect => connected,
    };
    let mut socket = match connected {
        Ok(Ok(socket)) => socket,
        Ok(Err(e)) => {
            shared.stats.count_failure();
            tracing::warn!(
                outhost = %endpoint.host, outport = endpoint.port, error = %e,
                "cannot connect to outhost:outport; closing the I2P stream"
            );
            let _ = stream.shutdown().await;
            return None;
        }
        Err(_) => {
            shared.stats.count_failure();
            tracing::warn!(
                outhost = %endpoint.host, outport = endpoint.port,
                "connect to outhost:outport timed out; closing the I2P stream"
            );
            let _ = stream.shutdown().await;
            return None;
        }
    };
    // Relayed bytes are small and interactive as often as bulk; do not delay them.
    let _ = socket.set_nodelay(true);
    if !quiet {
        // The peer line goes out in its own write, before any data from the stream.
        let line = format!("{}\n", peer.to_base64());
        let written = async {
            socket.write_all(line.as_bytes()).await?;
            socket.flush().await
        };
        let written = tokio::select! {
            () = shared.cancel.cancelled() => return None,
            written = written => written,
        };
        if let Err(e) = written {
            shared.stats.count_failure();
            tracing::debug!(error = %e, "writing the peer line failed");
            return None;
        }
    }
    Some((socket, stream))
}
