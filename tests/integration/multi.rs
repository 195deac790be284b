//! Several control connections on one registry (Java's global database + cursor).

use bob_codec::Dialect;
use bob_integration_tests::{BobClient, start_server};

#[tokio::test]
async fn entries_are_global_at_once() {
    let server = start_server(Dialect::Java).await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    a.expect("setnick shared", "OK Nickname set to shared")
        .await;
    assert_eq!(b.list().await.len(), 1);
    assert!(
        b.cmd("status shared")
            .await
            .starts_with("OK DATA NICKNAME: shared ")
    );
    b.expect("getnick shared", "OK Nickname set to shared")
        .await;
    // B selected before A made keys: B sees them anyway (no stale per-connection flags)
    let dest = a.ok_text("newkeys").await;
    b.expect("getdest", &format!("OK {dest}")).await;
    b.expect("outport 4567", "OK outbound port set").await;
    assert!(a.cmd("show").await.contains(" OUTPORT: 4567 "));
    // B clears it; A's cursor now points at nothing
    b.expect("clear", "OK cleared").await;
    a.expect("show", "ERROR no nickname has been set").await;
    a.expect("inport 1", "ERROR no nickname has been set").await;
    server.stop().await;
}

#[tokio::test]
async fn setnick_replaces_inactive_entry() {
    let server = start_server(Dialect::Java).await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    a.new_tunnel("x").await;
    a.expect("inport 5555", "OK inbound port set").await;
    b.expect("setnick x", "OK Nickname set to x").await;
    // a fresh entry: keys and ports are gone, for A too
    a.expect("getdest", "ERROR keys not set.").await;
    assert_eq!(
        b.list().await,
        vec!["NICKNAME: x STARTING: false RUNNING: false STOPPING: false KEYS: false QUIET: false INPORT: not_set INHOST: localhost OUTPORT: not_set OUTHOST: localhost".to_owned()]
    );
    server.stop().await;
}

/// A client that opens a new connection for every step (getnick, one setter, quit).
#[tokio::test]
async fn one_connection_per_step() {
    let server = start_server(Dialect::Java).await;
    async fn step(addr: std::net::SocketAddr, nick: &str, line: &str) -> String {
        let mut c = BobClient::connect(addr).await;
        c.expect(
            &format!("getnick {nick}"),
            &format!("OK Nickname set to {nick}"),
        )
        .await;
        let reply = c.cmd(line).await;
        c.expect("quit", "OK Bye!").await;
        c.expect_eof().await;
        reply
    }
    let mut first = server.client().await;
    first
        .expect("setnick steps", "OK Nickname set to steps")
        .await;
    first.expect("quit", "OK Bye!").await;

    let dest = step(server.addr, "steps", "newkeys").await;
    assert!(
        dest.starts_with("OK ") && dest.len() == 3 + 516 + 1,
        "{dest}"
    );
    assert_eq!(
        step(server.addr, "steps", "inhost 127.0.0.1").await,
        "OK inhost set\n"
    );
    let port = bob_integration_tests::free_port();
    assert_eq!(
        step(server.addr, "steps", &format!("inport {port}")).await,
        "OK inbound port set\n"
    );
    assert_eq!(
        step(server.addr, "steps", "option inbound.quantity=2").await,
        "OK inbound.quantity set to 2\n"
    );
    assert_eq!(
        step(server.addr, "steps", "start").await,
        "OK tunnel starting\n"
    );
    // the tunnel keeps running after its starter quit
    let mut watcher = server.client().await;
    let status = watcher.cmd("status steps").await;
    assert!(status.contains(" RUNNING: true "), "{status}");
    assert!(status.contains(&format!(" INPORT: {port} ")), "{status}");
    // setters refuse while running, from any connection
    assert_eq!(
        step(server.addr, "steps", "inport 1").await,
        "ERROR tunnel is active\n"
    );
    assert_eq!(
        step(server.addr, "steps", "newkeys").await,
        "ERROR tunnel is active\n"
    );
    assert_eq!(
        step(server.addr, "steps", "clear").await,
        "ERROR tunnel is active\n"
    );
    assert_eq!(
        step(server.addr, "steps", "start").await,
        "ERROR tunnel is active\n"
    );
    assert_eq!(
        step(server.addr, "steps", "stop").await,
        "OK tunnel stopping\n"
    );
    watcher
        .wait_status("steps", "STARTING: false RUNNING: false STOPPING: false")
        .await;
    assert_eq!(
        step(server.addr, "steps", "stop").await,
        "ERROR tunnel is inactive\n"
    );
    assert_eq!(step(server.addr, "steps", "clear").await, "OK cleared\n");
    assert!(watcher.list().await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn setnick_of_active_entry_deselects() {
    let server = start_server(Dialect::Java).await;
    let mut a = server.client().await;
    a.new_tunnel("busy").await;
    a.expect("outport 9", "OK outbound port set").await;
    a.expect("start", "OK tunnel starting").await;
    let mut b = server.client().await;
    b.new_tunnel("other").await;
    b.expect("setnick busy", "ERROR tunnel is active").await;
    // B is left with no selection, so it cannot edit "other" by accident
    b.expect("inport 1", "ERROR no nickname has been set").await;
    b.expect("getnick busy", "OK Nickname set to busy").await;
    b.expect("stop", "OK tunnel stopping").await;
    b.wait_status("busy", "STARTING: false RUNNING: false STOPPING: false")
        .await;
    // after stop the entry is inactive again: setters and clear work
    a.expect("outport 10", "OK outbound port set").await;
    a.expect("clear", "OK cleared").await;
    server.stop().await;
}
