//! Tunnels declared in a tunnels file (`--tunnels FILE`, see [`crate::config::tunnels`]),
//! put into the registry and started when the server boots.
//!
//! Boot runs in two steps around [`Server::run`](crate::server::Server::run):
//! 1. [`prepare`] ([`Server::prepare_tunnels`](crate::server::Server::prepare_tunnels)
//!    for a bound server), after the server is bound and before it runs: reads (or
//!    creates) each tunnel's key file and writes the tunnel's entry into the registry,
//!    replacing an entry of the same name (one restored from the state directory, say):
//!    the file's declaration wins, including whether the tunnel runs.
//! 2. [`start_declared`], once the server runs: starts the tunnels the file wants
//!    started through [`Service::start_tunnel`], in-process, so a tunnel starts exactly
//!    as a client's `start` would start it (same checks, same bookkeeping), and waits
//!    until each is running.
//!
//! Every error names the tunnels file, the line of the entry and the tunnel.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bob_codec::types::{Host, Port};
use keytools::PrivateKeys;

use super::{Service, StartFailure};
use crate::config::Config;
use crate::config::tunnels::TunnelDecl;
use crate::registry::{Registry, RegistryError, Side};
use crate::tunnel::Endpoint;
use keytools::keyfile::{read_key_file, write_key_file};

/// How often [`start_declared`] looks at a tunnel another task is starting.
const POLL: Duration = Duration::from_millis(50);

/// Pauses between the attempts to start a declared tunnel whose start fails.
const START_BACKOFF: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(2)];

/// A declared tunnel that could not be set up; `Display` is
/// `FILE:LINE: tunnel "NAME": what is wrong`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: tunnel {nickname:?}: {message}")]
pub struct BootError {
    /// the tunnels file
    pub file: String,
    /// line of the tunnel's entry
    pub line: usize,
    /// the tunnel
    pub nickname: String,
    /// what went wrong (names the key file for key problems)
    pub message: String,
}

/// A declared tunnel, now in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// nickname
    pub nickname: String,
    /// line of its entry in the tunnels file
    pub line: usize,
    /// whether [`start_declared`] starts it
    pub start: bool,
    /// whether its key file was missing and has been created
    pub created_keys: bool,
    /// its `.b32.i2p` address
    pub b32: String,
    /// whether an entry of the same name was replaced
    pub replaced: bool,
}

/// Reads the key file, or creates it (mode 0600) with new keys when it does not exist.
/// Returns the keys and whether they are new.
fn load_or_create_keys(decl: &TunnelDecl, config: &Config) -> Result<(PrivateKeys, bool), String> {
    warn_if_key_dir_is_shared(&decl.keys);
    match std::fs::symlink_metadata(&decl.keys) {
        Ok(_) => read_key_file(&decl.keys)
            .map(|k| (k, false))
            .map_err(|e| format!("key file {e}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let sig = match &decl.key_type {
                Some(t) => t.parse().map_err(|e| format!("key-type {t:?}: {e}"))?,
                None => config.newkeys_sig,
            };
            let keys = PrivateKeys::generate(sig, config.newkeys_crypto)
                .map_err(|e| format!("generating {sig} keys: {e}"))?;
            if let Some(dir) = decl.keys.parent().filter(|d| !d.as_os_str().is_empty()) {
                create_private_dir(dir)
                    .map_err(|e| format!("creating key directory {}: {e}", dir.display()))?;
            }
            write_key_file(&decl.keys, &keys).map_err(|e| format!("writing key file {e}"))?;
            Ok((keys, true))
        }
        Err(e) => Err(format!("key file {}: {e}", decl.keys.display())),
    }
}

/// Logs a warning when the directory of an existing key file lets others replace files
/// in it (they could swap the tunnel's keys). Not changed: it may be shared on purpose.
fn warn_if_key_dir_is_shared(key_file: &Path) {
    let Some(dir) = key_file.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return;
    };
    if let Ok(access) = keytools::keyfile::check_key_dir(dir)
        && access.group_or_world_writable
    {
        tracing::warn!(
            dir = %dir.display(),
            mode = format_args!("{:o}", access.mode),
            "others can replace files in this key directory"
        );
    }
}

/// Creates `dir` and its missing parents, mode 0700 (nothing happens if it exists).
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Step 1: writes every declared tunnel into `registry` (inactive), with its keys
/// (read, or created when the key file is missing: mode 0600, missing directories
/// 0700), endpoints, quiet flag and options
/// over the server's default options. An inactive entry of the same name is replaced.
///
/// Call it after the server is bound and before it runs: nothing is started here.
///
/// # Errors
/// [`BootError`] for the first entry that cannot be set up: a key file that exists but
/// holds no keys (or cannot be read or written), an active entry of the same name, a
/// full registry, too many options. Entries before it stay in the registry.
pub fn prepare(
    registry: &Registry,
    config: &Config,
    file: &Path,
    decls: &[TunnelDecl],
) -> Result<Vec<Prepared>, BootError> {
    let mut out = Vec::with_capacity(decls.len());
    for decl in decls {
        let fail = |message: String| BootError {
            file: file.display().to_string(),
            line: decl.line,
            nickname: decl.name.clone(),
            message,
        };
        let (keys, created_keys) = load_or_create_keys(decl, config).map_err(&fail)?;
        let b32 = keys.destination().b32();
        let replaced = registry.contains(&decl.name);
        registry.create(&decl.name).map_err(|e| match e {
            RegistryError::Active => {
                fail("a tunnel of this name is already active; stop it first".to_owned())
            }
            other => fail(other.to_string()),
        })?;
        let endpoint = |ep: &Endpoint| -> Result<(Host, Port), String> {
            let host = Host::new(ep.host.clone()).map_err(|e| e.to_string())?;
            let port = Port::new(ep.port).map_err(|e| e.to_string())?;
            Ok((host, port))
        };
        let inbound = decl.inbound.as_ref().map(endpoint).transpose();
        let outbound = decl.outbound.as_ref().map(endpoint).transpose();
        let set = registry
            .update(&decl.name, |e| {
                let (inbound, outbound) = (inbound?, outbound?);
                e.set_keys(keys);
                if let Some((host, port)) = inbound {
                    e.set_host(Side::Inbound, host);
                    e.set_port(Side::Inbound, port);
                }
                if let Some((host, port)) = outbound {
                    e.set_host(Side::Outbound, host);
                    e.set_port(Side::Outbound, port);
                }
                e.set_quiet(decl.quiet);
                e.set_kind(decl.kind);
                e.set_options(decl.options.iter().cloned())
                    .map_err(|too_many| {
                        format!("too many options (at most {} per tunnel)", too_many.limit)
                    })
            })
            .map_err(|e| fail(e.to_string()))?;
        if let Err(message) = set {
            let _ = registry.remove(&decl.name);
            return Err(fail(message));
        }
        out.push(Prepared {
            nickname: decl.name.clone(),
            line: decl.line,
            start: decl.start,
            created_keys,
            b32,
            replaced,
        });
    }
    Ok(out)
}

/// Step 2: starts the prepared tunnels marked `start`, all at once, through the running
/// server's `service` (as a client's `start` would), and waits until each is running.
/// A tunnel some other task is starting meanwhile (a client) counts once it runs.
///
/// # Errors
/// [`BootError`] for the first tunnel (in file order) that did not start within
/// `deadline`, with the server's reason.
pub async fn start_declared(
    service: &Arc<Service>,
    file: &Path,
    tunnels: &[Prepared],
    deadline: Duration,
) -> Result<(), BootError> {
    let starts = tunnels.iter().filter(|t| t.start).map(|t| async move {
        let result = tokio::time::timeout(deadline, start_one(service, &t.nickname))
            .await
            .unwrap_or_else(|_| Err(format!("not running after {}s", deadline.as_secs())));
        (t, result)
    });
    for (t, result) in futures::future::join_all(starts).await {
        result.map_err(|message| BootError {
            file: file.display().to_string(),
            line: t.line,
            nickname: t.nickname.clone(),
            message: format!("start failed: {message}"),
        })?;
    }
    Ok(())
}

/// Starts one tunnel; when the entry is busy (another task starting or stopping it),
/// waits for that to end and tries again if the tunnel is not running then. A start
/// that fails is tried again after [`START_BACKOFF`] (1 s, then 2 s: a router that comes
/// up just after bob-server gets a moment); then its reason is returned.
async fn start_one(service: &Arc<Service>, nickname: &str) -> Result<(), String> {
    let registry = service.registry();
    let mut waits = START_BACKOFF.iter();
    let mut busy_rounds = 0;
    loop {
        match service.start_tunnel(nickname).await {
            Ok(()) => {
                return if registry.status(nickname).is_some_and(|s| s.running) {
                    Ok(())
                } else {
                    Err("the tunnel was stopped while starting".to_owned())
                };
            }
            Err(StartFailure::Refused(RegistryError::Active | RegistryError::Inactive)) => {
                busy_rounds += 1;
                if busy_rounds > 3 {
                    return Err(RegistryError::Active.to_string());
                }
                // Busy: someone else is starting (or stopping) it; see how that ends.
                loop {
                    match registry.status(nickname) {
                        Some(s) if s.running => return Ok(()),
                        Some(s) if s.starting || s.stopping => tokio::time::sleep(POLL).await,
                        Some(_) => break,
                        None => return Err("the tunnel was removed while starting".to_owned()),
                    }
                }
            }
            Err(StartFailure::Failed(reason)) => {
                let last = format!("starting tunnel: {reason}");
                let Some(wait) = waits.next() else {
                    return Err(last);
                };
                tracing::info!(
                    nickname,
                    reason = %last,
                    "declared tunnel did not start; trying again in {}s",
                    wait.as_secs()
                );
                tokio::time::sleep(*wait).await;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use keytools::{CryptoType, SigType};

    use super::*;
    use crate::tunnel::Endpoint;
    use keytools::keyfile::write_private_file;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bob-boot-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn decl(name: &str, keys: PathBuf) -> TunnelDecl {
        TunnelDecl {
            name: name.to_owned(),
            keys,
            key_type: Some("ed25519".to_owned()),
            inbound: None,
            outbound: Some(Endpoint {
                host: "127.0.0.1".to_owned(),
                port: 8080,
            }),
            quiet: true,
            kind: crate::tunnel::TunnelKind::default(),
            start: true,
            options: vec![("inbound.length".to_owned(), "1".to_owned())],
            line: 4,
        }
    }

    #[test]
    fn missing_key_file_is_created_private_and_reused() {
        let dir = temp_dir("create");
        let config = Config::default();
        let registry = Registry::new(config.default_options.clone(), 8);
        let d = decl("web", dir.join("web.keys"));
        let file = dir.join("tunnels.toml");
        let first = prepare(&registry, &config, &file, std::slice::from_ref(&d)).unwrap();
        assert!(first[0].created_keys && !first[0].replaced);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&d.keys).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let keys = read_key_file(&d.keys).unwrap();
        assert_eq!(keys.destination().sig_type(), SigType::Ed25519);
        let status = registry.status("web").unwrap();
        assert!(status.keys && status.quiet && !status.running);
        assert_eq!(status.outport, Some(8080));
        let props = registry.read("web", |e| e.properties().clone()).unwrap();
        assert_eq!(props.get("inbound.length").map(String::as_str), Some("1"));
        assert_eq!(props.get("outbound.length").map(String::as_str), Some("3"));

        // Second boot: same keys, entry replaced.
        let second = prepare(&registry, &config, &file, &[d]).unwrap();
        assert!(!second[0].created_keys && second[0].replaced);
        assert_eq!(first[0].b32, second[0].b32);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_key_file_names_file_and_line() {
        let dir = temp_dir("bad");
        let keys = dir.join("bad.keys");
        write_private_file(&keys, b"not keys at all").unwrap();
        let config = Config::default();
        let registry = Registry::new(config.default_options.clone(), 8);
        let e = prepare(
            &registry,
            &config,
            Path::new("t.toml"),
            &[decl("x", keys.clone())],
        )
        .unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.starts_with("t.toml:4: tunnel \"x\": key file "),
            "{shown}"
        );
        assert!(shown.contains(&keys.display().to_string()), "{shown}");
        assert!(!registry.contains("x"));
        // Missing directories are created, private.
        let nested = dir.join("new/dir/y.keys");
        prepare(
            &registry,
            &config,
            Path::new("t.toml"),
            &[decl("y", nested.clone())],
        )
        .unwrap();
        assert!(read_key_file(&nested).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("new/dir"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        // An impossible place for a new key file: its "directory" is a file.
        let e = prepare(
            &registry,
            &config,
            Path::new("t.toml"),
            &[decl("z", keys.join("sub/z.keys"))],
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("t.toml:4: tunnel \"z\": "), "{e}");
        assert!(e.to_string().contains("bad.keys/sub/z.keys"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn full_registry_is_a_boot_error() {
        let dir = temp_dir("full");
        let config = Config::default();
        let registry = Registry::new(Vec::new(), 1);
        let keys = PrivateKeys::generate(SigType::Ed25519, CryptoType::ElGamal).unwrap();
        write_key_file(&dir.join("k"), &keys).unwrap();
        let mut second = decl("b", dir.join("k"));
        second.line = 9;
        let e = prepare(
            &registry,
            &config,
            Path::new("t.toml"),
            &[decl("a", dir.join("k")), second],
        )
        .unwrap_err();
        assert_eq!(e.line, 9);
        assert!(e.message.contains("too many tunnels"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
