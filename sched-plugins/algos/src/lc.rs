//! `lc`: least connections. Picks the usable destination with the least overhead, IPVS's
//! `active * 256 + inactive` ([`Dest::overhead`]); ties go to the first in the list, as in
//! `ip_vs_lc.c`.

use lvs_sched_abi::{Dest, Flow, Options, Scheduler, Service};

use crate::util::check_options;

/// Least connections. No options.
#[derive(Debug, Default)]
pub struct Lc;

impl Scheduler for Lc {
    fn create(_service: &Service, options: &Options) -> Result<Self, String> {
        check_options("lc", options, &[])?;
        Ok(Self)
    }

    fn schedule(&mut self, _flow: &Flow, dests: &[Dest]) -> Option<usize> {
        // `min_by_key` keeps the first of equal keys.
        dests
            .iter()
            .enumerate()
            .filter(|(_, d)| d.is_usable())
            .min_by_key(|(_, d)| d.overhead())
            .map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn least_overhead_wins_ties_go_first() {
        let d = vec![
            with_conns(dest(1, 1), 1, 0),   // 256
            with_conns(dest(2, 1), 0, 300), // 300
            with_conns(dest(3, 9), 0, 200), // 200
            with_conns(dest(4, 1), 0, 200), // 200, later
        ];
        let mut s = build::<Lc>("", &d);
        assert_eq!(s.schedule(&flow(0), &d), Some(2));
    }

    #[test]
    fn weight_is_ignored_except_zero() {
        let d = vec![
            with_conns(dest(1, 0), 0, 0),
            with_conns(dest(2, 100), 5, 0),
            dest(3, 1),
        ];
        let mut s = build::<Lc>("", &d);
        assert_eq!(s.schedule(&flow(0), &d), Some(2));
        let d = vec![dest(1, 0), overloaded(dest(2, 1))];
        assert_eq!(s.schedule(&flow(0), &d), None);
        assert_eq!(s.schedule(&flow(0), &[]), None);
    }
}
