//! A daemon of the suite run the way a host runs it, not with `-f`: once as a forking daemon
//! (it must detach, write its pidfile, answer, and on SIGTERM stop and remove its pidfile and
//! socket) and once through its LSB init script in `etc/init.d`, which drives it with Debian's
//! `start-stop-daemon` (dpkg). Both run inside a network namespace of their own, with `lo`
//! and a veth pair up (the director needs an interface to forward on), in a scratch directory;
//! a [`Scratch`] guard kills what it started and removes the namespace and the directory even
//! when the test fails.
//!
//! The init script reads its settings from the file `LVS_DEFAULTS_FILE` names (else
//! `/etc/default/NAME`), so the test points `DAEMON`, `CONFIG` and `LVS_RUNDIR` at the build
//! tree and the scratch directory without installing anything.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::{TempDir, wait_for};

/// Bound for a start, a stop or one init-script action on a loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// What the daemon under test is and how to tell that it answers.
pub struct Spec<'a> {
    /// The binary's name, also the init script's: `lvs-director`.
    pub name: &'a str,
    /// The built binary.
    pub bin: &'a Path,
    /// The configuration file's text, given the scratch directory (for key files, state).
    pub config: &'a dyn Fn(&Path) -> String,
    /// True once the daemon answers on its socket (or port).
    pub answers: &'a dyn Fn(&Running<'_>) -> bool,
    /// Whether it has a Unix socket `RUNDIR/SHORT.sock` (webmon listens on TCP only).
    pub has_socket: bool,
    /// A changed configuration and how to see that a reload applied it, where the daemon
    /// shows its configuration; else the init test checks that a reload keeps it answering.
    pub reload: Option<Reload<'a>>,
}

impl std::fmt::Debug for Reload<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reload").finish_non_exhaustive()
    }
}

/// See [`Spec::reload`].
pub struct Reload<'a> {
    /// The changed file's text, given the scratch directory.
    pub config: &'a dyn Fn(&Path) -> String,
    /// True once the running daemon shows the change.
    pub applied: &'a dyn Fn(&Running<'_>) -> bool,
}

impl std::fmt::Debug for Spec<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spec")
            .field("name", &self.name)
            .field("bin", &self.bin)
            .finish_non_exhaustive()
    }
}

/// Where a started daemon lives, for [`Spec::answers`].
#[derive(Debug)]
pub struct Running<'a> {
    pub dir: &'a Path,
    pub rundir: &'a Path,
    /// The network namespace it runs in.
    pub ns: &'a str,
}

/// A scratch directory and a network namespace; dropping it SIGKILLs every process whose
/// pidfile is in the run directory, deletes the namespace and removes the directory.
#[derive(Debug)]
pub struct Scratch {
    pub dir: TempDir,
    pub ns: String,
}

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let dir = TempDir::new(tag);
        let ns = format!("lvsd{}-{tag}", std::process::id() % 100_000);
        let s = Scratch { dir, ns };
        let _ = Command::new("ip").args(["netns", "del", &s.ns]).output();
        s.ip(&["netns", "add", &s.ns]);
        s.ip(&["-n", &s.ns, "link", "set", "lo", "up"]);
        s.ip(&[
            "-n", &s.ns, "link", "add", "v0", "type", "veth", "peer", "name", "v1",
        ]);
        s.ip(&["-n", &s.ns, "addr", "add", "192.0.2.1/24", "dev", "v0"]);
        s.ip(&["-n", &s.ns, "link", "set", "v0", "up"]);
        s.ip(&["-n", &s.ns, "link", "set", "v1", "up"]);
        s
    }

    fn ip(&self, args: &[&str]) {
        let out = Command::new("ip")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ip (iproute2)");
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rundir(&self) -> PathBuf {
        self.path().join("run")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(self.rundir()) {
            for e in entries.flatten() {
                if e.path().extension().is_some_and(|x| x == "pid")
                    && let Some(pid) = read_pid(&e.path())
                {
                    let _ = kill(pid, Signal::SIGKILL);
                }
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

fn read_pid(path: &Path) -> Option<Pid> {
    let text = std::fs::read_to_string(path).ok()?;
    text.trim().parse().ok().map(Pid::from_raw)
}

/// `RUNDIR/<name without "lvs-">.pid` and `.sock`, as every daemon names them.
fn short(name: &str) -> &str {
    name.strip_prefix("lvs-").unwrap_or(name)
}

/// Runs `cmd` to completion within [`DEADLINE`] (killed and a panic otherwise).
pub fn run_with_deadline(cmd: &mut Command, what: &str) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid fits"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(out) => out.expect("wait for the child"),
        Err(_) => {
            let _ = kill(pid, Signal::SIGKILL);
            panic!("{what} did not finish within {DEADLINE:?}");
        }
    }
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `/proc/PID/stat` fields after the command name: state, ppid, pgrp, session.
fn proc_stat(pid: Pid) -> Option<(char, i32, i32, i32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((
        f.first()?.chars().next()?,
        f.get(1)?.parse().ok()?,
        f.get(2)?.parse().ok()?,
        f.get(3)?.parse().ok()?,
    ))
}

/// Gone: no such process, or a zombie its new parent has not reaped yet.
fn gone(pid: Pid) -> bool {
    proc_stat(pid).is_none_or(|(state, ..)| state == 'Z' || state == 'X')
}

/// The pid in the daemon's pidfile once it is there and alive.
fn wait_pidfile(spec: &Spec<'_>, rundir: &Path) -> Pid {
    let pidfile = rundir.join(format!("{}.pid", short(spec.name)));
    wait_for(
        &format!("{}'s pidfile {}", spec.name, pidfile.display()),
        DEADLINE,
        || read_pid(&pidfile).filter(|p| !gone(*p)),
    )
}

fn wait_answers(spec: &Spec<'_>, scratch: &Scratch) {
    let rundir = scratch.rundir();
    let running = Running {
        dir: scratch.path(),
        rundir: &rundir,
        ns: &scratch.ns,
    };
    wait_for(&format!("{} to answer", spec.name), DEADLINE, || {
        (spec.answers)(&running).then_some(())
    });
}

/// After a stop: the process, its pidfile and its socket are gone.
fn assert_stopped(spec: &Spec<'_>, rundir: &Path, pid: Pid) {
    wait_for(
        &format!("{} (pid {pid}) to exit", spec.name),
        DEADLINE,
        || gone(pid).then_some(()),
    );
    let s = short(spec.name);
    for file in [format!("{s}.pid"), format!("{s}.sock")] {
        let p = rundir.join(&file);
        assert!(
            !p.exists(),
            "{} left {} behind after it stopped",
            spec.name,
            p.display()
        );
    }
}

/// Starts the daemon without `-f` in a namespace and checks that it detaches (the command
/// returns 0 at once, the daemon runs on in a session of its own, not a session leader, stdin
/// on /dev/null), writes its pidfile, answers, and stops on SIGTERM removing pidfile and socket.
pub fn check_forking(spec: &Spec<'_>) {
    let scratch = Scratch::new("fork");
    let config = scratch.path().join("daemon.toml");
    std::fs::write(&config, (spec.config)(scratch.path())).expect("write the config");
    let rundir = scratch.rundir();
    let out = run_with_deadline(
        Command::new("ip")
            .args(["netns", "exec", &scratch.ns])
            .arg(spec.bin)
            .arg("--rundir")
            .arg(&rundir)
            .arg("-c")
            .arg(&config)
            .env_remove("LVS_RUNDIR"),
        &format!("{} (forking)", spec.name),
    );
    assert!(
        out.status.success(),
        "{} did not start: {}",
        spec.name,
        show(&out)
    );
    let pid = wait_pidfile(spec, &rundir);
    let (_, ppid, _, sid) = proc_stat(pid).expect("the daemon runs");
    let me = i32::try_from(std::process::id()).expect("pid fits");
    let (_, _, _, my_sid) = proc_stat(Pid::from_raw(me)).expect("this test runs");
    assert_ne!(ppid, me, "{} is still this test's child", spec.name);
    assert_ne!(
        sid, my_sid,
        "{} did not leave the session (setsid)",
        spec.name
    );
    assert_ne!(
        sid,
        pid.as_raw(),
        "{} is a session leader (no second fork)",
        spec.name
    );
    let stdin = std::fs::read_link(format!("/proc/{pid}/fd/0")).expect("read fd 0");
    assert_eq!(stdin, Path::new("/dev/null"), "{}'s stdin", spec.name);
    if spec.has_socket {
        let sock = rundir.join(format!("{}.sock", short(spec.name)));
        assert!(
            sock.exists(),
            "{} has no socket {}",
            spec.name,
            sock.display()
        );
    }
    wait_answers(spec, &scratch);
    kill(pid, Signal::SIGTERM).expect("SIGTERM the daemon");
    assert_stopped(spec, &rundir, pid);
}

/// `dir/defaults`, the settings file an init script reads through `LVS_DEFAULTS_FILE`: the
/// daemon `bin`, its `config` and `rundir`, a short stop timeout. Returns its path.
pub fn init_defaults(dir: &Path, bin: &Path, config: &Path, rundir: &Path) -> PathBuf {
    let defaults = dir.join("defaults");
    std::fs::write(
        &defaults,
        format!(
            "DAEMON={}\nCONFIG={}\nLVS_RUNDIR={}\nSTOP_TIMEOUT=10\n",
            bin.display(),
            config.display(),
            rundir.display()
        ),
    )
    .expect("write the defaults file");
    defaults
}

/// Drives the daemon through `etc/init.d/NAME` (start, status, start again, reload with a
/// good and with a broken file, restart, stop, status) inside a namespace.
pub fn check_init_script(spec: &Spec<'_>) {
    let scratch = Scratch::new("init");
    let dir = scratch.path();
    let config = dir.join("daemon.toml");
    let good = (spec.config)(dir);
    std::fs::write(&config, &good).expect("write the config");
    let rundir = scratch.rundir();
    let defaults = init_defaults(dir, spec.bin, &config, &rundir);
    let script = crate::cluster::repo_root().join(format!("etc/init.d/{}", spec.name));
    let action = |what: &str| {
        run_with_deadline(
            Command::new("ip")
                .args(["netns", "exec", &scratch.ns, "sh"])
                .arg(&script)
                .arg(what)
                .env("LVS_DEFAULTS_FILE", &defaults)
                // /lib/lsb/init-functions would hand the script to systemctl on a systemd host.
                .env("_SYSTEMCTL_SKIP_REDIRECT", "true")
                .env_remove("LVS_RUNDIR"),
            &format!("{} {what}", script.display()),
        )
    };
    let expect = |what: &str, code: i32| {
        let out = action(what);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{} {what}: {}",
            spec.name,
            show(&out)
        );
        out
    };
    expect("status", 3);
    expect("start", 0);
    let first = wait_pidfile(spec, &rundir);
    wait_answers(spec, &scratch);
    let out = expect("status", 0);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("(pid {first})")),
        "{}",
        show(&out)
    );
    expect("start", 0);
    assert_eq!(
        wait_pidfile(spec, &rundir),
        first,
        "start again: same process"
    );

    expect("reload", 0);
    assert_eq!(
        wait_pidfile(spec, &rundir),
        first,
        "reload keeps the process"
    );
    wait_answers(spec, &scratch);
    // A broken file: refused with its place, the daemon keeps running.
    std::fs::write(&config, format!("nope = 1\n{good}")).expect("break the config");
    let out = expect("reload", 1);
    let place = format!("{}:1:", config.display());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&place),
        "the refusal names {place}: {}",
        show(&out)
    );
    assert_eq!(wait_pidfile(spec, &rundir), first, "a refused reload");
    std::fs::write(&config, &good).expect("mend the config");

    expect("restart", 0);
    assert!(
        gone(first),
        "restart returned with the old process still running"
    );
    let second = wait_pidfile(spec, &rundir);
    assert_ne!(second, first, "restart starts a new process");
    wait_answers(spec, &scratch);

    expect("stop", 0);
    // LSB: stop returns once the daemon is gone, not when the signal is sent.
    assert!(gone(second), "{} still runs after stop returned", spec.name);
    assert_stopped(spec, &rundir, second);
    expect("status", 3);
    expect("stop", 0);
}

/// The two tests of a daemon crate's `tests/daemonize.rs`: `runs_as_a_forking_daemon` and
/// `runs_through_its_init_script`, for the daemon `$name` (its `CARGO_BIN_EXE_` name), with
/// the `config` and `answers` functions of [`Spec`], whether it has a Unix socket, and
/// optionally a [`Reload`].
#[macro_export]
macro_rules! daemon_tests {
    ($name:literal, config = $config:expr, answers = $answers:expr, socket = $socket:expr) => {
        $crate::daemon_tests!(
            $name,
            config = $config,
            answers = $answers,
            socket = $socket,
            reload = None
        );
    };
    ($name:literal, config = $config:expr, answers = $answers:expr, socket = $socket:expr,
     reload = $reload:expr) => {
        fn spec() -> $crate::daemon::Spec<'static> {
            $crate::daemon::Spec {
                name: $name,
                bin: ::std::path::Path::new(env!(concat!("CARGO_BIN_EXE_", $name))),
                config: &$config,
                answers: &$answers,
                has_socket: $socket,
                reload: $reload,
            }
        }

        #[test]
        fn runs_as_a_forking_daemon() {
            if $crate::root_or_skip(concat!($name, " runs_as_a_forking_daemon")) {
                $crate::daemon::check_forking(&spec());
            }
        }

        #[test]
        fn runs_through_its_init_script() {
            if $crate::root_or_skip(concat!($name, " runs_through_its_init_script")) {
                $crate::daemon::check_init_script(&spec());
            }
        }
    };
}
