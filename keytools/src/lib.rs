//! I2P keys for BOB: encodings, destinations, private-key blobs, generation, verification.
//!
//! # Layout
//! - [`encoding`]: I2P base64 (`-~` alphabet) and lower-case unpadded base32.
//! - [`types`]: signature and crypto type codes.
//! - [`destination`]: [`Destination`] parse/serialize, b32 address.
//! - [`keys`]: [`PrivateKeys`] (the BOB KEYS blob) parse/serialize/generate.
//! - [`vanity`]: fast b32 prefix/regex search (SHA-256 midstate, multi-buffer hashing).
//! - [`naming`]: signed address-book registration lines.
//! - [`keyfile`]: reading and writing key files safely (size bound, no FIFOs/devices, atomic
//!   0600 writes that never follow symlinks).
//! - [`error`]: the [`KeyError`] type.
//!
//! Only [`keyfile`] does I/O; the `bob-keygen` binary is built on it.
//!
//! `unsafe` is denied in this crate except in [`vanity::multibuf`] (CPU intrinsics).
//!
//! # Features
//! - `cli` (default): builds the `bob-keygen` binary (clap, anyhow, indicatif, ctrlc and the
//!   workspace's `cli-docs`). The library needs none of it: depend on keytools with
//!   `default-features = false`.
//! - `fuzzing`: the `fuzzing` module with the bodies of the cargo-fuzz targets in
//!   `keytools/fuzz/` (internal; the stable corpus replay test and the proptests use it).
//!
//! # Example
//! ```
//! use keytools::{CryptoType, PrivateKeys, SigType, verify_bob};
//!
//! // what BOB `newkeys` would make: Ed25519 signing key, ElGamal placeholder
//! let keys = PrivateKeys::generate(SigType::default(), CryptoType::ElGamal)?;
//! let line = keys.to_base64(); // the KEYS line `setkeys` takes
//! let again = PrivateKeys::from_base64(&line)?;
//! assert_eq!(again.destination(), keys.destination());
//!
//! let dest = keys.destination();
//! assert!(dest.b32().ends_with(".b32.i2p"));
//! assert_eq!(verify_bob(&dest.to_base64())?, *dest);
//!
//! let sig = keys.sign(b"hello")?;
//! dest.verify(b"hello", &sig)?;
//! # Ok::<(), keytools::KeyError>(())
//! ```

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod crypto;
pub mod destination;
pub mod encoding;
pub mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(unix)]
pub mod keyfile;
pub mod keys;
pub mod naming;
pub mod types;
pub mod vanity;

pub use destination::Destination;
pub use error::KeyError;
pub use keys::{OfflineSignature, PrivateKeys};
pub use types::{CryptoType, SigType};

/// Java BOB `verify` semantics: the string decodes as I2P base64 and starts with a
/// well-formed Destination; trailing bytes are ignored (so a whole KEYS blob verifies too).
///
/// Differences from Java: the base64 alphabet is checked strictly, and signature/crypto types
/// this crate does not support (RSA, GOST, ...) are rejected instead of tolerated. No curve-point
/// or signature check is made (see [`verify_strict`]).
///
/// # Errors
/// [`KeyError`] naming what is wrong.
pub fn verify_bob(b64: &str) -> Result<Destination, KeyError> {
    let raw = encoding::base64_decode(b64)?;
    Destination::from_bytes_prefix(&raw).map(|(d, _)| d)
}

/// Strict verification: exact length, known types, no excess certificate data, canonical
/// certificate (NULL, not KEY 0/0, for DSA-SHA1 + ElGamal), valid public key point.
///
/// # Errors
/// [`KeyError`] naming what is wrong.
pub fn verify_strict(b64: &str) -> Result<Destination, KeyError> {
    let d = Destination::from_base64(b64)?;
    if d.excess_cert_len() != 0 {
        return Err(KeyError::Certificate(format!(
            "{} bytes of excess data in KEY certificate",
            d.excess_cert_len()
        )));
    }
    if d.cert_type() == destination::CERT_KEY
        && d.sig_type() == SigType::DsaSha1
        && d.crypto_type() == CryptoType::ElGamal
    {
        return Err(KeyError::Certificate(
            "KEY certificate with types 0,0 (use a NULL certificate)".into(),
        ));
    }
    d.check_public_key()?;
    Ok(d)
}
