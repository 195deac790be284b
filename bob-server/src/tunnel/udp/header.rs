//! The datagram header of UDP tunnels' header modes: `<dest>[ KEY=VALUE…]\n` + payload.
//!
//! The first line names a destination: a base64 destination, a `.b32.i2p` address or
//! a host name ending in `.i2p`. Space-separated `KEY=VALUE` options may follow it
//! (SAM's forwarding puts `FROM_PORT=n TO_PORT=n` there); `FROM_PORT` and `TO_PORT`
//! set the I2CP ports, others are ignored. A `\r` before the `\n` is ignored. The
//! payload is every byte after the `\n`, possibly none.

use keytools::Destination;

/// Longest header line accepted, without its `\n` (a destination with a large
/// certificate is under 1 KiB of base64; options add a few dozen bytes).
pub const MAX_HEADER_LINE: usize = 2048;

/// Where a header sends the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderTarget {
    /// a parsed base64 destination
    Destination(Destination),
    /// a `.b32.i2p` address or a host name (lower-case), resolved by the backend
    Name(String),
}

/// A parsed header line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// the destination named on the line
    pub target: HeaderTarget,
    /// `FROM_PORT=`, if given
    pub from_port: Option<u16>,
    /// `TO_PORT=`, if given
    pub to_port: Option<u16>,
}

/// Why a datagram's header was refused (the datagram is dropped and counted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// No `\n` within [`MAX_HEADER_LINE`] bytes.
    #[error("no header line (a destination and a newline) within {MAX_HEADER_LINE} bytes")]
    NoNewline,
    /// The line names no destination.
    #[error("empty header line")]
    Empty,
    /// The line is not ASCII.
    #[error("header line is not ASCII")]
    NotAscii,
    /// The first word is no destination, `.b32.i2p` address or `.i2p` name.
    #[error("not a destination: {0}")]
    BadDestination(String),
    /// A `FROM_PORT`/`TO_PORT` value is not a port number.
    #[error("bad {0} value")]
    BadPort(&'static str),
}

/// Splits `datagram` into its header and its payload.
///
/// # Errors
/// A [`HeaderError`] saying what is wrong with the first line.
pub fn parse(datagram: &[u8]) -> Result<(Header, &[u8]), HeaderError> {
    let window = &datagram[..datagram.len().min(MAX_HEADER_LINE + 1)];
    let end = window
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(HeaderError::NoNewline)?;
    let payload = &datagram[end + 1..];
    let raw = &datagram[..end];
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    if !raw.is_ascii() {
        return Err(HeaderError::NotAscii);
    }
    // ASCII is UTF-8
    let line = std::str::from_utf8(raw).map_err(|_| HeaderError::NotAscii)?;
    let mut words = line.split([' ', '\t']).filter(|w| !w.is_empty());
    let dest = words.next().ok_or(HeaderError::Empty)?;
    let target = if dest.to_ascii_lowercase().ends_with(".i2p") && dest.len() > ".i2p".len() {
        HeaderTarget::Name(dest.to_ascii_lowercase())
    } else {
        HeaderTarget::Destination(
            Destination::from_base64(dest).map_err(|_| HeaderError::BadDestination(short(dest)))?,
        )
    };
    let mut header = Header {
        target,
        from_port: None,
        to_port: None,
    };
    for word in words {
        let Some((key, value)) = word.split_once('=') else {
            continue;
        };
        if key.eq_ignore_ascii_case("FROM_PORT") {
            header.from_port = Some(
                value
                    .parse()
                    .map_err(|_| HeaderError::BadPort("FROM_PORT"))?,
            );
        } else if key.eq_ignore_ascii_case("TO_PORT") {
            header.to_port = Some(value.parse().map_err(|_| HeaderError::BadPort("TO_PORT"))?);
        }
    }
    Ok((header, payload))
}

/// `<dest b64>\n` + `payload`, as a header mode hands a datagram to an application.
pub fn format(dest: &Destination, payload: &[u8]) -> Vec<u8> {
    let b64 = dest.to_base64();
    let mut out = Vec::with_capacity(b64.len() + 1 + payload.len());
    out.extend_from_slice(b64.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload);
    out
}

/// A word cut to a length fit for a log line.
fn short(word: &str) -> String {
    const MAX: usize = 40;
    if word.len() <= MAX {
        word.to_owned()
    } else {
        // the line is ASCII: any index is a char boundary
        format!("{}...", &word[..MAX])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keytools::{CryptoType, PrivateKeys, SigType};

    fn dest() -> Destination {
        PrivateKeys::generate(SigType::Ed25519, CryptoType::ElGamal)
            .unwrap()
            .destination()
            .clone()
    }

    #[test]
    fn b64_header_round_trips() {
        let d = dest();
        let wire = format(&d, b"payload\nwith newline");
        let (header, payload) = parse(&wire).unwrap();
        assert_eq!(header.target, HeaderTarget::Destination(d));
        assert_eq!((header.from_port, header.to_port), (None, None));
        assert_eq!(payload, b"payload\nwith newline");
    }

    #[test]
    fn b32_and_names_are_lower_cased_for_lookup() {
        let d = dest();
        let b32 = d.b32().to_ascii_uppercase();
        let wire = format!("{b32}\r\nx");
        let (header, payload) = parse(wire.as_bytes()).unwrap();
        assert_eq!(header.target, HeaderTarget::Name(d.b32()));
        assert_eq!(payload, b"x");
        let (header, payload) = parse(b"Example.I2P\n").unwrap();
        assert_eq!(header.target, HeaderTarget::Name("example.i2p".into()));
        assert!(payload.is_empty());
    }

    #[test]
    fn options_after_the_destination() {
        let d = dest();
        let line = format!(
            "{} FROM_PORT=7 to_port=9 SEND_TAGS=4 junk\npp",
            d.to_base64()
        );
        let (header, payload) = parse(line.as_bytes()).unwrap();
        assert_eq!((header.from_port, header.to_port), (Some(7), Some(9)));
        assert_eq!(payload, b"pp");
        let bad = format!("{} TO_PORT=70000\n", d.to_base64());
        assert_eq!(parse(bad.as_bytes()), Err(HeaderError::BadPort("TO_PORT")));
    }

    #[test]
    fn malformed_headers_are_refused() {
        let d = dest();
        assert_eq!(parse(d.to_base64().as_bytes()), Err(HeaderError::NoNewline));
        assert_eq!(parse(b""), Err(HeaderError::NoNewline));
        assert_eq!(parse(b"\npayload"), Err(HeaderError::Empty));
        assert_eq!(parse(b"   \n"), Err(HeaderError::Empty));
        assert_eq!(
            parse(b".i2p\n"),
            Err(HeaderError::BadDestination(".i2p".into()))
        );
        assert!(matches!(
            parse(b"hello\n"),
            Err(HeaderError::BadDestination(_))
        ));
        assert_eq!(
            parse("d\u{e9}st.i2p\n".as_bytes()),
            Err(HeaderError::NotAscii)
        );
        // a newline only after the bound is no header
        let mut long = vec![b'A'; MAX_HEADER_LINE + 1];
        long.push(b'\n');
        assert_eq!(parse(&long), Err(HeaderError::NoNewline));
        let mut exact = vec![b'A'; MAX_HEADER_LINE];
        exact.push(b'\n');
        assert!(matches!(parse(&exact), Err(HeaderError::BadDestination(s)) if s.len() == 43));
    }

    #[test]
    fn big_payloads_are_kept_whole() {
        let d = dest();
        let payload = vec![0xA5u8; 65_000];
        let wire = format(&d, &payload);
        let (_, got) = parse(&wire).unwrap();
        assert_eq!(got.len(), 65_000);
    }
}
