//! `rr`: round robin. Cycles through the usable destinations in list order, each pick starting
//! after the previous one, as IPVS's `ip_vs_rr.c` does.
//!
//! The position is an index kept in step with the list: an addition before it shifts it up, a
//! removal before it shifts it down, and removing the last-picked destination itself makes the
//! next pick the one that followed it (IPVS moves its list cursor back one for the same reason).

use lvs_sched_abi::{Dest, Flow, Options, Scheduler, Service};

use crate::util::check_options;

/// Round robin. No options.
#[derive(Debug, Default)]
pub struct Rr {
    /// Index of the last destination picked; `None` starts at the head.
    last: Option<usize>,
}

impl Scheduler for Rr {
    fn create(_service: &Service, options: &Options) -> Result<Self, String> {
        check_options("rr", options, &[])?;
        Ok(Self::default())
    }

    fn add_dest(&mut self, _dests: &[Dest], index: usize) {
        self.last = self
            .last
            .map(|last| if last >= index { last + 1 } else { last });
    }

    fn del_dest(&mut self, _dests: &[Dest], index: usize) {
        self.last = match self.last {
            Some(last) if last > index => Some(last - 1),
            Some(last) if last == index => index.checked_sub(1),
            other => other,
        };
    }

    // Weight and flag changes do not move the position.
    fn upd_dest(&mut self, _dests: &[Dest], _index: usize) {}

    fn schedule(&mut self, _flow: &Flow, dests: &[Dest]) -> Option<usize> {
        let n = dests.len();
        let start = self.last.map_or(0, |last| last + 1);
        let chosen = (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| dests[i].is_usable())?;
        self.last = Some(chosen);
        Some(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn cycles_in_list_order_skipping_unusable() {
        let mut d = dests(&[1, 0, 5, 1]);
        d[3] = overloaded(d[3]);
        let mut s = build::<Rr>("", &d);
        let got = picks(&mut s, &d, 6);
        assert_eq!(got, [0, 2, 0, 2, 0, 2].map(Some));
    }

    #[test]
    fn removal_keeps_the_cycle_going() {
        let mut d = dests(&[1, 1, 1, 1]);
        let mut s = build::<Rr>("", &d);
        assert_eq!(picks(&mut s, &d, 2), [Some(0), Some(1)]);
        // Removing the last pick (id 2): the next is the one that followed it (id 3).
        remove(&mut s, &mut d, 1);
        assert_eq!(d[s.schedule(&flow(0), &d).unwrap()].id, 3);
        // Removing one before the position (id 1): the cycle continues with id 4.
        remove(&mut s, &mut d, 0);
        assert_eq!(d[s.schedule(&flow(0), &d).unwrap()].id, 4);
        assert_eq!(d[s.schedule(&flow(0), &d).unwrap()].id, 3);
        // Removing the last pick at the head of the list.
        remove(&mut s, &mut d, 0);
        assert_eq!(d[s.schedule(&flow(0), &d).unwrap()].id, 4);
    }

    #[test]
    fn addition_before_the_position_keeps_it() {
        let mut d = dests(&[1, 1, 1]);
        let mut s = build::<Rr>("", &d);
        assert_eq!(picks(&mut s, &d, 2), [Some(0), Some(1)]);
        d.insert(0, dest(9, 1));
        s.add_dest(&d, 0);
        // Last pick was id 2, now at index 2: next is id 3.
        assert_eq!(d[s.schedule(&flow(0), &d).unwrap()].id, 3);
        assert_eq!(d[s.schedule(&flow(0), &d).unwrap()].id, 9);
    }

    #[test]
    fn none_when_nothing_is_usable() {
        let mut s = build::<Rr>("", &[]);
        assert_eq!(s.schedule(&flow(0), &[]), None);
        let d = vec![dest(1, 0), overloaded(dest(2, 3))];
        assert_eq!(s.schedule(&flow(0), &d), None);
    }

    #[test]
    fn refuses_options() {
        let err = create::<Rr>("port").unwrap_err();
        assert!(err.contains("rr") && err.contains("takes none"), "{err}");
    }
}
