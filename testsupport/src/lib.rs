//! What every test that drives real parts (namespaces, daemons, binaries) needs, in one place:
//! the root check that skips loudly, polling with a deadline instead of sleeping, and finding a
//! workspace binary next to the one cargo built for the test.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// True when running as root; otherwise prints `SKIPPED: <test> needs root` and returns false,
/// so that a test that cannot run says so instead of passing silently.
pub fn root_or_skip(test: &str) -> bool {
    // /proc/self/status is enough to read the effective uid without unsafe code.
    let euid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|rest| rest.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|u| u.parse::<u32>().ok());
    if euid == Some(0) {
        true
    } else {
        eprintln!("SKIPPED: {test} needs root");
        false
    }
}

/// Polls `f` until it returns `Some`, or panics naming `what` once `limit` has passed. The
/// pause between polls is short (20 ms): waiting is always bounded by the deadline, never a
/// guessed sleep.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
