//! Test bed for the check tests: a monitor namespace `a` (10.77.0.1, 2001:db8:77::1) and a peer
//! namespace `b` (10.77.0.2, 2001:db8:77::2) joined by a veth pair, removed on drop even when the
//! test fails. Names are `lvsmon<pid%10000><n>`. The IPv6 addresses skip duplicate address
//! detection (`nodad`), so they are usable as soon as the link is up.
//!
//! The engine runs on a thread that entered `a` (a thread that changed namespace is never
//! reused); sockets made in `b` stay there, so peers can be served from any thread.

#![allow(dead_code)]

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lvs_monitord::checks::{CheckResult, Engine, EngineOptions, TargetId};
use lvs_monitord::config::{Check, CheckKind};

#[allow(unused_imports)] // not every test binary uses it
pub use lvs_testsupport::root_or_skip;

static NEXT: AtomicUsize = AtomicUsize::new(0);

pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A named network namespace, deleted on drop (with whatever still runs in it).
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new() -> Self {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("lvsmon{}{n}", std::process::id() % 10000);
        run("ip", &["netns", "add", &name]);
        let ns = Self { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs a command inside the namespace and asserts it succeeds.
    pub fn exec(&self, cmd: &[&str]) -> String {
        let mut args = vec!["netns", "exec", &self.name];
        args.extend_from_slice(cmd);
        run("ip", &args)
    }

    /// Starts a long-running command inside the namespace; killed when the guard drops.
    pub fn spawn(&self, cmd: &[&str]) -> ChildGuard {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn in namespace");
        ChildGuard(child)
    }

    /// Runs `f` on a fresh thread that has entered this namespace; the thread ends with `f`.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = File::open(&path).expect("open netns");
                // SAFETY: setns on a valid namespace fd only changes this thread's network
                // namespace; the thread runs `f` and exits, it is never reused.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).output();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A child process killed and reaped on drop.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub const A: &str = "10.77.0.1";
pub const B: &str = "10.77.0.2";
pub const A6: &str = "2001:db8:77::1";
pub const B6: &str = "2001:db8:77::2";

/// `a` and `b` joined by a veth pair (`va` 10.77.0.1/24 and 2001:db8:77::1/64, `vb` 10.77.0.2/24
/// and 2001:db8:77::2/64).
#[derive(Debug)]
pub struct Testbed {
    pub a: Netns,
    pub b: Netns,
}

impl Testbed {
    pub fn new() -> Self {
        let bed = Self {
            a: Netns::new(),
            b: Netns::new(),
        };
        run(
            "ip",
            &[
                "link",
                "add",
                "va",
                "netns",
                &bed.a.name,
                "type",
                "veth",
                "peer",
                "name",
                "vb",
                "netns",
                &bed.b.name,
            ],
        );
        for (ns, dev, addr) in [
            (&bed.a, "va", "10.77.0.1/24"),
            (&bed.b, "vb", "10.77.0.2/24"),
        ] {
            ns.exec(&["ip", "addr", "add", addr, "dev", dev]);
            ns.exec(&["ip", "link", "set", dev, "up"]);
        }
        for (ns, dev, addr) in [(&bed.a, "va", A6), (&bed.b, "vb", B6)] {
            let addr = format!("{addr}/64");
            ns.exec(&["ip", "-6", "addr", "add", &addr, "dev", dev, "nodad"]);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for (ns, dev) in [(&bed.a, "va"), (&bed.b, "vb")] {
            while !ns
                .exec(&["ip", "-o", "link", "show", dev])
                .contains("LOWER_UP")
            {
                assert!(Instant::now() < deadline, "{dev} has no carrier");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        bed
    }

    /// Makes every address of `net` (e.g. `10.78.0.0/24`) local to `b` (AnyIP on lo) and
    /// routes it from `a`: many target addresses for one listener.
    pub fn many_addresses(&self, net: &str) {
        self.b
            .exec(&["ip", "route", "add", "local", net, "dev", "lo"]);
        self.a.exec(&["ip", "route", "add", net, "via", B]);
    }
}

/// A TCP listener in `ns` with a large backlog that never accepts: the kernel completes every
/// handshake, and nobody ever answers.
pub fn silent_listener(ns: &Netns, addr: &str) -> TcpListener {
    let addr: SocketAddr = addr.parse().unwrap();
    ns.run(move || {
        use nix::sys::socket::{
            AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, SockaddrIn6, bind, listen,
            setsockopt, socket, sockopt,
        };
        let family = match addr {
            SocketAddr::V4(_) => AddressFamily::Inet,
            SocketAddr::V6(_) => AddressFamily::Inet6,
        };
        let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).expect("socket");
        setsockopt(&fd, sockopt::ReuseAddr, &true).expect("reuseaddr");
        match addr {
            SocketAddr::V4(v4) => bind(fd.as_raw_fd(), &SockaddrIn::from(v4)),
            SocketAddr::V6(v6) => bind(fd.as_raw_fd(), &SockaddrIn6::from(v6)),
        }
        .expect("bind");
        listen(&fd, Backlog::new(1024).expect("backlog")).expect("listen");
        TcpListener::from(fd)
    })
}

/// Waits until something accepts connections at `addr` (connecting from `ns`).
pub fn wait_port(ns: &Netns, addr: &str) {
    let addr: SocketAddr = addr.parse().unwrap();
    ns.run(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "nothing listens on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
    });
}

/// A check with explicit timing.
pub fn check(kind: CheckKind, interval_ms: u64, timeout_ms: u64, rise: u32, fall: u32) -> Check {
    Check {
        kind,
        interval: Duration::from_millis(interval_ms),
        timeout: Duration::from_millis(timeout_ms),
        rise,
        fall,
    }
}

/// An engine that starts every check at once.
pub fn engine() -> Engine {
    Engine::with_options(EngineOptions { stagger: false }).expect("engine")
}

/// Polls `engine` until `done` says so or `limit` passes; every result seen.
pub fn collect(
    engine: &mut Engine,
    limit: Duration,
    mut done: impl FnMut(&[CheckResult]) -> bool,
) -> Vec<CheckResult> {
    let deadline = Instant::now() + limit;
    let mut all = Vec::new();
    let mut batch = Vec::new();
    loop {
        let now = Instant::now();
        if now >= deadline || done(&all) {
            return all;
        }
        engine.poll(Some(deadline - now), &mut batch).expect("poll");
        all.append(&mut batch);
    }
}

/// The first result of each target in `ids`, waiting up to `limit`.
pub fn first_results(engine: &mut Engine, ids: &[TargetId], limit: Duration) -> Vec<CheckResult> {
    let all = collect(engine, limit, |r| {
        ids.iter().all(|id| r.iter().any(|x| x.target == *id))
    });
    ids.iter()
        .map(|id| {
            all.iter()
                .find(|r| r.target == *id)
                .unwrap_or_else(|| panic!("no result for {id} in {all:?}"))
                .clone()
        })
        .collect()
}
