use super::*;
use etherparse::PacketBuilder;
use proptest::prelude::*;

const SRC: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const DST: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
const UDP: u8 = 17;

/// A real IPv6/UDP packet (no link header) from etherparse.
fn udp_packet() -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv6(SRC, DST, 64)
        .udp(40000, 53)
        .write(&mut out, b"hello")
        .unwrap_or_default();
    out
}

/// The UDP packet with `exts` put between the fixed header and UDP. Each extension header's
/// next-header byte is set to the type of the one after it; the payload length is fixed.
fn chain(exts: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let base = udp_packet();
    let mut out = base[..IPV6_HEADER_LEN].to_vec();
    out[6] = exts.first().map_or(UDP, |e| e.0);
    for (i, (_, bytes)) in exts.iter().enumerate() {
        let mut h = bytes.clone();
        h[0] = exts.get(i + 1).map_or(UDP, |e| e.0);
        out.extend_from_slice(&h);
    }
    out.extend_from_slice(&base[IPV6_HEADER_LEN..]);
    let len = out.len() - IPV6_HEADER_LEN;
    set_payload_len(&mut out, len);
    out
}

fn set_payload_len(p: &mut [u8], len: usize) {
    let len = u16::try_from(len).unwrap_or(u16::MAX);
    p[4..6].copy_from_slice(&len.to_be_bytes());
}

/// An options header of `units + 1` eight-byte units, filled with one PadN option.
fn opts(next: u8, units: u8) -> (u8, Vec<u8>) {
    let len = (usize::from(units) + 1) * 8;
    let mut h = vec![0; len];
    h[1] = units;
    h[2] = 1;
    h[3] = u8::try_from(len - 4).unwrap_or(0);
    (next, h)
}

fn routing(routing_type: u8) -> (u8, Vec<u8>) {
    (ROUTING, vec![0, 0, routing_type, 0, 0, 0, 0, 0])
}

fn frag(offset: u16, more: bool, id: u32) -> (u8, Vec<u8>) {
    let word = (offset & !7) | u16::from(more);
    let mut h = vec![0, 0];
    h.extend_from_slice(&word.to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    (FRAGMENT, h)
}

#[test]
fn plain_udp() {
    let p = udp_packet();
    let h = parse_ipv6(&p, 0).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((h.protocol, h.l4, h.end), (UDP, 40, p.len()));
    assert_eq!((h.fragment, h.ext_headers, h.hop_limit), (None, 0, 64));
    assert_eq!(h.require_transport_header(), Ok(()));
}

#[test]
fn inside_an_ethernet_frame() {
    let mut f = Vec::new();
    PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv6(SRC, DST, 7)
        .tcp(40000, 80, 1, 1000)
        .write(&mut f, b"x")
        .unwrap_or_default();
    let h = parse_ipv6(&f, 14).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((h.l3, h.protocol, h.l4, h.end), (14, 6, 54, f.len()));
    assert_eq!(f[h.l4..h.l4 + 2], 40000u16.to_be_bytes());
}

#[test]
fn walks_every_extension_header() {
    // AH: payload length 2 means (2 + 2) * 4 = 16 bytes.
    let mut ah = vec![0; 16];
    ah[1] = 2;
    let p = chain(&[
        opts(HOP_BY_HOP, 0),
        opts(DEST_OPTS, 1),
        routing(4),
        (AUTH, ah),
        opts(DEST_OPTS, 0),
    ]);
    let h = parse_ipv6(&p, 0).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((h.protocol, h.ext_headers), (UDP, 5));
    assert_eq!(h.l4, 40 + 8 + 16 + 8 + 16 + 8);
    assert_eq!(p[h.l4..h.l4 + 4], [0x9c, 0x40, 0, 53], "the UDP ports");
}

/// Parses `p`, expecting a fragment header with these fields.
fn parsed_fragment(p: &[u8], offset: u16, more: bool, id: u32) -> (u8, usize, Ipv6Headers) {
    let h = parse_ipv6(p, 0).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(h.fragment, Some(Fragment { offset, more, id }));
    (h.protocol, h.l4, h)
}

#[test]
fn fragments() {
    let p = chain(&[frag(0, true, 0x1234_5678), opts(DEST_OPTS, 0)]);
    let (protocol, l4, h) = parsed_fragment(&p, 0, true, 0x1234_5678);
    assert_eq!((protocol, l4), (UDP, 56), "a first fragment is walked on");
    assert_eq!(h.require_transport_header(), Ok(()));

    // A non-first fragment: the walk stops at the fragment header, whatever follows.
    let p = chain(&[frag(1480, false, 9), opts(DEST_OPTS, 0)]);
    let (protocol, l4, h) = parsed_fragment(&p, 1480, false, 9);
    assert_eq!((protocol, l4), (DEST_OPTS, 48));
    assert_eq!(h.require_transport_header(), Err(DropReason::Fragment));
}

#[test]
fn truncated_fixed_header() {
    let p = udp_packet();
    for n in 0..IPV6_HEADER_LEN {
        assert_eq!(parse_ipv6(&p[..n], 0), Err(DropReason::Truncated), "{n}");
    }
    assert_eq!(parse_ipv6(&p, p.len()), Err(DropReason::Truncated));
    assert_eq!(parse_ipv6(&p, usize::MAX), Err(DropReason::Truncated));
}

#[test]
fn bad_version() {
    let mut p = udp_packet();
    p[0] = 0x45;
    assert_eq!(parse_ipv6(&p, 0), Err(DropReason::BadVersion));
}

#[test]
fn payload_length_against_the_frame() {
    let p = udp_packet();
    assert_eq!(
        parse_ipv6(&p[..p.len() - 1], 0),
        Err(DropReason::Ipv6PayloadLength)
    );
    // Link-layer padding after the packet is not part of it.
    let mut padded = p.clone();
    padded.extend_from_slice(&[0; 6]);
    let h = parse_ipv6(&padded, 0).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(h.end, p.len());
}

#[test]
fn chain_longer_than_the_packet() {
    // A destination options header claiming 201 units.
    let mut p = chain(&[opts(DEST_OPTS, 0)]);
    p[41] = 200;
    assert_eq!(parse_ipv6(&p, 0), Err(DropReason::Ipv6ExtHeader));
    // A header cut by the payload length, though the frame's padding would complete it.
    let mut p = chain(&[opts(DEST_OPTS, 0)]);
    p.extend_from_slice(&[0; 64]);
    set_payload_len(&mut p, 4);
    assert_eq!(parse_ipv6(&p, 0), Err(DropReason::Ipv6ExtHeader));
    // A fragment header cut short.
    let mut p = chain(&[frag(0, false, 1)]);
    set_payload_len(&mut p, 6);
    p.truncate(46);
    assert_eq!(parse_ipv6(&p, 0), Err(DropReason::Ipv6ExtHeader));
}

#[test]
fn malformed_options() {
    let mut p = chain(&[opts(DEST_OPTS, 0)]);
    // The PadN option claims one byte more than the header holds.
    p[43] = 5;
    assert_eq!(parse_ipv6(&p, 0), Err(DropReason::Ipv6ExtHeader));
}

#[test]
fn hop_by_hop_only_first() {
    let p = chain(&[opts(DEST_OPTS, 0), opts(HOP_BY_HOP, 0)]);
    assert_eq!(parse_ipv6(&p, 0), Err(DropReason::Ipv6HopByHopNotFirst));
}

#[test]
fn jumbogram() {
    let mut p = chain(&[(HOP_BY_HOP, vec![0, 0, OPT_JUMBO, 4, 0, 1, 0, 0])]);
    set_payload_len(&mut p, 0);
    assert_eq!(parse_ipv6(&p, 0), Err(DropReason::Ipv6Jumbogram));
}

#[test]
fn routing_type_0() {
    let p = chain(&[routing(0)]);
    assert_eq!(parse_ipv6(&p, 0), Err(DropReason::Ipv6RoutingType0));
    let p = chain(&[routing(2)]);
    assert!(parse_ipv6(&p, 0).is_ok());
}

#[test]
fn extension_header_cap() {
    let eight: Vec<_> = (0..MAX_EXT_HEADERS).map(|_| opts(DEST_OPTS, 0)).collect();
    let h = parse_ipv6(&chain(&eight), 0).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((h.ext_headers, h.protocol), (MAX_EXT_HEADERS, UDP));
    let mut nine = eight;
    nine.push(opts(DEST_OPTS, 0));
    assert_eq!(
        parse_ipv6(&chain(&nine), 0),
        Err(DropReason::Ipv6TooManyExtHeaders)
    );
}

#[test]
fn unknown_next_header_is_returned() {
    for nh in [50, 59, 135, 253] {
        let mut p = udp_packet();
        p[6] = nh;
        let h = parse_ipv6(&p, 0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((h.protocol, h.l4, h.ext_headers), (nh, 40, 0));
    }
}

/// Asserts the invariants every `Ok` keeps.
fn check(buf: &[u8], l3: usize) -> Result<(), TestCaseError> {
    if let Ok(h) = parse_ipv6(buf, l3) {
        prop_assert_eq!(h.l3, l3);
        prop_assert!(l3 + IPV6_HEADER_LEN <= h.l4 && h.l4 <= h.end && h.end <= buf.len());
        prop_assert!(h.ext_headers <= MAX_EXT_HEADERS);
    }
    Ok(())
}

proptest! {
    #[test]
    fn random_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..300), l3 in 0usize..20) {
        check(&buf, l3)?;
    }

    /// Random bytes made to look like IPv6 with a chain, so the walk gets deep.
    #[test]
    fn random_chains_stay_in_bounds(
        mut buf in proptest::collection::vec(any::<u8>(), 40..400),
        first in proptest::sample::select(vec![HOP_BY_HOP, ROUTING, FRAGMENT, AUTH, DEST_OPTS, 6, 17]),
        slack in 0usize..16,
    ) {
        buf[0] = 0x60;
        buf[6] = first;
        let len = (buf.len() - IPV6_HEADER_LEN).saturating_sub(slack);
        set_payload_len(&mut buf, len);
        check(&buf, 0)?;
    }
}

#[test]
fn segments_left_is_reported() {
    let mut r = routing(4);
    r.1[3] = 2;
    let h = parse_ipv6(&chain(&[r]), 0).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((h.segments_left, h.protocol), (2, UDP));
    let h = parse_ipv6(&chain(&[routing(4)]), 0).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(h.segments_left, 0);
}

/// The walk of a quote stops at the end it is given, not at the end the payload length says.
#[test]
fn walk_reads_nothing_past_its_end() {
    let p = chain(&[opts(DEST_OPTS, 1), opts(DEST_OPTS, 0)]);
    let full = walk(&p, 0, p.len()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(full.l4, 40 + 16 + 8);
    for end in [40, 41, 55, 56 + 7] {
        assert_eq!(walk(&p, 0, end), Err(DropReason::Ipv6ExtHeader), "{end}");
    }
    assert_eq!(walk(&p, 0, 39), Err(DropReason::Ipv6PayloadLength));
    assert_eq!(walk(&p, 0, p.len() + 1), Err(DropReason::Ipv6PayloadLength));
}

#[test]
fn options_that_must_be_understood() {
    for t in [0x40u8, 0x80, 0xc0, 0xc9] {
        let h = (DEST_OPTS, vec![0, 0, t, 4, 0, 0, 0, 0]);
        assert_eq!(
            parse_ipv6(&chain(&[h]), 0),
            Err(DropReason::Ipv6UnrecognisedOption),
            "{t:#x}"
        );
    }
    let skip = (HOP_BY_HOP, vec![0, 0, 5, 2, 0, 0, 1, 0]);
    assert!(
        parse_ipv6(&chain(&[skip]), 0).is_ok(),
        "router alert is skipped"
    );
}
