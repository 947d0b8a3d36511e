//! VS/DR and VS/TUN over IPv6 end to end, with the director running two workers on the
//! dual-stack testbed: DR with the IPv6 VIP on the real servers' loopback (neighbour discovery
//! for the VIP answered by the director alone), TUN as IPv6-in-IPv6 seen on the real server's
//! wire, and ICMPv6 "Packet Too Big" for a tunnelled packet over the path MTU.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::ChildStderr;
use std::time::Duration;

use common::{
    CLIENT6, DIRECTOR6, Lines, NAMES, RS6, SOON, Testbed, TunnelEndpoint as Endpoint, VIP6,
    addr_port, count, csum, wait_for,
};

/// Start tcpdump in `node` on `ifname` with `args` and `filter`, and wait until it listens
/// (it says so on stderr). Returns the helper's index and its stderr, kept open so that
/// tcpdump never blocks writing to it.
fn tcpdump(
    tb: &mut Testbed,
    node: &str,
    ifname: &str,
    args: &[&str],
    filter: &str,
) -> (usize, BufReader<ChildStderr>) {
    // Immediate mode: each packet is handed over (and printed) as it comes, not when a
    // buffer block fills or times out, so that nothing is still unread when it is stopped.
    let mut cmd = vec!["tcpdump", "--immediate-mode", "-l", "-n", "-i", ifname];
    cmd.extend_from_slice(args);
    cmd.push(filter);
    let h = tb.spawn(node, &cmd);
    let mut err = BufReader::new(tb.helper(h).stderr.take().expect("piped stderr"));
    let mut line = String::new();
    loop {
        line.clear();
        let n = err.read_line(&mut line).expect("read tcpdump's stderr");
        assert!(n > 0, "tcpdump in {node} exited before listening");
        if line.contains("listening on") {
            return (h, err);
        }
    }
}

/// A MAC address as tcpdump and ip print it.
fn mac_text(m: &[u8]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Let a helper started in a namespace run until it exits by itself (within `grace`), else
/// SIGTERM it (`ip netns exec` execs it, so the pid is its own); then read its stdout to the
/// end.
fn stop_and_read(tb: &mut Testbed, h: usize, grace: Duration) -> String {
    let child = tb.helper(h);
    lvs_testsupport::poll_for(grace, || child.try_wait().ok().flatten());
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid fits"));
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("piped stdout")
        .read_to_string(&mut out)
        .expect("read the helper's output");
    let _ = child.wait();
    out
}

/// VS/DR over IPv6 with rr: each real server holds the IPv6 VIP on `lo` (added `nodad`, so
/// they send no duplicate-address probe for it), the six GETs spread 2:2:2 and the answers go
/// straight to the client through the router (the service sees inbound packets only). The
/// router learns the VIP's MAC by neighbour discovery, and every neighbour advertisement for
/// the VIP on the LAN comes from the director: Linux answers a solicitation only for an
/// address of the interface it arrived on, so the real servers stay silent.
#[test]
fn dr6_http_rr_spreads_evenly_and_only_the_director_answers_ndp_for_the_vip() {
    let Some(mut tb) = Testbed::start(
        "dr6_http_rr_spreads_evenly_and_only_the_director_answers_ndp_for_the_vip",
        "dr",
    ) else {
        return;
    };
    tb.service6("-t", 80, "-s rr", "-g", &[1, 1, 1]);
    // Neighbour advertisements on the router's LAN side, with their Ethernet source.
    let (na, _err) = tcpdump(&mut tb, "rt", "eth1", &["-e"], "icmp6 and ip6[40] == 136");
    let got = tb.curls_to(VIP6, 6);
    for n in NAMES {
        assert_eq!(count(&got, n), 2, "{got:?}");
    }
    let (conns, inpkts, outpkts) = tb.service_stats(VIP6, 80);
    assert_eq!(conns, 6);
    assert!(
        inpkts >= 6 * 3,
        "SYN, ACK, request... per connection: {inpkts}"
    );
    assert_eq!(outpkts, 0, "DR replies do not pass the director");
    let listing = tb.adm("-L -n");
    assert_eq!(listing.matches("Route").count(), 3, "{listing}");

    let director = mac_text(&tb.mac("d"));
    let advertised = stop_and_read(&mut tb, na, Duration::ZERO);
    let for_vip: Vec<&str> = advertised
        .lines()
        .filter(|l| l.contains(&format!("tgt is {VIP6},")))
        .collect();
    assert!(
        !for_vip.is_empty(),
        "the router resolved the VIP by neighbour discovery; captured:\n{advertised}"
    );
    for l in &for_vip {
        let src = l.split_whitespace().nth(1).unwrap_or_default();
        assert_eq!(src, director, "only the director advertises the VIP: {l}");
    }
    let neigh = tb.exec("rt", &["ip", "-6", "neigh", "show", VIP6, "dev", "eth1"]);
    let neigh = String::from_utf8_lossy(&neigh.stdout);
    assert!(neigh.contains(&format!("lladdr {director}")), "{neigh}");
    for r in ["r1", "r2", "r3"] {
        let lo = tb.exec(r, &["ip", "-6", "addr", "show", "dev", "lo"]);
        let lo = String::from_utf8_lossy(&lo.stdout);
        assert!(
            lo.contains(&format!("{VIP6}/128")),
            "{r} holds the VIP on lo: {lo}"
        );
        assert!(!lo.contains("tentative"), "{r}: no DAD for the VIP: {lo}");
    }
}

/// On the real server: the tunnel endpoint this kernel lacks (no `ip6tnl`): reads every
/// IPv6-in-IPv6 packet addressed to this host from a raw socket of protocol 41 (which hands
/// over the inner packet, and holding one keeps the kernel from answering "parameter
/// problem"), checks the inner packet (IPv6, its payload length the rest, to the VIP) and
/// writes it to the tun device `lvsdecap`, where the kernel receives it as if from a wire, as
/// the ip6tnl driver hands it on. Prints `ready` once set up; answers `stats` on stdin with
/// `decapsulated N bad M`.
const DECAP6: &str = r#"
import fcntl, os, select, socket, struct, sys
vip = socket.inet_pton(socket.AF_INET6, sys.argv[1])
raw = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 41)
tun = os.open("/dev/net/tun", os.O_RDWR)
# TUNSETIFF: a layer-3 tun device without the packet-information prefix.
fcntl.ioctl(tun, 0x400454CA, struct.pack("16sH", b"lvsdecap", 0x0001 | 0x1000))
done = bad = 0
print("ready", flush=True)
while True:
    for r in select.select([raw, sys.stdin], [], [])[0]:
        if r is sys.stdin:
            if not sys.stdin.readline():
                sys.exit(0)
            print("decapsulated", done, "bad", bad, flush=True)
        else:
            p = raw.recv(65535)
            ok = (len(p) >= 40 and p[0] >> 4 == 6
                  and struct.unpack("!H", p[4:6])[0] + 40 == len(p) and p[24:40] == vip)
            if ok:
                os.write(tun, p)
                done += 1
            else:
                bad += 1
"#;

/// The bytes of the first packet `tcpdump -xx` printed (link header included).
fn tcpdump_hex(out: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut started = false;
    for line in out.lines() {
        let hex = line.trim_start();
        if let Some(rest) = hex.strip_prefix("0x") {
            started = true;
            let data = rest.split_once(':').map_or("", |(_, d)| d);
            for word in data.split_whitespace() {
                for i in (0..word.len()).step_by(2) {
                    bytes.push(u8::from_str_radix(&word[i..i + 2], 16).expect("hex"));
                }
            }
        } else if started {
            break;
        }
    }
    bytes
}

fn ip6(b: &[u8]) -> std::net::Ipv6Addr {
    let a: [u8; 16] = b.try_into().expect("16 bytes");
    a.into()
}

/// VS/TUN over IPv6: the client's GETs (`curl -6`) reach r1 wrapped in IPv6-in-IPv6, and r1
/// answers the client directly (through the router: the service counts no outbound packet).
///
/// Proven on every kernel, from r1's wire (tcpdump on its eth0): the first tunnelled frame goes
/// to r1's MAC from the director's; its outer IPv6 header has next header 41, a payload length
/// of exactly the inner packet, source the director's LAN address (not the VIP, which r1 holds
/// itself) and destination r1; inside is the client's SYN to the VIP with a valid TCP checksum
/// (IPv6 pseudo-header).
///
/// Where the kernel has the `ip6tnl` driver, r1 decapsulates with a real device (`lvs6tnl`,
/// mode ip6ip6), and its receive counter shows the tunnel carried the connections. Where it
/// does not (`ip link add ... type ip6tnl` says "Unknown device type"), the endpoint is a
/// userspace decapsulator in r1's namespace (a raw socket of protocol 41 and a tun device):
/// the pages curl gets prove the director's side of VS/TUN over IPv6 with real TCP to a real
/// HTTP server, not that the kernel's driver accepts the packets. The test says which ran.
#[test]
fn tun6_encapsulates_ipv6_in_ipv6_and_the_real_server_answers_directly() {
    let Some(mut tb) = Testbed::start(
        "tun6_encapsulates_ipv6_in_ipv6_and_the_real_server_answers_directly",
        "tun",
    ) else {
        return;
    };
    tb.service6("-t", 80, "-s rr", "-i", &[1]);
    let listing = tb.adm("-L -n");
    assert!(listing.contains("Tunnel"), "{listing}");

    let endpoint = tb.tunnel_endpoint(
        "r1",
        &[
            "ip", "link", "add", "lvs6tnl", "type", "ip6tnl", "mode", "ip6ip6", "local", RS6[0],
        ],
        "ip6tnl",
    );
    let mut decap = None;
    let device = match endpoint {
        Endpoint::Kernel => "lvs6tnl",
        Endpoint::Userspace => {
            let h = tb.spawn("r1", &["python3", "-c", DECAP6, VIP6]);
            let mut lines = Lines::new(tb.helper(h));
            let input = tb.helper(h).stdin.take().expect("stdin");
            assert_eq!(lines.next_line(), "ready");
            decap = Some((lines, input));
            "lvsdecap"
        }
    };
    tb.must("r1", &["ip", "link", "set", device, "up"]);
    let (cap, _err) = tcpdump(
        &mut tb,
        "r1",
        "eth0",
        &["-xx", "-c", "1"],
        "ip6 and ip6[6] == 41",
    );

    let got = tb.curls_to(VIP6, 3);
    assert_eq!(got, ["r1", "r1", "r1"]);
    let tunnelled = match decap.as_mut() {
        Some((lines, input)) => {
            writeln!(input, "stats").unwrap();
            input.flush().unwrap();
            let stats = lines.next_line();
            let f: Vec<&str> = stats.split_whitespace().collect();
            assert_eq!(f.len(), 4, "{stats}");
            assert_eq!(f[3], "0", "malformed tunnel packets: {stats}");
            f[1].parse::<u64>().expect("a count")
        }
        None => {
            let out = tb.exec(
                "r1",
                &["cat", "/sys/class/net/lvs6tnl/statistics/rx_packets"],
            );
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<u64>()
                .expect("lvs6tnl's rx_packets")
        }
    };
    // tcpdump exits by itself after the one packet (-c 1).
    let frame = tcpdump_hex(&stop_and_read(&mut tb, cap, SOON));
    check_tunnelled_frame(&tb, &frame);

    tb.assert_tunnelled(VIP6, RS6[0], tunnelled);
    println!("{tunnelled} packets came out of the tunnel ({endpoint:?} endpoint)");
}

/// The checks of the doc comment above on the first IPv6-in-IPv6 frame r1 saw.
fn check_tunnelled_frame(tb: &Testbed, f: &[u8]) {
    assert!(
        f.len() >= 14 + 40 + 40 + 20,
        "no IPv6-in-IPv6 frame captured on r1: {f:02x?}"
    );
    assert_eq!(&f[0..6], &tb.mac("r1")[..], "to r1's MAC");
    assert_eq!(&f[6..12], &tb.mac("d")[..], "from the director's MAC");
    assert_eq!(&f[12..14], &[0x86, 0xdd], "IPv6");
    let (outer, inner) = (&f[14..54], &f[54..]);
    assert_eq!(outer[0] >> 4, 6, "outer IPv6");
    assert_eq!(outer[6], 41, "next header: IPv6 (IPv6-in-IPv6)");
    assert!(outer[7] > 0, "a hop limit");
    let outer_len = usize::from(u16::from_be_bytes([outer[4], outer[5]]));
    assert_eq!(
        outer_len,
        inner.len(),
        "outer payload length = the inner packet"
    );
    assert_eq!(
        ip6(&outer[8..24]).to_string(),
        DIRECTOR6,
        "outer source: the director"
    );
    assert_eq!(
        ip6(&outer[24..40]).to_string(),
        RS6[0],
        "outer destination: r1"
    );
    assert_eq!(inner[0] >> 4, 6, "inner IPv6");
    let inner_len = usize::from(u16::from_be_bytes([inner[4], inner[5]]));
    assert_eq!(inner_len + 40, inner.len(), "a whole inner packet");
    assert_eq!(
        ip6(&inner[8..24]).to_string(),
        CLIENT6,
        "inner source: the client"
    );
    assert_eq!(
        ip6(&inner[24..40]).to_string(),
        VIP6,
        "inner destination: the VIP"
    );
    assert_eq!(inner[6], 6, "TCP inside");
    let tcp = &inner[40..];
    assert_eq!(u16::from_be_bytes([tcp[2], tcp[3]]), 80, "to port 80");
    assert_eq!(tcp[13] & 0x12, 0x02, "a SYN");
    // The TCP checksum over the IPv6 pseudo-header: addresses, length, next header.
    let len = u32::try_from(tcp.len()).expect("small");
    let pseudo = u32::from(csum(&inner[8..40], 0)) + len + 6;
    assert_eq!(csum(tcp, pseudo), 0xffff, "inner TCP checksum");
}

/// VS/TUN over IPv6 adds a 40-byte header: a full-size (1500-byte) IPv6 packet cannot be
/// tunnelled, and the client hears ICMPv6 "Packet Too Big" from the VIP with the tunnel's MTU
/// (1460): its kernel lowers the path MTU to the VIP, which the client's socket then reports.
#[test]
fn a_packet_too_big_for_the_ipv6_tunnel_gets_packet_too_big() {
    let Some(tb) = Testbed::start(
        "a_packet_too_big_for_the_ipv6_tunnel_gets_packet_too_big",
        "tun",
    ) else {
        return;
    };
    tb.adm(&format!("-A -u {} -s rr", addr_port(VIP6, 6000)));
    tb.adm(&format!(
        "-a -u {} -r {} -i -w 1",
        addr_port(VIP6, 6000),
        addr_port(RS6[0], 6000)
    ));
    let big = format!(
        r#"
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, 23, 2)  # IPV6_MTU_DISCOVER = IPV6_PMTUDISC_DO: never fragment
s.connect(("{VIP6}", 6000))
for i in range(3):
    try:
        s.send(b"x" * 1452)  # a 1500-byte IPv6 packet: no room for the outer header
    except OSError as e:
        pass
print(s.getsockopt(socket.IPPROTO_IPV6, 24))  # IPV6_MTU: the path MTU the kernel knows
"#
    );
    let mtu = wait_for("the client's path MTU to the VIP", SOON, || {
        let out = tb.exec("c", &["python3", "-c", &big]);
        let mtu = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (mtu == "1460").then_some(mtu)
    });
    assert_eq!(mtu, "1460");
    let route = tb.exec("c", &["ip", "-6", "route", "get", VIP6]);
    let route = String::from_utf8_lossy(&route.stdout);
    assert!(route.contains("mtu 1460"), "{route}");
    let drops = tb.wait_drops("too_big", |d| d.get("too_big").copied().unwrap_or(0) >= 1);
    assert!(drops.get("too_big").copied().unwrap_or(0) >= 1);
}
