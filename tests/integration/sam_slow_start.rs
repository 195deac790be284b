//! Real clients' command sequences against bob-server on a fake SAM router that takes
//! its time to build sessions (issue 14): `start` answers within `--start-wait` plus a
//! second, the tunnel shows STARTING until its session is up, connections made
//! meanwhile are held and then served, `stop` aborts a pending start, and a start that
//! fails after its reply is reported.
//!
//! The fake router ([`SlowRouter`]) answers `SESSION CREATE` after [`SESSION_DELAY`]
//! (or fails it), and connects `STREAM CONNECT`s to the `STREAM ACCEPT`s of the session
//! holding the destination, so data really goes from one tunnel to the other. Every
//! reply is awaited at most [`REPLY_TIMEOUT`], the patience of the clients in question.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bob_integration_tests::{TestServer, start_server_with, test_config};
use bob_server::backend::sam::{SamConfig, SamCore};
use bob_server::config::Config;
use bob_testkit::{TestClient, poll_until, within_for};
use keytools::PrivateKeys;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// How long the fake router takes to build a session: longer than every client's
/// reply timeout, as i2pd's ~20 s is.
const SESSION_DELAY: Duration = Duration::from_secs(6);

/// A client's patience for one reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// The start wait the server runs with (its default).
const START_WAIT: Duration = bob_server::config::DEFAULT_START_WAIT;

/// Bound on waits for a real router (i2pd 2.45 builds a session in ~20 s).
const ROUTER_LIMIT: Duration = Duration::from_secs(120);

/// Bound on a whole sequence.
const SEQUENCE_LIMIT: Duration = Duration::from_secs(30);

/// What the fake does with `SESSION CREATE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Creates {
    /// `RESULT=OK` after the delay
    Succeed,
    /// `RESULT=I2P_ERROR` after the delay
    Fail,
}

/// A socket for a session's pairing queue.
enum Arrival {
    /// a `STREAM ACCEPT` (already answered `RESULT=OK`)
    Acceptor(BufReader<TcpStream>),
    /// a `STREAM CONNECT` from the destination given
    Connect(BufReader<TcpStream>, String),
}

#[derive(Default)]
struct RouterState {
    /// session id -> the session's queue of `STREAM ACCEPT`s and `STREAM CONNECT`s
    acceptors: HashMap<String, mpsc::UnboundedSender<Arrival>>,
    /// public destination (base64) -> session id
    by_dest: HashMap<String, String>,
    /// control sockets closed before their `SESSION STATUS` (aborted creations)
    aborted: usize,
    /// sessions closed by the client (after their `SESSION STATUS`)
    closed: usize,
    /// keys (`DESTINATION=`) -> `SESSION CREATE`s under way or sessions open with them
    holding: HashMap<String, usize>,
    /// `SESSION CREATE`s for keys another creation or session still held (i2pd shares
    /// the destination then, and breaks both when one closes)
    overlaps: usize,
    /// sessions created
    created: usize,
}

/// A SAM router on loopback whose sessions take [`SESSION_DELAY`] to come up.
struct SlowRouter {
    addr: String,
    state: Arc<Mutex<RouterState>>,
}

impl SlowRouter {
    async fn start(creates: Creates) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state: Arc<Mutex<RouterState>> = Arc::default();

        let st = state.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(serve(BufReader::new(sock), st.clone(), creates));
            }
        });
        Self { addr, state }
    }

    fn config(&self) -> SamConfig {
        let mut sam = SamConfig::new(self.addr.clone());
        sam.connect_retry = Duration::from_secs(5);
        sam.connect_retry_interval = Duration::from_millis(50);
        sam.reuse_grace = Duration::ZERO;
        sam
    }

    /// Creations given up before their reply, plus sessions closed after it: what the
    /// router saw of starts that were stopped.
    fn abandoned(&self) -> usize {
        let s = self.state.lock().unwrap();
        s.aborted + s.closed
    }

    fn overlaps(&self) -> usize {
        self.state.lock().unwrap().overlaps
    }
}

/// Counts a `SESSION CREATE`'s keys as held until dropped.
struct Holding {
    state: Arc<Mutex<RouterState>>,
    keys: String,
}

impl Holding {
    fn new(state: &Arc<Mutex<RouterState>>, keys: &str) -> Self {
        let mut s = state.lock().unwrap();
        let n = s.holding.entry(keys.to_owned()).or_default();
        *n += 1;
        if *n > 1 {
            s.overlaps += 1;
        }
        Self {
            state: Arc::clone(state),
            keys: keys.to_owned(),
        }
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        if let Ok(mut s) = self.state.lock()
            && let Some(n) = s.holding.get_mut(&self.keys)
        {
            *n -= 1;
        }
    }
}

async fn line(r: &mut BufReader<TcpStream>) -> Option<String> {
    let mut s = String::new();
    match r.read_line(&mut s).await {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(s.trim_end().to_owned()),
    }
}

fn field<'a>(cmd: &'a str, key: &str) -> Option<&'a str> {
    cmd.split(' ')
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

async fn serve(mut r: BufReader<TcpStream>, state: Arc<Mutex<RouterState>>, creates: Creates) {
    if line(&mut r).await.is_none() {
        return;
    }
    let _ = r
        .get_mut()
        .write_all(b"HELLO REPLY RESULT=OK VERSION=3.1\n")
        .await;
    let Some(cmd) = line(&mut r).await else {
        return;
    };
    if cmd.starts_with("SESSION CREATE") {
        let id = field(&cmd, "ID").unwrap_or_default().to_owned();
        let keys = field(&cmd, "DESTINATION").unwrap_or_default().to_owned();
        let _holding = Holding::new(&state, &keys);
        // the client may give up meanwhile: it closes the socket
        let mut probe = [0u8; 1];
        let ready = tokio::time::Instant::now() + SESSION_DELAY;
        let gave_up = tokio::select! {
            () = tokio::time::sleep_until(ready) => false,
            _ = r.read(&mut probe) => true,
        };
        if gave_up {
            // as i2pd 2.45: the destination stays taken until the creation would
            // have finished
            tokio::time::sleep_until(ready).await;
            state.lock().unwrap().aborted += 1;
            return;
        }
        if creates == Creates::Fail {
            let _ = r
                .get_mut()
                .write_all(b"SESSION STATUS RESULT=I2P_ERROR MESSAGE=\"no tunnels\"\n")
                .await;
            return;
        }
        let dest = PrivateKeys::from_base64(&keys)
            .expect("keys")
            .destination()
            .to_base64();
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let mut s = state.lock().unwrap();
            s.acceptors.insert(id.clone(), tx);
            s.by_dest.insert(dest, id.clone());
            s.created += 1;
        }
        accept_queue(rx);
        let _ = r
            .get_mut()
            .write_all(format!("SESSION STATUS RESULT=OK DESTINATION={keys}\n").as_bytes())
            .await;
        while line(&mut r).await.is_some() {}
        let mut s = state.lock().unwrap();
        s.closed += 1;
        s.acceptors.remove(&id);
        s.by_dest.retain(|_, v| *v != id);
    } else if cmd.starts_with("STREAM ACCEPT") {
        let id = field(&cmd, "ID").unwrap_or_default();
        let tx = state.lock().unwrap().acceptors.get(id).cloned();
        match tx {
            Some(tx) => {
                let _ = r.get_mut().write_all(b"STREAM STATUS RESULT=OK\n").await;
                let _ = tx.send(Arrival::Acceptor(r));
            }
            None => {
                let _ = r
                    .get_mut()
                    .write_all(b"STREAM STATUS RESULT=INVALID_ID\n")
                    .await;
            }
        }
    } else if cmd.starts_with("STREAM CONNECT") {
        let id = field(&cmd, "ID").unwrap_or_default().to_owned();
        let to = field(&cmd, "DESTINATION").unwrap_or_default().to_owned();
        let (target, from) = {
            let s = state.lock().unwrap();
            let from = s
                .by_dest
                .iter()
                .find(|(_, v)| **v == id)
                .map(|(k, _)| k.clone());
            (
                s.by_dest.get(&to).and_then(|t| s.acceptors.get(t).cloned()),
                from,
            )
        };
        let (Some(target), Some(from)) = (target, from) else {
            let _ = r
                .get_mut()
                .write_all(b"STREAM STATUS RESULT=CANT_REACH_PEER\n")
                .await;
            return;
        };
        let _ = target.send(Arrival::Connect(r, from));
    }
}

/// Pairs each `STREAM CONNECT` to the session with its next `STREAM ACCEPT`: the
/// connector gets `RESULT=OK`, the acceptor the connector's destination line, then
/// bytes flow both ways.
fn accept_queue(mut rx: mpsc::UnboundedReceiver<Arrival>) {
    tokio::spawn(async move {
        let mut acceptors = Vec::new();
        let mut connects = Vec::new();
        while let Some(arrival) = rx.recv().await {
            match arrival {
                Arrival::Acceptor(sock) => acceptors.push(sock),
                Arrival::Connect(sock, from) => connects.push((sock, from)),
            }
            while !acceptors.is_empty() && !connects.is_empty() {
                let mut acc: BufReader<TcpStream> = acceptors.remove(0);
                let (mut con, from): (BufReader<TcpStream>, String) = connects.remove(0);
                tokio::spawn(async move {
                    let _ = con.get_mut().write_all(b"STREAM STATUS RESULT=OK\n").await;
                    let _ = acc
                        .get_mut()
                        .write_all(format!("{from}\n").as_bytes())
                        .await;
                    let _ = tokio::io::copy_bidirectional(&mut acc, &mut con).await;
                });
            }
        }
    });
}

/// A control connection with a client's patience ([`REPLY_TIMEOUT`] per reply).
async fn client(addr: std::net::SocketAddr) -> TestClient {
    let mut c = TestClient::connect(addr).await;
    c.set_deadline(REPLY_TIMEOUT);
    c
}

/// A server on `sam` with its defaults (start wait included) and `connect_timeout`.
async fn bob_on(sam: SamConfig, connect_timeout: Duration) -> TestServer {
    let mut config: Config = test_config(bob_codec::Dialect::Java);
    config.tunnel_limits.connect_timeout = connect_timeout;
    config.start_wait = START_WAIT;
    start_server_with(config, Arc::new(SamCore::new(sam))).await
}

/// Creates and starts a quiet server tunnel `nick` to an echo application (txi2p's
/// server-tunnel sequence, then `quit`); returns its destination.
async fn echo_tunnel(addr: std::net::SocketAddr, nick: &str) -> String {
    let (echo, _lines) = bob_testkit::echo_app(true).await;
    let mut c = client(addr).await;
    c.expect(
        &format!("setnick {nick}"),
        &format!("OK Nickname set to {nick}"),
    )
    .await;
    let dest = c.ok_text("newkeys").await;
    c.expect("outhost 127.0.0.1", "OK outhost set").await;
    c.expect(&format!("outport {}", echo.port()), "OK outbound port set")
        .await;
    c.expect("quiet true", "OK Quiet set").await;
    c.expect("start", "OK tunnel starting").await;
    c.expect("quit", "OK Bye!").await;
    dest
}

/// Sets up client tunnel `nick` on a free inport up to (not including) `start`;
/// returns the inport.
async fn client_tunnel(c: &mut TestClient, nick: &str) -> u16 {
    c.expect(
        &format!("setnick {nick}"),
        &format!("OK Nickname set to {nick}"),
    )
    .await;
    c.ok_text("newkeys").await;
    c.ok_text("getkeys").await;
    c.expect("inhost 127.0.0.1", "OK inhost set").await;
    let port = bob_testkit::free_port();
    c.expect(&format!("inport {port}"), "OK inbound port set")
        .await;
    port
}

/// An application on `inport`: sends the destination line and `data` at once.
async fn app(inport: u16, dest: &str, data: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", inport)).await.unwrap();
    s.write_all(format!("{dest}\n").as_bytes()).await.unwrap();
    s.write_all(data).await.unwrap();
    s
}

/// Reads `len` bytes, or everything up to the close when the first bytes are an
/// `ERROR` line.
async fn read_back(s: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut back = Vec::new();
    let mut buf = [0u8; 4096];
    while back.len() < len || back.starts_with(b"ERROR ") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => back.extend_from_slice(&buf[..n]),
        }
    }
    back
}

/// Which real client's sequence to replay.
#[derive(Debug, Clone, Copy)]
enum Sequence {
    /// txi2p: `start`, `quit`, connect right away
    Txi2p,
    /// libbob (Transmission): `start`, poll `status` until `RUNNING: true`, connect
    Libbob,
    /// RetroShare: `start`, `quit` at once, health check by `list` later, connect
    RetroShare,
}

/// Replays `seq` for a client tunnel to `dest` (an echo behind a server tunnel) and
/// requires the data to come back. Returns the time from `start` to the first byte.
async fn replay(addr: std::net::SocketAddr, seq: Sequence, dest: &str) -> Duration {
    let nick = format!("{seq:?}").to_lowercase();
    let mut c = client(addr).await;
    c.list().await;
    let inport = client_tunnel(&mut c, &nick).await;
    let data = bob_testkit::pattern(10_000);
    let started = tokio::time::Instant::now();
    c.expect("start", "OK tunnel starting").await;
    let mut s = match seq {
        Sequence::Txi2p => {
            c.expect("quit", "OK Bye!").await;
            app(inport, dest, &data).await
        }
        Sequence::Libbob => {
            within_for(ROUTER_LIMIT, "status RUNNING", async {
                while !c
                    .line(&format!("status {nick}"))
                    .await
                    .contains("RUNNING: true")
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
            .await;
            c.expect("quit", "OK Bye!").await;
            app(inport, dest, &data).await
        }
        Sequence::RetroShare => {
            c.expect("quit", "OK Bye!").await;
            let mut later = client(addr).await;
            within_for(ROUTER_LIMIT, "list shows the tunnel running", async {
                loop {
                    let lines = later.list().await;
                    let up = lines.iter().any(|l| {
                        l.contains(&format!("NICKNAME: {nick} ")) && l.contains("RUNNING: true")
                    });
                    if up {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
            .await;
            app(inport, dest, &data).await
        }
    };
    let mut first = [0u8; 1];
    s.read_exact(&mut first).await.unwrap();
    let elapsed = started.elapsed();
    let mut back = first.to_vec();
    back.extend(read_back(&mut s, data.len() - 1).await);
    assert_eq!(
        back.len(),
        data.len(),
        "{seq:?}: {:?}",
        String::from_utf8_lossy(&back[..back.len().min(80)])
    );
    assert!(back == data, "{seq:?}: the echo differs");
    elapsed
}

/// i2p.rb's Tunnel API and the Java demos' delete loop: `start`, then soon `stop` and
/// `clear` retried while `ERROR tunnel is active`; it must end within a few seconds.
async fn start_then_delete(addr: std::net::SocketAddr, nick: &str) {
    let mut c = client(addr).await;
    let inport = client_tunnel(&mut c, nick).await;
    c.expect("start", "OK tunnel starting").await;
    c.expect("stop", "OK tunnel stopping").await;
    within_for(Duration::from_secs(8), "clear after stop", async {
        loop {
            let reply = c.line("clear").await;
            if reply == "OK cleared" {
                break;
            }
            assert_eq!(reply, "ERROR tunnel is active");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    // the port is free again
    std::net::TcpListener::bind(("127.0.0.1", inport)).expect("inport released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_sequences_succeed_on_a_slow_router() {
    let router = SlowRouter::start(Creates::Succeed).await;
    let server = bob_on(router.config(), Duration::from_secs(30)).await;
    within_for(SEQUENCE_LIMIT, "all sequences", async {
        let dest = echo_tunnel(server.addr, "echo").await;
        let (dest, addr) = (&dest, server.addr);
        let ((), times) = tokio::join!(
            async {
                start_then_delete(server.addr, "rb").await;
                start_then_delete(server.addr, "java").await;
            },
            async {
                tokio::join!(
                    replay(addr, Sequence::Txi2p, dest),
                    replay(addr, Sequence::Libbob, dest),
                    replay(addr, Sequence::RetroShare, dest),
                )
            }
        );
        let times = [times.0, times.1, times.2];
        for t in times {
            assert!(
                t >= SESSION_DELAY / 2,
                "data before the session existed: {t:?}"
            );
        }
    })
    .await;
    poll_until(
        "the stopped starts' sessions closed on the router",
        || async { (router.abandoned() >= 2).then_some(()) },
    )
    .await;
    assert_eq!(
        router.overlaps(),
        0,
        "two sessions with the same keys at once"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_during_starting_aborts_and_the_tunnel_starts_again() {
    let router = SlowRouter::start(Creates::Succeed).await;
    let server = bob_on(router.config(), Duration::from_secs(30)).await;
    let dest = echo_tunnel(server.addr, "echo").await;
    let mut c = client(server.addr).await;
    let inport = client_tunnel(&mut c, "again").await;
    c.expect("start", "OK tunnel starting").await;
    c.expect(
        "status again",
        &format!("OK DATA NICKNAME: again STARTING: true RUNNING: false STOPPING: false KEYS: true QUIET: false INPORT: {inport} INHOST: 127.0.0.1 OUTPORT: not_set OUTHOST: localhost"),
    )
    .await;
    // a held connection learns why it is closed
    let mut held = app(inport, &dest, b"x").await;
    c.expect("stop", "OK tunnel stopping").await;
    let got = within_for(
        REPLY_TIMEOUT,
        "held connection closed",
        read_back(&mut held, 1),
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&got), "ERROR tunnel stopped\n");
    c.wait_status("again", "STARTING: false RUNNING: false STOPPING: false")
        .await;
    std::net::TcpListener::bind(("127.0.0.1", inport)).expect("inport released");
    // and it starts again at once, this time to the end: the new creation waits until
    // the abandoned one (seen through by the server, then closed) is gone, as i2pd
    // would otherwise share the doomed destination with it
    c.expect("start", "OK tunnel starting").await;
    within_for(
        SEQUENCE_LIMIT,
        "running again",
        c.wait_status("again", "RUNNING: true"),
    )
    .await;
    let mut s = app(inport, &dest, b"ping").await;
    assert_eq!(read_back(&mut s, 4).await, b"ping");
    // `ping` over SAM: one timed STREAM CONNECT to the echo tunnel
    let pong = c.line(&format!("ping {dest}")).await;
    assert!(pong.starts_with("OK pong from "), "{pong}");
    assert_eq!(router.abandoned(), 1, "the stopped start's session closed");
    assert_eq!(
        router.overlaps(),
        0,
        "two sessions with the same keys at once"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_failing_after_its_reply_is_reported() {
    let router = SlowRouter::start(Creates::Fail).await;
    let server = bob_on(router.config(), Duration::from_secs(30)).await;
    let mut c = client(server.addr).await;
    let inport = client_tunnel(&mut c, "doomed").await;
    c.expect("start", "OK tunnel starting").await;
    let dest = c.ok_text("getdest").await;
    let mut held = app(inport, &dest, b"x").await;
    let got = within_for(
        SEQUENCE_LIMIT,
        "held connection closed",
        read_back(&mut held, 1),
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        "ERROR router error: I2P_ERROR: no tunnels\n"
    );
    c.wait_status("doomed", "STARTING: false RUNNING: false STOPPING: false")
        .await;
    let stats = c.line("stats").await;
    assert!(stats.contains("last_error="), "{stats}");
    std::net::TcpListener::bind(("127.0.0.1", inport)).expect("inport released");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_connection_outlives_connect_timeout() {
    let router = SlowRouter::start(Creates::Succeed).await;
    let server = bob_on(router.config(), Duration::from_secs(1)).await;
    let mut c = client(server.addr).await;
    let inport = client_tunnel(&mut c, "impatient").await;
    c.expect("start", "OK tunnel starting").await;
    let dest = c.ok_text("getdest").await;
    let mut held = app(inport, &dest, b"x").await;
    let got = within_for(
        REPLY_TIMEOUT,
        "held connection closed",
        read_back(&mut held, 1),
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        "ERROR timed out waiting for the tunnel to start\n"
    );
    server.stop().await;
}

/// The same sequences on the offline i2pd of `scripts/test.sh` (`BOB_TEST_SAM`), with
/// its real ~20-s session creation and the router options given as a deployment would
/// (`--tunnel-option`, here the SAM backend's default options). The sequences run
/// concurrently. Prints each sequence's time from `start` to the first byte back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_sequences_succeed_on_i2pd() {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let Some(addr) = get("BOB_TEST_SAM") else {
        let msg = "BOB_TEST_SAM is not set: the real-router (i2pd) sequences need it; run \
                   scripts/test.sh";
        assert!(get("CI").as_deref() != Some("true"), "CI=true: {msg}");
        eprintln!("\n!!!!!!!! NOT RUN: {msg} !!!!!!!!\n");
        return;
    };
    let mut sam = SamConfig::new(addr);
    sam.default_options = get("BOB_TEST_SAM_OPTS")
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    sam.connect_retry = Duration::from_secs(60);
    sam.reuse_grace = Duration::ZERO;
    // as a deployment on i2pd would: Ed25519 keys from `newkeys` (--newkeys-type 7)
    let mut config: Config = test_config(bob_codec::Dialect::Java);
    config.tunnel_limits.connect_timeout = ROUTER_LIMIT;
    config.newkeys_sig = keytools::SigType::Ed25519;
    // --tunnel-option: over Java's defaults of every new tunnel, as into_config does
    config.default_options = bob_server::backend::sam::merge_options(
        &bob_server::config::java_default_options(),
        sam.default_options.clone(),
    );
    let server = start_server_with(config, Arc::new(SamCore::new(sam))).await;
    let addr = server.addr;
    let limit = ROUTER_LIMIT + SEQUENCE_LIMIT;
    within_for(limit, "all sequences on i2pd", async {
        let dest = echo_tunnel(addr, "echo").await;
        let dest = &dest;
        let ((), (t, l, r)) = tokio::join!(
            async {
                start_then_delete(addr, "rb").await;
                start_then_delete(addr, "java").await;
            },
            async {
                tokio::join!(
                    replay(addr, Sequence::Txi2p, dest),
                    replay(addr, Sequence::Libbob, dest),
                    replay(addr, Sequence::RetroShare, dest),
                )
            }
        );
        eprintln!(
            "i2pd: start to first byte: txi2p {:.1} s, libbob {:.1} s, RetroShare {:.1} s",
            t.as_secs_f64(),
            l.as_secs_f64(),
            r.as_secs_f64()
        );
    })
    .await;
    server.stop().await;
}

/// Several clients start, stop and clear the same tunnels at once while their
/// sessions take [`SESSION_DELAY`] to come up: every command answered within a
/// client's patience, no tunnel stuck STARTING or STOPPING, everything clears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_start_stop_clear_on_a_slow_router() {
    let router = SlowRouter::start(Creates::Succeed).await;
    let server = bob_on(router.config(), Duration::from_secs(30)).await;
    let tunnels = crate::lifecycle_race::racers(3);
    within_for(
        SEQUENCE_LIMIT * 3,
        "the race",
        crate::lifecycle_race::race(
            server.addr,
            &tunnels,
            4,
            8,
            START_WAIT + REPLY_TIMEOUT,
            SEQUENCE_LIMIT,
        ),
    )
    .await;
    assert_eq!(
        router.overlaps(),
        0,
        "two sessions with the same keys at once"
    );
    server.stop().await;
}
