//! `Destination` = KeysAndCert: 256-byte crypto area, 128-byte signing area, certificate.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::crypto;
use crate::encoding;
use crate::error::KeyError;
use crate::types::{CryptoType, SigType};

/// Bytes before the certificate: 256-byte crypto key area + 128-byte signing key area.
pub const KEYS_LEN: usize = 384;
/// Shortest destination: the key areas plus a NULL certificate.
pub const MIN_LEN: usize = KEYS_LEN + 3;
/// Certificate type code of a NULL certificate.
pub const CERT_NULL: u8 = 0;
/// Certificate type code of a KEY certificate.
pub const CERT_KEY: u8 = 5;

/// A parsed I2P destination. Keeps its exact serialized bytes (the hash covers them).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    bytes: Vec<u8>,
    sig: SigType,
    crypto: CryptoType,
}

impl Destination {
    /// Parses a destination at the start of `bytes`; returns it and the bytes consumed.
    ///
    /// Accepts NULL certificates (DSA-SHA1 + ElGamal) and KEY certificates with a supported
    /// signature type (0, 1, 2, 3, 7, 11) and crypto type (0, 4). Like Java I2P, a KEY certificate
    /// with crypto type 0 must not carry data beyond the excess signing-key bytes. Padding and
    /// key values are not checked here (see [`crate::verify_strict`]).
    ///
    /// # Errors
    /// [`KeyError`] for truncated data, unsupported certificates or unknown types.
    pub fn from_bytes_prefix(bytes: &[u8]) -> Result<(Self, usize), KeyError> {
        if bytes.len() < MIN_LEN {
            return Err(KeyError::Truncated {
                what: "destination",
                need: MIN_LEN,
                have: bytes.len(),
            });
        }
        let cert_type = bytes[KEYS_LEN];
        let cert_len = usize::from(u16::from_be_bytes([
            bytes[KEYS_LEN + 1],
            bytes[KEYS_LEN + 2],
        ]));
        let total = MIN_LEN + cert_len;
        if bytes.len() < total {
            return Err(KeyError::Truncated {
                what: "destination",
                need: total,
                have: bytes.len(),
            });
        }
        let payload = &bytes[MIN_LEN..total];
        let (sig, crypto) = match cert_type {
            CERT_NULL => {
                if cert_len != 0 {
                    return Err(KeyError::Certificate(format!(
                        "NULL certificate with {cert_len} payload bytes"
                    )));
                }
                (SigType::DsaSha1, CryptoType::ElGamal)
            }
            CERT_KEY => {
                if cert_len < 4 {
                    return Err(KeyError::Certificate(format!(
                        "KEY certificate payload is {cert_len} bytes, need at least 4"
                    )));
                }
                let sig = SigType::from_code(u16::from_be_bytes([payload[0], payload[1]]))?;
                let crypto = CryptoType::from_code(u16::from_be_bytes([payload[2], payload[3]]))?;
                let excess = sig.public_key_len().saturating_sub(128);
                if cert_len < 4 + excess {
                    return Err(KeyError::Certificate(format!(
                        "KEY certificate for {sig} needs {} bytes, has {cert_len}",
                        4 + excess
                    )));
                }
                if crypto == CryptoType::ElGamal && cert_len != 4 + excess {
                    return Err(KeyError::Certificate(format!(
                        "excess data in KEY certificate: {} bytes, expected {}",
                        cert_len,
                        4 + excess
                    )));
                }
                (sig, crypto)
            }
            other => return Err(KeyError::UnsupportedCertificate(other)),
        };
        Ok((
            Self {
                bytes: bytes[..total].to_vec(),
                sig,
                crypto,
            },
            total,
        ))
    }

    /// Parses exactly one destination (trailing bytes are an error).
    ///
    /// # Errors
    /// [`KeyError`], including [`KeyError::TrailingBytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let (d, n) = Self::from_bytes_prefix(bytes)?;
        if n != bytes.len() {
            return Err(KeyError::TrailingBytes {
                what: "destination",
                extra: bytes.len() - n,
            });
        }
        Ok(d)
    }

    /// Parses I2P base64 holding exactly one destination.
    ///
    /// # Errors
    /// [`KeyError`].
    pub fn from_base64(b64: &str) -> Result<Self, KeyError> {
        Self::from_bytes(&encoding::base64_decode(b64)?)
    }

    /// The serialized bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// I2P base64 of the bytes.
    pub fn to_base64(&self) -> String {
        encoding::base64_encode(&self.bytes)
    }

    /// SHA-256 of the bytes.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(&self.bytes).into()
    }

    /// `<52 lower-case base32 chars>.b32.i2p`
    pub fn b32(&self) -> String {
        let mut s = encoding::base32_encode(&self.hash());
        s.push_str(".b32.i2p");
        s
    }

    /// The blinded ("b33") address for an encrypted LeaseSet (I2P "B32 for Encrypted
    /// Leasesets" specification): base32 of `flags | sig type | blinded sig type | public
    /// key`, with the CRC-32 of the public key XORed (little-endian) into the first three
    /// bytes, plus `.b32.i2p`. Flags: 0x02 a secret is required, 0x04 per-client
    /// authorization. The blinded type is RedDSA (11), so only Ed25519 and RedDSA
    /// destinations have one.
    ///
    /// # Errors
    /// [`KeyError::UnsupportedSigType`] for other signature types.
    pub fn b33(&self, secret: bool, client_auth: bool) -> Result<String, KeyError> {
        if !matches!(self.sig, SigType::Ed25519 | SigType::RedDsa) {
            return Err(KeyError::UnsupportedSigType {
                code: self.sig.code(),
                name: "blinded addresses need EdDSA_SHA512_Ed25519 or RedDSA_SHA512_Ed25519",
            });
        }
        let key = self.signing_public_key();
        let mut flags = 0u8;
        if secret {
            flags |= 0x02;
        }
        if client_auth {
            flags |= 0x04;
        }
        // one-byte type codes (flag 0x01 clear): both codes are below 256
        let mut data = vec![flags, self.sig.code() as u8, SigType::RedDsa.code() as u8];
        data.extend_from_slice(&key);
        let crc = crc32fast::hash(&key).to_le_bytes();
        for i in 0..3 {
            data[i] ^= crc[i];
        }
        let mut s = encoding::base32_encode(&data);
        s.push_str(".b32.i2p");
        Ok(s)
    }

    /// The signature type.
    pub fn sig_type(&self) -> SigType {
        self.sig
    }

    /// The crypto type.
    pub fn crypto_type(&self) -> CryptoType {
        self.crypto
    }

    /// The certificate type code (0 = NULL, 5 = KEY).
    pub fn cert_type(&self) -> u8 {
        self.bytes[KEYS_LEN]
    }

    /// The certificate payload (empty for a NULL certificate).
    pub fn cert_payload(&self) -> &[u8] {
        &self.bytes[MIN_LEN..]
    }

    /// The public encryption key (left-aligned in the 256-byte area). For destinations this is
    /// usually an unused placeholder.
    pub fn crypto_public_key(&self) -> &[u8] {
        &self.bytes[..self.crypto.public_key_len()]
    }

    /// The signing public key: right-aligned in the 128-byte area, followed by any excess
    /// bytes from the KEY certificate (P521).
    pub fn signing_public_key(&self) -> Vec<u8> {
        let len = self.sig.public_key_len();
        if len <= 128 {
            self.bytes[KEYS_LEN - len..KEYS_LEN].to_vec()
        } else {
            let mut k = self.bytes[KEYS_LEN - 128..KEYS_LEN].to_vec();
            k.extend_from_slice(&self.bytes[MIN_LEN + 4..MIN_LEN + 4 + (len - 128)]);
            k
        }
    }

    /// Number of certificate bytes beyond the type codes and excess key bytes (0 when canonical).
    pub fn excess_cert_len(&self) -> usize {
        match self.cert_type() {
            CERT_KEY => {
                self.cert_payload().len() - 4 - self.sig.public_key_len().saturating_sub(128)
            }
            _ => 0,
        }
    }

    /// Checks that the signing public key is a valid key of its type (curve point / group element).
    ///
    /// # Errors
    /// [`KeyError::PublicKey`].
    pub fn check_public_key(&self) -> Result<(), KeyError> {
        crypto::check_public(self.sig, &self.signing_public_key())
    }

    /// Verifies a signature made by this destination's signing key.
    ///
    /// # Errors
    /// [`KeyError::BadSignature`] if it does not verify, [`KeyError::PublicKey`] for a bad key.
    pub fn verify(&self, msg: &[u8], signature: &[u8]) -> Result<(), KeyError> {
        crypto::verify(self.sig, &self.signing_public_key(), msg, signature)
    }

    /// Builds a destination from its parts with proposal-161 style padding: `pad` is repeated over
    /// the crypto area and the gap before the signing key.
    pub(crate) fn assemble(
        sig: SigType,
        crypto: CryptoType,
        crypto_pub: Option<&[u8]>,
        signing_pub: &[u8],
        pad: &[u8; 32],
    ) -> Self {
        let spk_len = sig.public_key_len();
        let excess = spk_len.saturating_sub(128);
        let null_cert = sig == SigType::DsaSha1 && crypto == CryptoType::ElGamal;
        let cert_len = if null_cert { 0 } else { 4 + excess };
        let mut bytes = Vec::with_capacity(MIN_LEN + cert_len);
        for i in 0..KEYS_LEN {
            bytes.push(pad[i % 32]);
        }
        if let Some(c) = crypto_pub {
            bytes[..c.len()].copy_from_slice(c);
        }
        let in_area = spk_len.min(128);
        bytes[KEYS_LEN - in_area..KEYS_LEN].copy_from_slice(&signing_pub[..in_area]);
        if null_cert {
            bytes.extend_from_slice(&[CERT_NULL, 0, 0]);
        } else {
            bytes.push(CERT_KEY);
            bytes.extend_from_slice(&(cert_len as u16).to_be_bytes());
            bytes.extend_from_slice(&sig.code().to_be_bytes());
            bytes.extend_from_slice(&crypto.code().to_be_bytes());
            bytes.extend_from_slice(&signing_pub[in_area..]);
        }
        Self { bytes, sig, crypto }
    }
}

impl fmt::Debug for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Destination({} bytes)", self.bytes.len())
    }
}

impl fmt::Display for Destination {
    /// `<b32 address> (<sig type>, <crypto type>)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, {})", self.b32(), self.sig, self.crypto)
    }
}
