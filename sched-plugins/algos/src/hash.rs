//! A fixed-seed 64-bit hash of an address and, optionally, a port.
//!
//! The hashing schedulers (`sh`, `dh`, `mh`) must map a key to the same destination in every
//! director process, across restarts and machines, so the hash is a pure function of its
//! input bytes: no `RandomState`, no per-process seed, little-endian word reads. Changing any
//! constant here remaps every client of every hashing service; `tests::golden_values` guards
//! against doing so by accident.

use lvs_sched_abi::{AF_INET, Dest};

/// Seed for flow keys (the client's or the service's address).
pub(crate) const SEED_KEY: u64 = 0x6c76_732d_6b65_7921;
/// Seed for a destination's identity (tie-breaks in the bucket table, Maglev's `offset`).
pub(crate) const SEED_DEST: u64 = 0x6c76_732d_6473_7431;
/// Second, independent seed for a destination (Maglev's `skip`).
pub(crate) const SEED_DEST2: u64 = 0x6c76_732d_6473_7432;

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// MurmurHash3's 64-bit finaliser: a bijection in which every input bit flips about half of
/// the output bits.
#[inline]
pub(crate) fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// Hash `addr` as its family defines it (4 bytes for `AF_INET`, all 16 otherwise) and `port`.
///
/// The family and whether a port is present are hashed too, so `10.0.0.1` never collides by
/// construction with `::a00:1`, nor `(addr, port 0)` with `(addr, no port)`.
#[inline]
pub(crate) fn hash_addr(seed: u64, family: u8, addr: &[u8; 16], port: Option<u16>) -> u64 {
    let (lo, hi) = if family == AF_INET {
        let v4 = [addr[0], addr[1], addr[2], addr[3]];
        (u64::from(u32::from_le_bytes(v4)), 0)
    } else {
        let mut lo = [0; 8];
        let mut hi = [0; 8];
        lo.copy_from_slice(&addr[..8]);
        hi.copy_from_slice(&addr[8..]);
        (u64::from_le_bytes(lo), u64::from_le_bytes(hi))
    };
    let tag = match port {
        Some(p) => u64::from(family) | 1 << 8 | u64::from(p) << 16,
        None => u64::from(family),
    };
    let mut h = fmix64(seed ^ tag.wrapping_mul(GOLDEN));
    for word in [lo, hi] {
        h = fmix64(h ^ word).wrapping_add(GOLDEN);
    }
    fmix64(h)
}

/// A destination's identity hash: its address and port, the same in every director.
#[inline]
pub(crate) fn hash_dest(seed: u64, dest: &Dest) -> u64 {
    hash_addr(seed, dest.family, &dest.addr, Some(dest.port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_sched_abi::AF_INET6;

    fn v4(a: [u8; 4]) -> [u8; 16] {
        let mut addr = [0; 16];
        addr[..4].copy_from_slice(&a);
        addr
    }

    #[test]
    fn golden_values() {
        // Pinned so that a change of constants, which would remap every client, is noticed.
        let a = v4([192, 0, 2, 1]);
        assert_eq!(
            hash_addr(SEED_KEY, AF_INET, &a, None),
            0xc370_9a12_4bef_3424
        );
        assert_eq!(
            hash_addr(SEED_KEY, AF_INET, &a, Some(80)),
            0x708a_d6e6_ac2f_cc3d
        );
        let mut b = [0; 16];
        b[..2].copy_from_slice(&[0x20, 0x01]);
        b[15] = 1;
        assert_eq!(
            hash_addr(SEED_KEY, AF_INET6, &b, None),
            0x56ac_d202_a49f_5230
        );
    }

    #[test]
    fn ipv4_ignores_the_unused_bytes() {
        let a = v4([10, 1, 2, 3]);
        let mut b = a;
        b[7] = 0xff;
        b[15] = 0x01;
        assert_eq!(
            hash_addr(SEED_KEY, AF_INET, &a, None),
            hash_addr(SEED_KEY, AF_INET, &b, None)
        );
        assert_ne!(
            hash_addr(SEED_KEY, AF_INET6, &a, None),
            hash_addr(SEED_KEY, AF_INET6, &b, None)
        );
    }

    #[test]
    fn family_port_and_seed_all_matter() {
        let a = v4([10, 1, 2, 3]);
        let base = hash_addr(SEED_KEY, AF_INET, &a, None);
        assert_ne!(base, hash_addr(SEED_KEY, AF_INET6, &a, None));
        assert_ne!(base, hash_addr(SEED_KEY, AF_INET, &a, Some(0)));
        assert_ne!(
            hash_addr(SEED_KEY, AF_INET, &a, Some(1)),
            hash_addr(SEED_KEY, AF_INET, &a, Some(2))
        );
        assert_ne!(base, hash_addr(SEED_DEST, AF_INET, &a, None));
    }

    #[test]
    fn low_bits_are_evenly_spread_over_sequential_addresses() {
        // Sequential client addresses are the common case; each of 64 buckets should get its
        // share of 64k of them, 1024 +- 5 standard deviations (32).
        let mut counts = [0u32; 64];
        for i in 0..65_536u32 {
            let b = i.to_be_bytes();
            let h = hash_addr(SEED_KEY, AF_INET, &v4([10, b[1], b[2], b[3]]), None);
            counts[usize::try_from(h & 63).unwrap()] += 1;
        }
        for c in counts {
            assert!((864..=1184).contains(&c), "bucket count {c} far from 1024");
        }
    }
}
