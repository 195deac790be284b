//! The metrics listener (`--metrics 127.0.0.1:PORT`): Prometheus text at `/metrics` and
//! a small server-rendered status page at `/`.
//!
//! HTTP is `hyper` (HTTP/1.1, one request per connection). Every resource the endpoint
//! can be made to hold is bounded, whatever the scrapers do (see `docs/security.md`,
//! "Metrics endpoint"):
//! - at most [`Limits::max_connections`] connections are served at once; a connection
//!   beyond that gets a `503` written without waiting and is closed at once;
//! - a request head over [`MAX_REQUEST_HEAD`] bytes gets `431`; a head not complete
//!   within [`Limits::request_timeout`] closes the connection;
//! - a body never exceeds [`MAX_BODY`] bytes: past that the output is cut at a line (or
//!   table row) boundary and ends with a note saying so;
//! - a scrape that comes while another connection is still sending a body rendered
//!   less than [`Limits::render_ttl`] ago shares that body, so N stalled scrapers hold
//!   one copy, not N (a scrape after the others are done is always rendered fresh);
//! - a peer that stops reading is closed after [`Limits::write_timeout`] without
//!   progress (logged), and no connection lives longer than [`Limits::max_lifetime`];
//! - on shutdown the listener closes at once and open connections get
//!   [`Limits::shutdown_grace`] to finish before they are dropped.
//!
//! The status page charts each tunnel's throughput from samples taken every
//! [`Limits::sample_every`] into a ring of [`HISTORY_SAMPLES`] per tunnel
//! ([`History`]); tunnels that leave the registry leave the history too.

mod history;
mod http;
mod page;
mod prometheus;

use std::sync::Arc;
use std::time::Duration;

use bob_codec::TunnelStatus;

use crate::backend::{RouterReport, StreamingCore};
use crate::registry::{Entry, Registry};

pub use history::{HISTORY_SAMPLES, History};
pub use http::{serve, serve_with, serve_with_router};
pub use page::{render_page, render_page_with_router};
pub use prometheus::{render, render_router};

/// One tunnel's numbers at one moment: the same record the `stats` command answers with.
pub use bob_codec::TunnelCounters as TunnelMetrics;

/// Longest request head (request line and headers) accepted; longer gets `431`.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// Largest body of `/metrics` or `/`, in bytes. With the registry's caps (1024 tunnels,
/// 255-byte nicknames and hosts) the worst cases are 3.5 MB (metrics, served whole) and
/// 6.8 MB (page: cut after about 635 rows); see `docs/security.md`.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// Everything the endpoint shows about one tunnel.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TunnelView {
    /// the `stats` counters (name and running flag included)
    pub counters: TunnelMetrics,
    /// the `list` record: state flags, hosts and ports
    pub status: TunnelStatus,
    /// the tunnel's `.b32.i2p` address, once it has keys
    pub destination: Option<String>,
    /// why the tunnel last failed, when the registry knows
    pub last_error: Option<String>,
}

impl TunnelView {
    /// The view of one registry entry.
    pub fn of(entry: &Entry) -> Self {
        Self {
            counters: entry.tunnel_counters(),
            status: entry.status(),
            destination: entry.keys().map(|k| k.destination().b32()),
            last_error: entry.last_start_error().map(|e| e.reason.clone()),
        }
    }

    /// `STARTING`, `RUNNING`, `STOPPING` or `STOPPED`.
    pub fn state(&self) -> &'static str {
        if self.status.starting {
            "STARTING"
        } else if self.status.running {
            "RUNNING"
        } else if self.status.stopping {
            "STOPPING"
        } else {
            "STOPPED"
        }
    }
}

/// Where the endpoint gets its numbers from: called at most once per render and once
/// per history sample.
pub type MetricsSource = Arc<dyn Fn() -> Vec<TunnelView> + Send + Sync>;

/// Where the endpoint gets the state of an in-process router from (`--router
/// embedded|devnet`); called once per render. `None` from it: no such router.
pub type RouterSource = Arc<dyn Fn() -> Option<RouterReport> + Send + Sync>;

/// The source asking `core` for its router's state.
pub fn core_router_source(core: Arc<dyn StreamingCore>) -> RouterSource {
    Arc::new(move || core.router_report())
}

/// The source reading `registry` (one short lock per tunnel, so control commands are
/// never held up for a whole render).
pub fn registry_source(registry: Registry) -> MetricsSource {
    Arc::new(move || {
        registry
            .list()
            .into_iter()
            .filter_map(|s| registry.read(&s.nickname, TunnelView::of).ok())
            .collect()
    })
}

/// The endpoint's bounds and timings (see the module docs). [`Limits::default`] is what
/// the server uses; tests shorten the timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// connections served at once; more get `503` and are closed
    pub max_connections: usize,
    /// time allowed to send the request head
    pub request_timeout: Duration,
    /// time a write may make no progress before the connection is closed
    pub write_timeout: Duration,
    /// longest life of one connection
    pub max_lifetime: Duration,
    /// how long a body still being sent may be shared with a new scrape
    pub render_ttl: Duration,
    /// time open connections get to finish once shutdown starts
    pub shutdown_grace: Duration,
    /// interval of the throughput samples behind the status page's charts
    pub sample_every: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 16,
            request_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            max_lifetime: Duration::from_secs(60),
            render_ttl: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(2),
            sample_every: Duration::from_secs(10),
        }
    }
}

/// Appends `text` to `out` unless that would pass `cap` bytes; says whether it did.
fn push_capped(out: &mut String, text: &str, cap: usize) -> bool {
    if out.len() + text.len() > cap {
        return false;
    }
    out.push_str(text);
    true
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn view(nickname: &str, running: bool) -> TunnelView {
        TunnelView {
            counters: TunnelMetrics {
                nickname: nickname.into(),
                running,
                ..TunnelMetrics::default()
            },
            status: TunnelStatus {
                nickname: nickname.into(),
                starting: false,
                running,
                stopping: false,
                keys: false,
                quiet: false,
                inport: None,
                inhost: "localhost".into(),
                outport: None,
                outhost: "localhost".into(),
                extra: Vec::new(),
            },
            destination: None,
            last_error: None,
        }
    }

    pub(crate) fn router() -> RouterReport {
        RouterReport {
            kind: "devnet",
            known_routers: 5,
            connected_routers: 3,
            tunnels_built: 9,
            tunnel_build_failures: 1,
            transit_tunnels: 4,
            sam_healthy: true,
        }
    }

    pub(crate) fn sample() -> Vec<TunnelView> {
        let mut web = view("web", true);
        web.counters.accepted = 3;
        web.counters.active = 1;
        web.counters.failed = 2;
        web.counters.bytes_in = 10;
        web.counters.bytes_out = 20;
        web.status.inport = Some(8080);
        web.status.outport = Some(80);
        web.destination = Some(format!("{}.b32.i2p", "a".repeat(52)));
        vec![web, view("we\"ird\\", false)]
    }

    #[test]
    fn states_follow_the_flags() {
        let mut v = view("x", false);
        assert_eq!(v.state(), "STOPPED");
        v.status.starting = true;
        assert_eq!(v.state(), "STARTING");
        v.status.starting = false;
        v.status.running = true;
        assert_eq!(v.state(), "RUNNING");
        v.status.running = false;
        v.status.stopping = true;
        assert_eq!(v.state(), "STOPPING");
    }

    #[test]
    fn push_capped_never_passes_the_cap() {
        let mut s = String::new();
        assert!(push_capped(&mut s, "abc", 4));
        assert!(!push_capped(&mut s, "de", 4));
        assert!(push_capped(&mut s, "d", 4));
        assert_eq!(s, "abcd");
    }
}
