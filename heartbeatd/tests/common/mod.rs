//! Shared by lvs-heartbeatd's namespace tests (`failover.rs`, `testbed.rs`): commands that
//! must work, polling with a measured time, the relayed serial line, the shared key and the
//! control socket's status.
#![allow(dead_code)] // each test file uses its own part of this module

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_lvs-heartbeatd");

/// Runs `args` (program first) and returns what it did.
pub fn sh_out(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// Runs `args`, which must succeed; its stdout.
pub fn sh(args: &[&str]) -> String {
    let out = sh_out(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `f` every 10 ms until it is true; the time it took, or None after `limit`.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if f() {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A pty pair per node, relayed master to master by two threads: the serial line. Setting
/// `cut` silences it (what is read is dropped).
pub struct SerialLine {
    pub paths: [PathBuf; 2],
    _slaves: Vec<OwnedFd>,
    pub cut: Arc<AtomicBool>,
}

impl SerialLine {
    pub fn new() -> SerialLine {
        let a = nix::pty::openpty(None, None).expect("openpty");
        let b = nix::pty::openpty(None, None).expect("openpty");
        let path = |fd: &OwnedFd| {
            std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("pty path")
        };
        let paths = [path(&a.slave), path(&b.slave)];
        let cut = Arc::new(AtomicBool::new(false));
        let (ma, mb) = (std::fs::File::from(a.master), std::fs::File::from(b.master));
        for (mut from, mut to) in [(ma.try_clone().unwrap(), mb.try_clone().unwrap()), (mb, ma)] {
            let cut = cut.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = from.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if !cut.load(Ordering::Relaxed) {
                        let _ = to.write_all(&buf[..n]);
                    }
                }
            });
        }
        SerialLine {
            paths,
            _slaves: vec![a.slave, b.slave],
            cut,
        }
    }
}

/// Writes the key both nodes share (mode 0600) as `dir/key`; its path.
pub fn write_key(dir: &Path) -> PathBuf {
    let key = dir.join("key");
    std::fs::write(&key, b"0123456789abcdef-shared-test-key").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    key
}

/// The status lvs-heartbeatd's control socket `rundir/heartbeatd.sock` gives, if it answers.
pub fn ha_status(rundir: &Path) -> Option<lvs_proto::message::HaStatus> {
    let sock = rundir.join("heartbeatd.sock");
    let mut c = lvs_proto::Client::connect(&sock, lvs_proto::Role::Other).ok()?;
    match c.request(lvs_proto::Request::HaStatus).ok()? {
        lvs_proto::Response::HaStatus(s) => Some(s),
        _ => None,
    }
}

/// A fresh namespace `ns` (any old one of that name removed first) with `lo` up.
pub fn new_netns(ns: &str) {
    let _ = sh_out(&["ip", "netns", "del", ns]);
    sh(&["ip", "netns", "add", ns]);
    sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
}

/// The bridge `br0`, up, in namespace `sw`.
pub fn new_bridge(sw: &str) {
    sh(&["ip", "-n", sw, "link", "add", "br0", "type", "bridge"]);
    sh(&["ip", "-n", sw, "link", "set", "br0", "up"]);
}

/// Namespace `ns` joined to `sw`'s bridge by a veth pair: `port` in `sw`, `eth0` in `ns`
/// (left down: callers tune it first).
pub fn bridge_port(sw: &str, port: &str, ns: &str) {
    sh(&[
        "ip", "-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns,
    ]);
    sh(&["ip", "-n", sw, "link", "set", port, "master", "br0", "up"]);
}

/// `ip -n ns addr add ADDR dev eth0 [extra ...]`.
pub fn add_addr(ns: &str, addr: &str, extra: &[&str]) {
    let mut args = vec!["ip", "-n", ns, "addr", "add", addr, "dev", "eth0"];
    args.extend_from_slice(extra);
    sh(&args);
}

/// The MAC of `eth0` in namespace `ns`.
pub fn mac(ns: &str) -> String {
    let out = sh(&["ip", "-n", ns, "-br", "link", "show", "eth0"]);
    out.split_whitespace().nth(2).unwrap_or_default().to_owned()
}

/// Namespace `ns`'s neighbour entry for `addr` on eth0: (MAC, state), if it has a MAC.
pub fn neighbour(ns: &str, addr: &str) -> Option<(String, String)> {
    let out = sh(&["ip", "-n", ns, "neigh", "show", addr, "dev", "eth0"]);
    let f: Vec<&str> = out.split_whitespace().collect();
    let i = f.iter().position(|w| *w == "lladdr")?;
    Some(((*f.get(i + 1)?).to_owned(), (*f.last()?).to_owned()))
}

/// What a test bed's drop does last: its namespaces deleted, and its directory too unless
/// the test failed (kept to be read).
pub fn remove_bed(namespaces: impl IntoIterator<Item = String>, dir: &Path) {
    for ns in namespaces {
        let _ = sh_out(&["ip", "netns", "del", &ns]);
    }
    if !std::thread::panicking() {
        let _ = std::fs::remove_dir_all(dir);
    }
}
