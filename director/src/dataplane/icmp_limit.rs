//! A token bucket for the ICMP errors the director itself generates ("fragmentation
//! needed" for a VS/TUN packet too big for the tunnel), one per worker, like the kernel's
//! `icmp_msgs_per_sec` / `icmp_msgs_burst`: a flood of oversized packets (spoofed sources
//! among them) must not turn the director into an ICMP cannon. Plain integers, no
//! allocation, no lock: it sits on the packet path.

/// ICMP errors a worker may send per second, on average (the kernel's `icmp_msgs_per_sec`).
pub const RATE_PER_SEC: u32 = 1000;
/// ICMP errors a worker may send back to back (the kernel's `icmp_msgs_burst`).
pub const BURST: u32 = 50;

/// Tokens in thousandths, refilled by the millisecond.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    rate_per_sec: u64,
    cap_milli: u64,
    milli: u64,
    last_ms: u64,
}

impl Default for TokenBucket {
    fn default() -> Self {
        TokenBucket::new(RATE_PER_SEC, BURST)
    }
}

impl TokenBucket {
    /// A full bucket: `burst` at once, then `rate_per_sec` a second.
    pub const fn new(rate_per_sec: u32, burst: u32) -> TokenBucket {
        let cap_milli = burst as u64 * 1000;
        TokenBucket {
            rate_per_sec: rate_per_sec as u64,
            cap_milli,
            milli: cap_milli,
            last_ms: 0,
        }
    }

    /// Takes a token at `now_ms` (a monotonic clock in milliseconds); false: suppress.
    #[inline]
    pub fn allow(&mut self, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        // A second of tokens is `rate_per_sec * 1000` thousandths: per millisecond, `rate`.
        self.milli = self
            .milli
            .saturating_add(elapsed.saturating_mul(self.rate_per_sec))
            .min(self.cap_milli);
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(b: &mut TokenBucket, at: u64, tries: usize) -> usize {
        (0..tries).filter(|_| b.allow(at)).count()
    }

    #[test]
    fn a_burst_then_the_rate() {
        let mut b = TokenBucket::new(1000, 50);
        // A flood at one instant: the burst, then nothing.
        assert_eq!(allowed(&mut b, 0, 10_000), 50);
        // One per millisecond after that, never more.
        assert_eq!(allowed(&mut b, 1, 100), 1);
        assert_eq!(allowed(&mut b, 1, 100), 0);
        let mut total = 0;
        for ms in 2..=1001 {
            total += allowed(&mut b, ms, 100);
        }
        assert_eq!(total, 1000, "a second of flood lets the rate through");
        // Idle for long: full again, but only the burst.
        assert_eq!(allowed(&mut b, 1_000_000, 10_000), 50);
        // A clock that goes back gives nothing.
        assert_eq!(allowed(&mut b, 5, 100), 0);
    }

    #[test]
    fn slow_rates_accumulate_fractions() {
        let mut b = TokenBucket::new(10, 1);
        assert!(b.allow(0));
        assert!(!b.allow(50));
        assert!(b.allow(100), "10 a second: one per 100 ms");
        assert!(!b.allow(150));
    }
}
