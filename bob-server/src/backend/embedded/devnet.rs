//! `--router devnet[=N]`: a private I2P network in this process. N emissary routers (all
//! floodfills) on 127.0.0.1 with a private network id, plus the router the tunnels use,
//! which knows all of them. Real tunnels, real crypto, real LeaseSets; it reaches no real
//! I2P network (another net id, loopback addresses only). Nothing is kept on disk: every
//! start is a fresh network.
//!
//! Why every router is a floodfill: emissary (0.4.0, `netdb::query_lease_set` and
//! `Query::handle_timeout`) asks one floodfill at a time, 1.6 s each, and fails a
//! LeaseSet lookup with `NoFloodfills` as soon as every floodfill it knows was asked
//! once. With two floodfills, two slow or lost replies (a tunnel being rebuilt, a loaded
//! machine) failed a lookup after 3.2 s, and a destination's LeaseSet lived on at most
//! two routers. With all N, a lookup gets N tries (up to emissary's 20 s query limit)
//! and a published LeaseSet is flooded to three more routers.

use std::hash::{BuildHasher, Hasher};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use emissary_core::events::EventSubscriber;
use emissary_core::router::Router;
use emissary_core::{Config, Ntcp2Config, SamConfig, TransitConfig};
use emissary_util::runtime::tokio::Runtime;
use tracing::info;

use super::router::{RouterHandle, RouterStatus, Runner};
use super::{EmbeddedConfig, EmbeddedError, MAINNET_ID};

/// Random bytes from the OS.
fn random<const N: usize>() -> Result<[u8; N], EmbeddedError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| EmbeddedError::Router(format!("randomness: {e}")))?;
    Ok(b)
}

/// A private network id (never 2, the real network's), random per start so that two
/// devnets on one machine cannot mix.
fn random_net_id() -> u8 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    // 3..=254: not 0/1 (old test nets), not 2 (the real network), not 255
    let n = 3 + (h.finish() % 252) as u8;
    debug_assert_ne!(n, MAINNET_ID);
    n
}

/// Keys of one devnet router.
#[derive(Clone)]
struct Keys {
    static_key: [u8; 32],
    signing_key: [u8; 32],
    ntcp2_iv: [u8; 16],
    ntcp2_key: [u8; 32],
}

impl Keys {
    fn new() -> Result<Self, EmbeddedError> {
        Ok(Self {
            static_key: random()?,
            signing_key: random()?,
            ntcp2_iv: random()?,
            ntcp2_key: random()?,
        })
    }
}

async fn build(
    keys: &Keys,
    net_id: u8,
    floodfill: bool,
    routers: Vec<Vec<u8>>,
    sam_port: Option<u16>,
    transit: usize,
) -> Result<(Router<Runtime>, EventSubscriber, Vec<u8>), EmbeddedError> {
    let config = Config {
        static_key: Some(keys.static_key),
        signing_key: Some(keys.signing_key),
        net_id: Some(net_id),
        floodfill,
        insecure_tunnels: true,
        allow_local: true,
        ntcp2: Some(Ntcp2Config {
            port: 0,
            iv: keys.ntcp2_iv,
            key: keys.ntcp2_key,
            ipv4: true,
            ipv4_host: Some(Ipv4Addr::LOCALHOST),
            ipv6: false,
            ipv6_host: None,
            publish: true,
            ml_kem: None,
            disable_pq: false,
        }),
        routers,
        samv3_config: sam_port.map(|tcp_port| SamConfig {
            tcp_port,
            udp_port: 0,
            host: "127.0.0.1".into(),
        }),
        transit: Some(TransitConfig {
            max_tunnels: Some(transit),
        }),
        ..Default::default()
    };
    Router::<Runtime>::new(config, None, None)
        .await
        .map_err(|e| EmbeddedError::Router(e.to_string()))
}

/// Starts a devnet of `routers` routers plus the tunnel router.
///
/// # Errors
/// emissary refusing to start a router, or no randomness.
pub async fn start(config: &EmbeddedConfig, routers: usize) -> Result<RouterHandle, EmbeddedError> {
    let net_id = config.net_id.unwrap_or_else(random_net_id);
    if net_id == MAINNET_ID {
        return Err(EmbeddedError::Router(
            "a devnet cannot use net id 2 (the real I2P network)".into(),
        ));
    }
    let grace = config.shutdown_grace;
    let mut infos = Vec::with_capacity(routers);
    let mut runners = Vec::with_capacity(routers + 1);
    for i in 0..routers {
        let keys = Keys::new()?;
        let (router, events, info) = build(&keys, net_id, true, infos.clone(), None, 5000).await?;
        infos.push(info);
        runners.push(Runner::spawn(
            format!("devnet-{i}"),
            router,
            events,
            None,
            grace,
        ));
    }
    let keys = Keys::new()?;
    let status = Arc::new(RouterStatus::default());
    let (router, events, router_info) = build(
        &keys,
        net_id,
        false,
        infos.clone(),
        Some(0),
        config.transit_tunnels,
    )
    .await?;
    let addrs = *router.protocol_address_info();
    let sam_tcp = addrs
        .sam_tcp
        .ok_or_else(|| EmbeddedError::Router("emissary opened no SAM port".into()))?;
    let router_id = router.router_id().to_string();
    status
        .known_routers
        .store(routers as u64, Ordering::Relaxed);
    status.sam_healthy.store(true, Ordering::Relaxed);
    info!(
        routers,
        net_id,
        router = %router_id,
        "devnet: {} emissary routers on 127.0.0.1 with private net id {net_id}; it reaches NO real I2P network",
        routers + 1
    );
    let tunnel_router = Runner::spawn(
        format!("devnet tunnel router {router_id}"),
        router,
        events,
        Some(Arc::clone(&status)),
        grace,
    );
    runners.insert(0, tunnel_router);
    Ok(RouterHandle {
        sam_tcp,
        sam_udp: addrs.sam_udp,
        status,
        router_id,
        net_id,
        devnet_router_infos: infos,
        router_info,
        runners,
        health: None,
    })
}
