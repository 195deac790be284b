//! `zap`, server shutdown, and the connection limit.

use bob_codec::Dialect;
use bob_integration_tests::{
    BobClient, local_core, poll_until, start_server, start_server_with, test_config, within,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Starts an inbound-only tunnel `t` and returns its port.
async fn running_tunnel(c: &mut BobClient) -> u16 {
    c.new_tunnel("t").await;
    c.expect("inhost 127.0.0.1", "OK inhost set").await;
    c.start_inbound().await
}

async fn wait_refused(what: &str, addr: (&str, u16)) {
    poll_until(what, || async {
        TcpStream::connect(addr).await.is_err().then_some(())
    })
    .await;
}

#[tokio::test]
async fn zap_waits_for_other_connections() {
    let server = start_server(Dialect::Java).await;
    let addr = server.addr;
    let mut a = server.client().await;
    let mut b = server.client().await;
    let inport = running_tunnel(&mut b).await;
    a.expect("zap", "OK Bye!").await;
    a.expect_eof().await;
    // no new control connections
    wait_refused("control port closed", ("127.0.0.1", addr.port())).await;
    // the other connection keeps working, the tunnel keeps running
    assert_eq!(b.list().await.len(), 1);
    TcpStream::connect(("127.0.0.1", inport))
        .await
        .expect("tunnel still listening");
    // once the last connection ends, tunnels stop and the server returns
    b.expect("quit", "OK Bye!").await;
    server.wait_exit().await;
    wait_refused("inport closed", ("127.0.0.1", inport)).await;
}

#[tokio::test]
async fn shutdown_closes_connections_and_stops_tunnels() {
    let server = start_server(Dialect::I2pd).await;
    let mut a = server.client().await;
    let inport = running_tunnel(&mut a).await;
    server.shutdown.cancel();
    a.expect_eof().await;
    server.wait_exit().await;
    wait_refused("inport closed", ("127.0.0.1", inport)).await;
}

#[tokio::test]
async fn connection_limit() {
    let mut config = test_config(Dialect::Java);
    config.max_connections = 2;
    let server = start_server_with(config, local_core()).await;
    let mut a = server.client().await;
    let _b = server.client().await;
    let mut c = BobClient::connect_raw(server.addr).await;
    assert_eq!(c.read_line().await, "ERROR too many connections\n");
    c.expect_eof().await;
    // a slot frees up when a connection ends
    a.expect("quit", "OK Bye!").await;
    a.expect_eof().await;
    let mut d = poll_until("a free slot", || async {
        let mut d = BobClient::connect_raw(server.addr).await;
        let first = d.read_line().await;
        (first == "BOB 00.00.10\n").then_some(d)
    })
    .await;
    assert_eq!(d.read_line().await, "OK\n");
    d.expect("list", "OK Listing done").await;
    server.stop().await;
}

/// A client that never reads its replies cannot hold up shutdown: the server is stuck
/// writing a reply far larger than the socket buffers when the shutdown comes.
#[tokio::test]
async fn shutdown_with_a_client_that_does_not_read() {
    let server = start_server(Dialect::Java).await;
    let mut c = server.client().await;
    // 500 tunnels with 200-character names: each `list` reply is about 190 KB
    let mut batch = String::new();
    for i in 0..500 {
        batch.push_str(&format!("setnick {i:0>200}\n"));
    }
    c.send_raw(batch.as_bytes()).await;
    for _ in 0..500 {
        assert!(c.read_line().await.starts_with("OK Nickname set to "));
    }

    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .set_recv_buffer_size(4096)
        .expect("small receive buffer");
    let mut raw = within("connect", socket.connect(server.addr))
        .await
        .expect("connect");
    let mut greeting = [0u8; 16];
    within("greeting", raw.read_exact(&mut greeting))
        .await
        .expect("greeting");
    // 60 replies, about 11 MB: more than any send buffer the kernel grants (tcp_wmem max 4 MB)
    raw.write_all("list\n".repeat(60).as_bytes())
        .await
        .expect("requests");
    // the first reply bytes have arrived: the server is inside the writes now
    let mut peek = [0u8; 1];
    within("reply starts", raw.peek(&mut peek))
        .await
        .expect("peek");
    server.shutdown.cancel();
    server.wait_exit().await;
    drop(raw);
}
