//! The `bob-server` command line for scripts: the configuration file and its
//! precedence (flag > environment > file > default, seen through `--print-config`),
//! malformed files, tunnels declared in a tunnels file and started at boot, the
//! generated completions and man pages, and the example configuration in `scripts/examples/`
//! (the example scripts, which run bobctl, are tested in `bobctl/tests/examples.rs`).

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, ChildStderr, Command};

mod support;

use bob_testkit::{TestClient, scratch_dir};
use support::{DEADLINE, free_port, within};

const BIN: &str = env!("CARGO_BIN_EXE_bob-server");

/// Every variable bob-server reads, removed so the caller's environment cannot leak in.
const VARS: &[&str] = &[
    "BOB_CONFIG",
    "BOB_LISTEN",
    "BOB_ALLOW_REMOTE",
    "BOB_DIALECT",
    "BOB_NEWKEYS_TYPE",
    "BOB_MAX_CONNECTIONS",
    "BOB_MAX_TUNNELS",
    "BOB_HOSTS",
    "BOB_ROUTER",
    "BOB_TUNNEL_OPTIONS",
    "BOB_SESSION_TIMEOUT",
    "BOB_LOOKUP_TIMEOUT",
    "BOB_FIRST_LINE_TIMEOUT",
    "BOB_CONNECT_TIMEOUT",
    "BOB_MAX_TUNNEL_CONNECTIONS",
    "BOB_STATE_DIR",
    "BOB_METRICS",
    "BOB_TUNNELS",
];

/// A `bob-server` command with a clean environment.
fn bob() -> Command {
    let mut cmd = Command::new(BIN);
    for var in VARS {
        cmd.env_remove(var);
    }
    cmd.env("RUST_LOG", "info").kill_on_drop(true);
    cmd
}

async fn run(cmd: &mut Command) -> Output {
    within("bob-server exits", cmd.stdin(Stdio::null()).output())
        .await
        .expect("run bob-server")
}

fn stderr(out: &Output) -> String {
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

/// `--print-config` output, parsed.
async fn print_config(cmd: &mut Command) -> toml::Table {
    let out = run(cmd.arg("--print-config")).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).expect("utf-8");
    text.parse().unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test]
async fn defaults_are_printed_and_read_back() {
    let table = print_config(&mut bob()).await;
    assert_eq!(table["listen"].as_str(), Some("127.0.0.1:2827"));
    assert_eq!(table["allow-remote"].as_bool(), Some(false));
    assert_eq!(table["dialect"].as_str(), Some("java"));
    assert_eq!(table["max-connections"].as_integer(), Some(64));
    assert_eq!(table["max-tunnels"].as_integer(), Some(1024));
    assert_eq!(table["session-timeout"].as_integer(), Some(90));
    assert_eq!(table["newkeys-type"].as_str(), Some("DSA_SHA1"));
    assert!(table.get("router").is_none() && table.get("state-dir").is_none());

    // What --print-config prints is a configuration file giving the same result.
    let dir = scratch_dir("roundtrip");
    let out = run(bob().args([
        "--print-config",
        "--dialect",
        "i2pd",
        "--router",
        "127.0.0.1:7656",
        "--tunnel-option",
        "inbound.length=1",
        "--state-dir",
        "/var/lib/bob",
        "--metrics",
        "127.0.0.1:9100",
        "--newkeys-type",
        "7",
        "--max-tunnel-connections",
        "7",
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = String::from_utf8(out.stdout).unwrap();
    let file = write(&dir, "printed.toml", &printed);
    let out = run(bob().args(["--print-config", "--config", s(&file)])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), printed);
    assert!(
        printed.contains("router = \"sam://127.0.0.1:7656\""),
        "{printed}"
    );
    assert!(
        printed.contains("newkeys-type = \"EdDSA_SHA512_Ed25519\""),
        "{printed}"
    );
    assert!(printed.contains("max-tunnel-connections = 7"), "{printed}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn flag_beats_environment_beats_file_beats_default() {
    let dir = scratch_dir("precedence");
    let file = write(
        &dir,
        "bob.toml",
        r#"
listen = "127.0.0.1:1111"
dialect = "i2pd"
max-tunnels = 5
lookup-timeout = 7
first-line-timeout = 3
state-dir = "state"

[tunnel-options]
"inbound.length" = "1"
"outbound.length" = "1"
"#,
    );
    let table = print_config(
        bob()
            .args(["--config", s(&file)])
            .env("BOB_MAX_TUNNELS", "6")
            .env("BOB_LOOKUP_TIMEOUT", "8")
            .env("BOB_TUNNEL_OPTIONS", "outbound.length=2 inbound.quantity=4")
            .args(["--lookup-timeout", "9"]),
    )
    .await;
    // file only
    assert_eq!(table["listen"].as_str(), Some("127.0.0.1:1111"));
    assert_eq!(table["dialect"].as_str(), Some("i2pd"));
    assert_eq!(table["first-line-timeout"].as_integer(), Some(3));
    // relative paths are taken from the file's directory
    assert_eq!(table["state-dir"].as_str(), Some(s(&dir.join("state"))));
    // environment over file
    assert_eq!(table["max-tunnels"].as_integer(), Some(6));
    // flag over environment
    assert_eq!(table["lookup-timeout"].as_integer(), Some(9));
    // default where nobody says anything
    assert_eq!(table["max-connections"].as_integer(), Some(64));
    assert_eq!(table["connect-timeout"].as_integer(), Some(60));
    assert_eq!(table["max-tunnel-connections"].as_integer(), Some(1024));
    // options merge key by key
    let opts = table["tunnel-options"].as_table().unwrap();
    assert_eq!(opts["inbound.length"].as_str(), Some("1"));
    assert_eq!(opts["outbound.length"].as_str(), Some("2"));
    assert_eq!(opts["inbound.quantity"].as_str(), Some("4"));

    // BOB_CONFIG names the file too; a flag still wins over it.
    let table = print_config(
        bob()
            .env("BOB_CONFIG", s(&file))
            .env("BOB_ALLOW_REMOTE", "true")
            .args(["--listen", "0.0.0.0:2222"]),
    )
    .await;
    assert_eq!(table["listen"].as_str(), Some("0.0.0.0:2222"));
    assert_eq!(table["allow-remote"].as_bool(), Some(true));
    assert_eq!(table["max-tunnels"].as_integer(), Some(5));

    // ... and --allow-remote=false on the command line beats the variable.
    let out = run(bob().env("BOB_ALLOW_REMOTE", "true").args([
        "--allow-remote=false",
        "--listen",
        "0.0.0.0:2222",
        "--print-config",
    ]))
    .await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("refusing to listen"),
        "{}",
        stderr(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn malformed_configuration_names_file_line_and_key() {
    let dir = scratch_dir("badconf");
    let cases = [
        (
            "syntax.toml",
            "listen = \"127.0.0.1:1\"\nlisten = [\n",
            ":2:",
            "",
        ),
        (
            "unknown.toml",
            "# comment\nlisten = \"127.0.0.1:1\"\ncolour = \"blue\"\n",
            ":3:",
            "colour",
        ),
        (
            "value.toml",
            "\nmax-connections = 0\n",
            ":2:",
            "max-connections",
        ),
        ("router.toml", "router = \"http://x\"\n", ":1:", "router"),
        (
            "type.toml",
            "lookup-timeout = \"soon\"\n",
            ":1:",
            "lookup-timeout",
        ),
    ];
    for (name, text, line, needle) in cases {
        let file = write(&dir, name, text);
        for extra in [&["--print-config"][..], &["--listen", "127.0.0.1:0"][..]] {
            let out = run(bob().args(["--config", s(&file)]).args(extra)).await;
            assert!(!out.status.success(), "{name}");
            let err = stderr(&out);
            assert!(
                err.contains(&format!("{}{line}", s(&file))),
                "{name}: {err}"
            );
            assert!(err.contains(needle), "{name}: {err}");
            assert!(!err.contains("listening on"), "{name}: {err}");
        }
    }
    // a missing file, a conflict, and a bad environment value
    let out = run(bob().args(["--config", "/nonexistent/bob.toml", "--print-config"])).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("/nonexistent/bob.toml"),
        "{}",
        stderr(&out)
    );
    let file = write(&dir, "conflict.toml", "hosts = \"h.txt\"\n");
    let out = run(bob().args([
        "--config",
        s(&file),
        "--router",
        "127.0.0.1:7656",
        "--print-config",
    ]))
    .await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("hosts"), "{}", stderr(&out));
    let out = run(bob().env("BOB_MAX_TUNNELS", "lots").arg("--print-config")).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("lots"), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn malformed_tunnels_file_stops_the_binary_naming_the_line() {
    let dir = scratch_dir("badtunnels");
    let file = write(
        &dir,
        "tunnels.toml",
        "[[tunnel]]\nname = \"ok\"\nkeys = \"ok.keys\"\noutbound = \"127.0.0.1:80\"\n\n[[tunnel]]\nname = \"bad\"\nkeys = \"bad.keys\"\ninbound = \"127.0.0.1:0\"\n",
    );
    for extra in [&["--print-config"][..], &["--listen", "127.0.0.1:0"][..]] {
        let out = run(bob().args(["--tunnels", s(&file)]).args(extra)).await;
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(err.contains(&format!("{}:6:", s(&file))), "{err}");
        assert!(err.contains("port must be"), "{err}");
    }
    // the same through `tunnels = ...` in the configuration file (relative to it)
    let conf = write(&dir, "bob.toml", "tunnels = \"tunnels.toml\"\n");
    let out = run(bob().args(["--config", s(&conf), "--listen", "127.0.0.1:0"])).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("tunnels.toml:6:"), "{}", stderr(&out));

    // a key file that exists but holds no keys: named, with the entry's line
    let file = write(
        &dir,
        "badkeys.toml",
        "\n[[tunnel]]\nname = \"k\"\nkeys = \"garbage.keys\"\noutbound = \"127.0.0.1:80\"\n",
    );
    write(&dir, "garbage.keys", "this is not a key file\n");
    let out = run(bob().args(["--tunnels", s(&file), "--listen", "127.0.0.1:0"])).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(&format!("{}:2:", s(&file))), "{err}");
    assert!(err.contains(s(&dir.join("garbage.keys"))), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Spawns the binary; returns it, the control address, and stderr positioned after
/// the line starting with `until` (the lines before it are returned too).
async fn spawn_until(
    cmd: &mut Command,
    until: &str,
) -> (Child, String, Vec<String>, BufReader<ChildStderr>) {
    let mut child = cmd
        .args(["--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bob-server");
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut seen = Vec::new();
    let mut addr = String::new();
    within(until, async {
        loop {
            let mut line = String::new();
            let n = err.read_line(&mut line).await.expect("read stderr");
            assert!(n > 0, "bob-server exited early: {seen:#?}");
            if let Some(a) = line.trim().strip_prefix("bob-server listening on ") {
                addr = a.to_owned();
            }
            let done = line.starts_with(until);
            seen.push(line);
            if done {
                return;
            }
        }
    })
    .await;
    (child, addr, seen, err)
}

async fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = sock.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    port
}

/// A control connection (the shared test client), greeting checked.
async fn control(addr: &str) -> TestClient {
    TestClient::connect(addr).await
}

/// One command; the reply line with its `\n`.
async fn command(c: &mut TestClient, line: &str) -> String {
    c.cmd(line).await
}

#[tokio::test]
async fn tunnels_file_starts_tunnels_that_carry_data() {
    let dir = scratch_dir("boot");
    let echo = echo_server().await;
    let inport = free_port();
    let file = write(
        &dir,
        "tunnels.toml",
        &format!(
            r#"
[[tunnel]]
name = "srv"
keys = "srv.keys"
key-type = "ed25519"
outbound = "127.0.0.1:{echo}"
quiet = true

[[tunnel]]
name = "cli"
keys = "keys/cli.keys"
inbound = "127.0.0.1:{inport}"
[tunnel.options]
"inbound.length" = "1"

[[tunnel]]
name = "idle"
keys = "idle.keys"
outbound = "127.0.0.1:9"
start = false
"#
        ),
    );
    let (mut child, addr, log, _err) = spawn_until(
        bob().args(["--tunnels", s(&file)]),
        "bob-server tunnels ready",
    )
    .await;
    assert!(
        log.last().unwrap().contains("2 started"),
        "{:?}",
        log.last()
    );

    // Missing key files were created, private.
    for keys in ["srv.keys", "keys/cli.keys", "idle.keys"] {
        let path = dir.join(keys);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect(keys).permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{keys}");
        }
        assert!(
            bob_server::storage::keyfile::read_key_file(&path).is_ok(),
            "{keys}"
        );
    }
    let srv = bob_server::storage::keyfile::read_key_file(&dir.join("srv.keys")).unwrap();
    assert_eq!(srv.destination().sig_type(), keytools::SigType::Ed25519);

    // Data end to end: app -> cli inbound -> local core -> srv -> echo server.
    let mut app = TcpStream::connect(("127.0.0.1", inport))
        .await
        .expect("the client tunnel listens");
    app.write_all(format!("{}\nhello from boot\n", srv.destination().b32()).as_bytes())
        .await
        .unwrap();
    let mut app = BufReader::new(app);
    let mut echoed = String::new();
    within("echo", app.read_line(&mut echoed)).await.unwrap();
    assert_eq!(echoed, "hello from boot\n");

    // The registry shows what the file said.
    let mut c = control(&addr).await;
    let idle = command(&mut c, "status idle").await;
    assert!(
        idle.contains("RUNNING: false") && idle.contains("KEYS: true"),
        "{idle}"
    );
    let cli = command(&mut c, "status cli").await;
    assert!(cli.contains("RUNNING: true"), "{cli}");
    assert_eq!(
        command(&mut c, "getnick cli").await,
        "OK Nickname set to cli\n"
    );
    let props = command(&mut c, "showprops").await;
    assert!(props.contains("inbound.length=1"), "{props}");
    let srv_status = command(&mut c, "status srv").await;
    assert!(srv_status.contains("QUIET: true"), "{srv_status}");
    child.kill().await.unwrap();

    // A second boot reuses the keys: the address stays.
    let before = std::fs::read(dir.join("srv.keys")).unwrap();
    let (mut child, _, _, _err) = spawn_until(
        bob().args(["--tunnels", s(&file)]),
        "bob-server tunnels ready",
    )
    .await;
    assert_eq!(std::fs::read(dir.join("srv.keys")).unwrap(), before);
    child.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_declared_tunnel_that_cannot_start_is_fatal() {
    let dir = scratch_dir("nostart");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let file = write(
        &dir,
        "tunnels.toml",
        &format!("[[tunnel]]\nname = \"c\"\nkeys = \"c.keys\"\ninbound = \"127.0.0.1:{port}\"\n"),
    );
    let out = run(bob().args(["--tunnels", s(&file), "--listen", "127.0.0.1:0"])).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}:1: tunnel \"c\": start failed", s(&file))),
        "{err}"
    );
    // Three attempts with a back-off between them (1 s, then 2 s), not three at once.
    let attempts: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("tunnel did not start") && !l.contains("trying again"))
        .collect();
    assert_eq!(attempts.len(), 3, "{err}");
    for wait in ["trying again in 1s", "trying again in 2s"] {
        assert!(err.contains(wait), "{wait}: {err}");
    }
    let at = |line: &str| -> f64 {
        // RFC 3339 time stamp at the start of the line: seconds within the day
        let time = line.split(['T', 'Z']).nth(1).expect("timestamp");
        time.split(':')
            .map(|p| p.parse::<f64>().expect("number"))
            .fold(0.0, |acc, v| acc * 60.0 + v)
    };
    let gaps: Vec<f64> = attempts.windows(2).map(|w| at(w[1]) - at(w[0])).collect();
    // (a day boundary between two attempts would make a gap negative)
    assert!(
        gaps.iter().all(|g| *g >= 0.9 || *g < 0.0),
        "attempts too close together: {gaps:?}"
    );
    drop(taken);
    let _ = std::fs::remove_dir_all(&dir);
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/examples")
}

#[tokio::test]
async fn example_configuration_and_tunnels_file_parse() {
    let config = examples().join("config.toml");
    let table = print_config(bob().args(["--config", s(&config)])).await;
    assert_eq!(table["router"].as_str(), Some("sam://127.0.0.1:7656"));
    assert!(table["tunnels"].as_str().unwrap().ends_with("tunnels.toml"));
    let decls = bob_server::config::tunnels::load(&examples().join("tunnels.toml"))
        .expect("example tunnels file");
    let names: Vec<_> = decls.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["web", "irc-client", "ssh"]);
    assert!(decls.iter().any(|d| !d.start));
    let unit = std::fs::read_to_string(examples().join("bob-server.service")).unwrap();
    for needle in [
        "--config /etc/bob-server/config.toml",
        "--state-dir",
        "StateDirectory=bob-server",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "DynamicUser=yes",
    ] {
        assert!(unit.contains(needle), "{needle}");
    }
}

#[tokio::test]
async fn completions_and_man_pages_cover_every_flag() {
    let server_flags = [
        "--config",
        "--print-config",
        "--listen",
        "--allow-remote",
        "--dialect",
        "--router",
        "--hosts",
        "--tunnel-option",
        "--session-timeout",
        "--max-connections",
        "--max-tunnels",
        "--lookup-timeout",
        "--first-line-timeout",
        "--connect-timeout",
        "--max-tunnel-connections",
        "--state-dir",
        "--metrics",
        "--tunnels",
        "--newkeys-type",
    ];
    // (bobctl's are checked in bobctl/tests/examples.rs)
    for (bin, flags) in [(BIN, &server_flags[..])] {
        for shell in ["bash", "zsh", "fish"] {
            let out = run(Command::new(bin).args(["--generate-completions", shell])).await;
            assert!(out.status.success(), "{bin} {shell}: {}", stderr(&out));
            let text = String::from_utf8(out.stdout).unwrap();
            for flag in flags {
                // fish lists long flags without their dashes (`-l listen`)
                let bare = flag.trim_start_matches('-');
                assert!(
                    text.contains(flag) || text.contains(&format!("-l {bare}")),
                    "{bin} {shell}: {flag}"
                );
            }
        }
        let out = run(Command::new(bin).arg("--generate-man")).await;
        assert!(out.status.success(), "{bin}: {}", stderr(&out));
        let man = String::from_utf8(out.stdout).unwrap().replace("\\-", "-");
        assert!(man.starts_with(".ie") || man.contains(".TH"), "{man}");
        for flag in flags {
            assert!(man.contains(flag), "{bin} man: {flag}");
        }
    }
    let out = run(Command::new(BIN).args(["--generate-completions", "tcsh"])).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("tcsh"), "{}", stderr(&out));
}

/// Polls `status NAME` until `want` is in the reply.
async fn wait_status(c: &mut TestClient, name: &str, want: &str) -> String {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let reply = command(c, &format!("status {name}")).await;
        if reply.contains(want) {
            return reply;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name}: {want} never came: {reply}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn tunnels_file_wins_over_the_restored_state() {
    let dir = scratch_dir("statewins");
    let state = dir.join("state");
    let state_arg = s(&state).to_owned();

    // First run: two tunnels started by a client, saved as running.
    let (mut child, addr, _, _err) = spawn_until(
        bob().args(["--state-dir", &state_arg]),
        "bob-server listening on",
    )
    .await;
    let mut c = control(&addr).await;
    for name in ["t", "keep"] {
        assert!(
            command(&mut c, &format!("setnick {name}"))
                .await
                .starts_with("OK")
        );
        assert!(command(&mut c, "newkeys 7").await.starts_with("OK"));
        assert!(command(&mut c, "outhost 127.0.0.1").await.starts_with("OK"));
        assert!(command(&mut c, "outport 9").await.starts_with("OK"));
        assert!(command(&mut c, "start").await.starts_with("OK"), "{name}");
    }
    child.kill().await.unwrap();

    // Second run: the tunnels file declares `t` anew, stopped, with another port.
    let file = write(
        &dir,
        "tunnels.toml",
        "[[tunnel]]\nname = \"t\"\nkeys = \"t.keys\"\noutbound = \"127.0.0.1:10\"\nstart = false\n",
    );
    let (mut child, addr, log, _err) = spawn_until(
        bob().args(["--state-dir", &state_arg, "--tunnels", s(&file)]),
        "bob-server tunnels ready",
    )
    .await;
    assert!(log.last().unwrap().contains("0 started"), "{log:?}");
    let mut c = control(&addr).await;
    // `keep` is only in the state: it is started again
    wait_status(&mut c, "keep", "RUNNING: true").await;
    let t = command(&mut c, "status t").await;
    assert!(
        t.contains("RUNNING: false") && t.contains("STARTING: false") && t.contains("OUTPORT: 10"),
        "{t}"
    );
    // a change saved before its reply also saves the file's version of `t`
    assert!(command(&mut c, "setnick other").await.starts_with("OK"));
    child.kill().await.unwrap();

    // Third run, state only: `t` stays as the file left it.
    let (mut child, addr, _, _err) = spawn_until(
        bob().args(["--state-dir", &state_arg]),
        "bob-server listening on",
    )
    .await;
    let mut c = control(&addr).await;
    wait_status(&mut c, "keep", "RUNNING: true").await;
    let t = command(&mut c, "status t").await;
    assert!(
        t.contains("RUNNING: false") && t.contains("OUTPORT: 10"),
        "{t}"
    );
    child.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Each cause once (no `X: X` chains), and a hint where the user can act.
#[tokio::test]
async fn errors_say_each_cause_once_and_what_to_do() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(bob().args(["--listen", &addr])).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.matches("Address already in use").count(), 1, "{err}");
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert!(
        err.contains("hint: another program listens on") && err.contains("--listen"),
        "{err}"
    );
    drop(taken);

    let out = run(bob().args(["--config", "/nonexistent/nosuch.toml"])).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");

    // A missing tunnels file has no line to blame.
    let dir = scratch_dir("errors");
    let conf = write(&dir, "bob.toml", "tunnels = \"nosuch.toml\"\n");
    let out = run(bob().args(["--config", s(&conf), "--print-config"])).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    let missing = s(&dir.join("nosuch.toml")).to_owned();
    assert!(err.contains(&format!("{missing}: No such file")), "{err}");
    assert!(!err.contains(&format!("{missing}:1")), "{err}");

    // Typos and unquoted values are explained.
    for (text, want) in [
        (
            "listen = 127.0.0.1:2905\n",
            "bob.toml:1: listen: expected an address in quotes, e.g. listen = \"127.0.0.1:2827\"",
        ),
        (
            "max-tunnel = 3\n",
            "bob.toml:1: unknown key `max-tunnel`; did you mean `max-tunnels`?",
        ),
    ] {
        let conf = write(&dir, "bob.toml", text);
        let out = run(bob().args(["--config", s(&conf), "--print-config"])).await;
        assert!(!out.status.success());
        assert!(stderr(&out).contains(want), "{text}: {}", stderr(&out));
    }

    // A bad value from the environment is blamed on the variable, from a flag on the flag.
    let out = run(bob().env("BOB_MAX_TUNNELS", "abc").arg("--print-config")).await;
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("invalid value \"abc\" in the environment variable BOB_MAX_TUNNELS"),
        "{err}"
    );
    assert!(!err.contains("for '--max-tunnels"), "{err}");
    let out =
        run(bob()
            .env("BOB_MAX_TUNNELS", "abc")
            .args(["--max-tunnels", "xyz", "--print-config"]))
        .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("'xyz' for '--max-tunnels"),
        "{}",
        stderr(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The start-up line describes the backend in use.
#[tokio::test]
async fn start_up_log_names_the_backend_in_use() {
    // nothing needs to listen at the router address for the server to start
    let router = format!("sam://127.0.0.1:{}", free_port());
    let (mut child, _, seen, _err) =
        spawn_until(bob().args(["--router", &router]), "bob-server listening on").await;
    let log = seen.concat();
    assert!(!log.contains("Without --router"), "{log}");
    assert!(
        log.contains(&format!("tunnels run on the I2P router at {router}")),
        "{log}"
    );
    child.kill().await.unwrap();
    let (mut child, _, seen, _err) = spawn_until(&mut bob(), "bob-server listening on").await;
    assert!(seen.concat().contains("reaches NO I2P network"), "{seen:?}");
    child.kill().await.unwrap();
}

/// What --print-config prints works as a configuration file wherever it is saved: its
/// paths are absolute.
#[tokio::test]
async fn printed_configuration_works_from_another_directory() {
    let dir = scratch_dir("printabs");
    let conf_dir = dir.join("conf");
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&conf_dir).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    write(
        &conf_dir,
        "tunnels.toml",
        "[[tunnel]]\nname = \"w\"\nkeys = \"w.keys\"\noutbound = \"127.0.0.1:80\"\n",
    );
    write(&conf_dir, "bob.toml", "tunnels = \"tunnels.toml\"\n");
    // relative to the working directory (--state-dir) and to the file (tunnels)
    let out = run(bob().current_dir(&dir).args([
        "--config",
        "conf/bob.toml",
        "--state-dir",
        "state",
        "--print-config",
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = String::from_utf8(out.stdout).unwrap();
    let table: toml::Table = printed.parse().unwrap();
    assert_eq!(table["state-dir"].as_str(), Some(s(&dir.join("state"))));
    assert_eq!(
        table["tunnels"].as_str(),
        Some(s(&dir.join("conf/tunnels.toml")))
    );
    let saved = write(&elsewhere, "effective.toml", &printed);
    let out = run(bob()
        .current_dir(&elsewhere)
        .args(["--config", s(&saved), "--print-config"]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), printed);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Host names and a bare port, the same way for --listen, --metrics and --router, as
/// flags, variables and config keys.
#[tokio::test]
async fn addresses_take_host_names_and_bare_ports_everywhere() {
    let table = print_config(bob().args([
        "--listen",
        "localhost:2828",
        "--metrics",
        "9101",
        "--router",
        "7656",
    ]))
    .await;
    assert_eq!(table["listen"].as_str(), Some("127.0.0.1:2828"));
    assert_eq!(table["metrics"].as_str(), Some("127.0.0.1:9101"));
    assert_eq!(table["router"].as_str(), Some("sam://127.0.0.1:7656"));
    let table = print_config(
        bob()
            .env("BOB_LISTEN", "2829")
            .env("BOB_ROUTER", "localhost:7656"),
    )
    .await;
    assert_eq!(table["listen"].as_str(), Some("127.0.0.1:2829"));
    assert_eq!(table["router"].as_str(), Some("sam://localhost:7656"));
    let dir = scratch_dir("addrs");
    let conf = write(
        &dir,
        "bob.toml",
        "listen = \"2830\"\nmetrics = \"localhost:9102\"\nrouter = \"sam://localhost:7656\"\n",
    );
    let table = print_config(bob().args(["--config", s(&conf)])).await;
    assert_eq!(table["listen"].as_str(), Some("127.0.0.1:2830"));
    assert_eq!(table["metrics"].as_str(), Some("127.0.0.1:9102"));
    // and a server really listens on a name
    let (mut child, addr, _, _err) = spawn_until(
        bob().args(["--metrics", "localhost:0"]),
        "bob-server listening on",
    )
    .await;
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    child.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn limits_beyond_the_runtime_are_clamped_and_work() {
    let huge = [
        "--max-connections",
        "2305843009213693952",
        "--max-tunnel-connections",
        "18446744073709551615",
    ];
    // tokio's semaphore holds at most 2^61 - 1 permits
    let table = print_config(bob().args(huge)).await;
    assert_eq!(
        table["max-connections"].as_integer(),
        Some(2_305_843_009_213_693_951)
    );
    assert_eq!(
        table["max-tunnel-connections"].as_integer(),
        Some(2_305_843_009_213_693_951)
    );

    // the server runs with them: control connections are served and a tunnel's accept
    // loop takes connections (it used to panic while `status` said RUNNING)
    let (mut child, addr, _, _err) = spawn_until(bob().args(huge), "bob-server listening on").await;
    let mut c = control(&addr).await;
    let inport = free_port();
    assert!(command(&mut c, "setnick t").await.starts_with("OK"));
    assert!(command(&mut c, "newkeys").await.starts_with("OK"));
    assert!(
        command(&mut c, &format!("inport {inport}"))
            .await
            .starts_with("OK")
    );
    assert!(command(&mut c, "start").await.starts_with("OK"));
    within("RUNNING", async {
        while !command(&mut c, "status t").await.contains("RUNNING: true") {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let mut app = TcpStream::connect(("127.0.0.1", inport)).await.unwrap();
    app.write_all(b"not-a-destination\n").await.unwrap();
    let mut reply = String::new();
    within(
        "tunnel reply",
        BufReader::new(&mut app).read_line(&mut reply),
    )
    .await
    .unwrap();
    assert!(reply.starts_with("ERROR "), "{reply:?}");
    let _ = child.kill().await;
}

#[tokio::test]
async fn a_socks_tunnel_from_the_tunnels_file() {
    let dir = scratch_dir("socksboot");
    let echo = echo_server().await;
    let socks_port = free_port();
    let file = write(
        &dir,
        "tunnels.toml",
        &format!(
            r#"
[[tunnel]]
name = "srv"
keys = "srv.keys"
outbound = "127.0.0.1:{echo}"
quiet = true

[[tunnel]]
name = "px"
keys = "px.keys"
type = "socks"
inbound = "127.0.0.1:{socks_port}"
"#
        ),
    );
    let (mut child, addr, _log, _err) = spawn_until(
        bob().args(["--tunnels", s(&file)]),
        "bob-server tunnels ready",
    )
    .await;
    let srv = bob_server::storage::keyfile::read_key_file(&dir.join("srv.keys")).unwrap();
    let b32 = srv.destination().b32();
    // SOCKS5: greeting, CONNECT to the server tunnel's b32, then a line to echo
    let mut app = TcpStream::connect(("127.0.0.1", socks_port))
        .await
        .expect("the SOCKS tunnel listens");
    let mut request = vec![5, 1, 0, 5, 1, 0, 3, u8::try_from(b32.len()).unwrap()];
    request.extend_from_slice(b32.as_bytes());
    request.extend_from_slice(&[0, 80]);
    request.extend_from_slice(b"hello via socks\n");
    app.write_all(&request).await.unwrap();
    let mut replies = [0u8; 12];
    within("socks replies", app.read_exact(&mut replies))
        .await
        .unwrap();
    assert_eq!(replies[..4], [5, 0, 5, 0]);
    let mut app = BufReader::new(app);
    let mut echoed = String::new();
    within("echo", app.read_line(&mut echoed)).await.unwrap();
    assert_eq!(echoed, "hello via socks\n");
    let mut c = control(&addr).await;
    let px = command(&mut c, "status px").await;
    assert!(
        px.contains("RUNNING: true") && px.ends_with(" PROXYTYPE: SOCKS\n"),
        "{px}"
    );
    child.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
