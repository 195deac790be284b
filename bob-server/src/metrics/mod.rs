//! Per-tunnel counters as a Prometheus text endpoint (`--metrics 127.0.0.1:PORT`).
//!
//! A deliberately tiny HTTP/1.1 responder: it reads one bounded request head, answers
//! `GET /metrics` with the text exposition format (version 0.0.4) and anything else
//! with 404, then closes. Scrapers need nothing more, and nothing more can go wrong.

mod http;

use std::fmt::Write as _;
use std::sync::Arc;

pub use http::serve;

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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(super) fn sample() -> Vec<TunnelMetrics> {
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
}
