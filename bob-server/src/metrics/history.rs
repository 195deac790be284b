//! Per-tunnel throughput history behind the status page's charts: a fixed-size ring of
//! counter samples per tunnel, so memory is bounded by tunnels × [`HISTORY_SAMPLES`].

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use super::TunnelView;

/// Samples kept per tunnel (with the default 10 s interval: the last 10 minutes).
pub const HISTORY_SAMPLES: usize = 61;

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    bytes_in: u64,
    bytes_out: u64,
}

/// One point of a chart: bytes per second in each direction over one interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Rate {
    /// seconds before the newest sample
    pub(super) age: f64,
    pub(super) bytes_in: f64,
    pub(super) bytes_out: f64,
}

/// The sampled counters of every tunnel in the registry.
#[derive(Debug, Default)]
pub struct History {
    tunnels: HashMap<String, VecDeque<Sample>>,
}

impl History {
    /// Records `views` as sampled at `at`; tunnels not in `views` are forgotten.
    pub fn record(&mut self, views: &[TunnelView], at: Instant) {
        let mut kept: HashMap<String, VecDeque<Sample>> = HashMap::with_capacity(views.len());
        for v in views {
            let name = &v.counters.nickname;
            let mut ring = self
                .tunnels
                .remove(name)
                .unwrap_or_else(|| VecDeque::with_capacity(HISTORY_SAMPLES));
            if ring.len() == HISTORY_SAMPLES {
                ring.pop_front();
            }
            ring.push_back(Sample {
                at,
                bytes_in: v.counters.bytes_in,
                bytes_out: v.counters.bytes_out,
            });
            kept.insert(name.clone(), ring);
        }
        self.tunnels = kept;
    }

    /// Samples held for `nickname`.
    pub fn len(&self, nickname: &str) -> usize {
        self.tunnels.get(nickname).map_or(0, VecDeque::len)
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.tunnels.is_empty()
    }

    /// The rates between consecutive samples of `nickname`, oldest first. Counters
    /// start at zero on every `start`, so a counter that went down counts from zero.
    pub(super) fn rates(&self, nickname: &str) -> Vec<Rate> {
        let Some(ring) = self.tunnels.get(nickname) else {
            return Vec::new();
        };
        let Some(newest) = ring.back() else {
            return Vec::new();
        };
        let delta = |now: u64, before: u64| if now >= before { now - before } else { now };
        ring.iter()
            .zip(ring.iter().skip(1))
            .map(|(a, b)| {
                let secs = b.at.duration_since(a.at).max(Duration::from_millis(1));
                let secs = secs.as_secs_f64();
                Rate {
                    age: newest.at.duration_since(b.at).as_secs_f64(),
                    bytes_in: delta(b.bytes_in, a.bytes_in) as f64 / secs,
                    bytes_out: delta(b.bytes_out, a.bytes_out) as f64 / secs,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::tests::view;

    fn with_bytes(name: &str, bytes_in: u64, bytes_out: u64) -> TunnelView {
        let mut v = view(name, true);
        v.counters.bytes_in = bytes_in;
        v.counters.bytes_out = bytes_out;
        v
    }

    #[test]
    fn rates_come_from_consecutive_samples_and_survive_a_restart() {
        let mut h = History::default();
        let t0 = Instant::now();
        h.record(&[with_bytes("web", 0, 0)], t0);
        h.record(
            &[with_bytes("web", 1000, 500)],
            t0 + Duration::from_secs(10),
        );
        // restarted: counters began again at zero
        h.record(&[with_bytes("web", 200, 0)], t0 + Duration::from_secs(20));
        let r = h.rates("web");
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].bytes_in, r[0].bytes_out, r[0].age),
            (100.0, 50.0, 10.0)
        );
        assert_eq!((r[1].bytes_in, r[1].bytes_out, r[1].age), (20.0, 0.0, 0.0));
        assert!(h.rates("nope").is_empty());
    }

    #[test]
    fn memory_is_bounded_by_the_ring_and_the_live_tunnels() {
        let mut h = History::default();
        let t0 = Instant::now();
        for i in 0..(3 * HISTORY_SAMPLES as u64) {
            let mut views: Vec<_> = (0..4).map(|t| with_bytes(&format!("t{t}"), i, i)).collect();
            views.push(with_bytes(&format!("passing{}", i % 7), i, i));
            h.record(&views, t0 + Duration::from_secs(i));
        }
        assert_eq!(h.tunnels.len(), 5, "tunnels that left are forgotten");
        assert_eq!(h.len("t0"), HISTORY_SAMPLES);
        assert_eq!(
            h.len(&format!("passing{}", (3 * HISTORY_SAMPLES - 1) % 7)),
            1
        );
        h.record(&[], t0 + Duration::from_secs(10_000));
        assert!(h.is_empty());
    }
}
