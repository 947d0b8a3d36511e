//! lvs-monitord as a host runs it, not with `-f`: a forking daemon (detaches, pidfile, answers,
//! stops cleanly on SIGTERM) and through its init script `etc/init.d/lvs-monitord` driven by
//! Debian's `start-stop-daemon`, each in a network namespace of its own (as root; SKIPPED
//! loudly otherwise).

use lvs_testsupport::daemon::Running;

/// The daemon's socket answers the protocol's hello as monitord.
fn answers(r: &Running<'_>) -> bool {
    lvs_proto::Client::connect(&r.rundir.join("monitord.sock"), lvs_proto::Role::Lvsadm)
        .is_ok_and(|c| c.server().daemon.ends_with("monitord"))
}

/// No services: it starts and waits for the director (not running here), as after a boot.
fn config(_dir: &std::path::Path) -> String {
    String::new()
}

lvs_testsupport::daemon_tests!(
    "lvs-monitord",
    config = config,
    answers = answers,
    socket = true
);
