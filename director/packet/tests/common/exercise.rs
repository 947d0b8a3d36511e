//! The property tests' common step: every rewrite and builder on a frame, with canaries
//! around each buffer to catch a write outside it, and the checks a successful result must
//! pass.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::ops::Range;

use super::*;
use lvs_packet::*;
use proptest::prelude::*;

/// Bytes around the frame under test, to catch a write outside it.
const CANARY: u8 = 0xa5;
const GUARD: usize = 32;

pub fn ip(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

pub fn ip6(a: [u8; 16]) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(a))
}

pub const MACS: MacPair = MacPair {
    src: MAC_DIRECTOR,
    dst: MAC_RS,
};

/// `frame` inside a buffer with canaries either side.
pub struct Guarded {
    buf: Vec<u8>,
    len: usize,
}

impl Guarded {
    pub fn new(frame: &[u8]) -> Guarded {
        let mut buf = vec![CANARY; frame.len() + 2 * GUARD];
        buf[GUARD..GUARD + frame.len()].copy_from_slice(frame);
        Guarded {
            buf,
            len: frame.len(),
        }
    }

    pub fn frame(&mut self) -> &mut [u8] {
        &mut self.buf[GUARD..GUARD + self.len]
    }

    pub fn assert_canaries(&self) {
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
pub fn exercise(frame: &[u8], pkt: &Packet, fresh: bool) {
    // One address of each family: the packet's is applied, the other refused.
    let addrs = [ip(RS), ip6(RS6)];
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

        let tunnels = [(ip(DIRECTOR), ip(RS), 20), (ip6(DIRECTOR6), ip6(RS6), 40)];
        for ((outer_src, outer_dst, outer_len), out_len) in tunnels
            .into_iter()
            .flat_map(|t| [0, 40, 100, 600, 2100].map(|n| (t, n)))
        {
            let mut out = Guarded::new(&vec![0u8; out_len]);
            let params = TunParams {
                outer_src,
                outer_dst,
                macs: MACS,
                mtu: 1500,
                ip_id: 9,
            };
            let r = tun_encap(frame, pkt, &params, partial, out.frame());
            out.assert_canaries();
            if r.is_ok() {
                assert_eq!(outer_src.is_ipv6(), pkt.is_ipv6(), "families not mixed");
            }
            if let (Ok(n), true) = (r, fresh) {
                let f = out.frame();
                let inner = &f[14 + outer_len..n];
                if partial && pkt.flow.protocol.has_ports() {
                    // The inner checksum was completed: frame the inner packet again and
                    // check it (the outer EtherType is the inner one's).
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
    for (from, out_len) in [ip(VIP), ip6(VIP6)]
        .into_iter()
        .flat_map(|a| [0, 50, 600, 1400].map(|n| (a, n)))
    {
        let mut out = Guarded::new(&vec![0u8; out_len]);
        let r = icmp_frag_needed(frame, pkt, from, 1480, MACS, out.frame());
        out.assert_canaries();
        if let (Ok(n), true) = (r, fresh) {
            let q = parse(&out.frame()[..n]).expect("our ICMP error parses");
            assert_eq!(q.embedded().map(|e| e.flow), Some(pkt.flow));
            assert!(
                verify_l4(&out.frame()[..n], &q),
                "our ICMP error's checksum"
            );
        }
        let mut out = Guarded::new(&vec![0u8; out_len]);
        let r = icmp_time_exceeded(frame, pkt, from, MACS, out.frame());
        out.assert_canaries();
        if let (Ok(n), true) = (r, fresh) {
            let q = parse(&out.frame()[..n]).expect("our ICMP error parses");
            assert!(
                verify_l4(&out.frame()[..n], &q),
                "our ICMP error's checksum"
            );
        }
    }
}

/// Parses `frame` and, if it parses, exercises every rewrite on it and on truncations of it
/// with the now stale `Packet`.
pub fn parse_and_exercise(frame: &[u8]) {
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

/// What a property test builds: a TCP segment with these flags, a UDP datagram, or an ICMP
/// error quoting this many bytes of a UDP datagram, from the client's or the server's side.
#[derive(Clone, Debug)]
pub enum Kind {
    Tcp(u8),
    Udp,
    IcmpFromClient(usize),
    IcmpFromServer(usize),
}

pub fn kind(quotes: Range<usize>) -> impl Strategy<Value = Kind> {
    prop_oneof![
        any::<u8>().prop_map(Kind::Tcp),
        Just(Kind::Udp),
        quotes.clone().prop_map(Kind::IcmpFromClient),
        quotes.prop_map(Kind::IcmpFromServer),
    ]
}

/// A valid frame of the given kind.
pub fn build_kind(spec: &impl Build, kind: &Kind) -> Vec<u8> {
    match *kind {
        Kind::Tcp(flags) => spec.build(L4::Tcp { flags }),
        Kind::Udp => spec.build(L4::Udp),
        Kind::IcmpFromClient(q) => spec.udp_error(true, q),
        Kind::IcmpFromServer(q) => spec.udp_error(false, q),
    }
}

/// Random byte changes and a random cut.
pub fn mutations() -> impl Strategy<Value = (Vec<(usize, u8)>, Option<usize>)> {
    (
        proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        proptest::option::of(any::<usize>()),
    )
}

pub fn mutate(f: &mut Vec<u8>, (flips, truncate): &(Vec<(usize, u8)>, Option<usize>)) {
    for &(at, v) in flips {
        let n = f.len();
        f[at % n] = v;
    }
    if let Some(t) = truncate {
        f.truncate(t % (f.len() + 1));
    }
}

/// Offsets a caller might put in a `Packet`: anything, or anything plausible.
pub fn offsets() -> impl Strategy<Value = [usize; 7]> {
    proptest::array::uniform7(prop_oneof![any::<usize>(), 0usize..1600])
}

/// `p` with its public offsets set to `offsets`.
pub fn tamper(p: &mut Packet, offsets: [usize; 7]) {
    p.l3 = offsets[0];
    p.l4 = offsets[1];
    p.payload = offsets[2];
    p.l4_end = offsets[3];
    p.end = offsets[4];
    if let Some(e) = p.icmp.as_mut().and_then(|i| i.embedded.as_mut()) {
        e.l3 = offsets[5];
        e.l4 = offsets[6];
    }
}

/// Checks that the rewritten ICMP error `e` equals `want` (the error as the other end would
/// have sent it), except that the quoted transport checksum at `quoted_csum` may come back as
/// the other zero, and the ICMP checksum at `icmp_csum` with it.
pub fn assert_same_error(e: &mut [u8], want: &[u8], quoted_csum: usize, icmp_csum: usize) {
    let q = quoted_csum;
    if q + 2 <= e.len() {
        assert!(csum_eq(
            u16::from_be_bytes([e[q], e[q + 1]]),
            u16::from_be_bytes([want[q], want[q + 1]])
        ));
    }
    if q < e.len() {
        // Either the other zero, or half a checksum field the quote cut: it cannot be
        // updated without the other half, so it is left as the real server saw it.
        let upto = (q + 2).min(e.len());
        e[q..upto].copy_from_slice(&want[q..upto]);
        e[icmp_csum..icmp_csum + 2].copy_from_slice(&want[icmp_csum..icmp_csum + 2]);
    }
    assert_eq!(&*e, want);
}

/// One extension header the walk accepts (a hop-by-hop one only first).
pub fn ext_header() -> impl Strategy<Value = (u8, Vec<u8>)> {
    prop_oneof![
        (0u8..4).prop_map(|u| opts_header(DEST_OPTS, u)),
        (1u8..=255).prop_map(|t| routing_header(t, 0)),
        any::<u32>().prop_map(|id| fragment_header(0, false, id)),
    ]
}

pub fn ext_chain() -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
    (
        any::<bool>(),
        proptest::collection::vec(ext_header(), 0..ipv6::MAX_EXT_HEADERS - 1),
    )
        .prop_map(|(hbh, mut chain)| {
            if hbh {
                chain.insert(0, opts_header(HOP_BY_HOP, 0));
            }
            chain
        })
}

pub fn spec6() -> impl Strategy<Value = Spec6> {
    (
        (
            any::<[u8; 16]>(),
            any::<u16>(),
            any::<[u8; 16]>(),
            any::<u16>(),
        ),
        1u8..=255,
        any::<u8>(),
        0u32..0x10_0000,
        proptest::option::of(0u16..4095),
        ext_chain(),
        0usize..1400,
    )
        .prop_map(|((src, sport, dst, dport), hop, tc, fl, vlan, exts, n)| {
            let mut s = Spec6::new(src, sport, dst, dport).payload_len(n);
            s.hop_limit = hop;
            s.traffic_class = tc;
            s.flow_label = fl;
            s.vlan = vlan;
            s.exts = exts;
            s
        })
}

/// One family's addresses and layout for the tests that run on both.
#[derive(Clone, Copy, Debug)]
pub struct Fam {
    pub vip: IpAddr,
    pub rs: IpAddr,
    /// Offset of the ICMP checksum in an untagged frame.
    pub icmp_csum: usize,
}

pub const V4: Fam = Fam {
    vip: IpAddr::V4(Ipv4Addr::new(VIP[0], VIP[1], VIP[2], VIP[3])),
    rs: IpAddr::V4(Ipv4Addr::new(RS[0], RS[1], RS[2], RS[3])),
    icmp_csum: 14 + 20 + 2,
};

pub const V6: Fam = Fam {
    vip: IpAddr::V6(Ipv6Addr::from_octets(VIP6)),
    rs: IpAddr::V6(Ipv6Addr::from_octets(RS6)),
    icmp_csum: 14 + 40 + 2,
};

/// A TCP segment or UDP datagram of `n` payload bytes between two addresses of one family
/// (IPv6: behind the extension headers `exts`).
pub fn frame_any(
    (src, sport): (IpAddr, u16),
    (dst, dport): (IpAddr, u16),
    n: usize,
    exts: &[(u8, Vec<u8>)],
    l4: L4,
) -> Vec<u8> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => frame(
            &Spec::new(s.octets(), sport, d.octets(), dport).payload_len(n),
            l4,
        ),
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let spec = Spec6::new(s.octets(), sport, d.octets(), dport).payload_len(n);
            frame6(
                &Spec6 {
                    exts: exts.to_vec(),
                    ..spec
                },
                l4,
            )
        }
        _ => panic!("mixed families"),
    }
}

/// An ICMP error from `src` to `dst` about the packet in `about`: "port unreachable", or
/// "fragmentation needed" / "packet too big".
pub fn error_any(src: IpAddr, dst: IpAddr, too_big: bool, about: &[u8], quote: usize) -> Vec<u8> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let kind = if too_big {
                frag_needed(1400)
            } else {
                port_unreachable()
            };
            icmp_error(s.octets(), d.octets(), kind, about, quote)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let kind = if too_big {
                packet_too_big(1280)
            } else {
                port_unreachable6()
            };
            icmp6_error(s.octets(), d.octets(), kind, about, quote)
        }
        _ => panic!("mixed families"),
    }
}

/// Every checksum of a frame of either family, checked independently.
pub fn assert_checksums_any(f: &[u8]) {
    if f[12..14] == [0x86, 0xdd] {
        assert_checksums6(f);
    } else {
        assert_checksums(f);
    }
}

/// ICMP errors rewritten by NAT in both directions carry valid checksums everywhere and
/// restore the quote of the original packet.
#[allow(clippy::too_many_arguments)]
pub fn check_icmp_nat_round_trip(
    fam: Fam,
    client: IpAddr,
    (cport, vport, rport): (u16, u16, u16),
    quote: usize,
    n: usize,
    tcp: bool,
    exts: &[(u8, Vec<u8>)],
) {
    let l4 = || {
        if tcp {
            L4::Tcp { flags: 0x10 }
        } else {
            L4::Udp
        }
    };
    let original = frame_any((client, cport), (fam.vip, vport), n, exts, l4());
    let mut natted = original.clone();
    let p = parse(&natted).unwrap();
    nat_in(&mut natted, &p, fam.rs, rport, false).unwrap();
    let mut e = error_any(fam.rs, client, false, &natted, quote);
    let pe = parse(&e).unwrap();
    nat_icmp_out(&mut e, &pe, fam.vip, vport).unwrap();
    assert_checksums_any(&e);
    let want = error_any(fam.vip, client, false, &original, quote);
    // The quoted transport checksum may come back as the other zero.
    let q = parse(&e).unwrap().embedded().unwrap().l4 + if tcp { 16 } else { 6 };
    assert_same_error(&mut e, &want, q, fam.icmp_csum);

    let mut reply = frame_any((fam.rs, rport), (client, cport), n, exts, l4());
    let pr = parse(&reply).unwrap();
    nat_out(&mut reply, &pr, fam.vip, vport, false).unwrap();
    let mut e = error_any(client, fam.vip, true, &reply, quote);
    let pe = parse(&e).unwrap();
    nat_icmp_in(&mut e, &pe, fam.rs, rport).unwrap();
    assert_checksums_any(&e);
    let q = parse(&e).unwrap();
    let emb = q.embedded().unwrap();
    assert_eq!((emb.flow.src, emb.flow.src_port), (fam.rs, rport));
    assert_eq!(q.flow.dst, fam.rs);
}

/// The transport checksum of `q` in `f`, updated incrementally, equals a full recomputation
/// (up to the two zeros of ones' complement) and is not UDP's zero.
pub fn assert_incremental_equals_full(f: &[u8], q: &Packet, tcp: bool) {
    let csum_at = q.l4 + if tcp { 16 } else { 6 };
    let incremental = u16::from_be_bytes([f[csum_at], f[csum_at + 1]]);
    let mut full = f.to_vec();
    complete_l4_checksum(&mut full, q).unwrap();
    let recomputed = u16::from_be_bytes([full[csum_at], full[csum_at + 1]]);
    assert!(
        csum_eq(incremental, recomputed),
        "{incremental:#06x} vs {recomputed:#06x}"
    );
    if !tcp {
        assert_ne!(incremental, 0, "UDP must not turn a checksum into 'none'");
    }
}
