//! Signature and crypto type codes used in KEY certificates.

/// Destination signature types supported for parsing and generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigType {
    /// 0: DSA-SHA1 (NULL certificate; Java BOB's only own-key type)
    DsaSha1,
    /// 1: ECDSA-SHA256-P256
    EcdsaP256,
    /// 2: ECDSA-SHA384-P384
    EcdsaP384,
    /// 3: ECDSA-SHA512-P521 (4 excess signing-key bytes in the certificate)
    EcdsaP521,
    /// 7: EdDSA-SHA512-Ed25519 (current default)
    Ed25519,
    /// 11: RedDSA-SHA512-Ed25519
    RedDsa,
}

/// Destination crypto (encryption) types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CryptoType {
    /// 0: ElGamal-2048 (placeholder in modern destinations)
    ElGamal,
    /// 4: ECIES-X25519
    X25519,
}

impl SigType {
    /// The wire code.
    pub fn code(self) -> u16 {
        match self {
            Self::DsaSha1 => 0,
            Self::EcdsaP256 => 1,
            Self::EcdsaP384 => 2,
            Self::EcdsaP521 => 3,
            Self::Ed25519 => 7,
            Self::RedDsa => 11,
        }
    }
}

impl CryptoType {
    /// The wire code.
    pub fn code(self) -> u16 {
        match self {
            Self::ElGamal => 0,
            Self::X25519 => 4,
        }
    }
}

// To add (keytools helper): `SigType::from_code(u16) -> Result<Self, KeyError>`,
// `FromStr` for both (numbers and names: "0", "dsa", "DSA_SHA1", "7", "ed25519",
// "EdDSA_SHA512_Ed25519", …), key/signature lengths, `Display` with the I2P name.
