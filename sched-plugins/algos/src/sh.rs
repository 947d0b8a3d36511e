//! `sh`: source hashing. A client address (and, with `port`, its port) hashes to a bucket of a
//! sticky table ([`crate::sticky`]) whose holder takes the flow, so a client keeps reaching the
//! same server without connection state.
//!
//! Differs from `ip_vs_sh.c` in the table: buckets are sized to weights and survive changes,
//! so removing a server moves only its own clients and adding one moves only the clients it
//! takes. Options are `table_size=N` (a power of two, default 4096; grows with the number of
//! servers), `port` and `fallback` (IPVS's `sh-port` and `sh-fallback`): without `fallback`
//! a client whose server is overloaded gets no server.

use lvs_sched_abi::{Dest, Flow, Options, Scheduler, Service};

use crate::hash::{SEED_KEY, hash_addr};
use crate::sticky::StickyHash;

/// Source hashing. Options: `table_size=N`, `port`, `fallback`.
#[derive(Debug, Clone)]
pub struct Sh(StickyHash);

impl Scheduler for Sh {
    fn create(_service: &Service, options: &Options) -> Result<Self, String> {
        StickyHash::create("sh", options).map(Self)
    }

    fn rebuild(&mut self, dests: &[Dest]) {
        self.0.table.rebuild(dests);
    }

    fn schedule(&mut self, flow: &Flow, dests: &[Dest]) -> Option<usize> {
        let port = self.0.port.then_some(flow.src_port);
        let hash = hash_addr(SEED_KEY, flow.family, &flow.src_addr, port);
        self.0.table.pick(hash, dests, self.0.fallback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use std::collections::HashMap;

    /// Map each of `n` clients to a destination id.
    fn mapping(s: &mut Sh, d: &[Dest], n: u32) -> Vec<Option<u32>> {
        (0..n)
            .map(|k| s.schedule(&flow(k), d).map(|i| d[i].id))
            .collect()
    }

    #[test]
    fn a_client_sticks_to_one_server() {
        let d = dests(&[1, 2, 3]);
        let mut s = build::<Sh>("", &d);
        let first = mapping(&mut s, &d, 2000);
        assert!(first.iter().all(Option::is_some));
        assert_eq!(mapping(&mut s, &d, 2000), first);
        // Another port of the same client: same server, unless `port` is set.
        let mut f = flow(5);
        let a = s.schedule(&f, &d);
        f.src_port ^= 0x5555;
        assert_eq!(s.schedule(&f, &d), a);
    }

    #[test]
    fn port_option_spreads_one_client_over_servers() {
        let d = dests(&[1; 4]);
        let mut s = build::<Sh>("port", &d);
        let mut f = flow(1);
        let mut seen = [false; 4];
        for port in 1000..1100 {
            f.src_port = port;
            seen[s.schedule(&f, &d).unwrap()] = true;
        }
        assert_eq!(seen, [true; 4]);
    }

    #[test]
    fn flags_take_on_and_off_but_no_other_value() {
        let d = dests(&[1; 4]);
        let mut on = build::<Sh>("port=on", &d);
        let mut bare = build::<Sh>("port", &d);
        let mut f = flow(1);
        for port in 1000..1100 {
            f.src_port = port;
            assert_eq!(on.schedule(&f, &d), bare.schedule(&f, &d));
        }
        assert!(!build::<Sh>("port=off,fallback=off", &d).0.port);
        let err = create::<Sh>("port=1").unwrap_err();
        assert!(err.contains("port=on or port=off"), "{err}");
    }

    #[test]
    fn removing_a_server_moves_only_its_clients() {
        let mut d = dests(&[1, 1, 1, 1, 1, 1, 1, 1]);
        let mut s = build::<Sh>("", &d);
        let before = mapping(&mut s, &d, 20_000);
        remove(&mut s, &mut d, 3);
        let after = mapping(&mut s, &d, 20_000);
        for (b, a) in before.iter().zip(&after) {
            if *b == Some(4) {
                assert!(a.is_some() && *a != Some(4));
            } else {
                assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn adding_a_server_moves_only_the_clients_it_takes() {
        let mut d = dests(&[1; 5]);
        let mut s = build::<Sh>("", &d);
        let before = mapping(&mut s, &d, 20_000);
        d.push(dest(6, 1));
        s.add_dest(&d, 5);
        let after = mapping(&mut s, &d, 20_000);
        let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
        assert!(
            before
                .iter()
                .zip(&after)
                .all(|(b, a)| b == a || *a == Some(6))
        );
        // About 1/6 of the clients.
        assert!((2800..=3900).contains(&moved), "{moved}");
    }

    #[test]
    fn clients_spread_by_weight() {
        let d = dests(&[1, 3]);
        let mut s = build::<Sh>("", &d);
        let mut counts: HashMap<Option<u32>, u32> = HashMap::new();
        for id in mapping(&mut s, &d, 40_000) {
            *counts.entry(id).or_default() += 1;
        }
        assert!((9_200..=10_800).contains(&counts[&Some(1)]), "{counts:?}");
    }

    #[test]
    fn fallback_takes_the_next_usable_server() {
        let mut d = dests(&[1, 1, 1]);
        let mut plain = build::<Sh>("", &d);
        let mut fb = build::<Sh>("fallback", &d);
        let before = mapping(&mut fb, &d, 3000);
        d[0] = overloaded(d[0]);
        let strict = mapping(&mut plain, &d, 3000);
        let rescued = mapping(&mut fb, &d, 3000);
        for ((b, s), r) in before.iter().zip(&strict).zip(&rescued) {
            if *b == Some(1) {
                assert_eq!(*s, None);
                assert!(matches!(r, Some(2 | 3)));
            } else {
                assert_eq!(s, b);
                assert_eq!(r, b);
            }
        }
        // The overload passes; the clients come back.
        d[0].flags = 0;
        assert_eq!(mapping(&mut fb, &d, 3000), before);
    }

    #[test]
    fn none_when_nothing_is_usable() {
        let mut s = build::<Sh>("fallback", &[]);
        assert_eq!(s.schedule(&flow(0), &[]), None);
        let d = vec![dest(1, 0), overloaded(dest(2, 1))];
        let mut s = build::<Sh>("fallback", &d);
        assert_eq!(s.schedule(&flow(0), &d), None);
    }

    #[test]
    fn options_are_checked() {
        assert!(
            create::<Sh>("table_size=1000")
                .unwrap_err()
                .contains("power of two")
        );
        assert!(
            create::<Sh>("table_size=8")
                .unwrap_err()
                .contains("power of two")
        );
        assert!(create::<Sh>("fallback=yes").unwrap_err().contains("flag"));
        assert!(create::<Sh>("sh-port").unwrap_err().contains("unknown"));
        assert!(create::<Sh>("table_size=65536,port,fallback").is_ok());
    }
}
