//! Fast search for a destination whose b32 address matches a prefix or a regular expression.
//!
//! The key pair is generated once per worker; only 8 padding bytes of the destination change
//! between candidates (offset 320, inside the Ed25519/RedDSA signing-key padding). The SHA-256
//! state after the first 320 constant bytes (five blocks) is computed once, so each candidate
//! costs two SHA-256 compressions, done [`multibuf::BATCH`] at a time by the fastest
//! [`multibuf::Path`] the CPU offers. The first 64 hash bits go through a 1024-entry table
//! and the patterns' bit masks before any base32 encoding. Every hit is rebuilt as a full key
//! blob, re-parsed, and its b32 recomputed from the serialized destination before it is
//! returned.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sha2::block_api::compress256;
use sha2::{Digest, Sha256};

use crate::encoding;
use crate::error::KeyError;
use crate::keys::PrivateKeys;
use crate::types::{CryptoType, SigType};

pub mod multibuf;
pub mod pattern;

pub use multibuf::Path;
pub use pattern::{MAX_PREFIX_LEN, MAX_REGEX_LEN, Matcher, Pattern, Prefix, RegexPattern};

/// Offset of the 8 bytes varied per candidate (start of the sixth SHA-256 block).
pub const COUNTER_OFFSET: usize = 320;
const SHA256_IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// A verified match: which pattern (index into [`Matcher::patterns`]) and the keys.
#[derive(Debug)]
pub struct Hit {
    /// index of the matching pattern
    pub pattern: usize,
    /// the keys, re-parsed and re-checked
    pub keys: PrivateKeys,
}

/// One search worker: a fixed key pair whose destination padding is varied.
pub struct Searcher {
    keys: PrivateKeys,
    dest: Vec<u8>,
    job: multibuf::Job,
    hasher: multibuf::Hasher,
    out: Box<multibuf::Batch>,
    counter: u64,
}

impl std::fmt::Debug for Searcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Searcher")
            .field("keys", &self.keys)
            .field("path", &self.hasher.path())
            .field("counter", &self.counter)
            .finish()
    }
}

impl Searcher {
    /// Generates a fresh key pair and prepares the SHA-256 midstate; hashes with
    /// [`Path::best`].
    ///
    /// # Errors
    /// [`KeyError::UnsupportedSigType`] unless the signing key leaves padding at bytes 320..328
    /// (Ed25519 and RedDSA); [`KeyError::Random`] if the RNG fails.
    pub fn new(sig: SigType, crypto: CryptoType) -> Result<Self, KeyError> {
        Self::with_path(sig, crypto, Path::best())
    }

    /// As [`Searcher::new`] with a chosen hashing path.
    ///
    /// # Errors
    /// As [`Searcher::new`]; [`KeyError::VanityPattern`] if this CPU cannot run `path`.
    pub fn with_path(sig: SigType, crypto: CryptoType, path: Path) -> Result<Self, KeyError> {
        if 384 - sig.public_key_len() < COUNTER_OFFSET + 8 {
            return Err(KeyError::UnsupportedSigType {
                code: sig.code(),
                name: "vanity search needs EdDSA_SHA512_Ed25519 or RedDSA_SHA512_Ed25519",
            });
        }
        let hasher = multibuf::Hasher::new(path).ok_or_else(|| KeyError::VanityPattern {
            pattern: String::new(),
            reason: format!("this CPU cannot run the {path} hashing path"),
        })?;
        let keys = PrivateKeys::generate(sig, crypto)?;
        let dest = keys.destination().as_bytes().to_vec();
        let mut midstate = SHA256_IV;
        let head: Vec<[u8; 64]> = dest[..COUNTER_OFFSET]
            .chunks_exact(64)
            .map(|c| c.try_into().unwrap_or([0; 64]))
            .collect();
        compress256(&mut midstate, &head);
        // the tail: bytes 320.. plus SHA-256 padding (0x80, zeros, bit length); two blocks
        // for every destination this accepts (391 bytes; 71 + 9 <= 128)
        let mut t = dest[COUNTER_OFFSET..].to_vec();
        t.push(0x80);
        while t.len() % 64 != 56 {
            t.push(0);
        }
        t.extend_from_slice(&((dest.len() as u64) * 8).to_be_bytes());
        if t.len() != 128 {
            return Err(KeyError::UnsupportedSigType {
                code: sig.code(),
                name: "vanity search needs a 391-byte destination",
            });
        }
        let mut tail = [[0u8; 64]; 2];
        tail[0].copy_from_slice(&t[..64]);
        tail[1].copy_from_slice(&t[64..]);
        Ok(Self {
            keys,
            dest,
            job: multibuf::Job::new(midstate, tail),
            hasher,
            out: Box::new([[0; multibuf::BATCH]; 8]),
            counter: 0,
        })
    }

    /// The hashing path in use.
    pub fn path(&self) -> Path {
        self.hasher.path()
    }

    /// Candidates tried so far (the next counter value).
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// Tries at least the next `tries` candidates (rounded up to a whole batch); returns a
    /// verified hit as soon as one is found (the next call continues after it).
    ///
    /// # Errors
    /// [`KeyError`] only if a hit fails re-verification (which would be a bug).
    pub fn run(&mut self, matcher: &Matcher, tries: u64) -> Result<Option<Hit>, KeyError> {
        const B: u64 = multibuf::BATCH as u64;
        let mut done = 0u64;
        while done < tries {
            let base = self.counter & !(B - 1);
            let skip = (self.counter - base) as usize;
            self.hasher.batch(&self.job, base, &mut self.out);
            for lane in skip..multibuf::BATCH {
                let first = u64::from(self.out[0][lane]) << 32 | u64::from(self.out[1][lane]);
                if !matcher.may_match(first) {
                    continue;
                }
                let c = base + lane as u64;
                let mut hash = [0u8; 32];
                for (w, word) in self.out.iter().enumerate() {
                    hash[w * 4..w * 4 + 4].copy_from_slice(&word[lane].to_be_bytes());
                }
                let b32 = encoding::base32_encode(&hash);
                let hit = matcher
                    .candidates(first)
                    .find(|&i| matcher.patterns()[i].matches_b32(&b32));
                if let Some(i) = hit {
                    self.counter = c.wrapping_add(1);
                    return self.candidate(c, matcher, i).map(Some);
                }
            }
            done += B - skip as u64;
            self.counter = base.wrapping_add(B);
        }
        Ok(None)
    }

    /// Baseline for benchmarks: the same search hashing the whole destination and
    /// base32-encoding every candidate (what a naive loop would do).
    ///
    /// # Errors
    /// As [`Searcher::run`].
    pub fn run_naive(&mut self, matcher: &Matcher, tries: u64) -> Result<Option<Hit>, KeyError> {
        for _ in 0..tries {
            let c = self.counter;
            self.counter = self.counter.wrapping_add(1);
            self.dest[COUNTER_OFFSET..COUNTER_OFFSET + 8].copy_from_slice(&c.to_le_bytes());
            let b32 = encoding::base32_encode(&Sha256::digest(&self.dest));
            if let Some(i) = matcher.patterns().iter().position(|p| p.matches_b32(&b32)) {
                return self.candidate(c, matcher, i).map(Some);
            }
        }
        Ok(None)
    }

    /// Builds the key blob for counter value `c` and checks it from scratch: it must parse as
    /// private keys whose keys match, and the b32 recomputed from the serialized destination
    /// must match pattern `i`.
    fn candidate(&self, c: u64, matcher: &Matcher, i: usize) -> Result<Hit, KeyError> {
        let mut dest = self.dest.clone();
        dest[COUNTER_OFFSET..COUNTER_OFFSET + 8].copy_from_slice(&c.to_le_bytes());
        let keys = self.keys.with_destination_bytes(&dest)?;
        let b32 = keys.destination().b32();
        let pattern = &matcher.patterns()[i];
        if !pattern.matches_b32(&b32) {
            return Err(KeyError::VanityPattern {
                pattern: pattern.as_str().to_owned(),
                reason: format!("internal error: candidate {b32} does not match"),
            });
        }
        Ok(Hit { pattern: i, keys })
    }
}

/// How to search: key types, worker threads and the hashing path.
#[derive(Debug, Clone, Copy)]
pub struct SearchOptions {
    /// signature type (Ed25519 or RedDSA)
    pub sig: SigType,
    /// crypto type
    pub crypto: CryptoType,
    /// worker threads (at least 1)
    pub threads: usize,
    /// hashing path; `None` = the naive full-SHA-256-and-base32 baseline
    pub path: Option<Path>,
}

impl SearchOptions {
    /// Ed25519 + ElGamal, the best path, `threads` workers.
    pub fn new(threads: usize) -> Self {
        Self {
            sig: SigType::Ed25519,
            crypto: CryptoType::ElGamal,
            threads,
            path: Some(Path::best()),
        }
    }
}

/// Runs workers until `stop` is set or `on_hit` returns `true`; each verified hit is passed
/// to `on_hit` (from a worker thread, one at a time). Adds the candidates tried to `tries` as
/// it goes (for progress display).
///
/// # Errors
/// [`KeyError`] from worker set-up (unsupported type or path, RNG failure).
pub fn search_each(
    matcher: &Matcher,
    opts: &SearchOptions,
    stop: &AtomicBool,
    tries: &AtomicU64,
    on_hit: &(dyn Fn(Hit) -> bool + Sync),
) -> Result<(), KeyError> {
    // small enough that a stop is seen within milliseconds even on the slowest path (debug
    // builds included), large enough that the shared counter is touched rarely
    let batch: u64 = if opts.path.is_none() { 1 << 6 } else { 1 << 9 };
    let error: Mutex<Option<KeyError>> = Mutex::new(None);
    let hits = Mutex::new(());
    std::thread::scope(|s| {
        for _ in 0..opts.threads.max(1) {
            s.spawn(|| {
                let result = (|| {
                    let path = opts.path.unwrap_or(Path::Single);
                    let mut w = Searcher::with_path(opts.sig, opts.crypto, path)?;
                    while !stop.load(Ordering::Relaxed) {
                        let before = w.counter;
                        let r = if opts.path.is_none() {
                            w.run_naive(matcher, batch)?
                        } else {
                            w.run(matcher, batch)?
                        };
                        tries.fetch_add(w.counter.wrapping_sub(before), Ordering::Relaxed);
                        if let Some(hit) = r {
                            // one callback at a time; a poisoned lock only means another
                            // callback panicked, which the scope reports anyway
                            let _guard = hits.lock();
                            if !stop.load(Ordering::Relaxed) && on_hit(hit) {
                                stop.store(true, Ordering::Relaxed);
                            }
                        }
                    }
                    Ok(())
                })();
                if let Err(e) = result {
                    stop.store(true, Ordering::Relaxed);
                    if let Ok(mut slot) = error.lock() {
                        slot.get_or_insert(e);
                    }
                }
            });
        }
    });
    match error.into_inner().ok().flatten() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Runs `threads` workers until one finds `prefix` or `stop` is set (best path); adds the
/// number of candidates tried to `tries` as it goes.
///
/// Returns `Ok(None)` when stopped before a match.
///
/// # Errors
/// [`KeyError`] from worker set-up (unsupported type, RNG failure).
pub fn search(
    prefix: &Prefix,
    sig: SigType,
    crypto: CryptoType,
    threads: usize,
    stop: &AtomicBool,
    tries: &AtomicU64,
) -> Result<Option<PrivateKeys>, KeyError> {
    let matcher = Matcher::new(vec![Pattern::Prefix(prefix.clone())])?;
    let opts = SearchOptions {
        sig,
        crypto,
        threads,
        path: Some(Path::best()),
    };
    let found = Mutex::new(None);
    search_each(&matcher, &opts, stop, tries, &|hit| {
        if let Ok(mut f) = found.lock() {
            f.get_or_insert(hit.keys);
        }
        true
    })?;
    Ok(found.into_inner().ok().flatten())
}

/// Measures the candidate rate (candidates per second, all threads together) for about
/// `duration`, checking `matcher` but ignoring hits (so the figure includes the pattern
/// checks; pass a matcher that practically never hits to measure the hashing alone).
///
/// # Errors
/// [`KeyError`] from worker set-up.
pub fn measure_rate(
    matcher: &Matcher,
    opts: &SearchOptions,
    duration: Duration,
) -> Result<f64, KeyError> {
    let stop = AtomicBool::new(false);
    let tries = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            while start.elapsed() < duration && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
            }
            stop.store(true, Ordering::Relaxed);
        });
        let r = search_each(matcher, opts, &stop, &tries, &|_| false);
        stop.store(true, Ordering::Relaxed);
        r
    })?;
    Ok(tries.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

/// A matcher for benchmarks: 60 fixed bits, so a hit is practically impossible.
pub fn bench_matcher() -> Matcher {
    // "zzzzzzzzzzzz" is a valid prefix; Matcher::new fails only for an empty list
    let p = Prefix::new("zzzzzzzzzzzz").map(Pattern::Prefix);
    match p.and_then(|p| Matcher::new(vec![p])) {
        Ok(m) => m,
        Err(e) => unreachable!("constant bench prefix: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(s: &str) -> Matcher {
        Matcher::new(vec![Pattern::Prefix(Prefix::new(s).unwrap())]).unwrap()
    }

    #[test]
    fn every_path_and_naive_agree_and_find_verified_keys() {
        let p = prefix("a");
        for path in Path::available() {
            let mut w = Searcher::with_path(SigType::Ed25519, CryptoType::ElGamal, path).unwrap();
            let k = w
                .run(&p, 10_000)
                .unwrap()
                .expect("1-char prefix found in 10k tries")
                .keys;
            assert!(k.destination().b32().starts_with('a'));
            let fast_counter = w.counter;
            // the next hit is after the first one
            let k3 = w.run(&p, 10_000).unwrap().unwrap().keys;
            assert!(w.counter > fast_counter);
            assert_ne!(k3.to_bytes(), k.to_bytes());
            w.counter = 0;
            let k2 = w.run_naive(&p, 10_000).unwrap().unwrap().keys;
            assert_eq!(
                w.counter, fast_counter,
                "{path}: both loops stop at the same candidate"
            );
            assert_eq!(k.to_bytes(), k2.to_bytes());
            let s = k.sign(b"x").unwrap();
            k.destination().verify(b"x", &s).unwrap();
        }
    }

    #[test]
    fn several_patterns_and_regexes() {
        let m = Matcher::new(vec![
            Pattern::Prefix(Prefix::new("b").unwrap()),
            Pattern::Regex(Box::new(RegexPattern::new("^[cd]").unwrap())),
            Pattern::Regex(Box::new(RegexPattern::new("q$").unwrap())),
        ])
        .unwrap();
        let mut seen = [false; 3];
        let mut w = Searcher::new(SigType::Ed25519, CryptoType::ElGamal).unwrap();
        for _ in 0..200 {
            let hit = w.run(&m, 1 << 20).unwrap().unwrap();
            let b32 = hit.keys.destination().b32();
            assert!(m.patterns()[hit.pattern].matches_b32(&b32), "{b32}");
            seen[hit.pattern] = true;
            if seen.iter().all(|&s| s) {
                return;
            }
        }
        panic!("not every pattern was hit: {seen:?}");
    }

    #[test]
    fn parallel_search_finds_and_stops() {
        let p = Prefix::new("b").unwrap();
        let stop = AtomicBool::new(false);
        let tries = AtomicU64::new(0);
        let k = search(&p, SigType::Ed25519, CryptoType::ElGamal, 2, &stop, &tries)
            .unwrap()
            .unwrap();
        assert!(k.destination().b32().starts_with('b'));
        assert!(tries.load(Ordering::Relaxed) > 0);
        // already stopped: returns at once without a key
        let stop = AtomicBool::new(true);
        let p = Prefix::new("zzzzzzzzzz").unwrap();
        let r = search(&p, SigType::Ed25519, CryptoType::ElGamal, 2, &stop, &tries).unwrap();
        assert!(r.is_none());
    }

    #[test]
    fn search_each_counts_hits_until_told_to_stop() {
        let m = prefix("a");
        let stop = AtomicBool::new(false);
        let tries = AtomicU64::new(0);
        let n = Mutex::new(0);
        let opts = SearchOptions::new(2);
        search_each(&m, &opts, &stop, &tries, &|hit| {
            assert!(hit.keys.destination().b32().starts_with('a'));
            let mut n = n.lock().unwrap();
            *n += 1;
            *n == 5
        })
        .unwrap();
        assert_eq!(*n.lock().unwrap(), 5);
    }

    #[test]
    fn unsupported_types_are_errors() {
        assert!(Searcher::new(SigType::EcdsaP256, CryptoType::ElGamal).is_err());
        assert!(Searcher::new(SigType::DsaSha1, CryptoType::ElGamal).is_err());
        assert!(Searcher::new(SigType::RedDsa, CryptoType::X25519).is_ok());
    }
}
