//! lvs-director as a host runs it, not with `-f`: a forking daemon (detaches, pidfile, answers,
//! stops cleanly on SIGTERM) and through its init script `etc/init.d/lvs-director` driven by
//! Debian's `start-stop-daemon`, each in a network namespace of its own (as root; SKIPPED
//! loudly otherwise).

use lvs_testsupport::daemon::Running;

/// `lvsadm -L -n` gets the (empty) table.
fn answers(r: &Running<'_>) -> bool {
    std::process::Command::new(lvs_testsupport::sibling_bin(
        env!("CARGO_BIN_EXE_lvs-director"),
        "lvsadm",
    ))
    .arg("--rundir")
    .arg(r.rundir)
    .args(["-L", "-n"])
    .output()
    .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"IP Virtual Server"))
}

fn config(_dir: &std::path::Path) -> String {
    "workers = 1\n".to_owned()
}

lvs_testsupport::daemon_tests!(
    "lvs-director",
    config = config,
    answers = answers,
    socket = true
);
