//! The README's walk-through, replayed against the `bob-server` binary: every command of
//! its three control sessions is sent as written and every reply compared with the one the
//! README shows; then a request goes through the client tunnel as the README says (the
//! destination as the first line) and must reach the "web server" as plain HTTP, which is
//! what `quiet true` is there for; and `curl` through the HTTP proxy tunnel of step 3
//! must get the same page.

use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;

mod support;

use support::{free_port, within};

const BIN: &str = env!("CARGO_BIN_EXE_bob-server");

/// The README's `text` blocks that are control sessions (they contain `setnick`).
fn sessions(readme: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```text") => current = Some(Vec::new()),
            (Some(_), "```") => {
                let block = current.take().unwrap();
                if block.iter().any(|l| l.starts_with("setnick ")) {
                    blocks.push(block);
                }
            }
            (Some(block), l) => block.push(l.to_owned()),
            (None, _) => {}
        }
    }
    blocks
}

/// Whether `got` is the reply the README shows as `want`: `<base64 destination>` stands for
/// one, and a `←` remark after the reply is not part of it.
fn reply_matches(want: &str, got: &str) -> bool {
    let want = want.split('←').next().unwrap().trim_end();
    match want.split_once("<base64 destination>") {
        Some((before, after)) => {
            let Some(rest) = got.strip_prefix(before) else {
                return false;
            };
            let Some(dest) = rest.strip_suffix(after) else {
                return false;
            };
            keytools::Destination::from_base64(dest).is_ok()
        }
        None => want == got,
    }
}

/// A reply that is not the one the README shows.
struct Mismatch {
    command: String,
    want: String,
    got: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self { command, want, got } = self;
        write!(
            f,
            "README shows {want:?} after {command:?}, the server said {got:?}"
        )
    }
}

/// Plays one README session on a new control connection; returns the destinations that
/// `newkeys` answered. `ports` replaces the README's fixed port numbers.
async fn replay(
    addr: &str,
    session: &[String],
    ports: &[(u16, u16)],
) -> Result<Vec<String>, Mismatch> {
    let mut c = BufReader::new(TcpStream::connect(addr).await.expect("connect"));
    let mut dests = Vec::new();
    let mut lines = session.iter().peekable();
    while let Some(line) = lines.next() {
        let is_reply = line.starts_with("OK")
            || line.starts_with("ERROR")
            || line.starts_with("BOB ")
            || line.starts_with("DATA");
        let want = if is_reply {
            // the greeting: two lines nobody sent a command for
            line.clone()
        } else {
            let mut command = line.clone();
            for (readme, real) in ports {
                if let Some(verb) = command.strip_suffix(&format!(" {readme}")) {
                    command = format!("{verb} {real}");
                }
            }
            c.get_mut()
                .write_all(format!("{command}\n").as_bytes())
                .await
                .unwrap();
            lines
                .next()
                .unwrap_or_else(|| panic!("README: no reply shown for {line:?}"))
                .clone()
        };
        let mut got = String::new();
        within("reply", c.read_line(&mut got)).await.unwrap();
        let got = got.trim_end_matches('\n');
        if !reply_matches(&want, got) {
            return Err(Mismatch {
                command: line.clone(),
                want,
                got: got.to_owned(),
            });
        }
        if want.contains("<base64 destination>") {
            dests.push(got.trim_start_matches("OK ").to_owned());
        }
    }
    Ok(dests)
}

#[tokio::test]
async fn the_readme_walk_through_works_as_written() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README.md");
    let blocks = sessions(&readme);
    assert_eq!(
        blocks.len(),
        3,
        "the walk-through's three sessions: {blocks:#?}"
    );
    let (server_side, client_side, proxy_side) = (&blocks[0], &blocks[1], &blocks[2]);
    assert!(
        server_side.iter().any(|l| l == "quiet true"),
        "{server_side:?}"
    );
    for (block, command) in [
        (server_side, "outport 8080"),
        (client_side, "inport 8081"),
        (proxy_side, "inport 4444"),
    ] {
        assert!(block.iter().any(|l| l == command), "{command}: {block:?}");
    }
    // The README's own command lines, which the test runs with other ports.
    for needle in [
        "python3 -m http.server --bind 127.0.0.1 --directory /tmp/site 8080 &",
        "nc 127.0.0.1 2827",
        "| nc -N 127.0.0.1 8081",
        "curl -x http://127.0.0.1:4444 \"http://web.i2p/?i2paddresshelper=$DEST\"",
    ] {
        assert!(readme.contains(needle), "README: {needle}");
    }

    // The "web server": answers two requests (step 2's and step 3's) and reports the
    // request line of each, to check that it starts as HTTP.
    let web = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let web_port = web.local_addr().unwrap().port();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        for _ in 0..2 {
            let (sock, _) = web.accept().await.unwrap();
            let mut sock = BufReader::new(sock);
            let mut first = String::new();
            sock.read_line(&mut first).await.unwrap();
            // the whole head is read before answering: closing with unread input
            // would reset the connection under the answer
            loop {
                let mut line = String::new();
                if sock.read_line(&mut line).await.unwrap() == 0 || line == "\r\n" {
                    break;
                }
            }
            sock.get_mut()
                .write_all(b"HTTP/1.0 200 OK\r\n\r\nhello from I2P\n")
                .await
                .unwrap();
            let _ = seen_tx.send(first);
        }
    });

    let mut server = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("BOB_CONFIG")
        .env_remove("BOB_ROUTER")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn bob-server");
    let mut err = BufReader::new(server.stderr.take().unwrap());
    let addr = within("bob-server listening", async {
        loop {
            let mut line = String::new();
            assert!(
                err.read_line(&mut line).await.unwrap() > 0,
                "bob-server exited"
            );
            if let Some(a) = line.trim().strip_prefix("bob-server listening on ") {
                return a.to_owned();
            }
        }
    })
    .await;

    let site = replay(&addr, server_side, &[(8080, web_port)])
        .await
        .unwrap_or_else(|m| panic!("README server side: {m}"));
    assert_eq!(site.len(), 1, "{site:?}");
    let mut inport = None;
    for _ in 0..5 {
        let port = free_port();
        match replay(&addr, client_side, &[(8081, port)]).await {
            Ok(_) => {
                inport = Some(port);
                break;
            }
            // the port was taken meanwhile: the same session again replaces the
            // stopped tunnel (`setnick` of an inactive name)
            Err(m) if m.command == "start" && m.got.starts_with("ERROR starting tunnel") => {}
            Err(m) => panic!("README client side: {m}"),
        }
    }
    let inport = inport.expect("a free port for the client tunnel");

    // `printf '%s\nGET / HTTP/1.0\r\n\r\n' "$DEST" | nc -N 127.0.0.1 8081`
    let mut app = TcpStream::connect(("127.0.0.1", inport)).await.unwrap();
    app.write_all(format!("{}\nGET / HTTP/1.0\r\n\r\n", site[0]).as_bytes())
        .await
        .unwrap();
    app.shutdown().await.unwrap();
    let mut response = String::new();
    within("HTTP response", app.read_to_string(&mut response))
        .await
        .unwrap();
    assert_eq!(response, "HTTP/1.0 200 OK\r\n\r\nhello from I2P\n");
    let first = within("the web server's request", seen.recv())
        .await
        .unwrap();
    assert_eq!(
        first, "GET / HTTP/1.0\r\n",
        "quiet: plain HTTP, no peer line"
    );

    // step 3: the HTTP proxy tunnel, then curl with the address helper
    let mut proxy_port = None;
    for _ in 0..5 {
        let port = free_port();
        match replay(&addr, proxy_side, &[(4444, port)]).await {
            Ok(_) => {
                proxy_port = Some(port);
                break;
            }
            Err(m) if m.command == "start" && m.got.starts_with("ERROR starting tunnel") => {}
            Err(m) => panic!("README proxy side: {m}"),
        }
    }
    let proxy_port = proxy_port.expect("a free port for the proxy tunnel");
    let curl = Command::new("curl")
        .args(["-s", "-S", "--max-time", "20", "-x"])
        .arg(format!("http://127.0.0.1:{proxy_port}"))
        .arg(format!("http://web.i2p/?i2paddresshelper={}", site[0]))
        .kill_on_drop(true)
        .output();
    let output = within("curl through the proxy tunnel", curl)
        .await
        .expect("curl runs (scripts/test.sh installs it)");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "hello from I2P\n");
    let first = within("the web server's second request", seen.recv())
        .await
        .unwrap();
    assert_eq!(
        first, "GET / HTTP/1.1\r\n",
        "origin form, the address helper removed"
    );
    server.kill().await.unwrap();
}
