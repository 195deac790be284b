//! Who may use the control port: `--allow-user` against real clients of other users
//! (run as `nobody` with `setpriv`, which needs root), and the Unix control socket.
#![cfg(target_os = "linux")]

use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};

use bob_testkit::process::{sigterm, spawn_listening};
use bob_testkit::{GREETING, TestClient, scratch_dir, within};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::{TcpStream, UnixStream};
use tokio::process::{Child, ChildStderr, Command};

const BIN: &str = env!("CARGO_BIN_EXE_bob-server");
const DENIED: &[u8] = b"ERROR access denied\n";

/// Connects to `target` (`HOST:PORT` or a socket path) and prints the first line.
const FIRST_LINE: &str = r#"
import socket, sys
t = sys.argv[1]
if t.startswith("/"):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(20)
    try:
        s.connect(t)
    except PermissionError:
        print("EACCES")
        sys.exit(0)
else:
    host, port = t.rsplit(":", 1)
    s = socket.create_connection((host.strip("[]"), int(port)), timeout=20)
line = b""
while not line.endswith(b"\n") and len(line) < 200:
    c = s.recv(1)
    if not c:
        break
    line += c
print(line.decode().strip())
"#;

/// True when the test can run clients as `nobody` (root); otherwise says loudly that it
/// did not run, and fails under CI.
fn can_switch_users() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true and the tests do not run as root: setpriv cannot run clients as nobody"
    );
    eprintln!("!!!! not root: the --allow-user tests with a `nobody` client did NOT run !!!!");
    false
}

/// The first line the server sends to a client run as `nobody` (`EACCES` when it may
/// not even open a Unix socket).
async fn first_line_as_nobody(target: &str) -> String {
    let out = within(
        "client run as nobody",
        Command::new("setpriv")
            .args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "/usr/bin/python3",
                "-c",
                FIRST_LINE,
                target,
            ])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("run setpriv");
    assert!(
        out.status.success(),
        "client as nobody: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Spawns the binary with `extra` (on 127.0.0.1:0 unless `extra` has a `--listen`);
/// returns it, its address and its log.
async fn spawn(extra: &[&str], env: &[(&str, &str)]) -> (Child, String, BufReader<ChildStderr>) {
    let listen: &[&str] = if extra.contains(&"--listen") {
        &[]
    } else {
        &["--listen", "127.0.0.1:0"]
    };
    let s = spawn_listening(
        Command::new(BIN)
            .args(listen)
            .args(extra)
            .envs(env.iter().copied()),
    )
    .await;
    (s.child, s.addr, s.stderr)
}

/// Everything the server sends until it closes the connection.
async fn read_all(mut stream: impl AsyncReadExt + Unpin) -> Vec<u8> {
    let mut got = Vec::new();
    within("the server closes", stream.read_to_end(&mut got))
        .await
        .expect("read");
    got
}

/// Reads the log until a line contains `needle`.
async fn log_line(stderr: &mut BufReader<ChildStderr>, needle: &str) -> String {
    within("log line", async {
        loop {
            let mut line = String::new();
            assert!(stderr.read_line(&mut line).await.unwrap() > 0, "log ended");
            if line.contains(needle) {
                return line;
            }
        }
    })
    .await
}

/// SIGTERM, then a clean exit.
async fn stop(mut child: Child) {
    let status = sigterm(&mut child).await;
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn allow_root_refuses_nobody_and_serves_root() {
    if !can_switch_users() {
        return;
    }
    let (child, addr, mut log) = spawn(&["--allow-user", "root"], &[]).await;
    assert_eq!(first_line_as_nobody(&addr).await, "ERROR access denied");
    let line = log_line(&mut log, "refused").await;
    assert!(line.contains("uid=65534"), "{line}");
    // root: an unmodified client gets the greeting and is served
    let mut c = TestClient::connect(&addr).await;
    assert_eq!(
        c.line("getnick nope").await,
        "ERROR no nickname has been set"
    );
    drop(c);
    stop(child).await;
}

#[tokio::test]
async fn ipv6_loopback_owners_are_found_too() {
    if !can_switch_users() {
        return;
    }
    let (child, addr, _log) = spawn(&["--listen", "[::1]:0", "--allow-user", "0"], &[]).await;
    assert!(addr.starts_with("[::1]:"), "{addr}");
    assert_eq!(first_line_as_nobody(&addr).await, "ERROR access denied");
    TestClient::connect(&addr).await;
    stop(child).await;
}

#[tokio::test]
async fn allow_nobody_refuses_root_before_the_greeting() {
    if !can_switch_users() {
        return;
    }
    // the environment variable, two users separated by a comma and a space
    let (child, addr, _log) = spawn(&[], &[("BOB_ALLOW_USERS", "daemon, nobody")]).await;
    let socket = TcpStream::connect(&addr).await.unwrap();
    assert_eq!(read_all(socket).await, DENIED, "nothing but the refusal");
    assert_eq!(first_line_as_nobody(&addr).await, "BOB 00.00.10");
    stop(child).await;
}

#[tokio::test]
async fn unix_control_socket_0600_greets_and_is_removed() {
    let dir = scratch_dir("access-unix");
    let path = dir.join("control.sock");
    let path_s = path.to_str().unwrap();
    // others may reach the directory: only the socket's own mode keeps them out
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (child, addr, _log) = spawn(&["--control-socket", path_s], &[]).await;
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    // the socket speaks the same protocol, greeting first
    let mut s = UnixStream::connect(&path).await.unwrap();
    let mut greeting = [0u8; GREETING.len()];
    within("greeting", s.read_exact(&mut greeting))
        .await
        .unwrap();
    assert_eq!(greeting, GREETING);
    drop(s);
    TestClient::connect(&addr).await; // TCP still served
    if can_switch_users() {
        // mode 0600: another user cannot even connect
        assert_eq!(first_line_as_nobody(path_s).await, "EACCES");
    }
    stop(child).await;
    assert!(!path.exists(), "socket removed at exit");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn unix_control_socket_checks_peer_credentials() {
    let dir = scratch_dir("access-unix-cred");
    let path = dir.join("control.sock");
    let uid = nix::unistd::geteuid().as_raw();
    let other = if uid == 65534 { "0" } else { "nobody" };
    let (child, _addr, mut log) = spawn(
        &[
            "--control-socket",
            path.to_str().unwrap(),
            "--allow-user",
            other,
        ],
        &[],
    )
    .await;
    let s = UnixStream::connect(&path).await.unwrap();
    assert_eq!(read_all(s).await, DENIED);
    let line = log_line(&mut log, "refused").await;
    assert!(line.contains(&format!("uid={uid}")), "{line}");
    stop(child).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs the binary to its exit; its status and stderr.
async fn run_to_exit(args: &[&str]) -> (bool, String) {
    let out = within(
        "bob-server exits",
        Command::new(BIN)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn bad_users_and_socket_paths_stop_the_start() {
    let (ok, err) = run_to_exit(&["--allow-user", "no-such-user-bob"]).await;
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "bob-server: allow-user \"no-such-user-bob\": no such user"
    );

    let dir = scratch_dir("access-bad-socket");
    let file = dir.join("notes.txt");
    std::fs::write(&file, "keep me").unwrap();
    let (ok, err) = run_to_exit(&["--control-socket", file.to_str().unwrap()]).await;
    assert!(!ok);
    assert!(
        err.contains("is not a socket; refusing to replace it"),
        "{err}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "nothing left");
    let missing = dir.join("no/such/dir/control.sock");
    let (ok, err) = run_to_exit(&["--control-socket", missing.to_str().unwrap()]).await;
    assert!(!ok);
    assert!(err.contains("control socket "), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
