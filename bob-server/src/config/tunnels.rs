//! The declarative tunnels file (`--tunnels FILE`): named tunnels started at boot.
//!
//! # Format
//! ```toml
//! [[tunnel]]
//! name = "web"                  # nickname (required, no spaces)
//! keys = "web.keys"             # key file, relative to this file; created (0600) if missing
//! key-type = "ed25519"          # signature type used when the key file is created
//! inbound = "127.0.0.1:8080"    # optional: listen here for applications (client side)
//! outbound = "127.0.0.1:80"     # optional: hand incoming I2P streams here (server side)
//! quiet = false                 # optional
//! type = "tcp"                  # optional: tcp (BOB's, the default), udp, socks, http-proxy
//! start = true                  # optional: start at boot (default true)
//! [tunnel.options]              # optional: tunnel options
//! "inbound.length" = "1"
//! ```
//! A UDP tunnel (`type = "udp"`, docs/udp.md) takes its server options the same way,
//! checked at load: `"bob.udp.dest" = "xyz.b32.i2p"`, `"bob.udp.rate" = "500"`, ….
//! Every error names the file and the line of the entry it is about.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::hints::{self, KeyShape, line_of};
use crate::tunnel::{Endpoint, TunnelKind};

/// One declared tunnel, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelDecl {
    /// nickname
    pub name: String,
    /// key file (absolute, or relative to the current directory)
    pub keys: PathBuf,
    /// signature type for a key file that does not exist yet (as written; parsed by keytools)
    pub key_type: Option<String>,
    /// inbound side
    pub inbound: Option<Endpoint>,
    /// outbound side
    pub outbound: Option<Endpoint>,
    /// quiet flag
    pub quiet: bool,
    /// the tunnel's type (`type = …`; BOB's TCP tunnel when left out)
    pub kind: TunnelKind,
    /// start at boot
    pub start: bool,
    /// options, sorted by key
    pub options: Vec<(String, String)>,
    /// 1-based line of the entry in the file
    pub line: usize,
}

/// A bad tunnels file; `Display` is `FILE:LINE: what is wrong`, or `FILE: what is wrong`
/// when no line is at fault (the file cannot be read).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct TunnelsFileError {
    /// the file
    pub file: String,
    /// 1-based line; `None` when the file as a whole cannot be read
    pub line: Option<usize>,
    /// what is wrong
    pub message: String,
}

/// What each key of an entry looks like, for messages about values that are not TOML.
const SHAPES: &[KeyShape] = &[
    ("name", "a nickname in quotes", "\"web\""),
    ("keys", "a key file path in quotes", "\"web.keys\""),
    ("key-type", "a signature type in quotes", "\"ed25519\""),
    ("inbound", "an address in quotes", "\"127.0.0.1:8080\""),
    ("outbound", "an address in quotes", "\"127.0.0.1:80\""),
    ("quiet", "true or false", "true"),
    ("type", "a tunnel type in quotes", "\"udp\""),
    ("start", "true or false", "true"),
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    tunnel: Vec<toml::Spanned<RawTunnel>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawTunnel {
    name: String,
    keys: PathBuf,
    key_type: Option<String>,
    inbound: Option<String>,
    outbound: Option<String>,
    #[serde(default)]
    quiet: bool,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default = "yes")]
    start: bool,
    #[serde(default)]
    options: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

/// Parses `HOST:PORT` (IPv6 literals may be bracketed) with a port in 1..=65535.
///
/// # Errors
/// A message saying what is wrong.
pub fn parse_endpoint(value: &str) -> Result<Endpoint, String> {
    let (host, port) = value
        .rsplit_once(':')
        .ok_or_else(|| format!("{value:?}: expected HOST:PORT"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Err(e) = bob_codec::types::Host::new(host) {
        return Err(format!("bad host: {e}"));
    }
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok(Endpoint {
            host: host.to_string(),
            port,
        }),
        _ => Err(format!("{value:?}: port must be a number in 1..65535")),
    }
}

/// Parses the tunnels file `text`, read from `path` (key paths are taken relative to it).
///
/// # Errors
/// [`TunnelsFileError`] naming the line of the first bad entry.
pub fn parse(text: &str, path: &Path) -> Result<Vec<TunnelDecl>, TunnelsFileError> {
    let file = path.display().to_string();
    let err = |line, message: String| TunnelsFileError {
        file: file.clone(),
        line: Some(line),
        message,
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let (line, message) = hints::toml_error(text, &e, SHAPES);
        err(line, message)
    })?;
    let base = path.parent().unwrap_or_else(|| Path::new(""));
    let mut seen = BTreeMap::new();
    let mut out = Vec::new();
    for spanned in raw.tunnel {
        let line = line_of(text, spanned.span().start);
        let t = spanned.into_inner();
        let bad = |what: String| err(line, format!("tunnel {:?}: {what}", t.name));
        if let Err(e) = bob_codec::types::Nickname::new(t.name.as_str()) {
            // the same caps as `setnick`; the name is not quoted (it may be huge)
            return Err(err(line, format!("tunnel name: {e}")));
        }
        if let Some(first) = seen.insert(t.name.clone(), line) {
            return Err(bad(format!("duplicate name (first at line {first})")));
        }
        let inbound = t
            .inbound
            .as_deref()
            .map(parse_endpoint)
            .transpose()
            .map_err(|e| bad(format!("inbound {e}")))?;
        let outbound = t
            .outbound
            .as_deref()
            .map(parse_endpoint)
            .transpose()
            .map_err(|e| bad(format!("outbound {e}")))?;
        if inbound.is_none() && outbound.is_none() {
            return Err(bad("needs inbound, outbound or both".into()));
        }
        if t.options.len() > crate::config::MAX_OPTIONS_PER_TUNNEL {
            return Err(bad(format!(
                "too many options (limit {})",
                crate::config::MAX_OPTIONS_PER_TUNNEL
            )));
        }
        for (k, v) in &t.options {
            // the same caps as `option`
            let checked = bob_codec::types::OptionKey::new(k.as_str())
                .and_then(|_| bob_codec::types::OptionValue::new(v.as_str()));
            if let Err(e) = checked {
                return Err(bad(format!("option: {e}")));
            }
            // the server's UDP options, as `option` checks them
            if let Err(e) = crate::tunnel::udp::options::check(k, v) {
                return Err(bad(format!("option: {e}")));
            }
        }
        let kind = match &t.kind {
            Some(name) => name
                .parse::<TunnelKind>()
                .map_err(|e| bad(format!("type: {e}")))?,
            None => TunnelKind::default(),
        };
        if let Some(kt) = &t.key_type {
            kt.parse::<keytools::SigType>()
                .map_err(|e| bad(format!("key-type: {e}")))?;
        }
        out.push(TunnelDecl {
            keys: base.join(&t.keys),
            key_type: t.key_type.clone(),
            inbound,
            outbound,
            quiet: t.quiet,
            kind,
            start: t.start,
            options: t.options.clone().into_iter().collect(),
            name: t.name,
            line,
        });
    }
    Ok(out)
}

/// Reads and parses a tunnels file.
///
/// # Errors
/// [`TunnelsFileError`] (without a line when the file cannot be read).
pub fn load(path: &Path) -> Result<Vec<TunnelDecl>, TunnelsFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| TunnelsFileError {
        file: path.display().to_string(),
        line: None,
        message: e.to_string(),
    })?;
    parse(&text, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Vec<TunnelDecl>, TunnelsFileError> {
        parse(text, Path::new("/etc/bob/tunnels.toml"))
    }

    #[test]
    fn tunnel_types_parse() {
        let text = "[[tunnel]]\nname = \"u\"\nkeys = \"u.keys\"\ntype = \"udp\"\noutbound = \"127.0.0.1:9\"\n\n[[tunnel]]\nname = \"p\"\nkeys = \"p.keys\"\ntype = \"http-proxy\"\ninbound = \"127.0.0.1:4444\"\n\n[[tunnel]]\nname = \"t\"\nkeys = \"t.keys\"\ninbound = \"127.0.0.1:1\"\n";
        let decls = parse_str(text).unwrap();
        let kinds: Vec<_> = decls.iter().map(|d| d.kind).collect();
        assert_eq!(
            kinds,
            [TunnelKind::Udp, TunnelKind::HttpProxy, TunnelKind::Stream]
        );
        let bad = "[[tunnel]]\nname = \"u\"\nkeys = \"u.keys\"\ntype = \"gopher\"\ninbound = \"127.0.0.1:1\"\n";
        let err = parse_str(bad).unwrap_err().to_string();
        assert!(
            err.starts_with("/etc/bob/tunnels.toml:1: tunnel \"u\": type: unknown tunnel type"),
            "{err}"
        );
    }

    #[test]
    fn full_entry_parses() {
        let text = r#"
# a web site
[[tunnel]]
name = "web"
keys = "web.keys"
key-type = "ed25519"
outbound = "127.0.0.1:8080"
quiet = true
[tunnel.options]
"inbound.length" = "1"
"outbound.length" = "2"

[[tunnel]]
name = "irc"
keys = "/var/lib/bob/irc.keys"
inbound = "[::1]:6668"
start = false
"#;
        let decls = parse_str(text).unwrap();
        assert_eq!(decls.len(), 2);
        let web = &decls[0];
        assert_eq!(web.name, "web");
        assert_eq!(web.keys, PathBuf::from("/etc/bob/web.keys"));
        assert_eq!(web.line, 3);
        assert!(web.quiet && web.start);
        assert_eq!(web.inbound, None);
        assert_eq!(
            web.outbound,
            Some(Endpoint {
                host: "127.0.0.1".into(),
                port: 8080
            })
        );
        assert_eq!(
            web.options,
            vec![
                ("inbound.length".into(), "1".into()),
                ("outbound.length".into(), "2".into())
            ]
        );
        let irc = &decls[1];
        assert_eq!(irc.keys, PathBuf::from("/var/lib/bob/irc.keys"));
        assert_eq!(
            irc.inbound,
            Some(Endpoint {
                host: "::1".into(),
                port: 6668
            })
        );
        assert!(!irc.start);
        assert_eq!(irc.line, 13);
    }

    #[test]
    fn bad_entries_name_their_line() {
        let cases = [
            (
                "[[tunnel]]\nname = \"a\"\nkeys = \"k\"\n",
                1,
                "needs inbound, outbound or both",
            ),
            (
                "\n\n[[tunnel]]\nname = \"a\"\nkeys = \"k\"\ninbound = \"nohost\"\n",
                3,
                "expected HOST:PORT",
            ),
            (
                "[[tunnel]]\nname = \"a\"\nkeys = \"k\"\noutbound = \"h:0\"\n",
                1,
                "port must be",
            ),
            (
                "[[tunnel]]\nname = \"a\"\nkeys = \"k\"\noutbound = \"h:70000\"\n",
                1,
                "port must be",
            ),
            (
                "[[tunnel]]\nname = \"a b\"\nkeys = \"k\"\noutbound = \"h:1\"\n",
                1,
                "tunnel name: nickname contains whitespace",
            ),
            (
                "[[tunnel]]\nname = \"a\"\nkeys = \"k\"\noutbound = \"h:1\"\n[[tunnel]]\nname = \"a\"\nkeys = \"k\"\noutbound = \"h:2\"\n",
                5,
                "duplicate name (first at line 1)",
            ),
            (
                "[[tunnel]]\nname = \"a\"\nkeys = \"k\"\noutbound = \"h:1\"\ncolour = 1\n",
                5,
                "unknown key `colour`; valid keys: name, keys,",
            ),
            (
                "[[tunnel]]\nname = \"a\"\nkeys = \"k\"\noutbund = \"h:1\"\n",
                4,
                "unknown key `outbund`; did you mean `outbound`?",
            ),
            (
                "[[tunnel]]\nname = \"a\"\nkeys = \"k\"\noutbound = 127.0.0.1:80\n",
                4,
                "outbound: expected an address in quotes, e.g. outbound = \"127.0.0.1:80\"",
            ),
            (
                "[[tunnel]]\nname = \"a\"\noutbound = \"h:1\"\n",
                1,
                "missing field `keys`",
            ),
            (
                "[[tunnel]]\nname = \"a\"\nkeys = \"k\"\noutbound = \"h:1\"\n[tunnel.options]\n\"x y\" = \"1\"\n",
                1,
                "option",
            ),
            (
                "[[tunnel]]\nname = \"a\"\nkeys = \"k\"\noutbound = \"h:1\"\nkey-type = \"rsa\"\n",
                1,
                "key-type",
            ),
            ("[[tunnel]\n", 1, ""),
        ];
        for (text, line, needle) in cases {
            let e = parse_str(text).unwrap_err();
            assert_eq!(e.line, Some(line), "{text:?} -> {e}");
            assert!(e.to_string().contains(needle), "{text:?} -> {e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("/etc/bob/tunnels.toml:{line}: ")),
                "{e}"
            );
        }
    }

    #[test]
    fn udp_options_are_checked_at_load() {
        let good = "[[tunnel]]\nname = \"u\"\nkeys = \"u.keys\"\ntype = \"udp\"\ninbound = \"127.0.0.1:5000\"\n[tunnel.options]\n\"bob.udp.dest\" = \"peer.i2p\"\n\"bob.udp.rate\" = \"500\"\n";
        let decls = parse_str(good).unwrap();
        assert_eq!(decls[0].kind, TunnelKind::Udp);
        assert_eq!(decls[0].options.len(), 2);
        let bad = good.replace("\"500\"", "\"fast\"");
        let err = parse_str(&bad).unwrap_err().to_string();
        assert!(
            err.ends_with("option: bob.udp.rate must be a number from 0 to 1000000, not \"fast\""),
            "{err}"
        );
    }

    #[test]
    fn empty_file_has_no_tunnels() {
        assert_eq!(parse_str("").unwrap(), vec![]);
        assert_eq!(parse_str("# nothing\n").unwrap(), vec![]);
    }

    #[test]
    fn missing_file_is_an_error() {
        let e = load(Path::new("/nonexistent/bob/tunnels.toml")).unwrap_err();
        assert_eq!(e.line, None);
        // no made-up line number
        assert!(
            e.to_string().starts_with("/nonexistent/bob/tunnels.toml: "),
            "{e}"
        );
    }
}
