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
    /// the directory of the tunnel files read
    pub path: Option<PathBuf>,
    /// nicknames put back into the registry
    pub restored: Vec<String>,
    /// those of them that were running and are started again by
    /// [`Server::run`](crate::server::Server::run)
    pub to_start: Vec<String>,
    /// problems found (each was logged); entries they concern were dropped
    pub problems: Vec<String>,
    /// where damaged files (or copies of dropped entries) were kept
    pub kept_aside: Vec<PathBuf>,
}

/// Loads the tunnel files into `registry`: entries come back inactive; the report
/// names those to start again. Problems are logged (never key material) and every
/// damaged file or dropped entry is kept aside before it is removed. Then the store is
/// brought in line with the registry: entries read through a symlink or from a legacy
/// file are written as tunnel files, dropped ones removed (nothing else is written).
///
/// # Errors
/// [`StateError`] when the state cannot be read, kept aside or written.
pub fn load(store: &StateStore, registry: &Registry) -> Result<RestoreReport, StateError> {
    let path = store.path();
    let loaded = store.load()?;
    let mut report = RestoreReport {
        path: Some(path.clone()),
        problems: loaded.problems,
        kept_aside: loaded.kept_aside,
        ..RestoreReport::default()
    };
    for record in &loaded.tunnels {
        match registry.restore(record) {
            Ok(start) => {
                report.restored.push(record.nickname.clone());
                if start {
                    report.to_start.push(record.nickname.clone());
                }
            }
            Err(e) => {
                report
                    .problems
                    .push(format!("tunnel {:?}: {e}; entry dropped", record.nickname));
                report.kept_aside.push(store.keep_aside(record)?);
            }
        }
    }
    for problem in &report.problems {
        // parser messages span lines; keep each problem on one log line
        let problem = problem.split_whitespace().collect::<Vec<_>>().join(" ");
        error!(dir = %path.display(), "state: {problem}");
    }
    for aside in &report.kept_aside {
        error!(
            dir = %path.display(),
            kept_aside = %aside.display(),
            "damaged or dropped state kept aside at {}",
            aside.display(),
        );
    }
    if !report.kept_aside.is_empty() {
        error!(
            dir = %path.display(),
            "state is damaged: starting with the {} tunnel(s) that could be read",
            report.restored.len()
        );
    }
    let snapshot = registry.snapshot();
    store.save(snapshot.generation, &snapshot.into_records())?;
    info!(
        dir = %path.display(),
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
