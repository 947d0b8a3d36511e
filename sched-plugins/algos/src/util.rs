//! Small helpers shared by the schedulers.

use lvs_sched_abi::{DEST_F_QUIESCED, Dest, Options};

/// A lookup-table slot that points at no destination.
pub(crate) const NO_DEST: u32 = u32::MAX;

/// Refuse unknown options, with the scheduler's name in the message.
pub(crate) fn check_options(name: &str, options: &Options, known: &[&str]) -> Result<(), String> {
    options.only(known).map_err(|e| format!("{name}: {e}"))
}

/// Parse the `port` and `fallback` flags of the hashing schedulers: present alone, or as
/// `key=on`/`key=off` (the spelling `lvsadm -b` needs: an item without `=` is one of ipvsadm's
/// flag names there).
pub(crate) fn flag(name: &str, options: &Options, key: &str) -> Result<bool, String> {
    match options.get(key) {
        Some("on") => Ok(true),
        Some("off") => Ok(false),
        Some(v) => Err(format!(
            "{name}: option {key} is a flag: give it alone, as {key}=on or {key}=off (got {key}={v})"
        )),
        None => Ok(options.has(key)),
    }
}

/// Greatest common divisor; `gcd(0, x) == x`, so it folds over a list from 0.
pub(crate) fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Does this destination get a share of a hash table? Weight 0 or the quiesced flag means the
/// sysadmin took it out; an overloaded destination keeps its share, since overload is
/// transient and moving its keys away and back would break affinity twice.
pub(crate) fn holds_share(dest: &Dest) -> bool {
    dest.weight > 0 && dest.flags & DEST_F_QUIESCED == 0
}

/// Is `a`'s load per unit of weight strictly below `b`'s? `load_a / weight_a < load_b /
/// weight_b`, cross-multiplied in 128 bits so that nothing overflows or rounds.
#[inline]
pub(crate) fn lighter(load_a: u64, weight_a: u32, load_b: u64, weight_b: u32) -> bool {
    u128::from(load_a) * u128::from(weight_b) < u128::from(load_b) * u128::from(weight_a)
}

/// `hash mod len`, as an index.
#[inline]
pub(crate) fn reduce(hash: u64, len: usize) -> usize {
    // usize is at most 64 bits on every target Rust supports, so `len` converts losslessly,
    // and the remainder is below `len`, so it converts back losslessly.
    #[allow(clippy::cast_possible_truncation)]
    let index = (hash % len as u64) as usize;
    index
}

/// Look up `slots[start]` in a hash table of destination indices; if that destination cannot
/// be used and `fallback` is set, take the next slot, in table order, whose destination can.
///
/// Runs in the hot path: no allocation, and a full scan only when some destination is usable
/// yet holds no slot, which a rebuild after every change rules out.
#[inline]
pub(crate) fn pick_slot(
    slots: &[u32],
    start: usize,
    dests: &[Dest],
    fallback: bool,
) -> Option<usize> {
    let usable_at = |slot: usize| {
        let index = usize::try_from(slots[slot]).ok()?;
        dests.get(index).filter(|d| d.is_usable()).map(|_| index)
    };
    if slots.is_empty() {
        return None;
    }
    if let Some(index) = usable_at(start) {
        return Some(index);
    }
    if !fallback || !dests.iter().any(Dest::is_usable) {
        return None;
    }
    let len = slots.len();
    (1..len).find_map(|k| usable_at((start + k) % len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcd_folds_from_zero() {
        assert_eq!([4, 6, 10].into_iter().fold(0, gcd), 2);
        assert_eq!([0, 0].into_iter().fold(0, gcd), 0);
        assert_eq!([7].into_iter().fold(0, gcd), 7);
    }

    #[test]
    fn lighter_cross_multiplies_without_overflow() {
        assert!(lighter(1, 2, 1, 1));
        assert!(!lighter(2, 2, 1, 1));
        assert!(lighter(u64::MAX - 1, u32::MAX, u64::MAX, u32::MAX));
    }
}
