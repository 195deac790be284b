//! An async client for BOB (Basic Open Bridge), I2P's line-based tunnel control protocol.
//!
//! [`Client`] speaks to any BOB server (bob-server, Java I2P's BOB, i2pd's BOB) over any
//! async byte stream, usually a [`TcpStream`] to port 2827. It frames replies with
//! [`bob_codec::LineCodec`], writes requests with [`Command::encode`] and reads them with
//! [`Reply::decode`].
//!
//! **One line per request, always.** Every typed method takes the validated values of
//! [`bob_codec::types`] ([`Nickname`](bob_codec::types::Nickname),
//! [`Host`](bob_codec::types::Host), [`Port`](bob_codec::types::Port),
//! [`TunnelOption`](bob_codec::types::TunnelOption)), and every
//! request, typed or not, is checked before a byte is written: a command whose line would
//! hold a control character (a line break, a TAB) or whose operands would not come back
//! out of the server's parser as the same tokens is refused with
//! [`ClientError::BadRequest`]. So a name like `"victim x"` or `"evil\nclear"` can never
//! select another tunnel or smuggle a second command.
//!
//! A server's `ERROR <text>` reply becomes [`ClientError::Server`]; its `Display` is
//! `<command>: ERROR <text>`, with the command word only (never an operand, which may be a
//! private key).
//!
//! # Example
//!
//! Publishing a local web server as an I2P destination (needs a BOB server on
//! 127.0.0.1:2827):
//!
//! ```no_run
//! use bob_client::Client;
//! use bob_codec::types::{Host, Nickname, Port};
//!
//! # async fn publish() -> Result<(), Box<dyn std::error::Error>> {
//! let mut bob = Client::connect("127.0.0.1:2827").await?;
//! let web: Nickname = "web".parse()?;
//! bob.setnick(&web).await?;
//! let destination = bob.newkeys(None, None).await?;
//! bob.outhost(&"127.0.0.1".parse::<Host>()?).await?;
//! bob.outport("8080".parse::<Port>()?).await?;
//! bob.quiet(true).await?;
//! bob.start().await?;
//! println!("web is reachable at {destination}");
//! bob.quit().await?;
//! # Ok(())
//! # }
//! ```
//!
//! The same calls over an in-memory pipe, against a scripted server:
//!
//! ```
//! use bob_client::{Client, ClientError};
//! use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (ours, theirs) = tokio::io::duplex(4096);
//! let server = tokio::spawn(async move {
//!     let (read, mut write) = tokio::io::split(theirs);
//!     write.write_all(b"BOB 00.00.10\nOK\n").await.unwrap();
//!     let mut lines = BufReader::new(read).lines();
//!     let mut seen = Vec::new();
//!     while let Some(line) = lines.next_line().await.unwrap() {
//!         let reply: &[u8] = match line.as_str() {
//!             "setnick web" => b"OK Nickname set to web\n",
//!             "start" => b"ERROR tunnel settings incomplete\n",
//!             _ => b"ERROR UNKNOWN COMMAND! Try help\n",
//!         };
//!         write.write_all(reply).await.unwrap();
//!         seen.push(line);
//!     }
//!     seen
//! });
//!
//! let mut bob = Client::handshake(ours).await.unwrap();
//! bob.setnick(&"web".parse().unwrap()).await.unwrap();
//! let err = bob.start().await.unwrap_err();
//! assert_eq!(err.to_string(), "start: ERROR tunnel settings incomplete");
//! // refused before anything is sent
//! assert!(matches!(bob.raw("getnick web\nclear").await, Err(ClientError::BadRequest { .. })));
//! drop(bob);
//! assert_eq!(server.await.unwrap(), ["setnick web", "start"]);
//! # }
//! ```
//!
//! # Timeouts
//! [`Client::set_timeout`] bounds every single read and write (and
//! [`Client::connect_timeout`] the connect); without one, a silent server makes a call
//! wait forever, as BOB has no timeouts of its own.
#![warn(missing_docs)]

use std::future::Future;
use std::time::Duration;

use bob_codec::{Command, Dialect, LineCodec, LineError, Reply};
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio_util::codec::{Decoder, Encoder};

pub use bob_codec;

mod commands;

/// Longest reply line the client reads (a `getkeys` blob is well under this).
pub const MAX_REPLY_LEN: usize = 64 * 1024;

/// Longest piece of a foreign line quoted in an error.
const QUOTE_LIMIT: usize = 80;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A read, write or connect took longer than the timeout.
    #[error("no answer from the server within {0:?}")]
    Timeout(Duration),
    /// The server closed the connection while a reply was expected.
    #[error("the server closed the connection")]
    Closed,
    /// The peer did not greet like a BOB server.
    #[error("not a BOB server (greeting {0:?})")]
    NotBob(String),
    /// The server sent something that is not a BOB reply, or not the reply expected.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server answered `ERROR <text>`.
    #[error("{command}: ERROR {text}")]
    Server {
        /// the command word of the request (no operands)
        command: &'static str,
        /// the text after `ERROR `
        text: String,
    },
    /// The request was refused before anything was sent: it would not be exactly one
    /// line with the intended operands.
    #[error("{command}: {reason}")]
    BadRequest {
        /// the command word (or `request` when there is none)
        command: String,
        /// what is wrong
        reason: &'static str,
    },
}

impl ClientError {
    /// The `ERROR` text when the server refused the request.
    pub fn server_text(&self) -> Option<&str> {
        match self {
            Self::Server { text, .. } => Some(text),
            _ => None,
        }
    }
}

/// Result of a client call.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// One control connection. See the [crate docs](crate) for an example.
#[derive(Debug)]
pub struct Client<S = TcpStream> {
    io: S,
    buf: BytesMut,
    codec: LineCodec,
    timeout: Option<Duration>,
    version: Option<String>,
    last_crlf: bool,
}

impl Client<TcpStream> {
    /// Connects to a BOB server and reads its greeting.
    ///
    /// # Errors
    /// [`ClientError::Io`] when no address connects, [`ClientError::NotBob`] or
    /// [`ClientError::Closed`] for a bad greeting.
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<Self> {
        Self::handshake(TcpStream::connect(addr).await?).await
    }

    /// [`Client::connect`] with `timeout` on the connect and, after it, on every read
    /// and write (see [`Client::set_timeout`]).
    ///
    /// # Errors
    /// As [`Client::connect`], and [`ClientError::Timeout`].
    pub async fn connect_timeout(addr: impl ToSocketAddrs, timeout: Duration) -> Result<Self> {
        let stream = limit(Some(timeout), async { Ok(TcpStream::connect(addr).await?) }).await?;
        let mut client = Self::without_greeting(stream);
        client.set_timeout(Some(timeout));
        client.read_greeting().await?;
        Ok(client)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    /// A client on an open stream; reads and checks the greeting.
    ///
    /// # Errors
    /// [`ClientError::NotBob`] when the peer does not greet with `BOB <version>` and `OK`.
    pub async fn handshake(io: S) -> Result<Self> {
        let mut client = Self::without_greeting(io);
        client.read_greeting().await?;
        Ok(client)
    }

    /// A client on an open stream whose greeting has not been read (for servers under
    /// test; call [`Client::read_greeting`] or read lines yourself).
    pub fn without_greeting(io: S) -> Self {
        Self {
            io,
            buf: BytesMut::new(),
            codec: LineCodec::with_max_len(MAX_REPLY_LEN),
            timeout: None,
            version: None,
            last_crlf: false,
        }
    }

    /// Bounds every later read and write by `timeout` (`None`: wait forever).
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// The timeout in force.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The protocol version of the greeting (`00.00.10`), once read.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// The stream (reading or writing it directly bypasses the framing).
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// The stream, mutably (writing to it bypasses every check of this client).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// The stream and any bytes already read but not yet handed out.
    pub fn into_parts(self) -> (S, BytesMut) {
        (self.io, self.buf)
    }

    /// Reads the greeting: a `BOB <version>` line, then `OK`. Returns the version.
    ///
    /// # Errors
    /// [`ClientError::NotBob`] for anything else.
    pub async fn read_greeting(&mut self) -> Result<String> {
        let first = match self.read_line().await {
            Ok(line) => line,
            Err(ClientError::Protocol(what)) => return Err(ClientError::NotBob(what)),
            Err(e) => return Err(e),
        };
        let Some(version) = first.strip_prefix("BOB ") else {
            return Err(ClientError::NotBob(quote(&first)));
        };
        let version = version.to_owned();
        let second = self.read_line().await?;
        if !matches!(Reply::decode(&second), Ok(Reply::Ok(_))) {
            return Err(ClientError::NotBob(quote(&format!("{first}\\n{second}"))));
        }
        self.version = Some(version.clone());
        Ok(version)
    }

    // ---- lines ----------------------------------------------------------------------

    /// Reads one line (without its `\n` or `\r\n`).
    ///
    /// # Errors
    /// [`ClientError::Closed`] at end of stream, [`ClientError::Protocol`] for a line
    /// longer than [`MAX_REPLY_LEN`], one that is not UTF-8, or one cut off by the end of
    /// the stream.
    pub async fn read_line(&mut self) -> Result<String> {
        let timeout = self.timeout;
        limit(timeout, self.read_line_inner()).await
    }

    async fn read_line_inner(&mut self) -> Result<String> {
        loop {
            let crlf = self
                .buf
                .iter()
                .position(|&b| b == b'\n')
                .map(|i| i > 0 && self.buf[i - 1] == b'\r');
            if let Some(item) = self.codec.decode(&mut self.buf)? {
                self.last_crlf = crlf.unwrap_or(false);
                return item.map_err(|e| match e {
                    LineError::TooLong { limit } => {
                        ClientError::Protocol(format!("reply line longer than {limit} bytes"))
                    }
                    LineError::InvalidUtf8 => ClientError::Protocol("reply is not UTF-8".into()),
                });
            }
            if self.io.read_buf(&mut self.buf).await? == 0 {
                return Err(match self.codec.decode_eof(&mut self.buf)? {
                    None => ClientError::Closed,
                    Some(Ok(part)) => ClientError::Protocol(format!(
                        "the server closed the connection in the middle of a line: {}",
                        quote(&part)
                    )),
                    Some(Err(_)) => ClientError::Closed,
                });
            }
        }
    }

    /// Whether the line last returned by [`Client::read_line`] ended in `\r\n` (BOB
    /// servers end replies in `\n` only).
    pub fn last_line_was_crlf(&self) -> bool {
        self.last_crlf
    }

    /// Reads one reply line and decodes it.
    ///
    /// # Errors
    /// As [`Client::read_line`], and [`ClientError::Protocol`] for a line that is not
    /// `OK…`, `ERROR …` or `DATA …`.
    pub async fn read_reply(&mut self) -> Result<Reply> {
        let line = self.read_line().await?;
        Reply::decode(&line).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Reads everything up to the end of the stream (buffered bytes first).
    ///
    /// # Errors
    /// [`ClientError::Io`], [`ClientError::Timeout`].
    pub async fn read_to_end(&mut self) -> Result<Vec<u8>> {
        let timeout = self.timeout;
        let mut out = self.buf.split().to_vec();
        let io = &mut self.io;
        limit(timeout, async {
            io.read_to_end(&mut out).await?;
            Ok(out)
        })
        .await
    }

    /// Writes bytes as they are, unchecked: for tests of servers only. Everything else
    /// goes through [`Client::send`], [`Client::send_line`] or the typed methods.
    ///
    /// # Errors
    /// [`ClientError::Io`], [`ClientError::Timeout`].
    pub async fn write_unchecked(&mut self, bytes: &[u8]) -> Result<()> {
        let timeout = self.timeout;
        let io = &mut self.io;
        limit(timeout, async {
            io.write_all(bytes).await?;
            io.flush().await?;
            Ok(())
        })
        .await
    }

    /// Sends one request line typed by a person or a script (`bobctl raw`), plus `\n`.
    ///
    /// # Errors
    /// [`ClientError::BadRequest`] (nothing sent) when the line holds a control character
    /// (`\n`, `\r`, TAB, …) or is longer than [`bob_codec::MAX_LINE_LEN`].
    pub async fn send_line(&mut self, line: &str) -> Result<()> {
        let word = line.split(' ').find(|w| !w.is_empty()).unwrap_or("request");
        let bad = |reason| ClientError::BadRequest {
            command: word.chars().filter(|c| !c.is_control()).take(40).collect(),
            reason,
        };
        if line.chars().any(char::is_control) {
            return Err(bad(
                "refused: the line contains a line break or another control character",
            ));
        }
        if line.len() > bob_codec::MAX_LINE_LEN {
            return Err(bad("refused: the line is longer than a BOB server reads"));
        }
        let mut out = BytesMut::with_capacity(line.len() + 1);
        self.codec.encode(line, &mut out)?;
        self.write_unchecked(&out).await
    }

    /// Sends one command.
    ///
    /// # Errors
    /// [`ClientError::BadRequest`] (nothing sent) when the encoded line would hold a
    /// control character, an operand is empty or holds whitespace (so the server would
    /// read other tokens than the ones given), or the line is too long.
    pub async fn send(&mut self, command: &Command) -> Result<()> {
        let line = command.encode();
        let bad = |reason| ClientError::BadRequest {
            command: command.name().to_owned(),
            reason,
        };
        if line.chars().any(char::is_control) {
            return Err(bad(
                "refused: an operand contains a line break or another control character",
            ));
        }
        if Command::parse(&line, Dialect::Java).as_ref() != Ok(command) {
            return Err(bad("refused: an operand is empty or contains whitespace"));
        }
        self.send_line(&line).await
    }

    /// Sends one command and reads one reply.
    ///
    /// # Errors
    /// As [`Client::send`] and [`Client::read_reply`].
    pub async fn call(&mut self, command: &Command) -> Result<Reply> {
        self.send(command).await?;
        self.read_reply().await
    }

    /// Sends one command and expects `OK`; returns its text (`""` for a bare `OK`).
    ///
    /// # Errors
    /// [`ClientError::Server`] for `ERROR`, [`ClientError::Protocol`] for `DATA`.
    pub async fn ok(&mut self, command: &Command) -> Result<String> {
        match self.call(command).await? {
            Reply::Ok(text) => Ok(text.unwrap_or_default()),
            Reply::Error(text) => Err(ClientError::Server {
                command: command.name(),
                text,
            }),
            Reply::Data(_) => Err(ClientError::Protocol(format!(
                "unexpected DATA reply to {}",
                command.name()
            ))),
        }
    }

    /// Sends a request line as typed (see [`Client::send_line`]) and reads replies up to
    /// and including the first that is not `DATA`. An `ERROR` reply is returned, not
    /// raised.
    ///
    /// Commands that answer with no line at all (Java's `help <unknown>`) or with two
    /// (Java's `inport abc`) do not fit this; use [`Client::send_line`] and
    /// [`Client::read_reply`].
    ///
    /// # Errors
    /// As [`Client::send_line`] and [`Client::read_reply`].
    pub async fn raw(&mut self, line: &str) -> Result<Vec<Reply>> {
        self.send_line(line).await?;
        let mut replies = Vec::new();
        loop {
            let reply = self.read_reply().await?;
            let done = !matches!(reply, Reply::Data(_));
            replies.push(reply);
            if done {
                return Ok(replies);
            }
        }
    }
}

/// Runs `fut` within `timeout`, if any.
async fn limit<T>(timeout: Option<Duration>, fut: impl Future<Output = Result<T>>) -> Result<T> {
    match timeout {
        None => fut.await,
        Some(t) => tokio::time::timeout(t, fut)
            .await
            .unwrap_or(Err(ClientError::Timeout(t))),
    }
}

/// A short, single-line excerpt of foreign input for an error message.
fn quote(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(QUOTE_LIMIT)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().count() > QUOTE_LIMIT {
        out.push('…');
    }
    out
}
