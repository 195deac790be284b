//! The header of a SOCKS5 UDP datagram (RFC 1928 §7), parsed and written by hand for
//! the same reason as the handshake (see [`super`]): a fixed layout of a few fields.
//!
//! ```text
//! +-----+------+------+----------+----------+----------+
//! | RSV | FRAG | ATYP | DST.ADDR | DST.PORT |   DATA   |
//! |  2  |  1   |  1   | variable |    2     | variable |
//! +-----+------+------+----------+----------+----------+
//! ```
//! ATYP 1 is an IPv4 address (4 bytes), 3 a name (a length byte, then the name), 4 an
//! IPv6 address (16 bytes). The payload is every byte after DST.PORT.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::RequestHost;

/// A parsed datagram from a client: where to and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UdpRequest<'a> {
    /// FRAG: 0 for a whole datagram; anything else is a fragment (dropped by the relay)
    pub frag: u8,
    /// DST.ADDR
    pub host: RequestHost,
    /// DST.PORT
    pub port: u16,
    /// DATA: every byte after the header
    pub payload: &'a [u8],
}

/// Why a datagram's header was not understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UdpHeaderError {
    /// fewer bytes than the header needs
    #[error("SOCKS UDP header cut short")]
    Short,
    /// RSV is not zero
    #[error("SOCKS UDP header with reserved bytes set")]
    Reserved,
    /// ATYP is not 1, 3 or 4
    #[error("SOCKS UDP header with address type {0}")]
    AddressType(u8),
    /// a name of length 0
    #[error("SOCKS UDP header with an empty name")]
    EmptyName,
}

/// The longest header (a 255-byte name).
pub(crate) const MAX_HEADER: usize = 4 + 1 + 255 + 2;

/// Parses the header of `datagram`.
///
/// # Errors
/// [`UdpHeaderError`] when the header is cut short, RSV is set, the address type is
/// unknown or a name is empty.
pub(crate) fn parse(datagram: &[u8]) -> Result<UdpRequest<'_>, UdpHeaderError> {
    let [r1, r2, frag, atyp, rest @ ..] = datagram else {
        return Err(UdpHeaderError::Short);
    };
    if (*r1, *r2) != (0, 0) {
        return Err(UdpHeaderError::Reserved);
    }
    let (host, rest) = match atyp {
        1 => {
            let (ip, rest) = rest.split_at_checked(4).ok_or(UdpHeaderError::Short)?;
            let ip = Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]);
            (RequestHost::Ip(IpAddr::V4(ip)), rest)
        }
        3 => {
            let (&len, rest) = rest.split_first().ok_or(UdpHeaderError::Short)?;
            if len == 0 {
                return Err(UdpHeaderError::EmptyName);
            }
            let (name, rest) = rest
                .split_at_checked(usize::from(len))
                .ok_or(UdpHeaderError::Short)?;
            (RequestHost::Name(name.to_vec()), rest)
        }
        4 => {
            let (ip, rest) = rest.split_at_checked(16).ok_or(UdpHeaderError::Short)?;
            let mut octets = [0u8; 16];
            octets.copy_from_slice(ip);
            (RequestHost::Ip(IpAddr::V6(Ipv6Addr::from(octets))), rest)
        }
        other => return Err(UdpHeaderError::AddressType(*other)),
    };
    let (port, payload) = rest.split_at_checked(2).ok_or(UdpHeaderError::Short)?;
    Ok(UdpRequest {
        frag: *frag,
        host,
        port: u16::from_be_bytes([port[0], port[1]]),
        payload,
    })
}

/// The source of a datagram going back to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplySource<'a> {
    /// ATYP 3: the sender's name (its `.b32.i2p` address), at most 255 bytes
    Name(&'a str),
    /// ATYP 1 `0.0.0.0`: an anonymous (raw) datagram, whose sender nobody knows
    Anonymous,
}

/// Writes a whole datagram for a client: the header naming `source` and `port`
/// (FRAG 0), then `payload`.
///
/// # Panics
/// If a [`ReplySource::Name`] is empty or longer than 255 bytes (the relay only writes
/// `.b32.i2p` addresses, 60 bytes).
pub(crate) fn format(source: ReplySource<'_>, port: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAX_HEADER + payload.len());
    out.extend_from_slice(&[0, 0, 0]);
    match source {
        ReplySource::Name(name) => {
            let len = u8::try_from(name.len()).expect("a name of at most 255 bytes");
            assert!(len > 0, "an empty name");
            out.extend_from_slice(&[3, len]);
            out.extend_from_slice(name.as_bytes());
        }
        ReplySource::Anonymous => out.extend_from_slice(&[1, 0, 0, 0, 0]),
    }
    out.extend_from_slice(&port.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_addresses_and_payloads() {
        let mut d = vec![0, 0, 0, 3, 7];
        d.extend_from_slice(b"abc.i2p");
        d.extend_from_slice(&[0x1F, 0x90]);
        d.extend_from_slice(b"hello");
        let r = parse(&d).unwrap();
        assert_eq!(r.frag, 0);
        assert_eq!(r.host, RequestHost::Name(b"abc.i2p".to_vec()));
        assert_eq!(r.port, 8080);
        assert_eq!(r.payload, b"hello");

        let v4 = [0, 0, 0, 1, 10, 0, 0, 1, 0, 53, b'x'];
        let r = parse(&v4).unwrap();
        assert_eq!(r.host, RequestHost::Ip("10.0.0.1".parse().unwrap()));
        assert_eq!((r.port, r.payload), (53, &b"x"[..]));

        let mut v6 = vec![0, 0, 2, 4];
        v6.extend_from_slice(&[0; 15]);
        v6.extend_from_slice(&[1, 0, 7]);
        let r = parse(&v6).unwrap();
        assert_eq!(r.frag, 2);
        assert_eq!(r.host, RequestHost::Ip("::1".parse().unwrap()));
        assert_eq!((r.port, r.payload), (7, &b""[..]));
    }

    #[test]
    fn every_cut_of_a_header_is_short() {
        let mut d = vec![0, 0, 0, 3, 7];
        d.extend_from_slice(b"abc.i2p");
        d.extend_from_slice(&[0, 1]);
        for cut in 0..d.len() {
            assert_eq!(parse(&d[..cut]), Err(UdpHeaderError::Short), "cut {cut}");
        }
        assert!(parse(&d).is_ok(), "an empty payload is a datagram");
    }

    #[test]
    fn bad_headers() {
        assert_eq!(
            parse(&[0, 1, 0, 1, 0, 0, 0, 0, 0, 0]),
            Err(UdpHeaderError::Reserved)
        );
        assert_eq!(
            parse(&[0, 0, 0, 9, 0, 0, 0]),
            Err(UdpHeaderError::AddressType(9))
        );
        assert_eq!(
            parse(&[0, 0, 0, 3, 0, 0, 0]),
            Err(UdpHeaderError::EmptyName)
        );
    }

    #[test]
    fn format_is_read_back() {
        let name = "x".repeat(52) + ".b32.i2p";
        let d = format(ReplySource::Name(&name), 4000, b"pong");
        assert_eq!(&d[..5], &[0, 0, 0, 3, 60]);
        let r = parse(&d).unwrap();
        assert_eq!(r.host, RequestHost::Name(name.into_bytes()));
        assert_eq!((r.frag, r.port, r.payload), (0, 4000, &b"pong"[..]));

        let d = format(ReplySource::Anonymous, 9, b"");
        assert_eq!(d, [0, 0, 0, 1, 0, 0, 0, 0, 0, 9]);
    }
}
