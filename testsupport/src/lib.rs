//! What every test that drives real parts (namespaces, daemons, binaries) needs, in one place:
//! the root check that skips loudly (and fails under `scripts/test.sh`), polling with a deadline instead of sleeping, finding a
//! workspace binary next to the one cargo built for the test (or the built directory itself),
//! temporary directories, the HTTP server of the real servers, (in [`cluster`]) the
//! namespace testbed with the real director and monitord, and (in [`daemon`]) a daemon run
//! as a host runs it: forking, and through its init script.

pub mod cluster;
pub mod daemon;
pub mod lines;
pub mod unit;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Set by `scripts/test.sh`: there every test must really run, so a test whose prerequisite
/// is missing (root, an external program, a built binary) fails instead of printing SKIPPED
/// and passing. Without it (`cargo test` by hand, as a user) such a test skips loudly.
pub const REQUIRE_ALL: &str = "LVS_TESTS_REQUIRE_ALL";

/// True when [`REQUIRE_ALL`] is set (to anything but empty or `0`).
pub fn all_required() -> bool {
    std::env::var_os(REQUIRE_ALL).is_some_and(|v| !v.is_empty() && v != "0")
}

/// A test that cannot run: prints `SKIPPED: <test> <why>`; under `scripts/test.sh`
/// ([`REQUIRE_ALL`]) it panics with that line instead, so the run fails.
pub fn skip(test: &str, why: &str) {
    skip_unless_required(all_required(), test, why);
}

fn skip_unless_required(required: bool, test: &str, why: &str) {
    let line = format!("SKIPPED: {test} {why}");
    assert!(
        !required,
        "{line}, and {REQUIRE_ALL} is set (scripts/test.sh): nothing may be skipped there"
    );
    eprintln!("{line}");
}

/// True when the effective uid is 0.
pub fn is_root() -> bool {
    // /proc/self/status is enough to read the effective uid without unsafe code.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|rest| rest.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|u| u.parse::<u32>().ok())
        == Some(0)
}

/// True when running as root; otherwise [`skip`]s (`SKIPPED: <test> needs root`, a failure
/// under `scripts/test.sh`) and returns false, so that a test that cannot run says so instead
/// of passing silently.
pub fn root_or_skip(test: &str) -> bool {
    if is_root() {
        true
    } else {
        skip(test, "needs root");
        false
    }
}

/// Polls `f` until it returns `Some`, or panics naming `what` once `limit` has passed. The
/// pause between polls is short (20 ms): waiting is always bounded by the deadline, never a
/// guessed sleep.
pub fn wait_for<T>(what: &str, limit: Duration, f: impl FnMut() -> Option<T>) -> T {
    poll_for(limit, f).unwrap_or_else(|| panic!("timed out after {limit:?} waiting for {what}"))
}

/// [`wait_for`] for a wait whose running out is an outcome, not a failure: `None` once
/// `limit` has passed.
pub fn poll_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM to `child`, a wait of at most `limit` for its exit, then SIGKILL: its exit status
/// if it exited by itself.
pub fn terminate(
    child: &mut std::process::Child,
    limit: Duration,
) -> Option<std::process::ExitStatus> {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let status = poll_for(limit, || child.try_wait().ok().flatten());
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    status
}

/// The workspace binary `name` in the same directory as `built` (a `CARGO_BIN_EXE_*` path),
/// with a clear message when it has not been built.
pub fn sibling_bin(built: &str, name: &str) -> PathBuf {
    let p = Path::new(built)
        .parent()
        .expect("binary has a directory")
        .join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace` first (scripts/test.sh does)",
        p.display()
    );
    p
}

/// `target/<profile>`, where cargo put the workspace's binaries and shared libraries: the
/// directory above the running test binary (`target/<profile>/deps/<test>`). Asserts that
/// `marker` (a file `cargo build --workspace` puts there) exists, with a clear message.
pub fn built_dir(marker: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf();
    assert!(
        dir.join(marker).is_file(),
        "{marker} is not built in {}: run `cargo build --workspace` first (scripts/test.sh does)",
        dir.display()
    );
    dir
}

/// The workspace's root directory (the sources, not the build).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testsupport/ has a parent")
        .to_path_buf()
}

/// Every file of the source tree under `dir`, for the lints that read the sources: hidden
/// directories (`.git` ...), build output (`target`) and `node_modules` left out.
pub fn source_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() {
                if !(name.starts_with('.') || name == "target" || name == "node_modules") {
                    walk(&p, out);
                }
            } else {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out
}

/// A fresh directory `<temp>/lvs-<tag>-<pid>-<n>`, removed when dropped.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "lvs-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The python HTTP server of the real servers (as `scripts/testbed.sh http` starts it):
/// HTTP/1.1 with keep-alive, naming itself in every answer. Arguments: `NAME [PORT [ADDR]]`
/// (port 80 and 0.0.0.0 when left out).
pub const HTTP_SERVER: &str = r#"
import http.server, socketserver, sys
name = sys.argv[1]
port = int(sys.argv[2]) if len(sys.argv) > 2 else 80
addr = sys.argv[3] if len(sys.argv) > 3 else "0.0.0.0"
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = (name + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
S((addr, port), H).serve_forever()
"#;

/// Starts [`HTTP_SERVER`] in the network namespace `ns`, answering `name` on `addr:port`, its
/// output discarded.
pub fn spawn_http_server(ns: &str, name: &str, port: u16, addr: &str) -> Child {
    Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", HTTP_SERVER])
        .args([name, &port.to_string(), addr])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start python3 (ip netns exec)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skip_fails_when_every_test_is_required() {
        skip_unless_required(false, "t", "needs nothing");
        let err =
            std::panic::catch_unwind(|| skip_unless_required(true, "t", "needs root")).unwrap_err();
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            msg.starts_with("SKIPPED: t needs root, and LVS_TESTS_REQUIRE_ALL is set"),
            "{msg}"
        );
    }

    #[test]
    fn wait_for_returns_the_first_value_and_times_out_with_the_name() {
        let mut n = 0;
        assert_eq!(
            wait_for("three calls", Duration::from_secs(5), || {
                n += 1;
                (n == 3).then_some(n)
            }),
            3
        );
        let err = std::panic::catch_unwind(|| {
            wait_for("nothing", Duration::from_millis(50), || None::<()>)
        })
        .unwrap_err();
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("waiting for nothing"), "{msg}");
    }
}
