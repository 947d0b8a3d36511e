//! The content-switching tests' testbed: the namespace testbed of `scripts/testbed.sh`, real
//! servers of our own (`servers.py`, each naming itself) on the real-server nodes, and
//! `lvs-director` with content services in its TOML file. Dropping it stops everything and
//! removes the namespaces, even when the test panics.
//!
//! Raw HTTP clients (pipelining, WebSocket, slowloris) run on threads moved into the client
//! namespace ([`L7Bed::in_client`]); curl runs there with `ip netns exec`.
#![allow(dead_code)] // each test file uses its own part of this module

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub use lvs_testsupport::{root_or_skip, wait_for};

/// The director tests' own testbed helpers: starting and stopping the director, lvsadm.
#[path = "../common/mod.rs"]
mod common;

pub const VIP: &str = "203.0.113.100";
pub const RS: [&str; 3] = ["203.0.113.11", "203.0.113.12", "203.0.113.13"];
/// The IPv6 layer of a dual-stack bed ([`L7Bed::start_dual`]), in the documentation prefix
/// (RFC 3849): the VIP, the real servers on the LAN, and the client.
pub const VIP6: &str = "2001:db8::100";
pub const RS6: [&str; 3] = ["2001:db8:1::11", "2001:db8:1::12", "2001:db8:1::13"];
pub const CLIENT6: &str = "2001:db8:c::2";
pub const CLIENT: &str = "198.51.100.2";
/// Generous bound for anything that should happen "at once" on a loaded 2-core machine.
pub const SOON: Duration = Duration::from_secs(20);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The bytes `servers.py` sends for `/big/N` and `/chunked/N`.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| u8::try_from(i % 251).unwrap_or(0)).collect()
}

#[derive(Debug)]
pub struct L7Bed {
    pub test: String,
    pub prefix: String,
    pub rundir: PathBuf,
    log: PathBuf,
    director: Option<Child>,
    /// `servers.py` processes: (node, port, process).
    servers: Vec<(String, u16, Child)>,
    workers: u32,
    up: bool,
}

impl L7Bed {
    /// Build the testbed (real servers route through the director: VS/NAT), start
    /// `servers.py` on port 8080 of r1, r2 and r3 (named r1, r2, r3), and the director with
    /// `workers = 2` and `config`. `None` (after printing SKIPPED) when not root.
    pub fn start(test: &str, config: &str) -> Option<Self> {
        Self::start_workers(test, config, 2)
    }

    /// [`L7Bed::start`] with `workers` worker threads (1: every client meets the same idle
    /// server connections).
    pub fn start_workers(test: &str, config: &str, workers: u32) -> Option<Self> {
        Self::start_with(test, config, workers, false)
    }

    /// [`L7Bed::start`] on a dual-stack bed: IPv6 beside the IPv4 of `scripts/testbed.sh`
    /// (see [`L7Bed::add_ipv6`]); the real servers listen on both families.
    pub fn start_dual(test: &str, config: &str) -> Option<Self> {
        Self::start_with(test, config, 2, true)
    }

    fn start_with(test: &str, config: &str, workers: u32, dual: bool) -> Option<Self> {
        if !root_or_skip(test) {
            return None;
        }
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("l{}{n}", std::process::id() % 100_000);
        let rundir = std::env::temp_dir().join(format!("lvs-l7-{prefix}"));
        let _ = std::fs::remove_dir_all(&rundir);
        std::fs::create_dir_all(&rundir).expect("create the run directory");
        let mut bed = L7Bed {
            test: test.to_owned(),
            prefix,
            log: rundir.join("director.log"),
            rundir,
            director: None,
            servers: Vec::new(),
            workers,
            up: true,
        };
        let out = bed.script(&["up", &bed.prefix.clone(), "nat"]);
        assert!(out.status.success(), "testbed up: {}", text(&out.stderr));
        if dual {
            bed.add_ipv6();
        }
        std::fs::write(bed.rundir.join("servers.py"), include_str!("servers.py"))
            .expect("write servers.py");
        std::fs::write(bed.rundir.join("raw.py"), include_str!("raw.py")).expect("write raw.py");
        for (i, _) in RS.iter().enumerate() {
            bed.server(&format!("r{}", i + 1), 8080, None);
        }
        bed.start_director(config);
        Some(bed)
    }

    /// The IPv6 layer, laid like the IPv4 one: the client `2001:db8:c::2/64` routes through
    /// the router (`2001:db8:c::1`, `2001:db8:1::254` on the LAN); the director is
    /// `2001:db8:1::1` with the VIP `2001:db8::100/128` on its LAN port, to which the router
    /// routes; the real servers are `2001:db8:1::11` to `::13`. Addresses skip duplicate-address
    /// detection (`nodad`): nothing else is on these wires, and a tentative address would
    /// refuse connections for a second or two. `replace`, so that it stays right should the
    /// testbed itself gain these addresses.
    fn add_ipv6(&self) {
        let mut steps = vec![
            ("rt", "sysctl -qw net.ipv6.conf.all.forwarding=1".to_owned()),
            ("c", format!("ip addr replace {CLIENT6}/64 dev eth0 nodad")),
            ("c", "ip -6 route replace default via 2001:db8:c::1".into()),
            (
                "rt",
                "ip addr replace 2001:db8:c::1/64 dev eth0 nodad".into(),
            ),
            (
                "rt",
                "ip addr replace 2001:db8:1::254/64 dev eth1 nodad".into(),
            ),
            (
                "rt",
                format!("ip -6 route replace {VIP6}/128 via 2001:db8:1::1"),
            ),
            (
                "d",
                "ip addr replace 2001:db8:1::1/64 dev eth0 nodad".into(),
            ),
            ("d", format!("ip addr replace {VIP6}/128 dev eth0 nodad")),
            (
                "d",
                "ip -6 route replace default via 2001:db8:1::254".into(),
            ),
        ];
        for (node, rs) in ["r1", "r2", "r3"].into_iter().zip(RS6) {
            steps.push((node, format!("ip addr replace {rs}/64 dev eth0 nodad")));
        }
        for (node, line) in steps {
            let argv: Vec<&str> = line.split_whitespace().collect();
            let out = self.exec(node, &argv);
            assert!(
                out.status.success(),
                "{node}: {line}: {}",
                text(&out.stderr)
            );
        }
    }

    fn script(&self, args: &[&str]) -> Output {
        Command::new(common::repo_root().join("scripts/testbed.sh"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run testbed.sh")
    }

    pub fn ns(&self, node: &str) -> String {
        format!("{}-{node}", self.prefix)
    }

    /// Start `servers.py` on `node` (r1, r2, r3) at `port`, HTTPS with `tls = (cert, key)`;
    /// returns once it accepts connections.
    pub fn server(&mut self, node: &str, port: u16, tls: Option<(&Path, &Path)>) {
        let mut args = vec![
            self.rundir.join("servers.py"),
            node.into(),
            port.to_string().into(),
        ];
        if let Some((c, k)) = tls {
            args.extend([c.to_owned(), k.to_owned()]);
        }
        self.python(node, port, &args);
    }

    /// Start `raw.py` named `name` on `node` at `port`: it records what each connection
    /// received in the returned directory (`K.raw` for connection K).
    pub fn raw_server(&mut self, node: &str, port: u16, name: &str) -> PathBuf {
        let dir = self.rundir.join(format!("raw-{node}-{port}"));
        std::fs::create_dir_all(&dir).expect("create the record directory");
        let args = [
            self.rundir.join("raw.py"),
            name.into(),
            port.to_string().into(),
            dir.clone(),
        ];
        self.python(node, port, &args);
        dir
    }

    fn python(&mut self, node: &str, port: u16, args: &[PathBuf]) {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(node), "python3"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start servers.py");
        self.servers.push((node.to_owned(), port, child));
        let probe = format!("exec 3<>/dev/tcp/127.0.0.1/{port}");
        wait_for(&format!("servers.py on {node}:{port}"), SOON, || {
            self.exec(node, &["bash", "-c", &probe])
                .status
                .success()
                .then_some(())
        });
    }

    fn start_director(&mut self, config: &str) {
        let path = self.rundir.join("director.toml");
        std::fs::write(&path, format!("workers = {}\n{config}\n", self.workers))
            .expect("write config");
        self.director = Some(common::spawn_director(
            &self.ns("d"),
            &self.rundir,
            &path,
            &self.log,
        ));
        common::wait_director(&mut self.director, &self.rundir, &self.log, SOON);
    }

    /// Kill the `servers.py` of `node` on `port` (a real server dies).
    pub fn kill_server(&mut self, node: &str, port: u16) {
        for (n, p, s) in &mut self.servers {
            if n == node && *p == port {
                let _ = s.kill();
                let _ = s.wait();
            }
        }
    }

    /// Replace the director's configuration and send SIGHUP.
    pub fn reload(&self, config: &str) {
        let path = self.rundir.join("director.toml");
        std::fs::write(&path, format!("workers = {}\n{config}\n", self.workers))
            .expect("write config");
        kill(self.director_pid(), Signal::SIGHUP).expect("signal the director");
    }

    pub fn director_pid(&self) -> Pid {
        let c = self.director.as_ref().expect("director running");
        Pid::from_raw(i32::try_from(c.id()).expect("pid"))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn exec(&self, node: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(node)])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {args:?} in {node}: {e}"))
    }

    /// The monitor's verdict on pool member `server:port` of the content service at
    /// `vip:vip_port`, sent as lvs-monitord sends it; the director must accept it.
    pub fn set_health(
        &self,
        (vip, vip_port): (&str, u16),
        (server, port): (&str, u16),
        healthy: bool,
    ) {
        let mut c =
            lvs_proto::Client::connect(&self.rundir.join("director.sock"), lvs_proto::Role::Other)
                .expect("connect to the director");
        let r = c
            .request(lvs_proto::Request::SetHealth {
                service: lvs_proto::ServiceKey {
                    protocol: lvs_proto::Protocol::Tcp,
                    addr: vip.parse().expect("a VIP"),
                    port: vip_port,
                },
                addr: server.parse().expect("a server address"),
                port,
                healthy,
            })
            .expect("SetHealth");
        assert_eq!(r, lvs_proto::Response::Ok);
    }

    pub fn lvsadm(&self, args: &[&str]) -> Output {
        common::lvsadm_at(&self.rundir, args)
    }

    /// `lvsadm ARGS` in the director's namespace, which must succeed; its stdout.
    pub fn adm(&self, args: &str) -> String {
        let argv: Vec<&str> = args.split_whitespace().collect();
        let out = self.lvsadm(&argv);
        assert!(
            out.status.success(),
            "lvsadm {args} failed: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// curl in the client namespace with a 30 s limit: (exit code, stdout, stderr).
    pub fn curl(&self, args: &[&str]) -> (i32, String, String) {
        let mut all = vec!["curl", "-sS", "--max-time", "30"];
        all.extend_from_slice(args);
        let out = self.exec("c", &all);
        (
            out.status.code().unwrap_or(-1),
            text(&out.stdout),
            text(&out.stderr),
        )
    }

    /// curl that must succeed: its stdout.
    pub fn get(&self, args: &[&str]) -> String {
        let (code, out, err) = self.curl(args);
        assert_eq!(code, 0, "curl {args:?} failed: {err}\n{}", self.log_text());
        out
    }

    /// Run `f` on a thread inside the client namespace (plain sockets reach the VIP there).
    pub fn in_client<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let ns = std::fs::File::open(format!("/run/netns/{}", self.ns("c"))).expect("open netns");
        std::thread::spawn(move || {
            // SAFETY: setns on a valid namespace descriptor changes only this thread's network
            // namespace; the thread is ours and ends with the closure.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("client thread")
    }

    /// Like [`L7Bed::in_client`], without waiting for the result.
    pub fn spawn_client<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        self.spawn_in("c", f)
    }

    /// Run `f` on a new thread inside the namespace of `node` (c, d, r1, r2, r3); threads it
    /// starts stay there too.
    pub fn spawn_in<T: Send + 'static>(
        &self,
        node: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let ns = std::fs::File::open(format!("/run/netns/{}", self.ns(node))).expect("open netns");
        std::thread::spawn(move || {
            // SAFETY: as in `in_client`.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
    }

    /// Make a self-signed certificate for `name`: (cert, key) paths.
    pub fn cert(&self, name: &str) -> (PathBuf, PathBuf) {
        let cert = self.rundir.join(format!("{name}.crt"));
        let key = self.rundir.join(format!("{name}.key"));
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .args(["-subj", &format!("/CN={name}")])
            .args(["-addext", &format!("subjectAltName=DNS:{name}")])
            .stdin(Stdio::null())
            .output()
            .expect("run openssl");
        assert!(out.status.success(), "openssl: {}", text(&out.stderr));
        (cert, key)
    }

    /// SIGTERM the director: it must exit 0.
    pub fn stop_director(&mut self) -> Result<(), String> {
        match self.director.take() {
            Some(child) => common::sigterm_director(child, SOON),
            None => Ok(()),
        }
    }
}

impl Drop for L7Bed {
    fn drop(&mut self) {
        let stopped = self.stop_director();
        for (_, _, s) in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
        if self.up {
            let out = self.script(&["down", &self.prefix.clone()]);
            if !out.status.success() {
                eprintln!("{}: testbed down failed: {}", self.test, text(&out.stderr));
            }
        }
        if std::thread::panicking() {
            eprintln!("--- {}: director log ---\n{}", self.test, self.log_text());
        } else {
            let _ = std::fs::remove_dir_all(&self.rundir);
            if let Err(e) = stopped {
                panic!("{}: {e}\n{}", self.test, self.log_text());
            }
        }
    }
}

/// A raw client connection to VIP:port with generous read timeouts.
pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect((VIP, port)).expect("connect to the VIP");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s
}

/// Read one HTTP response (Content-Length bodies only) from `s`, with `pending` bytes already
/// read: (status, body, bytes left over after it).
pub fn read_response(s: &mut TcpStream, mut pending: Vec<u8>) -> (u16, String, Vec<u8>) {
    let mut buf = [0u8; 65536];
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).into_owned();
            let status: u16 = head
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or_else(|| panic!("bad status line: {head}"));
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            let start = end + 4;
            while pending.len() < start + len {
                let n = s.read(&mut buf).expect("read a response body");
                assert!(n > 0, "connection closed inside a body");
                pending.extend_from_slice(&buf[..n]);
            }
            let body = String::from_utf8_lossy(&pending[start..start + len]).into_owned();
            let rest = pending[start + len..].to_vec();
            return (status, body, rest);
        }
        let n = s.read(&mut buf).expect("read a response head");
        assert!(
            n > 0,
            "connection closed before a response: {:?}",
            text(&pending)
        );
        pending.extend_from_slice(&buf[..n]);
    }
}

/// Everything until the peer closes (or the read timeout).
pub fn read_all(s: &mut TcpStream) -> String {
    let mut v = Vec::new();
    let _ = s.read_to_end(&mut v);
    text(&v)
}

/// Send all of `b`.
pub fn send(s: &mut TcpStream, b: &[u8]) {
    s.write_all(b).expect("send to the VIP");
}

/// The HTTP content service most tests use, on VIP:80: pool `static` is r1, pool `app` is r2
/// and r3, pool `dead` is a port nobody listens on. No default pool: unmatched requests get
/// 404. Short timeouts and small header limits, for the error tests.
pub fn http_config(app_path_pool: &str) -> String {
    format!(
        r#"
[[content_service]]
address = "{VIP}"
port = 80
client_timeout = 3
server_timeout = 3
max_header_bytes = 4096
max_headers = 40

[[content_service.rule]]
name = "static-host"
host = "static.example"
pool = "static"

[[content_service.rule]]
name = "app-path"
path_prefix = "/app/"
pool = "{app_path_pool}"

[[content_service.rule]]
name = "canary"
headers = [{{ name = "X-Pool", value = "app" }}]
pool = "app"

[[content_service.rule]]
name = "api"
path_regex = "^/api/v[0-9]+/"
pool = "app"

[[content_service.rule]]
name = "deletes"
methods = ["DELETE"]
pool = "app"

[[content_service.rule]]
name = "dead"
path_prefix = "/dead"
pool = "dead"

[[content_service.rule]]
name = "sleep"
path_prefix = "/sleep/"
pool = "app"

[[content_service.rule]]
name = "files"
path_regex = "^/(big|chunked)/|^/die|^/ws"
pool = "static"

[[content_service.rule]]
name = "uploads"
methods = ["POST", "PUT"]
pool = "static"

[[pool]]
name = "static"
scheduler = "rr"
servers = [{{ address = "{r1}", port = 8080 }}]

[[pool]]
name = "app"
scheduler = "wrr"
servers = [{{ address = "{r2}", port = 8080 }}, {{ address = "{r3}", port = 8080 }}]

[[pool]]
name = "dead"
scheduler = "rr"
servers = [{{ address = "{r3}", port = 9 }}]
"#,
        r1 = RS[0],
        r2 = RS[1],
        r3 = RS[2],
    )
}
