//! The director's packet path: `parse`, then every rewrite a worker can apply to what it
//! parsed (NAT both ways, ICMP errors both ways, DR, TUN, the TTL, the ICMP errors the
//! director builds), each on its own copy of the frame.
//!
//! Input: a 10-byte parameter block, then the Ethernet frame (see `lvs_fuzz::packet_input`).
//! Invariants: nothing panics; a rewrite changes no length; what a rewrite returns `Ok` for
//! parses again, with the flow it was asked to produce, an IP header checksum that verifies,
//! and a transport checksum that verifies whenever it verified before (always, for ICMP and
//! for completed partial checksums); a built ICMP error or tunnel frame is a well-formed IPv4
//! packet whose length fields match the bytes written.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use lvs_packet::{
    ETH_HEADER_LEN, ICMP_ERROR_MAX_LEN, IPV4_HEADER_LEN, L4Proto, MacPair, Packet, TunError,
    TunParams, checksum, decrement_ttl, dr_rewrite, icmp_frag_needed, icmp_time_exceeded,
    nat_icmp_in, nat_icmp_out, nat_in, nat_out, parse, tun_encap, verify_ip_header, verify_l4,
};

const MACS: MacPair = MacPair {
    src: [0x02, 0, 0, 0, 0, 1],
    dst: [0x02, 0, 0, 0, 0, 2],
};

struct Params {
    csum_partial: bool,
    /// Cut this many bytes off the frame before rewriting: a stale `Packet`.
    cut: usize,
    addr: IpAddr,
    port: u16,
    mtu: u16,
}

fn split(data: &[u8]) -> Option<(Params, &[u8])> {
    let (p, frame) = data.split_at_checked(10)?;
    let addr = if p[1] & 0x80 != 0 {
        // A family the rewrites refuse.
        IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
    } else {
        IpAddr::V4(Ipv4Addr::new(p[2], p[3], p[4], p[5]))
    };
    Some((
        Params {
            csum_partial: p[0] & 1 != 0,
            cut: usize::from(p[1] & 0x7f) * usize::from(p[0] & 2 != 0),
            addr,
            port: u16::from_be_bytes([p[6], p[7]]),
            mtu: u16::from_be_bytes([p[8], p[9]]),
        },
        frame,
    ))
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

/// A frame the director built (ICMP error, tunnel): an IPv4 packet whose lengths match.
fn check_built(what: &str, out: &[u8], n: usize) -> (usize, usize) {
    assert!(n <= out.len(), "{what}: length beyond the buffer");
    let ip = out
        .get(ETH_HEADER_LEN..n)
        .unwrap_or_else(|| panic!("{what}: shorter than an Ethernet header"));
    assert!(ip.len() >= IPV4_HEADER_LEN, "{what}: no IP header");
    assert_eq!(ip[0], 0x45, "{what}: version/IHL");
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    assert_eq!(total, ip.len(), "{what}: IP total length vs bytes written");
    assert_eq!(
        checksum::fold(checksum::sum(&ip[..IPV4_HEADER_LEN], 0)),
        0xffff,
        "{what}: IP header checksum"
    );
    (ETH_HEADER_LEN, n)
}

fuzz_target!(|data: &[u8]| {
    let Some((p, frame)) = split(data) else {
        return;
    };
    let Ok(pkt) = parse(frame) else {
        return;
    };
    // The parser's own promises.
    assert!(
        pkt.l3 >= ETH_HEADER_LEN
            && pkt.l3 + IPV4_HEADER_LEN <= pkt.l4
            && pkt.l4 <= pkt.payload
            && pkt.payload <= pkt.l4_end
            && pkt.l4_end <= pkt.end
            && pkt.end <= frame.len(),
        "offsets out of order: {pkt:?}"
    );
    assert_eq!(usize::from(pkt.total_len), pkt.end - pkt.l3);
    assert!(verify_ip_header(frame, &pkt));
    if let Some(e) = pkt.embedded() {
        assert_eq!(pkt.flow.protocol, L4Proto::Icmp);
        assert!(e.l3 >= pkt.payload && e.l3 + IPV4_HEADER_LEN <= e.l4 && e.l4 + 8 <= pkt.end);
        assert!(
            verify_l4(frame, &pkt),
            "an ICMP error is parsed only with a good checksum"
        );
    }
    let l4_ok = verify_l4(frame, &pkt);
    let stale = p.cut > 0;
    let work = &frame[..frame.len().saturating_sub(p.cut)];
    let v4 = p.addr.is_ipv4();

    // TTL.
    let mut f = work.to_vec();
    let r = decrement_ttl(&mut f, &pkt);
    assert_eq!(f.len(), work.len());
    if r.is_ok() && !stale {
        let after = check_rewritten("decrement_ttl", &pkt, l4_ok, &f, false);
        assert_eq!(after.ttl, pkt.ttl - 1);
        assert_eq!(after.flow, pkt.flow);
    }

    // NAT, both directions.
    for inbound in [true, false] {
        let mut f = work.to_vec();
        let r = if inbound {
            nat_in(&mut f, &pkt, p.addr, p.port, p.csum_partial)
        } else {
            nat_out(&mut f, &pkt, p.addr, p.port, p.csum_partial)
        };
        assert_eq!(f.len(), work.len());
        assert!(r.is_err() || (pkt.flow.protocol.has_ports() && v4));
        if r.is_ok() && !stale {
            let what = if inbound { "nat_in" } else { "nat_out" };
            let after = check_rewritten(what, &pkt, l4_ok, &f, p.csum_partial);
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
    }

    // ICMP errors of a NAT connection, both directions.
    for inbound in [true, false] {
        let mut f = work.to_vec();
        let r = if inbound {
            nat_icmp_in(&mut f, &pkt, p.addr, p.port)
        } else {
            nat_icmp_out(&mut f, &pkt, p.addr, p.port)
        };
        assert_eq!(f.len(), work.len());
        assert!(r.is_err() || (pkt.is_icmp_error() && v4));
        if r.is_ok() && !stale {
            let what = if inbound {
                "nat_icmp_in"
            } else {
                "nat_icmp_out"
            };
            let after = check_rewritten(what, &pkt, l4_ok, &f, true);
            let emb = *after.embedded().expect("still an ICMP error");
            let quoted = &f[emb.l3..emb.l4];
            assert_eq!(
                checksum::fold(checksum::sum(quoted, 0)),
                0xffff,
                "{what}: quoted IP header checksum"
            );
            let before = pkt.embedded().expect("was an ICMP error").flow;
            let mut want_outer = pkt.flow;
            let mut want_inner = before;
            let port = if before.protocol.has_ports() {
                p.port
            } else {
                0
            };
            if inbound {
                want_outer.dst = p.addr;
                (want_inner.src, want_inner.src_port) = (p.addr, port);
            } else {
                want_outer.src = p.addr;
                (want_inner.dst, want_inner.dst_port) = (p.addr, port);
            }
            assert_eq!(after.flow, want_outer, "{what}: outer flow");
            assert_eq!(emb.flow, want_inner, "{what}: quoted flow");
        }
    }

    // DR: MACs only (and a completed checksum).
    let mut f = work.to_vec();
    let r = dr_rewrite(&mut f, &pkt, MACS, p.csum_partial);
    assert_eq!(f.len(), work.len());
    if r.is_ok() && !stale {
        assert_eq!(f[..6], MACS.dst);
        assert_eq!(f[6..12], MACS.src);
        // Only TCP and UDP checksums are completed.
        let completed = p.csum_partial && pkt.flow.protocol.has_ports();
        let after = check_rewritten("dr_rewrite", &pkt, l4_ok, &f, completed);
        assert_eq!(after.flow, pkt.flow);
        if !completed {
            assert_eq!(
                f[12..],
                frame[12..work.len()],
                "dr_rewrite touched the IP packet"
            );
        }
    }

    // TUN: the outer header, then the IP packet as it was.
    let mut out = [0u8; 2048];
    let params = TunParams {
        outer_src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        outer_dst: p.addr,
        macs: MACS,
        mtu: p.mtu,
        ip_id: p.port,
    };
    match tun_encap(work, &pkt, &params, p.csum_partial, &mut out) {
        Ok(n) if !stale => {
            let (l3, end) = check_built("tun_encap", &out, n);
            assert!(end - l3 <= usize::from(p.mtu), "tun_encap: beyond the MTU");
            assert_eq!(out[l3 + 9], 4, "tun_encap: outer protocol");
            let inner = &out[l3 + IPV4_HEADER_LEN..end];
            assert_eq!(inner.len(), pkt.end - pkt.l3, "tun_encap: inner length");
            let mut copy = frame.to_vec();
            copy[..ETH_HEADER_LEN].copy_from_slice(&out[..ETH_HEADER_LEN]);
            if p.csum_partial && pkt.flow.protocol.has_ports() {
                // The copy's checksum was completed: compare everything else.
                let mut f = frame.to_vec();
                lvs_packet::complete_l4_checksum(&mut f, &pkt).expect("it worked for tun_encap");
                assert_eq!(inner, &f[pkt.l3..pkt.end], "tun_encap: inner packet");
            } else {
                assert_eq!(inner, &frame[pkt.l3..pkt.end], "tun_encap: inner packet");
            }
        }
        Ok(_) => {}
        Err(TunError::TooBig { mtu }) => {
            assert!(pkt.dont_fragment);
            assert_eq!(
                usize::from(mtu),
                usize::from(p.mtu).saturating_sub(IPV4_HEADER_LEN)
            );
        }
        Err(_) => {}
    }

    // The ICMP errors the director builds: well-formed, parse as ICMP errors quoting `pkt`.
    for frag in [true, false] {
        let mut out = [0u8; 1600];
        let r = if frag {
            icmp_frag_needed(work, &pkt, p.addr, p.mtu, MACS, &mut out)
        } else {
            icmp_time_exceeded(work, &pkt, p.addr, MACS, &mut out)
        };
        if let Ok(n) = r
            && !stale
        {
            let what = if frag {
                "icmp_frag_needed"
            } else {
                "icmp_time_exceeded"
            };
            assert!(!pkt.is_icmp_error(), "{what}: an error about an error");
            assert!(
                n - ETH_HEADER_LEN <= ICMP_ERROR_MAX_LEN,
                "{what}: longer than 576 bytes"
            );
            check_built(what, &out, n);
            let built =
                parse(&out[..n]).unwrap_or_else(|e| panic!("{what}: does not parse: {e:?}"));
            assert!(verify_l4(&out[..n], &built), "{what}: ICMP checksum");
            assert_eq!(
                built.flow.dst, pkt.flow.src,
                "{what}: goes back to the sender"
            );
            let emb = built
                .embedded()
                .unwrap_or_else(|| panic!("{what}: quotes no packet"));
            assert_eq!(emb.flow, pkt.flow, "{what}: quotes another flow");
        }
    }
});
