//! The `sam` backend: tunnels become sessions on a real I2P router, reached over SAMv3.
//!
//! Our own small SAMv3 client (no external SAM crate):
//! - [`proto`]: command lines and typed replies (`KEY=VALUE`, quoted values, bounded lines);
//! - `conn`: one TCP connection to the bridge (`HELLO VERSION MIN=3.1 MAX=3.3`,
//!   request/reply, hand-over of the socket as a stream with buffered bytes first);
//! - `session`: a session's control socket with its reconnecting supervisor, and the
//!   [`Session`] handle (fresh connection per `STREAM CONNECT`, a pool of background
//!   `STREAM ACCEPT`s, `NAMING LOOKUP`).
//!
//! A SOCKS proxy tunnel's session is a SAM 3.3 PRIMARY session where the router has
//! them (`StreamingCore::open_session_sharing`): streams use its STREAM subsession, and
//! a datagram session for the same destination (UDP ASSOCIATE) becomes DATAGRAM
//! subsessions on its control socket (`datagram`). Other tunnels get plain sessions.
//!
//! A closed session is parked for [`SamConfig::reuse_grace`]: opening a session with the
//! same keys and options within that time reuses the router session instead of waiting
//! for another `SESSION CREATE` (i2pd 2.45 takes ~20 s for one).

pub mod dgram;
pub mod proto;

pub(crate) mod conn;
mod datagram;
mod session;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keytools::{Destination, PrivateKeys};
use tracing::debug;

use self::proto::ResultCode;
use self::session::{Link, LinkState, LinkStyle, SamSession};
use super::datagram::DatagramCore;
use super::{BoxFuture, CoreError, Options, Session, StreamingCore};

/// Settings of the SAM backend. Build with [`SamConfig::new`] and adjust fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamConfig {
    /// The SAM bridge, `HOST:PORT` (i2pd and Java I2P listen on 127.0.0.1:7656).
    pub addr: String,
    /// How long `SESSION CREATE` may take (i2pd 2.45 needs ~20 s). Default 90 s.
    pub session_timeout: Duration,
    /// Options sent with every `SESSION CREATE` unless the tunnel sets the same key
    /// (the tunnel's value wins). Default: none.
    pub default_options: Options,
    /// How long a closed session stays open on the router for a fast restart of the
    /// same tunnel (same keys and options). Zero closes at once. Default 60 s.
    pub reuse_grace: Duration,
    /// How long a connect keeps retrying `CANT_REACH_PEER` (and `KEY_NOT_FOUND` for
    /// `.b32.i2p` names): right after start a LeaseSet may not be published yet.
    /// Default 30 s.
    pub connect_retry: Duration,
    /// Pause between those retries. Default 1 s.
    pub connect_retry_interval: Duration,
    /// Bound on each other exchange with the bridge (connect + `HELLO`, `STREAM
    /// CONNECT` reply, `NAMING LOOKUP`). Default 60 s.
    pub command_timeout: Duration,
    /// `STREAM ACCEPT`s kept outstanding per session. Default 1, re-armed as soon as a
    /// peer arrives (routers queue incoming streams meanwhile). More than one is unsafe
    /// on i2pd 2.45: a new `STREAM ACCEPT` closes queued acceptors younger than 3 s, so
    /// several outstanding accepts keep closing each other and a peer can arrive while
    /// none is waiting (seen as lost parallel streams in `bob-bench router`).
    pub acceptors: usize,
    /// First pause before re-creating a session whose control socket broke. Default 0.5 s.
    pub reconnect_min: Duration,
    /// Longest pause between those attempts (the pause doubles). Default 10 s.
    pub reconnect_max: Duration,
    /// Pass a stream's write shutdown (half-close) on to the bridge. Default false:
    /// i2pd 2.45 ends the whole I2P stream when the SAM client half-closes, dropping the
    /// peer's reply still in flight (measured: of 100 kB echoed, 3.5 kB came back). Held back, the shutdown only stops our writes
    /// and the socket closes when the stream is dropped; nothing is lost, but the peer
    /// does not see end-of-stream before that. Set it for routers that half-close
    /// properly.
    pub forward_half_close: bool,
    /// The bridge's UDP port for datagram sessions (`--sam-udp HOST:PORT`). `None`: the
    /// SAM host at the SAM port − 1 (i2pd's fixed choice before 2.47, and its default
    /// since; Java I2P listens on 7655 and must be given).
    pub udp_addr: Option<String>,
    /// The bridge's UDP buffer in bytes, header line included: the size cap of datagram
    /// sends. `None`: told by `HELLO` (SAM 3.1 at most is i2pd, 32,768; any other router
    /// gets the smallest buffer known, emissary's 8,192, so nothing is ever cut).
    pub datagram_buffer: Option<usize>,
    /// The router sends datagrams with the I2CP ports the header asks for. Default true;
    /// false for emissary 0.4, which sends every datagram from port 0 to port 0: a
    /// datagram session on a PRIMARY session then sends from its port-0 subsession and
    /// gives replies the ports it last sent to that peer with (as for SAM 3.1 bridges).
    pub datagram_ports: bool,
}

impl SamConfig {
    /// Defaults (see each field) for the bridge at `addr` (`HOST:PORT`).
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            session_timeout: Duration::from_secs(90),
            default_options: Vec::new(),
            reuse_grace: Duration::from_secs(60),
            connect_retry: Duration::from_secs(30),
            connect_retry_interval: Duration::from_secs(1),
            command_timeout: Duration::from_secs(60),
            acceptors: 1,
            reconnect_min: Duration::from_millis(500),
            reconnect_max: Duration::from_secs(10),
            forward_half_close: false,
            udp_addr: None,
            datagram_buffer: None,
            datagram_ports: true,
        }
    }
}

impl SamConfig {
    /// The bridge's UDP address: [`Self::udp_addr`], else the SAM host at the SAM port − 1.
    ///
    /// # Errors
    /// A message when `addr` has no port or port 1 (nothing below it).
    pub fn udp_bridge(&self) -> Result<String, String> {
        if let Some(udp) = &self.udp_addr {
            return Ok(udp.clone());
        }
        let (host, port) = self
            .addr
            .rsplit_once(':')
            .ok_or_else(|| format!("SAM address {:?} has no port", self.addr))?;
        match port.parse::<u16>() {
            Ok(p) if p > 1 => Ok(format!("{host}:{}", p - 1)),
            _ => Err(format!(
                "SAM address {:?}: no UDP port below it; give --sam-udp HOST:PORT",
                self.addr
            )),
        }
    }

    /// Defaults for a router given as `sam://HOST:PORT` or `HOST:PORT` (the form of
    /// `--router`).
    ///
    /// # Errors
    /// A message naming the problem when the host is empty or the port is not 1..=65535.
    pub fn from_url(url: &str) -> Result<Self, String> {
        let addr = url
            .strip_prefix("sam://")
            .unwrap_or(url)
            .trim_end_matches('/');
        let bad = || format!("invalid SAM router address {url:?}: expected sam://HOST:PORT");
        let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
        let host_ok = !host.is_empty() && !host.contains(['/', ' ', '@']);
        let port_ok = port.parse::<u16>().is_ok_and(|p| p != 0);
        if !(host_ok && port_ok) {
            return Err(bad());
        }
        Ok(Self::new(addr))
    }
}

/// The SAM streaming core. Cheap to share behind an `Arc<dyn StreamingCore>`.
pub struct SamCore {
    shared: Arc<SamState>,
}

/// State shared by the core and its sessions.
pub(crate) struct SamState {
    cfg: Arc<SamConfig>,
    /// closed sessions within their grace period, by destination bytes
    parked: std::sync::Mutex<HashMap<Vec<u8>, Parked>>,
    /// destination bytes of the sessions handed out and not closed: i2pd 2.45 answers a
    /// second `SESSION CREATE` for a live destination with `OK` and shares it (and can
    /// crash when one of the two closes), so we refuse that ourselves
    active: std::sync::Mutex<HashSet<Vec<u8>>>,
    /// destination bytes of the `SESSION CREATE`s under way, also those whose open
    /// was abandoned and that are being closed (see `SamCore::wait_reaped`)
    creating: std::sync::Mutex<HashSet<Vec<u8>>>,
    /// woken when an entry leaves `creating`
    released: tokio::sync::Notify,
    serial: AtomicU64,
    /// PRIMARY sessions by destination bytes: a datagram session for one of these
    /// destinations is added to it as a subsession (see `datagram`)
    primaries: std::sync::Mutex<HashMap<Vec<u8>, std::sync::Weak<Link>>>,
}

struct Parked {
    keys: PrivateKeys,
    options: Options,
    link: Arc<Link>,
    serial: u64,
}

impl fmt::Debug for SamCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parked = self.shared.parked.lock().map(|p| p.len()).unwrap_or(0);
        f.debug_struct("SamCore")
            .field("addr", &self.shared.cfg.addr)
            .field("parked_sessions", &parked)
            .finish()
    }
}

impl SamCore {
    /// A core talking to the bridge in `config.addr`. Does no I/O; see [`Self::probe`].
    pub fn new(config: SamConfig) -> Self {
        Self {
            shared: Arc::new(SamState {
                cfg: Arc::new(config),
                parked: std::sync::Mutex::new(HashMap::new()),
                active: std::sync::Mutex::new(HashSet::new()),
                creating: std::sync::Mutex::new(HashSet::new()),
                released: tokio::sync::Notify::new(),
                serial: AtomicU64::new(0),
                primaries: std::sync::Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SamConfig {
        &self.shared.cfg
    }

    /// How many closed sessions are parked for reuse right now (diagnostics, tests).
    pub fn parked_sessions(&self) -> usize {
        self.shared.parked.lock().map(|p| p.len()).unwrap_or(0)
    }

    /// Connects and says `HELLO`, to check at start-up that the bridge is there.
    ///
    /// # Errors
    /// [`CoreError::RouterUnavailable`] (or the router's refusal) when it is not.
    pub async fn probe(&self) -> Result<(), CoreError> {
        let cfg = &self.shared.cfg;
        conn::SamConn::open(&cfg.addr, cfg.command_timeout).await?;
        Ok(())
    }

    async fn do_open(
        &self,
        keys: PrivateKeys,
        options: Options,
        primary: bool,
    ) -> Result<Arc<dyn Session>, CoreError> {
        let cfg = Arc::clone(&self.shared.cfg);
        let options = merge_options(&cfg.default_options, options);
        // refuse what cannot be sent before touching a parked session
        if let Some((k, _)) = options.iter().find(|(k, _)| RESERVED.contains(&k.as_str())) {
            return Err(CoreError::Router(format!(
                "option {k} is set by the bridge itself and cannot be given"
            )));
        }
        proto::command(
            "SESSION CREATE",
            options.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .map_err(|e| CoreError::Router(e.to_string()))?;
        let key = keys.destination().as_bytes().to_vec();
        let claim = Claim::new(&self.shared, key.clone())?;
        let parked = self
            .shared
            .parked
            .lock()
            .ok()
            .and_then(|mut p| p.remove(&key));
        let mut replaced = false;
        if let Some(p) = parked {
            if p.options == options
                && same_keys(&p.keys, &keys)
                && p.link.is_primary() == primary
                && p.link.state() != LinkState::Closed
            {
                debug!("reusing a parked SAM session");
                let session =
                    SamSession::start(Arc::clone(&self.shared), p.link, keys, options, claim);
                return Ok(Arc::new(session));
            }
            // same keys, other options: the old session must go first (else DUPLICATED_DEST)
            p.link.shutdown().await;
            replaced = true;
        }
        // The router keeps a session whose control socket closed during its creation
        // until the creation would have finished (i2pd 2.45: ~20 s offline), and answers
        // a new `SESSION CREATE` for the same keys meanwhile by sharing that doomed
        // destination. So the creation runs in its own task: when this open is dropped
        // (`stop` during STARTING) the task sees the creation through, then closes the
        // session, and a new open of these keys waits until that is done.
        self.wait_reaped(&key).await?;
        let pending = Pending::new(&self.shared, key);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let create_keys = keys.clone();
        let create_options = options.clone();
        tokio::spawn(async move {
            let result = create_link(cfg, &create_keys, create_options, replaced, primary).await;
            if let Err(Ok(link)) = tx.send(result) {
                debug!("closing a SAM session whose start was abandoned");
                link.shutdown().await;
            }
            drop(pending);
        });
        let link = rx
            .await
            .map_err(|_| CoreError::Io("SAM session task ended".into()))??;
        if link.is_primary()
            && let Ok(mut primaries) = self.shared.primaries.lock()
        {
            primaries.retain(|_, l| l.strong_count() > 0);
            primaries.insert(
                keys.destination().as_bytes().to_vec(),
                Arc::downgrade(&link),
            );
        }
        Ok(Arc::new(SamSession::start(
            Arc::clone(&self.shared),
            link,
            keys,
            options,
            claim,
        )))
    }
}

impl SamCore {
    /// Waits until no abandoned creation of `key` is still being wound down (bounded
    /// by the session timeout: the router finishes or fails a creation by then).
    async fn wait_reaped(&self, key: &[u8]) -> Result<(), CoreError> {
        let shared = &self.shared;
        let deadline = tokio::time::Instant::now() + shared.cfg.session_timeout;
        loop {
            let released = shared.released.notified();
            let busy = shared
                .creating
                .lock()
                .map_err(|_| CoreError::Io("session table poisoned".into()))?
                .contains(key);
            if !busy {
                return Ok(());
            }
            debug!("waiting for an abandoned SAM session with the same keys to close");
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return Err(CoreError::Timeout);
            }
        }
    }
}

/// `SESSION CREATE` for `keys`, retrying `DUPLICATED_DEST` for a moment when a parked
/// session with these keys was just closed (`replaced`).
async fn create_link(
    cfg: Arc<SamConfig>,
    keys: &PrivateKeys,
    options: Options,
    replaced: bool,
    mut primary: bool,
) -> Result<Arc<Link>, CoreError> {
    let started = tokio::time::Instant::now();
    loop {
        let style = if primary {
            LinkStyle::Primary
        } else {
            LinkStyle::Stream
        };
        match Link::create_styled(Arc::clone(&cfg), keys, style, options.clone()).await {
            Ok(link) => return Ok(link),
            // a router without SAM 3.3 PRIMARY sessions (i2pd 2.45: `Unknown STYLE`, or
            // one that refuses a STREAM subsession) gets a plain stream session
            Err(e)
                if primary
                    && e.code().is_some_and(|c| {
                        !matches!(c, ResultCode::DuplicatedDest | ResultCode::DuplicatedId)
                    }) =>
            {
                debug!(error = %e, "no SAM PRIMARY session; opening a plain stream session");
                primary = false;
            }
            // the router may need a moment to drop the session we just closed
            Err(e)
                if replaced
                    && e.code() == Some(&ResultCode::DuplicatedDest)
                    && started.elapsed() < DUPLICATE_RETRY =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The PRIMARY session of `destination` while a tunnel holds it (not once it is closed
/// or only parked), if it has one.
pub(crate) fn primary_of(shared: &SamState, destination: &Destination) -> Option<Arc<Link>> {
    let held = shared
        .active
        .lock()
        .ok()
        .is_some_and(|a| a.contains(destination.as_bytes()));
    if !held {
        return None;
    }
    shared
        .primaries
        .lock()
        .ok()?
        .get(destination.as_bytes())?
        .upgrade()
        .filter(|l| l.state() != LinkState::Closed)
}

/// Marks a destination whose `SESSION CREATE` is under way; cleared (and waiters
/// woken) on drop.
struct Pending {
    shared: Arc<SamState>,
    key: Vec<u8>,
}

impl Pending {
    fn new(shared: &Arc<SamState>, key: Vec<u8>) -> Self {
        if let Ok(mut creating) = shared.creating.lock() {
            creating.insert(key.clone());
        }
        Self {
            shared: Arc::clone(shared),
            key,
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Ok(mut creating) = self.shared.creating.lock() {
            creating.remove(&self.key);
        }
        self.shared.released.notify_waiters();
    }
}

/// Marks a destination as in use by an open session; released on drop.
pub(crate) struct Claim {
    shared: Arc<SamState>,
    key: Vec<u8>,
}

impl Claim {
    fn new(shared: &Arc<SamState>, key: Vec<u8>) -> Result<Self, CoreError> {
        let mut active = shared
            .active
            .lock()
            .map_err(|_| CoreError::Io("session table poisoned".into()))?;
        if !active.insert(key.clone()) {
            return Err(CoreError::DuplicateDestination);
        }
        Ok(Self {
            shared: Arc::clone(shared),
            key,
        })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Ok(mut active) = self.shared.active.lock() {
            active.remove(&self.key);
        }
    }
}

/// `SESSION CREATE` keys the backend sets itself; a tunnel option may not repeat them.
const RESERVED: [&str; 3] = ["STYLE", "ID", "DESTINATION"];

/// The same for datagram sessions, which also set where datagrams are forwarded.
const DATAGRAM_RESERVED: [&str; 5] = ["STYLE", "ID", "DESTINATION", "PORT", "HOST"];

/// How long to retry `DUPLICATED_DEST` after closing a parked session with the same keys.
const DUPLICATE_RETRY: Duration = Duration::from_secs(5);

impl StreamingCore for SamCore {
    fn name(&self) -> &'static str {
        "sam"
    }

    fn open_session(
        &self,
        keys: PrivateKeys,
        options: Options,
    ) -> BoxFuture<'_, Result<Arc<dyn Session>, CoreError>> {
        Box::pin(self.do_open(keys, options, false))
    }

    /// A SAM 3.3 PRIMARY session with a STREAM subsession where the router has them
    /// (emissary 0.4), so that a datagram session for the same destination can be added
    /// to it; a plain stream session where it has not (i2pd 2.45: `Unknown STYLE`).
    fn open_session_sharing(
        &self,
        keys: PrivateKeys,
        options: Options,
    ) -> BoxFuture<'_, Result<Arc<dyn Session>, CoreError>> {
        Box::pin(self.do_open(keys, options, true))
    }

    fn lookup(&self, name: &str) -> BoxFuture<'_, Result<Destination, CoreError>> {
        let name = name.to_owned();
        Box::pin(async move { session::resolve_until(&self.shared.cfg, &name, None).await })
    }

    fn datagrams(&self) -> Option<&dyn DatagramCore> {
        Some(self)
    }
}

/// Whether two key blobs are identical (same destination, same private keys); the
/// temporary copies are wiped.
fn same_keys(a: &PrivateKeys, b: &PrivateKeys) -> bool {
    let (mut x, mut y) = (a.to_bytes(), b.to_bytes());
    let same = x == y;
    x.fill(0);
    y.fill(0);
    std::hint::black_box((&x, &y));
    same
}

/// `defaults` under `tunnel`: every tunnel option in its order, preceded by the defaults
/// whose key the tunnel does not set. A key the tunnel sets twice keeps its last value.
pub fn merge_options(defaults: &Options, tunnel: Options) -> Options {
    let mut merged: Options = defaults
        .iter()
        .filter(|(k, _)| !tunnel.iter().any(|(tk, _)| tk == k))
        .cloned()
        .collect();
    for (k, v) in tunnel {
        if let Some(slot) = merged.iter_mut().find(|(mk, _)| *mk == k) {
            slot.1 = v;
        } else {
            merged.push((k, v));
        }
    }
    merged
}

/// Keeps `link` open for the grace period so that the same tunnel can restart fast;
/// afterwards its control socket is closed.
pub(crate) async fn park(
    shared: &Arc<SamState>,
    keys: &PrivateKeys,
    options: Options,
    link: Arc<Link>,
) {
    let grace = shared.cfg.reuse_grace;
    if grace.is_zero() || link.state() == LinkState::Closed {
        link.shutdown().await;
        return;
    }
    let serial = shared.serial.fetch_add(1, Ordering::Relaxed);
    let old = shared.parked.lock().ok().and_then(|mut p| {
        p.insert(
            keys.destination().as_bytes().to_vec(),
            Parked {
                keys: keys.clone(),
                options,
                link,
                serial,
            },
        )
    });
    if let Some(old) = old {
        old.link.shutdown().await;
    }
    let weak = Arc::downgrade(shared);
    let key = keys.destination().as_bytes().to_vec();
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let expired = shared.parked.lock().ok().and_then(|mut p| {
            if p.get(&key).is_some_and(|e| e.serial == serial) {
                p.remove(&key)
            } else {
                None
            }
        });
        if let Some(e) = expired {
            debug!("closing a parked SAM session after its grace period");
            e.link.shutdown().await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &[(&str, &str)]) -> Options {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn router_urls() {
        assert_eq!(
            SamConfig::from_url("sam://127.0.0.1:7656").unwrap().addr,
            "127.0.0.1:7656"
        );
        assert_eq!(
            SamConfig::from_url("localhost:17656").unwrap().addr,
            "localhost:17656"
        );
        assert_eq!(
            SamConfig::from_url("sam://[::1]:7656/").unwrap().addr,
            "[::1]:7656"
        );
        for bad in [
            "sam://",
            "sam://host",
            "sam://:7656",
            "sam://h:0",
            "sam://h:70000",
            "x/y:1",
        ] {
            assert!(SamConfig::from_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tunnel_options_win_over_defaults() {
        let d = opts(&[("inbound.length", "0"), ("outbound.length", "0")]);
        let t = opts(&[("inbound.length", "2"), ("x", "1"), ("x", "2")]);
        assert_eq!(
            merge_options(&d, t),
            opts(&[
                ("outbound.length", "0"),
                ("inbound.length", "2"),
                ("x", "2")
            ])
        );
        assert_eq!(merge_options(&d, Vec::new()), d);
    }
}
