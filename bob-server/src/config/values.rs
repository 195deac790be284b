//! The value types of settings as the configuration file and the command line spell
//! them: addresses, dialect and router names, signature types, default tunnel options.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;

use bob_codec::Dialect;
use keytools::SigType;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::backend::embedded::RouterKind;
use crate::config::parse_sig_type;

/// An address as `--listen`, `--metrics` and `--router` (and their config keys) take
/// it: `HOST:PORT`, `[IPV6]:PORT` or a bare `PORT` (meaning `127.0.0.1:PORT`); HOST is
/// an IP address or a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// IP literal (without brackets) or host name
    pub host: String,
    /// 0 only where a setting allows it (listen addresses: "any free port")
    pub port: u16,
}

impl FromStr for HostPort {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let expected =
            "expected an address, HOST:PORT or PORT (e.g. 127.0.0.1:2827, localhost:2827, 2827)";
        if let Ok(port) = s.parse::<u16>() {
            return Ok(Self {
                host: Ipv4Addr::LOCALHOST.to_string(),
                port,
            });
        }
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?}: {expected}"))?;
        let host = match host.strip_prefix('[') {
            Some(v6) => v6
                .strip_suffix(']')
                .filter(|h| h.parse::<std::net::Ipv6Addr>().is_ok())
                .ok_or_else(|| format!("{s:?}: bad IPv6 address in brackets"))?,
            // an IPv6 address needs brackets, or its last group would read as the port
            None if host.contains(':') => {
                return Err(format!(
                    "{s:?}: write an IPv6 address in brackets, [ADDR]:PORT"
                ));
            }
            None => host,
        };
        let name_ok = |h: &str| {
            !h.is_empty()
                && h.len() <= 253
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
        };
        if host.parse::<IpAddr>().is_err() && !name_ok(host) {
            return Err(format!("{s:?}: bad host {host:?}; {expected}"));
        }
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("{s:?}: the port must be a number in 0..65535"))?;
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl HostPort {
    /// The socket address to bind: the IP itself, or the name resolved now (its first
    /// IPv4 address, else its first address).
    ///
    /// # Errors
    /// A message naming the host when it does not resolve.
    pub fn resolve(&self) -> Result<SocketAddr, String> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, self.port));
        }
        let found: Vec<SocketAddr> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {:?}: {e}", self.host))?
            .collect();
        found
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| found.first())
            .copied()
            .ok_or_else(|| format!("{:?} has no address", self.host))
    }
}

/// Parses a listen address (`--listen`, `--metrics`): [`HostPort`], resolved.
///
/// # Errors
/// A message saying what is wrong with `s`.
pub fn parse_listen_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse::<HostPort>()?.resolve()
}

/// `Deserialize` for an optional listen address in the configuration file (the same
/// forms as on the command line; the error keeps the value's position).
///
/// # Errors
/// The deserializer's error with [`parse_listen_addr`]'s message.
pub fn de_listen_addr<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    parse_listen_addr(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// Which reply strings the server speaks, as written in the file and on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DialectName {
    /// Java I2P's BOB strings
    Java,
    /// i2pd's BOB strings
    I2pd,
}

impl From<DialectName> for Dialect {
    fn from(d: DialectName) -> Self {
        match d {
            DialectName::Java => Self::Java,
            DialectName::I2pd => Self::I2pd,
        }
    }
}

impl FromStr for DialectName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "java" => Ok(Self::Java),
            "i2pd" => Ok(Self::I2pd),
            _ => Err(format!(
                "unknown dialect {s:?}: expected \"java\" or \"i2pd\""
            )),
        }
    }
}

/// The router of `--router`, checked: a SAM bridge written `sam://HOST:PORT`, or
/// `embedded` / `devnet[=N]` (the in-process emissary routers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouterUrl {
    /// a SAMv3 bridge's `HOST:PORT`
    Sam(String),
    /// an in-process router (feature `embedded-router`)
    Embedded(RouterKind),
}

impl RouterUrl {
    /// The bridge's `HOST:PORT`; `None` for the in-process routers.
    pub fn addr(&self) -> Option<&str> {
        match self {
            Self::Sam(addr) => Some(addr),
            Self::Embedded(_) => None,
        }
    }
}

impl FromStr for RouterUrl {
    type Err = String;

    /// Accepts `sam://HOST:PORT`, `HOST:PORT` or a bare `PORT` (on 127.0.0.1), like the
    /// listen addresses (HOST may be a name, resolved when the router is contacted);
    /// or `embedded`, `devnet`, `devnet=N` (the in-process emissary routers).
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(kind) = RouterKind::parse(s) {
            return kind.map(Self::Embedded);
        }
        let bad = |why: String| {
            format!(
                "invalid SAM router address {s:?}: {why}; expected sam://HOST:PORT, \
                 `embedded` or `devnet[=N]`"
            )
        };
        let addr = s.strip_prefix("sam://").unwrap_or(s).trim_end_matches('/');
        if addr.contains("://") {
            return Err(bad("only sam:// is supported".into()));
        }
        let hp: HostPort = addr.parse().map_err(bad)?;
        if hp.port == 0 {
            return Err(bad("port 0".into()));
        }
        Ok(Self::Sam(hp.to_string()))
    }
}

impl fmt::Display for RouterUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sam(addr) => write!(f, "sam://{addr}"),
            Self::Embedded(kind) => write!(f, "{kind}"),
        }
    }
}

/// A signature type `keytools` can generate, written by its I2P name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigTypeName(pub SigType);

impl FromStr for SigTypeName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        parse_sig_type(s)
            .map(Self)
            .ok_or_else(|| format!("unsupported signature type `{s}`"))
    }
}

/// Implements `Serialize` by `Display` and `Deserialize` by `FromStr` (errors keep the
/// value's position, so the file error names the line).
macro_rules! string_serde {
    ($ty:ty, $display:expr) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let show: fn(&Self) -> String = $display;
                s.serialize_str(&show(self))
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// The SAM bridge's UDP port for datagram sessions (`--sam-udp HOST:PORT`, or a bare
/// `PORT` on 127.0.0.1); the host may be a name, resolved when a session opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamUdpAddr(pub String);

impl FromStr for SamUdpAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let hp: HostPort = s
            .parse()
            .map_err(|e| format!("invalid SAM UDP address: {e}"))?;
        if hp.port == 0 {
            return Err(format!("invalid SAM UDP address {s:?}: port 0"));
        }
        Ok(Self(hp.to_string()))
    }
}

impl fmt::Display for SamUdpAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

string_serde!(RouterUrl, |r| r.to_string());
string_serde!(SamUdpAddr, |a| a.0.clone());
string_serde!(SigTypeName, |t| t.0.name().to_owned());

/// Default options of every tunnel (`[tunnel-options]`, `--tunnel-option KEY=VALUE`),
/// checked like the `option` command checks them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TunnelOptions(pub BTreeMap<String, String>);

impl TunnelOptions {
    fn check(key: &str, value: &str) -> Result<(), String> {
        if key.is_empty()
            || value.is_empty()
            || key.contains('=')
            || key.chars().chain(value.chars()).any(char::is_whitespace)
        {
            return Err(
                "tunnel option keys and values must be non-empty, without spaces, \
                 and keys without '='"
                    .to_owned(),
            );
        }
        Ok(())
    }

    /// Parses one `KEY=VALUE` (the form of `--tunnel-option`).
    ///
    /// # Errors
    /// A message naming the bad pair.
    pub fn parse_pair(s: &str) -> Result<(String, String), String> {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}`: expected KEY=VALUE without spaces"))?;
        Self::check(k, v).map_err(|_| format!("`{s}`: expected KEY=VALUE without spaces"))?;
        Ok((k.to_owned(), v.to_owned()))
    }
}

/// A tunnel option key, checked as it is read (so an error points at its line).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct OptionKey(String);

impl<'de> Deserialize<'de> for OptionKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let key = String::deserialize(d)?;
        TunnelOptions::check(&key, "x").map_err(serde::de::Error::custom)?;
        Ok(Self(key))
    }
}

/// A tunnel option value, checked as it is read.
struct OptionValue(String);

impl<'de> Deserialize<'de> for OptionValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = String::deserialize(d)?;
        TunnelOptions::check("x", &value).map_err(serde::de::Error::custom)?;
        Ok(Self(value))
    }
}

impl<'de> Deserialize<'de> for TunnelOptions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<OptionKey, OptionValue>::deserialize(d)?;
        Ok(Self(map.into_iter().map(|(k, v)| (k.0, v.0)).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_take_names_and_bare_ports() {
        let hp = |s: &str| s.parse::<HostPort>();
        assert_eq!(hp("2828").unwrap().to_string(), "127.0.0.1:2828");
        assert_eq!(hp("localhost:2828").unwrap().host, "localhost");
        assert_eq!(hp("[::1]:7656").unwrap().to_string(), "[::1]:7656");
        assert_eq!(hp("0.0.0.0:0").unwrap().port, 0);
        for bad in [
            "", ":1", "host", "a b:1", "::1:7656", "[nope]:1", "h:70000", "h:x",
        ] {
            assert!(hp(bad).is_err(), "{bad:?}");
        }
        let local = parse_listen_addr("localhost:2828").unwrap();
        assert!(local.ip().is_loopback() && local.port() == 2828, "{local}");
        assert_eq!(
            parse_listen_addr("2828").unwrap(),
            "127.0.0.1:2828".parse().unwrap()
        );
        assert!(parse_listen_addr("no-such-host.invalid:1").is_err());
    }

    #[test]
    fn sam_udp_addresses() {
        let a = |s: &str| s.parse::<SamUdpAddr>().map(|a| a.to_string());
        assert_eq!(a("127.0.0.1:7655").unwrap(), "127.0.0.1:7655");
        assert_eq!(a("7655").unwrap(), "127.0.0.1:7655");
        assert_eq!(a("[::1]:7655").unwrap(), "[::1]:7655");
        assert_eq!(a("localhost:7655").unwrap(), "localhost:7655");
        for bad in ["", "x", "127.0.0.1:0", "0", "sam://h:1", "h:70000"] {
            assert!(a(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn router_addresses_are_the_same_forms() {
        let r = |s: &str| s.parse::<RouterUrl>().map(|r| r.to_string());
        assert_eq!(r("sam://127.0.0.1:7656").unwrap(), "sam://127.0.0.1:7656");
        assert_eq!(r("localhost:7656").unwrap(), "sam://localhost:7656");
        assert_eq!(r("7656").unwrap(), "sam://127.0.0.1:7656");
        assert_eq!(r("sam://[::1]:7656/").unwrap(), "sam://[::1]:7656");
        for bad in ["http://x:1", "sam://x:0", "sam://", "x"] {
            assert!(r(bad).is_err(), "{bad:?}");
        }
    }
}
