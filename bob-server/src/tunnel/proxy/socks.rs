//! The SOCKS handler (`settunneltype socks`): SOCKS5 (RFC 1928; no authentication, or
//! username/password per RFC 1929 with any credentials accepted), SOCKS4a and SOCKS4;
//! `CONNECT`, and SOCKS5 `UDP ASSOCIATE` on backends where the tunnel's destination
//! can send datagrams beside its streams ([`associate`]).
//!
//! # Hosts and ports
//! A `.i2p` name, a `.b32.i2p` address or a base64 destination is connected through
//! the tunnel's session; the port is ignored (streams here carry no I2P ports), and
//! logged at debug level. Any other host (an IP address, a clearnet name) goes to the
//! tunnel's outproxy when it has one (`outhost:outport`, an upstream SOCKS5 proxy, the
//! port kept), else is refused with "connection not allowed by ruleset" (SOCKS5 reply
//! 2; SOCKS4 91). Plain SOCKS4 carries only IPv4 addresses, so it reaches I2P only
//! through SOCKS4a (`curl --socks4a`), which sends the name.
//!
//! # Replies
//! | failure | SOCKS5 | SOCKS4 |
//! |---|---|---|
//! | no acceptable method | method `0xFF`, close | — |
//! | BIND, unknown command, UDP ASSOCIATE where the backend cannot ([`associate`]) | 7 command not supported | 91 |
//! | unknown address type | 8 address type not supported | — |
//! | non-I2P host, no outproxy | 2 not allowed by ruleset | 91 |
//! | unknown name, unreachable destination, bad name | 4 host unreachable | 91 |
//! | connect timed out | 6 TTL expired | 91 |
//! | the tunnel's session failed, other errors | 1 general failure | 91 |
//!
//! A client that sends an HTTP request to the SOCKS port gets an HTTP `400` page saying
//! so; any other unknown first byte, a malformed message, a handshake that overruns the
//! size bound or the first-request timeout closes the connection (SOCKS has no reply
//! before the version is known), counted as a failure.
//!
//! # Why the handshake is parsed here
//! The SOCKS server crates (fast-socks5, socks5-server, socks5-impl) speak SOCKS5 only
//! and own the accept loop or the whole connection; none does SOCKS4/4a, and SOCKS4's
//! NUL-terminated user id and host name need an explicit bound. The handshake is a few
//! fixed-layout messages, so it is parsed by hand, as pure functions over the bytes
//! read so far (bounded by [`handshake_limit`]), fuzzed by target `socks_handshake`
//! (`crate::fuzzing`). The outproxy side uses `tokio-socks` (a client).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{ConnectError, Host, ProxyContext, classify_host};
use crate::backend::BoxStream;

pub(crate) mod associate;
pub(crate) mod udp_header;

/// SOCKS5 reply codes (RFC 1928 §6).
pub(crate) mod rep {
    pub(crate) const SUCCEEDED: u8 = 0;
    pub(crate) const GENERAL_FAILURE: u8 = 1;
    pub(crate) const NOT_ALLOWED: u8 = 2;
    pub(crate) const HOST_UNREACHABLE: u8 = 4;
    pub(crate) const TTL_EXPIRED: u8 = 6;
    pub(crate) const COMMAND_NOT_SUPPORTED: u8 = 7;
    pub(crate) const ADDRESS_TYPE_NOT_SUPPORTED: u8 = 8;
}

/// SOCKS4 reply codes.
const SOCKS4_GRANTED: u8 = 90;
const SOCKS4_REJECTED: u8 = 91;

/// The reply to an HTTP request sent to the SOCKS port.
const NOT_HTTP: &[u8] = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nThis port is a SOCKS proxy (SOCKS4, SOCKS4a, SOCKS5) into I2P, not an HTTP proxy.\n";

/// The SOCKS version a client spoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// SOCKS4: an IPv4 address
    V4,
    /// SOCKS4a: a host name
    V4a,
    /// SOCKS5
    V5,
}

/// The host of a request as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RequestHost {
    /// an address (SOCKS4, SOCKS5 address types 1 and 4)
    Ip(IpAddr),
    /// a name (SOCKS4a, SOCKS5 address type 3), as bytes: not necessarily UTF-8
    Name(Vec<u8>),
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    /// `CONNECT` (SOCKS4/4a/5): a stream
    Connect,
    /// SOCKS5 `UDP ASSOCIATE`: a UDP relay ([`associate`]); the request's host and
    /// port are where the client will send its datagrams from (zeros: not known yet)
    UdpAssociate,
}

/// A CONNECT or UDP ASSOCIATE request, read and acknowledged up to the final reply.
#[derive(Debug)]
pub(crate) struct Request {
    /// the version the client spoke (the final reply's format)
    pub version: Version,
    /// what the client asks for
    pub command: Command,
    /// where to
    pub host: RequestHost,
    /// the port (ignored for I2P destinations)
    pub port: u16,
    /// bytes the client sent after the request, without waiting for the reply
    pub early: BytesMut,
}

/// Why a handshake ended without a request; `reply` is what the client is told (if
/// anything) before the connection closes.
#[derive(Debug)]
pub(crate) struct Refusal {
    /// the bytes to send before closing (empty: just close)
    pub reply: Vec<u8>,
    /// for the log
    pub reason: String,
}

impl Refusal {
    fn close(reason: impl Into<String>) -> Self {
        Self {
            reply: Vec::new(),
            reason: reason.into(),
        }
    }

    fn reply(reply: Vec<u8>, reason: impl Into<String>) -> Self {
        Self {
            reply,
            reason: reason.into(),
        }
    }
}

/// Most bytes the handshake buffers at once: the tunnel's line limit, and never less
/// than the largest SOCKS5 message (a username/password message is 513 bytes).
pub(crate) fn handshake_limit(max_first_line: usize) -> usize {
    max_first_line.max(600)
}

/// Serves one accepted connection (see the module docs of [`super`]).
pub(crate) async fn serve(mut socket: TcpStream, proxy: ProxyContext) {
    let limit = handshake_limit(proxy.limits().max_first_line);
    let timeout = proxy.first_request_timeout();
    let request = match tokio::time::timeout(timeout, handshake(&mut socket, limit)).await {
        Ok(Ok(request)) => request,
        Ok(Err(refusal)) => {
            tracing::debug!(reason = %refusal.reason, "SOCKS handshake refused");
            if refusal.reply.is_empty() {
                proxy.count_failure();
            } else {
                proxy.reject(socket, &refusal.reply).await;
            }
            return;
        }
        Err(_) => {
            tracing::debug!("SOCKS handshake timed out");
            proxy.count_failure();
            return;
        }
    };
    let Request {
        version,
        command,
        host,
        port,
        early,
    } = request;
    if command == Command::UdpAssociate {
        drop(early);
        associate::serve(socket, proxy, host, port).await;
        return;
    }
    let mut stream = match open(&proxy, host, port).await {
        Ok(stream) => stream,
        Err((code, reason)) => {
            tracing::debug!(%reason, code, "SOCKS request failed");
            proxy.reject(socket, &final_reply(version, code)).await;
            return;
        }
    };
    if let Err(e) = socket
        .write_all(&final_reply(version, rep::SUCCEEDED))
        .await
    {
        proxy.count_failure();
        tracing::debug!(error = %e, "writing the SOCKS reply failed");
        return;
    }
    if !early.is_empty() {
        let sent = async {
            stream.write_all(&early).await?;
            stream.flush().await
        };
        if let Err(e) = sent.await {
            proxy.count_failure();
            tracing::debug!(error = %e, "forwarding early bytes failed");
            return;
        }
        proxy.count_sent(early.len());
    }
    drop(early);
    tracing::debug!("connected");
    proxy.relay(socket, stream).await;
}

/// Opens the stream a request asks for: through the session for an I2P host, through
/// the outproxy for any other. The SOCKS5 reply code and a reason for the log when
/// that fails.
async fn open(
    proxy: &ProxyContext,
    host: RequestHost,
    port: u16,
) -> Result<BoxStream, (u8, String)> {
    let host = match host {
        RequestHost::Ip(ip) => Host::Other(ip.to_string()),
        RequestHost::Name(name) => {
            let Ok(name) = String::from_utf8(name) else {
                return Err((rep::HOST_UNREACHABLE, "host name is not UTF-8".to_owned()));
            };
            classify_host(&name).map_err(|why| (rep::HOST_UNREACHABLE, why))?
        }
    };
    match host {
        Host::I2p(target) => {
            tracing::debug!(?target, port, "connecting (the port is ignored)");
            proxy
                .connect(target)
                .await
                .map_err(|e| (connect_error_code(&e), e.to_string()))
        }
        Host::Other(host) => {
            if proxy.outproxy().is_none() {
                let e = ConnectError::NoOutproxy;
                return Err((connect_error_code(&e), format!("{host}: {e}")));
            }
            outproxy::connect(proxy, &host, port).await
        }
    }
}

/// The SOCKS5 reply code for a failed connect.
fn connect_error_code(e: &ConnectError) -> u8 {
    match e {
        ConnectError::NotFound | ConnectError::Unreachable(_) => rep::HOST_UNREACHABLE,
        ConnectError::Timeout => rep::TTL_EXPIRED,
        ConnectError::NoOutproxy => rep::NOT_ALLOWED,
        ConnectError::NotReady(_) | ConnectError::Failed(_) => rep::GENERAL_FAILURE,
    }
}

/// The reply to a request in the client's version: SOCKS5 `code`, or SOCKS4 granted
/// (`code` 0) / rejected. The bound address is unspecified (0.0.0.0:0): the stream has
/// no local address a client could use.
pub(crate) fn final_reply(version: Version, code: u8) -> Vec<u8> {
    match version {
        Version::V5 => vec![5, code, 0, 1, 0, 0, 0, 0, 0, 0],
        Version::V4 | Version::V4a => {
            let cd = if code == rep::SUCCEEDED {
                SOCKS4_GRANTED
            } else {
                SOCKS4_REJECTED
            };
            vec![0, cd, 0, 0, 0, 0, 0, 0]
        }
    }
}

/// The first message: a whole SOCKS4/4a request, or a SOCKS5 greeting's methods.
#[derive(Debug)]
enum Hello {
    V4(Request),
    V5(Vec<u8>),
}

/// SOCKS5 methods.
const METHOD_NONE: u8 = 0;
const METHOD_PASSWORD: u8 = 2;
const METHOD_UNACCEPTABLE: u8 = 0xFF;

/// The result of parsing a message from the bytes read so far: the message and how
/// many bytes it took, `None` when more bytes are needed, or a refusal.
type Parsed<T> = Result<Option<(T, usize)>, Refusal>;

/// Runs the handshake on `stream` up to (not including) the final reply: reads the
/// greeting, answers the method and authentication steps of SOCKS5, reads the
/// request. Never buffers more than `limit` bytes; the caller bounds the time.
///
/// # Errors
/// A [`Refusal`] with the reply to send (if any) before closing.
pub(crate) async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    limit: usize,
) -> Result<Request, Refusal> {
    let mut buf = BytesMut::with_capacity(512);
    let hello = read_message(stream, &mut buf, limit, parse_hello).await?;
    let methods = match hello {
        Hello::V4(mut request) => {
            request.early = buf;
            return Ok(request);
        }
        Hello::V5(methods) => methods,
    };
    let method = if methods.contains(&METHOD_NONE) {
        METHOD_NONE
    } else if methods.contains(&METHOD_PASSWORD) {
        METHOD_PASSWORD
    } else {
        return Err(Refusal::reply(
            vec![5, METHOD_UNACCEPTABLE],
            "no acceptable SOCKS5 method (offered neither none nor username/password)",
        ));
    };
    write(stream, &[5, method]).await?;
    if method == METHOD_PASSWORD {
        // Any credentials are accepted: the username selects nothing.
        read_message(stream, &mut buf, limit, parse_password).await?;
        write(stream, &[1, 0]).await?;
    }
    let mut request = read_message(stream, &mut buf, limit, parse_request).await?;
    request.early = buf;
    Ok(request)
}

async fn write<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> Result<(), Refusal> {
    let written = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    written
        .await
        .map_err(|e| Refusal::close(format!("writing to the client failed: {e}")))
}

/// Reads until `parse` finds a message at the start of `buf`, which it then drops from
/// `buf`. Never lets `buf` grow beyond `limit` bytes.
async fn read_message<S, T>(
    stream: &mut S,
    buf: &mut BytesMut,
    limit: usize,
    parse: fn(&[u8]) -> Parsed<T>,
) -> Result<T, Refusal>
where
    S: AsyncRead + Unpin,
{
    loop {
        if let Some((message, used)) = parse(buf)? {
            buf.advance(used);
            return Ok(message);
        }
        if buf.len() >= limit {
            // Only SOCKS4's user id and host name can be this long; tell SOCKS4
            // clients (the version byte is all that is needed), close on others.
            let reply = if buf.first() == Some(&4) {
                final_reply(Version::V4, SOCKS4_REJECTED)
            } else {
                Vec::new()
            };
            return Err(Refusal::reply(
                reply,
                format!("SOCKS message longer than {limit} bytes"),
            ));
        }
        let room = limit - buf.len();
        buf.reserve(room.min(4096));
        let n = (&mut *stream)
            .take(room as u64)
            .read_buf(buf)
            .await
            .map_err(|e: io::Error| Refusal::close(format!("reading the handshake failed: {e}")))?;
        if n == 0 {
            return Err(Refusal::close("the client closed during the handshake"));
        }
    }
}

/// The first message. SOCKS4: `4 CMD PORT(2) IP(4) USERID 0`, and for SOCKS4a (IP
/// `0.0.0.x`, x ≠ 0) `HOST 0` after it. SOCKS5: `5 NMETHODS METHODS…`.
fn parse_hello(buf: &[u8]) -> Parsed<Hello> {
    let Some(&version) = buf.first() else {
        return Ok(None);
    };
    match version {
        4 => parse_socks4(buf).map(|parsed| parsed.map(|(r, n)| (Hello::V4(r), n))),
        5 => {
            let Some(&count) = buf.get(1) else {
                return Ok(None);
            };
            if count == 0 {
                return Err(Refusal::reply(
                    vec![5, METHOD_UNACCEPTABLE],
                    "SOCKS5 greeting offers no method",
                ));
            }
            let end = 2 + usize::from(count);
            Ok(buf
                .get(2..end)
                .map(|methods| (Hello::V5(methods.to_vec()), end)))
        }
        b'A'..=b'Z' | b'a'..=b'z' => Err(Refusal::reply(
            NOT_HTTP.to_vec(),
            "an HTTP request (or other text) on the SOCKS port",
        )),
        other => Err(Refusal::close(format!("unknown SOCKS version {other}"))),
    }
}

fn parse_socks4(buf: &[u8]) -> Parsed<Request> {
    let Some(&command) = buf.get(1) else {
        return Ok(None);
    };
    if command != 1 {
        return Err(Refusal::reply(
            final_reply(Version::V4, SOCKS4_REJECTED),
            format!("SOCKS4 command {command} is not supported (only CONNECT)"),
        ));
    }
    if buf.len() < 8 {
        return Ok(None);
    }
    let port = u16::from_be_bytes([buf[2], buf[3]]);
    let ip = Ipv4Addr::new(buf[4], buf[5], buf[6], buf[7]);
    let Some(user_end) = buf[8..].iter().position(|&b| b == 0).map(|at| 8 + at) else {
        return Ok(None);
    };
    let [a, b, c, d] = ip.octets();
    if (a, b, c) == (0, 0, 0) && d != 0 {
        let start = user_end + 1;
        let Some(host_end) = buf[start..]
            .iter()
            .position(|&b| b == 0)
            .map(|at| start + at)
        else {
            return Ok(None);
        };
        let request = Request {
            version: Version::V4a,
            command: Command::Connect,
            host: RequestHost::Name(buf[start..host_end].to_vec()),
            port,
            early: BytesMut::new(),
        };
        return Ok(Some((request, host_end + 1)));
    }
    let request = Request {
        version: Version::V4,
        command: Command::Connect,
        host: RequestHost::Ip(IpAddr::V4(ip)),
        port,
        early: BytesMut::new(),
    };
    Ok(Some((request, user_end + 1)))
}

/// RFC 1929: `1 ULEN UNAME PLEN PASSWD`; the credentials are not kept.
fn parse_password(buf: &[u8]) -> Parsed<()> {
    let Some(&version) = buf.first() else {
        return Ok(None);
    };
    if version != 1 {
        return Err(Refusal::reply(
            vec![1, 1],
            format!("username/password version {version} (expected 1)"),
        ));
    }
    let Some(&user_len) = buf.get(1) else {
        return Ok(None);
    };
    let at = 2 + usize::from(user_len);
    let Some(&pass_len) = buf.get(at) else {
        return Ok(None);
    };
    let end = at + 1 + usize::from(pass_len);
    Ok((buf.len() >= end).then_some(((), end)))
}

/// The SOCKS5 request: `5 CMD 0 ATYP ADDR PORT(2)`.
fn parse_request(buf: &[u8]) -> Parsed<Request> {
    let failure = |code: u8, reason: String| Refusal::reply(final_reply(Version::V5, code), reason);
    let Some(&version) = buf.first() else {
        return Ok(None);
    };
    if version != 5 {
        return Err(failure(
            rep::GENERAL_FAILURE,
            format!("SOCKS5 request with version {version}"),
        ));
    }
    let Some(&command) = buf.get(1) else {
        return Ok(None);
    };
    let command = match command {
        1 => Command::Connect,
        3 => Command::UdpAssociate,
        other => {
            let what = match other {
                2 => "BIND".to_owned(),
                other => format!("command {other}"),
            };
            return Err(failure(
                rep::COMMAND_NOT_SUPPORTED,
                format!("SOCKS5 {what} is not supported (only CONNECT and UDP ASSOCIATE)"),
            ));
        }
    };
    let Some(&address_type) = buf.get(3) else {
        return Ok(None);
    };
    let (host, at) = match address_type {
        1 => {
            let Some(ip) = buf.get(4..8) else {
                return Ok(None);
            };
            let ip = Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]);
            (RequestHost::Ip(IpAddr::V4(ip)), 8)
        }
        3 => {
            let Some(&len) = buf.get(4) else {
                return Ok(None);
            };
            let end = 5 + usize::from(len);
            let Some(name) = buf.get(5..end) else {
                return Ok(None);
            };
            (RequestHost::Name(name.to_vec()), end)
        }
        4 => {
            let Some(ip) = buf.get(4..20) else {
                return Ok(None);
            };
            let mut octets = [0u8; 16];
            octets.copy_from_slice(ip);
            (RequestHost::Ip(IpAddr::V6(Ipv6Addr::from(octets))), 20)
        }
        other => {
            return Err(failure(
                rep::ADDRESS_TYPE_NOT_SUPPORTED,
                format!("SOCKS5 address type {other}"),
            ));
        }
    };
    let Some(port) = buf.get(at..at + 2) else {
        return Ok(None);
    };
    let request = Request {
        version: Version::V5,
        command,
        host,
        port: u16::from_be_bytes([port[0], port[1]]),
        early: BytesMut::new(),
    };
    Ok(Some((request, at + 2)))
}

/// The handshake without a socket, for the fuzz target `socks_handshake` (feature
/// `fuzzing`, see `crate::fuzzing`): the request as `version host port` text and its
/// early bytes, or the refusal's reply and reason.
#[cfg(feature = "fuzzing")]
pub(crate) async fn handshake_for_fuzzing<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    limit: usize,
) -> Result<(String, Vec<u8>), (Vec<u8>, String)> {
    match handshake(stream, limit).await {
        Ok(request) => Ok((
            format!(
                "{:?} {:?} {:?} {}",
                request.version, request.command, request.host, request.port
            ),
            request.early.to_vec(),
        )),
        Err(refusal) => Err((refusal.reply, refusal.reason)),
    }
}

/// The outproxy: an upstream SOCKS5 proxy at `outhost:outport` for hosts outside I2P.
mod outproxy {
    use super::{ProxyContext, rep};
    use crate::backend::BoxStream;

    /// Connects to `host:port` through the outproxy (the tunnel has one).
    pub(super) async fn connect(
        proxy: &ProxyContext,
        host: &str,
        port: u16,
    ) -> Result<BoxStream, (u8, String)> {
        let socket = proxy
            .connect_outproxy()
            .await
            .map_err(|e| (super::connect_error_code(&e), e.to_string()))?;
        let handshake = tokio_socks::tcp::Socks5Stream::connect_with_socket(socket, (host, port));
        match tokio::time::timeout(proxy.limits().connect_timeout, handshake).await {
            Ok(Ok(stream)) => Ok(Box::new(stream.into_inner())),
            Ok(Err(e)) => Err((code(&e), format!("outproxy: {e}"))),
            Err(_) => Err((rep::TTL_EXPIRED, "outproxy: timed out".to_owned())),
        }
    }

    /// The upstream's reply code, passed on to the client.
    fn code(e: &tokio_socks::Error) -> u8 {
        use tokio_socks::Error as E;
        match e {
            E::ConnectionNotAllowedByRuleset => rep::NOT_ALLOWED,
            E::NetworkUnreachable => 3,
            E::HostUnreachable => rep::HOST_UNREACHABLE,
            E::ConnectionRefused => 5,
            E::TtlExpired => rep::TTL_EXPIRED,
            E::CommandNotSupported => rep::COMMAND_NOT_SUPPORTED,
            E::AddressTypeNotSupported => rep::ADDRESS_TYPE_NOT_SUPPORTED,
            _ => rep::GENERAL_FAILURE,
        }
    }
}

#[cfg(test)]
mod tests;
