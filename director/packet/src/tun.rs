//! VS/TUN: the client's IP packet, unchanged, inside an outer header of its family to the real
//! server (IP-in-IP, protocol 4; IPv6-in-IPv6, next header 41). The real server decapsulates
//! it and answers the client directly.

use core::net::IpAddr;

use etherparse::{EtherType, IpNumber, Ipv4Dscp, Ipv4Ecn, Ipv4Header};

use crate::bytes::{get_array, put_bytes, sat16};
use crate::checksum::complete_l4_checksum;
use crate::drop::DropReason;
use crate::error::RewriteError;
use crate::eth::{MacPair, write_eth};
use crate::family::Family;
use crate::ipv6::{IPV6_HEADER_LEN, Ipv6Out};
use crate::parse::{ETH_HEADER_LEN, IPV4_HEADER_LEN, Packet};

/// Where and how to tunnel one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TunParams {
    /// Outer source: the director's address on the way to the real server, of the packet's
    /// family.
    pub outer_src: IpAddr,
    /// Outer destination: the real server.
    pub outer_dst: IpAddr,
    /// Ethernet addresses: the director's interface and the next hop to the real server.
    pub macs: MacPair,
    /// MTU of the link toward the real server (IP bytes, without Ethernet).
    pub mtu: u16,
    /// The outer IPv4 header's identification (unused over IPv6, which has none). The caller
    /// supplies it (a per-worker counter) because this library keeps no state.
    pub ip_id: u16,
}

/// Why a packet was not tunnelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum TunError {
    /// The encapsulated packet would exceed the link MTU and the inner packet has DF set (or
    /// is IPv6). Send [`crate::icmp_frag_needed`] with this `mtu` (the link MTU less the outer
    /// header: 20 bytes, or 40 for IPv6) back to the client, as IPVS does. Over a link whose
    /// MTU is below 1320 this reports less than IPv6's minimum of 1280, which a client will
    /// not go below (RFC 8201): its full-size packets keep being refused, as IPVS refuses
    /// such a tunnel altogether; smaller packets still pass.
    #[error("packet too big for the tunnel: the client must fit {mtu} bytes")]
    TooBig {
        /// The largest inner packet the tunnel carries: the next-hop MTU to report.
        mtu: u16,
    },
    /// The encapsulated packet would exceed the link MTU and the inner packet has DF clear.
    /// IPVS would fragment the outer packet; this library does not yet, so the director drops
    /// and counts it ([`DropReason::NeedsFragmentation`]).
    #[error("packet too big for the tunnel and fragmentation is not implemented")]
    NeedsFragmentation,
    /// The outer addresses are of another family than the packet (an IPv4 packet over an IPv6
    /// tunnel or the reverse): not supported, as in IPVS for an IPv6 service with IPv4 real
    /// servers. The control plane refuses such a service; counted as
    /// [`DropReason::RewriteFailed`].
    #[error(
        "tunnel and packet are of different IP families (IPv4 in IPv6 and IPv6 in IPv4 are not supported)"
    )]
    MixedFamilies,
    /// Any other refusal (a stale `Packet`, a wrong address family, a small output buffer).
    #[error(transparent)]
    Rewrite(#[from] RewriteError),
}

impl TunError {
    /// The drop counter for a packet that could not be tunnelled because of this error.
    pub fn drop_reason(self) -> DropReason {
        match self {
            TunError::TooBig { .. } => DropReason::TooBig,
            TunError::NeedsFragmentation => DropReason::NeedsFragmentation,
            TunError::MixedFamilies => DropReason::RewriteFailed,
            TunError::Rewrite(e) => e.drop_reason(),
        }
    }
}

/// Writes into `out` an Ethernet frame holding an outer header and the IP packet of `frame`
/// unchanged. Returns the frame length.
///
/// - IPv4 inner: an outer IPv4 header (protocol 4, IP-in-IP; TTL and DSCP/ECN and DF copied
///   from the inner packet, as IPVS does).
/// - IPv6 inner: an outer IPv6 header (next header 41, IPv6-in-IPv6 as Linux's `ip6tnl` in
///   mode `ip6ip6` decapsulates it; hop limit, traffic class and flow label copied from the
///   inner packet). IPv6 is never fragmented on the way: a packet over the MTU is
///   [`TunError::TooBig`], answered with ICMPv6 "packet too big".
///
/// The outer addresses in `params` are of the inner packet's family, or
/// [`TunError::MixedFamilies`]. With `csum_partial` (the frame arrived with
/// `TP_STATUS_CSUMNOTREADY`) the inner TCP/UDP checksum is completed in the copy, or the real
/// server would drop the packet. `frame` itself is never modified, so on
/// [`TunError::TooBig`] it can be quoted by [`crate::icmp_frag_needed`].
pub fn tun_encap(
    frame: &[u8],
    pkt: &Packet,
    params: &TunParams,
    csum_partial: bool,
    out: &mut [u8],
) -> Result<usize, TunError> {
    pkt.check_frame(frame)?;
    let family = Family::of(params.outer_src);
    if Family::of(params.outer_dst) != family {
        return Err(RewriteError::FamilyMismatch.into());
    }
    if family != pkt.family() {
        return Err(TunError::MixedFamilies);
    }
    let inner = frame
        .get(pkt.l3..pkt.end)
        .ok_or(RewriteError::FrameMismatch)?;
    let header_len = family.header_len();
    let outer_len = header_len + inner.len();
    if outer_len > usize::from(params.mtu) {
        let mtu = sat16(usize::from(params.mtu).saturating_sub(header_len));
        return Err(if pkt.dont_fragment {
            TunError::TooBig { mtu }
        } else {
            TunError::NeedsFragmentation
        });
    }
    let need = ETH_HEADER_LEN + outer_len;
    let too_small = RewriteError::BufferTooSmall { need };
    let out = out.get_mut(..need).ok_or(too_small)?;

    let (outer, ether_type) = match (params.outer_src, params.outer_dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => (
            outer_ipv4(pkt, params, inner.len(), src.octets(), dst.octets()),
            EtherType::IPV4,
        ),
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let ip = Ipv6Out {
                traffic_class: pkt.tos,
                flow_label: get_array::<4>(inner, 0).map_or(0, u32::from_be_bytes),
                payload_len: sat16(inner.len()),
                next_header: IPV6_IN_IPV6,
                hop_limit: pkt.ttl,
                src: src.octets(),
                dst: dst.octets(),
            };
            (Some(OuterHeader::V6(ip.to_bytes())), EtherType::IPV6)
        }
        _ => (None, EtherType::IPV4),
    };
    let outer = outer.ok_or(too_small)?;
    let l3 = write_eth(out, params.macs, ether_type).ok_or(too_small)?;
    let inner_l3 = l3 + header_len;
    put_bytes(out, l3, outer.as_slice()).ok_or(too_small)?;
    put_bytes(out, inner_l3, inner).ok_or(too_small)?;
    if csum_partial && pkt.flow.protocol.has_ports() {
        let moved = pkt.relocated(inner_l3).ok_or(RewriteError::FrameMismatch)?;
        complete_l4_checksum(out, &moved)?;
    }
    Ok(need)
}

/// IPv6 next header of an IPv6 packet inside IPv6 (RFC 2473).
const IPV6_IN_IPV6: u8 = 41;

/// An outer header's bytes.
enum OuterHeader {
    V4([u8; IPV4_HEADER_LEN]),
    V6([u8; IPV6_HEADER_LEN]),
}

impl OuterHeader {
    fn as_slice(&self) -> &[u8] {
        match self {
            OuterHeader::V4(h) => h,
            OuterHeader::V6(h) => h,
        }
    }
}

/// The outer IPv4 header for an inner IPv4 packet of `inner_len` bytes.
fn outer_ipv4(
    pkt: &Packet,
    params: &TunParams,
    inner_len: usize,
    src: [u8; 4],
    dst: [u8; 4],
) -> Option<OuterHeader> {
    let mut ip = Ipv4Header::new(sat16(inner_len), pkt.ttl, IpNumber::IPV4, src, dst).ok()?;
    ip.identification = params.ip_id;
    ip.dont_fragment = pkt.dont_fragment;
    ip.dscp = Ipv4Dscp::try_new(pkt.tos >> 2).ok()?;
    ip.ecn = Ipv4Ecn::try_new(pkt.tos & 0b11).ok()?;
    ip.header_checksum = ip.calc_header_checksum();
    Some(OuterHeader::V4(ip.to_bytes().as_slice().try_into().ok()?))
}
