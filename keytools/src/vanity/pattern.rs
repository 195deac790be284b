//! What a vanity search looks for: b32 prefixes and regular expressions, the quick filters
//! derived from them, and the exact probability that a random address matches.
//!
//! A b32 address is 52 characters of `a-z2-7` (256 hash bits; the 52nd character carries one
//! bit, so it is `a` or `q`). Patterns are matched against those 52 characters, without
//! `.b32.i2p`.

use regex_automata::dfa::{Automaton, dense};
use regex_automata::util::primitives::StateID;
use regex_automata::util::{start, syntax};
use regex_automata::{Anchored, Input};

use crate::error::KeyError;

/// Longest possible b32 prefix (a whole address).
pub const MAX_PREFIX_LEN: usize = 52;
/// Longest accepted regular expression, in bytes.
pub const MAX_REGEX_LEN: usize = 1024;
const B32_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// Compiled-automaton bound for `--regex` (bigger patterns are refused, not half-searched).
const DFA_SIZE_LIMIT: usize = 8 << 20;
/// At most this many literal prefixes are derived from a regex as quick filters.
const MAX_DERIVED_PREFIXES: usize = 32;

/// The characters (as 5-bit values) that can appear at b32 position `pos` (0-based).
fn values_at(pos: usize) -> &'static [u8] {
    const ALL: [u8; 32] = {
        let mut a = [0u8; 32];
        let mut i = 0;
        while i < 32 {
            a[i] = i as u8;
            i += 1;
        }
        a
    };
    if pos == MAX_PREFIX_LEN - 1 {
        &[0, 16] // 'a' and 'q': one data bit, four zero padding bits
    } else {
        &ALL
    }
}

/// A validated b32 prefix, decoded to the hash bits it fixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix {
    text: String,
    mask: u64,
    target: u64,
}

impl Prefix {
    /// Validates a prefix: 1..=52 characters of the b32 alphabet `a-z 2-7` (upper case is
    /// folded to lower case); a 52nd character must be `a` or `q`.
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

    /// Expected number of candidates to try: 32^len (2^256 / 2 for a whole address).
    pub fn expected_tries(&self) -> f64 {
        let n = self.text.len();
        if n == MAX_PREFIX_LEN {
            2f64.powi(256)
        } else {
            32f64.powi(n as i32)
        }
    }

    /// Whether a full b32 address (with or without `.b32.i2p`) starts with this prefix.
    pub fn matches_b32(&self, b32: &str) -> bool {
        b32.starts_with(&self.text)
    }

    /// Whether the first 64 hash bits agree with the (up to 12) first prefix characters.
    #[inline]
    pub(crate) fn quick_match(&self, first64: u64) -> bool {
        first64 & self.mask == self.target
    }
}

/// A regular expression over the 52 b32 characters (`^`/`$` anchor at their ends).
#[derive(Clone)]
pub struct RegexPattern {
    text: String,
    dfa: dense::DFA<Vec<u32>>,
    start: StateID,
    probability: f64,
    prefixes: Vec<Prefix>,
}

impl std::fmt::Debug for RegexPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegexPattern")
            .field("text", &self.text)
            .field("probability", &self.probability)
            .finish()
    }
}

impl RegexPattern {
    /// Compiles `pattern` (Rust `regex` syntax, ASCII classes, case-sensitive: b32 is lower
    /// case) and works out the exact probability that a random address matches.
    ///
    /// # Errors
    /// [`KeyError::VanityPattern`] if the pattern is too long, does not compile, is too big to
    /// compile into a DFA, or can never match a b32 address.
    pub fn new(pattern: &str) -> Result<Self, KeyError> {
        let err = |reason: String| KeyError::VanityPattern {
            pattern: pattern.chars().take(80).collect(),
            reason,
        };
        if pattern.len() > MAX_REGEX_LEN {
            return Err(err(format!("longer than {MAX_REGEX_LEN} bytes")));
        }
        let dfa = dense::Builder::new()
            .syntax(syntax::Config::new().unicode(false).utf8(false))
            .configure(
                dense::Config::new()
                    .dfa_size_limit(Some(DFA_SIZE_LIMIT))
                    .determinize_size_limit(Some(DFA_SIZE_LIMIT)),
            )
            .build(pattern)
            .map_err(|e| err(e.to_string()))?;
        let start = dfa
            .start_state(&start::Config::new().anchored(Anchored::No))
            .map_err(|e| err(e.to_string()))?;
        let mut me = Self {
            text: pattern.to_owned(),
            dfa,
            start,
            probability: 0.0,
            prefixes: Vec::new(),
        };
        me.probability = me.match_probability();
        if me.probability <= 0.0 {
            return Err(err(
                "it can never match a b32 address (52 characters a-z 2-7, the last one a or q)"
                    .into(),
            ));
        }
        me.prefixes = me.derive_prefixes();
        Ok(me)
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the 52-character b32 string (without `.b32.i2p`) matches.
    pub fn matches_b32(&self, b32: &str) -> bool {
        let b32 = b32.strip_suffix(".b32.i2p").unwrap_or(b32);
        matches!(self.dfa.try_search_fwd(&Input::new(b32)), Ok(Some(_)))
    }

    /// Exact probability that a uniformly random address matches: a walk over the DFA with
    /// each position's character distribution (1/32 each, the last position a or q 1/2 each).
    fn match_probability(&self) -> f64 {
        use std::collections::HashMap;
        let mut matched = 0.0;
        let mut dist: HashMap<StateID, f64> = HashMap::from([(self.start, 1.0)]);
        for pos in 0..MAX_PREFIX_LEN {
            let vals = values_at(pos);
            let q = 1.0 / vals.len() as f64;
            let mut next: HashMap<StateID, f64> = HashMap::new();
            for (&s, &p) in &dist {
                for &v in vals {
                    let t = self.dfa.next_state(s, B32_ALPHABET[usize::from(v)]);
                    if self.dfa.is_match_state(t) {
                        matched += p * q;
                    } else if !self.dfa.is_dead_state(t) && !self.dfa.is_quit_state(t) {
                        *next.entry(t).or_insert(0.0) += p * q;
                    }
                }
            }
            dist = next;
        }
        for (&s, &p) in &dist {
            if self.dfa.is_match_state(self.dfa.next_eoi_state(s)) {
                matched += p;
            }
        }
        matched.min(1.0)
    }

    /// Every b32 prefix of one length (up to 12) that a matching address must start with, if
    /// there are few enough to be a useful quick filter; empty when none is useful.
    fn derive_prefixes(&self) -> Vec<Prefix> {
        let mut level: Vec<(String, StateID)> = vec![(String::new(), self.start)];
        for pos in 0..12 {
            let mut next = Vec::new();
            for (s, st) in &level {
                for &v in values_at(pos) {
                    let c = B32_ALPHABET[usize::from(v)];
                    let t = self.dfa.next_state(*st, c);
                    if self.dfa.is_dead_state(t) || self.dfa.is_quit_state(t) {
                        continue;
                    }
                    let mut s2 = s.clone();
                    s2.push(char::from(c));
                    next.push((s2, t));
                }
            }
            if next.len() > MAX_DERIVED_PREFIXES {
                break;
            }
            level = next;
        }
        // a set that admits every string of its length filters nothing
        let len = level.first().map_or(0, |(s, _)| s.len());
        if len == 0 || level.len() as f64 >= 32f64.powi(len as i32) {
            return Vec::new();
        }
        level
            .iter()
            .filter_map(|(s, _)| Prefix::new(s).ok())
            .collect()
    }
}

/// One thing to search for.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// A b32 prefix.
    Prefix(Prefix),
    /// A regular expression.
    Regex(Box<RegexPattern>),
}

impl Pattern {
    /// The pattern as the user wrote it (prefixes in lower case).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Prefix(p) => p.as_str(),
            Self::Regex(r) => r.as_str(),
        }
    }

    /// Whether a b32 address (with or without `.b32.i2p`) matches.
    pub fn matches_b32(&self, b32: &str) -> bool {
        match self {
            Self::Prefix(p) => p.matches_b32(b32),
            Self::Regex(r) => r.matches_b32(b32),
        }
    }

    /// Probability that one random candidate matches.
    pub fn probability(&self) -> f64 {
        match self {
            Self::Prefix(p) => 1.0 / p.expected_tries(),
            Self::Regex(r) => r.probability,
        }
    }

    /// Expected candidates until the first match (1 / probability).
    pub fn expected_tries(&self) -> f64 {
        match self {
            Self::Prefix(p) => p.expected_tries(),
            Self::Regex(r) => 1.0 / r.probability,
        }
    }

    /// Quick filters: a match must pass one of them (empty = check every candidate fully).
    fn filters(&self) -> Vec<Prefix> {
        match self {
            Self::Prefix(p) => vec![p.clone()],
            Self::Regex(r) => r.prefixes.clone(),
        }
    }
}

/// Several patterns checked together against candidate hashes.
#[derive(Debug, Clone)]
pub struct Matcher {
    patterns: Vec<Pattern>,
    filters: Vec<Vec<Prefix>>,
    /// bit i set: some pattern may match a hash whose first 10 bits are i
    first10: [u64; 16],
}

impl Matcher {
    /// A matcher for `patterns` (at least one).
    ///
    /// # Errors
    /// [`KeyError::VanityPattern`] for an empty list.
    pub fn new(patterns: Vec<Pattern>) -> Result<Self, KeyError> {
        if patterns.is_empty() {
            return Err(KeyError::VanityPattern {
                pattern: String::new(),
                reason: "no pattern given".into(),
            });
        }
        let filters: Vec<Vec<Prefix>> = patterns.iter().map(Pattern::filters).collect();
        let mut first10 = [0u64; 16];
        for f in &filters {
            if f.is_empty() {
                first10 = [!0; 16];
            }
            for p in f {
                for i in 0..1024u64 {
                    if (i << 54) & p.mask == p.target & (0x3ff << 54) {
                        first10[(i >> 6) as usize] |= 1 << (i & 63);
                    }
                }
            }
        }
        Ok(Self {
            patterns,
            filters,
            first10,
        })
    }

    /// The patterns, in the order given.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether any pattern may match a hash starting with these 64 bits (a cheap first test).
    #[inline]
    pub(crate) fn may_match(&self, first64: u64) -> bool {
        let i = first64 >> 54;
        self.first10[(i >> 6) as usize] >> (i & 63) & 1 != 0
    }

    /// Indexes of the patterns whose quick filters the hash passes.
    pub(crate) fn candidates(&self, first64: u64) -> impl Iterator<Item = usize> + '_ {
        self.filters
            .iter()
            .enumerate()
            .filter(move |(_, f)| f.is_empty() || f.iter().any(|p| p.quick_match(first64)))
            .map(|(i, _)| i)
    }
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
        assert!(Prefix::new(&format!("{}b", "a".repeat(51))).is_err());
        assert!(Prefix::new(&format!("{}q", "a".repeat(51))).is_ok());
        let p = Prefix::new("Bob").unwrap();
        assert_eq!(p.as_str(), "bob");
        assert_eq!(p.expected_tries(), 32768.0);
        // 'b' = 1, 'o' = 14, 'b' = 1 -> 00001 01110 00001
        assert_eq!(p.target >> (64 - 15), 0b00001_01110_00001);
    }

    #[test]
    fn regex_probability_is_exact_for_known_shapes() {
        let p = |s: &str| RegexPattern::new(s).unwrap().probability;
        let close = |a: f64, b: f64| (a - b).abs() <= b * 1e-9;
        assert!(close(p("^ab"), 1.0 / 1024.0));
        assert!(close(p("^a[bc]"), 2.0 / 1024.0));
        assert!(close(p("^(ab|cd)"), 2.0 / 1024.0));
        // the 52nd character is a or q with probability 1/2 each
        assert!(close(p("q$"), 0.5));
        assert!(close(p("ba$"), 0.5 / 32.0));
        // anywhere: 1 - (31/32)^51 for one letter that cannot be last ('b')
        assert!(close(p("b"), 1.0 - (31f64 / 32.0).powi(51)));
        assert!(close(p("."), 1.0));
    }

    #[test]
    fn impossible_and_bad_regexes_are_refused() {
        for bad in [
            "^A",
            "[0189]",
            "b$",
            "^.{53}",
            "^[a-z]{52}x",
            "(",
            "\\p{Greek}",
        ] {
            let e = RegexPattern::new(bad).unwrap_err().to_string();
            assert!(e.contains("invalid vanity pattern"), "{bad}: {e}");
        }
        assert!(RegexPattern::new(&"a".repeat(MAX_REGEX_LEN + 1)).is_err());
    }

    #[test]
    fn regex_matching_and_derived_prefixes() {
        let r = RegexPattern::new("^(bob|ali)[2-7]").unwrap();
        let mut pre: Vec<_> = r.prefixes.iter().map(|p| p.as_str().to_owned()).collect();
        pre.sort();
        assert_eq!(pre.len(), 12, "{pre:?}");
        assert!(pre.contains(&"bob2".to_owned()) && pre.contains(&"ali7".to_owned()));
        let addr = format!("bob3{}", "a".repeat(48));
        assert!(r.matches_b32(&addr));
        assert!(r.matches_b32(&format!("{addr}.b32.i2p")));
        assert!(!r.matches_b32(&format!("boba{}", "a".repeat(48))));
        // unanchored: no prefix filter
        assert!(RegexPattern::new("bob").unwrap().prefixes.is_empty());
    }

    #[test]
    fn matcher_first10_table_is_a_superset() {
        let m = Matcher::new(vec![
            Pattern::Prefix(Prefix::new("ab").unwrap()),
            Pattern::Prefix(Prefix::new("z").unwrap()),
        ])
        .unwrap();
        let word = |s: &str| {
            let mut v = 0u64;
            for c in s.bytes() {
                v = v << 5 | B32_ALPHABET.iter().position(|&a| a == c).unwrap() as u64;
            }
            v << (64 - 5 * s.len())
        };
        assert!(m.may_match(word("abzz")));
        assert!(m.may_match(word("zq")));
        assert!(!m.may_match(word("ac")));
        assert_eq!(m.candidates(word("abc")).collect::<Vec<_>>(), vec![0]);
        assert!(Matcher::new(Vec::new()).is_err());
    }
}
