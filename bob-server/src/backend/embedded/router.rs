//! One emissary router in this process: its directory (keys kept 0600 in a 0700 dir),
//! its configuration, the task that runs it (status, restart, graceful shutdown), and
//! the [`RouterHandle`] the server keeps.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use emissary_core::events::{Event, EventSubscriber};
use emissary_core::router::Router;
use emissary_core::{Config, Ntcp2Config, SamConfig, Ssu2Config, TransitConfig};
use emissary_util::runtime::tokio::Runtime;
use emissary_util::storage::Storage;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::{EmbeddedConfig, EmbeddedError, MAINNET_ID, reseed};
use crate::backend::{BoxFuture, RouterReport};

/// The embedded router's state as the server shows it (metrics endpoint, status page,
/// `bobctl router`).
/// Updated once a second from emissary's status events.
#[derive(Debug, Default)]
pub struct RouterStatus {
    /// routers the netDb held at start (stored, files, reseed)
    pub known_routers: AtomicU64,
    /// routers connected now
    pub connected_routers: AtomicU64,
    /// tunnels built so far (exploratory and client)
    pub tunnels_built: AtomicU64,
    /// tunnel builds that failed so far
    pub tunnel_build_failures: AtomicU64,
    /// transit tunnels carried now
    pub transit_tunnels: AtomicU64,
    /// whether the last SAM health check succeeded
    pub sam_healthy: AtomicBool,
}

impl RouterStatus {
    /// A snapshot for the status surfaces (metrics endpoint, status page).
    pub fn report(&self, kind: &'static str) -> RouterReport {
        let get = |v: &AtomicU64| v.load(Ordering::Relaxed);
        RouterReport {
            kind,
            known_routers: get(&self.known_routers),
            connected_routers: get(&self.connected_routers),
            tunnels_built: get(&self.tunnels_built),
            tunnel_build_failures: get(&self.tunnel_build_failures),
            transit_tunnels: get(&self.transit_tunnels),
            sam_healthy: self.sam_healthy.load(Ordering::Relaxed),
        }
    }

    fn absorb(&self, event: Event) {
        if let Event::RouterStatus {
            transit,
            transport,
            tunnel,
            ..
        } = event
        {
            let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
            self.connected_routers
                .store(n(transport.num_connected_routers), Ordering::Relaxed);
            self.tunnels_built
                .store(n(tunnel.num_tunnels_built), Ordering::Relaxed);
            self.tunnel_build_failures
                .store(n(tunnel.num_tunnel_build_failures), Ordering::Relaxed);
            self.transit_tunnels
                .store(n(transit.num_tunnels), Ordering::Relaxed);
        }
    }
}

/// Builds the router from its directory (keys, netDb) with a given SAM port.
pub(crate) type Factory = Arc<
    dyn Fn(u16) -> BoxFuture<'static, Result<(Router<Runtime>, EventSubscriber), EmbeddedError>>
        + Send
        + Sync,
>;

/// How long an immediate router shutdown may take before the router is left behind.
const IMMEDIATE_STOP: Duration = Duration::from_secs(5);

/// One running router task: stop it (graceful, then immediate).
///
/// There is no in-process restart: emissary 0.4.0's SAM server and subsystems are tasks
/// of their own that outlive a dropped `Router` (its ports stay bound, and a second
/// router on them fails and panics a tunnel pool), so a dead SAM server ends the server.
pub(crate) struct Runner {
    stop: Option<oneshot::Sender<()>>,
    join: JoinHandle<()>,
}

impl Runner {
    /// Spawns `router`, copying its status events into `status`.
    pub(crate) fn spawn(
        name: String,
        router: Router<Runtime>,
        events: EventSubscriber,
        status: Option<Arc<RouterStatus>>,
        grace: Duration,
    ) -> Self {
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let join = tokio::spawn(async move {
            let mut router = router;
            let mut events = events;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    () = &mut router => {
                        warn!(router = %name, "emissary router stopped by itself");
                        return;
                    }
                    _ = &mut stop_rx => break,
                    _ = tick.tick() => {
                        if let Some(s) = &status {
                            while let Some(ev) = events.router_status() {
                                s.absorb(ev);
                            }
                        }
                    }
                }
            }
            // first call: graceful (tunnels expire); second call: at once
            router.shutdown();
            if tokio::time::timeout(grace, &mut router).await.is_err() {
                info!(router = %name, "graceful shutdown took longer than {grace:?}; stopping at once");
                router.shutdown();
                // bounded too: emissary 0.4.0's router waits for every subsystem to
                // confirm, and a tunnel pool that died during the shutdown (its
                // `debug_assert!` on a build message it can no longer send, in builds
                // with debug assertions) never does
                if tokio::time::timeout(IMMEDIATE_STOP, &mut router)
                    .await
                    .is_err()
                {
                    warn!(router = %name, "emissary router did not stop within {IMMEDIATE_STOP:?} of the immediate shutdown; leaving it");
                }
            }
        });
        Self {
            stop: Some(stop_tx),
            join,
        }
    }

    /// Stops the router: graceful within the grace, then immediate; waits for it.
    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.join).await;
    }
}

/// The running router(s) of an embedded backend.
pub struct RouterHandle {
    /// the SAM TCP address of the router the tunnels use
    pub sam_tcp: SocketAddr,
    /// its SAM UDP address
    pub sam_udp: Option<SocketAddr>,
    /// the tunnel router's state
    pub status: Arc<RouterStatus>,
    /// the tunnel router's id (first characters, as emissary logs it)
    pub router_id: String,
    /// the network id the routers run on
    pub net_id: u8,
    /// the RouterInfos of the devnet's other routers (empty for `embedded`)
    pub devnet_router_infos: Vec<Vec<u8>>,
    /// the tunnel router's own RouterInfo
    pub router_info: Vec<u8>,
    /// the tunnel router first (stopped first), then the devnet's others
    pub(crate) runners: Vec<Runner>,
    pub(crate) health: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RouterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterHandle")
            .field("sam_tcp", &self.sam_tcp)
            .field("router_id", &self.router_id)
            .field("net_id", &self.net_id)
            .field("routers", &self.runners.len())
            .finish_non_exhaustive()
    }
}

impl RouterHandle {
    /// Starts `--router embedded`: the router in its directory (created 0700), reseeded
    /// from files and, when the netDb is small, HTTPS.
    ///
    /// # Errors
    /// No usable directory, unreadable reseed files, emissary refusing to start.
    pub async fn start_embedded(
        config: &EmbeddedConfig,
        state_dir: Option<&Path>,
    ) -> Result<Self, EmbeddedError> {
        let dir = config.resolve_dir(state_dir).ok_or_else(|| {
            EmbeddedError::Dir(
                "no --router-dir, no --state-dir and neither XDG_DATA_HOME nor HOME is set".into(),
            )
        })?;
        let storage = open_storage(&dir).await?;
        let net_id = config.net_id.unwrap_or(MAINNET_ID);
        let private = net_id != MAINNET_ID;
        // reseed: the netDb, then the files, then HTTPS (a private network only from the
        // hosts given, its bundles unsigned: no reseed signer signs a private network)
        let mut extra = reseed::load_files_verified(&config.reseed_files, !private)?;
        for ri in &extra {
            if let Err(e) = storage
                .store_router_info(ri.name.clone(), ri.router_info.clone())
                .await
            {
                warn!("cannot store reseeded router {}: {e}", ri.name);
            }
        }
        let mut known = storage.load().await.routers.len();
        let from_https = !private || !config.reseed_hosts.is_empty();
        if known < config.reseed_threshold && config.net_reseed && from_https {
            let got = if config.reseed_hosts.is_empty() {
                reseed::https(&[]).await
            } else {
                reseed::https_from(&config.reseed_hosts, config.reseed_ca.as_deref(), !private)
                    .await
            };
            match got {
                Ok(got) => {
                    info!(routers = got.len(), "HTTPS reseed succeeded");
                    for ri in &got {
                        let _ = storage
                            .store_router_info(ri.name.clone(), ri.router_info.clone())
                            .await;
                    }
                    extra.extend(got);
                    known = storage.load().await.routers.len();
                }
                Err(e) => warn!(
                    known,
                    "HTTPS reseed failed ({e}); starting with the routers known"
                ),
            }
        }
        let ports = PersistedPorts::load(&dir, config);
        let status = Arc::new(RouterStatus::default());
        let cfg = config.clone();
        let storage2 = storage.clone();
        let factory: Factory = Arc::new(move |sam_port| {
            let cfg = cfg.clone();
            let storage = storage2.clone();
            Box::pin(async move {
                let bundle = storage.load().await;
                let n = bundle.routers.len();
                let host = cfg.host.or_else(|| private.then_some(Ipv4Addr::LOCALHOST));
                let config = Config {
                    static_key: Some(bundle.static_key),
                    signing_key: Some(bundle.signing_key),
                    routers: bundle.routers,
                    profiles: bundle.profiles,
                    net_id: Some(net_id),
                    floodfill: cfg.floodfill,
                    allow_local: private,
                    insecure_tunnels: private,
                    ntcp2: Some(Ntcp2Config {
                        port: ports.ntcp2,
                        iv: bundle.ntcp2_iv,
                        key: bundle.ntcp2_key,
                        ipv4: true,
                        ipv4_host: host,
                        ipv6: false,
                        ipv6_host: None,
                        publish: host.is_some(),
                        ml_kem: None,
                        disable_pq: false,
                    }),
                    ssu2: ports.ssu2.map(|port| Ssu2Config {
                        port,
                        static_key: bundle.ssu2_static_key,
                        intro_key: bundle.ssu2_intro_key,
                        ipv4: true,
                        ipv4_host: host,
                        ipv4_mtu: None,
                        ipv6: false,
                        ipv6_host: None,
                        ipv6_mtu: None,
                        publish: host.is_some(),
                        disable_pq: false,
                        ml_kem: None,
                    }),
                    samv3_config: Some(SamConfig {
                        host: "127.0.0.1".into(),
                        tcp_port: sam_port,
                        udp_port: 0,
                    }),
                    transit: Some(TransitConfig {
                        max_tunnels: Some(cfg.transit_tunnels),
                    }),
                    ..Default::default()
                };
                let storage_arc: Arc<dyn emissary_core::runtime::Storage> =
                    Arc::new(storage.clone());
                let (router, events, info) =
                    Router::<Runtime>::new(config, None, Some(storage_arc))
                        .await
                        .map_err(|e| EmbeddedError::Router(e.to_string()))?;
                if let Err(e) = storage.store_local_router_info(info).await {
                    warn!("cannot save router.info: {e}");
                }
                info!(known_routers = n, "emissary router built");
                Ok((router, events))
            })
        });
        let (router, events) = factory(0).await?;
        let addrs = *router.protocol_address_info();
        let sam_tcp = addrs
            .sam_tcp
            .ok_or_else(|| EmbeddedError::Router("emissary opened no SAM port".into()))?;
        PersistedPorts::save(&dir, addrs.ntcp2_port, addrs.ssu2_port);
        let router_id = router.router_id().to_string();
        let router_info = std::fs::read(dir.join("router.info")).unwrap_or_default();
        status
            .known_routers
            .store(u64::try_from(known).unwrap_or(0), Ordering::Relaxed);
        status.sam_healthy.store(true, Ordering::Relaxed);
        info!(
            router = %router_id,
            dir = %dir.display(),
            net_id,
            known_routers = known,
            ntcp2_port = ?addrs.ntcp2_port,
            ssu2_port = ?addrs.ssu2_port,
            "embedded emissary router started{}",
            if private { " on a PRIVATE network (not the real I2P network)" } else { "" }
        );
        let runner = Runner::spawn(
            format!("embedded {router_id}"),
            router,
            events,
            Some(Arc::clone(&status)),
            config.shutdown_grace,
        );
        Ok(Self {
            sam_tcp,
            sam_udp: addrs.sam_udp,
            status,
            router_id,
            net_id,
            devnet_router_infos: Vec::new(),
            router_info,
            runners: vec![runner],
            health: None,
        })
    }

    /// Stops every router: gracefully within its grace, then at once (all at the same
    /// time; the tunnel router's grace bounds the wait).
    pub async fn shutdown(mut self) {
        if let Some(h) = self.health.take() {
            h.abort();
        }
        futures::future::join_all(self.runners.into_iter().map(Runner::stop)).await;
    }
}

/// The router directory: created 0700 (keys inside), never through a symlink.
async fn open_storage(dir: &Path) -> Result<Storage, EmbeddedError> {
    let bad = |e: std::io::Error| EmbeddedError::Dir(format!("{}: {e}", dir.display()));
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(EmbeddedError::Dir(format!(
                "{} is a symbolic link; give the real directory",
                dir.display()
            )));
        }
        Ok(m) if !m.is_dir() => {
            return Err(EmbeddedError::Dir(format!(
                "{} is not a directory",
                dir.display()
            )));
        }
        Ok(_) => {}
        Err(_) => std::fs::create_dir_all(dir).map_err(bad)?,
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(bad)?;
    }
    let storage = Storage::new::<Runtime>(Some(dir.to_path_buf()))
        .await
        .map_err(|e| EmbeddedError::Dir(format!("{}: {e}", dir.display())))?;
    #[cfg(unix)]
    for key in ["ntcp2.keys", "ssu2.keys", "static.key", "signing.key"] {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(key);
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(bad)?;
        }
    }
    Ok(storage)
}

/// NTCP2/SSU2 ports: the configured ones, else the ones picked on first start (kept in
/// `DIR/ports.toml` so that the published address does not change on every start).
#[derive(Debug, Clone, Copy)]
struct PersistedPorts {
    ntcp2: u16,
    ssu2: Option<u16>,
}

impl PersistedPorts {
    const FILE: &'static str = "ports.toml";

    fn load(dir: &Path, c: &EmbeddedConfig) -> Self {
        let saved = std::fs::read_to_string(dir.join(Self::FILE)).unwrap_or_default();
        let get = |key: &str| {
            saved.lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == key).then(|| v.trim().parse::<u16>().ok())?
            })
        };
        let ntcp2 = match c.ntcp2_port {
            0 => get("ntcp2").unwrap_or(0),
            p => p,
        };
        let ssu2 = c.ssu2_port.map(|p| match p {
            0 => get("ssu2").unwrap_or(0),
            p => p,
        });
        Self { ntcp2, ssu2 }
    }

    fn save(dir: &Path, ntcp2: Option<u16>, ssu2: Option<u16>) {
        let mut text = String::from("# ports picked on first start; bob-server reuses them\n");
        if let Some(p) = ntcp2 {
            text.push_str(&format!("ntcp2 = {p}\n"));
        }
        if let Some(p) = ssu2 {
            text.push_str(&format!("ssu2 = {p}\n"));
        }
        if let Err(e) = std::fs::write(dir.join(Self::FILE), text) {
            warn!("cannot save the router's ports in {}: {e}", dir.display());
        }
    }
}

/// The path of the router directory's own RouterInfo.
pub fn router_info_path(dir: &Path) -> PathBuf {
    dir.join("router.info")
}
