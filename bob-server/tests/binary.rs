//! The `bob-server` binary: start-up, refusal of remote addresses, clean exit on SIGTERM
//! and on `zap`.

use tokio::io::BufReader;
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStderr, Command};

mod support;

use bob_testkit::TestClient;
use bob_testkit::process::{sigterm, spawn_listening};
use support::within;

const BIN: &str = env!("CARGO_BIN_EXE_bob-server");

/// Spawns the binary on 127.0.0.1:0; returns it, its address and the log lines so far.
async fn spawn_server() -> (Child, String, Vec<String>, BufReader<ChildStderr>) {
    spawn_server_with(&[]).await
}

/// Like [`spawn_server`] with extra arguments.
async fn spawn_server_with(extra: &[&str]) -> (Child, String, Vec<String>, BufReader<ChildStderr>) {
    let s = spawn_listening(
        Command::new(BIN)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra),
    )
    .await;
    (s.child, s.addr, s.seen, s.stderr)
}

/// One command; the reply line with its `\n`.
async fn command(c: &mut TestClient, line: &str) -> String {
    c.cmd(line).await
}

/// A control connection (the shared test client), exact greeting checked.
async fn connect(addr: &str) -> TestClient {
    TestClient::connect(addr).await
}

/// Nothing more arrives before the connection ends (a reset counts as the end).
async fn expect_eof(c: &mut TestClient) {
    match c.client().read_to_end().await {
        Ok(rest) => assert!(rest.is_empty(), "unexpected bytes {rest:?}"),
        Err(bob_client::ClientError::Timeout(t)) => panic!("no EOF within {t:?}"),
        Err(_) => {}
    }
}

#[tokio::test]
async fn sigterm_stops_tunnels_and_exits_zero() {
    let (mut child, addr, log, _stderr) = spawn_server().await;
    assert!(
        log.iter().any(|l| l.contains("reaches NO I2P network")),
        "start-up log names the local backend's limits: {log:?}"
    );
    let mut c = connect(&addr).await;
    assert_eq!(command(&mut c, "setnick t").await, "OK Nickname set to t\n");
    assert!(command(&mut c, "newkeys").await.starts_with("OK "));
    assert_eq!(command(&mut c, "inhost 127.0.0.1").await, "OK inhost set\n");
    let mut inport = None;
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert_eq!(
            command(&mut c, &format!("inport {port}")).await,
            "OK inbound port set\n"
        );
        if command(&mut c, "start").await == "OK tunnel starting\n" {
            inport = Some(port);
            break;
        }
    }
    let inport = inport.expect("a free port for the tunnel");
    TcpStream::connect(("127.0.0.1", inport))
        .await
        .expect("tunnel listens");

    let status = sigterm(&mut child).await;
    assert!(status.success(), "exit status {status:?}");
    expect_eof(&mut c).await;
    assert!(
        TcpStream::connect(("127.0.0.1", inport)).await.is_err(),
        "tunnel stopped"
    );
}

#[tokio::test]
async fn zap_exits_zero_after_last_connection() {
    let (mut child, addr, _log, _stderr) = spawn_server().await;
    let mut a = connect(&addr).await;
    let mut b = connect(&addr).await;
    assert_eq!(command(&mut a, "zap").await, "OK Bye!\n");
    expect_eof(&mut a).await;
    assert_eq!(command(&mut b, "list").await, "OK Listing done\n");
    assert!(matches!(child.try_wait(), Ok(None)), "still serving b");
    assert_eq!(command(&mut b, "quit").await, "OK Bye!\n");
    let status = within("exit after zap", child.wait()).await.expect("wait");
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test]
async fn refuses_remote_listen_address() {
    let out = Command::new(BIN)
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .await
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to listen on non-loopback address 0.0.0.0:0"),
        "{stderr}"
    );
}

#[tokio::test]
async fn help_names_the_backend_and_rejects_bad_types() {
    let out = Command::new(BIN).arg("--help").output().await.expect("run");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("reaches NO I2P network"), "{help}");
    for flag in [
        "--listen",
        "--allow-remote",
        "--dialect",
        "--newkeys-type",
        "--max-connections",
        "--hosts",
    ] {
        assert!(help.contains(flag), "{flag} in {help}");
    }
    let out = Command::new(BIN)
        .args(["--newkeys-type", "4"])
        .output()
        .await
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported signature type `4`"));
}

#[tokio::test]
async fn hosts_file_and_dialect_flags() {
    use keytools::{CryptoType, PrivateKeys, SigType};
    let dest = PrivateKeys::generate(SigType::Ed25519, CryptoType::ElGamal)
        .expect("keygen")
        .destination()
        .to_base64();
    let path = std::env::temp_dir().join(format!("bob-bin-hosts-{}.txt", std::process::id()));
    std::fs::write(&path, format!("known.i2p={dest}\n")).expect("write hosts");
    let path_str = path.to_str().expect("utf-8 path").to_owned();
    let (mut child, addr, _log, _stderr) = spawn_server_with(&[
        "--hosts",
        &path_str,
        "--dialect",
        "i2pd",
        "--newkeys-type",
        "7",
    ])
    .await;
    let _ = std::fs::remove_file(&path);
    let mut c = connect(&addr).await;
    assert_eq!(
        command(&mut c, "lookup known.i2p").await,
        format!("OK {dest}\n")
    );
    assert_eq!(
        command(&mut c, "lookup other.i2p").await,
        "ERROR Address Not found\n"
    );
    assert_eq!(command(&mut c, "setnick e").await, "OK Nickname set to e\n");
    // --newkeys-type 7: EdDSA destinations (524 base64 characters)
    assert_eq!(command(&mut c, "newkeys").await.len(), 3 + 524 + 1);
    child.kill().await.expect("kill");

    let out = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--hosts",
            "/nonexistent/bob-hosts.txt",
        ])
        .output()
        .await
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/bob-hosts.txt"), "{stderr}");
}

#[tokio::test]
async fn router_flag_selects_sam_and_reports_an_unreachable_router() {
    // A port with nothing behind it: bound, read, released.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let router = format!("sam://{dead}");
    // keep the log pipe open: the server writes to it
    let (mut child, addr, _, _log) = spawn_server_with(&[
        "--router",
        &router,
        "--tunnel-option",
        "inbound.length=0",
        "--session-timeout",
        "5",
    ])
    .await;
    let mut c = connect(&addr).await;
    assert_eq!(command(&mut c, "setnick s").await, "OK Nickname set to s\n");
    assert!(command(&mut c, "newkeys").await.starts_with("OK "));
    let props = command(&mut c, "showprops").await;
    assert!(props.contains("inbound.length=0"), "{props}");
    assert!(!props.contains("inbound.length=3"), "{props}");
    assert_eq!(command(&mut c, "outport 9").await, "OK outbound port set\n");
    let reply = command(&mut c, "start").await;
    assert!(reply.starts_with("ERROR starting tunnel: "), "{reply}");
    // still usable, tunnel not active
    assert!(command(&mut c, "status s").await.contains("RUNNING: false"));
    child.kill().await.unwrap();

    for bad in ["http://x:1", "sam://:7656", "sam://h:0", "sam://h"] {
        let out = Command::new(BIN)
            .args(["--router", bad])
            .output()
            .await
            .unwrap();
        assert!(!out.status.success(), "{bad}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("invalid"),
            "{bad}"
        );
    }
    let out = Command::new(BIN)
        .args(["--tunnel-option", "novalue"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
}
