//! Command sequences of real BOB clients, replayed line by line.

use bob_codec::Dialect;
use bob_integration_tests::{BobClient, free_port, start_server, within};
use std::time::Duration;

/// txi2p (`txi2p/bob/protocol.py`): one connection per job, `quit` after `start`, removal
/// with `clear` retried while the tunnel is still stopping.
#[tokio::test]
async fn txi2p_flows() {
    let server = start_server(Dialect::Java).await;
    let nick = "txi2p-4242";

    // server tunnel: list, setnick, newkeys, getkeys, outhost, outport, start, quit
    let mut c = server.client().await;
    assert!(c.list().await.is_empty());
    c.expect(
        &format!("setnick {nick}"),
        &format!("OK Nickname set to {nick}"),
    )
    .await;
    let dest = c.ok_text("newkeys").await;
    let keys = c.ok_text("getkeys").await;
    c.expect("outhost 127.0.0.1", "OK outhost set").await;
    c.expect("outport 45678", "OK outbound port set").await;
    c.expect("start", "OK tunnel starting").await;
    c.expect("quit", "OK Bye!").await;
    c.expect_eof().await;

    // the nickname exists: list, getnick, stop (it runs), getdest
    let mut c = server.client().await;
    let listed = c.list().await;
    assert_eq!(listed.len(), 1);
    assert!(listed[0].starts_with(&format!("NICKNAME: {nick} STARTING: false RUNNING: true ")));
    c.expect(
        &format!("getnick {nick}"),
        &format!("OK Nickname set to {nick}"),
    )
    .await;
    c.expect("stop", "OK tunnel stopping").await;
    c.expect("getdest", &format!("OK {dest}")).await;
    c.expect("quit", "OK Bye!").await;

    // removal: list, getnick, stop, clear retried on `tunnel is active`, quit
    let mut c = server.client().await;
    c.list().await;
    c.expect(
        &format!("getnick {nick}"),
        &format!("OK Nickname set to {nick}"),
    )
    .await;
    let stop = c.cmd("stop").await;
    assert!(
        stop == "ERROR tunnel is inactive\n" || stop == "OK tunnel stopping\n",
        "{stop}"
    );
    within("clear", async {
        loop {
            match c.cmd("clear").await.as_str() {
                "OK cleared\n" => break,
                "ERROR tunnel is active\n" => tokio::time::sleep(Duration::from_millis(5)).await,
                other => panic!("clear: {other:?}"),
            }
        }
    })
    .await;
    c.expect("quit", "OK Bye!").await;

    // client tunnel from stored keys: setnick, setkeys, getdest, inhost, inport, start, quit
    let mut c = server.client().await;
    c.expect(
        &format!("setnick {nick}"),
        &format!("OK Nickname set to {nick}"),
    )
    .await;
    c.expect(&format!("setkeys {keys}"), &format!("OK {dest}"))
        .await;
    c.expect("getdest", &format!("OK {dest}")).await;
    c.expect("inhost 127.0.0.1", "OK inhost set").await;
    let port = start_client(&mut c).await;
    c.expect("quit", "OK Bye!").await;
    assert!(server.client().await.cmd(&format!("status {nick}")).await.contains(&format!(
        "RUNNING: true STOPPING: false KEYS: true QUIET: false INPORT: {port} INHOST: 127.0.0.1 "
    )));
    server.stop().await;
}

async fn start_client(c: &mut BobClient) -> u16 {
    for _ in 0..5 {
        let port = free_port();
        c.expect(&format!("inport {port}"), "OK inbound port set")
            .await;
        let reply = c.cmd("start").await;
        if reply == "OK tunnel starting\n" {
            return port;
        }
        assert!(reply.starts_with("ERROR starting tunnel: "), "{reply}");
    }
    panic!("no free port");
}

/// bobcpp's README flow, one request line and one reply line at a time, in the i2pd
/// dialect, with CRLF line ends as telnet users send them.
#[tokio::test]
async fn bobcpp_flow_with_crlf() {
    let server = start_server(Dialect::I2pd).await;
    let mut c = server.client().await;
    c.send_raw(b"setnick bobcpp\r\n").await;
    assert_eq!(c.read_line().await, "OK Nickname set to bobcpp\n");
    c.send_raw(b"newkeys\r\n").await;
    assert!(c.read_line().await.starts_with("OK "));
    c.send_raw(b"inhost 127.0.0.1\r\n").await;
    assert_eq!(c.read_line().await, "OK inhost set\n");
    let port = free_port();
    c.send_raw(format!("inport {port}\r\n").as_bytes()).await;
    assert_eq!(c.read_line().await, "OK inbound port set\n");
    c.send_raw(b"start\r\n").await;
    let start = c.read_line().await;
    assert!(
        start == "OK Tunnel starting\n" || start.starts_with("ERROR starting tunnel: "),
        "{start}"
    );
    c.send_raw(b"status bobcpp\r\n").await;
    let status = c.read_line().await;
    assert!(
        status.starts_with("OK DATA NICKNAME: bobcpp STARTING: false "),
        "{status}"
    );
    c.send_raw(b"quit\r\n").await;
    assert_eq!(c.read_line().await, "OK Bye!\n");
    server.stop().await;
}
