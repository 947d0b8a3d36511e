//! `user = "nobody"`: lvs-webmon binds its listener and reads its certificate and users as
//! root, then runs as that user for good (its /proc status says so, with no capability), and
//! still answers over HTTPS. As root only (SKIPPED otherwise).

use std::io::{BufRead, BufReader};
use std::process::Command;
use std::time::{Duration, Instant};

use lvs_testsupport::root_or_skip;
use lvs_testsupport::unit::{Foreground, assert_runs_as_nobody};

#[test]
fn webmon_drops_root_to_its_configured_user() {
    if !root_or_skip("webmon_drops_root_to_its_configured_user") {
        return;
    }
    let mut d = Foreground::start(env!("CARGO_BIN_EXE_lvs-webmon"), "webmon-privdrop", |dir| {
        format!(
            "listen = \"127.0.0.1:0\"\ncert = \"{d}/cert.pem\"\nkey = \"{d}/key.pem\"\n\
             users_file = \"{d}/users\"\nuser = \"nobody\"\n",
            d = dir.display()
        )
    });
    // Its log, line by line, read on a thread so that a silent daemon cannot hang the test.
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = d.child.as_mut().unwrap().stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The `listening` event names the port the kernel chose.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut log = String::new();
    let url = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("no event=listening ({e}):\n{log}"));
        log.push_str(&line);
        log.push('\n');
        if let Some((_, rest)) = line.split_once("event=listening url=") {
            break rest
                .split([' ', '"'])
                .find(|w| !w.is_empty())
                .unwrap()
                .to_owned();
        }
    };
    assert!(log.contains("event=privileges_dropped"), "{log}");
    assert_runs_as_nobody(d.pid());

    let code = Command::new("curl")
        .args([
            "-sk",
            "-m",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &url,
        ])
        .output()
        .expect("run curl");
    let code = String::from_utf8_lossy(&code.stdout).into_owned();
    assert!(code.starts_with(['2', '3', '4']), "HTTP status {code}");

    let (exit, _) = d.stop();
    assert!(exit.success(), "{exit}");
}
