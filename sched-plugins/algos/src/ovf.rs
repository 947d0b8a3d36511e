//! `ovf`: weighted overflow. Every new flow goes to the usable destination with the highest
//! weight that still has room, `active_conns < weight`; the first among equals. When every
//! destination is full there is no pick.
//!
//! Differs from `ip_vs_ovf.c`, which skips a destination only when `active_conns > weight` and
//! so lets each one run one connection over its weight; here the weight is the limit.

use lvs_sched_abi::{Dest, Flow, Options, Scheduler, Service};

use crate::fo::heaviest;
use crate::util::check_options;

/// Weighted overflow. No options.
#[derive(Debug, Default)]
pub struct Ovf;

impl Scheduler for Ovf {
    fn create(_service: &Service, options: &Options) -> Result<Self, String> {
        check_options("ovf", options, &[])?;
        Ok(Self)
    }

    fn schedule(&mut self, _flow: &Flow, dests: &[Dest]) -> Option<usize> {
        heaviest(dests, |d| d.active_conns < d.weight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn fills_the_heaviest_then_overflows() {
        let mut d = vec![dest(1, 2), dest(2, 3), dest(3, 3)];
        let mut s = build::<Ovf>("", &d);
        let mut order = Vec::new();
        while let Some(i) = s.schedule(&flow(0), &d) {
            d[i].active_conns += 1;
            order.push(d[i].id);
        }
        assert_eq!(order, [2, 2, 2, 3, 3, 3, 1, 1]);
        assert!(d.iter().all(|d| d.active_conns == d.weight));
    }

    #[test]
    fn unusable_and_full_are_skipped() {
        let d = vec![
            overloaded(dest(1, 9)),
            dest(2, 0),
            with_conns(dest(3, 5), 5, 0),
            with_conns(dest(4, 2), 1, 400),
        ];
        let mut s = build::<Ovf>("", &d);
        assert_eq!(s.schedule(&flow(0), &d), Some(3));
        assert_eq!(s.schedule(&flow(0), &d[..3]), None);
        assert_eq!(s.schedule(&flow(0), &[]), None);
    }
}
