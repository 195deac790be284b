//! Tests of the configuration file: parsing, layering and the messages for mistakes.

use keytools::SigType;

use super::*;

const FULL: &str = r#"
listen = "127.0.0.1:3000"
allow-remote = true
dialect = "i2pd"
router = "sam://127.0.0.1:7656"
newkeys-type = "ed25519"
session-timeout = 30
max-connections = 5
max-tunnels = 7
lookup-timeout = 9
first-line-timeout = 11
connect-timeout = 12
max-tunnel-connections = 13
state-dir = "state"
metrics = "127.0.0.1:9100"
tunnels = "/etc/bob/tunnels.toml"
allow-users = ["root", "4242"]
control-socket = "run/control.sock"

[tunnel-options]
"inbound.length" = "1"
"i2cp.leaseSetEncType" = "4,0"
"#;

fn parse(text: &str) -> Result<Settings, ConfigFileError> {
    Settings::parse(text, Path::new("/etc/bob/config.toml"))
}

#[test]
fn full_file_parses_and_builds_a_config() {
    let s = parse(FULL).unwrap();
    assert_eq!(s.state_dir, Some(PathBuf::from("/etc/bob/state")));
    assert_eq!(s.tunnels, Some(PathBuf::from("/etc/bob/tunnels.toml")));
    assert_eq!(s.hosts, None);
    assert_eq!(
        s.control_socket,
        Some(PathBuf::from("/etc/bob/run/control.sock"))
    );
    let c = s.into_config().unwrap();
    assert_eq!(c.allow_users, [0, 4242]);
    assert_eq!(
        c.control_socket,
        Some(PathBuf::from("/etc/bob/run/control.sock"))
    );
    assert_eq!(c.listen, "127.0.0.1:3000".parse().unwrap());
    assert!(c.allow_remote);
    assert_eq!(c.dialect, Dialect::I2pd);
    assert_eq!(c.newkeys_sig, SigType::Ed25519);
    assert_eq!(c.max_connections, 5);
    assert_eq!(c.max_tunnels, 7);
    assert_eq!(c.lookup_timeout, Duration::from_secs(9));
    assert_eq!(c.tunnel_limits.first_line_timeout, Duration::from_secs(11));
    assert_eq!(c.tunnel_limits.connect_timeout, Duration::from_secs(12));
    assert_eq!(c.tunnel_limits.max_connections, 13);
    assert_eq!(c.metrics_listen, Some("127.0.0.1:9100".parse().unwrap()));
    assert!(
        c.default_options
            .contains(&("inbound.length".into(), "1".into()))
    );
    assert!(
        c.default_options
            .contains(&("outbound.length".into(), "3".into())),
        "Java defaults stay under the file's options"
    );
    let BackendConfig::Sam(sam) = c.backend else {
        panic!("router selects SAM")
    };
    assert_eq!(sam.addr, "127.0.0.1:7656");
    assert_eq!(sam.session_timeout, Duration::from_secs(30));
    assert_eq!(sam.default_options.len(), 2);
}

#[test]
fn printed_settings_read_back_the_same() {
    let s = parse(FULL).unwrap().over(Settings::builtin());
    let text = s.to_toml();
    assert_eq!(Settings::parse(&text, Path::new("/x/y.toml")).unwrap(), s);
    let d = Settings::builtin();
    assert_eq!(
        Settings::parse(&d.to_toml(), Path::new("c.toml")).unwrap(),
        d
    );
}

#[test]
fn builtin_defaults_match_config_default() {
    let built = Settings::default().into_config().unwrap();
    let def = Config::default();
    assert_eq!(built.listen, def.listen);
    assert_eq!(built.allow_remote, def.allow_remote);
    assert_eq!(built.dialect, def.dialect);
    assert_eq!(built.newkeys_sig, def.newkeys_sig);
    assert_eq!(built.max_connections, def.max_connections);
    assert_eq!(built.max_tunnels, def.max_tunnels);
    assert_eq!(built.lookup_timeout, def.lookup_timeout);
    assert_eq!(
        built.tunnel_limits.max_connections,
        def.tunnel_limits.max_connections
    );
    assert_eq!(built.default_options, def.default_options);
    assert_eq!(built.backend, def.backend);
    assert_eq!(built.state_dir, None);
    assert_eq!(built.metrics_listen, None);
    assert_eq!(built.allow_users, def.allow_users);
    assert_eq!(built.control_socket, None);
}

#[cfg(target_os = "linux")]
#[test]
fn unknown_allowed_user_is_an_error() {
    let e = parse("allow-users = [\"no-such-user-bob\"]\n")
        .unwrap()
        .into_config()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "allow-user \"no-such-user-bob\": no such user"
    );
}

#[test]
fn upper_layer_wins_and_options_merge_by_key() {
    let lower = parse(
        "listen = \"127.0.0.1:1\"\ndialect = \"i2pd\"\n[tunnel-options]\na = \"1\"\nb = \"2\"\n",
    )
    .unwrap();
    let upper = Settings {
        listen: Some("127.0.0.1:2".parse().unwrap()),
        tunnel_options: Some(TunnelOptions(
            [("b".to_owned(), "3".to_owned())].into_iter().collect(),
        )),
        ..Settings::default()
    };
    let merged = upper.over(lower);
    assert_eq!(merged.listen, Some("127.0.0.1:2".parse().unwrap()));
    assert_eq!(merged.dialect, Some(DialectName::I2pd));
    let opts = merged.tunnel_options.unwrap().0;
    assert_eq!(opts.get("a").map(String::as_str), Some("1"));
    assert_eq!(opts.get("b").map(String::as_str), Some("3"));
}

#[test]
fn errors_name_file_line_and_key() {
    let cases = [
        ("listen = \"127.0.0.1:1\"\ncolour = \"blue\"\n", 2, "colour"),
        ("\n\nlisten = [\n", 3, ""),
        ("dialect = \"cobol\"\n", 1, "dialect"),
        ("listen = \"nowhere\"\n", 1, "address"),
        ("\nrouter = \"http://x\"\n", 2, "sam://HOST:PORT"),
        ("newkeys-type = \"rsa\"\n", 1, "unsupported signature type"),
        ("max-connections = 0\n", 1, "nonzero"),
        ("session-timeout = -1\n", 1, ""),
        ("[tunnel-options]\n\"a b\" = \"1\"\n", 2, "without spaces"),
        (
            "[tunnel-options]\nb = \"1\"\nc = \"x y\"\n",
            3,
            "c: tunnel option",
        ),
        ("[tunnel-options]\na = 1\n", 2, "string"),
        ("allow-remote = \"yes\"\n", 1, "bool"),
        (
            "listen = 127.0.0.1:2905\n",
            1,
            "listen: expected an address in quotes, e.g. listen = \"127.0.0.1:2827\"",
        ),
        (
            "\nmax-tunnels = abc\n",
            2,
            "max-tunnels: expected a number, e.g. max-tunnels = 1024",
        ),
        (
            "max-tunnel = 3\n",
            1,
            "unknown key `max-tunnel`; did you mean `max-tunnels`?",
        ),
        (
            "listen = \"localhost:\"\n",
            1,
            "listen: \"localhost:\": the port",
        ),
        (
            "metrics = \"no such host!:1\"\n",
            1,
            "metrics: \"no such host!:1\": bad host",
        ),
    ];
    for (text, line, needle) in cases {
        let e = parse(text).unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("/etc/bob/config.toml:{line}: ")),
            "{text:?} -> {shown}"
        );
        assert!(shown.contains(needle), "{text:?} -> {shown}");
    }
}

#[test]
fn hosts_and_router_conflict() {
    let s = parse("hosts = \"h.txt\"\nrouter = \"127.0.0.1:7656\"\n").unwrap();
    assert_eq!(s.hosts, Some(PathBuf::from("/etc/bob/h.txt")));
    let e = s.into_config().unwrap_err();
    assert!(e.to_string().contains("hosts"), "{e}");
}

#[test]
fn missing_file_names_it() {
    let e = Settings::load(Path::new("/nonexistent/bob.toml")).unwrap_err();
    assert!(e.to_string().starts_with("/nonexistent/bob.toml: "), "{e}");
}

#[test]
fn tunnel_option_pairs() {
    assert_eq!(
        TunnelOptions::parse_pair("a.b=1").unwrap(),
        ("a.b".to_owned(), "1".to_owned())
    );
    for bad in ["a", "=1", "a=", "a b=1", "a=1 2"] {
        assert!(TunnelOptions::parse_pair(bad).is_err(), "{bad}");
    }
}
