//! SAMv3 wire format: command lines we send and typed replies we read.
//!
//! A SAM message is one line: two upper-case words (`SESSION STATUS`) followed by
//! `KEY=VALUE` pairs separated by single spaces. Values may be double-quoted when they
//! contain spaces; SAM 3.2 adds backslash escapes inside quotes (`\"`, `\\`). Nothing
//! here does I/O; `conn` reads the lines and hands them to [`SamReply::parse`].

use std::fmt;
use std::time::Duration;

use crate::backend::CoreError;

/// Longest reply line accepted from a router, in bytes (without the `\n`).
///
/// The longest legitimate replies carry a private-key blob (`SESSION STATUS ...
/// DESTINATION=`, `DEST REPLY`), a few KiB at most even for RSA keys.
pub const MAX_LINE: usize = 16 * 1024;

/// The `RESULT=` code of a router reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultCode {
    /// `OK`
    Ok,
    /// `CANT_REACH_PEER`: the peer's LeaseSet is unknown or it did not answer.
    CantReachPeer,
    /// `DUPLICATED_DEST`: another session already uses this destination.
    DuplicatedDest,
    /// `DUPLICATED_ID`: another session already uses this session id.
    DuplicatedId,
    /// `I2P_ERROR`: a generic router failure, details in `MESSAGE=`.
    I2pError,
    /// `INVALID_KEY`: a key, destination or name the router could not parse.
    InvalidKey,
    /// `INVALID_ID`: no session with this id.
    InvalidId,
    /// `KEY_NOT_FOUND`: `NAMING LOOKUP` found nothing.
    KeyNotFound,
    /// `PEER_NOT_FOUND`: the peer is unknown.
    PeerNotFound,
    /// `TIMEOUT`: the router gave up waiting (usually for the peer).
    Timeout,
    /// `NOVERSION`: no common SAM version in `HELLO`.
    NoVersion,
    /// `ALREADY_ACCEPTING`: SAM 3.1 routers allow a single `STREAM ACCEPT` at a time.
    AlreadyAccepting,
    /// A code this client does not know, verbatim.
    Other(String),
}

impl ResultCode {
    /// Maps the text after `RESULT=` to a code.
    pub fn from_wire(s: &str) -> Self {
        match s {
            "OK" => Self::Ok,
            "CANT_REACH_PEER" => Self::CantReachPeer,
            // emissary 0.4.0 spells it DUPLICATE_DEST
            "DUPLICATED_DEST" | "DUPLICATE_DEST" => Self::DuplicatedDest,
            "DUPLICATED_ID" => Self::DuplicatedId,
            "I2P_ERROR" => Self::I2pError,
            "INVALID_KEY" => Self::InvalidKey,
            "INVALID_ID" => Self::InvalidId,
            "KEY_NOT_FOUND" => Self::KeyNotFound,
            "PEER_NOT_FOUND" => Self::PeerNotFound,
            "TIMEOUT" => Self::Timeout,
            "NOVERSION" => Self::NoVersion,
            "ALREADY_ACCEPTING" => Self::AlreadyAccepting,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The wire spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Ok => "OK",
            Self::CantReachPeer => "CANT_REACH_PEER",
            Self::DuplicatedDest => "DUPLICATED_DEST",
            Self::DuplicatedId => "DUPLICATED_ID",
            Self::I2pError => "I2P_ERROR",
            Self::InvalidKey => "INVALID_KEY",
            Self::InvalidId => "INVALID_ID",
            Self::KeyNotFound => "KEY_NOT_FOUND",
            Self::PeerNotFound => "PEER_NOT_FOUND",
            Self::Timeout => "TIMEOUT",
            Self::NoVersion => "NOVERSION",
            Self::AlreadyAccepting => "ALREADY_ACCEPTING",
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for ResultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong talking SAM; converted to [`CoreError`] at the seam.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SamError {
    /// The router answered with a `RESULT=` other than `OK`.
    #[error("{code}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Refused {
        /// the result code
        code: ResultCode,
        /// the router's `MESSAGE=`, if any
        message: Option<String>,
    },
    /// A reply line that is not SAM (bad syntax, bad UTF-8, missing field).
    #[error("malformed reply from router: {0}")]
    Malformed(String),
    /// A reply line longer than [`MAX_LINE`].
    #[error("reply from router longer than {MAX_LINE} bytes")]
    LineTooLong,
    /// A well-formed reply of the wrong kind.
    #[error("unexpected reply from router: expected {expected}, got {got:?}")]
    Unexpected {
        /// the two words we waited for
        expected: &'static str,
        /// the line we got (shortened)
        got: String,
    },
    /// A command we refuse to send (a value with a line break, a bad option key).
    #[error("{0}")]
    BadCommand(String),
    /// The router could not be reached or closed the connection.
    #[error("{0}")]
    Unavailable(String),
    /// The router did not answer in time.
    #[error("router did not answer within {0:?}")]
    Timeout(Duration),
}

impl SamError {
    /// The `RESULT=` code, when the router refused.
    pub fn code(&self) -> Option<&ResultCode> {
        match self {
            Self::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

impl From<SamError> for CoreError {
    fn from(e: SamError) -> Self {
        match &e {
            SamError::Refused { code, .. } => match code {
                ResultCode::DuplicatedDest => Self::DuplicateDestination,
                ResultCode::KeyNotFound => Self::NotFound,
                ResultCode::CantReachPeer | ResultCode::PeerNotFound => {
                    Self::Unreachable(e.to_string())
                }
                _ => Self::Router(e.to_string()),
            },
            SamError::Malformed(_)
            | SamError::LineTooLong
            | SamError::Unexpected { .. }
            | SamError::BadCommand(_) => Self::Router(e.to_string()),
            SamError::Unavailable(_) => Self::RouterUnavailable(e.to_string()),
            SamError::Timeout(_) => Self::Timeout,
        }
    }
}

/// One parsed reply line: `TOPIC KIND KEY=VALUE ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamReply {
    /// first word, e.g. `SESSION`
    pub topic: String,
    /// second word, e.g. `STATUS`
    pub kind: String,
    /// the pairs in order; a bare word without `=` has an empty value
    pub pairs: Vec<(String, String)>,
}

impl SamReply {
    /// Parses one reply line (without its line terminator).
    ///
    /// # Errors
    /// [`SamError::Malformed`] for an empty line, a missing second word, lower-case or
    /// non-alphabetic command words, an unterminated quote or a control character.
    pub fn parse(line: &str) -> Result<Self, SamError> {
        if line.len() > MAX_LINE {
            return Err(SamError::LineTooLong);
        }
        if let Some(c) = line.chars().find(|c| c.is_control() && *c != '\t') {
            return Err(SamError::Malformed(format!(
                "control character {:?} in {:?}",
                c,
                shorten(line)
            )));
        }
        let tokens = tokenize(line)?;
        let mut it = tokens.into_iter();
        let word = |t: Option<Token>, what: &str| -> Result<String, SamError> {
            match t {
                Some(Token { key, value: None }) if is_command_word(&key) => Ok(key),
                _ => Err(SamError::Malformed(format!(
                    "missing {what} in {:?}",
                    shorten(line)
                ))),
            }
        };
        let topic = word(it.next(), "command word")?;
        let kind = word(it.next(), "second command word")?;
        let pairs = it
            .map(|t| (t.key, t.value.unwrap_or_default()))
            .collect::<Vec<_>>();
        Ok(Self { topic, kind, pairs })
    }

    /// The value of the first pair named `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Checks that this reply is `topic kind`.
    ///
    /// # Errors
    /// [`SamError::Unexpected`] naming both.
    pub fn expect(&self, expected: &'static str) -> Result<(), SamError> {
        let (topic, kind) = expected.split_once(' ').unwrap_or((expected, ""));
        if self.topic == topic && self.kind == kind {
            Ok(())
        } else {
            Err(SamError::Unexpected {
                expected,
                got: shorten(&format!("{} {}", self.topic, self.kind)),
            })
        }
    }

    /// The reply's result: `Ok(())` for `RESULT=OK`.
    ///
    /// # Errors
    /// [`SamError::Refused`] with the code and `MESSAGE=` for any other result;
    /// [`SamError::Malformed`] when `RESULT=` is missing.
    pub fn result(&self) -> Result<(), SamError> {
        let Some(code) = self.get("RESULT") else {
            return Err(SamError::Malformed(format!(
                "{} {} without RESULT=",
                self.topic, self.kind
            )));
        };
        match ResultCode::from_wire(code) {
            ResultCode::Ok => Ok(()),
            code => Err(SamError::Refused {
                code,
                message: self.get("MESSAGE").filter(|m| !m.is_empty()).map(shorten),
            }),
        }
    }

    /// The value of `key`, required.
    ///
    /// # Errors
    /// [`SamError::Malformed`] when absent.
    pub fn require(&self, key: &str) -> Result<&str, SamError> {
        self.get(key).ok_or_else(|| {
            SamError::Malformed(format!("{} {} without {key}=", self.topic, self.kind))
        })
    }
}

/// Parses the line a router sends first on an accepted stream:
/// `<base64 destination>[ FROM_PORT=n TO_PORT=n]`. Returns the destination text.
///
/// # Errors
/// [`SamError::Malformed`] when the line is empty or the first word is not base64.
pub fn peer_line(line: &str) -> Result<&str, SamError> {
    // only trailing white space is tolerated: a line that starts with any is not SAM
    let dest = line.split(' ').next().unwrap_or_default().trim_end();
    let ok = !dest.is_empty()
        && dest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'~' || b == b'=');
    if ok {
        Ok(dest)
    } else {
        Err(SamError::Malformed(format!(
            "accepted stream did not start with a destination: {:?}",
            shorten(line)
        )))
    }
}

/// Builds a command line (without `\n`): `words` verbatim, then `KEY=VALUE` pairs,
/// values quoted when they contain spaces, tabs, quotes or backslashes.
///
/// # Errors
/// [`SamError::BadCommand`] when a key is empty or holds `=`, a space or a quote, or
/// when a key or value holds a line break or another control character.
pub fn command<'a>(
    words: &str,
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<String, SamError> {
    let mut line = String::from(words);
    for (key, value) in pairs {
        if key.is_empty()
            || key
                .chars()
                .any(|c| c == '=' || c == '"' || c.is_whitespace() || c.is_control())
        {
            return Err(SamError::BadCommand(format!(
                "invalid option name {:?}",
                shorten(key)
            )));
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(SamError::BadCommand(format!(
                "invalid value for option {key}: control character"
            )));
        }
        line.push(' ');
        line.push_str(key);
        line.push('=');
        if value.is_empty() || value.chars().any(|c| matches!(c, ' ' | '\t' | '"' | '\\')) {
            line.push('"');
            for c in value.chars() {
                if matches!(c, '"' | '\\') {
                    line.push('\\');
                }
                line.push(c);
            }
            line.push('"');
        } else {
            line.push_str(value);
        }
    }
    Ok(line)
}

/// Shortens text for error messages (router replies can be kilobytes of base64).
pub(crate) fn shorten(s: &str) -> String {
    const KEEP: usize = 120;
    if s.len() <= KEEP {
        return s.to_owned();
    }
    let mut end = KEEP;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

struct Token {
    key: String,
    value: Option<String>,
}

fn is_command_word(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
}

/// Splits on spaces; `KEY="quoted value"` keeps its spaces, `\"` and `\\` unescape.
fn tokenize(line: &str) -> Result<Vec<Token>, SamError> {
    let mut tokens = Vec::new();
    let mut chars = line.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| *c == ' ' || *c == '\t').is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        let mut key = String::new();
        let mut value = None;
        while let Some((_, c)) = chars.next_if(|(_, c)| *c != ' ' && *c != '\t') {
            if c == '=' {
                value = Some(read_value(&mut chars, line, start)?);
                break;
            }
            key.push(c);
        }
        if key.is_empty() {
            return Err(SamError::Malformed(format!(
                "empty key in {:?}",
                shorten(line)
            )));
        }
        tokens.push(Token { key, value });
    }
    if tokens.is_empty() {
        return Err(SamError::Malformed("empty reply line".into()));
    }
    Ok(tokens)
}

fn read_value(
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
    line: &str,
    start: usize,
) -> Result<String, SamError> {
    let mut value = String::new();
    if chars.next_if(|(_, c)| *c == '"').is_none() {
        while let Some((_, c)) = chars.next_if(|(_, c)| *c != ' ' && *c != '\t') {
            value.push(c);
        }
        return Ok(value);
    }
    loop {
        match chars.next() {
            None => {
                return Err(SamError::Malformed(format!(
                    "unterminated quote in {:?}",
                    shorten(&line[start..])
                )));
            }
            Some((_, '"')) => break,
            Some((_, '\\')) => match chars.next() {
                Some((_, c)) => value.push(c),
                None => {
                    return Err(SamError::Malformed(format!(
                        "unterminated quote in {:?}",
                        shorten(&line[start..])
                    )));
                }
            },
            Some((_, c)) => value.push(c),
        }
    }
    // a closing quote must end the token
    if chars.next_if(|(_, c)| *c != ' ' && *c != '\t').is_some() {
        return Err(SamError::Malformed(format!(
            "text after closing quote in {:?}",
            shorten(&line[start..])
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_reply() {
        let r = SamReply::parse("HELLO REPLY RESULT=OK VERSION=3.1").unwrap();
        assert_eq!(r.topic, "HELLO");
        assert_eq!(r.kind, "REPLY");
        assert_eq!(r.get("VERSION"), Some("3.1"));
        r.expect("HELLO REPLY").unwrap();
        r.result().unwrap();
        assert!(r.expect("SESSION STATUS").is_err());
    }

    #[test]
    fn parses_quoted_message_with_escapes() {
        let r = SamReply::parse(
            r#"SESSION STATUS RESULT=I2P_ERROR MESSAGE="bad \"thing\" here \\ ok" X=1"#,
        )
        .unwrap();
        assert_eq!(r.get("MESSAGE"), Some(r#"bad "thing" here \ ok"#));
        assert_eq!(r.get("X"), Some("1"));
        let e = r.result().unwrap_err();
        assert_eq!(e.code(), Some(&ResultCode::I2pError));
        assert_eq!(e.to_string(), r#"I2P_ERROR: bad "thing" here \ ok"#);
    }

    #[test]
    fn base64_values_keep_their_equals_signs() {
        let r = SamReply::parse("NAMING REPLY RESULT=OK NAME=ME VALUE=abc~-==").unwrap();
        assert_eq!(r.get("VALUE"), Some("abc~-=="));
    }

    #[test]
    fn bare_words_and_extra_spaces() {
        let r = SamReply::parse("STREAM STATUS  RESULT=OK  FLAG").unwrap();
        assert_eq!(r.get("FLAG"), Some(""));
        r.result().unwrap();
    }

    #[test]
    fn unknown_and_missing_results() {
        let e = SamReply::parse("STREAM STATUS RESULT=WHATEVER")
            .unwrap()
            .result()
            .unwrap_err();
        assert_eq!(e.code(), Some(&ResultCode::Other("WHATEVER".into())));
        assert!(matches!(CoreError::from(e), CoreError::Router(m) if m.contains("WHATEVER")));
        let e = SamReply::parse("STREAM STATUS MESSAGE=x")
            .unwrap()
            .result()
            .unwrap_err();
        assert!(matches!(e, SamError::Malformed(_)));
    }

    #[test]
    fn malformed_lines() {
        for bad in [
            "",
            "   ",
            "hello reply RESULT=OK",
            "HELLO",
            "HELLO RESULT=OK",
            "HELLO REPLY MESSAGE=\"open",
            "HELLO REPLY MESSAGE=\"x\"y",
            "HELLO REPLY =x",
            "HELLO REPLY A=\u{1}",
            "\u{0}\u{0}garbage",
        ] {
            assert!(
                matches!(SamReply::parse(bad), Err(SamError::Malformed(_))),
                "{bad:?}"
            );
        }
        assert_eq!(
            SamReply::parse(&"A".repeat(MAX_LINE + 1)),
            Err(SamError::LineTooLong)
        );
    }

    #[test]
    fn error_mapping() {
        let refused = |code: &str| SamError::Refused {
            code: ResultCode::from_wire(code),
            message: Some("m".into()),
        };
        assert_eq!(
            CoreError::from(refused("DUPLICATED_DEST")),
            CoreError::DuplicateDestination
        );
        assert_eq!(
            CoreError::from(refused("KEY_NOT_FOUND")),
            CoreError::NotFound
        );
        assert_eq!(
            CoreError::from(refused("CANT_REACH_PEER")),
            CoreError::Unreachable("CANT_REACH_PEER: m".into())
        );
        assert_eq!(
            CoreError::from(refused("INVALID_KEY")),
            CoreError::Router("INVALID_KEY: m".into())
        );
        assert!(matches!(
            CoreError::from(SamError::Unavailable("x".into())),
            CoreError::RouterUnavailable(_)
        ));
        assert_eq!(
            CoreError::from(SamError::Timeout(Duration::from_secs(3))),
            CoreError::Timeout
        );
    }

    #[test]
    fn peer_lines() {
        assert_eq!(
            peer_line("AAAA~-== FROM_PORT=0 TO_PORT=0").unwrap(),
            "AAAA~-=="
        );
        assert_eq!(peer_line("AAAA").unwrap(), "AAAA");
        assert!(peer_line("").is_err());
        assert!(peer_line("not!base64 x").is_err());
        assert!(peer_line(" AAAA").is_err());
        // found by fuzzing: leading white space other than a space was trimmed away
        assert!(peer_line("\tAAAA").is_err());
        assert!(peer_line("\u{c}AAAA FROM_PORT=0").is_err());
        assert_eq!(peer_line("AAAA\t").unwrap(), "AAAA");
    }

    #[test]
    fn commands_quote_and_reject() {
        assert_eq!(
            command("STREAM CONNECT", [("ID", "a"), ("SILENT", "false")]).unwrap(),
            "STREAM CONNECT ID=a SILENT=false"
        );
        assert_eq!(
            command("X Y", [("k", "a b\"c\\")]).unwrap(),
            r#"X Y k="a b\"c\\""#
        );
        assert_eq!(command("X Y", [("k", "")]).unwrap(), r#"X Y k="""#);
        assert!(command("X Y", [("k", "a\nb")]).is_err());
        assert!(command("X Y", [("k=", "a")]).is_err());
        assert!(command("X Y", [("", "a")]).is_err());
        assert!(command("X Y", [("a b", "a")]).is_err());
        // what we send, we parse back
        let line = command("A B", [("k", "x \"y\" \\z")]).unwrap();
        assert_eq!(
            SamReply::parse(&line).unwrap().get("k"),
            Some("x \"y\" \\z")
        );
    }
}
