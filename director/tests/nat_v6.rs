//! VS/NAT over IPv6 end to end: real HTTP with `curl -6` from the client namespace through the
//! director (two workers) to the real servers' HTTP servers, on the dual-stack testbed; and one
//! scenario where the same real servers serve the IPv4 and the IPv6 VIP at once.

mod common;

use common::{CLIENT, CLIENT6, NAMES, RS, RS6, Testbed, VIP, VIP6, addr_port, wait_for};

fn count(names: &[String], who: &str) -> usize {
    names.iter().filter(|n| n.as_str() == who).count()
}

/// The names in `got` follow rr's cycle: r1 r2 r3 r1 ... from wherever it started.
fn assert_cycle(got: &[String]) {
    let first = NAMES
        .iter()
        .position(|n| *n == got[0])
        .unwrap_or_else(|| panic!("not a server's name: {got:?}"));
    for (i, name) in got.iter().enumerate() {
        assert_eq!(name, NAMES[(first + i) % 3], "request {i} of {got:?}");
    }
}

/// The `-L -n --stats` line of the TCP service on `vip`:80, split on whitespace.
fn service_line(stats: &str, vip: &str) -> Vec<String> {
    let want = format!("TCP  {}", addr_port(vip, 80));
    stats
        .lines()
        .find(|l| l.starts_with(&want))
        .unwrap_or_else(|| panic!("no line {want:?} in\n{stats}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// rr over three IPv6 NAT servers: 6 GETs with `curl -6` go r1 r2 r3 r1 r2 r3 exactly (each
/// server twice); the listing, the counters and the connection table show IPv6 in ipvsadm's
/// bracketed form, with the client's address as the source and each real server's as the
/// destination (the NAT rewrite both ways).
#[test]
fn nat6_http_rr_spreads_requests_exactly_evenly() {
    let Some(tb) = Testbed::start("nat6_http_rr_spreads_requests_exactly_evenly", "nat") else {
        return;
    };
    tb.service6("-t", 80, "-s rr", "-m", &[1, 1, 1]);
    let listing = tb.adm("-L -n");
    assert!(
        listing.contains(&format!("TCP  [{VIP6}]:80 rr")),
        "{listing}"
    );
    let got = tb.curls_to(VIP6, 6);
    assert_cycle(&got);
    for n in NAMES {
        assert_eq!(count(&got, n), 2, "{got:?}");
    }

    let stats = tb.adm("-L -n --stats --exact");
    let f = service_line(&stats, VIP6);
    assert_eq!(f[2], "6", "6 connections in\n{stats}");
    assert!(f[3].parse::<u64>().unwrap() > 0, "inbound packets\n{stats}");
    assert!(
        f[4].parse::<u64>().unwrap() > 0,
        "NAT replies pass the director\n{stats}"
    );
    for rs in RS6 {
        let l = stats
            .lines()
            .find(|l| l.contains(&format!("-> [{rs}]:80")))
            .unwrap_or_else(|| panic!("no line for {rs} in\n{stats}"));
        assert_eq!(l.split_whitespace().nth(2), Some("2"), "{l}");
    }
    let conns = tb.conns();
    assert_eq!(conns.len(), 6, "{conns:?}");
    for c in &conns {
        assert_eq!(c.proto, "TCP");
        assert!(c.source.starts_with(&format!("[{CLIENT6}]:")), "{c:?}");
        assert_eq!(c.virt, format!("[{VIP6}]:80"));
    }
    for rs in RS6 {
        let dest = format!("[{rs}]:80");
        assert_eq!(
            conns.iter().filter(|c| c.dest == dest).count(),
            2,
            "{conns:?}"
        );
    }
}

/// wrr with weights 3:2:1 over IPv6 NAT: 6 GETs split 3:2:1 exactly.
#[test]
fn nat6_wrr_spreads_by_weight() {
    let Some(tb) = Testbed::start("nat6_wrr_spreads_by_weight", "nat") else {
        return;
    };
    tb.service6("-t", 80, "-s wrr", "-m", &[3, 2, 1]);
    let got = tb.curls_to(VIP6, 6);
    assert_eq!(
        (count(&got, "r1"), count(&got, "r2"), count(&got, "r3")),
        (3, 2, 1),
        "{got:?}"
    );
}

/// `-p` with an IPv6 netmask (`-M 64`): every connection of the client goes to one server.
#[test]
fn nat6_persistence_keeps_the_client_on_one_server() {
    let Some(tb) = Testbed::start("nat6_persistence_keeps_the_client_on_one_server", "nat") else {
        return;
    };
    tb.service6("-t", 80, "-s rr -p 300 -M 64", "-m", &[1, 1, 1]);
    let listing = tb.adm("-L -n");
    assert!(
        listing.contains("persistent 300 mask 64"),
        "ipvsadm shows an IPv6 netmask as a prefix length\n{listing}"
    );
    let got = tb.curls_to(VIP6, 5);
    assert!(got.iter().all(|n| *n == got[0]), "{got:?}");
    // The template holds the client's /64, as IPVS keeps the masked address.
    let conns = tb.conns();
    assert!(
        conns
            .iter()
            .any(|c| c.source == "[2001:db8:51::]:0" && c.virt == format!("[{VIP6}]:80")),
        "a template for the client's /64: {conns:?}"
    );
}

/// UDP to an IPv6 NAT service whose real servers listen on nothing: each real server answers
/// ICMPv6 "port unreachable", the director rewrites it (outer and quoted headers, ICMPv6
/// checksum) to come from the VIP, and the client's connected socket sees ECONNREFUSED.
#[test]
fn nat6_an_icmpv6_error_from_a_real_server_reaches_the_client() {
    let Some(tb) = Testbed::start(
        "nat6_an_icmpv6_error_from_a_real_server_reaches_the_client",
        "nat",
    ) else {
        return;
    };
    tb.service6("-u", 5999, "-s rr", "-m", &[1, 1, 1]);
    tb.assert_udp_refused(VIP6, 5999);
}

/// Dual stack: the same three real servers serve the IPv4 VIP and the IPv6 VIP at once, each
/// service with its own rr cycle. GETs alternate between the families; each family's six go
/// r1 r2 r3 r1 r2 r3, and each service counts its own six connections.
#[test]
fn dual_stack_the_same_real_servers_serve_both_vips_at_once() {
    let Some(tb) = Testbed::start(
        "dual_stack_the_same_real_servers_serve_both_vips_at_once",
        "nat",
    ) else {
        return;
    };
    tb.service("-t", 80, "-s rr", "-m", &[1, 1, 1]);
    tb.service6("-t", 80, "-s rr", "-m", &[1, 1, 1]);
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for _ in 0..6 {
        v4.push(tb.curl_to(VIP));
        v6.push(tb.curl_to(VIP6));
    }
    assert_cycle(&v4);
    assert_cycle(&v6);
    let stats = tb.adm("-L -n --stats --exact");
    assert_eq!(service_line(&stats, VIP)[2], "6", "{stats}");
    assert_eq!(service_line(&stats, VIP6)[2], "6", "{stats}");
    // Each connection kept its family end to end.
    let conns = tb.conns();
    assert_eq!(conns.len(), 12, "{conns:?}");
    for c in &conns {
        if c.virt == format!("{VIP}:80") {
            assert!(c.source.starts_with(&format!("{CLIENT}:")), "{c:?}");
            assert!(RS.contains(&c.dest_addr()), "{c:?}");
        } else {
            assert_eq!(c.virt, format!("[{VIP6}]:80"), "{c:?}");
            assert!(c.source.starts_with(&format!("[{CLIENT6}]:")), "{c:?}");
            let rs = c.dest_addr().trim_matches(['[', ']']);
            assert!(RS6.contains(&rs), "{c:?}");
        }
    }
    // Both families keep working after the first round (no state of one disturbs the other).
    wait_for("one more GET of each VIP", common::SOON, || {
        Some((tb.try_curl_to(VIP, 5)?, tb.try_curl_to(VIP6, 5)?))
    });
}

/// Sends crafted IPv6 packets from the router's LAN side to a destination (argv: source,
/// destination, what, count): `rh0` a TCP SYN to port 80 behind a type 0 routing header,
/// `frag` a non-first fragment of a TCP segment to port 80, `hop1` a TCP SYN to port 80 with
/// a hop limit of 1. Checksums are right, so only the policy refuses them.
const BAD_IPV6: &str = r#"
import socket, struct, sys
src, dst, what, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
s6, d6 = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)
def csum(b):
    if len(b) % 2:
        b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t > 0xffff:
        t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff
def syn(port):
    tcp = struct.pack("!HHIIBBHHH", port, 80, 1, 0, 5 << 4, 0x02, 65535, 0, 0)
    c = csum(s6 + d6 + struct.pack("!IxxxB", len(tcp), 6) + tcp)
    return tcp[:16] + struct.pack("!H", c) + tcp[18:]
raw = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
for i in range(n):
    hops, body = 64, syn(41000 + i)
    if what == "rh0":
        # Type 0 routing header, no segments left, no addresses: next header TCP.
        nh, body = 43, struct.pack("!BBBBI", 6, 0, 0, 0, 0) + body
    elif what == "frag":
        # Fragment header: next header TCP, offset 8 octets (not the first fragment).
        nh, body = 44, struct.pack("!BBHI", 6, 0, 1 << 3, 0x1000 + i) + b"x" * 16
    else:
        nh, hops = 6, 1
    ip = struct.pack("!IHBB", 6 << 28, len(body), nh, hops) + s6 + d6
    raw.sendto(ip + body, (dst, 0))
"#;

/// IPv6 the director refuses by policy, sent to the VIP: a type 0 routing header, a non-first
/// fragment (no ports to schedule by) and a hop limit of 1 are each counted under its own
/// reason and dropped; the same routing header to an address that is not a VIP is the
/// kernel's business and not counted.
#[test]
fn nat6_bad_ipv6_for_the_vip_is_counted_by_reason() {
    let Some(tb) = Testbed::start("nat6_bad_ipv6_for_the_vip_is_counted_by_reason", "nat") else {
        return;
    };
    tb.service6("-t", 80, "-s rr", "-m", &[1, 1, 1]);
    let send = |dst: &str, what: &str, n: u32| {
        let out = tb.exec(
            "rt",
            &[
                "python3",
                "-c",
                BAD_IPV6,
                "2001:db8::fe",
                dst,
                what,
                &n.to_string(),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    send(common::DIRECTOR6, "rh0", 5);
    send(VIP6, "rh0", 3);
    send(VIP6, "frag", 2);
    send(VIP6, "hop1", 4);
    let got = |d: &std::collections::HashMap<String, u64>, k: &str| d.get(k).copied().unwrap_or(0);
    let drops = tb.wait_drops("the refused packets counted", |d| {
        got(d, "ipv6_routing_type0") >= 3 && got(d, "fragment") >= 2 && got(d, "ttl_expired") >= 4
    });
    assert_eq!(got(&drops, "ipv6_routing_type0"), 3, "{drops:?}");
    assert_eq!(got(&drops, "fragment"), 2, "{drops:?}");
    assert_eq!(got(&drops, "ttl_expired"), 4, "{drops:?}");
}
