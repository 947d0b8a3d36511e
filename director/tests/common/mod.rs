//! Shared pieces of the end-to-end tests: a [`Testbed`] guard that builds the namespace
//! testbed (`scripts/testbed.sh`), runs the real `lvs-director` in it with two workers, and
//! undoes everything on drop, even when the test panics; plus helpers to drive `lvsadm`, run
//! commands in the namespaces and wait for things with deadlines.
//!
//! The binaries come from the default target directory: `cargo build --workspace` first
//! (`scripts/test.sh` does).
#![allow(dead_code)] // each test file uses its own part of this module

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub const VIP: &str = "203.0.113.100";
pub const DIRECTOR: &str = "203.0.113.1";
pub const CLIENT: &str = "198.51.100.2";
pub const RS: [&str; 3] = ["203.0.113.11", "203.0.113.12", "203.0.113.13"];
/// The names the testbed's HTTP servers answer with, in the order of [`RS`].
pub const NAMES: [&str; 3] = ["r1", "r2", "r3"];
/// The testbed's IPv6 addresses, beside the IPv4 ones above (`scripts/testbed.sh`).
pub const VIP6: &str = "2001:db8::100";
pub const DIRECTOR6: &str = "2001:db8::1";
pub const CLIENT6: &str = "2001:db8:51::2";
pub const RS6: [&str; 3] = ["2001:db8::11", "2001:db8::12", "2001:db8::13"];

/// `addr:port` as ipvsadm writes it: an IPv6 address in brackets.
pub fn addr_port(addr: &str, port: u16) -> String {
    if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}

/// Generous bound for anything that should happen "at once" on a loaded 2-core machine.
pub const SOON: Duration = Duration::from_secs(10);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The repository root (this file is `director/tests/common/mod.rs`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("director/ has a parent")
        .to_path_buf()
}

fn testbed_script() -> PathBuf {
    repo_root().join("scripts/testbed.sh")
}

/// `lvsadm` sits beside `lvs-director` in the target directory.
pub fn lvsadm_bin() -> PathBuf {
    lvs_testsupport::sibling_bin(env!("CARGO_BIN_EXE_lvs-director"), "lvsadm")
}

pub use lvs_testsupport::{root_or_skip, wait_for};

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Run `args[0]` with the rest as arguments; it must start.
pub fn sh(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// [`sh`], which must succeed: its stdout.
pub fn must(args: &[&str]) -> String {
    let out = sh(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `lvsadm --rundir RUNDIR ARGS`.
pub fn lvsadm_at(rundir: &Path, args: &[&str]) -> Output {
    run(Command::new(lvsadm_bin())
        .arg("--rundir")
        .arg(rundir)
        .args(args))
}

/// Start `lvs-director -f` in namespace `ns` with `config`, its stderr to `log`. Keep the
/// child where a `Drop` kills it before calling [`wait_director`].
pub fn spawn_director(ns: &str, rundir: &Path, config: &Path, log: &Path) -> Child {
    spawn_director_bin(
        Path::new(env!("CARGO_BIN_EXE_lvs-director")),
        ns,
        rundir,
        config,
        log,
    )
}

/// [`spawn_director`] with the binary at `bin` (a copy elsewhere: the scheduler plugins are
/// still found beside the built one).
pub fn spawn_director_bin(bin: &Path, ns: &str, rundir: &Path, config: &Path, log: &Path) -> Child {
    let log = std::fs::File::create(log).expect("create the log file");
    let built = Path::new(env!("CARGO_BIN_EXE_lvs-director"));
    let mut cmd = Command::new("ip");
    if bin != built {
        cmd.env(
            "LVS_PLUGIN_PATH",
            built.parent().expect("a target directory"),
        );
    }
    cmd.args(["netns", "exec", ns])
        .arg(bin)
        .args(["-f", "--no-syslog", "--rundir"])
        .arg(rundir)
        .arg("-c")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start lvs-director")
}

/// Wait until `lvsadm -L -n` gets an answer from the director in `rundir`; panics with its log
/// if it exits first.
pub fn wait_director(director: &mut Option<Child>, rundir: &Path, log: &Path, within: Duration) {
    wait_for("the director's control socket", within, || {
        if let Some(c) = director.as_mut()
            && let Ok(Some(status)) = c.try_wait()
        {
            panic!(
                "lvs-director exited at start ({status}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        lvsadm_at(rundir, &["-L", "-n"])
            .status
            .success()
            .then_some(())
    });
}

/// SIGTERM the director: it must exit with status 0 within `within` (else it is killed).
pub fn sigterm_director(mut child: Child, within: Duration) -> Result<(), String> {
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = Instant::now() + within;
    loop {
        match child.try_wait() {
            Ok(Some(s)) if s.success() => return Ok(()),
            Ok(Some(s)) => return Err(format!("lvs-director exited with {s} after SIGTERM")),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "lvs-director did not exit within {} s of SIGTERM",
                    within.as_secs()
                ));
            }
        }
    }
}

/// Run a command, returning its output; the command must start.
fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// One row of `lvsadm -L -n -c`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conn {
    pub proto: String,
    /// Seconds left.
    pub expire: u32,
    pub state: String,
    pub source: String,
    pub virt: String,
    pub dest: String,
}

impl Conn {
    /// The real server's address, without the port.
    pub fn dest_addr(&self) -> &str {
        self.dest.rsplit_once(':').map_or(&self.dest, |(a, _)| a)
    }
}

/// Parse `lvsadm -L -n -c` output.
pub fn parse_conns(out: &str) -> Vec<Conn> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 6 || !(f[0] == "TCP" || f[0] == "UDP") {
                return None;
            }
            let (m, s) = f[1].split_once(':')?;
            Some(Conn {
                proto: f[0].to_owned(),
                expire: m.parse::<u32>().ok()? * 60 + s.parse::<u32>().ok()?,
                state: f[2].to_owned(),
                source: f[3].to_owned(),
                virt: f[4].to_owned(),
                dest: f[5].to_owned(),
            })
        })
        .collect()
}

/// The network-namespace testbed with a running director. Dropping it stops the director
/// (SIGTERM; it must exit cleanly and remove its nftables table) and removes the namespaces.
#[derive(Debug)]
pub struct Testbed {
    pub test: String,
    pub prefix: String,
    pub rundir: PathBuf,
    log: PathBuf,
    director: Option<Child>,
    lvsadm: PathBuf,
    helpers: Vec<Child>,
    up: bool,
}

impl Testbed {
    /// Build the testbed in `mode` (nat, dr or tun), start the HTTP servers and the director
    /// with `workers = 2`. `None` (after printing SKIPPED) when not root.
    pub fn start(test: &str, mode: &str) -> Option<Self> {
        Self::start_with(test, mode, "")
    }

    /// As [`Testbed::start`], with extra lines for the director's TOML file.
    pub fn start_with(test: &str, mode: &str, extra_config: &str) -> Option<Self> {
        Self::start_bin(
            test,
            mode,
            extra_config,
            Path::new(env!("CARGO_BIN_EXE_lvs-director")),
        )
    }

    /// As [`Testbed::start_with`], running the director binary at `bin`.
    pub fn start_bin(test: &str, mode: &str, extra_config: &str, bin: &Path) -> Option<Self> {
        if !root_or_skip(test) {
            return None;
        }
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("e{}{n}", std::process::id() % 100_000);
        assert!(prefix.len() <= 10);
        let rundir = std::env::temp_dir().join(format!("lvs-e2e-{prefix}"));
        let _ = std::fs::remove_dir_all(&rundir);
        std::fs::create_dir_all(&rundir).expect("create the run directory");
        // Constructed before anything can fail, so that Drop cleans up whatever got done.
        let mut tb = Testbed {
            test: test.to_owned(),
            prefix,
            log: rundir.join("director.log"),
            rundir,
            director: None,
            lvsadm: lvsadm_bin(),
            helpers: Vec::new(),
            up: false,
        };
        tb.up = true;
        tb.script(&["up", &tb.prefix.clone(), mode]);
        tb.script(&["http", &tb.prefix.clone()]);
        let config = tb.rundir.join("director.toml");
        std::fs::write(&config, format!("workers = 2\n{extra_config}\n")).expect("write config");
        tb.director = Some(spawn_director_bin(
            bin,
            &tb.ns("d"),
            &tb.rundir,
            &config,
            &tb.log,
        ));
        wait_director(&mut tb.director, &tb.rundir, &tb.log, SOON);
        Some(tb)
    }

    fn script(&self, args: &[&str]) {
        let out = run(Command::new(testbed_script()).args(args));
        assert!(
            out.status.success(),
            "testbed.sh {args:?} failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }

    /// Switch the real servers' routes (and the VIP on their `lo`) to `mode`: nat, dr or tun.
    pub fn set_mode(&self, mode: &str) {
        self.script(&["mode", &self.prefix, mode]);
    }

    /// Send SIGHUP to the director (reload its configuration file).
    pub fn sighup(&self) {
        kill(self.director_pid(), Signal::SIGHUP).expect("signal the director");
    }

    /// The namespace of a node: c, rt, d, r1, r2, r3.
    pub fn ns(&self, node: &str) -> String {
        format!("{}-{node}", self.prefix)
    }

    /// The director's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The director's process id.
    pub fn director_pid(&self) -> Pid {
        let c = self.director.as_ref().expect("the director is running");
        Pid::from_raw(i32::try_from(c.id()).expect("pid fits"))
    }

    /// Run `lvsadm --rundir R ARGS`.
    pub fn lvsadm(&self, args: &[&str]) -> Output {
        run(Command::new(&self.lvsadm)
            .arg("--rundir")
            .arg(&self.rundir)
            .args(args))
    }

    /// `lvsadm` with the arguments split on whitespace; must succeed; returns stdout.
    pub fn adm(&self, args: &str) -> String {
        let v: Vec<&str> = args.split_whitespace().collect();
        let out = self.lvsadm(&v);
        assert!(
            out.status.success(),
            "lvsadm {args} failed ({}): {}{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// `lvsadm ARGS` with `input` on stdin (for `-R`); must succeed.
    pub fn adm_stdin(&self, args: &str, input: &str) -> String {
        let mut child = Command::new(&self.lvsadm)
            .arg("--rundir")
            .arg(&self.rundir)
            .args(args.split_whitespace())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lvsadm");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write lvsadm's stdin");
        let out = child.wait_with_output().expect("lvsadm ran");
        assert!(
            out.status.success(),
            "lvsadm {args} failed ({}): {}{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// The connection table as `lvsadm -L -n -c` lists it.
    pub fn conns(&self) -> Vec<Conn> {
        parse_conns(&self.adm("-L -n -c"))
    }

    /// Run a command in a node's namespace.
    pub fn exec(&self, node: &str, args: &[&str]) -> Output {
        run(Command::new("ip")
            .args(["netns", "exec", &self.ns(node)])
            .args(args))
    }

    /// Start a command in a node's namespace with piped stdin/stdout/stderr; it is killed
    /// when the testbed goes (use the returned index with [`Testbed::helper`]).
    pub fn spawn(&mut self, node: &str, args: &[&str]) -> usize {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(node)])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {args:?}: {e}"));
        self.helpers.push(child);
        self.helpers.len() - 1
    }

    pub fn helper(&mut self, i: usize) -> &mut Child {
        &mut self.helpers[i]
    }

    /// One HTTP GET of the VIP from the client with curl: the answering server's name, or
    /// `None` if no answer came within `secs`.
    pub fn try_curl(&self, secs: u32) -> Option<String> {
        self.try_curl_to(VIP, secs)
    }

    /// One HTTP GET of `vip` (the IPv4 or the IPv6 VIP; IPv6 with `curl -6`) from the
    /// client: the answering server's name, or `None` if no answer came within `secs`.
    pub fn try_curl_to(&self, vip: &str, secs: u32) -> Option<String> {
        let secs = secs.to_string();
        let url = format!("http://{}/", addr_port(vip, 80));
        let mut args = vec!["curl", "-s", "-m", &secs];
        if vip.contains(':') {
            // -g: the brackets of an IPv6 literal are not a curl glob.
            args.extend(["-6", "-g"]);
        }
        args.push(&url);
        let out = self.exec("c", &args);
        out.status
            .success()
            .then(|| text(&out.stdout).trim().to_owned())
    }

    /// One HTTP GET of the VIP from the client; it must answer.
    pub fn curl(&self) -> String {
        self.curl_to(VIP)
    }

    /// One HTTP GET of `vip` from the client; it must answer.
    pub fn curl_to(&self, vip: &str) -> String {
        self.try_curl_to(vip, 5).unwrap_or_else(|| {
            panic!(
                "curl http://{}/ from the client got no answer\n{}\n{}",
                addr_port(vip, 80),
                self.adm("-L -n --stats"),
                self.log_text()
            )
        })
    }

    /// `n` sequential GETs: the server names in order.
    pub fn curls(&self, n: usize) -> Vec<String> {
        self.curls_to(VIP, n)
    }

    /// `n` sequential GETs of `vip`: the server names in order.
    pub fn curls_to(&self, vip: &str, n: usize) -> Vec<String> {
        (0..n).map(|_| self.curl_to(vip)).collect()
    }

    /// A virtual service `proto` (`-t`/`-u`) on the VIP with the given real servers.
    pub fn service(&self, proto: &str, port: u16, sched_opts: &str, fwd: &str, weights: &[u32]) {
        self.service_at((VIP, &RS), proto, port, sched_opts, fwd, weights);
    }

    /// The same on the IPv6 VIP, with the real servers' IPv6 addresses.
    pub fn service6(&self, proto: &str, port: u16, sched_opts: &str, fwd: &str, weights: &[u32]) {
        self.service_at((VIP6, &RS6), proto, port, sched_opts, fwd, weights);
    }

    fn service_at(
        &self,
        (vip, rs): (&str, &[&str]),
        proto: &str,
        port: u16,
        sched_opts: &str,
        fwd: &str,
        weights: &[u32],
    ) {
        let v = addr_port(vip, port);
        self.adm(&format!("-A {proto} {v} {sched_opts}"));
        for (i, w) in weights.iter().enumerate() {
            let r = addr_port(rs[i], port);
            self.adm(&format!("-a {proto} {v} -r {r} {fwd} -w {w}"));
        }
    }

    /// The director's drop counters, dumped with SIGUSR1 to its log, by name. Waits (sending
    /// SIGUSR1 again every half second) until `ready` accepts them.
    pub fn wait_drops(
        &self,
        what: &str,
        ready: impl Fn(&HashMap<String, u64>) -> bool,
    ) -> HashMap<String, u64> {
        let pid = self.director_pid();
        let start = self.log_text().len();
        let mut last_signal: Option<Instant> = None;
        let deadline = Instant::now() + SOON;
        loop {
            if last_signal.is_none_or(|t| t.elapsed() > Duration::from_millis(500)) {
                kill(pid, Signal::SIGUSR1).expect("signal the director");
                last_signal = Some(Instant::now());
            }
            let log = self.log_text();
            let counters = parse_drops(log.get(start..).unwrap_or(""));
            if ready(&counters) {
                return counters;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {SOON:?} waiting for {what}; the drop counters: {counters:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop the director (as [`Testbed::stop_director`]) and start it again with the same
    /// configuration: a new run, with an empty table and no services. Its log starts afresh.
    pub fn restart_director(&mut self) {
        if let Err(e) = self.stop_director() {
            panic!("the director did not stop cleanly: {e}");
        }
        let config = self.rundir.join("director.toml");
        self.director = Some(spawn_director(
            &self.ns("d"),
            &self.rundir,
            &config,
            &self.log,
        ));
        wait_director(&mut self.director, &self.rundir, &self.log, SOON);
    }

    /// Stop the director with SIGTERM: it must exit with status 0 within the deadline and
    /// leave no nftables table behind. Errors are returned, not panicked.
    pub fn stop_director(&mut self) -> Result<(), String> {
        let Some(child) = self.director.take() else {
            return Ok(());
        };
        let mut problems = Vec::new();
        if let Err(e) = sigterm_director(child, SOON) {
            problems.push(e);
        }
        if self.up {
            let out = self.exec("d", &["nft", "list", "table", "inet", "lvs_director"]);
            if out.status.success() {
                problems.push(format!(
                    "the nftables table lvs_director is still there after the director stopped:\n{}",
                    text(&out.stdout)
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{}\n--- director log ---\n{}",
                problems.join("\n"),
                self.log_text()
            ))
        }
    }
}

/// How many of `names` are `who`.
pub fn count(names: &[String], who: &str) -> usize {
    names.iter().filter(|n| n.as_str() == who).count()
}

/// The Internet checksum of `data` added to `init`, folded (0xffff over a valid packet).
pub fn csum(data: &[u8], init: u32) -> u16 {
    let mut sum = init;
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    u16::try_from(sum).expect("folded")
}

/// A Python probe for the client: UDP from a connected socket to `vip`:`port` (either
/// family), up to five tries a second apart; prints `REFUSED` when an ICMP "port unreachable"
/// came back (the socket says ECONNREFUSED), `ANSWER` or `TIMEOUT`.
fn udp_refused_probe(vip: &str, port: u16) -> String {
    let family = if vip.contains(':') {
        "AF_INET6"
    } else {
        "AF_INET"
    };
    format!(
        r#"
import socket, sys
s = socket.socket(socket.{family}, socket.SOCK_DGRAM)
s.settimeout(1.0)
s.connect(("{vip}", {port}))
for attempt in range(5):
    try:
        s.send(b"hello")
        s.recv(100)
        print("ANSWER"); sys.exit(0)
    except ConnectionRefusedError:
        print("REFUSED"); sys.exit(0)
    except socket.timeout:
        continue
print("TIMEOUT")
"#
    )
}

/// How a real server takes VS/TUN packets out of the tunnel.
#[derive(Debug, PartialEq, Eq)]
pub enum TunnelEndpoint {
    /// The kernel's driver (ipip, or ip6tnl for IPv6), through the device the test made.
    Kernel,
    /// This kernel has no such driver: a userspace decapsulator in the test stands in.
    Userspace,
}

impl Testbed {
    /// The counters of the TCP service on `vip`:`port` from `-L -n --stats --exact`:
    /// (conns, inpkts, outpkts).
    pub fn service_stats(&self, vip: &str, port: u16) -> (u64, u64, u64) {
        let stats = self.adm("-L -n --stats --exact");
        let want = format!("TCP  {}", addr_port(vip, port));
        let line = stats
            .lines()
            .find(|l| l.starts_with(&want))
            .unwrap_or_else(|| panic!("no line {want:?} in\n{stats}"));
        let f: Vec<u64> = line
            .split_whitespace()
            .skip(2)
            .map(|x| x.parse().expect("a number"))
            .collect();
        (f[0], f[1], f[2])
    }

    /// After three GETs of `vip`:80 by VS/TUN to `rs` alone, of which `tunnelled` packets
    /// came out of the tunnel: the director counted three connections, no reply passed it,
    /// every tunnelled packet is one it received (at least SYN, ACK, GET and FIN each), and
    /// it lists the connections as going to `rs`.
    pub fn assert_tunnelled(&self, vip: &str, rs: &str, tunnelled: u64) {
        let (conns, inpkts, outpkts) = self.service_stats(vip, 80);
        assert_eq!(conns, 3);
        assert_eq!(outpkts, 0, "VS/TUN replies do not pass the director");
        assert!(
            tunnelled >= 3 * 4 && tunnelled <= inpkts,
            "{tunnelled} packets came out of the tunnel; the director received {inpkts}"
        );
        let conns = self.conns();
        assert!(!conns.is_empty());
        let dest = addr_port(rs, 80);
        assert!(conns.iter().all(|c| c.dest == dest), "{conns:?}");
    }

    /// UDP from the client to `vip`:`port` (a service whose real servers listen on nothing)
    /// must come back as ECONNREFUSED: the real server's "port unreachable" reached the
    /// client, rewritten by the director.
    pub fn assert_udp_refused(&self, vip: &str, port: u16) {
        let out = self.exec("c", &["python3", "-c", &udp_refused_probe(vip, port)]);
        let said = text(&out.stdout).trim().to_owned();
        assert_eq!(
            said,
            "REFUSED",
            "the client must hear the real server's port unreachable\n{}",
            self.log_text()
        );
    }

    /// Runs `args` in `node`; it must succeed.
    pub fn must(&self, node: &str, args: &[&str]) {
        let out = self.exec(node, args);
        assert!(
            out.status.success(),
            "{args:?} in {node}: {}",
            text(&out.stderr)
        );
    }

    /// The MAC address of `node`'s eth0.
    pub fn mac(&self, node: &str) -> Vec<u8> {
        let out = self.exec(node, &["cat", "/sys/class/net/eth0/address"]);
        text(&out.stdout)
            .trim()
            .split(':')
            .map(|x| u8::from_str_radix(x, 16).expect("mac"))
            .collect()
    }

    /// Make the tunnel device `add` (an `ip link add ...` command) in `node`: the kernel's
    /// driver when it has one, else [`TunnelEndpoint::Userspace`] ("Unknown device type").
    /// Says on stderr which case runs, `kind` naming the driver.
    pub fn tunnel_endpoint(&self, node: &str, add: &[&str], kind: &str) -> TunnelEndpoint {
        let out = self.exec(node, add);
        if out.status.success() {
            eprintln!("NOTE: the kernel's {kind} driver decapsulates on {node}: VS/TUN end to end");
            TunnelEndpoint::Kernel
        } else if text(&out.stderr).contains("Unknown device type") {
            eprintln!(
                "NOTE: this kernel has no {kind} driver: a userspace decapsulator on {node} \
                 stands in for it; the kernel's own decapsulation is NOT tested here"
            );
            TunnelEndpoint::Userspace
        } else {
            panic!("{add:?} in {node}: {}", text(&out.stderr));
        }
    }
}

/// `event=drop_counter reason=NAME packets=N` lines: the latest value of each counter.
pub fn parse_drops(log: &str) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    for line in log.lines().filter(|l| l.contains("event=drop_counter")) {
        let field = |k: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .map(|v| v.trim_matches('"').to_owned())
        };
        if let (Some(r), Some(n)) = (field("reason="), field("packets=")) {
            let n: u64 = n.parse().unwrap_or(0);
            let e = out.entry(r).or_insert(0);
            *e = (*e).max(n);
        }
    }
    out
}

impl Drop for Testbed {
    fn drop(&mut self) {
        for h in &mut self.helpers {
            let _ = h.kill();
            let _ = h.wait();
        }
        let stopped = self.stop_director();
        if self.up {
            let out = run(Command::new(testbed_script()).args(["down", &self.prefix]));
            if !out.status.success() {
                eprintln!(
                    "{}: testbed.sh down {} failed: {}",
                    self.test,
                    self.prefix,
                    text(&out.stderr)
                );
            }
        }
        if std::thread::panicking() {
            eprintln!(
                "--- {}: director log ({}) ---\n{}",
                self.test,
                self.log.display(),
                self.log_text()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.rundir);
            if let Err(e) = stopped {
                panic!("{}: {e}", self.test);
            }
        }
    }
}

/// A line-reading handle on a helper's stdout.
pub struct Lines {
    inner: BufReader<ChildStdout>,
}

impl std::fmt::Debug for Lines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lines")
    }
}

impl Lines {
    pub fn new(child: &mut Child) -> Self {
        Self {
            inner: BufReader::new(child.stdout.take().expect("piped stdout")),
        }
    }

    /// The next line (blocking: the helper's own timeouts bound it).
    pub fn next_line(&mut self) -> String {
        let mut s = String::new();
        self.inner
            .read_line(&mut s)
            .expect("read a helper's output");
        s.trim_end().to_owned()
    }

    pub fn rest(mut self) -> String {
        let mut s = String::new();
        let _ = self.inner.read_to_string(&mut s);
        s
    }
}

/// A keep-alive HTTP client for the client namespace. It GETs the VIP at once, then once
/// more for every `get` line on stdin, printing `NAME PORT` (the answering server and its own
/// local port, to tell one connection from another) or `ERR KIND`.
pub const KEEPALIVE_CLIENT: &str = r#"
import http.client, sys
c = http.client.HTTPConnection(sys.argv[1], 80, timeout=float(sys.argv[2]))
def get():
    try:
        c.request("GET", "/")
        r = c.getresponse()
        body = r.read().decode().strip()
        print(body, c.sock.getsockname()[1], flush=True)
    except Exception as e:
        print("ERR", type(e).__name__, flush=True)
get()
for line in sys.stdin:
    if line.strip() != "get":
        break
    get()
"#;
