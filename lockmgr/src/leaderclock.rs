//! The replicated clock as the leader moves it.
//!
//! Leases and request timeouts run on the replicated clock, which only the leader advances
//! ([`lvs_lockcore::Command::Tick`]), from its monotonic clock (`CLOCK_MONOTONIC`, Rust's
//! `Instant`), never from the wall clock. It moves by the monotonic time between two readings,
//! each step capped: a jump of the leader's clock (a VM resumed on another host, a clock that
//! is not monotonic after all, a test's libfaketime) moves it by one capped step at most, less
//! than what any live lease has left (its node renews it every third of a lease, the cap is a
//! third), so no lease runs out because of the jump; a clock that goes back stops it for one
//! step. A late loop (a loaded machine) makes it lag real time: leases then last longer, never
//! shorter.

use std::time::{Duration, Instant};

/// The leader's reading of the replicated clock.
#[derive(Debug, Clone)]
pub struct LeaderClock {
    now_ms: u64,
    /// The fraction of a millisecond not yet counted.
    carry: Duration,
    last: Instant,
}

impl LeaderClock {
    /// Starts at `from_ms` (the replicated clock as this node found it on becoming leader).
    pub fn new(from_ms: u64, now: Instant) -> LeaderClock {
        LeaderClock {
            now_ms: from_ms,
            carry: Duration::ZERO,
            last: now,
        }
    }

    /// The clock at `now`: it moved by the time since the last reading, at most `max_step`,
    /// and is not behind `floor` (the replicated clock as applied).
    pub fn read(&mut self, now: Instant, floor: u64, max_step: Duration) -> u64 {
        let step = now.saturating_duration_since(self.last).min(max_step);
        self.last = now;
        let total = self.carry + step;
        let ms = u64::try_from(total.as_millis()).unwrap_or(u64::MAX);
        self.carry = total.saturating_sub(Duration::from_millis(ms));
        self.now_ms = self.now_ms.saturating_add(ms).max(floor);
        self.now_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: Duration = Duration::from_millis(1000);

    #[test]
    fn follows_the_monotonic_clock_tick_by_tick() {
        let t0 = Instant::now();
        let mut c = LeaderClock::new(5000, t0);
        let mut last = 0;
        for i in 1..=30u32 {
            // 100.5 ms ticks: the half milliseconds are carried, not lost.
            last = c.read(t0 + Duration::from_micros(100_500) * i, 0, CAP);
        }
        assert_eq!(last, 5000 + 3015);
    }

    #[test]
    fn a_forward_jump_moves_it_one_capped_step() {
        let t0 = Instant::now();
        let mut c = LeaderClock::new(0, t0);
        assert_eq!(c.read(t0 + Duration::from_millis(100), 0, CAP), 100);
        assert_eq!(c.read(t0 + Duration::from_secs(3600), 0, CAP), 1100);
        assert_eq!(c.read(t0 + Duration::from_millis(3_600_100), 0, CAP), 1200);
    }

    #[test]
    fn a_backward_jump_stops_it_for_one_step_only() {
        let t0 = Instant::now() + Duration::from_secs(7200);
        let mut c = LeaderClock::new(0, t0);
        assert_eq!(c.read(t0 + Duration::from_millis(100), 0, CAP), 100);
        let back = t0 - Duration::from_secs(3600);
        assert_eq!(c.read(back, 0, CAP), 100);
        assert_eq!(c.read(back + Duration::from_millis(100), 0, CAP), 200);
    }

    #[test]
    fn never_behind_the_applied_clock() {
        let t0 = Instant::now();
        let mut c = LeaderClock::new(0, t0);
        assert_eq!(c.read(t0 + Duration::from_millis(100), 9000, CAP), 9000);
        assert_eq!(c.read(t0 + Duration::from_millis(200), 0, CAP), 9100);
    }
}
