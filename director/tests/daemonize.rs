//! lvs-director as a host runs it, not with `-f`: a forking daemon (detaches, pidfile, answers,
//! stops cleanly on SIGTERM) and through its init script `etc/init.d/lvs-director` driven by
//! Debian's `start-stop-daemon`, each in a network namespace of its own (as root; SKIPPED
//! loudly otherwise).

use lvs_testsupport::daemon::Running;

/// `lvsadm --rundir R ARGS`: its stdout if it succeeded.
fn lvsadm(r: &Running<'_>, args: &[&str]) -> Option<Vec<u8>> {
    let out = std::process::Command::new(lvs_testsupport::sibling_bin(
        env!("CARGO_BIN_EXE_lvs-director"),
        "lvsadm",
    ))
    .arg("--rundir")
    .arg(r.rundir)
    .args(args)
    .output()
    .ok()?;
    out.status.success().then_some(out.stdout)
}

/// `lvsadm -L -n` gets the (empty) table.
fn answers(r: &Running<'_>) -> bool {
    lvsadm(r, &["-L", "-n"]).is_some_and(|o| o.starts_with(b"IP Virtual Server"))
}

fn config(_dir: &std::path::Path) -> String {
    "workers = 1\n".to_owned()
}

/// The reload adds a rules file: its service shows in `lvsadm -S`.
fn with_rules(dir: &std::path::Path) -> String {
    let rules = dir.join("rules");
    std::fs::write(&rules, "-A -t 192.0.2.100:80 -s rr\n").expect("write the rules");
    format!("workers = 1\nrules_file = \"{}\"\n", rules.display())
}

fn rules_applied(r: &Running<'_>) -> bool {
    lvsadm(r, &["-S", "-n"]).is_some_and(|o| o == b"-A -t 192.0.2.100:80 -s rr\n")
}

lvs_testsupport::daemon_tests!(
    "lvs-director",
    config = config,
    answers = answers,
    socket = true,
    reload = Some(lvs_testsupport::daemon::Reload {
        config: &with_rules,
        applied: &rules_applied,
    })
);
