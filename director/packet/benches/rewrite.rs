//! Nanoseconds per packet on the director's fast path: parse plus the NAT or DR rewrite of a
//! 64-byte UDP frame and a 1514-byte TCP frame (1500-byte IP packet), in place; the same over
//! IPv6 (an 84-byte UDP frame, the smallest with the same payload, and a 1514-byte TCP frame).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use etherparse::PacketBuilder;
use lvs_packet::{MacPair, TunParams, dr_rewrite, nat_in, parse, set_macs, tun_encap};

const CLIENT: [u8; 4] = [198, 51, 100, 7];
const VIP: [u8; 4] = [192, 0, 2, 10];
const CLIENT6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7,
];
const VIP6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];
const MACS: MacPair = MacPair {
    src: [2, 0, 0, 0, 0, 2],
    dst: [2, 0, 0, 0, 0, 3],
};

fn udp_64() -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(CLIENT, VIP, 64)
        .udp(40000, 53)
        .write(&mut f, &[0x5a; 22])
        .unwrap();
    assert_eq!(f.len(), 64);
    f
}

fn tcp_1514() -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(CLIENT, VIP, 64)
        .tcp(40000, 80, 1, 29200)
        .ack(1)
        .write(&mut f, &[0x5a; 1460])
        .unwrap();
    assert_eq!(f.len(), 1514);
    f
}

fn udp6_84() -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv6(CLIENT6, VIP6, 64)
        .udp(40000, 53)
        .write(&mut f, &[0x5a; 22])
        .unwrap();
    assert_eq!(f.len(), 84);
    f
}

fn tcp6_1514() -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv6(CLIENT6, VIP6, 64)
        .tcp(40000, 80, 1, 29200)
        .ack(1)
        .write(&mut f, &[0x5a; 1440])
        .unwrap();
    assert_eq!(f.len(), 1514);
    f
}

fn bench(c: &mut Criterion) {
    // Two real servers in turn, so every rewrite really changes the frame.
    let rs4 = [
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 21)),
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 22)),
    ];
    let rs6 = [
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x21)),
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x22)),
    ];
    let director4 = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let director6 = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1));
    let mut g = c.benchmark_group("packet");
    g.throughput(Throughput::Elements(1));
    for (name, frame, rs, director) in [
        ("udp64", udp_64(), rs4, director4),
        ("tcp1514", tcp_1514(), rs4, director4),
        ("udp6_84", udp6_84(), rs6, director6),
        ("tcp6_1514", tcp6_1514(), rs6, director6),
    ] {
        let mut f = frame.clone();
        let mut i = 0usize;
        g.bench_function(format!("parse+nat_in/{name}"), |b| {
            b.iter(|| {
                i ^= 1;
                let pkt = parse(black_box(&f)).unwrap();
                nat_in(&mut f, &pkt, rs[i], 8080, false).unwrap();
                set_macs(&mut f, MACS).unwrap();
                black_box(&f);
            })
        });
        let mut f = frame.clone();
        g.bench_function(format!("parse+nat_in_csum_partial/{name}"), |b| {
            b.iter(|| {
                i ^= 1;
                let pkt = parse(black_box(&f)).unwrap();
                nat_in(&mut f, &pkt, rs[i], 8080, true).unwrap();
                set_macs(&mut f, MACS).unwrap();
                black_box(&f);
            })
        });
        let mut f = frame.clone();
        g.bench_function(format!("parse+dr/{name}"), |b| {
            b.iter(|| {
                let pkt = parse(black_box(&f)).unwrap();
                dr_rewrite(&mut f, &pkt, MACS, false).unwrap();
                black_box(&f);
            })
        });
        let mut out = vec![0u8; 2048];
        let params = TunParams {
            outer_src: director,
            outer_dst: rs[0],
            macs: MACS,
            mtu: 1600,
            ip_id: 1,
        };
        g.bench_function(format!("parse+tun_encap/{name}"), |b| {
            b.iter(|| {
                let pkt = parse(black_box(&frame)).unwrap();
                black_box(tun_encap(&frame, &pkt, &params, false, &mut out).unwrap());
            })
        });
        g.bench_function(format!("parse/{name}"), |b| {
            b.iter(|| black_box(parse(black_box(&frame)).unwrap()))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
