//! Reply lines, the greeting and the tunnel status record.
//!
//! A server builds a [`Reply`] and writes [`Reply::encode`]; a client reads a line and calls
//! [`Reply::decode`]. The ten-field record shared by `list`, `status` and `show` is
//! [`TunnelStatus`]; [`TunnelStatus::from_reply`] reads it out of any of those replies.

use crate::error::{CommandError, ReplyError};
use nom::Parser;
use nom::bytes::complete::{tag, take_till};
use nom::sequence::preceded;

/// Sent on accept, in one write: `BOB 00.00.10\nOK\n`.
pub const GREETING: &[u8] = b"BOB 00.00.10\nOK\n";

/// Longest piece of foreign input quoted inside a [`ReplyError`] message.
const QUOTE_LIMIT: usize = 80;

/// One reply line.
///
/// ```text
/// OK[ <text>]\n | ERROR <text>\n | DATA <text>\n
/// ```
/// `Ok(None)` encodes as `OK\n`, `Ok(Some(""))` as `OK \n` (Java's `visit`).
///
/// A reply is always exactly one line: the encoder writes any `\r` or `\n` inside the text
/// as a space, and the decoder refuses lines holding them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `OK` with optional text
    Ok(Option<String>),
    /// `ERROR <text>`
    Error(String),
    /// `DATA <text>`
    Data(String),
}

impl Reply {
    /// `OK <text>`: a convenience for `Reply::Ok(Some(text.into()))`.
    pub fn ok(text: impl Into<String>) -> Self {
        Self::Ok(Some(text.into()))
    }

    /// `ERROR <text>`: a convenience for `Reply::Error(text.into())`.
    pub fn error(text: impl Into<String>) -> Self {
        Self::Error(text.into())
    }

    /// The reply as bytes, `\n`-terminated.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoded reply to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let (head, text) = self.parts();
        out.reserve(head.len() + text.len() + 1);
        out.extend_from_slice(head.as_bytes());
        out.extend(one_line(text));
        out.push(b'\n');
    }

    /// The prefix (with its space, if any) and the text.
    pub(crate) fn parts(&self) -> (&'static str, &str) {
        match self {
            Self::Ok(None) => ("OK", ""),
            Self::Ok(Some(text)) => ("OK ", text),
            Self::Error(text) => ("ERROR ", text),
            Self::Data(text) => ("DATA ", text),
        }
    }

    /// Decodes one reply line (without `\n`; a trailing `\r` is stripped).
    ///
    /// The prefixes are case-sensitive and need their space: `OK`, `OK <text>`,
    /// `ERROR <text>`, `DATA <text>` (text may be empty).
    ///
    /// # Errors
    /// [`ReplyError::Malformed`] for anything but `OK…`, `ERROR …`, `DATA …`, and for a
    /// line that still holds a `\r` or `\n` after the trailing `\r` is stripped.
    pub fn decode(line: &str) -> Result<Self, ReplyError> {
        let body = line.strip_suffix('\r').unwrap_or(line);
        if body.contains(['\r', '\n']) {
            return Err(ReplyError::Malformed(quote(line)));
        }
        if body == "OK" {
            Ok(Self::Ok(None))
        } else if let Some(text) = body.strip_prefix("OK ") {
            Ok(Self::Ok(Some(text.to_owned())))
        } else if let Some(text) = body.strip_prefix("ERROR ") {
            Ok(Self::Error(text.to_owned()))
        } else if let Some(text) = body.strip_prefix("DATA ") {
            Ok(Self::Data(text.to_owned()))
        } else {
            Err(ReplyError::Malformed(quote(line)))
        }
    }

    /// The text after the prefix (`None` for a bare `OK`).
    pub fn text(&self) -> Option<&str> {
        match self {
            Self::Ok(text) => text.as_deref(),
            Self::Error(text) | Self::Data(text) => Some(text),
        }
    }

    /// Whether this is an `OK` reply.
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Ok(_))
    }
}

impl From<CommandError> for Reply {
    /// `ERROR <error text in its dialect>`.
    fn from(err: CommandError) -> Self {
        Self::Error(err.to_string())
    }
}

impl From<&CommandError> for Reply {
    /// `ERROR <error text in its dialect>`.
    fn from(err: &CommandError) -> Self {
        Self::Error(err.to_string())
    }
}

/// The ten-field tunnel record of `list` (`DATA …`), `status` (`OK DATA …`) and `show` (`OK …`).
///
/// ```text
/// NICKNAME: <nick> STARTING: <bool> RUNNING: <bool> STOPPING: <bool> KEYS: <bool> QUIET: <bool> INPORT: <port|not_set> INHOST: <host> OUTPORT: <port|not_set> OUTHOST: <host>
/// ```
/// `Display` writes exactly this (no prefix, no newline); `FromStr` reads it back
/// (OUTHOST is the rest of the line).
///
/// Reading rules: the record must start with `NICKNAME: ` (strip `DATA `, `OK DATA ` or
/// `OK ` first, or use [`TunnelStatus::from_reply`]); every field but OUTHOST ends at the
/// next space, so values may be empty (`NICKNAME:  STARTING: …`) but hold no spaces;
/// booleans are `true`/`false`; ports are decimal or `not_set`.
///
/// Tunnels of other kinds than BOB's TCP tunnel append fields after OUTHOST
/// ([`TunnelStatus::extra`]): i2pd (2.57+) ` PROXYTYPE: <t> PROXYSTART: <b>`, bob-server
/// ` PROXYTYPE: SOCKS|HTTPPROXY` for proxy tunnels and ` TUNNELTYPE: UDP UDPDEST: <d>`
/// for UDP tunnels (plain tunnels never get any, so their lines stay Java's). When the
/// rest of the line is `<host>` followed only by such ` KEY: value` fields, with
/// [`EXTRA_STATUS_KEYS`] keys and no spaces inside the values, OUTHOST is `<host>` and
/// the fields go to `extra`. Any other rest of line is OUTHOST verbatim, as txi2p
/// reads it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TunnelStatus {
    /// tunnel name
    pub nickname: String,
    /// starting flag
    pub starting: bool,
    /// running flag
    pub running: bool,
    /// stopping flag
    pub stopping: bool,
    /// whether keys are set
    pub keys: bool,
    /// quiet flag
    pub quiet: bool,
    /// inbound port, `None` prints `not_set`
    pub inport: Option<u16>,
    /// inbound host, verbatim
    pub inhost: String,
    /// outbound port, `None` prints `not_set`
    pub outport: Option<u16>,
    /// outbound host, verbatim
    pub outhost: String,
    /// fields after OUTHOST, `(KEY, value)` in order (empty for BOB's TCP tunnels)
    pub extra: Vec<(String, String)>,
}

/// The keys [`TunnelStatus`] reads as extra fields after OUTHOST.
pub const EXTRA_STATUS_KEYS: &[&str] = &["PROXYTYPE", "PROXYSTART", "TUNNELTYPE", "UDPDEST"];

impl TunnelStatus {
    /// The `list` line: `DATA <record>`.
    pub fn to_list_reply(&self) -> Reply {
        Reply::Data(self.to_string())
    }

    /// The `status` reply: `OK DATA <record>`.
    pub fn to_status_reply(&self) -> Reply {
        Reply::Ok(Some(format!("DATA {self}")))
    }

    /// The Java `show` reply: `OK <record>`.
    pub fn to_show_reply(&self) -> Reply {
        Reply::Ok(Some(self.to_string()))
    }

    /// Reads the record out of a `list` (`DATA …`), `status` (`OK DATA …`) or `show`
    /// (`OK …`) reply.
    ///
    /// # Errors
    /// [`ReplyError::BadStatus`] for an `ERROR` reply, a bare `OK`, or a malformed record.
    pub fn from_reply(reply: &Reply) -> Result<Self, ReplyError> {
        match reply {
            Reply::Data(text) => text.parse(),
            Reply::Ok(Some(text)) => text.strip_prefix("DATA ").unwrap_or(text).parse(),
            Reply::Ok(None) | Reply::Error(_) => Err(ReplyError::BadStatus(format!(
                "not a status reply: {}",
                quote(&String::from_utf8_lossy(&reply.encode()))
            ))),
        }
    }
}

impl std::fmt::Display for TunnelStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "NICKNAME: {} STARTING: {} RUNNING: {} STOPPING: {} KEYS: {} QUIET: {} INPORT: {} INHOST: {} OUTPORT: {} OUTHOST: {}",
            self.nickname,
            self.starting,
            self.running,
            self.stopping,
            self.keys,
            self.quiet,
            PortField(self.inport),
            self.inhost,
            PortField(self.outport),
            self.outhost,
        )?;
        for (key, value) in &self.extra {
            write!(f, " {key}: {value}")?;
        }
        Ok(())
    }
}

/// Prints a port or `not_set`.
struct PortField(Option<u16>);

impl std::fmt::Display for PortField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(port) => write!(f, "{port}"),
            None => f.write_str("not_set"),
        }
    }
}

impl std::str::FromStr for TunnelStatus {
    type Err = ReplyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (rest, nickname) = field(s, "NICKNAME: ", "NICKNAME")?;
        let (rest, starting) = bool_field(rest, " STARTING: ", "STARTING")?;
        let (rest, running) = bool_field(rest, " RUNNING: ", "RUNNING")?;
        let (rest, stopping) = bool_field(rest, " STOPPING: ", "STOPPING")?;
        let (rest, keys) = bool_field(rest, " KEYS: ", "KEYS")?;
        let (rest, quiet) = bool_field(rest, " QUIET: ", "QUIET")?;
        let (rest, inport) = port_field(rest, " INPORT: ", "INPORT")?;
        let (rest, inhost) = field(rest, " INHOST: ", "INHOST")?;
        let (rest, outport) = port_field(rest, " OUTPORT: ", "OUTPORT")?;
        let outhost = rest
            .strip_prefix(" OUTHOST: ")
            .ok_or_else(|| missing("OUTHOST", rest))?;
        let (outhost, extra) = split_extra_fields(outhost);
        Ok(Self {
            nickname: nickname.to_owned(),
            starting,
            running,
            stopping,
            keys,
            quiet,
            inport,
            inhost: inhost.to_owned(),
            outport,
            outhost: outhost.to_owned(),
            extra,
        })
    }
}

/// `<key><value>` where the value runs up to the next space (nom: `tag` then `take_till`).
fn field<'a>(
    input: &'a str,
    key: &'static str,
    name: &'static str,
) -> Result<(&'a str, &'a str), ReplyError> {
    preceded(tag(key), take_till(|c| c == ' '))
        .parse(input)
        .map_err(|_: nom::Err<nom::error::Error<&str>>| missing(name, input))
}

fn bool_field<'a>(
    input: &'a str,
    key: &'static str,
    name: &'static str,
) -> Result<(&'a str, bool), ReplyError> {
    let (rest, value) = field(input, key, name)?;
    match value {
        "true" => Ok((rest, true)),
        "false" => Ok((rest, false)),
        other => Err(ReplyError::BadStatus(format!(
            "{name} is not true or false: {}",
            quote(other)
        ))),
    }
}

fn port_field<'a>(
    input: &'a str,
    key: &'static str,
    name: &'static str,
) -> Result<(&'a str, Option<u16>), ReplyError> {
    let (rest, value) = field(input, key, name)?;
    if value == "not_set" {
        return Ok((rest, None));
    }
    let port = (!value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()))
        .then(|| value.parse::<u16>().ok())
        .flatten()
        .ok_or_else(|| {
            ReplyError::BadStatus(format!("{name} is not a port or not_set: {}", quote(value)))
        })?;
    Ok((rest, Some(port)))
}

fn missing(name: &str, at: &str) -> ReplyError {
    ReplyError::BadStatus(format!("expected field {name} at: {}", quote(at)))
}

/// Splits the OUTHOST rest of line into the host and the extra ` KEY: value` fields
/// after it, but only when every field has a known key and a space-free value (see
/// [`TunnelStatus`]); otherwise the whole rest is the host.
fn split_extra_fields(rest: &str) -> (&str, Vec<(String, String)>) {
    let Some((host, mut tail)) = rest.split_once(' ') else {
        return (rest, Vec::new());
    };
    let mut extra = Vec::new();
    loop {
        let Some((key, after)) = tail.split_once(": ") else {
            return (rest, Vec::new());
        };
        if !EXTRA_STATUS_KEYS.contains(&key) {
            return (rest, Vec::new());
        }
        let (value, next) = match after.split_once(' ') {
            Some((value, next)) => (value, Some(next)),
            None => (after, None),
        };
        extra.push((key.to_owned(), value.to_owned()));
        match next {
            Some(next) => tail = next,
            None => return (host, extra),
        }
    }
}

/// The counters of one tunnel, the reply text of the `stats` extension command
/// (bob-server only; Java and i2pd answer `stats` with their unknown-command error).
///
/// ```text
/// STATS nickname=<nick> running=<bool> accepted=<n> active=<n> failed=<n> bytes_in=<n> bytes_out=<n>
/// ```
/// sent as `OK STATS …`. `Display` writes exactly this (no `OK `, no newline); `FromStr`
/// reads it back. Readers must ignore `key=value` tokens they do not know (more counters
/// may be added) and the order of the tokens; every key above must be present once.
///
/// Counters belong to the tunnel's current run (or its last one, once stopped) and start
/// at zero on every `start`. "In" and "out" are seen from the I2P side: `bytes_in` came
/// out of I2P streams to local applications, `bytes_out` went from local applications
/// into I2P.
///
/// ```
/// use bob_codec::TunnelCounters;
///
/// let c: TunnelCounters =
///     "STATS nickname=web running=true accepted=3 active=1 failed=0 bytes_in=10 bytes_out=20"
///         .parse()
///         .unwrap();
/// assert_eq!((c.accepted, c.bytes_out), (3, 20));
/// assert_eq!(c.to_reply().encode(), b"OK STATS nickname=web running=true accepted=3 active=1 failed=0 bytes_in=10 bytes_out=20\n");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TunnelCounters {
    /// tunnel name
    pub nickname: String,
    /// whether the tunnel is running
    pub running: bool,
    /// connections accepted (inbound TCP connections and incoming I2P streams)
    pub accepted: u64,
    /// connections open now
    pub active: u64,
    /// connections that ended with an error
    pub failed: u64,
    /// bytes from I2P streams to local applications
    pub bytes_in: u64,
    /// bytes from local applications into I2P streams
    pub bytes_out: u64,
    /// further counters of some tunnel kinds, written after `bytes_out` in this order
    /// (a UDP tunnel's `udp_received=…`, `udp_dropped=…`, …); reading keeps every
    /// numeric `key=value` token this version does not know here
    pub extra: Vec<(String, u64)>,
    /// the last failed start, unless one succeeded since: when (seconds since the Unix
    /// epoch) and why (`last_error_at=SECS last_error=REASON…`, the reason running to
    /// the end of the line)
    pub last_error: Option<(u64, String)>,
}

impl TunnelCounters {
    /// The word the reply text starts with.
    pub const TAG: &'static str = "STATS";

    /// The `stats` reply: `OK STATS …`.
    pub fn to_reply(&self) -> Reply {
        Reply::Ok(Some(self.to_string()))
    }

    /// Reads the counters out of a `stats` reply.
    ///
    /// # Errors
    /// [`ReplyError::BadCounters`] for an `ERROR` or `DATA` reply, a bare `OK`, or a
    /// malformed text.
    pub fn from_reply(reply: &Reply) -> Result<Self, ReplyError> {
        match reply {
            Reply::Ok(Some(text)) => text.parse(),
            other => Err(ReplyError::BadCounters(format!(
                "not a stats reply: {}",
                quote(&String::from_utf8_lossy(&other.encode()))
            ))),
        }
    }
}

impl std::fmt::Display for TunnelCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} nickname={} running={} accepted={} active={} failed={} bytes_in={} bytes_out={}",
            Self::TAG,
            self.nickname,
            self.running,
            self.accepted,
            self.active,
            self.failed,
            self.bytes_in,
            self.bytes_out,
        )?;
        for (key, value) in &self.extra {
            write!(f, " {key}={value}")?;
        }
        if let Some((at, reason)) = &self.last_error {
            let reason: String = one_line(reason).map(char::from).collect();
            write!(f, " last_error_at={at} last_error={reason}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for TunnelCounters {
    type Err = ReplyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: String| ReplyError::BadCounters(why);
        let rest = s
            .strip_prefix(Self::TAG)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or_else(|| bad(format!("expected {} at: {}", Self::TAG, quote(s))))?;
        let mut nickname = None;
        let mut running = None;
        let mut numbers: [Option<u64>; 6] = [None; 6];
        let mut extra = Vec::new();
        const NUMBERS: [&str; 6] = [
            "accepted",
            "active",
            "failed",
            "bytes_in",
            "bytes_out",
            "last_error_at",
        ];
        // `last_error=` takes the rest of the line (the reason has spaces)
        let (rest, last_error) = match rest.find(" last_error=") {
            Some(at) => (
                &rest[..at],
                Some(rest[at + " last_error=".len()..].to_owned()),
            ),
            None => (rest, None),
        };
        for token in rest.split(' ').filter(|t| !t.is_empty()) {
            let (key, value) = token
                .split_once('=')
                .ok_or_else(|| bad(format!("expected key=value: {}", quote(token))))?;
            let duplicate = || bad(format!("{key} given twice"));
            match key {
                "nickname" => {
                    if nickname.replace(value.to_owned()).is_some() {
                        return Err(duplicate());
                    }
                }
                "running" => {
                    let flag = match value {
                        "true" => true,
                        "false" => false,
                        other => {
                            return Err(bad(format!(
                                "running is not true or false: {}",
                                quote(other)
                            )));
                        }
                    };
                    if running.replace(flag).is_some() {
                        return Err(duplicate());
                    }
                }
                _ => {
                    let Some(i) = NUMBERS.iter().position(|n| *n == key) else {
                        // a counter this version does not know: kept when numeric
                        if let Ok(n) = value.parse::<u64>() {
                            if extra.iter().any(|(k, _)| k == key) {
                                return Err(duplicate());
                            }
                            extra.push((key.to_owned(), n));
                        }
                        continue;
                    };
                    let n = (!value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()))
                        .then(|| value.parse::<u64>().ok())
                        .flatten()
                        .ok_or_else(|| bad(format!("{key} is not a number: {}", quote(value))))?;
                    if numbers[i].replace(n).is_some() {
                        return Err(duplicate());
                    }
                }
            }
        }
        let need = |name: &str| bad(format!("missing {name}"));
        let number = |i: usize| numbers[i].ok_or_else(|| need(NUMBERS[i]));
        Ok(Self {
            nickname: nickname.ok_or_else(|| need("nickname"))?,
            running: running.ok_or_else(|| need("running"))?,
            accepted: number(0)?,
            active: number(1)?,
            failed: number(2)?,
            bytes_in: number(3)?,
            bytes_out: number(4)?,
            extra,
            last_error: match (numbers[5], last_error) {
                (Some(at), Some(reason)) => Some((at, reason)),
                (None, None) => None,
                _ => return Err(bad("last_error_at and last_error go together".into())),
            },
        })
    }
}

/// The bytes of `text` with every `\r` and `\n` written as a space.
pub(crate) fn one_line(text: &str) -> impl Iterator<Item = u8> + '_ {
    text.bytes()
        .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b })
}

/// A short, single-line excerpt of foreign input for an error message.
fn quote(text: &str) -> String {
    let mut end = text.len().min(QUOTE_LIMIT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out: String = text[..end]
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if end < text.len() {
        out.push('…');
    }
    out
}
