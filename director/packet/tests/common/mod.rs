//! Test packets built with etherparse's `PacketBuilder`, and checks that verify every checksum
//! of a frame independently of the code under test (etherparse computes them).

#![allow(dead_code, clippy::cast_possible_truncation)]

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
    let mut out = Vec::new();
    macro_rules! finish {
        ($b:expr) => {{
            let b = $b.ip(spec.ip());
            match l4 {
                L4::Udp => b.udp(spec.sport, spec.dport).write(&mut out, &spec.payload),
                L4::Tcp { flags } => {
                    let mut t = b.tcp(spec.sport, spec.dport, 0x0102_0304, 29200);
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
                    t.write(&mut out, &spec.payload)
                }
            }
            .unwrap()
        }};
    }
    let eth = PacketBuilder::ethernet2(MAC_ROUTER, MAC_DIRECTOR);
    match spec.vlan {
        Some(id) => finish!(eth.single_vlan(VlanId::try_new(id).unwrap())),
        None => finish!(eth),
    }
    out
}

pub fn tcp(spec: &Spec) -> Vec<u8> {
    frame(spec, L4::Tcp { flags: 0x18 })
}

pub fn udp(spec: &Spec) -> Vec<u8> {
    frame(spec, L4::Udp)
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
    let quoted = &about[14..(14 + quote_len).min(about.len())];
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MAC_ROUTER, MAC_DIRECTOR)
        .ipv4(src, dst, 60)
        .icmpv4(kind)
        .write(&mut out, quoted)
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
