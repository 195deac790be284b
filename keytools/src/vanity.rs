//! Fast search for a destination whose b32 address starts with a given prefix.
//!
//! The key pair is generated once per worker; only 8 padding bytes of the destination change
//! between candidates (offset 320, inside the Ed25519/RedDSA signing-key padding). The SHA-256
//! state after the first 320 constant bytes (five blocks) is computed once, so each candidate
//! costs two SHA-256 compressions, and the first 64 hash bits are compared with the decoded
//! prefix bits instead of base32-encoding every hash. Every hit is rebuilt as a full key blob,
//! re-parsed, and its b32 recomputed from the serialized destination before it is returned.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sha2::block_api::compress256;
use sha2::{Digest, Sha256};

use crate::encoding;
use crate::error::KeyError;
use crate::keys::PrivateKeys;
use crate::types::{CryptoType, SigType};

/// Offset of the 8 bytes varied per candidate (start of the sixth SHA-256 block).
pub const COUNTER_OFFSET: usize = 320;
/// Longest possible b32 prefix (a whole address).
pub const MAX_PREFIX_LEN: usize = 52;
const B32_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
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

/// A validated b32 prefix, decoded to the hash bits it fixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix {
    text: String,
    mask: u64,
    target: u64,
}

impl Prefix {
    /// Validates a prefix: 1..=52 characters of the b32 alphabet `a-z 2-7` (upper case is
    /// folded to lower case).
    ///
    /// # Errors
    /// [`KeyError::VanityPrefix`] naming the bad character or length.
    pub fn new(prefix: &str) -> Result<Self, KeyError> {
        let text = prefix.to_ascii_lowercase();
        let err = |reason: String| KeyError::VanityPrefix {
            prefix: prefix.to_owned(),
            reason,
        };
        if text.is_empty() || text.len() > MAX_PREFIX_LEN {
            return Err(err(format!(
                "length must be 1 to {MAX_PREFIX_LEN} characters"
            )));
        }
        let mut values = Vec::with_capacity(text.len());
        for (i, c) in text.bytes().enumerate() {
            match B32_ALPHABET.iter().position(|&a| a == c) {
                Some(v) => values.push(v as u64),
                None => {
                    return Err(err(format!(
                        "character {:?} at position {} is not in the b32 alphabet a-z 2-7",
                        prefix.chars().nth(i).unwrap_or('?'),
                        i + 1
                    )));
                }
            }
        }
        if values.len() == MAX_PREFIX_LEN && values[MAX_PREFIX_LEN - 1] & 0xf != 0 {
            return Err(err("the 52nd b32 character can only be one of a, q".into()));
        }
        let quick = values.len().min(12);
        let mut target = 0u64;
        for v in &values[..quick] {
            target = target << 5 | v;
        }
        let bits = 5 * quick as u32;
        target <<= 64 - bits;
        let mask = !0u64 << (64 - bits);
        Ok(Self { text, mask, target })
    }

    /// The prefix text (lower case).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Expected number of candidates to try: 32^len.
    pub fn expected_tries(&self) -> f64 {
        32f64.powi(self.text.len() as i32)
    }

    /// Whether a full b32 address (with or without `.b32.i2p`) starts with this prefix.
    pub fn matches_b32(&self, b32: &str) -> bool {
        b32.starts_with(&self.text)
    }

    #[inline]
    fn quick_match(&self, first64: u64) -> bool {
        first64 & self.mask == self.target
    }
}

/// One search worker: a fixed key pair whose destination padding is varied.
pub struct Searcher {
    keys: PrivateKeys,
    dest: Vec<u8>,
    midstate: [u32; 8],
    tail: Vec<[u8; 64]>,
    counter: u64,
}

impl std::fmt::Debug for Searcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Searcher")
            .field("keys", &self.keys)
            .field("counter", &self.counter)
            .finish()
    }
}

impl Searcher {
    /// Generates a fresh key pair and prepares the SHA-256 midstate.
    ///
    /// # Errors
    /// [`KeyError::UnsupportedSigType`] unless the signing key leaves padding at bytes 320..328
    /// (Ed25519 and RedDSA); [`KeyError::Random`] if the RNG fails.
    pub fn new(sig: SigType, crypto: CryptoType) -> Result<Self, KeyError> {
        if 384 - sig.public_key_len() < COUNTER_OFFSET + 8 {
            return Err(KeyError::UnsupportedSigType {
                code: sig.code(),
                name: "vanity search needs EdDSA_SHA512_Ed25519 or RedDSA_SHA512_Ed25519",
            });
        }
        let keys = PrivateKeys::generate(sig, crypto)?;
        let dest = keys.destination().as_bytes().to_vec();
        let mut midstate = SHA256_IV;
        let head: Vec<[u8; 64]> = dest[..COUNTER_OFFSET]
            .chunks_exact(64)
            .map(|c| c.try_into().unwrap_or([0; 64]))
            .collect();
        compress256(&mut midstate, &head);
        // the tail: bytes 320.. plus SHA-256 padding (0x80, zeros, bit length)
        let mut t = dest[COUNTER_OFFSET..].to_vec();
        t.push(0x80);
        while t.len() % 64 != 56 {
            t.push(0);
        }
        t.extend_from_slice(&((dest.len() as u64) * 8).to_be_bytes());
        let tail = t
            .chunks_exact(64)
            .map(|c| c.try_into().unwrap_or([0; 64]))
            .collect();
        Ok(Self {
            keys,
            dest,
            midstate,
            tail,
            counter: 0,
        })
    }

    /// Tries the next `tries` candidates; returns a verified key on a match.
    ///
    /// # Errors
    /// [`KeyError`] only if a hit fails re-verification (which would be a bug).
    pub fn run(&mut self, prefix: &Prefix, tries: u64) -> Result<Option<PrivateKeys>, KeyError> {
        for _ in 0..tries {
            let c = self.counter;
            self.counter = self.counter.wrapping_add(1);
            self.tail[0][..8].copy_from_slice(&c.to_le_bytes());
            let mut st = self.midstate;
            compress256(&mut st, &self.tail);
            if prefix.quick_match(u64::from(st[0]) << 32 | u64::from(st[1])) {
                let mut hash = [0u8; 32];
                for (i, w) in st.iter().enumerate() {
                    hash[i * 4..i * 4 + 4].copy_from_slice(&w.to_be_bytes());
                }
                if prefix.matches_b32(&encoding::base32_encode(&hash)) {
                    return self.candidate(c, prefix).map(Some);
                }
            }
        }
        Ok(None)
    }

    /// Baseline for benchmarks: the same search hashing the whole destination and
    /// base32-encoding every candidate (what a naive loop would do).
    ///
    /// # Errors
    /// As [`Searcher::run`].
    pub fn run_naive(
        &mut self,
        prefix: &Prefix,
        tries: u64,
    ) -> Result<Option<PrivateKeys>, KeyError> {
        for _ in 0..tries {
            let c = self.counter;
            self.counter = self.counter.wrapping_add(1);
            self.dest[COUNTER_OFFSET..COUNTER_OFFSET + 8].copy_from_slice(&c.to_le_bytes());
            let h = Sha256::digest(&self.dest);
            if prefix.matches_b32(&encoding::base32_encode(&h)) {
                return self.candidate(c, prefix).map(Some);
            }
        }
        Ok(None)
    }

    /// Builds the key blob for counter value `c` and checks it from scratch: it must parse as
    /// private keys whose keys match, and the b32 recomputed from the serialized destination
    /// must start with the prefix.
    fn candidate(&self, c: u64, prefix: &Prefix) -> Result<PrivateKeys, KeyError> {
        let mut dest = self.dest.clone();
        dest[COUNTER_OFFSET..COUNTER_OFFSET + 8].copy_from_slice(&c.to_le_bytes());
        let keys = self.keys.with_destination_bytes(&dest)?;
        let b32 = keys.destination().b32();
        if !prefix.matches_b32(&b32) {
            return Err(KeyError::VanityPrefix {
                prefix: prefix.as_str().to_owned(),
                reason: format!("internal error: candidate {b32} does not match"),
            });
        }
        Ok(keys)
    }
}

/// Runs `threads` workers until one finds a match or `stop` is set; adds the number of
/// candidates tried to `tries` as it goes (for progress display).
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
    search_impl(prefix, sig, crypto, threads, stop, tries, false)
}

/// Measures the candidate rate (candidates per second, all threads together) of the fast
/// search, or with `naive` of the full-SHA-256-and-base32 baseline, for about `duration`.
///
/// # Errors
/// [`KeyError`] from worker set-up.
pub fn measure_rate(
    sig: SigType,
    crypto: CryptoType,
    threads: usize,
    duration: Duration,
    naive: bool,
) -> Result<f64, KeyError> {
    // 60 fixed bits: a hit within a benchmark is practically impossible (and harmless)
    let prefix = Prefix::new("zzzzzzzzzzzz")?;
    let stop = AtomicBool::new(false);
    let tries = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        let timer = s.spawn(|| {
            while start.elapsed() < duration && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(10));
            }
            stop.store(true, Ordering::Relaxed);
        });
        let r = search_impl(&prefix, sig, crypto, threads, &stop, &tries, naive);
        stop.store(true, Ordering::Relaxed);
        let _ = timer.join();
        r
    })?;
    Ok(tries.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

fn search_impl(
    prefix: &Prefix,
    sig: SigType,
    crypto: CryptoType,
    threads: usize,
    stop: &AtomicBool,
    tries: &AtomicU64,
    naive: bool,
) -> Result<Option<PrivateKeys>, KeyError> {
    let batch: u64 = if naive { 1 << 12 } else { 1 << 16 };
    let found: Mutex<Option<Result<PrivateKeys, KeyError>>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                let result = (|| {
                    let mut w = Searcher::new(sig, crypto)?;
                    while !stop.load(Ordering::Relaxed) {
                        let before = w.counter;
                        let r = if naive {
                            w.run_naive(prefix, batch)?
                        } else {
                            w.run(prefix, batch)?
                        };
                        tries.fetch_add(w.counter.wrapping_sub(before), Ordering::Relaxed);
                        if r.is_some() {
                            return Ok(r);
                        }
                    }
                    Ok(None)
                })();
                if let Ok(None) = result {
                    return;
                }
                stop.store(true, Ordering::Relaxed);
                if let Ok(mut f) = found.lock()
                    && f.is_none()
                {
                    *f = result.transpose();
                }
            });
        }
    });
    found.into_inner().ok().flatten().transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_validation() {
        assert!(Prefix::new("").is_err());
        assert!(Prefix::new("ab1").is_err());
        assert!(Prefix::new("ab8").is_err());
        assert!(Prefix::new(&"a".repeat(53)).is_err());
        let p = Prefix::new("Bob").unwrap();
        assert_eq!(p.as_str(), "bob");
        assert_eq!(p.expected_tries(), 32768.0);
        // 'b' = 1, 'o' = 14, 'b' = 1 -> 00001 01110 00001
        assert_eq!(p.target >> (64 - 15), 0b00001_01110_00001);
    }

    #[test]
    fn fast_and_naive_agree_and_find_verified_keys() {
        let p = Prefix::new("a").unwrap();
        let mut w = Searcher::new(SigType::Ed25519, CryptoType::ElGamal).unwrap();
        let k = w
            .run(&p, 10_000)
            .unwrap()
            .expect("1-char prefix found in 10k tries");
        assert!(k.destination().b32().starts_with('a'));
        let fast_counter = w.counter;
        w.counter = 0;
        let k2 = w.run_naive(&p, 10_000).unwrap().unwrap();
        assert_eq!(
            w.counter, fast_counter,
            "both loops stop at the same candidate"
        );
        assert_eq!(k.to_bytes(), k2.to_bytes());
        let s = k.sign(b"x").unwrap();
        k.destination().verify(b"x", &s).unwrap();
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
    fn unsupported_types_are_errors() {
        assert!(Searcher::new(SigType::EcdsaP256, CryptoType::ElGamal).is_err());
        assert!(Searcher::new(SigType::DsaSha1, CryptoType::ElGamal).is_err());
        assert!(Searcher::new(SigType::RedDsa, CryptoType::X25519).is_ok());
    }
}
