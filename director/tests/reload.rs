//! SIGHUP re-reads the configuration file. Without a `rules_file`, the virtual services made
//! with `lvsadm` (and the monitor's verdicts on their real servers) stay exactly as they are;
//! with one, the file's rules are what remains.

mod common;

use std::net::IpAddr;

use common::{NAMES, RS, SOON, Testbed, VIP, wait_for};
use lvs_proto::{Client, Protocol, Request, Response, Role, ServiceKey};

fn key() -> ServiceKey {
    ServiceKey {
        protocol: Protocol::Tcp,
        addr: VIP.parse().unwrap(),
        port: 80,
    }
}

/// How many times `event` is in the director's log.
fn logged(tb: &Testbed, event: &str) -> usize {
    tb.log_text().matches(&format!("event={event}")).count()
}

#[test]
fn sighup_without_a_rules_file_keeps_the_services_made_with_lvsadm() {
    let Some(tb) = Testbed::start("sighup_keeps_lvsadm_services", "nat") else {
        return;
    };
    tb.service("-t", 80, "-s rr", "-m", &[1, 1, 1]);
    tb.adm(&format!("-A -u {VIP}:53 -s wlc"));
    // The monitor's verdict: r3 is down (scheduled as weight 0).
    let mut c = Client::connect(&tb.rundir.join("director.sock"), Role::Monitord)
        .expect("connect to the director");
    let r = c
        .request(Request::SetHealth {
            service: key(),
            addr: RS[2].parse::<IpAddr>().unwrap(),
            port: 80,
            healthy: false,
        })
        .unwrap();
    assert_eq!(r, Response::Ok);
    let before = tb.adm("-L -n");
    let saved = tb.adm("-S -n");

    let kept = logged(&tb, "rules_kept");
    tb.sighup();
    wait_for("the reload", SOON, || {
        (logged(&tb, "rules_kept") > kept).then_some(())
    });
    assert_eq!(tb.adm("-S -n"), saved, "the services are still there");
    let after = tb.adm("-L -n");
    assert_eq!(after, before, "listing unchanged, r3 still at weight 0");
    assert!(after.contains(&format!("{VIP}:80")), "{after}");
    // And they still forward a real client's requests, never to the server that is down.
    let got = tb.curls(4);
    assert!(got.iter().all(|n| n != NAMES[2]), "{got:?}");
    assert!(got.iter().any(|n| n == NAMES[0]) && got.iter().any(|n| n == NAMES[1]));
}

#[test]
fn sighup_with_a_rules_file_leaves_the_files_rules() {
    let rules = std::env::temp_dir().join(format!("lvs-e2e-reload-rules-{}", std::process::id()));
    let text = format!(
        "-A -t {VIP}:80 -s rr\n-a -t {VIP}:80 -r {}:80 -m -w 1\n-a -t {VIP}:80 -r {}:80 -m -w 1\n",
        RS[0], RS[1]
    );
    std::fs::write(&rules, &text).expect("write the rules file");
    let extra = format!("rules_file = \"{}\"", rules.display());
    let Some(tb) = Testbed::start_with("sighup_applies_the_rules_file", "nat", &extra) else {
        let _ = std::fs::remove_file(&rules);
        return;
    };
    assert_eq!(tb.adm("-S -n"), text);
    tb.adm(&format!("-a -t {VIP}:80 -r {}:80 -m -w 1", RS[2]));
    tb.adm(&format!("-A -t {VIP}:8080 -s wlc"));
    assert_ne!(tb.adm("-S -n"), text);

    let reloaded = logged(&tb, "rules_reloaded");
    tb.sighup();
    wait_for("the reload", SOON, || {
        (logged(&tb, "rules_reloaded") > reloaded).then_some(())
    });
    let _ = std::fs::remove_file(&rules);
    assert_eq!(tb.adm("-S -n"), text, "the file's rules, nothing else");
    let got = tb.curls(4);
    assert!(got.iter().all(|n| n != NAMES[2]), "{got:?}");
}
