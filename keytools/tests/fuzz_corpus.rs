//! Replays the committed cargo-fuzz seed corpus through the fuzz-target bodies on stable Rust.

use std::fs;
use std::path::Path;

fn replay(target: &str, body: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = fs::read(&path).unwrap();
        body(&data);
        n += 1;
    }
    n
}

#[test]
fn destination_corpus() {
    let n = replay("destination", keytools::fuzzing::destination);
    assert!(n >= 20, "only {n} seeds");
}

#[test]
fn private_keys_corpus() {
    let n = replay("private_keys", keytools::fuzzing::private_keys);
    assert!(n >= 27, "only {n} seeds");
}

#[test]
fn corpus_seeds_really_parse() {
    // the replay must exercise the success paths, not only the error paths
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/private_keys");
    let parsed = fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            let p = e.as_ref().unwrap().path();
            p.extension().is_some_and(|x| x == "bin")
                && keytools::PrivateKeys::from_bytes(&fs::read(&p).unwrap()).is_ok()
        })
        .count();
    assert_eq!(parsed, 9);
}
