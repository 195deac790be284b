//! Bounded line framing: `\n` or `\r\n` ends a line; bytes after a newline are kept.

use crate::error::LineError;

/// Longest accepted request line in bytes, without its terminator: large enough for any
/// key blob (an offline-signed P521 blob is under 2 KiB of base64).
pub const MAX_LINE_LEN: usize = 16 * 1024;

/// Line framer usable without tokio: feed bytes, take complete lines.
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
}

impl Default for LineCodec {
    fn default() -> Self {
        Self::new()
    }
}

/// One framed item: a line (without `\n`/`\r\n`) or a line-level error after which
/// framing continues.
pub type LineItem = Result<String, LineError>;

// The tokio-util `Decoder<Item = LineItem, Error = std::io::Error>` and
// `Encoder<&str>`/`Encoder<Reply>` impls for `LineCodec` live here behind feature `codec`.
