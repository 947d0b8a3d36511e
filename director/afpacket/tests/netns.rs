//! Real packets through real sockets: two network namespaces and a veth pair per test.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv6Addr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::{
    IP_A, IP_B, MAC_A, MAC_B, Testbed, collect, icmp_error, small_ring, small_ring_of, tcp_frame,
    udp_dport, udp_frame,
};
use lvs_afpacket::{
    FanoutConfig, Interface, RingVersion, RxBatch, RxConfig, RxQueue, RxRing, TxBatch, TxConfig,
    TxQueue, TxSocket, fanout_hash, open_fanout,
};

/// Both ring versions, for the tests that must hold for each.
const VERSIONS: [RingVersion; 2] = [RingVersion::V2, RingVersion::V3];

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn udp_from_peer_stack_arrives_whole_with_csum_not_ready() {
    if !common::root_or_skip("udp_from_peer_stack_arrives_whole_with_csum_not_ready") {
        return;
    }
    let bed = Testbed::new();
    bed.a.exec(&["ethtool", "-K", "va", "tx", "on"]);
    let mut rx = bed
        .b
        .run(|| RxRing::open(&Interface::by_name("vb").unwrap(), &small_ring()).unwrap());
    let sock = bed.a.run(|| UdpSocket::bind("10.77.0.1:0").unwrap());
    let payloads: Vec<Vec<u8>> = (0..5u8)
        .map(|i| vec![i; 100 + usize::from(i) * 50])
        .collect();
    for p in &payloads {
        sock.send_to(p, "10.77.0.2:5001").unwrap();
    }
    let got = collect(&mut rx, payloads.len(), WAIT, |f| udp_dport(f) == 5001);
    assert_eq!(got.len(), payloads.len());
    for ((data, meta), payload) in got.iter().zip(&payloads) {
        assert_eq!(data.len(), 14 + 20 + 8 + payload.len());
        assert_eq!(meta.len as usize, data.len());
        assert_eq!(meta.wire_len, meta.len);
        assert!(!meta.truncated());
        assert_eq!(&data[0..6], &MAC_B);
        assert_eq!(&data[6..12], &MAC_A);
        assert_eq!(&data[42..], &payload[..]);
        assert!(
            meta.status.csum_not_ready(),
            "status {:#x}",
            meta.status.raw()
        );
        assert_eq!(meta.vlan, None);
    }
}

#[test]
fn raw_frames_arrive_byte_for_byte() {
    if !common::root_or_skip("raw_frames_arrive_byte_for_byte") {
        return;
    }
    for version in VERSIONS {
        raw_frames_arrive_byte_for_byte_with(version);
    }
}

fn raw_frames_arrive_byte_for_byte_with(version: RingVersion) {
    let bed = Testbed::new();
    let mut rx = bed
        .b
        .run(|| RxRing::open(&Interface::by_name("vb").unwrap(), &small_ring_of(version)).unwrap());
    assert_eq!(rx.version(), version);
    let (mut tx, va) = bed.a.run(|| {
        (
            TxSocket::open(&TxConfig::default()).unwrap(),
            Interface::by_name("va").unwrap(),
        )
    });
    let frames: Vec<Vec<u8>> = (0..10u16)
        .map(|i| {
            udp_frame(
                MAC_A,
                MAC_B,
                IP_A,
                IP_B,
                4000 + i,
                5002,
                &[u8::try_from(i).unwrap(); 64],
            )
        })
        .collect();
    let mut batch = tx.batch();
    for f in &frames {
        batch.push(va.index(), f).unwrap();
    }
    let done = batch.flush().unwrap();
    assert_eq!((done.sent, done.dropped), (10, 0));
    drop(batch);
    let got = collect(&mut rx, frames.len(), WAIT, |f| udp_dport(f) == 5002);
    let got: Vec<Vec<u8>> = got.into_iter().map(|(d, _)| d).collect();
    assert_eq!(got, frames, "{version:?}");
}

#[test]
fn sendmmsg_batch_reaches_a_plain_socket_and_refusals_are_counted() {
    if !common::root_or_skip("sendmmsg_batch_reaches_a_plain_socket_and_refusals_are_counted") {
        return;
    }
    let bed = Testbed::new();
    let sock = bed.b.run(|| UdpSocket::bind("10.77.0.2:6000").unwrap());
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let (mut tx, va) = bed.a.run(|| {
        (
            TxSocket::open(&TxConfig::default()).unwrap(),
            Interface::by_name("va").unwrap(),
        )
    });
    const N: u32 = 150; // more than one batch of 64: push flushes when full
    let frames: Vec<Vec<u8>> = (0..N)
        .map(|i| udp_frame(MAC_A, MAC_B, IP_A, IP_B, 7000, 6000, &i.to_be_bytes()))
        .collect();
    let mut batch = tx.batch();
    for (i, f) in frames.iter().enumerate() {
        batch.push(va.index(), f).unwrap();
        if i == 10 {
            // A message the kernel refuses (no such interface) in the middle of a batch:
            // counted and skipped, the rest still goes out.
            batch.push(999_999, f).unwrap();
        }
    }
    batch.flush().unwrap();
    drop(batch);
    let stats = tx.stats();
    assert_eq!(stats.sent, u64::from(N));
    assert_eq!(stats.dropped_error, 1);
    assert_eq!(stats.last_errno, libc::ENXIO);
    assert!(stats.syscalls >= 3 && stats.syscalls <= 5, "{stats:?}");
    let mut seen = HashSet::new();
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 64];
    while seen.len() < N as usize && Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            assert_eq!(n, 4);
            seen.insert(u32::from_be_bytes(buf[..4].try_into().unwrap()));
        }
    }
    assert_eq!(seen.len(), N as usize);
}

/// A worker's inner loop written against the traits only: rewrite each matching frame in
/// place and send it straight from the receive ring out of `out_ifindex`.
fn reflect<R: RxQueue, T: TxQueue>(rx: &mut R, tx: &mut T, out_ifindex: u32, marker: u16) -> usize {
    let mut n = 0;
    while let Some(mut block) = rx.next_batch() {
        let mut out = tx.batch();
        for frame in block.frames() {
            let data = frame.into_data();
            if udp_dport(data) != marker {
                continue;
            }
            // Swap the MAC addresses and mark the payload: no copy, in the ring.
            let (dst, src) = data.split_at_mut(6);
            dst.swap_with_slice(&mut src[..6]);
            data[42] = b'R';
            out.push(out_ifindex, data).unwrap();
            n += 1;
        }
        out.flush().unwrap();
    }
    n
}

#[test]
fn zero_copy_forward_from_ring_to_tx_and_own_output_is_not_seen() {
    if !common::root_or_skip("zero_copy_forward_from_ring_to_tx_and_own_output_is_not_seen") {
        return;
    }
    for version in VERSIONS {
        zero_copy_forward_with(version);
    }
}

fn zero_copy_forward_with(version: RingVersion) {
    let bed = Testbed::new();
    let (mut rx_b, mut tx_b, vb) = bed.b.run(|| {
        let vb = Interface::by_name("vb").unwrap();
        (
            RxRing::open(&vb, &small_ring_of(version)).unwrap(),
            TxSocket::open(&TxConfig::default()).unwrap(),
            vb,
        )
    });
    let (mut rx_a, mut tx_a, va) = bed.a.run(|| {
        let va = Interface::by_name("va").unwrap();
        (
            RxRing::open(&va, &small_ring()).unwrap(),
            TxSocket::open(&TxConfig::default()).unwrap(),
            va,
        )
    });
    const N: usize = 20;
    let frames: Vec<Vec<u8>> = (0..N)
        .map(|i| {
            udp_frame(
                MAC_A,
                MAC_B,
                IP_A,
                IP_B,
                7100,
                5003,
                &[u8::try_from(i).unwrap(); 32],
            )
        })
        .collect();
    let mut batch = tx_a.batch();
    for f in &frames {
        batch.push(va.index(), f).unwrap();
    }
    drop(batch); // flushes
    let mut reflected = 0;
    let deadline = Instant::now() + WAIT;
    while reflected < N && Instant::now() < deadline {
        rx_b.wait(Some(Duration::from_millis(20))).unwrap();
        reflected += reflect(&mut rx_b, &mut tx_b, vb.index(), 5003);
    }
    assert_eq!(reflected, N);
    let back = collect(&mut rx_a, N, WAIT, |f| udp_dport(f) == 5003);
    assert_eq!(
        back.len(),
        N,
        "A sees only the reflected frames, not its own"
    );
    for ((data, _), sent) in back.iter().zip(&frames) {
        assert_eq!(&data[0..6], &MAC_A);
        assert_eq!(&data[6..12], &MAC_B);
        assert_eq!(data[42], b'R');
        assert_eq!(&data[43..], &sent[43..]);
    }
    // B's ring must not show B's own transmissions (PACKET_IGNORE_OUTGOING).
    let echo = collect(&mut rx_b, 1, Duration::from_millis(200), |f| {
        udp_dport(f) == 5003
    });
    assert!(
        echo.is_empty(),
        "{version:?}: B saw {} of its own frames",
        echo.len()
    );
}

#[test]
fn fanout_keeps_nat_request_and_reply_together_and_spreads_clients() {
    if !common::root_or_skip("fanout_keeps_nat_request_and_reply_together_and_spreads_clients") {
        return;
    }
    for version in VERSIONS {
        fanout_keeps_nat_flows_together_with(version);
    }
}

fn fanout_keeps_nat_flows_together_with(version: RingVersion) {
    let bed = Testbed::new();
    let vip = [10, 77, 0, 100];
    let rs = [10, 77, 0, 50];
    let vips = vec![IpAddr::from(vip)];
    let (mut rings, control, mut tx, va) = fanout_bed_of(&bed, 2, &vips, version);
    assert!(rings.iter().all(|r| r.version() == version));
    assert_eq!(rings.len(), 2);
    assert_eq!(control.members(), 2);

    // For each client port: the request, its NAT reply, and an ICMP error about the
    // director's reply (VIP -> client) as a router would send it.
    let ports: Vec<u16> = (20000..20200).collect();
    let mut sent = Vec::new();
    for &port in &ports {
        let request = tcp_frame(IP_A, vip, port, 80);
        let reply = tcp_frame(rs, IP_A, 8080, port);
        let to_client = tcp_frame(vip, IP_A, 80, port);
        let icmp = icmp_error([10, 77, 0, 254], vip, 3, 4, &to_client);
        sent.extend([request, reply, icmp]);
    }
    // Non-IP frames (a local experimental ethertype).
    for i in 0..10u8 {
        let mut f = vec![0u8; 60];
        f[..6].copy_from_slice(&MAC_B);
        f[6..12].copy_from_slice(&MAC_A);
        f[12..14].copy_from_slice(&[0x88, 0xb5]);
        f[14] = i;
        sent.push(f);
    }
    let mut batch = tx.batch();
    for f in &sent {
        batch.push(va.index(), f).unwrap();
    }
    drop(batch);
    assert_eq!(tx.stats().sent, sent.len() as u64);

    let member_of = receive_by_member(&mut rings, &sent, WAIT);
    assert_eq!(
        member_of.len(),
        sent.len(),
        "every frame arrived exactly once"
    );
    let mut per_member = [0usize; 2];
    for (i, &port) in ports.iter().enumerate() {
        let (req, reply, icmp) = (&sent[3 * i], &sent[3 * i + 1], &sent[3 * i + 2]);
        let m = member_of[req];
        assert_eq!(
            member_of[reply], m,
            "port {port}: request and reply on different members"
        );
        assert_eq!(
            member_of[icmp], m,
            "port {port}: ICMP error on another member"
        );
        assert_eq!(
            m,
            fanout_hash(req, &vips) as usize % 2,
            "kernel and reference disagree"
        );
        per_member[m] += 1;
    }
    assert!(
        per_member.iter().all(|&n| n >= 40),
        "client ports not spread: {per_member:?}"
    );
    for f in &sent[3 * ports.len()..] {
        assert_eq!(member_of[f], 0, "non-IP frame not on member 0");
    }

    // Replace the program: with no VIPs, a request hashes by its destination (VIP, 80), so
    // every request now lands on one member, the one the reference predicts.
    control.set_vips(&[]).unwrap();
    let requests: Vec<Vec<u8>> = (30000..30050)
        .map(|p| tcp_frame(IP_A, vip, p, 80))
        .collect();
    let mut batch = tx.batch();
    for f in &requests {
        batch.push(va.index(), f).unwrap();
    }
    drop(batch);
    let member_of = receive_by_member(&mut rings, &requests, WAIT);
    let expect = fanout_hash(&requests[0], &[]) as usize % 2;
    assert_eq!(member_of.len(), requests.len());
    assert!(
        member_of.values().all(|&m| m == expect),
        "after set_vips([]) all requests go to member {expect}"
    );
}

/// A fanout group of `members` on `vb` steering for `vips`, and a sender on `va`.
fn fanout_bed(
    bed: &Testbed,
    members: usize,
    vips: &[IpAddr],
) -> (
    Vec<RxRing>,
    lvs_afpacket::FanoutControl,
    TxSocket,
    Interface,
) {
    fanout_bed_of(bed, members, vips, RingVersion::default())
}

/// [`fanout_bed`] with rings of `version`.
fn fanout_bed_of(
    bed: &Testbed,
    members: usize,
    vips: &[IpAddr],
    version: RingVersion,
) -> (
    Vec<RxRing>,
    lvs_afpacket::FanoutControl,
    TxSocket,
    Interface,
) {
    let (rings, control) = bed.b.run(|| {
        let fanout = FanoutConfig {
            members,
            vips: vips.to_vec(),
            group_id: None,
        };
        let cfg = small_ring_of(version);
        open_fanout(&Interface::by_name("vb").unwrap(), &cfg, &fanout).unwrap()
    });
    let (tx, va) = bed.a.run(|| {
        (
            TxSocket::open(&TxConfig::default()).unwrap(),
            Interface::by_name("va").unwrap(),
        )
    });
    (rings, control, tx, va)
}

/// An Ethernet + IPv6 frame: the fixed header, extension headers of the given types (8
/// bytes each, a fragment header whole and first), then `l4` as protocol `next`.
fn ip6_frame(src: Ipv6Addr, dst: Ipv6Addr, exts: &[u8], next: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = MAC_B.to_vec();
    f.extend(MAC_A);
    f.extend([0x86, 0xdd, 0x60, 0, 0, 0]);
    let plen = u16::try_from(exts.len() * 8 + l4.len()).unwrap();
    f.extend(plen.to_be_bytes());
    f.push(exts.first().copied().unwrap_or(next));
    f.push(64);
    f.extend(src.octets());
    f.extend(dst.octets());
    for (i, _) in exts.iter().enumerate() {
        let after = exts.get(i + 1).copied().unwrap_or(next);
        // Hop-by-hop / destination options: PadN filling the 6 bytes; fragment: offset 0,
        // no more fragments (an "atomic fragment", RFC 6946), identification 1.
        f.extend([after, 0, 1, 4, 0, 0, 0, 0]);
        if exts[i] == 44 {
            let at = f.len() - 8;
            f[at + 1..at + 8].copy_from_slice(&[0, 0, 0, 0, 0, 0, 1]);
        }
    }
    f.extend(l4);
    f
}

/// The Internet checksum over the IPv6 pseudo-header and `l4`.
fn l4_checksum6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, l4: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for c in bytes.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&u32::try_from(l4.len()).unwrap().to_be_bytes());
    add(&[0, 0, 0, next]);
    add(l4);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !u16::try_from(sum).unwrap()
}

/// A TCP SYN over IPv6 with a valid checksum, after the given extension headers.
fn tcp6_frame(src: Ipv6Addr, dst: Ipv6Addr, exts: &[u8], sport: u16, dport: u16) -> Vec<u8> {
    let mut tcp = sport.to_be_bytes().to_vec();
    tcp.extend(dport.to_be_bytes());
    tcp.extend([0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0, 0, 0, 0, 0]);
    let sum = l4_checksum6(src, dst, 6, &tcp);
    tcp[16..18].copy_from_slice(&sum.to_be_bytes());
    ip6_frame(src, dst, exts, 6, &tcp)
}

/// An ICMPv6 error from `src` to `dst` quoting the IPv6 packet of `quoted` (a whole frame).
fn icmp6_error(src: Ipv6Addr, dst: Ipv6Addr, kind: u8, quoted: &[u8]) -> Vec<u8> {
    let mut m = vec![kind, 0, 0, 0, 0, 0, 5, 0xdc];
    m.extend(&quoted[14..]);
    let sum = l4_checksum6(src, dst, 58, &m);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    ip6_frame(src, dst, &[], 58, &m)
}

#[test]
fn fanout_keeps_ipv6_nat_request_and_reply_together_and_spreads_clients() {
    if !common::root_or_skip("fanout_keeps_ipv6_nat_request_and_reply_together_and_spreads_clients")
    {
        return;
    }
    let bed = Testbed::new();
    let v6 = |s: &str| s.parse::<Ipv6Addr>().unwrap();
    let (client, vip, rs, router) = (
        v6("2001:db8:c::1"),
        v6("2001:db8:f::100"),
        v6("2001:db8:1::5"),
        v6("2001:db8:ff::1"),
    );
    let vip4 = [10, 77, 0, 100];
    // Both families in one program; a second IPv6 VIP differing in its last word only.
    let vips = vec![
        IpAddr::from(vip4),
        vip.into(),
        v6("2001:db8:f::1:100").into(),
    ];
    let (mut rings, _control, mut tx, va) = fanout_bed(&bed, 2, &vips);

    // Per client port: the request (every other one with a hop-by-hop and a destination
    // options header), its NAT reply, a Packet Too Big about the director's reply to the
    // client, a Destination Unreachable from the real server about the forwarded request, and
    // the request again as a first (here: only) fragment.
    let ports: Vec<u16> = (20000..20160).collect();
    let mut sent = Vec::new();
    for &port in &ports {
        let exts: &[u8] = if port % 2 == 0 { &[0, 60] } else { &[] };
        let request = tcp6_frame(client, vip, exts, port, 80);
        let reply = tcp6_frame(rs, client, &[], 8080, port);
        let to_client = tcp6_frame(vip, client, &[], 80, port);
        let too_big = icmp6_error(router, vip, 2, &to_client);
        let to_rs = tcp6_frame(client, rs, &[60], port, 8080);
        let unreachable = icmp6_error(rs, client, 1, &to_rs);
        let fragment = tcp6_frame(client, vip, &[44], port, 80);
        sent.extend([request, reply, too_big, unreachable, fragment]);
    }
    // Later fragments (offset 1480): no ports to read, so by the client's address alone.
    let fragments: Vec<Vec<u8>> = (0..20u16)
        .flat_map(|i| {
            [
                tcp6_frame(client, vip, &[44], 30000 + i, 80),
                tcp6_frame(rs, client, &[44], 8080, 30000 + i),
            ]
        })
        .map(|mut f| {
            f[14 + 40 + 2..14 + 40 + 4].copy_from_slice(&1480u16.to_be_bytes());
            f
        })
        .collect();
    let all: Vec<Vec<u8>> = sent.iter().chain(&fragments).cloned().collect();
    let mut batch = tx.batch();
    for f in &all {
        batch.push(va.index(), f).unwrap();
    }
    drop(batch);
    assert_eq!(tx.stats().sent, all.len() as u64);

    let member_of = receive_by_member(&mut rings, &all, WAIT);
    assert_eq!(
        member_of.len(),
        all.len(),
        "every frame arrived exactly once"
    );
    let mut per_member = [0usize; 2];
    for (i, &port) in ports.iter().enumerate() {
        let flow = &sent[5 * i..5 * i + 5];
        let m = member_of[&flow[0]];
        let what = ["reply", "packet too big", "unreachable", "first fragment"];
        for (what, f) in what.iter().zip(&flow[1..]) {
            assert_eq!(member_of[f], m, "port {port}: {what} on another member");
        }
        assert_eq!(
            m,
            fanout_hash(&flow[0], &vips) as usize % 2,
            "kernel and reference disagree"
        );
        per_member[m] += 1;
    }
    assert!(
        per_member.iter().all(|&n| n >= 30),
        "client ports not spread: {per_member:?}"
    );
    let fragment_member = member_of[&fragments[0]];
    assert!(
        fragments.iter().all(|f| member_of[f] == fragment_member),
        "later fragments of one client spread over members"
    );
    assert_eq!(
        fragment_member,
        lvs_afpacket::client_hash(client.into(), 0) as usize % 2
    );
}

/// Receives `frames` on the group's rings; maps each frame's bytes to the member that got it.
fn receive_by_member(
    rings: &mut [RxRing],
    frames: &[Vec<u8>],
    timeout: Duration,
) -> HashMap<Vec<u8>, usize> {
    let wanted: HashSet<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let mut got = HashMap::new();
    let deadline = Instant::now() + timeout;
    while got.len() < wanted.len() && Instant::now() < deadline {
        for (m, ring) in rings.iter_mut().enumerate() {
            while let Some(mut block) = ring.next_block() {
                for frame in block.frames() {
                    // veth does not pad short frames, a NIC would (to 60 bytes).
                    let data = frame.data();
                    let key = wanted.get(data).or_else(|| {
                        wanted
                            .iter()
                            .find(|w| data.len() == 60 && data.starts_with(w))
                    });
                    if let Some(key) = key {
                        assert!(got.insert(key.to_vec(), m).is_none(), "frame seen twice");
                    }
                }
            }
        }
        rings[0].wait(Some(Duration::from_millis(5))).unwrap();
    }
    got
}

#[test]
fn ring_statistics_count_packets_drops_and_freezes() {
    if !common::root_or_skip("ring_statistics_count_packets_drops_and_freezes") {
        return;
    }
    for version in VERSIONS {
        ring_statistics_with(version);
    }
}

fn ring_statistics_with(version: RingVersion) {
    let bed = Testbed::new();
    // Two one-page blocks: a few dozen frames (TPACKET_V3) or four (V2) fill the ring.
    let cfg = RxConfig {
        version,
        block_size: 4096,
        block_count: 2,
        frame_size: 2048,
        ..Default::default()
    };
    let mut rx = bed
        .b
        .run(|| RxRing::open(&Interface::by_name("vb").unwrap(), &cfg).unwrap());
    let (mut tx, va) = bed.a.run(|| {
        (
            TxSocket::open(&TxConfig::default()).unwrap(),
            Interface::by_name("va").unwrap(),
        )
    });
    const N: usize = 300;
    let frames: Vec<Vec<u8>> = (0..N)
        .map(|_| udp_frame(MAC_A, MAC_B, IP_A, IP_B, 7200, 5004, &[7; 100]))
        .collect();
    let mut batch = tx.batch();
    for f in &frames {
        batch.push(va.index(), f).unwrap();
    }
    drop(batch);
    assert_eq!(tx.stats().sent, N as u64);
    // Wait (polling) until every frame has reached the socket, without reading the ring.
    let deadline = Instant::now() + WAIT;
    let mut stats = rx.stats().unwrap();
    while stats.packets < N as u64 && Instant::now() < deadline {
        rx.wait(Some(Duration::from_millis(10))).unwrap();
        stats = rx.stats().unwrap();
    }
    assert_eq!(stats.packets, N as u64, "{version:?} {stats:?}");
    assert!(stats.drops > 0, "{version:?} {stats:?}");
    // Only TPACKET_V3 freezes a ring (every block held by user space); V2 just drops.
    assert_eq!(
        stats.freezes > 0,
        version == RingVersion::V3,
        "{version:?} {stats:?}"
    );
    let kept = collect(&mut rx, N, Duration::from_millis(300), |f| {
        udp_dport(f) == 5004
    });
    assert_eq!(kept.len() as u64, stats.packets - stats.drops, "{stats:?}");
    assert!(kept.iter().any(|(_, meta)| meta.status.losing()) || stats.drops > 0);

    // The ring works again once drained (the V2 ring has four slots).
    let again = if version == RingVersion::V2 { 4 } else { 5 };
    let mut batch = tx.batch();
    for f in frames.iter().take(again) {
        batch.push(va.index(), f).unwrap();
    }
    drop(batch);
    assert_eq!(
        collect(&mut rx, again, WAIT, |f| udp_dport(f) == 5004).len(),
        again,
        "{version:?}"
    );
}

/// A TPACKET_V2 ring sized with `fit_mtu` for a jumbo MTU receives a jumbo frame whole.
#[test]
fn jumbo_frames_fit_a_v2_ring_sized_for_the_mtu() {
    if !common::root_or_skip("jumbo_frames_fit_a_v2_ring_sized_for_the_mtu") {
        return;
    }
    let bed = Testbed::new();
    bed.a.exec(&["ip", "link", "set", "va", "mtu", "9000"]);
    bed.b.exec(&["ip", "link", "set", "vb", "mtu", "9000"]);
    let cfg = small_ring_of(RingVersion::V2).fit_mtu(9000);
    let mut rx = bed
        .b
        .run(|| RxRing::open(&Interface::by_name("vb").unwrap(), &cfg).unwrap());
    let (mut tx, va) = bed.a.run(|| {
        (
            TxSocket::open(&TxConfig::default()).unwrap(),
            Interface::by_name("va").unwrap(),
        )
    });
    let frame = udp_frame(MAC_A, MAC_B, IP_A, IP_B, 7600, 5008, &[5; 8000]);
    let mut batch = tx.batch();
    batch.push(va.index(), &frame).unwrap();
    drop(batch);
    let got = collect(&mut rx, 1, WAIT, |f| udp_dport(f) == 5008);
    assert_eq!(got.len(), 1);
    assert!(!got[0].1.truncated(), "{:?}", got[0].1);
    assert_eq!(got[0].0, frame);
}

/// TPACKET_V2 hands each frame over as soon as it arrives; a TPACKET_V3 ring beside it,
/// with a retire timer of 2 s, holds the same frame back until its block is retired.
#[test]
fn frame_ring_hands_each_frame_over_at_once() {
    if !common::root_or_skip("frame_ring_hands_each_frame_over_at_once") {
        return;
    }
    let bed = Testbed::new();
    let slow = RxConfig {
        retire_timeout_ms: 2000,
        ..small_ring_of(RingVersion::V3)
    };
    let opened = Instant::now();
    let (mut v2, mut v3) = bed.b.run(|| {
        let vb = Interface::by_name("vb").unwrap();
        (
            RxRing::open(&vb, &small_ring_of(RingVersion::V2)).unwrap(),
            RxRing::open(&vb, &slow).unwrap(),
        )
    });
    let (mut tx, va) = bed.a.run(|| {
        (
            TxSocket::open(&TxConfig::default()).unwrap(),
            Interface::by_name("va").unwrap(),
        )
    });
    let frame = udp_frame(MAC_A, MAC_B, IP_A, IP_B, 7500, 5007, &[3; 40]);
    let mut batch = tx.batch();
    batch.push(va.index(), &frame).unwrap();
    drop(batch);
    let sent = Instant::now();
    assert!(v2.wait(Some(WAIT)).unwrap(), "the V2 ring became readable");
    let got = collect(&mut v2, 1, WAIT, |f| udp_dport(f) == 5007);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, frame);
    let waited = sent.elapsed();
    assert!(
        waited < Duration::from_secs(1),
        "the V2 frame took {waited:?}"
    );
    // The V3 block is retired 2 s after the ring opened; only check while that is far off,
    // so that a slow machine cannot fail the test.
    if opened.elapsed() < Duration::from_millis(1500) {
        assert!(
            v3.next_block().is_none(),
            "the V3 block was handed over before its timer"
        );
    }
    let mut late = None;
    let deadline = Instant::now() + WAIT;
    while late.is_none() && Instant::now() < deadline {
        v3.wait(Some(Duration::from_millis(50))).unwrap();
        if let Some(mut block) = v3.next_block() {
            let timed_out = block.timed_out();
            if block.frames().any(|f| udp_dport(f.data()) == 5007) {
                late = Some(timed_out);
            }
        }
    }
    assert_eq!(
        late,
        Some(true),
        "the V3 ring got the frame by its retire timer"
    );
}

#[test]
fn truncated_frames_are_detectable() {
    if !common::root_or_skip("truncated_frames_are_detectable") {
        return;
    }
    for version in VERSIONS {
        truncated_frames_are_detectable_with(version);
    }
}

fn truncated_frames_are_detectable_with(version: RingVersion) {
    let bed = Testbed::new();
    let mut rx = bed
        .b
        .run(|| RxRing::open(&Interface::by_name("vb").unwrap(), &small_ring_of(version)).unwrap());
    // A socket filter that keeps 60 bytes of each frame: the ring then holds a truncated copy.
    let keep60 = [libc::sock_filter {
        code: u16::try_from(libc::BPF_RET | libc::BPF_K).unwrap(),
        jt: 0,
        jf: 0,
        k: 60,
    }];
    let prog = libc::sock_fprog {
        len: 1,
        filter: keep60.as_ptr().cast_mut(),
    };
    let size = libc::socklen_t::try_from(size_of::<libc::sock_fprog>()).unwrap();
    // SAFETY: `prog` points to one valid instruction and lives across the call; the kernel
    // copies it.
    let rc = unsafe {
        libc::setsockopt(
            rx.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&raw const prog).cast(),
            size,
        )
    };
    assert_eq!(
        rc,
        0,
        "SO_ATTACH_FILTER: {}",
        std::io::Error::last_os_error()
    );
    let (mut tx, va) = bed.a.run(|| {
        (
            TxSocket::open(&TxConfig::default()).unwrap(),
            Interface::by_name("va").unwrap(),
        )
    });
    let frame = udp_frame(MAC_A, MAC_B, IP_A, IP_B, 7300, 5005, &[9; 200]);
    let mut batch = tx.batch();
    batch.push(va.index(), &frame).unwrap();
    drop(batch);
    let got = collect(&mut rx, 1, WAIT, |f| udp_dport(f) == 5005);
    assert_eq!(got.len(), 1);
    let (data, meta) = &got[0];
    assert_eq!(data.len(), 60);
    assert_eq!(meta.len, 60);
    assert_eq!(meta.wire_len as usize, frame.len());
    assert!(meta.truncated());
    assert_eq!(&data[..], &frame[..60]);
}

#[test]
fn vlan_tag_is_reported_in_metadata() {
    if !common::root_or_skip("vlan_tag_is_reported_in_metadata") {
        return;
    }
    for version in VERSIONS {
        vlan_tag_is_reported_with(version);
    }
}

fn vlan_tag_is_reported_with(version: RingVersion) {
    let bed = Testbed::new();
    let mut rx = bed
        .b
        .run(|| RxRing::open(&Interface::by_name("vb").unwrap(), &small_ring_of(version)).unwrap());
    let (mut tx, va) = bed.a.run(|| {
        (
            TxSocket::open(&TxConfig::default()).unwrap(),
            Interface::by_name("va").unwrap(),
        )
    });
    let plain = udp_frame(MAC_A, MAC_B, IP_A, IP_B, 7400, 5006, &[1; 80]);
    let tci: u16 = (5 << 13) | 42; // priority 5, VLAN 42
    let mut tagged = plain[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00]);
    tagged.extend_from_slice(&tci.to_be_bytes());
    tagged.extend_from_slice(&plain[12..]);
    let mut batch = tx.batch();
    batch.push(va.index(), &tagged).unwrap();
    drop(batch);
    let got = collect(&mut rx, 1, WAIT, |f| udp_dport(f) == 5006);
    assert_eq!(got.len(), 1);
    let (data, meta) = &got[0];
    let vlan = meta
        .vlan
        .unwrap_or_else(|| panic!("{version:?}: VLAN tag reported"));
    assert_eq!(vlan.tci, tci);
    assert_eq!(vlan.id(), 42);
    assert_eq!(vlan.tpid, 0x8100);
    assert_eq!(data, &plain, "the tag is removed from the frame");
}

#[test]
fn bad_setups_give_clear_errors() {
    if !common::root_or_skip("bad_setups_give_clear_errors") {
        return;
    }
    let err = Interface::by_name("nosuchif0").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown interface nosuchif0: if_nametoindex: No such device"
    );
    let err = Interface::by_index(999_999).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("unknown interface #999999: if_indextoname: "),
        "{err}"
    );

    let bed = Testbed::new();
    let bad = RxConfig {
        block_size: 1000,
        ..Default::default()
    };
    let err = bed
        .b
        .run(|| RxRing::open(&Interface::by_name("vb").unwrap(), &bad).unwrap_err());
    assert_eq!(
        err.to_string(),
        "bad receive ring geometry for vb: block size 1000 is not a multiple of the page size 4096"
    );

    // A group id already used by a group with other settings.
    let err = bed.b.run(|| {
        let vb = Interface::by_name("vb").unwrap();
        let first = FanoutConfig {
            members: 1,
            vips: vec![],
            group_id: Some(4242),
        };
        let _group = open_fanout(&vb, &small_ring(), &first).unwrap();
        let other = RxConfig {
            ignore_outgoing: false,
            ..small_ring()
        };
        open_fanout(&vb, &other, &first).unwrap_err()
    });
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
    assert_eq!(
        err.to_string(),
        "cannot join the fanout group on vb: setsockopt(PACKET_FANOUT): Invalid argument \
         (is the interface up, and do all members use the same settings?)"
    );
    let err = bed.b.run(|| {
        let none = FanoutConfig {
            members: 0,
            vips: vec![],
            group_id: None,
        };
        open_fanout(&Interface::by_name("vb").unwrap(), &small_ring(), &none).unwrap_err()
    });
    assert_eq!(
        err.to_string(),
        "bad fanout group for vb: 0 members (1 to 256)"
    );

    // Without privileges (this thread only, via the raw syscall; it is not reused).
    let (rx_err, tx_err) = bed.b.run(|| {
        let vb = Interface::by_name("vb").unwrap();
        // SAFETY: the raw setresuid syscall changes the credentials of this thread only
        // (unlike the libc wrapper); the thread ends right after.
        let rc = unsafe { libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534) };
        assert_eq!(rc, 0, "setresuid: {}", std::io::Error::last_os_error());
        (
            RxRing::open(&vb, &small_ring()).unwrap_err(),
            TxSocket::open(&TxConfig::default()).unwrap_err(),
        )
    });
    assert_eq!(rx_err.raw_os_error(), Some(libc::EPERM));
    assert_eq!(
        rx_err.to_string(),
        "cannot open a packet socket on vb: socket(AF_PACKET, SOCK_RAW): Operation not permitted (CAP_NET_RAW is needed: run as root)"
    );
    assert_eq!(
        tx_err.to_string(),
        "cannot open the transmit socket: socket(AF_PACKET, SOCK_RAW): Operation not permitted (CAP_NET_RAW is needed: run as root)"
    );
}

#[test]
fn own_output_never_reaches_the_sockets() {
    if !common::root_or_skip("own_output_never_reaches_the_sockets") {
        return;
    }
    let bed = Testbed::new();
    let (mut single, (mut members, _control), mut tx, vb) = bed.b.run(|| {
        let vb = Interface::by_name("vb").unwrap();
        let fanout = FanoutConfig {
            members: 2,
            vips: vec![],
            group_id: None,
        };
        (
            RxRing::open(&vb, &small_ring()).unwrap(),
            open_fanout(&vb, &small_ring(), &fanout).unwrap(),
            TxSocket::open(&TxConfig::default()).unwrap(),
            vb,
        )
    });
    let mut rx_a = bed
        .a
        .run(|| RxRing::open(&Interface::by_name("va").unwrap(), &small_ring()).unwrap());
    for ring in members.iter_mut().chain([&mut single]) {
        ring.stats().unwrap();
    }
    // Non-IP frames, so that A's kernel sends nothing back (no ICMP errors).
    let frames: Vec<Vec<u8>> = (0..30u8)
        .map(|i| [&MAC_A[..], &MAC_B[..], &[0x88, 0xb5, 0x57, i], &[0; 44]].concat())
        .collect();
    let mut batch = tx.batch();
    for f in &frames {
        batch.push(vb.index(), f).unwrap();
    }
    drop(batch);
    assert_eq!(
        collect(&mut rx_a, frames.len(), WAIT, |f| f[12..15]
            == [0x88, 0xb5, 0x57])
        .len(),
        frames.len()
    );
    // The kernel filtered them before the rings (PACKET_IGNORE_OUTGOING for the single
    // socket, PACKET_FANOUT_FLAG_IGNORE_OUTGOING for the group): not even counted.
    for ring in members.iter_mut().chain([&mut single]) {
        assert_eq!(ring.stats().unwrap().packets, 0);
    }
}

#[test]
fn fanout_keeps_member_order_across_a_link_flap() {
    if !common::root_or_skip("fanout_keeps_member_order_across_a_link_flap") {
        return;
    }
    let bed = Testbed::new();
    let vip = [10, 77, 0, 100];
    let vips = vec![IpAddr::from(vip)];
    let (mut rings, _control) = bed.b.run(|| {
        let fanout = FanoutConfig {
            members: 3,
            vips: vips.clone(),
            group_id: None,
        };
        open_fanout(&Interface::by_name("vb").unwrap(), &small_ring(), &fanout).unwrap()
    });
    let (mut tx, va) = bed.a.run(|| {
        (
            TxSocket::open(&TxConfig::default()).unwrap(),
            Interface::by_name("va").unwrap(),
        )
    });
    let requests: Vec<Vec<u8>> = (20000..20100)
        .map(|p| tcp_frame(IP_A, vip, p, 80))
        .collect();
    for round in 0..3 {
        if round > 0 {
            bed.b.exec(&["ip", "link", "set", "vb", "down"]);
            bed.b.exec(&["ip", "link", "set", "vb", "up"]);
            bed.wait_carrier();
            // The flap left an error on each socket: reported once, then cleared.
            for ring in &rings {
                let err = ring.take_error().unwrap_err();
                assert_eq!(err.raw_os_error(), Some(libc::ENETDOWN), "{err}");
                ring.take_error().unwrap();
            }
        }
        let mut batch = tx.batch();
        for f in &requests {
            batch.push(va.index(), f).unwrap();
        }
        drop(batch);
        let member_of = receive_by_member(&mut rings, &requests, WAIT);
        assert_eq!(member_of.len(), requests.len(), "round {round}");
        for f in &requests {
            assert_eq!(
                member_of[f],
                fanout_hash(f, &vips) as usize % 3,
                "round {round}: member order changed"
            );
        }
    }
}

#[test]
fn a_leaked_batch_is_never_sent() {
    if !common::root_or_skip("a_leaked_batch_is_never_sent") {
        return;
    }
    let bed = Testbed::new();
    let mut rx = bed
        .b
        .run(|| RxRing::open(&Interface::by_name("vb").unwrap(), &small_ring()).unwrap());
    let (mut tx, va) = bed.a.run(|| {
        (
            TxSocket::open(&TxConfig::default()).unwrap(),
            Interface::by_name("va").unwrap(),
        )
    });
    let leaked = udp_frame(MAC_A, MAC_B, IP_A, IP_B, 7600, 5008, b"leaked");
    let mut batch = tx.batch();
    batch.push(va.index(), &leaked).unwrap();
    std::mem::forget(batch);
    drop(leaked); // the leaked slot now points to freed memory
    let kept = udp_frame(MAC_A, MAC_B, IP_A, IP_B, 7600, 5008, b"kept");
    let mut batch = tx.batch();
    batch.push(va.index(), &kept).unwrap();
    assert_eq!(batch.flush().unwrap().sent, 1);
    drop(batch);
    let got = collect(&mut rx, 2, Duration::from_millis(300), |f| {
        udp_dport(f) == 5008
    });
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, kept);
}

/// Every frame the group's rings hold within `timeout` once `want` frames satisfying `pred`
/// have arrived (and until `timeout` if they never do), from all members.
fn drain_group(
    rings: &mut [RxRing],
    want: usize,
    timeout: Duration,
    pred: impl Fn(&[u8]) -> bool,
) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let deadline = Instant::now() + timeout;
    loop {
        for ring in rings.iter_mut() {
            while let Some(mut block) = ring.next_block() {
                for frame in block.frames() {
                    got.push(frame.data().to_vec());
                }
            }
        }
        if got.iter().filter(|f| pred(f)).count() >= want || Instant::now() >= deadline {
            return got;
        }
        rings[0].wait(Some(Duration::from_millis(5))).unwrap();
    }
}

/// An ARP request from A for `target`.
fn arp_request(target: [u8; 4]) -> Vec<u8> {
    let mut f = [0xff; 6].to_vec();
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&IP_A);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f
}

#[test]
fn receive_filter_passes_vip_frames_only_and_is_replaced_at_run_time() {
    if !common::root_or_skip("receive_filter_passes_vip_frames_only_and_is_replaced_at_run_time") {
        return;
    }
    for version in VERSIONS {
        receive_filter_with(version);
    }
}

fn receive_filter_with(version: RingVersion) {
    const X: [u8; 4] = [10, 77, 0, 50];
    const Y: [u8; 4] = [10, 77, 0, 51];
    const CLIENT: [u8; 4] = [10, 9, 0, 1];
    let bed = Testbed::new();
    let (mut rings, control, mut tx, va) = fanout_bed_of(&bed, 2, &[X.into(), Y.into()], version);
    let to = |dst: [u8; 4], port: u16| udp_frame(MAC_A, MAC_B, CLIENT, dst, port, 7000, &[1; 40]);
    let arp = arp_request(X);
    // Frames to X and to Y from many client ports (so both members would get some), and
    // ARP; `want` is the address whose frames must arrive.
    let round = |tx: &mut TxSocket, rings: &mut [RxRing], want: [u8; 4], other: [u8; 4]| {
        let frames: Vec<Vec<u8>> = (40000..40032u16)
            .flat_map(|port| [to(other, port), arp.clone(), to(want, port)])
            .collect();
        let mut batch = tx.batch();
        for f in &frames {
            batch.push(va.index(), f).unwrap();
        }
        drop(batch);
        let is_want = |f: &[u8]| f.len() >= 34 && f[30..34] == want;
        // Once the last wanted frame is in, everything sent before it has been through the
        // filter; a moment longer catches a stray one anyway.
        let mut got = drain_group(rings, 32, WAIT, is_want);
        got.extend(drain_group(
            rings,
            usize::MAX,
            Duration::from_millis(200),
            |_| false,
        ));
        assert_eq!(
            got.iter().filter(|f| is_want(f)).count(),
            32,
            "{version:?}: frames to {want:?}"
        );
        // IPv6 of the peer's own (neighbour discovery, MLD) may pass: not TCP or UDP.
        let stray = got
            .iter()
            .find(|f| !is_want(f) && f.get(12..14) != Some(&[0x86, 0xdd][..]));
        assert!(
            stray.is_none(),
            "{version:?}: only frames to {want:?} pass, got {stray:02x?}"
        );
    };
    let only = |vip: [u8; 4]| {
        lvs_afpacket::RxFilter {
            vips: vec![vip.into()],
            nat_servers: Vec::new(),
        }
        .program()
        .unwrap()
    };
    control.set_filter(&only(X)).unwrap();
    round(&mut tx, &mut rings, X, Y);
    control.set_filter(&only(Y)).unwrap();
    round(&mut tx, &mut rings, Y, X);
    // Accept-all lets ARP in again: the filter, not the sender, kept it out.
    control
        .set_filter(&lvs_afpacket::RxFilter::accept_all())
        .unwrap();
    let mut batch = tx.batch();
    batch.push(va.index(), &arp).unwrap();
    drop(batch);
    let got = drain_group(&mut rings, 1, WAIT, |f| f == arp.as_slice());
    assert!(
        got.iter().any(|f| f == &arp),
        "{version:?}: ARP after accept-all"
    );
}
