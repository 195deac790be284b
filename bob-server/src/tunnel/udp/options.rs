//! The server's own options of UDP tunnels (`option bob.udp.…=…`): checked when they
//! are set, read when the tunnel starts, never handed to the backend.

use std::time::Duration;

use keytools::Destination;

use crate::backend::Options;

/// `bob.udp.dest`: the fixed remote of the inport side (transparent mode).
pub const DEST: &str = "bob.udp.dest";
/// `bob.udp.style`: `repliable`, `raw` or `hybrid`.
pub const STYLE: &str = "bob.udp.style";
/// `bob.udp.maxsize`: the largest payload sent or delivered, in bytes.
pub const MAXSIZE: &str = "bob.udp.maxsize";
/// `bob.udp.idle`: seconds after which an unused peer mapping expires.
pub const IDLE: &str = "bob.udp.idle";
/// `bob.udp.rate`: datagrams per second sent into I2P (0: unpaced).
pub const RATE: &str = "bob.udp.rate";

/// Every `bob.udp.*` option.
pub const ALL: [&str; 5] = [DEST, STYLE, MAXSIZE, IDLE, RATE];

/// Default of `bob.udp.maxsize` (well under every router's limit, see docs/udp.md).
pub const DEFAULT_MAXSIZE: usize = 7000;
/// Default of `bob.udp.idle` (i2pd's UDP session lifetime).
pub const DEFAULT_IDLE: Duration = Duration::from_secs(120);
/// Default of `bob.udp.rate`.
pub const DEFAULT_RATE: u32 = 1000;
/// Largest `bob.udp.maxsize` (a UDP datagram's payload limit, rounded down).
pub const MAX_MAXSIZE: usize = 65_000;
/// Largest `bob.udp.idle`, in seconds (a day).
pub const MAX_IDLE_SECS: u64 = 86_400;
/// Largest `bob.udp.rate`.
pub const MAX_RATE: u32 = 1_000_000;

/// How a UDP tunnel sends datagrams into I2P.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SendStyle {
    /// every datagram repliable (carries our destination)
    #[default]
    Repliable,
    /// every datagram raw (anonymous; replies need an address in the payload)
    Raw,
    /// i2pd's scheme: repliable when [`HYBRID_REPLIABLE_EVERY`] has passed since the
    /// last repliable one to that peer, else raw
    Hybrid,
}

/// In hybrid style, how often a peer gets a repliable datagram.
pub const HYBRID_REPLIABLE_EVERY: Duration = Duration::from_millis(100);

/// The `bob.udp.*` settings of one tunnel, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpOptions {
    /// `bob.udp.dest` as given (a base64 destination, `.b32.i2p` address or name)
    pub dest: Option<String>,
    /// `bob.udp.style`
    pub style: SendStyle,
    /// `bob.udp.maxsize` (before the backend's cap)
    pub maxsize: usize,
    /// `bob.udp.idle`
    pub idle: Duration,
    /// `bob.udp.rate`; 0 = unpaced
    pub rate: u32,
}

impl Default for UdpOptions {
    fn default() -> Self {
        Self {
            dest: None,
            style: SendStyle::default(),
            maxsize: DEFAULT_MAXSIZE,
            idle: DEFAULT_IDLE,
            rate: DEFAULT_RATE,
        }
    }
}

/// Checks one `bob.udp.*` option as `option` sets it; `Err` is the text after `ERROR `.
/// Keys outside `bob.udp.` are not checked here (`Ok`).
///
/// # Errors
/// An unknown `bob.udp.` key or a value out of range, said in one line.
pub fn check(key: &str, value: &str) -> Result<(), String> {
    let key = key.to_ascii_lowercase();
    if !key.starts_with("bob.udp.") {
        return Ok(());
    }
    let key = key.as_str();
    let value = value.trim();
    match key {
        DEST => check_dest(value),
        STYLE => parse_style(value).map(drop),
        MAXSIZE => number(key, value, 1, MAX_MAXSIZE as u64).map(drop),
        IDLE => number(key, value, 1, MAX_IDLE_SECS).map(drop),
        RATE => number(key, value, 0, u64::from(MAX_RATE)).map(drop),
        _ => Err(format!("unknown option {key} (known: {})", ALL.join(", "))),
    }
}

impl UdpOptions {
    /// Reads the `bob.udp.*` options out of a tunnel's server options
    /// ([`crate::tunnel::TunnelSpec::server_options`]; the last value of a key wins);
    /// others are ignored.
    ///
    /// # Errors
    /// As [`check`], for the first bad one (options set before this server checked
    /// them, e.g. from a tunnels file).
    pub fn from_options(options: &Options) -> Result<Self, String> {
        let mut out = Self::default();
        for (key, value) in options {
            check(key, value)?;
            let value = value.trim();
            match key.to_ascii_lowercase().as_str() {
                DEST => out.dest = Some(value.to_owned()),
                STYLE => out.style = parse_style(value)?,
                MAXSIZE => out.maxsize = number(key, value, 1, MAX_MAXSIZE as u64)? as usize,
                IDLE => out.idle = Duration::from_secs(number(key, value, 1, MAX_IDLE_SECS)?),
                RATE => out.rate = number(key, value, 0, u64::from(MAX_RATE))? as u32,
                _ => {}
            }
        }
        Ok(out)
    }
}

/// `bob.udp.dest` as `list`/`status` show it (`UDPDEST:`): a base64 destination as its
/// `.b32.i2p` address, a name as given (lower-case), anything else as given.
pub fn status_dest(value: &str) -> String {
    match Destination::from_base64(value.trim()) {
        Ok(dest) => dest.b32(),
        Err(_) => value.trim().to_ascii_lowercase(),
    }
}

fn parse_style(value: &str) -> Result<SendStyle, String> {
    match value.to_ascii_lowercase().as_str() {
        "repliable" => Ok(SendStyle::Repliable),
        "raw" => Ok(SendStyle::Raw),
        "hybrid" => Ok(SendStyle::Hybrid),
        _ => Err(format!(
            "{STYLE} must be repliable, raw or hybrid, not {:?}",
            short(value)
        )),
    }
}

fn number(key: &str, value: &str, min: u64, max: u64) -> Result<u64, String> {
    match value.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "{key} must be a number from {min} to {max}, not {:?}",
            short(value)
        )),
    }
}

fn check_dest(value: &str) -> Result<(), String> {
    let lower = value.to_ascii_lowercase();
    let name_ok = lower.ends_with(".i2p")
        && lower.len() > ".i2p".len()
        && lower.is_ascii()
        && !lower.contains(char::is_whitespace);
    if name_ok || Destination::from_base64(value).is_ok() {
        Ok(())
    } else {
        Err(format!(
            "{DEST} must be a base64 destination, a .b32.i2p address or an .i2p name, not {:?}",
            short(value)
        ))
    }
}

fn short(value: &str) -> String {
    value.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Options {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_and_values() {
        assert_eq!(
            UdpOptions::from_options(&Vec::new()).unwrap(),
            UdpOptions::default()
        );
        let got = UdpOptions::from_options(&opts(&[
            ("inbound.length", "1"),
            (STYLE, "Hybrid"),
            (MAXSIZE, "30000"),
            (IDLE, "5"),
            (RATE, "0"),
            (DEST, "peer.i2p"),
        ]))
        .unwrap();
        assert_eq!(got.style, SendStyle::Hybrid);
        assert_eq!(
            (got.maxsize, got.idle, got.rate, got.dest.as_deref()),
            (30_000, Duration::from_secs(5), 0, Some("peer.i2p"))
        );
    }

    #[test]
    fn bad_values_are_refused_with_a_clear_text() {
        assert_eq!(
            check(STYLE, "datagram2"),
            Err("bob.udp.style must be repliable, raw or hybrid, not \"datagram2\"".into())
        );
        assert_eq!(
            check(MAXSIZE, "65001"),
            Err("bob.udp.maxsize must be a number from 1 to 65000, not \"65001\"".into())
        );
        assert!(check(MAXSIZE, "0").is_err());
        assert!(check(IDLE, "-1").is_err());
        assert!(check(RATE, "x").is_err());
        assert!(check(DEST, "not a dest").is_err());
        assert!(check(DEST, ".i2p").is_err());
        assert_eq!(
            check("bob.udp.colour", "red"),
            Err(
                "unknown option bob.udp.colour (known: bob.udp.dest, bob.udp.style, \
                 bob.udp.maxsize, bob.udp.idle, bob.udp.rate)"
                    .into()
            )
        );
        assert_eq!(check("inbound.length", "anything"), Ok(()));
        assert!(UdpOptions::from_options(&opts(&[(RATE, "2000000")])).is_err());
    }

    #[test]
    fn status_shows_a_b32() {
        let keys = keytools::PrivateKeys::generate(
            keytools::SigType::Ed25519,
            keytools::CryptoType::ElGamal,
        )
        .unwrap();
        let dest = keys.destination();
        assert_eq!(status_dest(&dest.to_base64()), dest.b32());
        assert_eq!(status_dest("Peer.I2P"), "peer.i2p");
        assert!(check("BOB.UDP.RATE", "x").is_err());
    }
}
