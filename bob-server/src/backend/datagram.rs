//! The datagram seam: what UDP tunnels need from an I2P implementation, beside the
//! streaming seam ([`super::StreamingCore`]) and object-safe like it, so that the
//! tunnel code never knows which backend runs.
//!
//! A backend that can carry datagrams answers [`super::StreamingCore::datagrams`] with
//! its [`DatagramCore`]; that opens one [`DatagramSession`] per started UDP tunnel
//! (SAM: one `SESSION CREATE STYLE=DATAGRAM|RAW … PORT=…`). A session sends to and
//! receives from destinations; repliable datagrams carry the sender's destination,
//! raw ones carry nothing ([`DatagramStyle`]).
//!
//! Sizes: [`DatagramSession::max_payload`] is the backend's hard cap on the payload
//! (router buffers minus the header room it needs); a larger payload is refused with
//! [`DatagramError::Oversize`], never truncated. Pacing, per-peer mappings and the
//! server's `bob.udp.*` options live in the tunnel (`crate::tunnel::udp`), not here.

use std::fmt;
use std::sync::Arc;

use keytools::{Destination, PrivateKeys};

use super::{BoxFuture, CoreError, Options};

/// How a datagram is sent (SAM `STYLE=DATAGRAM` or `STYLE=RAW`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatagramStyle {
    /// Signed, carries the sender's full destination: the receiver can reply.
    Repliable,
    /// Unsigned, anonymous: the receiver learns nothing about the sender.
    Raw,
}

impl DatagramStyle {
    /// The style's name (`repliable`, `raw`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Repliable => "repliable",
            Self::Raw => "raw",
        }
    }
}

impl fmt::Display for DatagramStyle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One received datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// The sender (repliable datagrams); `None` for raw ones.
    pub from: Option<Destination>,
    /// How it was sent.
    pub style: DatagramStyle,
    /// The sender's I2CP port (0 when the backend does not report ports).
    pub from_port: u16,
    /// The I2CP port it was sent to (0 when the backend does not report ports).
    pub to_port: u16,
    /// The payload, whole.
    pub payload: bytes::Bytes,
}

/// Datagram failures; `Display` is the text users see (in logs, or after `ERROR `).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatagramError {
    /// The payload is larger than the session can carry whole.
    #[error("datagram of {size} bytes exceeds the maximum of {max}")]
    Oversize {
        /// the payload's size
        size: usize,
        /// the session's [`DatagramSession::max_payload`]
        max: usize,
    },
    /// The session has been closed (or the router dropped it).
    #[error("datagram session closed")]
    Closed,
    /// A name that no naming source knows, or a destination that cannot be reached.
    #[error("Address Not found.")]
    NotFound,
    /// A local socket failed, with the error's text.
    #[error("{0}")]
    Io(String),
    /// The router refused, with its message.
    #[error("router error: {0}")]
    Router(String),
}

/// One UDP tunnel's presence on the network: its destination, able to send and
/// receive datagrams.
pub trait DatagramSession: Send + Sync + fmt::Debug {
    /// This session's public destination.
    fn destination(&self) -> &Destination;

    /// The largest payload [`DatagramSession::send_to`] accepts whole.
    fn max_payload(&self) -> usize;

    /// Sends `payload` to `to` as `style`, from I2CP port `from_port` to `to_port`.
    /// Resolves once the datagram is handed to the network (delivery is not confirmed).
    /// A backend whose sessions can send only the style they were opened with (SAM
    /// before 3.3) sends that style whatever `style` asks.
    ///
    /// # Errors
    /// [`DatagramError::Oversize`] when `payload` exceeds [`Self::max_payload`] (nothing
    /// is sent); [`DatagramError::Closed`] after [`Self::close`]; others as the backend
    /// reports them. A destination that is not reachable is not necessarily an error
    /// (datagrams may be lost silently).
    fn send_to<'a>(
        &'a self,
        to: &'a Destination,
        style: DatagramStyle,
        from_port: u16,
        to_port: u16,
        payload: &'a [u8],
    ) -> BoxFuture<'a, Result<(), DatagramError>>;

    /// Waits for the next datagram. May be called from one task at a time; returns
    /// [`DatagramError::Closed`] after [`Self::close`].
    fn recv(&self) -> BoxFuture<'_, Result<Datagram, DatagramError>>;

    /// Resolves a `.b32.i2p` address, a host name or a base64 destination.
    ///
    /// # Errors
    /// [`DatagramError::NotFound`] when no naming source knows it.
    fn lookup<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Destination, DatagramError>>;

    /// Ends the session: a pending and later `recv` fails with
    /// [`DatagramError::Closed`]; the destination stops receiving.
    fn close(&self) -> BoxFuture<'_, ()>;
}

/// A backend's datagram side (see the module docs).
pub trait DatagramCore: Send + Sync + fmt::Debug {
    /// Opens a datagram session for `keys` with `options` (already stripped of the
    /// server's own `bob.*` options) that sends `style` datagrams by default (SAM needs
    /// the style at session creation; a backend that can send both may ignore it).
    /// Resolves once the session can send and receive.
    fn open_datagram_session(
        &self,
        keys: PrivateKeys,
        options: Options,
        style: DatagramStyle,
    ) -> BoxFuture<'_, Result<Arc<dyn DatagramSession>, CoreError>>;

    /// Whether a datagram session may be opened for any destination that has a stream
    /// session open at the same time (a SOCKS proxy tunnel's UDP ASSOCIATE sends from
    /// the tunnel's own destination). `false` (the default) on SAM, where one
    /// destination belongs to one session (`DUPLICATED_DEST`) unless that session is a
    /// SAM 3.3 PRIMARY session (see [`Self::shares_destination`]).
    fn shares_destinations(&self) -> bool {
        false
    }

    /// Whether a datagram session may be opened for `destination` while its stream
    /// session is open: [`Self::shares_destinations`], or (SAM) whether that stream
    /// session was opened as a PRIMARY session
    /// ([`super::StreamingCore::open_session_sharing`]) that takes datagram subsessions.
    fn shares_destination(&self, destination: &Destination) -> bool {
        let _ = destination;
        self.shares_destinations()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_users_see_them() {
        assert_eq!(
            DatagramError::Oversize {
                size: 7001,
                max: 7000
            }
            .to_string(),
            "datagram of 7001 bytes exceeds the maximum of 7000"
        );
        assert_eq!(DatagramError::NotFound.to_string(), "Address Not found.");
        assert_eq!(DatagramStyle::Raw.to_string(), "raw");
    }
}
