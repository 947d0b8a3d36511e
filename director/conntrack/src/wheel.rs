//! A hierarchical timer wheel with millisecond ticks, over pre-allocated lists.
//!
//! Six levels of 64 slots cover 2^36 ms (about two years); an entry sits in the
//! level where its deadline first differs from the wheel's current time, so an
//! entry near its deadline is in level 0 and fires on the exact millisecond.
//! Arm and cancel are O(1) list operations; nothing allocates after construction.
//!
//! The true deadlines live in the entries, next to the state a packet updates, and
//! the wheel reads them through a closure when a slot comes due. That makes
//! refreshing lazy: a packet that moves a deadline *later* only stores it in the
//! entry; when the old slot comes due the entry is found not yet expired and is
//! re-filed under its real deadline. Every packet refreshes its entry, so this
//! keeps list surgery, and a cache miss, off the per-packet path. A deadline
//! moved *earlier* (a state with a shorter timeout) must be re-armed at once.

use crate::linked_lists::LinkedLists;

const LEVEL_BITS: u32 = 6;
const SLOTS: u32 = 1 << LEVEL_BITS;
const LEVELS: u32 = 6;
/// The span of the whole wheel; later deadlines are filed at its far end and
/// re-filed when that slot comes due.
const MAX_SPAN: u64 = (1 << (LEVEL_BITS * LEVELS)) - 1;

/// The list of a due slot's entries still to look at. A due slot is moved here
/// whole, so that entries it re-files into lower levels cannot be taken for
/// earlier than the rest of it when a budget cuts the work short.
const PENDING: u32 = SLOTS * LEVELS;

/// What one step of [`Wheel::pop_expired`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pop {
    /// This node's deadline has passed; it is now disarmed.
    Expired(u32),
    /// Nothing else is due at this time.
    Idle,
    /// The work budget ran out; call again to continue.
    Budget,
}

/// The wheel. Node numbers are table slots, `0..nodes`.
#[derive(Debug)]
pub(crate) struct Wheel {
    lists: LinkedLists,
    /// One bit per non-empty slot, per level.
    occupied: [u64; LEVELS as usize],
    /// The time up to which slots have been processed.
    elapsed: u64,
}

impl Wheel {
    /// A wheel for `nodes` entries, starting at time `now`.
    pub(crate) fn new(nodes: u32, now: u64) -> Wheel {
        Wheel {
            lists: LinkedLists::new(nodes, PENDING + 1),
            occupied: [0; LEVELS as usize],
            elapsed: now,
        }
    }

    /// Whether `node` is armed.
    #[cfg(test)]
    pub(crate) fn is_armed(&self, node: u32) -> bool {
        self.lists.is_linked(node)
    }

    /// Arm `node` (which must be disarmed) to fire at `deadline`.
    #[inline]
    pub(crate) fn arm(&mut self, node: u32, deadline: u64) {
        self.file(node, deadline);
    }

    /// Disarm `node`; nothing if it is not armed.
    #[inline]
    pub(crate) fn cancel(&mut self, node: u32) {
        if !self.lists.is_linked(node) {
            return;
        }
        // The node's slot is not known here, so its occupied bit may now sit over
        // an empty slot; `next_slot` clears such bits when it meets them.
        self.lists.unlink(node);
    }

    /// File `node` in the slot for `when`, relative to the current time.
    fn file(&mut self, node: u32, when: u64) {
        // The farthest position is the top-level slot just behind the current one,
        // one rotation ahead; the current slot itself would read as "now".
        let top = LEVEL_BITS * (LEVELS - 1);
        let horizon = ((self.elapsed >> top) << top) + (u64::from(SLOTS - 1) << top);
        let when = when.max(self.elapsed).min(horizon);
        let level = level_for(self.elapsed, when);
        let slot = slot_for(when, level);
        self.lists.push_back(level * SLOTS + slot, node);
        self.occupied[level as usize] |= 1 << slot;
    }

    /// The start time of the next non-empty slot, with its level and slot number.
    fn next_slot(&mut self) -> Option<(u64, u32, u32)> {
        for level in 0..LEVELS {
            loop {
                let occ = self.occupied[level as usize];
                if occ == 0 {
                    break;
                }
                let shift = level * LEVEL_BITS;
                let now_slot =
                    u32::try_from((self.elapsed >> shift) & u64::from(SLOTS - 1)).unwrap_or(0);
                let slot = (occ.rotate_right(now_slot).trailing_zeros() + now_slot) % SLOTS;
                if self.lists.first(level * SLOTS + slot).is_none() {
                    // Emptied by cancels since it was filed.
                    self.occupied[level as usize] &= !(1 << slot);
                    continue;
                }
                let level_range = 1u64 << (shift + LEVEL_BITS);
                let level_start = self.elapsed & !(level_range - 1);
                let mut start = level_start + (u64::from(slot) << shift);
                if start < self.elapsed {
                    // Only the top level wraps: a slot "behind" the current one
                    // holds deadlines one full rotation ahead.
                    start += level_range;
                }
                return Some((start, level, slot));
            }
        }
        None
    }

    /// The earliest time at which [`Wheel::pop_expired`] may find work: a slot start,
    /// possibly earlier than the first real deadline (lazy refreshes, cascades).
    pub(crate) fn next_wakeup(&mut self) -> Option<u64> {
        self.next_slot().map(|(start, _, _)| start)
    }

    /// Find the next node whose deadline (as `deadline_of` reads it) is at or
    /// before `now` and disarm it, re-filing nodes whose deadline moved later.
    /// Each node looked at costs one unit of `budget`.
    pub(crate) fn pop_expired(
        &mut self,
        now: u64,
        budget: &mut usize,
        deadline_of: impl Fn(u32) -> u64,
    ) -> Pop {
        loop {
            if *budget == 0 {
                return Pop::Budget;
            }
            if let Some(node) = self.lists.first(PENDING) {
                *budget -= 1;
                self.lists.unlink(node);
                let deadline = deadline_of(node);
                if deadline <= now {
                    return Pop::Expired(node);
                }
                self.file(node, deadline);
                continue;
            }
            let Some((start, level, slot)) = self.next_slot() else {
                self.elapsed = self.elapsed.max(now);
                return Pop::Idle;
            };
            if start > now {
                self.elapsed = self.elapsed.max(now);
                return Pop::Idle;
            }
            // Everything before this slot has been handled.
            self.elapsed = self.elapsed.max(start);
            self.lists.splice(level * SLOTS + slot, PENDING);
            self.occupied[level as usize] &= !(1 << slot);
        }
    }

    /// Bytes held by the wheel.
    pub(crate) fn bytes(&self) -> usize {
        self.lists.bytes()
    }
}

/// The level whose slot distinguishes `when` from `elapsed`.
#[inline]
fn level_for(elapsed: u64, when: u64) -> u32 {
    let masked = ((elapsed ^ when) | u64::from(SLOTS - 1)).min(MAX_SPAN);
    let significant = 63 - masked.leading_zeros();
    significant / LEVEL_BITS
}

/// The slot of `when` in `level`.
#[inline]
fn slot_for(when: u64, level: u32) -> u32 {
    u32::try_from((when >> (level * LEVEL_BITS)) & u64::from(SLOTS - 1)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wheel plus the deadlines an owner keeps, with the owner's lazy refresh.
    struct W {
        w: Wheel,
        dl: Vec<u64>,
    }

    impl W {
        fn new(nodes: u32, now: u64) -> W {
            W {
                w: Wheel::new(nodes, now),
                dl: vec![0; nodes as usize],
            }
        }
        fn arm(&mut self, n: u32, d: u64) {
            self.dl[n as usize] = d;
            self.w.arm(n, d);
        }
        fn refresh(&mut self, n: u32, d: u64) {
            let old = std::mem::replace(&mut self.dl[n as usize], d);
            if d < old {
                self.w.cancel(n);
                self.w.arm(n, d);
            }
        }
        fn cancel(&mut self, n: u32) {
            self.w.cancel(n);
        }
        fn is_armed(&self, n: u32) -> bool {
            self.w.is_armed(n)
        }
        fn deadline(&self, n: u32) -> u64 {
            self.dl[n as usize]
        }
        fn next_wakeup(&mut self) -> Option<u64> {
            self.w.next_wakeup()
        }
        fn pop_expired(&mut self, now: u64, budget: &mut usize) -> Pop {
            let dl = &self.dl;
            self.w.pop_expired(now, budget, |n| dl[n as usize])
        }
    }

    fn drain(w: &mut W, now: u64) -> Vec<u32> {
        let mut out = Vec::new();
        let mut budget = usize::MAX;
        while let Pop::Expired(n) = w.pop_expired(now, &mut budget) {
            out.push(n);
        }
        out.sort_unstable();
        out
    }

    #[test]
    fn fires_on_the_exact_millisecond() {
        let mut w = W::new(16, 1_000);
        let deadlines = [
            1_000,
            1_001,
            1_063,
            1_064,
            5_000,
            900_000 + 1_000,
            3_600_000,
        ];
        for (n, d) in deadlines.iter().enumerate() {
            w.arm(u32::try_from(n).unwrap(), *d);
        }
        for (n, d) in deadlines.iter().enumerate() {
            let n = u32::try_from(n).unwrap();
            assert_eq!(
                drain(&mut w, d - 1),
                Vec::<u32>::new(),
                "early at {}",
                d - 1
            );
            assert_eq!(drain(&mut w, *d), vec![n], "at {d}");
        }
        assert_eq!(w.next_wakeup(), None);
    }

    #[test]
    fn lazy_refresh_and_earlier_refresh() {
        let mut w = W::new(4, 0);
        w.arm(0, 100);
        w.arm(1, 100_000);
        w.refresh(0, 50_000); // later: lazy
        w.refresh(1, 10); // earlier: re-filed
        assert_eq!(drain(&mut w, 10), vec![1]);
        assert_eq!(drain(&mut w, 49_999), Vec::<u32>::new());
        assert!(w.is_armed(0));
        assert_eq!(drain(&mut w, 50_000), vec![0]);
    }

    #[test]
    fn cancel_and_budget() {
        let mut w = W::new(8, 0);
        for n in 0..8 {
            w.arm(n, 10);
        }
        w.cancel(3);
        w.cancel(3);
        let mut budget = 2;
        assert!(matches!(w.pop_expired(10, &mut budget), Pop::Expired(_)));
        assert!(matches!(w.pop_expired(10, &mut budget), Pop::Expired(_)));
        assert_eq!(w.pop_expired(10, &mut budget), Pop::Budget);
        assert_eq!(drain(&mut w, 10).len(), 5);
    }

    #[test]
    fn far_future_and_late_polls() {
        let mut w = W::new(4, 0);
        let far = MAX_SPAN * 3 + 17;
        w.arm(0, far);
        w.arm(1, 7);
        // A poll long after both deadlines fires both.
        assert_eq!(drain(&mut w, 6), Vec::<u32>::new());
        assert_eq!(drain(&mut w, far - 1), vec![1]);
        assert_eq!(drain(&mut w, far), vec![0]);
        // A past deadline fires at the next poll.
        w.arm(2, 3);
        assert_eq!(drain(&mut w, far), vec![2]);
    }

    #[test]
    fn random_deadlines_fire_in_order() {
        // A small deterministic generator keeps this test free of dependencies.
        let mut x: u64 = 0x1234_5678;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut w = W::new(512, 0);
        let mut want: Vec<(u64, u32)> = Vec::new();
        for n in 0..512 {
            let d = next() % 2_000_000;
            w.arm(n, d);
            want.push((d, n));
        }
        want.sort_unstable();
        let mut now = 0;
        let mut got = Vec::new();
        while got.len() < 512 {
            now += next() % 5_000;
            let mut budget = 7;
            loop {
                match w.pop_expired(now, &mut budget) {
                    Pop::Expired(n) => {
                        assert!(w.deadline(n) <= now);
                        got.push(n);
                    }
                    Pop::Budget => budget = 7,
                    Pop::Idle => break,
                }
            }
            for (d, n) in &want {
                let fired = got.contains(n);
                assert_eq!(fired, *d <= now, "node {n} deadline {d} now {now}");
            }
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Arm(u32, u64),
        Refresh(u32, u64),
        Cancel(u32),
        Advance(u64, usize),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        // Deltas mix the exact-millisecond range, every level, and beyond the span.
        let delta = prop_oneof![
            0..70u64,
            0..300_000u64,
            0..20_000_000u64,
            Just(MAX_SPAN + 5)
        ];
        prop_oneof![
            (0..32u32, delta.clone()).prop_map(|(n, d)| Op::Arm(n, d)),
            (0..32u32, delta.clone()).prop_map(|(n, d)| Op::Refresh(n, d)),
            (0..32u32).prop_map(Op::Cancel),
            (delta, 1..5usize).prop_map(|(d, b)| Op::Advance(d, b)),
        ]
    }

    proptest::proptest! {
        #[test]
        fn matches_a_model(start in 0..u64::from(u32::MAX), ops in proptest::collection::vec(op(), 1..200)) {
            let mut w = W::new(32, start);
            let mut model = std::collections::HashMap::<u32, u64>::new();
            let mut now = start;
            for op in ops {
                match op {
                    Op::Arm(n, d) => {
                        if let std::collections::hash_map::Entry::Vacant(e) = model.entry(n) {
                            e.insert(now + d);
                            w.arm(n, now + d);
                        }
                    }
                    Op::Refresh(n, d) => {
                        if let Some(m) = model.get_mut(&n) {
                            *m = now + d;
                            w.refresh(n, now + d);
                        }
                    }
                    Op::Cancel(n) => {
                        model.remove(&n);
                        w.cancel(n);
                    }
                    Op::Advance(d, b) => {
                        now += d;
                        let mut budget = b;
                        loop {
                            match w.pop_expired(now, &mut budget) {
                                Pop::Expired(n) => {
                                    let due = model.remove(&n);
                                    proptest::prop_assert!(due.is_some_and(|t| t <= now), "node {} fired early", n);
                                }
                                Pop::Budget => budget = b,
                                Pop::Idle => break,
                            }
                        }
                        for (n, t) in &model {
                            proptest::prop_assert!(*t > now, "node {} due at {} not fired at {}", n, t, now);
                            proptest::prop_assert!(w.is_armed(*n));
                        }
                    }
                }
            }
        }
    }
}
