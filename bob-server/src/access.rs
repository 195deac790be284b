//! Who may use the control port: `--allow-user` and the Unix control socket
//! (`--control-socket`).
//!
//! BOB has no authentication, so on a shared machine any local user can connect to
//! `127.0.0.1:2827`, read every tunnel's private keys (`getkeys`) or `zap` the server.
//! With an allow list the server finds the user behind each control connection and
//! refuses everyone else with `ERROR access denied` *before* the greeting, so
//! unmodified clients keep working for the allowed users:
//! - loopback TCP: the owner of the client's socket, from the kernel's socket table
//!   (`/proc/net/tcp`, `/proc/net/tcp6`; Linux only);
//! - the Unix control socket: the peer's credentials (`SO_PEERCRED`).
//!
//! A connection whose owner cannot be found (a non-loopback peer, or a client that is
//! already gone when the table is read) is refused too.

use std::io::{self, BufRead};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::path::{Path, PathBuf};

/// The reply a refused client gets, before the greeting.
pub const ACCESS_DENIED: &[u8] = b"ERROR access denied\n";

/// A user of `--allow-user` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// No such user name on this machine.
    #[error("allow-user {0:?}: no such user")]
    UnknownUser(String),
    /// The user database could not be read.
    #[error("allow-user {name:?}: cannot look the user up: {reason}")]
    Lookup {
        /// the name given
        name: String,
        /// what the system said
        reason: String,
    },
    /// An empty name (`--allow-user ''`).
    #[error("allow-user: empty user name")]
    Empty,
    /// Not supported on this platform.
    #[error("{0} is supported on Linux only")]
    Unsupported(&'static str),
}

/// Splits `--allow-user` values and `BOB_ALLOW_USERS` on spaces and commas.
pub fn split_users<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    values
        .into_iter()
        .flat_map(|v| v.split([' ', ',']))
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Resolves user names (or numeric UIDs, taken as they are: a UID needs no passwd entry,
/// e.g. systemd's `DynamicUser`) to UIDs, once at start-up.
///
/// # Errors
/// [`AccessError::UnknownUser`] for a name that does not exist, [`AccessError::Lookup`]
/// when the user database fails, [`AccessError::Unsupported`] off Linux.
pub fn resolve_users(names: &[String]) -> Result<Vec<u32>, AccessError> {
    let mut uids = Vec::with_capacity(names.len());
    for name in names {
        let uid = resolve_user(name)?;
        if !uids.contains(&uid) {
            uids.push(uid);
        }
    }
    Ok(uids)
}

#[cfg(target_os = "linux")]
fn resolve_user(name: &str) -> Result<u32, AccessError> {
    if name.is_empty() {
        return Err(AccessError::Empty);
    }
    if let Ok(uid) = name.parse::<u32>() {
        return Ok(uid);
    }
    match nix::unistd::User::from_name(name) {
        Ok(Some(user)) => Ok(user.uid.as_raw()),
        Ok(None) => Err(AccessError::UnknownUser(name.to_owned())),
        Err(e) => Err(AccessError::Lookup {
            name: name.to_owned(),
            reason: e.desc().to_owned(),
        }),
    }
}

#[cfg(not(target_os = "linux"))]
fn resolve_user(_name: &str) -> Result<u32, AccessError> {
    Err(AccessError::Unsupported("--allow-user"))
}

/// The UID owning the client end of a loopback TCP connection: the row of the kernel's
/// socket table whose local address is `peer` and whose remote address is `server` (our
/// end of the accepted connection). `Ok(None)` when there is no such row (the client is
/// gone, or `peer` is not on this machine).
///
/// Written by hand rather than with the `procfs` crate: it needs four columns of one
/// file, and reading it line by line stops at the match instead of collecting the whole
/// table (which can hold many thousands of sockets) for every connection. Blocking:
/// call it from `spawn_blocking`.
///
/// # Errors
/// When the table cannot be read; off Linux always.
pub fn tcp_peer_uid(peer: SocketAddr, server: SocketAddr) -> io::Result<Option<u32>> {
    if !cfg!(target_os = "linux") {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "socket owners are known on Linux only",
        ));
    }
    // `/proc/self/net/…` is `/proc/net/…` (the symlink points there), and it stays
    // readable under systemd's `ProcSubset=pid`, which hides `/proc/net`.
    let table = if peer.is_ipv4() {
        "/proc/self/net/tcp"
    } else {
        "/proc/self/net/tcp6"
    };
    let file = std::fs::File::open(table)?;
    find_owner(io::BufReader::new(file), peer, server)
}

/// Searches one socket table (`/proc/net/tcp` or `/proc/net/tcp6` text) for the socket
/// `local` → `remote` and returns its `uid` column.
///
/// # Errors
/// When reading fails.
pub fn find_owner(
    table: impl BufRead,
    local: SocketAddr,
    remote: SocketAddr,
) -> io::Result<Option<u32>> {
    for line in table.lines() {
        if let Some(row) = parse_row(&line?)
            && row.local == local
            && row.remote == remote
        {
            return Ok(Some(row.uid));
        }
    }
    Ok(None)
}

/// One row of the socket table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Row {
    local: SocketAddr,
    remote: SocketAddr,
    uid: u32,
}

/// `sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid ...`;
/// `None` for the header, anything else that is not a row, and the kernel's ownerless
/// mini-sockets (TIME_WAIT, NEW_SYN_RECV), which it lists with uid 0: a closed
/// connection must never pass for root's.
fn parse_row(line: &str) -> Option<Row> {
    const TIME_WAIT: &str = "06";
    const NEW_SYN_RECV: &str = "0C";
    let mut fields = line.split_whitespace();
    let _slot = fields.next()?;
    let local = parse_addr(fields.next()?)?;
    let remote = parse_addr(fields.next()?)?;
    let state = fields.next()?;
    if state == TIME_WAIT || state == NEW_SYN_RECV {
        return None;
    }
    let uid = fields.nth(3)?.parse().ok()?;
    Some(Row { local, remote, uid })
}

/// `0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6). The kernel prints each
/// 32-bit word of the address as a number in the machine's byte order, so the word is
/// read back in the same order (`to_ne_bytes`) to get the address bytes; the port is a
/// plain hex number.
fn parse_addr(field: &str) -> Option<SocketAddr> {
    let (addr, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = addr.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    match addr.len() {
        8 => Some(SocketAddr::from((Ipv4Addr::from(word(0)?), port))),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&word(i)?);
            }
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(bytes),
                port,
                0,
                0,
            )))
        }
        _ => None,
    }
}

/// Checks `uid` against the allow list (an empty list allows everyone).
pub fn allowed(allow: &[u32], uid: u32) -> bool {
    allow.is_empty() || allow.contains(&uid)
}

/// A Unix control socket (`--control-socket PATH`), mode 0600, removed when dropped.
#[cfg(unix)]
#[derive(Debug)]
pub struct ControlSocket {
    listener: std::os::unix::net::UnixListener,
    path: PathBuf,
    /// device and inode of the socket file made here: only that file is removed
    id: (u64, u64),
}

/// The Unix control socket cannot be made.
#[derive(Debug, thiserror::Error)]
#[error("control socket {path}: {reason}")]
pub struct SocketError {
    /// the path asked for
    pub path: PathBuf,
    /// what is wrong (the OS error, shown here, so not a `source()`)
    pub reason: String,
}

#[cfg(unix)]
impl ControlSocket {
    /// Creates the socket at `path`, mode 0600 from the moment it is reachable: it is
    /// bound inside a fresh 0700 directory next to `path`, made 0600 there and then
    /// hard-linked to `path` (a link never replaces an existing file). A stale socket at
    /// `path` (nobody accepts on it) is removed first; a live one, or any other kind of
    /// file, is refused.
    ///
    /// # Errors
    /// [`SocketError`] naming the path and the reason.
    pub fn bind(path: &Path) -> Result<Self, SocketError> {
        use std::os::unix::fs::PermissionsExt as _;
        use std::os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, MetadataExt as _};
        use std::os::unix::net::{UnixListener, UnixStream};

        let fail = |reason: String| SocketError {
            path: path.to_owned(),
            reason,
        };
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => {
                if UnixStream::connect(path).is_ok() {
                    return Err(fail("another server listens on it".into()));
                }
                std::fs::remove_file(path)
                    .map_err(|e| fail(format!("cannot remove the stale socket: {e}")))?;
            }
            Ok(_) => {
                return Err(fail(
                    "exists and is not a socket; refusing to replace it".into(),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail(e.to_string())),
        }
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let staging = parent.join(format!(".bob-server-{}-{nanos:08x}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&staging)
            .map_err(|e| fail(format!("cannot create {}: {e}", staging.display())))?;
        let temp = staging.join("s");
        let made = (|| {
            let listener = UnixListener::bind(&temp)?;
            std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o600))?;
            std::fs::hard_link(&temp, path)?;
            listener.set_nonblocking(true)?;
            Ok::<_, io::Error>(listener)
        })();
        let _ = std::fs::remove_file(&temp);
        let _ = std::fs::remove_dir(&staging);
        let listener = made.map_err(|e| fail(e.to_string()))?;
        let meta = std::fs::symlink_metadata(path).map_err(|e| fail(e.to_string()))?;
        Ok(Self {
            listener,
            path: path.to_owned(),
            id: (meta.dev(), meta.ino()),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tokio listener (needs a runtime); the file stays until `self` is dropped.
    ///
    /// # Errors
    /// When the listener cannot be registered with the runtime.
    pub fn tokio_listener(&self) -> io::Result<tokio::net::UnixListener> {
        tokio::net::UnixListener::from_std(self.listener.try_clone()?)
    }
}

#[cfg(unix)]
impl Drop for ControlSocket {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt as _;
        // Only the file made by `bind`: never one that replaced it since.
        if let Ok(m) = std::fs::symlink_metadata(&self.path)
            && (m.dev(), m.ino()) == self.id
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows from a little-endian machine (x86-64): a listener on 127.0.0.1:2827 (uid 0)
    /// and a connection from 127.0.0.1:40000 to it owned by uid 65534, both ends.
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0B0B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0000000000000000 100 0 0 10 0
   1: 0100007F:9C40 0100007F:0B0B 01 00000000:00000000 00:00000000 00000000 65534        0 1002 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:0B0B 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 1003 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:9C43 0100007F:0B0B 06 00000000:00000000 03:00000FF7 00000000     0        0 0 3 0000000044076b07
";

    /// `::1` port 2827 and `::1` port 40001 (uid 1000), and a v4-mapped 127.0.0.1 peer.
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:9C41 00000000000000000000000001000000:0B0B 01 00000000:00000000 00:00000000 00000000  1000        0 2001 1 0000000000000000 20 4 30 10 -1
   1: 0000000000000000FFFF00000100007F:9C42 0000000000000000FFFF00000100007F:0B0B 01 00000000:00000000 00:00000000 00000000    42        0 2002 1 0000000000000000 20 4 30 10 -1
";

    fn owner(table: &str, local: &str, remote: &str) -> Option<u32> {
        find_owner(
            table.as_bytes(),
            local.parse().unwrap(),
            remote.parse().unwrap(),
        )
        .unwrap()
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn ipv4_rows() {
        assert_eq!(owner(TCP, "127.0.0.1:40000", "127.0.0.1:2827"), Some(65534));
        // our own end belongs to the server, not the client
        assert_eq!(owner(TCP, "127.0.0.1:2827", "127.0.0.1:40000"), Some(0));
        assert_eq!(owner(TCP, "127.0.0.1:40001", "127.0.0.1:2827"), None);
        assert_eq!(owner(TCP, "127.0.0.2:40000", "127.0.0.1:2827"), None);
        // a TIME_WAIT row has no owner (the kernel prints uid 0): not root's
        assert_eq!(owner(TCP, "127.0.0.1:40003", "127.0.0.1:2827"), None);
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn ipv6_rows() {
        assert_eq!(owner(TCP6, "[::1]:40001", "[::1]:2827"), Some(1000));
        assert_eq!(
            owner(TCP6, "[::ffff:127.0.0.1]:40002", "[::ffff:127.0.0.1]:2827"),
            Some(42)
        );
        assert_eq!(owner(TCP6, "[::1]:40001", "[::1]:2828"), None);
    }

    #[test]
    fn rows_round_trip_on_this_machine() {
        // the same encoding the kernel uses, on whatever byte order this machine has
        let hex4 = |ip: Ipv4Addr| format!("{:08X}", u32::from_ne_bytes(ip.octets()));
        let line = format!(
            "   5: {}:1F90 {}:0050 01 00000000:00000000 00:00000000 00000000   7        0 9",
            hex4(Ipv4Addr::new(10, 1, 2, 3)),
            hex4(Ipv4Addr::LOCALHOST)
        );
        assert_eq!(owner(&line, "10.1.2.3:8080", "127.0.0.1:80"), Some(7));
    }

    #[test]
    fn junk_is_not_a_row() {
        for line in [
            "",
            "  sl  local_address rem_address",
            "0: 0100007F 0100007F:0B0B 01 0 0 0 5",
            "0: 0100007F:ZZZZ 0100007F:0B0B 01 0 0 0 5",
            "0: 0100007F:0B0B 0100007F:0B0B 01 0 0 0 -5",
            "0: 0100007F0:0B0B 0100007F:0B0B 01 0 0 0 5",
            "0: 0100007F:0B0B 0100007F:0B0B 01 0 0 0",
        ] {
            assert_eq!(parse_row(line), None, "{line:?}");
        }
    }

    #[test]
    fn users_split_on_spaces_and_commas() {
        assert_eq!(
            split_users(["root nobody,1000", ",", "bob"]),
            ["root", "nobody", "1000", "bob"]
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn names_and_uids_resolve() {
        assert_eq!(
            resolve_users(&["root".into(), "0".into(), "4242".into()]),
            Ok(vec![0, 4242])
        );
        assert_eq!(
            resolve_users(&["no-such-user-bob".into()]),
            Err(AccessError::UnknownUser("no-such-user-bob".into()))
        );
    }

    #[cfg(unix)]
    #[test]
    fn control_socket_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("bob-access-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("control.sock");
        let _ = std::fs::remove_file(&path);
        let sock = ControlSocket::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let e = ControlSocket::bind(&path).unwrap_err();
        assert!(e.to_string().contains("another server listens"), "{e}");
        drop(sock);
        assert!(!path.exists(), "removed when dropped");
        std::fs::write(&path, "data").unwrap();
        let e = ControlSocket::bind(&path).unwrap_err();
        assert!(e.to_string().contains("not a socket"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
        std::fs::remove_file(&path).unwrap();
        // a stale socket (nobody listens) is replaced
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let sock = ControlSocket::bind(&path).unwrap();
        assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());
        drop(sock);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "no staging directory left"
        );
        std::fs::remove_dir(&dir).unwrap();
    }
}
