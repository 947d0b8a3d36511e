//! VS/DR and VS/TUN end to end, with the director running two workers.

mod common;

use common::{CLIENT, DIRECTOR, Lines, NAMES, RS, SOON, Testbed, VIP, wait_for};

fn count(names: &[String], who: &str) -> usize {
    names.iter().filter(|n| n.as_str() == who).count()
}

/// The service's counters from `-L -n --stats`: (conns, inpkts, outpkts).
fn service_stats(tb: &Testbed, port: u16) -> (u64, u64, u64) {
    let stats = tb.adm("-L -n --stats --exact");
    let line = stats
        .lines()
        .find(|l| l.starts_with("TCP") && l.contains(&format!("{VIP}:{port}")))
        .unwrap_or_else(|| panic!("no service line in\n{stats}"));
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(2)
        .map(|x| x.parse().expect("a number"))
        .collect();
    (f[0], f[1], f[2])
}

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
    let (conns, inpkts, outpkts) = service_stats(&tb, 80);
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

/// Captures the first IP-in-IP frame arriving on eth0 (AF_PACKET), printing it in hex, then
/// waits for the host's ICMP "protocol unreachable" answer and prints its destination;
/// TIMEOUT if either does not come. Prints `ready` once the socket is bound.
const CAPTURE_IPIP: &str = r#"
import socket, sys
# ETH_P_ALL: only those see the frames this host sends as well.
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind(("eth0", 0))
s.settimeout(float(sys.argv[1]))
print("ready", flush=True)
try:
    while True:
        f = s.recv(65535)
        if len(f) >= 14 + 20 and f[12:14] == b"\x08\x00" and f[14 + 9] == 4:
            print(f.hex(), flush=True)
            break
    # This kernel has no ipip module: having accepted the outer packet, it answers with
    # ICMP "protocol 4 unreachable" (a packet it dropped as martian gets no answer).
    while True:
        f = s.recv(65535)
        if len(f) >= 14 + 28 and f[12:14] == b"\x08\x00" and f[23] == 1 and f[34:36] == b"\x03\x02":
            print("unreachable", ".".join(map(str, f[30:34])), flush=True)
            break
except socket.timeout:
    print("TIMEOUT", flush=True)
"#;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn csum(data: &[u8], init: u32) -> u16 {
    let mut sum = init;
    for c in data.chunks(2) {
        let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    u16::try_from(sum).expect("folded")
}

fn ip4(b: &[u8]) -> String {
    format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3])
}

fn mac_of(tb: &Testbed, node: &str) -> Vec<u8> {
    let out = tb.exec(node, &["cat", "/sys/class/net/eth0/address"]);
    let s = String::from_utf8_lossy(&out.stdout);
    s.trim()
        .split(':')
        .map(|x| u8::from_str_radix(x, 16).expect("mac"))
        .collect()
}

/// VS/TUN: the client's SYN reaches the real server wrapped in IP-in-IP: outer header from
/// the director's own address to the real server, protocol 4, valid checksum; inside, the
/// client's packet to the VIP, unchanged (valid IP and TCP checksums). This kernel has no ipip
/// module, so the capture is the proof (the connection itself cannot complete); r1's kernel
/// answering "protocol 4 unreachable" shows it accepted the outer packet.
#[test]
fn tun_encapsulates_ip_in_ip_to_the_real_server() {
    let Some(mut tb) = Testbed::start("tun_encapsulates_ip_in_ip_to_the_real_server", "tun") else {
        return;
    };
    tb.service("-t", 80, "-s rr", "-i", &[1]);
    let listing = tb.adm("-L -n");
    assert!(listing.contains("Tunnel"), "{listing}");
    let h = tb.spawn("r1", &["python3", "-c", CAPTURE_IPIP, "10"]);
    let mut lines = Lines::new(tb.helper(h));
    assert_eq!(lines.next_line(), "ready");
    // The handshake cannot finish (nobody decapsulates), so curl gives up after a second.
    assert_eq!(tb.try_curl(1), None);
    let captured = lines.next_line();
    assert_ne!(captured, "TIMEOUT", "no IP-in-IP packet reached r1");
    let f = unhex(&captured);

    assert_eq!(&f[0..6], &mac_of(&tb, "r1")[..], "to r1's MAC");
    assert_eq!(&f[6..12], &mac_of(&tb, "d")[..], "from the director's MAC");
    assert_eq!(&f[12..14], &[0x08, 0x00]);
    let outer = &f[14..34];
    assert_eq!(outer[0], 0x45, "outer IPv4, no options");
    assert_eq!(outer[9], 4, "IP-in-IP");
    assert_eq!(ip4(&outer[12..16]), DIRECTOR, "outer source: the director");
    assert_eq!(
        ip4(&outer[16..20]),
        RS[0],
        "outer destination: the real server"
    );
    assert_eq!(csum(outer, 0), 0xffff, "outer header checksum");
    let outer_len = usize::from(u16::from_be_bytes([outer[2], outer[3]]));

    let inner = &f[34..];
    let ihl = usize::from(inner[0] & 0x0f) * 4;
    assert_eq!(inner[0] >> 4, 4);
    assert_eq!(ihl, 20);
    let inner_len = usize::from(u16::from_be_bytes([inner[2], inner[3]]));
    assert_eq!(outer_len, inner_len + 20, "outer length = inner + 20");
    assert_eq!(inner[9], 6, "TCP inside");
    assert_eq!(ip4(&inner[12..16]), CLIENT, "inner source: the client");
    assert_eq!(ip4(&inner[16..20]), VIP, "inner destination: the VIP");
    assert_eq!(csum(&inner[..20], 0), 0xffff, "inner header checksum");
    let tcp = &inner[20..inner_len];
    assert_eq!(u16::from_be_bytes([tcp[2], tcp[3]]), 80);
    assert_eq!(tcp[13] & 0x12, 0x02, "a SYN");
    let pseudo: u32 = u32::from(csum(&inner[12..20], 0)) + 6 + u32::try_from(tcp.len()).unwrap();
    assert_eq!(csum(tcp, pseudo), 0xffff, "inner TCP checksum");

    // r1's own stack took the outer packet as addressed to it (from a proper source, not
    // the VIP it holds itself, which it would drop as a martian): lacking the ipip module,
    // it answers "protocol unreachable" to the director.
    assert_eq!(lines.next_line(), format!("unreachable {DIRECTOR}"));

    // The director counted and listed it.
    let conns = wait_for("the tunnelled connection's entry", SOON, || {
        let c = tb.conns();
        (!c.is_empty()).then_some(c)
    });
    assert_eq!(conns[0].dest, format!("{}:80", RS[0]));
}
