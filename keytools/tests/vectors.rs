//! Every shared test vector: parse, re-serialize byte-exactly, b32 equal, keys consistent.

use keytools::{
    CryptoType, Destination, KeyError, PrivateKeys, SigType, encoding, verify_bob, verify_strict,
};

const DEST_VECTORS: &str = include_str!("../test-vectors/dest-vectors.txt");
const KEY_VECTORS: &str = include_str!("../test-vectors/privkey-vectors.txt");

fn lines(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().collect())
}

#[test]
fn destination_vectors() {
    let mut n = 0;
    for f in lines(DEST_VECTORS) {
        let (label, b32, b64) = (f[0], f[1], f[2]);
        let d = Destination::from_base64(b64).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(d.to_base64(), b64, "{label}: base64 round trip");
        assert_eq!(
            d.as_bytes(),
            encoding::base64_decode(b64).unwrap(),
            "{label}"
        );
        assert_eq!(d.b32(), format!("{b32}.b32.i2p"), "{label}: b32");
        assert_eq!(verify_bob(b64).unwrap(), d, "{label}");
        verify_strict(b64).unwrap_or_else(|e| panic!("{label}: strict: {e}"));
        let expect_len = match d.sig_type() {
            SigType::DsaSha1 if d.cert_type() == 0 => 387,
            SigType::EcdsaP521 => 395,
            _ => 391,
        };
        assert_eq!(d.as_bytes().len(), expect_len, "{label}");
        n += 1;
    }
    assert!(n >= 13, "only {n} destination vectors");
}

#[test]
fn destination_vectors_cover_every_type() {
    let mut sigs = Vec::new();
    let mut cryptos = Vec::new();
    for f in lines(DEST_VECTORS) {
        let d = Destination::from_base64(f[2]).unwrap();
        sigs.push(d.sig_type());
        cryptos.push(d.crypto_type());
    }
    for t in SigType::ALL {
        assert!(sigs.contains(&t), "no vector for {t}");
    }
    assert!(cryptos.contains(&CryptoType::X25519));
}

#[test]
fn private_key_vectors() {
    let mut n = 0;
    let mut offline = 0;
    for f in lines(KEY_VECTORS) {
        let (label, b32, total, dlen, b64) = (f[0], f[1], f[2], f[3], f[4]);
        let total: usize = total.parse().unwrap();
        let dlen: usize = dlen.parse().unwrap();
        let k = PrivateKeys::from_base64(b64).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(k.to_base64(), b64, "{label}: byte-exact");
        assert_eq!(k.to_bytes().len(), total, "{label}");
        assert_eq!(k.destination().as_bytes().len(), dlen, "{label}");
        assert_eq!(k.destination().b32(), format!("{b32}.b32.i2p"), "{label}");
        // Java BOB verify accepts a whole key blob (trailing bytes ignored) ...
        assert_eq!(&verify_bob(b64).unwrap(), k.destination(), "{label}");
        // ... the strict verifier and Destination::from_base64 do not
        assert!(matches!(
            Destination::from_base64(b64),
            Err(KeyError::TrailingBytes { .. })
        ));
        assert!(verify_strict(b64).is_err());
        if let Some(o) = k.offline() {
            offline += 1;
            assert!(k.sign(b"m").is_err());
            let (t, s) = k.sign_current(b"m").unwrap();
            assert_eq!(t, o.transient_type);
            let _ = s;
        } else {
            let s = k.sign(b"vector message").unwrap();
            k.destination().verify(b"vector message", &s).unwrap();
        }
        n += 1;
    }
    assert_eq!(n, 9);
    assert_eq!(offline, 1);
}

#[test]
fn damaged_private_keys_are_rejected() {
    for f in lines(KEY_VECTORS) {
        let raw = encoding::base64_decode(f[4]).unwrap();
        // truncated
        let e = PrivateKeys::from_bytes(&raw[..raw.len() - 1]).unwrap_err();
        assert!(matches!(e, KeyError::Truncated { .. }), "{}: {e}", f[0]);
        // trailing
        let mut longer = raw.clone();
        longer.push(0);
        assert!(matches!(
            PrivateKeys::from_bytes(&longer),
            Err(KeyError::TrailingBytes { extra: 1, .. })
        ));
        assert!(PrivateKeys::from_bytes_prefix(&longer).is_ok());
        // last private-key byte flipped: mismatch (or bad offline key)
        let mut bad = raw.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(PrivateKeys::from_bytes(&bad).is_err(), "{}", f[0]);
    }
}

#[test]
fn offline_signature_is_checked() {
    let f = lines(KEY_VECTORS)
        .find(|f| f[0].contains("offline"))
        .unwrap();
    let raw = encoding::base64_decode(f[4]).unwrap();
    let k = PrivateKeys::from_bytes(&raw).unwrap();
    let o = k.offline().unwrap().clone();
    let dlen = k.destination().as_bytes().len();
    let off = dlen + 256 + 32; // offline section start (Ed25519 + ElGamal)
    // flip a bit in the signature
    let mut bad = raw.clone();
    bad[off + 6 + 32] ^= 1;
    assert_eq!(
        PrivateKeys::from_bytes(&bad).unwrap_err(),
        KeyError::BadSignature("offline signature")
    );
    // an expiry in the past: the signature is then also wrong, but the expiry is checked first
    let mut expired = raw.clone();
    expired[off..off + 4].copy_from_slice(&1u32.to_be_bytes());
    assert!(matches!(
        PrivateKeys::from_bytes(&expired),
        Err(KeyError::OfflineExpired { expires: 1, .. })
    ));
    assert!(o.expires > 1_700_000_000);
}

#[test]
fn damaged_destinations_give_clear_errors() {
    let f = lines(DEST_VECTORS).next().unwrap();
    let raw = encoding::base64_decode(f[2]).unwrap();
    let e = Destination::from_bytes(&raw[..100]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "truncated destination: need 387 bytes, have 100"
    );
    let e = Destination::from_bytes(&raw[..389]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "truncated destination: need 391 bytes, have 389"
    );
    let mut unknown = raw.clone();
    unknown[388] = 99; // sig type low byte
    assert_eq!(
        Destination::from_bytes(&unknown).unwrap_err().to_string(),
        "unknown signature type 99"
    );
    let mut crypto = raw.clone();
    crypto[390] = 9;
    assert_eq!(
        Destination::from_bytes(&crypto).unwrap_err().to_string(),
        "unknown crypto type 9"
    );
    let mut cert = raw.clone();
    cert[384] = 3;
    assert!(matches!(
        Destination::from_bytes(&cert),
        Err(KeyError::UnsupportedCertificate(3))
    ));
    // not base64
    assert!(matches!(
        Destination::from_base64("abc+def/"),
        Err(KeyError::Base64(_))
    ));
    // invalid Ed25519 point: Java-BOB verify accepts it, strict does not
    let mut bad_point = raw.clone();
    // y = 2 is not on the curve (no x with x^2 = (y^2-1)/(dy^2+1) for y = 2)
    bad_point[352..384].copy_from_slice(&{
        let mut y = [0u8; 32];
        y[0] = 2;
        y
    });
    let b64 = encoding::base64_encode(&bad_point);
    assert!(verify_bob(&b64).is_ok());
    assert!(matches!(verify_strict(&b64), Err(KeyError::PublicKey(_))));
}
