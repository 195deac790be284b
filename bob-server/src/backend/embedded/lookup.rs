//! Name lookups on emissary. Its SAM server answers `NAMING LOOKUP` only on a session's
//! control socket: on a fresh connection every name is `KEY_NOT_FOUND` (emissary 0.4.0,
//! `sam/pending/connection.rs`). So the core keeps one small transient session just for
//! lookups, made on first use and again after its socket breaks, and sends the lookups
//! over its control socket one at a time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keytools::Destination;
use tokio::sync::Mutex;
use tracing::debug;

use crate::backend::CoreError;
use crate::backend::sam::SamConfig;
use crate::backend::sam::conn::{SamConn, with_timeout};
use crate::backend::sam::proto::{ResultCode, SamError};

/// Pause between lookups of a `.b32.i2p` name that is not found yet.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// The lookup session.
#[derive(Debug)]
pub(crate) struct Lookups {
    cfg: SamConfig,
    conn: Mutex<Option<SamConn>>,
    serial: AtomicU64,
}

impl Lookups {
    pub(crate) fn new(cfg: SamConfig) -> Self {
        Self {
            cfg,
            conn: Mutex::new(None),
            serial: AtomicU64::new(0),
        }
    }

    async fn create(&self) -> Result<SamConn, SamError> {
        let n = self.serial.fetch_add(1, Ordering::Relaxed);
        let id = format!("boblookup{:x}x{n}", std::process::id());
        with_timeout(self.cfg.session_timeout, async {
            let mut conn = SamConn::open(&self.cfg.addr, self.cfg.session_timeout).await?;
            conn.call(
                "SESSION CREATE",
                [
                    ("STYLE", "STREAM"),
                    ("ID", id.as_str()),
                    ("DESTINATION", "TRANSIENT"),
                    ("SIGNATURE_TYPE", "7"),
                    ("inbound.length", "1"),
                    ("outbound.length", "1"),
                    ("inbound.quantity", "1"),
                    ("outbound.quantity", "1"),
                ],
                "SESSION STATUS",
            )
            .await?;
            debug!(session = %id, "lookup session created");
            Ok(conn)
        })
        .await
    }

    async fn once(&self, name: &str) -> Result<Destination, SamError> {
        let mut guard = self.conn.lock().await;
        if guard.is_none() {
            *guard = Some(self.create().await?);
        }
        let Some(conn) = guard.as_mut() else {
            return Err(SamError::Unavailable("no lookup session".into()));
        };
        let reply = with_timeout(
            self.cfg.command_timeout,
            conn.call("NAMING LOOKUP", [("NAME", name)], "NAMING REPLY"),
        )
        .await;
        match reply {
            Ok(reply) => {
                let value = reply.require("VALUE")?;
                Destination::from_base64(value).map_err(|e| {
                    SamError::Malformed(format!("NAMING REPLY VALUE is not a destination: {e}"))
                })
            }
            Err(e) => {
                if e.code().is_none() {
                    // transport trouble: the socket may be out of step; start afresh
                    *guard = None;
                }
                Err(e)
            }
        }
    }

    /// Resolves `name` (a base64 destination locally); `.b32.i2p` names not found yet
    /// are retried until `deadline` (a LeaseSet may not be published yet).
    pub(crate) async fn resolve(
        &self,
        name: &str,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Destination, CoreError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(CoreError::NotFound);
        }
        if !name.contains('.')
            && let Ok(d) = Destination::from_base64(name)
        {
            return Ok(d);
        }
        let b32 = name.to_ascii_lowercase().ends_with(".b32.i2p");
        loop {
            match self.once(name).await {
                Ok(d) => return Ok(d),
                Err(e) => {
                    let not_found = matches!(
                        e.code(),
                        Some(ResultCode::KeyNotFound | ResultCode::InvalidKey)
                    );
                    let retry = not_found
                        && b32
                        && deadline
                            .is_some_and(|d| tokio::time::Instant::now() + RETRY_INTERVAL < d);
                    if !retry {
                        return Err(if not_found {
                            CoreError::NotFound
                        } else {
                            e.into()
                        });
                    }
                    debug!(%name, "name not found yet; retrying");
                    tokio::time::sleep(RETRY_INTERVAL).await;
                }
            }
        }
    }
}
