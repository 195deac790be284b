//! Errors are data: each `Display` is exactly the text a server sends after `ERROR `.

use crate::Dialect;

/// A request line that cannot be turned into a [`crate::Command`] or an operand that does
/// not validate. `Display` = reply text after `ERROR ` in the carried dialect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Unknown command word. Java: `UNKNOWN COMMAND! Try help`; i2pd: `unknown command`.
    #[error("{}", match .dialect { Dialect::Java => "UNKNOWN COMMAND! Try help", Dialect::I2pd => "unknown command" })]
    Unknown {
        /// the dialect whose text to show
        dialect: Dialect,
        /// the command word as received
        word: String,
    },
    /// Port operand missing or not a number: `not a number` (both dialects).
    #[error("not a number")]
    NotANumber {
        /// the dialect whose text to show
        dialect: Dialect,
    },
    /// Port 0 or above 65535: `port out of range` (both dialects).
    #[error("port out of range")]
    PortOutOfRange {
        /// the dialect whose text to show
        dialect: Dialect,
    },
    /// Malformed `option`. Java: `too many or no options.`; i2pd: `malformed`.
    #[error("{}", match .dialect { Dialect::Java => "too many or no options.", Dialect::I2pd => "malformed" })]
    BadOption {
        /// the dialect whose text to show
        dialect: Dialect,
    },
}

/// A framing problem on the line level; the connection goes on after it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The line exceeded the limit; the rest of it up to the next `\n` is discarded.
    #[error("line too long (limit {limit} bytes)")]
    TooLong {
        /// the limit in force
        limit: usize,
    },
    /// The line is not valid UTF-8.
    #[error("invalid UTF-8 in line")]
    InvalidUtf8,
}

/// A reply line that is not `OK…`, `ERROR …` or `DATA …`, or a malformed status record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// Not an `OK`, `ERROR` or `DATA` line.
    #[error("malformed reply line: {0}")]
    Malformed(String),
    /// A status record whose fields are missing, out of order or not parseable.
    #[error("malformed tunnel status: {0}")]
    BadStatus(String),
    /// A `stats` reply (bob-server extension) whose counters are missing or malformed.
    #[error("malformed tunnel counters: {0}")]
    BadCounters(String),
}
