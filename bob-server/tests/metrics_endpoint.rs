//! The metrics endpoint of the real binary under attack (issue 13): 1024 tunnels with
//! nicknames at the 255-byte cap and 40 scrapers that never read. Memory stays bounded,
//! control clients are answered meanwhile, and SIGTERM ends the server with the
//! scrapers still stalled (its metrics port is free again).
//!
//! `BOB_METRICS_TEST_BIN=/path/to/bob-server` runs the same attack against another
//! build (for before/after figures; the assertions are then expected to fail on an
//! unhardened build). The RSS figures are printed either way (`--nocapture`).

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, Command};

mod support;

use bob_testkit::process::{sigterm, spawn_listening};
use support::{Bob, within};

/// Scrapers that send a request and never read the reply.
const SCRAPERS: usize = 40;
/// Tunnels in the registry (the default `--max-tunnels`).
const TUNNELS: usize = 1024;
/// Nickname length used when the server takes it (issue 13 used 16,000): with caps
/// enforced the server refuses it and the test uses [`NICK_CAP`].
const NICK_LONG: usize = 2000;
/// The nickname cap (`bob_codec::types::MAX_NICKNAME_LEN`).
const NICK_CAP: usize = 255;
/// Bound on the server's RSS growth under the attack. Generous: the hardened endpoint
/// holds one shared body of at most 4 MiB; the unhardened one held two copies of a
/// 12 MB body per scraper (see docs/security.md for the measured figures).
const MAX_RSS_GROWTH_KIB: u64 = 64 * 1024;

struct Server {
    child: Child,
    control: SocketAddr,
    metrics: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    async fn spawn() -> Self {
        let bin = std::env::var("BOB_METRICS_TEST_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_bob-server").to_owned());
        let (child, control, log) = spawn_listening(Command::new(bin).args([
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
        ]))
        .await
        .share_log();
        let metrics = log
            .lock()
            .unwrap()
            .iter()
            .find_map(|line| {
                line.trim()
                    .strip_prefix("bob-server metrics on http://")?
                    .strip_suffix("/metrics")
                    .map(str::to_owned)
            })
            .expect("metrics address printed before the listening line");
        Self {
            child,
            control: control.parse().expect("control address"),
            metrics: metrics.parse().expect("metrics address"),
            log,
        }
    }

    fn status_kib(&self, field: &str) -> u64 {
        let pid = self.child.id().expect("server still running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.trim().strip_suffix(" kB"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in {status}"))
    }
}

/// Sends `GET /metrics` with a 4 KiB receive buffer and never reads.
async fn stalled_scraper(addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut s = socket.connect(addr).await.expect("connect to metrics");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: scraper\r\n\r\n")
        .await
        .expect("send request");
    s
}

async fn scrape(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .expect("send");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// `getnick`-able name of tunnel `i` for nicknames of `len` bytes.
fn nick(i: usize, len: usize) -> String {
    format!("{i:04}{}", "n".repeat(len - 4))
}

/// Creates [`TUNNELS`] tunnels with the longest nicknames the server takes (pipelined on
/// `bob`); returns that length.
async fn fill(bob: &mut Bob) -> usize {
    let long = bob.cmd(&format!("setnick {}", nick(0, NICK_LONG))).await;
    let (len, first) = if long.starts_with("OK") {
        (NICK_LONG, 1)
    } else {
        (NICK_CAP, 0)
    };
    let mut batch = String::new();
    for i in first..TUNNELS {
        batch.push_str(&format!("setnick {}\n", nick(i, len)));
    }
    bob.0.send_raw(batch.as_bytes()).await;
    for i in first..TUNNELS {
        let reply = bob.0.read_line().await;
        assert!(reply.starts_with("OK"), "tunnel {i}: {reply}");
    }
    len
}

/// [`SCRAPERS`] stalled scrapers, each answered (a reply started, a 503, or a close).
async fn stall(metrics: SocketAddr) -> Vec<TcpStream> {
    let mut scrapers = Vec::new();
    for _ in 0..SCRAPERS {
        scrapers.push(within("connect a scraper", stalled_scraper(metrics)).await);
    }
    for s in &scrapers {
        within("the server answers each scraper", s.readable())
            .await
            .expect("readable");
    }
    scrapers
}

#[tokio::test]
async fn zap_is_not_blocked_by_stalled_scrapers() {
    let mut server = Server::spawn().await;
    let mut bob = Bob::connect(server.control).await;
    fill(&mut bob).await;
    let scrapers = stall(server.metrics).await;
    bob.ok("zap").await;
    drop(bob);
    let status = within("exit after zap with stalled scrapers", server.child.wait())
        .await
        .expect("wait");
    assert!(
        status.success(),
        "{status:?}: {:?}",
        server.log.lock().unwrap()
    );
    std::net::TcpListener::bind(server.metrics).expect("metrics port released");
    drop(scrapers);
}

#[tokio::test]
async fn stalled_scrapers_keep_memory_bounded_and_do_not_block_control_or_sigterm() {
    let mut server = Server::spawn().await;

    let mut bob = Bob::connect(server.control).await;
    let len = fill(&mut bob).await;
    // one scrape that is read to the end: the full body, and the baseline memory
    let full = within("a normal scrape", scrape(server.metrics, "/metrics")).await;
    assert!(
        full.contains(&format!("bob_tunnels {TUNNELS}\n")),
        "{}",
        &full[..300]
    );
    let body_len = full.len();
    let before = server.status_kib("VmRSS:");

    let scrapers = stall(server.metrics).await;

    // control clients are answered while the scrapers stall
    let mut other = Bob::connect(server.control).await;
    let reply = other.cmd(&format!("getnick {}", nick(0, len))).await;
    assert!(reply.starts_with("OK"), "{reply}");
    let reply = other
        .cmd(&format!("getnick {}", nick(TUNNELS - 1, len)))
        .await;
    assert!(reply.starts_with("OK"), "{reply}");
    let reply = other.cmd("setnick one-too-many").await;
    assert!(reply.starts_with("ERROR"), "{reply}");

    let after = server.status_kib("VmRSS:");
    let peak = server.status_kib("VmHWM:");
    println!(
        "metrics attack: {len}-byte nicknames, reply {body_len} bytes, {SCRAPERS} stalled scrapers: \
         RSS before {before} KiB, after {after} KiB, peak {peak} KiB, growth {} KiB",
        peak.saturating_sub(before)
    );
    assert!(
        peak.saturating_sub(before) < MAX_RSS_GROWTH_KIB,
        "RSS grew from {before} KiB to a peak of {peak} KiB"
    );

    // SIGTERM with the scrapers still stalled: the server exits, the port is released
    let status = sigterm(&mut server.child).await;
    assert!(
        status.success(),
        "{status:?}: {:?}",
        server.log.lock().unwrap()
    );
    std::net::TcpListener::bind(server.metrics).expect("metrics port released");
    drop((scrapers, bob, other));
}

/// Chromium's binary, or `None` (a test failure with `CI=true`: scripts/test.sh installs it).
fn chromium() -> Option<String> {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        let found = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if found {
            return Some(name.to_owned());
        }
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true and chromium is not installed (apt-get install chromium)"
    );
    eprintln!("!!!! chromium is not installed: the status page browser test did NOT run !!!!");
    None
}

/// Runs headless chromium on `url` with `args`; its stdout.
async fn headless(browser: &str, profile: &std::path::Path, args: &[&str], url: &str) -> String {
    let out = within(
        "headless chromium",
        Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(args)
            .arg(url)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The status page in a real browser: tunnel names (a hostile one escaped), states,
/// destination and ports in the DOM; a screenshot is taken (kept at
/// `$BOB_STATUS_SCREENSHOT` when set, as for docs/status-page.png).
#[tokio::test]
async fn the_status_page_renders_in_a_headless_browser() {
    let Some(browser) = chromium() else {
        return;
    };
    let server = Server::spawn().await;
    let mut bob = Bob::connect(server.control).await;
    // a running server tunnel with keys
    bob.ok("setnick web").await;
    let dest = bob.ok("newkeys").await;
    let dest = dest
        .strip_prefix("OK ")
        .expect("newkeys answers the destination");
    let b32 = keytools::Destination::from_base64(dest)
        .expect("destination")
        .b32();
    bob.ok("outhost 127.0.0.1").await;
    bob.ok(&format!("outport {}", support::free_port())).await;
    bob.ok("start").await;
    // a stopped client tunnel whose name is markup
    bob.ok("setnick <b>bold</b>&co").await;
    bob.ok("inport 2827").await;

    let profile = std::env::temp_dir().join(format!("bob-chromium-{}", std::process::id()));
    let url = format!("http://{}/", server.metrics);
    let dom = headless(&browser, &profile, &["--dump-dom"], &url).await;
    assert!(dom.contains("<td class=\"nick\">web</td>"), "{dom}");
    assert!(
        dom.contains("<span class=\"state running\">RUNNING</span>"),
        "{dom}"
    );
    assert!(dom.contains(&format!("<code>{b32}</code>")), "{dom}");
    // the markup nickname is text, not elements
    assert!(
        dom.contains("<td class=\"nick\">&lt;b&gt;bold&lt;/b&gt;&amp;co</td>"),
        "{dom}"
    );
    assert!(!dom.contains("<b>"), "{dom}");
    assert!(
        dom.contains("<span class=\"state stopped\">STOPPED</span>"),
        "{dom}"
    );
    assert!(dom.contains("2 tunnels, 1 running"), "{dom}");
    assert_eq!(dom.matches("<svg class=\"chart\"").count(), 2, "{dom}");

    let shot = std::env::var("BOB_STATUS_SCREENSHOT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| profile.join("status.png"));
    let shot = std::path::absolute(&shot).expect("screenshot path");
    headless(
        &browser,
        &profile,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,360",
        ],
        &url,
    )
    .await;
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 4096);
    let _ = std::fs::remove_dir_all(&profile);
}
