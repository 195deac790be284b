//! The embedded backends' [`StreamingCore`]: the SAM backend pointed at the router's
//! loopback SAM port, with the [`quirks`](super::quirks) table applied to every session.

use std::sync::Arc;
use std::time::Duration;

use keytools::{Destination, PrivateKeys};
use tracing::warn;

use super::lookup::Lookups;
use super::quirks::{EMISSARY, Quirks};
use super::router::{RouterHandle, RouterStatus};
use super::{EmbeddedConfig, EmbeddedError, RouterKind};
use crate::backend::datagram::{
    Datagram, DatagramCore, DatagramError, DatagramSession, DatagramStyle,
};
use crate::backend::sam::{SamConfig, SamCore};
use crate::backend::{
    BoxFuture, BoxStream, CoreError, Incoming, Options, RouterReport, Session, StreamingCore,
    Target,
};

/// How long the router's SAM port may take to answer at start.
const START_PROBE: Duration = Duration::from_secs(30);

/// How long opening a session retries a destination that is still in use: emissary
/// 0.4.0 keeps a closed session's destination until each of its streams has closed
/// gracefully, at most 60 s (`GRACEFUL_SHUTDOWN_TIMEOUT` of its stream manager), and
/// answers `DUPLICATE_DEST` until then. Longer than that, so a tunnel `stop`/`start`
/// with a peer that never acknowledges the close still starts.
const DUPLICATE_RETRY: Duration = Duration::from_secs(75);

/// How long a core-level lookup (BOB `lookup`) retries a `.b32.i2p` name.
const LOOKUP_RETRY: Duration = Duration::from_secs(30);

/// The SAM backend on an in-process emissary router.
#[derive(Debug)]
pub struct EmbeddedCore {
    sam: SamCore,
    lookups: Arc<Lookups>,
    name: &'static str,
    quirks: &'static Quirks,
    status: Arc<RouterStatus>,
}

impl EmbeddedCore {
    /// The core for `routers`, started from `config`.
    pub fn new(config: &EmbeddedConfig, routers: &RouterHandle) -> Self {
        Self::with_quirks(config, routers, &EMISSARY)
    }

    fn with_quirks(
        config: &EmbeddedConfig,
        routers: &RouterHandle,
        quirks: &'static Quirks,
    ) -> Self {
        let sam = sam_config(config, routers, quirks);
        Self {
            lookups: Arc::new(Lookups::new(sam.clone())),
            sam: SamCore::new(sam),
            name: match config.kind {
                RouterKind::Embedded => "embedded",
                RouterKind::Devnet { .. } => "devnet",
            },
            quirks,
            status: Arc::clone(&routers.status),
        }
    }

    /// The router's state (peers, tunnels, SAM health).
    pub fn status(&self) -> &Arc<RouterStatus> {
        &self.status
    }

    /// The SAM settings in use (its `addr` is the router's SAM port).
    pub fn sam_config(&self) -> &SamConfig {
        self.sam.config()
    }

    /// Waits until the router's SAM port answers `HELLO` (bounded).
    ///
    /// # Errors
    /// [`EmbeddedError::Sam`] when it does not within 30 s.
    pub async fn probe(&self) -> Result<(), EmbeddedError> {
        let deadline = tokio::time::Instant::now() + START_PROBE;
        loop {
            match self.sam.probe().await {
                Ok(()) => return Ok(()),
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    return Err(EmbeddedError::Sam(e.to_string()));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// The options to send for `keys` (the quirks table applied; what it changed is
    /// logged).
    fn options(&self, keys: &PrivateKeys, options: Options) -> Result<Options, CoreError> {
        let (options, adjusted) = self.quirks.apply(keys, options)?;
        for a in adjusted {
            warn!(
                "option {}={} sent as {}={}: the {} router accepts no other value",
                a.key, a.from, a.key, a.to, self.quirks.router
            );
        }
        Ok(options)
    }

    async fn open(
        &self,
        keys: PrivateKeys,
        options: Options,
        sharing: bool,
    ) -> Result<Arc<dyn Session>, CoreError> {
        let options = self.options(&keys, options)?;
        let inner = retry_duplicate(|| {
            if sharing {
                self.sam.open_session_sharing(keys.clone(), options.clone())
            } else {
                self.sam.open_session(keys.clone(), options.clone())
            }
        })
        .await?;
        Ok(Arc::new(EmbeddedSession {
            inner,
            lookups: Arc::clone(&self.lookups),
            connect_retry: self.sam.config().connect_retry,
        }))
    }

    /// A datagram session: the SAM backend's (`STYLE=DATAGRAM|RAW`, never DATAGRAM2,
    /// `PORT=` always sent, payloads capped by the quirks table's UDP buffer), names
    /// resolved through the core's lookup session.
    async fn open_datagrams(
        &self,
        keys: PrivateKeys,
        options: Options,
        style: DatagramStyle,
    ) -> Result<Arc<dyn DatagramSession>, CoreError> {
        let options = self.options(&keys, options)?;
        let inner = retry_duplicate(|| {
            self.sam
                .open_datagram_session(keys.clone(), options.clone(), style)
        })
        .await?;
        Ok(Arc::new(EmbeddedDatagrams {
            inner,
            lookups: Arc::clone(&self.lookups),
        }))
    }
}

/// Runs `open` until it does not answer [`CoreError::DuplicateDestination`], for at most
/// [`DUPLICATE_RETRY`]: a session closed a moment ago (tunnel stop, server restart) is
/// still on the router for some milliseconds.
async fn retry_duplicate<T, F, Fut>(mut open: F) -> Result<T, CoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CoreError>>,
{
    let deadline = tokio::time::Instant::now() + DUPLICATE_RETRY;
    loop {
        match open().await {
            Err(CoreError::DuplicateDestination) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            r => return r,
        }
    }
}

/// A SAM datagram session whose names are resolved through the core's lookup session
/// (emissary answers `NAMING LOOKUP` only there, and takes base64 destinations only).
#[derive(Debug)]
struct EmbeddedDatagrams {
    inner: Arc<dyn DatagramSession>,
    lookups: Arc<Lookups>,
}

impl DatagramSession for EmbeddedDatagrams {
    fn destination(&self) -> &Destination {
        self.inner.destination()
    }

    fn max_payload(&self) -> usize {
        self.inner.max_payload()
    }

    fn send_to<'a>(
        &'a self,
        to: &'a Destination,
        style: DatagramStyle,
        from_port: u16,
        to_port: u16,
        payload: &'a [u8],
    ) -> BoxFuture<'a, Result<(), DatagramError>> {
        self.inner.send_to(to, style, from_port, to_port, payload)
    }

    fn recv(&self) -> BoxFuture<'_, Result<Datagram, DatagramError>> {
        self.inner.recv()
    }

    fn lookup<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Destination, DatagramError>> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + LOOKUP_RETRY;
            self.lookups
                .resolve(name, Some(deadline))
                .await
                .map_err(|e| match e {
                    CoreError::NotFound => DatagramError::NotFound,
                    CoreError::Closed => DatagramError::Closed,
                    e => DatagramError::Router(e.to_string()),
                })
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        self.inner.close()
    }
}

impl DatagramCore for EmbeddedCore {
    fn open_datagram_session(
        &self,
        keys: PrivateKeys,
        options: Options,
        style: DatagramStyle,
    ) -> BoxFuture<'_, Result<Arc<dyn DatagramSession>, CoreError>> {
        Box::pin(self.open_datagrams(keys, options, style))
    }

    fn shares_destination(&self, destination: &Destination) -> bool {
        self.sam.shares_destination(destination)
    }
}

/// A SAM session whose names are resolved through the core's lookup session.
#[derive(Debug)]
struct EmbeddedSession {
    inner: Arc<dyn Session>,
    lookups: Arc<Lookups>,
    connect_retry: Duration,
}

impl Session for EmbeddedSession {
    fn destination(&self) -> &Destination {
        self.inner.destination()
    }

    fn connect(&self, target: Target) -> BoxFuture<'_, Result<BoxStream, CoreError>> {
        Box::pin(async move {
            let target = match target {
                Target::Name(name) => {
                    let deadline = tokio::time::Instant::now() + self.connect_retry;
                    Target::Destination(self.lookups.resolve(&name, Some(deadline)).await?)
                }
                t @ Target::Destination(_) => t,
            };
            self.inner.connect(target).await
        })
    }

    fn accept(&self) -> BoxFuture<'_, Result<Incoming, CoreError>> {
        self.inner.accept()
    }

    fn lookup(&self, name: &str) -> BoxFuture<'_, Result<Destination, CoreError>> {
        let name = name.to_owned();
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + LOOKUP_RETRY;
            self.lookups.resolve(&name, Some(deadline)).await
        })
    }

    fn ping(&self, target: Target) -> BoxFuture<'_, Result<Duration, CoreError>> {
        self.inner.ping(target)
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        self.inner.close()
    }
}

/// The SAM backend's settings for the router: its port, and the longer connect retry a
/// young emissary router needs before a new LeaseSet is found.
pub(crate) fn sam_config(
    config: &EmbeddedConfig,
    routers: &RouterHandle,
    quirks: &Quirks,
) -> SamConfig {
    let mut sam = config.sam.clone();
    sam.addr = routers.sam_tcp.to_string();
    // emissary's UDP port is its own ephemeral one, not the SAM port - 1
    sam.udp_addr = routers.sam_udp.map(|a| a.to_string());
    if sam.udp_addr.is_none() {
        warn!("the embedded router has no SAM UDP port: UDP tunnels cannot send");
    }
    sam.datagram_buffer = Some(quirks.datagrams.udp_buffer);
    sam.datagram_ports = quirks.datagrams.sends_ports;
    sam.connect_retry = sam.connect_retry.max(quirks.connect_retry);
    if !quirks.reuse_sessions {
        sam.reuse_grace = Duration::ZERO;
    }
    sam
}

impl StreamingCore for EmbeddedCore {
    fn name(&self) -> &'static str {
        self.name
    }

    fn router_report(&self) -> Option<RouterReport> {
        Some(self.status.report(self.name))
    }

    fn open_session(
        &self,
        keys: PrivateKeys,
        options: Options,
    ) -> BoxFuture<'_, Result<Arc<dyn Session>, CoreError>> {
        Box::pin(self.open(keys, options, false))
    }

    /// emissary 0.4 has SAM PRIMARY sessions: a SOCKS tunnel's destination can carry
    /// datagram subsessions beside its streams (UDP ASSOCIATE).
    fn open_session_sharing(
        &self,
        keys: PrivateKeys,
        options: Options,
    ) -> BoxFuture<'_, Result<Arc<dyn Session>, CoreError>> {
        Box::pin(self.open(keys, options, true))
    }

    fn lookup(&self, name: &str) -> BoxFuture<'_, Result<Destination, CoreError>> {
        let name = name.to_owned();
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + LOOKUP_RETRY;
            self.lookups.resolve(&name, Some(deadline)).await
        })
    }

    fn datagrams(&self) -> Option<&dyn DatagramCore> {
        Some(self)
    }
}
