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
fn first_line_corpus() {
    replay("first_line", 20, bob_server::fuzzing::first_line);
}

#[test]
fn sam_reply_corpus() {
    replay("sam_reply", 20, bob_server::fuzzing::sam_reply);
}

#[test]
fn udp_header_corpus() {
    replay("udp_header", 20, bob_server::fuzzing::udp_header);
}

#[test]
fn socks_udp_corpus() {
    replay("socks_udp", 20, bob_server::fuzzing::socks_udp);
}

#[test]
fn socks_handshake_corpus() {
    replay("socks_handshake", 20, bob_server::fuzzing::socks_handshake);
}
