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
#[derive(Debug, Clone)]
pub struct Persister {
    store: Arc<StateStore>,
    registry: Registry,
    /// highest generation known to be on disk
    saved: Arc<AtomicU64>,
    /// one snapshot-and-write at a time (group commit)
    writer: Arc<Mutex<()>>,
}

impl Persister {
    /// Saves `registry` into `store` from now on; `saved` is the registry generation
    /// the file already holds (0: none).
    pub fn new(store: Arc<StateStore>, registry: Registry, saved: u64) -> Self {
        Self {
            store,
            registry,
            saved: Arc::new(AtomicU64::new(saved)),
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
            let snapshot = this.registry.snapshot();
            let generation = snapshot.generation;
            this.store.save(generation, &snapshot.into_records())?;
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
}
