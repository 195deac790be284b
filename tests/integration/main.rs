//! End-to-end tests of bob-server through real sockets, exact bytes. Every test that
//! needs no binary lives here (those that run the `bob-server` or `bobctl` binaries stay
//! with their crate).

mod bad_input;
mod clients;
mod control;
mod control_burst;
mod faults;
mod harden;
mod hostile;
mod i2pd_lifecycle;
mod lifecycle;
mod lifecycle_race;
mod multi;
mod own_i2pd;
mod proxy_http;
mod proxy_socks;
mod proxy_socks_udp;
mod relay_bounded;
mod sam_bob_i2pd;
mod sam_datagram_i2pd;
mod sam_fake_router;
mod sam_i2pd;
mod sam_slow_start;
mod shutdown;
mod stats;
mod support;
mod transcripts;
mod tunnel_local;
mod tunnels;
mod udp;
mod udp_sam_i2pd;
