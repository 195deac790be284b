//! Tunnels on the local backend, set up purely through BOB commands.

use std::net::SocketAddr;

use bob_codec::Dialect;
use bob_integration_tests::{
    BobClient, TestServer, echo_app, local_core_with_hosts, pattern, start_server,
    start_server_with, test_config, within,
};
use keytools::Destination;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TEN_MIB: usize = 10 * 1024 * 1024;

/// Connects to an inbound tunnel, names the target, sends `data`, returns the echo.
async fn round_trip(inport: u16, target: &str, data: &[u8]) -> Vec<u8> {
    let sock = within("connect inport", TcpStream::connect(("127.0.0.1", inport)))
        .await
        .expect("connect to inport");
    let (mut r, mut w) = sock.into_split();
    let head = format!("{target}\n");
    let data_owned = data.to_vec();
    let writer = tokio::spawn(async move {
        w.write_all(head.as_bytes()).await.expect("write dest line");
        w.write_all(&data_owned).await.expect("write data");
        w.shutdown().await.expect("half-close");
    });
    let mut back = Vec::with_capacity(data.len());
    within("echo", r.read_to_end(&mut back))
        .await
        .expect("read echo");
    writer.await.expect("writer");
    back
}

/// Sets up a server tunnel `srv` (outbound to the echo app) and a client tunnel `cli`
/// (inbound on a fresh port); returns (srv dest, cli dest, inport).
async fn tunnel_pair(c: &mut BobClient, echo: SocketAddr, quiet: bool) -> (String, String, u16) {
    let srv = c.new_tunnel("srv").await;
    c.expect("outhost 127.0.0.1", "OK outhost set").await;
    c.expect(&format!("outport {}", echo.port()), "OK outbound port set")
        .await;
    c.expect(&format!("quiet {quiet}"), "OK Quiet set").await;
    let started = c.cmd("start").await;
    assert!(
        started.eq_ignore_ascii_case("OK tunnel starting\n"),
        "{started}"
    );
    let cli = c.new_tunnel("cli").await;
    c.expect("inhost 127.0.0.1", "OK inhost set").await;
    let port = c.start_inbound().await;
    (srv, cli, port)
}

#[tokio::test]
async fn echo_ten_mib_not_quiet() {
    let server = start_server(Dialect::Java).await;
    let mut c = server.client().await;
    let (echo, mut peers) = echo_app(false).await;
    let (srv, cli, inport) = tunnel_pair(&mut c, echo, false).await;
    // connect the instant start has answered
    let data = pattern(TEN_MIB);
    let back = round_trip(inport, &srv, &data).await;
    assert!(back == data, "echo differs (got {} bytes)", back.len());
    // the server application saw the client tunnel's destination first, LF-terminated
    let peer = within("peer line", peers.recv()).await.expect("peer line");
    assert_eq!(peer, format!("{cli}\n"));
    let status = c.cmd("status cli").await;
    assert!(status.contains(&format!("RUNNING: true STOPPING: false KEYS: true QUIET: false INPORT: {inport} INHOST: 127.0.0.1")), "{status}");
    server.stop().await;
}

#[tokio::test]
async fn echo_quiet() {
    let server = start_server(Dialect::I2pd).await;
    let mut c = server.client().await;
    let (echo, _peers) = echo_app(true).await;
    let (srv, _cli, inport) = tunnel_pair(&mut c, echo, true).await;
    let data = pattern(TEN_MIB);
    // quiet: the application gets the data only, so the echo is byte-exact
    let back = round_trip(inport, &srv, &data).await;
    assert!(back == data, "echo differs (got {} bytes)", back.len());
    assert!(c.cmd("status srv").await.contains(" QUIET: true "));
    server.stop().await;
}

fn temp_hosts(contents: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "bob-hosts-{}-{}.txt",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, contents).expect("write hosts file");
    path
}

#[tokio::test]
async fn lookups_by_name_and_b32() {
    // keys made up front so the hosts file can name them
    let first = start_server(Dialect::Java).await;
    let mut k = first.client().await;
    let srv_dest = k.new_tunnel("tmp").await;
    let srv_keys = k.ok_text("getkeys").await;
    first.stop().await;

    let hosts = temp_hosts(&format!("# test hosts\nechoserver.i2p={srv_dest}\n"));
    let server = start_server_with(
        test_config(Dialect::Java),
        local_core_with_hosts(Some(&hosts)),
    )
    .await;
    let _ = std::fs::remove_file(&hosts);
    let mut c = server.client().await;
    c.expect("lookup echoserver.i2p", &format!("OK {srv_dest}"))
        .await;
    c.expect("lookup nosuch.i2p", "ERROR Address Not found.")
        .await;
    c.expect("lookup notaname", "ERROR Address Not found.")
        .await;
    c.expect("lookuplocal echoserver.i2p", &format!("OK {srv_dest}"))
        .await;

    let (echo, _peers) = echo_app(true).await;
    c.expect("setnick srv", "OK Nickname set to srv").await;
    c.expect(&format!("setkeys {srv_keys}"), &format!("OK {srv_dest}"))
        .await;
    c.expect(&format!("outport {}", echo.port()), "OK outbound port set")
        .await;
    c.expect("outhost 127.0.0.1", "OK outhost set").await;
    c.expect("quiet true", "OK Quiet set").await;
    c.expect("start", "OK tunnel starting").await;

    let b32 = Destination::from_base64(&srv_dest)
        .expect("dest parses")
        .b32();
    c.expect(&format!("lookup {b32}"), &format!("OK {srv_dest}"))
        .await;
    c.expect(
        &format!(
            "lookup {}",
            b32.to_uppercase().replace(".B32.I2P", ".b32.i2p")
        ),
        &format!("OK {srv_dest}"),
    )
    .await;

    // i2pd's ping, through the selected running tunnel
    for target in [b32.as_str(), "echoserver.i2p", srv_dest.as_str()] {
        let pong = c.cmd(&format!("ping {target}")).await;
        assert!(
            pong.starts_with(&format!("OK pong from {b32}: time=")),
            "{pong}"
        );
        assert!(pong.ends_with(" ms\n"), "{pong}");
    }
    c.expect("ping nosuch.i2p", "ERROR Address Not found.")
        .await;
    c.expect("ping garbage", "ERROR Address Not found.").await;

    c.new_tunnel("cli").await;
    c.expect("ping echoserver.i2p", "ERROR No local destination")
        .await;
    c.expect("inhost 127.0.0.1", "OK inhost set").await;
    let inport = c.start_inbound().await;
    let data = pattern(64 * 1024);
    assert!(round_trip(inport, "echoserver.i2p", &data).await == data);
    assert!(round_trip(inport, &b32, &data).await == data);
    server.stop().await;
}

#[tokio::test]
async fn stop_start_clear_cycles() {
    let server = start_server(Dialect::Java).await;
    let mut c = server.client().await;
    let (echo, _peers) = echo_app(true).await;
    let (srv, _cli, _) = tunnel_pair(&mut c, echo, true).await;
    let data = pattern(4096);
    for round in 0..3 {
        c.expect("getnick cli", "OK Nickname set to cli").await;
        c.expect("stop", "OK tunnel stopping").await;
        c.wait_status("cli", "STARTING: false RUNNING: false STOPPING: false")
            .await;
        c.expect("stop", "ERROR tunnel is inactive").await;
        // inactive again: setters work, and the tunnel starts on a new port
        c.expect("quiet false", "OK Quiet set").await;
        let inport = c.start_inbound().await;
        assert!(
            round_trip(inport, &srv, &data).await == data,
            "round {round}"
        );
    }
    c.expect("stop", "OK tunnel stopping").await;
    c.wait_status("cli", "STARTING: false RUNNING: false STOPPING: false")
        .await;
    c.expect("clear", "OK cleared").await;
    c.expect("getnick srv", "OK Nickname set to srv").await;
    c.expect("stop", "OK tunnel stopping").await;
    c.wait_status("srv", "STARTING: false RUNNING: false STOPPING: false")
        .await;
    c.expect("clear", "OK cleared").await;
    assert!(c.list().await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn start_on_a_busy_port() {
    for (dialect, ok) in [
        (Dialect::Java, "OK tunnel starting"),
        (Dialect::I2pd, "OK Tunnel starting"),
    ] {
        let server = start_server(dialect).await;
        let mut c = server.client().await;
        let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = busy.local_addr().expect("addr").port();
        c.new_tunnel("b").await;
        c.expect("inhost 127.0.0.1", "OK inhost set").await;
        c.expect(&format!("inport {port}"), "OK inbound port set")
            .await;
        let reply = c.cmd("start").await;
        assert!(reply.starts_with("ERROR starting tunnel: "), "{reply}");
        assert!(reply.to_lowercase().contains("in use"), "{reply}");
        // nothing is left half-started
        c.wait_status("b", "STARTING: false RUNNING: false STOPPING: false")
            .await;
        drop(busy);
        c.expect("start", ok).await;
        c.expect("stop", &ok.replace("starting", "stopping")).await;
        server.stop().await;
    }
}

#[tokio::test]
async fn unknown_inhost_fails_start() {
    let server: TestServer = start_server(Dialect::Java).await;
    let mut c = server.client().await;
    c.new_tunnel("h").await;
    c.expect("inhost no-such-host.invalid", "OK inhost set")
        .await;
    c.expect("inport 4000", "OK inbound port set").await;
    let reply = c.cmd("start").await;
    assert!(reply.starts_with("ERROR starting tunnel: "), "{reply}");
    c.wait_status("h", "STARTING: false RUNNING: false STOPPING: false")
        .await;
    server.stop().await;
}
