//! Moved to the `cli-docs` crate (shared by bob-server, bobctl and bob-keygen); this
//! re-export keeps `bob_server::cli_docs` working until `main.rs` imports the crate.
pub use ::cli_docs::*;
