//! Reply lines, the greeting and the tunnel status record.

use crate::error::ReplyError;

/// Sent on accept, in one write: `BOB 00.00.10\nOK\n`.
pub const GREETING: &[u8] = b"BOB 00.00.10\nOK\n";

/// One reply line.
///
/// ```text
/// OK[ <text>]\n | ERROR <text>\n | DATA <text>\n
/// ```
/// `Ok(None)` encodes as `OK\n`, `Ok(Some(""))` as `OK \n` (Java's `visit`).
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
    /// The reply as bytes, `\n`-terminated.
    pub fn encode(&self) -> Vec<u8> {
        todo!("bob-codec helper")
    }

    /// Appends the encoded reply to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let _ = out;
        todo!("bob-codec helper")
    }

    /// Decodes one reply line (without `\n`; a trailing `\r` is stripped).
    ///
    /// # Errors
    /// [`ReplyError::Malformed`] for anything but `OK…`, `ERROR …`, `DATA …`.
    pub fn decode(line: &str) -> Result<Self, ReplyError> {
        let _ = line;
        todo!("bob-codec helper")
    }
}

/// The ten-field tunnel record of `list` (`DATA …`), `status` (`OK DATA …`) and `show` (`OK …`).
///
/// ```text
/// NICKNAME: <nick> STARTING: <bool> RUNNING: <bool> STOPPING: <bool> KEYS: <bool> QUIET: <bool> INPORT: <port|not_set> INHOST: <host> OUTPORT: <port|not_set> OUTHOST: <host>
/// ```
/// `Display` writes exactly this (no prefix, no newline); `FromStr` reads it back
/// (OUTHOST is the rest of the line).
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
}

impl std::fmt::Display for TunnelStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let _ = f;
        todo!("bob-codec helper")
    }
}

impl std::str::FromStr for TunnelStatus {
    type Err = ReplyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let _ = s;
        todo!("bob-codec helper")
    }
}
