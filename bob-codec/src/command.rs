//! The BOB request line as a typed [`Command`].
//!
//! ```text
//! line     = *SP name [ 1*SP operand ] *( 1*SP token ) *SP
//! name     = case-insensitive command word
//! SP       = space, TAB, CR or LF
//! ```
//! The second token is the operand; further tokens are ignored (as both reference servers
//! do), except for `option`, which keeps every `key=value` token, and `newkeys`, whose
//! third token is the i2pd crypto type.
//!
//! CR and LF count as separators, so the `\r` of a CRLF line disappears and no operand
//! ever holds a line break (a reply echoing an operand stays one line). The command set
//! is the same in both dialects (the server decides which commands it serves); the
//! dialect only picks the error texts.
//!
//! ```
//! use bob_codec::{Command, Dialect, Nickname, Operand};
//!
//! let cmd = Command::parse("  SetNick\tmytunnel extra\r", Dialect::Java).unwrap();
//! assert_eq!(cmd, Command::SetNick(Operand::Valid(Nickname::new("mytunnel").unwrap())));
//! assert_eq!(cmd.encode(), "setnick mytunnel");
//! let err = Command::parse("frobnicate", Dialect::Java).unwrap_err();
//! assert_eq!(err.to_string(), "UNKNOWN COMMAND! Try help");
//! ```

use crate::Dialect;
use crate::error::CommandError;
use crate::operand::Operand;
use crate::types::{Host, Nickname, Port, TunnelOption};
use nom::Parser;
use nom::bytes::complete::{take_till1, take_while};
use nom::combinator::all_consuming;
use nom::multi::many0;
use nom::sequence::{preceded, terminated};

/// One parsed request line.
///
/// Operands whose type lives in [`crate::types`] arrive validated as an [`Operand`]
/// (nickname, host, port, options); a malformed one is kept raw beside its error, so the
/// server still decides what a missing or malformed operand means for each command. The
/// other operands stay as the client sent them (case preserved), because their types live
/// elsewhere: keys and destinations (`setkeys`, `verify`) in `keytools`, signature and
/// crypto types (`newkeys`), tunnel kinds (`settunneltype`), I2P names (`lookup`,
/// `lookuplocal`, `ping`) and `quiet`'s flag are read by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A blank line (only spaces/tabs/CR). Java BOB ignores it.
    Empty,
    /// `clear`
    Clear,
    /// `getdest`
    GetDest,
    /// `getkeys`
    GetKeys,
    /// `getnick <name>`
    GetNick(Operand<Nickname>),
    /// `help [command]`
    Help(Option<String>),
    /// `inhost <host>`
    InHost(Operand<Host>),
    /// `inport <port>` (see [`parse_port`] for the rules)
    InPort(Operand<Port>),
    /// `list`
    List,
    /// `lookup <name>`
    Lookup(Option<String>),
    /// `lookuplocal <name>` (i2pd extra)
    LookupLocal(Option<String>),
    /// `newkeys [sigtype [cryptotype]]` (arguments are the i2pd extension)
    NewKeys {
        /// signature type: a number or a name, as the client sent it
        sig_type: Option<String>,
        /// crypto type: a number or a name, as the client sent it
        crypto_type: Option<String>,
    },
    /// `option k=v [k=v …]` — every operand token, all or nothing (see [`Operand::options`])
    Option(Operand<Vec<TunnelOption>>),
    /// `outhost <host>`
    OutHost(Operand<Host>),
    /// `outport <port>` (see [`parse_port`] for the rules)
    OutPort(Operand<Port>),
    /// `ping <name>` (i2pd extra)
    Ping(Option<String>),
    /// `quiet [true|false]`
    Quiet(Option<String>),
    /// `quit`
    Quit,
    /// `setkeys <base64 keys>`
    SetKeys(Option<String>),
    /// `setnick <name>`
    SetNick(Operand<Nickname>),
    /// `settunneltype <socks|httpproxy>` (i2pd extra)
    SetTunnelType(Option<String>),
    /// `show`
    Show,
    /// `showprops`
    ShowProps,
    /// `start`
    Start,
    /// `stats [name]` (bob-server extension): connection and byte counters of the named
    /// tunnel, or of the selected one without a name
    Stats(Operand<Nickname>),
    /// `status <name>`
    Status(Operand<Nickname>),
    /// `stop`
    Stop,
    /// `verify <base64 destination>`
    Verify(Option<String>),
    /// `visit`
    Visit,
    /// `zap`
    Zap,
}

/// Every command word this crate knows, lower case, in alphabetical order.
pub const COMMAND_NAMES: &[&str] = &[
    "clear",
    "getdest",
    "getkeys",
    "getnick",
    "help",
    "inhost",
    "inport",
    "list",
    "lookup",
    "lookuplocal",
    "newkeys",
    "option",
    "outhost",
    "outport",
    "ping",
    "quiet",
    "quit",
    "setkeys",
    "setnick",
    "settunneltype",
    "show",
    "showprops",
    "start",
    "stats",
    "status",
    "stop",
    "verify",
    "visit",
    "zap",
];

/// Token separator: space, TAB, and CR/LF (which can only be stray line-end bytes).
fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Splits a line into its whitespace-separated tokens.
fn tokens(line: &str) -> Vec<&str> {
    let token = preceded(take_while(is_separator), take_till1(is_separator));
    let parsed: nom::IResult<&str, Vec<&str>> =
        all_consuming(terminated(many0(token), take_while(is_separator))).parse(line);
    // Every string is a sequence of separator runs and token runs, so this cannot fail;
    // falling back to whitespace splitting keeps the function total all the same.
    match parsed {
        Ok((_, tokens)) => tokens,
        Err(_) => line.split(is_separator).filter(|t| !t.is_empty()).collect(),
    }
}

impl Command {
    /// Parses one complete request line (without its `\n`; a trailing `\r` is stripped).
    ///
    /// Leading separators are skipped, the command word is matched case-insensitively
    /// (ASCII), the second token is the operand and further tokens are ignored, except
    /// for `option` (all operand tokens) and `newkeys` (`[sigtype [cryptotype]]`).
    /// A line of separators only is [`Command::Empty`].
    ///
    /// # Errors
    /// [`CommandError::Unknown`] for an unknown command word; its `Display` is the
    /// dialect's text after `ERROR `.
    pub fn parse(line: &str, dialect: Dialect) -> Result<Self, CommandError> {
        let tokens = tokens(line);
        let Some(&word) = tokens.first() else {
            return Ok(Self::Empty);
        };
        let arg = |i: usize| tokens.get(i).map(|t| (*t).to_owned());
        let operand = arg(1);
        let token = tokens.get(1).copied();
        let command = match word.to_ascii_lowercase().as_str() {
            "clear" => Self::Clear,
            "getdest" => Self::GetDest,
            "getkeys" => Self::GetKeys,
            "getnick" => Self::GetNick(Operand::from_token(token)),
            "help" => Self::Help(operand),
            "inhost" => Self::InHost(Operand::from_token(token)),
            "inport" => Self::InPort(Operand::from_token(token)),
            "list" => Self::List,
            "lookup" => Self::Lookup(operand),
            "lookuplocal" => Self::LookupLocal(operand),
            "newkeys" => Self::NewKeys {
                sig_type: operand,
                crypto_type: arg(2),
            },
            "option" => Self::Option(Operand::options(&tokens[1..])),
            "outhost" => Self::OutHost(Operand::from_token(token)),
            "outport" => Self::OutPort(Operand::from_token(token)),
            "ping" => Self::Ping(operand),
            "quiet" => Self::Quiet(operand),
            "quit" => Self::Quit,
            "setkeys" => Self::SetKeys(operand),
            "setnick" => Self::SetNick(Operand::from_token(token)),
            "settunneltype" => Self::SetTunnelType(operand),
            "show" => Self::Show,
            "showprops" => Self::ShowProps,
            "start" => Self::Start,
            "stats" => Self::Stats(Operand::from_token(token)),
            "status" => Self::Status(Operand::from_token(token)),
            "stop" => Self::Stop,
            "verify" => Self::Verify(operand),
            "visit" => Self::Visit,
            "zap" => Self::Zap,
            _ => {
                return Err(CommandError::Unknown {
                    dialect,
                    word: word.to_owned(),
                });
            }
        };
        Ok(command)
    }

    /// The lower-case command word (`""` for [`Command::Empty`]).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Empty => "",
            Self::Clear => "clear",
            Self::GetDest => "getdest",
            Self::GetKeys => "getkeys",
            Self::GetNick(_) => "getnick",
            Self::Help(_) => "help",
            Self::InHost(_) => "inhost",
            Self::InPort(_) => "inport",
            Self::List => "list",
            Self::Lookup(_) => "lookup",
            Self::LookupLocal(_) => "lookuplocal",
            Self::NewKeys { .. } => "newkeys",
            Self::Option(_) => "option",
            Self::OutHost(_) => "outhost",
            Self::OutPort(_) => "outport",
            Self::Ping(_) => "ping",
            Self::Quiet(_) => "quiet",
            Self::Quit => "quit",
            Self::SetKeys(_) => "setkeys",
            Self::SetNick(_) => "setnick",
            Self::SetTunnelType(_) => "settunneltype",
            Self::Show => "show",
            Self::ShowProps => "showprops",
            Self::Start => "start",
            Self::Stats(_) => "stats",
            Self::Status(_) => "status",
            Self::Stop => "stop",
            Self::Verify(_) => "verify",
            Self::Visit => "visit",
            Self::Zap => "zap",
        }
    }

    /// Encodes the command as a request line without the trailing `\n`
    /// (used by clients; `parse(encode(c)) == c` for every command whose operands hold no
    /// whitespace).
    ///
    /// Operands are written after single spaces: a valid [`Operand`] as its value's
    /// `Display`, an invalid one as its raw token, a raw `String` verbatim. An empty
    /// operand (`Some("")`) is written as nothing, so it parses back as missing; a
    /// `crypto_type` without a `sig_type` cannot be expressed on the wire and is left out.
    pub fn encode(&self) -> String {
        let mut line = String::from(self.name());
        let mut push = |operand: &str| {
            if !operand.is_empty() {
                line.push(' ');
                line.push_str(operand);
            }
        };
        match self {
            Self::GetNick(op) | Self::SetNick(op) | Self::Stats(op) | Self::Status(op) => {
                push(op.to_wire().as_deref().unwrap_or(""));
            }
            Self::InHost(op) | Self::OutHost(op) => push(op.to_wire().as_deref().unwrap_or("")),
            Self::InPort(op) | Self::OutPort(op) => push(op.to_wire().as_deref().unwrap_or("")),
            Self::Help(op)
            | Self::Lookup(op)
            | Self::LookupLocal(op)
            | Self::Ping(op)
            | Self::Quiet(op)
            | Self::SetKeys(op)
            | Self::SetTunnelType(op)
            | Self::Verify(op) => push(op.as_deref().unwrap_or("")),
            Self::NewKeys {
                sig_type,
                crypto_type,
            } => {
                if let Some(sig) = sig_type.as_deref().filter(|s| !s.is_empty()) {
                    push(sig);
                    push(crypto_type.as_deref().unwrap_or(""));
                }
            }
            Self::Option(Operand::Missing) => {}
            Self::Option(Operand::Valid(options)) => {
                options.iter().for_each(|o| push(&o.to_string()));
            }
            Self::Option(Operand::Invalid { raw, .. }) => push(raw),
            Self::Empty
            | Self::Clear
            | Self::GetDest
            | Self::GetKeys
            | Self::List
            | Self::Quit
            | Self::Show
            | Self::ShowProps
            | Self::Start
            | Self::Stop
            | Self::Visit
            | Self::Zap => {}
        }
        line
    }
}

/// Largest number of significant digits a port can have.
const PORT_DIGITS: usize = 5;

/// Parses a port operand: a decimal number in `1..=65535`.
///
/// Only ASCII digits are accepted (no sign, no spaces, no trailing junk such as `80x`);
/// leading zeros are allowed (`0080` is 80).
///
/// # Errors
/// [`CommandError::NotANumber`] when the operand is missing or not a number,
/// [`CommandError::PortOutOfRange`] for 0 or > 65535 (however many digits).
pub fn parse_port(operand: Option<&str>, dialect: Dialect) -> Result<u16, CommandError> {
    let digits = operand
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .ok_or(CommandError::NotANumber { dialect })?;
    let significant = digits.trim_start_matches('0');
    if significant.is_empty() || significant.len() > PORT_DIGITS {
        return Err(CommandError::PortOutOfRange { dialect });
    }
    significant
        .parse::<u16>()
        .map_err(|_| CommandError::PortOutOfRange { dialect })
}

/// Parses the operands of `option` into `(key, value)` pairs with Java's rules
/// (`a==b` → `(a, b)`; `a`, `=b`, `a=`, `a=b=c` are malformed). All or nothing.
///
/// Each operand is split on `=` with empty pieces dropped (Java's
/// `StringTokenizer(arg, "=")`); exactly two pieces must remain.
///
/// # Errors
/// [`CommandError::BadOption`] when there is no pair or any pair is malformed.
pub fn parse_option_pairs(
    operands: &[String],
    dialect: Dialect,
) -> Result<Vec<(String, String)>, CommandError> {
    if operands.is_empty() {
        return Err(CommandError::BadOption { dialect });
    }
    operands
        .iter()
        .map(|operand| {
            let mut pieces = operand.split('=').filter(|p| !p.is_empty());
            match (pieces.next(), pieces.next(), pieces.next()) {
                (Some(key), Some(value), None) => Ok((key.to_owned(), value.to_owned())),
                _ => Err(CommandError::BadOption { dialect }),
            }
        })
        .collect()
}
