//! The value types of settings as the configuration file and the command line spell
//! them: dialect and router names, signature types, default tunnel options.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use bob_codec::Dialect;
use keytools::SigType;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::backend::embedded::RouterKind;
use crate::backend::sam::SamConfig;
use crate::config::parse_sig_type;

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

    /// Accepts `sam://HOST:PORT`, `HOST:PORT`, `embedded`, `devnet` or `devnet=N`.
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(kind) = RouterKind::parse(s) {
            return kind.map(Self::Embedded);
        }
        SamConfig::from_url(s)
            .map(|sam| Self::Sam(sam.addr))
            .map_err(|e| format!("{e}, `embedded` or `devnet[=N]`"))
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

string_serde!(RouterUrl, |r| r.to_string());
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
