//! The SAMv3 UDP bridge's wire format for datagram sessions, without I/O.
//!
//! - **Sending**: one UDP datagram to the bridge's UDP port per I2P datagram, a header
//!   line `3.0 <session ID> <base64 destination>[ FROM_PORT=n TO_PORT=n]\n`, then the
//!   payload ([`send_header`]). Never the control socket's `DATAGRAM SEND`: on i2pd 2.45
//!   a header plus payload over 8,192 bytes there kills the whole session.
//! - **Receiving**: a session created with `PORT=` (and `HOST=`) gets every datagram
//!   forwarded to that UDP port: repliable ones as `<base64 destination>[ FROM_PORT=n
//!   TO_PORT=n]\n` + payload (i2pd 2.45 writes no ports, emissary and Java do), raw ones
//!   as the bare payload ([`parse_forwarded`]).
//! - **Sizes**: the bridge reads each UDP datagram into a fixed buffer, header line
//!   included: 32,768 bytes on i2pd (larger ones are dropped silently), 8,192 on
//!   emissary 0.4 (larger ones are *truncated* silently), unknown routers are assumed
//!   to be as small as emissary. [`UdpLimit`] turns that into the
//!   largest payload we send; anything larger is refused here, never cut.

use std::fmt;

use bytes::Bytes;
use keytools::Destination;

use crate::backend::datagram::DatagramStyle;

/// The version word that starts a line sent to the UDP bridge. "3.0" is what every
/// router accepts (i2pd ignores the word, Java and emissary check for 3.x).
pub const SEND_VERSION: &str = "3.0";

/// Longest header line we accept on a forwarded datagram (a destination with the
/// largest key certificate is about 1.4 KB of base64, plus the ports).
pub const MAX_FORWARDED_HEADER: usize = 4096;

/// Largest UDP datagram we read from the bridge: the UDP maximum, so a datagram is
/// never cut by our own buffer.
pub const MAX_UDP_DATAGRAM: usize = 65_535;

/// The base64 length of the destinations most tunnels use (387 bytes plus a 4-byte key
/// certificate: Ed25519 or ECDSA-P256 signing keys), the basis of
/// [`UdpLimit::max_payload`]. Longer destinations (RSA, P521) leave less room; the exact
/// header is checked for every datagram.
pub const TYPICAL_DEST_B64: usize = 524;

/// The UDP buffer of emissary 0.4's SAM bridge, header line included: larger datagrams
/// are silently truncated (the embedded router's quirks table names it).
pub const EMISSARY_UDP_BUFFER: usize = 8_192;

/// The UDP buffer of i2pd's SAM bridge, header line included: larger datagrams are
/// silently dropped.
pub const I2PD_UDP_BUFFER: usize = 32_768;

/// Which router a bridge belongs to, as far as `HELLO` tells (for the size cap when
/// [`SamConfig::datagram_buffer`](super::SamConfig::datagram_buffer) is not set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeKind {
    /// i2pd (Debian 2.45 answers `HELLO` with at most SAM 3.1).
    I2pd,
    /// Any other router (Java I2P, emissary, newer i2pd): assumed to have a buffer as
    /// small as emissary's, so nothing is ever cut.
    Unknown,
}

impl BridgeKind {
    /// The bridge's UDP buffer, header line included.
    pub fn udp_buffer(self) -> usize {
        match self {
            Self::I2pd => I2PD_UDP_BUFFER,
            Self::Unknown => EMISSARY_UDP_BUFFER,
        }
    }

    /// The kind a `HELLO REPLY VERSION=` suggests: SAM 3.1 at most (offered 3.1..3.3)
    /// is i2pd before 2.47 (Java I2P and emissary speak 3.3); anything else is unknown.
    pub fn from_hello_version(version: &str) -> Self {
        if version == "3.1" {
            Self::I2pd
        } else {
            Self::Unknown
        }
    }
}

/// Whether a bridge that chose SAM `version` in `HELLO` knows I2CP ports (SAM 3.2 and
/// later). Without them, `FROM_PORT=`/`TO_PORT=` must not be written at all: i2pd 2.45
/// reads everything after the session id as the destination and drops the datagram
/// when that text's length is not a multiple of 4 (measured: ` FROM_PORT=7 TO_PORT=9`
/// lost every datagram).
pub fn bridge_has_ports(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= (3, 2),
        (Some(major), None) => major > 3,
        _ => false,
    }
}

impl fmt::Display for BridgeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::I2pd => "i2pd",
            Self::Unknown => "unknown router",
        })
    }
}

/// The size cap of one session's sends: the bridge's buffer minus the header line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpLimit {
    /// the bridge's UDP buffer, header included
    pub buffer: usize,
    /// the longest session ID the header may carry (a session re-created after a
    /// router restart gets a new one)
    pub max_id_len: usize,
}

impl UdpLimit {
    /// The advertised cap (`max_payload`): the largest payload whose header fits with
    /// the longest session ID, a destination of [`TYPICAL_DEST_B64`] characters and both
    /// ports at their longest. A send must also pass [`Self::fits`].
    pub fn max_payload(&self) -> usize {
        self.buffer.saturating_sub(header_len(
            self.max_id_len,
            TYPICAL_DEST_B64,
            u16::MAX,
            u16::MAX,
        ))
    }

    /// Whether `header_len` + `payload_len` fit the bridge's buffer (checked for every
    /// datagram: a long destination leaves less room than the advertised cap).
    pub fn fits(&self, header_len: usize, payload_len: usize) -> bool {
        header_len.saturating_add(payload_len) <= self.buffer
    }
}

/// The length of [`send_header`]'s line, `\n` included.
pub fn header_len(id_len: usize, dest_b64_len: usize, from_port: u16, to_port: u16) -> usize {
    let ports = if from_port == 0 && to_port == 0 {
        0
    } else {
        " FROM_PORT= TO_PORT=".len() + digits(from_port) + digits(to_port)
    };
    SEND_VERSION.len() + 1 + id_len + 1 + dest_b64_len + ports + 1
}

fn digits(n: u16) -> usize {
    n.checked_ilog10().map_or(1, |l| l as usize + 1)
}

/// The header line of a datagram sent through the bridge: `3.0 ID DEST\n`, with
/// `FROM_PORT=`/`TO_PORT=` when either port is not 0 (routers without port support
/// ignore what follows the destination).
pub fn send_header(id: &str, dest_b64: &str, from_port: u16, to_port: u16) -> String {
    let mut line = format!("{SEND_VERSION} {id} {dest_b64}");
    if from_port != 0 || to_port != 0 {
        line.push_str(&format!(" FROM_PORT={from_port} TO_PORT={to_port}"));
    }
    line.push('\n');
    line
}

/// A datagram the bridge forwarded to our UDP port, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// the sender (repliable datagrams)
    pub from: Option<Destination>,
    /// `FROM_PORT=` (0 when absent)
    pub from_port: u16,
    /// `TO_PORT=` (0 when absent)
    pub to_port: u16,
    /// the payload
    pub payload: Bytes,
}

/// Why a forwarded datagram was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    /// no `\n` within [`MAX_FORWARDED_HEADER`] bytes
    #[error("forwarded datagram without a header line")]
    NoHeader,
    /// the first word is not a destination
    #[error("forwarded datagram from an invalid destination: {0}")]
    BadDestination(String),
    /// a `FROM_PORT=`/`TO_PORT=` that is not a port
    #[error("forwarded datagram with a bad port: {0}")]
    BadPort(String),
}

/// Parses what the bridge forwarded. Raw datagrams are the bare payload; repliable
/// ones start with a line whose first space-separated word is the sender's base64
/// destination, optionally followed by `FROM_PORT=n`/`TO_PORT=n` (other words are
/// ignored; a `\r` before the `\n` is tolerated).
///
/// # Errors
/// [`ForwardError`] for a repliable datagram without a header line, with a first word
/// that is not a destination, or with a port that does not parse.
pub fn parse_forwarded(style: DatagramStyle, datagram: Bytes) -> Result<Forwarded, ForwardError> {
    if style == DatagramStyle::Raw {
        return Ok(Forwarded {
            from: None,
            from_port: 0,
            to_port: 0,
            payload: datagram,
        });
    }
    let scan = &datagram[..datagram.len().min(MAX_FORWARDED_HEADER)];
    let nl = scan
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(ForwardError::NoHeader)?;
    let line = &datagram[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = std::str::from_utf8(line)
        .map_err(|_| ForwardError::BadDestination("header is not UTF-8".into()))?;
    let mut words = line.split(' ');
    let dest = words.next().unwrap_or_default();
    let from = Destination::from_base64(dest).map_err(|e| {
        ForwardError::BadDestination(if dest.is_empty() {
            "empty".into()
        } else {
            e.to_string()
        })
    })?;
    let (mut from_port, mut to_port) = (0, 0);
    for word in words {
        let (slot, value) = if let Some(v) = word.strip_prefix("FROM_PORT=") {
            (&mut from_port, v)
        } else if let Some(v) = word.strip_prefix("TO_PORT=") {
            (&mut to_port, v)
        } else {
            continue;
        };
        *slot = value
            .parse()
            .map_err(|_| ForwardError::BadPort(crate::backend::sam::proto::shorten(word)))?;
    }
    Ok(Forwarded {
        from: Some(from),
        from_port,
        to_port,
        payload: datagram.slice(nl + 1..),
    })
}

/// The `STYLE=` of a datagram session of `style`. Only DATAGRAM and RAW: DATAGRAM2 is
/// never offered (an inbound Datagram2 crashes emissary 0.4's SAM server, and i2pd 2.45
/// does not know it), DATAGRAM3 carries no verifiable sender.
pub fn session_style(style: DatagramStyle) -> &'static str {
    match style {
        DatagramStyle::Repliable => "DATAGRAM",
        DatagramStyle::Raw => "RAW",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keytools::{CryptoType, PrivateKeys, SigType};

    fn dest(sig: SigType) -> Destination {
        PrivateKeys::generate(sig, CryptoType::ElGamal)
            .unwrap()
            .destination()
            .clone()
    }

    #[test]
    fn headers_and_their_lengths() {
        let d = dest(SigType::Ed25519).to_base64();
        assert_eq!(d.len(), TYPICAL_DEST_B64);
        assert_eq!(send_header("s1", &d, 0, 0), format!("3.0 s1 {d}\n"));
        assert_eq!(
            send_header("s1", &d, 7, 65535),
            format!("3.0 s1 {d} FROM_PORT=7 TO_PORT=65535\n")
        );
        for (f, t) in [(0, 0), (0, 1), (9, 10), (65535, 65535), (100, 0)] {
            assert_eq!(
                header_len(2, d.len(), f, t),
                send_header("s1", &d, f, t).len(),
                "{f} {t}"
            );
        }
    }

    #[test]
    fn ports_from_sam_3_2() {
        for (v, ports) in [
            ("3.1", false),
            ("3.0", false),
            ("3.2", true),
            ("3.3", true),
            ("4", true),
            ("", false),
            ("x.y", false),
        ] {
            assert_eq!(bridge_has_ports(v), ports, "{v}");
        }
    }

    #[test]
    fn caps_per_router() {
        assert_eq!(BridgeKind::from_hello_version("3.1"), BridgeKind::I2pd);
        assert_eq!(BridgeKind::from_hello_version("3.3"), BridgeKind::Unknown);
        let id = "b".repeat(41);
        let i2pd = UdpLimit {
            buffer: BridgeKind::I2pd.udp_buffer(),
            max_id_len: id.len(),
        };
        let d = dest(SigType::Ed25519).to_base64();
        // the advertised cap fits a header with the longest id and ports
        let hdr = send_header(&id, &d, 65535, 65535);
        assert_eq!(i2pd.max_payload() + hdr.len(), 32_768);
        assert!(i2pd.fits(hdr.len(), i2pd.max_payload()));
        assert!(!i2pd.fits(hdr.len(), i2pd.max_payload() + 1));
        // the 30,000-byte test datagram fits i2pd, not emissary
        assert!(i2pd.max_payload() > 30_000);
        let em = UdpLimit {
            buffer: EMISSARY_UDP_BUFFER,
            max_id_len: id.len(),
        };
        assert_eq!(em.max_payload() + hdr.len(), 8_192);
        assert!(em.max_payload() > 7_000, "bob.udp.maxsize's default fits");
        assert!(!em.fits(hdr.len(), 7_653));
        // a long destination (RSA keys) may not fit where a typical one does
        assert!(!em.fits(header_len(41, 1036, 1, 1), em.max_payload()));
        assert_eq!(
            UdpLimit {
                buffer: 10,
                max_id_len: 3
            }
            .max_payload(),
            0
        );
    }

    #[test]
    fn forwarded_repliable_with_and_without_ports() {
        let d = dest(SigType::Ed25519);
        let b = d.to_base64();
        // i2pd 2.45: no ports
        let f = parse_forwarded(
            DatagramStyle::Repliable,
            Bytes::from(format!("{b}\nhello\nworld")),
        )
        .unwrap();
        assert_eq!(f.from.as_ref(), Some(&d));
        assert_eq!((f.from_port, f.to_port), (0, 0));
        assert_eq!(&f.payload[..], b"hello\nworld");
        // emissary / Java: ports after the destination, other words ignored
        let f = parse_forwarded(
            DatagramStyle::Repliable,
            Bytes::from(format!("{b} FROM_PORT=7 X=1 TO_PORT=9\r\n")),
        )
        .unwrap();
        assert_eq!((f.from_port, f.to_port), (7, 9));
        assert!(f.payload.is_empty());
        // an empty payload after a header is a datagram
        assert!(parse_forwarded(DatagramStyle::Repliable, Bytes::from(format!("{b}\n"))).is_ok());
    }

    #[test]
    fn forwarded_garbage_is_refused() {
        let b = dest(SigType::Ed25519).to_base64();
        let bad = |s: &[u8]| parse_forwarded(DatagramStyle::Repliable, Bytes::copy_from_slice(s));
        assert_eq!(bad(b"no newline"), Err(ForwardError::NoHeader));
        assert_eq!(bad(b""), Err(ForwardError::NoHeader));
        assert!(matches!(
            bad(b"\npayload"),
            Err(ForwardError::BadDestination(_))
        ));
        assert!(matches!(
            bad(b"AAAA\n"),
            Err(ForwardError::BadDestination(_))
        ));
        assert!(matches!(
            bad(format!(" {b}\n").as_bytes()),
            Err(ForwardError::BadDestination(_))
        ));
        assert!(matches!(
            bad(format!("{b} FROM_PORT=70000\n").as_bytes()),
            Err(ForwardError::BadPort(_))
        ));
        assert!(matches!(
            bad(format!("{b} TO_PORT=-1\n").as_bytes()),
            Err(ForwardError::BadPort(_))
        ));
        assert!(matches!(
            bad(b"\xff\xfe\n"),
            Err(ForwardError::BadDestination(_))
        ));
        // the header line is bounded: a newline past the limit is not looked for
        let mut long = vec![b'A'; MAX_FORWARDED_HEADER];
        long.push(b'\n');
        assert_eq!(bad(&long), Err(ForwardError::NoHeader));
    }

    #[test]
    fn raw_is_the_bare_payload() {
        let f = parse_forwarded(DatagramStyle::Raw, Bytes::from_static(b"x\ny")).unwrap();
        assert_eq!(f.from, None);
        assert_eq!(&f.payload[..], b"x\ny");
        assert_eq!(session_style(DatagramStyle::Raw), "RAW");
        assert_eq!(session_style(DatagramStyle::Repliable), "DATAGRAM");
    }
}
