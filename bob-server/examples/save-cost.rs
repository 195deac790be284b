//! Per-command save cost of `--state-dir`: one tunnel changed, then the registry
//! saved, at 1, 100 and 1024 tunnels, for a small and a large tunnel profile.
//!
//! Both ways are measured in the same run on the same directory's file system:
//! - `whole-file`: the previous format (one `registry.toml` with every tunnel,
//!   rewritten and fsynced on each change: snapshot, encode, atomic write), kept as
//!   [`write_legacy_file`] for this comparison and the migration tests;
//! - `per-tunnel`: one file per tunnel as saved before the registry's change marks
//!   (snapshot of the whole registry, compare every record with its file, write the one
//!   changed tunnel file);
//! - `marked`: the current [`Persister`] (the registry's change marks name the changed
//!   entry; only its record is taken, compared and written).
//!
//! `(snapshot)` is the in-memory part of the first two: the registry's snapshot with
//! its keys encoded, which grows with the registry.
//!
//! `cargo run --release -p bob-server --example save-cost [-- DIR]` (DIR defaults to a
//! directory under the system temp dir; use a real disk, not tmpfs, or fsync is free).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bob_codec::types::Port;
use bob_server::registry::{Registry, Side};
use bob_server::service::persist::Persister;
use bob_server::storage::state::{StateStore, write_legacy_file};
use keytools::{CryptoType, PrivateKeys, SigType};

/// Options of the large profile: 5 values of 4 KiB (about 21 KB per tunnel; 1024 such
/// tunnels are a 22 MB registry, the size the old format took 85 ms per save at).
fn options(large: bool) -> Vec<(String, String)> {
    if large {
        (0..5)
            .map(|i| (format!("user.blob{i}"), "x".repeat(4096)))
            .collect()
    } else {
        vec![("inbound.length".into(), "2".into())]
    }
}

fn registry(n: usize, large: bool) -> Registry {
    let registry = Registry::new(Vec::new(), n);
    let keys = PrivateKeys::generate(SigType::Ed25519, CryptoType::X25519).expect("keys");
    for i in 0..n {
        let name = format!("tunnel{i:04}");
        registry.create(&name).expect("create");
        registry
            .update(&name, |e| {
                e.set_keys(keys.clone());
                e.set_options(options(large)).expect("options fit");
            })
            .expect("update");
    }
    registry
}

/// One command's change: the outport of a tunnel that cycles through the registry, to
/// a value it did not have (`salt` keeps the two measured loops' values apart).
fn change(registry: &Registry, n: usize, i: usize, salt: usize) {
    let name = format!("tunnel{:04}", i % n);
    let port = Port::new(1024 + ((i + salt) % 60000) as u16).expect("port");
    registry
        .update(&name, |e| e.set_port(Side::Outbound, port))
        .expect("update");
}

/// Runs `step` until at least `min_iters` runs and 1 s have passed; mean per run.
fn measure(min_iters: usize, mut step: impl FnMut(usize)) -> Duration {
    let start = Instant::now();
    let mut i = 0;
    while i < min_iters || start.elapsed() < Duration::from_secs(1) {
        step(i);
        i += 1;
    }
    start.elapsed() / i as u32
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let base = std::env::args_os()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("bob-save-cost-{}", std::process::id()))
        });
    println!(
        "profile  tunnels  registry-bytes  whole-file  per-tunnel      marked  per-tunnel/marked  (snapshot)"
    );
    for large in [false, true] {
        for n in [1usize, 100, 1024] {
            let dir = base.join(format!("{}-{n}", if large { "large" } else { "small" }));
            let _ = std::fs::remove_dir_all(&dir);
            let registry = registry(n, large);
            let store = Arc::new(StateStore::open(&dir).expect("state dir"));
            let legacy = store.legacy_path();

            let before = measure(10, |i| {
                change(&registry, n, i, 0);
                let snapshot = registry.snapshot();
                write_legacy_file(&legacy, &snapshot.into_records()).expect("whole-file save");
            });
            let bytes = std::fs::metadata(&legacy).map_or(0, |m| m.len());
            std::fs::remove_file(&legacy).expect("remove");

            // the in-memory part of a save (snapshot of the registry, keys encoded): it
            // still grows with the registry
            let snapshot_only = measure(10, |_| {
                std::hint::black_box(registry.snapshot().into_records());
            });

            // per-tunnel files, whole snapshot compared on every save (before the marks)
            let snapshot = registry.snapshot();
            store
                .save(snapshot.generation, &snapshot.into_records())
                .expect("first save");
            let written = store.files_written();
            let mut per_tunnel_iters = 0;
            let per_tunnel = measure(10, |i| {
                change(&registry, n, i, 20000);
                let snapshot = registry.snapshot();
                store
                    .save(snapshot.generation, &snapshot.into_records())
                    .expect("per-tunnel save");
                per_tunnel_iters += 1;
            });
            assert_eq!(store.files_written() - written, per_tunnel_iters);

            let persister = Persister::new(store.clone(), registry.clone(), 0);
            persister.persist().await.expect("first save");
            let written = store.files_written();
            let mut iters = 0;
            let after = {
                let start = Instant::now();
                while iters < 10 || start.elapsed() < Duration::from_secs(1) {
                    change(&registry, n, iters, 30000);
                    persister.persist().await.expect("save");
                    iters += 1;
                }
                start.elapsed() / iters as u32
            };
            assert_eq!(
                store.files_written() - written,
                iters as u64,
                "one file written per command"
            );
            println!(
                "{:<8} {n:>7}  {bytes:>14}  {:>10.2?}  {:>10.2?}  {:>10.2?}  {:>16.1}x  ({:.2?})",
                if large { "large" } else { "small" },
                before,
                per_tunnel,
                after,
                per_tunnel.as_secs_f64() / after.as_secs_f64(),
                snapshot_only
            );
            std::fs::remove_dir_all(&dir).expect("clean up");
        }
    }
    let _ = std::fs::remove_dir(&base);
}
