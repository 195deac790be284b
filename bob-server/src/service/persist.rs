//! Saving the registry on every change (`--state-dir`): the glue between the live
//! [`Registry`] and the [`StateStore`] that writes it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::registry::Registry;
use crate::storage::state::{StateError, StateStore};

/// Saves the registry through a [`StateStore`] whenever it changed.
///
/// [`Persister::persist`] snapshots the registry and writes it on a blocking thread;
/// callers await it before they answer the client whose command changed something, so
/// an `OK` means the change is on disk. Concurrent calls commit as a group: while one
/// write is in flight the others wait, then the next writer snapshots the newest
/// registry, which covers every waiting caller's change, and those callers return
/// without writing. Every snapshot carries its registry generation and the store skips
/// older ones, so a slow write never replaces a newer file.
///
/// The first write saves the whole registry (and converts a legacy state file); every
/// later one only the entries the registry marked changed since
/// ([`Registry::changes`]), so a command's save costs what it changed whatever the
/// registry's size.
#[derive(Debug, Clone)]
pub struct Persister {
    store: Arc<StateStore>,
    registry: Registry,
    /// highest generation known to be on disk
    saved: Arc<AtomicU64>,
    /// a complete save happened: later ones write only the marked changes
    complete: Arc<std::sync::atomic::AtomicBool>,
    /// one snapshot-and-write at a time (group commit)
    writer: Arc<Mutex<()>>,
}

impl Persister {
    /// Saves `registry` into `store` from now on; `saved` is the registry generation
    /// the file already holds (0: none).
    pub fn new(store: Arc<StateStore>, registry: Registry, saved: u64) -> Self {
        registry.track_changes();
        Self {
            store,
            registry,
            saved: Arc::new(AtomicU64::new(saved)),
            complete: Arc::default(),
            writer: Arc::default(),
        }
    }

    /// The store written to.
    pub fn store(&self) -> &StateStore {
        &self.store
    }

    /// Writes the registry unless its current generation is already saved; returns
    /// once the file is durable (or the write failed).
    ///
    /// # Errors
    /// [`StateError`] when the file cannot be written (the previous file stays intact).
    pub async fn persist(&self) -> Result<(), StateError> {
        let wanted = self.registry.generation();
        if self.saved.load(Ordering::Acquire) >= wanted {
            return Ok(());
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let _turn = this
                .writer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // the write this caller waited for may have covered its change already
            if this.saved.load(Ordering::Acquire) >= wanted {
                return Ok(());
            }
            let generation =
                if this.complete.load(Ordering::Acquire) && !this.store.needs_full_save() {
                    let changes = this.registry.changes();
                    let generation = changes.generation;
                    let (changed, removed) = changes.into_records();
                    this.store.save_changes(generation, &changed, &removed)?;
                    generation
                } else {
                    let snapshot = this.registry.snapshot();
                    let generation = snapshot.generation;
                    this.store.save(generation, &snapshot.into_records())?;
                    this.complete.store(true, Ordering::Release);
                    generation
                };
            this.registry.saved(generation);
            this.saved.fetch_max(generation, Ordering::AcqRel);
            Ok(())
        })
        .await
        .map_err(|e| StateError::Encode(format!("save task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn tempdir(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "bob-persist-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_saves_commit_as_a_group() {
        let dir = tempdir("group");
        let store = Arc::new(StateStore::open(&dir).unwrap());
        let registry = Registry::new(Vec::new(), 100);
        let persister = Persister::new(store.clone(), registry.clone(), 0);
        for i in 0..32 {
            registry.create(&format!("t{i}")).unwrap();
        }
        let saves = (0..32).map(|_| {
            let p = persister.clone();
            tokio::spawn(async move { p.persist().await })
        });
        for save in futures::future::join_all(saves).await {
            save.unwrap().unwrap();
        }
        assert_eq!(store.writes(), 1, "one write covers every waiting change");
        assert_eq!(store.load().unwrap().tunnels.len(), 32);
        // nothing changed: nothing written
        persister.persist().await.unwrap();
        assert_eq!(store.writes(), 1);
        registry.remove("t0").unwrap();
        persister.persist().await.unwrap();
        assert_eq!(store.writes(), 2);
        assert_eq!(store.load().unwrap().tunnels.len(), 31);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// With 1,000 tunnels saved, one changed tunnel writes its own file and no other:
    /// the others keep their inode and modification time, and the store counts one
    /// file written; a removal removes one file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_change_writes_only_its_tunnels_file() {
        use std::os::unix::fs::MetadataExt;

        let dir = tempdir("marks");
        let store = Arc::new(StateStore::open(&dir).unwrap());
        let registry = Registry::new(Vec::new(), 1000);
        let persister = Persister::new(store.clone(), registry.clone(), 0);
        for i in 0..1000 {
            registry.create(&format!("t{i:04}")).unwrap();
        }
        persister.persist().await.unwrap();
        assert_eq!(store.files_written(), 1000);
        assert_eq!(registry.unsaved(), 0, "saved changes are unmarked");
        let stamp = |name: &str| {
            let m = fs::metadata(store.tunnel_path(name)).unwrap();
            (m.ino(), m.mtime(), m.mtime_nsec())
        };
        let others: Vec<String> = (0..1000)
            .filter(|i| *i != 500)
            .step_by(37)
            .map(|i| format!("t{i:04}"))
            .collect();
        let before: Vec<_> = others.iter().map(|n| stamp(n)).collect();
        let changed_before = stamp("t0500");
        // coarse file-system clocks: a later write must be able to show a later time
        std::thread::sleep(std::time::Duration::from_millis(20));

        registry
            .update("t0500", |e| {
                e.set_port(
                    crate::registry::Side::Inbound,
                    bob_codec::types::Port::new(4444).unwrap(),
                )
            })
            .unwrap();
        persister.persist().await.unwrap();
        assert_eq!(store.files_written(), 1001, "one file written");
        assert_ne!(stamp("t0500"), changed_before, "the changed tunnel's file");
        let after: Vec<_> = others.iter().map(|n| stamp(n)).collect();
        assert_eq!(before, after, "no other file touched");
        let text = fs::read_to_string(store.tunnel_path("t0500")).unwrap();
        assert!(text.contains("inport = 4444"), "{text}");

        registry.remove("t0001").unwrap();
        persister.persist().await.unwrap();
        assert_eq!(store.files_removed(), 1);
        assert_eq!(store.files_written(), 1001);
        assert!(!store.tunnel_path("t0001").exists());
        let loaded = store.load().unwrap();
        assert_eq!(loaded.tunnels.len(), 999);
        assert!(
            loaded
                .tunnels
                .iter()
                .any(|t| t.nickname == "t0500" && t.inport == Some(4444))
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
