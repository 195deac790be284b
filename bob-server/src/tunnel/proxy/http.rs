//! HTTP proxy tunnels (`settunneltype httpproxy`): browsers and `curl -x` reach I2P
//! sites through the tunnel's own destination.
//!
//! Both sides speak HTTP/1.1 through `hyper`; nothing here parses HTTP by hand.
//! - **Absolute-form requests** (`GET http://example.i2p/path HTTP/1.1`, any method):
//!   the host is resolved through the tunnel's session (`.i2p` names, `.b32.i2p`
//!   addresses, or a base64 destination as the host), one I2P stream is opened per
//!   request, and the request goes out on it in origin-form (`GET /path`) through
//!   hyper's HTTP/1 *client* connection. Using the client (rather than forwarding the
//!   application's bytes) means hyper frames both messages: the proxy knows where the
//!   response ends, so the application's connection stays usable for its next request
//!   (keep-alive towards the browser), a malformed or oversized response becomes a 502
//!   page instead of garbage, and the request is rewritten header by header, not by
//!   editing bytes. The upstream request carries `Connection: close`: an I2P stream
//!   serves one request.
//! - **`CONNECT host:port`** (HTTPS, `curl -p`): the stream is opened first (so a failure
//!   is still an HTTP error page), then `200` and a raw relay through the backend's
//!   [`crate::backend::ByteStream::relay`] on the application's own socket (hyper hands
//!   it back after the upgrade, with any bytes it had read ahead). The port is not
//!   used: streams have no ports on every backend.
//! - **Hosts outside I2P** go to the tunnel's outproxy (`outhost:outport`, an upstream
//!   HTTP proxy) when it has one: absolute-form requests are sent to it in absolute form
//!   with the same header clean-up, a `CONNECT` is asked of it (through hyper's client)
//!   and relayed once it answers `2xx`. Without one they get a `403` page.
//!
//! The tunnel side (session wait, connect, outproxy connection, relay, counters) is
//! the shared [`super::ProxyContext`]; [`serve`] is this protocol's handler.
//!
//! # Headers
//! Hop-by-hop headers (`Connection` and the headers it names, `Proxy-Connection`,
//! `Keep-Alive`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`,
//! `Proxy-Authorization`, `Proxy-Authenticate`) are never passed on, either way.
//! Headers that identify the user or their machine are removed from requests unless the
//! tunnel sets `option bob.http.keepheaders=true`: `Referer`, `Accept-Language`,
//! `Accept-Charset`, `From`, `Via`, `Forwarded`, `X-Forwarded-*`, `X-Real-IP`,
//! `Client-IP`, `True-Client-IP`, `X-Client-IP`, `DNT`, `Sec-CH-UA*` (client hints), and
//! `User-Agent`, which is replaced by Java I2P's fixed `MYOB/6.66 (AN/ON)` so that bob's
//! users look like every other I2P proxy user rather than like nobody.
//!
//! # Address helper
//! `http://name.i2p/path?i2paddresshelper=<b64 destination|b32>` makes that one request
//! go to the given destination for `name.i2p`; the parameter is removed from the URL the
//! site sees. Nothing is remembered: a later request for `name.i2p` resolves it afresh.
//! (Java I2P offers to save the mapping in an address book; bob has no address book to
//! write, and a proxy that silently kept mappings from links would let any page pin a
//! name to a destination of its choosing.)
//!
//! # Errors
//! The application always gets an HTTP answer, as an HTML page naming the host:
//! `400` for a request that is not a proxy request (origin-form, `https://` in
//! absolute form, a bad address helper), `403` for a host outside I2P without an
//! outproxy, `404` for a name no naming source knows, `504` for a destination that
//! cannot be reached or does not answer in time, `502` for an upstream (or outproxy)
//! that breaks the exchange, `503` when the tunnel's session is not (or no longer) up,
//! `500` for a bad `bob.http.keepheaders` value (normally refused at `start` by
//! [`check_options`]). Request heads over
//! [`MAX_REQUEST_HEAD`] bytes get hyper's `431`, malformed ones `400`. Every error page
//! (and hyper's own answers, and a header timeout) counts as a failure in the tunnel's
//! counters.
//!
//! # Limits
//! A request head must arrive within the tunnel's first-line timeout (hyper's header
//! read timeout, for every request of a kept-alive connection; the connection is then
//! closed), is bounded by [`MAX_REQUEST_HEAD`] bytes and [`MAX_HEADERS`] headers; a
//! connect and the response head each get the tunnel's connect timeout. Connections
//! count against the tunnel's connection cap like BOB connections (an idle kept-alive
//! connection too, until its header timeout ends it).

mod refusal;
mod rewrite;

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1 as client;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::server::conn::http1 as server;
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioIo, TokioTimer};
use keytools::Destination;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::Instrument;

use self::refusal::Refusal;
use self::rewrite::{clean_request_headers, helper_target, remove_hop_by_hop, split_helper};
use super::{ConnectError, Host, ProxyContext, classify_host};
use crate::backend::{BoxStream, Target};

/// The tunnel option that keeps identifying request headers (`true`/`false`).
pub(crate) const KEEP_HEADERS_OPTION: &str = "bob.http.keepheaders";

/// Largest request head (request line and headers) accepted, in bytes; hyper answers
/// `431` beyond it. Also the bound of an upstream response head, and of hyper's read
/// buffers (`max_buf_size`, which alone is not exact: a read may overshoot it).
pub(crate) const MAX_REQUEST_HEAD: usize = 64 * 1024;

/// Most headers in one request or response head.
pub(crate) const MAX_HEADERS: usize = 100;

/// What replaces the application's `User-Agent` (Java I2P's HTTP proxy sends the same).
pub(crate) const USER_AGENT: &str = "MYOB/6.66 (AN/ON)";

/// The query parameter of the address helper.
const HELPER_PARAM: &str = "i2paddresshelper";

/// What an HTTP proxy tunnel is told by its options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HttpSettings {
    /// pass identifying request headers on unchanged (`bob.http.keepheaders=true`)
    pub keep_headers: bool,
}

/// A `bob.http.*` option with a value it cannot take; `Display` is the text after
/// `ERROR starting tunnel: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{option} must be true or false, not {value:?}")]
pub(crate) struct BadHttpOption {
    /// the option's name
    pub option: String,
    /// the value given
    pub value: String,
}

impl HttpSettings {
    /// Reads the settings from the value of `bob.http.keepheaders` (`None`: not set).
    ///
    /// # Errors
    /// A value other than `true`/`false` (any case).
    pub(crate) fn from_option(keep_headers: Option<&str>) -> Result<Self, BadHttpOption> {
        let keep_headers = match keep_headers.map(|v| v.trim().to_ascii_lowercase()) {
            None => false,
            Some(v) if v == "true" => true,
            Some(v) if v == "false" => false,
            Some(_) => {
                return Err(BadHttpOption {
                    option: KEEP_HEADERS_OPTION.to_owned(),
                    value: keep_headers.unwrap_or_default().to_owned(),
                });
            }
        };
        Ok(Self { keep_headers })
    }
}

/// Checks a starting HTTP proxy tunnel's `bob.*` options (the last value of each wins,
/// as [`ProxyContext::option`] reads them), so that a bad value is `ERROR starting
/// tunnel: …` rather than a tunnel that answers every request with a `500` page.
///
/// # Errors
/// See [`HttpSettings::from_option`].
pub(crate) fn check_options(options: &[(String, String)]) -> Result<(), BadHttpOption> {
    let keep = options
        .iter()
        .rev()
        .find(|(key, _)| key == KEEP_HEADERS_OPTION)
        .map(|(_, value)| value.as_str());
    HttpSettings::from_option(keep).map(drop)
}

/// The body type of every answer: an upstream body passed through, or a page.
type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// A CONNECT that was answered `200`: the upgrade to wait for, the stream to relay to,
/// and bytes an outproxy sent right after its own `200` (to go to the client first).
struct PendingTunnel {
    upgrade: OnUpgrade,
    stream: BoxStream,
    early_back: Bytes,
}

/// One application connection as its requests see it.
struct Conn {
    proxy: ProxyContext,
    /// the tunnel's `bob.http.*` settings, or what is wrong with them (checked at
    /// `start` by [`check_options`]; should a bad value get here anyway, every request
    /// gets a `500` page naming the option: never a silent fallback that could leak
    /// headers the user meant to strip, or strip ones they meant to keep)
    settings: Result<HttpSettings, BadHttpOption>,
    /// set by a successful CONNECT; taken once hyper lets go of the socket
    pending: Mutex<Option<PendingTunnel>>,
}

/// Serves one accepted connection (see the module docs of [`super`]): its requests
/// through hyper, then, after a successful CONNECT, the raw relay.
pub(crate) async fn serve(socket: TcpStream, proxy: ProxyContext) {
    let settings = HttpSettings::from_option(proxy.option(KEEP_HEADERS_OPTION));
    let header_timeout = proxy.first_request_timeout();
    let conn = Arc::new(Conn {
        proxy,
        settings,
        pending: Mutex::new(None),
    });
    let service = {
        let conn = Arc::clone(&conn);
        service_fn(move |request| answer(request, Arc::clone(&conn)))
    };
    let served = server::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_REQUEST_HEAD)
        .max_headers(MAX_HEADERS)
        .max_header_size(MAX_REQUEST_HEAD)
        .serve_connection(TokioIo::new(socket), service)
        .with_upgrades()
        .await;
    if let Err(e) = served {
        if e.is_timeout() {
            conn.proxy.count_failure();
            tracing::debug!("closing: no complete request head within the timeout");
        } else if e.is_parse() || e.is_parse_too_large() {
            // hyper has answered 400/431/414 itself
            conn.proxy.count_failure();
            tracing::debug!(error = %e, "closing: malformed or oversized request");
        } else {
            tracing::debug!(error = %e, "HTTP connection ended with an error");
        }
    }
    let pending = conn
        .pending
        .lock()
        .map(|mut p| p.take())
        .unwrap_or_default();
    if let Some(pending) = pending {
        tunnel(pending, &conn.proxy).await;
    }
}

/// Relays a CONNECT's socket and stream once hyper has handed the socket back.
async fn tunnel(pending: PendingTunnel, proxy: &ProxyContext) {
    let PendingTunnel {
        upgrade,
        mut stream,
        early_back,
    } = pending;
    let upgraded = match upgrade.await {
        Ok(upgraded) => upgraded,
        Err(e) => {
            proxy.count_failure();
            tracing::debug!(error = %e, "CONNECT: the connection was not handed over");
            return;
        }
    };
    let Ok(parts) = upgraded.downcast::<TokioIo<TcpStream>>() else {
        // hyper hands back the TokioIo<TcpStream> it was given to serve
        proxy.count_failure();
        tracing::warn!("CONNECT: hyper handed back an unexpected connection type");
        return;
    };
    let mut socket = parts.io.into_inner();
    // Bytes the application sent right after the CONNECT head (a TLS hello sent
    // without waiting for the 200) were read by hyper: they go first.
    let early = async {
        if !parts.read_buf.is_empty() {
            stream.write_all(&parts.read_buf).await?;
            stream.flush().await?;
            proxy.count_sent(parts.read_buf.len());
        }
        if !early_back.is_empty() {
            socket.write_all(&early_back).await?;
            proxy.count_received(early_back.len());
        }
        std::io::Result::Ok(())
    };
    if let Err(e) = early.await {
        proxy.count_failure();
        tracing::debug!(error = %e, "CONNECT: forwarding early bytes failed");
        return;
    }
    proxy.relay(socket, stream).await;
}

/// Answers one request: the upstream's response or an error page.
async fn answer(
    request: Request<Incoming>,
    conn: Arc<Conn>,
) -> Result<Response<ProxyBody>, Infallible> {
    let result = match &conn.settings {
        Err(bad) => Err(Refusal::Misconfigured(bad.to_string())),
        Ok(_) if request.method() == Method::CONNECT => connect(request, &conn).await,
        Ok(settings) => forward(request, &conn, settings).await,
    };
    Ok(result.unwrap_or_else(|refusal| {
        conn.proxy.count_failure();
        tracing::debug!(%refusal, "answering with an error page");
        refusal.page()
    }))
}

/// Where a request goes: an I2P destination, or the outproxy (a host outside I2P on a
/// tunnel that has one).
enum Upstream {
    I2p(Target),
    Outproxy,
}

/// Where `host` (with the address helper's destination, if any) is reached.
fn upstream_of(
    host: &str,
    helper: Option<Target>,
    proxy: &ProxyContext,
) -> Result<Upstream, Refusal> {
    match classify_host(host) {
        Ok(Host::I2p(target)) => Ok(Upstream::I2p(with_helper(target, helper))),
        Ok(Host::Other(_)) if proxy.outproxy().is_some() => Ok(Upstream::Outproxy),
        Ok(Host::Other(other)) => Err(Refusal::Clearnet(other)),
        Err(why) => Err(Refusal::BadRequest(format!("bad host: {why}"))),
    }
}

/// The address helper's destination replaces a name, never a `.b32.i2p` address or a
/// destination given in full.
fn with_helper(target: Target, helper: Option<Target>) -> Target {
    match (target, helper) {
        (Target::Name(name), Some(helped)) if !name.ends_with(".b32.i2p") => helped,
        (target, _) => target,
    }
}

/// `CONNECT host:port`: opens the stream (or the outproxy's tunnel), answers `200`,
/// leaves the relay to [`serve`].
async fn connect(request: Request<Incoming>, conn: &Conn) -> Result<Response<ProxyBody>, Refusal> {
    let Some(authority) = request.uri().authority().cloned() else {
        return Err(Refusal::BadRequest(
            "CONNECT needs a host:port target".to_owned(),
        ));
    };
    let host = authority.host().to_owned();
    let (stream, early_back) = match upstream_of(&host, None, &conn.proxy)? {
        Upstream::I2p(target) => (dial(&conn.proxy, target, &host).await?, Bytes::new()),
        Upstream::Outproxy => outproxy_tunnel(&conn.proxy, authority.as_str()).await?,
    };
    let upgrade = hyper::upgrade::on(request);
    if let Ok(mut pending) = conn.pending.lock() {
        *pending = Some(PendingTunnel {
            upgrade,
            stream,
            early_back,
        });
    }
    Ok(Response::new(empty()))
}

/// An absolute-form request: resolves, opens a stream, sends the request in
/// origin-form with the headers cleaned, and streams the response back. A host
/// outside I2P goes to the outproxy in absolute-form, cleaned the same way.
async fn forward(
    request: Request<Incoming>,
    conn: &Conn,
    settings: &HttpSettings,
) -> Result<Response<ProxyBody>, Refusal> {
    let proxy = &conn.proxy;
    let uri = request.uri().clone();
    match uri.scheme_str() {
        Some(scheme) if scheme.eq_ignore_ascii_case("http") => {}
        Some(scheme) => {
            return Err(Refusal::BadRequest(format!(
                "{scheme}:// URLs are not fetched by the proxy; clients send them with CONNECT"
            )));
        }
        None => {
            return Err(Refusal::BadRequest(
                "this is an HTTP proxy: requests must name an absolute URL \
                 (GET http://example.i2p/ HTTP/1.1); set this address as your HTTP proxy"
                    .to_owned(),
            ));
        }
    }
    let Some(host) = uri.host().map(str::to_owned) else {
        return Err(Refusal::BadRequest("the URL has no host".to_owned()));
    };
    let (helper, query) = split_helper(uri.query());
    let helper = helper.map(|value| helper_target(&value)).transpose()?;
    let upstream = upstream_of(&host, helper, proxy)?;
    let host_header = match uri.port_u16() {
        Some(port) if port != 80 => format!("{host}:{port}"),
        _ => host.clone(),
    };

    let (mut parts, body) = request.into_parts();
    if let Upstream::I2p(_) = upstream {
        let path = match (uri.path(), query.is_empty()) {
            ("", true) => "/".to_owned(),
            ("", false) => format!("/?{query}"),
            (path, true) => path.to_owned(),
            (path, false) => format!("{path}?{query}"),
        };
        parts.uri = path
            .parse()
            .map_err(|_| Refusal::BadRequest("the URL's path cannot be forwarded".to_owned()))?;
    }
    parts.version = Version::HTTP_11;
    clean_request_headers(&mut parts.headers, settings.keep_headers);
    let host_value = HeaderValue::from_str(&host_header)
        .map_err(|_| Refusal::BadRequest("the URL's host cannot be sent".to_owned()))?;
    parts.headers.insert(header::HOST, host_value);
    parts
        .headers
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    let outgoing = counted(body, Arc::clone(&proxy.tunnel.stats.bytes_out));
    let upstream_request = Request::from_parts(parts, outgoing);

    let stream = match upstream {
        Upstream::I2p(target) => dial(proxy, target, &host).await?,
        Upstream::Outproxy => Box::new(
            proxy
                .connect_outproxy()
                .await
                .map_err(|e| refusal(e, &host))?,
        ),
    };
    let (mut sender, connection) = client::Builder::new()
        .max_buf_size(MAX_REQUEST_HEAD)
        .max_headers(MAX_HEADERS)
        .max_header_size(MAX_REQUEST_HEAD)
        .handshake::<_, ProxyBody>(TokioIo::new(stream))
        .await
        .map_err(|e| Refusal::BadGateway {
            host: host.clone(),
            why: e.to_string(),
        })?;
    // The upstream connection runs until its response is delivered (or the tunnel stops).
    let cancel = proxy.tunnel.cancel.clone();
    proxy.tunnel.tracker.spawn(
        async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                done = connection => if let Err(e) = done {
                    tracing::debug!(error = %e, "upstream connection ended with an error");
                },
            }
        }
        .in_current_span(),
    );
    let response = tokio::time::timeout(
        proxy.limits().connect_timeout,
        sender.send_request(upstream_request),
    )
    .await
    .map_err(|_| Refusal::Timeout(host.clone()))?
    .map_err(|e| Refusal::BadGateway {
        host: host.clone(),
        why: e.to_string(),
    })?;
    let (mut parts, body) = response.into_parts();
    remove_hop_by_hop(&mut parts.headers);
    let back = counted(body, Arc::clone(&proxy.tunnel.stats.bytes_in));
    Ok(Response::from_parts(parts, back))
}

/// Asks the outproxy for a tunnel to `authority` (`CONNECT` through hyper's client);
/// the TCP connection to it once it answered `2xx`, and any bytes it sent after that.
async fn outproxy_tunnel(
    proxy: &ProxyContext,
    authority: &str,
) -> Result<(BoxStream, Bytes), Refusal> {
    let host = authority.to_owned();
    let socket = proxy
        .connect_outproxy()
        .await
        .map_err(|e| refusal(e, &host))?;
    let bad_gateway = |e: hyper::Error| Refusal::BadGateway {
        host: host.clone(),
        why: format!("outproxy: {e}"),
    };
    let (mut sender, connection) = client::Builder::new()
        .max_buf_size(MAX_REQUEST_HEAD)
        .max_headers(MAX_HEADERS)
        .max_header_size(MAX_REQUEST_HEAD)
        .handshake::<_, ProxyBody>(TokioIo::new(socket))
        .await
        .map_err(bad_gateway)?;
    let cancel = proxy.tunnel.cancel.clone();
    proxy.tunnel.tracker.spawn(
        async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                done = connection.with_upgrades() => if let Err(e) = done {
                    tracing::debug!(error = %e, "outproxy connection ended with an error");
                },
            }
        }
        .in_current_span(),
    );
    let mut request = Request::new(empty());
    *request.method_mut() = Method::CONNECT;
    *request.uri_mut() = authority
        .parse()
        .map_err(|_| Refusal::BadRequest("bad CONNECT target".to_owned()))?;
    if let Ok(value) = HeaderValue::from_str(authority) {
        request.headers_mut().insert(header::HOST, value);
    }
    let response =
        tokio::time::timeout(proxy.limits().connect_timeout, sender.send_request(request))
            .await
            .map_err(|_| Refusal::Timeout(host.clone()))?
            .map_err(bad_gateway)?;
    if !response.status().is_success() {
        return Err(Refusal::BadGateway {
            host: host.clone(),
            why: format!("the outproxy answered {}", response.status()),
        });
    }
    let upgraded = hyper::upgrade::on(response).await.map_err(bad_gateway)?;
    let parts = upgraded
        .downcast::<TokioIo<TcpStream>>()
        .map_err(|_| Refusal::BadGateway {
            host: host.clone(),
            why: "outproxy: unexpected connection type".to_owned(),
        })?;
    Ok((Box::new(parts.io.into_inner()), parts.read_buf))
}

/// Opens a stream to `target` (named `host` in error pages) through the tunnel.
async fn dial(proxy: &ProxyContext, target: Target, host: &str) -> Result<BoxStream, Refusal> {
    proxy.connect(target).await.map_err(|e| refusal(e, host))
}

/// The error page for a failed connect to `host`.
fn refusal(error: ConnectError, host: &str) -> Refusal {
    let host = host.to_owned();
    match error {
        ConnectError::NotFound => Refusal::NotFound(host),
        ConnectError::Unreachable(why) => Refusal::Unreachable { host, why },
        ConnectError::Timeout => Refusal::Timeout(host),
        ConnectError::NotReady(why) => Refusal::NotRunning(why),
        ConnectError::NoOutproxy => Refusal::Clearnet(host),
        ConnectError::Failed(why) => Refusal::BadGateway { host, why },
    }
}

/// A body passed through, its data bytes added to `counter` as they go by.
fn counted(body: Incoming, counter: Arc<AtomicU64>) -> ProxyBody {
    body.map_frame(move |frame| {
        if let Some(data) = frame.data_ref() {
            counter.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        frame
    })
    .boxed()
}

fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

#[cfg(test)]
mod tests;
