//! UDP tunnels end to end over the SAM backend on a real router (Debian's i2pd 2.45 run
//! offline by `scripts/test.sh`; environment as in [`super::sam_i2pd`]): unmodified UDP
//! applications on both ends, tunnels set up with BOB commands.
//!
//! Three tunnels (three `SESSION CREATE`s, started in parallel: ~20 s on i2pd 2.45):
//! - `echo`: a `quiet true` server tunnel in front of an unmodified UDP echo server;
//! - `cli`: a client tunnel with `bob.udp.dest` = `echo` (transparent mode);
//! - `hdr`: a client tunnel without it (header mode: `<dest>\n` + payload).
//!
//! i2pd 2.45 speaks SAM 3.1, which has no I2CP ports: every datagram arrives with ports
//! 0, so one conversation per client tunnel and peer is what such a router can carry
//! (two local clients of `cli` cannot be told apart there; emissary can).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bob_codec::Dialect;
use bob_integration_tests::{BobClient as Bob, start_server_with, test_config};
use bob_server::backend::StreamingCore;
use bob_server::backend::sam::{SamConfig, SamCore};
use bob_server::tunnel::udp::header;
use keytools::Destination;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::sam_i2pd::env;

/// Bound on each wait for the router (a session takes ~20 s on i2pd 2.45).
const ROUTER_LIMIT: Duration = Duration::from_secs(150);

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

/// A free UDP port on 127.0.0.1 (the tunnel binds it at `start`).
fn free_udp_port() -> u16 {
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

/// `setnick`, `newkeys`, `settunneltype udp`, the router's options, then `commands`;
/// returns the destination.
async fn udp_tunnel(c: &mut Bob, nick: &str, options: &[String], commands: &[String]) -> String {
    let dest = c.new_tunnel(nick).await;
    c.expect("settunneltype udp", "OK tunnel type set to UDP")
        .await;
    for command in options.iter().chain(commands) {
        let reply = c.cmd(command).await;
        assert!(reply.starts_with("OK"), "{command}: {reply}");
    }
    dest
}

/// Sends `wire` to `to` from `socket` until a datagram that `accept` takes comes back
/// (the first ones are lost while sessions and LeaseSets come up; answers to earlier
/// tries that arrive late are skipped), within [`ROUTER_LIMIT`].
async fn until_answered_by(
    socket: &UdpSocket,
    to: SocketAddr,
    wire: &[u8],
    accept: impl Fn(&[u8]) -> bool,
) -> Vec<u8> {
    let deadline = Instant::now() + ROUTER_LIMIT;
    let mut buf = vec![0u8; 65_536];
    while Instant::now() < deadline {
        socket.send_to(wire, to).await.unwrap();
        let wait = Instant::now() + Duration::from_secs(1);
        while let Ok(Ok((n, _))) = tokio::time::timeout_at(wait, socket.recv_from(&mut buf)).await {
            if accept(&buf[..n]) {
                return buf[..n].to_vec();
            }
        }
    }
    panic!("no answer through the tunnels within {ROUTER_LIMIT:?}");
}

/// [`until_answered_by`] for an echo of `data` (`echo:` + `data`).
async fn until_echoed(socket: &UdpSocket, to: SocketAddr, data: &[u8]) {
    let want = [b"echo:", data].concat();
    until_answered_by(socket, to, data, |got| got == want).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_tunnels_over_i2pd() {
    let Some(env) = env() else { return };
    let t0 = Instant::now();
    let mut sam = SamConfig::new(env.sam.clone());
    sam.session_timeout = ROUTER_LIMIT;
    let core: Arc<dyn StreamingCore> = Arc::new(SamCore::new(sam));
    let mut config = test_config(Dialect::Java);
    config.start_wait = Duration::ZERO;
    let server = start_server_with(config, core).await;
    let options: Vec<String> = env
        .options
        .iter()
        .map(|(k, v)| format!("option {k}={v}"))
        .collect();
    let echo = echo_server().await;

    let mut c = server.client().await;
    let srv = udp_tunnel(
        &mut c,
        "echo",
        &options,
        &[
            "outhost 127.0.0.1".into(),
            format!("outport {echo}"),
            "quiet true".into(),
            "option bob.udp.maxsize=31000".into(),
        ],
    )
    .await;
    let cli_port = free_udp_port();
    udp_tunnel(
        &mut c,
        "cli",
        &options,
        &[
            format!("option bob.udp.dest={srv}"),
            "option bob.udp.maxsize=31000".into(),
            "inhost 127.0.0.1".into(),
            format!("inport {cli_port}"),
        ],
    )
    .await;
    let hdr_port = free_udp_port();
    udp_tunnel(
        &mut c,
        "hdr",
        &options,
        &["inhost 127.0.0.1".into(), format!("inport {hdr_port}")],
    )
    .await;
    // the three sessions come up together (start answers at once, start-wait 0)
    for nick in ["echo", "cli", "hdr"] {
        c.expect(
            &format!("getnick {nick}"),
            &format!("OK Nickname set to {nick}"),
        )
        .await;
        c.expect("start", "OK tunnel starting").await;
    }

    // transparent: an unmodified client, an unmodified echo server
    let app = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let cli_in = SocketAddr::from(([127, 0, 0, 1], cli_port));
    until_echoed(&app, cli_in, b"hello").await;
    eprintln!("first echo through cli -> echo after {:?}", t0.elapsed());
    for i in 0..20 {
        until_echoed(&app, cli_in, format!("round {i}").as_bytes()).await;
    }
    // a datagram of 30,000 bytes goes through whole, both ways (anything else that
    // comes back of that size would be a cut or changed echo)
    let big: Vec<u8> = (0..30_000u32).map(|i| (i % 251) as u8).collect();
    let got = until_answered_by(&app, cli_in, &big, |got| got.len() > 1000).await;
    assert_eq!(got.len(), 5 + big.len());
    assert!(got[5..] == big[..], "30,000-byte echo changed");

    // header mode: the destination first, the answer names its sender
    let hdr_app = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let hdr_in = SocketAddr::from(([127, 0, 0, 1], hdr_port));
    let wire = [format!("{srv}\n").as_bytes(), b"via header"].concat();
    let got = until_answered_by(&hdr_app, hdr_in, &wire, |_| true).await;
    let (head, payload) = header::parse(&got).unwrap();
    assert_eq!(
        head.target,
        header::HeaderTarget::Destination(Destination::from_base64(&srv).unwrap())
    );
    assert_eq!(payload, b"echo:via header");
    // and by b32 name, resolved through the router
    let b32 = Destination::from_base64(&srv).unwrap().b32();
    let wire = [format!("{b32}\n").as_bytes(), b"by name"].concat();
    until_answered_by(&hdr_app, hdr_in, &wire, |got| {
        header::parse(got).is_ok_and(|(_, p)| p == b"echo:by name")
    })
    .await;

    for nick in ["cli", "hdr", "echo"] {
        c.expect(
            &format!("getnick {nick}"),
            &format!("OK Nickname set to {nick}"),
        )
        .await;
        c.expect("stop", "OK tunnel stopping").await;
    }
    server.stop().await;
    eprintln!("UDP tunnels over i2pd done after {:?}", t0.elapsed());
}
