//! The IPv6 header and its extension-header chain (RFC 8200), walked to the transport header.
//!
//! [`crate::parse`] walks every IPv6 frame with it, and the quote of every ICMPv6 error. The
//! walk is strict because a packet whose transport header cannot be found must be counted and dropped, never
//! forwarded unparsed (a port-based rule could otherwise be bypassed by hiding the ports
//! behind a header the parser skipped). Like the rest of the crate it allocates nothing and
//! never panics, whatever the bytes.

use crate::bytes::{get_array, get_u16};
use crate::drop::DropReason;

/// Length of the fixed IPv6 header.
pub const IPV6_HEADER_LEN: usize = 40;

/// Most extension headers walked before giving up. Real traffic carries two or three; a long
/// chain is a way to make every worker spend time on one packet.
pub const MAX_EXT_HEADERS: usize = 8;

/// Next-header values of the extension headers walked here.
const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const AUTH: u8 = 51;
const DEST_OPTS: u8 = 60;

/// Extension headers in IANA's registry that the walk does not step over: Mobility (135), HIP
/// (139), Shim6 (140) and the two experimental values (253, 254). A chain that reaches one
/// hides its transport header.
const UNWALKED: [u8; 5] = [135, 139, 140, 253, 254];

/// True if `next_header` is an extension header the walk stops at without reaching the
/// transport header (see [`Ipv6Headers::protocol`]).
pub fn is_unwalked_ext_header(next_header: u8) -> bool {
    UNWALKED.contains(&next_header)
}

/// The Jumbo Payload option type (RFC 2675).
const OPT_JUMBO: u8 = 0xc2;
/// The Pad1 option: a single byte with no length field.
const OPT_PAD1: u8 = 0;

/// What a fragment header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fragment {
    /// Offset of this fragment's data in the original packet, in bytes (a multiple of 8).
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
    /// The identification shared by every fragment of the original packet.
    pub id: u32,
}

/// An IPv6 packet's headers, walked to the transport header. Offsets are into the buffer
/// given to [`parse_ipv6`], and `l3 + 40 <= l4 <= end <= buf.len()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv6Headers {
    /// Offset of the fixed IPv6 header.
    pub l3: usize,
    /// The next-header value after the last extension header: the transport protocol (6, 17,
    /// 58 ...), or whatever the walk does not know (ESP, No Next Header ...), as it is.
    pub protocol: u8,
    /// Offset of the transport header (for a non-first fragment: of its data).
    pub l4: usize,
    /// End of the IPv6 packet as its payload length says (trailing frame padding excluded).
    pub end: usize,
    /// The fragment header, if there is one (an atomic fragment has offset 0 and no more).
    pub fragment: Option<Fragment>,
    /// Extension headers walked.
    pub ext_headers: usize,
    /// The hop limit.
    pub hop_limit: u8,
    /// The routing header's "segments left", 0 without one. Non-zero means the destination
    /// address is not the packet's final destination (which the TCP/UDP pseudo-header uses).
    pub segments_left: u8,
}

impl Ipv6Headers {
    /// `Err(DropReason::Fragment)` for a non-first fragment, which carries no transport header:
    /// a caller that needs ports drops it (no reassembly is done, as for IPv4).
    pub fn require_transport_header(&self) -> Result<(), DropReason> {
        match self.fragment {
            Some(f) if f.offset != 0 => Err(DropReason::Fragment),
            _ => Ok(()),
        }
    }
}

/// Parses the IPv6 packet whose fixed header starts at `l3` in `buf` (a whole frame, so the
/// offsets returned index the frame).
///
/// Bytes after the end the payload length gives are padding and are ignored. For a non-first
/// fragment the walk ends at the fragment header and `protocol`/`l4` are its next header and
/// data (see [`Ipv6Headers::require_transport_header`]).
pub fn parse_ipv6(buf: &[u8], l3: usize) -> Result<Ipv6Headers, DropReason> {
    let fixed: [u8; IPV6_HEADER_LEN] = get_array(buf, l3).ok_or(DropReason::Truncated)?;
    if fixed[0] >> 4 != 6 {
        return Err(DropReason::BadVersion);
    }
    let payload_len = usize::from(u16::from_be_bytes([fixed[4], fixed[5]]));
    let start = l3 + IPV6_HEADER_LEN;
    if fixed[6] == HOP_BY_HOP && hop_by_hop_has_jumbo(buf, start) {
        return Err(DropReason::Ipv6Jumbogram);
    }
    let end = start
        .checked_add(payload_len)
        .filter(|&e| e <= buf.len())
        .ok_or(DropReason::Ipv6PayloadLength)?;
    walk(buf, l3, end)
}

/// Walks the IPv6 packet whose fixed header starts at `l3` in `buf`, reading nothing at or
/// after `end`: the end its payload length gives, or, for the quote in an ICMPv6 error, the
/// end of the quote if that comes first. The caller has checked that `end <= buf.len()`.
pub(crate) fn walk(buf: &[u8], l3: usize, end: usize) -> Result<Ipv6Headers, DropReason> {
    let fixed: [u8; IPV6_HEADER_LEN] = get_array(buf, l3).ok_or(DropReason::Truncated)?;
    let mut next = fixed[6];
    let hop_limit = fixed[7];
    // Only the payload is read from here on: a header cut by the payload length is bad even
    // if the frame's padding would complete it.
    let pkt = buf.get(..end).ok_or(DropReason::Ipv6PayloadLength)?;
    let mut off = l3 + IPV6_HEADER_LEN;
    if off > end {
        return Err(DropReason::Ipv6PayloadLength);
    }
    let mut ext_headers = 0;
    let mut fragment = None;
    let mut segments_left = 0;
    loop {
        let len = match next {
            HOP_BY_HOP if ext_headers != 0 => return Err(DropReason::Ipv6HopByHopNotFirst),
            HOP_BY_HOP | DEST_OPTS => options_header_len(pkt, off)?,
            ROUTING => {
                let [_, _, routing_type, left] =
                    get_array::<4>(pkt, off).ok_or(DropReason::Ipv6ExtHeader)?;
                if routing_type == 0 {
                    return Err(DropReason::Ipv6RoutingType0);
                }
                segments_left = left;
                ext_len(pkt, off)?
            }
            FRAGMENT => {
                let h = get_array::<8>(pkt, off).ok_or(DropReason::Ipv6ExtHeader)?;
                let word = u16::from_be_bytes([h[2], h[3]]);
                fragment = Some(Fragment {
                    offset: word & !7,
                    more: word & 1 != 0,
                    id: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                });
                8
            }
            AUTH => {
                // RFC 4302: the length is in 4-byte units, minus 2.
                let [_, units] = get_array::<2>(pkt, off).ok_or(DropReason::Ipv6ExtHeader)?;
                (usize::from(units) + 2) * 4
            }
            _ => break,
        };
        ext_headers += 1;
        if ext_headers > MAX_EXT_HEADERS {
            return Err(DropReason::Ipv6TooManyExtHeaders);
        }
        let [nh] = get_array::<1>(pkt, off).ok_or(DropReason::Ipv6ExtHeader)?;
        off = off
            .checked_add(len)
            .filter(|&o| o <= end)
            .ok_or(DropReason::Ipv6ExtHeader)?;
        next = nh;
        // A non-first fragment's data is not a header: stop there. A first fragment holds the
        // whole chain (RFC 7112), so the walk goes on.
        if fragment.is_some_and(|f| f.offset != 0) {
            break;
        }
    }
    Ok(Ipv6Headers {
        l3,
        protocol: next,
        l4: off,
        end,
        fragment,
        ext_headers,
        hop_limit,
        segments_left,
    })
}

/// An IPv6 fixed header the director writes (an ICMPv6 error, a tunnel's outer header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ipv6Out {
    /// Traffic class (DSCP and ECN).
    pub traffic_class: u8,
    /// Flow label (20 bits; higher bits are ignored).
    pub flow_label: u32,
    /// Bytes after the fixed header.
    pub payload_len: u16,
    /// The next header: 58 for ICMPv6, 41 for IPv6 in IPv6.
    pub next_header: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// Source address.
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
}

impl Ipv6Out {
    /// The header's 40 bytes.
    pub(crate) fn to_bytes(self) -> [u8; IPV6_HEADER_LEN] {
        let first =
            (6 << 28) | (u32::from(self.traffic_class) << 20) | (self.flow_label & 0xf_ffff);
        let mut h = [0; IPV6_HEADER_LEN];
        h[..4].copy_from_slice(&first.to_be_bytes());
        h[4..6].copy_from_slice(&self.payload_len.to_be_bytes());
        h[6] = self.next_header;
        h[7] = self.hop_limit;
        h[8..24].copy_from_slice(&self.src);
        h[24..40].copy_from_slice(&self.dst);
        h
    }
}

/// Length of a generic extension header: (Hdr Ext Len + 1) 8-byte units.
fn ext_len(pkt: &[u8], off: usize) -> Result<usize, DropReason> {
    let [_, units] = get_array::<2>(pkt, off).ok_or(DropReason::Ipv6ExtHeader)?;
    Ok((usize::from(units) + 1) * 8)
}

/// Length of a hop-by-hop or destination options header, after checking that its options
/// are well-formed TLVs that fill it exactly, and that none of them must be understood.
///
/// RFC 8200 section 4.2: the two high bits of an option type say what a node that does not
/// recognise it does; anything but "skip" (00) means discard. The director recognises only
/// padding (and Jumbo Payload, refused on its own), so every such option drops the packet.
fn options_header_len(pkt: &[u8], off: usize) -> Result<usize, DropReason> {
    let len = ext_len(pkt, off)?;
    let opts = pkt
        .get(off + 2..off + len)
        .ok_or(DropReason::Ipv6ExtHeader)?;
    let mut must_understand = false;
    for_each_option(opts, |t| must_understand |= t >> 6 != 0).ok_or(DropReason::Ipv6ExtHeader)?;
    if must_understand {
        return Err(DropReason::Ipv6UnrecognisedOption);
    }
    Ok(len)
}

/// Calls `f` with each option type in `opts`; `None` if an option runs past the end.
fn for_each_option(opts: &[u8], mut f: impl FnMut(u8)) -> Option<()> {
    let mut i = 0;
    while let Some(&t) = opts.get(i) {
        f(t);
        i += if t == OPT_PAD1 {
            1
        } else {
            2 + usize::from(*opts.get(i + 1)?)
        };
    }
    (i == opts.len()).then_some(())
}

/// True if the hop-by-hop header at `off` carries a Jumbo Payload option. A jumbogram's
/// payload length is 0, so the header is read within the frame, not within the payload.
/// A header too short or malformed to say is reported by the payload-bound walk instead.
fn hop_by_hop_has_jumbo(buf: &[u8], off: usize) -> bool {
    let Some(units) = get_u16(buf, off).map(|w| usize::from(w & 0xff)) else {
        return false;
    };
    let Some(opts) = buf.get(off + 2..off + (units + 1) * 8) else {
        return false;
    };
    let mut jumbo = false;
    let _ = for_each_option(opts, |t| jumbo |= t == OPT_JUMBO);
    jumbo
}

#[cfg(test)]
mod tests;
