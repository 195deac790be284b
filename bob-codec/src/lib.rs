//! Wire protocol of BOB (Basic Open Bridge), I2P's line-based tunnel control protocol.
//!
//! # Layout
//! - [`line`]: bounded line framing (`\n` or `\r\n`), a tokio-util codec behind feature `codec`.
//! - [`command`]: the typed [`Command`] enum and its nom parser over one complete line.
//! - [`reply`]: [`Reply`] lines, the greeting, and the tunnel [`TunnelStatus`] record.
//! - [`help`]: the help texts of both dialects, as data.
//! - [`error`]: parse errors; their `Display` is the text sent after `ERROR `.
//!
//! This crate does no I/O of its own and has no tokio in its core.

pub mod command;
pub mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod help;
pub mod line;
pub mod reply;

pub use command::Command;
pub use error::{CommandError, LineError, ReplyError};
pub use line::{LineCodec, LineItem, MAX_LINE_LEN};
pub use reply::{GREETING, Reply, TunnelStatus};

/// Which server's reply strings to speak. Semantics never change with the dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Dialect {
    /// Java I2P's BOB (the default): `ERROR UNKNOWN COMMAND! Try help`, `OK tunnel starting`, …
    #[default]
    Java,
    /// i2pd's BOB: `ERROR unknown command`, `OK Tunnel starting`, …
    I2pd,
}
