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
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::debug;

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
    /// close this connection (`quit`)
    Close,
    /// close this connection and shut the server down (`zap`)
    Zap,
}

/// Serves one control connection until the client leaves or the server stops.
pub(crate) async fn serve(socket: TcpStream, front: &Frontend) {
    let stop = front.service.stopping();
    let _ = socket.set_nodelay(true);
    let (read, mut write) = socket.into_split();
    if write.write_all(GREETING).await.is_err() {
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
        // Every reply (the whole `list` included) goes out in one write.
        // A client that stops reading must not hold up shutdown, so the write races `stop`.
        if !out.is_empty() {
            let written = tokio::select! {
                biased;
                () = stop.cancelled() => break,
                r = write.write_all(&out) => r,
            };
            if written.is_err() {
                break;
            }
        }
        match after {
            After::Continue => {}
            After::Close => break,
            After::Zap => {
                front.zap.cancel();
                break;
            }
        }
    }
    let _ = write.shutdown().await;
}
