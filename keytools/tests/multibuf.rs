//! Every multi-buffer SHA-256 path this CPU has, lane by lane, against a plain SHA-256 of
//! the whole message (no midstate, no shared code): the scalar fallbacks ("single", the
//! pre-multi-buffer loop, and "portable", the lane code on u32) and each SIMD path.

use keytools::vanity::multibuf::{BATCH, Hasher, Job, Path};
use sha2::{Digest, Sha256};

/// A 391-byte message like an Ed25519 destination, its job, and the reference digest of
/// candidate `c` (full SHA-256 over the whole message: no midstate, no shared code).
fn fixture(seed: u8) -> (Vec<u8>, Job) {
    let msg: Vec<u8> = (0..391u32)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    let mut st = [
        0x6a09_e667,
        0xbb67_ae85,
        0x3c6e_f372,
        0xa54f_f53a,
        0x510e_527f,
        0x9b05_688c,
        0x1f83_d9ab,
        0x5be0_cd19,
    ];
    let head: Vec<[u8; 64]> = msg[..320]
        .chunks_exact(64)
        .map(|c| c.try_into().unwrap())
        .collect();
    sha2::block_api::compress256(&mut st, &head);
    let mut t = msg[320..].to_vec();
    t.push(0x80);
    t.resize(120, 0);
    t.extend_from_slice(&(391u64 * 8).to_be_bytes());
    let tail = [t[..64].try_into().unwrap(), t[64..].try_into().unwrap()];
    (msg, Job::new(st, tail))
}

fn reference(msg: &[u8], c: u64) -> [u32; 8] {
    let mut m = msg.to_vec();
    m[320..328].copy_from_slice(&c.to_le_bytes());
    let d = Sha256::digest(&m);
    std::array::from_fn(|i| u32::from_be_bytes(d[4 * i..4 * i + 4].try_into().unwrap()))
}

#[test]
fn every_available_path_matches_the_reference_lane_by_lane() {
    let paths = Path::available();
    assert!(paths.contains(&Path::Single) && paths.contains(&Path::Portable));
    for seed in [0u8, 0x5a] {
        let (msg, job) = fixture(seed);
        // counters that exercise both words, including the top of the low word
        for counter in [0u64, 16, 0xffff_fff0, 0x1234_5678_9abc_def0, u64::MAX - 15] {
            let expect: Vec<[u32; 8]> = (0..BATCH as u64)
                .map(|l| reference(&msg, counter + l))
                .collect();
            for &p in &paths {
                let mut out = [[0u32; BATCH]; 8];
                Hasher::new(p).unwrap().batch(&job, counter, &mut out);
                for (lane, e) in expect.iter().enumerate() {
                    let got: [u32; 8] = std::array::from_fn(|w| out[w][lane]);
                    assert_eq!(&got, e, "{p} lane {lane} counter {counter:#x}");
                }
            }
        }
    }
}

#[test]
fn unaligned_counters_are_rounded_down() {
    let (msg, job) = fixture(1);
    let mut out = [[0u32; BATCH]; 8];
    Hasher::new(Path::Portable)
        .unwrap()
        .batch(&job, 35, &mut out);
    assert_eq!(out[0][0], reference(&msg, 32)[0]);
}

#[test]
fn names_round_trip_and_best_is_available() {
    for p in Path::ALL {
        assert_eq!(Path::from_name(p.name()), Some(p));
    }
    assert!(Path::best().is_available());
    assert_eq!(Path::from_name("nope"), None);
}

/// Report which paths this machine ran, so a test log shows the coverage.
#[test]
fn report_paths() {
    let names: Vec<_> = Path::available().iter().map(|p| p.name()).collect();
    eprintln!("multi-buffer paths available here: {}", names.join(", "));
}

/// Run-time detection agrees with the kernel's view of the CPU, so a detection bug cannot
/// silently drop every SIMD path (and with it the lane tests above).
#[test]
fn detection_matches_proc_cpuinfo() {
    let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else {
        return;
    };
    let flags: Vec<&str> = info
        .lines()
        .find(|l| l.starts_with("flags"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    let has = |f: &str| flags.contains(&f);
    if cfg!(target_arch = "x86_64") {
        assert_eq!(Path::ShaNiX2.is_available(), has("sha_ni") && has("sse4_1"));
        assert_eq!(Path::Avx2X8.is_available(), has("avx2"));
        assert_eq!(Path::Avx512X16.is_available(), has("avx512f"));
    }
}
