//! Validated values of the protocol: [`Nickname`], [`Host`], [`Port`], [`OptionKey`],
//! [`OptionValue`] (and the [`TunnelOption`] pair), plus the limits they enforce.
//!
//! Each type can only hold a value that fits into one BOB request line as a single
//! operand and stays within a documented size cap, so a value that went through
//! `TryFrom`/`FromStr` can be written after a command word without ever splitting the
//! line or growing the registry without bound. `Display` writes the value exactly as it
//! goes on the wire.
//!
//! | type | length | refused |
//! |---|---|---|
//! | [`Nickname`] | 1..=[`MAX_NICKNAME_LEN`] bytes | whitespace, control characters |
//! | [`Host`] | 1..=[`MAX_HOST_LEN`] bytes | whitespace, control characters |
//! | [`OptionKey`] | 1..=[`MAX_OPTION_KEY_LEN`] bytes | whitespace, control characters, `=` |
//! | [`OptionValue`] | 1..=[`MAX_OPTION_VALUE_LEN`] bytes | whitespace, control characters, `=` |
//! | [`Port`] | `1..=65535`, decimal digits only (leading zeros allowed) | sign, junk, 0 |
//!
//! Why these rules: both reference servers split a request line at whitespace (Java at
//! spaces, i2pd at any ASCII whitespace), so no operand can hold whitespace; control
//! characters are refused by bob-server and never appear in a realistic name; `option`
//! splits each `key=value` token at `=` with Java's rules (empty pieces dropped, exactly two
//! must remain), so neither side of the pair can hold a `=`. An empty operand is read as a
//! missing one. Everything else, non-ASCII letters included, is kept as given, so every
//! realistic value Java BOB and i2pd accept is accepted here. "Whitespace" is Unicode
//! whitespace ([`char::is_whitespace`]), "control" is [`char::is_control`].
//!
//! ```
//! use bob_codec::types::{Nickname, Port, TunnelOption, ValueError};
//!
//! let nick: Nickname = "web-1".parse().unwrap();
//! assert_eq!(nick.to_string(), "web-1");
//! assert_eq!(Port::try_from("08080").unwrap().get(), 8080);
//! let opt: TunnelOption = "inbound.length=1".parse().unwrap();
//! assert_eq!((opt.key().as_str(), opt.value().as_str()), ("inbound.length", "1"));
//!
//! let err = Nickname::try_from("victim\nclear").unwrap_err();
//! assert_eq!(err.to_string(), "nickname contains a control character");
//! assert!(matches!(Nickname::try_from("victim x"), Err(ValueError::Whitespace { .. })));
//! ```

use std::fmt;
use std::str::FromStr;

/// Longest nickname in bytes.
pub const MAX_NICKNAME_LEN: usize = 255;

/// Longest host (a DNS name or an IP literal) in bytes, as DNS allows.
pub const MAX_HOST_LEN: usize = 255;

/// Longest option key in bytes.
pub const MAX_OPTION_KEY_LEN: usize = 255;

/// Longest option value in bytes (4 KiB: room for a base64 key or a long I2CP list).
pub const MAX_OPTION_VALUE_LEN: usize = 4096;

/// Options a client may add to one tunnel with `option`, on top of the server's default
/// options and the [`NICKNAME_OPTIONS`]. Overwriting a key the tunnel already holds never
/// counts against it.
pub const MAX_OPTIONS_PER_TUNNEL: usize = 256;

/// Properties every tunnel carries besides its defaults and user options:
/// `inbound.nickname` and `outbound.nickname`.
pub const NICKNAME_OPTIONS: usize = 2;

/// The one limit formula: the most properties one tunnel may hold in total when the server
/// gives every tunnel `defaults` default options.
///
/// ```
/// use bob_codec::types::{MAX_OPTIONS_PER_TUNNEL, max_properties};
/// // Java BOB's four tunnel defaults, two nickname options, then the user's.
/// assert_eq!(max_properties(4), 4 + 2 + MAX_OPTIONS_PER_TUNNEL);
/// ```
pub const fn max_properties(defaults: usize) -> usize {
    defaults + NICKNAME_OPTIONS + MAX_OPTIONS_PER_TUNNEL
}

/// What kind of value failed to validate (the first word of a [`ValueError`] message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueKind {
    /// a tunnel nickname
    Nickname,
    /// an inbound or outbound host
    Host,
    /// a port number
    Port,
    /// the key of a tunnel option
    OptionKey,
    /// the value of a tunnel option
    OptionValue,
    /// a `key=value` tunnel option
    TunnelOption,
}

impl fmt::Display for ValueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Nickname => "nickname",
            Self::Host => "host",
            Self::Port => "port",
            Self::OptionKey => "option key",
            Self::OptionValue => "option value",
            Self::TunnelOption => "option",
        })
    }
}

/// A value that does not fit the rules of its type. `Display` names the kind of value
/// and the rule, e.g. `nickname contains whitespace`; it never quotes the value (which may
/// be long or hold control characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// The value is empty.
    #[error("{kind} is empty")]
    Empty {
        /// which value
        kind: ValueKind,
    },
    /// The value is longer than its cap.
    #[error("{kind} is longer than {limit} bytes")]
    TooLong {
        /// which value
        kind: ValueKind,
        /// the cap in bytes
        limit: usize,
    },
    /// The value holds whitespace, which would split it into several operands.
    #[error("{kind} contains whitespace")]
    Whitespace {
        /// which value
        kind: ValueKind,
    },
    /// The value holds a control character (a line break would split the request line).
    #[error("{kind} contains a control character")]
    Control {
        /// which value
        kind: ValueKind,
    },
    /// An option key or value holds `=`, which `option` cannot carry.
    #[error("{kind} contains '='")]
    Equals {
        /// which value
        kind: ValueKind,
    },
    /// A `key=value` option without its `=`.
    #[error("option is not of the form key=value")]
    NotAPair,
    /// A port that is not a decimal number.
    #[error("port is not a number")]
    NotANumber,
    /// A port of 0 or above 65535.
    #[error("port out of range (1-65535)")]
    PortOutOfRange,
}

/// Checks the rules shared by the string types.
fn check(value: &str, kind: ValueKind, limit: usize, no_equals: bool) -> Result<(), ValueError> {
    if value.is_empty() {
        return Err(ValueError::Empty { kind });
    }
    if value.len() > limit {
        return Err(ValueError::TooLong { kind, limit });
    }
    // Control before whitespace: `\n` is both, and "control character" is the better word.
    if value.chars().any(char::is_control) {
        return Err(ValueError::Control { kind });
    }
    if value.chars().any(char::is_whitespace) {
        return Err(ValueError::Whitespace { kind });
    }
    if no_equals && value.contains('=') {
        return Err(ValueError::Equals { kind });
    }
    Ok(())
}

/// Defines a validated string newtype with its conversions.
macro_rules! string_type {
    ($(#[$doc:meta])* $name:ident, $kind:expr, $limit:expr, $no_equals:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The kind of value, as error messages name it.
            pub const KIND: ValueKind = $kind;
            /// The cap in bytes.
            pub const MAX_LEN: usize = $limit;

            /// Validates `value`.
            ///
            /// # Errors
            /// A [`ValueError`] naming the first rule `value` breaks.
            pub fn new(value: impl Into<String>) -> Result<Self, ValueError> {
                let value = value.into();
                check(&value, $kind, $limit, $no_equals)?;
                Ok(Self(value))
            }

            /// The value as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The value as an owned `String`.
            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = ValueError;

            fn from_str(s: &str) -> Result<Self, ValueError> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = ValueError;

            fn try_from(s: &str) -> Result<Self, ValueError> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValueError;

            fn try_from(s: String) -> Result<Self, ValueError> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

string_type!(
    /// A tunnel name: 1 to [`MAX_NICKNAME_LEN`] bytes, no whitespace, no control characters.
    ///
    /// (Java BOB also takes an empty nickname from a bare `setnick`; bob-server reads a
    /// missing operand as "no nickname", so the empty name is not a nickname here.)
    Nickname,
    ValueKind::Nickname,
    MAX_NICKNAME_LEN,
    false
);

string_type!(
    /// An inbound or outbound host, a DNS name or an IP literal (`127.0.0.1`, `::1`):
    /// 1 to [`MAX_HOST_LEN`] bytes, no whitespace, no control characters. Whether it
    /// resolves is the server's business at `start`.
    Host,
    ValueKind::Host,
    MAX_HOST_LEN,
    false
);

string_type!(
    /// The key of a tunnel option (`inbound.length`): 1 to [`MAX_OPTION_KEY_LEN`] bytes,
    /// no whitespace, no control characters, no `=`.
    OptionKey,
    ValueKind::OptionKey,
    MAX_OPTION_KEY_LEN,
    true
);

string_type!(
    /// The value of a tunnel option: 1 to [`MAX_OPTION_VALUE_LEN`] bytes, no whitespace,
    /// no control characters, no `=`.
    OptionValue,
    ValueKind::OptionValue,
    MAX_OPTION_VALUE_LEN,
    true
);

/// A TCP port in `1..=65535`.
///
/// Parsed from text with the server's `inport`/`outport` rules (see
/// [`crate::command::parse_port`]): ASCII digits only, leading zeros allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port(std::num::NonZeroU16);

impl Port {
    /// The kind of value, as error messages name it.
    pub const KIND: ValueKind = ValueKind::Port;

    /// A port from a number.
    ///
    /// # Errors
    /// [`ValueError::PortOutOfRange`] for 0.
    pub const fn new(port: u16) -> Result<Self, ValueError> {
        match std::num::NonZeroU16::new(port) {
            Some(port) => Ok(Self(port)),
            None => Err(ValueError::PortOutOfRange),
        }
    }

    /// The port number.
    pub const fn get(self) -> u16 {
        self.0.get()
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Port {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        use crate::error::CommandError;
        match crate::command::parse_port(Some(s), crate::Dialect::Java) {
            Ok(port) => Self::new(port),
            Err(CommandError::PortOutOfRange { .. }) => Err(ValueError::PortOutOfRange),
            Err(_) => Err(ValueError::NotANumber),
        }
    }
}

impl TryFrom<&str> for Port {
    type Error = ValueError;

    fn try_from(s: &str) -> Result<Self, ValueError> {
        s.parse()
    }
}

impl TryFrom<u16> for Port {
    type Error = ValueError;

    fn try_from(port: u16) -> Result<Self, ValueError> {
        Self::new(port)
    }
}

impl From<Port> for u16 {
    fn from(port: Port) -> Self {
        port.get()
    }
}

/// One `key=value` tunnel option, as `option` carries it.
///
/// `FromStr` splits at the first `=`; both sides must then validate, so `a=b=c` and
/// `=b` are refused (Java BOB's `StringTokenizer` rules would also refuse them, except
/// `a==b`, which Java reads as `a=b`: that spelling is not produced here).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TunnelOption {
    key: OptionKey,
    value: OptionValue,
}

impl TunnelOption {
    /// A pair from its validated halves.
    pub fn new(key: OptionKey, value: OptionValue) -> Self {
        Self { key, value }
    }

    /// The key.
    pub fn key(&self) -> &OptionKey {
        &self.key
    }

    /// The value.
    pub fn value(&self) -> &OptionValue {
        &self.value
    }

    /// The two halves.
    pub fn into_parts(self) -> (OptionKey, OptionValue) {
        (self.key, self.value)
    }
}

impl fmt::Display for TunnelOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

impl FromStr for TunnelOption {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        let (key, value) = s.split_once('=').ok_or(ValueError::NotAPair)?;
        Ok(Self {
            key: key.parse()?,
            value: value.parse()?,
        })
    }
}

impl TryFrom<&str> for TunnelOption {
    type Error = ValueError;

    fn try_from(s: &str) -> Result<Self, ValueError> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nickname_rules() {
        for ok in [
            "a",
            "web",
            "my_tunnel-1",
            "Ünïcødé",
            "a.b:c/d",
            "x=y",
            &"n".repeat(255),
        ] {
            assert_eq!(Nickname::new(ok).unwrap().as_str(), ok, "{ok:?}");
        }
        let cases: [(&str, ValueError); 7] = [
            (
                "",
                ValueError::Empty {
                    kind: ValueKind::Nickname,
                },
            ),
            (
                "victim x",
                ValueError::Whitespace {
                    kind: ValueKind::Nickname,
                },
            ),
            (
                "a\tb",
                ValueError::Control {
                    kind: ValueKind::Nickname,
                },
            ),
            (
                "z\nzap",
                ValueError::Control {
                    kind: ValueKind::Nickname,
                },
            ),
            (
                "z\r",
                ValueError::Control {
                    kind: ValueKind::Nickname,
                },
            ),
            (
                "a\u{a0}b",
                ValueError::Whitespace {
                    kind: ValueKind::Nickname,
                },
            ),
            (
                "a\u{7f}",
                ValueError::Control {
                    kind: ValueKind::Nickname,
                },
            ),
        ];
        for (bad, err) in cases {
            assert_eq!(Nickname::new(bad).unwrap_err(), err, "{bad:?}");
        }
        assert_eq!(
            Nickname::new("n".repeat(256)).unwrap_err().to_string(),
            "nickname is longer than 255 bytes"
        );
        // the cap counts bytes, not characters
        assert!(Nickname::new("é".repeat(128)).is_err());
        assert!(Nickname::new("é".repeat(127)).is_ok());
    }

    #[test]
    fn host_rules() {
        for ok in [
            "localhost",
            "127.0.0.1",
            "::1",
            "[::1]",
            "example.org",
            &"h".repeat(255),
        ] {
            assert_eq!(ok.parse::<Host>().unwrap().to_string(), ok);
        }
        for bad in ["", "a b", "a\nb", &"h".repeat(256)] {
            assert!(bad.parse::<Host>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn option_rules() {
        let opt: TunnelOption = "inbound.length=1".parse().unwrap();
        assert_eq!(opt.to_string(), "inbound.length=1");
        assert_eq!(opt.key(), &"inbound.length");
        assert!(OptionValue::new("v".repeat(MAX_OPTION_VALUE_LEN)).is_ok());
        assert_eq!(
            OptionValue::new("v".repeat(MAX_OPTION_VALUE_LEN + 1)).unwrap_err(),
            ValueError::TooLong {
                kind: ValueKind::OptionValue,
                limit: 4096
            }
        );
        assert_eq!(
            "k".repeat(256)
                .parse::<OptionKey>()
                .unwrap_err()
                .to_string(),
            "option key is longer than 255 bytes"
        );
        for (bad, msg) in [
            ("novalue", "option is not of the form key=value"),
            ("=b", "option key is empty"),
            ("a=", "option value is empty"),
            ("a=b=c", "option value contains '='"),
            ("a b=c", "option key contains whitespace"),
            ("a=b\nclear", "option value contains a control character"),
        ] {
            assert_eq!(
                bad.parse::<TunnelOption>().unwrap_err().to_string(),
                msg,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn port_rules() {
        assert_eq!("1".parse::<Port>().unwrap().get(), 1);
        assert_eq!("65535".parse::<Port>().unwrap().get(), 65535);
        assert_eq!("0080".parse::<Port>().unwrap().to_string(), "80");
        assert_eq!(Port::try_from(0u16), Err(ValueError::PortOutOfRange));
        assert_eq!("0".parse::<Port>(), Err(ValueError::PortOutOfRange));
        assert_eq!("65536".parse::<Port>(), Err(ValueError::PortOutOfRange));
        for bad in ["", "80x", "-1", "+80", " 80", "８０"] {
            assert_eq!(bad.parse::<Port>(), Err(ValueError::NotANumber), "{bad:?}");
        }
    }

    #[test]
    fn limit_formula() {
        assert_eq!(max_properties(0), MAX_OPTIONS_PER_TUNNEL + NICKNAME_OPTIONS);
    }
}
