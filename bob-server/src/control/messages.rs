//! Every reply string the control server sends, per dialect, in one place.
//!
//! The dialect picks the words only; which commands succeed and what they change is the
//! same in both. Where i2pd has no string of its own (Java-only commands, deliberate
//! fixes) both dialects share one text.

use bob_codec::{CommandError, Dialect, LineError, Reply, TunnelCounters, TunnelStatus};

/// Reply builder for one dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Messages {
    /// which server's strings to use
    pub dialect: Dialect,
}

fn ok(text: impl Into<String>) -> Reply {
    Reply::Ok(Some(text.into()))
}

fn err(text: impl Into<String>) -> Reply {
    Reply::Error(text.into())
}

impl Messages {
    /// Messages in `dialect`.
    pub fn new(dialect: Dialect) -> Self {
        Self { dialect }
    }

    fn pick(self, java: &'static str, i2pd: &'static str) -> &'static str {
        match self.dialect {
            Dialect::Java => java,
            Dialect::I2pd => i2pd,
        }
    }

    /// A parse error from bob-codec (unknown command, bad port, bad option).
    pub fn command_error(self, e: &CommandError) -> Reply {
        err(e.to_string())
    }

    /// A framing error (line too long, invalid UTF-8); the connection goes on.
    pub fn line_error(self, e: &LineError) -> Reply {
        err(e.to_string())
    }

    /// A change that would take the registry over its byte cap.
    pub fn registry_full(self, limit: usize) -> Reply {
        err(format!("registry full (limit {limit} bytes)"))
    }

    /// A request line with control characters (NUL, …) in its operands.
    pub fn control_characters(self) -> Reply {
        err("control characters are not allowed in a request")
    }

    /// `ERROR no nickname has been set` (both dialects).
    pub fn no_nickname(self) -> Reply {
        err("no nickname has been set")
    }

    /// `ERROR tunnel is active` (both dialects).
    pub fn tunnel_active(self) -> Reply {
        err("tunnel is active")
    }

    /// `ERROR tunnel is inactive` (both dialects).
    pub fn tunnel_inactive(self) -> Reply {
        err("tunnel is inactive")
    }

    /// `OK Nickname set to <name>` (`setnick`, `getnick`).
    pub fn nickname_set(self, name: &str) -> Reply {
        ok(format!("Nickname set to {name}"))
    }

    /// `getdest` without keys.
    pub fn getdest_no_keys(self) -> Reply {
        err(self.pick("keys not set.", "keys are not set"))
    }

    /// `getkeys` without keys.
    pub fn getkeys_no_keys(self) -> Reply {
        err(self.pick("no public key has been set", "keys are not set"))
    }

    /// `setkeys` with a blob that does not parse.
    pub fn bad_keys(self) -> Reply {
        err(self.pick("not in BASE64 format", "invalid keys"))
    }

    /// `newkeys` with an unknown or unsupported signature type.
    pub fn unsupported_sig_type(self, given: &str) -> Reply {
        err(format!("unsupported signature type {given}"))
    }

    /// `newkeys` with an unknown or unsupported crypto type.
    pub fn unsupported_crypto_type(self, given: &str) -> Reply {
        err(format!("unsupported crypto type {given}"))
    }

    /// Key generation failed.
    pub fn keygen_failed(self, reason: &str) -> Reply {
        err(format!("generating keys: {reason}"))
    }

    /// `OK <base64>` (keys, destinations, lookups).
    pub fn base64(self, b64: String) -> Reply {
        Reply::Ok(Some(b64))
    }

    /// `inhost`/`outhost` without an operand.
    pub fn empty_host(self, inbound: bool) -> Reply {
        err(if inbound {
            "empty inhost"
        } else {
            "empty outhost"
        })
    }

    /// `OK inhost set` / `OK outhost set`.
    pub fn host_set(self, inbound: bool) -> Reply {
        ok(if inbound { "inhost set" } else { "outhost set" })
    }

    /// `inport`/`outport` without an operand.
    pub fn empty_port(self, inbound: bool) -> Reply {
        match self.dialect {
            Dialect::Java => err("not a number"),
            Dialect::I2pd => err(if inbound {
                "empty inport"
            } else {
                "empty outport"
            }),
        }
    }

    /// `OK inbound port set` / `OK outbound port set`.
    pub fn port_set(self, inbound: bool) -> Reply {
        ok(if inbound {
            "inbound port set"
        } else {
            "outbound port set"
        })
    }

    /// `OK Quiet set`.
    pub fn quiet_set(self) -> Reply {
        ok("Quiet set")
    }

    /// `OK k set to v` (Java) / `OK option k set to v` (i2pd); several pairs joined by `, `.
    pub fn options_set(self, pairs: &[(String, String)]) -> Reply {
        let prefix = self.pick("", "option ");
        let text = pairs
            .iter()
            .map(|(k, v)| format!("{prefix}{k} set to {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        ok(text)
    }

    /// `start` without nickname, keys or a port.
    pub fn start_incomplete(self, missing: Missing) -> Reply {
        match (self.dialect, missing) {
            (Dialect::Java, _) => err("tunnel settings incomplete"),
            (Dialect::I2pd, Missing::Nickname) => self.no_nickname(),
            (Dialect::I2pd, Missing::Keys) => err("Keys must be set."),
            (Dialect::I2pd, Missing::Port) => {
                err("(inhost):inport or outhost:outport must be set.")
            }
        }
    }

    /// `OK tunnel starting` (Java) / `OK Tunnel starting` (i2pd).
    pub fn tunnel_starting(self) -> Reply {
        ok(self.pick("tunnel starting", "Tunnel starting"))
    }

    /// `ERROR starting tunnel: <reason>`.
    pub fn start_failed(self, reason: &str) -> Reply {
        err(format!("starting tunnel: {reason}"))
    }

    /// `OK tunnel stopping` (Java) / `OK Tunnel stopping` (i2pd).
    pub fn tunnel_stopping(self) -> Reply {
        ok(self.pick("tunnel stopping", "Tunnel stopping"))
    }

    /// `OK cleared`.
    pub fn cleared(self) -> Reply {
        ok("cleared")
    }

    /// The record as this dialect prints it: with `--dialect i2pd` a proxy tunnel's
    /// ` PROXYTYPE: …` is followed by i2pd's ` PROXYSTART: <bool>` (whether the proxy
    /// exists: the tunnel is starting or running), as i2pd 2.57+ prints it. Plain
    /// tunnels get neither field in either dialect (txi2p reads OUTHOST to the end of
    /// the line), and Java's dialect prints no `PROXYSTART`.
    fn record(self, status: &TunnelStatus) -> String {
        let is_proxy = status.extra.iter().any(|(k, _)| k == "PROXYTYPE");
        if self.dialect == Dialect::Java || !is_proxy {
            return status.to_string();
        }
        let mut status = status.clone();
        let started = status.starting || status.running;
        status
            .extra
            .push(("PROXYSTART".to_owned(), started.to_string()));
        status.to_string()
    }

    /// One `list` line: `DATA NICKNAME: …`.
    pub fn list_line(self, status: &TunnelStatus) -> Reply {
        Reply::Data(self.record(status))
    }

    /// `OK Listing done`.
    pub fn list_done(self) -> Reply {
        ok("Listing done")
    }

    /// `status` reply: `OK DATA NICKNAME: …`.
    pub fn status(self, status: &TunnelStatus) -> Reply {
        ok(format!("DATA {}", self.record(status)))
    }

    /// `show` reply: `OK NICKNAME: …`.
    pub fn show(self, status: &TunnelStatus) -> Reply {
        ok(self.record(status))
    }

    /// `stats` reply (extension, both dialects): `OK STATS nickname=… running=… …`.
    pub fn stats(self, counters: &TunnelCounters) -> Reply {
        counters.to_reply()
    }

    /// `showprops` reply: `OK PROPERTIES: {k=v, k=v}`.
    pub fn properties<'a>(self, props: impl IntoIterator<Item = (&'a str, &'a str)>) -> Reply {
        let body = props
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ");
        ok(format!("PROPERTIES: {{{body}}}"))
    }

    /// `OK` (bare; `verify`).
    pub fn bare_ok(self) -> Reply {
        Reply::Ok(None)
    }

    /// `verify` of something that is not a destination.
    pub fn not_base64(self) -> Reply {
        err("not in BASE64 format")
    }

    /// `visit`: `OK ` with a trailing space, like Java.
    pub fn visited(self) -> Reply {
        Reply::Ok(Some(String::new()))
    }

    /// `OK Bye!` (`quit`, `zap`).
    pub fn bye(self) -> Reply {
        ok("Bye!")
    }

    /// `help` text for a known command, or the command list.
    pub fn help(self, text: &str) -> Reply {
        ok(text)
    }

    /// `help <unknown>`.
    pub fn no_such_command(self) -> Reply {
        err("No such command")
    }

    /// `lookup`/`lookuplocal`/`ping` without an operand.
    pub fn empty_address(self, what: &'static str) -> Reply {
        match self.dialect {
            Dialect::Java => err("Address Not found."),
            Dialect::I2pd => err(format!("empty {what} address")),
        }
    }

    /// A name nobody knows.
    pub fn address_not_found(self) -> Reply {
        err(self.pick("Address Not found.", "Address Not found"))
    }

    /// A lookup or ping that failed for another reason (router trouble, timeout).
    pub fn lookup_failed(self, reason: &str) -> Reply {
        err(format!("lookup failed: {reason}"))
    }

    /// `ping` while the selected tunnel is not running.
    pub fn no_local_destination(self) -> Reply {
        err("No local destination")
    }

    /// `ping` answered.
    pub fn pong(self, b32: &str, millis: u128) -> Reply {
        ok(format!("pong from {b32}: time={millis} ms"))
    }

    /// `ping` failed.
    pub fn ping_failed(self, reason: &str) -> Reply {
        err(format!("ping failed: {reason}"))
    }

    /// `settunneltype <kind>` done (i2pd's wording: `OK tunnel type set to SOCKS`).
    pub fn tunnel_type_set(self, title: &str) -> Reply {
        ok(format!("tunnel type set to {title}"))
    }

    /// `settunneltype` without a kind, or with one this server does not know.
    pub fn bad_tunnel_type(self, why: &str) -> Reply {
        err(why)
    }

    /// `setnick` of a new name while the registry is full.
    pub fn too_many_tunnels(self, limit: usize) -> Reply {
        err(format!("too many tunnels (limit {limit})"))
    }

    /// `ERROR <what is wrong>` for an operand its validated type refuses (e.g. `host is
    /// longer than 255 bytes`); the text never quotes the operand.
    pub fn bad_value(self, error: &bob_codec::types::ValueError) -> Reply {
        err(error.to_string())
    }

    /// `ERROR <reason>` for a server option (`bob.udp.*`) with a bad key or value.
    pub fn bad_option(self, reason: &str) -> Reply {
        err(reason)
    }

    /// `ERROR too many options (limit N)` (bob-server's own limit).
    pub fn too_many_options(self, limit: usize) -> Reply {
        err(format!("too many options (limit {limit})"))
    }

    /// Sent to a connection beyond `--max-connections`, then it is closed.
    pub fn too_many_connections(self) -> Reply {
        err("too many connections")
    }
}

/// What a `start` found missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// no nickname selected
    Nickname,
    /// the tunnel has no keys
    Keys,
    /// neither inport nor outport is set
    Port,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(r: Reply) -> String {
        String::from_utf8(r.encode()).unwrap()
    }

    #[test]
    fn dialect_strings() {
        let j = Messages::new(Dialect::Java);
        let i = Messages::new(Dialect::I2pd);
        assert_eq!(text(j.tunnel_starting()), "OK tunnel starting\n");
        assert_eq!(text(i.tunnel_starting()), "OK Tunnel starting\n");
        let pairs = vec![("a".to_owned(), "b".to_owned())];
        assert_eq!(text(j.options_set(&pairs)), "OK a set to b\n");
        assert_eq!(text(i.options_set(&pairs)), "OK option a set to b\n");
        assert_eq!(text(j.getdest_no_keys()), "ERROR keys not set.\n");
        assert_eq!(text(i.getdest_no_keys()), "ERROR keys are not set\n");
        assert_eq!(text(j.visited()), "OK \n");
        assert_eq!(text(j.bare_ok()), "OK\n");
        assert_eq!(
            text(j.properties([("a", "1"), ("b", "2")])),
            "OK PROPERTIES: {a=1, b=2}\n"
        );
    }

    #[test]
    fn i2pd_adds_proxystart_to_proxy_tunnels_only() {
        let mut status = TunnelStatus {
            nickname: "p".to_owned(),
            starting: false,
            running: true,
            stopping: false,
            keys: true,
            quiet: false,
            inport: Some(4447),
            inhost: "127.0.0.1".to_owned(),
            outport: None,
            outhost: "localhost".to_owned(),
            extra: vec![("PROXYTYPE".to_owned(), "SOCKS".to_owned())],
        };
        let j = Messages::new(Dialect::Java);
        let i = Messages::new(Dialect::I2pd);
        assert!(text(j.status(&status)).ends_with(" OUTHOST: localhost PROXYTYPE: SOCKS\n"));
        assert!(
            text(i.status(&status))
                .ends_with(" OUTHOST: localhost PROXYTYPE: SOCKS PROXYSTART: true\n")
        );
        assert!(text(i.list_line(&status)).ends_with(" PROXYSTART: true\n"));
        assert!(text(i.show(&status)).ends_with(" PROXYSTART: true\n"));
        status.running = false;
        assert!(text(i.status(&status)).ends_with(" PROXYTYPE: SOCKS PROXYSTART: false\n"));
        status.extra.clear();
        assert!(text(i.status(&status)).ends_with(" OUTHOST: localhost\n"));
        status.extra = vec![("TUNNELTYPE".to_owned(), "UDP".to_owned())];
        assert!(!text(i.status(&status)).contains("PROXY"));
    }
}
