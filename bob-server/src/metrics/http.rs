//! The HTTP side of the endpoint: one bounded request head, one answer, close.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{MetricsSource, render};

/// Longest request head read before answering 431.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// How long a scraper may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

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
    use crate::metrics::TunnelMetrics;

    fn sample() -> Vec<TunnelMetrics> {
        crate::metrics::tests::sample()
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
