//! The SAM backend against a real router: Debian's i2pd run offline on loopback by
//! `scripts/test.sh` (see `scripts/start-i2pd-offline.sh`).
//!
//! Environment (all set by `scripts/test.sh`):
//! - `BOB_TEST_SAM=127.0.0.1:PORT`: the SAM bridge;
//! - `BOB_TEST_SAM_OPTS="k=v k=v"`: session options the router needs (i2pd 2.45 offline:
//!   0-hop tunnels and the old LeaseSet type);
//! - `BOB_TEST_I2PD_DIR=DATADIR` and `BOB_TEST_I2PD_PORTS="SAM BOB NTCP2 HTTP"`: to kill
//!   and restart the router mid-run.
//!
//! Without them the test fails under `CI=true` and otherwise says loudly that it did not
//! run. One router serves the whole binary; the scenarios run in sequence in one test
//! so that the ~20 s `SESSION CREATE`s of i2pd 2.45 happen in parallel where possible.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bob_server::backend::sam::{SamConfig, SamCore};
use bob_server::backend::{CoreError, Options, Session, StreamingCore, Target};
use bob_server::tunnel::{Endpoint, RunningTunnel, TunnelLimits, TunnelSpec};
use keytools::{CryptoType, Destination, PrivateKeys, SigType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Options for i2pd 2.45 on one offline router (docs: real-router notes §1.1).
const I2PD_OFFLINE_OPTS: &str = "inbound.length=0 outbound.length=0 inbound.quantity=1 \
     outbound.quantity=1 i2cp.leaseSetType=1 i2cp.leaseSetEncType=0";

/// Bound on each wait for the router (sessions take ~20 s on i2pd 2.45).
const ROUTER_LIMIT: Duration = Duration::from_secs(150);

struct Env {
    sam: String,
    options: Options,
    datadir: String,
    ports: Vec<String>,
}

fn env() -> Option<Env> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let ci = get("CI").is_some_and(|v| v == "true" || v == "1");
    let (Some(sam), Some(datadir), Some(ports)) = (
        get("BOB_TEST_SAM"),
        get("BOB_TEST_I2PD_DIR"),
        get("BOB_TEST_I2PD_PORTS"),
    ) else {
        let msg = "BOB_TEST_SAM, BOB_TEST_I2PD_DIR and BOB_TEST_I2PD_PORTS are not set: \
                   the real-router (i2pd) tests need them; run scripts/test.sh";
        if ci {
            panic!("CI=true: {msg}");
        }
        eprintln!("\n!!!!!!!! NOT RUN: {msg} !!!!!!!!\n");
        return None;
    };
    let opts = get("BOB_TEST_SAM_OPTS").unwrap_or_else(|| I2PD_OFFLINE_OPTS.to_owned());
    let options = opts
        .split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("BOB_TEST_SAM_OPTS: k=v pairs");
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let ports: Vec<String> = ports.split_whitespace().map(str::to_owned).collect();
    assert_eq!(ports.len(), 4, "BOB_TEST_I2PD_PORTS: SAM BOB NTCP2 HTTP");
    Some(Env {
        sam,
        options,
        datadir,
        ports,
    })
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scripts")
        .join(name)
}

fn keys() -> PrivateKeys {
    PrivateKeys::generate(SigType::Ed25519, CryptoType::ElGamal).unwrap()
}

/// Accepts on `session` forever: echoes every stream and reports its peer.
fn echo_server(
    session: Arc<dyn Session>,
) -> (JoinHandle<()>, mpsc::UnboundedReceiver<Destination>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            match session.accept().await {
                Ok(inc) => {
                    let _ = tx.send(inc.peer);
                    let (mut r, mut w) = tokio::io::split(inc.stream);
                    tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut r, &mut w).await;
                        let _ = w.shutdown().await;
                    });
                }
                Err(CoreError::Closed) => return,
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
    (task, rx)
}

/// Sends `data` through an echo and checks that exactly it comes back.
async fn echo_roundtrip(
    session: &dyn Session,
    target: Target,
    data: &[u8],
) -> Result<(), CoreError> {
    let stream = session.connect(target).await?;
    let (mut r, mut w) = tokio::io::split(stream);
    let out = data.to_vec();
    let writer = tokio::spawn(async move { w.write_all(&out).await.map(|()| w) });
    let mut back = vec![0u8; data.len()];
    tokio::time::timeout(ROUTER_LIMIT, r.read_exact(&mut back))
        .await
        .map_err(|_| CoreError::Timeout)?
        .map_err(|e| CoreError::Io(e.to_string()))?;
    let _w = writer
        .await
        .unwrap()
        .map_err(|e| CoreError::Io(e.to_string()))?;
    if let Some(i) = back.iter().zip(data).position(|(a, b)| a != b) {
        panic!("echo differs at byte {i} of {}", data.len());
    }
    Ok(())
}

/// Through a client tunnel's listener to `target`: `data` out, the same bytes back.
///
/// # Errors
/// What failed (the tunnel closed the connection, timeout), for retry loops.
async fn try_tunnel_round_trip(
    inbound: SocketAddr,
    target: &Destination,
    data: &[u8],
) -> Result<(), String> {
    let sock = TcpStream::connect(inbound)
        .await
        .map_err(|e| e.to_string())?;
    let (mut r, mut w) = sock.into_split();
    let mut out = format!("{}\n", target.to_base64()).into_bytes();
    out.extend_from_slice(data);
    let writer = tokio::spawn(async move { w.write_all(&out).await.map(|()| w) });
    let mut back = vec![0u8; data.len()];
    tokio::time::timeout(ROUTER_LIMIT, r.read_exact(&mut back))
        .await
        .map_err(|_| "echo through the tunnels timed out".to_owned())?
        .map_err(|e| format!("echo through the tunnels: {e}"))?;
    let _w = writer.await.unwrap().map_err(|e| e.to_string())?;
    if let Some(i) = back.iter().zip(data).position(|(a, b)| a != b) {
        panic!("tunnel echo differs at byte {i} of {}", data.len());
    }
    Ok(())
}

async fn tunnel_round_trip(inbound: SocketAddr, target: &Destination, data: &[u8]) {
    if let Err(e) = try_tunnel_round_trip(inbound, target, data).await {
        panic!("{e}");
    }
}

fn tunnel_spec(nick: &str, keys: &PrivateKeys, options: &Options) -> TunnelSpec {
    TunnelSpec {
        nickname: nick.to_owned(),
        keys: keys.clone(),
        options: options.clone(),
        server_options: Vec::new(),
        inbound: None,
        outbound: None,
        quiet: false,
    }
}

async fn open_pair(
    core: &SamCore,
    a: &PrivateKeys,
    b: &PrivateKeys,
) -> (Arc<dyn Session>, Arc<dyn Session>) {
    let (sa, sb) = tokio::join!(
        core.open_session(a.clone(), Vec::new()),
        core.open_session(b.clone(), Vec::new())
    );
    (sa.expect("session A"), sb.expect("session B"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sam_backend_against_i2pd() {
    let Some(env) = env() else { return };
    let t0 = Instant::now();
    let mut cfg = SamConfig::new(env.sam.clone());
    cfg.default_options = env.options.clone();
    cfg.session_timeout = ROUTER_LIMIT;
    let core = Arc::new(SamCore::new(cfg));
    core.probe().await.expect("SAM bridge answers HELLO");

    // 1. two sessions created in parallel
    let (ka, kb) = (keys(), keys());
    let t = Instant::now();
    // ... together with a server tunnel and a client tunnel of the data path (the
    // registry hands tunnels their options; here the i2pd ones, like BOB `option`s)
    let dyn_core: Arc<dyn StreamingCore> = core.clone();
    let (app, mut app_lines) = crate::support::echo_app().await;
    let (ks, kc) = (keys(), keys());
    let limits = TunnelLimits {
        session_timeout: ROUTER_LIMIT,
        connect_timeout: ROUTER_LIMIT,
        ..TunnelLimits::default()
    };
    let mut srv_spec = tunnel_spec("srv", &ks, &env.options);
    srv_spec.outbound = Some(Endpoint {
        host: "127.0.0.1".into(),
        port: app.port(),
    });
    let mut cli_spec = tunnel_spec("cli", &kc, &env.options);
    cli_spec.inbound = Some(Endpoint {
        host: "127.0.0.1".into(),
        port: 0,
    });
    let ((sa, sb), srv, cli) = tokio::join!(
        open_pair(&core, &ka, &kb),
        RunningTunnel::start(Arc::clone(&dyn_core), srv_spec.clone(), limits.clone()),
        RunningTunnel::start(Arc::clone(&dyn_core), cli_spec, limits.clone()),
    );
    let create = t.elapsed();
    let (mut srv, cli) = (srv.expect("server tunnel"), cli.expect("client tunnel"));
    let inbound = cli.inbound_addr().expect("client tunnel listens");
    assert_eq!(sa.destination(), ka.destination());
    assert_eq!(sb.destination(), kb.destination());
    let (echo_b, mut peers_b) = echo_server(Arc::clone(&sb));

    // 2. A -> B, 1 MiB echoed byte-exact; B learns A's destination
    let data = bob_testkit::pattern_seeded(1 << 20, 7);
    let t = Instant::now();
    echo_roundtrip(&*sa, Target::Destination(kb.destination().clone()), &data)
        .await
        .expect("1 MiB echo A -> B");
    let first_stream = t.elapsed();
    assert_eq!(peers_b.recv().await.as_ref(), Some(ka.destination()));

    // 2b. a half-close after the request does not cut off the reply (i2pd drops the
    //     whole stream when a SAM client half-closes; the backend holds it back)
    let data = bob_testkit::pattern_seeded(100_000, 11);
    let stream = sa
        .connect(Target::Destination(kb.destination().clone()))
        .await
        .expect("connect for half-close");
    let (mut r, mut w) = tokio::io::split(stream);
    w.write_all(&data).await.unwrap();
    w.shutdown().await.unwrap();
    let mut back = vec![0u8; data.len()];
    tokio::time::timeout(ROUTER_LIMIT, r.read_exact(&mut back))
        .await
        .expect("reply after half-close in time")
        .expect("whole reply after half-close");
    assert!(back == data, "reply after half-close differs");
    drop((r, w));
    assert_eq!(peers_b.recv().await.as_ref(), Some(ka.destination()));

    // 2c. the data path over i2pd: client tunnel -> server tunnel -> application, 1 MiB;
    //     the application first gets the client tunnel's destination (not quiet)
    let t = Instant::now();
    tunnel_round_trip(
        inbound,
        &srv.destination().clone(),
        &bob_testkit::pattern_seeded(1 << 20, 5),
    )
    .await;
    let tunnel_first = t.elapsed();
    let line = app_lines.recv().await.expect("peer line");
    assert_eq!(line, format!("{}\n", kc.destination().to_base64()));

    // 3. names: B's b32 resolves through the core and through a session; connect by b32
    let b32 = kb.destination().b32();
    assert_eq!(core.lookup(&b32).await.as_ref(), Ok(kb.destination()));
    assert_eq!(sa.lookup(&b32).await.as_ref(), Ok(kb.destination()));
    assert_eq!(
        core.lookup("no-such-host.i2p").await,
        Err(CoreError::NotFound)
    );
    echo_roundtrip(&*sa, Target::Name(b32.clone()), b"by name")
        .await
        .expect("echo by b32 name");
    assert_eq!(peers_b.recv().await.as_ref(), Some(ka.destination()));

    // 4. stop + start of B with the same keys and options within the grace: reused, fast
    sb.close().await;
    echo_b.await.unwrap();
    assert_eq!(core.parked_sessions(), 1);
    let t = Instant::now();
    let sb = core
        .open_session(kb.clone(), Vec::new())
        .await
        .expect("reopen B");
    let reopen = t.elapsed();
    assert_eq!(core.parked_sessions(), 0, "the parked session was reused");
    let (echo_b, mut peers_b) = echo_server(Arc::clone(&sb));
    echo_roundtrip(
        &*sa,
        Target::Destination(kb.destination().clone()),
        b"after reopen",
    )
    .await
    .expect("echo after reopen");
    assert_eq!(peers_b.recv().await.as_ref(), Some(ka.destination()));

    // 4b. stop + start of the server tunnel: reused session, data flows again
    srv.stop().await;
    let t = Instant::now();
    srv = RunningTunnel::start(Arc::clone(&dyn_core), srv_spec.clone(), limits.clone())
        .await
        .expect("server tunnel restarts");
    let tunnel_restart = t.elapsed();
    tunnel_round_trip(inbound, &ks.destination().clone(), b"tunnel after restart").await;
    let line = app_lines.recv().await.expect("peer line");
    assert_eq!(line, format!("{}\n", kc.destination().to_base64()));

    // 5. the router dies and comes back on the same ports and datadir
    let stop = Command::new(script("stop-i2pd.sh"))
        .arg(&env.datadir)
        .status()
        .unwrap();
    assert!(stop.success());
    let e = sa
        .connect(Target::Destination(kb.destination().clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(e, CoreError::RouterUnavailable(_)),
        "connect while the router is down: {e:?}"
    );
    let t = Instant::now();
    let start = Command::new(script("start-i2pd-offline.sh"))
        .arg(&env.datadir)
        .args(&env.ports)
        .status()
        .unwrap();
    assert!(start.success(), "restarting i2pd");
    let deadline = Instant::now() + ROUTER_LIMIT;
    let mut last = None;
    loop {
        match echo_roundtrip(
            &*sa,
            Target::Destination(kb.destination().clone()),
            b"again",
        )
        .await
        {
            Ok(()) => break,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "no recovery after router restart; last error {e:?}"
                );
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    let recovery = t.elapsed();
    // the running tunnels recovered too: no restart of anything but the router
    let deadline = Instant::now() + ROUTER_LIMIT;
    let target = ks.destination().clone();
    while let Err(e) = try_tunnel_round_trip(inbound, &target, b"tunnels after restart").await {
        assert!(Instant::now() < deadline, "tunnels did not recover: {e}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    while let Ok(line) = app_lines.try_recv() {
        assert_eq!(line, format!("{}\n", kc.destination().to_base64()));
    }
    assert_eq!(peers_b.recv().await.as_ref(), Some(ka.destination()));

    srv.stop().await;
    cli.stop().await;
    sa.close().await;
    sb.close().await;
    echo_b.await.unwrap();
    eprintln!(
        "i2pd timings: 2 sessions in parallel {create:.1?}, first 1 MiB echo {first_stream:.1?}, \
         reopen within grace {reopen:.2?}, tunnels: first 1 MiB {tunnel_first:.1?}, \
         stop+start {tunnel_restart:.2?}; recovery after restart {recovery:.1?} \
         (last error before it: {last:?}), total {:.1?}",
        t0.elapsed()
    );
}
