//! lvs-heartbeatd under its shipped unit's restrictions (etc/systemd/lvs-heartbeatd.service),
//! emulated because PID 1 is not systemd here: only the capabilities of its
//! `CapabilityBoundingSet=`, no new privileges, a read-only root with only its scratch
//! directory writable. Alone (its peer never answers), it becomes master on the privileged
//! heartbeat port and puts the virtual address up; SIGTERM takes it down again.

use std::process::{Command, Stdio};
use std::time::Duration;

use lvs_testsupport::daemon::Scratch;
use lvs_testsupport::{root_or_skip, unit, wait_for};

#[test]
fn heartbeatd_takes_the_vip_with_only_its_units_capabilities() {
    if !root_or_skip("heartbeatd_takes_the_vip_with_only_its_units_capabilities") {
        return;
    }
    let scratch = Scratch::new("hbhard");
    let dir = scratch.path().to_path_buf();
    let key = dir.join("heartbeat.key");
    std::fs::write(&key, b"0123456789abcdef-shared-test-key").unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let config = dir.join("heartbeatd.toml");
    std::fs::write(
        &config,
        format!(
            "node_id = 1\npriority = 100\npeers = [2]\nauth_key_file = \"{}\"\n\
             epoch_file = \"{}\"\ndirector_socket = \"{}\"\n\
             [timers]\nkeepalive_ms = 100\nwarntime_ms = 250\ndeadtime_ms = 500\ninitdead_ms = 500\n[udp]\nbind = \"127.0.0.1:694\"\npeers = [\"127.0.0.2:694\"]\n\
             [[vip]]\naddr = \"192.0.2.100/24\"\ninterface = \"v0\"\n",
            key.display(),
            dir.join("heartbeatd.epoch").display(),
            dir.join("no-director/director.sock").display()
        ),
    )
    .unwrap();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_lvs-heartbeatd"));
    let wrapper = unit::sandbox_script("lvs-heartbeatd", bin, &dir, &[&dir]);
    let log = std::fs::File::create(dir.join("heartbeatd.log")).unwrap();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &scratch.ns])
        .arg(&wrapper)
        .args(["-f", "--no-syslog", "--rundir"])
        .arg(scratch.rundir())
        .arg("-c")
        .arg(&config)
        .stdin(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start lvs-heartbeatd");
    let log_text = || std::fs::read_to_string(dir.join("heartbeatd.log")).unwrap_or_default();
    let vip_up = || {
        let out = Command::new("ip")
            .args(["-n", &scratch.ns, "-o", "addr", "show"])
            .output()
            .expect("run ip");
        String::from_utf8_lossy(&out.stdout).contains("192.0.2.100/")
    };
    wait_for("the virtual address", Duration::from_secs(20), || {
        if let Ok(Some(s)) = child.try_wait() {
            panic!("lvs-heartbeatd exited ({s}):\n{}", log_text());
        }
        vip_up().then_some(())
    });
    let caps = unit::capabilities("lvs-heartbeatd");
    let (bounding, effective, no_new_privs) =
        unit::process_caps(i32::try_from(child.id()).unwrap());
    assert_eq!(bounding, unit::mask(&caps), "bounding set {caps:?}");
    assert_eq!(effective, unit::mask(&caps), "effective set {caps:?}");
    assert!(no_new_privs);

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let exit =
        lvs_testsupport::poll_for(Duration::from_secs(10), || child.try_wait().ok().flatten());
    if exit.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let exit = exit.unwrap_or_else(|| panic!("no exit within 10 s of SIGTERM:\n{}", log_text()));
    assert!(exit.success(), "{exit}:\n{}", log_text());
    assert!(!vip_up(), "the virtual address is released");
}
