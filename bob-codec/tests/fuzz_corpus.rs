//! Replays the committed cargo-fuzz seed corpus (`fuzz/corpus/<target>/*`) through the
//! target bodies on stable Rust, so every `cargo test` checks them.

use std::path::Path;

fn replay(target: &str, min: usize, body: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    bob_codec::fuzzing::replay_corpus(&dir, min, body);
}

#[test]
fn command_corpus() {
    replay("command", 10, bob_codec::fuzzing::command);
}

#[test]
fn reply_corpus() {
    replay("reply", 10, bob_codec::fuzzing::reply);
}
