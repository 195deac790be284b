//! bobctl's guarantees (issues 13 and 18): no argument can inject a protocol line, create
//! never replaces a tunnel unless asked and is all or nothing, one line per step, and
//! clear usage errors.

use std::net::SocketAddr;
use std::process::Output;

use bob_testkit::{TestClient, within};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

mod common;

use common::start_server;

const BOBCTL: &str = env!("CARGO_BIN_EXE_bobctl");

async fn bobctl(addr: SocketAddr, args: &[&str]) -> Output {
    within(
        &format!("bobctl {args:?}"),
        tokio::process::Command::new(BOBCTL)
            .env_remove("BOBCTL_SERVER")
            .arg("--server")
            .arg(addr.to_string())
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("run bobctl")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs bobctl, expects exit `code`, returns stderr.
async fn exits(addr: SocketAddr, args: &[&str], code: i32) -> String {
    let out = bobctl(addr, args).await;
    assert_eq!(
        out.status.code(),
        Some(code),
        "bobctl {args:?}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    stderr(&out)
}

/// The tunnel `name` with fresh keys and an outbound port; returns its private keys.
async fn tunnel(c: &mut TestClient, name: &str) -> String {
    c.new_tunnel(name).await;
    c.expect("outport 9", "OK outbound port set").await;
    c.ok_text("getkeys").await
}

async fn keys_of(c: &mut TestClient, name: &str) -> String {
    c.expect(
        &format!("getnick {name}"),
        &format!("OK Nickname set to {name}"),
    )
    .await;
    c.ok_text("getkeys").await
}

#[tokio::test]
async fn names_and_lines_that_would_inject_commands_are_refused() {
    let server = start_server(false).await;
    let mut c = TestClient::connect(server.addr).await;
    let keys = tunnel(&mut c, "victim").await;

    let out = ["--out", "127.0.0.1:9"];
    let with_out = |v: Vec<&'static str>| v.into_iter().chain(out).collect::<Vec<_>>();
    let attempts: Vec<Vec<&str>> = vec![
        with_out(vec!["create", "victim x", "--newkeys"]),
        with_out(vec!["create", "z\nzap"]),
        with_out(vec!["create", "evil\nclear"]),
        with_out(vec!["create", "victim\r"]),
        with_out(vec!["create", "tab\tname"]),
        with_out(vec!["create", "ok", "--option", "a=b\nclear"]),
        with_out(vec!["create", "ok", "--option", "a=b c"]),
        with_out(vec!["create", "ok", "--newkeys=7\nzap"]),
        vec!["create", "ok", "--out", "127.0.0.1\nzap:9"],
        vec!["create", "ok", "--in", "local host:9"],
        vec!["status", "victim x"],
        vec!["start", "victim\nclear"],
        vec!["stop", "victim\tx"],
        vec!["clear", " victim"],
        vec!["dest", "victim\u{7}"],
        vec!["raw", "getnick victim\nclear"],
        vec!["raw", "zap\r"],
        vec!["raw", "getnick victim\u{1b}[2J"],
    ];
    for args in &attempts {
        let err = exits(server.addr, args, 2).await;
        assert!(err.starts_with("bobctl: "), "{args:?}: {err}");
        assert!(
            err.contains("whitespace") || err.contains("control character"),
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    // nothing happened on the server: same tunnels, same keys, still serving
    let list = c.list().await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert!(list[0].starts_with("NICKNAME: victim "), "{list:?}");
    assert_eq!(keys_of(&mut c, "victim").await, keys);
}

#[tokio::test]
async fn create_replaces_only_with_replace() {
    let server = start_server(false).await;
    let mut c = TestClient::connect(server.addr).await;
    let keys = tunnel(&mut c, "victim").await;
    let err = exits(
        server.addr,
        &["create", "victim", "--newkeys", "--out", "127.0.0.1:80"],
        1,
    )
    .await;
    assert_eq!(
        err.trim(),
        "bobctl: a tunnel named victim exists already (--replace replaces it if it is inactive)"
    );
    assert_eq!(keys_of(&mut c, "victim").await, keys);
    exits(
        server.addr,
        &["create", "victim", "--replace", "--out", "127.0.0.1:80"],
        0,
    )
    .await;
    assert_ne!(keys_of(&mut c, "victim").await, keys);
    assert!(c.line("status victim").await.contains("OUTPORT: 80 "));
}

#[tokio::test]
async fn a_failed_create_removes_what_it_made_and_only_that() {
    let server = start_server(false).await;
    let mut c = TestClient::connect(server.addr).await;
    let keys = tunnel(&mut c, "other").await;

    // start fails: the inbound port is taken
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = exits(
        server.addr,
        &[
            "create",
            "half",
            "--in",
            &format!("127.0.0.1:{port}"),
            "--start",
        ],
        1,
    )
    .await;
    assert!(
        err.contains("bobctl: start: ERROR starting tunnel: "),
        "{err}"
    );
    assert!(
        err.contains("bobctl: the tunnel half made by this create was removed again"),
        "{err}"
    );
    assert!(c.line("status half").await.starts_with("ERROR"));

    // an option step fails: more options than a tunnel may hold
    let options: Vec<String> = (0..300).map(|i| format!("k{i}=v")).collect();
    let mut args = vec!["create", "many", "--out", "127.0.0.1:9"];
    for o in &options {
        args.extend(["--option", o.as_str()]);
    }
    let err = exits(server.addr, &args, 1).await;
    assert!(err.contains("bobctl: option: ERROR "), "{err}");
    assert!(
        err.contains("many made by this create was removed again"),
        "{err}"
    );
    assert!(c.line("status many").await.starts_with("ERROR"));

    // the tunnel that was there before is untouched
    assert_eq!(c.list().await.len(), 1);
    assert_eq!(keys_of(&mut c, "other").await, keys);
}

#[tokio::test]
async fn create_argument_parsing() {
    let server = start_server(false).await;
    let mut c = TestClient::connect(server.addr).await;
    // `--newkeys NAME`: NAME is the tunnel, not a key type
    exits(
        server.addr,
        &["create", "--newkeys", "web", "--out", "127.0.0.1:8080"],
        0,
    )
    .await;
    let status = c.line("status web").await;
    assert!(
        status.contains("KEYS: true") && status.contains("OUTPORT: 8080 "),
        "{status}"
    );
    // a key type needs `=`
    exits(
        server.addr,
        &["create", "typed", "--newkeys=7", "--in", "127.0.0.1:9"],
        0,
    )
    .await;
    // neither side: a usage error, nothing sent
    let err = exits(server.addr, &["create", "lonely", "--newkeys"], 2).await;
    assert!(err.contains("create needs --in HOST:PORT"), "{err}");
    assert!(c.line("status lonely").await.starts_with("ERROR"));
    assert_eq!(c.list().await.len(), 2);
}

/// A BOB server that answers everything with `OK` (and `status` with an `ERROR`), and
/// reports every line it receives.
async fn recording_server() -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                w.write_all(b"BOB 00.00.10\nOK\n").await.unwrap();
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let reply = match line.split(' ').next().unwrap() {
                        "status" => "ERROR no nickname has been set\n",
                        "newkeys" => "OK DEST\n",
                        "quit" => "OK Bye!\n",
                        _ => "OK\n",
                    };
                    let _ = tx.send(line);
                    if w.write_all(reply.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn create_sends_one_line_per_step() {
    let (addr, mut lines) = recording_server().await;
    exits(
        addr,
        &[
            "create",
            "web",
            "--newkeys=7",
            "--in",
            "127.0.0.1:1",
            "--out",
            "[::1]:2",
            "--quiet",
            "--option",
            "a=b",
            "--start",
        ],
        0,
    )
    .await;
    let mut seen = Vec::new();
    while let Ok(line) = lines.try_recv() {
        seen.push(line);
    }
    assert_eq!(
        seen,
        [
            "status web",
            "setnick web",
            "newkeys 7",
            "inhost 127.0.0.1",
            "inport 1",
            "outhost ::1",
            "outport 2",
            "quiet true",
            "option a=b",
            "start",
            "quit"
        ]
    );
    // a name the server does not know gets bobctl's message, not the server's
    let err = exits(addr, &["status", "web"], 1).await;
    assert_eq!(err.trim(), "bobctl: no tunnel named web");
}

#[tokio::test]
async fn odd_key_files_are_refused_not_read() {
    let server = start_server(false).await;
    let dir = bob_testkit::scratch_dir("bobctl-keys");
    let fifo = dir.join("keys.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    for path in [fifo.to_str().unwrap(), "/dev/zero", dir.to_str().unwrap()] {
        let err = exits(
            server.addr,
            &["create", "k", "--keys", path, "--out", "127.0.0.1:9"],
            2,
        )
        .await;
        assert!(err.starts_with("bobctl: ") && err.contains(path), "{err}");
    }
    let mut c = TestClient::connect(server.addr).await;
    assert!(c.list().await.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
