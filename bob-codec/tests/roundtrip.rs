//! Property tests: decode → encode → decode round trips for commands, replies and the
//! tunnel status record, and framing against a reference model.

use bob_codec::{Command, Dialect, Operand, Reply, TunnelStatus};
use proptest::prelude::*;

/// An operand as a client can send it: non-empty, no separators.
fn operand() -> impl Strategy<Value = String> {
    "[^ \t\r\n]{1,24}"
}

fn opt_operand() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(operand())
}

fn dialect() -> impl Strategy<Value = Dialect> {
    prop_oneof![Just(Dialect::Java), Just(Dialect::I2pd)]
}

/// Every command variant with wire-expressible operands.
fn command() -> impl Strategy<Value = Command> {
    let bare = prop_oneof![
        Just(Command::Empty),
        Just(Command::Clear),
        Just(Command::GetDest),
        Just(Command::GetKeys),
        Just(Command::List),
        Just(Command::Quit),
        Just(Command::Show),
        Just(Command::ShowProps),
        Just(Command::Start),
        Just(Command::Stop),
        Just(Command::Visit),
        Just(Command::Zap),
    ];
    let with_operand = (0usize..16, opt_operand()).prop_map(|(i, op)| match i {
        // typed operands validate the token as the parser does (valid or kept raw)
        0 => Command::GetNick(Operand::from_token(op.as_deref())),
        1 => Command::Help(op),
        2 => Command::InHost(Operand::from_token(op.as_deref())),
        3 => Command::InPort(Operand::from_token(op.as_deref())),
        4 => Command::Lookup(op),
        5 => Command::LookupLocal(op),
        6 => Command::OutHost(Operand::from_token(op.as_deref())),
        7 => Command::OutPort(Operand::from_token(op.as_deref())),
        8 => Command::Ping(op),
        9 => Command::Quiet(op),
        10 => Command::SetKeys(op),
        11 => Command::SetNick(Operand::from_token(op.as_deref())),
        12 => Command::SetTunnelType(op),
        13 => Command::Status(Operand::from_token(op.as_deref())),
        14 => Command::Stats(Operand::from_token(op.as_deref())),
        _ => Command::Verify(op),
    });
    let newkeys = prop_oneof![
        Just((None, None)),
        operand().prop_map(|s| (Some(s), None)),
        (operand(), operand()).prop_map(|(s, c)| (Some(s), Some(c))),
    ]
    .prop_map(|(sig_type, crypto_type)| Command::NewKeys {
        sig_type,
        crypto_type,
    });
    let option = proptest::collection::vec(operand(), 0..5)
        .prop_map(|tokens| Command::Option(Operand::options(&tokens)));
    prop_oneof![bare, with_operand, newkeys, option]
}

/// Separator runs as a sloppy client might send them.
fn sep() -> impl Strategy<Value = String> {
    "[ \t]{1,4}"
}

/// Random ASCII case for a command word.
fn recase(word: &str, mask: u64) -> String {
    word.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

fn reply_text() -> impl Strategy<Value = String> {
    "[^\r\n]{0,60}"
}

fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        Just(Reply::Ok(None)),
        reply_text().prop_map(|t| Reply::Ok(Some(t))),
        reply_text().prop_map(Reply::Error),
        reply_text().prop_map(Reply::Data),
    ]
}

fn port() -> impl Strategy<Value = Option<u16>> {
    proptest::option::of(any::<u16>())
}

/// A host or nickname as it can appear in a record: anything without space/CR/LF.
fn value() -> impl Strategy<Value = String> {
    "[^ \r\n]{0,20}"
}

fn status() -> impl Strategy<Value = TunnelStatus> {
    (
        value(),
        any::<[bool; 5]>(),
        port(),
        value(),
        port(),
        value(),
    )
        .prop_map(
            |(nickname, flags, inport, inhost, outport, outhost)| TunnelStatus {
                nickname,
                starting: flags[0],
                running: flags[1],
                stopping: flags[2],
                keys: flags[3],
                quiet: flags[4],
                inport,
                inhost,
                outport,
                outhost,
                extra: Vec::new(),
            },
        )
}

proptest! {
    #[test]
    fn command_encode_parse(cmd in command(), d in dialect()) {
        let line = cmd.encode();
        prop_assert_eq!(Command::parse(&line, d), Ok(cmd.clone()));
        prop_assert_eq!(line.split(' ').next().unwrap(), cmd.name());
    }

    #[test]
    fn sloppy_spelling_parses_the_same(
        cmd in command(),
        d in dialect(),
        mask in any::<u64>(),
        lead in "[ \t]{0,3}",
        seps in proptest::collection::vec(sep(), 8),
        extra in proptest::collection::vec(operand(), 0..3),
        cr in any::<bool>(),
    ) {
        prop_assume!(cmd != Command::Empty);
        // rebuild the canonical line with random case, separators, trailing junk and CR
        let canonical = cmd.encode();
        let mut tokens: Vec<String> = canonical.split(' ').map(str::to_owned).collect();
        tokens[0] = recase(&tokens[0], mask);
        // extra tokens are ignored once every operand slot is filled (never for option)
        let bare = matches!(cmd, Command::Clear | Command::GetDest | Command::GetKeys
            | Command::List | Command::Quit | Command::Show | Command::ShowProps
            | Command::Start | Command::Stop | Command::Visit | Command::Zap);
        let full = match &cmd {
            Command::Option(_) => false,
            Command::NewKeys { crypto_type, .. } => crypto_type.is_some(),
            _ => bare || tokens.len() == 2,
        };
        if full {
            tokens.extend(extra);
        }
        let mut line = lead;
        for (i, t) in tokens.iter().enumerate() {
            if i > 0 {
                line.push_str(&seps[i % seps.len()]);
            }
            line.push_str(t);
        }
        if cr {
            line.push('\r');
        }
        prop_assert_eq!(Command::parse(&line, d), Ok(cmd));
    }

    #[test]
    fn any_line_parse_encode_parse(line in ".{0,80}", d in dialect()) {
        if let Ok(cmd) = Command::parse(&line, d) {
            let encoded = cmd.encode();
            prop_assert!(!encoded.contains(['\r', '\n']));
            prop_assert_eq!(Command::parse(&encoded, d), Ok(cmd));
        }
    }

    #[test]
    fn reply_encode_decode(r in reply()) {
        let wire = r.encode();
        prop_assert_eq!(wire.last(), Some(&b'\n'));
        let line = std::str::from_utf8(&wire[..wire.len() - 1]).unwrap();
        prop_assert_eq!(Reply::decode(line), Ok(r.clone()));
        prop_assert_eq!(Reply::decode(&format!("{line}\r")), Ok(r));
    }

    #[test]
    fn any_line_decode_encode_decode(line in ".{0,80}") {
        if let Ok(r) = Reply::decode(&line) {
            let wire = r.encode();
            let again = std::str::from_utf8(&wire[..wire.len() - 1]).unwrap();
            prop_assert_eq!(Reply::decode(again), Ok(r));
        }
    }

    #[test]
    fn status_display_parse(s in status()) {
        let text = s.to_string();
        prop_assert_eq!(text.parse::<TunnelStatus>(), Ok(s.clone()));
        for reply in [s.to_list_reply(), s.to_status_reply(), s.to_show_reply()] {
            let wire = reply.encode();
            let decoded = Reply::decode(std::str::from_utf8(&wire[..wire.len() - 1]).unwrap()).unwrap();
            prop_assert_eq!(TunnelStatus::from_reply(&decoded), Ok(s.clone()));
        }
        // i2pd's trailing fields are split off OUTHOST when it has no space
        let i2pd = format!("{text} PROXYTYPE: NONE PROXYSTART: false");
        let parsed = i2pd.parse::<TunnelStatus>().unwrap();
        if !s.outhost.contains(' ') {
            prop_assert_eq!(&parsed.outhost, &s.outhost);
            prop_assert_eq!(parsed.extra.len(), 2);
        }
        prop_assert_eq!(parsed.to_string(), i2pd);
    }

    #[test]
    fn framing_matches_reference(data in proptest::collection::vec(
        prop_oneof![Just(b'\n'), Just(b'\r'), Just(b'a'), Just(b' '), Just(0xff), any::<u8>()], 0..400)) {
        bob_codec::fuzzing::command(&data);
    }

    #[test]
    fn reply_fuzz_body_holds(lines in proptest::collection::vec(".{0,40}", 0..6)) {
        bob_codec::fuzzing::reply(lines.join("\n").as_bytes());
    }
}
