//! `bob-server --router devnet` as a binary (feature `embedded-router`): the start-up
//! line says it reaches no real network, the README's session works unchanged, data
//! crosses the devnet, SIGTERM stops it (BOB first, then the routers within the grace),
//! and a restart on the same `--state-dir` brings the same destination back.
//!
//! Real time (a separate process): the devnet builds its tunnels in some seconds.
#![cfg(feature = "embedded-router")]

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

mod support;
use bob_testkit::process::{Listening, drain, sigterm, spawn_listening_within};
use bob_testkit::{DEADLINE, echo_app, pattern};
use support::{Bob, free_port};

const BIN: &str = env!("CARGO_BIN_EXE_bob-server");
/// Bound on each router-side step in real time.
const LIMIT: Duration = Duration::from_secs(180);

async fn spawn(state: &Path) -> Listening {
    spawn_listening_within(
        LIMIT,
        Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--router", "devnet"])
            .args(["--router-shutdown-grace", "3"])
            .arg("--state-dir")
            .arg(state)
            .env_remove("BOB_ROUTER"),
    )
    .await
}

async fn slow(bob: &mut Bob, line: &str) -> String {
    bob.0.set_deadline(LIMIT);
    let reply = bob.0.line(line).await;
    bob.0.set_deadline(DEADLINE);
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_session_over_a_devnet_binary() {
    let state = std::env::temp_dir().join(format!("bob-embedded-bin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let Listening {
        mut child,
        addr,
        seen,
        stderr,
    } = spawn(&state).await;
    let log = drain(stderr);
    assert!(
        seen.iter()
            .any(|l| l.contains("reaches NO real I2P network")),
        "start-up line: {seen:#?}"
    );

    // the README's session, unchanged (outport: our echo application)
    let (app, mut peers) = echo_app(false).await;
    let mut bob = Bob::connect(&addr).await;
    assert_eq!(
        bob.cmd("setnick myserver").await,
        "OK Nickname set to myserver"
    );
    let newkeys = bob.ok("newkeys").await;
    let dest = newkeys.strip_prefix("OK ").unwrap().to_owned();
    assert_eq!(bob.cmd("outhost 127.0.0.1").await, "OK outhost set");
    assert_eq!(
        bob.cmd(&format!("outport {}", app.port())).await,
        "OK outbound port set"
    );
    let r = slow(&mut bob, "start").await;
    assert!(r.starts_with("OK"), "start: {r}");
    assert_eq!(bob.cmd("quit").await, "OK Bye!");

    // a client tunnel to it: the data goes through the devnet and back
    let mut bob = Bob::connect(&addr).await;
    let inport = free_port();
    bob.ok("setnick myclient").await;
    let cli = bob.ok("newkeys").await[3..].to_owned();
    bob.ok("inhost 127.0.0.1").await;
    bob.ok(&format!("inport {inport}")).await;
    let r = slow(&mut bob, "start").await;
    assert!(r.starts_with("OK"), "start: {r}");
    let data = pattern(64 * 1024);
    tokio::time::timeout(LIMIT, async {
        let s = TcpStream::connect(("127.0.0.1", inport)).await.unwrap();
        let (mut r, mut w) = s.into_split();
        w.write_all(format!("{dest}\n").as_bytes()).await.unwrap();
        w.write_all(&data).await.unwrap();
        let mut back = vec![0u8; data.len()];
        r.read_exact(&mut back).await.unwrap();
        assert!(back == data, "echo differs");
    })
    .await
    .expect("echo over the devnet");
    assert_eq!(peers.recv().await.unwrap().trim_end(), cli);

    // SIGTERM: exit 0, BOB listeners first, then the routers
    let status = sigterm(&mut child).await;
    assert!(status.success(), "{status}");
    let lines = log.await.unwrap();
    assert!(
        lines.iter().any(|l| l.contains("graceful shutdown")),
        "router shutdown logged: {lines:#?}"
    );

    // same state dir: the tunnel comes back with the same destination
    let Listening {
        mut child,
        addr,
        stderr,
        ..
    } = spawn(&state).await;
    let _log = drain(stderr);
    let mut bob = Bob::connect(&addr).await;
    bob.ok("getnick myserver").await;
    assert_eq!(bob.cmd("getdest").await, format!("OK {dest}"));
    bob.ok("quit").await;
    let status = sigterm(&mut child).await;
    assert!(status.success(), "{status}");
    let _ = std::fs::remove_dir_all(&state);
}
