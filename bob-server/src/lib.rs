//! The BOB server: control protocol, tunnel registry, tunnels, and streaming backends.
//!
//! # Layout
//! Folders follow the data flow, from the control port to the network:
//! - [`server`] — the control listener, per-connection tasks, shutdown (`zap`, signals),
//!   the state-dir restore and the metrics endpoint's start.
//! - [`control`] — one control connection: framing, command handlers, `start`/`stop`;
//!   [`control::messages`] holds every reply string, per dialect.
//! - [`service`] — what runs tunnels for the control connections, the state-dir restore
//!   and [`service::boot`] (tunnels declared in a tunnels file, started at boot).
//! - [`registry`] — the global nickname → tunnel table (Java BOB's database);
//!   [`registry::Entry`] is one named tunnel.
//! - [`tunnel`] — a running tunnel's inbound listener and outbound acceptor; each
//!   connection's bytes are moved by the stream's own [`backend::ByteStream::relay`].
//! - [`backend`] — the object-safe [`backend::StreamingCore`] seam and its backends
//!   ([`backend::local`]: in-process network; [`backend::sam`]: SAMv3 to a real router);
//!   [`backend::relay`] is the default socket ↔ stream copy, which `local` overrides
//!   with its zero-copy relay.
//! - [`config`] — [`config::Config`] and its defaults; [`config::file`] — the TOML file
//!   and the flag > environment > file > default layering; [`config::tunnels`] — the
//!   tunnels file.
//! - [`storage`] — on disk: [`storage::state`] (the registry across restarts) and
//!   [`storage::keyfile`] (key files).
//! - [`metrics`] — Prometheus text rendering and its HTTP endpoint.
//! - The binary (`main.rs`, feature `cli`) holds the command line; its completions and
//!   man page come from the `cli-docs` crate. `bobctl` is its own crate, on `bob-client`.
//!
//! Data flow:
//! ```text
//! app --TCP--> inhost:inport --(dest line)--> Session::connect --stream--> peer tunnel
//! peer --stream--> Session::accept --> TCP connect outhost:outport --(peer dest line)--> app
//! ```
//!
//! Start a server in-process with [`server::Server::bind`] and [`server::Server::run`].

#![warn(missing_docs)]

pub mod backend;
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

pub use service::tunnel_launcher;
