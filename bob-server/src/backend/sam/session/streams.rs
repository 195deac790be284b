//! One-shot SAM connections of a session: `STREAM CONNECT`, `NAMING LOOKUP` (with
//! retries until a deadline) and the `STREAM ACCEPT` loop.

use super::*;

/// `STREAM CONNECT` on a fresh connection; on `RESULT=OK` the connection is the stream.
pub(super) async fn stream_connect(
    cfg: &SamConfig,
    id: &str,
    dest_b64: &str,
) -> Result<BoxStream, SamError> {
    let mut conn = SamConn::open(&cfg.addr, cfg.command_timeout).await?;
    with_timeout(
        cfg.command_timeout,
        conn.call(
            "STREAM CONNECT",
            [("ID", id), ("DESTINATION", dest_b64), ("SILENT", "false")],
            "STREAM STATUS",
        ),
    )
    .await?;
    Ok(Box::new(conn.into_stream(cfg.forward_half_close)))
}

/// `NAMING LOOKUP NAME=…` on a fresh connection.
///
/// # Errors
/// [`SamError::Refused`] with `KEY_NOT_FOUND` (also for `INVALID_KEY`: a name the router
/// cannot parse is a name it does not know), the router's other refusals, transport
/// errors, and [`SamError::Malformed`] for a `VALUE=` that is not a destination.
pub(crate) async fn naming_lookup(cfg: &SamConfig, name: &str) -> Result<Destination, SamError> {
    let mut conn = SamConn::open(&cfg.addr, cfg.command_timeout).await?;
    let reply = with_timeout(
        cfg.command_timeout,
        conn.call("NAMING LOOKUP", [("NAME", name)], "NAMING REPLY"),
    )
    .await
    .map_err(|e| match e {
        SamError::Refused {
            code: ResultCode::InvalidKey,
            message,
        } => SamError::Refused {
            code: ResultCode::KeyNotFound,
            message,
        },
        e => e,
    })?;
    let value = reply.require("VALUE")?;
    Destination::from_base64(value)
        .map_err(|e| SamError::Malformed(format!("NAMING REPLY VALUE is not a destination: {e}")))
}

/// Resolves `name`: a base64 destination locally, anything else with `NAMING LOOKUP`.
/// With a `deadline`, `.b32.i2p` names that are not found are retried until then (a
/// LeaseSet that was just created may not be published yet).
pub(crate) async fn resolve_until(
    cfg: &SamConfig,
    name: &str,
    deadline: Option<tokio::time::Instant>,
) -> Result<Destination, CoreError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(CoreError::NotFound);
    }
    if !name.contains('.')
        && name.len() >= 387 * 4 / 3
        && let Ok(d) = Destination::from_base64(name)
    {
        return Ok(d);
    }
    let retry_b32 = deadline.filter(|_| name.to_ascii_lowercase().ends_with(".b32.i2p"));
    loop {
        match naming_lookup(cfg, name).await {
            Ok(d) => return Ok(d),
            Err(e)
                if e.code() == Some(&ResultCode::KeyNotFound)
                    && retry_b32.is_some_and(|d| {
                        tokio::time::Instant::now() + cfg.connect_retry_interval < d
                    }) =>
            {
                debug!(%name, "b32 name not found yet; retrying");
                tokio::time::sleep(cfg.connect_retry_interval).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// One background acceptor: keeps a `STREAM ACCEPT` outstanding while the session is up
/// and hands accepted streams to the session's queue.
pub(super) async fn acceptor(
    cfg: Arc<SamConfig>,
    mut state: watch::Receiver<LinkState>,
    tx: mpsc::Sender<Incoming>,
    cancel: CancellationToken,
) {
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let id = tokio::select! {
            () = cancel.cancelled() => return,
            s = state.wait_for(|s| !matches!(s, LinkState::Down(_))) => match s.as_deref() {
                Ok(LinkState::Up(id)) => Arc::clone(id),
                _ => return,
            },
        };
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            r = accept_one(&cfg, &id) => r,
        };
        match accepted {
            Ok(incoming) => {
                backoff = ACCEPT_BACKOFF_MIN;
                tokio::select! {
                    () = cancel.cancelled() => return,
                    r = tx.send(incoming) => if r.is_err() { return },
                }
            }
            Err(e) => {
                debug!(error = %e, "STREAM ACCEPT failed");
                // a change of the session (lost, re-created) ends the pause early
                state.borrow_and_update();
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {
                        backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    }
                    r = state.changed() => {
                        if r.is_err() {
                            return;
                        }
                        backoff = ACCEPT_BACKOFF_MIN;
                    }
                }
            }
        }
    }
}

/// `STREAM ACCEPT` on a fresh connection, then wait for a peer: the router sends the
/// peer's destination line first; what follows is the stream.
async fn accept_one(cfg: &SamConfig, id: &str) -> Result<Incoming, SamError> {
    let mut conn = SamConn::open(&cfg.addr, cfg.command_timeout).await?;
    with_timeout(
        cfg.command_timeout,
        conn.call(
            "STREAM ACCEPT",
            [("ID", id), ("SILENT", "false")],
            "STREAM STATUS",
        ),
    )
    .await?;
    let line = conn.read_line().await?;
    let peer = Destination::from_base64(peer_line(&line)?).map_err(|e| {
        SamError::Malformed(format!("accepted stream from an invalid destination: {e}"))
    })?;
    Ok(Incoming {
        stream: Box::new(conn.into_stream(cfg.forward_half_close)),
        peer,
    })
}
