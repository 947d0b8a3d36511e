//! Script checks: a child process per run, watched without blocking and without SIGCHLD.
//!
//! The child gets `/dev/null` as stdin and one non-blocking pipe as stdout and stderr; its
//! exit is seen through a pidfd (Linux 5.3+) registered in the engine's poll, or, where pidfds
//! are missing, by `waitpid(WNOHANG)` on a 10 ms timer. It runs in its own process group, so a
//! timeout kills the script and everything it started. Output is kept up to
//! [`MAX_OUTPUT`] bytes (the rest is read and dropped, so a chatty script never blocks on a full
//! pipe).
//!
//! The environment names the server: `LVS_SERVER_ADDR` is its address alone, IPv6 in RFC 5952's
//! canonical form (`2001:db8::11`, as lvsadm and the logs print it) and never in brackets;
//! `LVS_SERVER_PORT` is the port number alone. There is no combined `ADDR:PORT` variable: a
//! script that needs one adds the brackets for IPv6 itself (`[$LVS_SERVER_ADDR]:$LVS_SERVER_PORT`).

use std::fs::File;
use std::io::{self, Read};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};

use nix::fcntl::{FcntlArg, OFlag, fcntl};

use crate::config::ScriptCheck;
use crate::sys::pidfd_open;

/// Output kept per run.
pub const MAX_OUTPUT: usize = 4096;
/// Output quoted in a result's detail.
pub const DETAIL_OUTPUT: usize = 200;

/// One script run in flight.
#[derive(Debug)]
pub(crate) struct ScriptProbe {
    child: Child,
    pub(crate) out: File,
    pub(crate) pidfd: Option<OwnedFd>,
    output: Vec<u8>,
    dropped: usize,
}

impl ScriptProbe {
    /// Starts the script for the server at `addr`:`port`.
    pub(crate) fn start(check: &ScriptCheck, addr: IpAddr, port: u16) -> io::Result<ScriptProbe> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        fcntl(read.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        let write2 = write.try_clone()?;
        let child = {
            let mut cmd = Command::new(&check.command);
            cmd.args(&check.args)
                .env("LVS_SERVER_ADDR", addr.to_string())
                .env("LVS_SERVER_PORT", port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::from(write))
                .stderr(Stdio::from(write2))
                .process_group(0);
            cmd.spawn()?
            // `cmd` and with it our copies of the write ends are dropped here, so the pipe
            // reaches end-of-file when the script (and its children) are gone.
        };
        let pidfd = pidfd_open(child.id());
        Ok(ScriptProbe {
            child,
            out: File::from(read),
            pidfd,
            output: Vec::new(),
            dropped: 0,
        })
    }

    fn drain(&mut self) {
        let mut chunk = [0u8; 4096];
        loop {
            match self.out.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => {
                    let keep = n.min(MAX_OUTPUT - self.output.len());
                    self.output.extend_from_slice(&chunk[..keep]);
                    self.dropped += n - keep;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// The captured output (lossy UTF-8), and how many bytes were dropped past the bound.
    pub(crate) fn output(&self) -> (String, usize) {
        (
            String::from_utf8_lossy(&self.output).into_owned(),
            self.dropped,
        )
    }

    /// Reads output and looks for the exit; `Some` once it exited.
    pub(crate) fn ready(&mut self) -> Option<(bool, String)> {
        self.drain();
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.drain();
                Some(self.verdict(status))
            }
            Ok(None) => None,
            Err(e) => Some((false, format!("waiting for the script: {e}"))),
        }
    }

    fn verdict(&self, status: ExitStatus) -> (bool, String) {
        let mut detail = match (status.code(), status.signal()) {
            (Some(c), _) => format!("exit status {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            _ => status.to_string(),
        };
        let (out, _) = self.output();
        let out = out.trim();
        if !out.is_empty() {
            let excerpt: String = out.chars().take(DETAIL_OUTPUT).collect();
            detail.push_str(": ");
            detail.push_str(&excerpt);
            if excerpt.len() < out.len() {
                detail.push_str("...");
            }
        }
        (status.success(), detail)
    }

    /// Kills the script's process group; returns the child if it is not reaped yet (the
    /// engine reaps it later without blocking).
    pub(crate) fn kill(mut self) -> Option<Child> {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.kill();
        match self.child.try_wait() {
            Ok(Some(_)) | Err(_) => None,
            Ok(None) => Some(self.child),
        }
    }
}
