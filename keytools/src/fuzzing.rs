//! Fuzz-target bodies, shared by the cargo-fuzz crate (`keytools/fuzz`) and the stable test that
//! replays its seed corpus. Each function must never panic on any input; the assertions inside
//! check round-trip properties of whatever parses.

use crate::{Destination, PrivateKeys, encoding, verify_bob, verify_strict};

/// Destination parsing: any prefix that parses must re-serialize byte-exactly.
pub fn destination(data: &[u8]) {
    if let Ok((d, n)) = Destination::from_bytes_prefix(data) {
        assert_eq!(d.as_bytes(), &data[..n]);
        let again = Destination::from_base64(&d.to_base64()).expect("re-parse");
        assert_eq!(again, d);
        assert_eq!(d.b32().len(), 60);
        let _ = d.check_public_key();
        let _ = verify_strict(&d.to_base64());
        let _ = d.signing_public_key();
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = verify_bob(text);
        if let Ok(raw) = encoding::base64_decode(text) {
            assert_eq!(
                encoding::base64_decode(&encoding::base64_encode(&raw)).ok(),
                Some(raw)
            );
        }
    }
}

/// Private-key parsing: any blob that parses must re-serialize byte-exactly.
pub fn private_keys(data: &[u8]) {
    if let Ok((k, n)) = PrivateKeys::from_bytes_prefix(data) {
        assert_eq!(k.to_bytes(), &data[..n]);
        let again = PrivateKeys::from_base64(&k.to_base64()).expect("re-parse");
        assert_eq!(again.to_bytes(), k.to_bytes());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = PrivateKeys::from_base64(text);
    }
}
