//! `dh`: destination hashing. The flow's destination address (and, with `port`, its port)
//! hashes to a bucket of a sticky table ([`crate::sticky`]), so each destination address
//! (a cache's origin, say) is always served by the same server.
//!
//! Differs from `ip_vs_dh.c` as `sh` differs from `ip_vs_sh.c`: buckets are sized to weights
//! and survive changes. Options as for `sh`: `table_size=N`, `port`, `fallback`.

use lvs_sched_abi::{Dest, Flow, Options, Scheduler, Service};

use crate::hash::{SEED_KEY, hash_addr};
use crate::sticky::StickyHash;

/// Destination hashing. Options: `table_size=N`, `port`, `fallback`.
#[derive(Debug, Clone)]
pub struct Dh(StickyHash);

impl Scheduler for Dh {
    fn create(_service: &Service, options: &Options) -> Result<Self, String> {
        StickyHash::create("dh", options).map(Self)
    }

    fn rebuild(&mut self, dests: &[Dest]) {
        self.0.table.rebuild(dests);
    }

    fn schedule(&mut self, flow: &Flow, dests: &[Dest]) -> Option<usize> {
        let port = self.0.port.then_some(flow.dst_port);
        let hash = hash_addr(SEED_KEY, flow.family, &flow.dst_addr, port);
        self.0.table.pick(hash, dests, self.0.fallback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    /// A flow from a fixed client to destination address `n`.
    fn to(n: u32) -> Flow {
        let mut f = flow(1);
        f.dst_addr = flow(n).src_addr;
        f
    }

    fn mapping(s: &mut Dh, d: &[Dest], n: u32) -> Vec<Option<u32>> {
        (0..n)
            .map(|k| s.schedule(&to(k), d).map(|i| d[i].id))
            .collect()
    }

    #[test]
    fn keys_on_the_destination_not_the_source() {
        let d = dests(&[1; 4]);
        let mut s = build::<Dh>("", &d);
        let mut f = to(7);
        let a = s.schedule(&f, &d);
        f.src_addr = flow(99).src_addr;
        f.src_port = 4242;
        assert_eq!(s.schedule(&f, &d), a);
        let spread = mapping(&mut s, &d, 400);
        assert!((1..=4).all(|id| spread.contains(&Some(id))));
    }

    #[test]
    fn removing_a_server_moves_only_its_destinations() {
        let mut d = dests(&[2, 1, 1, 3]);
        let mut s = build::<Dh>("", &d);
        let before = mapping(&mut s, &d, 10_000);
        remove(&mut s, &mut d, 0);
        let after = mapping(&mut s, &d, 10_000);
        for (b, a) in before.iter().zip(&after) {
            if *b != Some(1) {
                assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn port_option_uses_the_destination_port() {
        let d = dests(&[1; 8]);
        let mut s = build::<Dh>("port", &d);
        let mut f = to(3);
        let a = s.schedule(&f, &d);
        f.src_port ^= 0xffff;
        assert_eq!(s.schedule(&f, &d), a);
        let seen: std::collections::HashSet<_> = (0..200)
            .map(|p| {
                f.dst_port = p;
                s.schedule(&f, &d)
            })
            .collect();
        assert!(seen.len() > 4);
    }

    #[test]
    fn unusable_never_picked_none_when_nothing_is_usable() {
        let d = vec![dest(1, 0), overloaded(dest(2, 1)), dest(3, 1)];
        let mut s = build::<Dh>("", &d);
        let got = mapping(&mut s, &d, 500);
        assert!(got.iter().all(|&g| g == Some(3) || g.is_none()));
        let mut s = build::<Dh>("fallback", &d);
        assert!(mapping(&mut s, &d, 500).iter().all(|&g| g == Some(3)));
        assert_eq!(s.schedule(&to(0), &d[..2]), None);
        assert_eq!(s.schedule(&to(0), &[]), None);
    }
}
