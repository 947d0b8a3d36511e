//! The director's own kernel stays silent for virtual services (no RST, no ICMP), and stops
//! being kept silent when the director stops; bad frames are counted and dropped while the
//! director keeps serving.

mod common;

use std::collections::HashMap;
use std::io::Read;

use common::{Lines, NAMES, Testbed, VIP};

/// Probes from the client, one result line each: a TCP connect to VIP:80 and a UDP datagram
/// to VIP:53 (virtual services without a usable real server), then the same to VIP:81 and
/// VIP:54 (not services: the kernel must answer those, which proves the capture works). The
/// VIP may be IPv4 or IPv6.
const PROBES: &str = r#"
import socket, sys
vip = sys.argv[1]
family = socket.AF_INET6 if ":" in vip else socket.AF_INET
def tcp(port):
    s = socket.socket(family)
    s.settimeout(1.5)
    try:
        s.connect((vip, port))
        return "connected"
    except socket.timeout:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
def udp(port):
    s = socket.socket(family, socket.SOCK_DGRAM)
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
    // Dropped at the ingress of the director's interface already, before the IP stack.
    let ingress = table
        .split("chain prerouting")
        .next()
        .and_then(|t| t.split("chain ingress").nth(1))
        .unwrap_or_else(|| panic!("no ingress chain: {table}"));
    assert!(ingress.contains("hook ingress device \"eth0\""), "{table}");
    assert!(
        ingress.contains(&format!("ip daddr {VIP} tcp dport 80 drop")),
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
    wait_listening(tb.helper(cap));
    let out = tb.exec("c", &["python3", "-c", PROBES, VIP]);
    let results = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(
        results, "timeout timeout refused refused",
        "tcp:80 udp:53 (services) tcp:81 udp:54 (not services)"
    );
    only_control_answers(tb.helper(cap), VIP);

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

/// Waits until the tcpdump `cap` says it is listening.
fn wait_listening(cap: &mut std::process::Child) {
    let mut err = std::io::BufReader::new(cap.stderr.take().expect("piped stderr"));
    let mut line = String::new();
    while !line.contains("listening on") {
        line.clear();
        let n = std::io::BufRead::read_line(&mut err, &mut line).expect("tcpdump's stderr");
        assert!(n > 0, "tcpdump did not start");
    }
}

/// What the tcpdump `cap` saw from `vip` after [`PROBES`]: exactly the two answers to the
/// control probes (the RST for port 81, the port unreachable for port 54), nothing about the
/// services' ports 80 and 53.
fn only_control_answers(cap: &mut std::process::Child, vip: &str) {
    let mut captured = String::new();
    cap.stdout
        .take()
        .expect("piped stdout")
        .read_to_string(&mut captured)
        .expect("tcpdump's output");
    let lines: Vec<&str> = captured.lines().collect();
    assert_eq!(lines.len(), 2, "only the two control answers:\n{captured}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("{vip}.81 >")) && l.contains("Flags [R")),
        "the RST for port 81:\n{captured}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("udp port 54") && l.contains("unreachable")),
        "the ICMP port unreachable for port 54:\n{captured}"
    );
    assert!(
        !captured.contains(&format!("{vip}.80 >")) && !captured.contains("port 53"),
        "nothing about the services:\n{captured}"
    );
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

// ------------------------------------------------------------------ IPv6

const VIP6: &str = "2001:db8:f::100";
const CLIENT6: &str = "2001:db8:c::2";
const RS6: &str = "2001:db8:1::11";
const DIRECTOR6_RS_SIDE: &str = "2001:db8:1::1";

/// Three namespaces joined by veth pairs: client `c` (2001:db8:c::2) -- director `d`
/// (2001:db8:c::1, the VIP 2001:db8:f::100, 2001:db8:1::1; forwarding on) -- real server `r`
/// (2001:db8:1::11). No lvs-director runs: the guard is applied by the library, from a thread
/// inside `d`. Namespaces and the helpers started in them go on drop, also when a test fails.
struct Net6 {
    prefix: String,
    children: Vec<std::process::Child>,
}

fn ip(args: &[&str]) -> std::process::Output {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Net6 {
    fn new() -> Net6 {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let net = Net6 {
            prefix: format!("lvsg6-{}-{n}", std::process::id()),
            children: Vec::new(),
        };
        for node in ["c", "d", "r"] {
            ip(&["netns", "add", &net.ns(node)]);
            net.ip(node, &["link", "set", "lo", "up"]);
        }
        for (a, a_if, b, b_if) in [("c", "cd", "d", "dc"), ("r", "rd", "d", "dr")] {
            ip(&[
                "link",
                "add",
                a_if,
                "netns",
                &net.ns(a),
                "type",
                "veth",
                "peer",
                "name",
                b_if,
                "netns",
                &net.ns(b),
            ]);
        }
        // `nodad`: usable at once, no duplicate address detection to wait for.
        for (node, dev, addr) in [
            ("c", "cd", "2001:db8:c::2/64"),
            ("d", "dc", "2001:db8:c::1/64"),
            ("d", "dc", "2001:db8:f::100/128"),
            ("d", "dr", "2001:db8:1::1/64"),
            ("r", "rd", "2001:db8:1::11/64"),
        ] {
            net.ip(node, &["addr", "add", addr, "dev", dev, "nodad"]);
            net.ip(node, &["link", "set", dev, "up"]);
        }
        net.ip(
            "c",
            &["-6", "route", "add", "default", "via", "2001:db8:c::1"],
        );
        net.ip(
            "r",
            &["-6", "route", "add", "default", "via", DIRECTOR6_RS_SIDE],
        );
        net.exec("d", &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
        net
    }

    fn ns(&self, node: &str) -> String {
        format!("{}-{node}", self.prefix)
    }

    fn ip(&self, node: &str, args: &[&str]) -> std::process::Output {
        let ns = self.ns(node);
        let mut all = vec!["-n", ns.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    fn command(&self, node: &str, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new("ip");
        c.args(["netns", "exec", &self.ns(node)]).args(args);
        c
    }

    /// Runs a command in `node` and returns its output, whatever its status.
    fn exec(&self, node: &str, args: &[&str]) -> std::process::Output {
        self.command(node, args).output().expect("run a command")
    }

    /// Starts a helper in `node`, stdout and stderr piped; killed on drop.
    fn spawn(&mut self, node: &str, args: &[&str]) -> &mut std::process::Child {
        let child = self
            .command(node, args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start a helper");
        self.children.push(child);
        self.children.last_mut().expect("just pushed")
    }

    /// Runs `f` on a thread that entered `node`'s network namespace (the thread then ends).
    fn run_in<T: Send>(&self, node: &str, f: impl FnOnce() -> T + Send) -> T {
        use std::os::fd::AsRawFd;
        let path = format!("/run/netns/{}", self.ns(node));
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = std::fs::File::open(&path).expect("open the namespace");
                // SAFETY: setns(2) on a valid namespace descriptor changes only this thread's
                // network namespace; the thread runs `f` and ends.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("the namespace thread panicked")
        })
    }

    /// The director host's own HTTP request to the real server's port 8080, as lvs-monitord
    /// checks it: the status code in stdout.
    fn health_check(&self) -> std::process::Output {
        let url = format!("http://[{RS6}]:8080/");
        let args = [
            "curl",
            "-6",
            "-s",
            "-o",
            "/dev/null",
            "-m",
            "2",
            "-w",
            "%{http_code}",
        ];
        let mut all = args.to_vec();
        all.push(&url);
        self.exec("d", &all)
    }

    /// The client's probes of the VIP (see [`PROBES`]).
    fn probes(&self) -> String {
        let out = self.exec("c", &["python3", "-c", PROBES, VIP6]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Net6 {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for node in ["c", "d", "r"] {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &self.ns(node)])
                .output();
        }
    }
}

/// In `r`: one UDP datagram to the client's port 7000 from each source port given, in order.
const SEND_FROM_PORTS: &str = r#"
import socket, sys
for port in sys.argv[2:]:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.bind(("::", int(port)))
    s.sendto(b"reply", (sys.argv[1], 7000))
    s.close()
print("sent", flush=True)
"#;

/// In `c`: prints "ready", then the source port of every datagram to port 7000, one a line,
/// until port 5354's arrives (or 10 s pass).
const RECEIVE_PORTS: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 7000))
s.settimeout(10)
print("ready", flush=True)
try:
    while True:
        _, peer = s.recvfrom(100)
        print(peer[1], flush=True)
        if peer[1] == 5354:
            break
except socket.timeout:
    print("timeout", flush=True)
"#;

/// The guard for an IPv6 VIP, on real IPv6 traffic: before it, the director host's kernel
/// answers the client's SYN to VIP:80 with a RST and its datagram to VIP:53 with an ICMPv6
/// port unreachable; with it, nothing comes back for those (tcpdump on the client sees only the
/// answers to the control probes of ports 81 and 54), a VS/NAT reply from the real server's
/// service port is not forwarded to the client (another port's is), and the director host's
/// own HTTP health check of the real server still works. Removing the table gives the kernel
/// its packets back.
#[test]
fn kernel_neither_answers_nor_forwards_for_an_ipv6_vip() {
    use lvs_director::nftables::{Endpoint, L4, NftRules, NftTable};
    if !common::root_or_skip("kernel_neither_answers_nor_forwards_for_an_ipv6_vip") {
        return;
    }
    let mut net = Net6::new();
    let web = net.spawn(
        "r",
        &["python3", "-m", "http.server", "--bind", RS6, "8080"],
    );
    let _ = web.id();
    common::wait_for("the real server's HTTP server", common::SOON, || {
        (String::from_utf8_lossy(&net.health_check().stdout) == "200").then_some(())
    });

    // Unguarded, the kernel answers for the VIP itself.
    assert_eq!(net.probes(), "refused refused refused refused");

    let vip: std::net::IpAddr = VIP6.parse().unwrap();
    let rs: std::net::IpAddr = RS6.parse().unwrap();
    let rules = NftRules {
        services: vec![
            Endpoint::new(vip, L4::Tcp, 80),
            Endpoint::new(vip, L4::Udp, 53),
        ],
        nat_servers: vec![
            Endpoint::new(rs, L4::Tcp, 8080),
            Endpoint::new(rs, L4::Udp, 5353),
        ],
        // The director's interfaces: packets to the VIP are dropped at their ingress.
        devices: vec!["dc".into(), "dr".into()],
        ..NftRules::default()
    };
    let mut guard = net.run_in("d", || {
        let mut guard = NftTable::new("nft");
        guard.apply(&rules).expect("install the guard");
        guard
    });
    let listed = net.exec("d", &["nft", "list", "table", "inet", "lvs_director"]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert_eq!(
        listed
            .matches(&format!("ip6 daddr {VIP6} tcp dport 80 drop"))
            .count(),
        2,
        "at ingress and at prerouting: {listed}"
    );
    assert!(
        listed.contains("hook ingress devices = { dc, dr }"),
        "{listed}"
    );

    // Everything the VIP sends the client but neighbour discovery: two answers are expected,
    // to the control probes.
    let filter = format!("src host {VIP6} and (tcp or udp or (icmp6 and ip6[40] < 128))");
    let cap = net.spawn(
        "c",
        &[
            "timeout", "20", "tcpdump", "-i", "cd", "-n", "-l", "-c", "2", &filter,
        ],
    );
    wait_listening(cap);
    assert_eq!(
        net.probes(),
        "timeout timeout refused refused",
        "tcp:80 udp:53 (services) tcp:81 udp:54 (not services)"
    );
    only_control_answers(net.children.last_mut().expect("tcpdump"), VIP6);

    // A VS/NAT reply (from the real server's guarded port) is not forwarded; the same from
    // another port is, after it on the same path.
    let rx = net.spawn("c", &["python3", "-c", RECEIVE_PORTS, CLIENT6]);
    let mut rx_lines = common::Lines::new(rx);
    assert_eq!(rx_lines.next_line(), "ready");
    let sent = net.exec(
        "r",
        &["python3", "-c", SEND_FROM_PORTS, CLIENT6, "5353", "5354"],
    );
    assert_eq!(String::from_utf8_lossy(&sent.stdout).trim(), "sent");
    assert_eq!(
        rx_lines.next_line(),
        "5354",
        "the guarded reply got through"
    );

    // The director host's own connection to the real server's guarded port works.
    assert_eq!(String::from_utf8_lossy(&net.health_check().stdout), "200");

    // Removed: the kernel answers port 80 again.
    net.run_in("d", || guard.remove().expect("remove the guard"));
    let listed = net.exec("d", &["nft", "list", "table", "inet", "lvs_director"]);
    assert!(!listed.status.success(), "the table is gone");
    assert!(net.probes().starts_with("refused refused"));
}
