//! bytes to a client tunnel's inport -> first-line reader -> destination parse
//! (see bob_server::fuzzing::first_line).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bob_server::fuzzing::first_line(data));
