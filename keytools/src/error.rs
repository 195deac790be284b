//! Key errors; `Display` is the text users see.

/// Everything that can be wrong with key material or its encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Bad I2P base64.
    #[error("invalid base64: {0}")]
    Base64(String),
}
