//! ICMP that belongs to a tracked connection: an error from a real server reaches the client
//! rewritten as coming from the VIP (VS/NAT), and a VS/TUN packet too big for the tunnel gets
//! "fragmentation needed" back to the client, as IPVS sends.

mod common;

use common::{RS, Testbed, VIP, wait_for};

/// UDP to a NAT service whose real servers listen on nothing: each real server answers "port
/// unreachable", the director rewrites the error (outer and quoted headers) to the client, and
/// the client's connected UDP socket sees ECONNREFUSED.
#[test]
fn an_icmp_error_from_a_real_server_reaches_the_client_through_nat() {
    let Some(tb) = Testbed::start(
        "an_icmp_error_from_a_real_server_reaches_the_client_through_nat",
        "nat",
    ) else {
        return;
    };
    tb.service("-u", 5999, "-s rr", "-m", &[1, 1, 1]);
    tb.assert_udp_refused(VIP, 5999);
    let stats = tb.adm("-L -n --stats");
    let svc = stats
        .lines()
        .find(|l| l.starts_with("UDP"))
        .expect("the UDP service is listed");
    let conns: u64 = svc.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(conns >= 1, "{stats}");
}

/// VS/TUN adds 20 bytes: a full-size packet with DF set cannot be tunnelled, and the client
/// learns the tunnel's MTU from the director's "fragmentation needed" (its route cache shows it).
#[test]
fn a_packet_too_big_for_the_tunnel_gets_fragmentation_needed() {
    let Some(tb) = Testbed::start(
        "a_packet_too_big_for_the_tunnel_gets_fragmentation_needed",
        "tun",
    ) else {
        return;
    };
    tb.adm(&format!("-A -u {VIP}:6000 -s rr"));
    tb.adm(&format!("-a -u {VIP}:6000 -r {}:6000 -i -w 1", RS[0]));
    let big = format!(
        r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER = IP_PMTUDISC_DO: DF set
s.connect(("{VIP}", 6000))
for i in range(3):
    try:
        s.send(b"x" * 1472)  # 1500-byte IP packet: no room for the outer header
    except OSError as e:
        print("EMSGSIZE" if e.errno == 90 else e)
"#
    );
    let route = || {
        let out = tb.exec("c", &["ip", "route", "get", VIP]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    wait_for("the client's path MTU to the VIP", common::SOON, || {
        tb.exec("c", &["python3", "-c", &big]);
        route().contains("mtu 1480").then_some(())
    });
    let drops = tb.wait_drops("too_big", |d| d.get("too_big").copied().unwrap_or(0) >= 1);
    assert!(drops.get("too_big").copied().unwrap_or(0) >= 1);
}

/// Sends `n` UDP packets of 1500 bytes with DF set from the client to VIP:6000 through a raw
/// socket (the client's learned path MTU does not stop them), each from its own port, and
/// counts the "fragmentation needed" that come back within a second after the last.
const TOO_BIG_FLOOD: &str = r#"
import socket, struct, sys, time
vip, src, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
icmp.settimeout(0.1)
payload = b"x" * 1472
def packet(i):
    udp = struct.pack("!HHHH", 20000 + i % 40000, 6000, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xffff, 0x4000, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(vip))
    return ip + udp
t0 = time.monotonic()
for i in range(n):
    raw.sendto(packet(i), (vip, 0))
send_ms = (time.monotonic() - t0) * 1000
got, end = 0, time.monotonic() + 1.0
while time.monotonic() < end:
    try:
        d = icmp.recv(2048)
    except socket.timeout:
        continue
    if len(d) > 21 and d[20] == 3 and d[21] == 4:
        got += 1
print(got, int(send_ms) + 1)
"#;

/// A flood of packets too big for the tunnel gets "fragmentation needed" only at each
/// worker's ICMP rate (a burst of 50, then 1000 a second, as the kernel's defaults); the rest
/// are counted as `icmp_ratelimited`.
#[test]
fn fragmentation_needed_is_rate_limited() {
    let Some(tb) = Testbed::start("fragmentation_needed_is_rate_limited", "tun") else {
        return;
    };
    tb.adm(&format!("-A -u {VIP}:6000 -s rr"));
    tb.adm(&format!("-a -u {VIP}:6000 -r {}:6000 -i -w 1", RS[0]));
    let n: u64 = 5000;
    let out = tb.exec(
        "c",
        &[
            "python3",
            "-c",
            TOO_BIG_FLOOD,
            VIP,
            common::CLIENT,
            &n.to_string(),
        ],
    );
    let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (got, send_ms) = match said.split_whitespace().collect::<Vec<_>>()[..] {
        [g, s] => (g.parse::<u64>().unwrap(), s.parse::<u64>().unwrap()),
        _ => panic!("unexpected output: {said}"),
    };
    let drops = tb.wait_drops("every oversized packet counted", |d| {
        d.get("too_big").copied().unwrap_or(0) >= n
    });
    let limited = drops.get("icmp_ratelimited").copied().unwrap_or(0);
    println!(
        "{n} oversized packets in {send_ms} ms: {got} fragmentation-needed received, {limited} suppressed"
    );
    // Two workers, each: the burst, then one a millisecond while the flood lasts.
    let bound = 2 * (50 + send_ms + 10);
    assert!(got >= 1, "no fragmentation-needed at all");
    assert!(
        got <= bound,
        "{got} ICMP errors in {send_ms} ms (bound {bound})"
    );
    assert!(limited >= n - bound, "{limited} suppressed, {drops:?}");
}
