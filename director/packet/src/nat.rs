//! VS/NAT: the director rewrites the destination of a client's packet to the real server
//! (inbound) and the source of the real server's reply back to the VIP (outbound), updating
//! the IP and TCP/UDP checksums incrementally (RFC 1624).

use core::net::IpAddr;

use crate::bytes::{get_array, get_u16, put_bytes, put_u16};
use crate::checksum::{CsumDelta, complete_l4_checksum, l4_csum_offset};
use crate::error::RewriteError;
use crate::parse::{L4Proto, Packet};

/// Which end of a flow a rewrite changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// Source address and port.
    Src,
    /// Destination address and port.
    Dst,
}

impl End {
    /// Offset of this end's address inside an IPv4 header.
    pub(crate) const fn addr_offset(self) -> usize {
        match self {
            End::Src => 12,
            End::Dst => 16,
        }
    }

    /// Offset of this end's port inside a TCP/UDP header.
    pub(crate) const fn port_offset(self) -> usize {
        match self {
            End::Src => 0,
            End::Dst => 2,
        }
    }
}

/// The four bytes of an IPv4 address; another family is a caller error.
pub(crate) fn v4(addr: IpAddr) -> Result<[u8; 4], RewriteError> {
    match addr {
        IpAddr::V4(a) => Ok(a.octets()),
        IpAddr::V6(_) => Err(RewriteError::FamilyMismatch),
    }
}

/// VS/NAT inbound: destination address and port of a client's TCP/UDP packet become the real
/// server's. With `csum_partial` the transport checksum is computed from scratch (the frame
/// arrived with `TP_STATUS_CSUMNOTREADY`); otherwise it is updated incrementally, and a UDP
/// checksum of zero ("none") stays zero.
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
    let new_addr = v4(addr)?;
    let addr_off = pkt.l3 + end.addr_offset();
    let port_off = pkt.l4 + end.port_offset();
    let ip_csum_off = pkt.l3 + 10;
    let l4_csum_off = pkt.l4 + l4_csum_offset(pkt.flow.protocol);

    let old_addr = get_array::<4>(frame, addr_off).ok_or(FrameMismatch)?;
    let old_port = get_u16(frame, port_off).ok_or(FrameMismatch)?;
    let ip_csum = get_u16(frame, ip_csum_off).ok_or(FrameMismatch)?;

    let mut delta = CsumDelta::new();
    delta.replace(&old_addr, &new_addr);
    put_bytes(frame, addr_off, &new_addr).ok_or(FrameMismatch)?;
    put_u16(frame, ip_csum_off, delta.apply(ip_csum)).ok_or(FrameMismatch)?;
    put_u16(frame, port_off, port).ok_or(FrameMismatch)?;

    if csum_partial {
        return complete_l4_checksum(frame, pkt);
    }
    // The IP delta carries over: the pseudo-header covers the same address.
    delta.replace16(old_port, port);
    let l4_csum = get_u16(frame, l4_csum_off).ok_or(FrameMismatch)?;
    if let Some(c) = update_l4_csum(pkt.flow.protocol, l4_csum, &delta) {
        put_u16(frame, l4_csum_off, c).ok_or(FrameMismatch)?;
    }
    Ok(())
}

/// The transport checksum `csum` after `delta`, or `None` to leave it alone (UDP without a
/// checksum). UDP's computed zero is sent as 0xffff (RFC 768).
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
