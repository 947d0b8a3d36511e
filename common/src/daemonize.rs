//! Becoming a background daemon the classic way, without losing early errors.
//!
//! [`daemonize`] forks; the original process (the one the admin or init script started) waits
//! on a pipe. The child calls `setsid`, forks again (so the daemon is not a session leader and
//! can never get a controlling terminal back), and the grandchild — the daemon — does
//! `chdir("/")`, `umask(027)` and points stdin at `/dev/null`. It keeps the caller's stdout and
//! stderr for now, so an error during start-up (bad config, socket in use, already running)
//! is printed where the admin can see it.
//!
//! When the daemon has finished starting (pidfile written, sockets bound), it calls
//! [`Readiness::ready`]: stdout and stderr go to `/dev/null`, a byte goes down the pipe, and
//! the original process exits 0. If the daemon exits or crashes before that, the pipe closes
//! without that byte and the original process exits 1. Init scripts, `start-stop-daemon` and
//! systemd `Type=forking` therefore see the real outcome of the start.
//!
//! **Call it before starting any thread** (including through a library): `fork` copies only
//! the calling thread, so locks held by other threads would stay locked forever in the child.
//! [`daemonize`] checks `/proc/self/task` and refuses with [`DaemonizeError::Threaded`].
//! In practice: parse arguments, load the config, then daemonize, then everything else.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, umask};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, chdir, dup2, pipe2, setsid};

use crate::sys::{exit_now, fork_single_threaded};

/// The umask the daemon runs with: files it creates are not world-accessible unless it says
/// so (the pidfile and sockets set their modes explicitly).
pub const UMASK: u32 = 0o027;

/// The byte that says "started".
const READY: u8 = b'R';

/// Why the process could not become a daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonizeError {
    /// Other threads exist; forking now would be unsound.
    #[error("cannot daemonize: {0} threads are running (daemonize before starting any thread)")]
    Threaded(usize),
    /// A system call failed.
    #[error("cannot daemonize: {what}: {source}")]
    Sys {
        /// Which step.
        what: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
}

fn sys(what: &'static str) -> impl FnOnce(nix::errno::Errno) -> DaemonizeError {
    move |e| DaemonizeError::Sys {
        what,
        source: e.into(),
    }
}

/// How the daemon tells whoever started it that start-up is complete.
///
/// Dropping it without calling [`ready`](Readiness::ready) reports failure (the starting
/// process exits 1). In the foreground it does nothing.
#[derive(Debug)]
pub struct Readiness {
    pipe: Option<OwnedFd>,
}

impl Readiness {
    /// For a daemon running in the foreground: nobody is waiting.
    pub fn foreground() -> Readiness {
        Readiness { pipe: None }
    }

    /// True if a starting process is waiting for us (we were daemonized and not yet ready).
    pub fn is_waiting(&self) -> bool {
        self.pipe.is_some()
    }

    /// Start-up is complete: detach stdout and stderr from the caller's terminal or pipe and
    /// let the starting process exit 0.
    pub fn ready(mut self) -> io::Result<()> {
        let Some(pipe) = self.pipe.take() else {
            return Ok(());
        };
        // First let go of the caller's stdout/stderr: a caller that reads them to the end
        // (`$(lvs-director)`, ssh, a test) must see EOF once the parent exits.
        redirect_to_dev_null(&[1, 2])?;
        let mut pipe = File::from(pipe);
        pipe.write_all(&[READY])
        // `pipe` closes here.
    }
}

/// Turns this process into a daemon (see the module documentation). Returns in the daemon
/// only; the starting process exits inside this function with the daemon's start-up result.
///
/// Must be called while the process has a single thread.
pub fn daemonize() -> Result<Readiness, DaemonizeError> {
    let threads = thread_count();
    if threads > 1 {
        return Err(DaemonizeError::Threaded(threads));
    }
    // Make sure anything printed so far is out before the buffers are copied by fork.
    let _ = io::stdout().flush();
    // Close-on-exec: programs the daemon runs later must not hold the pipe open.
    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).map_err(sys("pipe"))?;

    match fork_single_threaded().map_err(|source| DaemonizeError::Sys {
        what: "fork",
        source,
    })? {
        ForkResult::Parent { child } => {
            drop(write_end);
            // The intermediate child exits as soon as it has forked again; reap it.
            let _ = waitpid(child, None);
            let mut byte = [0u8; 1];
            let mut read_end = File::from(read_end);
            let started = loop {
                match read_end.read(&mut byte) {
                    Ok(1) => break byte[0] == READY,
                    Ok(_) => break false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break false,
                }
            };
            std::process::exit(if started { 0 } else { 1 });
        }
        ForkResult::Child => {}
    }

    // The intermediate child: a new session without a controlling terminal, then fork again.
    drop(read_end);
    if let Err(e) = setsid() {
        eprintln!("cannot daemonize: setsid: {e}");
        exit_now(1);
    }
    // Still a single thread: this process was forked from a single-threaded one and has
    // started none.
    match fork_single_threaded() {
        Ok(ForkResult::Parent { .. }) => exit_now(0),
        Ok(ForkResult::Child) => {}
        Err(e) => {
            eprintln!("cannot daemonize: second fork: {e}");
            exit_now(1);
        }
    }

    // The daemon.
    chdir("/").map_err(sys("chdir /"))?;
    umask(Mode::from_bits_truncate(UMASK));
    redirect_to_dev_null(&[0]).map_err(|source| DaemonizeError::Sys {
        what: "stdin to /dev/null",
        source,
    })?;
    Ok(Readiness {
        pipe: Some(write_end),
    })
}

fn redirect_to_dev_null(fds: &[i32]) -> io::Result<()> {
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for &fd in fds {
        dup2(null.as_raw_fd(), fd)?;
    }
    Ok(())
}

/// The number of threads of this process, from `/proc/self/task` (1 if it cannot be read).
pub fn thread_count() -> usize {
    fs::read_dir("/proc/self/task").map_or(1, |dir| dir.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_when_threads_run() {
        // The test harness itself runs tests on threads; make sure there are at least two.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let helper = std::thread::spawn(move || {
            let _ = rx.recv();
        });
        assert!(thread_count() >= 2);
        let err = daemonize().unwrap_err();
        assert!(
            matches!(err, DaemonizeError::Threaded(n) if n >= 2),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("daemonize before starting any thread")
        );
        // The fork underneath refuses too, whoever calls it.
        let e = fork_single_threaded().expect_err("forked with threads running");
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        drop(tx);
        helper.join().unwrap();
    }

    #[test]
    fn foreground_readiness_is_a_no_op() {
        let r = Readiness::foreground();
        assert!(!r.is_waiting());
        r.ready().unwrap();
    }
}
