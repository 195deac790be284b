//! The HTTP side of the endpoint: `hyper` HTTP/1.1, one request per connection, with
//! the bounds listed in the module docs of [`crate::metrics`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_io_timeout::TimeoutStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{
    History, Limits, MAX_BODY, MAX_REQUEST_HEAD, MetricsSource, RouterSource, page, prometheus,
};

const METRICS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
const PAGE_TYPE: &str = "text/html; charset=utf-8";
/// The page has no script and loads nothing: say so to the browser too.
const PAGE_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'";

/// Written (without waiting) to a connection over the limit before it is closed; short
/// enough for any socket buffer.
const BUSY: &str = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
Content-Length: 40\r\nRetry-After: 1\r\nConnection: close\r\n\r\n\
too many metrics connections; try again\n";

/// Most request headers accepted (a scraper sends a handful).
const MAX_HEADERS: usize = 64;

/// Kernel send buffer of each metrics connection (Linux doubles it). Fixed rather than
/// auto-tuned (up to `tcp_wmem`'s 4 MiB): a peer that stops reading stalls the reply
/// after this much, so the write timeout sees it, and kernel memory per scraper is small.
pub(super) const SEND_BUFFER: usize = 64 * 1024;

/// Serves `/metrics` and `/` on `listener` with [`Limits::default`] until `shutdown`.
pub async fn serve(listener: TcpListener, source: MetricsSource, shutdown: CancellationToken) {
    serve_with(listener, source, shutdown, Limits::default()).await;
}

/// [`serve`] with other limits. Returns once the listener is closed and every
/// connection has ended, at most [`Limits::shutdown_grace`] after `shutdown`.
pub async fn serve_with(
    listener: TcpListener,
    source: MetricsSource,
    shutdown: CancellationToken,
    limits: Limits,
) {
    serve_with_router(listener, source, None, shutdown, limits).await;
}

/// [`serve_with`] that also shows the state of the router in this process (`router`):
/// `bob_router_*` gauges in `/metrics` and a router line on the status page.
pub async fn serve_with_router(
    listener: TcpListener,
    source: MetricsSource,
    router: Option<RouterSource>,
    shutdown: CancellationToken,
    limits: Limits,
) {
    let shared = Arc::new(Shared {
        source,
        router,
        limits,
        history: Mutex::new(History::default()),
        metrics: tokio::sync::Mutex::new(None),
        page: tokio::sync::Mutex::new(None),
    });
    let tracker = TaskTracker::new();
    tracker.spawn(sample(Arc::clone(&shared), shutdown.clone()));
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (socket, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "metrics accept failed");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(std::time::Duration::from_millis(100)) => continue,
                }
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            // Never wait on a connection over the limit: whatever of the 503 fits now
            // (all of it, on any socket) is sent, then the socket is closed.
            let _ = socket.try_write(BUSY.as_bytes());
            tracing::debug!(%peer, limit = limits.max_connections, "metrics connection refused: limit reached");
            continue;
        };
        if let Err(e) = socket2::SockRef::from(&socket).set_send_buffer_size(SEND_BUFFER) {
            tracing::debug!(%peer, error = %e, "metrics: cannot set the send buffer size");
        }
        tracker.spawn(connection(
            socket,
            peer,
            Arc::clone(&shared),
            shutdown.clone(),
            permit,
        ));
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

/// A rendered body; connections hold it through `Bytes::from_owner` while they send it.
struct Rendered(Vec<u8>);

impl AsRef<[u8]> for Rendered {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// The last render of a resource: when, and the body while a connection still sends it.
type Slot = tokio::sync::Mutex<Option<(Instant, Weak<Rendered>)>>;

/// What the connections share: the source, the sampled history and the last bodies.
struct Shared {
    source: MetricsSource,
    router: Option<RouterSource>,
    limits: Limits,
    history: Mutex<History>,
    metrics: Slot,
    page: Slot,
}

#[derive(Clone, Copy)]
enum Resource {
    Metrics,
    Page,
}

impl Shared {
    /// The body of `resource`, rendered off the async workers. A scrape that comes while
    /// another connection is still sending a body less than `render_ttl` old shares that
    /// body: N stalled scrapers hold one buffer, not N, while a scraper that comes after
    /// the others are done always sees fresh numbers.
    async fn body(self: &Arc<Self>, resource: Resource) -> Bytes {
        let slot = match resource {
            Resource::Metrics => &self.metrics,
            Resource::Page => &self.page,
        };
        let mut cached = slot.lock().await;
        if let Some((at, body)) = cached.as_ref()
            && at.elapsed() < self.limits.render_ttl
            && let Some(body) = body.upgrade()
        {
            return Bytes::from_owner(SharedBody(body));
        }
        let me = Arc::clone(self);
        let rendered = tokio::task::spawn_blocking(move || {
            let views = (me.source)();
            let router = me.router.as_ref().and_then(|r| r());
            match resource {
                Resource::Metrics => {
                    // the router's gauges are a few hundred bytes, always shown whole
                    let mut text = router
                        .map(|r| prometheus::render_router(&r))
                        .unwrap_or_default();
                    let room = MAX_BODY.saturating_sub(text.len());
                    text.push_str(&prometheus::render_capped(&views, room));
                    text
                }
                Resource::Page => {
                    let history = me.history.lock().unwrap_or_else(|e| e.into_inner());
                    page::render_page_with_router(
                        &views,
                        router.as_ref(),
                        &history,
                        me.limits.sample_every,
                    )
                }
            }
        })
        .await;
        let text = rendered.unwrap_or_else(|e| format!("render failed: {e}\n"));
        let body = Arc::new(Rendered(text.into_bytes()));
        *cached = Some((Instant::now(), Arc::downgrade(&body)));
        Bytes::from_owner(SharedBody(body))
    }

    async fn answer(self: &Arc<Self>, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let readable = matches!(*req.method(), Method::GET | Method::HEAD);
        // Only the path counts: `/metrics?x=1` is `/metrics`.
        let (status, kind, body) = match (readable, req.uri().path()) {
            (true, "/metrics") => (
                StatusCode::OK,
                METRICS_TYPE,
                self.body(Resource::Metrics).await,
            ),
            (true, "/") => (StatusCode::OK, PAGE_TYPE, self.body(Resource::Page).await),
            (true, _) => (
                StatusCode::NOT_FOUND,
                "text/plain",
                Bytes::from_static(b"not found: try /metrics or /\n"),
            ),
            (false, _) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                Bytes::from_static(b"only GET and HEAD\n"),
            ),
        };
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if kind == PAGE_TYPE {
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(PAGE_POLICY),
            );
        }
        if status == StatusCode::METHOD_NOT_ALLOWED {
            headers.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        response
    }
}

/// One connection's hold on a shared body.
struct SharedBody(Arc<Rendered>);

impl AsRef<[u8]> for SharedBody {
    fn as_ref(&self) -> &[u8] {
        &self.0.0
    }
}

/// Samples the counters every `sample_every` into the history until `shutdown`.
async fn sample(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(shared.limits.sample_every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = every.tick() => {}
        }
        let me = Arc::clone(&shared);
        let _ = tokio::task::spawn_blocking(move || {
            let views = (me.source)();
            let at = Instant::now();
            me.history
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record(&views, at);
        })
        .await;
    }
}

/// Serves one connection: one request, one answer, within the limits.
async fn connection(
    socket: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let limits = shared.limits;
    let mut io = TimeoutStream::new(socket);
    io.set_write_timeout(Some(limits.write_timeout));
    let answered = Arc::new(AtomicBool::new(false));
    let service = {
        let answered = Arc::clone(&answered);
        service_fn(move |req| {
            let shared = Arc::clone(&shared);
            let answered = Arc::clone(&answered);
            async move {
                let response = shared.answer(&req).await;
                answered.store(true, Ordering::Relaxed);
                Ok::<_, Infallible>(response)
            }
        })
    };
    let conn = http1::Builder::new()
        .keep_alive(false)
        .max_buf_size(MAX_REQUEST_HEAD)
        .max_header_size(MAX_REQUEST_HEAD)
        .max_headers(MAX_HEADERS)
        .timer(TokioTimer::new())
        .header_read_timeout(limits.request_timeout)
        .serve_connection(TokioIo::new(Box::pin(io)), service);
    let mut conn = pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = tokio::time::sleep(limits.max_lifetime) => {
            tracing::warn!(%peer, lifetime = ?limits.max_lifetime, "metrics connection closed: open too long");
            return;
        }
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(limits.shutdown_grace, conn.as_mut()).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::info!(%peer, grace = ?limits.shutdown_grace, "metrics connection dropped at shutdown");
                    return;
                }
            }
        }
    };
    if let Err(e) = result {
        let timed_out = e.is_timeout() || io_kind(&e) == Some(std::io::ErrorKind::TimedOut);
        if timed_out && answered.load(Ordering::Relaxed) {
            tracing::warn!(%peer, timeout = ?limits.write_timeout, "metrics client closed: it stopped reading the reply");
        } else if timed_out {
            tracing::info!(%peer, timeout = ?limits.request_timeout, "metrics client closed: no complete request in time");
        } else {
            tracing::debug!(%peer, error = %e, "metrics connection ended with an error");
        }
    }
}

/// The kind of the I/O error behind a hyper error, if there is one.
fn io_kind(e: &hyper::Error) -> Option<std::io::ErrorKind> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = s.source();
    }
    None
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
