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
    assert!(files.len() >= 20, "seed corpus of {target} is too small");
    for file in files {
        let data = std::fs::read(&file).expect("read corpus file");
        body(&data);
    }
}

#[test]
fn first_line_corpus() {
    replay("first_line", bob_server::fuzzing::first_line);
}

#[test]
fn sam_reply_corpus() {
    replay("sam_reply", bob_server::fuzzing::sam_reply);
}
