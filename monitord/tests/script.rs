//! Script checks: pass, fail with output, timeout (the process group is killed), bounded
//! output, environment. No root needed.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use lvs_monitord::config::{CheckKind, ScriptCheck};

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn script(dir: &Path, name: &str, body: &str) -> CheckKind {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    CheckKind::Script(ScriptCheck {
        command: p,
        args: vec!["one arg".into()],
    })
}

fn pid_alive(pid: &str) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[test]
fn script_pass_fail_timeout() {
    let dir = Dir(std::env::temp_dir().join(format!("lvsmon-script-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let pidfile = dir.0.join("sleeper.pid");
    let mut engine = engine();
    let t = |k| check(k, 2000, 500, 1, 1);
    let ids = [
        engine.add_target("192.0.2.7".parse().unwrap(), 8080, &[t(script(&dir.0, "pass", "echo fine; exit 0"))]),
        engine.add_target("192.0.2.7".parse().unwrap(), 8080, &[t(script(&dir.0, "fail", "echo 'disk full' >&2; exit 3"))]),
        engine.add_target(
            "192.0.2.7".parse().unwrap(),
            8080,
            &[t(script(&dir.0, "hang", &format!("sleep 30 & echo $! > {}; wait", pidfile.display())))],
        ),
        engine.add_target(
            "192.0.2.7".parse().unwrap(),
            8080,
            &[t(script(
                &dir.0,
                "env",
                "[ \"$LVS_SERVER_ADDR:$LVS_SERVER_PORT\" = 192.0.2.7:8080 ] && [ \"$1\" = 'one arg' ]",
            ))],
        ),
        engine.add_target(
            "192.0.2.7".parse().unwrap(),
            8080,
            &[t(script(&dir.0, "chatty", "head -c 1000000 /dev/zero | tr '\\0' x; exit 1"))],
        ),
        engine.add_target("192.0.2.7".parse().unwrap(), 8080, &[t(CheckKind::Script(ScriptCheck {
            command: dir.0.join("missing"),
            args: vec![],
        }))]),
    ];
    let r = first_results(&mut engine, &ids, Duration::from_secs(5));
    assert!(r[0].ok, "{:?}", r[0]);
    assert_eq!(r[0].detail, "exit status 0: fine");
    assert!(!r[1].ok);
    assert_eq!(r[1].detail, "exit status 3: disk full");
    assert!(!r[2].ok);
    assert_eq!(r[2].detail, "timeout after 500 ms (script killed)");
    assert!(
        r[2].latency >= Duration::from_millis(500),
        "early: {:?}",
        r[2]
    );
    assert!(r[3].ok, "environment and arguments: {:?}", r[3]);
    assert!(!r[4].ok);
    assert!(
        r[4].detail.starts_with("exit status 1: xxxx"),
        "{}",
        &r[4].detail[..40]
    );
    assert!(
        r[4].detail.len() < 300,
        "bounded detail: {} bytes",
        r[4].detail.len()
    );
    assert!(
        r[4].latency < Duration::from_millis(500),
        "a chatty script never blocks: {:?}",
        r[4].latency
    );
    assert!(
        !r[5].ok && r[5].detail.starts_with("starting "),
        "{:?}",
        r[5]
    );
    // The timeout killed the script's whole process group, the background sleep included.
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    let pid = pid.trim();
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while pid_alive(pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "sleep {pid} survived the timeout"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn an_ipv6_server_is_in_the_environment_in_canonical_form_without_brackets() {
    let dir = Dir(std::env::temp_dir().join(format!("lvsmon-script6-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let mut engine = engine();
    // Written long-hand: scripts see RFC 5952's form, the one lvsadm and the logs show.
    let addr = "2001:0DB8:0:0:0:0:0:0007".parse().unwrap();
    let id = engine.add_target(
        addr,
        8080,
        &[check(
            script(&dir.0, "env6", "echo \"$LVS_SERVER_ADDR|$LVS_SERVER_PORT\""),
            2000,
            500,
            1,
            1,
        )],
    );
    let r = first_results(&mut engine, &[id], Duration::from_secs(5));
    assert!(r[0].ok, "{:?}", r[0]);
    assert_eq!(r[0].detail, "exit status 0: 2001:db8::7|8080");
}
