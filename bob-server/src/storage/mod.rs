//! What the server keeps on disk: the registry's state file (`--state-dir`) and key files.

pub mod keyfile;
pub mod state;
