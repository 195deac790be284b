//! SOCKS proxy tunnels (`settunneltype socks`) end to end: a real SOCKS client (curl)
//! and raw SOCKS clients written here, through a BOB server on the local core, to a
//! web server published by a quiet BOB server tunnel.
//!
//! curl is required (scripts/test.sh installs it): without it these tests fail.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bob_codec::Dialect;
use bob_integration_tests::{BobClient, TestServer, free_port, start_server_with, test_config};
use bob_server::backend::StreamingCore;
use bob_server::backend::local::LocalCore;
use bob_server::config::Config;
use keytools::{Destination, PrivateKeys};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{keys, pattern, within};

/// The name the web server's destination has in the local core's address book.
const WEB_NAME: &str = "web.i2p";

/// Size of the body of `GET /big`.
const BIG: usize = 256 * 1024;

/// A tiny HTTP/1.0 server: `GET /big` answers [`BIG`] bytes of [`pattern`], any other
/// path `hello <path>\n`. Reads the request head (bounded), answers, closes.
pub(crate) async fn web_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    match socket.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                let body = if path == "/big" {
                    pattern(BIG)
                } else {
                    format!("hello {path}\n").into_bytes()
                };
                let reply = format!(
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.write_all(&body).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    port
}

/// A BOB server on a local core whose address book has [`WEB_NAME`], a started quiet
/// server tunnel `web` publishing [`web_server`], and a control connection.
struct Net {
    server: TestServer,
    bob: BobClient,
    web: Destination,
}

impl Net {
    async fn start() -> Self {
        Self::start_with(test_config(Dialect::Java)).await
    }

    async fn start_with(config: Config) -> Self {
        let web_keys = keys();
        let web = web_keys.destination().clone();
        let hosts = HashMap::from([(WEB_NAME.to_owned(), web.clone())]);
        let core: Arc<dyn StreamingCore> = Arc::new(LocalCore::with_hosts(hosts));
        let server = start_server_with(config, core).await;
        let mut bob = server.client().await;
        let port = web_server().await;
        bob.expect("setnick web", "OK Nickname set to web").await;
        set_keys(&mut bob, &web_keys).await;
        bob.expect("outhost 127.0.0.1", "OK outhost set").await;
        bob.expect(&format!("outport {port}"), "OK outbound port set")
            .await;
        bob.expect("quiet true", "OK Quiet set").await;
        bob.expect("start", "OK tunnel starting").await;
        bob.wait_status("web", "RUNNING: true").await;
        Self { server, bob, web }
    }

    /// Makes and starts SOCKS tunnel `nickname`; returns its port once it is RUNNING.
    async fn socks(&mut self, nickname: &str) -> u16 {
        self.bob.new_tunnel(nickname).await;
        self.bob
            .expect("settunneltype socks", "OK tunnel type set to SOCKS")
            .await;
        self.bob.expect("inhost 127.0.0.1", "OK inhost set").await;
        let port = self.bob.start_inbound().await;
        self.bob.wait_status(nickname, "RUNNING: true").await;
        port
    }

    fn b32(&self) -> String {
        self.web.b32()
    }
}

async fn set_keys(bob: &mut BobClient, keys: &PrivateKeys) {
    let reply = bob.line(&format!("setkeys {}", keys.to_base64())).await;
    assert!(reply.starts_with("OK"), "{reply}");
}

/// Runs curl with `args` (plus `-sS` and a time limit); returns its exit code, stdout
/// and stderr.
async fn curl(args: &[&str]) -> (i32, Vec<u8>, String) {
    let output = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "30"])
        .args(args)
        .kill_on_drop(true)
        .output();
    let output = within("curl", output)
        .await
        .expect("curl must be installed for the SOCKS proxy tests (scripts/test.sh installs it)");
    (
        output.status.code().unwrap_or(-1),
        output.stdout,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The `stats` counters of `nickname` as `key=value` pairs.
async fn stats(bob: &mut BobClient, nickname: &str) -> HashMap<String, u64> {
    let line = bob.line(&format!("stats {nickname}")).await;
    line.split(' ')
        .filter_map(|pair| pair.split_once('='))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect()
}

/// Polls tunnel `sx`'s `stats` until counter `key` is `value`.
async fn wait_stat(bob: &mut BobClient, key: &str, value: u64) {
    within("stats", async {
        while stats(bob, "sx").await[key] != value {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn curl_reaches_names_b32_addresses_through_socks5_and_socks4a() {
    let mut net = Net::start().await;
    let port = net.socks("sx").await;
    let proxy = format!("127.0.0.1:{port}");
    let b32_url = format!("http://{}/b32", net.b32());
    for (flag, url, body) in [
        ("--socks5-hostname", "http://web.i2p/name", "hello /name\n"),
        ("--socks5-hostname", b32_url.as_str(), "hello /b32\n"),
        ("--socks4a", "http://WEB.i2p:8080/four", "hello /four\n"),
        ("--socks4a", b32_url.as_str(), "hello /b32\n"),
    ] {
        let (code, out, err) = curl(&[flag, &proxy, url]).await;
        assert_eq!(code, 0, "{flag} {url}: {err}");
        assert_eq!(String::from_utf8_lossy(&out), body, "{flag} {url}");
    }
    // username/password: any credentials are accepted
    let (code, out, err) = curl(&[
        "--socks5-hostname",
        &proxy,
        "--proxy-user",
        "alice:secret",
        "http://web.i2p/auth",
    ])
    .await;
    assert_eq!((code, out.as_slice()), (0, &b"hello /auth\n"[..]), "{err}");
    // a larger body, byte-exact
    let (code, out, err) = curl(&["--socks5-hostname", &proxy, "http://web.i2p/big"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out == pattern(BIG), "body of {} bytes differs", out.len());
    let counters = stats(&mut net.bob, "sx").await;
    assert_eq!(counters["accepted"], 6, "{counters:?}");
    assert_eq!(counters["failed"], 0, "{counters:?}");
    assert!(counters["bytes_in"] >= BIG as u64, "{counters:?}");
    net.server.stop().await;
}

#[tokio::test]
async fn a_base64_destination_through_socks4a() {
    let mut net = Net::start().await;
    let port = net.socks("sx").await;
    // a base64 destination is longer than SOCKS5's 255-byte names: SOCKS4a carries it
    let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut request = vec![4, 1, 0, 80, 0, 0, 0, 1, 0];
    request.extend_from_slice(net.web.to_base64().as_bytes());
    request.push(0);
    request.extend_from_slice(b"GET /b64 HTTP/1.0\r\n\r\n");
    socket.write_all(&request).await.unwrap();
    let mut reply = Vec::new();
    within("response", socket.read_to_end(&mut reply))
        .await
        .unwrap();
    assert_eq!(&reply[..8], [0, 90, 0, 0, 0, 0, 0, 0]);
    let text = String::from_utf8_lossy(&reply[8..]);
    assert!(text.ends_with("\r\n\r\nhello /b64\n"), "{text}");
    let _ = net.bob.line("stop").await;
    net.server.stop().await;
}

/// Sends the SOCKS5 no-auth greeting and `request`; returns the reply code.
async fn socks5_reply_code(port: u16, request: &[u8]) -> u8 {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    socket.write_all(&[5, 1, 0]).await.unwrap();
    let mut method = [0u8; 2];
    within("method", socket.read_exact(&mut method))
        .await
        .unwrap();
    assert_eq!(method, [5, 0]);
    socket.write_all(request).await.unwrap();
    let mut reply = Vec::new();
    within("reply", socket.read_to_end(&mut reply))
        .await
        .unwrap();
    assert_eq!(reply.len(), 10, "{reply:?}");
    assert_eq!(reply[0], 5);
    reply[1]
}

fn connect_to_name(name: &str) -> Vec<u8> {
    let mut request = vec![5, 1, 0, 3, u8::try_from(name.len()).unwrap()];
    request.extend_from_slice(name.as_bytes());
    request.extend_from_slice(&[0, 80]);
    request
}

#[tokio::test]
async fn failures_get_socks_error_replies_not_dropped_connections() {
    let mut net = Net::start().await;
    let port = net.socks("sx").await;
    // an unknown name and an unknown b32: host unreachable (4)
    assert_eq!(
        socks5_reply_code(port, &connect_to_name("nosuch.i2p")).await,
        4
    );
    let unknown_b32 = keys().destination().b32();
    assert_eq!(
        socks5_reply_code(port, &connect_to_name(&unknown_b32)).await,
        4
    );
    // a clearnet name and an IP address without an outproxy: not allowed by ruleset (2)
    assert_eq!(
        socks5_reply_code(port, &connect_to_name("example.com")).await,
        2
    );
    assert_eq!(
        socks5_reply_code(port, &[5, 1, 0, 1, 127, 0, 0, 1, 0, 80]).await,
        2
    );
    // BIND: command not supported (7); address type 9: 8 (UDP ASSOCIATE:
    // proxy_socks_udp.rs)
    assert_eq!(
        socks5_reply_code(port, &[5, 2, 0, 1, 127, 0, 0, 1, 0, 80]).await,
        7
    );
    assert_eq!(socks5_reply_code(port, &[5, 1, 0, 9]).await, 8);
    // curl says why
    let proxy = format!("127.0.0.1:{port}");
    let (code, _, err) = curl(&["--socks5-hostname", &proxy, "http://nosuch.i2p/"]).await;
    assert_eq!(code, 97, "{err}");
    assert!(err.contains("nosuch.i2p"), "{err}");
    // plain SOCKS4 carries an IP address: rejected (91) without an outproxy
    let (code, _, err) = curl(&["--socks4", &proxy, "http://127.0.0.1:1/"]).await;
    assert_eq!(code, 97, "{err}");
    assert!(err.to_lowercase().contains("rejected"), "{err}");
    let counters = stats(&mut net.bob, "sx").await;
    assert_eq!(counters["failed"], 8, "{counters:?}");
    net.server.stop().await;
}

/// What the proxy answers to `bytes` before closing.
async fn answer_to(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    socket.write_all(bytes).await.unwrap();
    socket.shutdown().await.unwrap();
    let mut reply = Vec::new();
    within("answer", socket.read_to_end(&mut reply))
        .await
        .unwrap();
    reply
}

#[tokio::test]
async fn malformed_greetings_are_answered_or_closed() {
    let mut net = Net::start().await;
    let port = net.socks("sx").await;
    // SOCKS5 without an acceptable method
    assert_eq!(answer_to(port, &[5, 0]).await, [5, 0xFF]);
    assert_eq!(answer_to(port, &[5, 2, 1, 3]).await, [5, 0xFF]);
    // an unknown version byte (a TLS hello): closed
    assert_eq!(answer_to(port, &[0x16, 3, 1, 0, 5]).await, b"");
    // a truncated greeting, then end of stream: closed
    assert_eq!(answer_to(port, &[5, 3, 0]).await, b"");
    // HTTP on the SOCKS port: an HTTP error saying so
    let reply = answer_to(port, b"GET http://web.i2p/ HTTP/1.1\r\n\r\n").await;
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("HTTP/1.0 400 Bad Request\r\n"), "{text}");
    assert!(text.contains("SOCKS proxy"), "{text}");
    // a SOCKS4 user id without end: rejected at the size bound
    let mut endless = vec![4, 1, 0, 80, 0, 0, 0, 1];
    endless.extend(std::iter::repeat_n(b'u', 64 * 1024));
    assert_eq!(answer_to(port, &endless).await, [0, 91, 0, 0, 0, 0, 0, 0]);
    // the proxy still works
    let (code, out, err) = curl(&[
        "--socks5-hostname",
        &format!("127.0.0.1:{port}"),
        "http://web.i2p/ok",
    ])
    .await;
    assert_eq!((code, out.as_slice()), (0, &b"hello /ok\n"[..]), "{err}");
    let counters = stats(&mut net.bob, "sx").await;
    assert_eq!(counters["failed"], 6, "{counters:?}");
    net.server.stop().await;
}

#[tokio::test]
async fn a_slow_handshake_is_closed_at_the_first_request_timeout() {
    let mut config = test_config(Dialect::Java);
    config.tunnel_limits.first_line_timeout = Duration::from_millis(300);
    let mut net = Net::start_with(config).await;
    let port = net.socks("sx").await;
    let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    socket.write_all(&[5, 1]).await.unwrap();
    let mut rest = Vec::new();
    within("close", socket.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(rest.is_empty(), "{rest:?}");
    wait_stat(&mut net.bob, "failed", 1).await;
    net.server.stop().await;
}

#[tokio::test]
async fn the_connection_cap_holds_new_clients_in_the_backlog() {
    let mut config = test_config(Dialect::Java);
    config.tunnel_limits.max_connections = 1;
    let mut net = Net::start_with(config).await;
    let port = net.socks("sx").await;
    let first = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    wait_stat(&mut net.bob, "active", 1).await;
    let mut second = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    second.write_all(&[5, 1, 0]).await.unwrap();
    // the second waits while the first holds the only slot (no reply for a while)...
    let mut method = [0u8; 2];
    let early =
        tokio::time::timeout(Duration::from_millis(300), second.read_exact(&mut method)).await;
    assert!(early.is_err(), "served beyond the cap: {early:?}");
    let counters = stats(&mut net.bob, "sx").await;
    assert_eq!((counters["accepted"], counters["active"]), (1, 1));
    // ...and is served once it ends
    drop(first);
    within("second served", second.read_exact(&mut method))
        .await
        .unwrap();
    assert_eq!(method, [5, 0]);
    net.server.stop().await;
}

#[tokio::test]
async fn status_shows_the_proxy_type_only_on_proxy_tunnels() {
    let mut net = Net::start().await;
    let port = net.socks("sx").await;
    let status = net.bob.line("status sx").await;
    assert!(
        status.ends_with(&format!(
            "INPORT: {port} INHOST: 127.0.0.1 OUTPORT: not_set OUTHOST: localhost PROXYTYPE: SOCKS"
        )),
        "{status}"
    );
    let web = net.bob.line("status web").await;
    assert!(!web.contains("PROXYTYPE"), "{web}");
    net.server.stop().await;
}

#[tokio::test]
async fn the_i2pd_dialect_adds_proxystart_as_i2pd_does() {
    let server = start_server_with(
        test_config(Dialect::I2pd),
        Arc::new(LocalCore::new()) as Arc<dyn StreamingCore>,
    )
    .await;
    let mut bob = server.client().await;
    bob.new_tunnel("plain").await;
    bob.new_tunnel("sx").await;
    bob.expect("settunneltype socks", "OK tunnel type set to SOCKS")
        .await;
    bob.expect("inhost 127.0.0.1", "OK inhost set").await;
    let stopped = bob.line("status sx").await;
    assert!(
        stopped.ends_with(" PROXYTYPE: SOCKS PROXYSTART: false"),
        "{stopped}"
    );
    bob.start_inbound().await;
    let running = bob.wait_status("sx", "RUNNING: true").await;
    assert!(
        running.ends_with(" PROXYTYPE: SOCKS PROXYSTART: true\n"),
        "{running}"
    );
    let listed = bob.list().await;
    assert!(
        listed
            .iter()
            .any(|l| l.contains("NICKNAME: sx ") && l.ends_with(" PROXYSTART: true")),
        "{listed:?}"
    );
    let plain = bob.line("status plain").await;
    assert!(!plain.contains("PROXY"), "{plain}");
    bob.expect("stop", "OK Tunnel stopping").await;
    let stopped = bob.wait_status("sx", "RUNNING: false").await;
    assert!(stopped.ends_with(" PROXYSTART: false\n"), "{stopped}");
    server.stop().await;
}

#[tokio::test]
async fn bind_in_use_is_a_start_error() {
    let mut net = Net::start().await;
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = taken.local_addr().unwrap().port();
    net.bob.new_tunnel("sx").await;
    net.bob
        .expect("settunneltype socks", "OK tunnel type set to SOCKS")
        .await;
    net.bob.expect("inhost 127.0.0.1", "OK inhost set").await;
    net.bob
        .expect(&format!("inport {port}"), "OK inbound port set")
        .await;
    let reply = net.bob.line("start").await;
    assert!(
        reply.starts_with("ERROR starting tunnel: ") && reply.contains("in use"),
        "{reply}"
    );
    // a SOCKS tunnel needs an inport
    net.bob.new_tunnel("noport").await;
    net.bob
        .expect("settunneltype socks", "OK tunnel type set to SOCKS")
        .await;
    net.bob.expect("outport 9", "OK outbound port set").await;
    let reply = net.bob.line("start").await;
    assert!(reply.starts_with("ERROR starting tunnel: "), "{reply}");
    assert!(reply.contains("needs inport"), "{reply}");
    drop(taken);
    net.server.stop().await;
}

/// Opens a SOCKS5 connection to `web.i2p` that stays open (the request is sent, the
/// response not read): a live relayed connection.
async fn live_connection(port: u16) -> TcpStream {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    socket.write_all(&[5, 1, 0]).await.unwrap();
    socket.write_all(&connect_to_name(WEB_NAME)).await.unwrap();
    let mut replies = [0u8; 12];
    within("connected", socket.read_exact(&mut replies))
        .await
        .unwrap();
    assert_eq!(replies[..4], [5, 0, 5, 0]);
    socket
}

async fn assert_closed(mut socket: TcpStream) {
    let mut rest = Vec::new();
    // closed: end of stream or a reset, within the deadline
    let _ = within("closed", socket.read_to_end(&mut rest)).await;
}

#[tokio::test]
async fn stop_and_clear_close_the_listener_and_its_connections() {
    let mut net = Net::start().await;
    let port = net.socks("sx").await;
    let live = live_connection(port).await;
    net.bob.expect("stop", "OK tunnel stopping").await;
    net.bob.wait_status("sx", "RUNNING: false").await;
    assert_closed(live).await;
    // the port is free again
    drop(
        TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("port free after stop"),
    );
    // and the tunnel starts again on it
    net.bob.expect("start", "OK tunnel starting").await;
    net.bob.wait_status("sx", "RUNNING: true").await;
    let live = live_connection(port).await;
    net.bob.expect("stop", "OK tunnel stopping").await;
    net.bob.wait_status("sx", "RUNNING: false").await;
    net.bob.expect("clear", "OK cleared").await;
    assert_closed(live).await;
    drop(
        TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("port free after clear"),
    );
    net.server.stop().await;
}

#[tokio::test]
async fn an_outproxy_reaches_hosts_outside_i2p() {
    let mut net = Net::start().await;
    let web_port = web_server().await;
    let upstream = upstream_socks5().await;
    net.bob.new_tunnel("sx").await;
    net.bob
        .expect("settunneltype socks", "OK tunnel type set to SOCKS")
        .await;
    net.bob.expect("inhost 127.0.0.1", "OK inhost set").await;
    net.bob.expect("outhost 127.0.0.1", "OK outhost set").await;
    net.bob
        .expect(
            &format!("outport {}", upstream.port()),
            "OK outbound port set",
        )
        .await;
    let port = net.bob.start_inbound().await;
    net.bob.wait_status("sx", "RUNNING: true").await;
    let proxy = format!("127.0.0.1:{port}");
    // a clearnet host goes to the outproxy, the port kept
    let url = format!("http://127.0.0.1:{web_port}/out");
    let (code, out, err) = curl(&["--socks5-hostname", &proxy, &url]).await;
    assert_eq!((code, out.as_slice()), (0, &b"hello /out\n"[..]), "{err}");
    // an I2P name still goes through the tunnel
    let (code, out, err) = curl(&["--socks5-hostname", &proxy, "http://web.i2p/in"]).await;
    assert_eq!((code, out.as_slice()), (0, &b"hello /in\n"[..]), "{err}");
    // the outproxy's refusal is passed on: a port where nothing listens
    let closed = free_port();
    let url = format!("http://127.0.0.1:{closed}/");
    let (code, _, err) = curl(&["--socks5-hostname", &proxy, &url]).await;
    assert_eq!(code, 97, "{err}");
    net.server.stop().await;
}

/// A minimal upstream SOCKS5 server (no auth, CONNECT to IPv4 or a name) standing in
/// for an outproxy: connects where asked, answers 0 or 5 (refused), relays.
async fn upstream_socks5() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut greeting = [0u8; 2];
                client.read_exact(&mut greeting).await.ok()?;
                let mut methods = vec![0u8; usize::from(greeting[1])];
                client.read_exact(&mut methods).await.ok()?;
                client.write_all(&[5, 0]).await.ok()?;
                let mut head = [0u8; 4];
                client.read_exact(&mut head).await.ok()?;
                let host = match head[3] {
                    1 => {
                        let mut ip = [0u8; 4];
                        client.read_exact(&mut ip).await.ok()?;
                        std::net::Ipv4Addr::from(ip).to_string()
                    }
                    3 => {
                        let len = client.read_u8().await.ok()?;
                        let mut name = vec![0u8; usize::from(len)];
                        client.read_exact(&mut name).await.ok()?;
                        String::from_utf8(name).ok()?
                    }
                    _ => return None,
                };
                let port = client.read_u16().await.ok()?;
                match TcpStream::connect((host.as_str(), port)).await {
                    Ok(mut target) => {
                        client
                            .write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0])
                            .await
                            .ok()?;
                        tokio::io::copy_bidirectional(&mut client, &mut target)
                            .await
                            .ok()?;
                    }
                    Err(_) => {
                        client
                            .write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0])
                            .await
                            .ok()?;
                    }
                }
                Some(())
            });
        }
    });
    addr
}

#[tokio::test(start_paused = true)]
async fn the_handshake_timeout_in_paused_time() {
    use bob_server::tunnel::{RunningTunnel, StartControl, TunnelKind, TunnelLimits, TunnelSpec};
    let limits = TunnelLimits {
        first_line_timeout: Duration::from_secs(60),
        ..TunnelLimits::default()
    };
    let spec = TunnelSpec {
        nickname: "sx".to_owned(),
        keys: keys(),
        options: Vec::new(),
        server_options: Vec::new(),
        inbound: Some(crate::support::local(0)),
        outbound: None,
        quiet: false,
    };
    let core: Arc<dyn StreamingCore> = Arc::new(LocalCore::new());
    let tunnel = RunningTunnel::start_with(
        TunnelKind::Socks,
        core,
        spec,
        limits,
        StartControl::detached(),
    )
    .await
    .expect("SOCKS tunnel starts");
    let mut socket = TcpStream::connect(tunnel.inbound_addr().unwrap())
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    socket.write_all(&[5, 1]).await.unwrap();
    let mut rest = Vec::new();
    socket.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "{rest:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(tunnel.stats().snapshot().failed, 1);
    tunnel.stop().await;
}
