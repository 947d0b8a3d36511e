//! What the other daemons tell the director over its control socket: the monitor's health
//! verdicts (a failed server is scheduled as weight 0 and gets its weight back), the heartbeat
//! daemon's role (standby forwards nothing), and SIGHUP reloading the rules file without
//! breaking an established connection.

mod common;

use std::io::Write;
use std::net::IpAddr;

use common::{KEEPALIVE_CLIENT, Lines, NAMES, RS, Testbed, VIP, wait_for};
use lvs_proto::{Client, HaRole, Protocol, Request, Response, Role, ServiceKey};

fn client(tb: &Testbed) -> Client {
    Client::connect(&tb.rundir.join("director.sock"), Role::Other).expect("connect to the director")
}

fn key() -> ServiceKey {
    ServiceKey {
        protocol: Protocol::Tcp,
        addr: VIP.parse().unwrap(),
        port: 80,
    }
}

fn weight_of(tb: &Testbed, rs: &str) -> Option<String> {
    tb.adm("-L -n")
        .lines()
        .find(|l| l.contains(&format!("-> {rs}:80")))
        .and_then(|l| l.split_whitespace().nth(3).map(str::to_owned))
}

#[test]
fn an_unhealthy_server_is_taken_out_and_comes_back_with_its_weight() {
    let Some(tb) = Testbed::start(
        "an_unhealthy_server_is_taken_out_and_comes_back_with_its_weight",
        "nat",
    ) else {
        return;
    };
    tb.service("-t", 80, "-s rr", "-m", &[1, 4, 1]);
    let mut c = client(&tb);
    let addr: IpAddr = RS[1].parse().unwrap();
    let r = c
        .request(Request::SetHealth {
            service: key(),
            addr,
            port: 80,
            healthy: false,
        })
        .unwrap();
    assert_eq!(r, Response::Ok);
    assert_eq!(
        weight_of(&tb, RS[1]).as_deref(),
        Some("0"),
        "listed with weight 0"
    );
    let got = tb.curls(6);
    assert!(
        got.iter().all(|n| n != NAMES[1]),
        "no new connection to the unhealthy server: {got:?}"
    );
    match c.request(Request::ListHealth).unwrap() {
        Response::Health(h) => {
            let me = h.iter().find(|d| d.addr == addr).expect("listed");
            assert!(!me.healthy);
            assert_eq!(h.iter().filter(|d| d.healthy).count(), 2);
        }
        other => panic!("unexpected answer {other:?}"),
    }
    c.request(Request::SetHealth {
        service: key(),
        addr,
        port: 80,
        healthy: true,
    })
    .unwrap();
    assert_eq!(
        weight_of(&tb, RS[1]).as_deref(),
        Some("4"),
        "the configured weight is back"
    );
    let got = tb.curls(6);
    assert!(
        got.iter().any(|n| n == NAMES[1]),
        "the server takes connections again: {got:?}"
    );
    // An unknown server is refused with ipvsadm's words, and the connection stays usable.
    let r = c
        .request(Request::SetHealth {
            service: key(),
            addr: "203.0.113.99".parse().unwrap(),
            port: 80,
            healthy: false,
        })
        .unwrap();
    assert!(
        matches!(&r, Response::Error { message, .. } if message.contains("No such destination")),
        "{r:?}"
    );
    assert_eq!(c.request(Request::Ping).unwrap(), Response::Pong);
}

#[test]
fn a_standby_director_forwards_nothing() {
    let Some(tb) = Testbed::start("a_standby_director_forwards_nothing", "nat") else {
        return;
    };
    tb.service("-t", 80, "-s rr", "-m", &[1, 1, 1]);
    tb.curl();
    let mut c = client(&tb);
    assert_eq!(
        c.request(Request::GetRole).unwrap(),
        Response::Role(HaRole::Active)
    );
    c.request(Request::SetRole {
        role: HaRole::Standby,
    })
    .unwrap();
    assert_eq!(
        c.request(Request::GetRole).unwrap(),
        Response::Role(HaRole::Standby)
    );
    assert_eq!(tb.try_curl(2), None, "a standby director must not forward");
    c.request(Request::SetRole {
        role: HaRole::Active,
    })
    .unwrap();
    wait_for("forwarding again", common::SOON, || tb.try_curl(2));
}

#[test]
fn sighup_reloads_the_rules_file_without_breaking_an_established_connection() {
    let rules = std::env::temp_dir().join(format!("lvs-e2e-rules-{}", std::process::id()));
    let write_rules = |w3: u32| {
        let mut text = format!("-A -t {VIP}:80 -s rr\n");
        for (i, w) in [1, 1, w3].iter().enumerate() {
            text += &format!("-a -t {VIP}:80 -r {}:80 -m -w {w}\n", RS[i]);
        }
        std::fs::write(&rules, text).expect("write the rules file");
    };
    write_rules(1);
    let extra = format!("rules_file = \"{}\"", rules.display());
    let Some(mut tb) = Testbed::start_with(
        "sighup_reloads_the_rules_file_without_breaking_an_established_connection",
        "nat",
        &extra,
    ) else {
        let _ = std::fs::remove_file(&rules);
        return;
    };
    assert_eq!(
        weight_of(&tb, RS[2]).as_deref(),
        Some("1"),
        "the rules file is loaded at start"
    );
    let h = tb.spawn("c", &["python3", "-c", KEEPALIVE_CLIENT, VIP, "3"]);
    let mut lines = Lines::new(tb.helper(h));
    let first = lines.next_line();
    assert!(!first.starts_with("ERR"), "{first}");

    write_rules(0);
    nix::sys::signal::kill(tb.director_pid(), nix::sys::signal::Signal::SIGHUP).unwrap();
    wait_for("the reloaded weight", common::SOON, || {
        (weight_of(&tb, RS[2]).as_deref() == Some("0")).then_some(())
    });
    let stdin = tb.helper(h).stdin.as_mut().expect("piped stdin");
    writeln!(stdin, "get").unwrap();
    stdin.flush().unwrap();
    let second = lines.next_line();
    assert_eq!(
        second, first,
        "same server, same TCP connection after the reload"
    );

    // A bad file is refused and the running rules stay.
    std::fs::write(&rules, "-A -t not-an-address:80 -s rr\n").unwrap();
    nix::sys::signal::kill(tb.director_pid(), nix::sys::signal::Signal::SIGHUP).unwrap();
    wait_for("the rejection in the log", common::SOON, || {
        tb.log_text().contains("config_rejected").then_some(())
    });
    assert_eq!(
        weight_of(&tb, RS[0]).as_deref(),
        Some("1"),
        "the old rules still run"
    );
    tb.curl();
    let _ = std::fs::remove_file(&rules);
}
