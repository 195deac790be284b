//! Known-answer tests of the request-line parser, `parse_port` and `parse_option_pairs`.

use bob_codec::command::{COMMAND_NAMES, parse_option_pairs, parse_port};
use bob_codec::types::{Host, Nickname, Port, ValueError};
use bob_codec::{Command, CommandError, Dialect, Operand};

fn s(text: &str) -> Option<String> {
    Some(text.to_owned())
}

fn parse(line: &str) -> Result<Command, CommandError> {
    Command::parse(line, Dialect::Java)
}

/// Commands that take no operand: word, value.
const BARE: &[(&str, Command)] = &[
    ("clear", Command::Clear),
    ("getdest", Command::GetDest),
    ("getkeys", Command::GetKeys),
    ("list", Command::List),
    ("quit", Command::Quit),
    ("show", Command::Show),
    ("showprops", Command::ShowProps),
    ("start", Command::Start),
    ("stop", Command::Stop),
    ("visit", Command::Visit),
    ("zap", Command::Zap),
];

/// Builds a command from its optional operand (typed operands validate it as the parser
/// does).
type Make = fn(Option<String>) -> Command;

/// Commands with one optional operand: word, constructor.
const WITH_OPERAND: &[(&str, Make)] = &[
    ("getnick", |op| {
        Command::GetNick(Operand::from_token(op.as_deref()))
    }),
    ("help", Command::Help),
    ("inhost", |op| {
        Command::InHost(Operand::from_token(op.as_deref()))
    }),
    ("inport", |op| {
        Command::InPort(Operand::from_token(op.as_deref()))
    }),
    ("lookup", Command::Lookup),
    ("lookuplocal", Command::LookupLocal),
    ("outhost", |op| {
        Command::OutHost(Operand::from_token(op.as_deref()))
    }),
    ("outport", |op| {
        Command::OutPort(Operand::from_token(op.as_deref()))
    }),
    ("ping", Command::Ping),
    ("quiet", Command::Quiet),
    ("setkeys", Command::SetKeys),
    ("setnick", |op| {
        Command::SetNick(Operand::from_token(op.as_deref()))
    }),
    ("settunneltype", Command::SetTunnelType),
    ("stats", |op| {
        Command::Stats(Operand::from_token(op.as_deref()))
    }),
    ("status", |op| {
        Command::Status(Operand::from_token(op.as_deref()))
    }),
    ("verify", Command::Verify),
];

/// Upper-cases every other ASCII letter: `setnick` → `SeTnIcK`.
fn mixed_case(word: &str) -> String {
    word.chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

#[test]
fn every_command_word_is_covered() {
    let mut words: Vec<&str> = BARE.iter().map(|(w, _)| *w).collect();
    words.extend(WITH_OPERAND.iter().map(|(w, _)| *w));
    words.extend(["newkeys", "option"]);
    words.sort_unstable();
    assert_eq!(words, COMMAND_NAMES);
}

#[test]
fn bare_commands_known_answers() {
    for (word, cmd) in BARE {
        let upper = word.to_ascii_uppercase();
        let mixed = mixed_case(word);
        for line in [
            word.to_string(),
            upper,
            mixed,
            format!("{word}\r"),
            format!("  \t{word}"),
            format!("{word}\textra"),
            format!("{word} extra more tokens\r"),
            format!("{word}   "),
        ] {
            assert_eq!(parse(&line).as_ref(), Ok(cmd), "{line:?}");
            assert_eq!(Command::parse(&line, Dialect::I2pd).as_ref(), Ok(cmd));
        }
        assert_eq!(cmd.name(), *word);
        assert_eq!(cmd.encode(), *word);
    }
}

#[test]
fn operand_commands_known_answers() {
    for (word, make) in WITH_OPERAND {
        let cases: Vec<(String, Command)> = vec![
            (format!("{word} t1"), make(s("t1"))),
            (word.to_string(), make(None)),
            (format!("{word} "), make(None)),
            (format!("{word}\r"), make(None)),
            (
                format!("{} MixedCase", mixed_case(word)),
                make(s("MixedCase")),
            ),
            (format!("{} x", word.to_ascii_uppercase()), make(s("x"))),
            (format!("{word} t1\r"), make(s("t1"))),
            (format!("{word}\tt1\t"), make(s("t1"))),
            (format!(" \t {word}  t1  extra tokens"), make(s("t1"))),
            (format!("{word} a=b\r\r"), make(s("a=b"))),
        ];
        for (line, expected) in cases {
            assert_eq!(parse(&line), Ok(expected.clone()), "{line:?}");
            assert_eq!(Command::parse(&line, Dialect::I2pd), Ok(expected.clone()));
            assert_eq!(expected.name(), *word);
            assert_eq!(parse(&expected.encode()), Ok(expected));
        }
        assert_eq!(make(s("v")).encode(), format!("{word} v"));
        assert_eq!(make(None).encode(), *word);
    }
}

#[test]
fn newkeys_known_answers() {
    let nk = |sig: Option<&str>, crypto: Option<&str>| Command::NewKeys {
        sig_type: sig.map(str::to_owned),
        crypto_type: crypto.map(str::to_owned),
    };
    let table = [
        ("newkeys", nk(None, None), "newkeys"),
        ("NEWKEYS\r", nk(None, None), "newkeys"),
        ("newkeys 7", nk(Some("7"), None), "newkeys 7"),
        ("NewKeys\t7\t4\r", nk(Some("7"), Some("4")), "newkeys 7 4"),
        (
            "newkeys EdDSA_SHA512_Ed25519 ECIES_X25519 junk",
            nk(Some("EdDSA_SHA512_Ed25519"), Some("ECIES_X25519")),
            "newkeys EdDSA_SHA512_Ed25519 ECIES_X25519",
        ),
        ("  newkeys   abc  ", nk(Some("abc"), None), "newkeys abc"),
    ];
    for (line, expected, encoded) in table {
        assert_eq!(parse(line).as_ref(), Ok(&expected), "{line:?}");
        assert_eq!(expected.encode(), encoded);
        assert_eq!(expected.name(), "newkeys");
    }
    // a crypto type alone cannot be expressed on the wire
    assert_eq!(nk(None, Some("4")).encode(), "newkeys");
}

#[test]
fn option_known_answers() {
    let opt = |items: &[&str]| Command::Option(Operand::options(items));
    let table = [
        ("option", opt(&[])),
        ("option\r", opt(&[])),
        ("OPTION a=1", opt(&["a=1"])),
        ("option a=1 b=2", opt(&["a=1", "b=2"])),
        ("Option\ta=1\t\tb==2  c\r", opt(&["a=1", "b==2", "c"])),
        ("option inbound.length=1", opt(&["inbound.length=1"])),
    ];
    for (line, expected) in table {
        assert_eq!(parse(line).as_ref(), Ok(&expected), "{line:?}");
        assert_eq!(parse(&expected.encode()).as_ref(), Ok(&expected));
    }
    assert_eq!(opt(&["a=1", "b=2"]).encode(), "option a=1 b=2");
    assert_eq!(opt(&[]).name(), "option");
}

#[test]
fn typed_operands_known_answers() {
    let nick = |n: &str| Operand::Valid(Nickname::new(n).unwrap());
    assert_eq!(parse("setnick web-1"), Ok(Command::SetNick(nick("web-1"))));
    assert_eq!(parse("STATUS web-1 x"), Ok(Command::Status(nick("web-1"))));
    assert_eq!(parse("stats"), Ok(Command::Stats(Operand::Missing)));
    let long = "n".repeat(256);
    assert_eq!(
        parse(&format!("getnick {long}")),
        Ok(Command::GetNick(Operand::Invalid {
            raw: long.clone(),
            error: ValueError::TooLong {
                kind: Nickname::KIND,
                limit: 255
            },
        }))
    );
    assert_eq!(
        parse("setnick a\u{1}b"),
        Ok(Command::SetNick(Operand::Invalid {
            raw: "a\u{1}b".into(),
            error: ValueError::Control {
                kind: Nickname::KIND
            },
        }))
    );
    assert_eq!(
        parse("inhost ::1"),
        Ok(Command::InHost(Operand::Valid(Host::new("::1").unwrap())))
    );
    // ports: digits only, leading zeros dropped on the way back out
    let port = Command::OutPort(Operand::Valid(Port::new(80).unwrap()));
    assert_eq!(parse("outport 0080"), Ok(port.clone()));
    assert_eq!(port.encode(), "outport 80");
    for (raw, error) in [
        ("80x", ValueError::NotANumber),
        ("-1", ValueError::NotANumber),
        ("0", ValueError::PortOutOfRange),
        ("65536", ValueError::PortOutOfRange),
    ] {
        let expected = Command::InPort(Operand::Invalid {
            raw: raw.into(),
            error,
        });
        assert_eq!(parse(&format!("inport {raw}")), Ok(expected.clone()));
        assert_eq!(expected.encode(), format!("inport {raw}"));
    }
    assert_eq!(
        parse("inport 000000000000000000001"),
        Ok(Command::InPort(Operand::Valid(Port::new(1).unwrap())))
    );
}

#[test]
fn blank_lines_are_empty() {
    for line in ["", " ", "\t", "\r", " \t \r", "\t\t\t   \r\r"] {
        assert_eq!(parse(line), Ok(Command::Empty), "{line:?}");
        assert_eq!(Command::parse(line, Dialect::I2pd), Ok(Command::Empty));
    }
    assert_eq!(Command::Empty.name(), "");
    assert_eq!(Command::Empty.encode(), "");
}

#[test]
fn garbage_is_an_unknown_command() {
    for (line, word) in [
        ("frobnicate", "frobnicate"),
        ("setnickx t1", "setnickx"),
        ("set nick", "set"),
        ("SETNICKS a", "SETNICKS"),
        ("  \tlists\r", "lists"),
        ("\u{0}", "\u{0}"),
        ("héllo wörld", "héllo"),
        ("status-t1", "status-t1"),
        ("option=a", "option=a"),
        ("=", "="),
        ("\u{212A}ill", "\u{212A}ill"),
    ] {
        for dialect in [Dialect::Java, Dialect::I2pd] {
            assert_eq!(
                Command::parse(line, dialect),
                Err(CommandError::Unknown {
                    dialect,
                    word: word.to_owned()
                }),
                "{line:?}"
            );
        }
    }
}

#[test]
fn unknown_command_text_per_dialect() {
    let java = parse("bogus").unwrap_err();
    let i2pd = Command::parse("bogus", Dialect::I2pd).unwrap_err();
    assert_eq!(java.to_string(), "UNKNOWN COMMAND! Try help");
    assert_eq!(i2pd.to_string(), "unknown command");
}

#[test]
fn error_texts_per_dialect() {
    use CommandError::*;
    for (err, text) in [
        (
            NotANumber {
                dialect: Dialect::Java,
            },
            "not a number",
        ),
        (
            NotANumber {
                dialect: Dialect::I2pd,
            },
            "not a number",
        ),
        (
            PortOutOfRange {
                dialect: Dialect::Java,
            },
            "port out of range",
        ),
        (
            PortOutOfRange {
                dialect: Dialect::I2pd,
            },
            "port out of range",
        ),
        (
            BadOption {
                dialect: Dialect::Java,
            },
            "too many or no options.",
        ),
        (
            BadOption {
                dialect: Dialect::I2pd,
            },
            "malformed",
        ),
    ] {
        assert_eq!(err.to_string(), text);
    }
}

#[test]
fn long_operands_are_kept_whole() {
    let key = "A".repeat(884);
    assert_eq!(
        parse(&format!("setkeys {key}")),
        Ok(Command::SetKeys(Some(key)))
    );
}

#[test]
fn parse_port_known_answers() {
    use CommandError::{NotANumber, PortOutOfRange};
    let d = Dialect::Java;
    let ok = [
        ("1", 1),
        ("2", 2),
        ("80", 80),
        ("0080", 80),
        ("28400", 28400),
        ("65535", 65535),
        ("0000000000000000065535", 65535),
    ];
    for (text, port) in ok {
        assert_eq!(parse_port(Some(text), d), Ok(port), "{text:?}");
    }
    let nan = NotANumber { dialect: d };
    let range = PortOutOfRange { dialect: d };
    let bad = [
        (None, nan.clone()),
        (Some(""), nan.clone()),
        (Some("abc"), nan.clone()),
        (Some("80x"), nan.clone()),
        (Some("x80"), nan.clone()),
        (Some("+80"), nan.clone()),
        (Some("-1"), nan.clone()),
        (Some(" 80"), nan.clone()),
        (Some("8 0"), nan.clone()),
        (Some("8.0"), nan.clone()),
        (Some("\u{0668}\u{0660}"), nan.clone()),
        (Some("0"), range.clone()),
        (Some("00000"), range.clone()),
        (Some("65536"), range.clone()),
        (Some("99999"), range.clone()),
        (Some("100000"), range.clone()),
        (Some("99999999999"), range.clone()),
        (Some("184467440737095516160000"), range.clone()),
    ];
    for (text, err) in bad {
        assert_eq!(parse_port(text, d), Err(err), "{text:?}");
    }
    assert_eq!(
        parse_port(Some("x"), Dialect::I2pd),
        Err(NotANumber {
            dialect: Dialect::I2pd
        })
    );
}

#[test]
fn parse_option_pairs_known_answers() {
    let ops = |items: &[&str]| items.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>();
    let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    let d = Dialect::Java;
    assert_eq!(
        parse_option_pairs(&ops(&["a=b"]), d),
        Ok(vec![pair("a", "b")])
    );
    assert_eq!(
        parse_option_pairs(&ops(&["a==b"]), d),
        Ok(vec![pair("a", "b")])
    );
    assert_eq!(
        parse_option_pairs(&ops(&["==a===b=="]), d),
        Ok(vec![pair("a", "b")])
    );
    assert_eq!(
        parse_option_pairs(&ops(&["inbound.length=1", "outbound.quantity=3"]), d),
        Ok(vec![
            pair("inbound.length", "1"),
            pair("outbound.quantity", "3")
        ])
    );
    for bad in [
        &[][..],
        &["a"][..],
        &["=b"][..],
        &["a="][..],
        &["="][..],
        &[""][..],
        &["a=b=c"][..],
        &["a=1", "b"][..],
        &["a", "b=1"][..],
    ] {
        for dialect in [Dialect::Java, Dialect::I2pd] {
            assert_eq!(
                parse_option_pairs(&ops(bad), dialect),
                Err(CommandError::BadOption { dialect }),
                "{bad:?}"
            );
        }
    }
}
