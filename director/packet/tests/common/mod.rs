//! Test packets built with etherparse's `PacketBuilder`, and checks that verify every checksum
//! of a frame independently of the code under test (etherparse computes them).

#![allow(dead_code, clippy::cast_possible_truncation)]

pub mod exercise;

use etherparse::icmpv4::DestUnreachableHeader;
use etherparse::{
    Icmpv4Header, Icmpv4Type, IpHeaders, IpNumber, Ipv4Dscp, Ipv4Ecn, Ipv4Extensions, Ipv4Header,
    NetSlice, PacketBuilder, SlicedPacket, TransportSlice, VlanId,
};

pub const CLIENT: [u8; 4] = [198, 51, 100, 7];
pub const VIP: [u8; 4] = [192, 0, 2, 10];
pub const RS: [u8; 4] = [10, 0, 0, 21];
pub const DIRECTOR: [u8; 4] = [10, 0, 0, 1];
pub const MAC_ROUTER: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const MAC_DIRECTOR: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const MAC_RS: [u8; 6] = [0x02, 0, 0, 0, 0, 0x03];

/// What to build.
#[derive(Clone, Debug)]
pub struct Spec {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub sport: u16,
    pub dport: u16,
    pub ttl: u8,
    pub df: bool,
    pub id: u16,
    pub tos: u8,
    pub vlan: Option<u16>,
    pub payload: Vec<u8>,
}

impl Spec {
    pub fn new(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Spec {
        Spec {
            src,
            dst,
            sport,
            dport,
            ttl: 64,
            df: true,
            id: 0x1234,
            tos: 0,
            vlan: None,
            payload: b"hello, virtual server".to_vec(),
        }
    }

    pub fn payload_len(mut self, n: usize) -> Spec {
        self.payload = (0..n).map(|i| (i * 7 + 3) as u8).collect();
        self
    }

    fn ip(&self) -> IpHeaders {
        let mut h = Ipv4Header::new(0, self.ttl, IpNumber::TCP, self.src, self.dst).unwrap();
        h.dont_fragment = self.df;
        h.identification = self.id;
        h.dscp = Ipv4Dscp::try_new(self.tos >> 2).unwrap();
        h.ecn = Ipv4Ecn::try_new(self.tos & 0b11).unwrap();
        IpHeaders::Ipv4(h, Ipv4Extensions::default())
    }
}

pub enum L4 {
    Tcp { flags: u8 },
    Udp,
}

/// An Ethernet frame from the router to the director.
pub fn frame(spec: &Spec, l4: L4) -> Vec<u8> {
    build_frame(
        spec.vlan,
        spec.ip(),
        spec.sport,
        spec.dport,
        l4,
        &spec.payload,
    )
}

/// An Ethernet frame from the router to the director with the IP header `ip` (of either
/// family; its protocol and lengths are filled in) and a TCP segment or UDP datagram.
fn build_frame(
    vlan: Option<u16>,
    ip: IpHeaders,
    sport: u16,
    dport: u16,
    l4: L4,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    let eth = PacketBuilder::ethernet2(MAC_ROUTER, MAC_DIRECTOR);
    let b = match vlan {
        Some(id) => eth.single_vlan(VlanId::try_new(id).unwrap()).ip(ip),
        None => eth.ip(ip),
    };
    match l4 {
        L4::Udp => b.udp(sport, dport).write(&mut out, payload),
        L4::Tcp { flags } => {
            let mut t = b.tcp(sport, dport, 0x0102_0304, 29200);
            if flags & 0x02 != 0 {
                t = t.syn();
            }
            if flags & 0x10 != 0 {
                t = t.ack(0x0a0b_0c0d);
            }
            if flags & 0x01 != 0 {
                t = t.fin();
            }
            if flags & 0x08 != 0 {
                t = t.psh();
            }
            t.write(&mut out, payload)
        }
    }
    .unwrap();
    out
}

/// A spec of either family.
pub trait Build {
    fn build(&self, l4: L4) -> Vec<u8>;

    /// A "port unreachable" about the UDP datagram of this spec (untagged), from its
    /// destination (`from_client`) or from its source (to itself), quoting `quote` bytes or
    /// at least its ports.
    fn udp_error(&self, from_client: bool, quote: usize) -> Vec<u8>;
}

impl Build for Spec {
    fn build(&self, l4: L4) -> Vec<u8> {
        frame(self, l4)
    }

    fn udp_error(&self, from_client: bool, quote: usize) -> Vec<u8> {
        let about = udp(&Spec {
            vlan: None,
            ..self.clone()
        });
        let from = if from_client { self.dst } else { self.src };
        icmp_error(from, self.src, port_unreachable(), &about, quote.max(28))
    }
}

impl Build for Spec6 {
    fn build(&self, l4: L4) -> Vec<u8> {
        frame6(self, l4)
    }

    fn udp_error(&self, from_client: bool, quote: usize) -> Vec<u8> {
        let about = udp(&Spec6 {
            vlan: None,
            ..self.clone()
        });
        let from = if from_client { self.dst } else { self.src };
        let chain: usize = self.exts.iter().map(|e| e.1.len()).sum();
        icmp6_error(
            from,
            self.src,
            port_unreachable6(),
            &about,
            quote.max(48 + chain),
        )
    }
}

pub fn tcp(spec: &impl Build) -> Vec<u8> {
    spec.build(L4::Tcp { flags: 0x18 })
}

pub fn udp(spec: &impl Build) -> Vec<u8> {
    spec.build(L4::Udp)
}

/// The first `quote_len` bytes of the IP packet in `about` (an untagged Ethernet frame).
fn quote(about: &[u8], quote_len: usize) -> &[u8] {
    &about[14..(14 + quote_len).min(about.len())]
}

/// An ICMP error frame from `src` to `dst` quoting the first `quote_len` bytes of the IP
/// packet in `about` (an Ethernet frame without VLAN tag).
pub fn icmp_error(
    src: [u8; 4],
    dst: [u8; 4],
    kind: Icmpv4Type,
    about: &[u8],
    quote_len: usize,
) -> Vec<u8> {
    let mut out = Vec::new();
    let b = PacketBuilder::ethernet2(MAC_ROUTER, MAC_DIRECTOR).ipv4(src, dst, 60);
    b.icmpv4(kind)
        .write(&mut out, quote(about, quote_len))
        .unwrap();
    out
}

pub fn frag_needed(mtu: u16) -> Icmpv4Type {
    Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
        next_hop_mtu: mtu,
    })
}

pub fn port_unreachable() -> Icmpv4Type {
    Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port)
}

/// Ones'-complement equality: 0x0000 and 0xffff are both zero.
pub fn csum_eq(a: u16, b: u16) -> bool {
    a == b || (a == 0 || a == 0xffff) && (b == 0 || b == 0xffff)
}

/// Checks with etherparse that the IP header checksum and the TCP/UDP/ICMP checksum of the
/// frame are right. Returns the frame decoded.
pub fn assert_checksums(frame: &[u8]) -> SlicedPacket<'_> {
    let sp = SlicedPacket::from_ethernet(frame).expect("etherparse decodes the frame");
    let Some(NetSlice::Ipv4(ip)) = &sp.net else {
        panic!("not IPv4")
    };
    let h = ip.header().to_header();
    assert_eq!(
        h.calc_header_checksum(),
        h.header_checksum,
        "IP header checksum"
    );
    match &sp.transport {
        Some(TransportSlice::Tcp(t)) => {
            let want = t.calc_checksum_ipv4(h.source, h.destination).unwrap();
            assert!(
                csum_eq(want, t.checksum()),
                "TCP checksum {:#06x} want {want:#06x}",
                t.checksum()
            );
        }
        Some(TransportSlice::Udp(u)) => {
            if u.checksum() != 0 {
                let want = u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap();
                assert_eq!(want, u.checksum(), "UDP checksum");
            }
        }
        Some(TransportSlice::Icmpv4(i)) => {
            let want = Icmpv4Header::with_checksum(i.icmp_type(), i.payload()).checksum;
            assert_eq!(want, i.checksum(), "ICMP checksum");
        }
        _ => panic!("no transport header"),
    }
    sp
}

/// Fixes the IPv4 header checksum of an untagged frame after a test mutated the header.
pub fn fix_ip_checksum(frame: &mut [u8]) {
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    if frame.len() < 14 + ihl.max(20) {
        return;
    }
    frame[24] = 0;
    frame[25] = 0;
    let c = lvs_packet::checksum::ipv4_header_checksum(&frame[14..14 + ihl]);
    frame[24..26].copy_from_slice(&c.to_be_bytes());
}

/// Puts into the transport checksum field what a sender with checksum offload leaves there:
/// the folded pseudo-header sum, not complemented (`TP_STATUS_CSUMNOTREADY`).
pub fn make_partial(frame: &mut [u8]) {
    let pkt = lvs_packet::parse(frame).unwrap();
    let (src, dst) = (pkt.flow.src, pkt.flow.dst);
    let proto = pkt.flow.protocol.number();
    let len = (pkt.l4_end - pkt.l4) as u32;
    let pseudo = lvs_packet::checksum::pseudo_header_sum(src, dst, proto, len);
    let off = pkt.l4 + if proto == 6 { 16 } else { 6 };
    let v = lvs_packet::checksum::fold(pseudo);
    frame[off..off + 2].copy_from_slice(&v.to_be_bytes());
}

// ---- IPv6 ----

pub const CLIENT6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7,
];
pub const VIP6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];
pub const RS6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x21];
pub const DIRECTOR6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// Next-header values of the extension headers the tests build.
pub const HOP_BY_HOP: u8 = 0;
pub const ROUTING: u8 = 43;
pub const FRAGMENT: u8 = 44;
pub const DEST_OPTS: u8 = 60;

/// An IPv6 packet to build: addresses, ports, header fields, extension headers (type and
/// bytes; each one's next-header byte is filled in) and payload.
#[derive(Clone, Debug)]
pub struct Spec6 {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub hop_limit: u8,
    pub traffic_class: u8,
    pub flow_label: u32,
    pub vlan: Option<u16>,
    pub exts: Vec<(u8, Vec<u8>)>,
    pub payload: Vec<u8>,
}

impl Spec6 {
    pub fn new(src: [u8; 16], sport: u16, dst: [u8; 16], dport: u16) -> Spec6 {
        Spec6 {
            src,
            dst,
            sport,
            dport,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
            vlan: None,
            exts: Vec::new(),
            payload: b"hello, virtual server over IPv6".to_vec(),
        }
    }

    pub fn payload_len(mut self, n: usize) -> Spec6 {
        self.payload = (0..n).map(|i| (i * 7 + 3) as u8).collect();
        self
    }

    pub fn ext(mut self, h: (u8, Vec<u8>)) -> Spec6 {
        self.exts.push(h);
        self
    }
}

/// An options header (hop-by-hop or destination options) of `units + 1` eight-byte units,
/// filled with one PadN option.
pub fn opts_header(kind: u8, units: u8) -> (u8, Vec<u8>) {
    let len = (usize::from(units) + 1) * 8;
    let mut h = vec![0; len];
    h[1] = units;
    h[2] = 1;
    h[3] = (len - 4) as u8;
    (kind, h)
}

/// A routing header of type `routing_type` with `segments_left`, carrying one address.
pub fn routing_header(routing_type: u8, segments_left: u8) -> (u8, Vec<u8>) {
    let mut h = vec![0, 2, routing_type, segments_left, 0, 0, 0, 0];
    h.extend_from_slice(&RS6);
    (ROUTING, h)
}

/// A fragment header.
pub fn fragment_header(offset: u16, more: bool, id: u32) -> (u8, Vec<u8>) {
    let word = (offset & !7) | u16::from(more);
    let mut h = vec![0, 0];
    h.extend_from_slice(&word.to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    (FRAGMENT, h)
}

/// Puts `exts` between the fixed IPv6 header at `l3` and what follows it, fixing every
/// next-header byte and the payload length. Transport checksums stay right: the pseudo-header
/// does not cover extension headers.
pub fn insert_exts(frame: &mut Vec<u8>, l3: usize, exts: &[(u8, Vec<u8>)]) {
    if exts.is_empty() {
        return;
    }
    let transport = frame[l3 + 6];
    frame[l3 + 6] = exts[0].0;
    let mut chain = Vec::new();
    for (i, (_, bytes)) in exts.iter().enumerate() {
        let mut h = bytes.clone();
        h[0] = exts.get(i + 1).map_or(transport, |e| e.0);
        chain.extend_from_slice(&h);
    }
    let at = l3 + 40;
    frame.splice(at..at, chain);
    let payload = (frame.len() - at) as u16;
    frame[l3 + 4..l3 + 6].copy_from_slice(&payload.to_be_bytes());
}

/// An Ethernet frame carrying IPv6 from the router to the director.
pub fn frame6(spec: &Spec6, l4: L4) -> Vec<u8> {
    let ip = etherparse::Ipv6Header {
        traffic_class: spec.traffic_class,
        flow_label: etherparse::Ipv6FlowLabel::try_new(spec.flow_label).unwrap(),
        payload_length: 0,
        next_header: IpNumber::TCP,
        hop_limit: spec.hop_limit,
        source: spec.src,
        destination: spec.dst,
    };
    let ip = IpHeaders::Ipv6(ip, Default::default());
    let mut out = build_frame(spec.vlan, ip, spec.sport, spec.dport, l4, &spec.payload);
    let l3 = if spec.vlan.is_some() { 18 } else { 14 };
    insert_exts(&mut out, l3, &spec.exts);
    out
}

/// An ICMPv6 error frame from `src` to `dst` quoting the first `quote_len` bytes of the IPv6
/// packet in `about` (an Ethernet frame without VLAN tag).
pub fn icmp6_error(
    src: [u8; 16],
    dst: [u8; 16],
    kind: etherparse::Icmpv6Type,
    about: &[u8],
    quote_len: usize,
) -> Vec<u8> {
    let mut out = Vec::new();
    let b = PacketBuilder::ethernet2(MAC_ROUTER, MAC_DIRECTOR).ipv6(src, dst, 60);
    b.icmpv6(kind)
        .write(&mut out, quote(about, quote_len))
        .unwrap();
    out
}

pub fn packet_too_big(mtu: u32) -> etherparse::Icmpv6Type {
    etherparse::Icmpv6Type::PacketTooBig { mtu }
}

pub fn port_unreachable6() -> etherparse::Icmpv6Type {
    etherparse::Icmpv6Type::DestinationUnreachable(etherparse::icmpv6::DestUnreachableCode::Port)
}

/// The Internet checksum of `data` under `pseudo`, by the textbook loop (16-bit words, fold
/// at the end): independent of the library's four-bytes-at-a-time sum.
pub fn naive_sum(pseudo: u64, data: &[u8]) -> u16 {
    let mut acc = pseudo;
    for pair in data.chunks(2) {
        let hi = u64::from(pair[0]) << 8;
        acc += hi + pair.get(1).map_or(0, |&b| u64::from(b));
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The IPv6 pseudo-header of RFC 8200 section 8.1, summed by hand.
pub fn naive_pseudo6(src: &[u8; 16], dst: &[u8; 16], next_header: u8, len: usize) -> u64 {
    let mut p = Vec::with_capacity(40);
    p.extend_from_slice(src);
    p.extend_from_slice(dst);
    p.extend_from_slice(&(len as u32).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, next_header]);
    u64::from(naive_sum(0, &p))
}

/// Checks that the transport checksum of the IPv6 frame is right, twice: with etherparse and
/// with the textbook sum over the RFC 8200 pseudo-header. Returns the frame decoded.
pub fn assert_checksums6(frame: &[u8]) -> SlicedPacket<'_> {
    let sp = SlicedPacket::from_ethernet(frame).expect("etherparse decodes the frame");
    let Some(NetSlice::Ipv6(ip)) = &sp.net else {
        panic!("not IPv6")
    };
    let h = ip.header().to_header();
    let (src, dst) = (h.source, h.destination);
    let (nh, l4): (u8, &[u8]) = match &sp.transport {
        Some(TransportSlice::Tcp(t)) => {
            let want = t.calc_checksum_ipv6(src, dst).unwrap();
            assert!(
                csum_eq(want, t.checksum()),
                "TCP checksum {:#06x} want {want:#06x}",
                t.checksum()
            );
            (6, t.slice())
        }
        Some(TransportSlice::Udp(u)) => {
            assert_ne!(u.checksum(), 0, "a zero UDP checksum is invalid over IPv6");
            let want = u
                .to_header()
                .calc_checksum_ipv6_raw(src, dst, u.payload())
                .unwrap();
            assert_eq!(want, u.checksum(), "UDP checksum");
            (17, u.slice())
        }
        Some(TransportSlice::Icmpv6(i)) => {
            let want = i.icmp_type().calc_checksum(src, dst, i.payload()).unwrap();
            assert_eq!(want, i.checksum(), "ICMPv6 checksum");
            (58, i.slice())
        }
        _ => panic!("no transport header"),
    };
    let pseudo = naive_pseudo6(&src, &dst, nh, l4.len());
    assert_eq!(
        naive_sum(pseudo, l4),
        0xffff,
        "textbook sum over the pseudo-header"
    );
    sp
}
