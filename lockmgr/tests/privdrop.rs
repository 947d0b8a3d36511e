//! `user = "nobody"`: lvs-lockmgr opens its socket and state as root, then runs as that user
//! for good (its /proc status says so, with no capability), and still grants locks, which are
//! written to the state directory it was given. As root only (SKIPPED otherwise).

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use lvs_lockmgr::{LockClient, LockFlags, LockMode};
use lvs_testsupport::unit::{Foreground, assert_runs_as_nobody, nobody};
use lvs_testsupport::{root_or_skip, wait_for};

#[test]
fn lockmgr_drops_root_to_its_configured_user() {
    if !root_or_skip("lockmgr_drops_root_to_its_configured_user") {
        return;
    }
    let mut d = Foreground::start(env!("CARGO_BIN_EXE_lvs-lockmgr"), "lockd-privdrop", |dir| {
        format!(
            "state_dir = \"{}\"\nuser = \"nobody\"\n",
            dir.join("state").display()
        )
    });
    let (rundir, state) = (d.dir.join("run"), d.dir.join("state"));
    let mut client = wait_for("lvs-lockmgr's socket", Duration::from_secs(10), || {
        LockClient::connect(&rundir).ok()
    });
    assert_runs_as_nobody(d.pid());
    let (uid, _) = nobody();
    assert_eq!(std::fs::metadata(&state).unwrap().uid(), uid);

    // It still grants, and writes what it granted as nobody.
    let g = client
        .lock("default", "after-drop", LockMode::EX, LockFlags::NONE, None)
        .expect("a lock after the drop");
    client
        .unlock(g.handle, None)
        .expect("an unlock after the drop");
    let owned_by_nobody = |e: std::fs::DirEntry| e.metadata().is_ok_and(|m| m.uid() == uid);
    assert!(
        std::fs::read_dir(&state)
            .unwrap()
            .flatten()
            .all(owned_by_nobody),
        "every state file is nobody's"
    );

    let (exit, log) = d.stop();
    assert!(exit.success(), "{exit}: {log}");
    assert!(log.contains("event=privileges_dropped"), "{log}");
}
