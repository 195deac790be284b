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
use tracing::debug;

use crate::server::Service;

pub(crate) use lifecycle::start_tunnel;
pub use lifecycle::tunnel_launcher;

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
pub(crate) async fn serve(socket: TcpStream, shared: &Arc<Service>) {
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
            () = shared.stop.cancelled() => break,
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
                shared
                    .messages
                    .line_error(&line_error)
                    .encode_into(&mut out);
                After::Continue
            }
            Some(Ok(Ok(line))) => {
                out.clear();
                let handled = tokio::select! {
                    biased;
                    () = shared.stop.cancelled() => None,
                    after = handlers::handle(&mut conn, shared, &line, &mut out) => Some(after),
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
                () = shared.stop.cancelled() => break,
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
                shared.zap.cancel();
                break;
            }
        }
    }
    let _ = write.shutdown().await;
}
