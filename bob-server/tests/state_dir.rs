//! `--state-dir`: every registry change is on disk before its reply; after a crash
//! (`kill -9`) or a clean stop the server comes back with the same tunnels, keys and
//! settings, and the tunnels that ran run again; a damaged state file is reported and
//! kept aside.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bob_server::backend::local::LocalCore;
use bob_server::config::Config;
use bob_server::server::Server;
use bob_server::storage::state::{StateStore, TunnelRecord, tunnel_file_name, write_legacy_file};
use keytools::{CryptoType, PrivateKeys, SigType};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

mod support;

use bob_testkit::process::{sigterm, spawn_listening};
use support::{Bob, free_port, within};

const BIN: &str = env!("CARGO_BIN_EXE_bob-server");

/// A fresh, empty directory under the system temp dir.
fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bob-state-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The bob-server binary with its stderr collected in the background.
struct Proc {
    child: Child,
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    async fn spawn(state_dir: &Path) -> Self {
        Self::spawn_with(&["--state-dir", state_dir.to_str().expect("UTF-8 temp dir")]).await
    }

    async fn spawn_with(args: &[&str]) -> Self {
        let (child, addr, log) = spawn_listening(
            Command::new(BIN)
                .args(["--listen", "127.0.0.1:0"])
                .args(args),
        )
        .await
        .share_log();
        Self { child, addr, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().concat()
    }

    async fn connect(&self) -> Bob {
        Bob::connect(&self.addr).await
    }

    /// SIGKILL: no chance to save or stop anything.
    async fn kill9(mut self) {
        self.child.kill().await.expect("kill -9");
    }

    /// SIGTERM and a clean exit.
    async fn terminate(mut self) {
        let status = sigterm(&mut self.child).await;
        assert!(status.success(), "{status:?}");
    }
}

/// What these tests read through a control connection beyond [`Bob::cmd`].
trait BobExt {
    async fn list(&mut self) -> Vec<String>;
    async fn describe(&mut self, name: &str) -> Vec<String>;
    async fn start_on_free_inport(&mut self) -> u16;
}

impl BobExt for Bob {
    /// `list` as text, all lines.
    async fn list(&mut self) -> Vec<String> {
        self.0.send_raw(b"list\n").await;
        let mut lines = Vec::new();
        loop {
            let line = self.0.read_line().await;
            let done = !line.starts_with("DATA ");
            lines.push(line.trim_end().to_owned());
            if done {
                return lines;
            }
        }
    }

    /// Everything a client can read about one tunnel.
    async fn describe(&mut self, name: &str) -> Vec<String> {
        vec![
            self.cmd(&format!("getnick {name}")).await,
            self.cmd(&format!("status {name}")).await,
            self.cmd("show").await,
            self.cmd("showprops").await,
            self.cmd("getkeys").await,
            self.cmd("getdest").await,
        ]
    }

    async fn start_on_free_inport(&mut self) -> u16 {
        for _ in 0..5 {
            let port = free_port();
            self.ok(&format!("inport {port}")).await;
            if self.cmd("start").await == "OK tunnel starting" {
                return port;
            }
        }
        panic!("no free inbound port");
    }
}

/// Sends `dest` and a line into the inbound port; returns what comes back.
async fn round_trip(inport: u16, dest: &str, line: &str) -> String {
    let s = within("connect inbound", TcpStream::connect(("127.0.0.1", inport)))
        .await
        .expect("inbound port listens");
    let (r, mut w) = s.into_split();
    w.write_all(format!("{dest}\n{line}\n").as_bytes())
        .await
        .unwrap();
    let mut r = BufReader::new(r);
    let mut back = String::new();
    within("echo", r.read_line(&mut back)).await.unwrap();
    back
}

/// Polls `list` until no tunnel is STARTING or STOPPING and `want` tunnels are RUNNING.
async fn wait_running(bob: &mut Bob, want: usize) -> Vec<String> {
    within("restored tunnels running", async {
        loop {
            let list = bob.list().await;
            let running = list.iter().filter(|l| l.contains("RUNNING: true")).count();
            let moving = list
                .iter()
                .any(|l| l.contains("STARTING: true") || l.contains("STOPPING: true"));
            if running == want && !moving {
                return list;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn restart_after_kill_restores_tunnels_keys_and_data_path() {
    let dir = temp_dir("restart");
    let echo = support::line_echo().await;
    let server = Proc::spawn(&dir).await;
    let mut c = server.connect().await;

    // srv: a running server tunnel in front of the echo
    c.ok("setnick srv").await;
    let srv_dest = c.ok("newkeys 7").await["OK ".len()..].to_owned();
    c.ok("outhost 127.0.0.1").await;
    c.ok(&format!("outport {}", echo.port())).await;
    c.ok("quiet true").await;
    c.ok("start").await;
    // cli: a running client tunnel
    c.ok("setnick cli").await;
    c.ok("newkeys").await;
    c.ok("inhost 127.0.0.1").await;
    let inport = c.start_on_free_inport().await;
    // idle: options, quiet, both sides, started once and stopped again
    c.ok("setnick idle").await;
    c.ok("newkeys 7 4").await;
    c.ok("inhost 127.0.0.1").await;
    c.ok(&format!("inport {}", free_port())).await;
    c.ok("outhost localhost").await;
    c.ok(&format!("outport {}", free_port())).await;
    c.ok("quiet true").await;
    c.ok("option inbound.length=1 custom.key=value").await;
    c.ok("start").await;
    c.ok("stop").await;
    // bare: no keys, one port
    c.ok("setnick bare").await;
    c.ok("outport 9").await;
    // gone: created and cleared again
    c.ok("setnick gone").await;
    c.ok("clear").await;
    wait_running(&mut c, 2).await;

    assert_eq!(round_trip(inport, &srv_dest, "before").await, "before\n");
    let list = c.list().await;
    let mut described = Vec::new();
    for name in ["bare", "cli", "idle", "srv"] {
        described.push(c.describe(name).await);
    }
    let keys: Vec<String> = described
        .iter()
        .filter_map(|d| d[4].strip_prefix("OK ").map(str::to_owned))
        .collect();
    assert_eq!(keys.len(), 3, "three tunnels have keys: {described:?}");

    let file = dir.join("tunnels").join(tunnel_file_name("srv"));
    #[cfg(unix)]
    {
        assert_eq!(mode(&file), 0o600, "the tunnel file holds private keys");
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("tunnels")), 0o700);
    }
    drop(c);
    server.kill9().await;

    // same state dir, fresh control port
    let server = Proc::spawn(&dir).await;
    let mut c = server.connect().await;
    let restored = wait_running(&mut c, 2).await;
    assert_eq!(restored, list, "list identical after the restart");
    for (name, before) in ["bare", "cli", "idle", "srv"].iter().zip(&described) {
        assert_eq!(&c.describe(name).await, before, "{name} identical");
    }
    assert_eq!(
        round_trip(inport, &srv_dest, "after kill -9").await,
        "after kill -9\n"
    );

    // a clean stop (SIGTERM) stops the tunnels but keeps them marked running
    drop(c);
    let log = server.log();
    server.terminate().await;
    let server = Proc::spawn(&dir).await;
    let mut c = server.connect().await;
    assert_eq!(wait_running(&mut c, 2).await, list);
    assert_eq!(
        round_trip(inport, &srv_dest, "after SIGTERM").await,
        "after SIGTERM\n"
    );
    // `stop` is remembered
    c.ok("getnick cli").await;
    c.ok("stop").await;
    drop(c);
    let log = log + &server.log();
    server.kill9().await;
    let server = Proc::spawn(&dir).await;
    let mut c = server.connect().await;
    let list = wait_running(&mut c, 1).await;
    assert!(
        list.iter()
            .any(|l| l.starts_with("DATA NICKNAME: cli STARTING: false RUNNING: false")),
        "{list:?}"
    );

    let log = log + &server.log();
    for key in &keys {
        assert!(!log.contains(key.as_str()), "a private key reached the log");
    }
    assert!(
        log.contains("registry restored from the state directory"),
        "{log}"
    );
    server.kill9().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn damaged_state_file_is_reported_kept_aside_and_replaced() {
    let dir = temp_dir("corrupt");
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = b"version = 1\n[[tunnel]\nnickname = \"half";
    std::fs::write(dir.join("registry.toml"), garbage).unwrap();

    let server = Proc::spawn(&dir).await;
    let log = server.log();
    let aside = log
        .split_whitespace()
        .find(|w| w.contains("registry.toml.corrupt-"))
        .unwrap_or_else(|| panic!("log names the kept-aside file: {log}"))
        .trim_end_matches(';')
        .to_owned();
    let aside = aside.strip_prefix("kept_aside=").unwrap_or(&aside);
    assert!(log.contains("ERROR"), "{log}");
    assert!(aside.starts_with(dir.to_str().unwrap()), "{aside}");
    assert_eq!(std::fs::read(aside).unwrap(), garbage);
    #[cfg(unix)]
    assert_eq!(mode(Path::new(aside)), 0o600);

    let mut c = server.connect().await;
    assert_eq!(c.list().await, ["OK Listing done"], "starts empty");
    // the damaged file was replaced by a valid one; changes are saved again
    let store = StateStore::open(&dir).unwrap();
    let loaded = store.load().unwrap();
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    assert!(loaded.tunnels.is_empty());
    c.ok("setnick fresh").await;
    let loaded = store.load().unwrap();
    assert_eq!(loaded.tunnels.len(), 1);
    assert_eq!(loaded.tunnels[0].nickname, "fresh");
    drop(c);
    server.kill9().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// One damaged tunnel file is reported and kept aside (0600); the other tunnels are
/// restored and the server saves changes again.
#[tokio::test]
async fn a_damaged_tunnel_file_loses_only_that_tunnel() {
    let dir = temp_dir("onebad");
    let store = StateStore::open(&dir).unwrap();
    let record = |name: &str| TunnelRecord {
        nickname: name.into(),
        keys: None,
        inhost: "localhost".into(),
        inport: None,
        outhost: "localhost".into(),
        outport: Some(80),
        quiet: false,
        kind: Default::default(),
        options: vec![],
        running: false,
    };
    store.save(1, &[record("good"), record("bad")]).unwrap();
    let garbage = b"version = 2\n[tunnel]\nnickname = \"half";
    std::fs::write(store.tunnel_path("bad"), garbage).unwrap();

    let server = Proc::spawn(&dir).await;
    let log = server.log();
    let name = format!("{}.corrupt-", tunnel_file_name("bad"));
    let aside = log
        .split_whitespace()
        .find(|w| w.contains(&name))
        .unwrap_or_else(|| panic!("log names the kept-aside file: {log}"))
        .trim_end_matches(';')
        .to_owned();
    let aside = aside.strip_prefix("kept_aside=").unwrap_or(&aside);
    assert_eq!(std::fs::read(aside).unwrap(), garbage);
    #[cfg(unix)]
    assert_eq!(mode(Path::new(aside)), 0o600);
    let mut c = server.connect().await;
    let list = c.list().await;
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(list[0].starts_with("DATA NICKNAME: good "), "{list:?}");
    c.ok("setnick fresh").await;
    let names: Vec<_> = on_disk(&dir).into_iter().map(|r| r.nickname).collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"fresh".to_owned()) && names.contains(&"good".to_owned()));
    drop(c);
    server.kill9().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The previous version's `registry.toml` is converted to tunnel files at start-up and
/// renamed aside; the next start reads the tunnel files.
#[tokio::test]
async fn a_legacy_state_file_is_migrated() {
    let dir = temp_dir("legacy");
    std::fs::create_dir_all(&dir).unwrap();
    let keys = PrivateKeys::generate(SigType::Ed25519, CryptoType::ElGamal)
        .unwrap()
        .to_base64();
    let old = TunnelRecord {
        nickname: "old".into(),
        keys: Some(keys.clone()),
        inhost: "localhost".into(),
        inport: None,
        outhost: "localhost".into(),
        outport: Some(8080),
        quiet: true,
        kind: Default::default(),
        options: vec![("inbound.length".into(), "1".into())],
        running: false,
    };
    write_legacy_file(&dir.join("registry.toml"), std::slice::from_ref(&old)).unwrap();
    let (server, _shutdown) = in_process(&dir).await;
    assert_eq!(server.restore_report().restored, ["old"]);
    assert!(server.restore_report().problems.is_empty());
    assert!(!dir.join("registry.toml").exists());
    assert!(dir.join("registry.toml.migrated").is_file());
    drop(server);
    assert_eq!(on_disk(&dir), [old]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A server running in this process with a state directory.
async fn in_process(dir: &Path) -> (Server, CancellationToken) {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        state_dir: Some(dir.to_path_buf()),
        ..Config::default()
    };
    let server = Server::bind(config, Arc::new(LocalCore::new()))
        .await
        .expect("binds");
    (server, CancellationToken::new())
}

/// The state file as a client of the file sees it right now.
fn on_disk(dir: &Path) -> Vec<TunnelRecord> {
    let loaded = StateStore::open(dir).unwrap().load().unwrap();
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    loaded.tunnels
}

fn one(dir: &Path) -> TunnelRecord {
    let mut all = on_disk(dir);
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

#[tokio::test]
async fn every_change_is_on_disk_before_its_reply() {
    let dir = temp_dir("durable");
    let (server, shutdown) = in_process(&dir).await;
    let addr = server.local_addr().to_string();
    let run = tokio::spawn(server.run(shutdown.clone()));
    let mut c = Bob::connect(&addr).await;

    assert!(on_disk(&dir).is_empty());
    c.ok("setnick t").await;
    let r = one(&dir);
    assert_eq!((r.nickname.as_str(), r.keys.as_deref()), ("t", None));
    assert!(r.options.contains(&("inbound.nickname".into(), "t".into())));
    c.ok("newkeys 7").await;
    let keys = c.ok("getkeys").await["OK ".len()..].to_owned();
    assert_eq!(one(&dir).keys.as_deref(), Some(keys.as_str()));
    let other = PrivateKeys::generate(SigType::Ed25519, CryptoType::X25519).unwrap();
    c.ok(&format!("setkeys {}", other.to_base64())).await;
    assert_eq!(one(&dir).keys, Some(other.to_base64()));
    c.ok("inhost 127.0.0.1").await;
    assert_eq!(one(&dir).inhost, "127.0.0.1");
    c.ok("outhost ::1").await;
    assert_eq!(one(&dir).outhost, "::1");
    c.ok("outport 4321").await;
    assert_eq!(one(&dir).outport, Some(4321));
    c.ok("quiet true").await;
    assert!(one(&dir).quiet);
    c.ok("option a=b").await;
    assert!(one(&dir).options.contains(&("a".into(), "b".into())));
    // a refused change leaves the file as it was
    assert_eq!(c.cmd("outport 0").await, "ERROR port out of range");
    assert_eq!(one(&dir).outport, Some(4321));
    let inport = c.start_on_free_inport().await;
    let r = one(&dir);
    assert_eq!(r.inport, Some(inport));
    assert!(r.running, "start is saved before OK");
    c.ok("stop").await;
    assert!(!one(&dir).running, "stop is saved before OK");
    // wait for the tunnel to be down, then clear
    within("stopped", async {
        while c.cmd("clear").await != "OK cleared" {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(on_disk(&dir).is_empty(), "clear is saved before OK");

    // a clean shutdown does not mark running tunnels stopped
    c.ok("setnick s").await;
    c.ok("newkeys").await;
    c.ok("outport 9").await;
    c.ok("start").await;
    shutdown.cancel();
    within("server stops", run).await.unwrap().unwrap();
    assert!(one(&dir).running);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn restored_tunnel_that_cannot_start_is_kept_stopped() {
    let dir = temp_dir("nostart");
    let keys = || {
        PrivateKeys::generate(SigType::Ed25519, CryptoType::ElGamal)
            .unwrap()
            .to_base64()
    };
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let record = |name: &str, inport: u16, keys: String| TunnelRecord {
        nickname: name.into(),
        keys: Some(keys),
        inhost: "127.0.0.1".into(),
        inport: Some(inport),
        outhost: "localhost".into(),
        outport: None,
        quiet: false,
        kind: Default::default(),
        options: vec![("inbound.length".into(), "2".into())],
        running: true,
    };
    let blocked = record("blocked", busy.local_addr().unwrap().port(), keys());
    let fine = record("fine", free_port(), keys());
    StateStore::open(&dir)
        .unwrap()
        .save(1, &[blocked.clone(), fine.clone()])
        .unwrap();

    let (server, shutdown) = in_process(&dir).await;
    let report = server.restore_report().clone();
    assert_eq!(report.restored, ["blocked", "fine"]);
    assert_eq!(report.to_start, ["blocked", "fine"]);
    assert!(report.problems.is_empty() && report.kept_aside.is_empty());
    let addr = server.local_addr().to_string();
    let run = tokio::spawn(server.run(shutdown.clone()));
    let mut c = Bob::connect(&addr).await;
    let list = wait_running(&mut c, 1).await;
    assert!(list[0].starts_with("DATA NICKNAME: blocked STARTING: false RUNNING: false"));
    assert!(list[1].starts_with("DATA NICKNAME: fine STARTING: false RUNNING: true"));
    c.ok("getnick blocked").await;
    assert_eq!(
        c.ok("showprops").await.matches("inbound.length=2").count(),
        1
    );
    // the file now says what the registry shows
    within("state saved", async {
        loop {
            let on = on_disk(&dir);
            if on.len() == 2 && !on[0].running {
                assert!(on[1].running);
                assert_eq!(on[0].keys, blocked.keys);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    shutdown.cancel();
    within("server stops", run).await.unwrap().unwrap();
    drop(busy);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn unusable_state_dir_and_dropped_entries_are_reported() {
    // a regular file where the directory should be
    let file = temp_dir("notadir");
    std::fs::write(&file, b"x").unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        state_dir: Some(file.clone()),
        ..Config::default()
    };
    let err = Server::bind(config, Arc::new(LocalCore::new()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("state directory"), "{err}");
    std::fs::remove_file(&file).unwrap();

    // more tunnels than the server may hold: the rest is dropped, the file kept aside
    let dir = temp_dir("full");
    let records: Vec<TunnelRecord> = ["a", "b", "c"]
        .iter()
        .map(|n| TunnelRecord {
            nickname: (*n).into(),
            keys: None,
            inhost: "localhost".into(),
            inport: None,
            outhost: "localhost".into(),
            outport: None,
            quiet: false,
            kind: Default::default(),
            options: vec![],
            running: false,
        })
        .collect();
    StateStore::open(&dir).unwrap().save(1, &records).unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        state_dir: Some(dir.clone()),
        max_tunnels: 2,
        ..Config::default()
    };
    let server = Server::bind(config, Arc::new(LocalCore::new()))
        .await
        .unwrap();
    let report = server.restore_report();
    assert_eq!(report.restored, ["a", "b"]);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        report.problems[0].contains("\"c\""),
        "{:?}",
        report.problems
    );
    assert_eq!(report.kept_aside.len(), 1, "{:?}", report.kept_aside);
    let aside = report.kept_aside[0].clone();
    assert!(
        std::fs::read_to_string(&aside)
            .unwrap()
            .contains("nickname = \"c\"")
    );
    assert_eq!(server.registry().list().len(), 2);
    // its file is gone (kept aside), so it is not reported again
    assert!(!dir.join("tunnels").join(tunnel_file_name("c")).exists());
    assert_eq!(on_disk(&dir).len(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn metrics_flag_serves_prometheus_text_and_refuses_remote() {
    let server = Proc::spawn_with(&["--metrics", "127.0.0.1:0"]).await;
    let log = server.log();
    // printed before the listening line, whatever RUST_LOG says
    let addr = log
        .lines()
        .find_map(|l| l.strip_prefix("bob-server metrics on http://"))
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("stderr names the metrics address: {log}"))
        .to_owned();
    let mut c = server.connect().await;
    c.ok("setnick m").await;
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    within("scrape", s.read_to_string(&mut text)).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("bob_tunnels 1\n"), "{text}");
    assert!(
        text.contains("bob_tunnel_running{tunnel=\"m\"} 0\n"),
        "{text}"
    );
    drop(c);
    server.kill9().await;

    let out = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--metrics", "0.0.0.0:0"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("non-loopback address 0.0.0.0:0"), "{err}");

    let out = Command::new(BIN).arg("--help").output().await.unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--state-dir <DIR>") && help.contains("--metrics <ADDR>"),
        "{help}"
    );
}

#[tokio::test]
async fn state_entries_over_the_caps_are_dropped_and_reported() {
    let dir = temp_dir("caps");
    let record = |nickname: String, inhost: String, options: Vec<(String, String)>| TunnelRecord {
        nickname,
        keys: None,
        inhost,
        inport: None,
        outhost: "localhost".into(),
        outport: None,
        quiet: false,
        kind: Default::default(),
        options,
        running: false,
    };
    let records = vec![
        record("ok".into(), "localhost".into(), vec![]),
        record("n".repeat(256), "localhost".into(), vec![]),
        record("longhost".into(), "h".repeat(256), vec![]),
        record(
            "longvalue".into(),
            "localhost".into(),
            vec![("k".into(), "v".repeat(4097))],
        ),
        record(String::new(), "localhost".into(), vec![]),
    ];
    StateStore::open(&dir).unwrap().save(1, &records).unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        state_dir: Some(dir.clone()),
        ..Config::default()
    };
    let server = Server::bind(config, Arc::new(LocalCore::new()))
        .await
        .unwrap();
    let report = server.restore_report();
    assert_eq!(report.restored, ["ok"]);
    let problems = report.problems.join("\n");
    for expected in [
        "nickname is longer than 255 bytes",
        "host is longer than 255 bytes",
        "option value is longer than 4096 bytes",
        "nickname is empty",
    ] {
        assert!(problems.contains(expected), "{expected}: {problems}");
    }
    assert_eq!(report.kept_aside.len(), 4, "{:?}", report.kept_aside);
    assert_eq!(server.registry().list().len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}
