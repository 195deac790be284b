//! Proxy tunnels: the inbound side learns the destination from a proxy protocol.

pub(super) mod http;
