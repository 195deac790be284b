//! UDP tunnels end to end: a server on the local backend driven over BOB, real UDP
//! sockets on 127.0.0.1, unmodified UDP applications on both ends.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bob_codec::Dialect;
use bob_integration_tests::{
    BobClient as Bob, TestServer, start_server, start_server_with, test_config, within,
};
use bob_server::backend::StreamingCore;
use bob_server::backend::local::LocalCore;
use bob_server::tunnel::udp::header;
use keytools::Destination;
use tokio::net::UdpSocket;

/// An unmodified UDP echo server: answers every datagram to its sender, `echo:` first.
async fn echo_server() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let mut reply = b"echo:".to_vec();
            reply.extend_from_slice(&buf[..n]);
            let _ = socket.send_to(&reply, from).await;
        }
    });
    port
}

async fn recv_from(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 65_536];
    let (n, from) = within("a datagram arrives", socket.recv_from(&mut buf))
        .await
        .unwrap();
    buf.truncate(n);
    (buf, from)
}

async fn recv(socket: &UdpSocket) -> Vec<u8> {
    recv_from(socket).await.0
}

/// `setnick`, `newkeys`, `settunneltype udp`, then `commands`; returns the destination.
async fn udp_tunnel(c: &mut Bob, nick: &str, commands: &[String]) -> String {
    let dest = c.new_tunnel(nick).await;
    c.expect("settunneltype udp", "OK tunnel type set to UDP")
        .await;
    for command in commands {
        let reply = c.cmd(command).await;
        assert!(reply.starts_with("OK"), "{command}: {reply}");
    }
    dest
}

/// Starts the selected tunnel on a free UDP inport (retrying a lost port race);
/// returns the inport.
async fn start_udp_inbound(c: &mut Bob, nick: &str) -> u16 {
    for _ in 0..5 {
        let port = {
            let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        c.expect(&format!("inport {port}"), "OK inbound port set")
            .await;
        let reply = c.cmd("start").await;
        if reply.eq_ignore_ascii_case("OK tunnel starting\n") {
            c.wait_status(nick, "RUNNING: true").await;
            return port;
        }
        assert!(reply.starts_with("ERROR starting tunnel: "), "{reply}");
    }
    panic!("no free UDP port");
}

async fn start(c: &mut Bob, nick: &str) {
    let reply = c.cmd("start").await;
    assert!(
        reply.eq_ignore_ascii_case("OK tunnel starting\n"),
        "{reply}"
    );
    c.wait_status(nick, "RUNNING: true").await;
}

fn b32_of(b64: &str) -> String {
    Destination::from_base64(b64).unwrap().b32()
}

/// `stats <nick>` as key -> value.
async fn stats(c: &mut Bob, nick: &str) -> std::collections::HashMap<String, String> {
    let line = c.cmd(&format!("stats {nick}")).await;
    line.trim_end()
        .split(' ')
        .filter_map(|t| t.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[tokio::test]
async fn echo_behind_a_quiet_server_keeps_two_clients_apart() {
    let server = start_server(Dialect::Java).await;
    let mut c = server.client().await;
    let echo = echo_server().await;
    let srv = udp_tunnel(
        &mut c,
        "srv",
        &[
            "outhost 127.0.0.1".into(),
            format!("outport {echo}"),
            "quiet true".into(),
        ],
    )
    .await;
    start(&mut c, "srv").await;
    udp_tunnel(&mut c, "cli", &[format!("option bob.udp.dest={srv}")]).await;
    let inport = start_udp_inbound(&mut c, "cli").await;
    let status = c.cmd("status cli").await;
    assert!(
        status.ends_with(&format!(" TUNNELTYPE: UDP UDPDEST: {}\n", b32_of(&srv))),
        "{status}"
    );

    let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = SocketAddr::from(([127, 0, 0, 1], inport));
    for round in 0..20 {
        a.send_to(format!("a{round}").as_bytes(), to).await.unwrap();
        b.send_to(format!("b{round}").as_bytes(), to).await.unwrap();
        let (got, from) = recv_from(&a).await;
        assert_eq!(got, format!("echo:a{round}").into_bytes());
        assert_eq!(from, to, "replies come from the inport");
        assert_eq!(recv(&b).await, format!("echo:b{round}").into_bytes());
    }
    let cli = stats(&mut c, "cli").await;
    assert_eq!(cli["udp_sent"], "40");
    assert_eq!(cli["udp_received"], "40");
    assert_eq!(cli["udp_dropped"], "0");
    assert_eq!(cli["udp_peers"], "2");
    assert_eq!(stats(&mut c, "srv").await["udp_peers"], "2");

    // a TCP tunnel's status line is unchanged
    c.new_tunnel("tcp").await;
    let tcp = c.cmd("status tcp").await;
    assert!(tcp.trim_end().ends_with("OUTHOST: localhost"), "{tcp}");
    server.stop().await;
}

#[tokio::test]
async fn header_mode_round_trip_with_quiet_false() {
    let server = start_server(Dialect::Java).await;
    let mut c = server.client().await;
    let app = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let app_port = app.local_addr().unwrap().port();
    let srv = udp_tunnel(
        &mut c,
        "srv",
        &["outhost 127.0.0.1".into(), format!("outport {app_port}")],
    )
    .await;
    start(&mut c, "srv").await;
    let cli = udp_tunnel(&mut c, "cli", &[]).await;
    let inport = start_udp_inbound(&mut c, "cli").await;
    assert!(c.cmd("status cli").await.ends_with(" UDPDEST: not_set\n"));
    let to = SocketAddr::from(([127, 0, 0, 1], inport));
    let me = UdpSocket::bind("127.0.0.1:0").await.unwrap();

    // by b32, with options after the destination, then by base64
    let mut wire = format!("{} TO_PORT=0\n", b32_of(&srv)).into_bytes();
    wire.extend_from_slice(b"hello");
    me.send_to(&wire, to).await.unwrap();
    let (got, from) = recv_from(&app).await;
    assert_eq!(got, [format!("{cli}\n").as_bytes(), b"hello"].concat());
    me.send_to(&[format!("{srv}\n").as_bytes(), b"again"].concat(), to)
        .await
        .unwrap();
    assert_eq!(
        recv(&app).await,
        [format!("{cli}\n").as_bytes(), b"again"].concat()
    );
    // the application answers the peer named on the first line
    app.send_to(&[format!("{cli}\n").as_bytes(), b"world"].concat(), from)
        .await
        .unwrap();
    let got = recv(&me).await;
    let (head, payload) = header::parse(&got).unwrap();
    assert_eq!(
        head.target,
        header::HeaderTarget::Destination(Destination::from_base64(&srv).unwrap())
    );
    assert_eq!(payload, b"world");
    // a datagram without a header is dropped and counted
    me.send_to(b"no header", to).await.unwrap();
    bob_integration_tests::poll_until("malformed counted", || {
        let addr = server.addr;
        async move {
            let mut c = Bob::connect(addr).await;
            (stats(&mut c, "cli").await["udp_dropped_malformed"] == "1").then_some(())
        }
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn raw_datagrams_arrive_without_a_sender() {
    let server = start_server(Dialect::Java).await;
    let mut c = server.client().await;
    let app = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let app_port = app.local_addr().unwrap().port();
    let srv = udp_tunnel(
        &mut c,
        "srv",
        &["outhost 127.0.0.1".into(), format!("outport {app_port}")],
    )
    .await;
    start(&mut c, "srv").await;
    udp_tunnel(
        &mut c,
        "cli",
        &[
            format!("option bob.udp.dest={}", b32_of(&srv)),
            "option bob.udp.style=raw".into(),
        ],
    )
    .await;
    let inport = start_udp_inbound(&mut c, "cli").await;
    let me = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    me.send_to(b"one-way", ("127.0.0.1", inport)).await.unwrap();
    // quiet false, but a raw datagram has no sender to put on a first line
    assert_eq!(recv(&app).await, b"one-way");
    assert_eq!(stats(&mut c, "srv").await["udp_peers"], "0");
    server.stop().await;
}

#[tokio::test]
async fn a_busy_port_bad_options_and_type_changes_while_active() {
    let server = start_server(Dialect::Java).await;
    let mut c = server.client().await;
    udp_tunnel(&mut c, "cli", &["option bob.udp.dest=peer.i2p".into()]).await;
    c.expect(
        "option bob.udp.style=datagram2",
        "ERROR bob.udp.style must be repliable, raw or hybrid, not \"datagram2\"",
    )
    .await;
    c.expect(
        "option bob.udp.maxsize=70000",
        "ERROR bob.udp.maxsize must be a number from 1 to 65000, not \"70000\"",
    )
    .await;
    c.expect(
        "option bob.udp.bogus=1",
        "ERROR unknown option bob.udp.bogus (known: bob.udp.dest, bob.udp.style, bob.udp.maxsize, bob.udp.idle, bob.udp.rate)",
    )
    .await;
    // nothing of a refused `option` line is kept
    assert!(!c.cmd("status cli").await.contains("bogus"));
    let taken = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = taken.local_addr().unwrap().port();
    c.expect(&format!("inport {port}"), "OK inbound port set")
        .await;
    let reply = c.cmd("start").await;
    assert!(
        reply.starts_with("ERROR starting tunnel: Address already in use"),
        "{reply}"
    );
    drop(taken);
    start_udp_inbound(&mut c, "cli").await;
    c.expect("settunneltype tcp", "ERROR tunnel is active")
        .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_paced_datagrams_none_lost() {
    let core = LocalCore::new();
    let shared: Arc<dyn StreamingCore> = Arc::new(core.clone());
    let server: TestServer = start_server_with(test_config(Dialect::Java), shared).await;
    let mut c = server.client().await;
    let app = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // a receiver of bursts needs room for them (as the tunnel's own sockets have)
    socket2::SockRef::from(&app)
        .set_recv_buffer_size(4 << 20)
        .unwrap();
    let app_port = app.local_addr().unwrap().port();
    let srv = udp_tunnel(
        &mut c,
        "srv",
        &[
            "outhost 127.0.0.1".into(),
            format!("outport {app_port}"),
            "quiet true".into(),
        ],
    )
    .await;
    start(&mut c, "srv").await;
    udp_tunnel(
        &mut c,
        "cli",
        &[
            format!("option bob.udp.dest={srv}"),
            "option bob.udp.rate=5000".into(),
        ],
    )
    .await;
    let inport = start_udp_inbound(&mut c, "cli").await;
    const N: u32 = 10_000;
    let receiver = tokio::spawn(async move {
        let mut seen = HashSet::new();
        let mut buf = vec![0u8; 2048];
        while seen.len() < N as usize {
            let Ok(n) = tokio::time::timeout(Duration::from_secs(5), app.recv(&mut buf)).await
            else {
                break;
            };
            let n = n.unwrap();
            assert_eq!(n, 1024);
            seen.insert(u32::from_be_bytes(buf[..4].try_into().unwrap()));
        }
        seen.len()
    });
    let me = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    me.connect(("127.0.0.1", inport)).await.unwrap();
    // the application paces itself below the tunnel's rate (4,000/s vs 5,000/s)
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut payload = vec![0x5Au8; 1024];
    for i in 0..N {
        if i % 40 == 0 {
            tick.tick().await;
        }
        payload[..4].copy_from_slice(&i.to_be_bytes());
        me.send(&payload).await.unwrap();
    }
    let got = receiver.await.unwrap();
    let cli = stats(&mut c, "cli").await;
    let srv = stats(&mut c, "srv").await;
    assert_eq!(
        got,
        N as usize,
        "client {cli:?}, server {srv:?}, lost by the network {}",
        core.datagrams_lost()
    );
    assert_eq!(cli["udp_sent"], N.to_string());
    assert_eq!(cli["udp_dropped"], "0");
    assert_eq!(core.datagrams_lost(), 0);
    server.stop().await;
}
