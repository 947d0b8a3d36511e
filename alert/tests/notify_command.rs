//! The notify command, run for real: arguments, environment, output, timeout.

mod support;

use std::time::{Duration, Instant};

use lvs_alert::{Alert, AlertConfig, AlertKind, Alerter, NOTIFY_PATH, NotifyConfig, NotifyEvents};
use support::{TempDir, init_log, lines_with, wait_for, write_file};

/// A script that appends its arguments and environment to `calls` next to it.
const RECORDER: &str = r#"#!/bin/sh
out="$(dirname "$0")/calls"
{
    printf 'args:'
    for a in "$@"; do printf ' [%s]' "$a"; done
    printf '\n'
    env | sort
    echo ---
} >> "$out"
echo "notified $LVS_ALERT_KIND $LVS_SERVER"
echo "to stderr" >&2
"#;

fn notify_config(command: Vec<String>, timeout_secs: u64) -> AlertConfig {
    AlertConfig {
        node: Some("director1".into()),
        notify: Some(NotifyConfig {
            command,
            timeout_secs,
            events: NotifyEvents::All,
            queue_size: 100,
        }),
        ..AlertConfig::default()
    }
}

fn records(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut records: Vec<String> = text.split("---\n").map(str::to_owned).collect();
    records.pop(); // after the last separator: empty or incomplete
    records
}

#[test]
fn the_command_gets_the_alert_in_arguments_and_environment() {
    init_log();
    let dir = TempDir::new("notify");
    let script = dir.path().join("notify.sh");
    write_file(&script, RECORDER, 0o755);
    let calls = dir.path().join("calls");
    let config = notify_config(
        vec![script.to_str().unwrap().into(), "--from-lvs".into()],
        10,
    );
    let alerter = Alerter::start(&config).unwrap();

    let start = Instant::now();
    alerter.send(Alert::server_down(
        "tcp/10.0.0.1:80",
        "10.0.0.2:80",
        "connect timeout",
    ));
    alerter.send(Alert::server_up("tcp/10.0.0.1:80", "10.0.0.2:80"));
    alerter.send(Alert::new(AlertKind::Master).service("vip-group-1"));
    assert!(start.elapsed() < Duration::from_millis(5), "send() blocked");

    let got = wait_for(Duration::from_secs(20), || {
        let r = records(&calls);
        (r.len() >= 3).then_some(r)
    })
    .expect("the command did not run three times");
    assert_eq!(got.len(), 3);
    let first = &got[0];
    let lines: Vec<&str> = first.lines().collect();
    assert_eq!(
        lines[0],
        "args: [--from-lvs] [server_down] [tcp/10.0.0.1:80] [10.0.0.2:80] [down] [connect timeout]"
    );
    for want in [
        "LVS_ALERT_KIND=server_down",
        "LVS_SERVICE=tcp/10.0.0.1:80",
        "LVS_SERVER=10.0.0.2:80",
        "LVS_STATE=down",
        "LVS_REASON=connect timeout",
        "LVS_NODE=director1",
        &format!("PATH={NOTIFY_PATH}"),
    ] {
        assert!(lines.contains(&want), "{want:?} missing from:\n{first}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("LVS_TIME=") && l.ends_with('Z'))
    );
    assert!(lines.iter().any(|l| l.starts_with("LVS_TIME_UNIX=")));
    // Nothing of the daemon's own environment leaks (HOME, CARGO_*, ...); /bin/sh adds PWD.
    let others: Vec<&&str> = lines[1..]
        .iter()
        .filter(|l| !l.starts_with("LVS_") && !l.starts_with("PATH=") && !l.starts_with("PWD="))
        .collect();
    assert!(others.is_empty(), "unexpected environment: {others:?}");
    // In order.
    assert!(
        got[1].starts_with(
            "args: [--from-lvs] [server_up] [tcp/10.0.0.1:80] [10.0.0.2:80] [up] []\n"
        )
    );
    assert!(got[2].starts_with("args: [--from-lvs] [master] [vip-group-1] [] [master] []\n"));

    // Output logged, exit logged.
    let logged = wait_for(Duration::from_secs(10), || {
        let ok = lines_with(&["event=alert_notify ", "kind=master", "status=ok"]);
        (!ok.is_empty()).then_some(ok)
    });
    assert!(logged.is_some(), "no alert_notify line");
    assert!(
        !lines_with(&[
            "event=alert_notify_output",
            "stream=stdout",
            r#"line="notified server_down 10.0.0.2:80""#
        ])
        .is_empty()
    );
    assert!(
        !lines_with(&[
            "event=alert_notify_output",
            "stream=stderr",
            r#"line="to stderr""#
        ])
        .is_empty()
    );
    assert!(alerter.shutdown(Duration::from_secs(10)));
}

#[test]
fn a_hanging_command_is_killed_at_its_timeout() {
    init_log();
    let dir = TempDir::new("hang");
    let script = dir.path().join("hang.sh");
    let pidfile = dir.path().join("pid");
    write_file(
        &script,
        &format!(
            "#!/bin/sh\necho $$ > {}\nexec sleep 60\n",
            pidfile.display()
        ),
        0o755,
    );
    let program = script.to_str().unwrap().to_owned();
    let alerter = Alerter::start(&notify_config(vec![program.clone()], 1)).unwrap();
    let start = Instant::now();
    alerter.send(
        Alert::new(AlertKind::Fault)
            .service("hang-test")
            .reason("link down"),
    );
    assert!(start.elapsed() < Duration::from_millis(5), "send() blocked");
    let failed = wait_for(Duration::from_secs(10), || {
        let l = lines_with(&["event=alert_notify_failed", &program, "timed out"]);
        (!l.is_empty()).then_some(l)
    });
    assert!(failed.is_some(), "no timeout logged");
    assert!(start.elapsed() >= Duration::from_secs(1));
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    let proc_dir = format!("/proc/{}", pid.trim());
    assert!(
        !std::path::Path::new(&proc_dir).exists(),
        "the command is still running"
    );
    assert!(alerter.shutdown(Duration::from_secs(5)));
}

#[test]
fn shutdown_kills_a_command_at_the_deadline() {
    init_log();
    let dir = TempDir::new("deadline");
    let script = dir.path().join("slow.sh");
    let pidfile = dir.path().join("pid");
    write_file(
        &script,
        &format!(
            "#!/bin/sh\necho $$ > {}\nexec sleep 60\n",
            pidfile.display()
        ),
        0o755,
    );
    let alerter =
        Alerter::start(&notify_config(vec![script.to_str().unwrap().into()], 60)).unwrap();
    alerter.send(Alert::new(AlertKind::Backup).service("deadline-test"));
    alerter.send(Alert::new(AlertKind::Master).service("deadline-test"));
    // Let the first command start.
    let pid = wait_for(Duration::from_secs(10), || {
        let pid = std::fs::read_to_string(&pidfile).ok()?;
        pid.ends_with('\n').then(|| pid.trim().to_owned())
    })
    .expect("the command did not start");
    let start = Instant::now();
    alerter.shutdown(Duration::from_millis(500));
    // The running command gets until the deadline, not less, and no more than a moment after.
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let killed = wait_for(Duration::from_secs(5), || {
        let l = lines_with(&[
            "event=alert_notify_failed",
            "kind=backup",
            "service=deadline-test",
        ]);
        (!l.is_empty()).then_some(l)
    });
    assert!(
        killed.is_some(),
        "the running command was not killed at the deadline"
    );
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    // The second one never ran, and says so.
    let skipped = wait_for(Duration::from_secs(5), || {
        let l = lines_with(&[
            "event=alert_notify_failed",
            "kind=master",
            "service=deadline-test",
        ]);
        (!l.is_empty()).then_some(l)
    })
    .expect("the command left at the deadline was not logged");
    assert!(
        skipped[0].contains(r#"error="not run: shutdown deadline""#),
        "{}",
        skipped[0]
    );
}
