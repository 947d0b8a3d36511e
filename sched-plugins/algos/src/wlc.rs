//! `wlc`: weighted least connections. Picks the usable destination with the least
//! `overhead / weight`, compared by cross-multiplication so nothing rounds; ties go to the
//! first in the list, as in `ip_vs_wlc.c`.

use lvs_sched_abi::{Dest, Flow, Options, Scheduler, Service};

use crate::util::{check_options, lighter};

/// Weighted least connections. No options.
#[derive(Debug, Default)]
pub struct Wlc;

impl Scheduler for Wlc {
    fn create(_service: &Service, options: &Options) -> Result<Self, String> {
        check_options("wlc", options, &[])?;
        Ok(Self)
    }

    fn schedule(&mut self, _flow: &Flow, dests: &[Dest]) -> Option<usize> {
        least_per_weight(dests, Dest::overhead)
    }
}

/// The usable destination with the least `load(d) / d.weight`, the first among equals. Shared
/// with `sed` and `nq`, which differ only in the load figure.
pub(crate) fn least_per_weight(dests: &[Dest], load: impl Fn(&Dest) -> u64) -> Option<usize> {
    let mut best: Option<(usize, u64, u32)> = None;
    for (i, d) in dests.iter().enumerate().filter(|(_, d)| d.is_usable()) {
        let l = load(d);
        if best.is_none_or(|(_, bl, bw)| lighter(l, d.weight, bl, bw)) {
            best = Some((i, l, d.weight));
        }
    }
    best.map(|(i, _, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn least_overhead_per_weight() {
        let d = vec![
            with_conns(dest(1, 1), 1, 0),   // 256 / 1
            with_conns(dest(2, 3), 2, 0),   // 512 / 3 = 170.7
            with_conns(dest(3, 2), 1, 100), // 356 / 2 = 178
        ];
        let mut s = build::<Wlc>("", &d);
        assert_eq!(s.schedule(&flow(0), &d), Some(1));
    }

    #[test]
    fn ties_go_first_and_unusable_are_skipped() {
        let d = vec![
            overloaded(with_conns(dest(1, 9), 0, 0)),
            with_conns(dest(2, 1), 1, 0), // 256 / 1
            with_conns(dest(3, 2), 2, 0), // 512 / 2
            with_conns(dest(4, 0), 0, 0),
        ];
        let mut s = build::<Wlc>("", &d);
        assert_eq!(s.schedule(&flow(0), &d), Some(1));
        assert_eq!(s.schedule(&flow(0), &d[..1]), None);
        assert_eq!(s.schedule(&flow(0), &[]), None);
    }

    #[test]
    fn huge_counts_do_not_overflow() {
        let d = vec![
            with_conns(dest(1, u32::MAX), u32::MAX, u32::MAX),
            with_conns(dest(2, u32::MAX - 1), u32::MAX, u32::MAX),
        ];
        let mut s = build::<Wlc>("", &d);
        assert_eq!(s.schedule(&flow(0), &d), Some(0));
    }
}
