//! What emissary's SAMv3 server does differently, as one table ([`EMISSARY`]) instead of
//! `if`s scattered through the SAM backend. Measured on emissary 0.4.0 (see
//! `docs/embedded-router.md`); every entry says what happens without the workaround.

use std::time::Duration;

use keytools::{PrivateKeys, SigType};

use crate::backend::{CoreError, Options};

/// What to do with a tunnel option outside the router's range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangePolicy {
    /// Send the nearest value in range and log it (`inbound.length=0` becomes 1).
    Clamp,
    /// Refuse the session with an `ERROR`.
    Refuse,
}

/// An integer tunnel option the router accepts only in `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionRange {
    /// the `SESSION CREATE` key
    pub key: &'static str,
    /// smallest accepted value
    pub min: u8,
    /// largest accepted value
    pub max: u8,
    /// clamp or refuse
    pub policy: RangePolicy,
}

/// Datagram limits of the UDP tunnels (not used by stream tunnels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatagramLimits {
    /// The SAM UDP port's buffer, header line included: emissary reads each datagram
    /// into 8,192 bytes and silently truncates the rest. The SAM backend refuses a
    /// payload that would not fit whole (its `max_payload` is this minus the longest
    /// header, 7,591 bytes).
    pub udp_buffer: usize,
    /// `STYLE=DATAGRAM2` may be used. emissary 0.4.0: an inbound Datagram2 panics its
    /// SAM server (and a remote peer can send one), so never.
    pub datagram2: bool,
    /// `STYLE=DATAGRAM3` exists (emissary closes the connection without a reply).
    pub datagram3: bool,
    /// `PORT=` is mandatory in a datagram `SESSION CREATE` and `HOST=` is ignored
    /// (delivery is always to 127.0.0.1). The SAM backend always sends `PORT=` (and
    /// binds its socket on the control connection's IP, loopback here).
    pub port_required: bool,
    /// Datagram destinations must be base64 (no `.b32.i2p`): names are resolved with
    /// the core's lookup session before a datagram is sent.
    pub base64_only: bool,
    /// Datagrams leave with the I2CP ports the SAM header names. emissary 0.4.0: never
    /// (every datagram goes from port 0 to port 0; its listeners match the to-port
    /// exactly), so SOCKS UDP associations are told apart by the peer's last ports.
    pub sends_ports: bool,
}

/// One router implementation's SAM differences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quirks {
    /// the router, for messages
    pub router: &'static str,
    /// integer options with their accepted range; emissary closes the connection with
    /// no `SESSION STATUS` for a value outside it
    pub ranges: &'static [OptionRange],
    /// The only destination signature types the router can run a session for. emissary
    /// parses any destination but reads the signing key as Ed25519: a DSA key (20 bytes)
    /// panics its SAM server, an ECDSA key is silently used as the wrong key.
    pub sig_types: &'static [SigType],
    /// Send `SIGNATURE_TYPE=` with every `SESSION CREATE` (emissary rejects a bare
    /// `DEST GENERATE` without it; we send it everywhere it is meaningful).
    pub always_signature_type: bool,
    /// `i2cp.leaseSetEncType` values kept (others are dropped, defaulting to `6,4`).
    pub lease_set_enc_types: (u8, u8),
    /// Datagram limits (UDP tunnels).
    pub datagrams: DatagramLimits,
    /// How long a connect retries `CANT_REACH_PEER`: a young router publishes a new
    /// LeaseSet later than i2pd does.
    pub connect_retry: Duration,
    /// How often the router's SAM port is checked (an inbound Datagram2 kills emissary's
    /// SAM listener while the router keeps running; the server then stops loudly).
    pub health_interval: Duration,
    /// Failed checks in a row before the server gives up (stops with an error).
    pub health_failures: u32,
    /// Keep a stopped tunnel's session open for a fast restart (the SAM backend's
    /// `reuse_grace`). emissary keeps a `STREAM ACCEPT` whose socket we closed
    /// registered and hands it the next incoming stream, which is then lost: so a
    /// stopped tunnel's session is closed at once (a new one takes well under a second).
    pub reuse_sessions: bool,
}

/// emissary 0.4.0.
pub const EMISSARY: Quirks = Quirks {
    router: "emissary",
    ranges: &[
        OptionRange {
            key: "inbound.length",
            min: 1,
            max: 7,
            policy: RangePolicy::Clamp,
        },
        OptionRange {
            key: "outbound.length",
            min: 1,
            max: 8,
            policy: RangePolicy::Clamp,
        },
        OptionRange {
            key: "inbound.quantity",
            min: 1,
            max: 16,
            policy: RangePolicy::Clamp,
        },
        OptionRange {
            key: "outbound.quantity",
            min: 1,
            max: 16,
            policy: RangePolicy::Clamp,
        },
    ],
    sig_types: &[SigType::Ed25519],
    always_signature_type: true,
    lease_set_enc_types: (3, 7),
    datagrams: DatagramLimits {
        udp_buffer: crate::backend::sam::dgram::EMISSARY_UDP_BUFFER,
        datagram2: false,
        datagram3: false,
        port_required: true,
        sends_ports: false,
        base64_only: true,
    },
    connect_retry: Duration::from_secs(120),
    health_interval: Duration::from_secs(5),
    health_failures: 3,
    reuse_sessions: false,
};

/// An option the table changed, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjusted {
    /// the key
    pub key: String,
    /// what the tunnel asked for
    pub from: String,
    /// what is sent
    pub to: String,
}

impl Quirks {
    /// The options to send for a session with `keys`: ranges clamped (or refused),
    /// `SIGNATURE_TYPE` added. Also returns what was changed.
    ///
    /// # Errors
    /// [`CoreError::Router`] with the text the BOB client sees: keys of a signature type
    /// the router cannot run, a non-numeric value for a ranged option, or a value out of
    /// range under [`RangePolicy::Refuse`].
    pub fn apply(
        &self,
        keys: &PrivateKeys,
        options: Options,
    ) -> Result<(Options, Vec<Adjusted>), CoreError> {
        let sig = keys.destination().sig_type();
        if !self.sig_types.contains(&sig) {
            let ok: Vec<String> = self
                .sig_types
                .iter()
                .map(|t| format!("{} ({})", t.name(), t.code()))
                .collect();
            return Err(CoreError::Router(format!(
                "the {} router runs only {} destinations, these keys are {} ({}); \
                 make keys with `newkeys {}`",
                self.router,
                ok.join(", "),
                sig.name(),
                sig.code(),
                self.sig_types.first().map_or(7, |t| t.code()),
            )));
        }
        let mut out = Vec::with_capacity(options.len() + 1);
        let mut adjusted = Vec::new();
        for (key, value) in options {
            if key.eq_ignore_ascii_case("SIGNATURE_TYPE") && self.always_signature_type {
                continue; // replaced by the keys' own type below
            }
            let Some(range) = self.ranges.iter().find(|r| r.key == key) else {
                out.push((key, value));
                continue;
            };
            let n: i64 = value.parse().map_err(|_| {
                CoreError::Router(format!(
                    "option {key}={value}: the {} router needs a number {}..={}",
                    self.router, range.min, range.max
                ))
            })?;
            let clamped = n.clamp(i64::from(range.min), i64::from(range.max));
            if clamped == n {
                out.push((key, value));
                continue;
            }
            if range.policy == RangePolicy::Refuse {
                return Err(CoreError::Router(format!(
                    "option {key}={value}: the {} router accepts {}..={}",
                    self.router, range.min, range.max
                )));
            }
            let to = clamped.to_string();
            adjusted.push(Adjusted {
                key: key.clone(),
                from: value,
                to: to.clone(),
            });
            out.push((key, to));
        }
        if self.always_signature_type {
            out.push(("SIGNATURE_TYPE".to_owned(), sig.code().to_string()));
        }
        Ok((out, adjusted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keytools::CryptoType;

    fn opts(v: &[(&str, &str)]) -> Options {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn keys(sig: SigType) -> PrivateKeys {
        PrivateKeys::generate(sig, CryptoType::ElGamal).unwrap()
    }

    #[test]
    fn zero_hops_are_clamped_and_reported() {
        let (sent, adjusted) = EMISSARY
            .apply(
                &keys(SigType::Ed25519),
                opts(&[
                    ("inbound.length", "0"),
                    ("outbound.length", "9"),
                    ("inbound.quantity", "3"),
                    ("i2cp.x", "y"),
                ]),
            )
            .unwrap();
        assert_eq!(
            sent,
            opts(&[
                ("inbound.length", "1"),
                ("outbound.length", "8"),
                ("inbound.quantity", "3"),
                ("i2cp.x", "y"),
                ("SIGNATURE_TYPE", "7"),
            ])
        );
        assert_eq!(adjusted.len(), 2);
        assert_eq!(adjusted[0].from, "0");
        assert_eq!(adjusted[0].to, "1");
    }

    #[test]
    fn datagrams_fit_whole_and_never_datagram2() {
        use crate::backend::datagram::DatagramStyle;
        use crate::backend::sam::dgram::{UdpLimit, header_len, session_style};
        let d = EMISSARY.datagrams;
        assert!(!d.datagram2 && !d.datagram3 && d.port_required && d.base64_only);
        let limit = UdpLimit {
            buffer: d.udp_buffer,
            max_id_len: 41,
        };
        // the cap with the longest header stays within emissary's 8,192-byte read buffer
        // (measured: 7,653 of a 7,700-byte payload arrived behind a 539-byte header)
        let max = limit.max_payload();
        assert!(max + header_len(41, 524, 65535, 65535) <= 8_192);
        assert!((7_000..7_653).contains(&max), "{max}");
        // the only styles a session is ever created with
        for style in [DatagramStyle::Repliable, DatagramStyle::Raw] {
            assert!(!session_style(style).contains('2'), "{style}");
        }
    }

    #[test]
    fn non_ed25519_keys_are_refused_with_the_fix() {
        for sig in [SigType::DsaSha1, SigType::EcdsaP256] {
            let e = EMISSARY.apply(&keys(sig), Vec::new()).unwrap_err();
            let text = e.to_string();
            assert!(text.contains("newkeys 7"), "{text}");
            assert!(text.contains(sig.name()), "{text}");
        }
    }

    #[test]
    fn garbage_numbers_are_refused_and_signature_type_replaced() {
        let k = keys(SigType::Ed25519);
        assert!(
            EMISSARY
                .apply(&k, opts(&[("inbound.length", "two")]))
                .is_err()
        );
        let (sent, _) = EMISSARY
            .apply(&k, opts(&[("SIGNATURE_TYPE", "0")]))
            .unwrap();
        assert_eq!(sent, opts(&[("SIGNATURE_TYPE", "7")]));
        let strict = Quirks {
            ranges: &[OptionRange {
                key: "inbound.length",
                min: 1,
                max: 7,
                policy: RangePolicy::Refuse,
            }],
            ..EMISSARY
        };
        assert!(strict.apply(&k, opts(&[("inbound.length", "0")])).is_err());
    }
}
