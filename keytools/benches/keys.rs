//! `cargo bench -p keytools`: key generation, parsing, b32 and the vanity inner loop
//! (midstate + compress256 versus the naive full SHA-256 + base32 baseline).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use keytools::vanity::{Prefix, Searcher};
use keytools::{CryptoType, Destination, PrivateKeys, SigType};

fn generation(c: &mut Criterion) {
    let mut g = c.benchmark_group("generate");
    g.throughput(Throughput::Elements(1));
    for t in SigType::ALL {
        g.bench_function(t.name(), |b| {
            b.iter(|| PrivateKeys::generate(black_box(t), CryptoType::ElGamal).unwrap())
        });
    }
    // same-run baseline: the bare ed25519-dalek key pair (no RNG, padding or serialization)
    let mut seed = [7u8; 32];
    g.bench_function("baseline_ed25519_dalek_from_seed", |b| {
        b.iter(|| {
            seed[0] = seed[0].wrapping_add(1);
            ed25519_dalek::SigningKey::from_bytes(black_box(&seed)).verifying_key()
        })
    });
    g.bench_function("EdDSA_SHA512_Ed25519+X25519", |b| {
        b.iter(|| PrivateKeys::generate(SigType::Ed25519, CryptoType::X25519).unwrap())
    });
    g.finish();
}

fn parsing(c: &mut Criterion) {
    let k = PrivateKeys::generate(SigType::Ed25519, CryptoType::ElGamal).unwrap();
    let dest_b64 = k.destination().to_base64();
    let keys_b64 = k.to_base64();
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));
    g.bench_function("destination_base64", |b| {
        b.iter(|| Destination::from_base64(black_box(&dest_b64)).unwrap())
    });
    g.bench_function("private_keys_base64_ed25519", |b| {
        b.iter(|| PrivateKeys::from_base64(black_box(&keys_b64)).unwrap())
    });
    g.bench_function("b32", |b| b.iter(|| black_box(k.destination()).b32()));
    g.bench_function("verify_strict", |b| {
        b.iter(|| keytools::verify_strict(black_box(&dest_b64)).unwrap())
    });
    g.finish();
}

fn vanity(c: &mut Criterion) {
    const N: u64 = 100_000;
    let prefix = Prefix::new("zzzzzzzzzzzz").unwrap();
    let mut g = c.benchmark_group("vanity_candidates");
    g.throughput(Throughput::Elements(N));
    let mut fast = Searcher::new(SigType::Ed25519, CryptoType::ElGamal).unwrap();
    g.bench_function("midstate_compress256", |b| {
        b.iter(|| fast.run(black_box(&prefix), N).unwrap())
    });
    let mut naive = Searcher::new(SigType::Ed25519, CryptoType::ElGamal).unwrap();
    g.bench_function("naive_sha256_base32", |b| {
        b.iter(|| naive.run_naive(black_box(&prefix), N).unwrap())
    });
    g.finish();
}

criterion_group!(benches, generation, parsing, vanity);
criterion_main!(benches);
