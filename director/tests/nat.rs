//! VS/NAT end to end: real HTTP from the client namespace through the director (two workers)
//! to the real servers' HTTP servers, and the connection-table behaviour around it.

mod common;

use std::io::Write;

use common::{CLIENT, KEEPALIVE_CLIENT, Lines, NAMES, RS, SOON, Testbed, VIP, wait_for};

fn count(names: &[String], who: &str) -> usize {
    names.iter().filter(|n| n.as_str() == who).count()
}

/// rr over three NAT servers: 12 requests go r1 r2 r3 r1 ... exactly, and the counters and
/// the connection listing agree.
#[test]
fn nat_http_rr_spreads_requests_exactly_evenly() {
    let Some(tb) = Testbed::start("nat_http_rr_spreads_requests_exactly_evenly", "nat") else {
        return;
    };
    tb.service("-t", 80, "-s rr", "-m", &[1, 1, 1]);
    let got = tb.curls(12);
    // rr hands out servers in a cycle; where the cycle starts is the scheduler's business.
    let first = NAMES
        .iter()
        .position(|n| *n == got[0])
        .expect("a known server");
    for (i, name) in got.iter().enumerate() {
        assert_eq!(name, NAMES[(first + i) % 3], "request {i} of {got:?}");
    }
    for n in NAMES {
        assert_eq!(count(&got, n), 4, "{got:?}");
    }

    let stats = tb.adm("-L -n --stats");
    let svc = stats
        .lines()
        .find(|l| l.starts_with("TCP") && l.contains(&format!("{VIP}:80")))
        .unwrap_or_else(|| panic!("no service line in\n{stats}"));
    let f: Vec<&str> = svc.split_whitespace().collect();
    assert_eq!(f[2], "12", "12 connections in\n{stats}");
    assert!(f[3].parse::<u64>().unwrap() > 0 && f[4].parse::<u64>().unwrap() > 0);
    for rs in RS {
        let l = stats
            .lines()
            .find(|l| l.contains(&format!("-> {rs}:80")))
            .unwrap_or_else(|| panic!("no line for {rs} in\n{stats}"));
        assert_eq!(l.split_whitespace().nth(2), Some("4"), "{l}");
    }
    let conns = tb.conns();
    assert_eq!(conns.len(), 12, "{conns:?}");
    for c in &conns {
        assert_eq!(c.proto, "TCP");
        assert!(c.source.starts_with(&format!("{CLIENT}:")), "{c:?}");
        assert_eq!(c.virt, format!("{VIP}:80"));
    }
    for rs in RS {
        assert_eq!(conns.iter().filter(|c| c.dest_addr() == rs).count(), 4);
    }
}

/// wrr with weights 3:2:1 over NAT: 12 requests split 6:4:2 exactly.
#[test]
fn nat_wrr_spreads_by_weight() {
    let Some(tb) = Testbed::start("nat_wrr_spreads_by_weight", "nat") else {
        return;
    };
    tb.service("-t", 80, "-s wrr", "-m", &[3, 2, 1]);
    let got = tb.curls(12);
    assert_eq!(
        (count(&got, "r1"), count(&got, "r2"), count(&got, "r3")),
        (6, 4, 2),
        "{got:?}"
    );
}

/// `-p`: every connection of one client goes to one server; a second client (another
/// address) is scheduled on its own, so the template is per client, not per service.
#[test]
fn persistence_keeps_a_client_on_one_server() {
    let Some(tb) = Testbed::start("persistence_keeps_a_client_on_one_server", "nat") else {
        return;
    };
    tb.service("-t", 80, "-s rr -p 60", "-m", &[1, 1, 1]);
    let got = tb.curls(9);
    assert!(
        got.iter().all(|n| *n == got[0]),
        "one server for one client: {got:?}"
    );

    // A second client address on the client's host.
    let ok = tb.exec(
        "c",
        &["ip", "addr", "add", "198.51.100.3/24", "dev", "eth0"],
    );
    assert!(ok.status.success());
    let other: Vec<String> = (0..6)
        .map(|_| {
            let out = tb.exec(
                "c",
                &[
                    "curl",
                    "-s",
                    "-m",
                    "5",
                    "--interface",
                    "198.51.100.3",
                    &format!("http://{VIP}/"),
                ],
            );
            assert!(out.status.success(), "curl from the second client failed");
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        })
        .collect();
    assert!(other.iter().all(|n| *n == other[0]), "{other:?}");
    assert_ne!(
        other[0], got[0],
        "rr gives the second client's template the next server"
    );

    // The first client is still where it was.
    assert_eq!(tb.curl(), got[0]);
    // Templates are listed with the connections (IPVS shows them with port 0 or as NONE).
    let listing = tb.adm("-L -n -c");
    assert!(listing.contains("198.51.100.3"), "{listing}");
}

/// The keep-alive client with its first answer.
struct Held {
    /// Its handle index and its stdout.
    h: usize,
    lines: Lines,
    /// The server that answered (its index in [`NAMES`]) and the client's port.
    i: usize,
    server: String,
    port: String,
}

/// The testbed with rr over the three NAT servers, and the keep-alive client's connection
/// to one of them; `None` when the testbed cannot run here.
fn rr_with_a_held_connection(test: &str) -> Option<(Testbed, Held)> {
    let mut tb = Testbed::start(test, "nat")?;
    tb.service("-t", 80, "-s rr", "-m", &[1, 1, 1]);
    let held = keepalive(&mut tb);
    Some((tb, held))
}

/// Spawn the keep-alive client and read which server its connection reached.
fn keepalive(tb: &mut Testbed) -> Held {
    let h = tb.spawn("c", &["python3", "-c", KEEPALIVE_CLIENT, VIP, "3"]);
    let mut lines = Lines::new(tb.helper(h));
    let (server, port) = split(&lines.next_line());
    let i = NAMES
        .iter()
        .position(|n| *n == server)
        .unwrap_or_else(|| panic!("the keep-alive client got {server:?}"));
    Held {
        h,
        lines,
        i,
        server,
        port,
    }
}

fn ask(tb: &mut Testbed, h: usize, lines: &mut Lines) -> (String, String) {
    let stdin = tb.helper(h).stdin.as_mut().expect("piped stdin");
    writeln!(stdin, "get").expect("write to the client");
    stdin.flush().expect("flush");
    split(&lines.next_line())
}

fn split(line: &str) -> (String, String) {
    let (a, b) = line.split_once(' ').unwrap_or((line, ""));
    (a.to_owned(), b.to_owned())
}

/// `-e ... -w 0`: the server gets no new connection, but a connection it already has keeps
/// working (a keep-alive HTTP client asks again on the same connection).
#[test]
fn weight_zero_stops_new_connections_but_established_ones_continue() {
    let Some((mut tb, held)) = rr_with_a_held_connection(
        "weight_zero_stops_new_connections_but_established_ones_continue",
    ) else {
        return;
    };
    let Held {
        h,
        mut lines,
        i,
        server,
        port,
    } = held;
    tb.adm(&format!("-e -t {VIP}:80 -r {}:80 -m -w 0", RS[i]));
    let listing = tb.adm("-L -n");
    assert!(
        listing
            .lines()
            .any(|l| l.contains(&format!("-> {}:80", RS[i]))
                && l.split_whitespace().nth(3) == Some("0")),
        "weight 0 listed:\n{listing}"
    );

    let got = tb.curls(8);
    assert_eq!(
        count(&got, &server),
        0,
        "no new connection to {server}: {got:?}"
    );
    let others: Vec<&str> = NAMES.iter().copied().filter(|n| *n != server).collect();
    assert_eq!(count(&got, others[0]), 4, "{got:?}");
    assert_eq!(count(&got, others[1]), 4, "{got:?}");

    // The established connection still reaches its server.
    let (again, port2) = ask(&mut tb, h, &mut lines);
    assert_eq!(again, server, "the established connection still works");
    assert_eq!(port2, port, "on the same TCP connection");
    let est = tb
        .conns()
        .into_iter()
        .find(|c| c.source == format!("{CLIENT}:{port}"))
        .expect("the keep-alive connection is listed");
    assert_eq!(est.state, "ESTABLISHED");
    assert_eq!(est.dest_addr(), RS[i]);
}

/// Edits that keep the scheduler keep its place in the cycle, and a real server keeps its
/// identity: its held connection, and its counters across the edit.
#[test]
fn edits_keep_the_schedulers_cycle_and_the_servers_connections_and_counters() {
    let Some((mut tb, held)) = rr_with_a_held_connection(
        "edits_keep_the_schedulers_cycle_and_the_servers_connections_and_counters",
    ) else {
        return;
    };
    let Held {
        h,
        mut lines,
        i: s,
        server,
        port,
    } = held;
    let next = |k: usize| NAMES[(s + k) % 3].to_owned();
    assert_eq!(tb.curls(1), vec![next(1)], "rr's cycle");

    // A new weight for the server holding the connection, and -E with the same scheduler.
    tb.adm(&format!("-e -t {VIP}:80 -r {}:80 -m -w 3", RS[s]));
    tb.adm(&format!("-E -t {VIP}:80 -s rr"));
    // rr ignores weights and goes on where it was (a new instance would start its cycle
    // again, at the server the keep-alive client got).
    assert_eq!(tb.curls(3), vec![next(2), next(0), next(1)]);

    let (again, port2) = ask(&mut tb, h, &mut lines);
    assert_eq!(
        again, server,
        "the held connection still reaches its server"
    );
    assert_eq!(port2, port, "on the same TCP connection");
    let stats = tb.adm("-L -n --stats");
    // The edited server's first connection came before the edit: it is still counted.
    for (k, want) in [(0, "2"), (1, "2"), (2, "1")] {
        let rs = RS[(s + k) % 3];
        let l = stats
            .lines()
            .find(|l| l.contains(&format!("-> {rs}:80")))
            .unwrap_or_else(|| panic!("no line for {rs} in\n{stats}"));
        assert_eq!(l.split_whitespace().nth(2), Some(want), "{rs} in\n{stats}");
    }
}

/// Deleting a real server expires its connections at once: they leave the listing, new
/// connections go to the others, and the held connection is dead.
#[test]
fn deleting_a_server_expires_its_connections() {
    let Some((mut tb, held)) =
        rr_with_a_held_connection("deleting_a_server_expires_its_connections")
    else {
        return;
    };
    let Held {
        h,
        mut lines,
        i,
        server,
        port,
    } = held;
    let source = format!("{CLIENT}:{port}");
    let held = tb
        .conns()
        .into_iter()
        .find(|c| c.source == source)
        .expect("the keep-alive connection is listed");
    assert_eq!(held.state, "ESTABLISHED");

    tb.adm(&format!("-d -t {VIP}:80 -r {}:80", RS[i]));
    wait_for("the deleted server's connections to expire", SOON, || {
        let conns = tb.conns();
        (!conns.iter().any(|c| c.dest_addr() == RS[i])).then_some(())
    });

    let got = tb.curls(6);
    assert_eq!(count(&got, &server), 0, "{got:?}");
    for n in NAMES.iter().filter(|n| **n != server) {
        assert_eq!(count(&got, n), 3, "{got:?}");
    }
    // The old connection has no entry any more: its next request gets no answer.
    let (after, _) = ask(&mut tb, h, &mut lines);
    assert_eq!(after, "ERR", "the deleted server's connection is gone");
}

/// `--set tcp tcpfin udp`: a UDP entry goes after the UDP timeout, an idle established TCP
/// connection after the TCP one.
#[test]
fn entries_expire_by_their_timeouts() {
    let Some(mut tb) = Testbed::start("entries_expire_by_their_timeouts", "nat") else {
        return;
    };
    tb.adm("--set 4 3 2");
    assert!(
        tb.adm("-L --timeout")
            .contains("Timeout (tcp tcpfin udp): 4 3 2")
    );
    tb.service("-u", 53, "-s rr", "-m", &[1, 1, 1]);
    tb.service("-t", 80, "-s rr", "-m", &[1, 1, 1]);

    // UDP: one datagram makes an entry; it goes by itself after about 2 s, not sooner.
    let sent = std::time::Instant::now();
    let out = tb.exec(
        "c",
        &[
            "python3",
            "-c",
            "import socket,sys; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); \
             s.bind(('',5353)); s.sendto(b'ping',(sys.argv[1],53))",
            VIP,
        ],
    );
    assert!(out.status.success());
    let udp_source = format!("{CLIENT}:5353");
    let seen = wait_for("the UDP entry", SOON, || {
        tb.conns().into_iter().find(|c| c.source == udp_source)
    });
    let created = std::time::Instant::now();
    assert_eq!(seen.proto, "UDP");
    assert!(seen.expire <= 2, "udp timeout 2 s: {seen:?}");
    wait_for("the UDP entry to expire", SOON, || {
        (!tb.conns().iter().any(|c| c.source == udp_source)).then_some(())
    });
    assert!(
        created.elapsed() < std::time::Duration::from_secs(6),
        "expired late: {:?}",
        created.elapsed()
    );
    // The entry was made after `sent`; a tick of slack.
    let lived = sent.elapsed();
    assert!(
        lived >= std::time::Duration::from_millis(2000 - 100),
        "expired early: gone {lived:?} after the datagram was sent (udp timeout 2 s)"
    );

    // TCP: an idle keep-alive connection, ESTABLISHED with the 4 s timeout.
    let started = std::time::Instant::now();
    // Held (not dropped) until the end: the client keeps its connection open and idle.
    let held = keepalive(&mut tb);
    let port = &held.port;
    let source = format!("{CLIENT}:{port}");
    let est = tb
        .conns()
        .into_iter()
        .find(|c| c.source == source)
        .expect("the connection is listed");
    assert_eq!(est.state, "ESTABLISHED");
    assert!(est.expire <= 4, "tcp timeout 4 s: {est:?}");
    let opened = std::time::Instant::now();
    wait_for("the idle TCP entry to expire", SOON, || {
        (!tb.conns().iter().any(|c| c.source == source)).then_some(())
    });
    assert!(opened.elapsed() < std::time::Duration::from_secs(8));
    // Its last packet came after `started`; a tick of slack.
    let lived = started.elapsed();
    assert!(
        lived >= std::time::Duration::from_millis(4000 - 100),
        "expired early: gone {lived:?} after the client started (tcp timeout 4 s)"
    );
}
