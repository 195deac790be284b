//! The SAM health check: emissary's SAM server is a task of its own, and when it dies
//! (an inbound Datagram2 panics it in 0.4.0) the router keeps running without it. Every
//! [`Quirks::health_interval`] the check connects and says `HELLO`, logging an error for
//! every failure; after [`Quirks::health_failures`] failures in a row it cancels
//! `failed`, and the server stops with an error (exit status 1) so that its supervisor
//! restarts it. An in-process restart is not possible: emissary's tasks outlive its
//! `Router`, keep its ports bound, and a second router on them panics (measured).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use super::quirks::Quirks;
use super::router::RouterStatus;
use crate::backend::sam::{SamConfig, SamCore};

/// Starts the check for the router whose SAM bridge `sam` names.
pub(crate) fn spawn(
    sam: SamConfig,
    quirks: &'static Quirks,
    status: Arc<RouterStatus>,
    failed: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut sam = sam;
        sam.command_timeout = quirks.health_interval;
        let probe = SamCore::new(sam);
        let mut failures = 0u32;
        let mut tick = tokio::time::interval(quirks.health_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match probe.probe().await {
                Ok(()) => {
                    if failures > 0 {
                        info!("the embedded router's SAM server answers again");
                    }
                    failures = 0;
                    status.sam_healthy.store(true, Ordering::Relaxed);
                }
                Err(e) => {
                    failures += 1;
                    status.sam_healthy.store(false, Ordering::Relaxed);
                    error!(
                        failures,
                        "the embedded router's SAM server does not answer: {e}"
                    );
                    if failures >= quirks.health_failures {
                        error!(
                            "the embedded router's SAM server is gone; its tunnels cannot \
                             work: stopping bob-server"
                        );
                        failed.cancel();
                        return;
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::embedded::quirks::EMISSARY;

    #[tokio::test(start_paused = true)]
    async fn a_dead_sam_port_fails_loudly() {
        // a port nothing listens on
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let status = Arc::new(RouterStatus::default());
        status.sam_healthy.store(true, Ordering::Relaxed);
        let failed = CancellationToken::new();
        let task = spawn(
            SamConfig::new(format!("127.0.0.1:{port}")),
            &EMISSARY,
            Arc::clone(&status),
            failed.clone(),
        );
        let started = tokio::time::Instant::now();
        tokio::time::timeout(EMISSARY.health_interval * 10, failed.cancelled())
            .await
            .expect("failure signalled");
        assert!(started.elapsed() >= EMISSARY.health_interval * (EMISSARY.health_failures - 1));
        assert!(!status.sam_healthy.load(Ordering::Relaxed));
        task.abort();
    }
}
