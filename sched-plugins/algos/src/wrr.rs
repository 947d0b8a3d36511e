//! `wrr`: weighted round robin, interleaved as IPVS's `ip_vs_wrr.c` does it.
//!
//! A current weight `cw` steps down from the top level `mw` by `di`, the gcd of the weights;
//! at each level the list is walked in order and every usable destination whose weight is at
//! least `cw` is picked once. Over one cycle a destination is picked `weight / di` times, and
//! heavy ones are spread through the cycle rather than bunched: weights 4, 3, 2 give
//! A A B A B C A B C. `mw` is the highest weight less `di - 1`, so levels are `1 mod di` and
//! the last level of a cycle is 1. Any change to the list resets as `ip_vs_wrr_dest_changed`
//! does: the walk restarts at the head and `cw` is kept if it still fits.
//!
//! Differs from IPVS only in cost: where no usable destination can reach the current level
//! (say the heaviest is overloaded), IPVS walks the whole list once per empty level, up to
//! `max weight / gcd` times per pick; this jumps straight to the highest level some usable
//! destination reaches, which picks the same destination in at most two walks.

use lvs_sched_abi::{Dest, Flow, Options, Scheduler, Service};

use crate::util::{check_options, gcd};

/// Weighted round robin. No options.
#[derive(Debug, Default)]
pub struct Wrr {
    /// Index of the last pick; the walk resumes after it. `None` starts at the head.
    last: Option<usize>,
    /// Current level.
    cw: u32,
    /// Top level; 0 when every weight is 0.
    mw: u32,
    /// Step between levels: the gcd of the non-zero weights, or 1.
    di: u32,
}

impl Wrr {
    /// The highest level, `mw - k * di`, at most `weight`; 1 is always a level.
    fn level_at_most(&self, weight: u32) -> u32 {
        if weight >= self.mw {
            return self.mw;
        }
        let steps = (self.mw - weight).div_ceil(self.di);
        self.mw.saturating_sub(steps.saturating_mul(self.di)).max(1)
    }
}

impl Scheduler for Wrr {
    fn create(_service: &Service, options: &Options) -> Result<Self, String> {
        check_options("wrr", options, &[])?;
        Ok(Self::default())
    }

    fn rebuild(&mut self, dests: &[Dest]) {
        // Weights of overloaded or flagged destinations count, as in IPVS: their flags come
        // and go without a rebuild, and the walk skips them anyway.
        let di = dests.iter().map(|d| d.weight).fold(0, gcd).max(1);
        let max = dests.iter().map(|d| d.weight).max().unwrap_or(0);
        self.last = None;
        self.di = di;
        self.mw = max.saturating_sub(di - 1);
        self.cw = if self.cw > self.mw || self.cw == 0 {
            self.mw
        } else if di > 1 {
            // Back onto a level, `1 mod di`, at or above where the cycle was.
            (self.cw / di) * di + 1
        } else {
            self.cw
        };
    }

    fn schedule(&mut self, _flow: &Flow, dests: &[Dest]) -> Option<usize> {
        if self.mw == 0 {
            return None;
        }
        let reachable = dests
            .iter()
            .filter(|d| d.is_usable())
            .map(|d| d.weight)
            .max()?;
        let mut cw = self.cw.clamp(1, self.mw);
        let mut start = self.last.map_or(0, |last| last + 1);
        // Terminates: after the first walk `cw <= reachable`, so the next walk from the head
        // finds the destination of weight `reachable`.
        loop {
            let found =
                (start..dests.len()).find(|&i| dests[i].is_usable() && dests[i].weight >= cw);
            if let Some(i) = found {
                self.last = Some(i);
                self.cw = cw;
                return Some(i);
            }
            cw = if cw > self.di { cw - self.di } else { self.mw };
            cw = cw.min(self.level_at_most(reachable));
            start = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use proptest::prelude::*;

    fn ids(d: &[Dest], got: &[Option<usize>]) -> Vec<u32> {
        got.iter().map(|i| d[i.unwrap()].id).collect()
    }

    /// A service created with all of `d` at once: the cycle starts at the top.
    fn fresh(d: &[Dest]) -> Wrr {
        let mut s = create::<Wrr>("").unwrap();
        s.rebuild(d);
        s
    }

    #[test]
    fn interleaves_like_ipvs() {
        let d = dests(&[4, 3, 2]);
        let mut s = fresh(&d);
        let got = picks(&mut s, &d, 18);
        let cycle = [1, 1, 2, 1, 2, 3, 1, 2, 3];
        assert_eq!(ids(&d, &got), [cycle, cycle].concat());
    }

    #[test]
    fn adding_one_by_one_finishes_the_current_cycle_first() {
        // As in IPVS: adding A (4) alone sets level 1 (gcd 4); adding B and C keeps it, so the
        // first walk picks everyone once before the full cycle starts.
        let d = dests(&[4, 3, 2]);
        let mut s = build::<Wrr>("", &d);
        let got = picks(&mut s, &d, 12);
        assert_eq!(ids(&d, &got), [1, 2, 3, 1, 1, 2, 1, 2, 3, 1, 2, 3]);
    }

    #[test]
    fn common_divisor_is_stepped_over() {
        let d = dests(&[4, 2]);
        let mut s = fresh(&d);
        assert_eq!(ids(&d, &picks(&mut s, &d, 6)), [1, 1, 2, 1, 1, 2]);
    }

    #[test]
    fn unusable_destinations_are_skipped_and_the_rest_keep_their_ratio() {
        let mut d = dests(&[100, 3, 0, 1]);
        d[0] = overloaded(d[0]);
        let mut s = fresh(&d);
        let got = ids(&d, &picks(&mut s, &d, 8));
        assert_eq!(got, [2, 2, 2, 4, 2, 2, 2, 4]);
    }

    #[test]
    fn a_weight_change_restarts_at_the_head() {
        let mut d = dests(&[2, 2, 2]);
        let mut s = fresh(&d);
        assert_eq!(ids(&d, &picks(&mut s, &d, 2)), [1, 2]);
        d[2].weight = 4;
        s.upd_dest(&d, 2);
        // gcd 2, mw 3; cw stays at level 1 and the walk restarts from the head, then level 3
        // picks only id 3.
        assert_eq!(ids(&d, &picks(&mut s, &d, 6)), [1, 2, 3, 3, 1, 2]);
    }

    #[test]
    fn none_when_nothing_is_usable() {
        let mut s = build::<Wrr>("", &[]);
        assert_eq!(s.schedule(&flow(0), &[]), None);
        let d = vec![dest(1, 0), overloaded(dest(2, 5))];
        let mut s = build::<Wrr>("", &d);
        assert_eq!(s.schedule(&flow(0), &d), None);
    }

    proptest! {
        #[test]
        fn one_cycle_is_exactly_proportional(weights in prop::collection::vec(1u32..20, 1..8)) {
            let d = dests(&weights);
            let mut s = fresh(&d);
            let g = weights.iter().copied().fold(0, gcd);
            let cycle: u32 = weights.iter().map(|w| w / g).sum();
            for _ in 0..2 {
                let mut counts = vec![0u32; d.len()];
                for i in picks(&mut s, &d, cycle) {
                    counts[i.unwrap()] += 1;
                }
                let want: Vec<u32> = weights.iter().map(|w| w / g).collect();
                prop_assert_eq!(counts, want);
            }
        }
    }
}
