//! End to end: the `demo_daemon` example, started the way init scripts and systemd start the
//! real daemons. Waits poll with deadlines; every daemon started is killed on failure.
//!
//! The example is built by `cargo test -p lvs-common` (examples are always built by `cargo
//! test`); with `--test daemon` alone, build it first: `cargo build -p lvs-common --examples`
//! (the tests refuse to run an example older than the sources).

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, getsid};

const DEADLINE: Duration = Duration::from_secs(20);

fn demo_bin() -> PathBuf {
    // target/<profile>/deps/daemon-<hash> -> target/<profile>/examples/demo_daemon
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples/demo_daemon");
    let hint = "run `cargo test -p lvs-common` (it builds the examples) or \
                `cargo build -p lvs-common --examples` first";
    let built = fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}: {hint}", bin.display()));
    // `cargo test --test daemon` alone does not rebuild examples: refuse to test an old one.
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sources = [
        crate_dir.join("src"),
        crate_dir.join("examples"),
        crate_dir.join("../proto/src"),
    ];
    for dir in &sources {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let changed = fs::metadata(&path).unwrap().modified().unwrap();
            assert!(
                changed <= built,
                "{} is older than {}: {hint}",
                bin.display(),
                path.display()
            );
        }
    }
    bin
}

/// A unique scratch directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "lvs-common-e2e-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
    fn rundir(&self) -> PathBuf {
        self.0.join("run")
    }
    fn pidfile(&self) -> PathBuf {
        self.rundir().join("demo.pid")
    }
    fn socket(&self) -> PathBuf {
        self.rundir().join("demo.sock")
    }
    fn config(&self, text: &str) -> PathBuf {
        let path = self.0.join("demo.toml");
        // Write then rename, so a reload never sees half a file.
        let tmp = self.0.join("demo.toml.tmp");
        fs::write(&tmp, text).unwrap();
        fs::rename(&tmp, &path).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Kills the daemon `pid` (SIGKILL) when dropped, if it still runs: no leftovers on failure.
struct Reaper(Option<Pid>);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(pid) = self.0
            && alive(pid)
        {
            let _ = kill(pid, Signal::SIGKILL);
        }
    }
}

/// Kills a child we spawned (and reaps it) when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn alive(pid: Pid) -> bool {
    if kill(pid, None).is_err() {
        return false;
    }
    // A zombie (not yet reaped by init) is not alive.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    let mut pause = Duration::from_millis(1);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs the demo to completion (the starting process, that is), with a deadline.
fn run_demo(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(demo_bin());
    cmd.args(args)
        .env_remove("LVS_RUNDIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = ChildGuard(cmd.spawn().unwrap());
    let collect = |mut r: Box<dyn Read + Send>| {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            let _ = tx.send(s);
        });
        rx
    };
    let out = collect(Box::new(child.0.stdout.take().unwrap()));
    let err = collect(Box::new(child.0.stderr.take().unwrap()));
    let deadline = Instant::now() + DEADLINE;
    let mut status = None;
    wait_until("the starting process to exit", || {
        status = child.0.try_wait().unwrap();
        status.is_some()
    });
    // The daemon lets go of our pipes when ready (or exits): both reach EOF.
    let left = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(1);
    let stdout = out.recv_timeout(left).expect("stdout never closed");
    let stderr = err
        .recv_timeout(left)
        .expect("stderr never closed (daemon kept it)");
    Output {
        status: status.unwrap(),
        stdout,
        stderr,
    }
}

fn read_pid(path: &Path) -> Pid {
    let text = fs::read_to_string(path).unwrap();
    Pid::from_raw(text.trim().parse().unwrap())
}

fn greeting(socket: &Path) -> String {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.trim_end().to_owned()
}

#[test]
fn daemonizes_reloads_and_stops_cleanly() {
    let tmp = TempDir::new("daemon");
    let config = tmp.config("greeting = \"one\"\n");
    let rundir = tmp.rundir();
    let out = run_demo(
        &["-c", config.to_str().unwrap()],
        &[("LVS_RUNDIR", rundir.as_path())],
    );
    // Read the pid before asserting, so the reaper cleans up whatever happened.
    let pid = fs::read_to_string(tmp.pidfile())
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .map(Pid::from_raw);
    let _reaper = Reaper(pid);
    assert!(out.status.success(), "start failed: {}", out.stderr);
    assert_eq!(out.stdout, "");
    let pid = pid.expect("pidfile written before the starting process exited");

    // A separate, live process in its own session (not a session leader: double fork).
    assert!(alive(pid));
    let sid = getsid(Some(pid)).unwrap();
    assert_ne!(sid, getsid(None).unwrap());
    assert_ne!(sid, pid);
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/cwd")).unwrap(),
        Path::new("/")
    );

    assert_eq!(greeting(&tmp.socket()), "one");

    // SIGHUP with a new valid file: applied.
    tmp.config("greeting = \"two\"\n");
    kill(pid, Signal::SIGHUP).unwrap();
    wait_until("the reload", || greeting(&tmp.socket()) == "two");

    // SIGTERM: gone, and so are its socket and pidfile.
    kill(pid, Signal::SIGTERM).unwrap();
    wait_until("the daemon to exit", || !alive(pid));
    assert!(!tmp.pidfile().exists(), "pidfile left behind");
    assert!(!tmp.socket().exists(), "socket left behind");
}

#[test]
fn foreground_logs_events_and_keeps_config_on_bad_reload() {
    let tmp = TempDir::new("foreground");
    let config = tmp.config("greeting = \"steady\"\n");
    let mut child = ChildGuard(
        Command::new(demo_bin())
            .args(["-f", "--no-syslog", "-c", config.to_str().unwrap()])
            .arg("--rundir")
            .arg(tmp.rundir())
            .env_remove("LVS_RUNDIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let pid = Pid::from_raw(i32::try_from(child.0.id()).unwrap());
    let (tx, rx) = mpsc::channel::<String>();
    let stderr = child.0.stderr.take().unwrap();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen: Vec<String> = Vec::new();
    let mut expect = |needle: &str| -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(line) = seen.iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => seen.push(line),
                Err(_) => panic!("no line with {needle:?}; got:\n{}", seen.join("\n")),
            }
        }
    };

    let start = expect("event=daemon_start");
    assert!(
        start.contains(&format!(
            "lvs-demo[{pid}]: info: event=daemon_start version="
        )),
        "{start}"
    );
    assert!(start.ends_with(" foreground=yes"), "{start}");
    // The foreground process is the daemon: same pid in the pidfile.
    assert_eq!(read_pid(&tmp.pidfile()), pid);

    // A bad file on SIGHUP: rejected with its place, old config kept.
    tmp.config("greeting = \"changed\"\nbogus = 1\n");
    kill(pid, Signal::SIGHUP).unwrap();
    let rejected = expect("event=config_rejected");
    assert!(
        rejected.contains(&format!(
            ": err: event=config_rejected file={} line=2 col=1 reason=\"unknown field `bogus`",
            config.display()
        )),
        "{rejected}"
    );
    assert_eq!(greeting(&tmp.socket()), "steady");
    // The dump shows the config in force.
    kill(pid, Signal::SIGUSR1).unwrap();
    let state = expect("event=state");
    assert!(
        state.ends_with("event=state greeting=steady served=1"),
        "{state}"
    );

    // Fixed file: applied.
    tmp.config("greeting = \"fixed now\"\n");
    kill(pid, Signal::SIGHUP).unwrap();
    expect("event=config_reload");
    assert_eq!(greeting(&tmp.socket()), "fixed now");

    kill(pid, Signal::SIGTERM).unwrap();
    expect("event=signal signal=SIGTERM action=stop");
    expect("event=daemon_stop status=ok");
    let mut status = None;
    wait_until("the foreground daemon to exit", || {
        status = child.0.try_wait().unwrap();
        status.is_some()
    });
    assert!(status.unwrap().success());
    assert!(!tmp.pidfile().exists());
    assert!(!tmp.socket().exists());
    for line in &seen {
        assert!(
            line.contains(&format!(" lvs-demo[{pid}]: ")),
            "every stderr line has the same prefix: {line}"
        );
    }
}

#[test]
fn bad_config_fails_the_start_with_file_and_line() {
    let tmp = TempDir::new("badconfig");
    let config = tmp.config("greeting = \"x\"\ngreeting = = 2\n");
    let rundir = tmp.rundir();
    let out = run_demo(
        &[
            "-c",
            config.to_str().unwrap(),
            "--rundir",
            rundir.to_str().unwrap(),
        ],
        &[],
    );
    let _reaper = Reaper(
        fs::read_to_string(tmp.pidfile())
            .ok()
            .map(|_| read_pid(&tmp.pidfile())),
    );
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    let want = format!("lvs-demo: {}:2:", config.display());
    assert!(out.stderr.starts_with(&want), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(!tmp.pidfile().exists());

    // Unknown key: the same, pointing at the key.
    let config = tmp.config("greting = \"x\"\n");
    let out = run_demo(
        &[
            "-c",
            config.to_str().unwrap(),
            "--rundir",
            rundir.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let want = format!(
        "lvs-demo: {}:1:1: unknown field `greting`",
        config.display()
    );
    assert!(out.stderr.starts_with(&want), "{}", out.stderr);

    // Missing file.
    let missing = tmp.path().join("nope.toml");
    let out = run_demo(&["-c", missing.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stderr
            .starts_with(&format!("lvs-demo: {}: cannot read: ", missing.display())),
        "{}",
        out.stderr
    );
}

#[test]
fn failures_after_forking_reach_the_starting_process() {
    let tmp = TempDir::new("afterfork");
    let config = tmp.config("greeting = \"first\"\n");
    let rundir = tmp.rundir();
    let args = [
        "-c",
        config.to_str().unwrap(),
        "--rundir",
        rundir.to_str().unwrap(),
    ];
    let first = run_demo(&args, &[]);
    let pid = fs::read_to_string(tmp.pidfile())
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .map(Pid::from_raw);
    let _reaper = Reaper(pid);
    assert!(first.status.success(), "{}", first.stderr);
    let pid = pid.unwrap();

    // A second instance: refused by the pidfile lock, after it daemonized.
    let second = run_demo(&args, &[]);
    assert_eq!(second.status.code(), Some(1));
    assert!(
        second
            .stderr
            .contains(&format!("lvs-demo is already running (pid {pid})")),
        "{}",
        second.stderr
    );
    assert_eq!(
        read_pid(&tmp.pidfile()),
        pid,
        "the pidfile still names the first"
    );
    assert!(alive(pid));
    kill(pid, Signal::SIGTERM).unwrap();
    wait_until("the first daemon to exit", || !alive(pid));

    // A failure in the daemon's own start-up: exit 1, message shown, pidfile removed.
    tmp.config("fail_start = true\n");
    let out = run_demo(&args, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stderr
            .contains("lvs-demo: fail_start is set in the configuration"),
        "{}",
        out.stderr
    );
    assert!(!tmp.pidfile().exists());
    assert!(!tmp.socket().exists());
}

#[test]
fn check_config_and_version() {
    let tmp = TempDir::new("check");
    let config = tmp.config("greeting = \"ok\"\n");
    let out = run_demo(&["--check-config", "-c", config.to_str().unwrap()], &[]);
    assert!(out.status.success());
    assert_eq!(
        out.stdout,
        format!("{}: configuration OK\n", config.display())
    );
    assert!(
        !tmp.rundir().exists(),
        "--check-config must not touch the run directory"
    );

    let config = tmp.config("greeting = 5\n");
    let out = run_demo(&["--check-config", "-c", config.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr
            .starts_with(&format!("{}:1:12: ", config.display())),
        "{}",
        out.stderr
    );

    let out = run_demo(&["--check-config"], &[]);
    assert!(out.status.success());
    assert_eq!(out.stdout, "built-in defaults: configuration OK\n");

    let out = run_demo(&["-V"], &[]);
    assert!(out.status.success());
    assert_eq!(
        out.stdout,
        format!("lvs-demo {}\n", env!("CARGO_PKG_VERSION"))
    );
}
