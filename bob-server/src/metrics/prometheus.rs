//! The Prometheus text exposition format (version 0.0.4) of the tunnels' counters.

use std::fmt::Write as _;

use super::{MAX_BODY, TunnelMetrics, TunnelView, push_capped};
use crate::backend::RouterReport;

/// Room kept at the end of a capped body for the note that says it was cut.
const NOTE_ROOM: usize = 128;

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

type Getter = fn(&TunnelMetrics) -> u64;

/// Name, type, help and value of every per-tunnel family.
const FAMILIES: [(&str, &str, &str, Getter); 7] = [
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
    (
        "bob_tunnel_last_start_failure_timestamp_seconds",
        "gauge",
        "when the last start failed (Unix time; 0 if none since the last success)",
        |t| t.last_error.as_ref().map_or(0, |e| e.0),
    ),
];

/// The `bob_router_*` gauges of an in-process router (`--router embedded|devnet`).
pub fn render_router(r: &RouterReport) -> String {
    let families: [(&str, &str, u64); 6] = [
        (
            "known_routers",
            "routers the netDb held at start",
            r.known_routers,
        ),
        (
            "connected_routers",
            "routers connected now",
            r.connected_routers,
        ),
        ("tunnels_built", "tunnels built so far", r.tunnels_built),
        (
            "tunnel_build_failures",
            "tunnel builds that failed so far",
            r.tunnel_build_failures,
        ),
        (
            "transit_tunnels",
            "transit tunnels carried now",
            r.transit_tunnels,
        ),
        (
            "sam_healthy",
            "1 if the router's SAM port answered the last health check",
            u64::from(r.sam_healthy),
        ),
    ];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP bob_router_info the router in this process (value 1)\n# TYPE bob_router_info gauge\nbob_router_info{{kind=\"{}\"}} 1",
        escape_label(r.kind)
    );
    for (name, help, value) in families {
        let _ = writeln!(
            out,
            "# HELP bob_router_{name} {help}\n# TYPE bob_router_{name} gauge\nbob_router_{name} {value}"
        );
    }
    out
}

/// Renders `tunnels`, at most [`MAX_BODY`] bytes.
pub fn render(tunnels: &[TunnelView]) -> String {
    render_capped(tunnels, MAX_BODY)
}

/// Renders `tunnels` in at most `cap` bytes (`cap` ≥ 256): past that the text is cut
/// after a whole line and ends with `# bob: output truncated …`, which scrapers read
/// as a comment.
pub(super) fn render_capped(tunnels: &[TunnelView], cap: usize) -> String {
    let room = cap.saturating_sub(NOTE_ROOM);
    let mut out = String::new();
    let mut line = String::new();
    let _ = writeln!(out, "# HELP bob_tunnels number of tunnels in the registry");
    let _ = writeln!(out, "# TYPE bob_tunnels gauge");
    let _ = writeln!(out, "bob_tunnels {}", tunnels.len());
    let labels: Vec<String> = tunnels
        .iter()
        .map(|t| escape_label(&t.counters.nickname))
        .collect();
    let mut lines_left = 0usize;
    'families: for (family, (name, kind, help, get)) in FAMILIES.iter().enumerate() {
        line.clear();
        let _ = write!(line, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
        if !push_capped(&mut out, &line, room) {
            lines_left = (FAMILIES.len() - family) * tunnels.len();
            break;
        }
        for (i, (t, label)) in tunnels.iter().zip(&labels).enumerate() {
            line.clear();
            let _ = writeln!(line, "{name}{{tunnel=\"{label}\"}} {}", get(&t.counters));
            if !push_capped(&mut out, &line, room) {
                lines_left = (FAMILIES.len() - family) * tunnels.len() - i;
                break 'families;
            }
        }
    }
    if lines_left == 0 {
        lines_left = render_extra(&mut out, tunnels, &labels, room);
    }
    if lines_left > 0 {
        let _ = writeln!(
            out,
            "# bob: output truncated at {cap} bytes; {lines_left} samples left out"
        );
    }
    out
}

/// The further counters some tunnel kinds keep ([`TunnelMetrics::extra`], a UDP
/// tunnel's `udp_*`), one family per key as `bob_tunnel_<key>`: a gauge for `*peers`,
/// else a counter (`_total`). Only tunnels that have the key get a sample. Returns how
/// many samples did not fit in `room`.
fn render_extra(out: &mut String, tunnels: &[TunnelView], labels: &[String], room: usize) -> usize {
    let mut keys: Vec<&str> = Vec::new();
    for t in tunnels {
        for (key, _) in &t.counters.extra {
            if !keys.contains(&key.as_str()) && is_metric_name(key) {
                keys.push(key);
            }
        }
    }
    let mut line = String::new();
    let mut left = 0usize;
    for key in keys {
        let (name, kind) = if key.ends_with("peers") {
            (format!("bob_tunnel_{key}"), "gauge")
        } else {
            (format!("bob_tunnel_{key}_total"), "counter")
        };
        let samples: Vec<(usize, u64)> = tunnels
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                t.counters
                    .extra
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| (i, *v))
            })
            .collect();
        if left > 0 {
            left += samples.len();
            continue;
        }
        line.clear();
        let help = key.replace('_', " ");
        let _ = write!(line, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
        if !push_capped(out, &line, room) {
            left += samples.len();
            continue;
        }
        for (n, (i, value)) in samples.iter().enumerate() {
            line.clear();
            let _ = writeln!(line, "{name}{{tunnel=\"{}\"}} {value}", labels[*i]);
            if !push_capped(out, &line, room) {
                left += samples.len() - n;
                break;
            }
        }
    }
    left
}

/// Whether `key` can be part of a metric name (`[a-z0-9_]`).
fn is_metric_name(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::tests::{router, sample, view};

    #[test]
    fn router_gauges_are_one_sample_each() {
        let text = render_router(&router());
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            samples,
            [
                "bob_router_info{kind=\"devnet\"} 1",
                "bob_router_known_routers 5",
                "bob_router_connected_routers 3",
                "bob_router_tunnels_built 9",
                "bob_router_tunnel_build_failures 1",
                "bob_router_transit_tunnels 4",
                "bob_router_sam_healthy 1",
            ]
        );
        // every sample has its HELP and TYPE
        assert_eq!(text.lines().filter(|l| l.starts_with("# HELP ")).count(), 7);
        assert_eq!(text.lines().filter(|l| l.starts_with("# TYPE ")).count(), 7);
    }

    #[test]
    fn udp_counters_get_their_own_families() {
        let mut tunnels = sample();
        tunnels[0].counters.extra = vec![("udp_received".into(), 5), ("udp_peers".into(), 2)];
        let text = render(&tunnels);
        assert!(text.contains("# TYPE bob_tunnel_udp_received_total counter\n"));
        assert!(text.contains("bob_tunnel_udp_received_total{tunnel=\"web\"} 5\n"));
        assert!(text.contains("# TYPE bob_tunnel_udp_peers gauge\n"));
        assert!(text.contains("bob_tunnel_udp_peers{tunnel=\"web\"} 2\n"));
        // the other tunnel is no UDP tunnel: no sample
        assert_eq!(text.matches("bob_tunnel_udp_peers{").count(), 1);
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
        assert!(
            text.contains("bob_tunnel_last_start_failure_timestamp_seconds{tunnel=\"web\"} 0\n")
        );
        assert_eq!(text.matches("# TYPE").count(), 8);
        assert!(!text.contains("truncated"));
    }

    #[test]
    fn a_body_over_the_cap_is_cut_at_a_line_and_says_so() {
        let tunnels: Vec<_> = (0..100).map(|i| view(&format!("t{i:03}"), true)).collect();
        let full = render(&tunnels);
        let cap = full.len() / 2;
        let cut = render_capped(&tunnels, cap);
        assert!(cut.len() <= cap, "{} > {cap}", cut.len());
        let (body, note) = cut.trim_end().rsplit_once('\n').unwrap();
        assert!(full.starts_with(body), "cut inside a line");
        assert!(
            note.starts_with("# bob: output truncated at ") && note.ends_with(" samples left out"),
            "{note}"
        );
        let left: usize = note.split(' ').nth(7).unwrap().parse().unwrap();
        let kept = body.lines().filter(|l| !l.starts_with('#')).count() - 1; // bob_tunnels
        assert_eq!(kept + left, 700);
    }

    /// The worst case the registry's caps allow: 1024 tunnels whose 255-byte nicknames
    /// are all escapes (each doubles), every counter at u64::MAX. It fits the cap whole.
    #[test]
    fn the_worst_case_under_the_registry_caps_fits() {
        let nick = "\"".repeat(bob_codec::types::MAX_NICKNAME_LEN);
        let tunnels: Vec<_> = (0..crate::config::DEFAULT_MAX_TUNNELS)
            .map(|_| {
                let mut v = view(&nick, true);
                v.counters.accepted = u64::MAX;
                v.counters.active = u64::MAX;
                v.counters.failed = u64::MAX;
                v.counters.bytes_in = u64::MAX;
                v.counters.bytes_out = u64::MAX;
                v
            })
            .collect();
        let text = render(&tunnels);
        assert!(!text.contains("truncated"));
        assert!(text.len() < MAX_BODY);
        assert!(text.len() > 3_400_000, "{}", text.len()); // documented as about 3.5 MB
        println!("worst-case /metrics body: {} bytes", text.len());
    }
}
