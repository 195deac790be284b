//! I2P base64 (`A-Z a-z 0-9 - ~`, `=` padding) and lower-case unpadded base32.
//!
//! Both codecs come from crates (`base64` with a custom alphabet, `data-encoding` for base32);
//! this module only fixes the I2P variants and turns errors into [`KeyError`].

use base64::Engine as _;
use base64::alphabet::Alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::error::KeyError;

/// The I2P base64 alphabet: RFC 4648 with `+` → `-` and `/` → `~`.
pub const I2P_BASE64_ALPHABET: &str =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-~";

const ALPHABET: Alphabet = match Alphabet::new(I2P_BASE64_ALPHABET) {
    Ok(a) => a,
    Err(_) => panic!("the I2P base64 alphabet is valid"),
};

/// Writes `=` padding; accepts input with or without padding; rejects non-zero trailing bits.
const ENGINE: GeneralPurpose = GeneralPurpose::new(
    &ALPHABET,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Encodes bytes as I2P base64 with `=` padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    ENGINE.encode(bytes)
}

/// Decodes I2P base64. Strict about the alphabet (no `+`, `/`, whitespace) and trailing bits;
/// `=` padding may be present or missing (like Java I2P).
///
/// # Errors
/// [`KeyError::Base64`] naming the problem.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, KeyError> {
    if text.is_empty() {
        return Err(KeyError::Base64("empty input".into()));
    }
    ENGINE.decode(text).map_err(|e| {
        KeyError::Base64(match e {
            base64::DecodeError::InvalidByte(i, b) => {
                format!(
                    "character {:?} at offset {i} is not in the I2P alphabet",
                    b as char
                )
            }
            base64::DecodeError::InvalidLength(n) => format!("impossible length ({n} symbols)"),
            base64::DecodeError::InvalidLastSymbol { offset, symbol, .. } => {
                format!(
                    "last symbol {:?} at offset {offset} has non-zero trailing bits",
                    symbol as char
                )
            }
            base64::DecodeError::InvalidPadding => "bad '=' padding".into(),
        })
    })
}

/// Encodes bytes as lower-case RFC 4648 base32 without padding (the b32 address form).
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut s = data_encoding::BASE32_NOPAD.encode(bytes);
    s.make_ascii_lowercase();
    s
}

/// Decodes unpadded RFC 4648 base32, upper or lower case (like Java I2P `Base32.decode`).
///
/// # Errors
/// [`KeyError::Base32`] naming the problem.
pub fn base32_decode(text: &str) -> Result<Vec<u8>, KeyError> {
    let upper = text.to_ascii_uppercase();
    data_encoding::BASE32_NOPAD
        .decode(upper.as_bytes())
        .map_err(|e| KeyError::Base32(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_i2p_alphabet_and_padding() {
        assert_eq!(base64_encode(&[0xfb, 0xff]), "-~8=");
        assert_eq!(base64_decode("-~8=").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(base64_decode("-~8").unwrap(), vec![0xfb, 0xff]);
        assert!(base64_decode("+/8=").is_err());
        assert!(base64_decode("-~8 ").is_err());
        assert!(
            base64_decode("-~9=").is_err(),
            "non-canonical trailing bits"
        );
        assert!(base64_decode("").is_err());
    }

    #[test]
    fn base32_lower_unpadded() {
        assert_eq!(base32_encode(b"foobar"), "mzxw6ytboi");
        assert_eq!(base32_decode("MZXW6ytboi").unwrap(), b"foobar");
        assert!(base32_decode("mzxw6ytboi=").is_err());
        assert!(base32_decode("1").is_err());
    }
}
