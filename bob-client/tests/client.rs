//! The client against scripted servers on in-memory pipes: exact request lines, reply
//! decoding, errors, and requests refused before a byte is sent.

use std::time::Duration;

use bob_client::{Client, ClientError};
use bob_codec::types::{Host, Nickname, Port, TunnelOption};
use bob_codec::{Command, Operand};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::task::JoinHandle;

const GREETING: &[u8] = b"BOB 00.00.10\nOK\n";

/// A server that greets, then answers each received line with the reply of the first
/// matching script entry (or `ERROR unexpected`), and returns every line it received.
fn scripted(
    script: &'static [(&'static str, &'static str)],
) -> (DuplexStream, JoinHandle<Vec<String>>) {
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let server = tokio::spawn(async move {
        let (read, mut write) = tokio::io::split(theirs);
        write.write_all(GREETING).await.unwrap();
        let mut lines = BufReader::new(read).lines();
        let mut seen = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            let reply = script
                .iter()
                .find(|(l, _)| *l == line)
                .map_or("ERROR unexpected\n", |(_, r)| r);
            seen.push(line);
            if write.write_all(reply.as_bytes()).await.is_err() {
                break;
            }
        }
        seen
    });
    (ours, server)
}

fn nick(s: &str) -> Nickname {
    s.parse().unwrap()
}

#[tokio::test]
async fn typed_calls_send_exact_lines_and_decode_replies() {
    let (io, server) = scripted(&[
        ("setnick web", "OK Nickname set to web\n"),
        ("newkeys", "OK DEST\n"),
        ("newkeys 7 4", "OK DEST7\n"),
        ("inhost 127.0.0.1", "OK inhost set\n"),
        ("inport 8080", "OK inbound port set\n"),
        ("outhost ::1", "OK outhost set\n"),
        ("outport 80", "OK outbound port set\n"),
        ("quiet true", "OK Quiet set\n"),
        ("option inbound.length=1", "OK inbound.length set to 1\n"),
        ("start", "OK tunnel starting\n"),
        (
            "list",
            "DATA NICKNAME: web STARTING: false RUNNING: true STOPPING: false KEYS: true QUIET: true INPORT: 8080 INHOST: 127.0.0.1 OUTPORT: 80 OUTHOST: ::1\nOK Listing done\n",
        ),
        (
            "status web",
            "OK DATA NICKNAME: web STARTING: false RUNNING: true STOPPING: false KEYS: true QUIET: true INPORT: 8080 INHOST: 127.0.0.1 OUTPORT: 80 OUTHOST: ::1\n",
        ),
        (
            "stats web",
            "OK STATS nickname=web running=true accepted=3 active=1 failed=0 bytes_in=10 bytes_out=20\n",
        ),
        ("getdest", "OK DEST\n"),
        ("quit", "OK Bye!\n"),
    ]);
    let mut bob = Client::handshake(io).await.unwrap();
    assert_eq!(bob.version(), Some("00.00.10"));
    bob.setnick(&nick("web")).await.unwrap();
    assert_eq!(bob.newkeys(None, None).await.unwrap(), "DEST");
    assert_eq!(bob.newkeys(Some("7"), Some("4")).await.unwrap(), "DEST7");
    bob.inhost(&"127.0.0.1".parse::<Host>().unwrap())
        .await
        .unwrap();
    bob.inport(Port::new(8080).unwrap()).await.unwrap();
    bob.outhost(&"::1".parse::<Host>().unwrap()).await.unwrap();
    bob.outport("80".parse().unwrap()).await.unwrap();
    bob.quiet(true).await.unwrap();
    bob.option(&"inbound.length=1".parse::<TunnelOption>().unwrap())
        .await
        .unwrap();
    bob.start().await.unwrap();
    let list = bob.list().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].nickname.as_str(), list[0].inport),
        ("web", Some(8080))
    );
    let status = bob.status(&nick("web")).await.unwrap();
    assert_eq!(status, list[0]);
    let stats = bob.stats(Some(&nick("web"))).await.unwrap();
    assert_eq!((stats.accepted, stats.bytes_out), (3, 20));
    assert_eq!(bob.getdest().await.unwrap(), "DEST");
    bob.quit().await.unwrap();
    let seen = server.await.unwrap();
    assert_eq!(seen.len(), 15, "{seen:?}");
    assert_eq!(seen[2], "newkeys 7 4");
}

#[tokio::test]
async fn server_errors_name_the_command_only() {
    let (io, _server) = scripted(&[("setkeys SECRETBLOB", "ERROR not in BASE64 format\n")]);
    let mut bob = Client::handshake(io).await.unwrap();
    let err = bob.setkeys("SECRETBLOB").await.unwrap_err();
    assert_eq!(err.to_string(), "setkeys: ERROR not in BASE64 format");
    assert_eq!(err.server_text(), Some("not in BASE64 format"));
}

#[tokio::test]
async fn injections_are_refused_before_anything_is_sent() {
    let (io, server) = scripted(&[(
        "status x",
        "OK DATA NICKNAME: x STARTING: false RUNNING: false STOPPING: false KEYS: false QUIET: false INPORT: not_set INHOST: localhost OUTPORT: not_set OUTHOST: localhost\n",
    )]);
    let mut bob = Client::handshake(io).await.unwrap();
    let refused = [
        Command::SetNick(Operand::from_token(Some("victim x"))),
        Command::SetNick(Operand::from_token(Some("z\nzap"))),
        Command::SetNick(Operand::from_token(Some("evil\rclear"))),
        Command::SetNick(Operand::from_token(Some("tab\tname"))),
        Command::SetNick(Operand::from_token(Some("nul\0"))),
        Command::SetNick(Operand::from_token(Some(""))),
        Command::GetNick(Operand::from_token(Some("a b"))),
        Command::Option(Operand::options(&["a=b c"])),
        // hand-built operands whose raw text does not match what the server would read
        Command::SetNick(Operand::Invalid {
            raw: "ok".into(),
            error: bob_codec::ValueError::NotAPair,
        }),
        Command::Option(Operand::Valid(Vec::new())),
        Command::NewKeys {
            sig_type: None,
            crypto_type: Some("4".into()),
        },
        Command::SetKeys(Some("AAAA\nzap".into())),
    ];
    for command in &refused {
        let err = bob.send(command).await.unwrap_err();
        assert!(
            matches!(err, ClientError::BadRequest { .. }),
            "{command:?}: {err}"
        );
    }
    for line in ["getnick victim\nclear", "zap\r", "a\tb", "x\u{1b}[2J"] {
        let err = bob.raw(line).await.unwrap_err();
        assert!(
            err.to_string().contains("control character"),
            "{line:?}: {err}"
        );
    }
    let long = format!("setnick {}", "x".repeat(bob_codec::MAX_LINE_LEN));
    assert!(matches!(
        bob.raw(&long).await,
        Err(ClientError::BadRequest { .. })
    ));
    // the connection is still in step: the next request gets its own reply
    assert!(bob.exists(&nick("x")).await.unwrap());
    drop(bob);
    assert_eq!(server.await.unwrap(), ["status x"]);
}

#[tokio::test]
async fn raw_reads_data_lines_up_to_the_final_reply() {
    let (io, _server) = scripted(&[
        ("list", "DATA a\nDATA b\nOK Listing done\n"),
        ("frob", "ERROR UNKNOWN COMMAND! Try help\n"),
    ]);
    let mut bob = Client::handshake(io).await.unwrap();
    assert_eq!(bob.raw("list").await.unwrap().len(), 3);
    let replies = bob.raw("frob").await.unwrap();
    assert_eq!(
        replies,
        [bob_codec::Reply::error("UNKNOWN COMMAND! Try help")]
    );
}

#[tokio::test]
async fn a_peer_that_is_not_bob_is_refused() {
    let (ours, mut theirs) = tokio::io::duplex(1024);
    theirs.write_all(b"SSH-2.0-OpenSSH\r\n").await.unwrap();
    let err = Client::handshake(ours).await.unwrap_err();
    assert!(matches!(err, ClientError::NotBob(_)), "{err}");
    assert!(err.to_string().contains("SSH-2.0"), "{err}");
}

#[tokio::test]
async fn closed_and_cut_off_replies_are_errors() {
    let (ours, mut theirs) = tokio::io::duplex(1024);
    theirs
        .write_all(b"BOB 00.00.10\nOK\nOK half")
        .await
        .unwrap();
    drop(theirs);
    let mut bob = Client::handshake(ours).await.unwrap();
    let err = bob.read_reply().await.unwrap_err();
    assert!(err.to_string().contains("middle of a line"), "{err}");
    assert!(matches!(bob.read_reply().await, Err(ClientError::Closed)));
}

#[tokio::test]
async fn overlong_and_crlf_lines() {
    let (ours, mut theirs) = tokio::io::duplex(1 << 20);
    let mut bytes = GREETING.to_vec();
    bytes.extend(std::iter::repeat_n(b'x', bob_client::MAX_REPLY_LEN + 1));
    bytes.extend(b"\nOK after\r\n");
    theirs.write_all(&bytes).await.unwrap();
    let mut bob = Client::handshake(ours).await.unwrap();
    assert!(!bob.last_line_was_crlf());
    let err = bob.read_line().await.unwrap_err();
    assert!(err.to_string().contains("longer than"), "{err}");
    assert_eq!(bob.read_line().await.unwrap(), "OK after");
    assert!(bob.last_line_was_crlf());
}

#[tokio::test(start_paused = true)]
async fn a_silent_server_times_out() {
    let (ours, _theirs) = tokio::io::duplex(1024);
    let mut bob = Client::without_greeting(ours);
    bob.set_timeout(Some(Duration::from_secs(5)));
    let err = bob.read_greeting().await.unwrap_err();
    assert!(matches!(err, ClientError::Timeout(_)), "{err}");
}
