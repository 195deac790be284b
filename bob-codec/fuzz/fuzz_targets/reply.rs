//! line -> Reply::decode -> encode -> decode (see bob_codec::fuzzing::reply).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bob_codec::fuzzing::reply(data));
