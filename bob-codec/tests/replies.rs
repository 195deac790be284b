//! Known-answer tests of reply lines: every reply string of the protocol reference
//! (section 3, both dialects) decodes to the expected [`Reply`] and encodes back
//! byte-exact; the status record; the help texts.

use bob_codec::{CommandError, Dialect, GREETING, Reply, ReplyError, TunnelStatus, help};

fn ok(text: &str) -> Reply {
    Reply::Ok(Some(text.to_owned()))
}

fn err(text: &str) -> Reply {
    Reply::Error(text.to_owned())
}

const DEST: &str = "1iX-JtkLexampleDestination~AAAA";

/// Every non-help reply line named in section 3 (both dialects, with sample values).
fn section3_replies() -> Vec<(String, Reply)> {
    let mut table: Vec<(String, Reply)> = vec![
        ("OK".into(), Reply::Ok(None)),
        ("OK ".into(), ok("")),
        (format!("OK {DEST}"), ok(DEST)),
    ];
    let oks = [
        "Nickname set to t1",
        "Nickname set to ",
        "inhost set",
        "outhost set",
        "inbound port set",
        "outbound port set",
        "Quiet set",
        "inbound.length set to 1",
        "a set to b",
        "option inbound.quantity set to 1",
        "option a set to b=c",
        "tunnel starting",
        "Tunnel starting",
        "tunnel stopping",
        "Tunnel stopping",
        "cleared",
        "Listing done",
        "Bye!",
        "PROPERTIES: {inbound.nickname=t1, outbound.nickname=t1, inbound.length=1}",
        "pong from zzy6jdoawx2wesponvcziextn6l3od52np37zmux5erwbrcpopka.b32.i2p: time=812 ms",
        "pong: time=640 ms",
        "tunnel type set to SOCKS",
        "tunnel type set to HTTP proxy",
        "DATA NICKNAME: t1 STARTING: false RUNNING: false STOPPING: false KEYS: false QUIET: false INPORT: not_set INHOST: localhost OUTPORT: not_set OUTHOST: localhost",
        "NICKNAME: k2 STARTING: false RUNNING: true STOPPING: false KEYS: true QUIET: false INPORT: 28401 INHOST: 127.0.0.1 OUTPORT: not_set OUTHOST: localhost",
    ];
    table.extend(oks.iter().map(|t| (format!("OK {t}"), ok(t))));
    let errors = [
        // Java
        "UNKNOWN COMMAND! Try help",
        "no nickname has been set",
        "tunnel is active",
        "tunnel is inactive",
        "generating keys",
        "no public key has been set",
        "not in BASE64 format",
        "keys not set.",
        "not a number",
        "port out of range",
        "too many or no options.",
        "tunnel settings incomplete",
        "starting tunnel: java.net.BindException: Address already in use",
        "starting tunnel: java.net.UnknownHostException: nosuch.invalid",
        "Address Not found.",
        "A really bad error just happened, OK Bye!",
        // i2pd
        "unknown command",
        "No such command",
        "keys are not set",
        "invalid keys",
        "empty inhost",
        "empty outhost",
        "empty inport",
        "empty outport",
        "malformed",
        "Keys must be set.",
        "(inhost):inport or outhost:outport must be set.",
        "inhost must be a valid IPv4 address.",
        "outhost must be a IPv4 address.",
        "tunnel not found",
        "empty lookup address",
        "Address Not found",
        "No local destination",
        "LeaseSet Not found",
        "Local LeaseSet Not found",
        "empty ping address",
        "No streaming destination",
        "timeout",
        "no tunnel type has been set",
    ];
    table.extend(errors.iter().map(|t| (format!("ERROR {t}"), err(t))));
    let data = [
        "NICKNAME: t1 STARTING: false RUNNING: false STOPPING: false KEYS: false QUIET: false INPORT: not_set INHOST: localhost OUTPORT: not_set OUTHOST: localhost",
        "NICKNAME:  STARTING: false RUNNING: false STOPPING: false KEYS: false QUIET: false INPORT: not_set INHOST: localhost OUTPORT: not_set OUTHOST: ",
        "NICKNAME: s1 STARTING: false RUNNING: true STOPPING: false KEYS: true QUIET: false INPORT: 28301 INHOST: 127.0.0.1 OUTPORT: 28302 OUTHOST: 127.0.0.1 PROXYTYPE: NONE PROXYSTART: false",
    ];
    table.extend(
        data.iter()
            .map(|t| (format!("DATA {t}"), Reply::Data((*t).to_owned()))),
    );
    table
}

#[test]
fn section3_replies_decode_and_encode_byte_exact() {
    for (line, reply) in section3_replies() {
        assert_eq!(Reply::decode(&line).as_ref(), Ok(&reply), "{line:?}");
        assert_eq!(Reply::decode(&format!("{line}\r")).as_ref(), Ok(&reply));
        let wire = format!("{line}\n").into_bytes();
        assert_eq!(reply.encode(), wire, "{line:?}");
        let mut out = b"prefix".to_vec();
        reply.encode_into(&mut out);
        assert_eq!(&out[6..], &wire[..]);
    }
}

#[test]
fn help_texts_are_exact_replies() {
    // the COMMANDS: lists, exactly as each server sends them
    assert_eq!(
        ok(help::commands(Dialect::Java)).encode(),
        b"OK COMMANDS: help clear getdest getkeys getnick inhost inport list lookup newkeys option outhost outport quiet quit setkeys setnick show showprops start status stop verify visit zap\n"
    );
    assert_eq!(
        ok(help::commands(Dialect::I2pd)).encode(),
        b"OK COMMANDS: clear getdest getkeys getnick help inhost inport list lookup newkeys option outhost outport quiet quit setkeys setnick settunneltype start status stop zap\n"
    );
    let java = [
        ("help", "help <command> * Get help on a command."),
        (
            "clear",
            "clear * Clear the current nickname out of the list.",
        ),
        (
            "getdest",
            "getdest * Return the destination for the current nickname.",
        ),
        (
            "getkeys",
            "getkeys * Return the keypair for the current nickname.",
        ),
        (
            "getnick",
            "getnick tunnelname * Set the nickname from the database.",
        ),
        (
            "inhost",
            "inhost hostname | IP * Set the inbound hostname or IP.",
        ),
        (
            "inport",
            "inport port_number * Set the inbound port number nickname listens on.",
        ),
        ("list", "list * List all tunnels."),
        ("lookup", "lookup * Lookup an i2p address."),
        (
            "newkeys",
            "newkeys * Generate a new keypair for the current nickname.",
        ),
        (
            "option",
            "option I2CPoption=something * Set an I2CP option. NOTE: Don't use any spaces.",
        ),
        (
            "outhost",
            "outhost hostname | IP * Set the outbound hostname or IP.",
        ),
        (
            "outport",
            "outport port_number * Set the outbound port that nickname contacts.",
        ),
        (
            "quiet",
            "quiet True | False * Don't send to the application the incoming destination.",
        ),
        ("quit", "quit * Quits this session with BOB."),
        (
            "setkeys",
            "setkeys BASE64_keypair * Sets the keypair for the current nickname.",
        ),
        ("setnick", "setnick nickname * Create a new nickname."),
        ("show", "show * Display the status of the current nickname."),
        (
            "showprops",
            "showprops * Display the properties of the current nickname.",
        ),
        ("start", "start * Start the current nickname tunnel."),
        (
            "status",
            "status nickname * Display status of a nicknamed tunnel.",
        ),
        ("stop", "stop * Stops the current nicknamed tunnel."),
        ("verify", "verify BASE64_key * Verifies BASE64 destination."),
        ("visit", "visit * Thread dump to wrapper.log."),
        ("zap", "zap * Shuts down BOB."),
    ];
    let i2pd = [
        (
            "clear",
            "clear - Clear the current nickname out of the list.",
        ),
        (
            "getdest",
            "getdest - Return the destination for the current nickname.",
        ),
        (
            "getkeys",
            "getkeys - Return the keypair for the current nickname.",
        ),
        (
            "getnick",
            "getnick <TUNNELNAME> - Sets the nickname from the database.",
        ),
        ("help", "help <COMMAND> - Get help on a command."),
        (
            "inhost",
            "inhost <HOSTNAME|IP> - Set the inbound hostname or IP.",
        ),
        (
            "inport",
            "inport <PORT_NUMBER> - Set the inbound port number nickname listens on.",
        ),
        ("list", "list - List all tunnels."),
        ("lookup", "lookup <I2P_HOSTNAME> - Look up an I2P hostname."),
        (
            "newkeys",
            "newkeys - Generate a new keypair for the current nickname.",
        ),
        (
            "option",
            "option <KEY>=<VALUE> - Set an option. NOTE: Don't use any spaces.",
        ),
        (
            "outhost",
            "outhost <HOSTNAME|IP> - Set the outhound hostname or IP.",
        ),
        (
            "outport",
            "outport <PORT_NUMBER> - Set the outbound port that nickname contacts.",
        ),
        (
            "quiet",
            "quiet <True|False> - Whether to send the incoming destination.",
        ),
        ("quit", "quit - Quits this session with BOB."),
        (
            "setkeys",
            "setkeys <BASE64_KEYPAIR> - Sets the keypair for the current nickname.",
        ),
        ("setnick", "setnick <NICKNAME> - Creates a new nickname."),
        (
            "settunneltype",
            "settunneltype <socks|httpproxy> - Sets socks or http proxy tunnel type.",
        ),
        ("start", "start - Starts the current nicknamed tunnel."),
        (
            "status",
            "status <NICKNAME> - Display status of a nicknamed tunnel.",
        ),
        ("stop", "stop - Stops the current nicknamed tunnel."),
        ("zap", "zap - Shuts down BOB."),
    ];
    for (dialect, table) in [(Dialect::Java, &java[..]), (Dialect::I2pd, &i2pd[..])] {
        assert_eq!(help::entries(dialect), table);
        // the COMMANDS: list names the entries in the same order
        let listed: Vec<&str> = help::commands(dialect)
            .strip_prefix("COMMANDS: ")
            .unwrap()
            .split(' ')
            .collect();
        let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
        assert_eq!(listed, names);
        for (cmd, text) in table {
            assert_eq!(help::text(dialect, cmd), Some(*text));
            assert_eq!(help::text(dialect, &cmd.to_ascii_uppercase()), Some(*text));
            let line = format!("OK {text}");
            assert_eq!(Reply::decode(&line), Ok(ok(text)));
            assert_eq!(ok(text).encode(), format!("{line}\n").into_bytes());
        }
    }
    for (dialect, missing) in [
        (Dialect::Java, "lookuplocal"),
        (Dialect::Java, "ping"),
        (Dialect::I2pd, "show"),
        (Dialect::I2pd, "showprops"),
        (Dialect::I2pd, "verify"),
        (Dialect::I2pd, "visit"),
        (Dialect::I2pd, "lookuplocal"),
        (Dialect::I2pd, "ping"),
        (Dialect::Java, ""),
        (Dialect::Java, "nosuch"),
    ] {
        assert_eq!(help::text(dialect, missing), None, "{dialect:?} {missing}");
    }
    assert_eq!(
        help::text(Dialect::Java, "SetNick"),
        Some("setnick nickname * Create a new nickname.")
    );
}

#[test]
fn greeting_is_sixteen_bytes() {
    assert_eq!(GREETING, b"BOB 00.00.10\nOK\n");
    assert_eq!(GREETING.len(), 16);
}

#[test]
fn malformed_replies_are_rejected() {
    for line in [
        "",
        "ok",
        "Ok",
        "OKAY",
        "OK\tx",
        "ERROR",
        "ERRORx",
        "error x",
        "DATA",
        "DATAx",
        "BOB 00.00.10",
        " OK",
        "OK a\rb",
        "OK a\nb",
        "OK a\r\r",
        "\r",
        "NICKNAME: x",
    ] {
        assert!(
            matches!(Reply::decode(line), Err(ReplyError::Malformed(_))),
            "{line:?}"
        );
    }
    let long = format!("X{}", "y".repeat(10_000));
    let ReplyError::Malformed(shown) = Reply::decode(&long).unwrap_err() else {
        panic!("wrong error kind")
    };
    assert!(shown.chars().count() <= 81, "error quotes too much input");
}

#[test]
fn empty_texts() {
    assert_eq!(Reply::decode("ERROR "), Ok(err("")));
    assert_eq!(Reply::decode("DATA "), Ok(Reply::Data(String::new())));
    assert_eq!(err("").encode(), b"ERROR \n");
    assert_eq!(Reply::Data(String::new()).encode(), b"DATA \n");
    assert_eq!(Reply::Ok(None).encode(), b"OK\n");
    assert_eq!(ok("").encode(), b"OK \n");
}

#[test]
fn encoder_never_writes_two_lines() {
    assert_eq!(ok("a\nb").encode(), b"OK a b\n");
    assert_eq!(err("x\r\ny").encode(), b"ERROR x  y\n");
    assert_eq!(Reply::Data("\n".into()).encode(), b"DATA  \n");
}

#[test]
fn helpers() {
    assert_eq!(Reply::ok("cleared"), ok("cleared"));
    assert_eq!(Reply::error("timeout"), err("timeout"));
    assert_eq!(Reply::Ok(None).text(), None);
    assert_eq!(err("x").text(), Some("x"));
    assert!(Reply::Ok(None).is_ok() && !err("x").is_ok() && !Reply::Data("x".into()).is_ok());
    let unknown = CommandError::Unknown {
        dialect: Dialect::Java,
        word: "x".into(),
    };
    assert_eq!(
        Reply::from(&unknown).encode(),
        b"ERROR UNKNOWN COMMAND! Try help\n"
    );
    assert_eq!(
        Reply::from(CommandError::BadOption {
            dialect: Dialect::I2pd
        })
        .encode(),
        b"ERROR malformed\n"
    );
}

fn sample() -> TunnelStatus {
    TunnelStatus {
        nickname: "k2".into(),
        starting: false,
        running: true,
        stopping: false,
        keys: true,
        quiet: false,
        inport: Some(28401),
        inhost: "127.0.0.1".into(),
        outport: None,
        outhost: "localhost".into(),
        extra: Vec::new(),
    }
}

const SAMPLE: &str = "NICKNAME: k2 STARTING: false RUNNING: true STOPPING: false KEYS: true QUIET: false INPORT: 28401 INHOST: 127.0.0.1 OUTPORT: not_set OUTHOST: localhost";

#[test]
fn status_display_and_parse() {
    assert_eq!(sample().to_string(), SAMPLE);
    assert_eq!(SAMPLE.parse(), Ok(sample()));
    assert_eq!(
        sample().to_list_reply().encode(),
        format!("DATA {SAMPLE}\n").into_bytes()
    );
    assert_eq!(
        sample().to_status_reply().encode(),
        format!("OK DATA {SAMPLE}\n").into_bytes()
    );
    assert_eq!(
        sample().to_show_reply().encode(),
        format!("OK {SAMPLE}\n").into_bytes()
    );
    for reply in [
        sample().to_list_reply(),
        sample().to_status_reply(),
        sample().to_show_reply(),
    ] {
        assert_eq!(TunnelStatus::from_reply(&reply), Ok(sample()));
    }
    let default = TunnelStatus::default().to_string();
    assert_eq!(
        default,
        "NICKNAME:  STARTING: false RUNNING: false STOPPING: false KEYS: false QUIET: false INPORT: not_set INHOST:  OUTPORT: not_set OUTHOST: "
    );
    assert_eq!(default.parse(), Ok(TunnelStatus::default()));
}

#[test]
fn status_extra_fields_are_split_off_outhost() {
    let line = "NICKNAME: s1 STARTING: true RUNNING: false STOPPING: false KEYS: true QUIET: false INPORT: 28301 INHOST: 127.0.0.1 OUTPORT: 28302 OUTHOST: 127.0.0.1 PROXYTYPE: SOCKS PROXYSTART: true";
    let status: TunnelStatus = line.parse().unwrap();
    assert_eq!(status.outhost, "127.0.0.1");
    assert_eq!(
        status.extra,
        [
            ("PROXYTYPE".to_owned(), "SOCKS".to_owned()),
            ("PROXYSTART".to_owned(), "true".to_owned())
        ]
    );
    assert_eq!(status.to_string(), line);
    assert_eq!(status.nickname, "s1");
    assert!(status.starting && !status.running && status.keys);
    assert_eq!((status.inport, status.outport), (Some(28301), Some(28302)));
    // bob-server's UDP fields
    let udp = "NICKNAME: u STARTING: false RUNNING: false STOPPING: false KEYS: true QUIET: true INPORT: not_set INHOST: localhost OUTPORT: 9 OUTHOST: localhost TUNNELTYPE: UDP UDPDEST: not_set";
    let status: TunnelStatus = udp.parse().unwrap();
    assert_eq!(status.outhost, "localhost");
    assert_eq!(status.extra.len(), 2);
    assert_eq!(status.to_string(), udp);
    // an unknown key keeps the whole rest as OUTHOST
    let unknown = "NICKNAME: u STARTING: false RUNNING: false STOPPING: false KEYS: true QUIET: true INPORT: not_set INHOST: localhost OUTPORT: 9 OUTHOST: localhost COLOUR: red";
    let status: TunnelStatus = unknown.parse().unwrap();
    assert_eq!(status.outhost, "localhost COLOUR: red");
    assert!(status.extra.is_empty());
    // i2pd unset values print not_set, kept verbatim for hosts
    let unset = "NICKNAME: s3 STARTING: false RUNNING: false STOPPING: false KEYS: false QUIET: false INPORT: not_set INHOST: not_set OUTPORT: not_set OUTHOST: not_set PROXYTYPE: NONE PROXYSTART: false";
    let status: TunnelStatus = unset.parse().unwrap();
    assert_eq!(
        (status.inhost.as_str(), status.outhost.as_str()),
        ("not_set", "not_set")
    );
    // empty outhost before the i2pd tail
    let empty = "NICKNAME: a STARTING: false RUNNING: false STOPPING: false KEYS: false QUIET: false INPORT: 1 INHOST: h OUTPORT: 2 OUTHOST:  PROXYTYPE: NONE PROXYSTART: false";
    assert_eq!(empty.parse::<TunnelStatus>().unwrap().outhost, "");
    // anything else after OUTHOST is the rest of the line, as txi2p reads it
    let odd = "NICKNAME: a STARTING: false RUNNING: false STOPPING: false KEYS: false QUIET: false INPORT: 1 INHOST: h OUTPORT: 2 OUTHOST: x y PROXYTYPE: NONE PROXYSTART: false";
    let status: TunnelStatus = odd.parse().unwrap();
    assert_eq!(status.outhost, "x y PROXYTYPE: NONE PROXYSTART: false");
    assert_eq!(status.to_string(), odd);
}

#[test]
fn malformed_status_records_are_rejected() {
    let good = SAMPLE;
    let bad = [
        String::new(),
        "NICKNAME: k2".into(),
        good.replace("STARTING: false", "STARTING: False"),
        good.replace("RUNNING: true", "RUNNING: 1"),
        good.replace("INPORT: 28401", "INPORT: 65536"),
        good.replace("INPORT: 28401", "INPORT: +1"),
        good.replace("INPORT: 28401", "INPORT: "),
        good.replace("OUTPORT: not_set", "OUTPORT: NOT_SET"),
        good.replace(" KEYS: true", ""),
        good.replace("NICKNAME: k2", "NICKNAME: k 2"),
        good.replace("QUIET: false INPORT", "INPORT"),
        format!("DATA {good}"),
        format!(" {good}"),
        good.replace(" OUTHOST: localhost", ""),
    ];
    for line in bad {
        assert!(
            matches!(line.parse::<TunnelStatus>(), Err(ReplyError::BadStatus(_))),
            "{line:?}"
        );
    }
    for reply in [Reply::Ok(None), err(SAMPLE), ok("Listing done")] {
        assert!(matches!(
            TunnelStatus::from_reply(&reply),
            Err(ReplyError::BadStatus(_))
        ));
    }
}

#[test]
fn tunnel_counters_round_trip_and_reject_malformed_text() {
    use bob_codec::TunnelCounters;
    let c = TunnelCounters {
        nickname: "web".into(),
        running: true,
        accepted: 3,
        active: 1,
        failed: 2,
        bytes_in: 10,
        bytes_out: u64::MAX,
        extra: Vec::new(),
        last_error: None,
    };
    let failed = TunnelCounters {
        running: false,
        last_error: Some((1_765_000_000, "router error: I2P_ERROR: no tunnels".into())),
        ..c.clone()
    };
    let text = failed.to_string();
    assert!(
        text.ends_with(" last_error_at=1765000000 last_error=router error: I2P_ERROR: no tunnels"),
        "{text}"
    );
    assert_eq!(text.parse::<TunnelCounters>(), Ok(failed.clone()));
    let line = format!(
        "OK STATS nickname=web running=true accepted=3 active=1 failed=2 bytes_in=10 bytes_out={}\n",
        u64::MAX
    );
    assert_eq!(c.to_reply().encode(), line.as_bytes());
    let reply = Reply::decode(line.trim_end()).unwrap();
    assert_eq!(TunnelCounters::from_reply(&reply), Ok(c.clone()));
    // order does not matter, unknown keys are skipped, a nickname may hold '='
    let shuffled: TunnelCounters =
        "STATS bytes_out=5 future=x nickname=a=b failed=0 active=0 accepted=1 bytes_in=4 running=false"
            .parse()
            .unwrap();
    assert_eq!(shuffled.nickname, "a=b");
    assert_eq!(
        (shuffled.accepted, shuffled.bytes_in, shuffled.bytes_out),
        (1, 4, 5)
    );
    assert!(!shuffled.running);
    // numeric keys this version does not know are kept, in order, and written back
    let udp = TunnelCounters {
        extra: vec![("udp_received".into(), 7), ("udp_peers".into(), 2)],
        ..failed.clone()
    };
    let text = udp.to_string();
    assert!(
        text.contains(" bytes_out=18446744073709551615 udp_received=7 udp_peers=2 last_error_at="),
        "{text}"
    );
    assert_eq!(text.parse::<TunnelCounters>(), Ok(udp));
    assert!(
        "STATS nickname=x running=true accepted=1 active=1 failed=1 bytes_in=1 bytes_out=1 u=1 u=2"
            .parse::<TunnelCounters>()
            .is_err()
    );
    for bad in [
        "",
        "STATS",
        "STATSnickname=x",
        "DATA nickname=x running=true accepted=1 active=1 failed=1 bytes_in=1 bytes_out=1",
        "STATS nickname=x running=true accepted=1 active=1 failed=1 bytes_in=1",
        "STATS nickname=x running=yes accepted=1 active=1 failed=1 bytes_in=1 bytes_out=1",
        "STATS nickname=x running=true accepted=-1 active=1 failed=1 bytes_in=1 bytes_out=1",
        "STATS nickname=x running=true accepted= active=1 failed=1 bytes_in=1 bytes_out=1",
        "STATS nickname=x running=true accepted=99999999999999999999 active=1 failed=1 bytes_in=1 bytes_out=1",
        "STATS nickname=x running=true accepted=1 accepted=1 active=1 failed=1 bytes_in=1 bytes_out=1",
        "STATS nickname=x running=true accepted=1 active=1 failed=1 bytes_in=1 bytes_out=1 junk",
        "STATS running=true accepted=1 active=1 failed=1 bytes_in=1 bytes_out=1",
    ] {
        assert!(
            matches!(
                bad.parse::<TunnelCounters>(),
                Err(ReplyError::BadCounters(_))
            ),
            "{bad:?}"
        );
    }
    // what Java and i2pd answer to `stats`
    for reply in [
        Reply::Error("UNKNOWN COMMAND! Try help".into()),
        Reply::Error("unknown command".into()),
        Reply::Ok(None),
        Reply::Data("STATS nickname=x".into()),
    ] {
        assert!(TunnelCounters::from_reply(&reply).is_err(), "{reply:?}");
    }
}

#[test]
fn extension_commands_have_help_in_both_dialects_but_stay_off_the_list() {
    for dialect in [Dialect::Java, Dialect::I2pd] {
        for (name, _, _) in help::EXTENSIONS {
            let text = help::text(dialect, name).expect("help text");
            assert!(text.starts_with(name), "{text}");
            assert_eq!(help::text(dialect, &name.to_ascii_uppercase()), Some(text));
            // i2pd's own list names its settunneltype; the others stay off the lists
            let own = dialect == Dialect::I2pd && *name == "settunneltype";
            assert_eq!(
                help::commands(dialect).split(' ').any(|w| w == *name),
                own,
                "{name} {dialect:?}"
            );
            assert!(
                bob_codec::Command::parse(name, dialect).is_ok(),
                "{name} parses in {dialect:?}"
            );
        }
    }
    assert!(help::text(Dialect::Java, "stats").unwrap().contains(" * "));
    assert!(help::text(Dialect::I2pd, "stats").unwrap().contains(" - "));
}
