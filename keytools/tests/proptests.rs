//! Property tests: encodings and parsers round-trip and never panic.

use keytools::{CryptoType, Destination, PrivateKeys, SigType, encoding};
use proptest::prelude::*;

fn sig_type() -> impl Strategy<Value = SigType> {
    prop::sample::select(SigType::ALL.to_vec())
}

fn crypto_type() -> impl Strategy<Value = CryptoType> {
    prop::sample::select(CryptoType::ALL.to_vec())
}

/// A destination built by hand: arbitrary key-area bytes, a certificate for the types.
fn raw_destination() -> impl Strategy<Value = (Vec<u8>, SigType, CryptoType)> {
    (
        prop::collection::vec(any::<u8>(), 384..=384),
        sig_type(),
        crypto_type(),
        any::<[u8; 4]>(),
    )
        .prop_map(|(mut bytes, sig, crypto, excess)| {
            if sig == SigType::DsaSha1 && crypto == CryptoType::ElGamal {
                bytes.extend_from_slice(&[0, 0, 0]);
            } else {
                let extra = if sig == SigType::EcdsaP521 { 4 } else { 0 };
                bytes.push(5);
                bytes.extend_from_slice(&(4u16 + extra).to_be_bytes());
                bytes.extend_from_slice(&sig.code().to_be_bytes());
                bytes.extend_from_slice(&crypto.code().to_be_bytes());
                bytes.extend_from_slice(&excess[..usize::from(extra)]);
            }
            (bytes, sig, crypto)
        })
}

proptest! {
    #[test]
    fn base64_round_trip(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let s = encoding::base64_encode(&bytes);
        prop_assert!(s.bytes().all(|c| c.is_ascii_alphanumeric() || b"-~=".contains(&c)));
        if !bytes.is_empty() {
            prop_assert_eq!(encoding::base64_decode(&s).unwrap(), bytes.clone());
            prop_assert_eq!(encoding::base64_decode(s.trim_end_matches('=')).unwrap(), bytes);
        }
    }

    #[test]
    fn base32_round_trip(bytes in prop::collection::vec(any::<u8>(), 0..100)) {
        let s = encoding::base32_encode(&bytes);
        prop_assert_eq!(s.to_ascii_lowercase(), s.clone());
        prop_assert_eq!(encoding::base32_decode(&s).unwrap(), bytes);
    }

    #[test]
    fn decoders_never_panic(s in ".{0,700}") {
        let _ = encoding::base64_decode(&s);
        let _ = encoding::base32_decode(&s);
        let _ = keytools::verify_bob(&s);
        let _ = keytools::verify_strict(&s);
        let _ = PrivateKeys::from_base64(&s);
    }

    #[test]
    fn parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1200)) {
        keytools::fuzzing::destination(&bytes);
        keytools::fuzzing::private_keys(&bytes);
    }

    #[test]
    fn destination_round_trip((bytes, sig, crypto) in raw_destination(), trailing in prop::collection::vec(any::<u8>(), 0..50)) {
        let d = Destination::from_bytes(&bytes).unwrap();
        prop_assert_eq!(d.as_bytes(), &bytes[..]);
        prop_assert_eq!(d.sig_type(), sig);
        prop_assert_eq!(d.crypto_type(), crypto);
        prop_assert_eq!(Destination::from_base64(&d.to_base64()).unwrap(), d.clone());
        let b32 = d.b32();
        prop_assert_eq!(b32.len(), 60);
        prop_assert!(b32.ends_with(".b32.i2p"));
        prop_assert_eq!(d.signing_public_key().len(), sig.public_key_len());
        let mut longer = bytes.clone();
        longer.extend_from_slice(&trailing);
        let (p, n) = Destination::from_bytes_prefix(&longer).unwrap();
        prop_assert_eq!(n, bytes.len());
        prop_assert_eq!(p, d);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn generated_keys_round_trip(sig in sig_type(), crypto in crypto_type(), msg in prop::collection::vec(any::<u8>(), 0..200)) {
        let k = PrivateKeys::generate(sig, crypto).unwrap();
        let again = PrivateKeys::from_bytes(&k.to_bytes()).unwrap();
        prop_assert_eq!(again.to_base64(), k.to_base64());
        // prop-161 padding: the first 32 bytes repeat through the unused crypto area
        let d = k.destination().as_bytes();
        if crypto == CryptoType::ElGamal {
            prop_assert_eq!(&d[..32], &d[224..256]);
        }
        // sign with the blob, verify with the key taken back out of the serialized destination
        let sig_bytes = k.sign(&msg).unwrap();
        let public = Destination::from_bytes(d).unwrap();
        prop_assert!(public.verify(&msg, &sig_bytes).is_ok());
        prop_assert!(keytools::verify_strict(&public.to_base64()).is_ok());
    }
}
