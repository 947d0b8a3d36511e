//! `mh`: Maglev hashing (Eisenbud et al., NSDI 2016; IPVS's `ip_vs_mh.c`). A client address
//! (and, with `port`, its port) hashes to an entry of a lookup table of prime size M, filled
//! so that every destination holds an almost equal share (by weight) and a change to the set
//! moves few entries.
//!
//! Each destination walks its own permutation of the table, `offset, offset + skip, ...`
//! modulo M, with `offset = h1 % M` and `skip = h2 % (M - 1) + 1` from two fixed-seed hashes
//! of its address and port; in turns, each claims the next entry of its permutation not yet
//! taken, until the table is full. As in `ip_vs_mh.c` a destination takes `weight / gcd`
//! entries per turn, the weights shifted right just enough that no destination takes more
//! than `2^(log2(M) / 2)` (256 for M = 65537), so weight is honoured to within a round.
//!
//! Differs from IPVS in two ways. Turns go in the order of the destinations' hashes, not the
//! director's list order, so the table is a function of the set of (address, port, weight)
//! alone and every director builds the same one. And a destination with weight 0 or the
//! quiesced flag holds no entries (IPVS keeps its last weight, and its clients get no server
//! unless `mh-fallback` is set); an overloaded one keeps its entries, as overload is
//! transient.
//!
//! Options: `table_size=M` (a prime, default 65537; more than 100 entries per destination
//! balances well), `port`, `fallback` (without it, a client whose destination is overloaded
//! gets none; with it, the next usable entry in table order serves it).

use lvs_sched_abi::{Dest, Flow, Options, Scheduler, Service};

use crate::hash::{SEED_DEST, SEED_DEST2, SEED_KEY, hash_addr, hash_dest};
use crate::util::{NO_DEST, check_options, flag, gcd, holds_share, pick_slot, reduce};

const DEFAULT_TABLE_SIZE: u64 = 65537;
/// 4M entries cost 16 MiB per service.
const MAX_TABLE_SIZE: u64 = 1 << 22;

/// Maglev hashing. Options: `table_size=M` (prime), `port`, `fallback`.
#[derive(Debug, Clone)]
pub struct Mh {
    size: usize,
    port: bool,
    fallback: bool,
    /// Per entry, the index in the current list of the destination holding it; empty while
    /// no destination holds any.
    table: Vec<u32>,
}

/// A destination taking part in the population.
struct Member {
    index: u32,
    /// Where its permutation is now: its last claim, or `offset` before the first.
    next: usize,
    skip: usize,
    turns: u32,
}

fn is_prime(n: u64) -> bool {
    n >= 2
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

impl Mh {
    /// Fill the table from `dests`. Every entry gets a holder when anyone holds a share.
    fn populate(&self, dests: &[Dest]) -> Vec<u32> {
        let m = self.size;
        let mut members: Vec<(u64, u64, Member)> = Vec::new();
        for (i, d) in dests.iter().enumerate().filter(|(_, d)| holds_share(d)) {
            let Ok(index) = u32::try_from(i) else { break };
            let (h1, h2) = (hash_dest(SEED_DEST, d), hash_dest(SEED_DEST2, d));
            let member = Member {
                index,
                next: reduce(h1, m),
                skip: reduce(h2, m - 1) + 1,
                turns: d.weight,
            };
            members.push((h1, h2, member));
        }
        // Canonical order, so the table does not depend on how the director lists its
        // destinations. Distinct (address, port) pairs colliding on 128 bits: no.
        members.sort_unstable_by_key(|&(h1, h2, _)| (h1, h2));
        // The ABI gives no way to refuse an addition, so with more destinations than entries
        // the last ones in hash order go without.
        members.truncate(m);
        if members.is_empty() {
            return Vec::new();
        }

        let g = members.iter().map(|(_, _, x)| x.turns).fold(0, gcd);
        let top = members
            .iter()
            .map(|(_, _, x)| x.turns / g)
            .max()
            .unwrap_or(1);
        let shift = (u32::BITS - top.leading_zeros()).saturating_sub(m.ilog2() / 2);
        for (_, _, x) in &mut members {
            x.turns = ((x.turns / g) >> shift).max(1);
        }

        let mut table = vec![NO_DEST; m];
        let mut filled = 0;
        loop {
            for (_, _, x) in &mut members {
                for _ in 0..x.turns {
                    // The permutation visits every entry (M is prime, 0 < skip < M), so a
                    // free one is found while the table is not full.
                    while table[x.next] != NO_DEST {
                        x.next = (x.next + x.skip) % m;
                    }
                    table[x.next] = x.index;
                    filled += 1;
                    if filled == m {
                        return table;
                    }
                }
            }
        }
    }
}

impl Scheduler for Mh {
    fn create(_service: &Service, options: &Options) -> Result<Self, String> {
        check_options("mh", options, &["table_size", "port", "fallback"])?;
        let size = options
            .get_u64("table_size", DEFAULT_TABLE_SIZE)
            .map_err(|e| format!("mh: {e}"))?;
        if !(3..=MAX_TABLE_SIZE).contains(&size) || !is_prime(size) {
            return Err(format!(
                "mh: table_size={size} must be a prime from 3 to {MAX_TABLE_SIZE}, well above \
                 the number of destinations (e.g. 251, 1021, 4093, 16381, 65537, 131071)"
            ));
        }
        Ok(Self {
            size: usize::try_from(size).map_err(|_| "mh: table_size too large".to_string())?,
            port: flag("mh", options, "port")?,
            fallback: flag("mh", options, "fallback")?,
            table: Vec::new(),
        })
    }

    fn rebuild(&mut self, dests: &[Dest]) {
        self.table = self.populate(dests);
    }

    fn schedule(&mut self, flow: &Flow, dests: &[Dest]) -> Option<usize> {
        let port = self.port.then_some(flow.src_port);
        let hash = hash_addr(SEED_KEY, flow.family, &flow.src_addr, port);
        if self.table.is_empty() {
            return None;
        }
        pick_slot(
            &self.table,
            reduce(hash, self.table.len()),
            dests,
            self.fallback,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    fn built(options: &str, d: &[Dest]) -> Mh {
        let mut s = create::<Mh>(options).unwrap();
        s.rebuild(d);
        s
    }

    /// Entries held, per destination.
    fn shares(s: &Mh, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for &e in &s.table {
            c[usize::try_from(e).unwrap()] += 1;
        }
        c
    }

    /// The table as destination ids.
    fn ids(s: &Mh, d: &[Dest]) -> Vec<u32> {
        s.table
            .iter()
            .map(|&e| d[usize::try_from(e).unwrap()].id)
            .collect()
    }

    #[test]
    fn equal_weights_get_equal_shares_within_one_percent() {
        for n in [1, 2, 3, 7, 10, 64, 100] {
            let d = dests(&vec![1; n]);
            let s = built("", &d);
            let fair = 65537.0 / n as f64;
            for c in shares(&s, n) {
                assert!(
                    (c as f64 - fair).abs() <= fair * 0.01,
                    "n={n}: {c} vs {fair}"
                );
            }
        }
    }

    #[test]
    fn weighted_shares_follow_weights() {
        let weights = [1, 2, 3, 4, 10];
        let d = dests(&weights);
        let s = built("", &d);
        let total: u32 = weights.iter().sum();
        for (c, w) in shares(&s, d.len()).into_iter().zip(weights) {
            let fair = 65537.0 * f64::from(w) / f64::from(total);
            assert!((c as f64 - fair).abs() <= fair * 0.01, "{c} vs {fair}");
        }
    }

    #[test]
    fn huge_weights_are_scaled_not_overflowed() {
        let d = dests(&[u32::MAX, u32::MAX / 2, 1]);
        let s = built("", &d);
        let c = shares(&s, 3);
        assert!(c[0] > c[1] && c[1] > c[2] && c[2] >= 1, "{c:?}");
    }

    #[test]
    fn removing_one_of_n_moves_about_one_nth() {
        for n in [5, 10, 20] {
            let mut d = dests(&vec![1; n]);
            let s = built("", &d);
            let before = ids(&s, &d);
            d.remove(n / 2);
            let after = ids(&built("", &d), &d);
            let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
            let share = moved as f64 / 65537.0;
            // The removed server's own 1/n must move; Maglev adds a little churn on top, which
            // grows as entries per server shrink: measured 1.004/n, 1.017/n, 1.061/n for n = 5,
            // 10, 20, and 1.21/n, 1.57/n for n = 50, 100 (hence "M well above 100 n").
            assert!(share >= 0.99 / n as f64, "n={n}: {share}");
            assert!(
                share <= 1.2 / n as f64,
                "n={n}: moved {share}, 1/n = {}",
                1.0 / n as f64
            );
        }
    }

    #[test]
    fn same_set_same_table_whatever_the_order() {
        let d = dests(&[1, 2, 3, 1, 1, 5]);
        let mut shuffled = d.clone();
        shuffled.reverse();
        shuffled.swap(0, 3);
        assert_eq!(
            ids(&built("", &d), &d),
            ids(&built("", &shuffled), &shuffled)
        );
        // And adding one by one ends where building at once does.
        let one_by_one = build::<Mh>("", &d);
        assert_eq!(ids(&one_by_one, &d), ids(&built("", &d), &d));
    }

    /// Active-active directors (issue 18): each adds the same servers in its own order, and
    /// with its own history (one had a server that left, another re-weighted one on the way);
    /// every director then sends every flow, hashed on address and port, to the same server.
    #[test]
    fn directors_with_different_histories_pick_the_same_server_for_every_flow() {
        let want = [dest(1, 1), dest(2, 3), dest(3, 1), dest(4, 2), dest(5, 1)];
        let id_of = |d: &[Dest], s: &mut Mh, n: u32| s.schedule(&flow(n), d).map(|i| d[i].id);
        let reference = {
            let mut s = build::<Mh>("table_size=4093,port", &want);
            (0..5000)
                .map(|n| id_of(&want, &mut s, n))
                .collect::<Vec<_>>()
        };
        assert!(reference.iter().all(Option::is_some));
        for order in [
            [4, 3, 2, 1, 0],
            [2, 0, 4, 1, 3],
            [1, 2, 3, 4, 0],
            [3, 4, 0, 2, 1],
        ] {
            let mine: Vec<Dest> = order.iter().map(|&i| want[i]).collect();
            let mut s = build::<Mh>("table_size=4093,port", &mine);
            let got: Vec<_> = (0..5000).map(|n| id_of(&mine, &mut s, n)).collect();
            assert_eq!(got, reference, "added in the order {order:?}");
        }
        // A server that came and went, and a weight that changed and changed back.
        let mut history = vec![dest(9, 4), want[4], want[0], want[3]];
        let mut s = build::<Mh>("table_size=4093,port", &history);
        remove(&mut s, &mut history, 0);
        for d in [want[2], want[1]] {
            history.push(d);
            s.add_dest(&history, history.len() - 1);
        }
        let at = history.len() - 1;
        history[at].weight = 7;
        s.upd_dest(&history, at);
        history[at].weight = 3;
        s.upd_dest(&history, at);
        let got: Vec<_> = (0..5000).map(|n| id_of(&history, &mut s, n)).collect();
        assert_eq!(got, reference, "after a history of changes");
    }

    #[test]
    fn a_client_sticks_and_port_option_spreads() {
        let d = dests(&[1; 4]);
        let mut s = built("table_size=251", &d);
        let f = flow(3);
        let a = s.schedule(&f, &d);
        let mut other_port = f;
        other_port.src_port ^= 0x1234;
        assert_eq!(s.schedule(&other_port, &d), a);
        let mut s = built("table_size=251,port", &d);
        let seen: std::collections::HashSet<_> = (0..200)
            .map(|p| {
                let mut g = f;
                g.src_port = p;
                s.schedule(&g, &d)
            })
            .collect();
        assert_eq!(seen.len(), 4);
    }

    #[test]
    fn quiesced_hold_nothing_and_come_back_to_the_same_entries() {
        let mut d = dests(&[1, 1, 1]);
        let mut s = built("table_size=1021", &d);
        let before = s.table.clone();
        d[1].weight = 0;
        s.upd_dest(&d, 1);
        assert_eq!(shares(&s, 3)[1], 0);
        d[1].weight = 1;
        s.upd_dest(&d, 1);
        assert_eq!(s.table, before);
    }

    #[test]
    fn fallback_serves_clients_of_an_overloaded_server() {
        let mut d = dests(&[1, 1, 1]);
        let mut strict = built("table_size=1021", &d);
        let mut fb = built("table_size=1021,fallback", &d);
        d[2] = overloaded(d[2]);
        let (mut none, mut rescued) = (0, 0);
        for k in 0..3000 {
            let (a, b) = (strict.schedule(&flow(k), &d), fb.schedule(&flow(k), &d));
            assert_ne!(a, Some(2));
            assert_ne!(b, Some(2));
            assert!(b.is_some());
            if a.is_none() {
                none += 1;
            } else {
                assert_eq!(a, b);
            }
            rescued += usize::from(a.is_none() && b.is_some());
        }
        assert!(none > 800 && rescued == none, "{none} {rescued}");
    }

    #[test]
    fn none_when_nothing_is_usable() {
        let mut s = built("fallback", &[]);
        assert_eq!(s.schedule(&flow(0), &[]), None);
        let d = vec![dest(1, 0), overloaded(dest(2, 1))];
        s.rebuild(&d);
        assert_eq!(s.schedule(&flow(0), &d), None);
    }

    #[test]
    fn more_destinations_than_entries_fill_the_table() {
        let d = dests(&[1; 10]);
        let s = built("table_size=7", &d);
        assert!(s.table.iter().all(|&e| e != NO_DEST));
    }

    #[test]
    fn table_size_must_be_a_sensible_prime() {
        for bad in [
            "table_size=65536",
            "table_size=1",
            "table_size=2",
            "table_size=0",
            "table_size=4194319",
        ] {
            let err = create::<Mh>(bad).unwrap_err();
            assert!(err.contains("must be a prime"), "{bad}: {err}");
        }
        assert!(
            create::<Mh>("table_size=x")
                .unwrap_err()
                .contains("not a number")
        );
        assert!(
            create::<Mh>("tablesize=251")
                .unwrap_err()
                .contains("unknown")
        );
        assert!(create::<Mh>("port=1").unwrap_err().contains("flag"));
        for good in [
            "",
            "table_size=251",
            "table_size=131071,port,fallback",
            "table_size=3",
        ] {
            assert!(create::<Mh>(good).is_ok(), "{good}");
        }
        assert!(is_prime(65537) && is_prime(2) && !is_prime(1) && !is_prime(65535));
    }
}
