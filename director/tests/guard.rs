//! The director's own kernel stays silent for virtual services (no RST, no ICMP), and stops
//! being kept silent when the director stops; bad frames are counted and dropped while the
//! director keeps serving.

mod common;

use std::collections::HashMap;
use std::io::Read;

use common::{Lines, NAMES, Testbed, VIP};

/// Probes from the client, one result line each: a TCP connect to VIP:80 and a UDP datagram
/// to VIP:53 (virtual services without a usable real server), then the same to VIP:81 and
/// VIP:54 (not services: the kernel must answer those, which proves the capture works).
const PROBES: &str = r#"
import socket, sys
vip = sys.argv[1]
def tcp(port):
    s = socket.socket()
    s.settimeout(1.5)
    try:
        s.connect((vip, port))
        return "connected"
    except socket.timeout:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
def udp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    s.connect((vip, port))
    s.send(b"probe")
    try:
        s.recv(100)
        return "answer"
    except socket.timeout:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
print(tcp(80), udp(53), tcp(81), udp(54), flush=True)
"#;

/// A virtual service whose real servers are all at weight 0 (and a UDP one likewise): the
/// client's SYN and datagram get no answer at all from the director host (tcpdump on the
/// client sees only the answers to the control probes of non-service ports), and the
/// director counts them as `no_destination`. After SIGTERM the nftables table is gone and the
/// kernel answers the VIP's port 80 itself again.
#[test]
fn kernel_sends_no_rst_for_a_virtual_service() {
    let Some(mut tb) = Testbed::start("kernel_sends_no_rst_for_a_virtual_service", "nat") else {
        return;
    };
    tb.service("-t", 80, "-s rr", "-m", &[0, 0, 0]);
    tb.service("-u", 53, "-s rr", "-m", &[0]);
    let nft = tb.exec("d", &["nft", "list", "table", "inet", "lvs_director"]);
    let table = String::from_utf8_lossy(&nft.stdout).into_owned();
    assert!(
        table.contains(&format!("ip daddr {VIP} tcp dport 80 drop")),
        "{table}"
    );
    assert!(
        table.contains(&format!("ip daddr {VIP} udp dport 53 drop")),
        "{table}"
    );

    // Everything the VIP sends the client; two packets are expected (the controls' RST and
    // ICMP port unreachable), anything for port 80 or 53 would come before them.
    let cap = tb.spawn(
        "c",
        &[
            "timeout",
            "20",
            "tcpdump",
            "-i",
            "eth0",
            "-n",
            "-l",
            "-c",
            "2",
            &format!("src host {VIP}"),
        ],
    );
    {
        let stderr = tb.helper(cap).stderr.take().expect("piped stderr");
        let mut err = std::io::BufReader::new(stderr);
        let mut line = String::new();
        std::io::BufRead::read_line(&mut err, &mut line).expect("tcpdump's stderr");
        while !line.contains("listening on") {
            line.clear();
            let n = std::io::BufRead::read_line(&mut err, &mut line).expect("tcpdump's stderr");
            assert!(n > 0, "tcpdump did not start");
        }
    }
    let out = tb.exec("c", &["python3", "-c", PROBES, VIP]);
    let results = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(
        results, "timeout timeout refused refused",
        "tcp:80 udp:53 (services) tcp:81 udp:54 (not services)"
    );
    let mut captured = String::new();
    tb.helper(cap)
        .stdout
        .take()
        .expect("piped stdout")
        .read_to_string(&mut captured)
        .expect("tcpdump's output");
    let lines: Vec<&str> = captured.lines().collect();
    assert_eq!(lines.len(), 2, "only the two control answers:\n{captured}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("{VIP}.81 >")) && l.contains("Flags [R")),
        "the RST for port 81:\n{captured}"
    );
    assert!(
        lines.iter().any(|l| l.contains("udp port 54 unreachable")),
        "the ICMP for port 54:\n{captured}"
    );
    assert!(
        !captured.contains(&format!("{VIP}.80 >")) && !captured.contains("port 53"),
        "nothing about the services:\n{captured}"
    );

    let drops = tb.wait_drops("no_destination drops for the SYN and the datagram", |d| {
        d.get("no_destination").copied().unwrap_or(0) >= 2
    });
    assert!(drops["no_destination"] >= 2, "{drops:?}");

    // Stopping the director gives the kernel its packets back: the table goes, and the
    // kernel itself refuses port 80 again.
    tb.stop_director().unwrap_or_else(|e| panic!("{e}"));
    let out = tb.exec("c", &["python3", "-c", PROBES, VIP]);
    let after = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(after.starts_with("refused refused"), "{after}");
}

/// Frames sent straight to the director's MAC from the router (raw AF_PACKET socket): five
/// each of a truncated IP header, a bad IHL, a total length below the header, a bad header
/// checksum, IP options, a fragment, a cut TCP header, plus random bytes, all for the VIP.
const BAD_FRAMES: &str = r#"
import os, socket, struct, sys
dst_mac = bytes.fromhex(sys.argv[1].replace(":", ""))
vip = socket.inet_aton(sys.argv[2])
src = socket.inet_aton("198.51.100.2")
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth1", 0))
src_mac = s.getsockname()[4]
eth = dst_mac + src_mac + b"\x08\x00"
def csum(b):
    if len(b) % 2:
        b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16:
        t = (t & 0xffff) + (t >> 16)
    return (~t) & 0xffff
def ip(payload, ihl=5, total=None, frag=0, options=b"", good_sum=True):
    total = 4 * ihl + len(payload) if total is None else total
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, 1, frag, 64, 6, 0, src, vip) + options
    c = csum(h) if good_sum else (csum(h) ^ 0x5555)
    return h[:10] + struct.pack("!H", c) + h[12:] + payload
tcp = struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, 5 << 4, 0x02, 64240, 0, 0)
frames = {
    "truncated": ip(tcp)[:10],
    "bad_ihl": ip(tcp, ihl=3, total=40),
    "bad_total_length": ip(tcp, total=12),
    "bad_ip_checksum": ip(tcp, good_sum=False),
    "ip_options": ip(tcp, ihl=6, options=b"\x01\x01\x01\x00"),
    "fragment": ip(tcp, frag=0x2000),
    "bad_tcp_header": ip(tcp[:8]),
}
for _ in range(5):
    for f in frames.values():
        s.send(eth + f)
    s.send(eth + os.urandom(30))
print("sent", flush=True)
"#;

#[test]
fn malformed_frames_are_counted_and_the_director_keeps_serving() {
    let Some(mut tb) = Testbed::start(
        "malformed_frames_are_counted_and_the_director_keeps_serving",
        "nat",
    ) else {
        return;
    };
    tb.service("-t", 80, "-s rr", "-m", &[1, 1, 1]);
    // The LAN is a Linux bridge, and with br_netfilter the bridge itself validates IPv4
    // headers and drops bad ones before they reach the director. A real switch does not:
    // turn that off in this testbed's switch namespace.
    let out = tb.exec(
        "sw",
        &["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0"],
    );
    assert!(out.status.success() || !std::path::Path::new("/proc/sys/net/bridge").exists());
    let mac = tb.exec("d", &["cat", "/sys/class/net/eth0/address"]);
    let mac = String::from_utf8_lossy(&mac.stdout).trim().to_owned();
    let h = tb.spawn("rt", &["python3", "-c", BAD_FRAMES, &mac, VIP]);
    let mut lines = Lines::new(tb.helper(h));
    assert_eq!(lines.next_line(), "sent");

    // A TCP header cut short inside a consistent IP packet is a truncation too: the
    // truncated IP header and the cut TCP header make ten.
    let want = [
        ("malformed_truncated", 10),
        ("malformed_bad_ihl", 5),
        ("malformed_bad_total_length", 5),
        ("malformed_bad_ip_checksum", 5),
        ("ip_options", 5),
        ("fragment", 5),
    ];
    let enough = |d: &HashMap<String, u64>| {
        want.iter().all(|(r, n)| d.get(*r).copied() >= Some(*n))
            // random bytes: mostly not IPv4 version 4, but any malformed counter will do
            && d.iter().filter(|(k, _)| k.starts_with("malformed_")).map(|(_, v)| v).sum::<u64>() >= 30
    };
    let drops = tb.wait_drops("a drop counter for every kind of bad frame", enough);
    assert!(enough(&drops), "{drops:?}");

    // Still alive and forwarding, exactly as before.
    let got = tb.curls(6);
    for n in NAMES {
        assert_eq!(got.iter().filter(|g| g.as_str() == n).count(), 2, "{got:?}");
    }
}
