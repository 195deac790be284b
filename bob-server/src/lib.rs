//! The BOB server: control protocol, tunnel registry, tunnels, and streaming backends.
//!
//! # Layout
//! - [`server`] — the control listener, per-connection tasks, shutdown (`zap`, signals).
//! - [`control`] — one control connection: framing, command handlers, `start`/`stop`.
//! - [`registry`] — the global nickname → tunnel table (Java BOB's database).
//! - [`messages`] — every reply string, per dialect.
//! - [`config`] — [`config::Config`] and its defaults; [`config_file`] — the TOML file
//!   and the flag > environment > file > default layering.
//! - [`cli_docs`] — shell completions and man pages from the clap definitions.
//! - [`boot`] — tunnels declared in a tunnels file, created and started at boot.
//! - [`backend`] — the object-safe [`backend::StreamingCore`] seam and its backends
//!   (`local`: in-process network; `sam`: SAMv3 to a real router).
//! - [`tunnel`] — a running tunnel's inbound listener and outbound acceptor, and the pipe.
//! - [`state`], [`tunnels_file`], [`keyfile`] — on-disk state, tunnel definitions, key files.
//! - [`metrics`] — Prometheus text rendering and its HTTP endpoint.
//!
//! Data flow:
//! ```text
//! app --TCP--> inhost:inport --(dest line)--> Session::connect --stream--> peer tunnel
//! peer --stream--> Session::accept --> TCP connect outhost:outport --(peer dest line)--> app
//! ```
//!
//! Start a server in-process with [`server::Server::bind`] and [`server::Server::run`].

pub mod backend;
pub mod cli_docs;
pub mod config;
pub mod control;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod metrics;
pub mod registry;
pub mod server;
pub mod service;
pub mod storage;
pub mod tunnel;

pub use control::tunnel_launcher;
