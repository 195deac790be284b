//! The state-dir restore: the saved registry put back at start-up ([`load`]), and the
//! tunnels that were running started again through the [`Service`] ([`restart`]).

use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use tracing::{error, info};

use super::Service;
use crate::registry::Registry;
use crate::storage::state::{StateError, StateStore};

/// Restored tunnels started at once after a restart (a router is not flooded with
/// hundreds of session requests).
const RESTORE_PARALLEL_STARTS: usize = 16;

/// What the server found in its state directory at start-up.
#[derive(Debug, Clone, Default)]
pub struct RestoreReport {
    /// the state file read
    pub path: Option<PathBuf>,
    /// nicknames put back into the registry
    pub restored: Vec<String>,
    /// those of them that were running and are started again by
    /// [`Server::run`](crate::server::Server::run)
    pub to_start: Vec<String>,
    /// problems found (each was logged); entries they concern were dropped
    pub problems: Vec<String>,
    /// where the original state file was kept when there were problems
    pub kept_aside: Option<PathBuf>,
}

/// Loads the state file into `registry`: entries come back inactive; the report names
/// those to start again. Problems are logged (never key material) and the original
/// file is kept aside before anything of it is dropped.
///
/// # Errors
/// [`StateError`] when the state file cannot be read, kept aside or rewritten.
pub fn load(store: &StateStore, registry: &Registry) -> Result<RestoreReport, StateError> {
    let path = store.path();
    let loaded = store.load()?;
    let mut report = RestoreReport {
        path: Some(path.clone()),
        problems: loaded.problems,
        kept_aside: loaded.kept_aside,
        ..RestoreReport::default()
    };
    let mut dropped = Vec::new();
    for record in &loaded.tunnels {
        match registry.restore(record) {
            Ok(start) => {
                report.restored.push(record.nickname.clone());
                if start {
                    report.to_start.push(record.nickname.clone());
                }
            }
            Err(e) => dropped.push(format!("tunnel {:?}: {e}; entry dropped", record.nickname)),
        }
    }
    if !dropped.is_empty() && report.kept_aside.is_none() {
        report.kept_aside = store.keep_aside()?;
    }
    report.problems.extend(dropped);
    for problem in &report.problems {
        // parser messages span lines; keep each problem on one log line
        let problem = problem.split_whitespace().collect::<Vec<_>>().join(" ");
        error!(file = %path.display(), "state file: {problem}");
    }
    if let Some(aside) = &report.kept_aside {
        error!(
            file = %path.display(),
            kept_aside = %aside.display(),
            "state file is damaged: the original is kept aside at {}; starting with the {} tunnel(s) that could be read",
            aside.display(),
            report.restored.len()
        );
        // Rewrite the file from what was read, so the damage is not found again.
        let snapshot = registry.snapshot();
        store.save(snapshot.generation, &snapshot.into_records())?;
    }
    info!(
        file = %path.display(),
        tunnels = report.restored.len(),
        running = report.to_start.len(),
        "registry restored from the state directory"
    );
    Ok(report)
}

/// Starts the restored tunnels that were running, then saves the registry once (a
/// tunnel that did not start is saved as stopped).
pub async fn restart(service: Arc<Service>, names: Vec<String>) {
    let starts = names.into_iter().map(|name| {
        let service = service.clone();
        async move {
            let result = service.start_tunnel(&name).await;
            (name, result)
        }
    });
    let mut done = futures::stream::iter(starts).buffer_unordered(RESTORE_PARALLEL_STARTS);
    while let Some((name, result)) = done.next().await {
        match result {
            Ok(()) => info!(nickname = %name, "restored tunnel running again"),
            Err(e) => error!(
                nickname = %name,
                reason = %e,
                "restored tunnel did not start; it stays in the registry, stopped"
            ),
        }
    }
    if !service.stopping().is_cancelled() {
        service.persist().await;
    }
}
