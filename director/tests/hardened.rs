//! The director under its shipped systemd unit's restrictions (etc/systemd/lvs-director.service),
//! emulated because PID 1 is not systemd here: only the capabilities of its
//! `CapabilityBoundingSet=`, no new privileges, a read-only root with only its run directory
//! writable. It must still forward (VS/NAT, with its nftables guard and GRO changes), upgrade
//! itself (docs/UPGRADE.md), and stop cleanly.

mod common;

use std::path::Path;

use common::{NAMES, Testbed, VIP};
use lvs_testsupport::unit;

#[test]
fn director_forwards_with_only_its_units_capabilities() {
    let dir = std::env::temp_dir().join(format!("lvs-e2e-hardened-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the wrapper directory");
    let built = Path::new(env!("CARGO_BIN_EXE_lvs-director"));
    // The run directory is made by the testbed under the temporary directory: writable, as
    // ReadWritePaths=/run/lvs makes the real one.
    let rundir_parent = std::env::temp_dir();
    let wrapper = unit::sandbox_script("lvs-director", built, &dir, &[&rundir_parent]);
    let tb = Testbed::start_bin("director_hardened", "nat", "", &wrapper);
    let _ = std::fs::remove_dir_all(&dir);
    let Some(mut tb) = tb else {
        return;
    };
    let caps = unit::capabilities("lvs-director");
    let (bounding, effective, no_new_privs) = unit::process_caps(tb.director_pid().as_raw());
    assert_eq!(bounding, unit::mask(&caps), "bounding set {caps:?}");
    assert_eq!(effective, unit::mask(&caps), "effective set {caps:?}");
    assert!(no_new_privs);

    tb.service("-t", 80, "-s rr", "-m", &[1, 1, 1]);
    let got = tb.curls(3);
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(sorted, NAMES, "round robin over the three real servers");
    let guard = tb.exec("d", &["nft", "list", "table", "inet", "lvs_director"]);
    assert!(guard.status.success(), "the guard is installed");
    assert!(String::from_utf8_lossy(&guard.stdout).contains(VIP));
    // An upgrade (docs/UPGRADE.md) works within the same limits: memfd, execve, the check.
    let out = std::process::Command::new(built)
        .arg("--upgrade")
        .arg("--rundir")
        .arg(&tb.rundir)
        .output()
        .expect("run lvs-director --upgrade");
    assert!(
        out.status.success(),
        "{}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        tb.log_text()
    );
    let (bounding, effective, no_new_privs) = unit::process_caps(tb.director_pid().as_raw());
    assert_eq!(
        (bounding, effective),
        (unit::mask(&caps), unit::mask(&caps))
    );
    assert!(no_new_privs);
    assert!(tb.curl().starts_with('r'), "forwards after the upgrade");
    // SIGTERM: clean exit, the guard removed (checked by stop_director).
    if let Err(e) = tb.stop_director() {
        panic!("{e}");
    }
}
