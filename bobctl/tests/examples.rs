//! The worked examples in `scripts/examples/` that drive bobctl, run for real against a
//! bob-server in this process; and bobctl's generated completions and man page.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use bob_testkit::{TestClient, echo_app, scratch_dir, within};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;

mod common;

use common::start_server;

const BOBCTL: &str = env!("CARGO_BIN_EXE_bobctl");

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/examples")
}

/// Sends SIGTERM (so the script's trap cleans up) when dropped.
struct TermOnDrop(Option<u32>);

impl Drop for TermOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }
}

#[tokio::test]
async fn expose_web_server_example_end_to_end() {
    let dir = scratch_dir("expose");
    let site = dir.join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("hello.txt"), "hello over i2p\n").unwrap();
    let server = start_server(false).await;
    let addr = server.addr.to_string();

    let mut script = Command::new("bash")
        .arg(examples().join("expose-web-server.sh"))
        .arg(&site)
        .env("BOBCTL", BOBCTL)
        .env("BOBCTL_SERVER", &addr)
        .env("TUNNEL_NAME", "site")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run the example");
    let mut term = TermOnDrop(script.id());
    let mut out = BufReader::new(script.stdout.take().unwrap());
    let b32 = within("the script prints the b32 address", async {
        loop {
            let mut line = String::new();
            assert!(out.read_line(&mut line).await.unwrap() > 0, "script ended");
            if let Some(b32) = line.trim().strip_prefix("b32: ") {
                return b32.to_owned();
            }
        }
    })
    .await;
    assert!(b32.ends_with(".b32.i2p"), "{b32}");

    // A client tunnel of our own, and an HTTP request through I2P (the local core).
    let mut c = TestClient::connect(server.addr).await;
    c.new_tunnel("browser").await;
    c.ok("inhost 127.0.0.1").await;
    let inport = c.start_inbound().await;
    let mut web = TcpStream::connect(("127.0.0.1", inport)).await.unwrap();
    web.write_all(format!("{b32}\nGET /hello.txt HTTP/1.0\r\nHost: {b32}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    within("HTTP response", web.read_to_string(&mut response))
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.0 200"), "{response}");
    assert!(response.ends_with("hello over i2p\n"), "{response}");

    // SIGTERM: the script removes its tunnel and stops the web server.
    let pid = term.0.take().expect("script pid");
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let status = within("script exits", script.wait()).await.unwrap();
    assert_eq!(status.code(), Some(143), "{status:?}");
    let listed = c.line("status site").await;
    assert!(listed.starts_with("ERROR"), "tunnel removed: {listed}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A stand-in for `nc HOST PORT` (netcat is not installed everywhere): relays stdin to
/// the connection, passing end-of-input on as a half-close, and the connection to
/// stdout.
const FAKE_NC: &str = r#"#!/usr/bin/env python3
import socket, sys, threading
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
def pump():
    while True:
        data = sys.stdin.buffer.read1(65536)
        if not data:
            s.shutdown(socket.SHUT_WR)
            return
        s.sendall(data)
threading.Thread(target=pump, daemon=True).start()
while True:
    data = s.recv(65536)
    if not data:
        break
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
"#;

#[tokio::test]
async fn nc_client_example_talks_to_a_destination() {
    let dir = scratch_dir("nc");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    // The real netcat when installed (scripts/test.sh installs it; CI must have it),
    // otherwise a stand-in with the same interface.
    let real_nc = std::process::Command::new("sh")
        .args(["-c", "command -v nc"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !real_nc {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "nc (netcat) is not installed: CI must run the example with the real one"
        );
        let nc = write(&bin, "nc", FAKE_NC);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&nc, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let (echo, _) = echo_app(true).await;
    let server = start_server(false).await;
    let addr = server.addr.to_string();
    let mut c = TestClient::connect(server.addr).await;
    let dest = c.quiet_server_tunnel("echo", echo.port()).await;
    let b32 = keytools::Destination::from_base64(&dest).unwrap().b32();

    let path = format!("{}:{}", s(&bin), std::env::var("PATH").unwrap_or_default());
    let mut script = Command::new("bash")
        .arg(examples().join("nc-client.sh"))
        .arg(&b32)
        .env("PATH", path)
        .env("BOBCTL", BOBCTL)
        .env("BOBCTL_SERVER", &addr)
        .env("TUNNEL_NAME", "ncc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run the example");
    let mut stdin = script.stdin.take().unwrap();
    stdin.write_all(b"ping through nc\n").await.unwrap();
    drop(stdin);
    let out = within("nc-client ends", script.wait_with_output())
        .await
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ping through nc\n");
    assert!(stderr(&out).contains("client tunnel ncc listening on 127.0.0.1:"));

    // The script removed its tunnel on exit.
    let gone = c.line("status ncc").await;
    assert!(gone.starts_with("ERROR"), "{gone}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn completions_and_man_page_cover_every_flag() {
    let flags = [
        "--server",
        "--json",
        "--timeout",
        "--keys",
        "--newkeys",
        "--in",
        "--out",
        "--quiet",
        "--option",
        "--start",
        "--replace",
    ];
    let run = |args: &'static [&'static str]| async move {
        within("bobctl generates", Command::new(BOBCTL).args(args).output())
            .await
            .expect("run bobctl")
    };
    for (shell, args) in [
        ("bash", &["--generate-completions", "bash"][..]),
        ("zsh", &["--generate-completions", "zsh"][..]),
        ("fish", &["--generate-completions", "fish"][..]),
    ] {
        let out = run(args).await;
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let text = String::from_utf8(out.stdout).unwrap();
        for flag in &flags[..3] {
            let bare = flag.trim_start_matches('-');
            assert!(
                text.contains(flag) || text.contains(&format!("-l {bare}")),
                "{shell}: {flag}"
            );
        }
    }
    let out = run(&["--generate-man"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let man = String::from_utf8(out.stdout).unwrap().replace("\\-", "-");
    assert!(man.contains(".TH bobctl"), "{man}");
    for flag in &flags[..3] {
        assert!(man.contains(flag), "man: {flag}");
    }
    // every page the man page refers to (`bobctl-list(1)`, …) is written beside it
    let dir = scratch_dir("man");
    let out = within(
        "bobctl --generate-man-dir",
        Command::new(BOBCTL)
            .arg("--generate-man-dir")
            .arg(&dir)
            .output(),
    )
    .await
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let main = std::fs::read_to_string(dir.join("bobctl.1"))
        .unwrap()
        .replace("\\-", "-");
    let mut referred = 0;
    for sub in [
        "list", "status", "create", "start", "stop", "clear", "dest", "raw",
    ] {
        referred += usize::from(main.contains(&format!("bobctl-{sub}(1)")));
        let page = dir.join(format!("bobctl-{sub}.1"));
        assert!(page.is_file(), "{}", page.display());
    }
    assert_eq!(referred, 8, "{main}");
    let create = std::fs::read_to_string(dir.join("bobctl-create.1")).unwrap();
    assert!(create.replace("\\-", "-").contains("--replace"), "{create}");
    let _ = std::fs::remove_dir_all(&dir);
    // the subcommand flags are in the completions
    let out = run(&["--generate-completions", "bash"]).await;
    let text = String::from_utf8(out.stdout).unwrap();
    for flag in flags {
        assert!(text.contains(flag), "bash: {flag}");
    }
}

/// Each example, started with the name of a tunnel that exists already, fails without
/// touching that tunnel (issue 18: examples only ever remove what they created).
#[tokio::test]
async fn examples_leave_an_existing_tunnel_of_the_same_name_alone() {
    let server = start_server(false).await;
    let addr = server.addr.to_string();
    let mut c = TestClient::connect(server.addr).await;
    let (echo, _) = echo_app(true).await;
    let dest = c.quiet_server_tunnel("mine", echo.port()).await;
    let keys = c.ok_text("getkeys").await;
    let dir = scratch_dir("existing");
    for (script, arg) in [
        ("expose-web-server.sh", s(&dir).to_owned()),
        ("nc-client.sh", dest.clone()),
    ] {
        let out = within(
            script,
            Command::new("bash")
                .arg(examples().join(script))
                .arg(&arg)
                .env("BOBCTL", BOBCTL)
                .env("BOBCTL_SERVER", &addr)
                .env("TUNNEL_NAME", "mine")
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .unwrap();
        assert!(!out.status.success(), "{script} succeeded");
        assert!(
            stderr(&out).contains("a tunnel named mine exists already"),
            "{script}: {}",
            stderr(&out)
        );
        let status = c.line("status mine").await;
        assert!(status.contains("RUNNING: true"), "{script}: {status}");
        c.expect("getnick mine", "OK Nickname set to mine").await;
        assert_eq!(c.ok_text("getkeys").await, keys, "{script}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
