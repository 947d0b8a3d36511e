//! VS/NAT: the director rewrites the destination of a client's packet to the real server
//! (inbound) and the source of the real server's reply back to the VIP (outbound), updating
//! the checksums incrementally (RFC 1624): the IPv4 header's and the TCP/UDP one, whose
//! pseudo-header covers the addresses of either family. IPv6 has no header checksum.

use core::net::IpAddr;

use crate::bytes::{get_u16, put_u16};
use crate::checksum::{CsumDelta, complete_l4_checksum, l4_csum_offset};
use crate::error::RewriteError;
use crate::family::{End, Family};
use crate::parse::{L4Proto, Packet};

/// VS/NAT inbound: destination address and port of a client's TCP/UDP packet become the real
/// server's (`rs` of the packet's family). With `csum_partial` the transport checksum is
/// computed from scratch (the frame arrived with `TP_STATUS_CSUMNOTREADY`); otherwise it is
/// updated incrementally, and an IPv4 UDP checksum of zero ("none") stays zero.
pub fn nat_in(
    frame: &mut [u8],
    pkt: &Packet,
    rs: IpAddr,
    rs_port: u16,
    csum_partial: bool,
) -> Result<(), RewriteError> {
    rewrite_end(frame, pkt, End::Dst, rs, rs_port, csum_partial)
}

/// VS/NAT outbound: source address and port of a real server's reply become the VIP's.
/// `csum_partial` as for [`nat_in`].
pub fn nat_out(
    frame: &mut [u8],
    pkt: &Packet,
    vip: IpAddr,
    vport: u16,
    csum_partial: bool,
) -> Result<(), RewriteError> {
    rewrite_end(frame, pkt, End::Src, vip, vport, csum_partial)
}

fn rewrite_end(
    frame: &mut [u8],
    pkt: &Packet,
    end: End,
    addr: IpAddr,
    port: u16,
    csum_partial: bool,
) -> Result<(), RewriteError> {
    use RewriteError::FrameMismatch;
    pkt.check_frame(frame)?;
    if !pkt.flow.protocol.has_ports() {
        return Err(RewriteError::WrongKind);
    }
    let family = pkt.family();
    let port_off = pkt.l4 + end.port_offset();
    let l4_csum_off = pkt.l4 + l4_csum_offset(pkt.flow.protocol);
    let old_port = get_u16(frame, port_off).ok_or(FrameMismatch)?;

    let mut delta = replace_addr(frame, pkt.l3, family, end, addr)?;
    put_u16(frame, port_off, port).ok_or(FrameMismatch)?;

    if csum_partial {
        return complete_l4_checksum(frame, pkt);
    }
    // The address delta carries over: the pseudo-header covers the same address.
    delta.replace16(old_port, port);
    let l4_csum = get_u16(frame, l4_csum_off).ok_or(FrameMismatch)?;
    if let Some(c) = update_l4_csum(pkt.flow.protocol, l4_csum, &delta) {
        put_u16(frame, l4_csum_off, c).ok_or(FrameMismatch)?;
    }
    Ok(())
}

/// Writes `addr` as the `end` address of the IP header at `l3` and brings an IPv4 header
/// checksum up to date. Returns the change, for the checksums that cover the address too.
/// Nothing is written if the header does not fit in `frame` or `addr` is of another family.
pub(crate) fn replace_addr(
    frame: &mut [u8],
    l3: usize,
    family: Family,
    end: End,
    addr: IpAddr,
) -> Result<CsumDelta, RewriteError> {
    use RewriteError::FrameMismatch;
    let new = family.octets(addr)?;
    let off = l3 + family.addr_offset(end);
    let old = family.read_octets(frame, off).ok_or(FrameMismatch)?;
    let mut delta = CsumDelta::new();
    delta.replace_slice(old.as_slice(), new.as_slice());
    let ip_csum = match family.header_checksum_offset() {
        Some(c) => Some((l3 + c, get_u16(frame, l3 + c).ok_or(FrameMismatch)?)),
        None => None,
    };
    new.write(frame, off).ok_or(FrameMismatch)?;
    if let Some((at, csum)) = ip_csum {
        put_u16(frame, at, delta.apply(csum)).ok_or(FrameMismatch)?;
    }
    Ok(delta)
}

/// The transport checksum `csum` after `delta`, or `None` to leave it alone: a UDP checksum
/// of zero is "none" over IPv4, and over IPv6 (where `parse` refuses it) can only be in the
/// quote of an ICMPv6 error, which keeps it as quoted. UDP's computed zero is sent as 0xffff
/// (RFC 768).
pub(crate) fn update_l4_csum(protocol: L4Proto, csum: u16, delta: &CsumDelta) -> Option<u16> {
    if protocol == L4Proto::Udp {
        if csum == 0 {
            return None;
        }
        let c = delta.apply(csum);
        return Some(if c == 0 { 0xffff } else { c });
    }
    Some(delta.apply(csum))
}
