//! The scheduling algorithms behind the bundled scheduler plugins: one small module per
//! scheduler, each a type implementing [`lvs_sched_abi::Scheduler`] with the semantics of the
//! Linux IPVS scheduler of the same name (`net/netfilter/ipvs/ip_vs_*.c`); where one differs,
//! its module says how and why.
//!
//! | type    | picks                                                   | options                          |
//! |---------|---------------------------------------------------------|----------------------------------|
//! | [`Rr`]  | the next usable destination, in list order              |                                  |
//! | [`Wrr`] | round robin in proportion to weight, interleaved        |                                  |
//! | [`Lc`]  | least `active * 256 + inactive`                         |                                  |
//! | [`Wlc`] | least overhead per unit of weight                       |                                  |
//! | [`Sed`] | least `(active + 1) / weight`                           |                                  |
//! | [`Nq`]  | the first idle destination, else as `sed`               |                                  |
//! | [`Fo`]  | the heaviest usable destination                         |                                  |
//! | [`Ovf`] | the heaviest with `active < weight`                     |                                  |
//! | [`Twos`]| the lighter of two weighted random draws                | `seed=N`                         |
//! | [`Sh`]  | by hash of the source address, sticky bucket table      | `table_size=2^k`, `port`, `fallback` |
//! | [`Dh`]  | by hash of the destination address, sticky bucket table | `table_size=2^k`, `port`, `fallback` |
//! | [`Mh`]  | by hash of the source address, Maglev table             | `table_size=prime`, `port`, `fallback` |
//!
//! Rules every scheduler keeps: a destination that is not [`Dest::is_usable`] is never picked;
//! with no usable destination the answer is `None`; `schedule` never allocates (it runs once
//! per new connection), only `create` and the list-change callbacks do.
//!
//! [`Dest::is_usable`]: lvs_sched_abi::Dest::is_usable

#![forbid(unsafe_code)]

mod hash;
mod sticky;
mod util;

mod dh;
mod fo;
mod lc;
mod mh;
mod nq;
mod ovf;
mod rr;
mod sed;
mod sh;
mod twos;
mod wlc;
mod wrr;

#[cfg(test)]
mod testutil;

pub use dh::Dh;
pub use fo::Fo;
pub use lc::Lc;
pub use mh::Mh;
pub use nq::Nq;
pub use ovf::Ovf;
pub use rr::Rr;
pub use sed::Sed;
pub use sh::Sh;
pub use twos::Twos;
pub use wlc::Wlc;
pub use wrr::Wrr;

/// Properties every scheduler shares, over random lists of destinations.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use lvs_sched_abi::{DEST_F_OVERLOADED, DEST_F_QUIESCED, Dest, Scheduler};
    use proptest::prelude::*;

    /// How a scheduler must answer when some destination is usable.
    #[derive(Clone, Copy, PartialEq)]
    enum Answers {
        /// Always picks one.
        Always,
        /// May decline: `ovf` when all are full, the hashes when the key's holder is unusable.
        MayDecline,
    }

    /// Build `T` one destination at a time, remove one, change another, then schedule and
    /// check every answer.
    fn check<T: Scheduler>(options: &str, answers: Answers, mut d: Vec<Dest>, edit: usize) {
        let mut s = build::<T>(options, &d);
        if !d.is_empty() {
            let i = edit % d.len();
            remove(&mut s, &mut d, i);
        }
        if !d.is_empty() {
            let i = edit / 7 % d.len();
            d[i].weight = u32::try_from(edit % 3).unwrap();
            s.upd_dest(&d, i);
        }
        let any_usable = d.iter().any(Dest::is_usable);
        for n in 0..64 {
            match s.schedule(&flow(n), &d) {
                Some(i) => {
                    assert!(i < d.len(), "{options}: index {i} out of range");
                    assert!(d[i].is_usable(), "{options}: picked unusable {:?}", d[i]);
                }
                None => assert!(
                    !any_usable || answers == Answers::MayDecline,
                    "{options}: None with a usable destination in {d:?}"
                ),
            }
        }
    }

    fn destinations() -> impl Strategy<Value = Vec<Dest>> {
        let state = (0u32..6, 0u32..4, 0u32..12, 0u32..40);
        prop::collection::vec(state, 0..12).prop_map(|v| {
            (1..)
                .zip(v)
                .map(|(id, (weight, flags, active, inactive))| {
                    let mut d = with_conns(dest(id, weight), active, inactive);
                    d.flags = flags & (DEST_F_QUIESCED | DEST_F_OVERLOADED);
                    d
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn never_picks_unusable_and_answers_when_it_must(d in destinations(), edit in any::<usize>()) {
            use Answers::{Always, MayDecline};
            check::<Rr>("", Always, d.clone(), edit);
            check::<Wrr>("", Always, d.clone(), edit);
            check::<Lc>("", Always, d.clone(), edit);
            check::<Wlc>("", Always, d.clone(), edit);
            check::<Sed>("", Always, d.clone(), edit);
            check::<Nq>("", Always, d.clone(), edit);
            check::<Fo>("", Always, d.clone(), edit);
            check::<Ovf>("", MayDecline, d.clone(), edit);
            check::<Twos>("seed=5", Always, d.clone(), edit);
            check::<Sh>("table_size=64", MayDecline, d.clone(), edit);
            check::<Sh>("table_size=64,fallback,port", Always, d.clone(), edit);
            check::<Dh>("", MayDecline, d.clone(), edit);
            check::<Dh>("fallback", Always, d.clone(), edit);
            check::<Mh>("table_size=251", MayDecline, d.clone(), edit);
            check::<Mh>("table_size=251,fallback,port", Always, d, edit);
        }
    }

    fn first_pick<T: Scheduler>(d: &[Dest]) -> Option<usize> {
        build::<T>("", d).schedule(&flow(0), d)
    }

    /// `load / weight` of `d`, for comparing by cross-multiplication.
    fn ratio(load: fn(&Dest) -> u64) -> impl Fn(&Dest) -> (u128, u128) {
        move |d| (u128::from(load(d)), u128::from(d.weight))
    }

    /// `chosen` is the first usable destination minimising `key` (a fraction).
    fn is_first_minimum(d: &[Dest], chosen: usize, key: impl Fn(&Dest) -> (u128, u128)) -> bool {
        let (cn, cd) = key(&d[chosen]);
        d.iter()
            .enumerate()
            .filter(|(_, x)| x.is_usable())
            .all(|(j, x)| {
                let (n, dd) = key(x);
                // chosen <= x, and strictly below those listed before it.
                if j < chosen {
                    cn * dd < n * cd
                } else {
                    cn * dd <= n * cd
                }
            })
    }

    proptest! {
        #[test]
        fn least_and_heaviest_families_pick_the_first_best(d in destinations()) {
            let usable = d.iter().any(Dest::is_usable);
            let lc = first_pick::<Lc>(&d);
            let wlc = first_pick::<Wlc>(&d);
            let sed = first_pick::<Sed>(&d);
            let nq = first_pick::<Nq>(&d);
            let fo = first_pick::<Fo>(&d);
            let ovf = first_pick::<Ovf>(&d);
            for got in [lc, wlc, sed, nq, fo] {
                prop_assert_eq!(got.is_some(), usable);
            }
            if !usable {
                return Ok(());
            }
            prop_assert!(is_first_minimum(&d, lc.unwrap(), |x| (u128::from(x.overhead()), 1)));
            prop_assert!(is_first_minimum(&d, wlc.unwrap(), ratio(Dest::overhead)));
            let delay = |x: &Dest| u64::from(x.active_conns) + 1;
            prop_assert!(is_first_minimum(&d, sed.unwrap(), ratio(delay)));
            match d.iter().position(|x| x.is_usable() && x.active_conns == 0) {
                Some(idle) => prop_assert_eq!(nq, Some(idle)),
                None => prop_assert_eq!(nq, sed),
            }
            // Heaviest = least 1 / weight.
            prop_assert!(is_first_minimum(&d, fo.unwrap(), |x| (1, u128::from(x.weight))));
            let room: Vec<Dest> = d
                .iter()
                .map(|x| if x.active_conns < x.weight { *x } else { Dest { weight: 0, ..*x } })
                .collect();
            match ovf {
                Some(i) => prop_assert!(is_first_minimum(&room, i, |x| (1, u128::from(x.weight)))),
                None => prop_assert!(!room.iter().any(Dest::is_usable)),
            }
        }
    }

    #[test]
    fn ovf_answers_when_one_has_room() {
        let d = vec![with_conns(dest(1, 2), 2, 0), with_conns(dest(2, 1), 0, 0)];
        assert_eq!(build::<Ovf>("", &d).schedule(&flow(0), &d), Some(1));
    }
}
