//! a datagram to a SOCKS5 UDP ASSOCIATE relay socket -> the SOCKS UDP header
//! (see bob_server::fuzzing::socks_udp).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bob_server::fuzzing::socks_udp(data));
