//! The endpoint over real sockets (real time; every wait has a generous deadline).

use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use super::*;
use crate::metrics::tests::{sample, view};
use crate::metrics::{MAX_BODY, TunnelView};

/// Generous bound on anything that should happen "at once": a liveness check only.
const DEADLINE: Duration = Duration::from_secs(20);

struct Endpoint {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Endpoint {
    async fn start(source: MetricsSource, limits: Limits) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve_with(listener, source, shutdown.clone(), limits));
        Self {
            addr,
            shutdown,
            task,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("serve returns after shutdown")
            .unwrap();
    }
}

async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    tokio::time::timeout(DEADLINE, async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .expect("answer in time")
}

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next()?;
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// 1024 tunnels with 255-byte nicknames: a multi-megabyte body.
fn big_source() -> MetricsSource {
    let views: Vec<TunnelView> = (0..1024)
        .map(|i| view(&format!("{i:04}{}", "n".repeat(251)), true))
        .collect();
    Arc::new(move || views.clone())
}

/// A client that sends `GET path` and then never reads, with a small receive buffer so
/// the server's writes stall quickly.
async fn stalled_scraper(addr: SocketAddr, path: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    s
}

#[tokio::test]
async fn serves_metrics_page_head_and_query_and_refuses_the_rest() {
    let ep = Endpoint::start(Arc::new(sample), Limits::default()).await;
    let addr = ep.addr;

    let ok = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert_eq!(header(&ok, "content-type"), Some(METRICS_TYPE));
    assert!(body(&ok).contains("bob_tunnel_bytes_out_total{tunnel=\"web\"} 20\n"));
    let length: usize = header(&ok, "content-length").unwrap().parse().unwrap();
    assert_eq!(length, body(&ok).len());

    let query = exchange(addr, b"GET /metrics?x=1&y HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(query.starts_with("HTTP/1.1 200 OK\r\n"), "{query}");
    assert_eq!(body(&query), body(&ok));

    let head = exchange(addr, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(
        header(&head, "content-length"),
        Some(length.to_string().as_str())
    );
    assert_eq!(body(&head), "", "HEAD has no body");

    let page = exchange(addr, b"GET /?refresh=1 HTTP/1.0\r\n\r\n").await;
    assert!(page.starts_with("HTTP/1.0 200 OK\r\n"), "{page}");
    assert_eq!(header(&page, "content-type"), Some(PAGE_TYPE));
    assert_eq!(header(&page, "content-security-policy"), Some(PAGE_POLICY));
    assert!(body(&page).contains("<td class=\"nick\">web</td>"));

    let missing = exchange(addr, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    let post = exchange(
        addr,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    assert_eq!(header(&post, "allow"), Some("GET, HEAD"));

    ep.stop().await;
}

#[tokio::test]
async fn a_request_head_over_the_bound_gets_431() {
    let ep = Endpoint::start(Arc::new(sample), Limits::default()).await;
    // 9 KiB of headers, complete: over the 8 KiB bound
    let mut huge = b"GET /metrics HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..9 {
        huge.extend_from_slice(format!("X-Pad-{i}: {}\r\n", "a".repeat(1010)).as_bytes());
    }
    huge.extend_from_slice(b"\r\n");
    assert!(huge.len() > 9 * 1024);
    let big = exchange(ep.addr, &huge).await;
    assert!(big.starts_with("HTTP/1.1 431"), "{big}");
    // and one that never ends
    let mut endless = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    endless.extend(std::iter::repeat_n(b'a', MAX_REQUEST_HEAD + 1024));
    let big = exchange(ep.addr, &endless).await;
    assert!(big.starts_with("HTTP/1.1 431"), "{big}");
    // just under the bound still works
    let mut fits = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX: ".to_vec();
    fits.extend(std::iter::repeat_n(b'a', 7 * 1024));
    fits.extend_from_slice(b"\r\n\r\n");
    let ok = exchange(ep.addr, &fits).await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    ep.stop().await;
}

#[test]
fn the_busy_reply_is_well_formed() {
    let (head, body) = BUSY.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 503 "));
    assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
}

#[tokio::test]
async fn connections_over_the_cap_are_refused_at_once() {
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    let ep = Endpoint::start(big_source(), limits).await;
    let _a = stalled_scraper(ep.addr, "/metrics").await;
    let _b = stalled_scraper(ep.addr, "/metrics").await;
    // the two are stalled in their replies, holding both slots; the third is refused
    // (503 if it got out before the close, else a closed connection), never left waiting
    let third = tokio::time::timeout(DEADLINE, async {
        loop {
            let reply = exchange(ep.addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
            if !reply.starts_with("HTTP/1.1 200") {
                return reply;
            }
            // a slot was still free when the stalled ones had not been accepted yet
        }
    })
    .await
    .expect("refused in time");
    assert!(
        third.is_empty() || third.starts_with("HTTP/1.1 503"),
        "{third}"
    );
    drop((_a, _b));
    // the slots come back once the stalled connections are gone
    tokio::time::timeout(DEADLINE, async {
        while !exchange(ep.addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .starts_with("HTTP/1.1 200")
        {}
    })
    .await
    .expect("served again");
    ep.stop().await;
}

#[tokio::test]
async fn a_scraper_that_never_reads_is_closed_after_the_write_timeout() {
    let limits = Limits {
        max_connections: 1,
        write_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let ep = Endpoint::start(big_source(), limits).await;
    let stalled = stalled_scraper(ep.addr, "/metrics").await;
    // the only slot is taken until the server gives up on the stalled reader
    tokio::time::timeout(DEADLINE, async {
        while !exchange(ep.addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .starts_with("HTTP/1.1 200")
        {}
    })
    .await
    .expect("the stalled scraper was closed and its slot reused");
    // what the stalled scraper gets is a cut-off reply, not the whole body
    let mut stalled = stalled;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, stalled.read_to_end(&mut got)).await;
    let text = String::from_utf8_lossy(&got);
    let length: usize = header(&text, "content-length").unwrap().parse().unwrap();
    assert!(body(&text).len() < length, "the reply was cut");
    ep.stop().await;
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_stalled_scraper_beyond_the_grace() {
    let limits = Limits {
        shutdown_grace: Duration::from_millis(200),
        ..Limits::default()
    };
    let ep = Endpoint::start(big_source(), limits).await;
    let addr = ep.addr;
    let _stalled = stalled_scraper(addr, "/metrics").await;
    let _silent = TcpStream::connect(addr).await.unwrap(); // never sends a request
    // make sure the stalled scraper is being answered before shutting down
    let ok = exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(ok.starts_with("HTTP/1.1 200"));
    ep.stop().await; // bounded by DEADLINE inside
    // the port is free again
    TcpListener::bind(addr).await.expect("port released");
}

/// A source that counts its calls.
fn counted(inner: MetricsSource) -> (MetricsSource, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let source: MetricsSource = Arc::new(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        inner()
    });
    (source, calls)
}

/// Limits whose sampler stays out of the way (it reads the source once, at start).
fn no_sampling() -> Limits {
    Limits {
        render_ttl: Duration::from_secs(3600),
        sample_every: Duration::from_secs(3600),
        ..Limits::default()
    }
}

async fn sampled_once(calls: &AtomicUsize) -> usize {
    tokio::time::timeout(DEADLINE, async {
        while calls.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the sampler's first tick");
    calls.load(Ordering::SeqCst)
}

#[tokio::test]
async fn stalled_scrapers_share_one_render() {
    let (source, calls) = counted(big_source());
    let ep = Endpoint::start(source, no_sampling()).await;
    let before = sampled_once(&calls).await;
    let mut stalled = Vec::new();
    for _ in 0..5 {
        let s = stalled_scraper(ep.addr, "/metrics").await;
        tokio::time::timeout(DEADLINE, s.readable())
            .await
            .unwrap()
            .unwrap();
        stalled.push(s);
    }
    assert_eq!(calls.load(Ordering::SeqCst), before + 1);
    ep.stop().await;
}

#[tokio::test]
async fn a_scrape_after_the_others_are_done_is_fresh() {
    let running = Arc::new(AtomicBool::new(true));
    let flag = Arc::clone(&running);
    let (source, calls) = counted(Arc::new(move || {
        vec![view("web", flag.load(Ordering::SeqCst))]
    }));
    let ep = Endpoint::start(source, no_sampling()).await;
    let before = sampled_once(&calls).await;
    let request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    let first = exchange(ep.addr, request).await;
    assert!(
        first.contains("bob_tunnel_running{tunnel=\"web\"} 1\n"),
        "{first}"
    );
    running.store(false, Ordering::SeqCst);
    let second = exchange(ep.addr, request).await;
    assert!(
        second.contains("bob_tunnel_running{tunnel=\"web\"} 0\n"),
        "{second}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), before + 2);
    ep.stop().await;
}

#[test]
fn the_big_test_source_is_big() {
    let text = prometheus::render(&(big_source())());
    assert!(
        text.len() > 1_500_000 && text.len() < MAX_BODY,
        "{}",
        text.len()
    );
}
