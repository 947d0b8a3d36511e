//! `twos`: weighted random two choices ("power of two choices"). Draws two usable destinations
//! at random, each with probability proportional to its weight, and takes the one with the
//! lower `overhead / weight`, the first draw on a tie. Two random probes avoid both the herd
//! behaviour of a pure least-connections pick on stale counts and the blindness of pure
//! random.
//!
//! Differs from `ip_vs_twos.c`, which draws from `[0, total weight]` inclusive and so favours
//! the first destination slightly; here each draw is exactly proportional to weight. The
//! generator is a SplitMix64 per service, seeded by the option `seed=N` (for reproducible
//! tests) or otherwise from the clock, the process id and a counter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use lvs_sched_abi::{Dest, Flow, Options, Scheduler, Service};

use crate::hash::fmix64;
use crate::util::{check_options, lighter};

/// Weighted random two choices. Option: `seed=N`.
#[derive(Debug)]
pub struct Twos {
    rng: SplitMix64,
}

/// SplitMix64: tiny, fast, and good enough to spread load; not for secrets.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, n)` by multiply-and-shift (Lemire); the bias, below `n / 2^64`, is
    /// far beneath anything load balancing can notice.
    fn below(&mut self, n: u64) -> u64 {
        let wide = u128::from(self.next()) * u128::from(n);
        // The high half of a 64 x 64 bit product fits in 64 bits.
        #[allow(clippy::cast_possible_truncation)]
        let high = (wide >> 64) as u64;
        high
    }
}

/// A seed that differs between services and between processes.
fn fresh_seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| {
        d.as_secs().wrapping_mul(1_000_000_000) ^ u64::from(d.subsec_nanos())
    });
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    fmix64(now ^ u64::from(std::process::id()).rotate_left(40) ^ fmix64(count))
}

impl Scheduler for Twos {
    fn create(_service: &Service, options: &Options) -> Result<Self, String> {
        check_options("twos", options, &["seed"])?;
        let seed = match options.get("seed") {
            Some(_) => options
                .get_u64("seed", 0)
                .map_err(|e| format!("twos: {e}"))?,
            None if options.has("seed") => {
                return Err("twos: option seed needs a value, seed=N".into());
            }
            None => fresh_seed(),
        };
        Ok(Self {
            rng: SplitMix64(seed),
        })
    }

    fn schedule(&mut self, _flow: &Flow, dests: &[Dest]) -> Option<usize> {
        let usable = || dests.iter().enumerate().filter(|(_, d)| d.is_usable());
        let total: u64 = usable().map(|(_, d)| u64::from(d.weight)).sum();
        if total == 0 {
            return None;
        }
        let (r1, r2) = (self.rng.below(total), self.rng.below(total));
        let (mut first, mut second) = (None, None);
        let mut below = 0;
        for (i, d) in usable() {
            below += u64::from(d.weight);
            if first.is_none() && r1 < below {
                first = Some(i);
            }
            if second.is_none() && r2 < below {
                second = Some(i);
            }
            if first.is_some() && second.is_some() {
                break;
            }
        }
        let (a, b) = (first?, second?);
        let (da, db) = (&dests[a], &dests[b]);
        Some(
            if lighter(db.overhead(), db.weight, da.overhead(), da.weight) {
                b
            } else {
                a
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    fn counts(s: &mut Twos, d: &[Dest], n: u32) -> Vec<u32> {
        let mut counts = vec![0; d.len()];
        for i in picks(s, d, n) {
            counts[i.unwrap()] += 1;
        }
        counts
    }

    #[test]
    fn equal_loads_are_picked_in_proportion_to_weight() {
        let d = dests(&[1, 2, 0, 5]);
        let mut s = build::<Twos>("seed=7", &d);
        let c = counts(&mut s, &d, 80_000);
        // With equal loads the first draw wins, so picks follow weight: 1/8, 2/8, 5/8.
        for (got, want) in c.iter().zip([10_000.0, 20_000.0, 0.0, 50_000.0]) {
            assert!((f64::from(*got) - want).abs() <= want * 0.03, "{c:?}");
        }
    }

    #[test]
    fn a_loaded_server_wins_only_when_drawn_twice() {
        let d = vec![with_conns(dest(1, 1), 10, 0), dest(2, 1)];
        let mut s = build::<Twos>("seed=42", &d);
        let c = counts(&mut s, &d, 40_000);
        // P(both draws hit the loaded server) = 1/4.
        assert!((9_000..=11_000).contains(&c[0]), "{c:?}");
    }

    #[test]
    fn load_is_compared_per_unit_of_weight() {
        // 512 / 4 = 128 is lighter than 256 / 1.
        let d = vec![with_conns(dest(1, 1), 1, 0), with_conns(dest(2, 4), 2, 0)];
        let mut s = build::<Twos>("seed=3", &d);
        let c = counts(&mut s, &d, 10_000);
        // Server 1 wins only when drawn twice: (1/5)^2.
        assert!(c[0] < 700, "{c:?}");
    }

    #[test]
    fn the_seed_makes_runs_reproducible() {
        let d = dests(&[3, 1, 4, 1, 5]);
        let mut a = build::<Twos>("seed=99", &d);
        let mut b = build::<Twos>("seed=99", &d);
        let mut c = build::<Twos>("seed=100", &d);
        let (pa, pb, pc) = (
            picks(&mut a, &d, 200),
            picks(&mut b, &d, 200),
            picks(&mut c, &d, 200),
        );
        assert_eq!(pa, pb);
        assert_ne!(pa, pc);
    }

    #[test]
    fn unseeded_services_differ() {
        let d = dests(&[1; 16]);
        let mut a = build::<Twos>("", &d);
        let mut b = build::<Twos>("", &d);
        assert_ne!(picks(&mut a, &d, 64), picks(&mut b, &d, 64));
    }

    #[test]
    fn never_picks_unusable_and_none_when_nothing_is() {
        let d = vec![dest(1, 0), overloaded(dest(2, 9)), dest(3, 1)];
        let mut s = build::<Twos>("seed=1", &d);
        assert!(picks(&mut s, &d, 1000).iter().all(|&i| i == Some(2)));
        assert_eq!(s.schedule(&flow(0), &d[..2]), None);
        assert_eq!(s.schedule(&flow(0), &[]), None);
    }

    #[test]
    fn bad_seed_is_refused() {
        assert!(
            create::<Twos>("seed=x")
                .unwrap_err()
                .contains("not a number")
        );
        assert!(
            create::<Twos>("seed")
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(create::<Twos>("sed=1").unwrap_err().contains("known: seed"));
    }
}
