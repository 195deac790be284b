//! A running tunnel: its session, the inbound listener and the outbound acceptor.
//!
//! Interface between the control side (registry) and the data path:
//! ```text
//! RunningTunnel::start(core, spec, limits).await -> Result<RunningTunnel, StartError>
//! running.stop().await            // closes listener + session, ends live connections
//! ```
