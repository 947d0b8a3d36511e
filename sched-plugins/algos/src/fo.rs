//! `fo`: weighted failover. Every new flow goes to the usable destination with the highest
//! weight, the first in the list among equals, as in `ip_vs_fo.c`: the others are standbys
//! that take traffic only while it is quiesced or overloaded.

use lvs_sched_abi::{Dest, Flow, Options, Scheduler, Service};

use crate::util::check_options;

/// Weighted failover. No options.
#[derive(Debug, Default)]
pub struct Fo;

impl Scheduler for Fo {
    fn create(_service: &Service, options: &Options) -> Result<Self, String> {
        check_options("fo", options, &[])?;
        Ok(Self)
    }

    fn schedule(&mut self, _flow: &Flow, dests: &[Dest]) -> Option<usize> {
        heaviest(dests, |_| true)
    }
}

/// The usable destination with the highest weight among those `admit` accepts, the first
/// among equals. Shared with `ovf`.
pub(crate) fn heaviest(dests: &[Dest], admit: impl Fn(&Dest) -> bool) -> Option<usize> {
    let mut best: Option<(usize, u32)> = None;
    for (i, d) in dests.iter().enumerate() {
        if d.is_usable() && admit(d) && best.is_none_or(|(_, w)| d.weight > w) {
            best = Some((i, d.weight));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn heaviest_usable_wins_ties_go_first() {
        let d = vec![
            dest(1, 3),
            overloaded(dest(2, 9)),
            with_conns(dest(3, 5), 1000, 0),
            dest(4, 5),
        ];
        let mut s = build::<Fo>("", &d);
        assert_eq!(s.schedule(&flow(0), &d), Some(2));
    }

    #[test]
    fn fails_over_when_the_primary_goes() {
        let mut d = dests(&[10, 5, 1]);
        let mut s = build::<Fo>("", &d);
        assert_eq!(s.schedule(&flow(0), &d), Some(0));
        d[0].weight = 0;
        s.upd_dest(&d, 0);
        assert_eq!(s.schedule(&flow(0), &d), Some(1));
        d[1] = overloaded(d[1]);
        assert_eq!(s.schedule(&flow(0), &d), Some(2));
        d[2].weight = 0;
        assert_eq!(s.schedule(&flow(0), &d), None);
    }
}
