//! The BOB server: control protocol, tunnel registry, tunnels, and streaming backends.
//!
//! # Layout
//! - [`backend`]: the object-safe [`backend::StreamingCore`] seam and its backends
//!   (`local`: in-process network; `sam`: SAMv3 to a real router).
//! - [`tunnel`]: a running tunnel's inbound listener and outbound acceptor, and the pipe.
//!
//! Data flow:
//! ```text
//! app --TCP--> inhost:inport --(dest line)--> Session::connect --stream--> peer tunnel
//! peer --stream--> Session::accept --> TCP connect outhost:outport --(peer dest line)--> app
//! ```

pub mod backend;
pub mod keyfile;
pub mod metrics;
pub mod state;
pub mod tunnel;
pub mod tunnels_file;
