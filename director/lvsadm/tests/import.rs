//! `lvsadm --import`: realistic keepalived.conf and ldirectord.cf files (tests/testdata,
//! written from keepalived.conf(5) and ldirectord(8)) imported, every line of them found again
//! in what was written (mapped, or a comment with why), and each written file accepted by its
//! daemon's `--check-config`; a keepalived.conf with two virtual services and a VRRP instance
//! imported and run in the namespace testbed (scripts/testbed.sh): the real lvs-director
//! serving curl, lvs-heartbeatd taking the VIP, lvs-monitord taking a dead server out.
//!
//! The daemons come from the target directory: `cargo build --workspace` first
//! (scripts/test.sh does).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use lvs_testsupport::{TempDir, root_or_skip, sibling_bin, wait_for};

const LVSADM: &str = env!("CARGO_BIN_EXE_lvsadm");

fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata")
        .join(rel)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn import(kind: &str, source: &Path, out: &Path) -> Output {
    run(Command::new(LVSADM)
        .args(["--import", kind])
        .arg(source)
        .arg("-o")
        .arg(out))
}

/// Copies the files of `from` (one level of subdirectories) to `to`, with `/etc/keepalived/`
/// and `/etc/ha.d/` (where the sources keep their scripts) replaced by `to/`, and makes each
/// script they name there, executable: the daemons check that a notify command exists.
fn stage(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            stage(&p, &to.join(e.file_name()));
            continue;
        }
        let prefix = format!("{}/", to.display());
        let t = std::fs::read_to_string(&p)
            .unwrap()
            .replace("/etc/keepalived/", &prefix)
            .replace("/etc/ha.d/", &prefix);
        std::fs::write(to.join(e.file_name()), &t).unwrap();
        for word in t.split(['"', ' ', '\n', '=']) {
            if let Some(name) = word.strip_prefix(&prefix)
                && name.ends_with(".sh")
            {
                let script = to.join(name);
                std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
                std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
    }
}

/// Every line of the source files under `dir` that is neither blank, a comment, nor a lone
/// brace must be named (`FILE:LINE` followed by a non-digit) in one of the written files.
fn assert_every_line_accounted_for(dir: &Path, files: &[PathBuf], written: &str) {
    for f in files {
        let body = std::fs::read_to_string(f).unwrap();
        let name = f.display().to_string();
        for (i, line) in body.lines().enumerate() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') || t.starts_with('!') || t == "}" || t == "{" {
                continue;
            }
            let tag = format!("{name}:{}", i + 1);
            let found = written.match_indices(&tag).any(|(at, _)| {
                !written[at + tag.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_digit())
            });
            assert!(
                found,
                "{tag} `{t}` is neither mapped nor commented in what {} holds:\n{written}",
                dir.display()
            );
        }
    }
}

fn written(out: &Path) -> String {
    ["rules", "director.toml", "monitord.toml", "heartbeatd.toml"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(out.join(f)).ok())
        .collect::<Vec<_>>()
        .join("\n")
}

fn daemon(name: &str) -> PathBuf {
    sibling_bin(LVSADM, name)
}

/// `DAEMON --check-config -c FILE` must say the file is OK.
fn check_config(name: &str, file: &Path) {
    let out = run(Command::new(daemon(name))
        .arg("--check-config")
        .arg("-c")
        .arg(file));
    assert!(
        out.status.success(),
        "{name} --check-config -c {} failed: {}{}\n{}",
        file.display(),
        text(&out.stdout),
        text(&out.stderr),
        std::fs::read_to_string(file).unwrap_or_default()
    );
}

fn source_files(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            v.extend(source_files(&p));
        } else if !p.to_string_lossy().ends_with(".sh") {
            v.push(p);
        }
    }
    v.sort();
    v
}

#[test]
fn a_realistic_keepalived_conf_imports_line_by_line_and_every_daemon_accepts_it() {
    let tmp = TempDir::new("import-keepalived");
    let src = tmp.path().join("etc");
    stage(&testdata("keepalived"), &src);
    let out = tmp.path().join("out");
    let o = import("keepalived", &src.join("keepalived.conf"), &out);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(
        text(&o.stdout).contains("heartbeat.key"),
        "{}",
        text(&o.stdout)
    );
    // two-services.conf is a file of its own (the testbed's).
    let files: Vec<PathBuf> = source_files(&src)
        .into_iter()
        .filter(|f| !f.ends_with("two-services.conf"))
        .collect();
    let all = written(&out);
    assert_every_line_accounted_for(&out, &files, &all);
    check_config("lvs-director", &out.join("director.toml"));
    check_config("lvs-monitord", &out.join("monitord.toml"));
    check_config("lvs-heartbeatd", &out.join("heartbeatd.toml"));
    // What the site says, in the suite's words.
    let rules = std::fs::read_to_string(out.join("rules")).unwrap();
    for want in [
        "-A -t 192.0.2.10:80 -s wlc -p 300 -M 255.255.255.0",
        "-a -t 192.0.2.10:80 -r 10.0.0.1:80 -m -w 3 -x 5000 -y 4000",
        "-A -t 192.0.2.10:443 -s sh -b sh-port",
        "-a -t 192.0.2.10:25 -r 192.0.2.31:25 -i -w 1",
        "-A -u 192.0.2.10:53 -s rr",
        "-A -t [2001:db8::10]:80 -s mh -b mh-fallback",
    ] {
        assert!(rules.contains(want), "{want}\n{rules}");
    }
    let monitord = std::fs::read_to_string(out.join("monitord.toml")).unwrap();
    for want in [
        "on_failure = \"quiesce\"",
        "sorry_server = \"10.0.0.99:8080\"",
        "quorum = 2",
        "hysteresis = 1",
        "type = \"https\"",
        "type = \"dns\"",
        "type = \"script\"",
        "type = \"icmp\"",
        "status = [200, 201, 202, 203, 204]",
        "to = [\"ops@example.org\", \"oncall@example.org\"]",
        "not mapped: monitord compares the body's SHA-256",
    ] {
        assert!(monitord.contains(want), "{want}\n{monitord}");
    }
    let hb = std::fs::read_to_string(out.join("heartbeatd.toml")).unwrap();
    for want in [
        "node_id = 1",
        "priority = 150",
        "auto_failback = false",
        "peers = [\"198.51.100.2:694\"]",
        "addr = \"192.0.2.10/24\"",
        "addr = \"10.0.0.254/24\"",
        "addr = \"2001:db8::10/64\"",
        "keepalive_ms = 1000",
    ] {
        assert!(hb.contains(want), "{want}\n{hb}");
    }
    // Importing again keeps the key (the peer has a copy of it).
    let key = std::fs::read(out.join("heartbeat.key")).unwrap();
    let o = import("keepalived", &src.join("keepalived.conf"), &out);
    assert!(o.status.success());
    assert_eq!(std::fs::read(out.join("heartbeat.key")).unwrap(), key);
    let mode = std::fs::metadata(out.join("heartbeat.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_realistic_ldirectord_cf_imports_line_by_line_and_every_daemon_accepts_it() {
    let tmp = TempDir::new("import-ldirectord");
    let src = tmp.path().join("etc");
    stage(&testdata("ldirectord"), &src);
    let out = tmp.path().join("out");
    let o = import("ldirectord", &src.join("ldirectord.cf"), &out);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(
        !out.join("heartbeatd.toml").exists(),
        "ldirectord has no VRRP"
    );
    let all = written(&out);
    assert_every_line_accounted_for(&out, &source_files(&src), &all);
    check_config("lvs-director", &out.join("director.toml"));
    check_config("lvs-monitord", &out.join("monitord.toml"));
    let rules = std::fs::read_to_string(out.join("rules")).unwrap();
    for want in [
        "-a -t 192.0.2.10:80 -r 10.0.0.3:80 -m -w 1",
        "-A -u 192.0.2.10:53 -s rr",
        "-a -t 192.0.2.10:443 -r 192.0.2.22:443 -g -w 2",
        "-a -t [2001:db8::10]:80 -r [2001:db8:1::2]:80 -m -w 1",
    ] {
        assert!(rules.contains(want), "{want}\n{rules}");
    }
    let monitord = std::fs::read_to_string(out.join("monitord.toml")).unwrap();
    for want in [
        "path = \"/.healthcheck.html\"",
        "body = \"OKAY\"",
        "on_failure = \"remove\"",
        "sorry_server = \"127.0.0.1:80\"",
        "expect = [\"192.0.2.10\"]",
        "interval = 30",
    ] {
        assert!(monitord.contains(want), "{want}\n{monitord}");
    }
}

#[test]
fn syntax_errors_name_file_and_line_and_write_nothing() {
    let tmp = TempDir::new("import-errors");
    let cases = [
        (
            "keepalived",
            "k.conf",
            "virtual_server 192.0.2.1 80 {\n  lb_algo rr\n",
            ":1:",
            "not closed",
        ),
        (
            "keepalived",
            "k.conf",
            "global_defs {\n}\n}\n",
            ":3:",
            "closes no block",
        ),
        (
            "keepalived",
            "k.conf",
            "virtual_server 192.0.2.1 80 {\n  real_server 10.0.0.1 80 {\n    weight \"3\n  }\n}\n",
            ":3:",
            "quoted",
        ),
        (
            "keepalived",
            "k.conf",
            "virtual_server 192.0.2.1 80 {\n  delay_loop soon\n}\n",
            ":2:",
            "delay_loop",
        ),
        (
            "keepalived",
            "k.conf",
            "include missing.conf\n",
            ":1:",
            "no such file",
        ),
        (
            "ldirectord",
            "l.cf",
            "virtual=192.0.2.1:80\n\treal=10.0.0.1:80 gate\n\tchecktype\n",
            ":3:",
            "key = value",
        ),
        (
            "ldirectord",
            "l.cf",
            "\treal=10.0.0.1:80 gate\n",
            ":1:",
            "virtual=",
        ),
    ];
    for (kind, name, body, at, what) in cases {
        let src = tmp.path().join(name);
        std::fs::write(&src, body).unwrap();
        let out = tmp.path().join("out");
        let o = import(kind, &src, &out);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{body}: {err}");
        assert!(
            err.contains(&format!("{}{at}", src.display())) && err.contains(what),
            "{body}: {err}"
        );
        assert!(!out.exists(), "{body}: something was written");
    }
    // A bad command line is a usage error.
    let o = run(Command::new(LVSADM).args(["--import", "no-such-format", "x", "-o", "y"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("neither keepalived nor ldirectord"));
}

/// Stops monitord and the director and removes the testbed, even when the test fails.
struct Bed {
    prefix: String,
    rundir: PathBuf,
    heartbeatd: Option<Child>,
    monitord: Option<Child>,
    director: Option<Child>,
}

/// SIGTERM, a bounded wait, then SIGKILL.
fn stop(mut child: Child) {
    lvs_testsupport::terminate(&mut child, Duration::from_secs(10));
}

impl Bed {
    /// Starts a workspace daemon in the director's namespace on the run directory.
    fn spawn(&self, name: &str, config: &Path) -> Child {
        Command::new("ip")
            .args(["netns", "exec", &format!("{}-d", self.prefix)])
            .arg(daemon(name))
            .args(["-f", "--no-syslog", "--rundir"])
            .arg(&self.rundir)
            .arg("-c")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.rundir.join(format!("{name}.log"))).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"))
    }

    fn lvsadm_list(&self) -> String {
        let o = run(Command::new(LVSADM)
            .arg("--rundir")
            .arg(&self.rundir)
            .args(["-L", "-n"]));
        if o.status.success() {
            text(&o.stdout)
        } else {
            String::new()
        }
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeatd.take() {
            stop(h);
        }
        if let Some(m) = self.monitord.take() {
            stop(m);
        }
        if let Some(d) = self.director.take() {
            stop(d);
        }
        let _ = run(Command::new(testbed()).args(["down", &self.prefix]));
        if std::thread::panicking() {
            for name in ["lvs-director", "lvs-monitord", "lvs-heartbeatd"] {
                eprintln!(
                    "{name} log:\n{}",
                    std::fs::read_to_string(self.rundir.join(format!("{name}.log")))
                        .unwrap_or_default()
                );
            }
        }
    }
}

fn testbed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/testbed.sh")
}

#[test]
fn two_keepalived_virtual_servers_run_on_the_demo_cluster() {
    let test = "two_keepalived_virtual_servers_run_on_the_demo_cluster";
    if !root_or_skip(test) {
        return;
    }
    let tmp = TempDir::new("import-run");
    let out = tmp.path().join("out");
    let o = import(
        "keepalived",
        &testdata("keepalived/two-services.conf"),
        &out,
    );
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    check_config("lvs-director", &out.join("director.toml"));
    check_config("lvs-monitord", &out.join("monitord.toml"));
    check_config("lvs-heartbeatd", &out.join("heartbeatd.toml"));

    let prefix = format!("i{}", std::process::id() % 100_000);
    let rundir = tmp.path().join("run");
    std::fs::create_dir_all(&rundir).unwrap();
    let mut bed = Bed {
        prefix: prefix.clone(),
        rundir: rundir.clone(),
        heartbeatd: None,
        monitord: None,
        director: None,
    };
    let up = run(Command::new(testbed()).args(["up", &prefix, "nat"]));
    assert!(up.status.success(), "testbed up: {}", text(&up.stderr));
    let http = run(Command::new(testbed()).args(["http", &prefix]));
    assert!(
        http.status.success(),
        "testbed http: {}",
        text(&http.stderr)
    );
    // The imported director.toml as it is, plus the testbed's worker count.
    let config = rundir.join("director.toml");
    let imported = std::fs::read_to_string(out.join("director.toml")).unwrap();
    std::fs::write(&config, format!("workers = 2\n{imported}")).unwrap();
    bed.director = Some(bed.spawn("lvs-director", &config));
    let listing = wait_for("the imported services", Duration::from_secs(15), || {
        let l = bed.lvsadm_list();
        l.contains("203.0.113.100:8080").then_some(l)
    });
    // The imported heartbeatd owns the VIP from now on (as in the demo's failover act): it
    // leaves the director's eth0, and the primary, alone, takes it after initdead. Its state
    // stays in the test's directory.
    let del = run(Command::new("ip").args([
        "-n",
        &format!("{prefix}-d"),
        "addr",
        "del",
        "203.0.113.100/32",
        "dev",
        "eth0",
    ]));
    assert!(del.status.success(), "{}", text(&del.stderr));
    let hb = rundir.join("heartbeatd.toml");
    let imported = std::fs::read_to_string(out.join("heartbeatd.toml")).unwrap();
    let epoch = rundir.join("heartbeatd.epoch");
    std::fs::write(
        &hb,
        format!("epoch_file = \"{}\"\n{imported}", epoch.display()),
    )
    .unwrap();
    bed.heartbeatd = Some(bed.spawn("lvs-heartbeatd", &hb));
    wait_for("the VIP on lvs-vip0", Duration::from_secs(20), || {
        let o = run(Command::new("ip").args([
            "-n",
            &format!("{prefix}-d"),
            "-4",
            "addr",
            "show",
            "dev",
            "lvs-vip0",
        ]));
        text(&o.stdout)
            .contains("inet 203.0.113.100/")
            .then_some(())
    });
    assert!(listing.contains("TCP  203.0.113.100:80 rr"), "{listing}");
    assert!(listing.contains("TCP  203.0.113.100:8080 wrr"), "{listing}");
    let curl = |port: u16| -> String {
        let o = run(Command::new("ip").args([
            "netns",
            "exec",
            &format!("{prefix}-c"),
            "curl",
            "-s",
            "-m",
            "5",
            &format!("http://203.0.113.100:{port}/"),
        ]));
        assert!(o.status.success(), "curl to port {port} got no answer");
        text(&o.stdout).trim().to_owned()
    };
    // Port 80: round robin over the three servers.
    let mut names: Vec<String> = (0..6).map(|_| curl(80)).collect();
    names.sort();
    names.dedup();
    assert_eq!(names, ["r1", "r2", "r3"]);
    // Port 8080: r1 and r2 only, weighted 2:1.
    let names: Vec<String> = (0..6).map(|_| curl(8080)).collect();
    assert_eq!(names.iter().filter(|n| *n == "r1").count(), 4, "{names:?}");
    assert_eq!(names.iter().filter(|n| *n == "r2").count(), 2, "{names:?}");

    // The imported checks, run by monitord: r3's web server dies, its HTTP check fails, and
    // it leaves the service (keepalived removes a failed server unless inhibit_on_failure).
    bed.monitord = Some(bed.spawn("lvs-monitord", &out.join("monitord.toml")));
    wait_for(
        "lvs-monitord's control socket",
        Duration::from_secs(15),
        || {
            let o = run(Command::new(daemon("lvs-monitord"))
                .args(["ctl", "--rundir"])
                .arg(&rundir)
                .arg("list"));
            o.status.success().then_some(())
        },
    );
    let pids = run(Command::new("ip").args(["netns", "pids", &format!("{prefix}-r3")]));
    for p in text(&pids.stdout).split_whitespace() {
        if let Ok(p) = p.parse::<i32>() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    wait_for(
        "r3 to leave 203.0.113.100:80",
        Duration::from_secs(20),
        || {
            let l = bed.lvsadm_list();
            let port80 = l
                .split("203.0.113.100:8080")
                .next()
                .unwrap_or("")
                .to_owned();
            (l.contains("203.0.113.100:80 ") && !port80.contains("203.0.113.13:80")).then_some(())
        },
    );
    let mut names: Vec<String> = (0..4).map(|_| curl(80)).collect();
    names.sort();
    names.dedup();
    assert_eq!(names, ["r1", "r2"]);
}
