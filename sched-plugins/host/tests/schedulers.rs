//! Each bundled scheduler's defining property, checked through the real loaded `.so` (built by
//! `cargo build --workspace`) and the host's `Instance`, as the director will use them.
//!
//! Every property is checked over IPv4 and over IPv6 with the same expectations: the ABI
//! carries both families in the same 16-byte fields, so no scheduler may behave differently by
//! family, and the hashing ones must hash the whole IPv6 address.

mod common;

use common::*;
use lvs_sched_abi::{DEST_F_OVERLOADED, Dest};
use lvs_sched_host::{Instance, Registry};
use proptest::prelude::*;

const CRR: &str = include_str!("../../examples/c/crr.c");

const ALL: [&str; 12] = [
    "rr", "wrr", "lc", "wlc", "sh", "dh", "mh", "sed", "nq", "fo", "ovf", "twos",
];

/// Each case as an IPv4 test and an IPv6 test.
macro_rules! in_both_families {
    ($($case:ident),* $(,)?) => {
        mod ipv4 {
            $(#[test] fn $case() { super::$case(super::Family::V4) })*
        }
        mod ipv6 {
            $(#[test] fn $case() { super::$case(super::Family::V6) })*
        }
    };
}

in_both_families!(
    rr_cycles_in_list_order_and_skips_weight_zero,
    wrr_is_exactly_weight_proportional_and_interleaved_like_ipvs,
    lc_and_wlc_pick_the_lowest_weighted_overhead,
    sed_and_nq_pick_the_shortest_expected_delay_and_nq_an_idle_server_first,
    sh_and_dh_map_stably_and_move_only_the_removed_servers_keys,
    mh_keeps_each_share_within_one_percent_and_moves_about_one_nth,
    fo_takes_the_highest_weight_and_fails_over_in_weight_order,
    ovf_fills_the_highest_weight_server_up_to_its_weight_then_overflows,
    twos_prefers_the_less_loaded_of_two_weighted_random_choices,
    every_scheduler_returns_none_when_nothing_is_usable,
    the_c_example_schedules_as_the_bundled_rr_does,
);

fn reg() -> Registry {
    let dir = built_plugin_dir();
    registry(&[&dir])
}

fn ids(v: &[Option<u32>]) -> Vec<u32> {
    v.iter().map(|p| p.expect("a pick")).collect()
}

/// Set (active, inactive) on every destination, in list order.
fn load(inst: &mut Instance, conns: &[(u32, u32)]) {
    for (i, &(a, n)) in conns.iter().enumerate() {
        inst.set_conns(i, a, n, 0);
    }
}

/// Pick once and count the new connection as active on the chosen server.
fn pick_and_connect(fam: Family, inst: &mut Instance, seq: u32) -> usize {
    let k = inst
        .schedule(&fam.flow(0xC000_0200 + seq, 40000))
        .expect("a pick");
    let d = inst.dests()[k];
    inst.set_conns(k, d.active_conns + 1, d.inactive_conns, 0);
    k
}

fn rr_cycles_in_list_order_and_skips_weight_zero(fam: Family) {
    let mut r = reg();
    let mut rr = fam.instance(
        &mut r,
        "rr",
        "",
        &[fam.dest(1, 1), fam.dest(2, 5), fam.dest(3, 1)],
    );
    assert_eq!(ids(&fam.picks(&mut rr, 7)), [1, 2, 3, 1, 2, 3, 1]);
    rr.update_dest(fam.dest(2, 0)).unwrap();
    assert_eq!(ids(&fam.picks(&mut rr, 4)), [3, 1, 3, 1]);
}

fn wrr_is_exactly_weight_proportional_and_interleaved_like_ipvs(fam: Family) {
    let mut r = reg();
    let mut wrr = fam.instance(
        &mut r,
        "wrr",
        "",
        &[fam.dest(1, 4), fam.dest(2, 3), fam.dest(3, 2)],
    );
    // IPVS's cycle for weights 4, 3, 2 is A A B A B C A B C. Where in it the first pick falls
    // depends on the order servers were added in (IPVS's dest_changed keeps the current
    // weight), so the picks must be that cycle, rotated, repeating.
    let cycle = [1, 1, 2, 1, 2, 3, 1, 2, 3];
    let got = ids(&fam.picks(&mut wrr, 27));
    let phase = (0..9).find(|&r| (0..9).all(|k| got[k] == cycle[(k + r) % 9]));
    assert!(phase.is_some(), "not a rotation of IPVS's cycle: {got:?}");
    for (k, id) in got.iter().enumerate() {
        assert_eq!(*id, got[k % 9], "the cycle repeats: {got:?}");
    }
    // Over whole cycles, exactly proportional for other weights too.
    let mut wrr = instance(
        &mut r,
        "wrr",
        "",
        &[
            fam.dest(1, 5),
            fam.dest(2, 1),
            fam.dest(3, 0),
            fam.dest(4, 3),
        ],
    );
    let got = ids(&fam.picks(&mut wrr, 9 * 10));
    let count = |id| got.iter().filter(|&&x| x == id).count();
    assert_eq!([count(1), count(2), count(3), count(4)], [50, 10, 0, 30]);
}

fn least<F: Fn(&Dest) -> (u64, u64)>(dests: &[Dest], key: F) -> usize {
    // (numerator, denominator): a/b < c/d  <=>  a*d < c*b. Ties go to the first.
    let mut best: Option<usize> = None;
    for (i, d) in dests.iter().enumerate().filter(|(_, d)| d.is_usable()) {
        match best {
            None => best = Some(i),
            Some(b) => {
                let (n1, d1) = key(d);
                let (n2, d2) = key(&dests[b]);
                if u128::from(n1) * u128::from(d2) < u128::from(n2) * u128::from(d1) {
                    best = Some(i);
                }
            }
        }
    }
    best.expect("a usable destination")
}

fn lc_and_wlc_pick_the_lowest_weighted_overhead(fam: Family) {
    let mut r = reg();
    let servers = [
        fam.dest(1, 1),
        fam.dest(2, 3),
        fam.dest(3, 2),
        fam.dest(4, 1),
    ];
    let mut lc = fam.instance(&mut r, "lc", "", &servers);
    let mut wlc = fam.instance(&mut r, "wlc", "", &servers);
    // active*256 + inactive: 512, 556, 600, 1280
    let conns = [(2, 0), (1, 300), (0, 600), (5, 0)];
    load(&mut lc, &conns);
    load(&mut wlc, &conns);
    assert_eq!(lc.schedule(&fam.flow(1, 1)), Some(0), "lc: lowest overhead");
    // per weight: 512, 185.3, 300, 1280
    assert_eq!(
        wlc.schedule(&fam.flow(1, 1)),
        Some(1),
        "wlc: lowest overhead per weight"
    );
    // Keep connecting and check every pick against the definition.
    for seq in 0..300 {
        let want_lc = least(lc.dests(), |d| (d.overhead(), 1));
        assert_eq!(pick_and_connect(fam, &mut lc, seq), want_lc);
        let want_wlc = least(wlc.dests(), |d| (d.overhead(), u64::from(d.weight)));
        assert_eq!(pick_and_connect(fam, &mut wlc, seq), want_wlc);
    }
    // wlc spreads new connections by weight.
    let active: Vec<u32> = wlc.dests().iter().map(|d| d.active_conns).collect();
    assert!(active[1] > active[2] && active[2] > active[3], "{active:?}");
}

fn sed_and_nq_pick_the_shortest_expected_delay_and_nq_an_idle_server_first(fam: Family) {
    let mut r = reg();
    let servers = [fam.dest(1, 1), fam.dest(2, 4), fam.dest(3, 2)];
    let mut sed = fam.instance(&mut r, "sed", "", &servers);
    let mut nq = fam.instance(&mut r, "nq", "", &servers);
    let conns = [(0, 0), (3, 0), (1, 0)];
    load(&mut sed, &conns);
    load(&mut nq, &conns);
    // (active+1)/weight: 1, 1, 1 -> tie, first wins for sed; nq takes the idle server 1.
    assert_eq!(sed.schedule(&fam.flow(1, 1)), Some(0));
    load(&mut sed, &[(1, 0), (3, 0), (1, 0)]);
    // 2, 1, 1 -> server 2
    assert_eq!(sed.schedule(&fam.flow(1, 1)), Some(1));
    load(&mut nq, &[(1, 0), (3, 0), (0, 0)]);
    assert_eq!(
        nq.schedule(&fam.flow(1, 1)),
        Some(2),
        "nq: an idle server first"
    );
    for seq in 0..200 {
        let want = least(sed.dests(), |d| {
            (u64::from(d.active_conns) + 1, u64::from(d.weight))
        });
        assert_eq!(pick_and_connect(fam, &mut sed, seq), want);
        let busy = nq
            .dests()
            .iter()
            .all(|d| !d.is_usable() || d.active_conns > 0);
        let want = if busy {
            least(nq.dests(), |d| {
                (u64::from(d.active_conns) + 1, u64::from(d.weight))
            })
        } else {
            nq.dests()
                .iter()
                .position(|d| d.is_usable() && d.active_conns == 0)
                .unwrap()
        };
        assert_eq!(pick_and_connect(fam, &mut nq, seq), want);
    }
}

/// Keys (source or destination addresses) and where they go, for the hashing schedulers.
fn mapping(fam: Family, inst: &mut Instance, keys: u32, by_dst: bool) -> Vec<Option<u32>> {
    (0..keys)
        .map(|k| {
            let mut f = fam.flow(0x0A80_0000 + k * 7, 1000);
            if by_dst {
                std::mem::swap(&mut f.src_addr, &mut f.dst_addr);
            }
            inst.schedule(&f).map(|i| inst.dests()[i].id)
        })
        .collect()
}

/// Map keys, remove server 3, map again. Returns the fraction of keys that moved; with
/// `only_removed`, asserts that no key of a surviving server moved.
fn remove_one_and_compare(
    fam: Family,
    name: &str,
    options: &str,
    by_dst: bool,
    n: u32,
    keys: u32,
    only_removed: bool,
) -> f64 {
    let mut r = reg();
    let servers: Vec<Dest> = (1..=n).map(|i| fam.dest(i, 1)).collect();
    let mut inst = fam.instance(&mut r, name, options, &servers);
    let before = mapping(fam, &mut inst, keys, by_dst);
    assert_eq!(
        before,
        mapping(fam, &mut inst, keys, by_dst),
        "{name}: a key maps stably"
    );
    assert!(before.iter().all(Option::is_some));
    let removed = 3;
    inst.del_dest(removed).unwrap();
    let after = mapping(fam, &mut inst, keys, by_dst);
    assert!(after.iter().all(|a| a.is_some() && *a != Some(removed)));
    assert!(
        before.contains(&Some(removed)),
        "{name}: the removed server held keys"
    );
    let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
    if only_removed {
        let others = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| b != a && **b != Some(removed))
            .count();
        assert_eq!(others, 0, "{name}: only the removed server's keys move");
    }
    moved as f64 / f64::from(keys)
}

fn sh_and_dh_map_stably_and_move_only_the_removed_servers_keys(fam: Family) {
    remove_one_and_compare(fam, "sh", "", false, 8, 20_000, true);
    remove_one_and_compare(fam, "dh", "", true, 8, 20_000, true);
    remove_one_and_compare(fam, "sh", "port", false, 5, 5_000, true);
}

fn mh_keeps_each_share_within_one_percent_and_moves_about_one_nth(fam: Family) {
    let mut r = reg();
    let n = 10u32;
    let servers: Vec<Dest> = (1..=n).map(|i| fam.dest(i, 1)).collect();
    let mut mh = fam.instance(&mut r, "mh", "table_size=65537", &servers);
    let keys = 2_000_000u32;
    let mut count = vec![0u32; n as usize];
    for k in 0..keys {
        let i = mh
            .schedule(&fam.flow(k.wrapping_mul(2_654_435_761), 1000))
            .unwrap();
        count[i] += 1;
    }
    let fair = f64::from(keys) / f64::from(n);
    for (i, c) in count.iter().enumerate() {
        let off = (f64::from(*c) - fair).abs() / fair;
        assert!(
            off < 0.01,
            "mh: server {i} got {c} of {keys} keys, {:.2}% off its share",
            off * 100.0
        );
    }
    let moved = remove_one_and_compare(fam, "mh", "table_size=65537", false, n, 100_000, false);
    assert!(
        moved <= 1.2 / f64::from(n),
        "mh moved {:.2}% of keys removing 1 of {n}",
        moved * 100.0
    );
    // A table size that is not prime is refused with a clear message.
    let plugin = r.get("mh").unwrap();
    let err = Instance::new(plugin, fam.spec("table_size=65536"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("prime"), "{err}");
}

fn fo_takes_the_highest_weight_and_fails_over_in_weight_order(fam: Family) {
    let mut r = reg();
    let mut fo = fam.instance(
        &mut r,
        "fo",
        "",
        &[fam.dest(1, 2), fam.dest(2, 9), fam.dest(3, 5)],
    );
    assert_eq!(ids(&fam.picks(&mut fo, 3)), [2, 2, 2]);
    fo.update_dest(fam.dest(2, 0)).unwrap();
    assert_eq!(ids(&fam.picks(&mut fo, 2)), [3, 3]);
    let mut over = fam.dest(3, 5);
    over.flags = DEST_F_OVERLOADED;
    fo.update_dest(over).unwrap();
    assert_eq!(ids(&fam.picks(&mut fo, 1)), [1]);
}

fn ovf_fills_the_highest_weight_server_up_to_its_weight_then_overflows(fam: Family) {
    let mut r = reg();
    let mut ovf = fam.instance(
        &mut r,
        "ovf",
        "",
        &[fam.dest(1, 2), fam.dest(2, 3), fam.dest(3, 1)],
    );
    let got: Vec<u32> = (0..6)
        .map(|s| {
            let k = pick_and_connect(fam, &mut ovf, s);
            ovf.dests()[k].id
        })
        .collect();
    assert_eq!(got, [2, 2, 2, 1, 1, 3]);
    assert_eq!(ovf.schedule(&fam.flow(9, 9)), None, "every server is full");
}

fn twos_prefers_the_less_loaded_of_two_weighted_random_choices(fam: Family) {
    let mut r = reg();
    let mut twos = instance(
        &mut r,
        "twos",
        "seed=42",
        &[
            fam.dest(1, 1),
            fam.dest(2, 1),
            fam.dest(3, 1),
            fam.dest(4, 0),
        ],
    );
    // Loads: server 3 the busiest, server 1 the idlest.
    load(&mut twos, &[(1, 0), (5, 0), (9, 0), (0, 0)]);
    let picks = 9000;
    let mut count = [0u32; 4];
    for s in 0..picks {
        count[twos.schedule(&fam.flow(s, 1)).unwrap()] += 1;
    }
    assert_eq!(count[3], 0, "weight 0 is never chosen");
    let share = |i: usize| f64::from(count[i]) / f64::from(picks);
    // The busiest wins only when both choices fall on it: 1/9; the idlest unless neither
    // does: 1 - (2/3)^2 = 5/9.
    assert!(
        (0.08..0.145).contains(&share(2)),
        "busiest share {}",
        share(2)
    );
    assert!(
        (0.50..0.61).contains(&share(0)),
        "idlest share {}",
        share(0)
    );
}

fn every_scheduler_returns_none_when_nothing_is_usable(fam: Family) {
    let mut r = reg();
    for name in ALL {
        let mut empty = fam.instance(&mut r, name, "", &[]);
        assert_eq!(empty.schedule(&fam.flow(1, 1)), None, "{name}: empty list");
        let mut over = fam.dest(2, 4);
        over.flags = DEST_F_OVERLOADED;
        let mut none = fam.instance(&mut r, name, "", &[fam.dest(1, 0), over]);
        assert_eq!(
            none.schedule(&fam.flow(1, 1)),
            None,
            "{name}: weight 0 and overloaded only"
        );
    }
}

/// The C example (`examples/c/crr.c`), built with gcc, picks as `rr` does.
fn the_c_example_schedules_as_the_bundled_rr_does(fam: Family) {
    let tmp = TempDir::new("crr");
    compile_c_plugin(CRR, &tmp.path().join("crr.so"));
    let built = built_plugin_dir();
    let mut r = registry(&[tmp.path(), &built]);
    let servers = [fam.dest(1, 1), fam.dest(2, 3), fam.dest(3, 1)];
    let mut crr = fam.instance(&mut r, "crr", "", &servers);
    let mut rr = fam.instance(&mut r, "rr", "", &servers);
    let same = |crr: &mut Instance, rr: &mut Instance, n| {
        let got = fam.picks(crr, n);
        assert_eq!(got, fam.picks(rr, n), "crr and rr disagree");
        got
    };
    assert_eq!(ids(&same(&mut crr, &mut rr, 7)), [1, 2, 3, 1, 2, 3, 1]);
    for inst in [&mut crr, &mut rr] {
        inst.update_dest(fam.dest(2, 0)).unwrap();
    }
    assert_eq!(ids(&same(&mut crr, &mut rr, 4)), [3, 1, 3, 1]);
}

/// `sh`, `dh` and `mh` hash all 16 bytes of an IPv6 address: changing any one byte of a
/// client's (or, for `dh`, the destination's) address alone spreads the keys over every
/// server, and each address keeps its server.
#[test]
fn ipv6_hashing_uses_every_byte_of_the_address() {
    let fam = Family::V6;
    let mut r = reg();
    let servers = [fam.dest(1, 1), fam.dest(2, 1), fam.dest(3, 1)];
    for (name, by_dst) in [("sh", false), ("dh", true), ("mh", false)] {
        let mut inst = fam.instance(&mut r, name, "", &servers);
        let base = fam.flow(0xC000_0201, 40000);
        for byte in 0..16 {
            let map = |inst: &mut Instance| -> Vec<usize> {
                (0..=255u8)
                    .map(|v| {
                        let mut f = base;
                        let addr = if by_dst {
                            &mut f.dst_addr
                        } else {
                            &mut f.src_addr
                        };
                        addr[byte] = v;
                        inst.schedule(&f).expect("a pick")
                    })
                    .collect()
            };
            let got = map(&mut inst);
            assert_eq!(got, map(&mut inst), "{name}: an address keeps its server");
            let mut share = [0u32; 3];
            for k in got {
                share[k] += 1;
            }
            // 256 keys over 3 equal servers: about 85 each; 40 is over five deviations off.
            assert!(
                share.iter().all(|&c| c >= 40),
                "{name}: varying byte {byte} alone spreads keys only as {share:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever the weights, flags and loads, no scheduler picks weight 0 or an overloaded
    /// server, and each picks something when a usable server exists.
    #[test]
    fn no_scheduler_ever_picks_an_unusable_server(
        servers in proptest::collection::vec((0u32..4, any::<bool>(), 0u32..50, 0u32..500), 1..12),
        flows in proptest::collection::vec((any::<u32>(), any::<u16>()), 1..40),
        v6 in any::<bool>(),
    ) {
        let fam = if v6 { Family::V6 } else { Family::V4 };
        let mut r = reg();
        let list: Vec<Dest> = servers
            .iter()
            .enumerate()
            .map(|(i, &(w, over, a, n))| {
                let mut d = fam.dest(u32::try_from(i).unwrap() + 1, w);
                d.flags = if over { DEST_F_OVERLOADED } else { 0 };
                d.active_conns = a;
                d.inactive_conns = n;
                d
            })
            .collect();
        let any_usable = list.iter().any(Dest::is_usable);
        for name in ALL {
            let mut inst = fam.instance(&mut r, name, if name == "sh" || name == "dh" || name == "mh" { "fallback" } else { "" }, &list);
            for &(src, port) in &flows {
                match inst.schedule(&fam.flow(src, port)) {
                    Some(k) => prop_assert!(inst.dests()[k].is_usable(), "{} picked {:?}", name, inst.dests()[k]),
                    // ovf may find every server full; the hashing schedulers, with fallback,
                    // find a usable one if there is any.
                    None => prop_assert!(!any_usable || name == "ovf", "{} found nothing among {:?}", name, list),
                }
            }
        }
    }
}
