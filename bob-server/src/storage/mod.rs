//! What the server keeps on disk: the registry's state file (`--state-dir`) and key files.
//!
//! Key files are read and written by [`keytools::keyfile`] (bounded, FIFO-safe reads;
//! atomic 0600 writes through an `O_EXCL|O_NOFOLLOW` temporary file), the same code
//! `bob-keygen` and `bobctl` use; it is re-exported here as [`keyfile`].

pub mod state;

pub use keytools::keyfile;
