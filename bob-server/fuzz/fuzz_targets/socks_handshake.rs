//! bytes to a SOCKS proxy tunnel -> the SOCKS4/4a/5 handshake
//! (see bob_server::fuzzing::socks_handshake).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bob_server::fuzzing::socks_handshake(data));
