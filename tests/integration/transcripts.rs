//! The recorded Java BOB and i2pd sessions (`bob-codec/tests/fixtures/*.txt`, replayed
//! through the codec by `bob-codec/tests/transcripts.rs`) replayed against a running
//! bob-server in the fixture's dialect, line by line on one control connection.
//!
//! Every reply must equal the recorded one, except where `docs/compatibility.md` says
//! bob-server deliberately differs: those exchanges are listed in [`DIFFERENCES`] with the
//! reply bob-server sends instead and the row of that file that explains it. A difference
//! that is not listed, or a listed one that no longer happens, fails the test.
//!
//! What cannot be recorded verbatim is normalised on both sides: base64 keys and
//! destinations (new keys are random) become `<base64 N>` with their length `N`, and the
//! fixture's port numbers are replaced by free ports (mapped back in the replies); when a
//! recorded `start` failed with "Address already in use", the test holds that port.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bob_codec::Dialect;
use bob_integration_tests::{BobClient, free_port, start_server};

/// One client line and the replies recorded for it.
struct Exchange {
    client: String,
    replies: Vec<String>,
}

struct Transcript {
    name: String,
    dialect: Dialect,
    exchanges: Vec<Exchange>,
}

/// Exchanges where bob-server deliberately answers otherwise: (fixture, client line, the
/// start of the recorded first reply (`""`: none recorded), bob-server's replies, why:
/// the row or section of `docs/compatibility.md`, or what the fixture changed).
type Difference = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static str,
);

const DIFFERENCES: &[Difference] = &[
    (
        "java-session.txt",
        "help nosuch",
        "",
        &["ERROR No such command"],
        "row 1",
    ),
    (
        "java-session.txt",
        "inport abc",
        "ERROR not a number",
        &["ERROR not a number"],
        "row 3",
    ),
    (
        "java-session.txt",
        "showprops",
        "OK PROPERTIES: {outbound.length=3, a=b,",
        &[
            "OK PROPERTIES: {a=b, inbound.length=1, inbound.lengthVariance=0, inbound.nickname=t1, outbound.length=3, outbound.lengthVariance=0, outbound.nickname=t1}",
        ],
        "row 18",
    ),
    (
        "java-session.txt",
        "start",
        "ERROR starting tunnel: java.net.BindException",
        &["ERROR starting tunnel: Address already in use (os error 98)"],
        "row 9",
    ),
    (
        "java-commands.txt",
        "help nosuch",
        "",
        &["ERROR No such command"],
        "row 1",
    ),
    (
        "java-commands.txt",
        "setnick",
        "OK Nickname set to ",
        &["ERROR no nickname has been set"],
        "row 11",
    ),
    (
        "java-commands.txt",
        "list",
        "DATA NICKNAME:  STARTING",
        &[
            "DATA NICKNAME: t1 STARTING: false RUNNING: false STOPPING: false KEYS: false QUIET: false INPORT: not_set INHOST: localhost OUTPORT: not_set OUTHOST: localhost",
            "OK Listing done",
        ],
        "row 11 (no unnamed entry)",
    ),
    (
        "java-commands.txt",
        "option inbound.length=1 outbound.length=1",
        "OK inbound.length set to 1",
        &["OK inbound.length set to 1, outbound.length set to 1"],
        "row 17",
    ),
    (
        "java-commands.txt",
        "outhost",
        "OK outhost set",
        &["ERROR empty outhost"],
        "row 12",
    ),
    (
        "java-commands.txt",
        "inport 1",
        "ERROR port out of range",
        &["OK inbound port set"],
        "row 5",
    ),
    (
        "java-commands.txt",
        "newkeys",
        "ERROR generating keys",
        &["OK <base64 516>"],
        "the recorded failure needs a broken key generator",
    ),
    (
        "java-commands.txt",
        "start",
        "ERROR starting tunnel: java.net.UnknownHostException",
        &["ERROR starting tunnel: unknown host nosuch.invalid"],
        "row 9",
    ),
    (
        "java-commands.txt",
        "showprops",
        "OK PROPERTIES: {inbound.nickname=t1",
        &[
            "OK PROPERTIES: {inbound.length=1, inbound.lengthVariance=0, inbound.nickname=t1, outbound.length=1, outbound.lengthVariance=0, outbound.nickname=t1}",
        ],
        "rows 17 and 18",
    ),
    (
        "java-commands.txt",
        "getnick k2",
        "OK Nickname set to k2",
        &["ERROR no nickname has been set"],
        "the fixture's k2 comes from another recorded session",
    ),
    (
        "java-commands.txt",
        "show",
        "OK NICKNAME: k2",
        &["ERROR no nickname has been set"],
        "the fixture's k2 comes from another recorded session",
    ),
    (
        "i2pd-session.txt",
        "HELP",
        "ERROR unknown command",
        &[
            "OK COMMANDS: clear getdest getkeys getnick help inhost inport list lookup newkeys option outhost outport quiet quit setkeys setnick settunneltype start status stop zap",
        ],
        "wire basics: commands are case-insensitive in both dialects",
    ),
    (
        "i2pd-session.txt",
        "newkeys 0",
        "OK 2~jOWt57zC7k",
        &["OK <base64 516>"],
        "the fixture spells out an EdDSA destination for the recorded type-0 (DSA) one",
    ),
    (
        "i2pd-session.txt",
        "status s1",
        "OK DATA NICKNAME: s1 STARTING: false RUNNING: true",
        &[
            "OK DATA NICKNAME: s1 STARTING: false RUNNING: true STOPPING: false KEYS: true QUIET: false INPORT: 28301 INHOST: 127.0.0.1 OUTPORT: 28302 OUTHOST: 127.0.0.1",
        ],
        "wire basics: PROXYTYPE/PROXYSTART are never sent",
    ),
    (
        "i2pd-session.txt",
        "status s1",
        "OK DATA NICKNAME: s1 STARTING: true",
        &[
            "OK DATA NICKNAME: s1 STARTING: false RUNNING: false STOPPING: false KEYS: true QUIET: false INPORT: 28301 INHOST: 127.0.0.1 OUTPORT: 28302 OUTHOST: 127.0.0.1",
        ],
        "row 19 (one flag at a time) and no PROXYTYPE/PROXYSTART",
    ),
    (
        "i2pd-session.txt",
        "inport abc",
        "",
        &["ERROR not a number"],
        "row 3 (i2pd closes the connection without a reply)",
    ),
];

/// Fixtures not replayed, and why.
const NOT_REPLAYED: &[(&str, &str)] = &[(
    "i2pd-commands.txt",
    "composed from i2pd's per-session scratch state (setters without a nickname, proxy \
     tunnel types, network lookups and pings): bob-server keeps Java's model in both \
     dialects, which only change texts (docs/compatibility.md); its i2pd strings are \
     checked by tests/integration/control.rs",
)];

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../bob-codec/tests/fixtures")
}

fn load(path: &Path) -> Transcript {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(path).unwrap();
    let mut dialect = None;
    let mut exchanges: Vec<Exchange> = Vec::new();
    let mut greeting = 0;
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("dialect: ") {
            dialect = Some(if d == "i2pd" {
                Dialect::I2pd
            } else {
                Dialect::Java
            });
        } else if let Some(c) = line.strip_prefix("C: ") {
            exchanges.push(Exchange {
                client: c.to_owned(),
                replies: Vec::new(),
            });
        } else if let Some(s) = line.strip_prefix("S: ") {
            match exchanges.last_mut() {
                Some(ex) => ex.replies.push(s.to_owned()),
                None => greeting += 1,
            }
        }
    }
    assert_eq!(greeting, 2, "{name}: the greeting comes first");
    Transcript {
        name,
        dialect: dialect.expect("dialect line"),
        exchanges,
    }
}

/// `<base64 N>` for every long base64 token (keys, destinations).
fn normalise(line: &str) -> String {
    line.split(' ')
        .map(|t| {
            let b64 = t.len() >= 300
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-~=".contains(&b));
            if b64 {
                format!("<base64 {}>", t.len())
            } else {
                t.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The fixture's port operands (`inport N`, `outport N`) mapped to free ports.
fn port_map(t: &Transcript) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for ex in &t.exchanges {
        let mut words = ex.client.split_whitespace();
        let (Some(cmd), Some(arg)) = (words.next(), words.next()) else {
            continue;
        };
        let is_port = matches!(cmd.to_ascii_lowercase().as_str(), "inport" | "outport");
        if is_port && arg.len() >= 4 && arg.bytes().all(|b| b.is_ascii_digit()) {
            map.entry(arg.to_owned())
                .or_insert_with(|| free_port().to_string());
        }
    }
    map
}

fn replace_words(line: &str, map: &HashMap<String, String>) -> String {
    line.split(' ')
        .map(|w| map.get(w).map_or(w, String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Replays `t`; returns every exchange where bob-server's replies differ from the
/// recording: (client line, recorded, bob-server's).
async fn replay(
    t: &Transcript,
    used: &mut Vec<Difference>,
) -> Vec<(String, Vec<String>, Vec<String>)> {
    let server = start_server(t.dialect).await;
    let mut c = BobClient::connect(server.addr).await;
    let to_ours = port_map(t);
    let to_theirs: HashMap<String, String> = to_ours
        .iter()
        .map(|(a, b)| (b.clone(), a.clone()))
        .collect();
    let mut held = Vec::new();
    let mut inport = None;
    let mut diffs = Vec::new();
    let mut nick: Option<String> = None;
    for ex in &t.exchanges {
        let line = replace_words(&ex.client, &to_ours);
        let lower = line.trim().to_ascii_lowercase();
        if let Some(p) = lower.strip_prefix("inport ") {
            inport = p.split_whitespace().next().map(str::to_owned);
        }
        if lower == "start"
            && ex
                .replies
                .iter()
                .any(|r| r.contains("Address already in use"))
        {
            let port = inport.clone().expect("an inport before this start");
            held.push(std::net::TcpListener::bind(format!("127.0.0.1:{port}")).unwrap());
        }
        let first = ex.replies.first().map_or("", String::as_str);
        let listed = DIFFERENCES.iter().find(|(f, l, recorded, _, _)| {
            *f == t.name
                && *l == ex.client
                && (first.starts_with(recorded) && (!recorded.is_empty() || first.is_empty()))
        });
        if let Some(entry) = listed {
            used.push(*entry);
        }
        let expected: Vec<String> = match listed {
            Some((_, _, _, ours, _)) => ours.iter().map(|s| (*s).to_owned()).collect(),
            None => ex.replies.clone(),
        };
        c.send_raw(format!("{line}\n").as_bytes()).await;
        let mut got = Vec::new();
        for _ in 0..expected.len() {
            let reply = c.read_line().await;
            got.push(normalise(&replace_words(
                reply.trim_end_matches('\n'),
                &to_theirs,
            )));
        }
        let want: Vec<String> = expected.iter().map(|r| normalise(r)).collect();
        if got != want {
            diffs.push((ex.client.clone(), want, got));
            // the connection may be out of step now: stop here
            break;
        }
        let mut words = line.split_whitespace();
        if let (Some(cmd), Some(name)) = (words.next(), words.next())
            && ["setnick", "getnick"].contains(&cmd.to_ascii_lowercase().as_str())
            && got.first().is_some_and(|r| r.starts_with("OK"))
        {
            nick = Some(name.to_owned());
        }
        // `stop` answers at once and tears down in the background (compatibility.md,
        // "kept from Java"): wait until it is down, as clients poll `status`.
        if lower == "stop" && got.first().is_some_and(|r| r.starts_with("OK")) {
            let nick = nick.clone().expect("a tunnel selected before stop");
            c.wait_status(&nick, "STOPPING: false").await;
        }
        if lower == "quit" || lower == "zap" {
            break;
        }
    }
    drop(held);
    diffs
}

#[tokio::test]
async fn recorded_sessions_replay_against_bob_server() {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 4, "{paths:?}");
    let mut report = String::new();
    let mut used = Vec::new();
    let mut replayed = 0;
    for path in &paths {
        let t = load(path);
        if NOT_REPLAYED.iter().any(|(name, _)| *name == t.name) {
            continue;
        }
        replayed += 1;
        for (client, want, got) in replay(&t, &mut used).await {
            report.push_str(&format!(
                "{}: {client:?}\n  recorded: {want:?}\n  bob-server: {got:?}\n",
                t.name
            ));
        }
    }
    assert!(report.is_empty(), "unlisted differences:\n{report}");
    assert_eq!(replayed, paths.len() - NOT_REPLAYED.len(), "{paths:?}");
    for entry in DIFFERENCES {
        assert!(
            used.contains(entry),
            "listed difference no longer met (fixture changed?): {entry:?}"
        );
    }
}
