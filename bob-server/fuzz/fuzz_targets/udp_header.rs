//! a datagram to a UDP tunnel in header mode -> header parse
//! (see bob_server::fuzzing::udp_header).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bob_server::fuzzing::udp_header(data));
