//! Per-signature-type key generation, public-from-private derivation, signing and verification.
//!
//! Key encodings follow I2P: Ed25519 private key = RFC 8032 seed; RedDSA private key = a
//! little-endian scalar; ECDSA private key = big-endian scalar, public key = X‖Y (no 0x04);
//! DSA private x = 20 bytes and public y = 128 bytes big-endian with the fixed I2P 1024/160 group.

use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
use crypto_bigint::{BoxedUint, Odd};
use curve25519_dalek::{EdwardsPoint, Scalar};
use sha2::{Digest, Sha512};
use signature::hazmat::PrehashVerifier;
use signature::{Signer, Verifier};
use zeroize::Zeroizing;

use crate::error::KeyError;
use crate::types::SigType;

/// I2P DSA prime p (1024 bits), from the I2P cryptography specification.
const DSA_P: &str = "9C05B2AA960D9B97B8931963C9CC9E8C3026E9B8ED92FAD0A69CC886D5BF8015\
FCADAE31A0AD18FAB3F01B00A358DE237655C4964AFAA2B337E96AD316B9FB1C\
C564B5AEC5B69A9FF6C3E4548707FEF8503D91DD8602E867E6D35D2235C1869C\
E2479C3B9D5401DE04E0727FB33D6511285D4CF29538D9E3B6051F5B22CC1C93";
/// I2P DSA subgroup order q (160 bits).
const DSA_Q: &str = "A5DFC28FEF4CA1E286744CD8EED9D29D684046B7";
/// I2P DSA generator g.
const DSA_G: &str = "0C1F4D27D40093B429E962D7223824E0BBC47E7C832A39236FC683AF84889581\
075FF9082ED32353D4374D7301CDA1D23C431F4698599DDA02451824FF369752\
593647CC3DDC197DE985E43D136CDCFC6BD5409CD2F450821142A5E6F8EB1C3A\
B5D0484B8129FCF17BCE4F7F33321C3CB3DBB14A905E7B2B3E93BE4708CBCC82";

/// Fills `buf` from the operating-system RNG.
pub(crate) fn random(buf: &mut [u8]) -> Result<(), KeyError> {
    getrandom::fill(buf).map_err(|e| KeyError::Random(e.to_string()))
}

fn hex(s: &str) -> Vec<u8> {
    // constants only; every pair is valid hex
    s.as_bytes()
        .chunks(2)
        .map(|p| {
            let d = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            d(p[0]) << 4 | d(p[1])
        })
        .collect()
}

/// A big-endian integer with a fixed precision (input must fit).
fn uint(bytes: &[u8], bits: u32) -> Result<BoxedUint, KeyError> {
    BoxedUint::from_be_slice(bytes, bits)
        .map_err(|_| KeyError::PublicKey(format!("integer longer than {bits} bits")))
}

fn dsa_components() -> Result<dsa::Components, KeyError> {
    let p = BoxedUint::from_be_slice_vartime(&hex(DSA_P));
    let q = BoxedUint::from_be_slice_vartime(&hex(DSA_Q));
    let g = BoxedUint::from_be_slice_vartime(&hex(DSA_G));
    dsa::Components::from_components(p, q, g)
        .map_err(|_| KeyError::PublicKey("DSA group parameters rejected".into()))
}

/// Big-endian bytes of `n`, left-padded or trimmed to exactly `len` bytes.
fn be_fixed(n: &BoxedUint, len: usize) -> Option<Vec<u8>> {
    let b = n.to_be_bytes();
    if b.len() >= len {
        let (head, tail) = b.split_at(b.len() - len);
        head.iter().all(|&x| x == 0).then(|| tail.to_vec())
    } else {
        let mut v = vec![0u8; len - b.len()];
        v.extend_from_slice(&b);
        Some(v)
    }
}

fn dsa_pow_g(x: &BoxedUint) -> Result<Vec<u8>, KeyError> {
    let p = BoxedUint::from_be_slice_vartime(&hex(DSA_P));
    let p = Odd::new(p)
        .into_option()
        .ok_or_else(|| KeyError::PublicKey("DSA prime is even".into()))?;
    let params = BoxedMontyParams::new_vartime(p);
    let g = uint(&hex(DSA_G), 1024)?;
    let y = BoxedMontyForm::new(g, &params).pow(x).retrieve();
    be_fixed(&y, 128).ok_or_else(|| KeyError::PublicKey("DSA y too large".into()))
}

fn dsa_verifying_key(public: &[u8]) -> Result<dsa::VerifyingKey, KeyError> {
    let y = uint(public, 1024)?;
    dsa::VerifyingKey::from_components(dsa_components()?, y)
        .map_err(|_| KeyError::PublicKey("DSA y is not an element of the I2P DSA group".into()))
}

fn dsa_x(private: &[u8]) -> Result<BoxedUint, KeyError> {
    let x = uint(private, 192)?;
    let q = uint(&hex(DSA_Q), 192)?;
    if bool::from(x.is_zero()) || x >= q {
        return Err(KeyError::PrivateKey("DSA x is not in [1, q-1]".into()));
    }
    Ok(x)
}

fn reddsa_scalar(private: &[u8]) -> Result<Scalar, KeyError> {
    let bytes: [u8; 32] = private
        .try_into()
        .map_err(|_| KeyError::PrivateKey("RedDSA key must be 32 bytes".into()))?;
    Option::from(Scalar::from_canonical_bytes(bytes))
        .ok_or_else(|| KeyError::PrivateKey("RedDSA key is not a canonical scalar".into()))
}

fn ed_seed(private: &[u8]) -> Result<ed25519_dalek::SigningKey, KeyError> {
    let seed: [u8; 32] = private
        .try_into()
        .map_err(|_| KeyError::PrivateKey("Ed25519 key must be 32 bytes".into()))?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
}

fn ed_public(public: &[u8]) -> Result<ed25519_dalek::VerifyingKey, KeyError> {
    let b: [u8; 32] = public
        .try_into()
        .map_err(|_| KeyError::PublicKey("Ed25519 key must be 32 bytes".into()))?;
    ed25519_dalek::VerifyingKey::from_bytes(&b)
        .map_err(|_| KeyError::PublicKey("not a valid Ed25519 curve point".into()))
}

macro_rules! ecdsa_ops {
    ($modname:ident, $curve:ident) => {
        mod $modname {
            use super::*;
            use $curve::ecdsa::{Signature, SigningKey, VerifyingKey};

            pub(super) fn public(private: &[u8]) -> Result<Vec<u8>, KeyError> {
                let sk = SigningKey::from_slice(private).map_err(|_| {
                    KeyError::PrivateKey(concat!(stringify!($curve), " scalar out of range").into())
                })?;
                Ok(sk.verifying_key().to_sec1_point(false).as_bytes()[1..].to_vec())
            }

            pub(super) fn verifying(public: &[u8]) -> Result<VerifyingKey, KeyError> {
                let mut sec1 = Vec::with_capacity(public.len() + 1);
                sec1.push(4);
                sec1.extend_from_slice(public);
                VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| {
                    KeyError::PublicKey(
                        concat!("not a valid ", stringify!($curve), " curve point").into(),
                    )
                })
            }

            pub(super) fn sign(private: &[u8], msg: &[u8]) -> Result<Vec<u8>, KeyError> {
                let sk = SigningKey::from_slice(private).map_err(|_| {
                    KeyError::PrivateKey(concat!(stringify!($curve), " scalar out of range").into())
                })?;
                let sig: Signature = sk.sign(msg);
                Ok(sig.to_bytes().to_vec())
            }

            pub(super) fn verify(public: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), KeyError> {
                let vk = verifying(public)?;
                let sig =
                    Signature::from_slice(sig).map_err(|_| KeyError::BadSignature("signature"))?;
                vk.verify(msg, &sig)
                    .map_err(|_| KeyError::BadSignature("signature"))
            }

            pub(super) fn generate(len: usize) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), KeyError> {
                loop {
                    let mut k = Zeroizing::new(vec![0u8; len]);
                    random(&mut k)?;
                    if len == 66 {
                        // P521 scalars are 521 bits: keep the top byte to its single bit
                        k[0] &= 1;
                    }
                    if let Ok(p) = public(&k) {
                        return Ok((k, p));
                    }
                }
            }
        }
    };
}

ecdsa_ops!(ec256, p256);
ecdsa_ops!(ec384, p384);
ecdsa_ops!(ec521, p521);

/// Derives the signing public key from the signing private key.
///
/// # Errors
/// [`KeyError::PrivateKey`] if the private key is not a valid key of `sig`.
pub(crate) fn public_from_private(sig: SigType, private: &[u8]) -> Result<Vec<u8>, KeyError> {
    if private.len() != sig.private_key_len() {
        return Err(KeyError::PrivateKey(format!(
            "{} private key must be {} bytes",
            sig,
            sig.private_key_len()
        )));
    }
    match sig {
        SigType::Ed25519 => Ok(ed_seed(private)?.verifying_key().to_bytes().to_vec()),
        SigType::RedDsa => Ok(EdwardsPoint::mul_base(&reddsa_scalar(private)?)
            .compress()
            .to_bytes()
            .to_vec()),
        SigType::EcdsaP256 => ec256::public(private),
        SigType::EcdsaP384 => ec384::public(private),
        SigType::EcdsaP521 => ec521::public(private),
        SigType::DsaSha1 => dsa_pow_g(&dsa_x(private)?),
    }
}

/// Checks that `public` is a valid public key of type `sig` (on the curve / in the group).
///
/// # Errors
/// [`KeyError::PublicKey`] naming the problem.
pub(crate) fn check_public(sig: SigType, public: &[u8]) -> Result<(), KeyError> {
    if public.len() != sig.public_key_len() {
        return Err(KeyError::PublicKey(format!(
            "{} public key must be {} bytes",
            sig,
            sig.public_key_len()
        )));
    }
    match sig {
        SigType::Ed25519 | SigType::RedDsa => ed_public(public).map(drop),
        SigType::EcdsaP256 => ec256::verifying(public).map(drop),
        SigType::EcdsaP384 => ec384::verifying(public).map(drop),
        SigType::EcdsaP521 => ec521::verifying(public).map(drop),
        SigType::DsaSha1 => dsa_verifying_key(public).map(drop),
    }
}

/// Generates a new signing key pair: (private, public).
///
/// # Errors
/// [`KeyError::Random`] if the OS RNG fails.
pub(crate) fn generate(sig: SigType) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), KeyError> {
    match sig {
        SigType::Ed25519 => {
            let mut seed = Zeroizing::new([0u8; 32]);
            random(seed.as_mut())?;
            let pk = ed25519_dalek::SigningKey::from_bytes(&seed)
                .verifying_key()
                .to_bytes()
                .to_vec();
            Ok((Zeroizing::new(seed.to_vec()), pk))
        }
        SigType::RedDsa => {
            let mut wide = Zeroizing::new([0u8; 64]);
            random(wide.as_mut())?;
            let s = Scalar::from_bytes_mod_order_wide(&wide);
            let pk = EdwardsPoint::mul_base(&s).compress().to_bytes().to_vec();
            Ok((Zeroizing::new(s.to_bytes().to_vec()), pk))
        }
        SigType::EcdsaP256 => ec256::generate(32),
        SigType::EcdsaP384 => ec384::generate(48),
        SigType::EcdsaP521 => ec521::generate(66),
        SigType::DsaSha1 => loop {
            // x uniform in [1, q-1] by rejection sampling over 160-bit values
            let mut x = Zeroizing::new(vec![0u8; 20]);
            random(&mut x)?;
            if let Ok(xn) = dsa_x(&x) {
                let y = dsa_pow_g(&xn)?;
                return Ok((x, y));
            }
        },
    }
}

/// H*(x) = SHA-512(x) mod L, as used by RedDSA.
fn hash_scalar(parts: &[&[u8]]) -> Scalar {
    let mut h = Sha512::new();
    for p in parts {
        h.update(p);
    }
    let d: [u8; 64] = h.finalize().into();
    Scalar::from_bytes_mod_order_wide(&d)
}

/// Signs `msg` with a private key of type `sig`.
///
/// # Errors
/// [`KeyError::PrivateKey`] for a bad key, [`KeyError::Random`] if the RNG fails.
pub(crate) fn sign(sig: SigType, private: &[u8], msg: &[u8]) -> Result<Vec<u8>, KeyError> {
    match sig {
        SigType::Ed25519 => Ok(ed_seed(private)?.sign(msg).to_bytes().to_vec()),
        SigType::RedDsa => {
            // I2P RedDSA: r = H*(T ‖ A ‖ M) with 80 random bytes T; R = rB; S = r + H*(R ‖ A ‖ M)·a
            let a = reddsa_scalar(private)?;
            let pk = EdwardsPoint::mul_base(&a).compress().to_bytes();
            let mut t = Zeroizing::new([0u8; 80]);
            random(t.as_mut())?;
            let r = hash_scalar(&[t.as_ref(), &pk, msg]);
            let big_r = EdwardsPoint::mul_base(&r).compress().to_bytes();
            let k = hash_scalar(&[&big_r, &pk, msg]);
            let s = r + k * a;
            let mut out = big_r.to_vec();
            out.extend_from_slice(&s.to_bytes());
            Ok(out)
        }
        SigType::EcdsaP256 => ec256::sign(private, msg),
        SigType::EcdsaP384 => ec384::sign(private, msg),
        SigType::EcdsaP521 => ec521::sign(private, msg),
        SigType::DsaSha1 => {
            let x = dsa_x(private)?;
            let vk = dsa_verifying_key(&dsa_pow_g(&x)?)?;
            let sk = dsa::SigningKey::from_components(vk, x)
                .map_err(|_| KeyError::PrivateKey("DSA x rejected".into()))?;
            let h = sha1::Sha1::digest(msg);
            let s = sk
                .sign_prehashed_rfc6979::<sha1::Sha1>(&h)
                .map_err(|_| KeyError::PrivateKey("DSA signing failed".into()))?;
            let mut out = be_fixed(s.r(), 20).ok_or(KeyError::BadSignature("DSA r"))?;
            out.extend(be_fixed(s.s(), 20).ok_or(KeyError::BadSignature("DSA s"))?);
            Ok(out)
        }
    }
}

/// Verifies `signature` over `msg` with a public key of type `sig`.
///
/// # Errors
/// [`KeyError::PublicKey`] for a bad key, [`KeyError::BadSignature`] if it does not verify.
pub(crate) fn verify(
    sig: SigType,
    public: &[u8],
    msg: &[u8],
    signature: &[u8],
) -> Result<(), KeyError> {
    let bad = KeyError::BadSignature("signature");
    if signature.len() != sig.signature_len() {
        return Err(bad);
    }
    match sig {
        // RedDSA verification is the Ed25519 equation with SHA-512: SB = R + H(R‖A‖M)A
        SigType::Ed25519 | SigType::RedDsa => {
            let vk = ed_public(public)?;
            let s = ed25519_dalek::Signature::from_slice(signature).map_err(|_| bad.clone())?;
            vk.verify(msg, &s).map_err(|_| bad)
        }
        SigType::EcdsaP256 => ec256::verify(public, msg, signature),
        SigType::EcdsaP384 => ec384::verify(public, msg, signature),
        SigType::EcdsaP521 => ec521::verify(public, msg, signature),
        SigType::DsaSha1 => {
            let vk = dsa_verifying_key(public)?;
            let r = BoxedUint::from_be_slice_vartime(&signature[..20]);
            let s = BoxedUint::from_be_slice_vartime(&signature[20..]);
            let s = dsa::Signature::from_components(r, s).ok_or_else(|| bad.clone())?;
            let h = sha1::Sha1::digest(msg);
            vk.verify_prehash(&h, &s).map_err(|_| bad)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_generates_signs_and_verifies() {
        for t in SigType::ALL {
            let (sk, pk) = generate(t).unwrap();
            assert_eq!(sk.len(), t.private_key_len(), "{t}");
            assert_eq!(pk.len(), t.public_key_len(), "{t}");
            assert_eq!(public_from_private(t, &sk).unwrap(), pk, "{t}");
            check_public(t, &pk).unwrap();
            let sig = sign(t, &sk, b"hello").unwrap();
            assert_eq!(sig.len(), t.signature_len(), "{t}");
            verify(t, &pk, b"hello", &sig).unwrap();
            assert!(verify(t, &pk, b"hellO", &sig).is_err(), "{t}");
        }
    }
}
