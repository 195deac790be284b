//! End-to-end tests of bob-server through real sockets, exact bytes.

mod bad_input;
mod clients;
mod control;
mod faults;
mod hostile;
mod lifecycle;
mod multi;
mod shutdown;
mod tunnels;
