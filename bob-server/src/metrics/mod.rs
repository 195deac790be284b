//! Per-tunnel counters as a Prometheus text endpoint (`--metrics 127.0.0.1:PORT`).
//!
//! A deliberately tiny HTTP/1.1 responder: it reads one bounded request head, answers
//! `GET /metrics` with the text exposition format (version 0.0.4) and anything else
//! with 404, then closes. Scrapers need nothing more, and nothing more can go wrong.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Longest request head read before answering 431.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// How long a scraper may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One tunnel's numbers at one moment: the same record the `stats` command answers with.
pub use bob_codec::TunnelCounters as TunnelMetrics;

/// Where the endpoint gets its numbers from, called once per scrape.
pub type MetricsSource = Arc<dyn Fn() -> Vec<TunnelMetrics> + Send + Sync>;

fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Renders the Prometheus text format for `tunnels`.
pub fn render(tunnels: &[TunnelMetrics]) -> String {
    type Getter = fn(&TunnelMetrics) -> u64;
    let families: [(&str, &str, &str, Getter); 6] = [
        (
            "bob_tunnel_running",
            "gauge",
            "1 if the tunnel is running",
            |t| u64::from(t.running),
        ),
        (
            "bob_tunnel_connections_accepted_total",
            "counter",
            "connections accepted",
            |t| t.accepted,
        ),
        (
            "bob_tunnel_connections_active",
            "gauge",
            "connections open now",
            |t| t.active,
        ),
        (
            "bob_tunnel_connections_failed_total",
            "counter",
            "connections that failed",
            |t| t.failed,
        ),
        (
            "bob_tunnel_bytes_in_total",
            "counter",
            "bytes from I2P streams to local applications",
            |t| t.bytes_in,
        ),
        (
            "bob_tunnel_bytes_out_total",
            "counter",
            "bytes from local applications into I2P streams",
            |t| t.bytes_out,
        ),
    ];
    let mut out = String::new();
    let _ = writeln!(out, "# HELP bob_tunnels number of tunnels in the registry");
    let _ = writeln!(out, "# TYPE bob_tunnels gauge");
    let _ = writeln!(out, "bob_tunnels {}", tunnels.len());
    for (name, kind, help, get) in families {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for t in tunnels {
            let _ = writeln!(
                out,
                "{name}{{tunnel=\"{}\"}} {}",
                escape_label(&t.nickname),
                get(t)
            );
        }
    }
    out
}

/// Serves scrapes on `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, source: MetricsSource, shutdown: CancellationToken) {
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (mut socket, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let source = Arc::clone(&source);
        tracker.spawn(async move {
            let mut head = Vec::with_capacity(512);
            let complete = tokio::time::timeout(REQUEST_TIMEOUT, async {
                let mut chunk = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
                    if head.len() > MAX_REQUEST_HEAD {
                        return false;
                    }
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return false,
                        Ok(n) => head.extend_from_slice(&chunk[..n]),
                    }
                }
                true
            })
            .await
            .unwrap_or(false);
            let (status, body, kind) = if !complete {
                if head.len() > MAX_REQUEST_HEAD {
                    ("431 Request Header Fields Too Large", String::new(), "text/plain")
                } else {
                    return;
                }
            } else {
                let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
                let line = String::from_utf8_lossy(line);
                let mut parts = line.split_whitespace();
                match (parts.next(), parts.next()) {
                    (Some("GET"), Some("/metrics" | "/")) => {
                        ("200 OK", render(&source()), "text/plain; version=0.0.4; charset=utf-8")
                    }
                    (Some("GET"), Some(_)) => ("404 Not Found", "not found\n".into(), "text/plain"),
                    _ => ("405 Method Not Allowed", "only GET\n".into(), "text/plain"),
                }
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            if let Err(e) = socket.write_all(response.as_bytes()).await {
                tracing::debug!(%peer, error = %e, "metrics reply failed");
            }
            let _ = socket.shutdown().await;
        });
    }
    tracker.close();
    tracker.wait().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<TunnelMetrics> {
        vec![
            TunnelMetrics {
                nickname: "web".into(),
                running: true,
                accepted: 3,
                active: 1,
                failed: 2,
                bytes_in: 10,
                bytes_out: 20,
            },
            TunnelMetrics {
                nickname: "we\"ird\\".into(),
                ..TunnelMetrics::default()
            },
        ]
    }

    #[test]
    fn renders_every_family_for_every_tunnel() {
        let text = render(&sample());
        assert!(text.contains("bob_tunnels 2\n"));
        assert!(text.contains("bob_tunnel_running{tunnel=\"web\"} 1\n"));
        assert!(text.contains("bob_tunnel_connections_accepted_total{tunnel=\"web\"} 3\n"));
        assert!(text.contains("bob_tunnel_connections_active{tunnel=\"web\"} 1\n"));
        assert!(text.contains("bob_tunnel_connections_failed_total{tunnel=\"web\"} 2\n"));
        assert!(text.contains("bob_tunnel_bytes_in_total{tunnel=\"web\"} 10\n"));
        assert!(text.contains("bob_tunnel_bytes_out_total{tunnel=\"web\"} 20\n"));
        assert!(text.contains("bob_tunnel_running{tunnel=\"we\\\"ird\\\\\"} 0\n"));
        assert_eq!(text.matches("# TYPE").count(), 7);
    }

    async fn get(addr: std::net::SocketAddr, request: &[u8]) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_metrics_and_refuses_the_rest() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(listener, Arc::new(sample), shutdown.clone()));

        let ok = get(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("bob_tunnel_bytes_out_total{tunnel=\"web\"} 20"));
        let missing = get(addr, b"GET /nope HTTP/1.0\r\n\r\n").await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        let post = get(addr, b"POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        let mut huge = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', MAX_REQUEST_HEAD + 10));
        let big = get(addr, &huge).await;
        assert!(big.starts_with("HTTP/1.1 431"), "{big}");

        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .unwrap()
            .unwrap();
    }
}
