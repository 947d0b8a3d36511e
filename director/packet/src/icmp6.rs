//! The ICMPv6 errors the director itself sends (RFC 4443): "packet too big" for VS/TUN and
//! "hop limit exceeded". The IPv4 ones and the public entry points are in [`crate::icmp`].

use core::net::{IpAddr, Ipv6Addr};

use etherparse::EtherType;

use crate::bytes::{put_bytes, put_u16, sat16};
use crate::checksum::{finish, pseudo_header_sum, sum};
use crate::error::RewriteError;
use crate::eth::{MacPair, write_eth};
use crate::ipv6::{IPV6_HEADER_LEN, Ipv6Out};
use crate::parse::{ETH_HEADER_LEN, ICMP_HEADER_LEN, L4Proto, Packet};
use crate::parse6::ICMPV6_PACKET_TOO_BIG;

/// The largest ICMPv6 error the director builds, IPv6 header included: the IPv6 minimum MTU,
/// which RFC 4443 section 2.4 (c) says the error must not exceed.
pub const ICMPV6_ERROR_MAX_LEN: usize = 1280;

/// Hop limit of the ICMPv6 errors the director builds (Linux's default).
const ICMPV6_ERROR_HOP_LIMIT: u8 = 64;

/// True if RFC 4443 section 2.4 (e) allows an ICMPv6 error of type `icmp_type` about a
/// packet from `src` to `dst`: the source must name one node, and only "packet too big" may
/// answer a packet sent to a multicast group.
fn may_send_error_about(src: Ipv6Addr, dst: Ipv6Addr, icmp_type: u8) -> bool {
    !src.is_unspecified()
        && !src.is_multicast()
        && (!dst.is_multicast() || icmp_type == ICMPV6_PACKET_TOO_BIG)
}

/// Builds, into `out`, an untagged Ethernet frame holding the ICMPv6 error `icmp_type` (code
/// 0, `word` in bytes 4..8: the MTU of "packet too big") from `from` to the source of `pkt`,
/// quoting as much of `pkt` as fits in [`ICMPV6_ERROR_MAX_LEN`]. Returns the frame length.
pub(crate) fn build_icmpv6_error(
    frame: &[u8],
    pkt: &Packet,
    icmp_type: u8,
    word: u32,
    from: IpAddr,
    macs: MacPair,
    out: &mut [u8],
) -> Result<usize, RewriteError> {
    use RewriteError::FrameMismatch;
    pkt.check_frame(frame)?;
    let (IpAddr::V6(client), IpAddr::V6(dst), IpAddr::V6(from)) =
        (pkt.flow.src, pkt.flow.dst, from)
    else {
        return Err(RewriteError::FamilyMismatch);
    };
    // Never an error about an error (types below 128), so two hosts cannot bounce them.
    let about_error =
        pkt.flow.protocol == L4Proto::Icmpv6 && pkt.icmp.is_some_and(|i| i.icmp_type < 128);
    if about_error || pkt.is_icmp_error() || !may_send_error_about(client, dst, icmp_type) {
        return Err(RewriteError::IcmpNotAllowed);
    }

    let max_quote = ICMPV6_ERROR_MAX_LEN - IPV6_HEADER_LEN - ICMP_HEADER_LEN;
    let quote_len = (pkt.end - pkt.l3).min(max_quote);
    let quote = frame.get(pkt.l3..pkt.l3 + quote_len).ok_or(FrameMismatch)?;
    let icmp_len = ICMP_HEADER_LEN + quote_len;
    let need = ETH_HEADER_LEN + IPV6_HEADER_LEN + icmp_len;
    let too_small = RewriteError::BufferTooSmall { need };
    let out = out.get_mut(..need).ok_or(too_small)?;

    let ip = Ipv6Out {
        traffic_class: 0,
        flow_label: 0,
        payload_len: sat16(icmp_len),
        next_header: 58,
        hop_limit: ICMPV6_ERROR_HOP_LIMIT,
        src: from.octets(),
        dst: client.octets(),
    };
    let mut icmp = [0; ICMP_HEADER_LEN];
    icmp[0] = icmp_type;
    icmp[4..].copy_from_slice(&word.to_be_bytes());

    let l3 = write_eth(out, macs, EtherType::IPV6).ok_or(too_small)?;
    let l4 = l3 + IPV6_HEADER_LEN;
    put_bytes(out, l3, &ip.to_bytes()).ok_or(too_small)?;
    put_bytes(out, l4, &icmp).ok_or(too_small)?;
    put_bytes(out, l4 + ICMP_HEADER_LEN, quote).ok_or(too_small)?;
    let len = u32::try_from(icmp_len).map_err(|_| too_small)?;
    let pseudo = pseudo_header_sum(IpAddr::V6(from), IpAddr::V6(client), 58, len);
    let msg = out.get(l4..).ok_or(too_small)?;
    let csum = finish(sum(msg, pseudo));
    put_u16(out, l4 + 2, csum).ok_or(too_small)?;
    Ok(need)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4443_sources() {
        let host: Ipv6Addr = "2001:db8::1".parse().unwrap_or(Ipv6Addr::LOCALHOST);
        let group: Ipv6Addr = "ff02::1".parse().unwrap_or(Ipv6Addr::LOCALHOST);
        assert!(may_send_error_about(host, host, 3));
        assert!(!may_send_error_about(Ipv6Addr::UNSPECIFIED, host, 3));
        assert!(!may_send_error_about(group, host, 2));
        assert!(!may_send_error_about(host, group, 3));
        assert!(may_send_error_about(host, group, ICMPV6_PACKET_TOO_BIG));
    }
}
