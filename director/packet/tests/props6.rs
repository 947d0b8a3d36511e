//! Property tests of IPv6: the parser and every rewrite on random bytes behind an IPv6 header,
//! on random extension-header chains, and on random mutations and truncations of valid
//! packets, never panic and never write outside the frame; NAT and ICMPv6 rewrites keep every
//! checksum valid and agree with full recomputation.

mod common;

use common::exercise::*;
use common::*;
use lvs_packet::*;
use proptest::collection::vec;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Random bytes behind a valid Ethernet + IPv6 start, so the walk gets to work.
    #[test]
    fn random_ipv6_bodies(
        next in prop_oneof![Just(0u8), Just(6), Just(17), Just(43), Just(44), Just(51), Just(58), Just(60), any::<u8>()],
        body in vec(any::<u8>(), 0..300),
        len_delta in -8i32..8,
        vlan in any::<bool>(),
    ) {
        let mut f = vec![0u8; 12];
        if vlan {
            f.extend_from_slice(&[0x81, 0x00, 0, 7]);
        }
        f.extend_from_slice(&[0x86, 0xdd]);
        let l3 = f.len();
        f.extend_from_slice(&[0x60, 0, 0, 0, 0, 0, next, 64]);
        f.extend_from_slice(&CLIENT6);
        f.extend_from_slice(&VIP6);
        let len = i32::try_from(body.len()).unwrap() + len_delta;
        let len = u16::try_from(len.max(0)).unwrap();
        f[l3 + 4..l3 + 6].copy_from_slice(&len.to_be_bytes());
        f.extend_from_slice(&body);
        parse_and_exercise(&f);
    }

    /// Valid packets behind random extension-header chains parse to their transport header;
    /// every rewrite of them keeps the checksums valid.
    #[test]
    fn ext_chains_are_walked(spec in spec6(), tcp in any::<bool>()) {
        let f = if tcp { frame6(&spec, L4::Tcp { flags: 0x10 }) } else { udp(&spec) };
        let p = parse(&f).unwrap();
        let l3 = if spec.vlan.is_some() { 18 } else { 14 };
        let chain: usize = spec.exts.iter().map(|e| e.1.len()).sum();
        prop_assert_eq!(p.l4, l3 + 40 + chain);
        prop_assert_eq!((p.flow.src_port, p.flow.dst_port), (spec.sport, spec.dport));
        prop_assert_eq!((p.ttl, p.tos), (spec.hop_limit, spec.traffic_class));
        prop_assert!(verify_l4(&f, &p));
        parse_and_exercise(&f);
    }

    #[test]
    fn mutated_valid_packets(
        spec in spec6(),
        kind in kind(48..1232),
        mutations in mutations(),
    ) {
        let mut f = build_kind(&spec, &kind);
        mutate(&mut f, &mutations);
        parse_and_exercise(&f);
    }

    /// NAT in and out with incremental updates give the checksums a full recomputation gives,
    /// and the hop limit goes down by one or the packet is refused as it is.
    #[test]
    fn incremental_equals_full(
        spec in spec6(),
        tcp in any::<bool>(),
        new_addr in any::<[u8; 16]>(),
        new_port in any::<u16>(),
        outbound in any::<bool>(),
        partial in any::<bool>(),
    ) {
        let mut f = if tcp { frame6(&spec, L4::Tcp { flags: 0x10 }) } else { udp(&spec) };
        if partial {
            make_partial(&mut f);
        }
        let p = parse(&f).unwrap();
        if outbound {
            nat_out(&mut f, &p, ip6(new_addr), new_port, partial).unwrap();
        } else {
            nat_in(&mut f, &p, ip6(new_addr), new_port, partial).unwrap();
        }
        let q = parse(&f).unwrap();
        let want = if outbound { (q.flow.src, q.flow.src_port) } else { (q.flow.dst, q.flow.dst_port) };
        prop_assert_eq!(want, (ip6(new_addr), new_port));
        prop_assert!(verify_l4(&f, &q));
        assert_incremental_equals_full(&f, &q, tcp);
        assert_checksums6(&f);

        let before = f.clone();
        match decrement_ttl(&mut f, &q) {
            Ok(()) => {
                prop_assert_eq!(f[q.l3 + 7], spec.hop_limit - 1);
                f[q.l3 + 7] += 1;
                prop_assert_eq!(&f, &before, "only the hop limit changed");
            }
            Err(e) => {
                prop_assert_eq!(e, RewriteError::TtlExpired);
                prop_assert!(spec.hop_limit <= 1);
                prop_assert_eq!(&f, &before);
            }
        }
    }

    /// ICMPv6 errors rewritten by NAT in both directions carry valid checksums everywhere and
    /// restore the quote of the original packet.
    #[test]
    fn icmp_nat_round_trip(
        client in any::<[u8; 16]>(), cport in any::<u16>(), vport in any::<u16>(),
        rport in any::<u16>(), quote in 48usize..1232, n in 0usize..1400, tcp in any::<bool>(),
        exts in ext_chain(),
    ) {
        check_icmp_nat_round_trip(V6, ip6(client), (cport, vport, rport), quote + exts.iter().map(|e| e.1.len()).sum::<usize>(), n, tcp, &exts);
    }
}
