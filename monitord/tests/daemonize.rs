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

/// The reload adds a service with one server: the daemon lists it as monitored.
fn with_service(_dir: &std::path::Path) -> String {
    "[[service]]\nvip = \"192.0.2.100\"\nport = 80\n\
     [[service.check]]\ntype = \"tcp\"\n\
     [[service.server]]\naddress = \"192.0.2.11\"\n"
        .to_owned()
}

fn service_listed(r: &Running<'_>) -> bool {
    let Ok(mut c) =
        lvs_proto::Client::connect(&r.rundir.join("monitord.sock"), lvs_proto::Role::Lvsadm)
    else {
        return false;
    };
    matches!(
        c.request(lvs_proto::Request::ListMonitored),
        Ok(lvs_proto::Response::Monitored(s)) if s.len() == 1
    )
}

lvs_testsupport::daemon_tests!(
    "lvs-monitord",
    config = config,
    answers = answers,
    socket = true,
    reload = Some(lvs_testsupport::daemon::Reload {
        config: &with_service,
        applied: &service_listed,
    })
);
