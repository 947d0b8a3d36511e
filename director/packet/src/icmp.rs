//! ICMP and ICMPv6 errors: rewriting the ones that belong to a VS/NAT connection, and building
//! the ones the director itself sends ("fragmentation needed" or "packet too big" for VS/TUN,
//! "time exceeded"); the ICMPv6 builder is in [`crate::icmp6`].

use core::net::{IpAddr, Ipv4Addr};

use etherparse::icmpv4::{DestUnreachableHeader, TimeExceededCode};
use etherparse::{EtherType, Icmpv4Header, Icmpv4Type, IpNumber, Ipv4Header};

use crate::bytes::{get_u16, put_bytes, put_u16};
use crate::checksum::{CsumDelta, complete_l4_checksum, ipv4_header_checksum, l4_csum_offset};
use crate::error::RewriteError;
use crate::eth::{MacPair, write_eth};
use crate::family::End;
use crate::icmp6::build_icmpv6_error;
use crate::nat::{replace_addr, update_l4_csum};
use crate::parse::{ETH_HEADER_LEN, ICMP_HEADER_LEN, IPV4_HEADER_LEN, L4Proto, Packet};
use crate::parse6::{ICMPV6_PACKET_TOO_BIG, ICMPV6_TIME_EXCEEDED};

/// The largest ICMP error the director builds, IP header included: RFC 1812 4.3.2.3's "as much
/// of the original datagram as possible without the length of the ICMP datagram exceeding 576
/// bytes", as Linux does.
pub const ICMP_ERROR_MAX_LEN: usize = 576;

/// TTL of the ICMP errors the director builds (Linux's default).
const ICMP_ERROR_TTL: u8 = 64;

/// Type of service of the ICMP errors the director builds: precedence "internetwork control",
/// as Linux sends them.
const ICMP_ERROR_TOS: u8 = 0xc0;

/// VS/NAT, an ICMP error from a client about a reply it got (for example "fragmentation
/// needed" about VIP:vport -> client). The outer destination (the VIP) and the quoted source
/// address and port become the real server's; the quoted IP checksum, the quoted TCP/UDP
/// checksum when the quote holds it, and the ICMP checksum are brought up to date.
pub fn nat_icmp_in(
    frame: &mut [u8],
    pkt: &Packet,
    rs: IpAddr,
    rs_port: u16,
) -> Result<(), RewriteError> {
    rewrite_icmp_error(frame, pkt, End::Dst, rs, rs_port)
}

/// VS/NAT, an ICMP error from a real server (or a router behind it) about a client's packet.
/// The outer source and the quoted destination address and port become the VIP's, as IPVS
/// does; checksums as for [`nat_icmp_in`].
pub fn nat_icmp_out(
    frame: &mut [u8],
    pkt: &Packet,
    vip: IpAddr,
    vport: u16,
) -> Result<(), RewriteError> {
    rewrite_icmp_error(frame, pkt, End::Src, vip, vport)
}

/// Rewrites the `outer` end of the outer header and the opposite end of the quoted packet (the
/// quote travelled the other way).
fn rewrite_icmp_error(
    frame: &mut [u8],
    pkt: &Packet,
    outer: End,
    addr: IpAddr,
    port: u16,
) -> Result<(), RewriteError> {
    use RewriteError::FrameMismatch;
    pkt.check_frame(frame)?;
    let emb = *pkt.embedded().ok_or(RewriteError::WrongKind)?;
    let family = pkt.family();
    let new_addr = family.octets(addr)?;
    let inner = outer.opposite();

    // Outer header: incremental, like any forwarded packet.
    replace_addr(frame, pkt.l3, family, outer, addr)?;

    // Quoted header: the quote may hold a header whose checksum a router already broke, so
    // recompute it rather than carry an error forward. IPv6 has none.
    let inner_off = emb.l3 + family.addr_offset(inner);
    let old_inner = family.read_octets(frame, inner_off).ok_or(FrameMismatch)?;
    new_addr.write(frame, inner_off).ok_or(FrameMismatch)?;
    if let Some(c) = family.header_checksum_offset() {
        let inner_header = frame.get(emb.l3..emb.l4).ok_or(FrameMismatch)?;
        let inner_csum = ipv4_header_checksum(inner_header);
        put_u16(frame, emb.l3 + c, inner_csum).ok_or(FrameMismatch)?;
    }

    // Quoted transport header: the port, and its checksum if the quote reaches that far (a
    // quoted UDP header always does; a quoted TCP header only beyond 18 bytes). A quoted
    // ICMPv6 message's checksum covers the address too; a quoted ICMPv4 one does not.
    let protocol = emb.flow.protocol;
    let mut d = CsumDelta::new();
    d.replace_slice(old_inner.as_slice(), new_addr.as_slice());
    if protocol.has_ports() {
        let port_off = emb.l4 + inner.port_offset();
        let old_port = get_u16(frame, port_off).ok_or(FrameMismatch)?;
        put_u16(frame, port_off, port).ok_or(FrameMismatch)?;
        d.replace16(old_port, port);
    }
    let csum_off = emb.l4 + l4_csum_offset(protocol);
    if protocol != L4Proto::Icmp && csum_off + 2 <= pkt.end {
        let c = get_u16(frame, csum_off).ok_or(FrameMismatch)?;
        if let Some(c) = update_l4_csum(protocol, c, &d) {
            put_u16(frame, csum_off, c).ok_or(FrameMismatch)?;
        }
    }

    // The ICMP checksum covers the whole quote (and, for ICMPv6, the outer addresses):
    // recompute it (it was verified by `parse`).
    complete_l4_checksum(frame, pkt)
}

/// Builds, into `out`, the ICMP "fragmentation needed and DF set" (type 3, code 4) that tells
/// the client of `pkt` to send packets of at most `next_hop_mtu` bytes; for an IPv6 `pkt`,
/// the ICMPv6 "packet too big" (type 2, code 0) with that MTU. Returns the frame length.
///
/// `from` is the ICMP's source, of the packet's family: pass the VIP the client addressed, as
/// Linux does for a packet it received for a local address. The frame is untagged Ethernet
/// from `macs.src` to `macs.dst` (the next hop toward the client). The quote is the original
/// IP packet, as received, cut so that the ICMP packet is at most [`ICMP_ERROR_MAX_LEN`]
/// bytes (IPv6: [`crate::ICMPV6_ERROR_MAX_LEN`], RFC 4443 section 2.4 (c)): call this before any
/// in-place rewrite of `frame`.
pub fn icmp_frag_needed(
    frame: &[u8],
    pkt: &Packet,
    from: IpAddr,
    next_hop_mtu: u16,
    macs: MacPair,
    out: &mut [u8],
) -> Result<usize, RewriteError> {
    if pkt.is_ipv6() {
        let mtu = u32::from(next_hop_mtu);
        return build_icmpv6_error(frame, pkt, ICMPV6_PACKET_TOO_BIG, mtu, from, macs, out);
    }
    let kind = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
        next_hop_mtu,
    });
    build_icmp_error(frame, pkt, kind, from, macs, out)
}

/// Builds, into `out`, the ICMP "time exceeded in transit" (type 11, code 0) for a packet whose
/// TTL expired at the director ([`crate::decrement_ttl`] said so); for an IPv6 `pkt`, the
/// ICMPv6 "hop limit exceeded in transit" (type 3, code 0). Arguments as for
/// [`icmp_frag_needed`].
pub fn icmp_time_exceeded(
    frame: &[u8],
    pkt: &Packet,
    from: IpAddr,
    macs: MacPair,
    out: &mut [u8],
) -> Result<usize, RewriteError> {
    if pkt.is_ipv6() {
        return build_icmpv6_error(frame, pkt, ICMPV6_TIME_EXCEEDED, 0, from, macs, out);
    }
    let kind = Icmpv4Type::TimeExceeded(TimeExceededCode::TtlExceededInTransit);
    build_icmp_error(frame, pkt, kind, from, macs, out)
}

/// True if RFC 1122 3.2.2 allows an ICMP error about a packet from `src` to `dst`.
fn may_send_error_about(src: Ipv4Addr, dst: Ipv4Addr) -> bool {
    let not_host = |a: Ipv4Addr| a.is_unspecified() || a.is_broadcast() || a.is_multicast();
    !not_host(src) && !dst.is_broadcast() && !dst.is_multicast()
}

fn build_icmp_error(
    frame: &[u8],
    pkt: &Packet,
    kind: Icmpv4Type,
    from: IpAddr,
    macs: MacPair,
    out: &mut [u8],
) -> Result<usize, RewriteError> {
    use RewriteError::FrameMismatch;
    pkt.check_frame(frame)?;
    let (IpAddr::V4(client), IpAddr::V4(dst)) = (pkt.flow.src, pkt.flow.dst) else {
        return Err(RewriteError::FamilyMismatch);
    };
    // Never an error about an error: two hosts could bounce them forever.
    if pkt.is_icmp_error() || !may_send_error_about(client, dst) {
        return Err(RewriteError::IcmpNotAllowed);
    }
    let from: [u8; 4] = match from {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(_) => return Err(RewriteError::FamilyMismatch),
    };

    let max_quote = ICMP_ERROR_MAX_LEN - IPV4_HEADER_LEN - ICMP_HEADER_LEN;
    let quote_len = (pkt.end - pkt.l3).min(max_quote);
    let quote = frame.get(pkt.l3..pkt.l3 + quote_len).ok_or(FrameMismatch)?;
    let icmp_len = ICMP_HEADER_LEN + quote_len;
    let need = ETH_HEADER_LEN + IPV4_HEADER_LEN + icmp_len;
    if out.len() < need {
        return Err(RewriteError::BufferTooSmall { need });
    }

    let too_small = RewriteError::BufferTooSmall { need };
    let mut ip = Ipv4Header::new(
        crate::bytes::sat16(icmp_len),
        ICMP_ERROR_TTL,
        IpNumber::ICMP,
        from,
        client.octets(),
    )
    .map_err(|_| too_small)?;
    // Errors are small enough never to be fragmented; DF stays clear, as Linux sends them,
    // and the client's own IP ID serves as ours.
    ip.dont_fragment = false;
    ip.identification = pkt.ip_id;
    ip.dscp = etherparse::Ipv4Dscp::try_new(ICMP_ERROR_TOS >> 2).map_err(|_| too_small)?;
    ip.header_checksum = ip.calc_header_checksum();
    let icmp = Icmpv4Header::with_checksum(kind, quote);

    let l3 = write_eth(out, macs, EtherType::IPV4).ok_or(too_small)?;
    let l4 = l3 + IPV4_HEADER_LEN;
    put_bytes(out, l3, &ip.to_bytes()).ok_or(too_small)?;
    put_bytes(out, l4, &icmp.to_bytes()).ok_or(too_small)?;
    put_bytes(out, l4 + ICMP_HEADER_LEN, quote).ok_or(too_small)?;
    Ok(need)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::L4Proto;

    #[test]
    fn rfc1122_sources() {
        let host = Ipv4Addr::new(192, 0, 2, 1);
        assert!(may_send_error_about(host, host));
        assert!(!may_send_error_about(Ipv4Addr::UNSPECIFIED, host));
        assert!(!may_send_error_about(Ipv4Addr::BROADCAST, host));
        assert!(!may_send_error_about(Ipv4Addr::new(224, 0, 0, 1), host));
        assert!(!may_send_error_about(host, Ipv4Addr::new(239, 1, 1, 1)));
    }

    #[test]
    fn l4_proto_numbers_round_trip() {
        for p in [L4Proto::Icmp, L4Proto::Tcp, L4Proto::Udp] {
            assert_eq!(L4Proto::from_number(p.number()), Some(p));
        }
    }
}
