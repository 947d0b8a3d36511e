//! lvs-heartbeatd as a host runs it, not with `-f`: a forking daemon (detaches, pidfile, answers,
//! stops cleanly on SIGTERM) and through its init script `etc/init.d/lvs-heartbeatd` driven by
//! Debian's `start-stop-daemon`, each in a network namespace of its own (as root; SKIPPED
//! loudly otherwise).

use lvs_testsupport::daemon::Running;

/// The daemon's socket answers the protocol's hello as heartbeatd.
fn answers(r: &Running<'_>) -> bool {
    lvs_proto::Client::connect(&r.rundir.join("heartbeatd.sock"), lvs_proto::Role::Lvsadm)
        .is_ok_and(|c| c.server().daemon.ends_with("heartbeatd"))
}

/// One node whose peer never answers, over UDP on the namespace's loopback; no addresses.
fn config(dir: &std::path::Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    let key = dir.join("heartbeat.key");
    std::fs::write(&key, b"0123456789abcdef-shared-test-key").expect("write the key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    format!(
        "node_id = 1\npriority = 100\npeers = [2]\nauth_key_file = \"{}\"\n\
         epoch_file = \"{}\"\ndirector_socket = \"{}\"\n\
         [udp]\nbind = \"127.0.0.1:6694\"\npeers = [\"127.0.0.2:6694\"]\n",
        key.display(),
        dir.join("heartbeatd.epoch").display(),
        dir.join("no-director/director.sock").display()
    )
}

/// The reload adds a virtual address: the daemon's status lists it.
fn with_vip(dir: &std::path::Path) -> String {
    format!(
        "{}[[vip]]\naddr = \"192.0.2.100/24\"\ninterface = \"v0\"\n",
        config(dir)
    )
}

fn vip_listed(r: &Running<'_>) -> bool {
    let Ok(mut c) =
        lvs_proto::Client::connect(&r.rundir.join("heartbeatd.sock"), lvs_proto::Role::Lvsadm)
    else {
        return false;
    };
    matches!(
        c.request(lvs_proto::Request::HaStatus),
        Ok(lvs_proto::Response::HaStatus(s)) if s.vips.iter().any(|v| v.contains("192.0.2.100"))
    )
}

lvs_testsupport::daemon_tests!(
    "lvs-heartbeatd",
    config = config,
    answers = answers,
    socket = true,
    reload = Some(lvs_testsupport::daemon::Reload {
        config: &with_vip,
        applied: &vip_listed,
    })
);
