//! Command dispatch: one request line in, one reply (or the `list` block) out.
//!
//! Order of checks follows Java BOB: nickname selected, then "tunnel is active", then the
//! operand. Setters run inside [`Registry::update`], so the check and the change happen
//! under one lock.
//!
//! With a state directory, a command that changed the registry has its change saved
//! (durably) before its reply is written.

use bob_codec::types::{Host, Nickname, Port, TunnelOption, ValueError};
use bob_codec::{Command, CommandError, Dialect, Operand, Reply, help};
use keytools::{Destination, PrivateKeys};
use tracing::{debug, info};

use super::{After, Connection, Frontend, lifecycle};
use crate::backend::{CoreError, Target};
use crate::config::{parse_crypto_type, parse_sig_type};
use crate::control::messages::Messages;
use crate::registry::{Entry, Registry, RegistryError, Side};
use crate::tunnel::TunnelKind;

/// Handles one request line, appending the encoded reply to `out`.
pub(crate) async fn handle(
    conn: &mut Connection,
    front: &Frontend,
    line: &str,
    out: &mut Vec<u8>,
) -> After {
    let m = front.messages;
    let service = &front.service;
    let dialect = service.config().dialect;
    let cmd = match Command::parse(line, dialect) {
        Ok(cmd) => cmd,
        Err(e) => {
            m.command_error(&e).encode_into(out);
            return After::Continue;
        }
    };
    if has_control_characters(line) {
        m.control_characters().encode_into(out);
        return After::Continue;
    }
    // Only the command word: operands can hold private keys (setkeys).
    debug!(command = cmd.name(), "request");
    let registry = service.registry();
    let mark = service.change_mark();
    let reply = match cmd {
        Command::Empty => return After::Continue,
        Command::Quit => {
            m.bye().encode_into(out);
            return After::Close;
        }
        Command::Zap => {
            info!("zap requested");
            m.bye().encode_into(out);
            return After::Zap;
        }
        // streamed by the connection driver, under back-pressure
        Command::List => return After::List,
        Command::Help(None) => m.help(help::commands(dialect)),
        Command::Help(Some(word)) => match help::text(dialect, &word) {
            Some(text) => m.help(text),
            None => m.no_such_command(),
        },
        Command::SetNick(name) => set_nick(conn, registry, m, name),
        // the registry only holds valid nicknames, so an invalid one is never found
        Command::GetNick(name) => match name.into_valid() {
            Some(name) if registry.contains(name.as_str()) => {
                let reply = m.nickname_set(name.as_str());
                conn.nickname = Some(name.into_inner());
                reply
            }
            _ => m.no_nickname(),
        },
        Command::Status(name) => match name.valid().and_then(|n| registry.status(n.as_str())) {
            Some(status) => m.status(&status),
            None => m.no_nickname(),
        },
        Command::Stats(name) => {
            let name = match name {
                Operand::Missing => conn.nickname.clone(),
                Operand::Valid(name) => Some(name.into_inner()),
                Operand::Invalid { .. } => None,
            };
            match name.and_then(|n| registry.counters(&n)) {
                Some(counters) => m.stats(&counters),
                None => m.no_nickname(),
            }
        }
        Command::Show => match selected(conn).and_then(|n| registry.status(n)) {
            Some(status) => m.show(&status),
            None => m.no_nickname(),
        },
        Command::ShowProps => {
            let props = selected(conn).and_then(|n| {
                registry
                    .read(n, |e| {
                        e.properties()
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect::<Vec<_>>()
                    })
                    .ok()
            });
            match props {
                Some(props) => m.properties(props.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
                None => m.no_nickname(),
            }
        }
        Command::GetDest => match selected(conn).map(|n| registry.read(n, dest_of)) {
            None | Some(Err(_)) => m.no_nickname(),
            Some(Ok(None)) => m.getdest_no_keys(),
            Some(Ok(Some(dest))) => m.base64(dest),
        },
        Command::GetKeys => {
            let keys = selected(conn).and_then(|n| registry.read(n, |e| e.keys().cloned()).ok());
            match keys.flatten() {
                Some(keys) => m.base64(keys.to_base64()),
                None => m.getkeys_no_keys(),
            }
        }
        Command::InHost(host) => set_host(conn, registry, m, host, true),
        Command::OutHost(host) => set_host(conn, registry, m, host, false),
        Command::InPort(port) => set_port(conn, registry, m, dialect, port, true),
        Command::OutPort(port) => set_port(conn, registry, m, dialect, port, false),
        Command::Quiet(value) => {
            let quiet = value.is_some_and(|v| v.eq_ignore_ascii_case("true"));
            update(conn, registry, m, |e| {
                e.set_quiet(quiet);
                m.quiet_set()
            })
        }
        Command::Option(options) => {
            let max_bytes = registry.max_bytes();
            update(conn, registry, m, |e| match options {
                Operand::Valid(options) => {
                    let pairs = option_pairs(options);
                    // the server's own UDP options are checked now, not at `start`
                    if let Some(reason) = pairs
                        .iter()
                        .find_map(|(k, v)| crate::tunnel::udp::options::check(k, v).err())
                    {
                        return m.bad_option(&reason);
                    }
                    if e.growth_by_options(&pairs) > e.room() {
                        return m.registry_full(max_bytes);
                    }
                    let reply = m.options_set(&pairs);
                    match e.set_options(pairs) {
                        Ok(()) => reply,
                        Err(too_many) => m.too_many_options(too_many.limit),
                    }
                }
                // not key=value (Java's rules) in any token, or no token at all
                Operand::Missing
                | Operand::Invalid {
                    error: ValueError::NotAPair,
                    ..
                } => m.command_error(&CommandError::BadOption { dialect }),
                Operand::Invalid { error, .. } => m.bad_value(&error),
            })
        }
        Command::SetKeys(blob) => {
            // parsed under the lock (cheap), after the nickname and active checks
            update(conn, registry, m, |e| {
                match blob.as_deref().map(PrivateKeys::from_base64) {
                    Some(Ok(keys)) => {
                        let reply = m.base64(keys.destination().to_base64());
                        e.set_keys(keys);
                        reply
                    }
                    Some(Err(err)) => {
                        debug!(error = %err, "setkeys: bad key blob");
                        m.bad_keys()
                    }
                    None => m.bad_keys(),
                }
            })
        }
        Command::NewKeys {
            sig_type,
            crypto_type,
        } => new_keys(conn, front, sig_type.as_deref(), crypto_type.as_deref()).await,
        Command::Clear => match selected(conn).map(|n| service.clear(n)) {
            None | Some(Err(RegistryError::NotFound)) => m.no_nickname(),
            Some(Err(_)) => m.tunnel_active(),
            Some(Ok(())) => {
                conn.nickname = None;
                m.cleared()
            }
        },
        Command::Start => lifecycle::start(conn, front).await,
        Command::Stop => lifecycle::stop(conn, front),
        Command::Verify(b64) => match b64.as_deref().map(keytools::verify_bob) {
            Some(Ok(_)) => m.bare_ok(),
            _ => m.not_base64(),
        },
        Command::Visit => {
            for status in registry.list() {
                info!(tunnel = %status, "visit");
            }
            m.visited()
        }
        Command::Lookup(name) => lookup(front, name.as_deref(), "lookup").await,
        Command::LookupLocal(name) => lookup(front, name.as_deref(), "lookup").await,
        Command::Ping(name) => ping(conn, front, name.as_deref()).await,
        Command::SetTunnelType(kind) => {
            // Java's order: nickname, then active, then the operand
            let kind = kind.as_deref().map(str::parse::<TunnelKind>);
            update(conn, registry, m, |e| match kind {
                Some(Ok(kind)) => {
                    e.set_kind(kind);
                    m.tunnel_type_set(kind.title())
                }
                Some(Err(unknown)) => m.bad_tunnel_type(&unknown.to_string()),
                None => m.bad_tunnel_type("no tunnel type given (tcp, udp, socks, httpproxy)"),
            })
        }
    };
    service.persist_since(mark).await;
    reply.encode_into(out);
    After::Continue
}

/// Control characters other than TAB (a separator) and CR (stripped) never belong in a
/// request; the line is refused as a whole.
fn has_control_characters(line: &str) -> bool {
    line.chars()
        .any(|c| c.is_control() && c != '\t' && c != '\r')
}

fn selected(conn: &Connection) -> Option<&str> {
    conn.nickname.as_deref()
}

fn dest_of(e: &Entry) -> Option<String> {
    e.keys().map(|k| k.destination().to_base64())
}

/// Runs a setter on the selected, inactive entry.
fn update(
    conn: &Connection,
    registry: &Registry,
    m: Messages,
    f: impl FnOnce(&mut Entry) -> Reply,
) -> Reply {
    let Some(nickname) = selected(conn) else {
        return m.no_nickname();
    };
    match registry.update(nickname, f) {
        Ok(reply) => reply,
        Err(RegistryError::Active) => m.tunnel_active(),
        Err(_) => m.no_nickname(),
    }
}

fn set_nick(
    conn: &mut Connection,
    registry: &Registry,
    m: Messages,
    name: Operand<Nickname>,
) -> Reply {
    let name = match name {
        Operand::Missing => return m.no_nickname(),
        Operand::Invalid { error, .. } => return m.bad_value(&error),
        Operand::Valid(name) => name,
    };
    match registry.create(name.as_str()) {
        Ok(()) => {
            let reply = m.nickname_set(name.as_str());
            conn.nickname = Some(name.into_inner());
            reply
        }
        Err(RegistryError::Full(limit)) => m.too_many_tunnels(limit),
        Err(RegistryError::TooBig(limit)) => m.registry_full(limit),
        Err(_) => {
            // Java leaves the connection with no selection, so that later setters cannot
            // silently hit the previously selected tunnel.
            conn.nickname = None;
            m.tunnel_active()
        }
    }
}

fn set_host(
    conn: &Connection,
    registry: &Registry,
    m: Messages,
    host: Operand<Host>,
    inbound: bool,
) -> Reply {
    let side = if inbound {
        Side::Inbound
    } else {
        Side::Outbound
    };
    let max_bytes = registry.max_bytes();
    update(conn, registry, m, |e| match host {
        Operand::Valid(host) => {
            let grows = host.as_str().len().saturating_sub(e.host(side).len());
            if grows > e.room() {
                return m.registry_full(max_bytes);
            }
            e.set_host(side, host);
            m.host_set(inbound)
        }
        Operand::Invalid { error, .. } => m.bad_value(&error),
        Operand::Missing => m.empty_host(inbound),
    })
}

fn set_port(
    conn: &Connection,
    registry: &Registry,
    m: Messages,
    dialect: Dialect,
    operand: Operand<Port>,
    inbound: bool,
) -> Reply {
    let side = if inbound {
        Side::Inbound
    } else {
        Side::Outbound
    };
    update(conn, registry, m, |e| match operand {
        Operand::Valid(port) => {
            e.set_port(side, port);
            m.port_set(inbound)
        }
        // the stored port is kept (Java deleted it first); Java's two texts
        Operand::Invalid {
            error: ValueError::PortOutOfRange,
            ..
        } => m.command_error(&CommandError::PortOutOfRange { dialect }),
        Operand::Invalid { .. } => m.command_error(&CommandError::NotANumber { dialect }),
        Operand::Missing => m.empty_port(inbound),
    })
}

/// The validated options as the registry stores them.
fn option_pairs(options: Vec<TunnelOption>) -> Vec<(String, String)> {
    options
        .into_iter()
        .map(|option| {
            let (key, value) = option.into_parts();
            (key.into_inner(), value.into_inner())
        })
        .collect()
}

async fn new_keys(
    conn: &Connection,
    front: &Frontend,
    sig: Option<&str>,
    crypto: Option<&str>,
) -> Reply {
    let m = front.messages;
    let config = front.service.config();
    let registry = front.service.registry();
    let Some(nickname) = selected(conn) else {
        return m.no_nickname();
    };
    match registry.read(nickname, Entry::is_active) {
        Err(_) => return m.no_nickname(),
        Ok(true) => return m.tunnel_active(),
        Ok(false) => {}
    }
    let sig = match sig {
        None => config.newkeys_sig,
        Some(s) => match parse_sig_type(s) {
            Some(t) => t,
            None => return m.unsupported_sig_type(s),
        },
    };
    let crypto = match crypto {
        None => config.newkeys_crypto,
        Some(s) => match parse_crypto_type(s) {
            Some(t) => t,
            None => return m.unsupported_crypto_type(s),
        },
    };
    let generated = tokio::task::spawn_blocking(move || PrivateKeys::generate(sig, crypto)).await;
    let keys = match generated {
        Ok(Ok(keys)) => keys,
        Ok(Err(e)) => return m.keygen_failed(&e.to_string()),
        Err(e) => return m.keygen_failed(&e.to_string()),
    };
    let dest = keys.destination().to_base64();
    match registry.update(nickname, |e| e.set_keys(keys)) {
        Ok(()) => m.base64(dest),
        Err(RegistryError::Active) => m.tunnel_active(),
        Err(_) => m.no_nickname(),
    }
}

/// `lookup`/`lookuplocal`: `.i2p` names only (Java), resolved by the core.
async fn lookup(front: &Frontend, name: Option<&str>, what: &'static str) -> Reply {
    let m = front.messages;
    let service = &front.service;
    let Some(name) = name else {
        return m.empty_address(what);
    };
    if !name.ends_with(".i2p") {
        return m.address_not_found();
    }
    let result =
        tokio::time::timeout(service.config().lookup_timeout, service.core().lookup(name)).await;
    match result.unwrap_or(Err(CoreError::Timeout)) {
        Ok(dest) => m.base64(dest.to_base64()),
        Err(CoreError::NotFound | CoreError::Unreachable(_)) => m.address_not_found(),
        Err(e) => m.lookup_failed(&e.to_string()),
    }
}

/// `ping` (i2pd): through the selected tunnel's running session.
async fn ping(conn: &Connection, front: &Frontend, name: Option<&str>) -> Reply {
    let m = front.messages;
    let service = &front.service;
    let Some(name) = name else {
        return m.empty_address("ping");
    };
    let Some(session) = selected(conn).and_then(|n| service.registry().session(n)) else {
        return m.no_local_destination();
    };
    let limit = service.config().lookup_timeout;
    let dest = if name.ends_with(".i2p") {
        match tokio::time::timeout(limit, session.lookup(name)).await {
            Ok(Ok(dest)) => dest,
            Ok(Err(CoreError::NotFound | CoreError::Unreachable(_))) => {
                return m.address_not_found();
            }
            Ok(Err(e)) => return m.lookup_failed(&e.to_string()),
            Err(_) => return m.lookup_failed(&CoreError::Timeout.to_string()),
        }
    } else {
        match Destination::from_base64(name) {
            Ok(dest) => dest,
            Err(_) => return m.address_not_found(),
        }
    };
    let b32 = dest.b32();
    match tokio::time::timeout(limit, session.ping(Target::Destination(dest))).await {
        Ok(Ok(rtt)) => m.pong(&b32, rtt.as_millis()),
        Ok(Err(e)) => m.ping_failed(&e.to_string()),
        Err(_) => m.ping_failed(&CoreError::Timeout.to_string()),
    }
}
