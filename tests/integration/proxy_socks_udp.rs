//! SOCKS5 UDP ASSOCIATE on a SOCKS proxy tunnel (local core), end to end: a SOCKS UDP
//! client (Python's standard library, no SOCKS package; and raw clients written here)
//! → the proxy's relay socket → an I2P datagram from the proxy tunnel's destination →
//! a quiet UDP server tunnel → an unmodified UDP echo server, and the echo back.
//!
//! python3 is required (scripts/test.sh installs it): without it the Python test fails.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bob_codec::Dialect;
use bob_integration_tests::{BobClient, TestServer, start_server_with, test_config};
use bob_server::backend::datagram::{DatagramCore, DatagramSession, DatagramStyle};
use bob_server::backend::local::LocalCore;
use bob_server::backend::{BoxFuture, CoreError, Options, Session, StreamingCore};
use keytools::{Destination, PrivateKeys};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::support::{keys, within};

/// The name the echo server's destination has in the local core's address book.
const ECHO_NAME: &str = "echo.i2p";

/// The I2CP port the clients send to (the echo comes back from it).
const TO_PORT: u16 = 7000;

/// An unmodified UDP echo server answering `echo:` + the datagram; counts datagrams.
async fn echo_server() -> (u16, Arc<AtomicU64>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    let seen = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&seen);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            count.fetch_add(1, Ordering::Relaxed);
            let mut reply = b"echo:".to_vec();
            reply.extend_from_slice(&buf[..n]);
            let _ = socket.send_to(&reply, from).await;
        }
    });
    (port, seen)
}

/// A BOB server on `core` with a quiet UDP server tunnel `usrv` in front of
/// [`echo_server`] and a SOCKS tunnel `sx` (after `sx_commands`).
struct Net {
    _server: TestServer,
    bob: BobClient,
    echo: Destination,
    echo_seen: Arc<AtomicU64>,
    socks: u16,
}

impl Net {
    async fn start(sx_commands: &[&str]) -> Self {
        Self::start_on(None, sx_commands).await
    }

    /// `wrap`: a core around the local one (to take its datagram side away).
    async fn start_on(
        wrap: Option<fn(LocalCore) -> Arc<dyn StreamingCore>>,
        sx_commands: &[&str],
    ) -> Self {
        let echo_keys = keys();
        let echo = echo_keys.destination().clone();
        let hosts = HashMap::from([(ECHO_NAME.to_owned(), echo.clone())]);
        let local = LocalCore::with_hosts(hosts);
        let core: Arc<dyn StreamingCore> = match wrap {
            Some(wrap) => wrap(local),
            None => Arc::new(local),
        };
        let server = start_server_with(test_config(Dialect::Java), core).await;
        let carries_datagrams = server.core.datagrams().is_some();
        let mut bob = server.client().await;
        let (port, echo_seen) = echo_server().await;
        if carries_datagrams {
            bob.expect("setnick usrv", "OK Nickname set to usrv").await;
            set_keys(&mut bob, &echo_keys).await;
            bob.expect("settunneltype udp", "OK tunnel type set to UDP")
                .await;
            bob.expect("outhost 127.0.0.1", "OK outhost set").await;
            bob.expect(&format!("outport {port}"), "OK outbound port set")
                .await;
            bob.expect("quiet true", "OK Quiet set").await;
            bob.expect("start", "OK tunnel starting").await;
            bob.wait_status("usrv", "RUNNING: true").await;
        }

        bob.new_tunnel("sx").await;
        bob.expect("settunneltype socks", "OK tunnel type set to SOCKS")
            .await;
        bob.expect("inhost 127.0.0.1", "OK inhost set").await;
        for command in sx_commands {
            let reply = bob.cmd(command).await;
            assert!(reply.starts_with("OK"), "{command}: {reply}");
        }
        let socks = bob.start_inbound().await;
        bob.wait_status("sx", "RUNNING: true").await;
        Self {
            _server: server,
            bob,
            echo,
            echo_seen,
            socks,
        }
    }

    async fn stats(&mut self) -> HashMap<String, u64> {
        let line = self.bob.line("stats sx").await;
        line.split(' ')
            .filter_map(|pair| pair.split_once('='))
            .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
            .collect()
    }

    /// Polls `stats sx` until `key` is `value`.
    async fn wait_stat(&mut self, key: &str, value: u64) {
        within(&format!("stats {key}={value}"), async {
            while self.stats().await.get(key).copied() != Some(value) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
    }
}

async fn set_keys(bob: &mut BobClient, keys: &PrivateKeys) {
    let reply = bob.line(&format!("setkeys {}", keys.to_base64())).await;
    assert!(reply.starts_with("OK"), "{reply}");
}

/// The Python client: greeting, UDP ASSOCIATE announcing its own UDP port, a datagram
/// to argv[2] port 7000, the echo, then a second datagram sent back to the name the
/// echo came from. Prints `name port payload` per echo.
const PYTHON_CLIENT: &str = r#"
import socket, struct, sys

def recv_exact(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise SystemExit("proxy closed")
        out += chunk
    return out

def parse(datagram):
    assert datagram[:3] == b"\0\0\0", datagram[:3]
    assert datagram[3] == 3, datagram[3]
    n = datagram[4]
    name = datagram[5:5 + n]
    port = struct.unpack(">H", datagram[5 + n:7 + n])[0]
    return name, port, datagram[7 + n:]

proxy = ("127.0.0.1", int(sys.argv[1]))
target = sys.argv[2].encode()
ctl = socket.create_connection(proxy, timeout=20)
ctl.sendall(b"\x05\x01\x00")
assert recv_exact(ctl, 2) == b"\x05\x00"
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("127.0.0.1", 0))
udp.settimeout(20)
me = udp.getsockname()
ctl.sendall(b"\x05\x03\x00\x01" + socket.inet_aton(me[0]) + struct.pack(">H", me[1]))
reply = recv_exact(ctl, 10)
assert reply[:4] == b"\x05\x00\x00\x01", reply
relay = (socket.inet_ntoa(reply[4:8]), struct.unpack(">H", reply[8:10])[0])
udp.sendto(b"\0\0\0\x03" + bytes([len(target)]) + target + struct.pack(">H", 7000) + b"ping", relay)
data, sender = udp.recvfrom(65535)
assert sender == relay, sender
name, port, payload = parse(data)
print(name.decode(), port, payload.decode())
udp.sendto(b"\0\0\0\x03" + bytes([len(name)]) + name + struct.pack(">H", port) + b"again", relay)
data, sender = udp.recvfrom(65535)
name, port, payload = parse(data)
print(name.decode(), port, payload.decode())
ctl.close()
"#;

async fn python(port: u16, target: &str) -> String {
    let output = tokio::process::Command::new("python3")
        .args(["-c", PYTHON_CLIENT, &port.to_string(), target])
        .kill_on_drop(true)
        .output();
    let output = within("python3", output)
        .await
        .expect("python3 must be installed for the SOCKS UDP tests (scripts/test.sh installs it)");
    assert!(
        output.status.success(),
        "python client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn a_python_client_reaches_an_echo_server_by_name_and_by_b32() {
    let mut net = Net::start(&[]).await;
    let b32 = net.echo.b32();
    for target in [ECHO_NAME.to_owned(), b32.clone()] {
        let out = python(net.socks, &target).await;
        assert_eq!(
            out,
            format!("{b32} {TO_PORT} echo:ping\n{b32} {TO_PORT} echo:again\n"),
            "target {target}"
        );
    }
    // the association ended with the Python client's control connection
    net.wait_stat("udp_peers", 0).await;
    let stats = net.stats().await;
    assert_eq!(stats["udp_sent"], 4, "{stats:?}");
    assert_eq!(stats["udp_received"], 4, "{stats:?}");
    assert_eq!(stats["udp_dropped"], 0, "{stats:?}");
    // payloads: "ping" + "again" out, "echo:ping" + "echo:again" back, twice
    assert_eq!(stats["bytes_out"], 2 * 9, "{stats:?}");
    assert_eq!(stats["bytes_in"], 2 * 19, "{stats:?}");
}

/// A raw SOCKS5 client: the control connection, its UDP socket and the relay.
struct Client {
    control: TcpStream,
    udp: UdpSocket,
    relay: SocketAddr,
}

impl Client {
    /// Associates, announcing `announce` as DST.ADDR/PORT (None: the UDP socket's own).
    async fn associate(proxy: u16, announce: Option<SocketAddr>) -> Self {
        let mut control = TcpStream::connect(("127.0.0.1", proxy)).await.unwrap();
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let announce = announce.unwrap_or_else(|| udp.local_addr().unwrap());
        let reply = associate_reply(&mut control, announce).await;
        assert_eq!(&reply[..4], &[5, 0, 0, 1], "{reply:?}");
        let relay = SocketAddr::from((
            [reply[4], reply[5], reply[6], reply[7]],
            u16::from_be_bytes([reply[8], reply[9]]),
        ));
        assert!(relay.ip().is_loopback(), "{relay}");
        Self {
            control,
            udp,
            relay,
        }
    }

    async fn send(&self, datagram: &[u8]) {
        self.udp.send_to(datagram, self.relay).await.unwrap();
    }

    async fn recv(&self) -> Vec<u8> {
        let mut buf = vec![0u8; 65_536];
        let (n, from) = within("a datagram", self.udp.recv_from(&mut buf))
            .await
            .unwrap();
        assert_eq!(from, self.relay);
        buf.truncate(n);
        buf
    }
}

/// Greeting + UDP ASSOCIATE for `announce`; the 10-byte (IPv4) reply.
async fn associate_reply(control: &mut TcpStream, announce: SocketAddr) -> Vec<u8> {
    control.write_all(&[5, 1, 0]).await.unwrap();
    let mut method = [0u8; 2];
    within("method", control.read_exact(&mut method))
        .await
        .unwrap();
    assert_eq!(method, [5, 0]);
    let SocketAddr::V4(v4) = announce else {
        panic!("IPv4 only here")
    };
    let mut request = vec![5, 3, 0, 1];
    request.extend_from_slice(&v4.ip().octets());
    request.extend_from_slice(&v4.port().to_be_bytes());
    control.write_all(&request).await.unwrap();
    let mut reply = [0u8; 10];
    within("reply", control.read_exact(&mut reply))
        .await
        .unwrap();
    reply.to_vec()
}

/// A datagram header + payload to `name`:`port`, FRAG `frag`.
fn datagram(frag: u8, name: &str, port: u16, payload: &[u8]) -> Vec<u8> {
    let mut d = vec![0, 0, frag, 3, u8::try_from(name.len()).unwrap()];
    d.extend_from_slice(name.as_bytes());
    d.extend_from_slice(&port.to_be_bytes());
    d.extend_from_slice(payload);
    d
}

/// The reply header the relay writes for a datagram from `b32` port [`TO_PORT`].
fn reply_header(b32: &str) -> Vec<u8> {
    datagram(0, b32, TO_PORT, b"")
}

#[tokio::test]
async fn fragments_foreign_sources_clearnet_and_oversize_are_dropped_and_counted() {
    let mut net = Net::start(&["option bob.udp.maxsize=1000"]).await;
    let b32 = net.echo.b32();
    let client = Client::associate(net.socks, None).await;

    // a whole datagram goes through (and fixes nothing else: the client announced its
    // address)
    client.send(&datagram(0, &b32, TO_PORT, b"one")).await;
    let mut want = reply_header(&b32);
    want.extend_from_slice(b"echo:one");
    assert_eq!(client.recv().await, want);

    // a fragment: dropped
    client.send(&datagram(1, &b32, TO_PORT, b"frag")).await;
    net.wait_stat("udp_dropped_fragment", 1).await;

    // from another port of the same host: not the association's client
    let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    stranger
        .send_to(&datagram(0, &b32, TO_PORT, b"foreign"), client.relay)
        .await
        .unwrap();
    net.wait_stat("udp_dropped_foreign", 1).await;

    // an IP address and a clearnet name: no UDP outproxy
    let mut to_ip = vec![0, 0, 0, 1, 10, 0, 0, 1, 0, 53];
    to_ip.extend_from_slice(b"dns?");
    client.send(&to_ip).await;
    client.send(&datagram(0, "example.com", 53, b"dns?")).await;
    net.wait_stat("udp_dropped_not_i2p", 2).await;

    // over bob.udp.maxsize: dropped whole, never truncated
    client
        .send(&datagram(0, &b32, TO_PORT, &[b'x'; 1001]))
        .await;
    net.wait_stat("udp_dropped_oversize", 1).await;

    // a bad header
    client.send(&[0, 0, 0, 9, 0, 0, 0]).await;
    net.wait_stat("udp_dropped_malformed", 1).await;

    // the association still works, and nothing dropped reached the echo server
    client.send(&datagram(0, &b32, TO_PORT, b"two")).await;
    let mut want = reply_header(&b32);
    want.extend_from_slice(b"echo:two");
    assert_eq!(client.recv().await, want);
    assert_eq!(net.echo_seen.load(Ordering::Relaxed), 2);
    let stats = net.stats().await;
    assert_eq!(stats["udp_sent"], 2, "{stats:?}");
    assert_eq!(stats["udp_dropped"], 6, "{stats:?}");
}

#[tokio::test]
async fn the_first_source_is_kept_when_the_client_announces_zeros() {
    let mut net = Net::start(&[]).await;
    let b32 = net.echo.b32();
    let client = Client::associate(net.socks, Some("0.0.0.0:0".parse().unwrap())).await;
    client.send(&datagram(0, &b32, TO_PORT, b"first")).await;
    assert!(client.recv().await.ends_with(b"echo:first"));
    // a second socket of the client's own host is foreign once the first is known
    let other = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    other
        .send_to(&datagram(0, &b32, TO_PORT, b"second"), client.relay)
        .await
        .unwrap();
    net.wait_stat("udp_dropped_foreign", 1).await;
}

#[tokio::test]
async fn closing_the_control_connection_ends_the_association_and_frees_the_port() {
    let mut net = Net::start(&[]).await;
    let b32 = net.echo.b32();
    let client = Client::associate(net.socks, None).await;
    client.send(&datagram(0, &b32, TO_PORT, b"hi")).await;
    client.recv().await;
    net.wait_stat("udp_peers", 1).await;
    let Client {
        control,
        udp,
        relay,
    } = client;
    drop(control);
    net.wait_stat("udp_peers", 0).await;
    net.wait_stat("active", 0).await;
    // the relay socket is closed: its port can be bound again
    within("the relay port is released", async {
        while std::net::UdpSocket::bind(relay).is_err() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    drop(udp);
    // stop also ends live associations
    let client = Client::associate(net.socks, None).await;
    net.wait_stat("active", 1).await;
    net.bob.expect("stop", "OK tunnel stopping").await;
    net.bob.wait_status("sx", "RUNNING: false").await;
    let Client { mut control, .. } = client;
    let mut byte = [0u8; 1];
    let eof = within("the control connection closes", control.read(&mut byte)).await;
    assert!(matches!(eof, Ok(0) | Err(_)), "{eof:?}");
}

/// The local core without its datagram side, as a SAM core would answer for a
/// destination that already has a stream session.
#[derive(Debug)]
struct NoDatagrams(LocalCore);

impl StreamingCore for NoDatagrams {
    fn name(&self) -> &'static str {
        "nodatagrams"
    }

    fn open_session(
        &self,
        keys: PrivateKeys,
        options: Options,
    ) -> BoxFuture<'_, Result<Arc<dyn Session>, CoreError>> {
        self.0.open_session(keys, options)
    }

    fn lookup(&self, name: &str) -> BoxFuture<'_, Result<Destination, CoreError>> {
        self.0.lookup(name)
    }
}

/// The local core with datagrams, but (like SAM) not for a destination that has a
/// stream session: `shares_destinations` keeps its default, `false`.
#[derive(Debug)]
struct NoSharing(LocalCore);

impl StreamingCore for NoSharing {
    fn name(&self) -> &'static str {
        "nosharing"
    }

    fn open_session(
        &self,
        keys: PrivateKeys,
        options: Options,
    ) -> BoxFuture<'_, Result<Arc<dyn Session>, CoreError>> {
        self.0.open_session(keys, options)
    }

    fn lookup(&self, name: &str) -> BoxFuture<'_, Result<Destination, CoreError>> {
        self.0.lookup(name)
    }

    fn datagrams(&self) -> Option<&dyn DatagramCore> {
        Some(self)
    }
}

impl DatagramCore for NoSharing {
    fn open_datagram_session(
        &self,
        keys: PrivateKeys,
        options: Options,
        style: DatagramStyle,
    ) -> BoxFuture<'_, Result<Arc<dyn DatagramSession>, CoreError>> {
        self.0.open_datagram_session(keys, options, style)
    }
}

#[tokio::test]
async fn a_backend_that_cannot_is_answered_command_not_supported() {
    let no_datagrams = |local| Arc::new(NoDatagrams(local)) as Arc<dyn StreamingCore>;
    let no_sharing = |local| Arc::new(NoSharing(local)) as Arc<dyn StreamingCore>;
    for wrap in [no_datagrams, no_sharing] {
        let mut net = Net::start_on(Some(wrap), &[]).await;
        let mut control = TcpStream::connect(("127.0.0.1", net.socks)).await.unwrap();
        let reply = associate_reply(&mut control, "127.0.0.1:0".parse().unwrap()).await;
        assert_eq!(reply[1], 7, "command not supported: {reply:?}");
        net.wait_stat("failed", 1).await;
        // the tunnel opened no datagram session: no udp_* counters
        assert!(!net.stats().await.contains_key("udp_sent"));
    }
}
