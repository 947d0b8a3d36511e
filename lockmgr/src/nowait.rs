//! The bound on a no-wait (`NOQUEUE`) lock request in Raft mode.
//!
//! A try-lock must answer promptly and definitely. On a node that cannot commit (the minority
//! side of a partition: no quorum, or a follower whose leader is unreachable) it can be neither
//! granted nor refused by the state machine, so the daemon answers it
//! [`crate::protocol::Reply::Unavailable`] instead:
//! - at once, if this node has known no leader for longer than the longest election timeout
//!   (an election in a healthy majority takes less);
//! - else when the request is still unanswered [`Bounds::deadline`] after it arrived: two of
//!   the longest election timeouts, time for a failover in the majority and the resending of
//!   the request to the new leader.
//!
//! The request stays in this node's log of unapplied commands (it may have reached the leader
//! already), so the daemon remembers it as abandoned: if it is applied later and granted, the
//! lock is released at once (a conversion ends the session), and its answer is never sent.
//! A single node commits alone and never needs this.

use std::time::{Duration, Instant};

use crate::replica::ELECTION_TICKS;

/// The bounds, from the daemon's tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// The longest election timeout: no leader for longer means no quorum.
    pub leaderless: Duration,
    /// How long a no-wait request may stay unanswered.
    pub deadline: Duration,
}

impl Bounds {
    /// The bounds for a daemon ticking every `tick`.
    pub fn for_tick(tick: Duration) -> Bounds {
        let longest_election = tick.saturating_mul(2 * u32::try_from(ELECTION_TICKS).unwrap_or(10));
        Bounds {
            leaderless: longest_election,
            deadline: longest_election.saturating_mul(2),
        }
    }

    /// Why a no-wait request that arrived at `since` must be answered "unavailable" at `now`,
    /// given how long this node has known no leader; `None` while it may still commit.
    pub fn verdict(
        &self,
        since: Instant,
        now: Instant,
        leaderless_for: Option<Duration>,
    ) -> Option<String> {
        if let Some(l) = leaderless_for
            && l >= self.leaderless
        {
            return Some(format!(
                "leader unknown for {} ms, longer than an election",
                l.as_millis()
            ));
        }
        let waited = now.saturating_duration_since(since);
        (waited >= self.deadline).then(|| {
            format!(
                "leader unknown or unreachable: nothing committed within {} ms",
                self.deadline.as_millis()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(100);

    #[test]
    fn bounds_are_one_and_two_longest_elections() {
        let b = Bounds::for_tick(TICK);
        assert_eq!(b.leaderless, Duration::from_millis(2000));
        assert_eq!(b.deadline, Duration::from_millis(4000));
    }

    #[test]
    fn a_node_with_a_leader_waits_until_the_deadline_and_no_longer() {
        let b = Bounds::for_tick(TICK);
        let t0 = Instant::now();
        assert_eq!(b.verdict(t0, t0, None), None);
        assert_eq!(b.verdict(t0, t0 + Duration::from_millis(3999), None), None);
        let v = b.verdict(t0, t0 + b.deadline, None).expect("expired");
        assert!(v.contains("within 4000 ms"), "{v}");
        // A clock that went backwards (another core's reading) is not an expiry.
        assert_eq!(b.verdict(t0 + TICK, t0, None), None);
    }

    #[test]
    fn a_short_election_is_waited_out_a_long_one_is_not() {
        let b = Bounds::for_tick(TICK);
        let t0 = Instant::now();
        let short = Some(Duration::from_millis(500));
        assert_eq!(b.verdict(t0, t0, short), None);
        let long = Some(Duration::from_millis(2000));
        let v = b.verdict(t0, t0, long).expect("no quorum at once");
        assert!(v.contains("leader unknown for 2000 ms"), "{v}");
    }

    #[test]
    fn slow_ticks_give_longer_bounds() {
        let b = Bounds::for_tick(Duration::from_millis(1000));
        assert_eq!(b.deadline, Duration::from_secs(40));
    }
}
