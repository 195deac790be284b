//! Starting and stopping entries: the two halves of `start` and `stop`, and shutdown.

use super::*;

impl Registry {
    /// `start`, first half: checks Java's preconditions, marks the entry STARTING and
    /// snapshots what the tunnel needs.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`], [`RegistryError::NoKeys`], [`RegistryError::NoPort`],
    /// [`RegistryError::Active`] (checked in this order, like Java).
    /// `cancel` is what `stop` cancels to give the start up.
    pub fn begin_start(
        &self,
        nickname: &str,
        cancel: CancellationToken,
    ) -> Result<(TunnelSpec, StartTicket), RegistryError> {
        let mut state = self.lock();
        let entry = state
            .entries
            .get_mut(nickname)
            .ok_or(RegistryError::NotFound)?;
        let keys = entry.keys.clone().ok_or(RegistryError::NoKeys)?;
        if entry.kind.needs_a_port() && entry.inport.is_none() && entry.outport.is_none() {
            return Err(RegistryError::NoPort);
        }
        if entry.is_active() {
            return Err(RegistryError::Active);
        }
        let (server_options, options) = entry
            .properties
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .partition(|(k, _)| is_server_option(k));
        let spec = TunnelSpec {
            nickname: entry.nickname.clone(),
            keys,
            options,
            server_options,
            inbound: entry.inport.map(|port| Endpoint {
                host: entry.inhost.clone(),
                port,
            }),
            outbound: entry.outport.map(|port| Endpoint {
                host: entry.outhost.clone(),
                port,
            }),
            quiet: entry.quiet,
        };
        entry.phase = Phase::Starting(cancel);
        Ok((
            spec,
            StartTicket {
                nickname: entry.nickname.clone(),
                id: entry.id,
                kind: entry.kind,
            },
        ))
    }

    /// `start`, second half: records the outcome: RUNNING, or back to inactive with
    /// the reason kept (`Err`).
    ///
    /// Returns the tunnel back if it must not run: the entry was stopped while
    /// starting (it is STOPPING: the caller stops the tunnel, then calls
    /// [`Registry::finish_cancelled_start`]) or vanished.
    pub fn finish_start(
        &self,
        ticket: &StartTicket,
        outcome: Result<Box<dyn ActiveTunnel>, String>,
    ) -> Option<Box<dyn ActiveTunnel>> {
        let mut state = self.lock();
        let changed = match state.entries.get_mut(&ticket.nickname) {
            Some(entry) if entry.id == ticket.id && matches!(entry.phase, Phase::Starting(_)) => {
                let was = entry.autostart;
                match outcome {
                    Ok(tunnel) => {
                        entry.stats = tunnel.stats();
                        entry.phase = Phase::Running(tunnel);
                        entry.autostart = true;
                        entry.last_error = None;
                    }
                    Err(reason) => {
                        entry.phase = Phase::Idle;
                        entry.autostart = false;
                        entry.last_error = Some(StartErrorRecord {
                            reason,
                            at: std::time::SystemTime::now(),
                        });
                    }
                }
                was != entry.autostart
            }
            Some(entry) if entry.id == ticket.id && matches!(entry.phase, Phase::Stopping) => {
                return match outcome {
                    Ok(tunnel) => Some(tunnel),
                    Err(_) => {
                        entry.phase = Phase::Idle;
                        None
                    }
                };
            }
            _ => return outcome.ok(),
        };
        if changed {
            state.touch(&ticket.nickname);
        }
        None
    }

    /// A start stopped while it ran has wound down (its tunnel, if it came up, is
    /// stopped): the STOPPING entry is inactive again.
    pub fn finish_cancelled_start(&self, ticket: &StartTicket) {
        let mut state = self.lock();
        if let Some(entry) = state.entries.get_mut(&ticket.nickname)
            && entry.id == ticket.id
            && matches!(entry.phase, Phase::Stopping)
        {
            entry.phase = Phase::Idle;
        }
    }

    /// `start` given up because the server is shutting down: the entry is inactive
    /// again but keeps its "was running" flag (it starts again after a restart).
    pub fn abandon_start(&self, ticket: &StartTicket) {
        let mut state = self.lock();
        if let Some(entry) = state.entries.get_mut(&ticket.nickname)
            && entry.id == ticket.id
            && matches!(entry.phase, Phase::Starting(_) | Phase::Stopping)
        {
            entry.phase = Phase::Idle;
        }
    }

    /// `stop`, first half: marks a RUNNING or STARTING entry STOPPING. A running
    /// tunnel is handed out to be stopped; a pending start is cancelled and its task
    /// brings the entry to inactive when it has wound down.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`], [`RegistryError::Inactive`] unless RUNNING or
    /// STARTING.
    pub fn begin_stop(&self, nickname: &str) -> Result<StopWork, RegistryError> {
        let mut state = self.lock();
        let entry = state
            .entries
            .get_mut(nickname)
            .ok_or(RegistryError::NotFound)?;
        if !matches!(entry.phase, Phase::Running(_) | Phase::Starting(_)) {
            return Err(RegistryError::Inactive);
        }
        let work = match std::mem::replace(&mut entry.phase, Phase::Stopping) {
            Phase::Running(tunnel) => StopWork::Running(
                tunnel,
                StopTicket {
                    nickname: entry.nickname.clone(),
                    id: entry.id,
                },
            ),
            Phase::Starting(cancel) => {
                cancel.cancel();
                StopWork::Starting
            }
            Phase::Idle | Phase::Stopping => unreachable!("checked above under the same lock"),
        };
        let changed = std::mem::replace(&mut entry.autostart, false);
        if changed {
            state.touch(nickname);
        }
        Ok(work)
    }

    /// `stop`, second half: the tunnel is down; the entry is inactive again.
    pub fn finish_stop(&self, ticket: StopTicket) {
        let mut state = self.lock();
        if let Some(entry) = state.entries.get_mut(&ticket.nickname)
            && entry.id == ticket.id
            && matches!(entry.phase, Phase::Stopping)
        {
            entry.phase = Phase::Idle;
        }
    }

    /// Shutdown: marks every RUNNING entry STOPPING and hands out all tunnels. The
    /// entries keep their "was running" flag (they start again after a restart).
    pub fn begin_stop_all(&self) -> Vec<(Box<dyn ActiveTunnel>, StopTicket)> {
        let mut state = self.lock();
        let mut out = Vec::new();
        for entry in state.entries.values_mut() {
            if matches!(entry.phase, Phase::Running(_))
                && let Phase::Running(tunnel) = std::mem::replace(&mut entry.phase, Phase::Stopping)
            {
                out.push((
                    tunnel,
                    StopTicket {
                        nickname: entry.nickname.clone(),
                        id: entry.id,
                    },
                ));
            }
        }
        out
    }
}
