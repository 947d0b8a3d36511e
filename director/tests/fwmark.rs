//! Firewall-mark services (`-f MARK`) with real traffic in namespaces: the director's
//! `[[fwmark]]` rules give mark 1 to TCP ports 80 and 8443 of the VIP, a persistent
//! `-A -f 1` service sends one client's connections to both ports to one real server (the
//! classic 80 + 443 sticky set-up), listings and `-S` read as ipvsadm's, the kernel guard
//! keeps the director's own kernel off both ports, and a SIGHUP with new rules is followed.

mod common;

use std::collections::HashSet;

use common::{RS, RS6, SOON, Testbed, VIP, VIP6, wait_for};

/// The second port every real server answers on (beside the testbed's port 80).
const PORT2: u16 = 8443;

const MARKS: &str = "\
[[fwmark]]
mark = 1
match = [{ proto = \"tcp\", daddr = \"203.0.113.100\", dport = [80, 8443] }]
";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Each real server also serves its name on `PORT2`, with the testbed's HTTP server.
fn serve_second_port(tb: &mut Testbed) {
    for (i, rs) in RS.iter().enumerate() {
        let name = format!("r{}", i + 1);
        let port = PORT2.to_string();
        let script = lvs_testsupport::HTTP_SERVER;
        let h = tb.spawn(&name, &["python3", "-c", script, &name, &port]);
        let url = format!("http://{rs}:{PORT2}/");
        wait_for(&format!("{name}'s server on {PORT2}"), SOON, || {
            if let Ok(Some(status)) = tb.helper(h).try_wait() {
                let mut err = String::new();
                if let Some(mut e) = tb.helper(h).stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                panic!("{name}'s server on {PORT2} exited ({status}): {err}");
            }
            let out = tb.exec(&name, &["curl", "-s", "-m", "2", &url]);
            (out.status.success() && text(&out.stdout).trim() == name).then_some(())
        });
    }
}

/// One GET of the VIP on `port` from the client: the real server's name.
fn get(tb: &Testbed, port: u16) -> String {
    let url = format!("http://{VIP}:{port}/");
    let out = tb.exec("c", &["curl", "-s", "-m", "5", &url]);
    assert!(
        out.status.success(),
        "curl {url} got no answer\n{}\n{}",
        tb.adm("-L -n --stats"),
        tb.log_text()
    );
    text(&out.stdout).trim().to_owned()
}

#[test]
fn a_persistent_fwmark_service_keeps_a_client_on_one_server_across_its_ports() {
    let Some(mut tb) = Testbed::start_with(
        "a_persistent_fwmark_service_keeps_a_client_on_one_server_across_its_ports",
        "nat",
        MARKS,
    ) else {
        return;
    };
    serve_second_port(&mut tb);
    // A mark no rule gives: accepted, as ipvsadm accepts it, and the log says so.
    tb.adm("-A -f 9 -s rr");
    wait_for("the fwmark_undefined warning", SOON, || {
        let log = tb.log_text();
        (log.contains("event=fwmark_undefined") && log.contains("FWM 9")).then_some(())
    });
    tb.adm("-D -f 9");
    tb.adm("-A -f 1 -s rr -p 300");
    for rs in RS {
        tb.adm(&format!("-a -f 1 -r {rs}:0 -m"));
    }

    // Both ports, alternately: rr alone would rotate; the mark's one template holds.
    let mut seen = HashSet::new();
    for _ in 0..4 {
        seen.insert(get(&tb, 80));
        seen.insert(get(&tb, PORT2));
    }
    assert_eq!(seen.len(), 1, "one server for both ports: {seen:?}");

    let listing = tb.adm("-L -n");
    assert!(
        listing.contains("\nFWM  1 rr persistent 300\n"),
        "{listing}"
    );
    for rs in RS {
        let line = format!("\n  -> {:<28} Masq    1", format!("{rs}:0"));
        assert!(listing.contains(&line), "{line}\n{listing}");
    }
    let save = tb.adm("-S -n");
    let mut want = String::from("-A -f 1 -s rr -p 300\n");
    for rs in RS {
        want.push_str(&format!("-a -f 1 -r {rs}:0 -m -w 1\n"));
    }
    assert_eq!(save, want);
    // Connections to both ports, and the one template, keyed by the mark as in IPVS.
    let conns = tb.adm("-L -n -c");
    for port in [80, PORT2] {
        assert!(
            conns.contains(&format!("{VIP}:{port}")),
            "connections to port {port} are listed:\n{conns}"
        );
    }
    assert!(
        conns.contains(" 0.0.0.1:0 "),
        "the mark's template:\n{conns}"
    );

    // The guard: the director's kernel keeps off both ports of the mark, in nft's syntax.
    let nft = tb.exec("d", &["nft", "list", "table", "inet", "lvs_director"]);
    let table = text(&nft.stdout);
    assert!(
        table.contains("ip daddr 203.0.113.100 tcp dport { 80, 8443 } drop"),
        "{table}"
    );

    // Without persistence the ports are scheduled one connection at a time: rr rotates.
    tb.adm("-E -f 1 -s rr");
    let names: HashSet<String> = (0..6).map(|i| get(&tb, [80, PORT2][i % 2])).collect();
    assert_eq!(names.len(), 3, "rr over the three servers: {names:?}");

    // SIGHUP with port 80 left out of the mark: the guard follows, 8443 is still the
    // service's, and port 80 is no longer forwarded.
    let config = tb.rundir.join("director.toml");
    std::fs::write(
        &config,
        format!("workers = 2\n{}", MARKS.replace("[80, 8443]", "[8443]")),
    )
    .expect("rewrite the configuration");
    tb.sighup();
    wait_for("the guard without port 80", SOON, || {
        let nft = tb.exec("d", &["nft", "list", "table", "inet", "lvs_director"]);
        let table = text(&nft.stdout);
        (table.contains("tcp dport 8443 drop") && !table.contains("80, 8443")).then_some(())
    });
    assert!(["r1", "r2", "r3"].contains(&get(&tb, PORT2).as_str()));
    let url = format!("http://{VIP}:80/");
    let out = tb.exec("c", &["curl", "-s", "-m", "2", &url]);
    assert!(
        !out.status.success(),
        "port 80 is not marked any more: {}",
        text(&out.stdout)
    );
}

/// An IPv6 firewall-mark service (`-f 2 -6`) whose rule names the VIP by a prefix: VS/NAT
/// traffic to the IPv6 VIP is marked and scheduled round robin over the three servers, and
/// the IPv4 VIP on the same port, which no rule marks, is not the service's.
#[test]
fn an_ipv6_fwmark_service_takes_the_prefix_of_its_rule() {
    let marks = "[[fwmark]]\nmark = 2\nmatch = [{ daddr = \"2001:db8::100/127\", dport = [80] }]\n";
    let Some(tb) = Testbed::start_with(
        "an_ipv6_fwmark_service_takes_the_prefix_of_its_rule",
        "nat",
        marks,
    ) else {
        return;
    };
    tb.adm("-A -f 2 -6 -s rr");
    for rs in RS6 {
        tb.adm(&format!("-a -f 2 -6 -r [{rs}]:0 -m"));
    }
    let got = tb.curls_to(VIP6, 6);
    let names: HashSet<&String> = got.iter().collect();
    assert_eq!(names.len(), 3, "rr over the three servers: {got:?}");
    let listing = tb.adm("-L -n --stats");
    assert!(listing.contains("\nFWM  2 IPv6 "), "{listing}");
    assert_eq!(
        tb.adm("-S -n").lines().next(),
        Some("-A -f 2 -6 -s rr"),
        "the save names the family"
    );
    let nft = tb.exec("d", &["nft", "list", "table", "inet", "lvs_director"]);
    let table = text(&nft.stdout);
    assert!(
        table.contains("ip6 daddr 2001:db8::100/127 meta l4proto { tcp, udp } th dport 80 drop"),
        "{table}"
    );
    assert!(
        tb.try_curl_to(VIP, 2).is_none(),
        "the IPv4 VIP is no part of an IPv6 mark"
    );
}
