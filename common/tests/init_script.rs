//! The shipped SysV init script (`etc/init.d/lvs-director`), driving the demo daemon through
//! the real `start-stop-daemon`. SKIPPED where `start-stop-daemon` is missing (a failure under
//! `scripts/test.sh`, which installs it).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const DEADLINE: Duration = Duration::from_secs(30);

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        // Kill whatever the script left running, then remove the files.
        if let Ok(text) = fs::read_to_string(self.0.join("run/demo.pid"))
            && let Ok(pid) = text.trim().parse()
        {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn have_start_stop_daemon() -> bool {
    Command::new("start-stop-daemon")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `script action` to completion, with a deadline.
fn action(script: &Path, action: &str) -> Output {
    let child = Command::new("sh")
        .arg(script)
        .arg(action)
        .env_remove("LVS_RUNDIR")
        .env("_SYSTEMCTL_SKIP_REDIRECT", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = kill(pid, Signal::SIGKILL);
            panic!("`{action}` did not finish within {DEADLINE:?}");
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn init_script_starts_reloads_and_stops() {
    if !have_start_stop_daemon() {
        lvs_testsupport::skip(
            "init_script_starts_reloads_and_stops",
            "needs start-stop-daemon (Debian package dpkg)",
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("lvs-common-init-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let scratch = Scratch(dir.clone());

    // The demo under a name start-stop-daemon can match (--name looks at the process name).
    let exe = std::env::current_exe().unwrap();
    let demo = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples/demo_daemon");
    assert!(
        demo.exists(),
        "{} is missing: run `cargo test -p lvs-common`",
        demo.display()
    );
    let daemon = dir.join("lvs-demo");
    fs::copy(&demo, &daemon).unwrap();
    let config = dir.join("demo.toml");
    fs::write(&config, "greeting = \"one\"\n").unwrap();

    // The shipped script, with its settings pointed at the scratch directory.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../etc/init.d/lvs-director");
    let mut script = String::new();
    for line in fs::read_to_string(&shipped).unwrap().lines() {
        let line = match line.split_once('=') {
            Some(("NAME", _)) => "NAME=lvs-demo".to_owned(),
            Some(("DAEMON", _)) => format!("DAEMON={}", daemon.display()),
            Some(("CONFIG", _)) => format!("CONFIG={}", config.display()),
            Some(("LVS_RUNDIR", _)) => format!("LVS_RUNDIR={}", dir.join("run").display()),
            Some(("STOP_TIMEOUT", _)) => "STOP_TIMEOUT=10".to_owned(),
            _ => line.to_owned(),
        };
        script.push_str(&line);
        script.push('\n');
    }
    let script_path = dir.join("init");
    fs::write(&script_path, script).unwrap();
    fs::set_permissions(&script_path, fs::Permissions::from_mode(0o755)).unwrap();
    let pidfile = dir.join("run/demo.pid");
    let pid = || fs::read_to_string(&pidfile).unwrap().trim().to_owned();

    let out = action(&script_path, "status");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));

    let out = action(&script_path, "start");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let first = pid();
    let out = action(&script_path, "status");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("(pid {first})")));
    // Starting again: already running, fine, same process.
    let out = action(&script_path, "start");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(pid(), first);

    // A broken file: reload and restart refuse with its place; the daemon keeps running.
    fs::write(&config, "greeting = \"two\"\nnope = 1\n").unwrap();
    for act in ["reload", "force-reload", "restart"] {
        let out = action(&script_path, act);
        assert_eq!(out.status.code(), Some(1), "{act}: {}", text(&out));
        let want = format!("{}:2:1: unknown field `nope`", config.display());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&want),
            "{act}: {}",
            text(&out)
        );
        assert_eq!(pid(), first, "{act} must leave the daemon alone");
    }

    fs::write(&config, "greeting = \"two\"\n").unwrap();
    let out = action(&script_path, "reload");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(pid(), first);
    let out = action(&script_path, "restart");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_ne!(pid(), first, "restart starts a new process");

    let out = action(&script_path, "stop");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!pidfile.exists(), "stop waits until the daemon is gone");
    let out = action(&script_path, "status");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let out = action(&script_path, "stop");
    assert_eq!(
        out.status.code(),
        Some(0),
        "stopping a stopped service: {}",
        text(&out)
    );
    let out = action(&script_path, "reload");
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let out = action(&script_path, "frobnicate");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    drop(scratch);
}
