//! Multi-buffer SHA-256 for the vanity search: many candidates hashed at once.
//!
//! Every candidate of one search shares the SHA-256 midstate of the destination's first five
//! blocks and two tail blocks that differ only in the first two words of the first one (the
//! 8-byte counter). One call hashes [`BATCH`] consecutive counters and returns the eight
//! state words of each.
//!
//! Paths, chosen at run time by CPU feature ([`Path::best`]):
//! - [`Path::Single`]: `sha2::block_api::compress256`, one candidate at a time (the crate
//!   picks SHA-NI when present, else software) — the old search loop, kept as the baseline.
//! - [`Path::Portable`]: the same multi-lane round code as the SIMD paths on plain `u32`
//!   (safe Rust, any CPU); the scalar fallback the lane tests compare every path with.
//! - [`Path::ShaNiX2`], [`Path::ShaNiX4`]: 2 or 4 independent SHA-NI streams interleaved, so
//!   the latency of `sha256rnds2` of one stream is hidden behind the others.
//! - [`Path::Avx2X8`], [`Path::Avx512X16`]: 8 or 16 candidates in the lanes of one AVX2 /
//!   AVX-512 register (AVX-512 uses `vprord` and `vpternlogd`).
//!
//! The second tail block is the same for every candidate, so its message schedule (plus the
//! round constants) is computed once per search.
//!
//! This is the only module of the workspace with `unsafe`: calling a `#[target_feature]`
//! function (allowed only after the feature was detected, which [`Hasher::new`] enforces) and
//! storing SIMD registers to arrays. Each block has its `// SAFETY:` comment. No crate offers
//! a many-messages-at-once SHA-256 with a shared midstate, hence the hand-written rounds.
#![allow(unsafe_code)]

/// Candidates hashed by one [`Hasher::batch`] call.
pub const BATCH: usize = 16;

/// The result of one batch: `out[word][lane]`, state words `a..h` (the big-endian words of
/// the SHA-256 digest) of candidate `counter + lane`.
pub type Batch = [[u32; BATCH]; 8];

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// The constant inputs of one search.
#[derive(Clone, Debug)]
pub struct Job {
    midstate: [u32; 8],
    /// the two tail blocks as bytes (for [`Path::Single`])
    tail: [[u8; 64]; 2],
    /// words of the first tail block; words 0 and 1 are replaced by the counter
    block_a: [u32; 16],
    /// K[i] + W[i] of the second (constant) tail block
    kw_b: [u32; 64],
}

impl Job {
    /// `midstate`: SHA-256 state after the constant head; `tail`: the two last blocks
    /// (padding included); the counter goes little-endian into bytes 0..8 of `tail[0]`.
    pub fn new(midstate: [u32; 8], tail: [[u8; 64]; 2]) -> Self {
        let words = |b: &[u8; 64]| -> [u32; 16] {
            let mut w = [0u32; 16];
            for (i, c) in b.chunks_exact(4).enumerate() {
                w[i] = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
            }
            w
        };
        let block_a = words(&tail[0]);
        let mut w = [0u32; 64];
        w[..16].copy_from_slice(&words(&tail[1]));
        for i in 16..64 {
            w[i] = ssig1(w[i - 2])
                .wrapping_add(w[i - 7])
                .wrapping_add(ssig0(w[i - 15]))
                .wrapping_add(w[i - 16]);
        }
        let mut kw_b = [0u32; 64];
        for i in 0..64 {
            kw_b[i] = K[i].wrapping_add(w[i]);
        }
        Self {
            midstate,
            tail,
            block_a,
            kw_b,
        }
    }

    /// The first two message words for `counter` (its little-endian bytes read big-endian).
    fn counter_words(counter: u64) -> (u32, u32) {
        (
            (counter as u32).swap_bytes(),
            ((counter >> 32) as u32).swap_bytes(),
        )
    }
}

fn ssig0(x: u32) -> u32 {
    x.rotate_right(7) ^ x.rotate_right(18) ^ (x >> 3)
}

fn ssig1(x: u32) -> u32 {
    x.rotate_right(17) ^ x.rotate_right(19) ^ (x >> 10)
}

/// A way to hash a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Path {
    /// `sha2`'s `compress256`, one candidate at a time (the pre-multi-buffer loop)
    Single,
    /// the multi-lane round code on plain `u32` (no intrinsics)
    Portable,
    /// two interleaved SHA-NI streams
    ShaNiX2,
    /// four interleaved SHA-NI streams
    ShaNiX4,
    /// eight lanes of AVX2
    Avx2X8,
    /// sixteen lanes of AVX-512
    Avx512X16,
}

impl Path {
    /// Every path, available here or not.
    pub const ALL: [Self; 6] = [
        Self::Single,
        Self::Portable,
        Self::ShaNiX2,
        Self::ShaNiX4,
        Self::Avx2X8,
        Self::Avx512X16,
    ];

    /// The name used by `--engine` and in benchmark output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::Portable => "portable",
            Self::ShaNiX2 => "sha-ni-x2",
            Self::ShaNiX4 => "sha-ni-x4",
            Self::Avx2X8 => "avx2-x8",
            Self::Avx512X16 => "avx512-x16",
        }
    }

    /// The path named `name` (see [`Path::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether this CPU can run the path.
    pub fn is_available(self) -> bool {
        match self {
            Self::Single | Self::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Self::ShaNiX2 | Self::ShaNiX4 => {
                std::arch::is_x86_feature_detected!("sha")
                    && std::arch::is_x86_feature_detected!("sse4.1")
                    && std::arch::is_x86_feature_detected!("ssse3")
            }
            #[cfg(target_arch = "x86_64")]
            Self::Avx2X8 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Self::Avx512X16 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The paths this CPU can run.
    pub fn available() -> Vec<Self> {
        Self::ALL.into_iter().filter(|p| p.is_available()).collect()
    }

    /// The fastest available path. Order measured on an Intel Xeon with SHA-NI and AVX-512
    /// (see `keytools/benches/RESULTS.md`): AVX-512 ×16, SHA-NI ×4, SHA-NI ×2, AVX2 ×8, single.
    pub fn best() -> Self {
        [
            Self::Avx512X16,
            Self::ShaNiX4,
            Self::ShaNiX2,
            Self::Avx2X8,
            Self::Single,
        ]
        .into_iter()
        .find(|p| p.is_available())
        .unwrap_or(Self::Single)
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A [`Path`] known to be available on this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hasher(Path);

impl Hasher {
    /// `None` if the CPU lacks the features `path` needs.
    pub fn new(path: Path) -> Option<Self> {
        path.is_available().then_some(Self(path))
    }

    /// The path.
    pub fn path(self) -> Path {
        self.0
    }

    /// Hashes candidates `counter .. counter + BATCH` (`counter` is rounded down to a multiple
    /// of [`BATCH`], so the low counter word never carries inside a batch).
    pub fn batch(self, job: &Job, counter: u64, out: &mut Batch) {
        let counter = counter & !(BATCH as u64 - 1);
        match self.0 {
            Path::Single => single(job, counter, out),
            Path::Portable => portable::batch(job, counter, out),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a Hasher holds a SHA-NI path only if `is_available` found sha, sse4.1
            // and ssse3 on this CPU (Hasher::new is the only constructor).
            Path::ShaNiX2 => unsafe { shani::batch::<2>(job, counter, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Path::ShaNiX4 => unsafe { shani::batch::<4>(job, counter, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a Hasher holds Avx2X8 only if avx2 was detected.
            Path::Avx2X8 => unsafe { avx2::batch(job, counter, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a Hasher holds Avx512X16 only if avx512f was detected.
            Path::Avx512X16 => unsafe { avx512::batch(job, counter, out) },
            #[cfg(not(target_arch = "x86_64"))]
            _ => single(job, counter, out),
        }
    }
}

// `lane` indexes the counter and the output columns alike
#[allow(clippy::needless_range_loop)]
fn single(job: &Job, counter: u64, out: &mut Batch) {
    let mut blocks = job.tail;
    for lane in 0..BATCH {
        blocks[0][..8].copy_from_slice(&(counter + lane as u64).to_le_bytes());
        let mut st = job.midstate;
        sha2::block_api::compress256(&mut st, &blocks);
        for (w, v) in st.into_iter().enumerate() {
            out[w][lane] = v;
        }
    }
}

/// The two-block multi-lane compression, written once for every lane type. Expects in scope:
/// `V`, `LANES`, `add`, `set1`, `bsig0`, `bsig1`, `ssig0v`, `ssig1v`, `ch`, `maj`,
/// `from_lanes(&[u32; LANES]) -> V` and `store(V, &mut [u32]) `.
macro_rules! lanes_batch {
    ($($feature:literal)?) => {
        $(#[target_feature(enable = $feature)])?
        pub(super) fn batch(job: &Job, counter: u64, out: &mut Batch) {
            let (_, w1) = Job::counter_words(counter);
            for chunk in 0..BATCH / LANES {
                let mut w0 = [0u32; LANES];
                for (i, x) in w0.iter_mut().enumerate() {
                    *x = Job::counter_words(counter + (chunk * LANES + i) as u64).0;
                }
                let mut w = [set1(0); 16];
                w[0] = from_lanes(&w0);
                w[1] = set1(w1);
                for i in 2..16 {
                    w[i] = set1(job.block_a[i]);
                }
                let m = job.midstate;
                let mid = [
                    set1(m[0]), set1(m[1]), set1(m[2]), set1(m[3]),
                    set1(m[4]), set1(m[5]), set1(m[6]), set1(m[7]),
                ];
                let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = mid;

                // K[i] + W[i] of the first block, extending the schedule in place (i >= 16)
                macro_rules! kw_a {
                    ($i:expr) => {{
                        let i: usize = $i;
                        if i >= 16 {
                            w[i % 16] = add(
                                add(ssig1v(w[(i - 2) % 16]), w[(i - 7) % 16]),
                                add(ssig0v(w[(i - 15) % 16]), w[i % 16]),
                            );
                        }
                        add(set1(K[i]), w[i % 16])
                    }};
                }
                macro_rules! round {
                    ($a:ident, $b:ident, $c:ident, $d:ident,
                     $e:ident, $f:ident, $g:ident, $h:ident, $kw:expr) => {
                        let t1 = add(add($h, bsig1($e)), add(ch($e, $f, $g), $kw));
                        $d = add($d, t1);
                        $h = add(t1, add(bsig0($a), maj($a, $b, $c)));
                    };
                }
                macro_rules! rounds8 {
                    ($kw:ident, $base:expr) => {
                        round!(a, b, c, d, e, f, g, h, $kw!($base));
                        round!(h, a, b, c, d, e, f, g, $kw!($base + 1));
                        round!(g, h, a, b, c, d, e, f, $kw!($base + 2));
                        round!(f, g, h, a, b, c, d, e, $kw!($base + 3));
                        round!(e, f, g, h, a, b, c, d, $kw!($base + 4));
                        round!(d, e, f, g, h, a, b, c, $kw!($base + 5));
                        round!(c, d, e, f, g, h, a, b, $kw!($base + 6));
                        round!(b, c, d, e, f, g, h, a, $kw!($base + 7));
                    };
                }
                macro_rules! rounds64 {
                    ($kw:ident) => {
                        rounds8!($kw, 0);
                        rounds8!($kw, 8);
                        rounds8!($kw, 16);
                        rounds8!($kw, 24);
                        rounds8!($kw, 32);
                        rounds8!($kw, 40);
                        rounds8!($kw, 48);
                        rounds8!($kw, 56);
                    };
                }
                rounds64!(kw_a);
                let s1 = [
                    add(a, mid[0]), add(b, mid[1]), add(c, mid[2]), add(d, mid[3]),
                    add(e, mid[4]), add(f, mid[5]), add(g, mid[6]), add(h, mid[7]),
                ];
                [a, b, c, d, e, f, g, h] = s1;
                macro_rules! kw_b {
                    ($i:expr) => {
                        set1(job.kw_b[$i])
                    };
                }
                rounds64!(kw_b);
                let fin = [
                    add(a, s1[0]), add(b, s1[1]), add(c, s1[2]), add(d, s1[3]),
                    add(e, s1[4]), add(f, s1[5]), add(g, s1[6]), add(h, s1[7]),
                ];
                for (word, v) in fin.into_iter().enumerate() {
                    store(v, &mut out[word][chunk * LANES..(chunk + 1) * LANES]);
                }
            }
        }
    };
}

/// One lane on `u32`: the scalar fallback, and the reference the SIMD paths are tested with.
mod portable {
    use super::{BATCH, Batch, Job, K};

    type V = u32;
    const LANES: usize = 1;

    fn add(a: V, b: V) -> V {
        a.wrapping_add(b)
    }
    fn set1(x: u32) -> V {
        x
    }
    fn from_lanes(x: &[u32; LANES]) -> V {
        x[0]
    }
    fn store(v: V, out: &mut [u32]) {
        out[0] = v;
    }
    fn bsig0(a: V) -> V {
        a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22)
    }
    fn bsig1(e: V) -> V {
        e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25)
    }
    fn ssig0v(x: V) -> V {
        super::ssig0(x)
    }
    fn ssig1v(x: V) -> V {
        super::ssig1(x)
    }
    fn ch(e: V, f: V, g: V) -> V {
        (e & f) ^ (!e & g)
    }
    fn maj(a: V, b: V, c: V) -> V {
        (a & b) ^ (a & c) ^ (b & c)
    }

    lanes_batch!();
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BATCH, Batch, Job, K};

    type V = __m256i;
    const LANES: usize = 8;

    #[inline]
    #[target_feature(enable = "avx2")]
    fn add(a: V, b: V) -> V {
        _mm256_add_epi32(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    fn set1(x: u32) -> V {
        _mm256_set1_epi32(x as i32)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    fn from_lanes(x: &[u32; LANES]) -> V {
        let x = x.map(|v| v as i32);
        _mm256_setr_epi32(x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7])
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    fn store(v: V, out: &mut [u32]) {
        assert_eq!(out.len(), LANES);
        // SAFETY: `out` is LANES = 8 u32 = 32 writable bytes (checked above); storeu has no
        // alignment requirement.
        unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), v) }
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    fn ror<const R: i32, const L: i32>(x: V) -> V {
        _mm256_or_si256(_mm256_srli_epi32::<R>(x), _mm256_slli_epi32::<L>(x))
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    fn xor3(a: V, b: V, c: V) -> V {
        _mm256_xor_si256(_mm256_xor_si256(a, b), c)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    fn bsig0(a: V) -> V {
        xor3(ror::<2, 30>(a), ror::<13, 19>(a), ror::<22, 10>(a))
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    fn bsig1(e: V) -> V {
        xor3(ror::<6, 26>(e), ror::<11, 21>(e), ror::<25, 7>(e))
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    fn ssig0v(x: V) -> V {
        xor3(ror::<7, 25>(x), ror::<18, 14>(x), _mm256_srli_epi32::<3>(x))
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    fn ssig1v(x: V) -> V {
        xor3(
            ror::<17, 15>(x),
            ror::<19, 13>(x),
            _mm256_srli_epi32::<10>(x),
        )
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    fn ch(e: V, f: V, g: V) -> V {
        // g ^ (e & (f ^ g))
        _mm256_xor_si256(g, _mm256_and_si256(e, _mm256_xor_si256(f, g)))
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    fn maj(a: V, b: V, c: V) -> V {
        // (a & b) | (c & (a | b))
        _mm256_or_si256(
            _mm256_and_si256(a, b),
            _mm256_and_si256(c, _mm256_or_si256(a, b)),
        )
    }

    lanes_batch!("avx2");
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{BATCH, Batch, Job, K};

    type V = __m512i;
    const LANES: usize = 16;

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn add(a: V, b: V) -> V {
        _mm512_add_epi32(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn set1(x: u32) -> V {
        _mm512_set1_epi32(x as i32)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn from_lanes(x: &[u32; LANES]) -> V {
        let x = x.map(|v| v as i32);
        _mm512_setr_epi32(
            x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], x[8], x[9], x[10], x[11], x[12], x[13],
            x[14], x[15],
        )
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn store(v: V, out: &mut [u32]) {
        assert_eq!(out.len(), LANES);
        // SAFETY: `out` is LANES = 16 u32 = 64 writable bytes (checked above); storeu has no
        // alignment requirement.
        unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), v) }
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn xor3(a: V, b: V, c: V) -> V {
        _mm512_ternarylogic_epi32::<0x96>(a, b, c)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn bsig0(a: V) -> V {
        xor3(
            _mm512_ror_epi32::<2>(a),
            _mm512_ror_epi32::<13>(a),
            _mm512_ror_epi32::<22>(a),
        )
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn bsig1(e: V) -> V {
        xor3(
            _mm512_ror_epi32::<6>(e),
            _mm512_ror_epi32::<11>(e),
            _mm512_ror_epi32::<25>(e),
        )
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn ssig0v(x: V) -> V {
        xor3(
            _mm512_ror_epi32::<7>(x),
            _mm512_ror_epi32::<18>(x),
            _mm512_srli_epi32::<3>(x),
        )
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn ssig1v(x: V) -> V {
        xor3(
            _mm512_ror_epi32::<17>(x),
            _mm512_ror_epi32::<19>(x),
            _mm512_srli_epi32::<10>(x),
        )
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn ch(e: V, f: V, g: V) -> V {
        // e ? f : g
        _mm512_ternarylogic_epi32::<0xCA>(e, f, g)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn maj(a: V, b: V, c: V) -> V {
        _mm512_ternarylogic_epi32::<0xE8>(a, b, c)
    }

    lanes_batch!("avx512f");
}

/// N SHA-NI streams interleaved; each stream is one candidate.
#[cfg(target_arch = "x86_64")]
mod shani {
    use std::arch::x86_64::*;

    use super::{BATCH, Batch, Job, K};

    #[inline]
    #[target_feature(enable = "sse2")]
    fn v4(w: [u32; 4]) -> __m128i {
        _mm_set_epi32(w[3] as i32, w[2] as i32, w[1] as i32, w[0] as i32)
    }

    /// Four rounds with K + W already added.
    #[inline]
    #[target_feature(enable = "sha,sse2")]
    fn rounds4(abef: &mut __m128i, cdgh: &mut __m128i, kw: __m128i) {
        *cdgh = _mm_sha256rnds2_epu32(*cdgh, *abef, kw);
        *abef = _mm_sha256rnds2_epu32(*abef, *cdgh, _mm_shuffle_epi32::<0x0E>(kw));
    }

    /// The next four schedule words from the previous sixteen (`w0` oldest).
    #[inline]
    #[target_feature(enable = "sha,ssse3")]
    fn schedule(w0: __m128i, w1: __m128i, w2: __m128i, w3: __m128i) -> __m128i {
        let t = _mm_add_epi32(_mm_sha256msg1_epu32(w0, w1), _mm_alignr_epi8::<4>(w3, w2));
        _mm_sha256msg2_epu32(t, w3)
    }

    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub(super) fn batch<const N: usize>(job: &Job, counter: u64, out: &mut Batch) {
        let k: [__m128i; 16] = {
            let mut k = [_mm_setzero_si128(); 16];
            for (r, kr) in k.iter_mut().enumerate() {
                *kr = v4([K[4 * r], K[4 * r + 1], K[4 * r + 2], K[4 * r + 3]]);
            }
            k
        };
        let mut kwb = [_mm_setzero_si128(); 16];
        for (r, x) in kwb.iter_mut().enumerate() {
            let b = &job.kw_b;
            *x = v4([b[4 * r], b[4 * r + 1], b[4 * r + 2], b[4 * r + 3]]);
        }
        let a = &job.block_a;
        let (_, w1) = Job::counter_words(counter);
        let wconst = [
            v4([a[4], a[5], a[6], a[7]]),
            v4([a[8], a[9], a[10], a[11]]),
            v4([a[12], a[13], a[14], a[15]]),
        ];
        let m = job.midstate;
        let abef0 = _mm_set_epi32(m[0] as i32, m[1] as i32, m[4] as i32, m[5] as i32);
        let cdgh0 = _mm_set_epi32(m[2] as i32, m[3] as i32, m[6] as i32, m[7] as i32);

        for base in (0..BATCH).step_by(N) {
            let mut abef = [abef0; N];
            let mut cdgh = [cdgh0; N];
            let mut w = [[_mm_setzero_si128(); 4]; N];
            for (j, wj) in w.iter_mut().enumerate() {
                let (w0, _) = Job::counter_words(counter + (base + j) as u64);
                *wj = [v4([w0, w1, a[2], a[3]]), wconst[0], wconst[1], wconst[2]];
            }
            // first block: rounds 0..16 from the message, 16..64 with the schedule; unrolled
            // by the macro so every index is a constant and the arrays live in registers
            macro_rules! quad {
                ($($r:literal)*) => {$(
                    for j in 0..N {
                        let wj = &mut w[j];
                        if $r >= 4 {
                            wj[$r % 4] = schedule(
                                wj[$r % 4],
                                wj[($r + 1) % 4],
                                wj[($r + 2) % 4],
                                wj[($r + 3) % 4],
                            );
                        }
                        rounds4(&mut abef[j], &mut cdgh[j], _mm_add_epi32(wj[$r % 4], k[$r]));
                    }
                )*};
            }
            quad!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
            let mut save_abef = [abef0; N];
            let mut save_cdgh = [cdgh0; N];
            for j in 0..N {
                abef[j] = _mm_add_epi32(abef[j], abef0);
                cdgh[j] = _mm_add_epi32(cdgh[j], cdgh0);
                save_abef[j] = abef[j];
                save_cdgh[j] = cdgh[j];
            }
            // second block: constant K + W
            macro_rules! quad_b {
                ($($r:literal)*) => {$(
                    for j in 0..N {
                        rounds4(&mut abef[j], &mut cdgh[j], kwb[$r]);
                    }
                )*};
            }
            quad_b!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
            for j in 0..N {
                let x = _mm_add_epi32(abef[j], save_abef[j]);
                let y = _mm_add_epi32(cdgh[j], save_cdgh[j]);
                let lane = base + j;
                // abef = lanes [f, e, b, a], cdgh = lanes [h, g, d, c]
                out[0][lane] = _mm_extract_epi32::<3>(x) as u32;
                out[1][lane] = _mm_extract_epi32::<2>(x) as u32;
                out[2][lane] = _mm_extract_epi32::<3>(y) as u32;
                out[3][lane] = _mm_extract_epi32::<2>(y) as u32;
                out[4][lane] = _mm_extract_epi32::<1>(x) as u32;
                out[5][lane] = _mm_extract_epi32::<0>(x) as u32;
                out[6][lane] = _mm_extract_epi32::<1>(y) as u32;
                out[7][lane] = _mm_extract_epi32::<0>(y) as u32;
            }
        }
    }
}

// Lane-by-lane tests of every path against plain SHA-256: keytools/tests/multibuf.rs
