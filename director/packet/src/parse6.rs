//! The IPv6 half of [`crate::parse`]: the fixed header and its extension-header chain (walked
//! by [`crate::ipv6`]), then TCP, UDP or ICMPv6, and the packet an ICMPv6 error quotes.
//!
//! The director forwards only what it fully understands: a fragment (other than an atomic
//! one), a routing header still naming hops to visit, or a transport header behind an
//! extension header the walk does not step over is refused with its own reason, never
//! forwarded unparsed. A next header that is a protocol of its own (ESP, SCTP, no next
//! header ...) is [`DropReason::UnsupportedProtocol`], as over IPv4.

use core::net::{IpAddr, Ipv6Addr};

use crate::bytes::{get_array, get_u16, sat16};
use crate::checksum::pseudo_header_sum;
use crate::drop::DropReason;
use crate::ipv6::{IPV6_HEADER_LEN, Ipv6Headers, is_unwalked_ext_header, parse_ipv6, walk};
use crate::parse::{Embedded, Flow, L4Proto, Packet, TcpFlags, parse_icmp, parse_ports};

/// ICMPv6 "destination unreachable".
pub const ICMPV6_DEST_UNREACH: u8 = 1;
/// ICMPv6 "packet too big" (the IPv6 form of ICMPv4's "fragmentation needed").
pub const ICMPV6_PACKET_TOO_BIG: u8 = 2;
/// ICMPv6 "time exceeded".
pub const ICMPV6_TIME_EXCEEDED: u8 = 3;
/// ICMPv6 "parameter problem".
pub const ICMPV6_PARAMETER_PROBLEM: u8 = 4;

/// The IPv6 packet at `l3` of `frame`, with its transport header.
pub(crate) fn parse_ipv6_packet(frame: &[u8], l3: usize) -> Result<Packet, DropReason> {
    let h = parse_ipv6(frame, l3)?;
    // No reassembly, as for IPv4: a first fragment is refused too, or its later fragments
    // would go where the kernel sends them. An atomic fragment (RFC 6946) is whole.
    if h.fragment.is_some_and(|f| f.offset != 0 || f.more) {
        return Err(DropReason::Fragment);
    }
    if h.segments_left != 0 {
        return Err(DropReason::Ipv6RoutingSegmentsLeft);
    }
    if is_unwalked_ext_header(h.protocol) {
        return Err(DropReason::Ipv6UnknownExtHeader);
    }
    let protocol =
        L4Proto::from_number_in(h.protocol, true).ok_or(DropReason::UnsupportedProtocol)?;
    let fixed: [u8; IPV6_HEADER_LEN] = get_array(frame, l3).ok_or(DropReason::Truncated)?;
    let (src, dst) = addresses(&fixed);
    let mut pkt = Packet {
        vlan: None,
        l3,
        l4: h.l4,
        payload: h.l4,
        l4_end: h.end,
        end: h.end,
        flow: Flow {
            protocol,
            src,
            src_port: 0,
            dst,
            dst_port: 0,
        },
        tcp_flags: TcpFlags::default(),
        total_len: sat16(h.end - l3),
        ttl: h.hop_limit,
        tos: (fixed[0] << 4) | (fixed[1] >> 4),
        ip_id: 0,
        dont_fragment: true,
        icmp: None,
    };
    if protocol != L4Proto::Icmpv6 {
        parse_ports(frame, &mut pkt)?;
        // RFC 8200 section 8.1: a zero UDP checksum over IPv6 is discarded by the receiver.
        if protocol == L4Proto::Udp && get_u16(frame, pkt.l4 + 6) == Some(0) {
            return Err(DropReason::Ipv6UdpZeroChecksum);
        }
        return Ok(pkt);
    }
    // Errors are checked before the rewrite recomputes their checksum, as for ICMPv4; this one
    // covers the pseudo-header too (RFC 4443 section 2.3).
    const ERRORS: [u8; 4] = [
        ICMPV6_DEST_UNREACH,
        ICMPV6_PACKET_TOO_BIG,
        ICMPV6_TIME_EXCEEDED,
        ICMPV6_PARAMETER_PROBLEM,
    ];
    let len = u32::try_from(h.end - h.l4).map_err(|_| DropReason::BadIcmp)?;
    let pseudo = pseudo_header_sum(src, dst, 58, len);
    parse_icmp(frame, &mut pkt, &ERRORS, pseudo, parse_embedded)?;
    Ok(pkt)
}

fn addresses(fixed: &[u8; IPV6_HEADER_LEN]) -> (IpAddr, IpAddr) {
    let addr = |off| {
        IpAddr::V6(Ipv6Addr::from(
            get_array::<16>(fixed, off).unwrap_or([0; 16]),
        ))
    };
    (addr(8), addr(24))
}

/// Parses the IPv6 packet an ICMPv6 error quotes, from `at` to the end of the message `end`.
/// The quote is cut (RFC 4443 keeps the whole message within 1280 bytes), so its payload
/// length is not checked against it; but its extension headers and 8 bytes of its transport
/// header must be there, or the connection cannot be found: [`DropReason::BadIcmp`].
fn parse_embedded(frame: &[u8], at: usize, end: usize) -> Result<Embedded, DropReason> {
    let fixed: [u8; IPV6_HEADER_LEN] = get_array(frame, at).ok_or(DropReason::BadIcmp)?;
    if fixed[0] >> 4 != 6 || at + IPV6_HEADER_LEN > end {
        return Err(DropReason::BadIcmp);
    }
    let payload_len = usize::from(u16::from_be_bytes([fixed[4], fixed[5]]));
    let quoted_end = (at + IPV6_HEADER_LEN + payload_len).min(end);
    let h: Ipv6Headers = walk(frame, at, quoted_end).map_err(|_| DropReason::BadIcmp)?;
    if h.fragment.is_some_and(|f| f.offset != 0) {
        return Err(DropReason::Fragment);
    }
    let protocol =
        L4Proto::from_number_in(h.protocol, true).ok_or(DropReason::UnsupportedProtocol)?;
    let l4_quote = get_array::<8>(frame, h.l4)
        .filter(|_| h.l4 + 8 <= quoted_end)
        .ok_or(DropReason::BadIcmp)?;
    let (src_port, dst_port) = if protocol.has_ports() {
        (
            u16::from_be_bytes([l4_quote[0], l4_quote[1]]),
            u16::from_be_bytes([l4_quote[2], l4_quote[3]]),
        )
    } else {
        (0, 0)
    };
    let (src, dst) = addresses(&fixed);
    Ok(Embedded {
        l3: at,
        l4: h.l4,
        flow: Flow {
            protocol,
            src,
            src_port,
            dst,
            dst_port,
        },
    })
}
