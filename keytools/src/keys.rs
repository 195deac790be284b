//! `PrivateKeys` = the BOB KEYS blob: Destination ‖ private key ‖ signing private key
//! [‖ offline section].
//!
//! The same layout is used by Java `eepPriv.dat`, i2pd key files and BOB `getkeys`/`setkeys`.
//! If the signing private key is all zero, an offline-signature section follows (proposal 123):
//! `expires u32 | transient sigtype u16 | transient public key | signature by the destination key
//! over the previous three fields | transient private key`.

use std::ops::Range;
use std::time::{SystemTime, UNIX_EPOCH};

use zeroize::{Zeroize, Zeroizing};

use crate::crypto;
use crate::destination::Destination;
use crate::encoding;
use crate::error::KeyError;
use crate::types::{CryptoType, SigType};

/// The offline-signature section of a private-key blob (public parts only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineSignature {
    /// Expiry, seconds since the Unix epoch.
    pub expires: u32,
    /// Type of the transient signing key.
    pub transient_type: SigType,
    /// The transient signing public key.
    pub transient_public_key: Vec<u8>,
    /// Signature by the destination's key over `expires | transient_type | transient_public_key`.
    pub signature: Vec<u8>,
}

/// A private-key blob. `Debug` is redacted; secret bytes are zeroized on drop.
#[derive(Clone)]
pub struct PrivateKeys {
    destination: Destination,
    /// the whole blob as serialized (destination included)
    bytes: Vec<u8>,
    /// where the effective signing private key lives in `bytes`
    /// (the transient key when the blob is offline-signed)
    signing_private: Range<usize>,
    offline: Option<OfflineSignature>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl PrivateKeys {
    /// Generates new keys of the given types (proposal-161 padding).
    ///
    /// The destination's unused areas are filled with one 32-byte random block repeated
    /// (compressible, as Java and i2pd do). With ElGamal the 256-byte public key is such a
    /// placeholder and the private key is 256 random bytes (like Java and i2pd BOB); with X25519 a
    /// real X25519 key pair is made. DSA-SHA1 + ElGamal gets a NULL certificate (Java-BOB
    /// compatible, 884 base64 characters).
    ///
    /// # Errors
    /// [`KeyError::Random`] if the OS RNG fails (every [`SigType`]/[`CryptoType`] is supported).
    pub fn generate(sig: SigType, crypto: CryptoType) -> Result<Self, KeyError> {
        // one RNG call: padding (32) | crypto private key (256) | signing-key entropy (64)
        let mut rnd = Zeroizing::new([0u8; 32 + 256 + 64]);
        crypto::random(rnd.as_mut())?;
        let mut entropy = Zeroizing::new([0u8; 64]);
        entropy.copy_from_slice(&rnd[288..]);
        let (sk, pk) = crypto::generate(sig, &entropy)?;
        let mut pad = [0u8; 32];
        pad.copy_from_slice(&rnd[..32]);
        let cpriv_len = crypto.private_key_len();
        let cpub = match crypto {
            CryptoType::ElGamal => None,
            CryptoType::X25519 => {
                let mut k = Zeroizing::new([0u8; 32]);
                k.copy_from_slice(&rnd[32..64]);
                Some(curve25519_dalek::MontgomeryPoint::mul_base_clamped(*k).to_bytes())
            }
        };
        let destination =
            Destination::assemble(sig, crypto, cpub.as_ref().map(|p| &p[..]), &pk, &pad);
        let dlen = destination.as_bytes().len();
        let mut bytes = Vec::with_capacity(dlen + cpriv_len + sk.len());
        bytes.extend_from_slice(destination.as_bytes());
        bytes.extend_from_slice(&rnd[32..32 + cpriv_len]);
        let start = bytes.len();
        bytes.extend_from_slice(&sk);
        Ok(Self {
            destination,
            signing_private: start..bytes.len(),
            bytes,
            offline: None,
        })
    }

    /// Parses a blob at the start of `bytes`; returns it and the bytes consumed
    /// (i2pd ignores bytes after the blob; callers decide).
    ///
    /// Checks that the signing private key belongs to the destination's public key, and for
    /// offline-signed blobs that the section has not expired, that its signature verifies and
    /// that the transient private key matches the transient public key.
    ///
    /// # Errors
    /// [`KeyError`].
    pub fn from_bytes_prefix(bytes: &[u8]) -> Result<(Self, usize), KeyError> {
        Self::parse(bytes, Some(now_secs()))
    }

    fn parse(bytes: &[u8], now: Option<u64>) -> Result<(Self, usize), KeyError> {
        let (destination, dlen) = Destination::from_bytes_prefix(bytes)?;
        let sig = destination.sig_type();
        let need = |n: usize| -> Result<(), KeyError> {
            if bytes.len() < n {
                Err(KeyError::Truncated {
                    what: "private keys",
                    need: n,
                    have: bytes.len(),
                })
            } else {
                Ok(())
            }
        };
        let spriv_start = dlen + destination.crypto_type().private_key_len();
        let spriv = spriv_start..spriv_start + sig.private_key_len();
        need(spriv.end)?;
        let mut pos = spriv.end;
        let (signing_private, offline) = if bytes[spriv.clone()].iter().all(|&b| b == 0) {
            need(pos + 6)?;
            let expires =
                u32::from_be_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]]);
            let ttype = SigType::from_code(u16::from_be_bytes([bytes[pos + 4], bytes[pos + 5]]))?;
            let signed_start = pos;
            pos += 6;
            need(pos + ttype.public_key_len())?;
            let tpub = bytes[pos..pos + ttype.public_key_len()].to_vec();
            pos += ttype.public_key_len();
            let signed = &bytes[signed_start..pos];
            need(pos + sig.signature_len())?;
            let signature = bytes[pos..pos + sig.signature_len()].to_vec();
            pos += sig.signature_len();
            need(pos + ttype.private_key_len())?;
            let tpriv = pos..pos + ttype.private_key_len();
            pos = tpriv.end;
            if let Some(now) = now
                && u64::from(expires) < now
            {
                return Err(KeyError::OfflineExpired {
                    expires: u64::from(expires),
                    now,
                });
            }
            destination
                .verify(signed, &signature)
                .map_err(|_| KeyError::BadSignature("offline signature"))?;
            if crypto::public_from_private(ttype, &bytes[tpriv.clone()])? != tpub {
                return Err(KeyError::KeyMismatch);
            }
            let off = OfflineSignature {
                expires,
                transient_type: ttype,
                transient_public_key: tpub,
                signature,
            };
            (tpriv, Some(off))
        } else {
            let derived = crypto::public_from_private(sig, &bytes[spriv.clone()])?;
            if derived != destination.signing_public_key() {
                return Err(KeyError::KeyMismatch);
            }
            (spriv, None)
        };
        Ok((
            Self {
                destination,
                bytes: bytes[..pos].to_vec(),
                signing_private,
                offline,
            },
            pos,
        ))
    }

    /// Parses a blob (trailing bytes are an error). See [`PrivateKeys::from_bytes_prefix`].
    ///
    /// # Errors
    /// [`KeyError`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let (k, n) = Self::from_bytes_prefix(bytes)?;
        if n != bytes.len() {
            return Err(KeyError::TrailingBytes {
                what: "private keys",
                extra: bytes.len() - n,
            });
        }
        Ok(k)
    }

    /// As [`PrivateKeys::from_bytes`] but without the expiry check of an offline section (the
    /// signature and key checks still apply): for showing what an expired blob is.
    ///
    /// # Errors
    /// [`KeyError`].
    pub fn from_bytes_any_expiry(bytes: &[u8]) -> Result<Self, KeyError> {
        let (k, n) = Self::parse(bytes, None)?;
        if n != bytes.len() {
            return Err(KeyError::TrailingBytes {
                what: "private keys",
                extra: bytes.len() - n,
            });
        }
        Ok(k)
    }

    /// Makes an offline-signed blob (proposal 123, as i2pd `offlinekeys` writes): a fresh
    /// transient key of type `transient` certified until `expires` (seconds since the epoch)
    /// by this blob's long-term signing key, which the result does not contain (its signing
    /// private key is all zero). The result is re-parsed and fully checked.
    ///
    /// # Errors
    /// [`KeyError::OfflineKey`] if this blob is itself offline-signed,
    /// [`KeyError::OfflineExpired`] if `expires` is not in the future, [`KeyError`] from key
    /// generation or signing.
    pub fn offline_sign(&self, transient: SigType, expires: u32) -> Result<Self, KeyError> {
        if self.offline.is_some() {
            return Err(KeyError::OfflineKey);
        }
        let now = now_secs();
        if u64::from(expires) <= now {
            return Err(KeyError::OfflineExpired {
                expires: u64::from(expires),
                now,
            });
        }
        let mut entropy = Zeroizing::new([0u8; 64]);
        crypto::random(entropy.as_mut())?;
        let (tpriv, tpub) = crypto::generate(transient, &entropy)?;
        let mut signed = Vec::with_capacity(6 + tpub.len());
        signed.extend_from_slice(&expires.to_be_bytes());
        signed.extend_from_slice(&transient.code().to_be_bytes());
        signed.extend_from_slice(&tpub);
        let signature = self.sign(&signed)?;
        let sig = self.destination.sig_type();
        let mut blob = Zeroizing::new(Vec::new());
        // destination and crypto private key, then a zero signing private key
        blob.extend_from_slice(&self.bytes[..self.signing_private.start]);
        blob.extend(std::iter::repeat_n(0u8, sig.private_key_len()));
        blob.extend_from_slice(&signed);
        blob.extend_from_slice(&signature);
        blob.extend_from_slice(&tpriv);
        Self::from_bytes(&blob)
    }

    /// Parses I2P base64 of a blob.
    ///
    /// # Errors
    /// [`KeyError`].
    pub fn from_base64(b64: &str) -> Result<Self, KeyError> {
        let mut raw = encoding::base64_decode(b64)?;
        let r = Self::from_bytes(&raw);
        raw.zeroize();
        r
    }

    /// The serialized blob.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.bytes.clone()
    }

    /// I2P base64 of the blob.
    pub fn to_base64(&self) -> String {
        encoding::base64_encode(&self.bytes)
    }

    /// The public destination.
    pub fn destination(&self) -> &Destination {
        &self.destination
    }

    /// The offline-signature section, if the blob has one.
    pub fn offline(&self) -> Option<&OfflineSignature> {
        self.offline.as_ref()
    }

    /// Signs `msg` with the destination's signing key (verifiable with
    /// [`Destination::verify`]).
    ///
    /// # Errors
    /// [`KeyError::OfflineKey`] for offline-signed blobs (only the transient key is present).
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        if self.offline.is_some() {
            return Err(KeyError::OfflineKey);
        }
        crypto::sign(
            self.destination.sig_type(),
            &self.bytes[self.signing_private.clone()],
            msg,
        )
    }

    /// Signs `msg` with the transient key of an offline-signed blob, or with the destination
    /// key otherwise; returns the signature type used with the signature.
    ///
    /// # Errors
    /// [`KeyError`] if signing fails.
    pub fn sign_current(&self, msg: &[u8]) -> Result<(SigType, Vec<u8>), KeyError> {
        let t = self
            .offline
            .as_ref()
            .map_or_else(|| self.destination.sig_type(), |o| o.transient_type);
        Ok((
            t,
            crypto::sign(t, &self.bytes[self.signing_private.clone()], msg)?,
        ))
    }

    /// Builds a blob from a modified copy of its destination bytes (same keys, other padding).
    /// Used by the vanity search; the result is re-parsed and fully checked.
    pub(crate) fn with_destination_bytes(&self, dest: &[u8]) -> Result<Self, KeyError> {
        let dlen = self.destination.as_bytes().len();
        let mut blob = self.bytes.clone();
        blob[..dlen].copy_from_slice(dest);
        let r = Self::from_bytes(&blob);
        blob.zeroize();
        r
    }
}

impl Drop for PrivateKeys {
    fn drop(&mut self) {
        self.bytes.zeroize();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_every_combination_round_trips() {
        for sig in SigType::ALL {
            for crypto in CryptoType::ALL {
                let k = PrivateKeys::generate(sig, crypto).unwrap();
                let back = PrivateKeys::from_base64(&k.to_base64()).unwrap();
                assert_eq!(back.to_bytes(), k.to_bytes());
                assert_eq!(back.destination().sig_type(), sig);
                assert_eq!(back.destination().crypto_type(), crypto);
                let s = k.sign(b"msg").unwrap();
                Destination::from_bytes(k.destination().as_bytes())
                    .unwrap()
                    .verify(b"msg", &s)
                    .unwrap();
            }
        }
    }

    #[test]
    fn debug_is_redacted() {
        let k = PrivateKeys::generate(SigType::Ed25519, CryptoType::ElGamal).unwrap();
        let d = format!("{k:?}");
        assert!(d.contains("redacted"));
        assert!(!d.contains(&k.to_base64()[..20]));
    }

    #[test]
    fn offline_sign_round_trips_for_every_type() {
        let expires = (now_secs() + 86_400) as u32;
        for long in SigType::ALL {
            let k = PrivateKeys::generate(long, CryptoType::X25519).unwrap();
            for t in [SigType::Ed25519, SigType::EcdsaP256, SigType::RedDsa] {
                let o = k.offline_sign(t, expires).unwrap();
                assert_eq!(o.destination(), k.destination());
                let off = o.offline().unwrap();
                assert_eq!((off.expires, off.transient_type), (expires, t));
                let back = PrivateKeys::from_base64(&o.to_base64()).unwrap();
                assert_eq!(back.to_bytes(), o.to_bytes());
                // only the transient key signs now
                assert!(matches!(o.sign(b"m"), Err(KeyError::OfflineKey)));
                let (st, sig) = o.sign_current(b"m").unwrap();
                assert_eq!(st, t);
                crypto::verify(t, &off.transient_public_key, b"m", &sig).unwrap();
                // the certificate is signed by the long-term key
                let mut signed = expires.to_be_bytes().to_vec();
                signed.extend_from_slice(&t.code().to_be_bytes());
                signed.extend_from_slice(&off.transient_public_key);
                k.destination().verify(&signed, &off.signature).unwrap();
                assert!(matches!(
                    o.offline_sign(t, expires),
                    Err(KeyError::OfflineKey)
                ));
            }
        }
        let k = PrivateKeys::generate(SigType::Ed25519, CryptoType::ElGamal).unwrap();
        assert!(matches!(
            k.offline_sign(SigType::Ed25519, 1000),
            Err(KeyError::OfflineExpired { .. })
        ));
    }

    #[test]
    fn expired_offline_is_rejected_by_clock() {
        // parse() with a clock far in the future must reject any offline section; without
        // offline section the clock is irrelevant
        let k = PrivateKeys::generate(SigType::Ed25519, CryptoType::ElGamal).unwrap();
        assert!(PrivateKeys::parse(&k.to_bytes(), Some(u64::MAX)).is_ok());
        let o = k
            .offline_sign(SigType::Ed25519, (now_secs() + 60) as u32)
            .unwrap();
        assert!(matches!(
            PrivateKeys::parse(&o.to_bytes(), Some(u64::MAX)),
            Err(KeyError::OfflineExpired { .. })
        ));
        assert!(PrivateKeys::from_bytes_any_expiry(&o.to_bytes()).is_ok());
    }
}
