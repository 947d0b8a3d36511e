//! Property tests: parsing and every rewrite on random bytes, and on random mutations and
//! truncations of valid packets, never panic and never write outside the frame; incremental
//! checksum updates agree with full recomputation.

mod common;

use common::exercise::*;
use common::*;
use lvs_packet::*;
use proptest::collection::vec;
use proptest::prelude::*;

fn spec() -> impl Strategy<Value = Spec> {
    (
        any::<[u8; 4]>(),
        any::<u16>(),
        any::<[u8; 4]>(),
        any::<u16>(),
        1u8..=255,
        any::<bool>(),
        any::<u8>(),
        proptest::option::of(0u16..4095),
        0usize..1500,
    )
        .prop_map(|(src, sport, dst, dport, ttl, df, tos, vlan, n)| {
            let mut s = Spec::new(src, sport, dst, dport).payload_len(n);
            s.ttl = ttl;
            s.df = df;
            s.tos = tos;
            s.vlan = vlan;
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn random_bytes(bytes in vec(any::<u8>(), 0..1600)) {
        parse_and_exercise(&bytes);
    }

    /// Random bytes behind a valid Ethernet + IPv4 start, to get past the first checks.
    #[test]
    fn random_ipv4_bodies(ihl in 5u8..16, body in vec(any::<u8>(), 0..200), proto in prop_oneof![Just(1u8), Just(6), Just(17), any::<u8>()]) {
        let mut f = vec![0u8; 14];
        f[12] = 0x08;
        let total = u16::try_from(20 + body.len()).unwrap();
        f.extend_from_slice(&[0x40 | ihl, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&body);
        fix_ip_checksum(&mut f);
        parse_and_exercise(&f);
    }

    #[test]
    fn mutated_valid_packets(
        spec in spec(),
        kind in kind(28..700),
        mutations in mutations(),
        fix_checksum in any::<bool>(),
    ) {
        let mut f = build_kind(&spec, &kind);
        mutate(&mut f, &mutations);
        if fix_checksum && spec.vlan.is_none() && f.len() >= 34 {
            fix_ip_checksum(&mut f);
        }
        parse_and_exercise(&f);
    }

    /// A `Packet` whose public offsets the caller changed to anything is refused, not obeyed
    /// (IPv4 and IPv6).
    #[test]
    fn tampered_packet_offsets(
        f in prop_oneof![
            (spec(), kind(28..700)).prop_map(|(s, k)| build_kind(&s, &k)),
            (spec6(), kind(48..1232)).prop_map(|(s, k)| build_kind(&s, &k)),
        ],
        offsets in offsets(),
    ) {
        let mut p = parse(&f).unwrap();
        tamper(&mut p, offsets);
        exercise(&f, &p, false);
    }

    /// NAT in and out with incremental updates give the checksums a full recomputation gives.
    #[test]
    fn incremental_equals_full(
        spec in spec(),
        tcp in any::<bool>(),
        new_addr in any::<[u8; 4]>(),
        new_port in any::<u16>(),
        outbound in any::<bool>(),
    ) {
        let f0 = if tcp { frame(&spec, L4::Tcp { flags: 0x10 }) } else { udp(&spec) };
        let mut f = f0.clone();
        let p = parse(&f).unwrap();
        if outbound {
            nat_out(&mut f, &p, ip(new_addr), new_port, false).unwrap();
        } else {
            nat_in(&mut f, &p, ip(new_addr), new_port, false).unwrap();
        }
        let q = parse(&f).unwrap();
        prop_assert!(verify_ip_header(&f, &q));
        prop_assert!(verify_l4(&f, &q));
        assert_incremental_equals_full(&f, &q, tcp);
        let ip_at = q.l3 + 10;
        let ip_csum = u16::from_be_bytes([f[ip_at], f[ip_at + 1]]);
        prop_assert_eq!(ip_csum, lvs_packet::checksum::ipv4_header_checksum(&f[q.l3..q.l4]));
        assert_checksums(&f);

        // The TTL word too: incremental equals recomputed, or the packet is refused as is.
        let before = f.clone();
        match decrement_ttl(&mut f, &q) {
            Ok(()) => {
                prop_assert_eq!(f[q.l3 + 8], spec.ttl - 1);
                let c = u16::from_be_bytes([f[ip_at], f[ip_at + 1]]);
                prop_assert_eq!(c, lvs_packet::checksum::ipv4_header_checksum(&f[q.l3..q.l4]));
            }
            Err(e) => {
                prop_assert_eq!(e, RewriteError::TtlExpired);
                prop_assert!(spec.ttl <= 1);
                prop_assert_eq!(&f, &before);
            }
        }
    }

    /// A packet with an unfinished checksum leaves every rewrite with a correct one.
    #[test]
    fn partial_checksum_completed(spec in spec(), tcp in any::<bool>(), rs in any::<[u8; 4]>(), port in any::<u16>()) {
        let mut f = if tcp { frame(&spec, L4::Tcp { flags: 0x18 }) } else { udp(&spec) };
        make_partial(&mut f);
        let p = parse(&f).unwrap();
        let mut a = f.clone();
        nat_in(&mut a, &p, ip(rs), port, true).unwrap();
        assert_checksums(&a);
        let mut b = f.clone();
        nat_out(&mut b, &p, ip(rs), port, true).unwrap();
        assert_checksums(&b);
        let mut c = f.clone();
        dr_rewrite(&mut c, &p, MACS, true).unwrap();
        assert_checksums(&c);
    }

    /// ICMP errors rewritten by NAT in both directions carry valid checksums everywhere and
    /// restore the quote of the original packet.
    #[test]
    fn icmp_nat_round_trip(
        client in any::<[u8; 4]>(), cport in any::<u16>(), vport in any::<u16>(),
        rport in any::<u16>(), quote in 28usize..600, n in 0usize..1000, tcp in any::<bool>(),
    ) {
        check_icmp_nat_round_trip(V4, ip(client), (cport, vport, rport), quote, n, tcp, &[]);
    }
}
