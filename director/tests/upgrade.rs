//! Upgrading a running director by the documented procedure (docs/UPGRADE.md): a new binary
//! is renamed over the running one, as dpkg does, and `lvs-director --upgrade` hands the
//! connection table over to it. 100 established keep-alive connections from a real client go
//! on answering, each from the same real server, through the same process id; counters go on;
//! a new binary that fails its check changes nothing.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdout, Command, Output};

use common::{SOON, Testbed, VIP, wait_for};

const CONNS: usize = 100;

/// Holds `n` keep-alive HTTP/1.1 connections to VIP:80 on raw sockets (never reconnecting):
/// each round (a line on stdin) sends one GET on every connection and prints
/// `round <local port>=<server>,...`; a connection that fails prints `<port>=ERR:<why>`.
const CLIENT: &str = r#"
import socket, sys, time
vip, n = sys.argv[1], int(sys.argv[2])
socks = [socket.create_connection((vip, 80), timeout=20) for _ in range(n)]
def answer(s, deadline):
    buf = b""
    def more():
        s.settimeout(max(0.1, deadline - time.monotonic()))
        d = s.recv(4096)
        if not d:
            raise EOFError("closed")
        return d
    while b"\r\n\r\n" not in buf:
        buf += more()
    head, body = buf.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, v = line.split(b":", 1)
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(body) < length:
        body += more()
    return body.decode().strip()
while True:
    # Every request first, then the answers, within one deadline for the round.
    sent = []
    for s in socks:
        try:
            s.sendall(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n")
            sent.append(None)
        except Exception as e:
            sent.append("ERR:" + type(e).__name__)
    deadline = time.monotonic() + 20
    out = []
    for s, err in zip(socks, sent):
        port = s.getsockname()[1]
        if err is None:
            try:
                err = answer(s, deadline)
            except Exception as e:
                err = "ERR:" + type(e).__name__
        out.append("%d=%s" % (port, err))
    print("round " + ",".join(out), flush=True)
    if not sys.stdin.readline():
        break
"#;

/// One round's answers: (local port, server name) in connection order.
fn round(out: &mut BufReader<ChildStdout>) -> Vec<(String, String)> {
    let mut line = String::new();
    out.read_line(&mut line).expect("read the client's answers");
    let rest = line
        .trim()
        .strip_prefix("round ")
        .unwrap_or_else(|| panic!("the client said {line:?}"));
    rest.split(',')
        .map(|p| {
            let (port, name) = p.split_once('=').expect("port=name");
            (port.to_owned(), name.to_owned())
        })
        .collect()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Installs `from` at `to` as dpkg does: written beside it, then renamed over it (the
/// running binary's file is not touched; the path names a new file).
fn install(from: &Path, to: &Path) {
    let tmp = to.with_extension("dpkg-new");
    std::fs::copy(from, &tmp).expect("copy the new build");
    std::fs::rename(&tmp, to).expect("rename the new build into place");
}

/// `lvs-director --upgrade` (the new binary) against the director in the testbed.
fn upgrade(bin: &Path, tb: &Testbed) -> Output {
    Command::new(bin)
        .arg("--upgrade")
        .arg("--rundir")
        .arg(&tb.rundir)
        .output()
        .expect("run lvs-director --upgrade")
}

struct BinDir(PathBuf);

impl Drop for BinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn upgrade_keeps_established_connections_on_their_servers() {
    let dir = BinDir(std::env::temp_dir().join(format!("lvs-e2e-upgrade-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).expect("create the binary directory");
    let built = Path::new(env!("CARGO_BIN_EXE_lvs-director"));
    let bin = dir.0.join("lvs-director");
    install(built, &bin);
    let Some(mut tb) = Testbed::start_bin("upgrade_keeps_connections", "nat", "", &bin) else {
        return;
    };
    tb.service("-t", 80, "-s rr", "-m", &[1, 1, 1]);
    let pid = tb.director_pid();

    let c = tb.spawn("c", &["python3", "-c", CLIENT, VIP, &CONNS.to_string()]);
    let mut stdin = tb.helper(c).stdin.take().expect("the client's stdin");
    let mut out = BufReader::new(tb.helper(c).stdout.take().expect("the client's stdout"));
    let first = round(&mut out);
    assert_eq!(first.len(), CONNS);
    assert!(
        first.iter().all(|(_, n)| n.starts_with('r')),
        "every connection answered: {first:?}"
    );
    let established = tb
        .conns()
        .iter()
        .filter(|c| c.state == "ESTABLISHED")
        .count();
    assert_eq!(established, CONNS, "{}", tb.adm("-L -n -c"));
    let conns_before = tb.service_stats(VIP, 80).0;

    // A new build that fails its check: refused, nothing stops.
    std::fs::write(
        bin.with_extension("broken"),
        "#!/bin/sh\necho broken >&2\nexit 1\n",
    )
    .expect("write a broken binary");
    let mut perm = std::fs::metadata(bin.with_extension("broken"))
        .unwrap()
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(bin.with_extension("broken"), perm).unwrap();
    std::fs::rename(bin.with_extension("broken"), &bin).expect("install the broken build");
    let o = upgrade(built, &tb);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("failed its check"), "{}", text(&o));
    writeln!(stdin, "again").unwrap();
    let refused = round(&mut out);
    assert_eq!(refused, first, "after a refused upgrade");

    // The real new build, with reloads asked for all along: a SIGHUP while the new binary
    // starts must not end the director (its handlers are not installed yet).
    install(built, &bin);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hups = {
        let done = std::sync::Arc::clone(&done);
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP);
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        })
    };
    let o = upgrade(&bin, &tb);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    hups.join().unwrap();
    assert!(o.status.success(), "{}\n{}", text(&o), tb.log_text());
    let report = text(&o);
    assert!(
        report.contains(&format!("{CONNS} of {CONNS} table entries restored")),
        "{report}"
    );
    assert_eq!(tb.director_pid(), pid);
    let exe = std::fs::metadata(format!("/proc/{pid}/exe")).expect("the director runs");
    let new = std::fs::metadata(&bin).unwrap();
    assert_eq!(
        (exe.dev(), exe.ino()),
        (new.dev(), new.ino()),
        "the director runs the new file"
    );

    writeln!(stdin, "again").unwrap();
    let after = round(&mut out);
    assert_eq!(
        after,
        first,
        "every connection answers, from the same server\n{}",
        tb.log_text()
    );
    // The table and the counters go on.
    let established = tb
        .conns()
        .iter()
        .filter(|c| c.state == "ESTABLISHED")
        .count();
    assert_eq!(established, CONNS);
    assert!(tb.service_stats(VIP, 80).0 >= conns_before);
    assert!(tb.log_text().contains("event=upgrade_start"));
    assert!(tb.log_text().contains("event=upgrade_resumed"));

    // SIGHUP still reloads, and new connections are scheduled.
    let reloads = tb.log_text().matches("event=config_reload").count();
    tb.sighup();
    wait_for("the reload after the upgrade", SOON, || {
        (tb.log_text().matches("event=config_reload").count() > reloads).then_some(())
    });
    assert!(tb.curl().starts_with('r'));
    drop(stdin);
    // Dropping the testbed stops the director with SIGTERM: clean exit, guard removed.
    if let Err(e) = tb.stop_director() {
        panic!("{e}");
    }
}

/// The SysV way (docs/UPGRADE.md): a forking director started by its init script is upgraded by
/// `/etc/init.d/lvs-director upgrade`: same pid (the pidfile still names it), the new file
/// runs, the services made with lvsadm are still there, and `stop` stops it.
#[test]
fn init_script_upgrade_keeps_the_forking_director() {
    if !common::root_or_skip("init_script_upgrade_keeps_the_forking_director") {
        return;
    }
    let scratch = lvs_testsupport::daemon::Scratch::new("dirupg");
    let dir = scratch.path();
    let built = Path::new(env!("CARGO_BIN_EXE_lvs-director"));
    let bin = dir.join("lvs-director");
    install(built, &bin);
    let config = dir.join("director.toml");
    std::fs::write(&config, "workers = 1\n").unwrap();
    let rundir = scratch.rundir();
    let defaults = lvs_testsupport::daemon::init_defaults(dir, &bin, &config, &rundir);
    let script = common::repo_root().join("etc/init.d/lvs-director");
    let action = |what: &str| {
        lvs_testsupport::daemon::run_with_deadline(
            Command::new("ip")
                .args(["netns", "exec", &scratch.ns, "sh"])
                .arg(&script)
                .arg(what)
                .env("LVS_DEFAULTS_FILE", &defaults)
                .env("LVS_PLUGIN_PATH", built.parent().unwrap())
                .env("_SYSTEMCTL_SKIP_REDIRECT", "true")
                .env_remove("LVS_RUNDIR"),
            what,
        )
    };
    let start = action("start");
    assert!(start.status.success(), "{}", text(&start));
    let pid = || -> i32 {
        std::fs::read_to_string(rundir.join("director.pid"))
            .unwrap_or_default()
            .trim()
            .parse()
            .unwrap_or(0)
    };
    let first = wait_for("the pidfile", SOON, || (pid() > 0).then(pid));
    let adm = |args: &[&str]| {
        let out = common::lvsadm_at(&rundir, args);
        assert!(out.status.success(), "lvsadm {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    wait_for("the control socket", SOON, || {
        common::lvsadm_at(&rundir, &["-L", "-n"])
            .status
            .success()
            .then_some(())
    });
    adm(&["-A", "-t", "192.0.2.100:80", "-s", "rr"]);
    let saved = adm(&["-S", "-n"]);

    install(built, &bin);
    let up = action("upgrade");
    assert!(up.status.success(), "{}", text(&up));
    assert!(text(&up).contains("ok upgraded"), "{}", text(&up));
    assert_eq!(pid(), first, "the same process");
    let exe = std::fs::metadata(format!("/proc/{first}/exe")).unwrap();
    let new = std::fs::metadata(&bin).unwrap();
    assert_eq!((exe.dev(), exe.ino()), (new.dev(), new.ino()));
    assert_eq!(adm(&["-S", "-n"]), saved);
    let status = action("status");
    assert!(status.status.success(), "{}", text(&status));

    let stop = action("stop");
    assert!(stop.status.success(), "{}", text(&stop));
    // Gone, or a zombie its (re)parent has not reaped yet.
    let state = std::fs::read_to_string(format!("/proc/{first}/status")).unwrap_or_default();
    assert!(
        state.is_empty() || state.contains("State:\tZ"),
        "stopped after its upgrade: {state}"
    );
}
