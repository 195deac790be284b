//! One BOB control connection: greeting, framed line reading, strictly ordered command
//! handling, one write per reply.
//!
//! The connection's only state is `Connection`: the nickname it selected (a cursor into
//! the global [`crate::registry::Registry`]) — never a copy of registry data.

mod handlers;
mod lifecycle;
pub mod messages;

use std::sync::Arc;

use bob_codec::GREETING;
use bob_codec::line::LineCodec;
use futures::StreamExt;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use self::messages::Messages;
use crate::service::Service;

/// What every control connection shares: the service that runs the tunnels, the reply
/// strings of the configured dialect, and the `zap` switch of the accept loop.
#[derive(Debug)]
pub(crate) struct Frontend {
    /// registry, backend, persistence, tunnel tasks
    pub(crate) service: Arc<Service>,
    /// reply strings of the configured dialect
    pub(crate) messages: Messages,
    /// cancelled by `zap`: stop accepting
    pub(crate) zap: CancellationToken,
}

impl Frontend {
    pub(crate) fn new(service: Arc<Service>, messages: Messages) -> Self {
        Self {
            service,
            messages,
            zap: CancellationToken::new(),
        }
    }
}

/// Per-connection state.
#[derive(Debug, Default)]
pub(crate) struct Connection {
    /// the selected nickname (`setnick`/`getnick`); the entry may have been cleared since
    pub(crate) nickname: Option<String>,
}

/// What the driver does after writing a reply.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum After {
    /// read the next line
    Continue,
    /// stream the `list` block (under back-pressure), then read the next line
    List,
    /// close this connection (`quit`)
    Close,
    /// close this connection and shut the server down (`zap`)
    Zap,
}

/// `list` is written in chunks of about this size, so a connection never holds more than
/// one chunk of encoded lines however large the registry is.
const LIST_CHUNK: usize = 16 * 1024;

/// Where a reply goes: the socket, shutdown, and how long the client may take.
struct Sink<'a, W> {
    write: W,
    stop: &'a CancellationToken,
    timeout: Duration,
}

/// Writes `bytes`, racing shutdown and the write timeout
/// ([`crate::config::Config::control_write_timeout`]). `false`: close the connection.
async fn send<W: AsyncWrite + Unpin>(sink: &mut Sink<'_, W>, bytes: &[u8]) -> bool {
    let limit = sink.timeout;
    let written = tokio::select! {
        biased;
        () = sink.stop.cancelled() => return false,
        r = tokio::time::timeout(limit, sink.write.write_all(bytes)) => r,
    };
    match written {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            debug!(error = %e, "control connection write failed");
            false
        }
        Err(_) => {
            warn!(
                timeout = ?limit,
                "control client did not read its reply in time; closing the connection"
            );
            false
        }
    }
}

/// Streams the `list` block in [`LIST_CHUNK`]s.
async fn send_list<W: AsyncWrite + Unpin>(
    sink: &mut Sink<'_, W>,
    front: &Frontend,
    out: &mut Vec<u8>,
) -> bool {
    let m = front.messages;
    out.clear();
    for status in front.service.registry().list() {
        m.list_line(&status).encode_into(out);
        if out.len() >= LIST_CHUNK {
            if !send(sink, out).await {
                return false;
            }
            out.clear();
        }
    }
    m.list_done().encode_into(out);
    let sent = send(sink, out).await;
    out.clear();
    sent
}

/// Serves one control connection (TCP or the Unix control socket) until the client
/// leaves or the server stops.
pub(crate) async fn serve<S>(socket: S, front: &Frontend)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let stop = front.service.stopping();
    let (read, write) = tokio::io::split(socket);
    let mut sink = Sink {
        write,
        stop,
        timeout: front.service.config().control_write_timeout,
    };
    if !send(&mut sink, GREETING).await {
        return;
    }
    let mut lines = FramedRead::new(read, LineCodec::new());
    let mut conn = Connection::default();
    let mut out = Vec::with_capacity(256);
    loop {
        let item = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            item = lines.next() => item,
        };
        let after = match item {
            None => break,
            Some(Err(e)) => {
                debug!(error = %e, "control connection read failed");
                break;
            }
            Some(Ok(Err(line_error))) => {
                debug!(%line_error, "bad request line");
                out.clear();
                front.messages.line_error(&line_error).encode_into(&mut out);
                After::Continue
            }
            Some(Ok(Ok(line))) => {
                out.clear();
                let handled = tokio::select! {
                    biased;
                    () = stop.cancelled() => None,
                    after = handlers::handle(&mut conn, front, &line, &mut out) => Some(after),
                };
                match handled {
                    Some(after) => after,
                    None => break,
                }
            }
        };
        // No line is read while a reply is being written, so a client that does not read
        // its replies stalls only itself: the pipelined lines wait in its socket buffers,
        // and this connection holds at most one reply (or one `list` chunk).
        if !out.is_empty() && !send(&mut sink, &out).await {
            break;
        }
        match after {
            After::Continue => {}
            After::List => {
                if !send_list(&mut sink, front, &mut out).await {
                    break;
                }
            }
            After::Close => break,
            After::Zap => {
                front.zap.cancel();
                break;
            }
        }
    }
    let _ = sink.write.shutdown().await;
}
