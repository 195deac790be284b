//! Replays the `C:`/`S:` transcripts in `tests/fixtures/*.txt` (built from the recorded
//! sessions and the command tables of the protocol reference).
//!
//! For every fixture:
//! - each `C:` line parses in the fixture's dialect to what its `P:` line says (the
//!   canonical `encode()`), or fails with the `P!` error text, and survives encode/parse;
//! - each `S:` line decodes as a [`Reply`] and re-encodes byte-exact (`line + "\n"`);
//!   replies carrying a tunnel record parse as a [`TunnelStatus`];
//! - the whole server byte stream and the whole client byte stream (CRLF, fed in odd
//!   chunks) frame back into exactly the same lines.

use bob_codec::line::LineCodec;
use bob_codec::{Command, Dialect, GREETING, Reply, TunnelStatus};
use std::path::Path;

const BANNER: &str = "BOB 00.00.10";

struct Exchange {
    client: String,
    expect: Result<String, String>,
}

struct Transcript {
    name: String,
    dialect: Dialect,
    client: Vec<Exchange>,
    server: Vec<String>,
}

fn load(path: &Path) -> Transcript {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(path).unwrap();
    let mut dialect = None;
    let mut client: Vec<Exchange> = Vec::new();
    let mut server = Vec::new();
    let mut pending: Option<String> = None;
    for (no, line) in text.lines().enumerate() {
        let at = format!("{name}:{}", no + 1);
        if let Some(c) = pending.take() {
            let expect = if let Some(p) = line.strip_prefix("P: ") {
                Ok(p.to_owned())
            } else if let Some(e) = line.strip_prefix("P! ") {
                Err(e.to_owned())
            } else {
                panic!("{at}: a C: line must be followed by P: or P!");
            };
            client.push(Exchange { client: c, expect });
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(d) = line.strip_prefix("dialect: ") {
            dialect = Some(match d {
                "java" => Dialect::Java,
                "i2pd" => Dialect::I2pd,
                other => panic!("{at}: unknown dialect {other}"),
            });
        } else if let Some(c) = line.strip_prefix("C: ") {
            pending = Some(c.to_owned());
        } else if let Some(s) = line.strip_prefix("S: ") {
            server.push(s.to_owned());
        } else {
            panic!("{at}: unexpected fixture line {line:?}");
        }
    }
    assert!(pending.is_none(), "{name}: last C: line has no P:");
    let dialect = dialect.unwrap_or_else(|| panic!("{name}: no dialect line"));
    Transcript {
        name,
        dialect,
        client,
        server,
    }
}

fn fixtures() -> Vec<Transcript> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 4, "expected at least four transcripts");
    paths.iter().map(|p| load(p)).collect()
}

/// Frames `bytes` with a fresh [`LineCodec`], `chunk` bytes at a time.
fn frame(bytes: &[u8], chunk: usize) -> Vec<String> {
    let mut codec = LineCodec::new();
    let mut buf = Vec::new();
    let mut lines = Vec::new();
    for piece in bytes.chunks(chunk) {
        buf.extend_from_slice(piece);
        while let Some(item) = codec.decode_line(&mut buf) {
            lines.push(item.expect("fixture lines are valid"));
        }
    }
    while let Some(item) = codec.decode_line_eof(&mut buf) {
        lines.push(item.expect("fixture lines are valid"));
    }
    lines
}

#[test]
fn client_lines_parse_as_recorded() {
    let mut total = 0;
    for t in fixtures() {
        for ex in &t.client {
            let parsed = Command::parse(&ex.client, t.dialect);
            match (&parsed, &ex.expect) {
                (Ok(cmd), Ok(canonical)) => {
                    assert_eq!(&cmd.encode(), canonical, "{}: {:?}", t.name, ex.client);
                    assert_eq!(Command::parse(canonical, t.dialect).as_ref(), Ok(cmd));
                }
                (Err(err), Err(text)) => {
                    assert_eq!(&err.to_string(), text, "{}: {:?}", t.name, ex.client);
                    // the reply the server sends for it
                    let reply = Reply::from(err).encode();
                    assert_eq!(reply, format!("ERROR {text}\n").into_bytes());
                }
                _ => panic!(
                    "{}: {:?} parsed to {parsed:?}, expected {:?}",
                    t.name, ex.client, ex.expect
                ),
            }
            total += 1;
        }
    }
    assert!(total > 150, "only {total} client lines");
}

#[test]
fn server_lines_decode_and_reencode_byte_exact() {
    let mut total = 0;
    for t in fixtures() {
        let mut lines = t.server.iter();
        assert_eq!(lines.next().map(String::as_str), Some(BANNER), "{}", t.name);
        assert_eq!(lines.next().map(String::as_str), Some("OK"), "{}", t.name);
        assert_eq!(format!("{BANNER}\nOK\n").as_bytes(), GREETING);
        assert!(Reply::decode(BANNER).is_err());
        for line in lines {
            let reply = Reply::decode(line).unwrap_or_else(|e| panic!("{}: {line:?}: {e}", t.name));
            assert_eq!(
                String::from_utf8(reply.encode()).unwrap(),
                format!("{line}\n"),
                "{}",
                t.name
            );
            if reply.text().is_some_and(|x| x.contains("NICKNAME: ")) {
                let status = TunnelStatus::from_reply(&reply)
                    .unwrap_or_else(|e| panic!("{}: {line:?}: {e}", t.name));
                if !line.contains(" PROXYTYPE: ") {
                    // Java records come back byte-exact from our own encoder
                    let rebuilt = match &reply {
                        Reply::Data(_) => status.to_list_reply(),
                        Reply::Ok(Some(x)) if x.starts_with("DATA ") => status.to_status_reply(),
                        _ => status.to_show_reply(),
                    };
                    assert_eq!(rebuilt, reply, "{}", t.name);
                }
            }
            total += 1;
        }
    }
    assert!(total > 150, "only {total} server lines");
}

#[test]
fn byte_streams_frame_back_into_the_same_lines() {
    for t in fixtures() {
        let server: Vec<u8> = t
            .server
            .iter()
            .flat_map(|l| format!("{l}\n").into_bytes())
            .collect();
        assert!(server.starts_with(GREETING));
        for chunk in [1, 7, 4096] {
            assert_eq!(frame(&server, chunk), t.server, "{} chunk {chunk}", t.name);
        }
        let client: Vec<u8> = t
            .client
            .iter()
            .flat_map(|e| format!("{}\r\n", e.client).into_bytes())
            .collect();
        let expected: Vec<String> = t.client.iter().map(|e| e.client.clone()).collect();
        for chunk in [1, 5, 4096] {
            assert_eq!(frame(&client, chunk), expected, "{} chunk {chunk}", t.name);
        }
    }
}

/// Every fixture cites the section of `docs/bob-protocol.md` it was built from; the file
/// is in the repository and has those sections.
#[test]
fn fixtures_cite_sections_that_exist() {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/bob-protocol.md");
    let doc = std::fs::read_to_string(&doc).expect("docs/bob-protocol.md is in the repository");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut cited = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let marker = "docs/bob-protocol.md (repository root) section ";
        let at = text
            .find(marker)
            .unwrap_or_else(|| panic!("{}: no citation", path.display()));
        let section: String = text[at + marker.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        assert!(
            doc.contains(&format!("\n## {section}. ")),
            "{}: section {section} is not in docs/bob-protocol.md",
            path.display()
        );
        cited += 1;
    }
    assert!(cited >= 4);
}
