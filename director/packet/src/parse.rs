//! Parsing a received Ethernet frame into a [`Packet`]: the offsets and fields every later step
//! needs, validated once so the rewrites can trust them (and still check every access).
//!
//! etherparse's zero-copy header slices do the structural checks (lengths, IP version and
//! header length, TCP data offset); the consistency checks a forwarder needs on top of them
//! (total length against the frame, header checksum, options, fragments, the header an ICMP
//! error quotes) are ours.

use core::net::{IpAddr, Ipv4Addr};

use etherparse::err::{LenError, tcp::HeaderSliceError as TcpSliceError};
use etherparse::err::{ipv4::HeaderError as Ipv4HeaderError, ipv4::HeaderSliceError};
use etherparse::{
    EtherType, Ethernet2HeaderSlice, Ipv4HeaderSlice, SingleVlanHeaderSlice, TcpHeaderSlice,
    UdpHeaderSlice,
};

use crate::bytes::{get_array, get_u16};
use crate::checksum::{fold, sum};
use crate::drop::DropReason;
use crate::error::RewriteError;
use crate::family::Family;

/// An Ethernet MAC address.
pub type Mac = [u8; 6];

/// Length of an Ethernet II header without a VLAN tag.
pub const ETH_HEADER_LEN: usize = 14;
/// Length of an IPv4 header without options.
pub const IPV4_HEADER_LEN: usize = 20;
/// Length of the fixed ICMP header (type, code, checksum, four more bytes).
pub const ICMP_HEADER_LEN: usize = 8;

const ETH_P_8021Q: EtherType = EtherType::VLAN_TAGGED_FRAME;

/// ICMPv4 "destination unreachable" (code 4: fragmentation needed and DF set).
pub const ICMP_DEST_UNREACH: u8 = 3;
/// ICMPv4 "time exceeded".
pub const ICMP_TIME_EXCEEDED: u8 = 11;
/// ICMPv4 "parameter problem".
pub const ICMP_PARAMETER_PROBLEM: u8 = 12;
/// Code of "fragmentation needed and DF set" under [`ICMP_DEST_UNREACH`].
pub const ICMP_FRAG_NEEDED: u8 = 4;

/// The transport protocols the director forwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum L4Proto {
    /// ICMP over IPv4 (errors are matched to the flow they quote; queries are not balanced).
    Icmp,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMPv6 (IPv6 next header 58): errors as for [`L4Proto::Icmp`]; everything else
    /// (echo, neighbour discovery, MLD) is left to the host's kernel. A protocol of its own,
    /// not `Icmp` with the family deciding, because it differs where the code must tell them
    /// apart: its number, its types, and a checksum that covers a pseudo-header.
    Icmpv6,
}

impl L4Proto {
    /// The IP protocol number.
    pub const fn number(self) -> u8 {
        match self {
            L4Proto::Icmp => 1,
            L4Proto::Tcp => 6,
            L4Proto::Udp => 17,
            L4Proto::Icmpv6 => 58,
        }
    }

    /// The protocol with IP protocol number `n`, if the director handles it.
    pub const fn from_number(n: u8) -> Option<Self> {
        match n {
            1 => Some(L4Proto::Icmp),
            6 => Some(L4Proto::Tcp),
            17 => Some(L4Proto::Udp),
            58 => Some(L4Proto::Icmpv6),
            _ => None,
        }
    }

    /// True for the protocols that have ports.
    pub const fn has_ports(self) -> bool {
        matches!(self, L4Proto::Tcp | L4Proto::Udp)
    }

    /// True for ICMP of either family.
    pub const fn is_icmp(self) -> bool {
        matches!(self, L4Proto::Icmp | L4Proto::Icmpv6)
    }

    /// The protocol with number `n` as carried by IPv4 (`ipv6 == false`) or IPv6: ICMP is 1
    /// over IPv4 and 58 over IPv6, and neither number means ICMP in the other family.
    pub const fn from_number_in(n: u8, ipv6: bool) -> Option<Self> {
        match (L4Proto::from_number(n), ipv6) {
            (Some(L4Proto::Icmp), true) | (Some(L4Proto::Icmpv6), false) => None,
            (p, _) => p,
        }
    }
}

/// The TCP flags byte (byte 13 of the header).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN: no more data from the sender.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// SYN: synchronise sequence numbers.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// RST: reset the connection.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// PSH: push.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// ACK: the acknowledgment field is significant.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// URG: the urgent pointer is significant.
    pub const URG: TcpFlags = TcpFlags(0x20);
    /// ECE: ECN echo.
    pub const ECE: TcpFlags = TcpFlags(0x40);
    /// CWR: congestion window reduced.
    pub const CWR: TcpFlags = TcpFlags(0x80);

    /// True if every flag of `other` is set.
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

/// A transport flow as seen in one packet: the connection table's key material. Both
/// addresses are of the packet's family. ICMP has no ports (both zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    /// Transport protocol.
    pub protocol: L4Proto,
    /// Source address.
    pub src: IpAddr,
    /// Source port (0 for ICMP).
    pub src_port: u16,
    /// Destination address.
    pub dst: IpAddr,
    /// Destination port (0 for ICMP).
    pub dst_port: u16,
}

impl Flow {
    /// The same flow seen from the other end (a reply's flow).
    pub const fn reversed(self) -> Flow {
        Flow {
            protocol: self.protocol,
            src: self.dst,
            src_port: self.dst_port,
            dst: self.src,
            dst_port: self.src_port,
        }
    }
}

/// The packet an ICMP error quotes: where its headers sit in the frame and its flow.
///
/// The quoted packet travelled the other way: an ICMP error the client sends about a reply
/// (VIP:vport -> client) quotes that reply, so the connection is found by
/// `flow.reversed()`, and an error from a real server quotes the client's packet as the real
/// server saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Embedded {
    /// Offset of the quoted IP header in the frame (of the outer packet's family).
    pub l3: usize,
    /// Offset of the quoted transport header, after any quoted IPv6 extension headers (at
    /// least 8 bytes of it are in the frame).
    pub l4: usize,
    /// The quoted packet's flow.
    pub flow: Flow,
}

/// ICMP fields of an ICMP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IcmpInfo {
    /// ICMP type.
    pub icmp_type: u8,
    /// ICMP code.
    pub code: u8,
    /// For the errors the director forwards (ICMPv4 destination unreachable, time exceeded,
    /// parameter problem; ICMPv6 destination unreachable, packet too big, time exceeded,
    /// parameter problem): the packet they quote. `None` for queries such as echo.
    pub embedded: Option<Embedded>,
}

/// A parsed frame: offsets into the frame and the fields the director decides on.
///
/// IPv4 or IPv6: the family is the addresses' (`flow.src.is_ipv6()`, or [`Packet::is_ipv6`]).
/// Over IPv6, `l4` is past every extension header, and the IPv4 fields mean: `ttl` the hop
/// limit, `tos` the traffic class, `ip_id` 0, `dont_fragment` true (routers never fragment
/// IPv6), `total_len` the fixed header plus the payload length.
///
/// Offsets are absolute positions in the frame. They are valid for the frame that was parsed
/// (and stay valid across the in-place rewrites, which change no length); every function that
/// takes a `Packet` checks them again against the frame it is given, so a stale `Packet` gives
/// [`RewriteError::FrameMismatch`], never a panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Packet {
    /// The 802.1Q VLAN ID, if the frame carries a tag.
    pub vlan: Option<u16>,
    /// Offset of the IP header.
    pub l3: usize,
    /// Offset of the transport header (IPv6: after the extension headers).
    pub l4: usize,
    /// Offset of the transport payload (for ICMP errors: of the quoted packet).
    pub payload: usize,
    /// End of the transport segment: `end`, except for a UDP datagram whose length field is
    /// shorter than the IP payload.
    pub l4_end: usize,
    /// End of the IP packet (`l3` + total length); later bytes are link-layer padding.
    pub end: usize,
    /// The flow.
    pub flow: Flow,
    /// TCP flags (empty for UDP and ICMP).
    pub tcp_flags: TcpFlags,
    /// IP total length (IPv6: 40 plus the payload length, saturating at 65535; `end - l3`
    /// is exact).
    pub total_len: u16,
    /// IP time to live (IPv6: the hop limit).
    pub ttl: u8,
    /// IP type of service byte, DSCP and ECN (IPv6: the traffic class, the same bits).
    pub tos: u8,
    /// IP identification (IPv6: 0; it has none outside a fragment header).
    pub ip_id: u16,
    /// The "don't fragment" flag (IPv6: always true, routers never fragment it).
    pub dont_fragment: bool,
    /// ICMP details, for ICMP packets.
    pub icmp: Option<IcmpInfo>,
}

impl Packet {
    /// The quoted packet, if this is an ICMP error the director can match to a flow.
    pub fn embedded(&self) -> Option<&Embedded> {
        self.icmp.as_ref().and_then(|i| i.embedded.as_ref())
    }

    /// True for an ICMP error message (one that quotes another packet).
    pub fn is_icmp_error(&self) -> bool {
        self.embedded().is_some()
    }

    /// True for an IPv6 packet.
    pub fn is_ipv6(&self) -> bool {
        self.flow.src.is_ipv6()
    }

    /// The packet's IP family.
    pub(crate) fn family(&self) -> Family {
        Family::of(self.flow.src)
    }

    /// Checks that `frame` can hold this packet: offsets in order and inside the frame, and
    /// both addresses of one family.
    pub(crate) fn check_frame(&self, frame: &[u8]) -> Result<(), RewriteError> {
        let family = self.family();
        if Family::of(self.flow.dst) != family {
            return Err(RewriteError::FamilyMismatch);
        }
        let header_len = family.header_len();
        // `a + n <= b` without overflow, for offsets a caller may have set to anything.
        let fits = |a: usize, n: usize, b: usize| a.checked_add(n).is_some_and(|x| x <= b);
        let ordered = self.l3 >= ETH_HEADER_LEN
            && fits(self.l3, header_len, self.l4)
            && fits(self.l4, ICMP_HEADER_LEN, self.l4_end)
            && self.l4 <= self.payload
            && self.payload <= self.l4_end
            && self.l4_end <= self.end
            && self.end <= frame.len();
        let embedded_ok = self.embedded().is_none_or(|e| {
            e.l3 >= self.payload && fits(e.l3, header_len, e.l4) && fits(e.l4, 8, self.end)
        });
        if ordered && embedded_ok {
            Ok(())
        } else {
            Err(RewriteError::FrameMismatch)
        }
    }

    /// This packet with every offset moved so that its IP header starts at `new_l3` (after
    /// copying the IP packet to another buffer).
    pub(crate) fn relocated(&self, new_l3: usize) -> Option<Packet> {
        let mv = |off: usize| off.checked_sub(self.l3)?.checked_add(new_l3);
        let mut p = *self;
        p.l3 = new_l3;
        p.l4 = mv(self.l4)?;
        p.payload = mv(self.payload)?;
        p.l4_end = mv(self.l4_end)?;
        p.end = mv(self.end)?;
        if let Some(e) = p.icmp.as_mut().and_then(|i| i.embedded.as_mut()) {
            e.l3 = mv(e.l3)?;
            e.l4 = mv(e.l4)?;
        }
        Some(p)
    }
}

fn ipv4_slice_error(e: HeaderSliceError) -> DropReason {
    match e {
        HeaderSliceError::Len(_) => DropReason::Truncated,
        HeaderSliceError::Content(Ipv4HeaderError::UnexpectedVersion { .. }) => {
            DropReason::BadVersion
        }
        HeaderSliceError::Content(Ipv4HeaderError::HeaderLengthSmallerThanHeader { .. }) => {
            DropReason::BadIhl
        }
    }
}

fn truncated(_: LenError) -> DropReason {
    DropReason::Truncated
}

/// Parses an Ethernet II frame (optionally with one 802.1Q tag) holding IPv4 with TCP, UDP or
/// ICMP, or IPv6 with TCP, UDP or ICMPv6 after its extension headers.
///
/// Frames the director does not handle give [`DropReason::NotIp`] or
/// [`DropReason::UnsupportedProtocol`] (see [`DropReason::class`]); everything else that is not
/// a valid, unfragmented, option-free packet gives the reason it was refused. An IPv6 packet
/// whose transport header cannot be found is always refused. Allocates nothing and never
/// panics.
pub fn parse(frame: &[u8]) -> Result<Packet, DropReason> {
    let eth = Ethernet2HeaderSlice::from_slice(frame).map_err(truncated)?;
    let (ether_type, l3, vlan) = if eth.ether_type() == ETH_P_8021Q {
        let tag = frame
            .get(ETH_HEADER_LEN..)
            .ok_or(DropReason::Truncated)
            .and_then(|rest| SingleVlanHeaderSlice::from_slice(rest).map_err(truncated))?;
        (
            tag.ether_type(),
            ETH_HEADER_LEN + 4,
            Some(tag.vlan_identifier().value()),
        )
    } else {
        (eth.ether_type(), ETH_HEADER_LEN, None)
    };
    // A second tag lands in the last arm too: QinQ is not for us.
    let mut pkt = match ether_type {
        EtherType::IPV4 => parse_ipv4(frame, l3)?,
        EtherType::IPV6 => crate::parse6::parse_ipv6_packet(frame, l3)?,
        _ => return Err(DropReason::NotIp),
    };
    pkt.vlan = vlan;
    Ok(pkt)
}

/// The IPv4 packet at `l3`, with its transport header.
fn parse_ipv4(frame: &[u8], l3: usize) -> Result<Packet, DropReason> {
    // Our own checks first, in an order that names the real fault (a header length beyond
    // the total length is a bad IHL, not a truncation); etherparse then reads the fields.
    let rest = frame.get(l3..).ok_or(DropReason::Truncated)?;
    let (Some(&version_ihl), Some(total)) = (rest.first(), get_u16(rest, 2)) else {
        return Err(DropReason::Truncated);
    };
    if rest.len() < IPV4_HEADER_LEN {
        return Err(DropReason::Truncated);
    }
    if version_ihl >> 4 != 4 {
        return Err(DropReason::BadVersion);
    }
    let header_len = usize::from(version_ihl & 0x0f) * 4;
    if header_len < IPV4_HEADER_LEN {
        return Err(DropReason::BadIhl);
    }
    let total = usize::from(total);
    if total < IPV4_HEADER_LEN {
        return Err(DropReason::BadTotalLength);
    }
    if header_len > total {
        return Err(DropReason::BadIhl);
    }
    let end = l3 + total;
    let ip = frame
        .get(l3..end)
        .ok_or(DropReason::Truncated)
        .and_then(|b| Ipv4HeaderSlice::from_slice(b).map_err(ipv4_slice_error))?;
    // Incremental updates keep a wrong checksum wrong, but a router must not pass on a header
    // whose fields it cannot trust (RFC 1812 5.2.2).
    if fold(sum(ip.slice(), 0)) != 0xffff {
        return Err(DropReason::BadIpChecksum);
    }
    if header_len > IPV4_HEADER_LEN {
        return Err(DropReason::IpOptions);
    }
    if ip.more_fragments() || ip.fragments_offset().value() != 0 {
        return Err(DropReason::Fragment);
    }
    let protocol =
        L4Proto::from_number_in(ip.protocol().0, false).ok_or(DropReason::UnsupportedProtocol)?;
    let l4 = l3 + header_len;

    let mut pkt = Packet {
        vlan: None,
        l3,
        l4,
        payload: l4,
        l4_end: end,
        end,
        flow: Flow {
            protocol,
            src: IpAddr::V4(Ipv4Addr::from(ip.source())),
            src_port: 0,
            dst: IpAddr::V4(Ipv4Addr::from(ip.destination())),
            dst_port: 0,
        },
        tcp_flags: TcpFlags::default(),
        total_len: ip.total_len(),
        ttl: ip.ttl(),
        tos: ip.slice().get(1).copied().unwrap_or(0),
        ip_id: ip.identification(),
        dont_fragment: ip.dont_fragment(),
        icmp: None,
    };
    if protocol != L4Proto::Icmp {
        parse_ports(frame, &mut pkt)?;
        return Ok(pkt);
    }
    // The error is rewritten and its checksum recomputed from scratch, which would launder a
    // corrupted message; so it is checked first, as IPVS does. ICMPv4 has no pseudo-header.
    const ERRORS: [u8; 3] = [
        ICMP_DEST_UNREACH,
        ICMP_TIME_EXCEEDED,
        ICMP_PARAMETER_PROBLEM,
    ];
    parse_icmp(frame, &mut pkt, &ERRORS, 0, parse_embedded)?;
    Ok(pkt)
}

/// Reads the ICMP or ICMPv6 header at `pkt.l4`. For the `errors` types, checks the checksum
/// (with the `pseudo`-header sum) and parses the packet they quote with `quote`.
pub(crate) fn parse_icmp(
    frame: &[u8],
    pkt: &mut Packet,
    errors: &[u8],
    pseudo: u64,
    quote: fn(&[u8], usize, usize) -> Result<Embedded, DropReason>,
) -> Result<(), DropReason> {
    let segment = frame.get(pkt.l4..pkt.end).ok_or(DropReason::Truncated)?;
    let [icmp_type, code] = get_array::<2>(segment, 0)
        .filter(|_| segment.len() >= ICMP_HEADER_LEN)
        .ok_or(DropReason::Truncated)?;
    pkt.payload = pkt.l4 + ICMP_HEADER_LEN;
    let embedded = if errors.contains(&icmp_type) {
        if fold(sum(segment, pseudo)) != 0xffff {
            return Err(DropReason::BadIcmp);
        }
        Some(quote(frame, pkt.payload, pkt.end)?)
    } else {
        None
    };
    pkt.icmp = Some(IcmpInfo {
        icmp_type,
        code,
        embedded,
    });
    Ok(())
}

/// Reads the TCP or UDP header at `pkt.l4` (either family): ports, flags, where the payload
/// starts and, for UDP, where the datagram ends.
pub(crate) fn parse_ports(frame: &[u8], pkt: &mut Packet) -> Result<(), DropReason> {
    let l4 = pkt.l4;
    let segment = frame.get(l4..pkt.end).ok_or(DropReason::Truncated)?;
    if pkt.flow.protocol == L4Proto::Tcp {
        let tcp = TcpHeaderSlice::from_slice(segment).map_err(|e| match e {
            TcpSliceError::Len(_) if segment.len() < 20 => DropReason::Truncated,
            _ => DropReason::BadTcpHeader,
        })?;
        pkt.flow.src_port = tcp.source_port();
        pkt.flow.dst_port = tcp.destination_port();
        pkt.tcp_flags = TcpFlags(tcp.slice().get(13).copied().unwrap_or(0));
        pkt.payload = l4 + tcp.slice().len();
    } else {
        let udp = UdpHeaderSlice::from_slice(segment).map_err(truncated)?;
        let len = usize::from(udp.length());
        if len < 8 || len > segment.len() {
            return Err(DropReason::BadUdpLength);
        }
        pkt.flow.src_port = udp.source_port();
        pkt.flow.dst_port = udp.destination_port();
        pkt.payload = l4 + 8;
        pkt.l4_end = l4 + len;
    }
    Ok(())
}

/// Parses the packet an ICMP error quotes, from `at` to the end of the ICMP message.
fn parse_embedded(frame: &[u8], at: usize, end: usize) -> Result<Embedded, DropReason> {
    let quote = frame.get(at..end).ok_or(DropReason::BadIcmp)?;
    let ip = Ipv4HeaderSlice::from_slice(quote).map_err(|_| DropReason::BadIcmp)?;
    let header_len = ip.slice().len();
    // RFC 792: the quote holds the IP header and at least 64 bits of the datagram: the ports.
    let l4_quote = quote
        .get(header_len..header_len + 8)
        .ok_or(DropReason::BadIcmp)?;
    if ip.fragments_offset().value() != 0 {
        return Err(DropReason::Fragment);
    }
    let protocol =
        L4Proto::from_number_in(ip.protocol().0, false).ok_or(DropReason::UnsupportedProtocol)?;
    let (src_port, dst_port) = if protocol.has_ports() {
        (
            get_u16(l4_quote, 0).unwrap_or(0),
            get_u16(l4_quote, 2).unwrap_or(0),
        )
    } else {
        (0, 0)
    };
    let addr = |off| get_array::<4>(quote, off).map(|a| IpAddr::V4(Ipv4Addr::from(a)));
    Ok(Embedded {
        l3: at,
        l4: at + header_len,
        flow: Flow {
            protocol,
            src: addr(12).ok_or(DropReason::BadIcmp)?,
            src_port,
            dst: addr(16).ok_or(DropReason::BadIcmp)?,
            dst_port,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `parse` returns the `Packet` by value on every packet: keep it a few cache lines.
    #[test]
    fn packet_stays_small() {
        let size = core::mem::size_of::<Packet>();
        assert!(size <= 192, "Packet is {size} bytes");
        println!("size_of::<Packet>() = {size}");
    }
}
