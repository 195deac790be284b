//! bytes from a SAM bridge -> Reply::parse -> command -> parse, and peer lines
//! (see bob_server::fuzzing::sam_reply).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bob_server::fuzzing::sam_reply(data));
