//! The second line of defence, the `SO_PEERCRED` check, against clients that really run as
//! other users. Such a client must be another process, so this test binary starts itself
//! again as that client, with other ids. It has no test harness (`harness = false` in
//! Cargo.toml): the client's code is not a test of its own, which would pass whenever it ran
//! without the variable that makes it a client, checking nothing.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use common::{config, logged, start, wait_until};
use lvs_proto::{AccessPolicy, Client, Role};
use nix::unistd::Gid;

const NAME: &str = "peer_without_permission_is_refused";

/// Set in the child: the socket to connect to.
const CHILD_ENV: &str = "LVS_PROTO_TEST_CHILD_SOCKET";

fn main() {
    if let Some(socket) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&socket));
        return;
    }
    // `cargo test FILTER` hands the filter to every test binary: honour it like the harness.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if !filters.is_empty() && !filters.iter().any(|f| NAME.contains(f.as_str())) {
        return;
    }
    if peer_without_permission_is_refused() {
        println!("test {NAME} ... ok");
    } else {
        println!("test {NAME} ... SKIPPED (needs root)");
    }
}

/// The client: connects and pings, and says how that went on stdout.
fn child(socket: &Path) {
    match Client::connect(socket, Role::Lvsadm).and_then(|mut c| c.ping()) {
        Ok(()) => println!("CHILD: ping ok"),
        Err(e) => println!("CHILD: {e}"),
    }
}

/// Runs this binary as the client with the given ids and returns its stdout.
fn connect_as(socket: &Path, uid: u32, gid: u32) -> String {
    let exe = std::env::current_exe().unwrap();
    // std's Command forks, then setgid, drops supplementary groups and setuid before exec:
    // the child really is uid/gid, as far as the kernel (and so SO_PEERCRED) is concerned.
    let out = Command::new(exe)
        .env(CHILD_ENV, socket)
        .uid(uid)
        .gid(gid)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// False when skipped (not root, and the suite allows it).
fn peer_without_permission_is_refused() -> bool {
    // The suite's policy, as every harnessed test: skip loudly, or fail where the suite
    // says every test must run.
    if !lvs_testsupport::root_or_skip(NAME) {
        return false;
    }
    let dir = common::TempRunDir::new("perm");
    let lvs_group = Gid::from_raw(4242);
    let mut cfg = config(&dir);
    cfg.access = AccessPolicy::root_and_group(lvs_group);
    let server = start(cfg);
    let socket = server.socket_path().to_path_buf();
    // Normally the directory (0750) and socket (0660) keep strangers out before they can even
    // connect. Open them up so that the SO_PEERCRED check, the second line of defence, is
    // what gets tested.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();

    let mut root_client = Client::connect(&socket, Role::Lvsadm).unwrap();

    let out = connect_as(&socket, 65534, 65534);
    assert!(
        out.contains("CHILD: the daemon refused: permission denied: uid 65534 is not root and not in group 4242"),
        "{out}"
    );
    wait_until("the refusal to be logged", || {
        logged(&[
            "event=control_client_refused daemon=",
            "role=none",
            "uid=65534 gid=65534",
            "permission denied",
        ])
    });

    // Membership by primary group is enough.
    let out = connect_as(&socket, 65534, lvs_group.as_raw());
    assert!(out.contains("CHILD: ping ok"), "{out}");

    root_client.ping().unwrap();
    true
}
