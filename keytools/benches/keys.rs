//! `cargo bench -p keytools`: key generation, parsing, b32 and the vanity inner loop
//! (every multi-buffer SHA-256 path versus the single-stream loop and the naive full SHA-256 +
//! base32 baseline, on one thread and on two).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use keytools::vanity::{self, Path, SearchOptions, Searcher};
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
    const N: u64 = 1 << 16;
    let matcher = vanity::bench_matcher();
    let mut g = c.benchmark_group("vanity_candidates");
    g.throughput(Throughput::Elements(N));
    // every hashing path this CPU has ("single" is the pre-multi-buffer loop), and the naive
    // full-SHA-256-and-base32 baseline; one thread each
    for path in Path::available() {
        let mut w = Searcher::with_path(SigType::Ed25519, CryptoType::ElGamal, path).unwrap();
        g.bench_function(path.name(), |b| {
            b.iter(|| w.run(black_box(&matcher), N).unwrap())
        });
    }
    let mut naive = Searcher::new(SigType::Ed25519, CryptoType::ElGamal).unwrap();
    g.bench_function("naive_sha256_base32", |b| {
        b.iter(|| naive.run_naive(black_box(&matcher), N).unwrap())
    });
    g.finish();

    // the whole search on 2 threads (what `bob-keygen vanity -j 2` runs), best path vs single
    let mut g = c.benchmark_group("vanity_2_threads");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1_000_000));
    for path in [Path::Single, Path::best()] {
        let opts = SearchOptions {
            threads: 2,
            path: Some(path),
            ..SearchOptions::new(2)
        };
        g.bench_function(path.name(), |b| {
            b.iter_custom(|iters| {
                // candidates/s over iters × 0.2 s, reported as time per 1 M candidates
                let rate =
                    vanity::measure_rate(&matcher, &opts, Duration::from_millis(200 * iters))
                        .unwrap();
                Duration::from_secs_f64(iters as f64 * 1e6 / rate)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, generation, parsing, vanity);
criterion_main!(benches);
