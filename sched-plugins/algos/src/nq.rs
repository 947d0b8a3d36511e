//! `nq`: never queue. An idle usable destination (no active connections) takes the new flow
//! at once, the first such in the list; when every one is busy, `nq` picks as `sed` does.
//! Same as `ip_vs_nq.c`.

use lvs_sched_abi::{Dest, Flow, Options, Scheduler, Service};

use crate::sed::expected_load;
use crate::util::check_options;
use crate::wlc::least_per_weight;

/// Never queue. No options.
#[derive(Debug, Default)]
pub struct Nq;

impl Scheduler for Nq {
    fn create(_service: &Service, options: &Options) -> Result<Self, String> {
        check_options("nq", options, &[])?;
        Ok(Self)
    }

    fn schedule(&mut self, _flow: &Flow, dests: &[Dest]) -> Option<usize> {
        dests
            .iter()
            .position(|d| d.is_usable() && d.active_conns == 0)
            .or_else(|| least_per_weight(dests, expected_load))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn first_idle_server_wins_regardless_of_weight() {
        let d = vec![
            with_conns(dest(1, 100), 1, 0),
            with_conns(dest(2, 1), 0, 500),
            with_conns(dest(3, 50), 0, 0),
        ];
        let mut s = build::<Nq>("", &d);
        assert_eq!(s.schedule(&flow(0), &d), Some(1));
    }

    #[test]
    fn idle_but_unusable_is_skipped() {
        let d = vec![
            dest(1, 0),
            overloaded(dest(2, 1)),
            with_conns(dest(3, 1), 3, 0),
        ];
        let mut s = build::<Nq>("", &d);
        assert_eq!(s.schedule(&flow(0), &d), Some(2));
        assert_eq!(s.schedule(&flow(0), &d[..2]), None);
    }

    #[test]
    fn all_busy_falls_back_to_sed() {
        let d = vec![
            with_conns(dest(1, 1), 1, 0), // 2 / 1
            with_conns(dest(2, 4), 5, 0), // 6 / 4
            with_conns(dest(3, 3), 3, 0), // 4 / 3
        ];
        let mut s = build::<Nq>("", &d);
        assert_eq!(s.schedule(&flow(0), &d), Some(2));
    }
}
