//! Why a frame was not forwarded: one small `Copy` value per reason, so the director can keep
//! one counter per reason in a plain array indexed by [`DropReason::index`].

/// Why the director did not forward a frame.
///
/// Parsing yields the first group; the rewrite and encapsulation functions yield the rest (see
/// [`crate::RewriteError::drop_reason`] and [`crate::TunError::drop_reason`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Neither IPv4 nor IPv6 (ARP, LLDP, a second VLAN tag ...). Not an error: the director
    /// leaves such frames to the host's kernel.
    NotIp,
    /// A header, or the IP packet its total length announces, runs past the end of the frame.
    Truncated,
    /// EtherType IPv4 (IPv6) but the IP version field is not 4 (6).
    BadVersion,
    /// IPv4 header length below 5 words, or longer than the packet.
    BadIhl,
    /// IPv4 total length shorter than the header.
    BadTotalLength,
    /// The IPv4 header checksum does not verify.
    BadIpChecksum,
    /// TCP data offset below 5 words or past the end of the segment.
    BadTcpHeader,
    /// UDP length below 8 or past the end of the IP packet.
    BadUdpLength,
    /// ICMP or ICMPv6 message too short, with a bad checksum, or an error that quotes no
    /// usable header (a quote cut before the quoted transport header's first 8 bytes, or a
    /// quoted IPv6 extension-header chain that does not fit in the quote).
    BadIcmp,
    /// The IPv4 header carries options (not supported yet: counted and dropped).
    IpOptions,
    /// A fragment (IPv4, or IPv6 with a fragment header that is not atomic), or an ICMP error
    /// about a non-first fragment (no ports to match: counted and dropped; reassembly is not
    /// done).
    Fragment,
    /// An IP protocol other than TCP, UDP or ICMP (ICMPv6 over IPv6), including IPv6 next
    /// headers the walk does not know (ESP, mobility, no next header ...). Not an error: left
    /// to the host's kernel.
    UnsupportedProtocol,
    /// The TTL (IPv6: the hop limit) would reach zero when forwarded.
    TtlExpired,
    /// VS/TUN: the encapsulated packet exceeds the MTU and DF is set, or it is IPv6 (ICMP
    /// "fragmentation needed" or ICMPv6 "packet too big" goes back to the client).
    TooBig,
    /// VS/TUN: the encapsulated packet exceeds the MTU and DF is clear. IPVS would fragment the
    /// outer packet; we drop and count it for now.
    NeedsFragmentation,
    /// A rewrite was refused because the `Packet` does not describe the frame it was applied
    /// to, or an address of the wrong family was given: a bug in the caller, counted rather than
    /// panicking.
    RewriteFailed,
    /// IPv6 payload length longer than the bytes the frame holds after the fixed header.
    Ipv6PayloadLength,
    /// An IPv6 extension header runs past the payload, or its options are malformed.
    Ipv6ExtHeader,
    /// A hop-by-hop options header that is not the first after the fixed header (RFC 8200
    /// section 4.1 allows it only there).
    Ipv6HopByHopNotFirst,
    /// More IPv6 extension headers than the parser walks ([`crate::ipv6::MAX_EXT_HEADERS`]).
    Ipv6TooManyExtHeaders,
    /// An IPv6 jumbogram (RFC 2675): more than 65535 bytes cannot arrive in one frame here.
    Ipv6Jumbogram,
    /// An IPv6 routing header of type 0, deprecated by RFC 5095 (amplification attacks).
    Ipv6RoutingType0,
    /// An IPv6 routing header with segments left: the destination address is a waypoint, not
    /// the packet's final destination, and the director does not act as one.
    Ipv6RoutingSegmentsLeft,
    /// A UDP datagram over IPv6 with a zero checksum, which RFC 8200 section 8.1 tells the
    /// receiver to discard.
    Ipv6UdpZeroChecksum,
    /// An IPv6 hop-by-hop or destination option whose type says a node that does not
    /// recognise it must discard the packet (RFC 8200 section 4.2; the director recognises only
    /// padding).
    Ipv6UnrecognisedOption,
    /// An IPv6 extension header the parser does not step over (mobility, HIP, shim6,
    /// experimental): the transport header behind it cannot be found.
    Ipv6UnknownExtHeader,
}

/// Broad class of a [`DropReason`], for the summary counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropClass {
    /// Traffic the director does not handle; the host's kernel sees it anyway.
    NotForUs,
    /// Bytes that are not a valid packet.
    Malformed,
    /// A valid packet that the director will not forward (options, fragments, TTL, MTU).
    Policy,
    /// A bug in the caller (see [`DropReason::RewriteFailed`]).
    Internal,
}

impl DropReason {
    /// Every reason, in [`DropReason::index`] order.
    pub const ALL: [DropReason; 26] = [
        DropReason::NotIp,
        DropReason::Truncated,
        DropReason::BadVersion,
        DropReason::BadIhl,
        DropReason::BadTotalLength,
        DropReason::BadIpChecksum,
        DropReason::BadTcpHeader,
        DropReason::BadUdpLength,
        DropReason::BadIcmp,
        DropReason::IpOptions,
        DropReason::Fragment,
        DropReason::UnsupportedProtocol,
        DropReason::TtlExpired,
        DropReason::TooBig,
        DropReason::NeedsFragmentation,
        DropReason::RewriteFailed,
        DropReason::Ipv6PayloadLength,
        DropReason::Ipv6ExtHeader,
        DropReason::Ipv6HopByHopNotFirst,
        DropReason::Ipv6TooManyExtHeaders,
        DropReason::Ipv6Jumbogram,
        DropReason::Ipv6RoutingType0,
        DropReason::Ipv6RoutingSegmentsLeft,
        DropReason::Ipv6UdpZeroChecksum,
        DropReason::Ipv6UnrecognisedOption,
        DropReason::Ipv6UnknownExtHeader,
    ];

    /// Number of reasons: the length of a per-reason counter array.
    pub const COUNT: usize = Self::ALL.len();

    /// Position of this reason in [`DropReason::ALL`], for counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The counter name (`malformed_truncated`, `fragment`, ...): stable, used in stats output.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::NotIp => "not_ip",
            DropReason::Truncated => "malformed_truncated",
            DropReason::BadVersion => "malformed_bad_version",
            DropReason::BadIhl => "malformed_bad_ihl",
            DropReason::BadTotalLength => "malformed_bad_total_length",
            DropReason::BadIpChecksum => "malformed_bad_ip_checksum",
            DropReason::BadTcpHeader => "malformed_bad_tcp_header",
            DropReason::BadUdpLength => "malformed_bad_udp_length",
            DropReason::BadIcmp => "malformed_bad_icmp",
            DropReason::IpOptions => "ip_options",
            DropReason::Fragment => "fragment",
            DropReason::UnsupportedProtocol => "unsupported_protocol",
            DropReason::TtlExpired => "ttl_expired",
            DropReason::TooBig => "too_big",
            DropReason::NeedsFragmentation => "needs_fragmentation",
            DropReason::RewriteFailed => "rewrite_failed",
            DropReason::Ipv6PayloadLength => "malformed_ipv6_payload_length",
            DropReason::Ipv6ExtHeader => "malformed_ipv6_ext_header",
            DropReason::Ipv6HopByHopNotFirst => "malformed_ipv6_hop_by_hop_not_first",
            DropReason::Ipv6TooManyExtHeaders => "ipv6_too_many_ext_headers",
            DropReason::Ipv6Jumbogram => "ipv6_jumbogram",
            DropReason::Ipv6RoutingType0 => "ipv6_routing_type0",
            DropReason::Ipv6RoutingSegmentsLeft => "ipv6_routing_segments_left",
            DropReason::Ipv6UdpZeroChecksum => "malformed_ipv6_udp_zero_checksum",
            DropReason::Ipv6UnrecognisedOption => "ipv6_unrecognised_option",
            DropReason::Ipv6UnknownExtHeader => "ipv6_unknown_ext_header",
        }
    }

    /// The broad class of this reason.
    pub fn class(self) -> DropClass {
        match self {
            DropReason::NotIp | DropReason::UnsupportedProtocol => DropClass::NotForUs,
            DropReason::Truncated
            | DropReason::BadVersion
            | DropReason::BadIhl
            | DropReason::BadTotalLength
            | DropReason::BadIpChecksum
            | DropReason::BadTcpHeader
            | DropReason::BadUdpLength
            | DropReason::BadIcmp
            | DropReason::Ipv6PayloadLength
            | DropReason::Ipv6ExtHeader
            | DropReason::Ipv6HopByHopNotFirst
            | DropReason::Ipv6UdpZeroChecksum => DropClass::Malformed,
            DropReason::IpOptions
            | DropReason::Fragment
            | DropReason::TtlExpired
            | DropReason::TooBig
            | DropReason::NeedsFragmentation
            | DropReason::Ipv6TooManyExtHeaders
            | DropReason::Ipv6Jumbogram
            | DropReason::Ipv6RoutingType0
            | DropReason::Ipv6RoutingSegmentsLeft
            | DropReason::Ipv6UnrecognisedOption
            | DropReason::Ipv6UnknownExtHeader => DropClass::Policy,
            DropReason::RewriteFailed => DropClass::Internal,
        }
    }

    /// True for bytes that are not a valid packet (the `malformed_*` counters).
    pub fn is_malformed(self) -> bool {
        self.class() == DropClass::Malformed
    }
}

impl core::fmt::Display for DropReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_matches_all_and_names_are_unique() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }

    #[test]
    fn malformed_names_say_so() {
        for r in DropReason::ALL {
            assert_eq!(
                r.is_malformed(),
                r.as_str().starts_with("malformed_"),
                "{r}"
            );
        }
        assert_eq!(DropReason::NotIp.class(), DropClass::NotForUs);
    }
}
