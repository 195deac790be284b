//! The SAM health check: emissary's SAM server is a task of its own, and when it dies
//! (an inbound Datagram2 panics it in 0.4.0) the router keeps running without it. Every
//! [`Quirks::health_interval`] the check connects and says `HELLO`; after
//! [`Quirks::health_failures`] failures in a row it restarts the router on the same SAM
//! port (the SAM backend's sessions then reconnect by themselves), and logs an error
//! for every failed check, so the outage is never silent.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{error, info};

use super::quirks::Quirks;
use super::router::RouterStatus;
use crate::backend::sam::{SamConfig, SamCore};

/// Starts the check for the router whose SAM bridge `sam` names.
pub(crate) fn spawn(
    sam: SamConfig,
    quirks: &'static Quirks,
    status: Arc<RouterStatus>,
    restart: mpsc::Sender<()>,
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
                        failures = 0;
                        if restart.send(()).await.is_err() {
                            error!("the embedded router is gone; its tunnels cannot work");
                            return;
                        }
                    }
                }
            }
        }
    })
}
