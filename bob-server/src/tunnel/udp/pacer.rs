//! Send pacing: a token bucket that lets through `rate` datagrams per second on
//! average, with a burst of at most [`BURST`] worth of datagrams after a pause.
//!
//! Pacing matters on real routers: i2pd 2.45 lost 54 % of 200 unpaced 1 KiB
//! datagrams and none with 1 ms gaps (docs/udp.md). The timer wakes late by up to a
//! millisecond; the burst credit makes up for that so the average holds.

use std::time::Duration;

use tokio::time::Instant;

/// Credit a paused sender may use at once.
pub const BURST: Duration = Duration::from_millis(10);

/// Paces one tunnel's sends.
#[derive(Debug)]
pub struct Pacer {
    /// time per datagram; zero = unpaced
    per: Duration,
    /// when the next datagram may go without waiting
    next: Instant,
}

impl Pacer {
    /// A pacer for `rate` datagrams per second (0: no pacing).
    pub fn new(rate: u32) -> Self {
        let per = if rate == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs(1) / rate
        };
        Self {
            per,
            next: Instant::now(),
        }
    }

    /// Waits until the next datagram may be sent.
    pub async fn wait(&mut self) {
        if self.per.is_zero() {
            return;
        }
        let now = Instant::now();
        // unused credit beyond the burst is lost
        if let Some(floor) = now.checked_sub(BURST)
            && self.next < floor
        {
            self.next = floor;
        }
        if self.next > now {
            tokio::time::sleep_until(self.next).await;
        }
        self.next += self.per;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn holds_the_rate_with_a_bounded_burst() {
        let mut pacer = Pacer::new(100);
        // after an idle second the credit is only the burst (1 datagram at 100/s)
        tokio::time::sleep(Duration::from_secs(1)).await;
        let started = Instant::now();
        for _ in 0..101 {
            pacer.wait().await;
        }
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(990) && took <= Duration::from_millis(1010),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn zero_is_unpaced() {
        let mut pacer = Pacer::new(0);
        let started = Instant::now();
        for _ in 0..10_000 {
            pacer.wait().await;
        }
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
