//! VS/DR and VS/TUN end to end, with the director running two workers.

mod common;

use std::io::Write;

use common::{
    CLIENT, DIRECTOR, Lines, NAMES, RS, Testbed, TunnelEndpoint as Endpoint, VIP, count, csum,
};

/// VS/DR with rr: HTTP answers come straight from the real servers (through the router, not
/// the director: the service sees inbound packets only), spread evenly.
#[test]
fn dr_http_rr_spreads_evenly_and_replies_bypass_the_director() {
    let Some(tb) = Testbed::start(
        "dr_http_rr_spreads_evenly_and_replies_bypass_the_director",
        "dr",
    ) else {
        return;
    };
    tb.service("-t", 80, "-s rr", "-g", &[1, 1, 1]);
    let got = tb.curls(9);
    for n in NAMES {
        assert_eq!(count(&got, n), 3, "{got:?}");
    }
    let (conns, inpkts, outpkts) = tb.service_stats(VIP, 80);
    assert_eq!(conns, 9);
    assert!(
        inpkts >= 9 * 3,
        "SYN, ACK, request, FIN... per connection: {inpkts}"
    );
    assert_eq!(outpkts, 0, "DR replies do not pass the director");
    let listing = tb.adm("-L -n");
    assert_eq!(listing.matches("Route").count(), 3, "{listing}");
}

/// VS/DR with wrr 2:1 (and a third server at weight 3): 12 requests split 6:4:2 exactly.
#[test]
fn dr_http_wrr_spreads_by_weight() {
    let Some(tb) = Testbed::start("dr_http_wrr_spreads_by_weight", "dr") else {
        return;
    };
    tb.service("-t", 80, "-s wrr", "-g", &[3, 2, 1]);
    let got = tb.curls(12);
    assert_eq!(
        (count(&got, "r1"), count(&got, "r2"), count(&got, "r3")),
        (6, 4, 2),
        "{got:?}"
    );
}

/// On the director: prints, in hex, every frame carrying a SYN from the client to VIP:80
/// (the packets the director receives and must tunnel unchanged); `TIMEOUT` after the given
/// seconds without one. Prints `ready` once the socket is bound.
const CAPTURE_SYNS: &str = r#"
import socket, sys
client, vip = socket.inet_aton(sys.argv[1]), socket.inet_aton(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind(("eth0", 0))
s.settimeout(float(sys.argv[3]))
print("ready", flush=True)
try:
    while True:
        f = s.recv(65535)
        if len(f) < 14 + 40 or f[12:14] != b"\x08\x00" or f[23] != 6:
            continue
        t = 14 + (f[14] & 15) * 4
        if f[26:30] == client and f[30:34] == vip and f[t + 2:t + 4] == b"\x00\x50" and f[t + 13] & 0x12 == 0x02:
            print(f.hex(), flush=True)
except socket.timeout:
    print("TIMEOUT", flush=True)
"#;

/// On the real server: prints, in hex, the first IP-in-IP frame arriving on eth0 (AF_PACKET
/// sees it before any decapsulation). With `decap`, it is also the tunnel endpoint this kernel
/// lacks: it reads every IP-in-IP packet addressed to this host from a raw socket (protocol
/// 4; holding one also keeps the kernel from answering "protocol unreachable"), checks the
/// outer header (IPv4 without options, protocol 4, valid checksum, to this host, not a
/// fragment, a whole inner IPv4 packet), strips it and writes the inner packet to the tun
/// device `lvsdecap`, where the kernel receives it as if from a wire, as the ipip driver
/// hands it on. Prints `ready` once set up; answers `stats` on stdin with
/// `decapsulated N bad M`.
const CAPTURE_AND_DECAP: &str = r#"
import fcntl, os, select, socket, struct, sys
mode, me = sys.argv[1], socket.inet_aton(sys.argv[2])
cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
cap.bind(("eth0", 0))
watch = [cap, sys.stdin]
if mode == "decap":
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
    tun = os.open("/dev/net/tun", os.O_RDWR)
    # TUNSETIFF: a layer-3 tun device without the packet-information prefix.
    fcntl.ioctl(tun, 0x400454CA, struct.pack("16sH", b"lvsdecap", 0x0001 | 0x1000))
    watch.append(raw)
def csum_ok(h):
    s = sum(struct.unpack("!%dH" % (len(h) // 2), h))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s == 0xFFFF
done = bad = 0
print("ready", flush=True)
while True:
    for r in select.select(watch, [], [])[0]:
        if r is cap:
            f = cap.recv(65535)
            if len(f) >= 34 and f[12:14] == b"\x08\x00" and f[23] == 4:
                print(f.hex(), flush=True)
                watch.remove(cap)
        elif r is sys.stdin:
            line = sys.stdin.readline()
            if not line:
                sys.exit(0)
            print("decapsulated", done, "bad", bad, flush=True)
        else:
            p = raw.recv(65535)
            inner = p[20:]
            ok = (p[0] == 0x45 and p[9] == 4 and csum_ok(p[:20]) and p[16:20] == me
                  and struct.unpack("!H", p[6:8])[0] & 0x3FFF == 0 and len(inner) >= 20
                  and inner[0] >> 4 == 4 and struct.unpack("!H", inner[2:4])[0] == len(inner))
            if ok:
                os.write(tun, inner)
                done += 1
            else:
                bad += 1
"#;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn ip4(b: &[u8]) -> String {
    format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3])
}

/// Whether the TCP segment inside IPv4 packet `ip` has a valid checksum.
fn tcp_csum_ok(ip: &[u8]) -> bool {
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let tcp = &ip[ihl..len];
    let pseudo = u32::from(csum(&ip[12..20], 0)) + 6 + u32::try_from(tcp.len()).unwrap();
    csum(tcp, pseudo) == 0xffff
}

/// VS/TUN end to end: the client's GETs reach r1 wrapped in IP-in-IP, and r1 answers the
/// client directly (through the router, as in VS/DR: the service counts no outbound packet).
///
/// Proven on every kernel, from the wire (AF_PACKET captures on the director and on r1):
/// the frame the director sends goes to r1's MAC from the director's; its outer IPv4 header
/// has no options, the inner packet's TOS, DF and TTL (copied, as IPVS does), no fragment
/// offset, protocol 4, total length = inner + 20, a valid checksum, source the director and
/// destination r1; inside is the client's SYN exactly as the director received it, byte for
/// byte (where it arrived with a partial checksum, as packets from a local veth do, the TCP
/// checksum field alone differs, and it must then be valid).
///
/// Where the kernel has the `ipip` driver, r1 decapsulates with a real ipip device
/// (`lvsipip`, rp_filter off, as the LVS HOWTO sets up a real server): the pages curl gets
/// prove the whole VS/TUN path as deployed, and the device's receive counter shows the
/// tunnel carried them.
///
/// Where it does not (this machine's kernel: `ip link add ... type ipip` says "Unknown device
/// type"), the tunnel endpoint is a userspace decapsulator in r1's namespace (a raw socket of
/// protocol 4 and a tun device): the pages curl gets prove the director's side of VS/TUN
/// with real TCP connections to a real HTTP server, and its counters that every tunnelled
/// packet was well formed. Not proven there: that the kernel's ipip driver accepts these
/// packets (it checks little more than the decapsulator does). The test says which case ran.
#[test]
fn tun_encapsulates_ip_in_ip_and_the_real_server_answers_directly() {
    let Some(mut tb) = Testbed::start(
        "tun_encapsulates_ip_in_ip_and_the_real_server_answers_directly",
        "tun",
    ) else {
        return;
    };
    // Added as ipvsadm 1.31's save writes a tunnelled server, and saved the same way.
    tb.service("-t", 80, "-s rr", "-i --tun-type ipip", &[1]);
    let listing = tb.adm("-L -n");
    assert!(listing.contains("Tunnel"), "{listing}");
    assert!(
        tb.adm("-S -n").contains(&format!(
            "-a -t {VIP}:80 -r {}:80 -i -w 1 --tun-type ipip\n",
            RS[0]
        )),
        "{}",
        tb.adm("-S -n")
    );

    let endpoint = tb.tunnel_endpoint(
        "r1",
        &[
            "ip", "link", "add", "lvsipip", "type", "ipip", "local", RS[0],
        ],
        "ipip",
    );
    // The userspace decapsulator is CAPTURE_AND_DECAP's `decap` mode.
    let device = match endpoint {
        Endpoint::Kernel => "lvsipip",
        Endpoint::Userspace => "lvsdecap",
    };
    let mode = if endpoint == Endpoint::Kernel {
        "capture"
    } else {
        "decap"
    };
    let h = tb.spawn("r1", &["python3", "-c", CAPTURE_AND_DECAP, mode, RS[0]]);
    let mut r1 = Lines::new(tb.helper(h));
    let mut r1_in = tb.helper(h).stdin.take().expect("stdin");
    assert_eq!(r1.next_line(), "ready");
    // The inner packets come in on the tunnel device while the route back to the client
    // leaves by eth0: strict reverse-path filtering would drop them all.
    tb.must("r1", &["ip", "link", "set", device, "up"]);
    for conf in ["all", device] {
        tb.must(
            "r1",
            &[
                "sysctl",
                "-qw",
                &format!("net.ipv4.conf.{conf}.rp_filter=0"),
            ],
        );
    }
    let h = tb.spawn("d", &["python3", "-c", CAPTURE_SYNS, CLIENT, VIP, "20"]);
    let mut d = Lines::new(tb.helper(h));
    assert_eq!(d.next_line(), "ready");

    let got = tb.curls(3);
    assert_eq!(got, ["r1", "r1", "r1"]);
    // SYN, ACK, GET and FIN at least, per connection.
    let tunnelled = match endpoint {
        Endpoint::Userspace => {
            writeln!(r1_in, "stats").unwrap();
            r1_in.flush().unwrap();
            let frame = r1.next_line();
            let stats = r1.next_line();
            let f: Vec<&str> = stats.split_whitespace().collect();
            assert_eq!(f.len(), 4, "{stats}");
            assert_eq!(f[3], "0", "malformed tunnel packets: {stats}");
            check_tunnelled_frame(&tb, &frame, &mut d);
            f[1].parse::<u64>().expect("a count")
        }
        Endpoint::Kernel => {
            let frame = r1.next_line();
            check_tunnelled_frame(&tb, &frame, &mut d);
            let out = tb.exec(
                "r1",
                &["cat", "/sys/class/net/lvsipip/statistics/rx_packets"],
            );
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<u64>()
                .expect("lvsipip's rx_packets")
        }
    };
    tb.assert_tunnelled(VIP, RS[0], tunnelled);
    println!("{tunnelled} packets came out of the tunnel ({endpoint:?} endpoint)");
}

/// The byte checks of the doc comment above, on `captured` (the first IP-in-IP frame r1
/// saw, in hex), against the client SYNs the director received (printed by `d`).
fn check_tunnelled_frame(tb: &Testbed, captured: &str, d: &mut Lines) {
    assert!(
        !captured.is_empty() && captured.bytes().all(|b| b.is_ascii_hexdigit()),
        "no IP-in-IP frame captured on r1: {captured:?}"
    );
    let f = unhex(captured);
    assert_eq!(&f[0..6], &tb.mac("r1")[..], "to r1's MAC");
    assert_eq!(&f[6..12], &tb.mac("d")[..], "from the director's MAC");
    assert_eq!(&f[12..14], &[0x08, 0x00]);
    let outer = &f[14..34];
    let inner = &f[34..];
    assert_eq!(outer[0], 0x45, "outer IPv4, no options");
    assert_eq!(inner[0], 0x45, "inner IPv4, no options");
    let outer_len = usize::from(u16::from_be_bytes([outer[2], outer[3]]));
    let inner_len = usize::from(u16::from_be_bytes([inner[2], inner[3]]));
    assert_eq!(outer_len, inner_len + 20, "outer length = inner + 20");
    assert_eq!(f.len(), 14 + outer_len, "nothing after the packet");
    assert_eq!(outer[1], inner[1], "TOS copied from the inner packet");
    assert_eq!(
        outer[6] & 0x40,
        inner[6] & 0x40,
        "DF copied from the inner packet"
    );
    assert_eq!(
        u16::from_be_bytes([outer[6], outer[7]]) & 0xbfff,
        0,
        "no MF, no fragment offset"
    );
    assert_eq!(outer[8], inner[8], "TTL copied from the inner packet");
    assert_eq!(outer[9], 4, "IP-in-IP");
    assert_eq!(csum(outer, 0), 0xffff, "outer header checksum");
    assert_eq!(ip4(&outer[12..16]), DIRECTOR, "outer source: the director");
    assert_eq!(ip4(&outer[16..20]), RS[0], "outer destination: r1");
    assert_eq!(ip4(&inner[12..16]), CLIENT, "inner source: the client");
    assert_eq!(ip4(&inner[16..20]), VIP, "inner destination: the VIP");
    assert_eq!(inner[9], 6, "TCP inside");
    assert_eq!(csum(&inner[..20], 0), 0xffff, "inner header checksum");
    assert!(tcp_csum_ok(inner), "inner TCP checksum");
    assert_eq!(inner[20 + 13] & 0x12, 0x02, "a SYN");

    // The same SYN as the director received it (a lost first SYN is retransmitted: find the
    // one whose sequence number and options match).
    let mut seen = Vec::new();
    loop {
        let line = d.next_line();
        assert!(
            line != "TIMEOUT" && !line.is_empty(),
            "the tunnelled SYN is not among those the director received: {seen:?}"
        );
        let rx = unhex(&line);
        let ip = &rx[14..];
        let len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        let ip = &ip[..len];
        // The sequence number and every option are the same in one SYN and its copy.
        if ip.len() == inner.len() && ip[24..28] == inner[24..28] && ip[40..] == inner[40..] {
            if tcp_csum_ok(ip) {
                assert_eq!(ip, inner, "the inner packet is the client's, unchanged");
                println!("inner packet identical to the SYN the director received");
            } else {
                // Received with a partial checksum (CHECKSUM_PARTIAL across the veth): the
                // director completed it, and nothing else changed.
                assert_eq!(&ip[..36], &inner[..36]);
                assert_eq!(&ip[38..], &inner[38..]);
                println!(
                    "inner packet identical to the SYN the director received, but for the \
                     TCP checksum it completed"
                );
            }
            return;
        }
        seen.push(line);
    }
}
