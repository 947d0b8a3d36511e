//! The end-to-end testbed of lvs-monitord's and lvs-webmon's tests: the namespace testbed of
//! `scripts/testbed.sh` (client, router, director, three real servers with HTTP servers), the
//! real `lvs-director` (two workers, its rules from a rules file so that a restart brings them
//! back), and the real `lvs-monitord` in the director's namespace. Everything is undone on
//! drop, even when the test panics (then the logs are printed).
//!
//! The binaries come from the target directory of the crate under test ([`Testbed::built`]):
//! `cargo build --workspace` first (scripts/test.sh does).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::{root_or_skip, sibling_bin, spawn_http_server, wait_for};

pub const VIP: &str = "203.0.113.100";
pub const RS: [&str; 3] = ["203.0.113.11", "203.0.113.12", "203.0.113.13"];
pub const NAMES: [&str; 3] = ["r1", "r2", "r3"];
/// The weights the rules file gives r1..r3.
pub const WEIGHTS: [u32; 3] = [1, 2, 1];

/// Generous bound for anything that should happen "at once" on a loaded 2-core machine.
pub const SOON: Duration = Duration::from_secs(10);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Whose tests run the testbed: where the binaries are, and names that do not collide with
/// another crate's test binary running at the same time.
#[derive(Debug, Clone, Copy)]
pub struct Testbed {
    /// A `CARGO_BIN_EXE_*` path of the crate under test: `lvs-director`, `lvsadm` and
    /// `lvs-monitord` sit beside it in the target directory.
    pub built: &'static str,
    /// The first letter of the namespace prefix (`<letter><pid><n>`).
    pub letter: &'static str,
    /// The run directory under the temp dir is `<rundir>-<prefix>`.
    pub rundir: &'static str,
}

impl Testbed {
    /// The workspace binary `name` beside [`Testbed::built`].
    pub fn bin(&self, name: &str) -> PathBuf {
        sibling_bin(self.built, name)
    }
}

/// The root of the workspace (`scripts/testbed.sh` is there).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testsupport/ has a parent")
        .to_path_buf()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// `-> ADDR:PORT FWD WEIGHT ...` rows of `lvsadm -L -n`: real server address -> weight.
pub fn parse_weights(listing: &str) -> HashMap<String, u32> {
    listing
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 4 || f[0] != "->" {
                return None;
            }
            let addr = f[1].rsplit_once(':').map_or(f[1], |(a, _)| a).to_owned();
            Some((addr, f[3].parse().ok()?))
        })
        .collect()
}

/// A process started by the test, SIGTERMed (then killed) on drop.
#[derive(Debug)]
pub struct Proc {
    pub child: Child,
    pub name: &'static str,
}

impl Proc {
    pub fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits"))
    }

    /// SIGTERM, wait for the exit (killed after `SOON`); the exit status, if it exited.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        crate::terminate(&mut self.child, SOON)
    }

    /// [`Proc::stop`], and the process must exit 0 (else the test fails showing `log`).
    pub fn stop_cleanly(mut self, log: &Path) {
        let status = self.stop();
        assert!(
            status.is_some_and(|s| s.success()),
            "{} did not stop cleanly ({status:?}):\n{}",
            self.name,
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }

    /// Fails the test (showing `log`) when the process has exited already: for the waits
    /// after a start.
    fn assert_running(p: Option<&mut Proc>, log: &Path) {
        if let Some(p) = p
            && let Ok(Some(status)) = p.child.try_wait()
        {
            panic!(
                "{} exited at start ({status}):\n{}",
                p.name,
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
    }
}

/// The testbed, with the director running and (after [`Cluster::start_monitord`]) monitord.
#[derive(Debug)]
pub struct Cluster {
    pub test: String,
    pub prefix: String,
    pub rundir: PathBuf,
    pub director: Option<Proc>,
    pub monitord: Option<Proc>,
    pub helpers: Vec<Proc>,
    pub bed: Testbed,
    up: bool,
}

impl Cluster {
    /// Builds the testbed in NAT mode with HTTP servers, and starts the director with the
    /// service `VIP:80`, rr, r1..r3 with [`WEIGHTS`] (from its rules file). `None` (after
    /// printing SKIPPED) when not root.
    pub fn start(test: &str, bed: Testbed) -> Option<Self> {
        if !root_or_skip(test) {
            return None;
        }
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("{}{}{n}", bed.letter, std::process::id() % 100_000);
        let rundir = std::env::temp_dir().join(format!("{}-{prefix}", bed.rundir));
        let _ = std::fs::remove_dir_all(&rundir);
        std::fs::create_dir_all(&rundir).expect("create the run directory");
        let mut c = Cluster {
            test: test.to_owned(),
            prefix,
            rundir,
            director: None,
            monitord: None,
            helpers: Vec::new(),
            bed,
            up: true,
        };
        c.script(&["up", &c.prefix.clone(), "nat"]);
        c.script(&["http", &c.prefix.clone()]);
        let mut rules = format!("-A -t {VIP}:80 -s rr\n");
        for (rs, w) in RS.iter().zip(WEIGHTS) {
            rules.push_str(&format!("-a -t {VIP}:80 -r {rs}:80 -m -w {w}\n"));
        }
        std::fs::write(c.rundir.join("rules"), rules).expect("write the rules");
        std::fs::write(
            c.rundir.join("director.toml"),
            format!(
                "workers = 2\nrules_file = \"{}\"\n",
                c.rundir.join("rules").display()
            ),
        )
        .expect("write the director's config");
        c.start_director();
        Some(c)
    }

    fn script(&self, args: &[&str]) {
        let out = run(Command::new(repo_root().join("scripts/testbed.sh")).args(args));
        assert!(
            out.status.success(),
            "testbed.sh {args:?} failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }

    pub fn ns(&self, node: &str) -> String {
        format!("{}-{node}", self.prefix)
    }

    fn log_file(&self, name: &str) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.rundir.join(name))
            .expect("open a log file")
    }

    pub fn director_log(&self) -> String {
        std::fs::read_to_string(self.rundir.join("director.log")).unwrap_or_default()
    }

    pub fn monitord_log(&self) -> String {
        std::fs::read_to_string(self.rundir.join("monitord.log")).unwrap_or_default()
    }

    pub fn monitord_config(&self) -> PathBuf {
        self.rundir.join("monitord.toml")
    }

    /// Starts the workspace binary `name` in the director's namespace, in the foreground on
    /// the run directory with `config`, its stderr appended to `log` there.
    fn spawn_in_director(&self, name: &'static str, config: &Path, log: &str) -> Proc {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns("d")])
            .arg(self.bed.bin(name))
            .args(["-f", "--no-syslog", "--rundir"])
            .arg(&self.rundir)
            .arg("-c")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(self.log_file(log))
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Proc { child, name }
    }

    /// Starts the director (again) and waits for its rules to be listed.
    pub fn start_director(&mut self) {
        let director = self.spawn_in_director(
            "lvs-director",
            &self.rundir.join("director.toml"),
            "director.log",
        );
        self.director = Some(director);
        let log = self.rundir.join("director.log");
        wait_for("the director and its rules", SOON, || {
            Proc::assert_running(self.director.as_mut(), &log);
            let out = self.lvsadm(&["-L", "-n"]);
            (out.status.success() && parse_weights(&text(&out.stdout)).len() == 3).then_some(())
        });
    }

    /// SIGTERM to the director; it must exit 0.
    pub fn stop_director(&mut self) {
        if let Some(d) = self.director.take() {
            d.stop_cleanly(&self.rundir.join("director.log"));
        }
    }

    /// Writes the monitord config and starts monitord; waits for its control socket.
    pub fn start_monitord(&mut self, config: &str) {
        std::fs::write(self.monitord_config(), config).expect("write monitord's config");
        self.restart_monitord();
    }

    /// Starts monitord with the config already written.
    pub fn restart_monitord(&mut self) {
        let monitord =
            self.spawn_in_director("lvs-monitord", &self.monitord_config(), "monitord.log");
        self.monitord = Some(monitord);
        let log = self.rundir.join("monitord.log");
        wait_for("lvs-monitord's control socket", SOON, || {
            Proc::assert_running(self.monitord.as_mut(), &log);
            self.ctl(&["list"]).status.success().then_some(())
        });
    }

    /// SIGTERM to monitord; it must exit 0.
    pub fn stop_monitord(&mut self) {
        if let Some(m) = self.monitord.take() {
            m.stop_cleanly(&self.rundir.join("monitord.log"));
        }
    }

    pub fn monitord_pid(&self) -> Pid {
        self.monitord.as_ref().expect("monitord runs").pid()
    }

    /// `lvs-monitord ctl --rundir R ARGS`.
    pub fn ctl(&self, args: &[&str]) -> Output {
        run(Command::new(self.bed.bin("lvs-monitord"))
            .arg("ctl")
            .arg("--rundir")
            .arg(&self.rundir)
            .args(args))
    }

    pub fn lvsadm(&self, args: &[&str]) -> Output {
        run(Command::new(self.bed.bin("lvsadm"))
            .arg("--rundir")
            .arg(&self.rundir)
            .args(args))
    }

    /// Real server address -> weight, as `lvsadm -L -n` shows them.
    pub fn weights(&self) -> HashMap<String, u32> {
        let out = self.lvsadm(&["-L", "-n"]);
        assert!(out.status.success(), "lvsadm -L -n: {}", text(&out.stderr));
        parse_weights(&text(&out.stdout))
    }

    /// `ADDR:PORT` -> weight of every real server `lvsadm -L -n` lists.
    pub fn dests(&self) -> HashMap<String, u32> {
        let out = self.lvsadm(&["-L", "-n"]);
        assert!(out.status.success(), "lvsadm -L -n: {}", text(&out.stderr));
        text(&out.stdout)
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 4 && f[0] == "->" && f[3].parse::<u32>().is_ok())
                    .then(|| (f[1].to_owned(), f[3].parse().unwrap_or(0)))
            })
            .collect()
    }

    pub fn weight(&self, rs: &str) -> Option<u32> {
        self.weights().get(rs).copied()
    }

    /// The original weights, by address.
    pub fn original_weights() -> HashMap<String, u32> {
        RS.iter().map(|r| r.to_string()).zip(WEIGHTS).collect()
    }

    pub fn exec(&self, node: &str, args: &[&str]) -> Output {
        run(Command::new("ip")
            .args(["netns", "exec", &self.ns(node)])
            .args(args))
    }

    /// One GET of the VIP from the client: the answering server's name.
    pub fn try_curl(&self) -> Option<String> {
        let out = self.exec("c", &["curl", "-s", "-m", "3", &format!("http://{VIP}/")]);
        out.status
            .success()
            .then(|| text(&out.stdout).trim().to_owned())
    }

    pub fn curls(&self, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                self.try_curl().unwrap_or_else(|| {
                    panic!(
                        "curl http://{VIP}/ got no answer\n{}",
                        text(&self.lvsadm(&["-L", "-n", "--stats"]).stdout)
                    )
                })
            })
            .collect()
    }

    fn pids_file(&self, node: &str) -> PathBuf {
        PathBuf::from(format!("/run/lvs-testbed/{}.pids", self.ns(node)))
    }

    /// Stops the HTTP server of `node` (every process in its namespace: the one testbed.sh
    /// started, whose pid file names the shell that started it, or ours) and waits until its
    /// port is closed.
    pub fn kill_http(&self, node: &str) {
        let out = run(Command::new("ip").args(["netns", "pids", &self.ns(node)]));
        for p in text(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
        wait_for("the HTTP server to be gone", SOON, || {
            let out = self.exec(node, &["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/80"]);
            (!out.status.success()).then_some(())
        });
    }

    /// Starts the HTTP server of `node` again (as testbed.sh does) and waits until it
    /// answers.
    pub fn start_http(&mut self, node: &'static str) {
        self.start_http_as(node, node, 80);
    }

    /// Starts an HTTP server answering `name` on `port` of `node`, and waits until it answers.
    pub fn start_http_as(&mut self, node: &'static str, name: &'static str, port: u16) {
        let child = spawn_http_server(&self.ns(node), name, port, "0.0.0.0");
        // testbed.sh down kills what the pid file lists, too.
        let mut pids = std::fs::read_to_string(self.pids_file(node)).unwrap_or_default();
        pids.push_str(&format!("{}\n", child.id()));
        let _ = std::fs::write(self.pids_file(node), pids);
        self.helpers.push(Proc { child, name });
        let probe = format!("exec 3<>/dev/tcp/127.0.0.1/{port}");
        wait_for("the HTTP server to answer", SOON, || {
            let out = self.exec(node, &["bash", "-c", &probe]);
            out.status.success().then_some(())
        });
    }

    /// The monitord config for the test service with an HTTP check of `/` on each server,
    /// default timing, plus `extra` at the top.
    pub fn http_config(extra_top: &str, extra_service: &str) -> String {
        format!(
            "{extra_top}\n[[service]]\nvip = \"{VIP}\"\nport = 80\n{extra_service}\n\
             [[service.check]]\ntype = \"http\"\npath = \"/\"\n{}",
            Cluster::servers_config()
        )
    }

    /// The `[[service.server]]` tables of a monitord config: r1..r3 with [`WEIGHTS`].
    pub fn servers_config() -> String {
        RS.iter()
            .zip(WEIGHTS)
            .map(|(rs, w)| format!("[[service.server]]\naddress = \"{rs}\"\nweight = {w}\n"))
            .collect()
    }

    /// Lines of monitord's log with `needle`.
    pub fn monitord_lines(&self, needle: &str) -> Vec<String> {
        self.monitord_log()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut m) = self.monitord.take() {
            m.stop();
        }
        for h in &mut self.helpers {
            let _ = h.child.kill();
            let _ = h.child.wait();
        }
        if let Some(mut d) = self.director.take() {
            d.stop();
        }
        if self.up {
            let _ =
                run(Command::new(repo_root().join("scripts/testbed.sh"))
                    .args(["down", &self.prefix]));
        }
        if std::thread::panicking() {
            eprintln!(
                "--- {}: monitord log ---\n{}\n--- director log ---\n{}",
                self.test,
                self.monitord_log(),
                self.director_log()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.rundir);
        }
    }
}
