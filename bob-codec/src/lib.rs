//! Wire protocol of BOB (Basic Open Bridge), I2P's line-based tunnel control protocol.
//!
//! # Layout
//! - [`line`](mod@line): bounded line framing (`\n` or `\r\n`), a tokio-util codec behind feature `codec`.
//! - [`command`]: the typed [`Command`] enum and its nom parser over one complete line.
//! - [`operand`](mod@operand): [`Operand`], a validated operand of a [`Command`] (missing,
//!   valid, or invalid with its raw token and error).
//! - [`reply`]: [`Reply`] lines, the greeting, the tunnel [`TunnelStatus`] record and the
//!   [`TunnelCounters`] of the `stats` extension.
//! - [`help`]: the help texts of both dialects, as data.
//! - [`error`]: parse errors; their `Display` is the text sent after `ERROR `.
//! - [`types`]: validated values ([`Nickname`], [`Host`], [`Port`], [`OptionKey`],
//!   [`OptionValue`], [`TunnelOption`]) with their size caps and the options-per-tunnel
//!   limit formula ([`types::max_properties`]).
//!
//! This crate does no I/O of its own and has no tokio in its core.
//!
//! # Example: one server step
//!
//! ```
//! use bob_codec::{Command, CommandError, Dialect, LineCodec, Operand, Reply, ValueError};
//!
//! let mut framer = LineCodec::new();
//! let mut input = b"INPORT 28400\r\ninport 80x\n".to_vec();
//! let mut output = Vec::new();
//! while let Some(item) = framer.decode_line(&mut input) {
//!     let line = item.expect("short ASCII lines");
//!     let reply = match Command::parse(&line, Dialect::Java) {
//!         Ok(Command::InPort(Operand::Valid(_port))) => Reply::ok("inbound port set"),
//!         Ok(Command::InPort(Operand::Invalid { error: ValueError::PortOutOfRange, .. })) => {
//!             Reply::from(CommandError::PortOutOfRange { dialect: Dialect::Java })
//!         }
//!         Ok(Command::InPort(_)) => Reply::from(CommandError::NotANumber { dialect: Dialect::Java }),
//!         Ok(_) => unreachable!("only inport lines in this example"),
//!         Err(err) => Reply::from(err),
//!     };
//!     reply.encode_into(&mut output);
//! }
//! assert_eq!(output, b"OK inbound port set\nERROR not a number\n");
//! ```
//!
//! # Dialects
//! [`Dialect::Java`] (default) speaks Java I2P's strings, [`Dialect::I2pd`] i2pd's. The
//! dialect picks texts only: the parser accepts the same commands, case-insensitively, in
//! both (a server decides which commands it serves).
//!
//! # Features
//! - `codec` (default): `tokio_util::codec::{Decoder, Encoder}` for [`LineCodec`].
//! - `fuzzing`: the `fuzzing` module with the bodies of the cargo-fuzz targets (internal).
//!
//! # Fuzzing
//! The cargo-fuzz crate in `bob-codec/fuzz/` (its own workspace) has two targets,
//! `command` and `reply`. With cargo-fuzz installed (`cargo install cargo-fuzz`):
//!
//! ```text
//! cd bob-codec
//! RUSTC_BOOTSTRAP=1 cargo fuzz run command -- -max_total_time=60
//! RUSTC_BOOTSTRAP=1 cargo fuzz run reply -- -max_total_time=60
//! ```
//! The seed corpus `fuzz/corpus/<target>/` is replayed on stable by `tests/fuzz_corpus.rs`.
#![warn(missing_docs)]

pub mod command;
pub mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod help;
pub mod line;
pub mod operand;
pub mod reply;
pub mod types;

pub use command::Command;
pub use error::{CommandError, LineError, ReplyError};
pub use line::{LineCodec, LineItem, MAX_LINE_LEN};
pub use operand::Operand;
pub use reply::{EXTRA_STATUS_KEYS, GREETING, Reply, TunnelCounters, TunnelStatus};
pub use types::{Host, Nickname, OptionKey, OptionValue, Port, TunnelOption, ValueError};

/// Which server's reply strings to speak. Semantics never change with the dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Dialect {
    /// Java I2P's BOB (the default): `ERROR UNKNOWN COMMAND! Try help`, `OK tunnel starting`, …
    #[default]
    Java,
    /// i2pd's BOB: `ERROR unknown command`, `OK Tunnel starting`, …
    I2pd,
}
