//! The status page at `/`: one server-rendered HTML table, no script, reloading itself
//! with `<meta http-equiv=refresh>`. Every string a client chose (nicknames, hosts,
//! errors) goes through [`escape`].

use std::fmt::Write as _;
use std::time::Duration;

use super::history::{History, Rate};
use super::{HISTORY_SAMPLES, MAX_BODY, TunnelView, push_capped};
use crate::backend::RouterReport;

/// Room kept for the end of the page and the note saying rows were left out.
const TAIL_ROOM: usize = 512;

const CHART_WIDTH: f64 = 180.0;
const CHART_HEIGHT: f64 = 36.0;

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}\
h1{font-size:1.4em;margin:0 0 .2em}.summary{color:#555;margin:0 0 1em}\
table{border-collapse:collapse;background:#fff;box-shadow:0 1px 3px #0002}\
th,td{padding:.45em .7em;border-bottom:1px solid #e4e4e4;text-align:left;vertical-align:middle}\
th{background:#f0f0f0;font-weight:600;font-size:.85em;color:#444}\
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
td.nick{font-weight:600;overflow-wrap:anywhere;max-width:16em}\
code{font-size:.85em;word-break:break-all}code.ep{white-space:nowrap;word-break:normal}\
.state{display:inline-block;padding:.1em .5em;border-radius:.8em;font-size:.8em;font-weight:600}\
.running{background:#d5f5dd;color:#17692c}.stopped{background:#eee;color:#555}\
.starting,.stopping{background:#fff1c2;color:#7a5a00}\
.error{color:#a11}.none{color:#999}.cut{color:#a11;font-style:italic}\
.legend{font-size:.8em;color:#555}.in{color:#1f6fd1}.out{color:#d9730d}";

/// Escapes `&`, `<`, `>`, `"` and `'` for HTML text and attribute values.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `1.5 KiB` style sizes.
fn human(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} {}", UNITS[0])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn endpoint(host: &str, port: Option<u16>) -> String {
    match port {
        Some(port) => format!("<code class=\"ep\">{}:{port}</code>", escape(host)),
        None => "<span class=\"none\">—</span>".to_owned(),
    }
}

/// The inline SVG chart of `rates` over `window` (in-bound blue, out-bound orange).
fn chart(rates: &[Rate], window: f64) -> String {
    let mut svg = format!(
        "<svg class=\"chart\" width=\"{CHART_WIDTH}\" height=\"{}\" viewBox=\"0 0 {CHART_WIDTH} {}\" role=\"img\">",
        CHART_HEIGHT + 12.0,
        CHART_HEIGHT + 12.0
    );
    let _ = write!(
        svg,
        "<rect width=\"{CHART_WIDTH}\" height=\"{CHART_HEIGHT}\" fill=\"#f6f8fb\" stroke=\"#dde\"/>"
    );
    if rates.is_empty() {
        let _ = write!(
            svg,
            "<text x=\"6\" y=\"22\" font-size=\"11\" fill=\"#888\">collecting samples…</text></svg>"
        );
        return svg;
    }
    let peak = rates
        .iter()
        .map(|r| r.bytes_in.max(r.bytes_out))
        .fold(0.0, f64::max);
    let scale = peak.max(1.0);
    let points = |get: fn(&Rate) -> f64| {
        let mut p = String::new();
        for r in rates {
            let x = CHART_WIDTH - (r.age / window).min(1.0) * CHART_WIDTH;
            let y = CHART_HEIGHT - 1.0 - get(r) / scale * (CHART_HEIGHT - 2.0);
            let _ = write!(p, "{x:.1},{y:.1} ");
        }
        p
    };
    for (class, colour, get) in [
        ("in", "#1f6fd1", (|r: &Rate| r.bytes_in) as fn(&Rate) -> f64),
        ("out", "#d9730d", |r: &Rate| r.bytes_out),
    ] {
        let _ = write!(
            svg,
            "<polyline class=\"{class}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/>",
            points(get).trim_end()
        );
    }
    let _ = write!(
        svg,
        "<text x=\"2\" y=\"{}\" font-size=\"10\" fill=\"#666\">peak {}/s</text></svg>",
        CHART_HEIGHT + 11.0,
        human(peak)
    );
    svg
}

fn row(v: &TunnelView, history: &History, window: f64) -> String {
    let c = &v.counters;
    let s = &v.status;
    let state = v.state();
    let destination = match &v.destination {
        Some(b32) => format!("<code>{}</code>", escape(b32)),
        None => "<span class=\"none\">no keys</span>".to_owned(),
    };
    let error = match &v.last_error {
        Some(e) => format!("<span class=\"error\">{}</span>", escape(e)),
        None => "<span class=\"none\">—</span>".to_owned(),
    };
    format!(
        "<tr class=\"tunnel\"><td class=\"nick\">{}</td>\
<td><span class=\"state {}\">{state}</span></td><td>{destination}</td><td>{}</td><td>{}</td>\
<td class=\"num\">{} / {} / {}</td><td class=\"num\">{} / {}</td><td>{}</td><td>{error}</td></tr>\n",
        escape(&c.nickname),
        state.to_ascii_lowercase(),
        endpoint(&s.inhost, s.inport),
        endpoint(&s.outhost, s.outport),
        c.active,
        c.accepted,
        c.failed,
        human(c.bytes_in as f64),
        human(c.bytes_out as f64),
        chart(&history.rates(&c.nickname), window),
    )
}

/// Renders the page for `views`, charting `history` sampled every `sample_every`; at
/// most [`MAX_BODY`] bytes (rows that do not fit are left out, and the page says so).
pub fn render_page(views: &[TunnelView], history: &History, sample_every: Duration) -> String {
    render_page_capped(views, None, history, sample_every, MAX_BODY)
}

/// [`render_page`] with a line about the router in this process (`--router
/// embedded|devnet`) above the tunnels.
pub fn render_page_with_router(
    views: &[TunnelView],
    router: Option<&RouterReport>,
    history: &History,
    sample_every: Duration,
) -> String {
    render_page_capped(views, router, history, sample_every, MAX_BODY)
}

/// The router line: its numbers, and why tunnels may not be ready yet.
fn router_line(r: &RouterReport) -> String {
    let success = r
        .build_success()
        .map_or_else(|| "none yet".to_owned(), |s| format!("{:.0} %", s * 100.0));
    let hint = if !r.sam_healthy {
        " <span class=\"error\">SAM port not answering: no tunnel can start</span>"
    } else if r.tunnels_built == 0 {
        " <span class=\"starting state\">building its first tunnels: tunnels start after that</span>"
    } else {
        ""
    };
    format!(
        "<p class=\"summary\">Router <b>{}</b> (in this process): {} routers known at start, \
{} connected · tunnels built {}, failed {} (success {success}) · {} transit tunnels · \
SAM port {}{hint}</p>\n",
        escape(r.kind),
        r.known_routers,
        r.connected_routers,
        r.tunnels_built,
        r.tunnel_build_failures,
        r.transit_tunnels,
        if r.sam_healthy { "healthy" } else { "DOWN" },
    )
}

pub(super) fn render_page_capped(
    views: &[TunnelView],
    router: Option<&RouterReport>,
    history: &History,
    sample_every: Duration,
    cap: usize,
) -> String {
    let window_secs = sample_every.as_secs_f64() * (HISTORY_SAMPLES - 1) as f64;
    let refresh = sample_every.as_secs().max(1);
    let running = views.iter().filter(|v| v.status.running).count();
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"refresh\" content=\"{refresh}\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>bob-server status</title><style>{STYLE}</style></head>\n<body>\
<h1>bob-server</h1><p class=\"summary\">{} tunnels, {running} running · refreshes every {refresh} s · \
<a href=\"/metrics\">Prometheus metrics</a></p>\n{}\
<table><thead><tr><th>Tunnel</th><th>State</th><th>Destination</th><th>Inbound</th>\
<th>Outbound</th><th>Connections<br>active / accepted / failed</th><th>Bytes<br>in / out</th>\
<th>Throughput, last {} min<br><span class=\"legend\"><span class=\"in\">■ in</span> \
<span class=\"out\">■ out</span></span></th><th>Last error</th></tr></thead>\n<tbody>\n",
        views.len(),
        router.map(router_line).unwrap_or_default(),
        (window_secs / 60.0).round(),
    );
    let room = cap.saturating_sub(TAIL_ROOM);
    let mut shown = 0;
    for v in views {
        if !push_capped(&mut out, &row(v, history, window_secs.max(1.0)), room) {
            break;
        }
        shown += 1;
    }
    if views.is_empty() {
        out.push_str("<tr><td colspan=\"9\" class=\"none\">no tunnels</td></tr>\n");
    } else if shown < views.len() {
        let _ = writeln!(
            out,
            "<tr><td colspan=\"9\" class=\"cut\">{} more tunnels not shown: this page is capped at {cap} bytes \
(every tunnel is in <a href=\"/metrics\">/metrics</a>)</td></tr>",
            views.len() - shown
        );
    }
    out.push_str("</tbody></table></body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::tests::{router, sample, view};
    use tokio::time::Instant;

    #[test]
    fn the_router_line_says_why_tunnels_may_wait() {
        let h = History::default();
        let every = Duration::from_secs(10);
        let without = render_page(&sample(), &h, every);
        assert!(!without.contains("Router <b>"), "{without}");
        let page = render_page_with_router(&sample(), Some(&router()), &h, every);
        assert!(
            page.contains(
                "Router <b>devnet</b> (in this process): 5 routers known at start, 3 connected \
· tunnels built 9, failed 1 (success 90 %) · 4 transit tunnels · SAM port healthy</p>"
            ),
            "{page}"
        );
        let fresh = RouterReport {
            tunnels_built: 0,
            tunnel_build_failures: 0,
            ..router()
        };
        let page = render_page_with_router(&[], Some(&fresh), &h, every);
        assert!(page.contains("(success none yet)"), "{page}");
        assert!(page.contains("building its first tunnels"), "{page}");
        let dead = RouterReport {
            sam_healthy: false,
            ..router()
        };
        let page = render_page_with_router(&[], Some(&dead), &h, every);
        assert!(page.contains("SAM port DOWN"), "{page}");
        assert!(page.contains("no tunnel can start"), "{page}");
    }

    #[test]
    fn every_user_string_is_escaped() {
        assert_eq!(
            escape("<b a='1'>\"&\""),
            "&lt;b a=&#39;1&#39;&gt;&quot;&amp;&quot;"
        );
        let mut v = view("<script>alert(1)</script>", true);
        v.status.inhost = "<img src=x>".into();
        v.status.inport = Some(1);
        v.last_error = Some("<i>boom</i>".into());
        let page = render_page(&[v], &History::default(), Duration::from_secs(10));
        assert!(!page.contains("<script>") && !page.contains("<img") && !page.contains("<i>"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("&lt;img src=x&gt;:1"));
        assert!(page.contains("&lt;i&gt;boom&lt;/i&gt;"));
    }

    #[test]
    fn shows_state_ports_destination_and_counters() {
        let page = render_page(&sample(), &History::default(), Duration::from_secs(10));
        assert!(page.contains("<meta http-equiv=\"refresh\" content=\"10\">"));
        assert!(page.contains("<td class=\"nick\">web</td>"));
        assert!(page.contains("<span class=\"state running\">RUNNING</span>"));
        assert!(page.contains("<span class=\"state stopped\">STOPPED</span>"));
        assert!(page.contains(&format!("<code>{}.b32.i2p</code>", "a".repeat(52))));
        assert!(page.contains("<code class=\"ep\">localhost:8080</code>"));
        assert!(page.contains("<code class=\"ep\">localhost:80</code>"));
        assert!(page.contains("1 / 3 / 2") && page.contains("10 B / 20 B"));
        assert!(page.contains("we&quot;ird\\"));
        assert!(page.contains("2 tunnels, 1 running"));
        assert!(page.contains("collecting samples"));
        assert!(page.contains("Throughput, last 10 min"));
    }

    #[test]
    fn the_chart_plots_the_sampled_rates() {
        let mut h = History::default();
        let t0 = Instant::now();
        let mut v = sample();
        for i in 0..4u64 {
            v[0].counters.bytes_in = i * 10 * 2048;
            v[0].counters.bytes_out = i * 10 * 1024;
            h.record(&v, t0 + Duration::from_secs(10 * i));
        }
        let page = render_page(&v, &h, Duration::from_secs(10));
        let web = page.lines().find(|l| l.contains(">web<")).unwrap();
        // three intervals of 2 KiB/s in and 1 KiB/s out: flat lines at the top and middle
        assert!(web.contains("class=\"in\""), "{web}");
        assert!(
            web.contains("points=\"174.0,1.0 177.0,1.0 180.0,1.0\""),
            "{web}"
        );
        assert!(
            web.contains("points=\"174.0,18.0 177.0,18.0 180.0,18.0\""),
            "{web}"
        );
        assert!(web.contains("peak 2.0 KiB/s"), "{web}");
    }

    #[test]
    fn rows_that_do_not_fit_the_cap_are_left_out_and_counted() {
        let views: Vec<_> = (0..50).map(|i| view(&format!("t{i}"), false)).collect();
        let full = render_page(&views, &History::default(), Duration::from_secs(10));
        let cap = full.len() / 2;
        let page = render_page_capped(
            &views,
            None,
            &History::default(),
            Duration::from_secs(10),
            cap,
        );
        assert!(page.len() <= cap);
        assert!(page.ends_with("</tbody></table></body></html>\n"));
        let shown = page.matches("<tr class=\"tunnel\">").count();
        assert!(shown > 0 && shown < 50);
        assert!(page.contains(&format!("{} more tunnels not shown", 50 - shown)));
    }

    /// The worst case the registry's caps allow: 1024 tunnels, nicknames and hosts of 255
    /// escaped characters, every counter at its maximum, full histories.
    #[test]
    fn the_worst_case_under_the_registry_caps_stays_under_the_cap() {
        let long = "\"".repeat(bob_codec::types::MAX_NICKNAME_LEN);
        let views: Vec<_> = (0..crate::config::DEFAULT_MAX_TUNNELS)
            .map(|i| {
                let mut v = view(&format!("{i:04}{}", &long[4..]), true);
                v.status.inhost = long.clone();
                v.status.outhost = long.clone();
                v.status.inport = Some(65535);
                v.status.outport = Some(65535);
                v.destination = Some(format!("{}.b32.i2p", "a".repeat(52)));
                v.counters.accepted = u64::MAX;
                v.counters.active = u64::MAX;
                v.counters.failed = u64::MAX;
                v.counters.bytes_in = u64::MAX / 2;
                v.counters.bytes_out = u64::MAX / 2;
                v
            })
            .collect();
        let mut h = History::default();
        let t0 = Instant::now();
        for i in 0..HISTORY_SAMPLES as u32 {
            h.record(&views, t0 + Duration::from_secs(10) * i);
        }
        let uncapped = render_page_capped(&views, None, &h, Duration::from_secs(10), usize::MAX);
        let page = render_page(&views, &h, Duration::from_secs(10));
        assert!(page.len() <= MAX_BODY);
        println!(
            "worst-case status page: {} bytes uncapped, {} bytes served ({} of {} rows)",
            uncapped.len(),
            page.len(),
            page.matches("<tr class=\"tunnel\">").count(),
            views.len()
        );
    }
}
