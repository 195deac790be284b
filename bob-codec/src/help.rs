//! Help texts of both dialects, as data.

use crate::Dialect;

/// The `OK COMMANDS: …` text (after `OK `) for `help` with no argument.
pub fn commands(dialect: Dialect) -> &'static str {
    let _ = dialect;
    todo!("bob-codec helper")
}

/// The help text (after `OK `) for one command word (case-insensitive), `None` if the
/// dialect has no help entry for it.
pub fn text(dialect: Dialect, command: &str) -> Option<&'static str> {
    let _ = (dialect, command);
    todo!("bob-codec helper")
}
