//! Bodies of the cargo-fuzz targets in `bob-server/fuzz/`, shared with the stable test
//! that replays their seed corpus (`tests/fuzz_corpus.rs`). Each function panics when an
//! invariant breaks; for the fuzzer a panic is a crash.
//!
//! Not part of the stable API: only compiled with feature `fuzzing`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::backend::sam::proto::{self, SamError, SamReply};
use crate::backend::{CoreError, Target};

/// Small limit, so that the fuzzer reaches the over-long-line paths quickly.
const SMALL_LIMIT: usize = 16;

/// The limit a tunnel uses by default (`TunnelLimits::default().max_first_line`).
const DEFAULT_LIMIT: usize = 4096;

/// Target `first_line`: bytes an application sends to a client tunnel's inport →
/// the first-line reader → destination parse.
///
/// The bytes arrive at once, in chunks of 1–8 bytes (chosen by the first byte) and
/// byte by byte. Checks against a plain reference model that the reader finds the
/// right line or the right error whatever the chunking, never reads (buffers) much
/// beyond the limit, hands over exactly the bytes after the line (nothing lost or
/// duplicated), and that a parsed target and every error text are single-line.
pub fn first_line(data: &[u8]) {
    let chunk = data.first().map_or(1, |b| usize::from(*b % 8) + 1);
    for max in [SMALL_LIMIT, DEFAULT_LIMIT] {
        let expected = reference_line(data, max);
        let mut sizes = vec![data.len().max(1), chunk];
        if data.len() <= 512 {
            sizes.push(1);
        }
        for size in sizes {
            let mut reader = Chunked {
                data,
                at: 0,
                chunk: size,
            };
            let got = futures::executor::block_on(crate::tunnel::first_line_for_fuzzing(
                &mut reader,
                max,
            ));
            // bounded: the reader never takes more than one byte beyond the raw limit
            // (the limit plus two `\r`s)
            assert!(reader.at <= max + 3, "read {} bytes, max {max}", reader.at);
            match (&expected, got) {
                (None, Ok(None)) => {}
                (Some(Err(())), Err(reason)) => assert_eq!(reason, "line too long"),
                (Some(Ok((line, rest))), Ok(Some((got_line, target, early)))) => {
                    assert_eq!(&got_line, line, "chunk {size}, max {max}");
                    // nothing after the line is lost or duplicated: the early bytes
                    // and what is still unread are exactly the rest of the input
                    let mut after = early.to_vec();
                    after.extend_from_slice(&data[reader.at..]);
                    assert_eq!(&after, rest, "chunk {size}, max {max}");
                    check_target(&got_line, &target);
                }
                (want, got) => panic!("chunk {size}, max {max}: expected {want:?}, got {got:?}"),
            }
        }
    }
}

/// What a parsed line must look like, and what every error must look like.
fn check_target(line: &str, target: &Result<Target, String>) {
    assert!(!line.contains(['\n', '\r']));
    assert!(!line.starts_with([' ', '\t']) && !line.ends_with([' ', '\t']));
    match target {
        Ok(Target::Name(name)) => {
            assert!(name.ends_with(".i2p"));
            assert_eq!(name, &line.to_ascii_lowercase());
        }
        Ok(Target::Destination(dest)) => {
            // what the tunnel connects to survives its own encoding
            assert_eq!(keytools::verify_bob(&dest.to_base64()).as_ref(), Ok(dest));
        }
        Err(reason) => {
            // it becomes one `ERROR <reason>\n` line
            assert!(!reason.is_empty());
            assert!(!reason.contains(['\n', '\r']), "{reason:?}");
        }
    }
}

/// The reference model of the first line: `None` for empty input, `Err` for too long,
/// else the cleaned-up line and the bytes after its `\n`.
fn reference_line(data: &[u8], max: usize) -> Option<Result<(String, Vec<u8>), ()>> {
    if data.is_empty() {
        return None;
    }
    let (raw, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], data[at + 1..].to_vec()),
        None => (data, Vec::new()),
    };
    // the raw line may hold two `\r`s more than the limit, no more
    if raw.len() > max + 2 {
        return Some(Err(()));
    }
    let kept: Vec<u8> = raw.iter().copied().filter(|&b| b != b'\r').collect();
    if kept.len() > max {
        return Some(Err(()));
    }
    let text = String::from_utf8_lossy(&kept);
    Some(Ok((text.trim_matches([' ', '\t']).to_owned(), rest)))
}

/// A reader that hands out `data` at most `chunk` bytes per read, always ready.
struct Chunked<'a> {
    data: &'a [u8],
    at: usize,
    chunk: usize,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self
            .chunk
            .min(buf.remaining())
            .min(self.data.len() - self.at);
        let at = self.at;
        buf.put_slice(&self.data[at..at + n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

/// Target `sam_reply`: bytes a SAM bridge sends → lines → [`SamReply::parse`] → the
/// accessors → re-encode with [`proto::command`] → parse again; plus the peer line
/// of accepted streams.
///
/// Checks that nothing panics, that every error text (as the BOB client would see it)
/// is a single line, that a parsed reply has well-formed command words and keys, and
/// that it survives a round trip through our own command encoder whenever the
/// encoder accepts its keys.
pub fn sam_reply(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        check_peer_line(line);
        let reply = match SamReply::parse(line) {
            Ok(reply) => reply,
            Err(e) => {
                check_error(&e);
                continue;
            }
        };
        for word in [&reply.topic, &reply.kind] {
            assert!(!word.is_empty());
            assert!(word.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'));
        }
        for (key, _) in &reply.pairs {
            assert!(!key.is_empty());
            assert!(!key.contains(['=', ' ', '\t']), "{key:?}");
        }
        if let Err(e) = reply.result() {
            check_error(&e);
        }
        if let Err(e) = reply.expect("SESSION STATUS") {
            check_error(&e);
        }
        if let Some((key, value)) = reply.pairs.first() {
            // `get` finds the first pair of a key
            assert_eq!(reply.get(key), Some(value.as_str()));
        }
        let words = format!("{} {}", reply.topic, reply.kind);
        let pairs = reply.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        match proto::command(&words, pairs) {
            Ok(encoded) => {
                assert!(!encoded.contains(['\n', '\r']));
                assert_eq!(
                    SamReply::parse(&encoded).as_ref(),
                    Ok(&reply),
                    "{encoded:?}"
                );
            }
            Err(e) => {
                // the encoder is stricter than the parser only about keys holding a
                // quote or a white-space character other than space and tab
                assert!(matches!(e, SamError::BadCommand(_)));
                assert!(
                    reply
                        .pairs
                        .iter()
                        .any(|(k, _)| k.chars().any(|c| c == '"' || c.is_whitespace())),
                    "{reply:?}: {e}"
                );
                check_error(&e);
            }
        }
    }
    // a whole reply of kilobytes in error messages is shortened on a char boundary
    let short = proto::shorten(&text);
    assert!(text.starts_with(short.trim_end_matches("...")));
}

/// The peer line of an accepted stream: any prefix it returns is a word of the line.
fn check_peer_line(line: &str) {
    match proto::peer_line(line) {
        Ok(dest) => {
            assert!(!dest.is_empty());
            assert!(line.starts_with(dest));
        }
        Err(e) => check_error(&e),
    }
}

/// Error texts end up in `ERROR ...` replies: one line each, as SAM and as core errors.
fn check_error(e: &SamError) {
    let text = e.to_string();
    assert!(!text.contains(['\n', '\r']), "{text:?}");
    let core = CoreError::from(e.clone()).to_string();
    assert!(!core.contains(['\n', '\r']), "{core:?}");
}

/// Target `udp_header`: a datagram a local application sends to a UDP tunnel in header
/// mode (or as a `quiet false` reply) → [`crate::tunnel::udp::header::parse`].
///
/// Checks against a plain model that a header is found exactly when a `\n` comes within
/// the line limit, that the payload is exactly the bytes after that first `\n` (nothing
/// truncated or lost), that a parsed destination survives its own encoding and a name is
/// a lower-case `.i2p` name, that [`crate::tunnel::udp::header::format`] is read back
/// as written, and that every error text is one line.
pub fn udp_header(data: &[u8]) {
    use crate::tunnel::udp::header::{self, HeaderError, HeaderTarget, MAX_HEADER_LINE};

    let newline = data
        .iter()
        .take(MAX_HEADER_LINE + 1)
        .position(|&b| b == b'\n');
    match header::parse(data) {
        Ok((head, payload)) => {
            let at = newline.expect("a header without a newline");
            assert_eq!(
                payload,
                &data[at + 1..],
                "the payload is all after the line"
            );
            let line = &data[..at];
            assert!(line.is_ascii());
            match &head.target {
                HeaderTarget::Destination(dest) => {
                    let b64 = dest.to_base64();
                    let again = header::format(dest, payload);
                    let (head2, payload2) = header::parse(&again).expect("own format parses");
                    assert_eq!(head2.target, head.target);
                    assert_eq!(payload2, payload);
                    assert_eq!(&again[..b64.len()], b64.as_bytes());
                }
                HeaderTarget::Name(name) => {
                    assert!(name.ends_with(".i2p") && name.len() > 4, "{name:?}");
                    assert_eq!(name, &name.to_ascii_lowercase());
                    assert!(!name.contains([' ', '\t', '\r', '\n']));
                }
            }
        }
        Err(e) => {
            let text = e.to_string();
            assert!(!text.contains(['\n', '\r']), "{text:?}");
            assert!(text.len() < 200, "{text:?}");
            if newline.is_none() {
                assert_eq!(e, HeaderError::NoNewline);
            } else {
                assert_ne!(e, HeaderError::NoNewline);
            }
        }
    }
}

/// Target `socks_handshake`: bytes a client sends to a SOCKS proxy tunnel → the SOCKS
/// handshake (greeting, method, username/password, request; SOCKS4/4a/5).
///
/// The bytes arrive at once, in chunks of 1–8 bytes (chosen by the first byte) and
/// byte by byte. Checks that the handshake never buffers beyond its limit, that the
/// outcome does not depend on the chunking, that nothing after the request is lost or
/// duplicated (the early bytes plus what is unread are the same whatever the
/// chunking), that the replies written are well-formed SOCKS steps, and that every
/// refusal has a single-line reason and a reply of a known form.
pub fn socks_handshake(data: &[u8]) {
    let chunk = data.first().map_or(1, |b| usize::from(*b % 8) + 1);
    let limit = crate::tunnel::socks_handshake_limit(0);
    let mut sizes = vec![data.len().max(1), chunk];
    if data.len() <= 512 {
        sizes.push(1);
    }
    let mut outcomes = Vec::new();
    for size in sizes {
        let mut stream = Duplex {
            reader: Chunked {
                data,
                at: 0,
                chunk: size,
            },
            written: Vec::new(),
        };
        let got = futures::executor::block_on(crate::tunnel::socks_handshake_for_fuzzing(
            &mut stream,
            limit,
        ));
        let read = stream.reader.at;
        // three messages at most, each buffered up to the limit
        assert!(read <= 3 * limit, "read {read} bytes, limit {limit}");
        let written = stream.written;
        let outcome = match got {
            Ok((summary, early)) => {
                assert!(early.len() <= read);
                assert_eq!(&data[read - early.len()..read], &early[..]);
                // the replies before the final one: none (SOCKS4) or the method
                // choice, then the password step's success
                assert!(
                    written.is_empty() || written == [5, 0] || written == [5, 2, 1, 0],
                    "{written:?}"
                );
                let mut after = early.clone();
                after.extend_from_slice(&data[read..]);
                Ok((summary, after))
            }
            Err((reply, reason)) => {
                assert!(!reason.is_empty());
                assert!(!reason.contains(['\n', '\r']), "{reason:?}");
                let known = reply.is_empty()
                    || reply == [5, 0xFF]
                    || reply == [1, 1]
                    || reply == [0, 91, 0, 0, 0, 0, 0, 0]
                    || (reply.len() == 10 && reply[0] == 5 && reply[1] != 0)
                    || reply.starts_with(b"HTTP/1.0 400 ");
                assert!(known, "{reply:?}");
                Err(reply)
            }
        };
        outcomes.push(outcome);
    }
    for pair in outcomes.windows(2) {
        assert_eq!(pair[0], pair[1], "the outcome depends on the chunking");
    }
}

/// Target `socks_udp`: a datagram a SOCKS client sends to a `UDP ASSOCIATE` relay
/// socket → the SOCKS5 UDP header (RFC 1928 §7).
///
/// Checks against a plain model that a header parses exactly when RSV is zero, the
/// address type is known and every field is there; that the payload is exactly the
/// bytes after DST.PORT (nothing truncated or lost); that a name header written by the
/// relay's own `format` reads back as written; and that every error text is one line.
pub fn socks_udp(data: &[u8]) {
    use crate::tunnel::SocksRequestHost as RequestHost;
    use crate::tunnel::socks_udp_header::{self as header, ReplySource, UdpHeaderError};

    // the model: the header's length, if the bytes hold a whole one
    let model = match data {
        [0, 0, _, 1, ..] => Some(4 + 4 + 2),
        [0, 0, _, 4, ..] => Some(4 + 16 + 2),
        [0, 0, _, 3, len, ..] if *len > 0 => Some(4 + 1 + usize::from(*len) + 2),
        _ => None,
    }
    .filter(|&len| len <= data.len());
    match header::parse(data) {
        Ok(request) => {
            let len = model.expect("a header the model rejects");
            assert_eq!(request.payload, &data[len..], "the payload is all after");
            assert_eq!(request.frag, data[2]);
            assert_eq!(
                request.port,
                u16::from_be_bytes([data[len - 2], data[len - 1]])
            );
            if let RequestHost::Name(name) = &request.host
                && let Ok(name) = std::str::from_utf8(name)
            {
                let again = header::format(ReplySource::Name(name), request.port, request.payload);
                let back = header::parse(&again).expect("own format parses");
                assert_eq!(back.host, request.host);
                assert_eq!((back.frag, back.port), (0, request.port));
                assert_eq!(back.payload, request.payload);
            }
        }
        Err(e) => {
            assert!(model.is_none(), "the model accepts what parse refused: {e}");
            let text = e.to_string();
            assert!(!text.contains(['\n', '\r']), "{text:?}");
            if data.len() < 4 {
                assert_eq!(e, UdpHeaderError::Short);
            }
        }
    }
    let anonymous = header::format(ReplySource::Anonymous, 7, data);
    assert_eq!(header::parse(&anonymous).expect("parses").payload, data);
}

/// [`Chunked`] for reading, a `Vec` for writing.
struct Duplex<'a> {
    reader: Chunked<'a>,
    written: Vec<u8>,
}

impl AsyncRead for Duplex<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.reader).poll_read(cx, buf)
    }
}

impl AsyncWrite for Duplex<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.written.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
