//! lvs-monitord end to end: the real daemon against the real director in the namespace
//! testbed, real HTTP servers, a real SMTP server. Each test has its own namespaces (unique
//! prefix) and cleans up on failure; SKIPPED when not root (except the config test, which
//! needs no namespaces).

mod cluster;

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster::*;
use nix::sys::signal::{Signal, kill};

const SERVICE: &str = "tcp/203.0.113.100:80";

/// Rows of `ctl list` for the test service.
fn list_rows(c: &Cluster) -> Vec<Vec<String>> {
    let out = c.ctl(&["list"]);
    assert!(out.status.success(), "ctl list: {}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// Waits until every configured server has had a passing check.
fn wait_all_checked(c: &Cluster) {
    wait_for("a passing check of every server", SOON, || {
        let rows = list_rows(c);
        let ok = rows
            .iter()
            .filter(|r| r.len() > 8 && r[4] == "up" && r[8] == "ok")
            .count();
        (ok == 3).then_some(())
    });
}

fn wait_weight(c: &Cluster, rs: &str, weight: u32, limit: Duration) -> Duration {
    let t0 = Instant::now();
    wait_for(&format!("{rs} at weight {weight}"), limit, || {
        (c.weight(rs) == Some(weight)).then_some(())
    });
    t0.elapsed()
}

/// For `secs`, `lvsadm -L -n` keeps showing exactly `want` (polled every 100 ms).
fn weights_hold(c: &Cluster, want: &[(&str, u32)], secs: u64) {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        let w = c.weights();
        for (rs, weight) in want {
            assert_eq!(
                w.get(*rs),
                Some(weight),
                "{rs} changed weight: {w:?}\n{}",
                c.monitord_log()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// server_down / server_up / director_update lines of monitord's log after byte `from`.
fn flaps_since(c: &Cluster, from: usize) -> Vec<String> {
    c.monitord_log()
        .get(from..)
        .unwrap_or("")
        .lines()
        .filter(|l| {
            l.contains("event=server_down")
                || l.contains("event=server_up")
                || l.contains("event=director_update ")
                || l.contains("event=sorry_server")
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_dead_http_server_is_quiesced_within_fall_returns_after_rise_and_is_mailed() {
    let test = "a_dead_http_server_is_quiesced_within_fall_returns_after_rise_and_is_mailed";
    let Some(mut c) = Cluster::start(test, TESTBED) else {
        return;
    };
    let smtp = Smtp::start(&c.ns("d"), &c.rundir.join("mail"));
    let alert = format!(
        "[alert]\nnode = \"director1\"\n[alert.mail]\nserver = \"127.0.0.1\"\nport = {}\n\
         from = \"lvs@example.org\"\nto = [\"ops@example.org\"]\nretry_min_ms = 100\n\
         retry_max_ms = 500\n",
        smtp.port
    );
    c.start_monitord(&Cluster::http_config(&alert, ""));
    wait_all_checked(&c);
    assert_eq!(c.weights(), Cluster::original_weights());
    let names: HashSet<String> = c.curls(8).into_iter().collect();
    assert_eq!(names.len(), 3, "all three servers answer before: {names:?}");

    // Kill r2's HTTP server: out within the fall window (3 failures, 1 s apart).
    let t0 = Instant::now();
    c.kill_http("r2");
    wait_weight(&c, RS[1], 0, SOON);
    let detection = t0.elapsed();
    println!("detection time (HTTP server killed -> weight 0 in lvsadm): {detection:?}");
    // fall = 3 checks 1 s apart: the first may fail at once, the third two intervals later,
    // never sooner (less a tick of slack).
    assert!(
        detection >= Duration::from_millis(2 * 1000 - 200)
            && detection < Duration::from_millis(4500),
        "r2 took {detection:?} to go (fall = 3 x 1 s)"
    );
    let w = c.weights();
    assert_eq!(
        (w[RS[0]], w[RS[2]]),
        (1, 1),
        "the others keep their weights"
    );
    let answers = c.curls(12);
    assert!(
        answers.iter().all(|n| n == "r1" || n == "r3"),
        "only r1 and r3 answer: {answers:?}"
    );
    assert!(answers.iter().any(|n| n == "r1") && answers.iter().any(|n| n == "r3"));

    // The alert mail: server, service and reason.
    let mail = wait_for("the server_down mail", Duration::from_secs(30), || {
        smtp.messages()
            .into_iter()
            .find(|m| m.contains("server_down"))
    });
    for needle in ["203.0.113.12:80", SERVICE, "reason:"] {
        assert!(
            mail.contains(needle),
            "{needle:?} missing from the mail:\n{mail}"
        );
    }
    let reason = mail
        .lines()
        .find(|l| l.starts_with("reason:"))
        .unwrap_or_default();
    // The server process is gone, its port closed: the check's connect is refused.
    assert!(
        reason.contains("http:80/ failed 3 times: connect: Connection refused"),
        "the reason says why: {reason}"
    );
    println!("mail reason line: {reason}");

    // Back: after rise (2 passes, 1 s apart), with its original weight.
    let t1 = Instant::now();
    c.start_http("r2");
    wait_weight(&c, RS[1], 2, SOON);
    let recovery = t1.elapsed();
    println!("recovery time (HTTP server back -> weight 2 in lvsadm): {recovery:?}");
    // rise = 2 passes 1 s apart: one interval at least (less a tick of slack).
    assert!(
        recovery >= Duration::from_millis(1000 - 200) && recovery < Duration::from_millis(3500),
        "r2 took {recovery:?} to return (rise = 2 x 1 s)"
    );
    assert_eq!(c.weights(), Cluster::original_weights());
    let names: HashSet<String> = c.curls(9).into_iter().collect();
    assert!(names.contains("r2"), "r2 answers again: {names:?}");
    wait_for("the server_up mail", Duration::from_secs(30), || {
        smtp.messages()
            .into_iter()
            .find(|m| m.contains("server_up") && m.contains("203.0.113.12:80"))
    });

    // One down and one up event, for r2 only.
    let downs = c.monitord_lines("event=server_down");
    let ups = c.monitord_lines("event=server_up");
    assert_eq!(downs.len(), 1, "{downs:?}");
    assert_eq!(ups.len(), 1, "{ups:?}");
    assert!(
        downs[0].contains("server=203.0.113.12:80") && ups[0].contains("server=203.0.113.12:80")
    );
    c.stop_monitord();
}

#[test]
fn restarting_monitord_or_the_director_flaps_nothing() {
    let test = "restarting_monitord_or_the_director_flaps_nothing";
    let Some(mut c) = Cluster::start(test, TESTBED) else {
        return;
    };
    c.start_monitord(&Cluster::http_config("", ""));
    wait_all_checked(&c);
    // r3 down first: its down state must survive both restarts too.
    c.kill_http("r3");
    wait_weight(&c, RS[2], 0, SOON);
    let want = [(RS[0], 1), (RS[1], 2), (RS[2], 0)];

    // monitord restarts: SIGTERM leaves the director alone, the new one starts in the
    // director's state.
    c.stop_monitord();
    weights_hold(&c, &want, 1);
    let mark = c.monitord_log().len();
    c.restart_monitord();
    weights_hold(&c, &want, 5);
    let flaps = flaps_since(&c, mark);
    assert!(flaps.is_empty(), "monitord's restart flapped: {flaps:?}");
    let rows = list_rows(&c);
    let states: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r[2].as_str(), r[4].as_str()))
        .collect();
    assert_eq!(
        states,
        [
            ("203.0.113.11:80", "up"),
            ("203.0.113.12:80", "up"),
            ("203.0.113.13:80", "down")
        ]
    );

    // The director restarts (its rules come back from its rules file with every server
    // healthy): monitord reconnects and re-applies r3's verdict; nobody flaps.
    let mark = c.monitord_log().len();
    c.stop_director();
    c.start_director();
    wait_weight(&c, RS[2], 0, SOON);
    wait_for("monitord's resync", SOON, || {
        (!c.monitord_log()[mark..]
            .lines()
            .all(|l| !l.contains("event=director_resync")))
        .then_some(())
    });
    weights_hold(&c, &want, 5);
    let flaps: Vec<String> = flaps_since(&c, mark)
        .into_iter()
        .filter(|l| !(l.contains("event=director_update ") && l.contains("203.0.113.13")))
        .collect();
    assert!(
        flaps.is_empty(),
        "the director's restart flapped: {flaps:?}"
    );
    let answers = c.curls(6);
    assert!(
        answers.iter().all(|n| n == "r1" || n == "r2"),
        "{answers:?}"
    );
    c.stop_monitord();
}

#[test]
fn maintenance_through_the_cli_holds_a_healthy_server_out_until_turned_off() {
    let test = "maintenance_through_the_cli_holds_a_healthy_server_out_until_turned_off";
    let Some(mut c) = Cluster::start(test, TESTBED) else {
        return;
    };
    c.start_monitord(&Cluster::http_config("", ""));
    wait_all_checked(&c);
    let vip = format!("{VIP}:80");
    let r2 = format!("{}:80", RS[1]);

    let out = c.ctl(&["maintenance", "on", "-t", &vip, "-r", &r2]);
    assert!(
        out.status.success(),
        "ctl maintenance on: {}",
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("maintenance on"));
    wait_weight(&c, RS[1], 0, SOON);
    let answers = c.curls(8);
    assert!(!answers.iter().any(|n| n == "r2"), "{answers:?}");
    let row = list_rows(&c)
        .into_iter()
        .find(|r| r[2] == r2)
        .expect("r2 listed");
    assert_eq!(
        (row[4].as_str(), row[5].as_str(), row[6].as_str()),
        ("up", "yes", "no"),
        "{row:?}"
    );
    // Its checks pass, and it stays out; across a restart of monitord too.
    weights_hold(&c, &[(RS[1], 0), (RS[0], 1), (RS[2], 1)], 3);
    c.stop_monitord();
    c.restart_monitord();
    weights_hold(&c, &[(RS[1], 0)], 4);

    let out = c.ctl(&["maintenance", "off", "-t", &vip, "-r", &r2]);
    assert!(
        out.status.success(),
        "ctl maintenance off: {}",
        text(&out.stderr)
    );
    wait_weight(&c, RS[1], 2, SOON);
    assert_eq!(c.weights(), Cluster::original_weights());

    // An unknown server is refused with a reason and exit code 1.
    let out = c.ctl(&["maintenance", "on", "-t", &vip, "-r", "203.0.113.99:80"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("203.0.113.99:80"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(c.monitord_lines("event=maintenance ").len(), 2);
    c.stop_monitord();
}

const GOOD: &str = r#"
[[service]]
vip = "192.0.2.1"
port = 80
    [[service.server]]
    address = "127.0.0.1"
    port = PORT
"#;

#[test]
fn check_config_names_file_line_and_reason_for_malformed_ipv6() {
    let dir = std::env::temp_dir().join(format!("lvs-mon-cfg6-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("monitord.toml");
    let check = |text_: &str| {
        std::fs::write(&cfg, text_).unwrap();
        let out = Command::new(monitord_bin())
            .arg("--check-config")
            .arg("-c")
            .arg(&cfg)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    let service = |server: &str| {
        format!(
            "[[service]]\nvip = \"[2001:db8::100]\"\nport = 80\n\
             [[service.server]]\naddress = \"{server}\"\n"
        )
    };
    let (code, out, _) = check(&service("[2001:db8::11]:8080"));
    assert_eq!(code, Some(0));
    assert_eq!(out.trim(), format!("{}: configuration OK", cfg.display()));
    for (server, reason) in [
        (
            "2001:db8::zz",
            "address `2001:db8::zz`: not an IPv6 address: `z` is not a hexadecimal digit",
        ),
        (
            "[2001:db8::11:8080",
            "address `[2001:db8::11:8080`: `[` without its `]`: write `[IPV6]` or `[IPV6]:PORT`",
        ),
        (
            "2001:db8:0:0:0:0:0:0:11",
            "address `2001:db8:0:0:0:0:0:0:11`: not an IPv6 address: 9 groups of the eight an address has (or use `::`)",
        ),
    ] {
        let (code, _, err) = check(&service(server));
        assert_eq!(code, Some(1), "{server}: {err}");
        assert_eq!(err.trim(), format!("{}:5:11: {reason}", cfg.display()));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Kills the child when the test fails half-way.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_monitord_ctl(rundir: &Path, servers: usize) {
    wait_for("lvs-monitord ctl list", SOON, || {
        let out = Command::new(monitord_bin())
            .args(["ctl", "--rundir"])
            .arg(rundir)
            .arg("list")
            .output()
            .ok()?;
        (out.status.success() && text(&out.stdout).lines().count() == servers + 1).then_some(())
    });
}

#[test]
fn a_bad_config_is_refused_with_file_and_line_at_start_and_on_reload() {
    let dir = std::env::temp_dir().join(format!("lvs-mon-cfg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let good = GOOD.replace("PORT", &port.to_string());
    let cfg = dir.join("monitord.toml");

    let bad_files = [
        ("unknown key", format!("{good}    colour = \"red\"\n"), 8),
        ("bad address", good.replace("127.0.0.1", "127.0.0.300"), 6),
        ("negative interval", format!("interval = -1\n{good}"), 1),
    ];
    for (what, text_, line) in &bad_files {
        std::fs::write(&cfg, text_).unwrap();
        let out = Command::new(monitord_bin())
            .args(["-f", "--no-syslog", "--rundir"])
            .arg(&dir)
            .arg("-c")
            .arg(&cfg)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        let at = format!("{}:{line}:", cfg.display());
        assert!(err.contains(&at), "{what}: {at} missing from {err:?}");
        println!("{what}: {}", err.trim());
    }

    // A running daemon refuses a bad reload and keeps its configuration.
    std::fs::write(&cfg, &good).unwrap();
    let log = std::fs::File::create(dir.join("monitord.log")).unwrap();
    let mut guard = KillOnDrop(
        Command::new(monitord_bin())
            .args(["-f", "--no-syslog", "--rundir"])
            .arg(&dir)
            .arg("-c")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let child = &mut guard.0;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    wait_monitord_ctl(&dir, 1);
    std::fs::write(&cfg, format!("{good}    colour = \"red\"\n")).unwrap();
    kill(pid, Signal::SIGHUP).unwrap();
    let logtext = || std::fs::read_to_string(dir.join("monitord.log")).unwrap_or_default();
    let rejected = wait_for("event=config_rejected", SOON, || {
        logtext()
            .lines()
            .find(|l| l.contains("event=config_rejected"))
            .map(str::to_owned)
    });
    assert!(rejected.contains("line=8"), "{rejected}");
    assert!(rejected.contains(&cfg.display().to_string()), "{rejected}");
    assert!(
        child.try_wait().unwrap().is_none(),
        "monitord died on a bad reload"
    );
    wait_monitord_ctl(&dir, 1);

    // A good reload with a second server is taken.
    std::fs::write(
        &cfg,
        format!("{good}    [[service.server]]\n    address = \"127.0.0.2\"\n    port = {port}\n"),
    )
    .unwrap();
    kill(pid, Signal::SIGHUP).unwrap();
    wait_monitord_ctl(&dir, 2);
    kill(pid, Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}\n{}", logtext());
    drop(listener);
    let _ = std::fs::remove_dir_all(&dir);
}
