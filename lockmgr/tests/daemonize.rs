//! lvs-lockmgr as a host runs it, not with `-f`: a forking daemon (detaches, pidfile, answers,
//! stops cleanly on SIGTERM) and through its init script `etc/init.d/lvs-lockmgr` driven by
//! Debian's `start-stop-daemon`, each in a network namespace of its own (as root; SKIPPED
//! loudly otherwise).

use lvs_testsupport::daemon::Running;

/// The client library connects (its own hello) over the socket.
fn answers(r: &Running<'_>) -> bool {
    lvs_lockmgr::LockClient::connect(r.rundir).is_ok()
}

fn config(dir: &std::path::Path) -> String {
    format!("state_dir = \"{}\"\n", dir.join("state").display())
}

lvs_testsupport::daemon_tests!(
    "lvs-lockmgr",
    config = config,
    answers = answers,
    socket = true
);
