//! Property tests: parsing and every rewrite on random bytes, and on random mutations and
//! truncations of valid packets, never panic and never write outside the frame; incremental
//! checksum updates agree with full recomputation.

mod common;

use core::net::{IpAddr, Ipv4Addr};

use common::*;
use lvs_packet::*;
use proptest::collection::vec;
use proptest::prelude::*;

/// Bytes around the frame under test, to catch a write outside it.
const CANARY: u8 = 0xa5;
const GUARD: usize = 32;

fn ip(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

const MACS: MacPair = MacPair {
    src: MAC_DIRECTOR,
    dst: MAC_RS,
};

/// `frame` inside a buffer with canaries either side.
struct Guarded {
    buf: Vec<u8>,
    len: usize,
}

impl Guarded {
    fn new(frame: &[u8]) -> Guarded {
        let mut buf = vec![CANARY; frame.len() + 2 * GUARD];
        buf[GUARD..GUARD + frame.len()].copy_from_slice(frame);
        Guarded {
            buf,
            len: frame.len(),
        }
    }

    fn frame(&mut self) -> &mut [u8] {
        &mut self.buf[GUARD..GUARD + self.len]
    }

    fn assert_canaries(&self) {
        let (head, rest) = self.buf.split_at(GUARD);
        let tail = &rest[self.len..];
        assert!(
            head.iter().chain(tail).all(|&b| b == CANARY),
            "write outside the frame"
        );
    }
}

/// Runs every rewrite and builder on a copy of `frame` with `pkt` (which may be stale or
/// describe another frame), checking bounds; where a rewrite succeeds on a frame that `pkt`
/// really describes, the result must parse again with valid checksums.
fn exercise(frame: &[u8], pkt: &Packet, fresh: bool) {
    let addrs = [ip(RS), IpAddr::V6(core::net::Ipv6Addr::LOCALHOST)];
    for partial in [false, true] {
        for addr in addrs {
            type Rw = fn(&mut [u8], &Packet, IpAddr, u16, bool) -> Result<(), RewriteError>;
            let rewrites: [Rw; 4] = [
                nat_in,
                nat_out,
                |f, p, a, port, _| nat_icmp_in(f, p, a, port),
                |f, p, a, port, _| nat_icmp_out(f, p, a, port),
            ];
            for rw in rewrites {
                let mut g = Guarded::new(frame);
                let ok = rw(g.frame(), pkt, addr, 4242, partial).is_ok();
                g.assert_canaries();
                if ok && fresh {
                    let f = g.frame();
                    let again = parse(f).expect("a rewritten valid packet parses again");
                    assert!(verify_ip_header(f, &again));
                    if partial || verify_l4(frame, pkt) {
                        assert!(verify_l4(f, &again), "transport checksum after rewrite");
                    }
                }
            }
        }
        let mut g = Guarded::new(frame);
        let _ = dr_rewrite(g.frame(), pkt, MACS, partial);
        g.assert_canaries();

        for out_len in [0, 40, 100, 600, 2100] {
            let mut out = Guarded::new(&vec![0u8; out_len]);
            let params = TunParams {
                outer_src: ip(DIRECTOR),
                outer_dst: ip(RS),
                macs: MACS,
                mtu: 1500,
                ip_id: 9,
            };
            let r = tun_encap(frame, pkt, &params, partial, out.frame());
            out.assert_canaries();
            if let (Ok(n), true) = (r, fresh) {
                let f = out.frame();
                let inner = &f[34..n];
                if partial && pkt.flow.protocol != L4Proto::Icmp {
                    // The inner checksum was completed: frame the inner packet again and
                    // check it.
                    let mut again = f[..14].to_vec();
                    again.extend_from_slice(inner);
                    let p2 = parse(&again).expect("the inner packet parses");
                    assert!(verify_l4(&again, &p2), "inner checksum completed");
                } else {
                    assert_eq!(inner, &frame[pkt.l3..pkt.end]);
                }
            }
        }
    }
    let mut g = Guarded::new(frame);
    let _ = decrement_ttl(g.frame(), pkt);
    g.assert_canaries();
    for out_len in [0, 50, 600] {
        let mut out = Guarded::new(&vec![0u8; out_len]);
        let r = icmp_frag_needed(frame, pkt, ip(VIP), 1480, MACS, out.frame());
        out.assert_canaries();
        if let (Ok(n), true) = (r, fresh) {
            let q = parse(&out.frame()[..n]).expect("our ICMP error parses");
            assert_eq!(q.embedded().map(|e| e.flow), Some(pkt.flow));
        }
        let mut out = Guarded::new(&vec![0u8; out_len]);
        let _ = icmp_time_exceeded(frame, pkt, ip(VIP), MACS, out.frame());
        out.assert_canaries();
    }
}

/// Parses `frame` and, if it parses, exercises every rewrite on it and on truncations of it
/// with the now stale `Packet`.
fn parse_and_exercise(frame: &[u8]) {
    let mut g = Guarded::new(frame);
    let r = parse(g.frame());
    g.assert_canaries();
    if let Ok(pkt) = r {
        exercise(frame, &pkt, true);
        for cut in [1, 2, 9, frame.len() / 2] {
            if let Some(short) = frame.get(..frame.len().saturating_sub(cut)) {
                exercise(short, &pkt, false);
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Kind {
    Tcp(u8),
    Udp,
    IcmpFromClient(usize),
    IcmpFromServer(usize),
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        any::<u8>().prop_map(Kind::Tcp),
        Just(Kind::Udp),
        (28usize..700).prop_map(Kind::IcmpFromClient),
        (28usize..700).prop_map(Kind::IcmpFromServer),
    ]
}

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

/// A valid frame of the given kind.
fn build(spec: &Spec, kind: &Kind) -> Vec<u8> {
    match *kind {
        Kind::Tcp(flags) => frame(spec, L4::Tcp { flags }),
        Kind::Udp => udp(spec),
        Kind::IcmpFromClient(q) | Kind::IcmpFromServer(q) => {
            let mut inner = spec.clone();
            inner.vlan = None;
            let about = udp(&inner);
            let from = if matches!(kind, Kind::IcmpFromClient(_)) {
                inner.dst
            } else {
                inner.src
            };
            icmp_error(from, inner.src, port_unreachable(), &about, q.max(28))
        }
    }
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
        kind in kind(),
        flips in vec((any::<usize>(), any::<u8>()), 0..6),
        truncate in proptest::option::of(any::<usize>()),
        fix_checksum in any::<bool>(),
    ) {
        let mut f = build(&spec, &kind);
        for (at, v) in flips {
            let n = f.len();
            f[at % n] = v;
        }
        if let Some(t) = truncate {
            f.truncate(t % (f.len() + 1));
        }
        if fix_checksum && spec.vlan.is_none() && f.len() >= 34 {
            fix_ip_checksum(&mut f);
        }
        parse_and_exercise(&f);
    }

    /// A `Packet` whose public offsets the caller changed to anything is refused, not obeyed.
    #[test]
    fn tampered_packet_offsets(
        spec in spec(),
        kind in kind(),
        offsets in proptest::array::uniform7(prop_oneof![any::<usize>(), 0usize..1600]),
    ) {
        let f = build(&spec, &kind);
        let mut p = parse(&f).unwrap();
        p.l3 = offsets[0];
        p.l4 = offsets[1];
        p.payload = offsets[2];
        p.l4_end = offsets[3];
        p.end = offsets[4];
        if let Some(e) = p.icmp.as_mut().and_then(|i| i.embedded.as_mut()) {
            e.l3 = offsets[5];
            e.l4 = offsets[6];
        }
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
        let csum_at = q.l4 + if tcp { 16 } else { 6 };
        let incremental = u16::from_be_bytes([f[csum_at], f[csum_at + 1]]);
        let mut full = f.clone();
        complete_l4_checksum(&mut full, &q).unwrap();
        let recomputed = u16::from_be_bytes([full[csum_at], full[csum_at + 1]]);
        prop_assert!(csum_eq(incremental, recomputed), "{incremental:#06x} vs {recomputed:#06x}");
        if !tcp {
            prop_assert_ne!(incremental, 0, "UDP must not turn a checksum into 'none'");
        }
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
        let l4 = || if tcp { L4::Tcp { flags: 0x10 } } else { L4::Udp };
        let original = frame(&Spec::new(client, cport, VIP, vport).payload_len(n), l4());
        let mut natted = original.clone();
        let p = parse(&natted).unwrap();
        nat_in(&mut natted, &p, ip(RS), rport, false).unwrap();
        let mut e = icmp_error(RS, client, port_unreachable(), &natted, quote);
        let pe = parse(&e).unwrap();
        nat_icmp_out(&mut e, &pe, ip(VIP), vport).unwrap();
        assert_checksums(&e);
        let want = icmp_error(VIP, client, port_unreachable(), &original, quote);
        // The quoted transport checksum may come back as the other zero.
        let q = parse(&e).unwrap().embedded().unwrap().l4 + if tcp { 16 } else { 6 };
        if q + 2 <= e.len() {
            prop_assert!(csum_eq(
                u16::from_be_bytes([e[q], e[q + 1]]),
                u16::from_be_bytes([want[q], want[q + 1]])
            ));
        }
        if q < e.len() {
            // Either the other zero, or half a checksum field the quote cut: it cannot be
            // updated without the other half, so it is left as the real server saw it.
            let upto = (q + 2).min(e.len());
            e[q..upto].copy_from_slice(&want[q..upto]);
            e[36..38].copy_from_slice(&want[36..38]);
        }
        prop_assert_eq!(&e, &want);

        let mut reply = frame(&Spec::new(RS, rport, client, cport).payload_len(n), l4());
        let pr = parse(&reply).unwrap();
        nat_out(&mut reply, &pr, ip(VIP), vport, false).unwrap();
        let mut e = icmp_error(client, VIP, frag_needed(1400), &reply, quote);
        let pe = parse(&e).unwrap();
        nat_icmp_in(&mut e, &pe, ip(RS), rport).unwrap();
        assert_checksums(&e);
        let q = parse(&e).unwrap();
        let emb = q.embedded().unwrap();
        prop_assert_eq!((emb.flow.src, emb.flow.src_port), (ip(RS), rport));
        prop_assert_eq!(q.flow.dst, ip(RS));
    }
}
