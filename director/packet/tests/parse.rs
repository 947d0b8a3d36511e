//! Every drop reason `parse` gives, each from a valid packet with one fault put in.

mod common;

use common::*;
use lvs_packet::{DropClass, DropReason, L4Proto, parse};

fn tcp_frame() -> Vec<u8> {
    tcp(&Spec::new(CLIENT, 40000, VIP, 80))
}

fn udp_frame() -> Vec<u8> {
    udp(&Spec::new(CLIENT, 40000, VIP, 53))
}

/// Sets the IPv4 total length of an untagged frame (and fixes the header checksum).
fn set_total_len(f: &mut [u8], len: u16) {
    f[16..18].copy_from_slice(&len.to_be_bytes());
    fix_ip_checksum(f);
}

#[test]
fn truncated_frames() {
    let f = tcp_frame();
    for n in [0, 5, 13, 14, 20, 33] {
        assert_eq!(parse(&f[..n]), Err(DropReason::Truncated), "{n} bytes");
    }
    // The IP total length runs past the frame.
    assert_eq!(parse(&f[..f.len() - 1]), Err(DropReason::Truncated));
    // A VLAN tag cut short.
    let mut spec = Spec::new(CLIENT, 1, VIP, 2);
    spec.vlan = Some(3);
    assert_eq!(parse(&tcp(&spec)[..16]), Err(DropReason::Truncated));
}

#[test]
fn not_ip_is_not_malformed() {
    let mut f = tcp_frame();
    for et in [[0x08, 0x06], [0x88, 0xcc]] {
        f[12..14].copy_from_slice(&et);
        assert_eq!(parse(&f), Err(DropReason::NotIp));
    }
    assert_eq!(DropReason::NotIp.class(), DropClass::NotForUs);
    // EtherType IPv6 is parsed now: an IPv4 header behind it is a bad version.
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    assert_eq!(parse(&f), Err(DropReason::BadVersion));
    // Two VLAN tags (QinQ) are not for us either.
    let mut spec = Spec::new(CLIENT, 1, VIP, 2);
    spec.vlan = Some(3);
    let mut f = tcp(&spec);
    f[16..18].copy_from_slice(&[0x81, 0x00]);
    assert_eq!(parse(&f), Err(DropReason::NotIp));
}

#[test]
fn bad_version_ihl_and_lengths() {
    let mut f = tcp_frame();
    f[14] = 0x65;
    assert_eq!(parse(&f), Err(DropReason::BadVersion));

    let mut f = tcp_frame();
    f[14] = 0x44;
    assert_eq!(parse(&f), Err(DropReason::BadIhl));

    let mut f = tcp_frame();
    f[14] = 0x4f; // 60-byte header in a 40-byte packet
    set_total_len(&mut f, 40);
    assert_eq!(parse(&f), Err(DropReason::BadIhl));

    let mut f = tcp_frame();
    set_total_len(&mut f, 19);
    assert_eq!(parse(&f), Err(DropReason::BadTotalLength));

    let mut f = tcp_frame();
    f[24] ^= 0x01;
    assert_eq!(parse(&f), Err(DropReason::BadIpChecksum));
}

#[test]
fn options_and_fragments_are_counted() {
    // A header with one word of options (four NOPs), payload moved along.
    let f0 = tcp_frame();
    let mut f = f0[..34].to_vec();
    f.extend_from_slice(&[1, 1, 1, 1]);
    f.extend_from_slice(&f0[34..]);
    f[14] = 0x46;
    let total = u16::try_from(f.len() - 14).unwrap();
    set_total_len(&mut f, total);
    assert_eq!(parse(&f), Err(DropReason::IpOptions));

    let mut f = tcp_frame();
    f[20] |= 0x20; // more fragments
    fix_ip_checksum(&mut f);
    assert_eq!(parse(&f), Err(DropReason::Fragment));

    let mut f = tcp_frame();
    f[20] = 0x40;
    f[21] = 0x10; // DF and an offset
    fix_ip_checksum(&mut f);
    assert_eq!(parse(&f), Err(DropReason::Fragment));
}

#[test]
fn unsupported_protocol_is_not_for_us() {
    let mut f = tcp_frame();
    f[23] = 47; // GRE
    fix_ip_checksum(&mut f);
    assert_eq!(parse(&f), Err(DropReason::UnsupportedProtocol));
    assert_eq!(DropReason::UnsupportedProtocol.class(), DropClass::NotForUs);
}

#[test]
fn bad_transport_headers() {
    let mut f = tcp_frame();
    f[46] = 0x40; // data offset 4
    assert_eq!(parse(&f), Err(DropReason::BadTcpHeader));

    let mut f = tcp_frame();
    f[46] = 0xf0; // data offset 15: 60 bytes, past the segment
    assert_eq!(parse(&f), Err(DropReason::BadTcpHeader));

    let mut f = tcp_frame();
    set_total_len(&mut f, 30); // 10 bytes of TCP
    assert_eq!(parse(&f), Err(DropReason::Truncated));

    let mut f = udp_frame();
    f[38..40].copy_from_slice(&7u16.to_be_bytes());
    assert_eq!(parse(&f), Err(DropReason::BadUdpLength));
    let mut f = udp_frame();
    f[38..40].copy_from_slice(&1000u16.to_be_bytes());
    assert_eq!(parse(&f), Err(DropReason::BadUdpLength));

    // A UDP length shorter than the IP payload is accepted; the segment ends there.
    let mut f = udp_frame();
    f[38..40].copy_from_slice(&10u16.to_be_bytes());
    let p = parse(&f).unwrap();
    assert_eq!(p.l4_end, p.l4 + 10);
    assert!(p.l4_end < p.end);
}

#[test]
fn icmp_errors_and_queries() {
    let about = udp(&Spec::new(VIP, 53, CLIENT, 1000));
    let e = icmp_error(CLIENT, VIP, port_unreachable(), &about, 28);
    let p = parse(&e).unwrap();
    let info = p.icmp.unwrap();
    assert_eq!((info.icmp_type, info.code), (3, 3));
    let emb = p.embedded().unwrap();
    assert_eq!(emb.flow, parse(&about).unwrap().flow);
    assert_eq!((emb.l3, emb.l4), (42, 62));
    assert_eq!((p.flow.src_port, p.flow.dst_port), (0, 0));

    // An echo request is ICMP but no error: no embedded flow.
    let mut echo = Vec::new();
    etherparse::PacketBuilder::ethernet2(MAC_ROUTER, MAC_DIRECTOR)
        .ipv4(CLIENT, VIP, 64)
        .icmpv4_echo_request(1, 2)
        .write(&mut echo, b"ping")
        .unwrap();
    let p = parse(&echo).unwrap();
    assert_eq!(p.flow.protocol, L4Proto::Icmp);
    assert!(p.icmp.is_some() && !p.is_icmp_error());

    // Bad checksum.
    let mut bad = e.clone();
    bad[36] ^= 0xff;
    assert_eq!(parse(&bad), Err(DropReason::BadIcmp));
    // A quote too short for the ports.
    let short = icmp_error(CLIENT, VIP, port_unreachable(), &about, 27);
    assert_eq!(parse(&short), Err(DropReason::BadIcmp));
    // A quoted non-first fragment.
    let mut frag = about.clone();
    frag[20..22].copy_from_slice(&[0x00, 0x10]);
    let e = icmp_error(CLIENT, VIP, port_unreachable(), &frag, 28);
    assert_eq!(parse(&e), Err(DropReason::Fragment));
    // A quoted GRE packet.
    let mut gre = about.clone();
    gre[23] = 47;
    let e = icmp_error(CLIENT, VIP, port_unreachable(), &gre, 28);
    assert_eq!(parse(&e), Err(DropReason::UnsupportedProtocol));
    // An ICMP message shorter than its header.
    let mut tiny = echo[..14 + 20 + 4].to_vec();
    set_total_len(&mut tiny, 24);
    assert_eq!(parse(&tiny), Err(DropReason::Truncated));
}
