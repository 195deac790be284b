//! Destination parsing (binary and base64 text); body in `keytools::fuzzing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keytools::fuzzing::destination(data));
