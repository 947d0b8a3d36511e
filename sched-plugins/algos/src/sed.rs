//! `sed`: shortest expected delay. Picks the usable destination with the least
//! `(active_conns + 1) / weight`: the delay a new connection would see if every active one
//! is served in parallel at a rate proportional to weight. Ties go to the first in the list;
//! inactive connections do not count, as in `ip_vs_sed.c`.

use lvs_sched_abi::{Dest, Flow, Options, Scheduler, Service};

use crate::util::check_options;
use crate::wlc::least_per_weight;

/// Shortest expected delay. No options.
#[derive(Debug, Default)]
pub struct Sed;

/// The expected delay's numerator: the active connections plus the one being placed.
pub(crate) fn expected_load(d: &Dest) -> u64 {
    u64::from(d.active_conns) + 1
}

impl Scheduler for Sed {
    fn create(_service: &Service, options: &Options) -> Result<Self, String> {
        check_options("sed", options, &[])?;
        Ok(Self)
    }

    fn schedule(&mut self, _flow: &Flow, dests: &[Dest]) -> Option<usize> {
        least_per_weight(dests, expected_load)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn least_expected_delay() {
        let d = vec![
            with_conns(dest(1, 1), 0, 0),    // 1 / 1
            with_conns(dest(2, 4), 2, 1000), // 3 / 4, inactive ignored
            with_conns(dest(3, 2), 1, 0),    // 2 / 2
        ];
        let mut s = build::<Sed>("", &d);
        assert_eq!(s.schedule(&flow(0), &d), Some(1));
    }

    #[test]
    fn an_idle_heavy_server_beats_an_idle_light_one() {
        // Where wlc sees 0 == 0 and takes the first, sed prefers the heavier server.
        let d = vec![dest(1, 1), dest(2, 3)];
        let mut s = build::<Sed>("", &d);
        assert_eq!(s.schedule(&flow(0), &d), Some(1));
    }

    #[test]
    fn ties_go_first_and_unusable_are_skipped() {
        let d = vec![
            dest(1, 0),
            overloaded(dest(2, 5)),
            with_conns(dest(3, 2), 1, 0), // 2 / 2
            with_conns(dest(4, 1), 0, 0), // 1 / 1
        ];
        let mut s = build::<Sed>("", &d);
        assert_eq!(s.schedule(&flow(0), &d), Some(2));
        assert_eq!(s.schedule(&flow(0), &d[..2]), None);
    }
}
