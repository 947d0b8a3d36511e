//! lvs-monitord end to end over IPv6: the real daemon and the real director in the namespace
//! testbed made dual-stack (the director and r1..r3 get IPv6 addresses beside their IPv4 ones,
//! `nodad` so that they are usable at once), an IPv6 virtual service added with `lvsadm`, and
//! real HTTP servers (python's http.server) on the real servers' IPv6 addresses. What is
//! asserted is what the director is told: the weights and the rows of `lvsadm -L -n`.
//! Forwarding to IPv6 servers is not needed for that (the checks go from the director's
//! namespace straight to the servers). SKIPPED when not root.

mod cluster;

use std::collections::HashMap;

use cluster::*;

const VIP6: &str = "2001:db8:100::100";
const DIRECTOR6: &str = "2001:db8::1";
const RS6: [&str; 3] = ["2001:db8::11", "2001:db8::12", "2001:db8::13"];
/// The sorry server of the IPv6 service in the remove test (nothing needs to answer there:
/// what is asserted is the director's table).
const SORRY6: &str = "[2001:db8::13]:8080";
/// Names of the IPv6 HTTP servers among the cluster's helpers (per real server).
const HTTP6: [&str; 3] = ["r1 http [v6]", "r2 http [v6]", "r3 http [v6]"];
/// The port of those servers: not 80, where the testbed's own HTTP servers answer on both
/// families (they would keep answering a check after the test killed its server).
const PORT6: u16 = 8086;

fn service6() -> String {
    format!("[{VIP6}]:80")
}

fn rs6(i: usize) -> String {
    format!("[{}]:{PORT6}", RS6[i])
}

/// `lvsadm ARGS`, asserted.
fn lvsadm(c: &Cluster, args: &[&str]) {
    let out = c.lvsadm(args);
    assert!(
        out.status.success(),
        "lvsadm {}: {}",
        args.join(" "),
        text(&out.stderr)
    );
}

/// Adds the IPv6 address `cidr` to eth0 of `node`, usable at once (no duplicate address
/// detection).
fn addr6(c: &Cluster, node: &str, cidr: &str) {
    let out = c.exec(
        node,
        &["ip", "-6", "addr", "replace", cidr, "dev", "eth0", "nodad"],
    );
    assert!(
        out.status.success(),
        "{node}: {cidr}: {}",
        text(&out.stderr)
    );
}

/// The IPv6 rows of `lvsadm -L -n`: `[ADDR]:PORT` -> weight.
fn dests6(c: &Cluster) -> HashMap<String, u32> {
    c.dests()
        .into_iter()
        .filter(|(a, _)| a.starts_with('['))
        .collect()
}

fn wait_dests6(c: &Cluster, what: &str, want: &[(String, u32)]) {
    let want: HashMap<String, u32> = want.iter().cloned().collect();
    wait_for(what, SOON, || (dests6(c) == want).then_some(()));
}

fn all_up6() -> Vec<(String, u32)> {
    (0..3).map(|i| (rs6(i), WEIGHTS[i])).collect()
}

/// The IPv4 testbed and service of [`Cluster::start`], plus IPv6: 2001:db8::1 on the
/// director's LAN interface and the VIP 2001:db8:100::100 beside it, 2001:db8::11..13 on r1..r3
/// with an HTTP server each on port [`PORT6`], and the service `[VIP6]:80` (rr, NAT, r1..r3 with
/// [`WEIGHTS`]) added with `lvsadm`; then monitord with [`config6`]`(extra_service)`, once it
/// has found every server of both services up.
fn dual_stack(test: &str, extra_service: &str) -> Option<Cluster> {
    let mut c = Cluster::start(test, TESTBED)?;
    addr6(&c, "d", &format!("{DIRECTOR6}/64"));
    addr6(&c, "d", &format!("{VIP6}/128"));
    for (i, node) in NAMES.iter().enumerate() {
        addr6(&c, node, &format!("{}/64", RS6[i]));
        start_http6(&mut c, i, PORT6);
    }
    lvsadm(&c, &["-A", "-t", &service6(), "-s", "rr"]);
    for (i, w) in WEIGHTS.iter().enumerate() {
        let w = w.to_string();
        lvsadm(
            &c,
            &["-a", "-t", &service6(), "-r", &rs6(i), "-m", "-w", &w],
        );
    }
    wait_dests6(&c, "the IPv6 service listed", &all_up6());
    c.start_monitord(&config6(extra_service));
    wait_checked_up(&c, 6);
    Some(c)
}

/// Makes [`lvs_testsupport::HTTP_SERVER`] serve IPv6, and listen without looking its address
/// up in the DNS first (http.server's `server_bind` calls `getfqdn`, which takes the resolver's
/// whole timeout in a namespace whose default route leads nowhere).
const HTTP6_PRELUDE: &str = "import http.server, socket, socketserver\n\
    http.server.HTTPServer.address_family = socket.AF_INET6\n\
    http.server.HTTPServer.server_bind = socketserver.TCPServer.server_bind\n";

/// Starts the testbed's HTTP server (with [`HTTP6_PRELUDE`]) on `[RS6[i]]:port` of r<i+1>,
/// answering its name, and waits until the director's namespace gets that answer over IPv6.
fn start_http6(c: &mut Cluster, i: usize, port: u16) {
    let script = format!("{HTTP6_PRELUDE}{}", lvs_testsupport::HTTP_SERVER);
    let child = std::process::Command::new("ip")
        .args(["netns", "exec", &c.ns(NAMES[i]), "python3", "-c", &script])
        .args([NAMES[i], &port.to_string(), RS6[i]])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start python3");
    c.helpers.push(Proc {
        child,
        name: HTTP6[i],
    });
    let url = format!("http://[{}]:{port}/", RS6[i]);
    wait_for(&format!("{url} to answer"), SOON, || {
        let out = c.exec("d", &["curl", "-g", "-s", "-m", "2", &url]);
        (text(&out.stdout).trim() == NAMES[i]).then_some(())
    });
}

/// Kills the IPv6 HTTP server of r<i+1> (its IPv4 one keeps running) and waits until its port
/// refuses connections.
fn kill_http6(c: &mut Cluster, i: usize) {
    let at = c
        .helpers
        .iter()
        .position(|h| h.name == HTTP6[i])
        .expect("an IPv6 HTTP server runs there");
    let mut h = c.helpers.remove(at);
    let _ = h.child.kill();
    let _ = h.child.wait();
    let url = format!("http://[{}]:{PORT6}/", RS6[i]);
    wait_for(&format!("{url} to refuse"), SOON, || {
        let out = c.exec("d", &["curl", "-g", "-s", "-m", "2", &url]);
        (!out.status.success()).then_some(())
    });
}

/// The monitord config: the IPv4 service of [`Cluster::http_config`] and the IPv6 service,
/// both with an HTTP check of `/`, servers written as `lvsadm -L -n` shows them.
fn config6(extra_service: &str) -> String {
    let mut cfg = Cluster::http_config("", "");
    cfg.push_str(&format!(
        "\n[[service]]\nvip = \"[{VIP6}]\"\nport = 80\n{extra_service}\n\
         [[service.check]]\ntype = \"http\"\npath = \"/\"\n"
    ));
    for (i, w) in WEIGHTS.iter().enumerate() {
        cfg.push_str(&format!(
            "[[service.server]]\naddress = \"{}\"\nweight = {w}\n",
            rs6(i)
        ));
    }
    cfg
}

/// Rows of `ctl list` that are up with a passing last check.
fn checked_up(c: &Cluster) -> Vec<String> {
    let out = c.ctl(&["list"]);
    assert!(out.status.success(), "ctl list: {}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 8 && f[4] == "up" && f[8] == "ok"
        })
        .map(str::to_owned)
        .collect()
}

fn wait_checked_up(c: &Cluster, n: usize) {
    wait_for(&format!("{n} servers checked up"), SOON, || {
        (checked_up(c).len() == n).then_some(())
    });
}

#[test]
fn a_real_server_failing_its_http_check_over_ipv6_is_quiesced_and_returns() {
    let test = "a_real_server_failing_its_http_check_over_ipv6_is_quiesced_and_returns";
    let Some(mut c) = dual_stack(test, "") else {
        return;
    };
    assert!(
        checked_up(&c)
            .iter()
            .any(|l| l.contains(&service6()) && l.contains(&rs6(1))),
        "ctl list shows IPv6 services and servers bracketed"
    );

    // r2's IPv6 HTTP server dies; its IPv4 one lives on.
    kill_http6(&mut c, 1);
    wait_dests6(
        &c,
        "[2001:db8::12]:8086 at weight 0",
        &[(rs6(0), WEIGHTS[0]), (rs6(1), 0), (rs6(2), WEIGHTS[2])],
    );
    let v4: HashMap<String, u32> = c
        .weights()
        .into_iter()
        .filter(|(a, _)| !a.starts_with('['))
        .collect();
    assert_eq!(
        v4,
        Cluster::original_weights(),
        "the IPv4 service keeps every server, r2 included"
    );
    let downs = c.monitord_lines("event=server_down");
    assert_eq!(downs.len(), 1, "{downs:?}");
    assert!(
        downs[0].contains("server=[2001:db8::12]:8086")
            && downs[0].contains(&format!("service=tcp/{}", service6())),
        "{}",
        downs[0]
    );
    assert!(
        downs[0].contains("http:8086/ failed 3 times: connect: Connection refused"),
        "{}",
        downs[0]
    );

    // Back, with its weight.
    start_http6(&mut c, 1, PORT6);
    wait_dests6(&c, "[2001:db8::12]:8086 back at weight 2", &all_up6());
    let ups = c.monitord_lines("event=server_up");
    assert_eq!(ups.len(), 1, "{ups:?}");
    assert!(ups[0].contains("server=[2001:db8::12]:8086"), "{}", ups[0]);

    // A server added with lvsadm and not in the config is found and checked (TCP connect to
    // its port): nothing listens yet, so it is quiesced; it comes back when something does.
    let extra = format!("[{}]:8081", RS6[2]);
    lvsadm(
        &c,
        &["-a", "-t", &service6(), "-r", &extra, "-m", "-w", "3"],
    );
    wait_for("the added server discovered", SOON, || {
        c.monitord_lines("event=server_discovered")
            .into_iter()
            .find(|l| l.contains(&format!("server={extra}")))
    });
    wait_for(&format!("{extra} at weight 0"), SOON, || {
        (dests6(&c).get(&extra) == Some(&0)).then_some(())
    });
    start_http6(&mut c, 2, 8081);
    wait_for(&format!("{extra} back at weight 3"), SOON, || {
        (dests6(&c).get(&extra) == Some(&3)).then_some(())
    });

    // A restart of monitord takes every IPv6 server's state from the director: no flap.
    c.stop_monitord();
    let mark = c.monitord_log().len();
    c.restart_monitord();
    wait_checked_up(&c, 7);
    let log = c.monitord_log();
    let flaps: Vec<&str> = log[mark..]
        .lines()
        .filter(|l| {
            [
                "event=server_down",
                "event=server_up",
                "event=director_update",
            ]
            .iter()
            .any(|e| l.contains(e))
        })
        .collect();
    assert!(flaps.is_empty(), "the restart flapped: {flaps:?}");
    c.stop_monitord();
}

#[test]
fn over_ipv6_remove_maintenance_and_the_sorry_server() {
    let test = "over_ipv6_remove_maintenance_and_the_sorry_server";
    let extra = format!("on_failure = \"remove\"\nsorry_server = \"{SORRY6}\"");
    let Some(mut c) = dual_stack(test, &extra) else {
        return;
    };

    kill_http6(&mut c, 1);
    wait_dests6(
        &c,
        "[2001:db8::12]:8086 removed",
        &[(rs6(0), WEIGHTS[0]), (rs6(2), WEIGHTS[2])],
    );
    assert_eq!(c.monitord_lines("action=remove").len(), 1);
    start_http6(&mut c, 1, PORT6);
    wait_dests6(
        &c,
        "[2001:db8::12]:8086 added back with weight 2",
        &all_up6(),
    );
    assert_eq!(c.monitord_lines("action=add").len(), 1);

    // Maintenance of a healthy IPv6 server through the CLI, bracketed as lvsadm writes it.
    let on = c.ctl(&["maintenance", "on", "-t", &service6(), "-r", &rs6(0)]);
    assert!(on.status.success(), "{}", text(&on.stderr));
    let in_maintenance = [(rs6(1), WEIGHTS[1]), (rs6(2), WEIGHTS[2])];
    wait_dests6(
        &c,
        "[2001:db8::11]:8086 out for maintenance",
        &in_maintenance,
    );
    // Kept across a restart (monitord.maintenance holds it as [2001:db8::11]:8086).
    c.stop_monitord();
    let kept = std::fs::read_to_string(c.rundir.join("monitord.maintenance")).unwrap();
    assert_eq!(
        kept.trim(),
        format!("tcp {} {}", service6(), rs6(0)),
        "the maintenance file"
    );
    c.restart_monitord();
    wait_checked_up(&c, 5);
    assert_eq!(
        dests6(&c),
        in_maintenance.iter().cloned().collect::<HashMap<_, _>>(),
        "still out after the restart"
    );
    let off = c.ctl(&["maintenance", "off", "-t", &service6(), "-r", &rs6(0)]);
    assert!(off.status.success(), "{}", text(&off.stderr));
    wait_dests6(&c, "[2001:db8::11]:8086 back after maintenance", &all_up6());

    // Every server down: the sorry server, written [addr]:port, takes the service; it leaves
    // when one comes back.
    for i in 0..3 {
        kill_http6(&mut c, i);
    }
    wait_dests6(&c, "only the sorry server", &[(SORRY6.into(), 1)]);
    start_http6(&mut c, 1, PORT6);
    wait_dests6(
        &c,
        "r2 back, the sorry server gone",
        &[(rs6(1), WEIGHTS[1])],
    );
    assert_eq!(c.monitord_lines("event=sorry_server_on").len(), 1);
    assert_eq!(c.monitord_lines("event=sorry_server_off").len(), 1);
    c.stop_monitord();
}
