//! `PrivateKeys` = the BOB KEYS blob: Destination ‖ private key ‖ signing private key
//! [‖ offline section].

use crate::destination::Destination;
use crate::error::KeyError;
use crate::types::{CryptoType, SigType};

/// A private-key blob. `Debug` is redacted; secret bytes are zeroized on drop.
#[derive(Clone)]
pub struct PrivateKeys {
    destination: Destination,
    /// the whole blob as serialized (destination included)
    bytes: Vec<u8>,
}

impl PrivateKeys {
    /// Generates new keys of the given types (proposal-161 padding).
    ///
    /// # Errors
    /// [`KeyError`] for an unsupported combination.
    pub fn generate(sig: SigType, crypto: CryptoType) -> Result<Self, KeyError> {
        let _ = (sig, crypto);
        todo!("keytools helper")
    }

    /// Parses a blob.
    ///
    /// # Errors
    /// [`KeyError`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let _ = bytes;
        todo!("keytools helper")
    }

    /// Parses I2P base64 of a blob.
    ///
    /// # Errors
    /// [`KeyError`].
    pub fn from_base64(b64: &str) -> Result<Self, KeyError> {
        let _ = b64;
        todo!("keytools helper")
    }

    /// The serialized blob.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.bytes.clone()
    }

    /// I2P base64 of the blob.
    pub fn to_base64(&self) -> String {
        todo!("keytools helper")
    }

    /// The public destination.
    pub fn destination(&self) -> &Destination {
        &self.destination
    }
}

impl std::fmt::Debug for PrivateKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKeys")
            .field("destination", &self.destination)
            .field("secret", &"<redacted>")
            .finish()
    }
}
