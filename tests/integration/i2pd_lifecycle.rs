//! Tunnel lifecycle against a real i2pd that this test starts, kills and inspects
//! itself (issue 14): a `stop` during STARTING leaves no SAM session behind on the
//! router, and a router killed in the middle of a tunnel's session creation sends the
//! tunnel back to inactive with the reason kept, while the server stays healthy.
//!
//! The router is a private instance of Debian's i2pd (`scripts/start-i2pd-offline.sh`
//! on four free loopback ports, its own data directory), so killing it does not disturb
//! the shared router of `scripts/test.sh`. What the router holds is read from its web
//! console (`/?page=sam_sessions` lists every SAM session by id): i2pd's SAM bridge has
//! no command that lists sessions.
//!
//! Without i2pd the test fails under `CI=true` and otherwise says loudly that it did
//! not run.

use std::sync::Arc;
use std::time::Duration;

use bob_integration_tests::{start_server_with, test_config};
use bob_server::backend::sam::{SamConfig, SamCore};
use bob_server::config::Config;
use bob_testkit::{TestClient, free_port, poll_until, within_for};

use crate::own_i2pd::OwnI2pd;
use tokio::time::Instant;

/// Options i2pd 2.45 needs on one offline router (docs: real-router notes §1.1).
const I2PD_OFFLINE_OPTS: &str = "inbound.length=0 outbound.length=0 inbound.quantity=1 \
     outbound.quantity=1 i2cp.leaseSetType=1 i2cp.leaseSetEncType=0";

/// Bound on each wait for the router (i2pd 2.45 builds a session in ~20 s).
const ROUTER_LIMIT: Duration = Duration::from_secs(120);

/// A client's patience for one reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

async fn client(addr: std::net::SocketAddr) -> TestClient {
    let mut c = TestClient::connect(addr).await;
    c.set_deadline(REPLY_TIMEOUT);
    c
}

/// Client tunnel `nick` on a free inport, keys from `newkeys`, up to `start`.
async fn client_tunnel(c: &mut TestClient, nick: &str) -> u16 {
    c.expect(
        &format!("setnick {nick}"),
        &format!("OK Nickname set to {nick}"),
    )
    .await;
    c.ok_text("newkeys").await;
    c.expect("inhost 127.0.0.1", "OK inhost set").await;
    let port = free_port();
    c.expect(&format!("inport {port}"), "OK inbound port set")
        .await;
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_sessions_follow_the_tunnel_lifecycle() {
    let Some(router) = OwnI2pd::start() else {
        return;
    };
    let mut sam = SamConfig::new(router.sam_addr());
    sam.default_options = I2PD_OFFLINE_OPTS
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    // a stopped tunnel's session is closed at once (no parking for a fast restart):
    // what the router holds afterwards is what leaked
    sam.reuse_grace = Duration::ZERO;
    let mut config: Config = test_config(bob_codec::Dialect::Java);
    config.newkeys_sig = keytools::SigType::Ed25519;
    config.start_wait = Duration::from_secs(1);
    // --tunnel-option: the router's options over Java's defaults of every new tunnel
    config.default_options = bob_server::backend::sam::merge_options(
        &bob_server::config::java_default_options(),
        sam.default_options.clone(),
    );
    let server = start_server_with(config, Arc::new(SamCore::new(sam))).await;
    let mut c = client(server.addr).await;
    assert!(router.sam_sessions().await.is_empty());

    // 1. `stop` during STARTING: the creation is aborted, nothing is left on the router
    let inport = client_tunnel(&mut c, "aborted").await;
    c.expect("start", "OK tunnel starting").await;
    let line = c.line("status aborted").await;
    assert!(line.contains("STARTING: true RUNNING: false"), "{line}");
    // the router holds the session being created
    let pending = router.sam_sessions().await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    c.expect("stop", "OK tunnel stopping").await;
    within_for(
        REPLY_TIMEOUT,
        "inactive after stop",
        c.wait_status("aborted", "STARTING: false RUNNING: false STOPPING: false"),
    )
    .await;
    std::net::TcpListener::bind(("127.0.0.1", inport)).expect("inport released");
    // Started again at once with the same keys. i2pd drops a session whose control
    // socket closed during its creation only when the creation would have finished,
    // and would meanwhile share that doomed destination with a new session: the
    // server sees the abandoned creation through and closes it first, so the session
    // running now is a new one and the aborted one is gone.
    let stopped = Instant::now();
    c.expect("start", "OK tunnel starting").await;
    within_for(
        ROUTER_LIMIT,
        "running after the aborted start",
        c.wait_status("aborted", "RUNNING: true"),
    )
    .await;
    eprintln!(
        "stop during STARTING, start again: RUNNING {:.1} s after stop",
        stopped.elapsed().as_secs_f64()
    );
    let now = router.sam_sessions().await;
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now, pending, "the aborted session is still there");
    c.expect("stop", "OK tunnel stopping").await;
    c.wait_status("aborted", "STARTING: false RUNNING: false STOPPING: false")
        .await;
    poll_until("no session after stop", || async {
        router.sam_sessions().await.is_empty().then_some(())
    })
    .await;

    // 2. the router dies while a tunnel's session is being created
    let inport = client_tunnel(&mut c, "doomed").await;
    c.expect("start", "OK tunnel starting").await;
    let line = c.line("status doomed").await;
    assert!(line.contains("STARTING: true RUNNING: false"), "{line}");
    router.kill();
    within_for(
        REPLY_TIMEOUT,
        "inactive after the router died",
        c.wait_status("doomed", "STARTING: false RUNNING: false STOPPING: false"),
    )
    .await;
    let stats = c.line("stats doomed").await;
    assert!(stats.contains(" last_error_at="), "{stats}");
    let reason = stats.split(" last_error=").nth(1).unwrap_or_default();
    assert!(!reason.is_empty(), "{stats}");
    eprintln!("start failed after the router died: {reason}");
    std::net::TcpListener::bind(("127.0.0.1", inport)).expect("inport released");
    // `stop` and `clear` answer as for any inactive tunnel
    c.expect("stop", "ERROR tunnel is inactive").await;
    c.expect("clear", "OK cleared").await;
    // the server stays healthy: every client is answered, a new start fails fast
    let mut other = client(server.addr).await;
    let listed = other.list().await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    client_tunnel(&mut other, "later").await;
    let reply = other.line("start").await;
    assert!(reply.starts_with("ERROR starting tunnel: "), "{reply}");
    other
        .wait_status("later", "STARTING: false RUNNING: false STOPPING: false")
        .await;
    server.stop().await;
}
