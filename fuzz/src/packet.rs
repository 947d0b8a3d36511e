//! The `packet` target's input: a parameter block, then the Ethernet frame, whose checksums
//! the target may fix first.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lvs_packet::checksum::{ipv4_header_checksum, l4_checksum, pseudo_header_sum};
use lvs_packet::{L4Proto, Packet, parse};

/// Length of the parameter block before the frame.
///
/// The block has one length whatever the family it names, so that a mutation of the family
/// bit re-reads the same frame with an address of the other family instead of shifting the
/// frame by twelve bytes (which would only test the parser's refusals again).
pub const PACKET_PARAMS_LEN: usize = 22;

/// Byte 0, bit 0: the frame arrived with a partial checksum (`TP_STATUS_CSUMNOTREADY`).
pub const FLAG_CSUM_PARTIAL: u8 = 1;
/// Byte 0, bit 1: cut byte 1's count of bytes off the frame before the rewrites, so that the
/// `Packet` may describe more than the frame holds.
pub const FLAG_CUT: u8 = 2;
/// Byte 0, bit 2: the address is IPv6 (bytes 6..22), not IPv4 (bytes 6..10).
pub const FLAG_IPV6: u8 = 4;
/// Byte 0, bit 3: the tunnel's outer source is of the other family than the address.
pub const FLAG_MIXED_TUNNEL: u8 = 8;
/// Byte 0, bit 4: fix the frame's checksums before parsing it ([`fix_checksums`]).
pub const FLAG_FIX_CHECKSUMS: u8 = 16;

/// What the parameter block asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketParams {
    /// Rewrites complete the transport checksum rather than update it.
    pub csum_partial: bool,
    /// Bytes cut off the frame before the rewrites (0 to 255).
    pub cut: usize,
    /// The address every rewrite is given (real server, VIP, tunnel end, ICMP source), of
    /// either family: a rewrite to the packet's family must be accepted, to the other refused.
    pub addr: IpAddr,
    /// The port the NAT rewrites are given; also the tunnel's IPv4 identification.
    pub port: u16,
    /// The tunnel's link MTU and the MTU "fragmentation needed" reports.
    pub mtu: u16,
    /// The tunnel's outer source is of the other family than `addr`.
    pub mixed_tunnel: bool,
    /// Fix the frame's checksums before parsing it.
    pub fix_checksums: bool,
}

impl PacketParams {
    /// The director's own address for the tunnel's outer source: of `addr`'s family, or the
    /// other one with `mixed_tunnel`.
    pub fn tunnel_src(&self) -> IpAddr {
        if self.addr.is_ipv6() != self.mixed_tunnel {
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1))
        } else {
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))
        }
    }
}

/// Splits the `packet` target's input into its parameter block and the frame:
///
/// | bytes | what |
/// | --- | --- |
/// | 0 | flags: [`FLAG_CSUM_PARTIAL`], [`FLAG_CUT`], [`FLAG_IPV6`], [`FLAG_MIXED_TUNNEL`], [`FLAG_FIX_CHECKSUMS`] |
/// | 1 | bytes to cut off the frame, with [`FLAG_CUT`] |
/// | 2..4 | port, big-endian |
/// | 4..6 | MTU, big-endian |
/// | 6..22 | address: IPv6, or IPv4 in its first four bytes |
///
/// `None` if the input is shorter than the block.
pub fn packet_input(data: &[u8]) -> Option<(PacketParams, &[u8])> {
    let (p, frame) = data.split_at_checked(PACKET_PARAMS_LEN)?;
    let flags = p[0];
    let addr: [u8; 16] = p[6..22].try_into().ok()?;
    let addr = if flags & FLAG_IPV6 != 0 {
        IpAddr::V6(Ipv6Addr::from(addr))
    } else {
        IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]))
    };
    let params = PacketParams {
        csum_partial: flags & FLAG_CSUM_PARTIAL != 0,
        cut: if flags & FLAG_CUT != 0 {
            usize::from(p[1])
        } else {
            0
        },
        addr,
        port: u16::from_be_bytes([p[2], p[3]]),
        mtu: u16::from_be_bytes([p[4], p[5]]),
        mixed_tunnel: flags & FLAG_MIXED_TUNNEL != 0,
        fix_checksums: flags & FLAG_FIX_CHECKSUMS != 0,
    };
    Some((params, frame))
}

/// Rewrites every checksum of `frame` that it can find to its right value: the IPv4 header's,
/// the TCP, UDP, ICMP or ICMPv6 one, and in an ICMP error the quoted IPv4 header's and the
/// quoted packet's transport checksum when the quote holds that packet whole. A UDP checksum
/// of zero stays zero ("none" over IPv4, refused over IPv6).
///
/// A mutation almost always breaks a checksum, and `parse` refuses an IPv4 header or an ICMP
/// error whose checksum is wrong before it looks further: without this, the quote of an ICMP
/// error, behind the checksum, would be reached only by the seeds. Never panics.
pub fn fix_checksums(frame: &mut [u8]) {
    fix_outer(frame);
    let Ok(pkt) = parse(frame) else {
        return;
    };
    if let Some(&e) = pkt.embedded() {
        fix_quote(frame, &pkt, e.l3, e.l4);
        fix_outer(frame);
    }
}

fn be16(b: &[u8], off: usize) -> Option<usize> {
    let [hi, lo] = *b.get(off..off.checked_add(2)?)? else {
        return None;
    };
    Some(usize::from(u16::from_be_bytes([hi, lo])))
}

fn addr_at(b: &[u8], off: usize, v6: bool) -> Option<IpAddr> {
    if v6 {
        let a: [u8; 16] = b.get(off..off + 16)?.try_into().ok()?;
        Some(IpAddr::from(a))
    } else {
        let a: [u8; 4] = b.get(off..off + 4)?.try_into().ok()?;
        Some(IpAddr::from(a))
    }
}

/// The IP packet's checksums, after an optional VLAN tag.
fn fix_outer(frame: &mut [u8]) {
    let (l3, ether_type) = match be16(frame, 12) {
        Some(0x8100) => (18, be16(frame, 16)),
        t => (14, t),
    };
    match ether_type {
        Some(0x0800) => {
            fix_ipv4(frame, l3, frame.len());
        }
        Some(0x86dd) => {
            if let Ok(h) = lvs_packet::ipv6::parse_ipv6(frame, l3) {
                fix_l4(frame, l3, true, h.protocol, h.l4, h.end);
            }
        }
        _ => {}
    }
}

/// The IPv4 header at `l3` (and its transport checksum if the packet ends by `limit`).
fn fix_ipv4(frame: &mut [u8], l3: usize, limit: usize) -> Option<()> {
    let header_len = usize::from(frame.get(l3)? & 0x0f) * 4;
    if header_len < 20 {
        return None;
    }
    let header = frame.get_mut(l3..l3 + header_len)?;
    let c = ipv4_header_checksum(header);
    header[10..12].copy_from_slice(&c.to_be_bytes());
    let end = l3 + be16(frame, l3 + 2)?;
    if end > limit || end < l3 + header_len {
        return None;
    }
    let protocol = *frame.get(l3 + 9)?;
    fix_l4(frame, l3, false, protocol, l3 + header_len, end)
}

/// The transport checksum of the segment `l4..end` of the IP packet at `l3`.
fn fix_l4(
    frame: &mut [u8],
    l3: usize,
    v6: bool,
    protocol: u8,
    l4: usize,
    end: usize,
) -> Option<()> {
    let proto = L4Proto::from_number_in(protocol, v6)?;
    let (csum_off, end) = match proto {
        L4Proto::Tcp => (16, end),
        L4Proto::Udp => {
            let len = be16(frame, l4 + 4)?;
            if len < 8 || l4 + len > end || be16(frame, l4 + 6)? == 0 {
                return None;
            }
            (6, l4 + len)
        }
        L4Proto::Icmp | L4Proto::Icmpv6 => (2, end),
    };
    let seg = frame.get(l4..end)?;
    if seg.len() < csum_off + 2 {
        return None;
    }
    let pseudo = if proto == L4Proto::Icmp {
        0
    } else {
        let (src, dst) = if v6 { (8, 24) } else { (12, 16) };
        let len = u32::try_from(seg.len()).ok()?;
        pseudo_header_sum(
            addr_at(frame, l3 + src, v6)?,
            addr_at(frame, l3 + dst, v6)?,
            protocol,
            len,
        )
    };
    let c = l4_checksum(pseudo, seg, csum_off, proto);
    frame
        .get_mut(l4 + csum_off..l4 + csum_off + 2)?
        .copy_from_slice(&c.to_be_bytes());
    Some(())
}

/// The packet an ICMP error quotes, from `l3` (its transport header at `l4`) to the end of
/// the error: an IPv4 header checksum, and the transport checksum if the quote is whole.
fn fix_quote(frame: &mut [u8], pkt: &Packet, l3: usize, l4: usize) -> Option<()> {
    if !pkt.is_ipv6() {
        return fix_ipv4(frame, l3, pkt.end);
    }
    if l3 + 40 + be16(frame, l3 + 4)? != pkt.end {
        return None;
    }
    // The quoted transport header is behind the quote's extension headers, if any.
    let protocol = if l4 == l3 + 40 {
        *frame.get(l3 + 6)?
    } else {
        let h = lvs_packet::ipv6::parse_ipv6(frame.get(..pkt.end)?, l3).ok()?;
        (h.l4 == l4).then_some(h.protocol)?
    };
    fix_l4(frame, l3, true, protocol, l4, pkt.end)
}
