//! lvs-webmon shows the real lock manager (no root): lvs-lockmgr in single-node mode in a run
//! directory, a lock held by `lvs-lockctl lock`, and the page's state listing the resource,
//! its holder, mode and fencing token, the members, the leader and the counts.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{Webmon, wait_for};

fn sibling(name: &str) -> PathBuf {
    lvs_testsupport::sibling_bin(env!("CARGO_BIN_EXE_lvs-webmon"), name)
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn lock_manager_members_leader_counts_and_holders() {
    let dir = std::env::temp_dir().join(format!("lvs-webmon-lockmgr-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("state")).unwrap();
    // Our own group may use the socket, so the test runs without root too.
    let group = nix::unistd::Group::from_gid(nix::unistd::getgid())
        .ok()
        .flatten()
        .map(|g| g.name)
        .expect("our group's name");
    std::fs::write(
        dir.join("lockmgr.toml"),
        format!(
            "state_dir = \"{}\"\nfsync = false\nclient_group = \"{group}\"\n",
            dir.join("state").display()
        ),
    )
    .unwrap();
    let lockmgr = Kill(
        Command::new(sibling("lvs-lockmgr"))
            .args(["-f", "--no-syslog", "--rundir"])
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("lockmgr.toml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start lvs-lockmgr"),
    );
    wait_for("lvs-lockmgr's socket", Duration::from_secs(20), || {
        dir.join("lockmgr.sock").exists().then_some(())
    });
    let holder = Kill(
        Command::new(sibling("lvs-lockctl"))
            .arg("--rundir")
            .arg(&dir)
            .args(["lock", "orders", "--mode", "EX", "--", "sleep", "120"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run lvs-lockctl"),
    );
    let w = Webmon::start(Some(&dir), "", &[("viewer", "viewer", "viewer-password-1")]);
    let (cookie, _) = w.session("viewer", "viewer-password-1");
    let st = wait_for(
        "the lock and its holder on the page",
        Duration::from_secs(30),
        || {
            let r = w.get("/api/state", Some(&cookie));
            let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
            let l = &v["lockmgr"];
            let held = l["resources"].as_array()?.iter().any(|r| {
                r["name"] == "orders"
                    && r["granted"][0]["mode"] == "EX"
                    && r["granted"][0]["token"].is_u64()
            });
            (l["reachable"] == true && held).then_some(v)
        },
    );
    let l = &st["lockmgr"];
    assert!(
        l["members"].as_array().is_some_and(|m| !m.is_empty()),
        "{l}"
    );
    assert!(l["node"].is_u64(), "{l}");
    assert!(l["counts"]["granted"].as_u64() >= Some(1), "{l}");
    assert!(l["counts"]["resources"].as_u64() >= Some(1), "{l}");
    drop(holder);
    drop(lockmgr);
    drop(w);
    let _ = std::fs::remove_dir_all(&dir);
}
