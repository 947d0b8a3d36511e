//! End-to-end tests: the real `lvs-lockmgr` daemon, real client processes (`lvs-lockctl`) and
//! the client library over the real socket.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lvs_lockmgr::{LockClient, LockError, LockEvent, LockFlags, LockMode};

const DAEMON: &str = env!("CARGO_BIN_EXE_lvs-lockmgr");
const CTL: &str = env!("CARGO_BIN_EXE_lvs-lockctl");

struct Daemon {
    dir: PathBuf,
    child: Option<Child>,
    /// The daemon's log goes to `dir/log` at level info (else: stderr, warnings).
    logged: bool,
}

impl Daemon {
    fn start(name: &str) -> Daemon {
        let dir = std::env::temp_dir().join(format!("lvs-lockd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("lockmgr.toml"),
            format!("state_dir = \"{}\"\n", dir.join("state").display()),
        )
        .unwrap();
        let mut d = Daemon {
            dir,
            child: None,
            logged: false,
        };
        d.spawn();
        d
    }

    /// [`Daemon::start`] with its log (level info) in [`Daemon::log`].
    fn start_logged(name: &str) -> Daemon {
        let mut d = Daemon::start(name);
        d.signal_and_wait(15);
        d.logged = true;
        d.spawn();
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    fn rundir(&self) -> PathBuf {
        self.dir.join("run")
    }

    fn spawn(&mut self) {
        let (level, stderr) = if self.logged {
            let log = std::fs::File::create(self.dir.join("log")).unwrap();
            ("info", Stdio::from(log))
        } else {
            ("warn", Stdio::inherit())
        };
        let child = Command::new(DAEMON)
            .args(["-f", "--no-syslog", "--log-level", level, "--rundir"])
            .arg(self.rundir())
            .arg("-c")
            .arg(self.dir.join("lockmgr.toml"))
            .stdin(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while LockClient::connect(&self.rundir()).is_err() {
            assert!(Instant::now() < deadline, "lvs-lockmgr did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal_and_wait(&mut self, sig: i32) {
        if let Some(mut child) = self.child.take() {
            kill(child.id(), sig);
            child.wait().unwrap();
        }
    }

    fn client(&self) -> LockClient {
        LockClient::connect(&self.rundir()).unwrap()
    }

    fn ctl(&self) -> Command {
        let mut c = Command::new(CTL);
        c.arg("--rundir").arg(self.rundir());
        c
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.signal_and_wait(9);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn kill(pid: u32, sig: i32) {
    let sig = nix::sys::signal::Signal::try_from(sig).unwrap();
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()), sig);
}

fn holders(c: &mut LockClient, name: &str) -> usize {
    c.list(Some("default"))
        .unwrap()
        .resources
        .iter()
        .filter(|r| r.name == name.as_bytes())
        .map(|r| r.granted.len())
        .sum()
}

#[test]
fn mutual_exclusion_no_update_lost() {
    let d = Daemon::start("mutex");
    let counter = d.dir.join("counter");
    std::fs::write(&counter, "0\n").unwrap();
    const PROCS: usize = 8;
    const ITERS: usize = 200;
    let script = format!(
        "i=0; while [ $i -lt {ITERS} ]; do \"$CTL\" --rundir \"$RUN\" lock counter --mode EX -- \
         sh -c 'read n < \"$F\"; echo $((n+1)) > \"$F\"' || exit 1; i=$((i+1)); done"
    );
    let children: Vec<Child> = (0..PROCS)
        .map(|_| {
            Command::new("sh")
                .arg("-c")
                .arg(&script)
                .env("CTL", CTL)
                .env("RUN", d.rundir())
                .env("F", &counter)
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let n: usize = std::fs::read_to_string(&counter)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(n, PROCS * ITERS, "updates were lost");
}

/// The value of `key=` in an event line.
fn field(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

#[test]
fn concurrent_commands_share_one_fsync() {
    let d = Daemon::start_logged("group");
    const CLIENTS: usize = 16;
    const OPS: usize = 100;
    let threads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let mut c = d.client();
            std::thread::spawn(move || {
                let name = format!("group-{i}");
                for _ in 0..OPS {
                    let g = c
                        .lock("default", &name, LockMode::EX, LockFlags::NONE, None)
                        .unwrap();
                    c.unlock(g.handle, None).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let pid = d.child.as_ref().unwrap().id();
    kill(pid, 10); // SIGUSR1: the totals, with the log writer's counters.
    let line = lvs_testsupport::wait_for("the lock_state line", Duration::from_secs(10), || {
        d.log()
            .lines()
            .find(|l| l.contains("event=lock_state "))
            .map(str::to_owned)
    });
    let applied = field(&line, "applied_index");
    let syncs = field(&line, "log_syncs");
    let writes = field(&line, "log_writes");
    assert!(applied >= (CLIENTS * OPS * 2) as u64, "{line}");
    assert!(syncs >= 1 && syncs <= writes, "{line}");
    // Every answer waits for the fsync of its command, and 16 clients wait at once: the
    // commands that arrive during one fsync go into the next.
    assert!(
        syncs * 2 <= applied,
        "fewer than two commands per fsync on average: {line}"
    );
}

#[test]
fn lockctl_passes_token_and_exit_code() {
    let d = Daemon::start("exit");
    let out = d
        .ctl()
        .args([
            "lock",
            "job",
            "--",
            "sh",
            "-c",
            "echo $LVS_LOCK_TOKEN $LVS_LOCK_MODE; exit 7",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut words = text.split_whitespace();
    let t1: u64 = words.next().unwrap().parse().unwrap();
    assert_eq!(words.next(), Some("EX"));
    let out = d
        .ctl()
        .args([
            "lock",
            "job",
            "-m",
            "pr",
            "--",
            "sh",
            "-c",
            "echo $LVS_LOCK_TOKEN",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let t2: u64 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(t2 > t1);
    // A command that does not exist.
    let out = d
        .ctl()
        .args(["lock", "job", "--", "/nonexistent/cmd"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
}

#[test]
fn nowait_fails_at_once_while_held_and_timeout_gives_up() {
    let d = Daemon::start("nowait");
    let mut holder = d.client();
    let g = holder
        .lock("default", "busy", LockMode::EX, LockFlags::NONE, None)
        .unwrap();
    let marker = d.dir.join("ran");
    let start = Instant::now();
    let out = d
        .ctl()
        .args(["lock", "busy", "--nowait", "--", "touch"])
        .arg(&marker)
        .output()
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("cannot lock default/busy in EX: it is held by another client"),
        "{err}"
    );
    assert!(!marker.exists(), "the command ran without the lock");
    // A compatible mode is granted at once.
    let out = d
        .ctl()
        .args(["lock", "busy", "--nowait", "--mode", "NL", "--", "true"])
        .status()
        .unwrap();
    assert!(out.success());

    let start = Instant::now();
    let out = d
        .ctl()
        .args(["lock", "busy", "--timeout", "0.3", "--", "true"])
        .output()
        .unwrap();
    let took = start.elapsed();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stderr).unwrap().contains("timed out"));
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
    holder.unlock(g.handle, None).unwrap();
    assert!(
        d.ctl()
            .args(["lock", "busy", "--nowait", "--", "true"])
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn sigkilled_client_releases_its_locks_at_once() {
    let d = Daemon::start("sigkill");
    let pidfile = d.dir.join("sleep.pid");
    let mut ctl = d
        .ctl()
        .args(["lock", "victim", "--", "sh", "-c"])
        .arg(format!("echo $$ > {}; exec sleep 30", pidfile.display()))
        .spawn()
        .unwrap();
    let mut watcher = d.client();
    let deadline = Instant::now() + Duration::from_secs(5);
    while holders(&mut watcher, "victim") == 0 || !pidfile.exists() {
        assert!(Instant::now() < deadline, "lvs-lockctl never got the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    let rundir = d.rundir();
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let mut c = LockClient::connect(&rundir).unwrap();
        tx.send(()).unwrap();
        let g = c.lock("default", "victim", LockMode::EX, LockFlags::NONE, None);
        (g.map(|g| g.token), Instant::now())
    });
    rx.recv().unwrap();
    // The waiter is queued behind the holder.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let l = watcher.list(Some("default")).unwrap();
        if l.resources
            .iter()
            .any(|r| r.name == b"victim" && !r.waiting.is_empty())
        {
            break;
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    let killed = Instant::now();
    kill(ctl.id(), 9);
    ctl.wait().unwrap();
    let (token, granted_at) = waiter.join().unwrap();
    assert!(token.is_ok(), "{token:?}");
    assert!(
        granted_at.duration_since(killed) < Duration::from_secs(1),
        "granted {:?} after the kill",
        granted_at.duration_since(killed)
    );
    let sleep_pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    kill(sleep_pid, 9);
}

#[test]
fn deadlocks_between_two_and_three_clients_are_broken() {
    let d = Daemon::start("deadlock");
    let mut a = d.client();
    let mut b = d.client();
    let ga = a
        .lock("default", "A", LockMode::EX, LockFlags::NONE, None)
        .unwrap();
    let gb = b
        .lock("default", "B", LockMode::EX, LockFlags::NONE, None)
        .unwrap();
    let wa = a
        .request("default", "B", LockMode::EX, LockFlags::NONE, None)
        .unwrap();
    let wb = b
        .request("default", "A", LockMode::EX, LockFlags::NONE, None)
        .unwrap();
    // The youngest request (b's) is the victim; a gets B once b lets go.
    assert!(matches!(b.wait(wb), Err(LockError::Deadlock)));
    b.unlock(gb.handle, None).unwrap();
    let g = a.wait(wa).unwrap();
    assert!(g.token > gb.token);
    a.unlock(ga.handle, None).unwrap();
    a.unlock(g.handle, None).unwrap();

    // Three clients in a ring: x holds X wants Y, y holds Y wants Z, z holds Z wants X.
    let mut cs: Vec<LockClient> = (0..3).map(|_| d.client()).collect();
    let names = ["X", "Y", "Z"];
    for (c, n) in cs.iter_mut().zip(names) {
        c.lock("ring", n, LockMode::PW, LockFlags::NONE, None)
            .unwrap();
    }
    let h0 = cs[0]
        .request("ring", "Y", LockMode::PR, LockFlags::NONE, None)
        .unwrap();
    let h1 = cs[1]
        .request("ring", "Z", LockMode::EX, LockFlags::NONE, None)
        .unwrap();
    let h2 = cs[2]
        .request("ring", "X", LockMode::CW, LockFlags::NONE, None)
        .unwrap();
    assert!(matches!(cs[2].wait(h2), Err(LockError::Deadlock)));
    drop(cs.pop()); // z goes away: y gets Z, then lets go of Y so x gets it.
    let gz = cs[1].wait(h1).unwrap();
    assert_eq!(gz.mode, LockMode::EX);
    drop(cs.pop());
    assert_eq!(cs[0].wait(h0).unwrap().mode, LockMode::PR);
}

#[test]
fn blocking_notification_cancel_and_value_block() {
    let d = Daemon::start("notify");
    let mut a = d.client();
    let mut b = d.client();
    let ga = a
        .lock("default", "res", LockMode::EX, LockFlags::VALBLK, None)
        .unwrap();
    assert_eq!(ga.lvb.map(|v| v.valid), Some(true));
    let h = b
        .request("default", "res", LockMode::PR, LockFlags::VALBLK, None)
        .unwrap();
    // a is told that it blocks a PR request; b that it is queued.
    let ev = a.poll_event(Some(Duration::from_secs(2))).unwrap();
    assert_eq!(
        ev,
        Some(LockEvent::Blocking {
            handle: ga.handle.0,
            granted: LockMode::EX,
            blocked: LockMode::PR
        })
    );
    assert!(matches!(
        b.poll_event(Some(Duration::from_secs(2))).unwrap(),
        Some(LockEvent::Queued {
            mode: LockMode::PR,
            ..
        })
    ));
    b.cancel(h).unwrap();
    assert!(matches!(b.wait(h), Err(LockError::Cancelled)));
    // Down-convert EX -> PR writing the value block, then b reads it.
    let lvb = [7u8; 32];
    let g = a
        .convert(ga.handle, LockMode::PR, LockFlags::VALBLK, Some(lvb), None)
        .unwrap();
    assert!(g.token > ga.token);
    let gb = b
        .lock("default", "res", LockMode::PR, LockFlags::VALBLK, None)
        .unwrap();
    assert_eq!(gb.lvb.unwrap().bytes, lvb);
    // A PR holder cannot up-convert to EX with NOQUEUE while another PR is held.
    assert!(matches!(
        a.convert(g.handle, LockMode::EX, LockFlags::NOQUEUE, None, None),
        Err(LockError::WouldBlock)
    ));
    assert_eq!(holders(&mut a, "res"), 2);
}

#[test]
fn fencing_tokens_survive_restarts() {
    let mut d = Daemon::start("restart");
    let mut c = d.client();
    let t1 = c
        .lock("default", "f", LockMode::EX, LockFlags::NONE, None)
        .unwrap();
    c.unlock(t1.handle, None).unwrap();
    let t1b = c
        .lock("default", "g", LockMode::EX, LockFlags::NONE, None)
        .unwrap();
    drop(c);
    // A crash (only the write-ahead log survives).
    d.signal_and_wait(9);
    d.spawn();
    let mut c = d.client();
    let t2 = c
        .lock("default", "f", LockMode::EX, LockFlags::NONE, None)
        .unwrap();
    assert!(t2.token > t1b.token, "{} after {}", t2.token, t1b.token);
    // The holder of g died with the daemon: g is free again.
    let g = c.try_lock("default", "g", LockMode::EX).unwrap();
    assert!(g.token > t2.token);
    drop(c);
    // A clean stop (snapshot), then a restart.
    d.signal_and_wait(15);
    assert!(d.dir.join("state/lockmgr.snap").exists());
    d.spawn();
    let mut c = d.client();
    let t3 = c
        .lock("default", "f", LockMode::EX, LockFlags::NONE, None)
        .unwrap();
    assert!(t3.token > g.token);
    let s = c.status().unwrap();
    assert_eq!(s.mode, "single-node");
    assert_eq!(s.next_token, t3.token + 1);
    let out = d.ctl().arg("status").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("mode:          single-node"), "{text}");
    assert!(text.contains("leader:        1"), "{text}");
}

fn raw_connect(d: &Daemon) -> UnixStream {
    let s = UnixStream::connect(d.rundir().join("lockmgr.sock")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Reads until EOF; returns what arrived.
fn read_all(mut s: UnixStream) -> Vec<u8> {
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    buf
}

#[test]
fn bad_input_gets_clear_errors_and_the_daemon_keeps_serving() {
    let d = Daemon::start("badinput");
    let mut good = d.client();
    let g = good
        .lock("default", "keep", LockMode::EX, LockFlags::NONE, None)
        .unwrap();

    // Oversized names: refused, connection still usable.
    let long = "n".repeat(65);
    let err = good
        .lock("default", &long, LockMode::EX, LockFlags::NONE, None)
        .unwrap_err();
    assert!(
        matches!(&err, LockError::BadRequest(m) if m.contains("65 bytes")),
        "{err}"
    );
    let err = good
        .lock(&long, "x", LockMode::EX, LockFlags::NONE, None)
        .unwrap_err();
    assert!(matches!(err, LockError::BadRequest(_)), "{err}");
    // Unknown mode from the shell: a usage error naming the modes.
    let out = d
        .ctl()
        .args(["lock", "x", "--mode", "XX", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("unknown lock mode")
    );
    let out = d
        .ctl()
        .args(["lock", &long, "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("must be 1 to 64 bytes")
    );

    // A frame of garbage: an Error frame, then the connection is closed.
    let mut s = raw_connect(&d);
    s.write_all(&[0, 0, 0, 5, 0xff, 0xfe, 0xfd, 0xfc, 0xfb])
        .unwrap();
    let got = read_all(s);
    assert!(
        String::from_utf8_lossy(&got).contains("malformed frame"),
        "{got:?}"
    );
    // A frame larger than the limit.
    let mut s = raw_connect(&d);
    s.write_all(&[0x7f, 0xff, 0xff, 0xff]).unwrap();
    let got = read_all(s);
    assert!(
        String::from_utf8_lossy(&got).contains("exceeds the maximum"),
        "{got:?}"
    );
    // A well-formed Hello, then a Lock request with an unknown mode (variant 9).
    let mut s = raw_connect(&d);
    let hello = [0u8, 1, 1, b'x']; // Hello { version: 1, name: "x" }
    let mut frame = u32::try_from(hello.len()).unwrap().to_be_bytes().to_vec();
    frame.extend_from_slice(&hello);
    s.write_all(&frame).unwrap();
    // Request { id: 1, Lock { handle 1, "default", "r", mode 9, ... } }
    let mut body = vec![1u8, 1, 0, 1, 7];
    body.extend_from_slice(b"default");
    body.extend_from_slice(&[1, b'r', 9, 0, 0, 0]);
    let mut frame = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    s.write_all(&frame).unwrap();
    let got = read_all(s);
    assert!(
        String::from_utf8_lossy(&got).contains("unknown LockMode variant 9"),
        "{got:?}"
    );
    // Requests before the Hello, and a wrong version.
    let mut s = raw_connect(&d);
    s.write_all(&[0, 0, 0, 3, 1, 1, 4]).unwrap(); // Request { id: 1, Status }
    assert!(String::from_utf8_lossy(&read_all(s)).contains("must be a Hello"));
    let mut s = raw_connect(&d);
    s.write_all(&[0, 0, 0, 3, 0, 9, 0]).unwrap();
    assert!(String::from_utf8_lossy(&read_all(s)).contains("version 9 not supported"));
    // A client that vanished in the middle of a frame.
    let mut s = raw_connect(&d);
    s.write_all(&[0, 0, 0, 40, 1, 2]).unwrap();
    drop(s);

    // Everyone else is still served: the good client keeps its lock and can take more.
    let g2 = good
        .lock("default", "more", LockMode::EX, LockFlags::NONE, None)
        .unwrap();
    assert!(g2.token > g.token);
    let out = d
        .ctl()
        .args(["lock", "keep", "--nowait", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(Path::new(&d.rundir().join("lockmgr.sock")).exists());
}
