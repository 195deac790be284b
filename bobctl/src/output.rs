//! What bobctl prints: tunnel status records and the `list` table, for people or as JSON,
//! and destinations.

use std::time::Duration;

use bob_codec::{TunnelCounters, TunnelStatus};
use keytools::Destination;

pub(crate) fn status_json(s: &TunnelStatus) -> serde_json::Value {
    serde_json::json!({
        "nickname": s.nickname,
        "starting": s.starting,
        "running": s.running,
        "stopping": s.stopping,
        "keys": s.keys,
        "quiet": s.quiet,
        "inport": s.inport,
        "inhost": s.inhost,
        "outport": s.outport,
        "outhost": s.outhost,
        // fields after OUTHOST (proxy and UDP tunnels), keys lower-cased
        "extra": s
            .extra
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), serde_json::Value::from(v.as_str())))
            .collect::<serde_json::Map<_, _>>(),
    })
}

fn state(s: &TunnelStatus) -> &'static str {
    if s.stopping {
        "stopping"
    } else if s.starting {
        "starting"
    } else if s.running {
        "running"
    } else {
        "stopped"
    }
}

fn side(host: &str, port: Option<u16>) -> String {
    match port {
        Some(port) => format!("{host}:{port}"),
        None => "-".to_owned(),
    }
}

/// A `last_error_at` time (seconds since the Unix epoch) as an HTTP date in UTC
/// ("Mon, 07 Dec 2026 03:14:02 GMT").
fn when(at: u64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(at))
}

pub(crate) fn print_status(status: &TunnelStatus, counters: Option<&TunnelCounters>, json: bool) {
    if json {
        let mut value = status_json(status);
        if let (Some(c), Some(object)) = (counters, value.as_object_mut()) {
            object.insert(
                "counters".into(),
                serde_json::json!({
                    "accepted": c.accepted,
                    "active": c.active,
                    "failed": c.failed,
                    "bytes_in": c.bytes_in,
                    "bytes_out": c.bytes_out,
                    "extra": c
                        .extra
                        .iter()
                        .map(|(k, v)| (k.clone(), serde_json::Value::from(*v)))
                        .collect::<serde_json::Map<String, serde_json::Value>>(),
                }),
            );
            if let Some((at, reason)) = &c.last_error {
                object.insert(
                    "last_start_error".into(),
                    serde_json::json!({ "at": at, "reason": reason }),
                );
            }
        }
        println!("{value}");
    } else {
        let port = |p: Option<u16>| p.map_or_else(|| "not_set".to_string(), |p| p.to_string());
        let s = status;
        println!(
            "nickname: {}\nstate:    {}\nkeys:     {}\nquiet:    {}\ninbound:  {}:{}\noutbound: {}:{}",
            s.nickname,
            state(s),
            s.keys,
            s.quiet,
            s.inhost,
            port(s.inport),
            s.outhost,
            port(s.outport)
        );
        for (key, value) in &s.extra {
            let key = format!("{}:", key.to_ascii_lowercase());
            println!("{key:<9} {value}");
        }
        if let Some(c) = counters {
            println!(
                "conns:    {} accepted, {} active, {} failed\nbytes:    {} in (from I2P), {} out (to I2P)",
                c.accepted, c.active, c.failed, c.bytes_in, c.bytes_out
            );
            if let Some((at, reason)) = &c.last_error {
                println!("error:    start failed {}: {reason}", when(*at));
            }
            let get = |key: &str| c.extra.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
            if let (Some(received), Some(sent)) = (get("udp_received"), get("udp_sent")) {
                let drops: Vec<String> = c
                    .extra
                    .iter()
                    .filter(|(k, v)| *v > 0 && k.starts_with("udp_dropped_"))
                    .map(|(k, v)| format!("{v} {}", &k["udp_dropped_".len()..]))
                    .collect();
                println!(
                    "datagrams: {received} received (from I2P), {sent} sent (to I2P), {} dropped{}, {} peers",
                    get("udp_dropped").unwrap_or(0),
                    if drops.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", drops.join(", "))
                    },
                    get("udp_peers").unwrap_or(0),
                );
            }
        }
    }
}

/// The `list` table: a header and one row per tunnel, columns padded to their widest
/// cell (the last one is not padded). An unset side shows `-`.
pub(crate) fn list_table(tunnels: &[TunnelStatus]) -> String {
    let rows: Vec<[String; 6]> = tunnels
        .iter()
        .map(|t| {
            [
                t.nickname.clone(),
                state(t).to_owned(),
                if t.keys { "yes" } else { "no" }.to_owned(),
                if t.quiet { "yes" } else { "no" }.to_owned(),
                side(&t.inhost, t.inport),
                side(&t.outhost, t.outport),
            ]
        })
        .collect();
    let header = ["NAME", "STATE", "KEYS", "QUIET", "INBOUND", "OUTBOUND"].map(str::to_owned);
    let mut widths = [0usize; 6];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                let pad = widths[i] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub(crate) fn print_dest(dest: &str, json: bool) {
    let b32 = Destination::from_base64(dest).map(|d| d.b32()).ok();
    if json {
        println!("{}", serde_json::json!({ "destination": dest, "b32": b32 }));
    } else {
        println!("{dest}");
    }
}
