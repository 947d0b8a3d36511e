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
    let probe = format!(
        r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
s.connect(("{VIP}", 5999))
for attempt in range(5):
    try:
        s.send(b"hello")
        s.recv(100)
        print("ANSWER"); sys.exit(0)
    except ConnectionRefusedError:
        print("REFUSED"); sys.exit(0)
    except socket.timeout:
        continue
print("TIMEOUT")
"#
    );
    let out = tb.exec("c", &["python3", "-c", &probe]);
    let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(
        said,
        "REFUSED",
        "the client must hear the real server's port unreachable\n{}",
        tb.log_text()
    );
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
