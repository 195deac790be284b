//! `Destination` = KeysAndCert: 256-byte crypto area, 128-byte signing area, certificate.

use crate::error::KeyError;
use crate::types::{CryptoType, SigType};

/// A parsed I2P destination. Keeps its exact serialized bytes (the hash covers them).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    bytes: Vec<u8>,
}

impl Destination {
    /// Parses a destination at the start of `bytes`; returns it and the bytes consumed.
    ///
    /// # Errors
    /// [`KeyError`] for truncated data or unknown types.
    pub fn from_bytes_prefix(bytes: &[u8]) -> Result<(Self, usize), KeyError> {
        let _ = bytes;
        todo!("keytools helper")
    }

    /// Parses exactly one destination (trailing bytes are an error).
    ///
    /// # Errors
    /// [`KeyError`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let _ = bytes;
        todo!("keytools helper")
    }

    /// Parses I2P base64 holding exactly one destination.
    ///
    /// # Errors
    /// [`KeyError`].
    pub fn from_base64(b64: &str) -> Result<Self, KeyError> {
        let _ = b64;
        todo!("keytools helper")
    }

    /// The serialized bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// I2P base64 of the bytes.
    pub fn to_base64(&self) -> String {
        todo!("keytools helper")
    }

    /// SHA-256 of the bytes.
    pub fn hash(&self) -> [u8; 32] {
        todo!("keytools helper")
    }

    /// `<52 lower-case base32 chars>.b32.i2p`
    pub fn b32(&self) -> String {
        todo!("keytools helper")
    }

    /// The signature type.
    pub fn sig_type(&self) -> SigType {
        todo!("keytools helper")
    }

    /// The crypto type.
    pub fn crypto_type(&self) -> CryptoType {
        todo!("keytools helper")
    }
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Destination({} bytes)", self.bytes.len())
    }
}
