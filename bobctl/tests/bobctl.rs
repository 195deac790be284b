//! `bobctl` end to end: the real binary against a bob-server running in this process
//! (local backend, control port 0), a fake BOB server that does not know `stats`, and
//! servers that are unreachable or silent.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use keytools::{CryptoType, PrivateKeys, SigType};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use bob_testkit::{TestClient as Bob, free_port, within};

mod common;

use common::{TestServer, start_server, start_server_on};

const BOBCTL: &str = env!("CARGO_BIN_EXE_bobctl");

/// Runs bobctl against `server` with `args`.
async fn bobctl_at(server: &str, args: &[&str]) -> Output {
    within(
        &format!("bobctl {args:?}"),
        tokio::process::Command::new(BOBCTL)
            .env_remove("BOBCTL_SERVER")
            .arg("--server")
            .arg(server)
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("run bobctl")
}

async fn bobctl(server: &TestServer, args: &[&str]) -> Output {
    bobctl_at(&server.addr.to_string(), args).await
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs bobctl and expects success; returns stdout.
async fn ok(server: &TestServer, args: &[&str]) -> String {
    let out = bobctl(server, args).await;
    assert!(
        out.status.success(),
        "bobctl {args:?}: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Runs bobctl and expects exit code `code`; returns stderr.
async fn fails(server: &TestServer, args: &[&str], code: i32) -> String {
    let out = bobctl(server, args).await;
    assert_eq!(
        out.status.code(),
        Some(code),
        "bobctl {args:?}\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    stderr(&out)
}

async fn json(server: &TestServer, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let text = ok(server, &all).await;
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn temp_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("bobctl-test-{tag}-{}", std::process::id()))
}

#[tokio::test]
async fn list_create_variants_and_status() {
    let server = start_server(false).await;
    assert_eq!(ok(&server, &["list"]).await, "");
    assert_eq!(json(&server, &["list"]).await, Value::Array(vec![]));

    // --newkeys (server's default type), --newkeys=TYPE
    let dest_a = ok(
        &server,
        &["create", "a", "--newkeys", "--out", "127.0.0.1:9"],
    )
    .await;
    let dest_a = dest_a.trim();
    assert!(
        keytools::Destination::from_base64(dest_a).is_ok(),
        "{dest_a}"
    );
    let created = json(
        &server,
        &["create", "e", "--newkeys=7", "--out", "127.0.0.1:9"],
    )
    .await;
    let b32 = created["b32"].as_str().unwrap();
    assert!(b32.ends_with(".b32.i2p"), "{created}");
    let e_dest = created["destination"].as_str().unwrap();
    // --newkeys 7: an EdDSA destination, 524 base64 characters
    assert_eq!(e_dest.len(), 524, "{e_dest}");

    // --keys: a binary key file and a base64 line
    let keys = PrivateKeys::generate(SigType::Ed25519, CryptoType::ElGamal).unwrap();
    let bin = temp_path("keys.dat");
    keytools::keyfile::write_key_file(&bin, &keys).unwrap();
    let line = temp_path("keys.txt");
    std::fs::write(&line, format!("{}\n", keys.to_base64())).unwrap();
    let expected = keys.destination().to_base64();
    for (name, file) in [("k1", &bin), ("k2", &line)] {
        let out = ok(
            &server,
            &[
                "create",
                name,
                "--keys",
                file.to_str().unwrap(),
                "--in",
                "127.0.0.1:9",
            ],
        )
        .await;
        assert_eq!(out.trim(), expected);
        assert_eq!(ok(&server, &["dest", name]).await.trim(), expected);
    }
    let dest_json = json(&server, &["dest", "k1"]).await;
    assert_eq!(dest_json["destination"], expected.as_str());
    assert_eq!(dest_json["b32"], keys.destination().b32().as_str());
    let mut bob = Bob::connect(server.addr).await;
    assert_eq!(bob.line("getnick k2").await, "OK Nickname set to k2");
    assert_eq!(
        bob.line("getkeys").await,
        format!("OK {}", keys.to_base64())
    );
    std::fs::remove_file(&bin).unwrap();
    std::fs::remove_file(&line).unwrap();

    // --in / --out / --quiet / --option
    let (inp, outp) = (free_port(), free_port());
    ok(
        &server,
        &[
            "create",
            "full",
            "--newkeys",
            "--in",
            &format!("127.0.0.1:{inp}"),
            "--out",
            &format!("[::1]:{outp}"),
            "--quiet",
            "--option",
            "inbound.length=1",
            "--option",
            "x=y",
        ],
    )
    .await;
    let s = json(&server, &["status", "full"]).await;
    assert_eq!(s["nickname"], "full");
    assert_eq!(s["inhost"], "127.0.0.1");
    assert_eq!(s["inport"], inp);
    assert_eq!(s["outhost"], "::1");
    assert_eq!(s["outport"], outp);
    assert_eq!(s["quiet"], true);
    assert_eq!(s["keys"], true);
    assert_eq!(s["running"], false);
    assert_eq!(bob.line("getnick full").await, "OK Nickname set to full");
    let props = bob.line("showprops").await;
    assert!(props.contains("inbound.length=1"), "{props}");
    assert!(props.contains("x=y"), "{props}");

    // human status: every field, counters (zero: never started)
    let human = ok(&server, &["status", "full"]).await;
    for want in [
        "nickname: full",
        "state:    stopped",
        "keys:     true",
        "quiet:    true",
        &format!("inbound:  127.0.0.1:{inp}"),
        &format!("outbound: ::1:{outp}"),
        "conns:    0 accepted, 0 active, 0 failed",
        "bytes:    0 in (from I2P), 0 out (to I2P)",
    ] {
        assert!(human.contains(want), "{want:?} in {human}");
    }
    assert_eq!(s["counters"]["accepted"], 0);

    // list: all five, sorted, in both forms
    let listed = json(&server, &["list"]).await;
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["nickname"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "e", "full", "k1", "k2"]);
    // the table: a header, then one aligned row per tunnel
    let text = ok(&server, &["list"]).await;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert!(
        lines[0].starts_with("NAME  STATE    KEYS  QUIET  INBOUND"),
        "{text}"
    );
    let names: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(names, ["a", "e", "full", "k1", "k2"]);
    let column = |l: &str| l.find("stopped").unwrap();
    assert!(
        lines[1..]
            .iter()
            .all(|l| column(l) == lines[0].find("STATE").unwrap()),
        "{text}"
    );
    assert!(text.contains(&format!("127.0.0.1:{inp}")), "{text}");
    assert!(text.contains(&format!("::1:{outp}")), "{text}");
}

#[tokio::test]
async fn start_stop_clear_and_server_errors() {
    let server = start_server(false).await;
    // a tunnel without ports (bobctl create needs --in or --out)
    let mut bob = Bob::connect(server.addr).await;
    bob.new_tunnel("t").await;
    // no port: the server's ERROR text on stderr, exit 1
    let err = fails(&server, &["start", "t"], 1).await;
    assert_eq!(
        err.trim(),
        "bobctl: start: ERROR tunnel settings incomplete"
    );
    let err = fails(&server, &["stop", "t"], 1).await;
    assert_eq!(err.trim(), "bobctl: stop: ERROR tunnel is inactive");
    for verb in ["status", "dest", "start", "stop", "clear"] {
        let err = fails(&server, &[verb, "nope"], 1).await;
        assert_eq!(err.trim(), "bobctl: no tunnel named nope", "{verb}");
    }

    // a tunnel with an outbound side starts; running tunnels refuse changes
    let sink = free_port();
    let mut started = false;
    for _ in 0..5 {
        let port = free_port();
        let out = bobctl(
            &server,
            &[
                "create",
                "t",
                "--replace",
                "--newkeys",
                "--in",
                &format!("127.0.0.1:{port}"),
                "--out",
                &format!("127.0.0.1:{sink}"),
                "--start",
            ],
        )
        .await;
        if out.status.success() {
            started = true;
            break;
        }
        // only a lost race for the port may fail
        assert!(
            stderr(&out).contains("start: ERROR starting tunnel:"),
            "{}",
            stderr(&out)
        );
    }
    assert!(started, "a free inbound port");
    assert_eq!(json(&server, &["status", "t"]).await["running"], true);
    let err = fails(
        &server,
        &["create", "t", "--newkeys", "--out", "127.0.0.1:9"],
        1,
    )
    .await;
    assert_eq!(
        err.trim(),
        "bobctl: a tunnel named t exists already (--replace replaces it if it is inactive)"
    );
    let err = fails(
        &server,
        &["create", "t", "--replace", "--out", "127.0.0.1:9"],
        1,
    )
    .await;
    assert_eq!(err.trim(), "bobctl: setnick: ERROR tunnel is active");
    let err = fails(&server, &["clear", "t"], 1).await;
    assert_eq!(err.trim(), "bobctl: clear: ERROR tunnel is active");
    let err = fails(&server, &["start", "t"], 1).await;
    assert_eq!(err.trim(), "bobctl: start: ERROR tunnel is active");

    assert_eq!(
        ok(&server, &["stop", "t"]).await.trim(),
        "t: tunnel stopping"
    );
    // stopping runs in the background: poll until inactive
    within("tunnel stops", async {
        loop {
            let s = json(&server, &["status", "t"]).await;
            if s["running"] == false && s["stopping"] == false {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let cleared = json(&server, &["clear", "t"]).await;
    assert_eq!(cleared["nickname"], "t");
    assert_eq!(cleared["reply"], "cleared");
    assert_eq!(json(&server, &["list"]).await, Value::Array(vec![]));
    let err = fails(&server, &["clear", "t"], 1).await;
    assert_eq!(err.trim(), "bobctl: no tunnel named t");
}

#[tokio::test]
async fn raw_commands_and_usage_errors() {
    let server = start_server(false).await;
    let out = ok(&server, &["raw", "help stats"]).await;
    assert!(out.starts_with("OK stats [nickname] * "), "{out}");
    let out = ok(&server, &["raw", "list"]).await;
    assert_eq!(out, "OK Listing done\n");
    let replies = json(&server, &["raw", "list"]).await;
    assert_eq!(replies["replies"][0], "OK Listing done");
    let out = bobctl(&server, &["--json", "raw", "verify AAAA"]).await;
    assert_eq!(out.status.code(), Some(1));
    let replies: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(replies["replies"][0], "ERROR not in BASE64 format");
    assert_eq!(
        stderr(&out).trim(),
        "bobctl: verify: ERROR not in BASE64 format"
    );

    let out = bobctl(&server, &["raw", "frobnicate"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "ERROR UNKNOWN COMMAND! Try help\n");
    assert_eq!(
        stderr(&out).trim(),
        "bobctl: frobnicate: ERROR UNKNOWN COMMAND! Try help"
    );
    // raw `stats` without a selection
    let err = fails(&server, &["raw", "stats"], 1).await;
    assert!(err.contains("ERROR no nickname has been set"), "{err}");

    // usage errors (exit 2) are found before anything changes on the server
    for args in [
        vec!["create", "u", "--in", "nohostport"],
        vec!["create", "u", "--out", "h:0"],
        vec!["create", "u", "--out", "h:99999"],
        vec!["create", "u", "--out", "h:1", "--option", "novalue"],
        vec![
            "create",
            "u",
            "--out",
            "h:1",
            "--keys",
            "/nonexistent/bobctl.keys",
        ],
        vec!["create", "u", "--newkeys"],
    ] {
        let err = fails(&server, &args, 2).await;
        assert!(err.starts_with("bobctl: "), "{err}");
    }
    let err = fails(
        &server,
        &[
            "create",
            "u",
            "--out",
            "h:1",
            "--keys",
            "/nonexistent/bobctl.keys",
        ],
        2,
    )
    .await;
    assert!(err.contains("/nonexistent/bobctl.keys"), "{err}");
    assert_eq!(json(&server, &["list"]).await, Value::Array(vec![]));
    // clap's own usage error
    let out = bobctl(&server, &["frobnicate"]).await;
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn unreachable_and_silent_servers() {
    // nothing listens there any more
    let dead = free_port();
    let out = bobctl_at(&format!("127.0.0.1:{dead}"), &["list"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot connect to"),
        "{}",
        stderr(&out)
    );
    let out = bobctl_at("no-such-host.invalid:2827", &["list"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    // accepts but never greets: --timeout bounds the wait
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let out = bobctl_at(&addr, &["--timeout", "1", "list"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no answer from the server within 1s"),
        "{}",
        stderr(&out)
    );
    holder.abort();

    // something that is not a BOB server
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = http.local_addr().unwrap().to_string();
    let responder = tokio::spawn(async move {
        while let Ok((mut s, _)) = http.accept().await {
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        }
    });
    let out = bobctl_at(&addr, &["list"]).await;
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("not a BOB server"),
        "{}",
        stderr(&out)
    );
    responder.abort();
}

/// A start that failed is shown with its reason and time, by `status` in both forms,
/// and is gone once a start succeeds.
#[tokio::test]
async fn status_shows_the_last_start_error() {
    // a SAM router that is not there: every start fails at once
    let closed = free_port();
    let core = bob_server::backend::sam::SamCore::new(bob_server::backend::sam::SamConfig::new(
        format!("127.0.0.1:{closed}"),
    ));
    let server = start_server_on(false, std::sync::Arc::new(core)).await;
    let human = ok(
        &server,
        &[
            "create",
            "t",
            "--newkeys",
            "--out",
            &format!("127.0.0.1:{}", free_port()),
        ],
    )
    .await;
    assert!(!human.contains("start"), "{human}");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let err = fails(&server, &["start", "t"], 1).await;
    assert!(err.contains("ERROR starting tunnel:"), "{err}");
    let after = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();

    let s = json(&server, &["status", "t"]).await;
    assert_eq!(s["running"], false);
    let at = s["last_start_error"]["at"]
        .as_u64()
        .unwrap_or_else(|| panic!("no last_start_error in {s}"));
    assert!(
        (before..=after).contains(&at),
        "{at} not in {before}..={after}"
    );
    let reason = s["last_start_error"]["reason"].as_str().unwrap().to_owned();
    assert!(
        !reason.is_empty() && err.contains(&reason),
        "{reason:?} vs {err:?}"
    );

    let human = ok(&server, &["status", "t"]).await;
    let line = human
        .lines()
        .find(|l| l.starts_with("error:    start failed "))
        .unwrap_or_else(|| panic!("no error line in {human}"));
    let date = httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(at));
    assert_eq!(line, format!("error:    start failed {date}: {reason}"));
    assert!(date.ends_with(" GMT"), "{date}");

    // a tunnel that never failed has no error line or key
    ok(
        &server,
        &[
            "create",
            "u",
            "--newkeys",
            "--out",
            &format!("127.0.0.1:{}", free_port()),
        ],
    )
    .await;
    assert!(!ok(&server, &["status", "u"]).await.contains("error:"));
    let s = json(&server, &["status", "u"]).await;
    assert!(s.get("last_start_error").is_none(), "{s}");
}

/// A BOB server that knows `status` but not `stats` (as Java BOB and i2pd).
async fn fake_server_without_stats() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut s = BufReader::new(s);
                s.get_mut().write_all(b"BOB 00.00.10\nOK\n").await.unwrap();
                let mut line = String::new();
                while s.read_line(&mut line).await.unwrap_or(0) > 0 {
                    let reply = match line.trim() {
                        "status x" => {
                            "OK DATA NICKNAME: x STARTING: false RUNNING: true STOPPING: false KEYS: true QUIET: false INPORT: 1234 INHOST: localhost OUTPORT: not_set OUTHOST: localhost\n"
                        }
                        "quit" => "OK Bye!\n",
                        _ => "ERROR UNKNOWN COMMAND! Try help\n",
                    };
                    s.get_mut().write_all(reply.as_bytes()).await.unwrap();
                    line.clear();
                }
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn status_without_stats_support_omits_counters() {
    let (addr, task) = fake_server_without_stats().await;
    let out = bobctl_at(&addr, &["status", "x"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("state:    running"), "{text}");
    assert!(text.contains("inbound:  localhost:1234"), "{text}");
    assert!(!text.contains("conns:"), "{text}");
    let out = bobctl_at(&addr, &["--json", "status", "x"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["running"], true);
    assert_eq!(v["inport"], 1234);
    assert!(v.get("counters").is_none(), "{v}");
    task.abort();
}

async fn metrics_text(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    within("metrics", s.read_to_string(&mut out)).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    out
}

/// Polls `bobctl --json status NAME` until its counters satisfy `ready`.
async fn counters_when(server: &TestServer, name: &str, ready: impl Fn(&Value) -> bool) -> Value {
    within(&format!("counters of {name}"), async {
        loop {
            let c = json(server, &["status", name]).await["counters"].clone();
            if ready(&c) {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

fn metric(text: &str, name: &str, tunnel: &str) -> u64 {
    let prefix = format!("{name}{{tunnel=\"{tunnel}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("{prefix} in {text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn counters_move_when_data_flows() {
    let server = start_server(true).await;
    let metrics = server.metrics.expect("metrics bound");

    // the application behind the server tunnel: a line echo
    let echo_addr = bob_testkit::line_echo().await;
    ok(
        &server,
        &[
            "create",
            "srv",
            "--newkeys=7",
            "--out",
            &echo_addr.to_string(),
            "--quiet",
            "--start",
        ],
    )
    .await;
    let dest = ok(&server, &["dest", "srv"]).await.trim().to_owned();
    let mut inport = None;
    for _ in 0..5 {
        let port = free_port();
        let out = bobctl(
            &server,
            &[
                "create",
                "cli",
                "--newkeys=7",
                "--in",
                &format!("127.0.0.1:{port}"),
                "--start",
            ],
        )
        .await;
        if out.status.success() {
            inport = Some(port);
            break;
        }
    }
    let inport = inport.expect("a free inbound port");

    let before = json(&server, &["status", "srv"]).await;
    assert_eq!(before["running"], true);
    assert_eq!(before["counters"]["accepted"], 0);
    assert_eq!(before["counters"]["bytes_in"], 0);

    let app = TcpStream::connect(("127.0.0.1", inport)).await.unwrap();
    let (r, mut w) = app.into_split();
    let mut r = BufReader::new(r);
    w.write_all(format!("{dest}\nhello through I2P\n").as_bytes())
        .await
        .unwrap();
    let mut echoed = String::new();
    within("echo", r.read_line(&mut echoed)).await.unwrap();
    assert_eq!(echoed, "hello through I2P\n");

    // while the connection is open: one accepted and active on each side (the relay
    // counts a chunk right after writing it, so wait for the numbers to arrive)
    let srv = counters_when(&server, "srv", |c| c["bytes_out"] == 18).await;
    assert_eq!(srv["accepted"], 1, "{srv}");
    assert_eq!(srv["active"], 1, "{srv}");
    assert_eq!(srv["failed"], 0, "{srv}");
    assert_eq!(srv["bytes_in"], 18, "{srv}");
    let cli = counters_when(&server, "cli", |c| c["bytes_in"] == 18).await;
    assert_eq!(cli["accepted"], 1, "{cli}");
    assert_eq!(cli["active"], 1, "{cli}");
    assert_eq!(cli["bytes_out"], 18, "{cli}");
    let human = ok(&server, &["status", "srv"]).await;
    assert!(
        human.contains("conns:    1 accepted, 1 active, 0 failed"),
        "{human}"
    );
    assert!(
        human.contains("bytes:    18 in (from I2P), 18 out (to I2P)"),
        "{human}"
    );

    let text = metrics_text(metrics).await;
    assert!(text.contains("bob_tunnels 2\n"), "{text}");
    assert_eq!(metric(&text, "bob_tunnel_running", "srv"), 1);
    assert_eq!(
        metric(&text, "bob_tunnel_connections_accepted_total", "srv"),
        1
    );
    assert_eq!(metric(&text, "bob_tunnel_connections_active", "cli"), 1);
    assert_eq!(metric(&text, "bob_tunnel_bytes_in_total", "srv"), 18);
    assert_eq!(metric(&text, "bob_tunnel_bytes_out_total", "cli"), 18);

    // the application leaves: active drops back to zero, totals stay
    drop(w);
    drop(r);
    let cli = counters_when(&server, "cli", |c| c["active"] == 0).await;
    assert_eq!(cli["accepted"], 1, "{cli}");
    assert_eq!(cli["bytes_out"], 18, "{cli}");

    // a destination line nobody answers to counts as failed on the client side
    let mut bad = TcpStream::connect(("127.0.0.1", inport)).await.unwrap();
    bad.write_all(b"nobody.i2p\n").await.unwrap();
    let mut answer = String::new();
    within(
        "error line",
        BufReader::new(&mut bad).read_line(&mut answer),
    )
    .await
    .unwrap();
    assert!(answer.starts_with("ERROR"), "{answer}");
    let cli = counters_when(&server, "cli", |c| c["failed"] == 1).await;
    assert_eq!(cli["accepted"], 2, "{cli}");

    // after stop the last run's numbers stay readable
    ok(&server, &["stop", "srv"]).await;
    within("srv stops", async {
        loop {
            let s = json(&server, &["status", "srv"]).await;
            if s["running"] == false && s["stopping"] == false {
                assert_eq!(s["counters"]["bytes_in"], 18);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let text = metrics_text(metrics).await;
    assert_eq!(metric(&text, "bob_tunnel_running", "srv"), 0);
}

#[tokio::test]
async fn create_a_socks_proxy_tunnel_and_see_its_counters() {
    let server = start_server(true).await;
    let metrics = server.metrics.expect("metrics bound");
    let echo_addr = bob_testkit::line_echo().await;
    ok(
        &server,
        &[
            "create",
            "srv",
            "--out",
            &echo_addr.to_string(),
            "--quiet",
            "--start",
        ],
    )
    .await;
    let b32 = json(&server, &["status", "srv"]).await;
    assert_eq!(
        b32["extra"],
        serde_json::json!({}),
        "plain tunnels: no extra"
    );
    let dest = ok(&server, &["dest", "srv"]).await.trim().to_owned();
    let b32 = keytools::verify_bob(&dest).unwrap().b32();
    // --socks and --in are two inbound sides: refused by the argument parser
    fails(
        &server,
        &[
            "create",
            "px",
            "--socks",
            "127.0.0.1:1",
            "--in",
            "127.0.0.1:2",
        ],
        2,
    )
    .await;
    let mut port = None;
    for _ in 0..5 {
        let p = free_port();
        let addr = format!("127.0.0.1:{p}");
        let out = bobctl(&server, &["create", "px", "--socks", &addr, "--start"]).await;
        if out.status.success() {
            port = Some(p);
            break;
        }
    }
    let port = port.expect("a free port for the SOCKS tunnel");
    let status = within("px running", async {
        loop {
            let s = json(&server, &["status", "px"]).await;
            if s["running"] == true {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(status["extra"]["proxytype"], "SOCKS", "{status}");
    let human = ok(&server, &["status", "px"]).await;
    assert!(human.contains("\nproxytype: SOCKS\n"), "{human}");

    // SOCKS5 to the server tunnel's b32, then a line through the echo
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut request = vec![5, 1, 0, 5, 1, 0, 3, u8::try_from(b32.len()).unwrap()];
    request.extend_from_slice(b32.as_bytes());
    request.extend_from_slice(&[0, 80]);
    request.extend_from_slice(b"ping\n");
    s.write_all(&request).await.unwrap();
    let mut reply = [0u8; 17];
    within("echo", s.read_exact(&mut reply)).await.unwrap();
    assert_eq!(&reply[..4], [5, 0, 5, 0]);
    assert_eq!(&reply[12..], b"ping\n");
    let px = counters_when(&server, "px", |c| c["bytes_in"] == 5).await;
    assert_eq!(
        (px["accepted"].as_u64(), px["active"].as_u64()),
        (Some(1), Some(1)),
        "{px}"
    );
    let text = metrics_text(metrics).await;
    assert_eq!(metric(&text, "bob_tunnel_connections_active", "px"), 1);
    assert_eq!(metric(&text, "bob_tunnel_bytes_out_total", "px"), 5);
    drop(s);
    counters_when(&server, "px", |c| c["active"] == 0).await;
}

#[tokio::test]
async fn udp_tunnels_are_created_and_counted() {
    let server = start_server(true).await;
    let metrics = server.metrics.expect("metrics bound");
    // an unmodified UDP echo server
    let echo = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let echo_addr = echo.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        while let Ok((n, from)) = echo.recv_from(&mut buf).await {
            let _ = echo.send_to(&buf[..n], from).await;
        }
    });
    ok(
        &server,
        &[
            "create",
            "usrv",
            "--udp",
            "--out",
            &echo_addr.to_string(),
            "--quiet",
            "--start",
        ],
    )
    .await;
    let dest = ok(&server, &["dest", "usrv"]).await.trim().to_owned();
    let b32 = keytools::Destination::from_base64(&dest).unwrap().b32();
    // --udp-dest needs --udp
    fails(
        &server,
        &["create", "x", "--in", "127.0.0.1:1", "--udp-dest", &b32],
        2,
    )
    .await;
    let mut inport = None;
    for _ in 0..5 {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let out = bobctl(
            &server,
            &[
                "create",
                "ucli",
                "--udp",
                "--udp-dest",
                &b32,
                "--in",
                &format!("127.0.0.1:{port}"),
                "--start",
            ],
        )
        .await;
        if out.status.success() {
            inport = Some(port);
            break;
        }
    }
    let inport = inport.expect("a free UDP port");
    let app = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    app.send_to(b"datagram", ("127.0.0.1", inport))
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = within("echo", app.recv(&mut buf)).await.unwrap();
    assert_eq!(&buf[..n], b"datagram");

    let cli = counters_when(&server, "ucli", |c| c["extra"]["udp_received"] == 1).await;
    assert_eq!(cli["extra"]["udp_sent"], 1, "{cli}");
    assert_eq!(cli["extra"]["udp_peers"], 1, "{cli}");
    assert_eq!(cli["bytes_out"], 8, "{cli}");
    let human = ok(&server, &["status", "ucli"]).await;
    assert!(
        human.contains("datagrams: 1 received (from I2P), 1 sent (to I2P), 0 dropped, 1 peers"),
        "{human}"
    );
    let text = metrics_text(metrics).await;
    assert_eq!(metric(&text, "bob_tunnel_udp_sent_total", "ucli"), 1);
    assert_eq!(metric(&text, "bob_tunnel_udp_received_total", "usrv"), 1);
    assert_eq!(metric(&text, "bob_tunnel_udp_peers", "usrv"), 1);
    drop(server);
}

/// The local core with a router report, as the embedded router's core has one; the
/// test changes the report and sees bobctl follow.
#[derive(Debug)]
struct WithRouter {
    local: bob_server::backend::local::LocalCore,
    report: std::sync::Arc<std::sync::Mutex<bob_server::backend::RouterReport>>,
}

impl bob_server::backend::StreamingCore for WithRouter {
    fn name(&self) -> &'static str {
        "devnet"
    }

    fn open_session(
        &self,
        keys: PrivateKeys,
        options: bob_server::backend::Options,
    ) -> bob_server::backend::BoxFuture<
        '_,
        Result<std::sync::Arc<dyn bob_server::backend::Session>, bob_server::backend::CoreError>,
    > {
        self.local.open_session(keys, options)
    }

    fn lookup(
        &self,
        name: &str,
    ) -> bob_server::backend::BoxFuture<
        '_,
        Result<keytools::Destination, bob_server::backend::CoreError>,
    > {
        self.local.lookup(name)
    }

    fn router_report(&self) -> Option<bob_server::backend::RouterReport> {
        Some(*self.report.lock().unwrap())
    }
}

#[tokio::test]
async fn router_state_from_the_metrics_endpoint() {
    use bob_server::backend::RouterReport;
    let report = std::sync::Arc::new(std::sync::Mutex::new(RouterReport {
        kind: "devnet",
        known_routers: 5,
        connected_routers: 3,
        tunnels_built: 9,
        tunnel_build_failures: 1,
        transit_tunnels: 4,
        sam_healthy: true,
    }));
    let config = bob_server::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..bob_server::config::Config::default()
    };
    let core = WithRouter {
        local: bob_server::backend::local::LocalCore::new(),
        report: report.clone(),
    };
    let server = bob_server::server::Server::bind(config, std::sync::Arc::new(core))
        .await
        .unwrap();
    let (addr, metrics) = (server.local_addr(), server.metrics_addr().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(server.run(stop.clone()));
    let (bob, metrics) = (addr.to_string(), metrics.to_string());
    let router = |json: bool| {
        let (bob, metrics) = (bob.clone(), metrics.clone());
        async move {
            let mut args = vec!["router", "--metrics", metrics.as_str()];
            if json {
                args.insert(0, "--json");
            }
            bobctl_at(&bob, &args).await
        }
    };

    let out = router(false).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for line in [
        "router    devnet (in the server's process)",
        "SAM port  healthy",
        "routers   5 known at start, 3 connected",
        "tunnels   9 built, 1 failed (90 % succeeded)",
        "transit   4 tunnels for other routers",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
    }
    assert!(!text.contains("note"), "{text}");

    let out = router(true).await;
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "devnet");
    assert_eq!(v["connected_routers"], 3);
    assert_eq!(v["tunnels_built"], 9);
    assert_eq!(v["sam_healthy"], true);

    // a router that has built nothing yet, then one whose SAM port is dead: the note
    // says why tunnels do not start
    *report.lock().unwrap() = RouterReport {
        kind: "embedded",
        known_routers: 0,
        ..RouterReport::default()
    };
    report.lock().unwrap().sam_healthy = true;
    let text = stdout(&router(false).await);
    assert!(text.contains("router    embedded"), "{text}");
    assert!(
        text.contains("tunnels   0 built, 0 failed (none finished yet)"),
        "{text}"
    );
    assert!(
        text.contains("note      the router has built no tunnel yet"),
        "{text}"
    );
    report.lock().unwrap().sam_healthy = false;
    let text = stdout(&router(false).await);
    assert!(text.contains("SAM port  NOT ANSWERING"), "{text}");
    assert!(text.contains("no tunnel can start"), "{text}");
    stop.cancel();

    // a server without a router in its process: refused (1); nothing listening: 3
    let plain = start_server(true).await;
    let out = bobctl(
        &plain,
        &["router", "--metrics", &plain.metrics.unwrap().to_string()],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("runs no router in its process"),
        "{}",
        stderr(&out)
    );
    let nobody = format!("127.0.0.1:{}", free_port());
    let out = bobctl(&plain, &["router", "--metrics", &nobody]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot read metrics from"),
        "{}",
        stderr(&out)
    );
}
