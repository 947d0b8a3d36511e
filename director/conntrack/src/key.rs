//! Lookup keys and the hash that places them in the index.
//!
//! Like IPVS (`ip_vs_conn_hashkey_param`), an entry is hashed by its client side
//! only: (protocol, client address, client port). An inbound packet carries the
//! client as its source and a NAT reply carries it as its destination, so one index
//! node per entry serves both directions; the full comparison happens on the entry.

use crate::addr::{Addr, Endpoint, Proto};

/// The addresses of one packet as it travels: source and destination.
///
/// For [`crate::Table::lookup_in`] that is client → virtual service; for
/// [`crate::Table::lookup_out`] it is the real server's reply, real server → client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// TCP or UDP.
    pub proto: Proto,
    /// Source address and port of the packet.
    pub src: Endpoint,
    /// Destination address and port of the packet.
    pub dst: Endpoint,
}

impl FlowKey {
    /// A key from its parts.
    pub const fn new(proto: Proto, src: Endpoint, dst: Endpoint) -> FlowKey {
        FlowKey { proto, src, dst }
    }
}

/// The key of a persistence template (`ipvsadm -p`): which client network goes to
/// which real server for one virtual service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TemplateKey {
    /// The service's protocol.
    pub proto: Proto,
    /// The client address already masked with the service's `-M` netmask.
    pub client: Addr,
    /// The virtual address and port; port 0 for an "all ports" service.
    pub virt: Endpoint,
}

impl TemplateKey {
    /// The template key for `client` on a persistent service with netmask `mask`.
    pub fn new(proto: Proto, client: Addr, mask: &Addr, virt: Endpoint) -> TemplateKey {
        TemplateKey {
            proto,
            client: client.masked(mask),
            virt,
        }
    }
}

/// The seed used when the configuration gives none (fixed, so runs are reproducible).
pub const DEFAULT_SEED: u64 = 0x243f_6a88_85a3_08d3;

const K1: u64 = 0x9e37_79b9_7f4a_7c15;
const K2: u64 = 0xbf58_476d_1ce4_e5b9;
const K3: u64 = 0x94d0_49bb_1331_11eb;

/// Multiply into 128 bits and fold the halves: one multiplication mixes every
/// input bit into the result (the core of foldhash and wyhash).
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let wide = u128::from(a) * u128::from(b);
    let lo = u64::try_from(wide & u128::from(u64::MAX)).unwrap_or(0);
    let hi = u64::try_from(wide >> 64).unwrap_or(0);
    lo ^ hi
}

/// The hash of a client side (protocol, address, port) under `seed`.
#[inline]
pub(crate) fn hash_client(seed: u64, proto: Proto, addr: &Addr, port: u16) -> u64 {
    let (a, b) = addr.0.split_at(8);
    let a = u64::from_le_bytes(a.try_into().unwrap_or([0; 8]));
    let b = u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
    let x = fold_mul(a ^ seed ^ K1, b ^ K2);
    let tail = (u64::from(proto as u8) << 16) | u64::from(port);
    fold_mul(x ^ tail ^ K3, K1 ^ seed.rotate_left(32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_spreads_sequential_clients() {
        // 2^16 consecutive ports of 16 addresses into 2^16 buckets: a good hash
        // leaves about 1/e of the buckets empty and no long chains.
        let mask = (1u64 << 16) - 1;
        let mut buckets = vec![0u32; 1 << 16];
        for host in 0..16u8 {
            for port in 0..4096u16 {
                let h = hash_client(DEFAULT_SEED, Proto::Tcp, &Addr::v4([10, 0, 0, host]), port);
                buckets[usize::try_from(h & mask).unwrap()] += 1;
            }
        }
        let empty = buckets.iter().filter(|&&n| n == 0).count();
        let longest = buckets.iter().copied().max().unwrap();
        assert!((20_000..28_000).contains(&empty), "empty buckets: {empty}");
        assert!(longest <= 10, "longest chain: {longest}");
    }

    #[test]
    fn seed_and_protocol_change_the_hash() {
        let a = Addr::v4([10, 1, 2, 3]);
        let h = hash_client(DEFAULT_SEED, Proto::Tcp, &a, 1000);
        assert_ne!(h, hash_client(1, Proto::Tcp, &a, 1000));
        assert_ne!(h, hash_client(DEFAULT_SEED, Proto::Udp, &a, 1000));
        assert_ne!(h, hash_client(DEFAULT_SEED, Proto::Tcp, &a, 1001));
    }

    #[test]
    fn template_key_masks_the_client() {
        let k = TemplateKey::new(
            Proto::Tcp,
            Addr::v4([172, 16, 5, 9]),
            &Addr::v4_netmask([255, 255, 255, 0]),
            Endpoint::v4([10, 0, 0, 100], 80),
        );
        assert_eq!(k.client, Addr::v4([172, 16, 5, 0]));
    }
}
