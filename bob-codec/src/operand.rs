//! A command operand after validation: [`Operand`].
//!
//! The parser never refuses a line for a bad operand (what a missing or malformed operand
//! means is the server's call, and the reply differs per command), so an operand is one of
//! three things: not given, a valid value of its type, or the token as received together
//! with the reason it does not validate. Encoding writes the value's `Display` or the raw
//! token back, so `Command::parse(&c.encode(), d) == Ok(c)` holds for every parsed command.
//!
//! ```
//! use bob_codec::types::{Nickname, ValueError};
//! use bob_codec::{Command, Dialect, Operand};
//!
//! let Command::SetNick(Operand::Valid(nick)) = Command::parse("setnick web", Dialect::Java).unwrap()
//! else { unreachable!() };
//! assert_eq!(nick.as_str(), "web");
//!
//! let long = format!("setnick {}", "x".repeat(300));
//! let Command::SetNick(Operand::Invalid { raw, error }) = Command::parse(&long, Dialect::Java).unwrap()
//! else { unreachable!() };
//! assert_eq!(raw.len(), 300);
//! assert_eq!(error.to_string(), "nickname is longer than 255 bytes");
//! assert_eq!(Command::parse("setnick", Dialect::Java), Ok(Command::SetNick(Operand::Missing)));
//! ```

use crate::Dialect;
use crate::command::parse_option_pairs;
use crate::types::{OptionKey, OptionValue, TunnelOption, ValueError};

/// One operand of a [`crate::Command`]: missing, valid, or invalid with its raw text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand<T> {
    /// The line has no such token.
    Missing,
    /// The token validated.
    Valid(T),
    /// The token did not validate; `raw` is the token as received (no whitespace, never
    /// empty when parsed from a line), `error` says why.
    Invalid {
        /// the token as received
        raw: String,
        /// why it does not validate
        error: ValueError,
    },
}

impl<T> Operand<T> {
    /// Validates an optional token with `parse`.
    pub fn parse_with(
        token: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, ValueError>,
    ) -> Self {
        match token {
            None => Self::Missing,
            Some(raw) => match parse(raw) {
                Ok(value) => Self::Valid(value),
                Err(error) => Self::Invalid {
                    raw: raw.to_owned(),
                    error,
                },
            },
        }
    }

    /// The valid value, if any.
    pub fn valid(&self) -> Option<&T> {
        match self {
            Self::Valid(value) => Some(value),
            Self::Missing | Self::Invalid { .. } => None,
        }
    }

    /// The valid value, if any, by value.
    pub fn into_valid(self) -> Option<T> {
        match self {
            Self::Valid(value) => Some(value),
            Self::Missing | Self::Invalid { .. } => None,
        }
    }

    /// Whether the operand was not given.
    pub fn is_missing(&self) -> bool {
        matches!(self, Self::Missing)
    }
}

impl<T> Operand<T>
where
    T: for<'a> TryFrom<&'a str, Error = ValueError>,
{
    /// Validates an optional token with `T`'s `TryFrom<&str>`.
    ///
    /// ```
    /// use bob_codec::{Operand, Port};
    /// assert_eq!(Operand::<Port>::from_token(Some("0080")), Operand::Valid(Port::new(80).unwrap()));
    /// assert!(matches!(Operand::<Port>::from_token(Some("80x")), Operand::Invalid { .. }));
    /// assert_eq!(Operand::<Port>::from_token(None), Operand::Missing);
    /// ```
    pub fn from_token(token: Option<&str>) -> Self {
        Self::parse_with(token, |raw| T::try_from(raw))
    }
}

impl<T: std::fmt::Display> Operand<T> {
    /// The operand as it goes on the wire: the value's `Display`, the raw token, or
    /// `None` when missing.
    pub fn to_wire(&self) -> Option<String> {
        match self {
            Self::Missing => None,
            Self::Valid(value) => Some(value.to_string()),
            Self::Invalid { raw, .. } => Some(raw.clone()),
        }
    }
}

impl<T> From<T> for Operand<T> {
    fn from(value: T) -> Self {
        Self::Valid(value)
    }
}

impl Operand<Vec<TunnelOption>> {
    /// Validates the operand tokens of `option`, all or nothing: no token is
    /// [`Operand::Missing`]; a token that is not a `key=value` pair by Java's rules
    /// (see [`parse_option_pairs`]; `a==b` is `a=b`) makes the whole operand invalid with
    /// [`ValueError::NotAPair`], checked for every token before any key or value is
    /// validated; then the first key or value that breaks its type's rules is the error.
    /// An invalid operand keeps its tokens joined by single spaces.
    ///
    /// ```
    /// use bob_codec::{Operand, ValueError};
    /// let ok = Operand::options(&["inbound.length=1", "b==2"]);
    /// assert_eq!(ok.valid().map(Vec::len), Some(2));
    /// assert_eq!(
    ///     Operand::options(&["a=1", "b"]),
    ///     Operand::Invalid { raw: "a=1 b".into(), error: ValueError::NotAPair }
    /// );
    /// assert_eq!(Operand::options(&[] as &[&str]), Operand::Missing);
    /// ```
    pub fn options<S: AsRef<str>>(tokens: &[S]) -> Self {
        if tokens.is_empty() {
            return Self::Missing;
        }
        let owned: Vec<String> = tokens.iter().map(|t| t.as_ref().to_owned()).collect();
        let checked = parse_option_pairs(&owned, Dialect::Java)
            .map_err(|_| ValueError::NotAPair)
            .and_then(|pairs| {
                pairs
                    .into_iter()
                    .map(|(key, value)| {
                        Ok(TunnelOption::new(
                            OptionKey::new(key)?,
                            OptionValue::new(value)?,
                        ))
                    })
                    .collect::<Result<Vec<_>, ValueError>>()
            });
        match checked {
            Ok(options) => Self::Valid(options),
            Err(error) => Self::Invalid {
                raw: owned.join(" "),
                error,
            },
        }
    }
}
