//! lvs-webmon driven by a real headless Chromium (Debian's `chromium`, through
//! `playwright-core` from npm, see `tests/browser/`) against a real cluster in network
//! namespaces: client, router, director, three real HTTP servers and lvs-monitord.
//!
//! Checked: a wrong password is refused; the right one shows three healthy servers; a real
//! server whose HTTP service stops turns down on the page; an admin's click on Drain makes
//! `lvsadm -L -n` show weight 0; a viewer has no controls and a forged request is refused;
//! an IPv6 service and real server added with the page's forms show bracketed, reach the
//! director, and are drained with a click.
//! The overview's screenshot is saved under the target directory
//! (`CARGO_TARGET_TMPDIR/webmon-overview.png`).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use lvs_testsupport::cluster::{self, Cluster, RS, SOON, Testbed, VIP, text};
use support::Webmon;

/// Namespaces `w<pid><n>-*`, run directories `lvs-web-*`; lvs-director, lvsadm and
/// lvs-monitord from beside lvs-webmon (`cargo build --workspace` first).
const TESTBED: Testbed = Testbed {
    built: env!("CARGO_BIN_EXE_lvs-webmon"),
    letter: "w",
    rundir: "lvs-web",
};

/// The IPv6 service and real server the admin adds (ipvsadm's bracketed form).
const VIP6: &str = "[2001:db8::80]:80";
const RS6: &str = "[2001:db8::10]:8080";

/// Whether `lvsadm -L -n` lists the IPv6 real server, masqueraded, with `weight`.
fn lists_rs6(listing: &str, weight: &str) -> bool {
    listing
        .lines()
        .any(|l| l.split_whitespace().take(4).eq(["->", RS6, "Masq", weight]))
}

const ADMIN_PW: &str = "admin-password-1";
const VIEWER_PW: &str = "viewer-password-1";
/// Generous: chromium's first start on a loaded machine is slow.
const STEP: Duration = Duration::from_secs(180);

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// `npm ci` when playwright-core is not installed yet (scripts/test.sh does it first).
fn ensure_playwright() {
    let dir = browser_dir();
    if dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return;
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .expect("run npm (install nodejs and npm)");
    assert!(
        out.status.success(),
        "npm ci in {} failed: {}",
        dir.display(),
        text(&out.stderr)
    );
}

#[test]
fn the_console_in_a_real_browser() {
    let Some(mut c) = Cluster::start("the_console_in_a_real_browser", TESTBED) else {
        return;
    };
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: install Debian's chromium (scripts/test.sh does)"
    );
    ensure_playwright();
    c.start_monitord(&Cluster::http_config("", ""));

    let w = Webmon::start(
        Some(&c.rundir),
        "poll_interval = 1\n",
        &[
            ("admin", "admin", ADMIN_PW),
            ("viewer", "viewer", VIEWER_PW),
        ],
    );
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("webmon-overview.png");
    let _ = std::fs::remove_file(&shot);
    let service = format!("tcp/{VIP}:80");
    let servers: Vec<String> = RS.iter().map(|r| format!("{r}:80")).collect();

    let mut node = Command::new("node")
        .arg(browser_dir().join("console.mjs"))
        .current_dir(browser_dir())
        .env("WEBMON_URL", w.url())
        .env("SCREENSHOT", &shot)
        .env("ADMIN", "admin")
        .env("ADMIN_PW", ADMIN_PW)
        .env("VIEWER", "viewer")
        .env("VIEWER_PW", VIEWER_PW)
        .env("SERVICE", &service)
        .env("SERVERS", servers.join(","))
        .env("VIP6", VIP6)
        .env("RS6", RS6)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node (install nodejs)");
    let mut stdin = node.stdin.take().expect("stdin");
    let (tx, rx) = mpsc::channel();
    let out = node.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let err = node.stderr.take().expect("stderr");
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            s.push_str(&line);
            s.push('\n');
        }
        s
    });

    let mut passed = Vec::new();
    let mut done = false;
    while let Ok(line) = rx.recv_timeout(STEP) {
        eprintln!("browser: {line}");
        if let Some(name) = line.strip_prefix("OK ") {
            passed.push(name.to_owned());
        } else if let Some(step) = line.strip_prefix("STEP ") {
            match step {
                "traffic" => {
                    // Some connections, so that the counters and charts show something.
                    c.curls(30);
                }
                "kill" => c.kill_http("r1"),
                "drained" => {
                    lvs_testsupport::wait_for("lvsadm -L -n to show weight 0 for r2", SOON, || {
                        (c.weight(RS[1]) == Some(0)).then_some(())
                    });
                }
                "forged" => {
                    // The viewer's forged drain changed nothing at the director.
                    assert_eq!(c.weight(RS[2]), Some(cluster::WEIGHTS[2]));
                }
                "ipv6_added" => {
                    lvs_testsupport::wait_for(
                        "lvsadm -L -n to list the IPv6 service",
                        SOON,
                        || {
                            let l = text(&c.lvsadm(&["-L", "-n"]).stdout);
                            (l.contains(&format!("TCP  {VIP6} rr\n")) && lists_rs6(&l, "2"))
                                .then_some(())
                        },
                    );
                }
                "ipv6_drained" => {
                    lvs_testsupport::wait_for(
                        "lvsadm -L -n to show weight 0 for the IPv6 server",
                        SOON,
                        || lists_rs6(&text(&c.lvsadm(&["-L", "-n"]).stdout), "0").then_some(()),
                    );
                }
                other => panic!("unknown step {other}"),
            }
            writeln!(stdin, "GO").expect("tell the browser to go on");
        } else if line == "DONE" {
            done = true;
            break;
        }
    }
    let status = node.wait().expect("node");
    let errors = errors.join().unwrap_or_default();
    assert!(
        done && status.success(),
        "the browser test failed ({status}); passed: {passed:?}\n{errors}\n--- webmon ---\n{}",
        w.log()
    );
    assert_eq!(passed.len(), 8, "{passed:?}");
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    eprintln!("screenshot of the overview: {}", shot.display());

    // The syslog line of the drain names the admin.
    assert!(
        w.log()
            .contains("event=admin_action user=admin action=drain"),
        "{}",
        w.log()
    );
    // /metrics with a real cluster is valid OpenMetrics with the servers' states.
    let r = w.metrics();
    assert!(
        r.body.contains(&format!(
            "lvs_server_health{{service=\"{service}\",server=\"{}\",lvs_server_health=\"down\"}} 1",
            servers[0]
        )),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("lvs_server_connections_total{"),
        "{}",
        r.body
    );
    let listing = text(&c.lvsadm(&["-L", "-n"]).stdout);
    eprintln!("{listing}");
}
