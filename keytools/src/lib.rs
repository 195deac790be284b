//! I2P keys for BOB: encodings, destinations, private-key blobs, generation, verification.
//!
//! # Layout
//! - [`encoding`]: I2P base64 (`-~` alphabet) and lower-case unpadded base32.
//! - [`types`]: signature and crypto type codes.
//! - [`destination`]: [`Destination`] parse/serialize, b32 address.
//! - [`keys`]: [`PrivateKeys`] (the BOB KEYS blob) parse/serialize/generate.
//! - [`error`]: [`KeyError`].
//!
//! No I/O here; the `bob-keygen` binary does the files.

pub mod destination;
pub mod encoding;
pub mod error;
pub mod keys;
pub mod types;

pub use destination::Destination;
pub use error::KeyError;
pub use keys::PrivateKeys;
pub use types::{CryptoType, SigType};

/// Java BOB `verify` semantics: the string decodes as I2P base64 and starts with a
/// well-formed Destination; trailing bytes are ignored.
///
/// # Errors
/// [`KeyError`] naming what is wrong.
pub fn verify_bob(b64: &str) -> Result<Destination, KeyError> {
    let _ = b64;
    todo!("keytools helper")
}

/// Strict verification: exact length, known types, no excess data, valid public key point.
///
/// # Errors
/// [`KeyError`] naming what is wrong.
pub fn verify_strict(b64: &str) -> Result<Destination, KeyError> {
    let _ = b64;
    todo!("keytools helper")
}
