//! VS/TUN: the client's IP packet, unchanged, inside an IPv4 header to the real server
//! (IP-in-IP, protocol 4). The real server decapsulates it and answers the client directly.

use core::net::IpAddr;

use etherparse::{IpNumber, Ipv4Dscp, Ipv4Ecn, Ipv4Header};

use crate::bytes::{put_bytes, sat16};
use crate::checksum::complete_l4_checksum;
use crate::drop::DropReason;
use crate::error::RewriteError;
use crate::eth::{MacPair, write_eth_ipv4};
use crate::nat::v4;
use crate::parse::{ETH_HEADER_LEN, IPV4_HEADER_LEN, Packet};

/// Where and how to tunnel one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TunParams {
    /// Outer source: the director's address on the way to the real server.
    pub outer_src: IpAddr,
    /// Outer destination: the real server.
    pub outer_dst: IpAddr,
    /// Ethernet addresses: the director's interface and the next hop to the real server.
    pub macs: MacPair,
    /// MTU of the link toward the real server (IP bytes, without Ethernet).
    pub mtu: u16,
    /// The outer header's IP identification. The caller supplies it (a per-worker counter)
    /// because this library keeps no state.
    pub ip_id: u16,
}

/// Why a packet was not tunnelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum TunError {
    /// The encapsulated packet would exceed the link MTU and the inner packet has DF set. Send
    /// [`crate::icmp_frag_needed`] with this `mtu` (the link MTU less the outer header) back to
    /// the client, as IPVS does.
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
            TunError::Rewrite(e) => e.drop_reason(),
        }
    }
}

/// Writes into `out` an Ethernet frame holding an outer IPv4 header (protocol 4, TTL and
/// DSCP/ECN and DF copied from the inner packet, as IPVS does) followed by the IP packet of
/// `frame` unchanged. Returns the frame length.
///
/// With `csum_partial` (the frame arrived with `TP_STATUS_CSUMNOTREADY`) the inner TCP/UDP
/// checksum is completed in the copy, or the real server would drop the packet. `frame` itself
/// is never modified, so on [`TunError::TooBig`] it can be quoted by
/// [`crate::icmp_frag_needed`].
pub fn tun_encap(
    frame: &[u8],
    pkt: &Packet,
    params: &TunParams,
    csum_partial: bool,
    out: &mut [u8],
) -> Result<usize, TunError> {
    pkt.check_frame(frame)?;
    let outer_src = v4(params.outer_src)?;
    let outer_dst = v4(params.outer_dst)?;
    let inner = frame
        .get(pkt.l3..pkt.end)
        .ok_or(RewriteError::FrameMismatch)?;
    let outer_len = IPV4_HEADER_LEN + inner.len();
    if outer_len > usize::from(params.mtu) {
        let mtu = sat16(usize::from(params.mtu).saturating_sub(IPV4_HEADER_LEN));
        return Err(if pkt.dont_fragment {
            TunError::TooBig { mtu }
        } else {
            TunError::NeedsFragmentation
        });
    }
    let need = ETH_HEADER_LEN + outer_len;
    let too_small = RewriteError::BufferTooSmall { need };
    if out.len() < need {
        return Err(too_small.into());
    }

    let mut ip = Ipv4Header::new(
        sat16(inner.len()),
        pkt.ttl,
        IpNumber::IPV4,
        outer_src,
        outer_dst,
    )
    .map_err(|_| too_small)?;
    ip.identification = params.ip_id;
    ip.dont_fragment = pkt.dont_fragment;
    ip.dscp = Ipv4Dscp::try_new(pkt.tos >> 2).map_err(|_| too_small)?;
    ip.ecn = Ipv4Ecn::try_new(pkt.tos & 0b11).map_err(|_| too_small)?;
    ip.header_checksum = ip.calc_header_checksum();

    let l3 = write_eth_ipv4(out, params.macs).ok_or(too_small)?;
    let inner_l3 = l3 + IPV4_HEADER_LEN;
    put_bytes(out, l3, &ip.to_bytes()).ok_or(too_small)?;
    put_bytes(out, inner_l3, inner).ok_or(too_small)?;
    if csum_partial && pkt.flow.protocol.has_ports() {
        let moved = pkt.relocated(inner_l3).ok_or(RewriteError::FrameMismatch)?;
        complete_l4_checksum(out.get_mut(..need).ok_or(too_small)?, &moved)?;
    }
    Ok(need)
}
