//! The director's packet path: `parse`, then every rewrite a worker can apply to what it
//! parsed (NAT both ways, ICMP errors both ways, DR, TUN, the TTL, the ICMP errors the
//! director builds), each on its own copy of the frame, for IPv4 and IPv6 alike.
//!
//! Input: a 22-byte parameter block, then the Ethernet frame (see `lvs_fuzz::packet_input`);
//! the block's address is of either family, so every rewrite is also tried with an address
//! of the other family than the packet's, and one of its flags has the frame's checksums
//! fixed before parsing (`lvs_fuzz::fix_checksums`), so that mutations get past them.
//! Invariants: nothing panics; a rewrite changes no length; each rewrite gives exactly the
//! result its contract names (a `Packet` longer than the frame is refused, an address of the
//! other family is refused, one of the packet's family is accepted where the kind of packet
//! fits); what a rewrite returns `Ok` for parses again, with the flow it was asked to produce,
//! an IPv4 header checksum that verifies, and a transport checksum that verifies whenever it
//! verified before (always, for ICMP and ICMPv6 and for completed partial checksums), as does
//! the quoted packet's when the error quotes it whole; a built ICMP or ICMPv6 error or tunnel
//! frame is a well-formed packet of the original's family whose length fields match the bytes
//! written.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use lvs_fuzz::{PacketParams, fix_checksums, packet_input};
use lvs_packet::{
    ETH_HEADER_LEN, Embedded, ICMP_ERROR_MAX_LEN, ICMPV6_ERROR_MAX_LEN, IPV4_HEADER_LEN,
    IPV6_HEADER_LEN, L4Proto, MacPair, Packet, RewriteError, TunError, TunParams, checksum,
    decrement_ttl, dr_rewrite, icmp_frag_needed, icmp_time_exceeded, nat_icmp_in, nat_icmp_out,
    nat_in, nat_out, parse, tun_encap, verify_ip_header, verify_l4,
};

const MACS: MacPair = MacPair {
    src: [0x02, 0, 0, 0, 0, 1],
    dst: [0x02, 0, 0, 0, 0, 2],
};

/// IP protocol numbers of what the director builds.
const IPPROTO_IPIP: u8 = 4;
const IPPROTO_IPV6: u8 = 41;

fn header_len(v6: bool) -> usize {
    if v6 { IPV6_HEADER_LEN } else { IPV4_HEADER_LEN }
}

fn be16(b: &[u8], off: usize) -> usize {
    usize::from(u16::from_be_bytes([b[off], b[off + 1]]))
}

/// What a rewrite must answer, in the order the library checks: a `Packet` the frame cannot
/// hold, then a packet of the wrong kind, then an address of the other family.
fn expected(stale: bool, kind_fits: bool, same_family: bool) -> Result<(), RewriteError> {
    if stale {
        Err(RewriteError::FrameMismatch)
    } else if !kind_fits {
        Err(RewriteError::WrongKind)
    } else if !same_family {
        Err(RewriteError::FamilyMismatch)
    } else {
        Ok(())
    }
}

fn assert_same_layout(a: &Packet, b: &Packet, what: &str) {
    assert_eq!(
        (a.vlan, a.l3, a.l4, a.payload, a.l4_end, a.end, a.total_len),
        (b.vlan, b.l3, b.l4, b.payload, b.l4_end, b.end, b.total_len),
        "{what}: the layout changed"
    );
}

/// After an in-place rewrite that returned Ok: same length, parses, IP header verifies, and
/// the transport checksum verifies if it did before (or always, when `l4_must_verify`).
fn check_rewritten(
    what: &str,
    before: &Packet,
    l4_verified_before: bool,
    frame: &[u8],
    l4_must_verify: bool,
) -> Packet {
    let after = parse(frame)
        .unwrap_or_else(|e| panic!("{what}: the rewritten frame no longer parses: {e:?}"));
    assert_same_layout(before, &after, what);
    assert!(
        verify_ip_header(frame, &after),
        "{what}: IP header checksum"
    );
    if l4_must_verify || l4_verified_before {
        assert!(verify_l4(frame, &after), "{what}: transport checksum");
    }
    after
}

/// Whether the transport checksum of the packet an ICMP error quotes verifies, when the quote
/// holds that packet whole (its IP length and, for UDP, its UDP length end where the quote
/// ends) and it has a checksum (not UDP's "none"); `None` otherwise.
fn quoted_l4_verifies(frame: &[u8], pkt: &Packet, e: &Embedded) -> Option<bool> {
    let quote = frame.get(e.l3..pkt.end)?;
    let ip_len = if pkt.is_ipv6() {
        IPV6_HEADER_LEN + be16(quote, 4)
    } else {
        be16(quote, 2)
    };
    let seg = frame.get(e.l4..pkt.end)?;
    let protocol = e.flow.protocol;
    let csum_off = match protocol {
        L4Proto::Tcp => 16,
        L4Proto::Udp => 6,
        L4Proto::Icmp | L4Proto::Icmpv6 => 2,
    };
    if ip_len != quote.len() || seg.len() < csum_off + 2 {
        return None;
    }
    if protocol == L4Proto::Udp && (be16(seg, 4) != seg.len() || seg[6..8] == [0, 0]) {
        return None;
    }
    let pseudo = if protocol == L4Proto::Icmp {
        0
    } else {
        let len = u32::try_from(seg.len()).ok()?;
        checksum::pseudo_header_sum(e.flow.src, e.flow.dst, protocol.number(), len)
    };
    Some(checksum::fold(checksum::sum(seg, pseudo)) == 0xffff)
}

/// A frame the director built (ICMP error, tunnel): Ethernet, then an IP header of the family
/// asked for whose lengths match the bytes written and whose protocol is `next`; IPv4 with a
/// good header checksum. Returns the IP packet's start and end.
fn check_built(what: &str, out: &[u8], n: usize, v6: bool, next: u8) -> (usize, usize) {
    assert!(n <= out.len(), "{what}: length beyond the buffer");
    let ip = out
        .get(ETH_HEADER_LEN..n)
        .unwrap_or_else(|| panic!("{what}: shorter than an Ethernet header"));
    assert!(ip.len() >= header_len(v6), "{what}: no IP header");
    let ether_type = if v6 { 0x86dd } else { 0x0800 };
    assert_eq!(be16(out, 12), ether_type, "{what}: EtherType");
    if v6 {
        assert_eq!(ip[0] >> 4, 6, "{what}: version");
        assert_eq!(
            be16(ip, 4),
            ip.len() - IPV6_HEADER_LEN,
            "{what}: IPv6 payload length vs bytes written"
        );
        assert_eq!(ip[6], next, "{what}: next header");
    } else {
        assert_eq!(ip[0], 0x45, "{what}: version/IHL");
        assert_eq!(
            be16(ip, 2),
            ip.len(),
            "{what}: IP total length vs bytes written"
        );
        assert_eq!(
            checksum::fold(checksum::sum(&ip[..IPV4_HEADER_LEN], 0)),
            0xffff,
            "{what}: IP header checksum"
        );
        assert_eq!(ip[9], next, "{what}: protocol");
    }
    (ETH_HEADER_LEN, n)
}

/// True if the ICMP standards let the director send an error about `pkt` (RFC 1122 3.2.2,
/// RFC 4443 2.4 (e)), never about an error; `too_big` for "packet too big", the one ICMPv6
/// error allowed about a packet sent to a multicast group.
fn may_answer(pkt: &Packet, too_big: bool) -> bool {
    match (pkt.flow.src, pkt.flow.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let not_host = s.is_unspecified() || s.is_broadcast() || s.is_multicast();
            !(pkt.is_icmp_error() || not_host || d.is_broadcast() || d.is_multicast())
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let error_message =
                pkt.flow.protocol == L4Proto::Icmpv6 && pkt.icmp.is_some_and(|i| i.icmp_type < 128);
            !error_message
                && !s.is_unspecified()
                && !s.is_multicast()
                && (too_big || !d.is_multicast())
        }
        _ => false,
    }
}

/// The parser's own promises about `pkt`, parsed from `frame`.
fn check_parsed(frame: &[u8], pkt: &Packet) {
    let v6 = pkt.is_ipv6();
    let hl = header_len(v6);
    assert!(
        pkt.l3 >= ETH_HEADER_LEN
            && pkt.l3 + hl <= pkt.l4
            && pkt.l4 <= pkt.payload
            && pkt.payload <= pkt.l4_end
            && pkt.l4_end <= pkt.end
            && pkt.end <= frame.len(),
        "offsets out of order: {pkt:?}"
    );
    assert_eq!(
        be16(frame, pkt.l3 - 2),
        if v6 { 0x86dd } else { 0x0800 },
        "the family is not the EtherType's"
    );
    assert_eq!(pkt.flow.dst.is_ipv6(), v6, "addresses of two families");
    assert_eq!(
        usize::from(pkt.total_len),
        (pkt.end - pkt.l3).min(usize::from(u16::MAX))
    );
    if v6 {
        assert_eq!(pkt.end - pkt.l3, IPV6_HEADER_LEN + be16(frame, pkt.l3 + 4));
        assert_ne!(pkt.flow.protocol, L4Proto::Icmp, "ICMPv4 over IPv6");
        assert!(pkt.dont_fragment && pkt.ip_id == 0);
    } else {
        assert_ne!(pkt.flow.protocol, L4Proto::Icmpv6, "ICMPv6 over IPv4");
    }
    assert!(verify_ip_header(frame, pkt));
    if let Some(e) = pkt.embedded() {
        let icmp = if v6 { L4Proto::Icmpv6 } else { L4Proto::Icmp };
        assert_eq!(pkt.flow.protocol, icmp);
        assert!(
            e.l3 >= pkt.payload && e.l3 + hl <= e.l4 && e.l4 + 8 <= pkt.end,
            "quote offsets out of order: {pkt:?}"
        );
        assert!(
            e.flow.src.is_ipv6() == v6 && e.flow.dst.is_ipv6() == v6,
            "a quote of another family: {pkt:?}"
        );
        assert!(
            verify_l4(frame, pkt),
            "an ICMP error is parsed only with a good checksum"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((p, frame)) = packet_input(data) else {
        return;
    };
    let fixed;
    let frame = if p.fix_checksums {
        let mut f = frame.to_vec();
        fix_checksums(&mut f);
        fixed = f;
        &fixed[..]
    } else {
        frame
    };
    let Ok(pkt) = parse(frame) else {
        return;
    };
    check_parsed(frame, &pkt);
    rewrites(&p, frame, &pkt);
    builds(&p, frame, &pkt);
});

/// The in-place rewrites, each on its own copy of the (possibly cut) frame.
fn rewrites(p: &PacketParams, frame: &[u8], pkt: &Packet) {
    let l4_ok = verify_l4(frame, pkt);
    let work = &frame[..frame.len().saturating_sub(p.cut)];
    // A cut into padding leaves a `Packet` that still fits the frame.
    let stale = work.len() < pkt.end;
    let same_family = p.addr.is_ipv6() == pkt.is_ipv6();

    // TTL (IPv6: hop limit).
    let mut f = work.to_vec();
    let r = decrement_ttl(&mut f, pkt);
    assert_eq!(f.len(), work.len());
    let want = if stale {
        Err(RewriteError::FrameMismatch)
    } else if pkt.ttl <= 1 {
        Err(RewriteError::TtlExpired)
    } else {
        Ok(())
    };
    assert_eq!(r, want, "decrement_ttl");
    if r.is_ok() {
        let after = check_rewritten("decrement_ttl", pkt, l4_ok, &f, false);
        assert_eq!(after.ttl, pkt.ttl - 1);
        assert_eq!(after.flow, pkt.flow);
    } else {
        assert_eq!(f, work, "decrement_ttl: a refused frame changed");
    }

    // NAT, both directions.
    for inbound in [true, false] {
        let what = if inbound { "nat_in" } else { "nat_out" };
        let mut f = work.to_vec();
        let r = if inbound {
            nat_in(&mut f, pkt, p.addr, p.port, p.csum_partial)
        } else {
            nat_out(&mut f, pkt, p.addr, p.port, p.csum_partial)
        };
        assert_eq!(f.len(), work.len());
        let kind_fits = pkt.flow.protocol.has_ports();
        assert_eq!(r, expected(stale, kind_fits, same_family), "{what}");
        if r.is_err() {
            continue;
        }
        let after = check_rewritten(what, pkt, l4_ok, &f, p.csum_partial);
        let mut want = pkt.flow;
        if inbound {
            (want.dst, want.dst_port) = (p.addr, p.port);
        } else {
            (want.src, want.src_port) = (p.addr, p.port);
        }
        assert_eq!(after.flow, want, "{what}: flow");
        // RFC 768: a UDP checksum that was there stays there.
        if pkt.flow.protocol == L4Proto::Udp {
            let off = pkt.l4 + 6;
            if frame[off..off + 2] != [0, 0] {
                assert_ne!(
                    f[off..off + 2],
                    [0, 0],
                    "{what}: UDP checksum became 'none'"
                );
            }
        }
    }

    // ICMP errors of a NAT connection, both directions.
    for inbound in [true, false] {
        let what = if inbound {
            "nat_icmp_in"
        } else {
            "nat_icmp_out"
        };
        let mut f = work.to_vec();
        let r = if inbound {
            nat_icmp_in(&mut f, pkt, p.addr, p.port)
        } else {
            nat_icmp_out(&mut f, pkt, p.addr, p.port)
        };
        assert_eq!(f.len(), work.len());
        assert_eq!(
            r,
            expected(stale, pkt.is_icmp_error(), same_family),
            "{what}"
        );
        if r.is_err() {
            continue;
        }
        let after = check_rewritten(what, pkt, l4_ok, &f, true);
        let emb = *after.embedded().expect("still an ICMP error");
        if !pkt.is_ipv6() {
            // The quoted header is recomputed, whatever its checksum was; IPv6 has none.
            let quoted = &f[emb.l3..emb.l4];
            assert_eq!(
                checksum::fold(checksum::sum(quoted, 0)),
                0xffff,
                "{what}: quoted IP header checksum"
            );
        }
        let before = *pkt.embedded().expect("was an ICMP error");
        if quoted_l4_verifies(frame, pkt, &before) == Some(true) {
            assert_eq!(
                quoted_l4_verifies(&f, &after, &emb),
                Some(true),
                "{what}: the quoted transport checksum no longer verifies"
            );
        }
        let port = if before.flow.protocol.has_ports() {
            p.port
        } else {
            0
        };
        let mut want_outer = pkt.flow;
        let mut want_inner = before.flow;
        if inbound {
            want_outer.dst = p.addr;
            (want_inner.src, want_inner.src_port) = (p.addr, port);
        } else {
            want_outer.src = p.addr;
            (want_inner.dst, want_inner.dst_port) = (p.addr, port);
        }
        assert_eq!(after.flow, want_outer, "{what}: outer flow");
        assert_eq!(emb.flow, want_inner, "{what}: quoted flow");
        assert_eq!(
            (emb.l3, emb.l4),
            (before.l3, before.l4),
            "{what}: quote moved"
        );
    }

    // DR: MACs only (and a completed checksum).
    let mut f = work.to_vec();
    let r = dr_rewrite(&mut f, pkt, MACS, p.csum_partial);
    assert_eq!(f.len(), work.len());
    assert_eq!(r, expected(stale, true, true), "dr_rewrite");
    if r.is_ok() {
        assert_eq!(f[..6], MACS.dst);
        assert_eq!(f[6..12], MACS.src);
        // Only TCP and UDP checksums are completed.
        let completed = p.csum_partial && pkt.flow.protocol.has_ports();
        let after = check_rewritten("dr_rewrite", pkt, l4_ok, &f, completed);
        assert_eq!(after.flow, pkt.flow);
        if !completed {
            assert_eq!(f[12..], work[12..], "dr_rewrite touched the IP packet");
        }
    }
}

/// The frames the director builds into a buffer of its own: the tunnel and the ICMP errors.
fn builds(p: &PacketParams, frame: &[u8], pkt: &Packet) {
    let work = &frame[..frame.len().saturating_sub(p.cut)];
    let stale = work.len() < pkt.end;
    let v6 = pkt.is_ipv6();
    let same_family = p.addr.is_ipv6() == v6;
    let hl = header_len(v6);

    // TUN: the outer header, then the IP packet as it was.
    let mut out = vec![0u8; 2048];
    let params = TunParams {
        outer_src: p.tunnel_src(),
        outer_dst: p.addr,
        macs: MACS,
        mtu: p.mtu,
        ip_id: p.port,
    };
    let inner_len = pkt.end - pkt.l3;
    let r = tun_encap(work, pkt, &params, p.csum_partial, &mut out);
    match r {
        _ if stale => assert_eq!(r, Err(RewriteError::FrameMismatch.into()), "tun_encap"),
        _ if p.mixed_tunnel => assert_eq!(
            r,
            Err(RewriteError::FamilyMismatch.into()),
            "tun_encap: outer addresses of two families"
        ),
        _ if !same_family => assert_eq!(r, Err(TunError::MixedFamilies), "tun_encap"),
        Ok(n) => {
            let next = if v6 { IPPROTO_IPV6 } else { IPPROTO_IPIP };
            let (l3, end) = check_built("tun_encap", &out, n, v6, next);
            assert!(end - l3 <= usize::from(p.mtu), "tun_encap: beyond the MTU");
            // The TTL or hop limit is the inner packet's, the addresses the tunnel's.
            let (ttl, src, dst) = if v6 { (7, 8, 24) } else { (8, 12, 16) };
            assert_eq!(out[l3 + ttl], pkt.ttl, "tun_encap: outer TTL");
            let addr = |off: usize| match (v6, &out[l3 + off..]) {
                (true, b) => IpAddr::from(<[u8; 16]>::try_from(&b[..16]).expect("16 bytes")),
                (false, b) => IpAddr::from(<[u8; 4]>::try_from(&b[..4]).expect("4 bytes")),
            };
            assert_eq!(
                (addr(src), addr(dst)),
                (params.outer_src, params.outer_dst),
                "tun_encap: outer addresses"
            );
            if v6 {
                // Traffic class and flow label (with the version) are the inner packet's.
                assert_eq!(
                    out[l3..l3 + 4],
                    frame[pkt.l3..pkt.l3 + 4],
                    "tun_encap: outer traffic class or flow label"
                );
            } else {
                let df = out[l3 + 6] & 0x40 != 0;
                assert_eq!(
                    (out[l3 + 1], be16(&out, l3 + 4), df),
                    (pkt.tos, usize::from(p.port), pkt.dont_fragment),
                    "tun_encap: outer TOS, identification or DF"
                );
            }
            let inner = &out[l3 + hl..end];
            assert_eq!(inner.len(), inner_len, "tun_encap: inner length");
            if p.csum_partial && pkt.flow.protocol.has_ports() {
                // The copy's checksum was completed: compare everything else.
                let mut f = frame.to_vec();
                lvs_packet::complete_l4_checksum(&mut f, pkt).expect("it worked for tun_encap");
                assert_eq!(inner, &f[pkt.l3..pkt.end], "tun_encap: inner packet");
            } else {
                assert_eq!(inner, &frame[pkt.l3..pkt.end], "tun_encap: inner packet");
            }
        }
        Err(TunError::TooBig { mtu }) => {
            assert!(hl + inner_len > usize::from(p.mtu), "tun_encap: it fits");
            assert!(pkt.dont_fragment);
            assert_eq!(usize::from(mtu), usize::from(p.mtu).saturating_sub(hl));
        }
        Err(TunError::NeedsFragmentation) => {
            assert!(hl + inner_len > usize::from(p.mtu), "tun_encap: it fits");
            assert!(!pkt.dont_fragment && !v6);
        }
        Err(TunError::Rewrite(RewriteError::BufferTooSmall { need })) => {
            assert_eq!(need, ETH_HEADER_LEN + hl + inner_len);
            assert!(need > out.len(), "tun_encap: the buffer was big enough");
        }
        Err(e) => panic!("tun_encap: {e:?}"),
    }

    // The ICMP errors the director builds: well-formed, parse as ICMP errors quoting `pkt`.
    for too_big in [true, false] {
        let what = if too_big {
            "icmp_frag_needed"
        } else {
            "icmp_time_exceeded"
        };
        let mut out = [0u8; 1600];
        let r = if too_big {
            icmp_frag_needed(work, pkt, p.addr, p.mtu, MACS, &mut out)
        } else {
            icmp_time_exceeded(work, pkt, p.addr, MACS, &mut out)
        };
        let n = match r {
            _ if stale => {
                assert_eq!(r, Err(RewriteError::FrameMismatch), "{what}");
                continue;
            }
            Err(_) if !same_family => continue,
            Ok(_) if !same_family => panic!("{what}: from an address of another family"),
            Err(RewriteError::IcmpNotAllowed) => {
                assert!(!may_answer(pkt, too_big), "{what}: refused");
                continue;
            }
            Err(e) => panic!("{what}: {e:?}"),
            Ok(n) => n,
        };
        assert!(may_answer(pkt, too_big), "{what}: the standards forbid it");
        let max = if v6 {
            ICMPV6_ERROR_MAX_LEN
        } else {
            ICMP_ERROR_MAX_LEN
        };
        assert!(n - ETH_HEADER_LEN <= max, "{what}: longer than {max} bytes");
        let next = if v6 { 58 } else { 1 };
        let (l3, end) = check_built(what, &out, n, v6, next);
        let msg = &out[l3 + hl..end];
        // ICMPv6's checksum covers a pseudo-header; ICMPv4's does not.
        let pseudo = if v6 {
            let len = u32::try_from(msg.len()).expect("at most 1280 bytes");
            checksum::pseudo_header_sum(p.addr, pkt.flow.src, 58, len)
        } else {
            0
        };
        assert_eq!(
            checksum::fold(checksum::sum(msg, pseudo)),
            0xffff,
            "{what}: ICMP checksum"
        );
        // Type and code, then the four bytes before the quote: the MTU for "fragmentation
        // needed" (in the low half) and "packet too big", nothing for "time exceeded".
        let [hi, lo] = p.mtu.to_be_bytes();
        let want: [u8; 6] = match (v6, too_big) {
            (false, true) => [3, 4, 0, 0, hi, lo],
            (false, false) => [11, 0, 0, 0, 0, 0],
            (true, true) => [2, 0, 0, 0, hi, lo],
            (true, false) => [3, 0, 0, 0, 0, 0],
        };
        assert_eq!(
            [msg[0], msg[1], msg[4], msg[5], msg[6], msg[7]],
            want,
            "{what}: ICMP type, code or MTU"
        );
        let quote = &msg[8..];
        assert_eq!(
            quote,
            &work[pkt.l3..pkt.l3 + quote.len()],
            "{what}: the quote is not the packet as received"
        );
        // The quote is cut to fit the error: all of the packet, or as much as fits.
        assert!(quote.len() == inner_len || n - ETH_HEADER_LEN == max);
        if pkt.l4 + 8 > pkt.l3 + quote.len() {
            // IPv6 extension headers longer than the quote: no flow to find in it.
            continue;
        }
        let built = parse(&out[..n]).unwrap_or_else(|e| panic!("{what}: does not parse: {e:?}"));
        check_parsed(&out[..n], &built);
        assert!(verify_l4(&out[..n], &built), "{what}: ICMP checksum");
        assert_eq!(
            (built.flow.src, built.flow.dst),
            (p.addr, pkt.flow.src),
            "{what}: goes back to the sender"
        );
        let emb = built
            .embedded()
            .unwrap_or_else(|| panic!("{what}: quotes no packet"));
        assert_eq!(emb.flow, pkt.flow, "{what}: quotes another flow");
    }
}
