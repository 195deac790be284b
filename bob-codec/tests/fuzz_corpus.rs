//! Replays the committed cargo-fuzz seed corpus (`fuzz/corpus/<target>/*`) through the
//! target bodies on stable Rust, so every `cargo test` checks them.

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str, body: fn(&[u8])) {
    let files = corpus(target);
    assert!(files.len() >= 10, "seed corpus of {target} is too small");
    for file in files {
        let data = std::fs::read(&file).expect("read corpus file");
        body(&data);
    }
}

#[test]
fn command_corpus() {
    replay("command", bob_codec::fuzzing::command);
}

#[test]
fn reply_corpus() {
    replay("reply", bob_codec::fuzzing::reply);
}
