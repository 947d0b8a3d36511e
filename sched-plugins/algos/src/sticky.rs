//! The sticky bucket table behind `sh` and `dh`: a key hashes to one of a power-of-two number
//! of buckets, each bucket is held by one destination, and changes to the list move as few
//! buckets as possible.
//!
//! IPVS's `ip_vs_sh.c` deals all buckets out again, round robin, on every change, so removing
//! one server remaps most clients. Here a rebuild works from the table it had:
//!
//! 1. Every destination gets a quota of buckets proportional to its weight (largest remainder,
//!    so quotas add up to the table size). Weight 0 or the quiesced flag means no quota: such a
//!    destination holds nothing. An overloaded one keeps its buckets; overload is transient.
//! 2. A bucket stays with its owner, identified by [`Dest::id`], while the owner survives.
//! 3. An owner above quota (another destination arrived or got heavier) gives up its excess,
//!    spread evenly over its buckets.
//! 4. Orphaned buckets, of removed owners and given-up excess, go one by one to whichever
//!    destination is furthest below quota.
//!
//! So removing a server moves only the keys it held, adding one moves only the keys it takes,
//! and the table always matches the weights to within one bucket. Ties are broken by a hash
//! of each destination's address and port, never by list position, so directors that see the
//! same changes build the same table whatever order they list destinations in. The table
//! depends on that history too, which is the price of moving few keys: a director started
//! later with the same set builds a balanced table, but not necessarily the same one.
//!
//! The table doubles whenever there are fewer than [`BUCKETS_PER_DEST`] buckets per holder, to
//! keep weights fine-grained; a doubled table reads one more hash bit and both halves inherit
//! the old owner, so doubling itself moves no key.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use lvs_sched_abi::{Dest, Options};

use crate::hash::{SEED_DEST, hash_dest};
use crate::util::{NO_DEST, check_options, flag, holds_share, pick_slot};

/// Default bucket count.
pub(crate) const DEFAULT_TABLE_SIZE: u64 = 4096;
const MIN_TABLE_SIZE: u64 = 16;
/// Upper bound for the option and for growth: 1M buckets cost 12 MiB per service.
const MAX_TABLE_SIZE: usize = 1 << 20;
/// The table grows to keep at least this many buckets per holder.
pub(crate) const BUCKETS_PER_DEST: usize = 16;

/// A bucket table and the hashing options shared by `sh` and `dh`.
#[derive(Debug, Clone)]
pub(crate) struct StickyHash {
    pub(crate) table: BucketTable,
    /// Hash the port with the address.
    pub(crate) port: bool,
    /// When the hashed destination cannot be used, take the next usable one in bucket order.
    pub(crate) fallback: bool,
}

impl StickyHash {
    /// Options: `table_size=N` (a power of two), `port`, `fallback`.
    pub(crate) fn create(name: &str, options: &Options) -> Result<Self, String> {
        check_options(name, options, &["table_size", "port", "fallback"])?;
        let size = options
            .get_u64("table_size", DEFAULT_TABLE_SIZE)
            .map_err(|e| format!("{name}: {e}"))?;
        let max = MAX_TABLE_SIZE as u64;
        if !size.is_power_of_two() || !(MIN_TABLE_SIZE..=max).contains(&size) {
            return Err(format!(
                "{name}: table_size={size} must be a power of two from {MIN_TABLE_SIZE} to {max}"
            ));
        }
        let size = usize::try_from(size).map_err(|_| format!("{name}: table_size too large"))?;
        Ok(Self {
            table: BucketTable::new(size),
            port: flag(name, options, "port")?,
            fallback: flag(name, options, "fallback")?,
        })
    }
}

/// Buckets, each held by one destination.
#[derive(Debug, Clone)]
pub(crate) struct BucketTable {
    /// Per bucket, the id of its holder; what survives a rebuild.
    owners: Vec<Option<u32>>,
    /// Per bucket, its holder's index in the current list, or [`NO_DEST`]; what lookups read.
    slots: Vec<u32>,
}

impl BucketTable {
    fn new(size: usize) -> Self {
        Self {
            owners: vec![None; size],
            slots: vec![NO_DEST; size],
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    #[cfg(test)]
    pub(crate) fn owners(&self) -> &[Option<u32>] {
        &self.owners
    }

    /// The destination for a key hash; see [`pick_slot`] for `fallback`.
    #[inline]
    pub(crate) fn pick(&self, hash: u64, dests: &[Dest], fallback: bool) -> Option<usize> {
        // The length is a power of two: the low bits of the hash pick the bucket.
        let mask = self.slots.len().wrapping_sub(1);
        #[allow(clippy::cast_possible_truncation)] // only bits below `mask` survive
        let bucket = (hash as usize) & mask;
        pick_slot(&self.slots, bucket, dests, fallback)
    }

    /// Bring the table in line with `dests`, the whole list after a change.
    pub(crate) fn rebuild(&mut self, dests: &[Dest]) {
        let holders: Vec<usize> = (0..dests.len())
            .filter(|&i| holds_share(&dests[i]))
            .collect();
        self.grow_for(holders.len());
        let quota = quotas(dests, &holders, self.owners.len());
        let by_id: HashMap<u32, usize> = holders.iter().map(|&i| (dests[i].id, i)).collect();
        let holder = |owner: &Option<u32>| owner.and_then(|id| by_id.get(&id).copied());

        let mut held = vec![0u64; dests.len()];
        for owner in &mut self.owners {
            match holder(owner) {
                Some(i) => held[i] += 1,
                None => *owner = None,
            }
        }

        // Give up the excess spread evenly over the owner's buckets (Bresenham): over its `held`
        // buckets `acc` rises by `excess` at each and falls by `held` at each release, so
        // exactly `excess` are released, one every `held / excess` or so.
        let excess: Vec<u64> = held
            .iter()
            .zip(&quota)
            .map(|(h, q)| h.saturating_sub(*q))
            .collect();
        let mut acc = vec![0u64; dests.len()];
        for owner in &mut self.owners {
            if let Some(i) = holder(owner).filter(|&i| excess[i] > 0) {
                acc[i] += excess[i];
                if acc[i] >= held[i] {
                    acc[i] -= held[i];
                    *owner = None;
                }
            }
        }

        // Furthest below quota first; among equals, the lowest tie key.
        let mut below: BinaryHeap<(u64, Reverse<TieKey>, usize)> = holders
            .iter()
            .map(|&i| {
                (
                    quota[i] - (held[i] - excess[i]),
                    Reverse(tie_key(&dests[i])),
                    i,
                )
            })
            .filter(|&(deficit, _, _)| deficit > 0)
            .collect();
        for owner in self.owners.iter_mut().filter(|o| o.is_none()) {
            let Some((deficit, key, i)) = below.pop() else {
                break;
            };
            *owner = Some(dests[i].id);
            if deficit > 1 {
                below.push((deficit - 1, key, i));
            }
        }

        for (slot, owner) in self.slots.iter_mut().zip(&self.owners) {
            *slot = holder(owner)
                .and_then(|i| u32::try_from(i).ok())
                .unwrap_or(NO_DEST);
        }
    }

    fn grow_for(&mut self, holders: usize) {
        while holders.saturating_mul(BUCKETS_PER_DEST) > self.owners.len()
            && self.owners.len() < MAX_TABLE_SIZE
        {
            self.owners.extend_from_within(..);
            self.slots.extend_from_within(..);
        }
    }
}

/// A destination's place among equals: by address and port, the same in every director.
type TieKey = (u64, u32);

fn tie_key(dest: &Dest) -> TieKey {
    (hash_dest(SEED_DEST, dest), dest.id)
}

/// Per destination, its share of `size` buckets by weight; 0 for non-holders. Largest
/// remainder, so the quotas add up to exactly `size` whenever anyone holds.
fn quotas(dests: &[Dest], holders: &[usize], size: usize) -> Vec<u64> {
    let mut quota = vec![0u64; dests.len()];
    let total: u64 = holders.iter().map(|&i| u64::from(dests[i].weight)).sum();
    if total == 0 {
        return quota;
    }
    let size = size as u64;
    let mut remainders: Vec<(u64, TieKey, usize)> = Vec::with_capacity(holders.len());
    for &i in holders {
        // At most 2^20 * 2^32: no overflow.
        let share = size * u64::from(dests[i].weight);
        quota[i] = share / total;
        remainders.push((share % total, tie_key(&dests[i]), i));
    }
    let given: u64 = quota.iter().sum();
    remainders.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, _, i) in remainders
        .iter()
        .take(usize::try_from(size - given).unwrap_or(0))
    {
        quota[i] += 1;
    }
    quota
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use proptest::prelude::*;

    fn table(size: usize) -> BucketTable {
        BucketTable::new(size)
    }

    /// Buckets held per destination of `dests`, by id.
    fn census(t: &BucketTable, dests: &[Dest]) -> Vec<usize> {
        dests
            .iter()
            .map(|d| t.owners().iter().filter(|&&o| o == Some(d.id)).count())
            .collect()
    }

    fn assert_balanced(t: &BucketTable, dests: &[Dest]) {
        let total: u64 = dests
            .iter()
            .filter(|d| holds_share(d))
            .map(|d| u64::from(d.weight))
            .sum();
        let counts = census(t, dests);
        for (d, &c) in dests.iter().zip(&counts) {
            let fair = if holds_share(d) {
                t.len() as f64 * f64::from(d.weight) / total as f64
            } else {
                0.0
            };
            assert!((c as f64 - fair).abs() < 1.0, "{counts:?} for {dests:?}");
        }
        let expected = if total > 0 { t.len() } else { 0 };
        assert_eq!(counts.iter().sum::<usize>(), expected);
        // Slots agree with owners.
        for (b, owner) in t.owners().iter().enumerate() {
            let via_slot =
                (t.slots[b] != NO_DEST).then(|| dests[usize::try_from(t.slots[b]).unwrap()].id);
            assert_eq!(via_slot, *owner);
        }
    }

    #[test]
    fn quotas_follow_weights() {
        let d = dests(&[1, 2, 5, 0]);
        let mut t = table(1024);
        t.rebuild(&d);
        assert_eq!(census(&t, &d), [128, 256, 640, 0]);
    }

    #[test]
    fn removal_moves_only_the_removed_holders_buckets() {
        let mut d = dests(&[1, 1, 2, 1, 3]);
        let mut t = table(4096);
        t.rebuild(&d);
        let before = t.owners().to_vec();
        d.remove(2);
        t.rebuild(&d);
        for (old, new) in before.iter().zip(t.owners()) {
            if *old != Some(3) {
                assert_eq!(old, new);
            }
        }
        assert_balanced(&t, &d);
    }

    #[test]
    fn addition_takes_only_what_it_needs() {
        let mut d = dests(&[1, 1, 1]);
        let mut t = table(4096);
        t.rebuild(&d);
        let before = t.owners().to_vec();
        d.push(dest(4, 1));
        t.rebuild(&d);
        let moved = before
            .iter()
            .zip(t.owners())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(moved, 1024);
        assert!(
            before
                .iter()
                .zip(t.owners())
                .all(|(a, b)| a == b || *b == Some(4))
        );
    }

    #[test]
    fn quiesced_hold_nothing_and_return_to_their_share() {
        let mut d = dests(&[1, 1, 1, 1]);
        let mut t = table(1024);
        t.rebuild(&d);
        d[1].weight = 0;
        t.rebuild(&d);
        assert_eq!(census(&t, &d)[1], 0);
        assert_balanced(&t, &d);
        d[1].weight = 1;
        t.rebuild(&d);
        assert_eq!(census(&t, &d), [256; 4]);
    }

    #[test]
    fn overloaded_keep_their_buckets() {
        let mut d = dests(&[1, 1]);
        let mut t = table(64);
        t.rebuild(&d);
        d[0] = overloaded(d[0]);
        t.rebuild(&d);
        assert_eq!(census(&t, &d), [32, 32]);
    }

    #[test]
    fn grows_without_moving_keys() {
        let mut d = dests(&[1; 4]);
        let mut t = table(64);
        t.rebuild(&d);
        let ids = |t: &BucketTable, d: &[Dest]| -> Vec<Option<u32>> {
            (0..1000u64)
                .map(|k| t.pick(crate::hash::fmix64(k), d, false).map(|i| d[i].id))
                .collect()
        };
        let before = ids(&t, &d);
        let mut grown = t.clone();
        grown.grow_for(8);
        assert_eq!(grown.len(), 128);
        assert_eq!(ids(&grown, &d), before);
        // A quiesced destination does not count towards growth.
        d.push(dest(5, 0));
        t.rebuild(&d);
        assert_eq!(t.len(), 64);
        d.extend((6..=9).map(|id| dest(id, 1)));
        t.rebuild(&d);
        assert_eq!(t.len(), 128);
        assert_balanced(&t, &d);
    }

    #[test]
    fn list_order_does_not_matter() {
        let d = dests(&[3, 1, 4, 1, 5]);
        let mut reversed = d.clone();
        reversed.reverse();
        let (mut a, mut b) = (table(256), table(256));
        a.rebuild(&d);
        b.rebuild(&reversed);
        assert_eq!(a.owners(), b.owners());
    }

    #[test]
    fn empty_and_all_quiesced_hold_nothing() {
        let mut t = table(16);
        t.rebuild(&[]);
        assert_eq!(t.pick(1, &[], true), None);
        let d = dests(&[0, 0]);
        t.rebuild(&d);
        assert!(t.owners().iter().all(Option::is_none));
        assert_eq!(t.pick(1, &d, true), None);
    }

    #[derive(Debug, Clone)]
    enum Change {
        Add(u32),
        Remove(usize),
        Weigh(usize, u32),
    }

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            (0u32..6).prop_map(Change::Add),
            any::<usize>().prop_map(Change::Remove),
            (any::<usize>(), 0u32..6).prop_map(|(i, w)| Change::Weigh(i, w)),
        ]
    }

    proptest! {
        /// Through any history of changes the table stays balanced, and each change moves
        /// the fewest buckets its new quotas allow: only the excess of those that lost share.
        #[test]
        fn stays_balanced_and_moves_little(changes in prop::collection::vec(change(), 1..40)) {
            let mut d: Vec<Dest> = Vec::new();
            let mut next_id = 1;
            let mut t = table(64);
            for c in changes {
                let old = d.clone();
                match c {
                    Change::Add(w) => {
                        d.push(dest(next_id, w));
                        next_id += 1;
                    }
                    Change::Remove(i) if !d.is_empty() => {
                        d.remove(i % d.len());
                    }
                    Change::Weigh(i, w) if !d.is_empty() => {
                        let n = d.len();
                        d[i % n].weight = w;
                    }
                    _ => continue,
                }
                let before = t.owners().to_vec();
                let old_len = t.len();
                t.rebuild(&d);
                assert_balanced(&t, &d);
                let at = |owners: &[Option<u32>], id| owners.iter().filter(|&&o| o == Some(id)).count();
                // Count moves in units of the old table: growth copies each bucket.
                let scale = t.len() / old_len;
                let moved = t
                    .owners()
                    .iter()
                    .enumerate()
                    .filter(|&(b, o)| before[b % old_len].is_some_and(|id| *o != Some(id)))
                    .count();
                let needed: usize = old
                    .iter()
                    .map(|x| (at(&before, x.id) * scale).saturating_sub(at(t.owners(), x.id)))
                    .sum();
                prop_assert_eq!(moved, needed);
            }
        }
    }
}
