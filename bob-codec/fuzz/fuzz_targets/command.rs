//! bytes -> LineCodec -> Command::parse -> encode -> parse (see bob_codec::fuzzing::command).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bob_codec::fuzzing::command(data));
