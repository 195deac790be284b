//! Key errors; `Display` is the text users see.

/// Everything that can be wrong with key material or its encoding.
///
/// The `Display` text of each variant is meant to be shown to users as is
/// (for example after `ERROR ` in a BOB reply or on one line of `bob-keygen` output).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Bad I2P base64.
    #[error("invalid base64: {0}")]
    Base64(String),
    /// Bad base32 (b32 address or hash).
    #[error("invalid base32: {0}")]
    Base32(String),
    /// The input ends before the structure does.
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated {
        /// what was being read ("destination", "private keys", ...)
        what: &'static str,
        /// bytes needed
        need: usize,
        /// bytes present
        have: usize,
    },
    /// Bytes follow a complete structure where none are allowed.
    #[error("{extra} unexpected trailing bytes after the {what}")]
    TrailingBytes {
        /// what was complete
        what: &'static str,
        /// number of extra bytes
        extra: usize,
    },
    /// A signature type code that I2P does not define (or that this tool does not know).
    #[error("unknown signature type {0}")]
    UnknownSigType(u16),
    /// A defined signature type that is not allowed in destinations.
    #[error("signature type {code} ({name}) is not supported in destinations")]
    UnsupportedSigType {
        /// the wire code
        code: u16,
        /// the I2P name
        name: &'static str,
    },
    /// A crypto type code that is unknown or not allowed in destinations.
    #[error("unknown crypto type {0}")]
    UnknownCryptoType(u16),
    /// A type name (command line or config) that matches no type.
    #[error("unknown {kind} type {name:?} (expected {expected})")]
    UnknownTypeName {
        /// "signature" or "crypto"
        kind: &'static str,
        /// the text given
        name: String,
        /// the accepted names
        expected: &'static str,
    },
    /// A certificate type other than NULL (0) or KEY (5).
    #[error("unsupported certificate type {0} (only NULL and KEY certificates are supported)")]
    UnsupportedCertificate(u8),
    /// A malformed certificate.
    #[error("invalid certificate: {0}")]
    Certificate(String),
    /// A public key that is not a valid key of its type.
    #[error("invalid public key: {0}")]
    PublicKey(String),
    /// A private key that is not a valid key of its type.
    #[error("invalid private key: {0}")]
    PrivateKey(String),
    /// The private signing key does not belong to the destination's public key.
    #[error("private key does not match the destination's public signing key")]
    KeyMismatch,
    /// The offline-signature section has expired.
    #[error("offline signature expired at {expires} (unix time), now is {now}")]
    OfflineExpired {
        /// expiry, seconds since the epoch
        expires: u64,
        /// the clock when checked
        now: u64,
    },
    /// A signature (for example the offline-signature block) does not verify.
    #[error("{0} does not verify")]
    BadSignature(&'static str),
    /// An operation needs the destination's signing key, but only a transient key is present.
    #[error("the destination's signing key is offline; only a transient key is present")]
    OfflineKey,
    /// A b32 vanity prefix that cannot be searched for.
    #[error("invalid vanity prefix {prefix:?}: {reason}")]
    VanityPrefix {
        /// the prefix given
        prefix: String,
        /// why it is rejected
        reason: String,
    },
    /// A vanity pattern (regular expression, or the pattern list) that cannot be searched for.
    #[error("invalid vanity pattern {pattern:?}: {reason}")]
    VanityPattern {
        /// the pattern given (at most 80 characters of it)
        pattern: String,
        /// why it is rejected
        reason: String,
    },
    /// A registration line (address-book `name=dest#!…#sig=…`) that is malformed or does not
    /// verify, or a host name that cannot be registered.
    #[error("registration: {0}")]
    Registration(String),
    /// The operating-system random number generator failed.
    #[error("random number generator failed: {0}")]
    Random(String),
}
