//! The service layer: what runs tunnels for the control connections, the state-dir
//! restore and the tunnels-file boot.

pub mod boot;
