//! Bounded line framing: `\n` or `\r\n` ends a line; bytes after a newline are kept.
//!
//! [`LineCodec`] turns a byte stream into [`LineItem`]s. It works on a plain `Vec<u8>`
//! ([`LineCodec::decode_line`], [`LineCodec::decode_line_eof`]) and, with feature `codec`
//! (on by default), as a `tokio_util::codec::{Decoder, Encoder}` over `BytesMut`.
//!
//! Rules:
//! - a line ends at `\n`; one `\r` before it is stripped (so `\r\n` works, as telnet sends);
//! - a line longer than the limit (terminator not counted) yields exactly one
//!   `Err(LineError::TooLong)` item; the rest of it up to the next `\n` is discarded and
//!   framing goes on with the following line;
//! - a line that is not UTF-8 yields `Err(LineError::InvalidUtf8)` and framing goes on;
//! - bytes after a `\n` stay in the buffer for the next call (pipelining never loses data);
//! - at end of input a final line without `\n` is still returned.
//!
//! ```
//! use bob_codec::line::LineCodec;
//!
//! let mut codec = LineCodec::new();
//! let mut buf = b"setnick a\r\nstart\nqu".to_vec();
//! assert_eq!(codec.decode_line(&mut buf), Some(Ok("setnick a".to_owned())));
//! assert_eq!(codec.decode_line(&mut buf), Some(Ok("start".to_owned())));
//! assert_eq!(codec.decode_line(&mut buf), None); // "qu" is incomplete
//! assert_eq!(codec.decode_line_eof(&mut buf), Some(Ok("qu".to_owned())));
//! ```

use crate::error::LineError;

/// Longest accepted request line in bytes, without its terminator: large enough for any
/// key blob (an offline-signed P521 blob is under 2 KiB of base64).
pub const MAX_LINE_LEN: usize = 16 * 1024;

/// Line framer usable without tokio: feed bytes, take complete lines.
///
/// The framer keeps a little state between calls (how far the buffer was already searched,
/// and whether it is skipping the tail of an over-long line), so always pass the same
/// buffer, with only new bytes appended, until the framer hands a line back.
#[derive(Debug)]
pub struct LineCodec {
    max_len: usize,
    /// true while discarding the rest of an over-long line
    discarding: bool,
    /// how far the buffer has already been scanned for `\n`
    next_index: usize,
}

impl LineCodec {
    /// A framer with the default [`MAX_LINE_LEN`].
    pub fn new() -> Self {
        Self::with_max_len(MAX_LINE_LEN)
    }

    /// A framer with a custom limit.
    pub fn with_max_len(max_len: usize) -> Self {
        Self {
            max_len,
            discarding: false,
            next_index: 0,
        }
    }

    /// The limit in force.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Takes the next complete line out of the front of `buf`.
    ///
    /// Returns `None` when more bytes are needed. Consumed bytes (the line, its terminator,
    /// and the discarded tail of an over-long line) are removed from `buf`; anything after
    /// them stays. Errors are items, not failures: after `Some(Err(_))` keep calling.
    pub fn decode_line(&mut self, buf: &mut Vec<u8>) -> Option<LineItem> {
        let (used, item) = self.scan(buf, false);
        buf.drain(..used);
        item
    }

    /// Like [`LineCodec::decode_line`], but the input has ended: a final line without a
    /// terminator is returned as a line. Returns `None` once `buf` is empty.
    pub fn decode_line_eof(&mut self, buf: &mut Vec<u8>) -> Option<LineItem> {
        let (used, item) = self.scan(buf, true);
        buf.drain(..used);
        item
    }

    /// The framing core over a plain slice: returns how many bytes of `buf` are used up
    /// and the item found, if any.
    fn scan(&mut self, buf: &[u8], eof: bool) -> (usize, Option<LineItem>) {
        let mut start = 0;
        if self.discarding {
            let from = self.next_index.min(buf.len());
            match find_newline(&buf[from..]) {
                Some(i) => {
                    start = from + i + 1;
                    self.discarding = false;
                    self.next_index = 0;
                }
                None => {
                    // Everything buffered belongs to the over-long line: drop it.
                    self.next_index = 0;
                    if eof {
                        self.discarding = false;
                    }
                    return (buf.len(), None);
                }
            }
        }
        let rest = &buf[start..];
        let from = self.next_index.min(rest.len());
        match find_newline(&rest[from..]) {
            Some(i) => {
                let end = from + i;
                self.next_index = 0;
                (start + end + 1, Some(self.finish(&rest[..end])))
            }
            None if eof => {
                self.next_index = 0;
                if rest.is_empty() {
                    (start, None)
                } else {
                    (buf.len(), Some(self.finish(rest)))
                }
            }
            None => {
                // A line of exactly `max_len` bytes may still be waiting for the `\n` of
                // its `\r\n`, so one extra byte is tolerated if it is a `\r`.
                let over = rest.len() > self.max_len
                    && !(rest.len() == self.max_len + 1 && rest.ends_with(b"\r"));
                if over {
                    self.discarding = true;
                    self.next_index = 0;
                    (
                        buf.len(),
                        Some(Err(LineError::TooLong {
                            limit: self.max_len,
                        })),
                    )
                } else {
                    self.next_index = rest.len();
                    (start, None)
                }
            }
        }
    }

    /// Turns the bytes of one line (terminator removed) into an item.
    fn finish(&self, line: &[u8]) -> LineItem {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > self.max_len {
            return Err(LineError::TooLong {
                limit: self.max_len,
            });
        }
        match std::str::from_utf8(line) {
            Ok(text) => Ok(text.to_owned()),
            Err(_) => Err(LineError::InvalidUtf8),
        }
    }
}

impl Default for LineCodec {
    fn default() -> Self {
        Self::new()
    }
}

/// One framed item: a line (without `\n`/`\r\n`) or a line-level error after which
/// framing continues.
pub type LineItem = Result<String, LineError>;

fn find_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

/// Appends `line` plus `\n` to `out`.
///
/// # Errors
/// [`std::io::ErrorKind::InvalidInput`] if `line` holds a `\r` or `\n`, which would split
/// it into several lines on the wire.
pub fn encode_line(line: &str, out: &mut Vec<u8>) -> std::io::Result<()> {
    check_single_line(line)?;
    out.reserve(line.len() + 1);
    out.extend_from_slice(line.as_bytes());
    out.push(b'\n');
    Ok(())
}

fn check_single_line(line: &str) -> std::io::Result<()> {
    if line.contains(['\r', '\n']) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a BOB line must not contain CR or LF",
        ));
    }
    Ok(())
}

#[cfg(feature = "codec")]
mod tokio_codec {
    use super::{LineCodec, LineItem, check_single_line};
    use crate::reply::{Reply, one_line};
    use bytes::{Buf, BufMut, BytesMut};
    use tokio_util::codec::{Decoder, Encoder};

    impl Decoder for LineCodec {
        type Item = LineItem;
        type Error = std::io::Error;

        fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<LineItem>, std::io::Error> {
            let (used, item) = self.scan(buf, false);
            buf.advance(used);
            Ok(item)
        }

        fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<LineItem>, std::io::Error> {
            let (used, item) = self.scan(buf, true);
            buf.advance(used);
            Ok(item)
        }
    }

    /// Writes a request line plus `\n` (client side).
    ///
    /// # Errors
    /// `InvalidInput` if the line holds `\r` or `\n`.
    impl Encoder<&str> for LineCodec {
        type Error = std::io::Error;

        fn encode(&mut self, line: &str, dst: &mut BytesMut) -> Result<(), std::io::Error> {
            check_single_line(line)?;
            dst.reserve(line.len() + 1);
            dst.put_slice(line.as_bytes());
            dst.put_u8(b'\n');
            Ok(())
        }
    }

    /// Writes a reply line (server side), see [`Reply::encode_into`].
    impl Encoder<Reply> for LineCodec {
        type Error = std::io::Error;

        fn encode(&mut self, reply: Reply, dst: &mut BytesMut) -> Result<(), std::io::Error> {
            Encoder::<&Reply>::encode(self, &reply, dst)
        }
    }

    /// Writes a borrowed reply line (server side), see [`Reply::encode_into`].
    impl Encoder<&Reply> for LineCodec {
        type Error = std::io::Error;

        fn encode(&mut self, reply: &Reply, dst: &mut BytesMut) -> Result<(), std::io::Error> {
            let (head, text) = reply.parts();
            dst.reserve(head.len() + text.len() + 1);
            dst.put_slice(head.as_bytes());
            dst.extend(one_line(text));
            dst.put_u8(b'\n');
            Ok(())
        }
    }
}
