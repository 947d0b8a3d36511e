//! IPv6 through every public function: parsing (extension headers, VLAN tags, ICMPv6),
//! each IPv6 bad input with its own drop reason, NAT both ways with checksums checked by
//! etherparse and by a textbook sum, ICMPv6 errors rewritten both ways, DR, the hop limit,
//! IPv6-in-IPv6 tunnelling and the ICMPv6 errors the director builds.

mod common;

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::*;
use lvs_packet::*;

fn ip6(a: [u8; 16]) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(a))
}

const TO_RS: MacPair = MacPair {
    src: MAC_DIRECTOR,
    dst: MAC_RS,
};

fn client_tcp() -> Spec6 {
    Spec6::new(CLIENT6, 40000, VIP6, 80)
}

#[test]
fn parses_tcp_and_udp() {
    let mut spec = client_tcp();
    spec.hop_limit = 17;
    spec.traffic_class = 0xb8;
    spec.flow_label = 0x12345;
    let f = frame6(&spec, L4::Tcp { flags: 0x02 });
    let p = parse(&f).unwrap();
    assert!(p.is_ipv6());
    assert_eq!(p.vlan, None);
    assert_eq!((p.l3, p.l4), (14, 54));
    assert_eq!(p.payload, 54 + 20);
    assert_eq!((p.l4_end, p.end), (f.len(), f.len()));
    assert_eq!(p.flow.protocol, L4Proto::Tcp);
    assert_eq!(
        (p.flow.src, p.flow.src_port, p.flow.dst, p.flow.dst_port),
        (ip6(CLIENT6), 40000, ip6(VIP6), 80)
    );
    assert!(p.tcp_flags.contains(TcpFlags::SYN));
    assert_eq!(usize::from(p.total_len), f.len() - 14);
    assert_eq!(
        (p.ttl, p.tos, p.ip_id, p.dont_fragment),
        (17, 0xb8, 0, true)
    );
    assert_eq!(p.icmp, None);
    assert!(verify_ip_header(&f, &p));
    assert!(verify_l4(&f, &p));

    let mut spec = Spec6::new(CLIENT6, 5353, VIP6, 53);
    spec.vlan = Some(42);
    let f = udp(&spec);
    let p = parse(&f).unwrap();
    assert_eq!((p.vlan, p.l3, p.l4, p.payload), (Some(42), 18, 58, 66));
    assert_eq!(p.flow.protocol, L4Proto::Udp);
    assert_eq!((p.flow.src_port, p.flow.dst_port), (5353, 53));
    assert!(verify_l4(&f, &p));
}

#[test]
fn udp_length_shorter_than_payload_and_padding() {
    // Link-layer padding after the packet is not part of it.
    let mut f = udp(&Spec6::new(CLIENT6, 1, VIP6, 2).payload_len(2));
    let len = f.len();
    f.extend_from_slice(&[0; 12]);
    let p = parse(&f).unwrap();
    assert_eq!((p.end, p.l4_end), (len, len));
    assert!(verify_l4(&f, &p));
}

#[test]
fn walks_extension_headers_to_the_transport_header() {
    let spec = client_tcp()
        .ext(opts_header(HOP_BY_HOP, 0))
        .ext(opts_header(DEST_OPTS, 1))
        .ext(routing_header(4, 0))
        .ext(fragment_header(0, false, 7))
        .ext(opts_header(DEST_OPTS, 0));
    let f = tcp(&spec);
    let p = parse(&f).unwrap();
    let chain = 8 + 16 + 24 + 8 + 8;
    assert_eq!(p.l4, 14 + 40 + chain);
    assert_eq!(p.flow.protocol, L4Proto::Tcp);
    assert_eq!(p.flow.dst_port, 80);
    assert!(verify_l4(&f, &p));
    assert_checksums6(&f);
}

#[test]
fn bad_input_each_has_its_reason() {
    let base = tcp(&client_tcp());

    // The chain runs past the payload (the frame ends within an extension header).
    let mut f = tcp(&client_tcp().ext(opts_header(DEST_OPTS, 3)));
    f.truncate(14 + 40 + 16);
    let plen = u16::try_from(f.len() - 54).unwrap();
    f[18..20].copy_from_slice(&plen.to_be_bytes());
    assert_eq!(parse(&f), Err(DropReason::Ipv6ExtHeader));
    assert!(DropReason::Ipv6ExtHeader.is_malformed());

    // Payload length beyond the frame.
    let mut f = base.clone();
    f[18..20].copy_from_slice(&2000u16.to_be_bytes());
    assert_eq!(parse(&f), Err(DropReason::Ipv6PayloadLength));

    // Fragments: a non-first one has no ports; a first one is not reassembled either.
    let f = tcp(&client_tcp().ext(fragment_header(1480, false, 9)));
    assert_eq!(parse(&f), Err(DropReason::Fragment));
    let f = tcp(&client_tcp().ext(fragment_header(0, true, 9)));
    assert_eq!(parse(&f), Err(DropReason::Fragment));
    let f = udp(&Spec6::new(CLIENT6, 1, VIP6, 53).ext(fragment_header(8, true, 9)));
    assert_eq!(parse(&f), Err(DropReason::Fragment));
    // An atomic fragment is a whole packet.
    let f = tcp(&client_tcp().ext(fragment_header(0, false, 9)));
    assert!(parse(&f).is_ok());

    // A jumbogram: payload length 0 and a Jumbo Payload option.
    let mut f = base.clone();
    let mut hbh = vec![0u8; 8];
    hbh[2] = 0xc2;
    hbh[3] = 4;
    hbh[4..8].copy_from_slice(&70000u32.to_be_bytes());
    insert_exts(&mut f, 14, &[(HOP_BY_HOP, hbh)]);
    f[18..20].copy_from_slice(&[0, 0]);
    assert_eq!(parse(&f), Err(DropReason::Ipv6Jumbogram));

    // Routing header type 0 (RFC 5095), and any routing header with hops left to visit.
    let f = tcp(&client_tcp().ext(routing_header(0, 0)));
    assert_eq!(parse(&f), Err(DropReason::Ipv6RoutingType0));
    let f = tcp(&client_tcp().ext(routing_header(4, 1)));
    assert_eq!(parse(&f), Err(DropReason::Ipv6RoutingSegmentsLeft));

    // Too many extension headers.
    let mut spec = client_tcp();
    for _ in 0..=ipv6::MAX_EXT_HEADERS {
        spec = spec.ext(opts_header(DEST_OPTS, 0));
    }
    assert_eq!(parse(&tcp(&spec)), Err(DropReason::Ipv6TooManyExtHeaders));

    // Hop-by-hop after another header.
    let f = tcp(&client_tcp()
        .ext(opts_header(DEST_OPTS, 0))
        .ext(opts_header(HOP_BY_HOP, 0)));
    assert_eq!(parse(&f), Err(DropReason::Ipv6HopByHopNotFirst));

    // UDP with a zero checksum (RFC 8200 section 8.1).
    let mut f = udp(&Spec6::new(CLIENT6, 1, VIP6, 53));
    f[54 + 6..54 + 8].copy_from_slice(&[0, 0]);
    assert_eq!(parse(&f), Err(DropReason::Ipv6UdpZeroChecksum));
    assert!(DropReason::Ipv6UdpZeroChecksum.is_malformed());

    // Version field not 6, fixed header cut short.
    let mut f = base.clone();
    f[14] = 0x40;
    assert_eq!(parse(&f), Err(DropReason::BadVersion));
    assert_eq!(parse(&base[..14 + 39]), Err(DropReason::Truncated));

    // A transport header cut by the payload length.
    let mut f = base.clone();
    f[18..20].copy_from_slice(&10u16.to_be_bytes());
    assert_eq!(parse(&f), Err(DropReason::Truncated));

    // Protocols of their own (ESP, no next header, SCTP) and ICMPv4's number are not ours,
    // as over IPv4.
    let mut f = base.clone();
    for nh in [50, 59, 132, 1] {
        f[20] = nh;
        assert_eq!(parse(&f), Err(DropReason::UnsupportedProtocol), "{nh}");
        assert_eq!(DropReason::UnsupportedProtocol.class(), DropClass::NotForUs);
    }
    // An extension header the walk does not step over hides the transport header: counted.
    for nh in [135, 139, 140, 253, 254] {
        let f = tcp(&client_tcp().ext((nh, vec![0; 8])));
        assert_eq!(parse(&f), Err(DropReason::Ipv6UnknownExtHeader), "{nh}");
        assert_eq!(DropReason::Ipv6UnknownExtHeader.class(), DropClass::Policy);
    }

    // Every reason has its own stable name, listed in docs/LOGGING.md by the director.
    for r in [
        DropReason::Ipv6RoutingSegmentsLeft,
        DropReason::Ipv6UdpZeroChecksum,
        DropReason::Ipv6UnrecognisedOption,
        DropReason::Ipv6UnknownExtHeader,
    ] {
        assert!(DropReason::ALL.contains(&r));
    }
}

/// An options header of 8 bytes holding one option of type `t` with 4 bytes of data.
fn one_option(kind: u8, t: u8) -> (u8, Vec<u8>) {
    (kind, vec![0, 0, t, 4, 0, 0, 0, 0])
}

#[test]
fn options_that_must_be_understood_drop_the_packet() {
    // Router alert (5) and any type with the high bits 00 are skipped.
    for t in [5, 0x11, 0x3f] {
        for kind in [HOP_BY_HOP, DEST_OPTS] {
            assert!(parse(&tcp(&client_tcp().ext(one_option(kind, t)))).is_ok());
        }
    }
    // 01 discard, 10 and 11 discard and report: Home Address (0xc9), RPL (0x63) ...
    for t in [0x40, 0x63, 0x80, 0xc9, 0xfe] {
        for kind in [HOP_BY_HOP, DEST_OPTS] {
            let f = tcp(&client_tcp().ext(one_option(kind, t)));
            assert_eq!(
                parse(&f),
                Err(DropReason::Ipv6UnrecognisedOption),
                "type {t:#x}"
            );
        }
    }
    assert_eq!(
        DropReason::Ipv6UnrecognisedOption.class(),
        DropClass::Policy
    );
}

#[test]
fn ipv4_never_takes_icmpv6() {
    let mut f = tcp(&Spec::new(CLIENT, 1, VIP, 2));
    f[23] = 58;
    fix_ip_checksum(&mut f);
    assert_eq!(parse(&f), Err(DropReason::UnsupportedProtocol));
}

#[test]
fn hop_limit_like_ttl() {
    let mut spec = client_tcp();
    spec.hop_limit = 2;
    let mut f = tcp(&spec);
    let p = parse(&f).unwrap();
    decrement_ttl(&mut f, &p).unwrap();
    assert_eq!(f[21], 1);
    assert_checksums6(&f);
    let before = f.clone();
    assert_eq!(decrement_ttl(&mut f, &p), Err(RewriteError::TtlExpired));
    assert_eq!(f, before, "an expired packet is left as it came");
    assert_eq!(
        RewriteError::TtlExpired.drop_reason(),
        DropReason::TtlExpired
    );
    f[21] = 0;
    assert_eq!(decrement_ttl(&mut f, &p), Err(RewriteError::TtlExpired));
}

#[test]
fn nat_both_ways_tcp_and_udp() {
    for tcp in [true, false] {
        for ext in [false, true] {
            let mut spec = Spec6::new(CLIENT6, 40000, VIP6, 80).payload_len(301);
            if ext {
                spec = spec.ext(opts_header(DEST_OPTS, 0));
            }
            let l4 = || {
                if tcp {
                    L4::Tcp { flags: 0x10 }
                } else {
                    L4::Udp
                }
            };
            let mut f = frame6(&spec, l4());
            let p = parse(&f).unwrap();
            nat_in(&mut f, &p, ip6(RS6), 8080, false).unwrap();
            let q = parse(&f).unwrap();
            assert_eq!(q.flow.dst, ip6(RS6));
            assert_eq!(q.flow.dst_port, 8080);
            assert_eq!((q.flow.src, q.flow.src_port), (ip6(CLIENT6), 40000));
            assert!(verify_l4(&f, &q));
            assert_checksums6(&f);

            // The reply, back to the VIP.
            let mut r = frame6(
                &Spec6 {
                    exts: spec.exts.clone(),
                    ..Spec6::new(RS6, 8080, CLIENT6, 40000).payload_len(99)
                },
                l4(),
            );
            let p = parse(&r).unwrap();
            nat_out(&mut r, &p, ip6(VIP6), 80, false).unwrap();
            let q = parse(&r).unwrap();
            assert_eq!((q.flow.src, q.flow.src_port), (ip6(VIP6), 80));
            assert_checksums6(&r);
        }
    }
}

#[test]
fn nat_completes_partial_checksums() {
    for tcp in [true, false] {
        let spec = Spec6::new(CLIENT6, 40000, VIP6, 80).payload_len(77);
        let mut f = frame6(
            &spec,
            if tcp {
                L4::Tcp { flags: 0x18 }
            } else {
                L4::Udp
            },
        );
        make_partial(&mut f);
        let p = parse(&f).unwrap();
        assert!(!verify_l4(&f, &p), "a partial checksum does not verify");
        let mut a = f.clone();
        nat_in(&mut a, &p, ip6(RS6), 8080, true).unwrap();
        assert_checksums6(&a);
        let mut b = f.clone();
        dr_rewrite(&mut b, &p, TO_RS, true).unwrap();
        assert_checksums6(&b);
        let mut c = f.clone();
        complete_l4_checksum(&mut c, &p).unwrap();
        assert_checksums6(&c);
    }
}

#[test]
fn wrong_family_is_refused_untouched() {
    let f = tcp(&client_tcp());
    let p = parse(&f).unwrap();
    let v4 = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 21));
    let mut g = f.clone();
    assert_eq!(
        nat_in(&mut g, &p, v4, 1, false),
        Err(RewriteError::FamilyMismatch)
    );
    assert_eq!(
        nat_out(&mut g, &p, v4, 1, true),
        Err(RewriteError::FamilyMismatch)
    );
    assert_eq!(g, f);
    let mut out = [0u8; 1600];
    assert_eq!(
        icmp_time_exceeded(&f, &p, v4, TO_RS, &mut out),
        Err(RewriteError::FamilyMismatch)
    );

    // And an IPv4 packet with an IPv6 address.
    let f = tcp(&Spec::new(CLIENT, 1, VIP, 80));
    let p = parse(&f).unwrap();
    let mut g = f.clone();
    assert_eq!(
        nat_in(&mut g, &p, ip6(RS6), 1, false),
        Err(RewriteError::FamilyMismatch)
    );
    assert_eq!(g, f);
}

#[test]
fn udp_zero_checksum_never_verifies_over_ipv6() {
    let mut f = udp(&Spec6::new(CLIENT6, 1, VIP6, 53));
    let p = parse(&f).unwrap();
    f[p.l4 + 6..p.l4 + 8].copy_from_slice(&[0, 0]);
    assert!(!verify_l4(&f, &p));
}

#[test]
fn dr_changes_only_macs() {
    let f = tcp(&client_tcp().ext(opts_header(HOP_BY_HOP, 0)));
    let p = parse(&f).unwrap();
    let mut g = f.clone();
    dr_rewrite(&mut g, &p, TO_RS, false).unwrap();
    assert_eq!(&g[..6], &MAC_RS);
    assert_eq!(&g[6..12], &MAC_DIRECTOR);
    assert_eq!(&g[12..], &f[12..]);
}

#[test]
fn icmpv6_queries_are_parsed_and_left_alone() {
    let mut f = Vec::new();
    etherparse::PacketBuilder::ethernet2(MAC_ROUTER, MAC_DIRECTOR)
        .ipv6(CLIENT6, VIP6, 64)
        .icmpv6_echo_request(1, 2)
        .write(&mut f, b"ping")
        .unwrap();
    let p = parse(&f).unwrap();
    assert_eq!(p.flow.protocol, L4Proto::Icmpv6);
    assert_eq!(p.flow.protocol.number(), 58);
    assert!(p.flow.protocol.is_icmp());
    let info = p.icmp.unwrap();
    assert_eq!((info.icmp_type, info.code, info.embedded), (128, 0, None));
    assert!(!p.is_icmp_error());
    assert!(
        verify_l4(&f, &p),
        "ICMPv6 checksum covers the pseudo-header"
    );
    let mut g = f.clone();
    assert_eq!(
        nat_in(&mut g, &p, ip6(RS6), 1, false),
        Err(RewriteError::WrongKind)
    );
}

/// The frame a real server's reply becomes after `nat_out`, and the ICMPv6 error a client's
/// router sends about it, quoting `quote` bytes.
fn icmp_from_client(tcp: bool, quote: usize) -> (Vec<u8>, Vec<u8>) {
    let l4 = if tcp {
        L4::Tcp { flags: 0x10 }
    } else {
        L4::Udp
    };
    let mut reply = frame6(&Spec6::new(RS6, 8080, CLIENT6, 40000).payload_len(600), l4);
    let p = parse(&reply).unwrap();
    nat_out(&mut reply, &p, ip6(VIP6), 80, false).unwrap();
    let e = icmp6_error(CLIENT6, VIP6, packet_too_big(1400), &reply, quote);
    (reply, e)
}

#[test]
fn icmpv6_errors_are_parsed_with_their_quote() {
    let (_, e) = icmp_from_client(true, 500);
    let p = parse(&e).unwrap();
    assert_eq!(p.flow.protocol, L4Proto::Icmpv6);
    let emb = *p.embedded().unwrap();
    assert_eq!(p.icmp.unwrap().icmp_type, ICMPV6_PACKET_TOO_BIG);
    assert_eq!(emb.l3, 14 + 40 + 8);
    assert_eq!(emb.l4, emb.l3 + 40);
    assert_eq!(
        emb.flow,
        Flow {
            protocol: L4Proto::Tcp,
            src: ip6(VIP6),
            src_port: 80,
            dst: ip6(CLIENT6),
            dst_port: 40000,
        }
    );

    // Each error type is matched; quoted extension headers are walked.
    let about = tcp(&client_tcp().ext(opts_header(DEST_OPTS, 1)));
    for kind in [
        port_unreachable6(),
        packet_too_big(1280),
        etherparse::Icmpv6Type::TimeExceeded(
            etherparse::icmpv6::TimeExceededCode::HopLimitExceeded,
        ),
        etherparse::Icmpv6Type::ParameterProblem(etherparse::icmpv6::ParameterProblemHeader {
            code: etherparse::icmpv6::ParameterProblemCode::ErroneousHeaderField,
            pointer: 6,
        }),
    ] {
        let e = icmp6_error(RS6, CLIENT6, kind, &about, 200);
        let p = parse(&e).unwrap();
        let emb = p.embedded().unwrap();
        assert_eq!(emb.l4, emb.l3 + 40 + 16);
        assert_eq!((emb.flow.src_port, emb.flow.dst_port), (40000, 80));
    }
}

#[test]
fn icmpv6_error_bad_input() {
    // The quote ends before the quoted ports: no connection can be found.
    for quote in [0, 20, 40, 43] {
        let (_, e) = icmp_from_client(true, quote);
        assert_eq!(parse(&e), Err(DropReason::BadIcmp), "quote of {quote}");
    }
    // A quoted extension-header chain cut by the quote.
    let about = tcp(&client_tcp().ext(opts_header(DEST_OPTS, 3)));
    let e = icmp6_error(RS6, CLIENT6, port_unreachable6(), &about, 40 + 20);
    assert_eq!(parse(&e), Err(DropReason::BadIcmp));
    // A bad ICMPv6 checksum (a flipped address the pseudo-header covers is enough).
    let (_, mut e) = icmp_from_client(false, 200);
    e[14 + 8 + 15] ^= 1;
    assert_eq!(parse(&e), Err(DropReason::BadIcmp));
    // About a non-first fragment: no ports.
    let about = udp(&Spec6::new(CLIENT6, 1, VIP6, 53).ext(fragment_header(64, false, 5)));
    let e = icmp6_error(RS6, CLIENT6, port_unreachable6(), &about, 120);
    assert_eq!(parse(&e), Err(DropReason::Fragment));
    // An ICMPv6 message shorter than its header.
    let (_, mut e) = icmp_from_client(true, 200);
    e.truncate(14 + 40 + 6);
    e[18..20].copy_from_slice(&6u16.to_be_bytes());
    assert_eq!(parse(&e), Err(DropReason::Truncated));
}

#[test]
fn icmpv6_nat_round_trip() {
    for tcp in [true, false] {
        for quote in [48, 58, 60, 100, 1232] {
            let l4 = || {
                if tcp {
                    L4::Tcp { flags: 0x10 }
                } else {
                    L4::Udp
                }
            };
            // A real server's error about the request it received, back to the client from
            // the VIP: must equal the error the client would get if the VIP had sent it.
            let original = frame6(
                &Spec6::new(CLIENT6, 40000, VIP6, 80).payload_len(1300),
                l4(),
            );
            let mut natted = original.clone();
            let p = parse(&natted).unwrap();
            nat_in(&mut natted, &p, ip6(RS6), 8080, false).unwrap();
            let mut e = icmp6_error(RS6, CLIENT6, port_unreachable6(), &natted, quote);
            let pe = parse(&e).unwrap();
            nat_icmp_out(&mut e, &pe, ip6(VIP6), 80).unwrap();
            assert_checksums6(&e);
            let want = icmp6_error(VIP6, CLIENT6, port_unreachable6(), &original, quote);
            let q = parse(&e).unwrap();
            let csum_at = q.embedded().unwrap().l4 + if tcp { 16 } else { 6 };
            if csum_at + 2 <= e.len() {
                assert!(csum_eq(
                    u16::from_be_bytes([e[csum_at], e[csum_at + 1]]),
                    u16::from_be_bytes([want[csum_at], want[csum_at + 1]])
                ));
                e[csum_at..csum_at + 2].copy_from_slice(&want[csum_at..csum_at + 2]);
                e[56..58].copy_from_slice(&want[56..58]);
            } else if csum_at < e.len() {
                // Half a checksum field the quote cut is left as it was.
                e[csum_at] = want[csum_at];
                e[56..58].copy_from_slice(&want[56..58]);
            }
            assert_eq!(e, want, "tcp {tcp} quote {quote}");

            // A client's error about a reply, to the real server.
            let (_, mut e) = icmp_from_client(tcp, quote);
            let pe = parse(&e).unwrap();
            nat_icmp_in(&mut e, &pe, ip6(RS6), 8080).unwrap();
            assert_checksums6(&e);
            let q = parse(&e).unwrap();
            assert_eq!(q.flow.dst, ip6(RS6));
            let emb = q.embedded().unwrap();
            assert_eq!((emb.flow.src, emb.flow.src_port), (ip6(RS6), 8080));
        }
    }
}

#[test]
fn icmpv6_nat_rewrites_refuse_what_does_not_apply() {
    let f = tcp(&client_tcp());
    let p = parse(&f).unwrap();
    let mut g = f.clone();
    assert_eq!(
        nat_icmp_in(&mut g, &p, ip6(RS6), 1),
        Err(RewriteError::WrongKind)
    );
    let (_, e) = icmp_from_client(true, 200);
    let pe = parse(&e).unwrap();
    let mut g = e.clone();
    assert_eq!(
        nat_in(&mut g, &pe, ip6(RS6), 1, false),
        Err(RewriteError::WrongKind)
    );
    assert_eq!(
        nat_icmp_out(&mut g, &pe, IpAddr::V4(Ipv4Addr::LOCALHOST), 1),
        Err(RewriteError::FamilyMismatch)
    );
    assert_eq!(g, e);
}

fn tun_params(mtu: u16) -> TunParams {
    TunParams {
        outer_src: ip6(DIRECTOR6),
        outer_dst: ip6(RS6),
        macs: TO_RS,
        mtu,
        ip_id: 1,
    }
}

#[test]
fn tunnel_is_ipv6_in_ipv6() {
    let mut spec = client_tcp().payload_len(500);
    spec.hop_limit = 33;
    spec.traffic_class = 0x2e;
    spec.flow_label = 0xabcde;
    let f = tcp(&spec);
    let p = parse(&f).unwrap();
    let mut out = vec![0u8; 2048];
    let n = tun_encap(&f, &p, &tun_params(1500), false, &mut out).unwrap();
    let o = &out[..n];
    assert_eq!(n, 14 + 40 + (f.len() - 14));
    assert_eq!(&o[..6], &MAC_RS);
    assert_eq!(&o[12..14], &[0x86, 0xdd]);
    let outer = etherparse::Ipv6HeaderSlice::from_slice(&o[14..]).unwrap();
    assert_eq!(outer.next_header().0, 41);
    assert_eq!(usize::from(outer.payload_length()), f.len() - 14);
    assert_eq!(outer.hop_limit(), 33);
    assert_eq!(outer.traffic_class(), 0x2e);
    assert_eq!(outer.flow_label().value(), 0xabcde);
    assert_eq!(outer.source(), DIRECTOR6);
    assert_eq!(outer.destination(), RS6);
    assert_eq!(&o[54..], &f[14..], "the inner packet is unchanged");

    // Exactly the MTU fits; one byte more is "too big", with the MTU less 40 to report.
    let mtu = u16::try_from(n - 14).unwrap();
    assert!(tun_encap(&f, &p, &tun_params(mtu), false, &mut out).is_ok());
    assert_eq!(
        tun_encap(&f, &p, &tun_params(mtu - 1), false, &mut out),
        Err(TunError::TooBig { mtu: mtu - 41 })
    );
    assert_eq!(
        TunError::TooBig { mtu: 1 }.drop_reason(),
        DropReason::TooBig
    );

    // An output buffer too small is refused, not overrun.
    assert_eq!(
        tun_encap(&f, &p, &tun_params(1500), false, &mut out[..n - 1]),
        Err(TunError::Rewrite(RewriteError::BufferTooSmall { need: n }))
    );
}

#[test]
fn tunnel_completes_partial_checksums() {
    let mut f = udp(&Spec6::new(CLIENT6, 1, VIP6, 53).payload_len(100));
    make_partial(&mut f);
    let p = parse(&f).unwrap();
    let mut out = vec![0u8; 2048];
    let n = tun_encap(&f, &p, &tun_params(1500), true, &mut out).unwrap();
    let mut inner = out[..14].to_vec();
    inner[12..14].copy_from_slice(&[0x86, 0xdd]);
    inner.extend_from_slice(&out[54..n]);
    assert_checksums6(&inner);
    assert_ne!(
        f[14..],
        inner[14..],
        "the copy was completed, the frame untouched"
    );
}

#[test]
fn tunnel_refuses_mixed_families() {
    let f6 = tcp(&client_tcp());
    let p6 = parse(&f6).unwrap();
    let f4 = tcp(&Spec::new(CLIENT, 1, VIP, 80));
    let p4 = parse(&f4).unwrap();
    let mut out = vec![0u8; 2048];
    let v4 = TunParams {
        outer_src: IpAddr::V4(Ipv4Addr::from(DIRECTOR)),
        outer_dst: IpAddr::V4(Ipv4Addr::from(RS)),
        ..tun_params(1500)
    };
    assert_eq!(
        tun_encap(&f6, &p6, &v4, false, &mut out),
        Err(TunError::MixedFamilies)
    );
    assert_eq!(
        tun_encap(&f4, &p4, &tun_params(1500), false, &mut out),
        Err(TunError::MixedFamilies)
    );
    assert!(TunError::MixedFamilies.to_string().contains("IP families"));
    let half = TunParams {
        outer_dst: IpAddr::V4(Ipv4Addr::from(RS)),
        ..tun_params(1500)
    };
    assert_eq!(
        tun_encap(&f6, &p6, &half, false, &mut out),
        Err(TunError::Rewrite(RewriteError::FamilyMismatch))
    );
}

/// Checks an ICMPv6 error the director built: from `from` to the client, the type and the
/// word, and a quote that is the start of `about`'s IP packet, all within 1280 bytes.
fn check_built_error(out: &[u8], about: &[u8], icmp_type: u8, word: u32) {
    assert!(out.len() - 14 <= ICMPV6_ERROR_MAX_LEN);
    assert_eq!(&out[..6], &MAC_ROUTER);
    assert_eq!(&out[12..14], &[0x86, 0xdd]);
    assert_checksums6(out);
    let ip = etherparse::Ipv6HeaderSlice::from_slice(&out[14..]).unwrap();
    assert_eq!(ip.source(), VIP6);
    assert_eq!(ip.destination(), CLIENT6);
    assert_eq!(ip.next_header().0, 58);
    assert_eq!(ip.hop_limit(), 64);
    assert_eq!(usize::from(ip.payload_length()), out.len() - 54);
    assert_eq!((out[54], out[55]), (icmp_type, 0));
    assert_eq!(&out[58..62], &word.to_be_bytes());
    let quote = &out[62..];
    assert_eq!(quote, &about[14..14 + quote.len()]);
    assert_eq!(
        quote.len(),
        (about.len() - 14).min(ICMPV6_ERROR_MAX_LEN - 48)
    );
    let p = parse(out).unwrap();
    let emb = p.embedded().unwrap();
    let q = parse(about).unwrap();
    assert_eq!(emb.flow, q.flow);
}

#[test]
fn packet_too_big_goes_back_to_the_client() {
    let to_client = MacPair {
        src: MAC_DIRECTOR,
        dst: MAC_ROUTER,
    };
    for n in [10, 1000, 1400] {
        let f = tcp(&client_tcp().payload_len(n));
        let p = parse(&f).unwrap();
        let mut out = vec![0u8; 2048];
        let mtu = match tun_encap(&f, &p, &tun_params(1300), false, &mut out) {
            Err(TunError::TooBig { mtu }) => mtu,
            Ok(_) => continue,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(mtu, 1260);
        let len = icmp_frag_needed(&f, &p, ip6(VIP6), mtu, to_client, &mut out).unwrap();
        check_built_error(&out[..len], &f, ICMPV6_PACKET_TOO_BIG, 1260);
        // Too small an output buffer.
        assert_eq!(
            icmp_frag_needed(&f, &p, ip6(VIP6), mtu, to_client, &mut out[..len - 1]),
            Err(RewriteError::BufferTooSmall { need: len })
        );
    }
}

#[test]
fn time_exceeded_goes_back_to_the_client() {
    let to_client = MacPair {
        src: MAC_DIRECTOR,
        dst: MAC_ROUTER,
    };
    let mut spec = client_tcp().payload_len(1400);
    spec.hop_limit = 1;
    let f = tcp(&spec);
    let p = parse(&f).unwrap();
    let mut g = f.clone();
    assert_eq!(decrement_ttl(&mut g, &p), Err(RewriteError::TtlExpired));
    let mut out = vec![0u8; 2048];
    let len = icmp_time_exceeded(&f, &p, ip6(VIP6), to_client, &mut out).unwrap();
    check_built_error(&out[..len], &f, ICMPV6_TIME_EXCEEDED, 0);
}

#[test]
fn no_error_about_an_error_or_a_non_host() {
    let to_client = MacPair {
        src: MAC_DIRECTOR,
        dst: MAC_ROUTER,
    };
    let mut out = vec![0u8; 2048];
    let (_, e) = icmp_from_client(true, 200);
    let pe = parse(&e).unwrap();
    assert_eq!(
        icmp_time_exceeded(&e, &pe, ip6(VIP6), to_client, &mut out),
        Err(RewriteError::IcmpNotAllowed)
    );
    // From the unspecified address, or to a multicast group (only "packet too big" may).
    let f = tcp(&Spec6::new([0; 16], 1, VIP6, 80));
    let p = parse(&f).unwrap();
    assert_eq!(
        icmp_time_exceeded(&f, &p, ip6(VIP6), to_client, &mut out),
        Err(RewriteError::IcmpNotAllowed)
    );
    let mut group = [0u8; 16];
    group[0] = 0xff;
    group[15] = 1;
    let f = udp(&Spec6::new(CLIENT6, 1, group, 80));
    let p = parse(&f).unwrap();
    assert_eq!(
        icmp_time_exceeded(&f, &p, ip6(VIP6), to_client, &mut out),
        Err(RewriteError::IcmpNotAllowed)
    );
    assert!(icmp_frag_needed(&f, &p, ip6(VIP6), 1280, to_client, &mut out).is_ok());
}

/// An error quoting an ICMPv6 message: its checksum covers the quoted addresses, so the
/// rewrite keeps it valid (ICMPv4's does not cover them).
#[test]
fn quoted_icmpv6_checksum_follows_the_address() {
    let mut echo = Vec::new();
    etherparse::PacketBuilder::ethernet2(MAC_ROUTER, MAC_DIRECTOR)
        .ipv6(RS6, CLIENT6, 64)
        .icmpv6_echo_request(7, 1)
        .write(&mut echo, b"ping")
        .unwrap();
    let mut e = icmp6_error(CLIENT6, RS6, port_unreachable6(), &echo, 1000);
    let pe = parse(&e).unwrap();
    assert_eq!(pe.embedded().unwrap().flow.protocol, L4Proto::Icmpv6);
    nat_icmp_out(&mut e, &pe, ip6(VIP6), 0).unwrap();
    assert_checksums6(&e);
    let q = parse(&e).unwrap();
    let emb = q.embedded().unwrap();
    assert_eq!(emb.flow.dst, ip6(VIP6));
    let quoted = &e[emb.l4..q.end];
    let pseudo = naive_pseudo6(&RS6, &VIP6, 58, quoted.len());
    assert_eq!(naive_sum(pseudo, quoted), 0xffff, "quoted echo checksum");
}
