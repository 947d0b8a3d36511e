//! Each forwarding step on packets built with etherparse: fields as expected afterwards, and
//! every checksum verified by full recomputation (etherparse's, not ours).

mod common;

use core::net::{IpAddr, Ipv4Addr};

use common::*;
use etherparse::{Ipv4Slice, NetSlice, TransportSlice};
use lvs_packet::*;

fn ip(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

const TO_RS: MacPair = MacPair {
    src: MAC_DIRECTOR,
    dst: MAC_RS,
};
const TO_ROUTER: MacPair = MacPair {
    src: MAC_DIRECTOR,
    dst: MAC_ROUTER,
};

#[test]
fn parse_tcp_fields() {
    let mut spec = Spec::new(CLIENT, 40000, VIP, 80);
    spec.ttl = 17;
    spec.tos = 0xb8;
    let f = frame(&spec, L4::Tcp { flags: 0x02 });
    let p = parse(&f).unwrap();
    assert_eq!(p.vlan, None);
    assert_eq!((p.l3, p.l4, p.payload, p.end), (14, 34, 54, f.len()));
    assert_eq!(p.flow.protocol, L4Proto::Tcp);
    assert_eq!(p.flow.src, ip(CLIENT));
    assert_eq!(p.flow.dst, ip(VIP));
    assert_eq!((p.flow.src_port, p.flow.dst_port), (40000, 80));
    assert!(p.tcp_flags.contains(TcpFlags::SYN));
    assert!(!p.tcp_flags.contains(TcpFlags::ACK));
    assert_eq!(p.ttl, 17);
    assert_eq!(p.tos, 0xb8);
    assert!(p.dont_fragment);
    assert_eq!(usize::from(p.total_len), f.len() - 14);
    assert!(p.icmp.is_none());
    assert!(verify_ip_header(&f, &p) && verify_l4(&f, &p));
}

#[test]
fn parse_vlan_udp_with_ethernet_padding() {
    let mut spec = Spec::new(CLIENT, 5353, VIP, 53).payload_len(4);
    spec.vlan = Some(42);
    let mut f = udp(&spec);
    let len = f.len();
    f.extend_from_slice(&[0u8; 12]); // padding up to the 64-byte minimum
    let p = parse(&f).unwrap();
    assert_eq!(p.vlan, Some(42));
    assert_eq!((p.l3, p.l4, p.payload, p.end), (18, 38, 46, len));
    assert_eq!(p.l4_end, p.end);
    assert_eq!(p.flow.protocol, L4Proto::Udp);
}

#[test]
fn nat_in_tcp_rewrites_destination() {
    let f0 = tcp(&Spec::new(CLIENT, 40000, VIP, 80).payload_len(100));
    let mut f = f0.clone();
    let p = parse(&f).unwrap();
    nat_in(&mut f, &p, ip(RS), 8080, false).unwrap();
    set_macs(&mut f, TO_RS).unwrap();
    assert_checksums(&f);
    let q = parse(&f).unwrap();
    assert_eq!(q.flow.dst, ip(RS));
    assert_eq!(q.flow.dst_port, 8080);
    assert_eq!(q.flow.src, ip(CLIENT));
    assert_eq!(q.flow.src_port, 40000);
    assert_eq!(&f[..6], &MAC_RS);
    assert_eq!(&f[6..12], &MAC_DIRECTOR);
    assert_eq!(f[54..], f0[54..], "payload untouched");
}

#[test]
fn nat_out_udp_rewrites_source() {
    let mut f = udp(&Spec::new(RS, 5353, CLIENT, 40001));
    let p = parse(&f).unwrap();
    nat_out(&mut f, &p, ip(VIP), 53, false).unwrap();
    set_macs(&mut f, TO_ROUTER).unwrap();
    assert_checksums(&f);
    let q = parse(&f).unwrap();
    assert_eq!((q.flow.src, q.flow.src_port), (ip(VIP), 53));
    assert_eq!((q.flow.dst, q.flow.dst_port), (ip(CLIENT), 40001));
}

#[test]
fn udp_without_checksum_stays_without() {
    let mut f = udp(&Spec::new(CLIENT, 1000, VIP, 53));
    f[40..42].copy_from_slice(&[0, 0]);
    let p = parse(&f).unwrap();
    nat_in(&mut f, &p, ip(RS), 53, false).unwrap();
    assert_eq!(&f[40..42], &[0, 0]);
    assert_checksums(&f);
}

#[test]
fn nat_round_trip_restores_the_packet() {
    let f0 = tcp(&Spec::new(CLIENT, 40000, VIP, 80));
    let mut f = f0.clone();
    let p = parse(&f).unwrap();
    nat_in(&mut f, &p, ip(RS), 8080, false).unwrap();
    let p = parse(&f).unwrap();
    nat_in(&mut f, &p, ip(VIP), 80, false).unwrap();
    assert_eq!(f, f0);
}

#[test]
fn nat_refuses_wrong_family_and_icmp() {
    let mut f = tcp(&Spec::new(CLIENT, 40000, VIP, 80));
    let p = parse(&f).unwrap();
    let v6 = IpAddr::V6(core::net::Ipv6Addr::LOCALHOST);
    assert_eq!(
        nat_in(&mut f, &p, v6, 80, false),
        Err(RewriteError::FamilyMismatch)
    );
    let about = udp(&Spec::new(VIP, 53, CLIENT, 1000));
    let mut e = icmp_error(CLIENT, VIP, port_unreachable(), &about, 28);
    let pe = parse(&e).unwrap();
    assert_eq!(
        nat_in(&mut e, &pe, ip(RS), 53, false),
        Err(RewriteError::WrongKind)
    );
    assert_eq!(
        nat_icmp_in(&mut f, &p, ip(RS), 80),
        Err(RewriteError::WrongKind)
    );
}

#[test]
fn partial_checksums_are_completed() {
    for l4 in [L4::Tcp { flags: 0x10 }, L4::Udp] {
        let f0 = frame(&Spec::new(CLIENT, 40000, VIP, 80).payload_len(333), l4);
        let mut partial = f0.clone();
        make_partial(&mut partial);
        let p = parse(&partial).unwrap();
        assert!(
            !verify_l4(&partial, &p),
            "a partial checksum does not verify"
        );

        let mut f = partial.clone();
        nat_in(&mut f, &p, ip(RS), 8080, true).unwrap();
        assert_checksums(&f);

        // Without the flag, the incremental update keeps the checksum unfinished.
        let mut f = partial.clone();
        nat_in(&mut f, &p, ip(RS), 8080, false).unwrap();
        assert!(!verify_l4(&f, &parse(&f).unwrap()));

        let mut f = partial.clone();
        dr_rewrite(&mut f, &p, TO_RS, true).unwrap();
        assert_checksums(&f);
        assert_eq!(
            f[12..],
            f0[12..],
            "DR: only MACs and the completed checksum change"
        );

        let mut f = partial.clone();
        nat_out(&mut f, &p, ip(VIP), 80, true).unwrap();
        assert_checksums(&f);

        let mut out = [0u8; 2048];
        let params = TunParams {
            outer_src: ip(DIRECTOR),
            outer_dst: ip(RS),
            macs: TO_RS,
            mtu: 1500,
            ip_id: 7,
        };
        let n = tun_encap(&partial, &p, &params, true, &mut out).unwrap();
        assert_eq!(
            out[34..n],
            f0[14..],
            "inner packet carries the completed checksum"
        );
    }
}

#[test]
fn dr_changes_only_macs() {
    let f0 = tcp(&Spec::new(CLIENT, 40000, VIP, 80));
    let mut f = f0.clone();
    let p = parse(&f).unwrap();
    dr_rewrite(&mut f, &p, TO_RS, false).unwrap();
    assert_eq!(&f[..6], &MAC_RS);
    assert_eq!(&f[6..12], &MAC_DIRECTOR);
    assert_eq!(f[12..], f0[12..]);
}

#[test]
fn vlan_tag_survives_nat() {
    let mut spec = Spec::new(CLIENT, 40000, VIP, 80);
    spec.vlan = Some(7);
    let mut f = tcp(&spec);
    let p = parse(&f).unwrap();
    nat_in(&mut f, &p, ip(RS), 80, false).unwrap();
    set_macs(&mut f, TO_RS).unwrap();
    assert_eq!(&f[12..16], &[0x81, 0x00, 0x00, 0x07]);
    assert_checksums(&f);
    assert_eq!(parse(&f).unwrap().flow.dst, ip(RS));
}

#[test]
fn ttl_decrement_and_expiry() {
    let mut spec = Spec::new(CLIENT, 40000, VIP, 80);
    spec.ttl = 2;
    let mut f = tcp(&spec);
    let p = parse(&f).unwrap();
    decrement_ttl(&mut f, &p).unwrap();
    assert_eq!(f[22], 1);
    assert_checksums(&f);
    let before = f.clone();
    let p = parse(&f).unwrap();
    assert_eq!(decrement_ttl(&mut f, &p), Err(RewriteError::TtlExpired));
    assert_eq!(f, before, "an expired packet is left as it was");
    assert_eq!(
        RewriteError::TtlExpired.drop_reason(),
        DropReason::TtlExpired
    );

    let mut out = [0u8; 700];
    let n = icmp_time_exceeded(&f, &p, ip(VIP), TO_ROUTER, &mut out).unwrap();
    let te = &out[..n];
    assert_checksums(te);
    let q = parse(te).unwrap();
    let icmp = q.icmp.unwrap();
    assert_eq!((icmp.icmp_type, icmp.code), (ICMP_TIME_EXCEEDED, 0));
    assert_eq!(q.flow.dst, ip(CLIENT));
    assert_eq!(q.embedded().unwrap().flow, p.flow);
}

/// The real server answers a NATed UDP packet with "port unreachable"; after `nat_icmp_out`
/// the client gets exactly the error the VIP would have sent about its original packet.
#[test]
fn icmp_error_from_real_server_round_trip() {
    for quote in [28, 1000] {
        for l4 in [L4::Udp, L4::Tcp { flags: 0x18 }] {
            let original = frame(&Spec::new(CLIENT, 40000, VIP, 53).payload_len(64), l4);
            let mut natted = original.clone();
            let p = parse(&natted).unwrap();
            nat_in(&mut natted, &p, ip(RS), 5353, false).unwrap();

            let mut err = icmp_error(RS, CLIENT, port_unreachable(), &natted, quote);
            let pe = parse(&err).unwrap();
            let emb = pe.embedded().unwrap();
            assert_eq!(
                emb.flow,
                parse(&natted).unwrap().flow,
                "quote matches the NATed flow"
            );
            nat_icmp_out(&mut err, &pe, ip(VIP), 53).unwrap();
            assert_checksums(&err);

            let want = icmp_error(VIP, CLIENT, port_unreachable(), &original, quote);
            assert_eq!(err, want, "quote {quote}");
        }
    }
}

/// The client says "fragmentation needed" about a NATed reply; after `nat_icmp_in` the real
/// server gets exactly the error the client would have sent about its original reply.
#[test]
fn icmp_error_from_client_round_trip() {
    for quote in [28, 40, 1000] {
        for l4 in [L4::Udp, L4::Tcp { flags: 0x10 }] {
            let reply = frame(&Spec::new(RS, 8080, CLIENT, 40000).payload_len(1200), l4);
            let mut natted = reply.clone();
            let p = parse(&natted).unwrap();
            nat_out(&mut natted, &p, ip(VIP), 80, false).unwrap();

            let mut err = icmp_error(CLIENT, VIP, frag_needed(1400), &natted, quote);
            let pe = parse(&err).unwrap();
            assert_eq!(pe.embedded().unwrap().flow.reversed().dst, ip(VIP));
            nat_icmp_in(&mut err, &pe, ip(RS), 8080).unwrap();
            assert_checksums(&err);

            let want = icmp_error(CLIENT, RS, frag_needed(1400), &reply, quote);
            assert_eq!(err, want, "quote {quote}");
        }
    }
}

#[test]
fn tun_encapsulation_decodes_back() {
    let mut spec = Spec::new(CLIENT, 40000, VIP, 80).payload_len(500);
    spec.ttl = 33;
    spec.tos = 0x2a;
    for df in [true, false] {
        spec.df = df;
        let f = tcp(&spec);
        let p = parse(&f).unwrap();
        let params = TunParams {
            outer_src: ip(DIRECTOR),
            outer_dst: ip(RS),
            macs: TO_RS,
            mtu: 1500,
            ip_id: 0xbeef,
        };
        let mut out = [0u8; 2048];
        let n = tun_encap(&f, &p, &params, false, &mut out).unwrap();
        assert_eq!(n, f.len() + 20);
        assert_eq!(&out[..6], &MAC_RS);
        assert_eq!(&out[6..12], &MAC_DIRECTOR);
        assert_eq!(&out[12..14], &[0x08, 0x00]);
        let outer = Ipv4Slice::from_slice(&out[14..n]).unwrap();
        let h = outer.header().to_header();
        assert_eq!(h.calc_header_checksum(), h.header_checksum);
        assert_eq!(h.protocol.0, 4);
        assert_eq!((h.source, h.destination), (DIRECTOR, RS));
        assert_eq!(h.time_to_live, 33);
        assert_eq!(h.dont_fragment, df);
        assert_eq!(h.identification, 0xbeef);
        assert_eq!((h.dscp.value() << 2) | h.ecn.value(), 0x2a);
        let inner = outer.payload().payload;
        assert_eq!(inner, &f[14..]);
        let inner = Ipv4Slice::from_slice(inner).unwrap();
        assert_eq!(inner.header().destination(), VIP);
        // The decapsulated packet, framed again, is the original with valid checksums.
        let mut again = f[..14].to_vec();
        again.extend_from_slice(&out[34..n]);
        assert_checksums(&again);
    }
}

#[test]
fn tun_too_big_and_frag_needed() {
    let spec = Spec::new(CLIENT, 40000, VIP, 80).payload_len(1460);
    let f = tcp(&spec);
    assert_eq!(f.len(), 14 + 1500);
    let p = parse(&f).unwrap();
    let params = TunParams {
        outer_src: ip(DIRECTOR),
        outer_dst: ip(RS),
        macs: TO_RS,
        mtu: 1500,
        ip_id: 1,
    };
    let mut out = [0u8; 2048];
    let err = tun_encap(&f, &p, &params, false, &mut out).unwrap_err();
    assert_eq!(err, TunError::TooBig { mtu: 1480 });
    assert_eq!(err.drop_reason(), DropReason::TooBig);
    let TunError::TooBig { mtu } = err else {
        unreachable!()
    };

    let n = icmp_frag_needed(&f, &p, ip(VIP), mtu, TO_ROUTER, &mut out).unwrap();
    assert_eq!(n, 14 + ICMP_ERROR_MAX_LEN, "quote cut at 576 bytes");
    let icmp = &out[..n];
    let sp = assert_checksums(icmp);
    let Some(NetSlice::Ipv4(outer)) = &sp.net else {
        panic!()
    };
    assert_eq!(outer.header().source(), VIP);
    assert_eq!(outer.header().destination(), CLIENT);
    assert_eq!(outer.header().protocol().0, 1);
    let Some(TransportSlice::Icmpv4(i)) = &sp.transport else {
        panic!()
    };
    assert_eq!((i.type_u8(), i.code_u8()), (3, 4));
    assert_eq!(i.bytes5to8(), [0, 0, 0x05, 0xc8], "next-hop MTU 1480");
    assert_eq!(i.payload(), &f[14..14 + 548], "quotes the original packet");
    let q = parse(icmp).unwrap();
    assert_eq!(q.embedded().unwrap().flow, p.flow);

    // A smaller packet fits and needs no ICMP.
    let small = tcp(&Spec::new(CLIENT, 40000, VIP, 80).payload_len(1440));
    let ps = parse(&small).unwrap();
    assert_eq!(tun_encap(&small, &ps, &params, false, &mut out), Ok(1514));

    // Without DF: dropped and counted (not fragmented yet).
    let mut spec = spec;
    spec.df = false;
    let f = tcp(&spec);
    let p = parse(&f).unwrap();
    let err = tun_encap(&f, &p, &params, false, &mut out).unwrap_err();
    assert_eq!(err, TunError::NeedsFragmentation);
    assert_eq!(err.drop_reason(), DropReason::NeedsFragmentation);

    // Output buffer too small.
    assert_eq!(
        tun_encap(&small, &ps, &params, false, &mut out[..100]),
        Err(TunError::Rewrite(RewriteError::BufferTooSmall {
            need: 1514
        }))
    );
}

#[test]
fn short_packet_frag_needed_quotes_all_of_it() {
    let f = udp(&Spec::new(CLIENT, 1, VIP, 53).payload_len(10));
    let p = parse(&f).unwrap();
    let mut out = [0u8; 100];
    let n = icmp_frag_needed(&f, &p, ip(VIP), 1000, TO_ROUTER, &mut out).unwrap();
    assert_eq!(n, 14 + 20 + 8 + 38);
    assert_checksums(&out[..n]);
    assert_eq!(
        icmp_frag_needed(&f, &p, ip(VIP), 1000, TO_ROUTER, &mut out[..60]),
        Err(RewriteError::BufferTooSmall { need: n })
    );
}

#[test]
fn no_icmp_error_about_an_icmp_error_or_a_broadcast() {
    let about = udp(&Spec::new(VIP, 53, CLIENT, 1000));
    let e = icmp_error(CLIENT, VIP, port_unreachable(), &about, 28);
    let pe = parse(&e).unwrap();
    let mut out = [0u8; 700];
    assert_eq!(
        icmp_frag_needed(&e, &pe, ip(VIP), 1000, TO_ROUTER, &mut out),
        Err(RewriteError::IcmpNotAllowed)
    );
    let b = udp(&Spec::new([0, 0, 0, 0], 68, [255, 255, 255, 255], 67));
    let pb = parse(&b).unwrap();
    assert_eq!(
        icmp_time_exceeded(&b, &pb, ip(VIP), TO_ROUTER, &mut out),
        Err(RewriteError::IcmpNotAllowed)
    );
}

#[test]
fn stale_packet_is_refused_not_panicked() {
    let f = tcp(&Spec::new(CLIENT, 40000, VIP, 80));
    let p = parse(&f).unwrap();
    let mut short = f[..40].to_vec();
    assert_eq!(
        nat_in(&mut short, &p, ip(RS), 1, false),
        Err(RewriteError::FrameMismatch)
    );
    assert_eq!(
        decrement_ttl(&mut short, &p),
        Err(RewriteError::FrameMismatch)
    );
    assert_eq!(
        dr_rewrite(&mut short, &p, TO_RS, true),
        Err(RewriteError::FrameMismatch)
    );
    assert_eq!(
        RewriteError::FrameMismatch.drop_reason(),
        DropReason::RewriteFailed
    );
    assert_eq!(
        set_macs(&mut [0u8; 11], TO_RS),
        Err(RewriteError::FrameMismatch)
    );
}
