use super::*;

#[test]
fn cli_definition_is_consistent() {
    Args::command().debug_assert();
}

#[test]
fn help_states_the_builtin_defaults() {
    let d = Settings::builtin();
    let help = Args::command().render_long_help().to_string();
    for shown in [
        d.listen.unwrap().to_string(),
        d.max_connections.unwrap().to_string(),
        d.max_tunnels.unwrap().to_string(),
        d.max_registry_bytes.unwrap().to_string(),
        d.session_timeout.unwrap().to_string(),
        d.start_wait.unwrap().to_string(),
        d.lookup_timeout.unwrap().to_string(),
        d.first_line_timeout.unwrap().to_string(),
        d.connect_timeout.unwrap().to_string(),
        d.max_tunnel_connections.unwrap().to_string(),
        d.newkeys_type.unwrap().0.name().to_owned(),
    ] {
        assert!(
            help.contains(&format!("[default: {shown}]")),
            "{shown}: {help}"
        );
    }
}

#[test]
fn every_setting_has_a_flag_and_a_variable() {
    let cmd = Args::command();
    let text = toml::to_string(&Settings::builtin()).unwrap();
    let all_keys = [
        "listen",
        "allow-remote",
        "dialect",
        "router",
        "hosts",
        "newkeys-type",
        "session-timeout",
        "start-wait",
        "max-connections",
        "max-tunnels",
        "max-registry-bytes",
        "lookup-timeout",
        "first-line-timeout",
        "connect-timeout",
        "max-tunnel-connections",
        "state-dir",
        "metrics",
        "tunnels",
        "tunnel-option",
        "allow-users",
        "control-socket",
    ];
    for key in text
        .lines()
        .filter_map(|l| l.split_once(" = ").map(|(k, _)| k))
    {
        assert!(all_keys.contains(&key), "{key} is listed here");
    }
    for key in all_keys {
        // the repeatable flags are singular, their variables plural
        let (flag, var) = match key {
            "tunnel-option" => (key, "BOB_TUNNEL_OPTIONS".to_owned()),
            "allow-users" => ("allow-user", "BOB_ALLOW_USERS".to_owned()),
            _ => (key, format!("BOB_{}", key.replace('-', "_").to_uppercase())),
        };
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(flag))
            .unwrap_or_else(|| panic!("--{flag}"));
        assert_eq!(
            arg.get_env().and_then(|e| e.to_str()),
            Some(var.as_str()),
            "{key}"
        );
    }
}
