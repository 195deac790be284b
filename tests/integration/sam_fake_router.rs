//! The SAM backend against a scripted fake router on loopback: every reply shape,
//! malformed replies, routers that hang up, the accept pool, session reuse and
//! reconnection. Each test starts its own fake on port 0.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bob_server::backend::sam::{SamConfig, SamCore};
use bob_server::backend::{CoreError, Options, Session, StreamingCore, Target};
use keytools::{CryptoType, Destination, PrivateKeys, SigType};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, Notify, mpsc};
use tokio::time::{Instant, timeout};

/// Bound on every wait in these tests (they finish in milliseconds when correct).
const LIMIT: Duration = Duration::from_secs(10);

type Handler = Arc<dyn Fn(FakeConn) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// One connection to the fake router, as the fake sees it.
struct FakeConn {
    reader: BufReader<TcpStream>,
    fake: Arc<FakeState>,
}

#[derive(Default)]
struct FakeState {
    /// every command line received after HELLO, in order
    commands: std::sync::Mutex<Vec<String>>,
}

impl FakeConn {
    /// Reads one line without its `\n`; `None` at EOF.
    async fn line(&mut self) -> Option<String> {
        let mut s = String::new();
        match self.reader.read_line(&mut s).await {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(s.trim_end_matches(['\n', '\r']).to_owned()),
        }
    }

    async fn send(&mut self, line: &str) {
        let _ = self
            .reader
            .get_mut()
            .write_all(format!("{line}\n").as_bytes())
            .await;
    }

    async fn raw(&mut self, bytes: &[u8]) {
        let _ = self.reader.get_mut().write_all(bytes).await;
    }

    /// Standard `HELLO`, then the next command line (recorded).
    async fn hello(&mut self) -> Option<String> {
        let hello = self.line().await?;
        assert_eq!(hello, "HELLO VERSION MIN=3.1 MAX=3.3");
        self.send("HELLO REPLY RESULT=OK VERSION=3.1").await;
        let cmd = self.line().await?;
        self.fake.commands.lock().unwrap().push(cmd.clone());
        Some(cmd)
    }

    /// Waits until the client closes.
    async fn until_eof(&mut self) {
        while self.line().await.is_some() {}
    }
}

struct Fake {
    addr: String,
    state: Arc<FakeState>,
}

impl Fake {
    async fn start(handler: Handler) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new(FakeState::default());
        let st = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let conn = FakeConn {
                    reader: BufReader::new(sock),
                    fake: Arc::clone(&st),
                };
                tokio::spawn(handler(conn));
            }
        });
        Self { addr, state }
    }

    fn commands(&self) -> Vec<String> {
        self.state.commands.lock().unwrap().clone()
    }

    fn count(&self, prefix: &str) -> usize {
        self.commands()
            .iter()
            .filter(|c| c.starts_with(prefix))
            .count()
    }

    fn config(&self) -> SamConfig {
        let mut cfg = SamConfig::new(self.addr.clone());
        cfg.session_timeout = Duration::from_secs(5);
        cfg.command_timeout = Duration::from_secs(5);
        cfg.connect_retry = Duration::from_secs(5);
        cfg.connect_retry_interval = Duration::from_millis(20);
        cfg.reconnect_min = Duration::from_millis(20);
        cfg.reconnect_max = Duration::from_millis(200);
        cfg.reuse_grace = Duration::from_secs(30);
        cfg
    }
}

fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(FakeConn) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Arc::new(move |c| Box::pin(f(c)))
}

fn keys() -> PrivateKeys {
    PrivateKeys::generate(SigType::Ed25519, CryptoType::ElGamal).unwrap()
}

fn opts(v: &[(&str, &str)]) -> Options {
    v.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The value of `KEY=` in a command line (unquoted values only).
fn field(line: &str, key: &str) -> Option<String> {
    line.split(' ')
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
}

/// A router that accepts every session and keeps control sockets open until EOF.
async fn serve_session(mut c: FakeConn, cmd: &str) -> bool {
    serve_session_ref(&mut c, cmd).await
}

/// `fut`, or a test failure after [`LIMIT`] (a broken client must fail, not hang).
async fn within<T>(fut: impl Future<Output = T>) -> T {
    bob_testkit::within_for(LIMIT, "a fake-router test step", fut).await
}

/// Lets the spawned `accept` waiter park for sure: on this current-thread runtime the
/// task runs, when this one yields, up to its first wait that is not ready, the wait for
/// a stream or a link change. (After a sleep instead, the waiter could start only after
/// the close or router drop that follows and fail on its "closed" or "router is down"
/// path, so the tests passed even if parked waiters were never woken.)
async fn park<T>(waiter: &tokio::task::JoinHandle<T>) {
    assert_eq!(
        tokio::runtime::Handle::current().runtime_flavor(),
        tokio::runtime::RuntimeFlavor::CurrentThread
    );
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(
        !waiter.is_finished(),
        "accept returned while the router was up"
    );
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn session_create_sends_keys_and_merged_options() {
    let fake = Fake::start(handler(|mut c| async move {
        if let Some(cmd) = c.hello().await {
            serve_session(c, &cmd).await;
        }
    }))
    .await;
    let mut cfg = fake.config();
    cfg.default_options = opts(&[("inbound.length", "0"), ("outbound.length", "0")]);
    let core = SamCore::new(cfg);
    let k = keys();
    let session = core
        .open_session(
            k.clone(),
            opts(&[("inbound.length", "2"), ("note", "two words")]),
        )
        .await
        .unwrap();
    assert_eq!(session.destination(), k.destination());
    let cmds = fake.commands();
    assert_eq!(cmds.len(), 1, "{cmds:?}");
    let id = field(&cmds[0], "ID").unwrap();
    assert!(!id.is_empty());
    assert_eq!(
        cmds[0],
        format!(
            "SESSION CREATE STYLE=STREAM ID={id} DESTINATION={} outbound.length=0 inbound.length=2 note=\"two words\"",
            k.to_base64()
        )
    );
    assert_eq!(core.name(), "sam");
}

/// Runs `SESSION CREATE` against a fake that answers `reply` (raw bytes, written as is).
async fn create_with_reply(reply: &'static [u8]) -> CoreError {
    let fake = Fake::start(handler(move |mut c| async move {
        if c.hello().await.is_some() {
            c.raw(reply).await;
            c.until_eof().await;
        }
    }))
    .await;
    let core = SamCore::new(fake.config());
    timeout(LIMIT, core.open_session(keys(), Vec::new()))
        .await
        .expect("open_session hung")
        .unwrap_err()
}

#[tokio::test]
async fn session_create_reply_shapes() {
    let e = create_with_reply(
        b"SESSION STATUS RESULT=I2P_ERROR MESSAGE=\"no tunnels, \\\"sorry\\\"\"\n",
    )
    .await;
    assert_eq!(
        e,
        CoreError::Router("I2P_ERROR: no tunnels, \"sorry\"".into())
    );
    assert!(e.to_string().contains("no tunnels"));

    let e = create_with_reply(b"SESSION STATUS RESULT=DUPLICATED_DEST\n").await;
    assert_eq!(e, CoreError::DuplicateDestination);

    let e = create_with_reply(b"SESSION STATUS RESULT=INVALID_KEY MESSAGE=\"bad key\"\r\n").await;
    assert_eq!(e, CoreError::Router("INVALID_KEY: bad key".into()));

    let e = create_with_reply(b"SESSION STATUS RESULT=TIMEOUT\n").await;
    assert_eq!(e, CoreError::Router("TIMEOUT".into()));

    let e = create_with_reply(b"SESSION STATUS RESULT=BRAND_NEW_CODE MESSAGE=x\n").await;
    assert_eq!(e, CoreError::Router("BRAND_NEW_CODE: x".into()));
}

#[tokio::test]
async fn malformed_replies_are_errors() {
    for (reply, expect) in [
        (&b"%%% garbage %%%\n"[..], "malformed"),
        (b"SESSION STATUS DESTINATION=abc\n", "without RESULT"),
        (b"STREAM STATUS RESULT=OK\n", "expected SESSION STATUS"),
        (
            b"SESSION STATUS RESULT=OK MESSAGE=\"unterminated\n",
            "unterminated",
        ),
        (b"SESSION STATUS RESULT=OK \xff\xfe\n", "UTF-8"),
    ] {
        let e = create_with_reply(reply).await;
        match &e {
            CoreError::Router(m) => assert!(m.contains(expect), "{m:?} lacks {expect:?}"),
            other => panic!("{reply:?}: {other:?}"),
        }
    }
    // an endless line: refused once it passes the bound, no unbounded buffering
    let long: &'static [u8] = Box::leak(vec![b'A'; 100_000].into_boxed_slice());
    let e = create_with_reply(long).await;
    assert!(
        matches!(&e, CoreError::Router(m) if m.contains("longer than")),
        "{e:?}"
    );
}

#[tokio::test]
async fn routers_that_hang_up_or_stay_silent() {
    // closes without answering HELLO
    let fake = Fake::start(handler(|mut c| async move {
        let _ = c.line().await;
    }))
    .await;
    let e = SamCore::new(fake.config())
        .open_session(keys(), Vec::new())
        .await
        .unwrap_err();
    assert!(matches!(e, CoreError::RouterUnavailable(_)), "{e:?}");

    // closes after HELLO, in the middle of the SESSION STATUS line
    let fake = Fake::start(handler(|mut c| async move {
        if c.hello().await.is_some() {
            c.raw(b"SESSION STATUS RES").await;
        }
    }))
    .await;
    let e = SamCore::new(fake.config())
        .open_session(keys(), Vec::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CoreError::RouterUnavailable(m) if m.contains("middle")),
        "{e:?}"
    );

    // refuses our versions
    let fake = Fake::start(handler(|mut c| async move {
        let _ = c.line().await;
        c.send("HELLO REPLY RESULT=NOVERSION").await;
        c.until_eof().await;
    }))
    .await;
    let e = SamCore::new(fake.config())
        .open_session(keys(), Vec::new())
        .await
        .unwrap_err();
    assert_eq!(e, CoreError::Router("NOVERSION".into()));

    // never answers SESSION CREATE: bounded by session_timeout
    let fake = Fake::start(handler(|mut c| async move {
        if c.hello().await.is_some() {
            c.until_eof().await;
        }
    }))
    .await;
    let mut cfg = fake.config();
    cfg.session_timeout = Duration::from_millis(300);
    let e = timeout(LIMIT, SamCore::new(cfg).open_session(keys(), Vec::new()))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e, CoreError::Timeout);

    // nothing listens
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let core = SamCore::new(SamConfig::new(format!("127.0.0.1:{port}")));
    let e = core.open_session(keys(), Vec::new()).await.unwrap_err();
    assert!(
        matches!(&e, CoreError::RouterUnavailable(m) if m.contains(&port.to_string())),
        "{e:?}"
    );
    assert!(core.probe().await.is_err());
}

#[tokio::test]
async fn bad_options_are_refused_before_the_router_is_asked() {
    let fake = Fake::start(handler(|mut c| async move {
        if let Some(cmd) = c.hello().await {
            serve_session(c, &cmd).await;
        }
    }))
    .await;
    let core = SamCore::new(fake.config());
    for bad in [
        opts(&[("a", "line\nbreak")]),
        opts(&[("bad key", "1")]),
        opts(&[("DESTINATION", "TRANSIENT")]),
    ] {
        let e = core.open_session(keys(), bad).await.unwrap_err();
        assert!(matches!(e, CoreError::Router(_)), "{e:?}");
    }
    assert!(fake.commands().is_empty());
    core.probe().await.unwrap();
}

/// A router whose `STREAM CONNECT` answers come from `replies` in turn (the last one
/// repeats); on `RESULT=OK` it sends `early` right behind the status line and echoes.
fn connect_router(replies: Vec<&'static str>, lookups: Vec<String>) -> Handler {
    let replies = Arc::new(replies);
    let lookups = Arc::new(lookups);
    let n = Arc::new(AtomicUsize::new(0));
    let l = Arc::new(AtomicUsize::new(0));
    handler(move |mut c| {
        let replies = Arc::clone(&replies);
        let lookups = Arc::clone(&lookups);
        let n = Arc::clone(&n);
        let l = Arc::clone(&l);
        async move {
            let Some(cmd) = c.hello().await else { return };
            if serve_session_ref(&mut c, &cmd).await {
                return;
            }
            if cmd.starts_with("NAMING LOOKUP") {
                let i = l.fetch_add(1, Ordering::SeqCst).min(lookups.len() - 1);
                c.send(&lookups[i]).await;
                c.until_eof().await;
            } else if cmd.starts_with("STREAM CONNECT") {
                let i = n.fetch_add(1, Ordering::SeqCst).min(replies.len() - 1);
                let reply = replies[i];
                if reply.contains("RESULT=OK") {
                    c.raw(format!("{reply}\nearly").as_bytes()).await;
                    let mut buf = [0u8; 4096];
                    loop {
                        match c.reader.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(k) => c.raw(&buf[..k]).await,
                        }
                    }
                } else {
                    c.send(reply).await;
                    c.until_eof().await;
                }
            }
        }
    })
}

/// [`serve_session`] on a connection the caller's future keeps owning.
async fn serve_session_ref(c: &mut FakeConn, cmd: &str) -> bool {
    if cmd.starts_with("SESSION CREATE") {
        let dest = field(cmd, "DESTINATION").unwrap_or_default();
        c.send(&format!("SESSION STATUS RESULT=OK DESTINATION={dest}"))
            .await;
        c.until_eof().await;
        c.fake
            .commands
            .lock()
            .unwrap()
            .push("<control closed>".into());
        true
    } else {
        false
    }
}

#[tokio::test]
async fn connect_retries_cant_reach_peer_then_streams() {
    let fake = Fake::start(connect_router(
        vec![
            "STREAM STATUS RESULT=CANT_REACH_PEER",
            "STREAM STATUS RESULT=CANT_REACH_PEER MESSAGE=\"no leaseset\"",
            "STREAM STATUS RESULT=OK",
        ],
        vec![String::new()],
    ))
    .await;
    let core = SamCore::new(fake.config());
    let session = core.open_session(keys(), Vec::new()).await.unwrap();
    let peer = keys().destination().clone();
    let mut stream = session
        .connect(Target::Destination(peer.clone()))
        .await
        .unwrap();
    // bytes that arrived with the status line come first, then the echo
    stream.write_all(b" and echo").await.unwrap();
    let mut got = vec![0u8; "early and echo".len()];
    timeout(LIMIT, stream.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"early and echo");

    let cmds = fake.commands();
    let id = field(&cmds[0], "ID").unwrap();
    let connects: Vec<_> = cmds
        .iter()
        .filter(|c| c.starts_with("STREAM CONNECT"))
        .collect();
    assert_eq!(connects.len(), 3);
    for c in connects {
        assert_eq!(
            *c,
            format!(
                "STREAM CONNECT ID={id} DESTINATION={} SILENT=false",
                peer.to_base64()
            )
        );
    }
}

#[tokio::test]
async fn connect_errors() {
    // keeps failing: the retry window ends with the router's reason
    let fake = Fake::start(connect_router(
        vec!["STREAM STATUS RESULT=CANT_REACH_PEER MESSAGE=\"Can't find leaseset\""],
        vec![String::new()],
    ))
    .await;
    let mut cfg = fake.config();
    cfg.connect_retry = Duration::from_millis(300);
    let core = SamCore::new(cfg);
    let session = core.open_session(keys(), Vec::new()).await.unwrap();
    let target = Target::Destination(keys().destination().clone());
    let e = session.connect(target.clone()).await.unwrap_err();
    assert_eq!(
        e,
        CoreError::Unreachable("CANT_REACH_PEER: Can't find leaseset".into())
    );
    assert!(fake.count("STREAM CONNECT") >= 2);

    for (reply, expect) in [
        (
            "STREAM STATUS RESULT=TIMEOUT",
            CoreError::Unreachable("TIMEOUT".into()),
        ),
        (
            "STREAM STATUS RESULT=INVALID_KEY",
            CoreError::Router("INVALID_KEY".into()),
        ),
        (
            "STREAM STATUS RESULT=I2P_ERROR MESSAGE=\"stream refused\"",
            CoreError::Router("I2P_ERROR: stream refused".into()),
        ),
        (
            "STREAM STATUS RESULT=INVALID_ID",
            CoreError::Router("INVALID_ID".into()),
        ),
    ] {
        let fake = Fake::start(connect_router(vec![reply], vec![String::new()])).await;
        let core = SamCore::new(fake.config());
        let session = core.open_session(keys(), Vec::new()).await.unwrap();
        assert_eq!(session.connect(target.clone()).await.unwrap_err(), expect);
        assert_eq!(fake.count("STREAM CONNECT"), 1, "{reply}: no retry");
    }
}

#[tokio::test]
async fn connect_by_name_looks_the_name_up() {
    let peer = keys().destination().clone();
    let b32 = peer.b32();
    let fake = Fake::start(connect_router(
        vec!["STREAM STATUS RESULT=OK"],
        vec![
            format!("NAMING REPLY RESULT=KEY_NOT_FOUND NAME={b32}"),
            format!(
                "NAMING REPLY RESULT=OK NAME={b32} VALUE={}",
                peer.to_base64()
            ),
        ],
    ))
    .await;
    let core = SamCore::new(fake.config());
    let session = core.open_session(keys(), Vec::new()).await.unwrap();
    let mut s = session.connect(Target::Name(b32.clone())).await.unwrap();
    let mut early = [0u8; 5];
    within(s.read_exact(&mut early)).await.unwrap();
    assert_eq!(&early, b"early");
    let cmds = fake.commands();
    assert_eq!(
        fake.count(&format!("NAMING LOOKUP NAME={b32}")),
        2,
        "{cmds:?}"
    );
    let connect = cmds
        .iter()
        .find(|c| c.starts_with("STREAM CONNECT"))
        .unwrap();
    assert_eq!(
        field(connect, "DESTINATION").unwrap(),
        peer.to_base64(),
        "connects to the looked-up destination"
    );

    // an unknown host name is not retried (i2pd answers INVALID_KEY for it)
    let fake = Fake::start(connect_router(
        vec!["STREAM STATUS RESULT=OK"],
        vec!["NAMING REPLY RESULT=INVALID_KEY NAME=nosuch.i2p".into()],
    ))
    .await;
    let core = SamCore::new(fake.config());
    let session = core.open_session(keys(), Vec::new()).await.unwrap();
    let e = session
        .connect(Target::Name("nosuch.i2p".into()))
        .await
        .unwrap_err();
    assert_eq!(e, CoreError::NotFound);
    assert_eq!(fake.count("NAMING LOOKUP"), 1);
    assert_eq!(fake.count("STREAM CONNECT"), 0);
}

#[tokio::test]
async fn naming_lookup_results() {
    let peer = keys().destination().clone();
    let ok = format!(
        "NAMING REPLY RESULT=OK NAME=x.i2p VALUE={}",
        peer.to_base64()
    );
    for (reply, expect) in [
        (ok, Ok(peer.clone())),
        (
            "NAMING REPLY RESULT=KEY_NOT_FOUND NAME=x.i2p".into(),
            Err(CoreError::NotFound),
        ),
        (
            "NAMING REPLY RESULT=INVALID_KEY NAME=x.i2p".into(),
            Err(CoreError::NotFound),
        ),
        (
            "NAMING REPLY RESULT=WEIRD MESSAGE=\"what\"".into(),
            Err(CoreError::Router("WEIRD: what".into())),
        ),
    ] {
        let fake = Fake::start(connect_router(vec![""], vec![reply.clone()])).await;
        let core = SamCore::new(fake.config());
        assert_eq!(core.lookup("x.i2p").await, expect, "{reply}");
        assert_eq!(
            fake.commands(),
            vec!["NAMING LOOKUP NAME=x.i2p".to_string()]
        );
    }
    // a VALUE that is not a destination, and a reply without VALUE
    for reply in [
        "NAMING REPLY RESULT=OK NAME=x.i2p VALUE=AAAA",
        "NAMING REPLY RESULT=OK NAME=x.i2p",
    ] {
        let fake = Fake::start(connect_router(vec![""], vec![reply.into()])).await;
        let e = SamCore::new(fake.config())
            .lookup("x.i2p")
            .await
            .unwrap_err();
        assert!(matches!(e, CoreError::Router(_)), "{reply}: {e:?}");
    }
    // a full base64 destination needs no router
    let core = SamCore::new(SamConfig::new("127.0.0.1:1"));
    assert_eq!(core.lookup(&peer.to_base64()).await, Ok(peer.clone()));
}

/// A router that queues every `STREAM ACCEPT` connection (after `RESULT=OK`) for the test.
async fn accept_router() -> (Fake, mpsc::UnboundedReceiver<FakeConn>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let fake = Fake::start(handler(move |mut c| {
        let tx = tx.clone();
        async move {
            let Some(cmd) = c.hello().await else { return };
            if serve_session_ref(&mut c, &cmd).await {
                return;
            }
            if cmd.starts_with("STREAM ACCEPT") {
                c.send("STREAM STATUS RESULT=OK").await;
                let _ = tx.send(c);
            }
        }
    }))
    .await;
    (fake, rx)
}

#[tokio::test]
async fn accept_pool_reports_peers_and_keeps_leftover_bytes() {
    let (fake, mut pending) = accept_router().await;
    let mut cfg = fake.config();
    cfg.acceptors = 4;
    let core = SamCore::new(cfg);
    let session: Arc<dyn Session> = core.open_session(keys(), Vec::new()).await.unwrap();
    let id = field(&fake.commands()[0], "ID").unwrap();

    // four STREAM ACCEPTs are outstanding at once
    let mut acceptors = Vec::new();
    for _ in 0..4 {
        let c = timeout(LIMIT, pending.recv()).await.unwrap().unwrap();
        acceptors.push(c);
    }
    for c in fake
        .commands()
        .iter()
        .filter(|c| c.starts_with("STREAM ACCEPT"))
    {
        assert_eq!(*c, format!("STREAM ACCEPT ID={id} SILENT=false"));
    }

    // one peer line is garbage: that stream is dropped, not handed out
    let mut bad = acceptors.pop().unwrap();
    bad.raw(b"this is not a destination!\n").await;
    within(bad.until_eof()).await;

    // three peers arrive at once; a SAM 3.2 peer line carries ports
    let peers: Vec<Destination> = (0..3).map(|_| keys().destination().clone()).collect();
    for (i, (c, p)) in acceptors.iter_mut().zip(&peers).enumerate() {
        let ports = if i == 1 { " FROM_PORT=7 TO_PORT=8" } else { "" };
        c.raw(format!("{}{ports}\npayload {i}", p.to_base64()).as_bytes())
            .await;
    }
    let mut got = Vec::new();
    let mut waiters = Vec::new();
    for _ in 0..3 {
        let s = Arc::clone(&session);
        waiters.push(tokio::spawn(async move { s.accept().await }));
    }
    for w in waiters {
        let mut inc = timeout(LIMIT, w).await.unwrap().unwrap().unwrap();
        let i = peers
            .iter()
            .position(|p| *p == inc.peer)
            .expect("a known peer");
        let want = format!("payload {i}");
        let mut buf = vec![0u8; want.len()];
        within(inc.stream.read_exact(&mut buf)).await.unwrap();
        assert_eq!(buf, want.as_bytes());
        inc.stream.write_all(b"reply").await.unwrap();
        got.push((i, inc));
    }
    got.sort_by_key(|(i, _)| *i);
    assert_eq!(got.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 1, 2]);
    for (c, _) in acceptors.iter_mut().zip(&peers) {
        let mut buf = [0u8; 5];
        within(c.reader.read_exact(&mut buf)).await.unwrap();
        assert_eq!(&buf, b"reply");
    }
    // the pool refills: four more STREAM ACCEPTs
    for _ in 0..4 {
        timeout(LIMIT, pending.recv()).await.unwrap().unwrap();
    }

    // close: accept fails, the pool's sockets are closed
    session.close().await;
    assert_eq!(session.accept().await.unwrap_err(), CoreError::Closed);
    let e = session
        .connect(Target::Destination(peers[0].clone()))
        .await
        .unwrap_err();
    assert_eq!(e, CoreError::Closed);
}

#[tokio::test]
async fn accept_waiter_fails_on_close() {
    let (fake, _pending) = accept_router().await;
    let core = SamCore::new(fake.config());
    let session: Arc<dyn Session> = core.open_session(keys(), Vec::new()).await.unwrap();
    let s = Arc::clone(&session);
    let waiter = tokio::spawn(async move { s.accept().await });
    park(&waiter).await;
    session.close().await;
    let r = timeout(LIMIT, waiter).await.unwrap().unwrap();
    assert_eq!(r.unwrap_err(), CoreError::Closed);
}

#[tokio::test]
async fn session_reuse_within_grace_and_real_close_after() {
    let fake = Fake::start(handler(|mut c| async move {
        if let Some(cmd) = c.hello().await {
            serve_session(c, &cmd).await;
        }
    }))
    .await;
    let mut cfg = fake.config();
    cfg.reuse_grace = Duration::from_millis(400);
    let core = SamCore::new(cfg);
    let k = keys();
    let o = opts(&[("inbound.length", "0")]);

    let s1 = core.open_session(k.clone(), o.clone()).await.unwrap();
    // the same destination twice at once is refused without asking the router
    assert_eq!(
        core.open_session(k.clone(), o.clone()).await.unwrap_err(),
        CoreError::DuplicateDestination
    );
    s1.close().await;
    let s2 = core.open_session(k.clone(), o.clone()).await.unwrap();
    assert_eq!(s2.destination(), k.destination());
    assert_eq!(
        fake.count("SESSION CREATE"),
        1,
        "reused: {:?}",
        fake.commands()
    );
    assert_eq!(fake.count("<control closed>"), 0);

    // after the grace period the control socket is really closed
    s2.close().await;
    eventually("the parked session to close", || {
        fake.count("<control closed>") == 1
    })
    .await;
    let s3 = core.open_session(k.clone(), o.clone()).await.unwrap();
    assert_eq!(fake.count("SESSION CREATE"), 2);

    // other options: the parked session is closed at once and a new one created
    s3.close().await;
    let _s4 = core
        .open_session(k.clone(), opts(&[("inbound.length", "1")]))
        .await
        .unwrap();
    assert_eq!(fake.count("SESSION CREATE"), 3);
    eventually("the replaced session to close", || {
        fake.count("<control closed>") == 2
    })
    .await;
    let cmds = fake.commands();
    let create_pos = cmds
        .iter()
        .rposition(|c| c.starts_with("SESSION CREATE"))
        .unwrap();
    let closed_pos = cmds.iter().rposition(|c| c == "<control closed>").unwrap();
    assert!(
        closed_pos < create_pos,
        "old closed before new created: {cmds:?}"
    );
}

#[tokio::test]
async fn zero_grace_closes_at_once() {
    let fake = Fake::start(handler(|mut c| async move {
        if let Some(cmd) = c.hello().await {
            serve_session(c, &cmd).await;
        }
    }))
    .await;
    let mut cfg = fake.config();
    cfg.reuse_grace = Duration::ZERO;
    let core = SamCore::new(cfg);
    let s = core.open_session(keys(), Vec::new()).await.unwrap();
    s.close().await;
    s.close().await;
    eventually("control close", || fake.count("<control closed>") == 1).await;
}

/// The control socket of the first session is dropped when the test says so; the
/// second `SESSION CREATE` fails, the third waits for `release`, later ones succeed.
struct Flaky {
    drop_control: Notify,
    release: Notify,
    creates: AtomicUsize,
}

#[tokio::test]
async fn reconnects_after_the_router_drops_the_control_socket() {
    let flaky = Arc::new(Flaky {
        drop_control: Notify::new(),
        release: Notify::new(),
        creates: AtomicUsize::new(0),
    });
    let pongs = Arc::new(Mutex::new(Vec::<String>::new()));
    let (acc_tx, mut acc_rx) = mpsc::unbounded_channel::<FakeConn>();
    let f = Arc::clone(&flaky);
    let p = Arc::clone(&pongs);
    let fake = Fake::start(handler(move |mut c| {
        let f = Arc::clone(&f);
        let p = Arc::clone(&p);
        let acc_tx = acc_tx.clone();
        async move {
            let Some(cmd) = c.hello().await else { return };
            if cmd.starts_with("SESSION CREATE") {
                let n = f.creates.fetch_add(1, Ordering::SeqCst);
                let dest = field(&cmd, "DESTINATION").unwrap_or_default();
                match n {
                    0 => {
                        c.send(&format!("SESSION STATUS RESULT=OK DESTINATION={dest}"))
                            .await;
                        c.send("PING 42").await;
                        if let Some(l) = c.line().await {
                            p.lock().await.push(l);
                        }
                        f.drop_control.notified().await;
                        // returning drops the socket: the router is "gone"
                    }
                    1 => {
                        c.send("SESSION STATUS RESULT=I2P_ERROR MESSAGE=\"starting\"")
                            .await
                    }
                    2 => {
                        f.release.notified().await;
                        c.send(&format!("SESSION STATUS RESULT=OK DESTINATION={dest}"))
                            .await;
                        c.until_eof().await;
                    }
                    _ => {
                        c.send(&format!("SESSION STATUS RESULT=OK DESTINATION={dest}"))
                            .await;
                        c.until_eof().await;
                    }
                }
            } else if cmd.starts_with("STREAM CONNECT") {
                c.send("STREAM STATUS RESULT=OK").await;
                c.until_eof().await;
            } else if cmd.starts_with("STREAM ACCEPT") {
                c.send("STREAM STATUS RESULT=OK").await;
                let _ = acc_tx.send(c);
            }
        }
    }))
    .await;
    let pool = fake.config().acceptors;
    let core = SamCore::new(fake.config());
    let session: Arc<dyn Session> = core.open_session(keys(), Vec::new()).await.unwrap();
    let target = Target::Destination(keys().destination().clone());
    session.connect(target.clone()).await.unwrap();

    eventually_async("PONG", || async { !pongs.lock().await.is_empty() }).await;
    assert_eq!(pongs.lock().await.clone(), vec!["PONG 42".to_string()]);

    // wait until the pool is outstanding, then park a waiter on accept
    let mut outstanding = Vec::new();
    for _ in 0..pool {
        outstanding.push(timeout(LIMIT, acc_rx.recv()).await.unwrap().unwrap());
    }
    let s = Arc::clone(&session);
    let waiter = tokio::spawn(async move { s.accept().await });
    park(&waiter).await;

    // the router goes away: control socket and pending accepts break
    flaky.drop_control.notify_one();
    drop(outstanding);
    let r = timeout(LIMIT, waiter).await.unwrap().unwrap();
    assert!(
        matches!(r, Err(CoreError::RouterUnavailable(_))),
        "accept waiter: {r:?}"
    );
    // while it is down, connects and accepts fail with the reason, nothing panics
    let e = session.connect(target.clone()).await.unwrap_err();
    assert!(matches!(e, CoreError::RouterUnavailable(_)), "{e:?}");
    let e = timeout(LIMIT, session.accept()).await.unwrap().unwrap_err();
    assert!(matches!(e, CoreError::RouterUnavailable(_)), "{e:?}");

    // the backoff loop gets past the failed attempt and waits on the third
    eventually("a third SESSION CREATE", || {
        flaky.creates.load(Ordering::SeqCst) >= 3
    })
    .await;
    flaky.release.notify_one();

    // back up: a new connect works, under the new session id
    let deadline = Instant::now() + LIMIT;
    loop {
        match session.connect(target.clone()).await {
            Ok(_) => break,
            Err(CoreError::RouterUnavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("after reconnect: {e:?}"),
        }
    }
    let cmds = fake.commands();
    let creates: Vec<_> = cmds
        .iter()
        .filter(|c| c.starts_with("SESSION CREATE"))
        .collect();
    let new_id = field(creates[2], "ID").unwrap();
    let last_connect = cmds
        .iter()
        .rfind(|c| c.starts_with("STREAM CONNECT"))
        .unwrap();
    assert_eq!(field(last_connect, "ID").unwrap(), new_id);
    // and the accept pool is back on the new session
    let want = format!("STREAM ACCEPT ID={new_id} SILENT=false");
    eventually("the accept pool on the new session", || {
        fake.commands().iter().filter(|c| **c == want).count() == pool
    })
    .await;
    drop(acc_rx);
}

async fn eventually_async<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + LIMIT;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A router whose streams read `req`, then report whether end-of-stream came before
/// they answer `reply`.
async fn half_close_case(forward: bool) -> Vec<String> {
    let events = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let ev = Arc::clone(&events);
    let fake = Fake::start(handler(move |mut c| {
        let ev = Arc::clone(&ev);
        async move {
            let Some(cmd) = c.hello().await else { return };
            if serve_session_ref(&mut c, &cmd).await {
                return;
            }
            c.send("STREAM STATUS RESULT=OK").await;
            let mut req = [0u8; 3];
            if c.reader.read_exact(&mut req).await.is_err() {
                return;
            }
            ev.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&req).into_owned());
            if forward {
                let mut rest = Vec::new();
                let _ = c.reader.read_to_end(&mut rest).await;
                ev.lock().unwrap().push("eof".into());
                c.raw(b"reply").await;
            } else {
                c.raw(b"reply").await;
                let mut rest = Vec::new();
                let _ = c.reader.read_to_end(&mut rest).await;
                ev.lock().unwrap().push("eof".into());
            }
        }
    }))
    .await;
    let mut cfg = fake.config();
    cfg.forward_half_close = forward;
    let core = SamCore::new(cfg);
    let session = core.open_session(keys(), Vec::new()).await.unwrap();
    let mut s = session
        .connect(Target::Destination(keys().destination().clone()))
        .await
        .unwrap();
    s.write_all(b"req").await.unwrap();
    s.shutdown().await.unwrap();
    let mut reply = [0u8; 5];
    within(s.read_exact(&mut reply)).await.unwrap();
    assert_eq!(&reply, b"reply");
    if !forward {
        // the shutdown was held back: writing again is refused locally, and the router
        // has not seen end-of-stream (a negative check: give a forwarded FIN time to land)
        assert!(s.write_all(b"more").await.is_err());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(events.lock().unwrap().clone(), ["req"]);
    }
    drop(s);
    eventually("the stream to end", || events.lock().unwrap().len() == 2).await;
    events.lock().unwrap().clone()
}

#[tokio::test]
async fn half_close_is_held_back_unless_configured() {
    // default: the router sees no end-of-stream until the stream is dropped, so its
    // reply is never cut off (i2pd drops the whole stream on a half-close)
    assert_eq!(half_close_case(false).await, ["req", "eof"]);
    // forwarded: the router answers only after end-of-stream, and the reply still flows
    assert_eq!(half_close_case(true).await, ["req", "eof"]);
}

// ---------------------------------------------------------------- router dies (BOB level)

/// A fake router on a fixed address that can be killed (listener and every connection
/// dropped at once, like a crashed router) and started again on the same port.
struct Killable {
    addr: std::net::SocketAddr,
    state: Arc<FakeState>,
    alive: Option<tokio_util::sync::CancellationToken>,
}

impl Killable {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut fake = Self {
            addr: listener.local_addr().unwrap(),
            state: Arc::default(),
            alive: None,
        };
        fake.serve(listener);
        fake
    }

    /// Serves sessions, echoing `STREAM CONNECT`s and holding `STREAM ACCEPT`s.
    fn serve(&mut self, listener: TcpListener) {
        let token = tokio_util::sync::CancellationToken::new();
        self.alive = Some(token.clone());
        let state = Arc::clone(&self.state);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = token.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((sock, _)) = accepted else { return };
                let mut conn = FakeConn {
                    reader: BufReader::new(sock),
                    fake: Arc::clone(&state),
                };
                let token = token.clone();
                tokio::spawn(async move {
                    let work = async {
                        let Some(cmd) = conn.hello().await else {
                            return;
                        };
                        if serve_session_ref(&mut conn, &cmd).await {
                            return;
                        }
                        if cmd.starts_with("STREAM CONNECT") {
                            conn.send("STREAM STATUS RESULT=OK").await;
                            let mut buf = [0u8; 4096];
                            loop {
                                match conn.reader.read(&mut buf).await {
                                    Ok(0) | Err(_) => break,
                                    Ok(k) => conn.raw(&buf[..k]).await,
                                }
                            }
                        } else if cmd.starts_with("STREAM ACCEPT") {
                            conn.send("STREAM STATUS RESULT=OK").await;
                            conn.until_eof().await;
                        }
                    };
                    // killed: every socket is dropped mid-whatever
                    tokio::select! {
                        () = token.cancelled() => {}
                        () = work => {}
                    }
                });
            }
        });
    }

    fn kill(&mut self) {
        if let Some(token) = self.alive.take() {
            token.cancel();
        }
    }

    async fn restart(&mut self) {
        let addr = self.addr;
        let listener = within(async {
            loop {
                match TcpListener::bind(addr).await {
                    Ok(l) => return l,
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        })
        .await;
        self.serve(listener);
    }

    fn creates(&self) -> usize {
        let commands = self.state.commands.lock().unwrap();
        commands
            .iter()
            .filter(|c| c.starts_with("SESSION CREATE"))
            .count()
    }
}

/// A BOB control connection (on the shared test client), each step within [`LIMIT`]:
/// the control port is responsive.
struct Bob(bob_testkit::TestClient);

impl Bob {
    async fn connect(addr: std::net::SocketAddr) -> Self {
        let mut bob = bob_testkit::TestClient::connect(addr).await;
        bob.set_deadline(LIMIT);
        Self(bob)
    }

    /// One command, one reply line.
    async fn cmd(&mut self, line: &str) -> String {
        self.0.line(line).await
    }

    /// `list`: the number of `DATA` lines before `OK Listing done`.
    async fn list(&mut self) -> usize {
        self.0.list().await.len()
    }
}

/// Through the client tunnel: sends the destination line and `data`, returns what
/// comes back: the echo of `data` (the SAM backend holds half-close back, so the
/// echo is read by length), or everything up to the close, such as an `ERROR` line.
async fn through(inport: u16, target: &str, data: &[u8]) -> Vec<u8> {
    let mut app = within(TcpStream::connect(("127.0.0.1", inport)))
        .await
        .unwrap();
    app.write_all(format!("{target}\n").as_bytes())
        .await
        .unwrap();
    app.write_all(data).await.unwrap();
    let mut back = Vec::new();
    let mut buf = [0u8; 4096];
    within(async {
        while back.len() < data.len() || back.starts_with(b"ERROR ") {
            match app.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => back.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    back
}

/// The router dies under a running bob-server: the tunnel's connections fail with a
/// reported error, the control port keeps answering (`list`, `status`, a `start` that
/// fails cleanly), and once the router is back the same tunnel works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_death_is_reported_and_survived_by_the_server() {
    use bob_server::config::Config;
    use bob_server::server::Server;

    let mut router = Killable::start().await;
    let mut sam = SamConfig::new(router.addr.to_string());
    sam.session_timeout = Duration::from_secs(3);
    sam.command_timeout = Duration::from_secs(3);
    sam.connect_retry = Duration::ZERO;
    sam.reconnect_min = Duration::from_millis(20);
    sam.reconnect_max = Duration::from_millis(200);
    sam.reuse_grace = Duration::ZERO;
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    let server = Server::bind(config, Arc::new(SamCore::new(sam)))
        .await
        .unwrap();
    let control = server.local_addr();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(server.run(shutdown.clone()));

    let mut bob = Bob::connect(control).await;
    assert_eq!(bob.cmd("setnick cli").await, "OK Nickname set to cli");
    assert!(bob.cmd("newkeys").await.starts_with("OK "));
    let inport = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    assert_eq!(
        bob.cmd(&format!("inport {inport}")).await,
        "OK inbound port set"
    );
    assert_eq!(bob.cmd("start").await, "OK tunnel starting");
    let target = keys().destination().to_base64();
    assert_eq!(through(inport, &target, b"up").await, b"up");

    // the router crashes
    router.kill();
    let reply = poll_reply(inport, &target).await;
    assert!(
        reply.starts_with("ERROR router unavailable: "),
        "expected a reported router failure, got {reply:?}"
    );
    // the control port answers everything at once
    assert_eq!(bob.list().await, 1);
    assert!(bob.cmd("status cli").await.contains("RUNNING: true"));
    assert_eq!(bob.cmd("setnick other").await, "OK Nickname set to other");
    assert!(bob.cmd("newkeys").await.starts_with("OK "));
    assert_eq!(bob.cmd("outport 9").await, "OK outbound port set");
    let reply = bob.cmd("start").await;
    assert!(
        reply.starts_with("ERROR starting tunnel: router unavailable"),
        "{reply}"
    );
    assert_eq!(bob.list().await, 2);
    // a second control connection is served too
    let mut other = Bob::connect(control).await;
    assert_eq!(other.list().await, 2);

    // the router comes back: the same running tunnel works again
    let creates_before = router.creates();
    router.restart().await;
    let deadline = Instant::now() + LIMIT;
    loop {
        let back = through(inport, &target, b"again").await;
        if back == b"again" {
            break;
        }
        let text = String::from_utf8_lossy(&back).into_owned();
        assert!(text.starts_with("ERROR "), "{text:?}");
        assert!(Instant::now() < deadline, "tunnel did not recover: {text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        router.creates() > creates_before,
        "session was not re-created"
    );
    // and so does starting a tunnel
    assert_eq!(bob.cmd("start").await, "OK tunnel starting");
    assert_eq!(bob.cmd("quit").await, "OK Bye!");
    drop(other);
    shutdown.cancel();
    within(running).await.unwrap().unwrap();
}

/// Connects through the tunnel until the reply is an `ERROR` line (the first attempts
/// right after the crash may still race the session noticing it); returns that line.
async fn poll_reply(inport: u16, target: &str) -> String {
    let deadline = Instant::now() + LIMIT;
    loop {
        let back = through(inport, target, b"down?").await;
        let text = String::from_utf8_lossy(&back).into_owned();
        if text.starts_with("ERROR ") {
            assert!(
                text.ends_with('\n') && text.matches('\n').count() == 1,
                "{text:?}"
            );
            return text;
        }
        assert!(Instant::now() < deadline, "no error reported: {text:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
