//! UDP tunnels on the `local` backend with real UDP sockets on 127.0.0.1.

use std::sync::Mutex;

use bob_testkit::within;
use keytools::{CryptoType, PrivateKeys, SigType};

use super::*;
use crate::backend::Options;
use crate::backend::datagram::DatagramCore;
use crate::backend::local::LocalCore;

fn keys() -> PrivateKeys {
    PrivateKeys::generate(SigType::Ed25519, CryptoType::ElGamal).expect("key generation")
}

/// A spec as the registry makes it: `bob.*` options apart from the others.
fn spec(name: &str, options: &[(&str, &str)]) -> TunnelSpec {
    let (server_options, options) = options
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .partition(|(k, _)| crate::tunnel::is_server_option(k));
    TunnelSpec {
        nickname: name.to_owned(),
        keys: keys(),
        options,
        server_options,
        inbound: None,
        outbound: None,
        quiet: false,
    }
}

fn local(port: u16) -> Option<Endpoint> {
    Some(Endpoint {
        host: "127.0.0.1".into(),
        port,
    })
}

async fn start(core: &Arc<dyn StreamingCore>, spec: TunnelSpec) -> UdpTunnel {
    UdpTunnel::start(
        core.clone(),
        spec,
        TunnelLimits::default(),
        StartControl::detached(),
    )
    .await
    .expect("UDP tunnel starts")
}

/// An unmodified UDP echo server: answers every datagram to its sender with `echo:`
/// in front.
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

async fn recv(socket: &UdpSocket) -> Vec<u8> {
    let mut buf = vec![0u8; 65_536];
    let (n, _) = within("a datagram arrives", socket.recv_from(&mut buf))
        .await
        .unwrap();
    buf.truncate(n);
    buf
}

fn udp(tunnel: &UdpTunnel) -> UdpSnapshot {
    tunnel.stats().udp_snapshot().expect("UDP counters")
}

#[tokio::test]
async fn transparent_echo_keeps_conversations_apart() {
    let core: Arc<dyn StreamingCore> = Arc::new(LocalCore::new());
    let echo = echo_server().await;
    let mut server = spec("server", &[]);
    server.outbound = local(echo);
    server.quiet = true;
    let server = start(&core, server).await;
    let b32 = server.destination().b32();
    let mut client = spec("client", &[("bob.udp.dest", &b32)]);
    client.inbound = local(0);
    let client = start(&core, client).await;
    let inport = client.inbound_addr().unwrap();

    let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for round in 0..3 {
        a.send_to(format!("a{round}").as_bytes(), inport)
            .await
            .unwrap();
        b.send_to(format!("b{round}").as_bytes(), inport)
            .await
            .unwrap();
        assert_eq!(recv(&a).await, format!("echo:a{round}").into_bytes());
        assert_eq!(recv(&b).await, format!("echo:b{round}").into_bytes());
    }
    // two peers on the server (one per client source port), two conversations here
    assert_eq!(udp(&server).peers, 2);
    assert_eq!(udp(&client).peers, 2);
    assert_eq!((udp(&client).sent, udp(&client).received), (6, 6));
    assert_eq!(udp(&client).dropped(), 0);
    client.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn header_mode_round_trip_with_quiet_false() {
    let core: Arc<dyn StreamingCore> = Arc::new(LocalCore::new());
    // the application behind the server tunnel speaks the header itself
    let app = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut server = spec("server", &[]);
    server.outbound = local(app.local_addr().unwrap().port());
    let server = start(&core, server).await;
    let mut client = spec("client", &[]);
    client.inbound = local(0);
    let client = start(&core, client).await;
    let inport = client.inbound_addr().unwrap();

    let me = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut wire = format!("{}\n", server.destination().b32()).into_bytes();
    wire.extend_from_slice(b"ping");
    me.send_to(&wire, inport).await.unwrap();

    let mut buf = vec![0u8; 65_536];
    let (n, from) = within("server app hears", app.recv_from(&mut buf))
        .await
        .unwrap();
    let (head, payload) = header::parse(&buf[..n]).unwrap();
    assert_eq!(
        head.target,
        HeaderTarget::Destination(client.destination().clone())
    );
    assert_eq!(payload, b"ping");
    // the application answers with the peer's destination on the first line
    app.send_to(&header::format(client.destination(), b"pong"), from)
        .await
        .unwrap();
    let got = recv(&me).await;
    let (head, payload) = header::parse(&got).unwrap();
    assert_eq!(
        head.target,
        HeaderTarget::Destination(server.destination().clone())
    );
    assert_eq!(payload, b"pong");

    // malformed and oversize datagrams are dropped and counted
    me.send_to(b"no header here", inport).await.unwrap();
    let mut big = header::format(server.destination(), &[]);
    big.extend_from_slice(&vec![0u8; options::DEFAULT_MAXSIZE + 1]);
    me.send_to(&big, inport).await.unwrap();
    me.send_to(b"nobody.i2p\nx", inport).await.unwrap();
    bob_testkit::poll_until("drops counted", || async {
        let s = udp(&client);
        (s.dropped_malformed == 1 && s.dropped_oversize == 1 && s.dropped_unresolved == 1)
            .then_some(())
    })
    .await;
    assert_eq!(udp(&client).sent, 1);
    client.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn raw_is_one_way_and_anonymous() {
    let core: Arc<dyn StreamingCore> = Arc::new(LocalCore::new());
    let app = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut server = spec("server", &[]);
    server.outbound = local(app.local_addr().unwrap().port());
    server.quiet = true;
    let server = start(&core, server).await;
    let b32 = server.destination().b32();
    let mut client = spec(
        "client",
        &[("bob.udp.dest", &b32), ("bob.udp.style", "raw")],
    );
    client.inbound = local(0);
    let client = start(&core, client).await;
    let me = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    me.send_to(b"anonymous", client.inbound_addr().unwrap())
        .await
        .unwrap();
    assert_eq!(recv(&app).await, b"anonymous");
    // no peer mapping: nobody to answer to
    assert_eq!(udp(&server).peers, 0);
    assert_eq!(udp(&server).received, 1);
    client.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn hybrid_replies_reach_the_right_conversation() {
    let core: Arc<dyn StreamingCore> = Arc::new(LocalCore::new());
    let echo = echo_server().await;
    let mut server = spec("server", &[("bob.udp.style", "hybrid")]);
    server.outbound = local(echo);
    server.quiet = true;
    let server = start(&core, server).await;
    let b32 = server.destination().b32();
    let mut client = spec(
        "client",
        &[("bob.udp.dest", &b32), ("bob.udp.style", "hybrid")],
    );
    client.inbound = local(0);
    let client = start(&core, client).await;
    let me = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..5 {
        me.send_to(format!("{i}").as_bytes(), client.inbound_addr().unwrap())
            .await
            .unwrap();
        assert_eq!(recv(&me).await, format!("echo:{i}").into_bytes());
    }
    assert_eq!(udp(&server).peers, 1);
    client.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn only_the_fixed_remote_may_answer() {
    let core: Arc<dyn StreamingCore> = Arc::new(LocalCore::new());
    let app = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut server = spec("server", &[]);
    server.outbound = local(app.local_addr().unwrap().port());
    let server = start(&core, server).await;
    let mut client = spec(
        "client",
        &[("bob.udp.dest", &server.destination().to_base64())],
    );
    client.inbound = local(0);
    let client = start(&core, client).await;
    let me = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    me.send_to(b"hi", client.inbound_addr().unwrap())
        .await
        .unwrap();
    recv(&app).await;
    // a third destination sends to the client's conversation port
    let stranger = core
        .datagrams()
        .unwrap()
        .open_datagram_session(keys(), Vec::new(), DatagramStyle::Repliable)
        .await
        .unwrap();
    let port = me.local_addr().unwrap().port();
    stranger
        .send_to(
            client.destination(),
            DatagramStyle::Repliable,
            0,
            port,
            b"spoof",
        )
        .await
        .unwrap();
    bob_testkit::poll_until("stranger dropped", || async {
        (udp(&client).dropped_unknown_peer == 1).then_some(())
    })
    .await;
    client.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn a_busy_port_fails_the_start() {
    let core: Arc<dyn StreamingCore> = Arc::new(LocalCore::new());
    let taken = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut client = spec("client", &[]);
    client.inbound = local(taken.local_addr().unwrap().port());
    let err = UdpTunnel::start(
        core.clone(),
        client,
        TunnelLimits::default(),
        StartControl::detached(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StartError::Bind(_)), "{err:?}");
    assert!(err.to_string().contains("in use"), "{err}");
}

#[tokio::test]
async fn bad_options_fail_the_start() {
    let core: Arc<dyn StreamingCore> = Arc::new(LocalCore::new());
    let mut client = spec("client", &[("bob.udp.style", "datagram2")]);
    client.inbound = local(0);
    let err = UdpTunnel::start(
        core,
        client,
        TunnelLimits::default(),
        StartControl::detached(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "bob.udp.style must be repliable, raw or hybrid, not \"datagram2\""
    );
}

/// A local core that records the options its datagram sessions were opened with.
#[derive(Debug, Default)]
struct Recording {
    inner: LocalCore,
    seen: Mutex<Vec<Options>>,
}

impl StreamingCore for Recording {
    fn name(&self) -> &'static str {
        "recording"
    }
    fn open_session(
        &self,
        keys: PrivateKeys,
        options: Options,
    ) -> BoxFuture<'_, Result<Arc<dyn Session>, CoreError>> {
        self.inner.open_session(keys, options)
    }
    fn lookup(&self, name: &str) -> BoxFuture<'_, Result<Destination, CoreError>> {
        StreamingCore::lookup(&self.inner, name)
    }
    fn datagrams(&self) -> Option<&dyn DatagramCore> {
        Some(self)
    }
}

impl DatagramCore for Recording {
    fn open_datagram_session(
        &self,
        keys: PrivateKeys,
        options: Options,
        style: DatagramStyle,
    ) -> BoxFuture<'_, Result<Arc<dyn DatagramSession>, CoreError>> {
        self.seen.lock().unwrap().push(options.clone());
        self.inner.open_datagram_session(keys, options, style)
    }
}

#[tokio::test]
async fn server_options_never_reach_the_backend() {
    let recording = Arc::new(Recording::default());
    let core: Arc<dyn StreamingCore> = recording.clone();
    let mut client = spec(
        "client",
        &[
            ("inbound.length", "0"),
            ("bob.udp.rate", "50"),
            ("bob.udp.dest", "peer.i2p"),
            ("outbound.length", "0"),
        ],
    );
    client.inbound = local(0);
    let client = start(&core, client).await;
    assert_eq!(
        recording.seen.lock().unwrap().clone(),
        vec![vec![
            ("inbound.length".to_owned(), "0".to_owned()),
            ("outbound.length".to_owned(), "0".to_owned())
        ]]
    );
    client.stop().await;
}

#[tokio::test]
async fn a_backend_without_datagrams_is_refused_clearly() {
    #[derive(Debug)]
    struct StreamsOnly(LocalCore);
    impl StreamingCore for StreamsOnly {
        fn name(&self) -> &'static str {
            "streams-only"
        }
        fn open_session(
            &self,
            keys: PrivateKeys,
            options: Options,
        ) -> BoxFuture<'_, Result<Arc<dyn Session>, CoreError>> {
            self.0.open_session(keys, options)
        }
        fn lookup(&self, name: &str) -> BoxFuture<'_, Result<Destination, CoreError>> {
            StreamingCore::lookup(&self.0, name)
        }
    }
    let core: Arc<dyn StreamingCore> = Arc::new(StreamsOnly(LocalCore::new()));
    let err = UdpTunnel::start(
        core,
        spec("x", &[]),
        TunnelLimits::default(),
        StartControl::detached(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the streams-only backend carries no datagrams (UDP tunnels)"
    );
}

#[tokio::test]
async fn mappings_expire_after_idle() {
    let core: Arc<dyn StreamingCore> = Arc::new(LocalCore::new());
    let echo = echo_server().await;
    let mut server = spec("server", &[("bob.udp.idle", "10")]);
    server.outbound = local(echo);
    server.quiet = true;
    let server = start(&core, server).await;
    let b32 = server.destination().b32();
    let mut client = spec("client", &[("bob.udp.dest", &b32), ("bob.udp.idle", "10")]);
    client.inbound = local(0);
    let client = start(&core, client).await;
    let me = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    me.send_to(b"x", client.inbound_addr().unwrap())
        .await
        .unwrap();
    recv(&me).await;
    assert_eq!((udp(&client).peers, udp(&server).peers), (1, 1));

    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(5)).await;
    tokio::task::yield_now().await;
    assert_eq!((udp(&client).peers, udp(&server).peers), (1, 1));
    tokio::time::advance(Duration::from_secs(8)).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!((udp(&client).peers, udp(&server).peers), (0, 0));
    tokio::time::resume();
    client.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn sends_are_paced() {
    let core: Arc<dyn StreamingCore> = Arc::new(LocalCore::new());
    let app = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut server = spec("server", &[]);
    server.outbound = local(app.local_addr().unwrap().port());
    server.quiet = true;
    let server = start(&core, server).await;
    let b32 = server.destination().b32();
    let mut client = spec("client", &[("bob.udp.dest", &b32), ("bob.udp.rate", "10")]);
    client.inbound = local(0);
    let client = start(&core, client).await;
    let me = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..5u8 {
        me.send_to(&[i], client.inbound_addr().unwrap())
            .await
            .unwrap();
    }
    // the first goes at once (burst credit); then one per 100 ms of (paused) time
    recv(&app).await;
    poll_sent(&client, 1).await;
    tokio::time::pause();
    tokio::time::advance(Duration::from_millis(50)).await;
    settle().await;
    assert_eq!(udp(&client).sent, 1, "second datagram left early");
    tokio::time::advance(Duration::from_millis(60)).await;
    settle().await;
    assert_eq!(udp(&client).sent, 2);
    for sent in 3..=5 {
        tokio::time::advance(Duration::from_millis(100)).await;
        settle().await;
        assert_eq!(udp(&client).sent, sent);
    }
    tokio::time::resume();
    for _ in 1..5 {
        recv(&app).await;
    }
    client.stop().await;
    server.stop().await;
}

async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

async fn poll_sent(tunnel: &UdpTunnel, n: u64) {
    bob_testkit::poll_until("sent", || async { (udp(tunnel).sent >= n).then_some(()) }).await;
}

#[tokio::test]
async fn oversize_from_i2p_is_dropped_not_truncated() {
    let core: Arc<dyn StreamingCore> = Arc::new(LocalCore::new());
    let app = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut server = spec("server", &[("bob.udp.maxsize", "100")]);
    server.outbound = local(app.local_addr().unwrap().port());
    server.quiet = true;
    let server = start(&core, server).await;
    let peer = core
        .datagrams()
        .unwrap()
        .open_datagram_session(keys(), Vec::new(), DatagramStyle::Repliable)
        .await
        .unwrap();
    peer.send_to(
        server.destination(),
        DatagramStyle::Repliable,
        1,
        0,
        &[0u8; 101],
    )
    .await
    .unwrap();
    peer.send_to(
        server.destination(),
        DatagramStyle::Repliable,
        1,
        0,
        &[1u8; 100],
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 65_536];
    let (n, peer_socket) = within("delivered", app.recv_from(&mut buf)).await.unwrap();
    assert_eq!(&buf[..n], &[1u8; 100][..]);
    assert_eq!(udp(&server).dropped_oversize, 1);
    // the application's answers: one byte too many is dropped whole, the limit passes
    app.send_to(&[2u8; 101], peer_socket).await.unwrap();
    app.send_to(&[3u8; 100], peer_socket).await.unwrap();
    let back = within("answer", peer.recv()).await.unwrap();
    assert_eq!(&back.payload[..], &[3u8; 100][..]);
    assert_eq!(udp(&server).dropped_oversize, 2);
    server.stop().await;
}
