//! Signature and crypto type codes used in KEY certificates.

use std::fmt;
use std::str::FromStr;

use crate::error::KeyError;

/// Destination signature types supported for parsing and generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
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
    #[default]
    Ed25519,
    /// 11: RedDSA-SHA512-Ed25519
    RedDsa,
}

/// Destination crypto (encryption) types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CryptoType {
    /// 0: ElGamal-2048 (placeholder in modern destinations)
    #[default]
    ElGamal,
    /// 4: ECIES-X25519
    X25519,
}

const SIG_NAMES: &str = "0|dsa|DSA_SHA1, 1|p256|ECDSA_SHA256_P256, 2|p384|ECDSA_SHA384_P384, \
3|p521|ECDSA_SHA512_P521, 7|ed25519|EdDSA_SHA512_Ed25519, 11|reddsa|RedDSA_SHA512_Ed25519";
const CRYPTO_NAMES: &str = "0|elgamal|ELGAMAL_2048, 4|x25519|ECIES_X25519";

impl SigType {
    /// The default for new destinations: Ed25519 (as i2pd BOB `newkeys`).
    pub const DEFAULT: Self = Self::Ed25519;

    /// Every supported type, in code order.
    pub const ALL: [Self; 6] = [
        Self::DsaSha1,
        Self::EcdsaP256,
        Self::EcdsaP384,
        Self::EcdsaP521,
        Self::Ed25519,
        Self::RedDsa,
    ];

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

    /// The type for a wire code.
    ///
    /// # Errors
    /// [`KeyError::UnsupportedSigType`] for defined types not usable in destinations
    /// (RSA, Ed25519ph, GOST), [`KeyError::UnknownSigType`] otherwise.
    pub fn from_code(code: u16) -> Result<Self, KeyError> {
        Ok(match code {
            0 => Self::DsaSha1,
            1 => Self::EcdsaP256,
            2 => Self::EcdsaP384,
            3 => Self::EcdsaP521,
            7 => Self::Ed25519,
            11 => Self::RedDsa,
            4..=6 | 8..=10 => {
                let name = match code {
                    4 => "RSA_SHA256_2048",
                    5 => "RSA_SHA384_3072",
                    6 => "RSA_SHA512_4096",
                    8 => "EdDSA_SHA512_Ed25519ph",
                    9 => "GOST_R3410_2001_GOSTR3411_256",
                    _ => "GOST_R3410_2012_GOSTR3411_512",
                };
                return Err(KeyError::UnsupportedSigType { code, name });
            }
            _ => return Err(KeyError::UnknownSigType(code)),
        })
    }

    /// The I2P name (`EdDSA_SHA512_Ed25519`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::DsaSha1 => "DSA_SHA1",
            Self::EcdsaP256 => "ECDSA_SHA256_P256",
            Self::EcdsaP384 => "ECDSA_SHA384_P384",
            Self::EcdsaP521 => "ECDSA_SHA512_P521",
            Self::Ed25519 => "EdDSA_SHA512_Ed25519",
            Self::RedDsa => "RedDSA_SHA512_Ed25519",
        }
    }

    /// Length of the signing public key in bytes.
    pub fn public_key_len(self) -> usize {
        match self {
            Self::DsaSha1 => 128,
            Self::EcdsaP256 => 64,
            Self::EcdsaP384 => 96,
            Self::EcdsaP521 => 132,
            Self::Ed25519 | Self::RedDsa => 32,
        }
    }

    /// Length of the signing private key in bytes.
    pub fn private_key_len(self) -> usize {
        match self {
            Self::DsaSha1 => 20,
            Self::EcdsaP256 => 32,
            Self::EcdsaP384 => 48,
            Self::EcdsaP521 => 66,
            Self::Ed25519 | Self::RedDsa => 32,
        }
    }

    /// Length of a signature in bytes.
    pub fn signature_len(self) -> usize {
        match self {
            Self::DsaSha1 => 40,
            Self::EcdsaP256 => 64,
            Self::EcdsaP384 => 96,
            Self::EcdsaP521 => 132,
            Self::Ed25519 | Self::RedDsa => 64,
        }
    }
}

impl CryptoType {
    /// Every supported type, in code order.
    pub const ALL: [Self; 2] = [Self::ElGamal, Self::X25519];

    /// The wire code.
    pub fn code(self) -> u16 {
        match self {
            Self::ElGamal => 0,
            Self::X25519 => 4,
        }
    }

    /// The type for a wire code.
    ///
    /// # Errors
    /// [`KeyError::UnknownCryptoType`] for anything but 0 and 4.
    pub fn from_code(code: u16) -> Result<Self, KeyError> {
        match code {
            0 => Ok(Self::ElGamal),
            4 => Ok(Self::X25519),
            _ => Err(KeyError::UnknownCryptoType(code)),
        }
    }

    /// The I2P name (`ELGAMAL_2048`, `ECIES_X25519`).
    pub fn name(self) -> &'static str {
        match self {
            Self::ElGamal => "ELGAMAL_2048",
            Self::X25519 => "ECIES_X25519",
        }
    }

    /// Length of the public encryption key in bytes.
    pub fn public_key_len(self) -> usize {
        match self {
            Self::ElGamal => 256,
            Self::X25519 => 32,
        }
    }

    /// Length of the private encryption key in bytes (as stored in key files).
    pub fn private_key_len(self) -> usize {
        self.public_key_len()
    }
}

impl fmt::Display for SigType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for CryptoType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SigType {
    type Err = KeyError;

    /// Accepts the wire code ("7"), a short name ("ed25519", "dsa", "p256", "reddsa", ...)
    /// or the I2P name ("EdDSA_SHA512_Ed25519"); names are case-insensitive.
    fn from_str(s: &str) -> Result<Self, KeyError> {
        let t = s.trim();
        if let Ok(code) = t.parse::<u16>() {
            return Self::from_code(code);
        }
        let lower = t.to_ascii_lowercase();
        let found = match lower.as_str() {
            "dsa" | "dsa_sha1" | "dsa-sha1" => Some(Self::DsaSha1),
            "p256" | "ecdsa_p256" | "ecdsa-p256" | "ecdsa_sha256_p256" => Some(Self::EcdsaP256),
            "p384" | "ecdsa_p384" | "ecdsa-p384" | "ecdsa_sha384_p384" => Some(Self::EcdsaP384),
            "p521" | "ecdsa_p521" | "ecdsa-p521" | "ecdsa_sha512_p521" => Some(Self::EcdsaP521),
            "ed25519" | "eddsa" | "eddsa_sha512_ed25519" => Some(Self::Ed25519),
            "reddsa" | "red25519" | "reddsa_sha512_ed25519" => Some(Self::RedDsa),
            _ => None,
        };
        found.ok_or_else(|| KeyError::UnknownTypeName {
            kind: "signature",
            name: s.to_owned(),
            expected: SIG_NAMES,
        })
    }
}

impl FromStr for CryptoType {
    type Err = KeyError;

    /// Accepts the wire code ("0", "4") or a name ("elgamal", "x25519", "ELGAMAL_2048",
    /// "ECIES_X25519"); names are case-insensitive.
    fn from_str(s: &str) -> Result<Self, KeyError> {
        let t = s.trim();
        if let Ok(code) = t.parse::<u16>() {
            return Self::from_code(code);
        }
        match t.to_ascii_lowercase().as_str() {
            "elgamal" | "elgamal_2048" | "elg" => Ok(Self::ElGamal),
            "x25519" | "ecies_x25519" | "ecies" => Ok(Self::X25519),
            _ => Err(KeyError::UnknownTypeName {
                kind: "crypto",
                name: s.to_owned(),
                expected: CRYPTO_NAMES,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for t in SigType::ALL {
            assert_eq!(SigType::from_code(t.code()).unwrap(), t);
            assert_eq!(t.name().parse::<SigType>().unwrap(), t);
            assert_eq!(t.code().to_string().parse::<SigType>().unwrap(), t);
        }
        for t in CryptoType::ALL {
            assert_eq!(CryptoType::from_code(t.code()).unwrap(), t);
            assert_eq!(t.name().parse::<CryptoType>().unwrap(), t);
        }
        assert_eq!(SigType::default(), SigType::Ed25519);
        assert_eq!("dsa".parse::<SigType>().unwrap(), SigType::DsaSha1);
        assert_eq!("P256".parse::<SigType>().unwrap(), SigType::EcdsaP256);
    }

    #[test]
    fn unknown_codes_are_errors() {
        assert_eq!(
            SigType::from_code(99).unwrap_err().to_string(),
            "unknown signature type 99"
        );
        assert!(matches!(
            SigType::from_code(4),
            Err(KeyError::UnsupportedSigType { code: 4, .. })
        ));
        assert_eq!(
            CryptoType::from_code(1).unwrap_err().to_string(),
            "unknown crypto type 1"
        );
        assert!("rsa".parse::<SigType>().is_err());
        assert!("".parse::<CryptoType>().is_err());
    }
}
