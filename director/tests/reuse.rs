//! A new connection from a client port that an old, closed connection used (the entry still in
//! TIME_WAIT, as for 120 s after the server closed first) is scheduled by the service as it is
//! now, as IPVS does with `conn_reuse_mode` and `expire_nodest_conn`: after a real server was
//! removed, quiesced, or its forwarding method edited, it reaches a live server the right way.

mod common;

use common::{CLIENT, NAMES, RS, SOON, Testbed, VIP, wait_for};

/// One HTTP request from a fixed local port; the server closes first (`Connection: close`),
/// so the client's port is free at once. Prints the answering server's name, or `ERR kind`.
const FIXED_PORT_CLIENT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.settimeout(float(sys.argv[3]))
try:
    s.bind(("", int(sys.argv[2])))
    s.connect((sys.argv[1], 80))
    s.sendall(b"GET / HTTP/1.1\r\nHost: vip\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    print(data.split(b"\r\n\r\n", 1)[-1].decode().strip())
except Exception as e:
    print("ERR", type(e).__name__)
finally:
    s.close()
"#;

/// A client port of its own for each test (they run in parallel, each in its own testbed).
fn port(test: u16) -> u16 {
    let pid = u16::try_from(std::process::id() % 1000).unwrap_or(0);
    20_000 + pid * 10 + test
}

fn request(tb: &Testbed, port: u16) -> String {
    let out = tb.exec(
        "c",
        &[
            "python3",
            "-c",
            FIXED_PORT_CLIENT,
            VIP,
            &port.to_string(),
            "3",
        ],
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Wait until the connection from `port` is listed in a closing state (TIME_WAIT after the
/// server closed first); returns its state and real server.
fn closed_entry(tb: &Testbed, port: u16) -> (String, String) {
    let source = format!("{CLIENT}:{port}");
    wait_for("the closed connection's entry", SOON, || {
        tb.conns()
            .into_iter()
            .find(|c| {
                c.source == source
                    && ["TIME_WAIT", "CLOSE", "CLOSE_WAIT", "FIN_WAIT", "LAST_ACK"]
                        .contains(&c.state.as_str())
            })
            .map(|c| (c.state.clone(), c.dest_addr().to_owned()))
    })
}

fn index_of(name: &str) -> usize {
    NAMES
        .iter()
        .position(|n| *n == name)
        .unwrap_or_else(|| panic!("an answer from a known server, got {name:?}"))
}

/// The real server is removed and another added: the next connection from the same port goes
/// to the new one.
#[test]
fn a_reused_port_after_its_server_was_removed_reaches_a_live_server() {
    let Some(tb) = Testbed::start("reuse_removed", "nat") else {
        return;
    };
    let p = port(1);
    tb.service("-t", 80, "-s rr", "-m", &[1]);
    assert_eq!(request(&tb, p), "r1");
    let (state, dest) = closed_entry(&tb, p);
    assert_eq!(dest, RS[0], "{state}");
    tb.adm(&format!("-a -t {VIP}:80 -r {}:80 -m -w 1", RS[1]));
    tb.adm(&format!("-d -t {VIP}:80 -r {}:80", RS[0]));
    assert_eq!(request(&tb, p), "r2", "{}", tb.adm("-L -n -c"));
    assert!(
        tb.conns()
            .iter()
            .all(|c| c.dest_addr() != RS[0] || c.source != format!("{CLIENT}:{p}"))
    );
}

/// The server's forwarding method is edited from NAT to DR (the servers now route replies
/// themselves): the next connection from the same port is forwarded by DR, not NAT.
#[test]
fn a_reused_port_after_an_edit_to_dr_is_forwarded_by_dr() {
    let Some(tb) = Testbed::start("reuse_edited", "nat") else {
        return;
    };
    let p = port(2);
    tb.service("-t", 80, "-s rr", "-m", &[1]);
    assert_eq!(request(&tb, p), "r1");
    let (state, dest) = closed_entry(&tb, p);
    assert_eq!(dest, RS[0], "{state}");
    tb.set_mode("dr");
    tb.adm(&format!("-e -t {VIP}:80 -r {}:80 -g -w 1", RS[0]));
    assert_eq!(
        request(&tb, p),
        "r1",
        "the new connection is forwarded by DR:\n{}",
        tb.adm("-L -n -c")
    );
}

/// The server is quiesced (weight 0): the next connection from the same port goes to another
/// server; and a persistent client's template still takes it to its server.
#[test]
fn a_reused_port_after_its_server_was_quiesced_goes_elsewhere() {
    let Some(tb) = Testbed::start("reuse_quiesced", "nat") else {
        return;
    };
    let p = port(3);
    tb.service("-t", 80, "-s rr", "-m", &[1, 1]);
    let first = request(&tb, p);
    let i = index_of(&first);
    let (_, dest) = closed_entry(&tb, p);
    assert_eq!(dest, RS[i]);
    tb.adm(&format!("-e -t {VIP}:80 -r {}:80 -m -w 0", RS[i]));
    let other = NAMES[1 - i];
    for _ in 0..3 {
        assert_eq!(request(&tb, p), other, "{}", tb.adm("-L -n -c"));
        closed_entry(&tb, p);
    }

    // Persistence: a reused port finds its closed entry, which goes, and the template sends
    // the new connection to the client's server again.
    tb.adm(&format!("-D -t {VIP}:80"));
    tb.service("-t", 80, "-s rr -p 60", "-m", &[1, 1]);
    let first = request(&tb, p);
    index_of(&first);
    for _ in 0..3 {
        closed_entry(&tb, p);
        assert_eq!(request(&tb, p), first, "{}", tb.adm("-L -n -c"));
    }
}
