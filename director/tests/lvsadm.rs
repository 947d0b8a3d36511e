//! lvsadm against the real director with real traffic in namespaces: scheduler flags (`-b`)
//! reach the plugin, counters count and `-Z` zeroes them, `--rate` follows a burst,
//! `--persistent-conn` counts the persistence templates, `-L -t` lists one service, `-E`
//! changes the scheduler, and refusals carry ipvsadm's words and exit codes; an ipvsadm 1.31
//! save file (NAT, DR, tunnels, persistence, scheduler flags, thresholds) round-trips through
//! `-R` and `-S`, `-R` applies line by line, and traffic flows after it. No fake: what the
//! director answers is what a sysadmin would see.

mod common;

use std::collections::HashMap;
use std::process::Output;
use std::time::{Duration, Instant};

use common::{NAMES, RS, SOON, Testbed, VIP, wait_for};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `lvsadm ARGS` (split on blanks): exit code, stderr, stdout.
fn run(tb: &Testbed, args: &str) -> (i32, String, String) {
    let v: Vec<&str> = args.split_whitespace().collect();
    let Output {
        status,
        stdout,
        stderr,
    } = tb.lvsadm(&v);
    (
        status.code().expect("lvsadm exited"),
        text(&stderr),
        text(&stdout),
    )
}

/// How many answers came from each real server.
fn tally(names: &[String]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for n in names {
        *m.entry(n.clone()).or_insert(0) += 1;
    }
    m
}

/// The numbers of the line of `listing` that starts with `first` (the service or a server).
fn row(listing: &str, first: &str) -> Vec<u64> {
    let line = listing
        .lines()
        .find(|l| l.split_whitespace().take(2).any(|w| w == first))
        .unwrap_or_else(|| panic!("no line for {first} in:\n{listing}"));
    line.split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect()
}

#[test]
fn scheduler_flags_are_ipvsadm_s_and_reach_the_plugin() {
    let Some(tb) = Testbed::start("scheduler_flags_are_ipvsadm_s_and_reach_the_plugin", "nat")
    else {
        return;
    };
    // What every ipvsadm script writes: accepted, and the plugin hashes the port too, so one
    // client's connections (new source port each) spread over the servers.
    tb.service("-t", 80, "-s sh -b sh-port", "-m", &[1, 1, 1]);
    let seen = tally(&tb.curls(12));
    assert!(seen.len() >= 2, "sh-port spreads one client: {seen:?}");
    assert_eq!(
        tb.adm("-S -n").lines().next(),
        Some(&*format!("-A -t {VIP}:80 -s sh -b sh-port"))
    );

    // Without the flag the client sticks to one server.
    tb.adm(&format!("-E -t {VIP}:80 -s sh"));
    let seen = tally(&tb.curls(8));
    assert_eq!(
        seen.len(),
        1,
        "plain sh keeps a client on one server: {seen:?}"
    );

    // ipvsadm's order and names, whatever the order given; -S puts -b last.
    tb.adm(&format!(
        "-E -t {VIP}:80 -s sh -b flag-2,sh-fallback -p 300 -M 255.255.0.0"
    ));
    assert!(
        tb.adm(&format!("-L -n -t {VIP}:80")).contains(&format!(
            "TCP  {VIP}:80 sh (sh-fallback,sh-port) persistent 300 mask 255.255.0.0\n"
        )),
        "{}",
        tb.adm("-L -n")
    );
    assert_eq!(
        tb.adm("-S -n").lines().next(),
        Some(&*format!(
            "-A -t {VIP}:80 -s sh -p 300 -M 255.255.0.0 -b sh-fallback,sh-port"
        ))
    );

    // Our plugins' own options: `key=value` items, checked by the plugin itself.
    tb.adm(&format!("-A -t {VIP}:81 -s mh -b mh-port,table_size=251"));
    assert!(
        tb.adm("-L -n")
            .contains(&format!("TCP  {VIP}:81 mh (mh-port,table_size=251)\n")),
        "{}",
        tb.adm("-L -n")
    );
    let before = tb.adm("-S -n");
    let cases: &[(String, i32, &str)] = &[
        (
            format!("-A -t {VIP}:82 -s rr -b sh-port"),
            2,
            "incompatible scheduler flag `sh-port'\n",
        ),
        (
            format!("-A -t {VIP}:82 -s sh -b port"),
            2,
            "invalid scheduler flag `port'\n",
        ),
        (
            format!("-E -t {VIP}:81 -s mh -b sh-port"),
            2,
            "incompatible scheduler flag `sh-port'\n",
        ),
        (
            format!("-A -t {VIP}:82 -s nosuch"),
            255,
            "Scheduler or persistence engine not found\n",
        ),
        (
            format!("-E -t {VIP}:80 -s nosuch"),
            255,
            "Scheduler or persistence engine not found\n",
        ),
    ];
    for (args, code, stderr) in cases {
        assert_eq!(
            run(&tb, args),
            (*code, (*stderr).to_owned(), String::new()),
            "lvsadm {args}"
        );
    }
    // A table size the plugin refuses: the director says why (exit 255, as a refused change).
    let (code, err, _) = run(&tb, &format!("-A -t {VIP}:82 -s mh -b table_size=10"));
    assert_eq!(code, 255, "{err}");
    assert!(err.contains("table_size=10"), "{err}");
    assert_eq!(tb.adm("-S -n"), before, "nothing refused changed the rules");
    assert!(
        tb.log_text()
            .contains("event=scheduler_not_found name=nosuch"),
        "the director logs what it searched:\n{}",
        tb.log_text()
    );
}

#[test]
fn edit_changes_the_scheduler_and_traffic_follows() {
    let Some(tb) = Testbed::start("edit_changes_the_scheduler_and_traffic_follows", "nat") else {
        return;
    };
    tb.service("-t", 80, "-s rr", "-m", &[1, 2, 3]);
    let rr = tally(&tb.curls(12));
    for name in NAMES {
        assert_eq!(rr.get(name), Some(&4), "rr ignores weights: {rr:?}");
    }
    tb.adm(&format!("-E -t {VIP}:80 -s wrr"));
    let listing = tb.adm(&format!("-L -n -t {VIP}:80"));
    assert!(
        listing.starts_with(&format!(
            "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\nTCP  {VIP}:80 wrr\n"
        )),
        "{listing}"
    );
    let wrr = tally(&tb.curls(12));
    for (name, want) in NAMES.iter().zip([2, 4, 6]) {
        assert_eq!(wrr.get(*name), Some(&want), "wrr follows 1:2:3: {wrr:?}");
    }
}

/// `-L -n --stats --exact -t VIP:80`, the service row and one row per real server.
fn stats(tb: &Testbed) -> (Vec<u64>, Vec<Vec<u64>>) {
    let l = tb.adm(&format!("-L -n --stats --exact -t {VIP}:80"));
    let service = row(&l, &format!("{VIP}:80"));
    let servers = RS.iter().map(|rs| row(&l, &format!("{rs}:80"))).collect();
    (service, servers)
}

/// The counters once no packet has come for a moment (the last ACKs of closed connections).
fn settled(tb: &Testbed) -> (Vec<u64>, Vec<Vec<u64>>) {
    let mut last = stats(tb);
    let mut since = Instant::now();
    wait_for("the counters to settle", SOON, || {
        let now = stats(tb);
        if now != last {
            last = now;
            since = Instant::now();
            return None;
        }
        (since.elapsed() > Duration::from_millis(500)).then(|| last.clone())
    })
}

#[test]
fn counters_count_real_traffic_and_zero_clears_them() {
    let Some(tb) = Testbed::start("counters_count_real_traffic_and_zero_clears_them", "nat") else {
        return;
    };
    tb.service("-t", 80, "-s rr", "-m", &[1, 1, 1]);
    tb.adm(&format!("-A -t {VIP}:8080 -s rr"));

    // -L -t lists that service alone, without the version line.
    let one = tb.adm(&format!("-L -n -t {VIP}:80"));
    assert!(!one.contains("IP Virtual Server"), "{one}");
    assert!(!one.contains(":8080"), "{one}");
    assert_eq!(one.lines().filter(|l| l.contains("->")).count(), 4, "{one}");

    tb.curls(9);
    let (service, servers) = settled(&tb);
    // Conns InPkts OutPkts InBytes OutBytes (the address's digits are not numbers here).
    assert_eq!(service[0], 9, "connections: {service:?}");
    assert!(service[1] >= 9 * 4 && service[2] >= 9 * 3, "{service:?}");
    assert!(service[3] > 0 && service[4] > 0, "{service:?}");
    for s in &servers {
        assert_eq!(s[0], 3, "rr gave each server 3 connections: {servers:?}");
    }

    // --rate: a burst shows as connections and packets per second (sampled every ~2 s, so
    // keep the traffic going until a sample has seen it).
    let rate = wait_for(
        "a non-zero rate after a burst",
        Duration::from_secs(20),
        || {
            tb.curls(3);
            let l = tb.adm(&format!("-L -n --rate --exact -t {VIP}:80"));
            let r = row(&l, &format!("{VIP}:80"));
            (r[0] > 0 && r[1] > 0 && r[2] > 0).then_some(r)
        },
    );
    assert!(rate[3] > 0 && rate[4] > 0, "bytes per second too: {rate:?}");

    // -Z of one service zeroes it and its servers.
    settled(&tb);
    tb.adm(&format!("-Z -t {VIP}:80"));
    let (service, servers) = stats(&tb);
    assert_eq!(service, vec![0; 5], "after -Z -t");
    assert!(servers.iter().all(|s| s == &vec![0; 5]), "{servers:?}");

    // ... and -Z of everything after more traffic.
    tb.curls(3);
    let (service, _) = settled(&tb);
    assert_eq!(service[0], 3, "{service:?}");
    tb.adm("-Z");
    let (service, servers) = stats(&tb);
    assert_eq!(service, vec![0; 5], "after -Z");
    assert!(servers.iter().all(|s| s == &vec![0; 5]), "{servers:?}");
    let (code, err, _) = run(&tb, &format!("-Z -t {VIP}:9999"));
    assert_eq!((code, err.as_str()), (255, "No such service\n"));
}

#[test]
fn persistent_conn_counts_the_templates() {
    let Some(tb) = Testbed::start("persistent_conn_counts_the_templates", "nat") else {
        return;
    };
    tb.service("-t", 80, "-s rr -p 120", "-m", &[1, 1, 1]);
    let seen = tally(&tb.curls(6));
    assert_eq!(
        seen.len(),
        1,
        "persistence keeps the client on one server: {seen:?}"
    );
    let server = seen.keys().next().expect("one server").clone();
    let chosen = RS[NAMES
        .iter()
        .position(|n| *n == server)
        .expect("a known name")];
    let l = tb.adm("-L -n --persistent-conn");
    assert!(
        l.contains("Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn"),
        "{l}"
    );
    for rs in RS {
        // Weight PersistConn ActiveConn InActConn
        let r = row(&l, &format!("{rs}:80"));
        let want = u64::from(rs == chosen);
        assert_eq!(
            r[1], want,
            "{rs}: one template for the client's server only\n{l}"
        );
        if rs == chosen {
            assert!(r[2] + r[3] >= 6, "its connections are listed too:\n{l}");
        }
    }
}

/// A save file as `ipvsadm-save -n` 1.31 writes it (every tunnelled server with
/// `--tun-type ipip`, `-b` last, persistence with a netmask, firewall-mark services after the
/// others, `-6` after an IPv6 one's mark), with lvs-rs's `-x`/`-y` at the
/// end of a line: `lvsadm -R` into the real director and `-S -n` give the same file, the
/// plugins take the flags, the NAT service carries traffic, `-L --tun-info` shows the
/// tunnels, `-S` without `-n` names the ports, and a second `-R` with a bad line in the
/// middle keeps what came before it, as ipvsadm's restore does.
#[test]
fn ipvsadm_save_file_round_trips_through_the_director() {
    let Some(tb) = Testbed::start("ipvsadm_save_file_round_trips_through_the_director", "nat")
    else {
        return;
    };
    let [r1, r2, r3] = RS;
    let file = format!(
        "\
-A -t {VIP}:80 -s wrr
-a -t {VIP}:80 -r {r1}:80 -m -w 3
-a -t {VIP}:80 -r {r2}:80 -m -w 1 -x 500 -y 400
-a -t {VIP}:80 -r {r3}:80 -m -w 1
-A -t {VIP}:443 -s sh -p 1800 -M 255.255.255.0 -b sh-fallback,sh-port
-a -t {VIP}:443 -r {r1}:443 -g -w 1
-a -t {VIP}:443 -r {r2}:443 -g -w 1
-A -t 203.0.113.101:0 -s mh -p 300 -M 255.255.0.0 -b mh-port
-a -t 203.0.113.101:0 -r 198.18.0.21:0 -i -w 1 --tun-type ipip
-a -t 203.0.113.101:0 -r 198.18.0.22:0 -i -w 2 --tun-type ipip -x 1000 -y 800
-A -u {VIP}:53 -s rr
-a -u {VIP}:53 -r {r1}:53 -i -w 1 --tun-type ipip
-a -u {VIP}:53 -r {r3}:53 -g -w 1
-A -f 1 -s rr -p 300
-a -f 1 -r {r1}:0 -m -w 1
-a -f 1 -r {r2}:0 -g -w 2
-A -f 2 -6 -s wlc -p 60 -M 64
-a -f 2 -6 -r [2001:db8::31]:0 -g -w 1
"
    );
    assert_eq!(tb.adm_stdin("-R", &file), "");
    assert_eq!(tb.adm("-S -n"), file);
    let seen = tally(&tb.curls(10));
    assert_eq!(seen.len(), 3, "every NAT server answers: {seen:?}");
    let tun = tb.adm("-L -n --tun-info -t 203.0.113.101:0");
    assert!(
        tun.contains(
            "\n  -> 198.18.0.22:0                Tunnel  ipip          2      0          0         \n"
        ),
        "{tun}"
    );
    let named = tb.adm("-S");
    assert!(
        named.starts_with(&format!(
            "-A -t {VIP}:http -s wrr\n-a -t {VIP}:http -r {r1}:http -m -w 3\n"
        )),
        "{named}"
    );

    // Line by line: the line before the bad one stays, the one after is not read (exit 2).
    let more =
        format!("-A -t {VIP}:8080 -s rr\n-a -t {VIP}:8080 -r {r1} -w lots\n-D -t {VIP}:80\n");
    let mut child = std::process::Command::new(common::lvsadm_bin())
        .arg("--rundir")
        .arg(&tb.rundir)
        .arg("-R")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start lvsadm");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), more.as_bytes())
        .expect("write lvsadm's stdin");
    let out = child.wait_with_output().expect("lvsadm ran");
    assert_eq!(
        (out.status.code(), text(&out.stderr)),
        (Some(2), "illegal weight specified\n".to_owned())
    );
    let want = file.replacen(
        "-A -t 203.0.113.101:0",
        &format!("-A -t {VIP}:8080 -s rr\n-A -t 203.0.113.101:0"),
        1,
    );
    assert_eq!(tb.adm("-S -n"), want, "line 1 stays, line 3 was not read");
}
