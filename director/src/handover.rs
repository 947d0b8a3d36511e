//! Upgrading a running director without dropping its connections.
//!
//! On SIGUSR2 (sent by `lvs-director --upgrade`) the director checks the binary at the path
//! it was started from (`--check-config` with its own arguments), stops its workers, writes its
//! control state, counters and connection table to a memfd ([`lvs_proto::handover`]) and
//! `execve`s that binary with `--resume-fd N`: the same process id, so systemd and the
//! pidfile go on naming it. The new binary rebuilds the control state before it applies its
//! kernel guard (the old nftables table stays in place meanwhile: the kernel never answers for
//! a virtual service in between), imports the connections into the workers that the fanout
//! steers their flows to, and writes the outcome to `<rundir>/director.upgrade`, where
//! `--upgrade` waits for it. Frames that arrive while no ring is open are lost, and TCP
//! sends them again: the connections live on.
//!
//! If the new binary fails its check nothing is stopped; if it cannot be executed after the
//! workers stopped, the running binary (`/proc/self/exe`, even when its file was replaced)
//! takes the handover instead.

use std::ffi::{CString, OsString};
use std::io::Read;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lvs_conntrack::{Addr, Endpoint, Forward, Proto, State, SyncEntry};
use lvs_control::ControlState;
use lvs_proto::handover::{HandedConn, HandedCounters, HandedOffload, Handover};
use lvs_proto::{HaRole, Request};
use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sys::memfd::{MemFdCreateFlag, memfd_create};

use crate::dataplane::snapshot::Snapshot;

/// The hidden option naming the descriptor the previous binary left the state in.
pub const RESUME_ARG: &str = "--resume-fd";

/// The file, in the run directory, where the outcome of an upgrade is written.
pub const STATUS_FILE: &str = "director.upgrade";

/// How long `--upgrade` waits for the new binary to report.
pub const UPGRADE_WAIT: Duration = Duration::from_secs(60);

/// Why an upgrade did not happen.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    #[error("the new binary {path} failed its check ({reason}): nothing was changed")]
    Check { path: PathBuf, reason: String },
    #[error("cannot write the state for the new binary: {0}")]
    Write(String),
    #[error("cannot execute {path}: {reason}")]
    Exec { path: PathBuf, reason: String },
    #[error("cannot read the state handed over by the previous binary (fd {fd}): {reason}")]
    Read { fd: i32, reason: String },
    #[error("no lvs-director is running (pidfile {path}: {reason})")]
    NotRunning { path: PathBuf, reason: String },
    #[error("cannot signal lvs-director (pid {pid}): {reason}")]
    Signal { pid: i32, reason: String },
    #[error(
        "lvs-director (pid {pid}) did not report the upgrade within {secs} s: its log says why (the upgrade_* events)"
    )]
    Timeout { pid: i32, secs: u64 },
    #[error("the upgrade failed: {0}")]
    Failed(String),
}

/// What the director remembers at start for a later upgrade: the binary's path and the
/// arguments it was started with.
#[derive(Debug, Clone)]
pub struct Upgrader {
    exe: PathBuf,
    args: Vec<OsString>,
}

impl Upgrader {
    /// This process's binary and arguments (without a previous `--resume-fd`).
    pub fn of_this_process() -> Upgrader {
        // Read now, while the path still names the running binary: a package upgrade renames
        // a new file over it, and that file is the one to run.
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
        Upgrader {
            exe,
            args: without_resume(std::env::args_os().skip(1)),
        }
    }

    /// The binary an upgrade executes.
    pub fn exe(&self) -> &Path {
        &self.exe
    }

    /// Runs the binary now at our path with `--check-config` and our arguments: a binary that
    /// is missing, does not start, or refuses the configuration stops the upgrade before
    /// anything is torn down.
    pub fn check(&self) -> Result<(), HandoverError> {
        let fail = |reason: String| HandoverError::Check {
            path: self.exe.clone(),
            reason,
        };
        let out = Command::new(&self.exe)
            .args(&self.args)
            .arg("--check-config")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| fail(e.to_string()))?;
        if out.status.success() {
            Ok(())
        } else {
            let text = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            Err(fail(format!("{}: {text}", out.status)))
        }
    }

    /// Executes the binary at our path with the handover: returns only if that failed. Then
    /// the running binary is executed with it instead; only if that fails too is the error
    /// returned, and the caller must stop.
    pub fn exec(&self, handover: &Handover) -> HandoverError {
        let fd = match write_memfd(handover) {
            Ok(fd) => fd,
            Err(e) => return e,
        };
        let first = self.exec_with(&self.exe, &fd);
        lvs_common::event!(
            log::Level::Error,
            "upgrade_exec_failed",
            binary = self.exe.display(),
            reason = first,
            fallback = "/proc/self/exe"
        );
        self.exec_with(Path::new("/proc/self/exe"), &fd)
    }

    fn exec_with(&self, path: &Path, fd: &OwnedFd) -> HandoverError {
        let fail = |reason: String| HandoverError::Exec {
            path: path.to_path_buf(),
            reason,
        };
        let c = |s: &[u8]| CString::new(s).map_err(|e| fail(e.to_string()));
        let mut argv = Vec::with_capacity(self.args.len() + 3);
        let prog = match c(self.exe.as_os_str().as_bytes()) {
            Ok(p) => p,
            Err(e) => return e,
        };
        argv.push(prog);
        for a in &self.args {
            match c(a.as_bytes()) {
                Ok(a) => argv.push(a),
                Err(e) => return e,
            }
        }
        argv.push(CString::from(c"--resume-fd"));
        match c(fd.as_raw_fd().to_string().as_bytes()) {
            Ok(n) => argv.push(n),
            Err(e) => return e,
        }
        let path_c = match c(path.as_os_str().as_bytes()) {
            Ok(p) => p,
            Err(e) => return e,
        };
        log::logger().flush();
        crate::sys::signals::ignore_until_handled();
        match nix::unistd::execv(&path_c, &argv) {
            Err(e) => fail(e.to_string()),
            Ok(never) => match never {},
        }
    }
}

/// `args` without `--resume-fd N` (or `--resume-fd=N`).
fn without_resume(args: impl Iterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut skip_next = false;
    for a in args {
        if skip_next {
            skip_next = false;
        } else if a == RESUME_ARG {
            skip_next = true;
        } else if !a.as_bytes().starts_with(b"--resume-fd=") {
            out.push(a);
        }
    }
    out
}

/// The handover in a memfd the new binary inherits (not closed on exec), at offset 0.
fn write_memfd(handover: &Handover) -> Result<OwnedFd, HandoverError> {
    let fail = |e: &dyn std::fmt::Display| HandoverError::Write(e.to_string());
    let bytes = handover.encode().map_err(|e| fail(&e))?;
    let fd =
        memfd_create(c"lvs-director-handover", MemFdCreateFlag::empty()).map_err(|e| fail(&e))?;
    let mut file = std::fs::File::from(fd);
    std::io::Write::write_all(&mut file, &bytes).map_err(|e| fail(&e))?;
    std::io::Seek::rewind(&mut file).map_err(|e| fail(&e))?;
    let fd = OwnedFd::from(file);
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::empty())).map_err(|e| fail(&e))?;
    Ok(fd)
}

/// Reads the handover from inherited descriptor `fd` and closes it. Opened again through
/// `/proc/self/fd`, so that no raw descriptor is adopted.
pub fn read_inherited(fd: i32) -> Result<Handover, HandoverError> {
    let fail = |reason: String| HandoverError::Read { fd, reason };
    let mut bytes = Vec::new();
    let opened = std::fs::File::open(format!("/proc/self/fd/{fd}"))
        .and_then(|mut f| f.read_to_end(&mut bytes));
    let _ = nix::unistd::close(fd);
    opened.map_err(|e| fail(e.to_string()))?;
    Handover::decode(&bytes).map_err(|e| fail(e.to_string()))
}

/// The requests that rebuild `state` from an empty one: services and their real servers in
/// order, the timeouts, the monitor's verdicts, the role.
pub fn requests(state: &ControlState) -> Vec<Request> {
    let mut out = Vec::new();
    for s in state.services() {
        out.push(Request::AddService(s.conf.clone()));
        for d in &s.dests {
            out.push(Request::AddDest {
                service: s.conf.key,
                dest: *d,
            });
        }
    }
    out.push(Request::SetTimeouts(state.timeouts()));
    for h in state.health().into_iter().filter(|h| !h.healthy) {
        out.push(Request::SetHealth {
            service: h.service,
            addr: h.addr,
            port: h.port,
            healthy: false,
        });
    }
    if state.role() == HaRole::Standby {
        out.push(Request::SetRole {
            role: HaRole::Standby,
        });
    }
    out
}

/// The counters of every service and real server of `state`, from `read`.
pub fn counters(state: &ControlState, read: &dyn lvs_control::StatsSource) -> Vec<HandedCounters> {
    let mut out = Vec::new();
    for s in state.services() {
        out.push(HandedCounters {
            service: s.conf.key,
            dest: None,
            stats: read.service(&s.conf.key).0,
        });
        for d in &s.dests {
            out.push(HandedCounters {
                service: s.conf.key,
                dest: Some((d.addr, d.port)),
                stats: read.dest(&s.conf.key, d).stats,
            });
        }
    }
    out
}

/// The interface changes to hand over.
pub fn offloads(changes: &[lvs_netinfo::OffloadChange]) -> Vec<HandedOffload> {
    changes
        .iter()
        .map(|o| HandedOffload {
            ifname: o.ifname.clone(),
            gro_turned_off: o.gro_turned_off,
            lro_turned_off: o.lro_turned_off,
        })
        .collect()
}

/// This process's interface changes merged with the ones handed over: what the old binary
/// turned off is turned on again at the final stop, not left off because the new binary
/// found it already off.
pub fn merge_offloads(
    mine: Vec<lvs_netinfo::OffloadChange>,
    handed: &[HandedOffload],
) -> Vec<lvs_netinfo::OffloadChange> {
    let mut out = mine;
    for h in handed {
        match out.iter_mut().find(|o| o.ifname == h.ifname) {
            Some(o) => {
                o.gro_turned_off |= h.gro_turned_off;
                o.lro_turned_off |= h.lro_turned_off;
            }
            None => out.push(lvs_netinfo::OffloadChange {
                ifname: h.ifname.clone(),
                gro_turned_off: h.gro_turned_off,
                lro_turned_off: h.lro_turned_off,
            }),
        }
    }
    out
}

/// A table entry for the handover.
pub fn handed(e: &SyncEntry) -> HandedConn {
    let ep = |e: Endpoint| (IpAddr::from(e.addr), e.port);
    HandedConn {
        proto: e.proto as u8,
        client: ep(e.client),
        virt: ep(e.virt),
        dest: ep(e.dest),
        forward: e.forward as u8,
        state: e.state as u8,
        flags: e.flags,
        timeout_ms: e.timeout_ms,
        persist_secs: e.persist_secs,
    }
}

/// A handed-over entry for the table; `None` for numbers this binary does not know.
pub fn entry(h: &HandedConn) -> Option<SyncEntry> {
    let proto = match h.proto {
        6 => Proto::Tcp,
        17 => Proto::Udp,
        _ => return None,
    };
    let forward = match h.forward {
        0 => Forward::Nat,
        1 => Forward::DirectRoute,
        2 => Forward::Tunnel,
        _ => return None,
    };
    let state = State::TCP
        .iter()
        .chain([State::Udp].iter())
        .find(|s| **s as u8 == h.state)
        .copied()?;
    let ep = |(a, p): (IpAddr, u16)| Endpoint::new(Addr::from(a), p);
    Some(SyncEntry {
        proto,
        client: ep(h.client),
        virt: ep(h.virt),
        dest: ep(h.dest),
        forward,
        state,
        flags: SyncEntry::clean_flags(h.flags),
        timeout_ms: h.timeout_ms,
        persist_secs: h.persist_secs,
    })
}

/// Puts handed-over entries into a worker's table, with this binary's service and real-server
/// ids (found by address, as connection sync does); returns how many went in.
pub fn import(
    table: &mut lvs_conntrack::Table,
    snap: &Snapshot,
    entries: &[SyncEntry],
    now: u64,
) -> usize {
    entries
        .iter()
        .filter(|e| {
            let (vip, rs) = (IpAddr::from(e.virt.addr), IpAddr::from(e.dest.addr));
            snap.service(e.proto, vip, e.virt.port)
                .or_else(|| snap.template_service(vip, e.virt.port))
                .and_then(|svc| {
                    snap.dest_by_addr(svc.id, rs, e.dest.port)
                        .map(|d| (svc.id, d))
                })
                .is_some_and(|(svc, dest)| table.sync_import(e, svc, dest, now).is_ok())
        })
        .count()
}

/// `--upgrade`: signal the director whose pidfile is in `rundir`, and wait for its new binary
/// to report. Returns the report.
pub fn request(rundir: &Path) -> Result<String, HandoverError> {
    let pidfile = lvs_proto::rundir::pidfile_path(rundir, "director");
    let status = rundir.join(STATUS_FILE);
    let not_running = |reason: String| HandoverError::NotRunning {
        path: pidfile.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&pidfile).map_err(|e| not_running(e.to_string()))?;
    let pid: i32 = text
        .trim()
        .parse()
        .map_err(|_| not_running(format!("no process id in {:?}", text.trim())))?;
    match std::fs::remove_file(&status) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(HandoverError::Failed(format!("{}: {e}", status.display()))),
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGUSR2,
    )
    .map_err(|e| HandoverError::Signal {
        pid,
        reason: e.to_string(),
    })?;
    let deadline = Instant::now() + UPGRADE_WAIT;
    loop {
        if let Ok(report) = std::fs::read_to_string(&status) {
            let report = report.trim().to_owned();
            return match report.strip_prefix("ok ") {
                Some(_) => Ok(report),
                None => Err(HandoverError::Failed(report)),
            };
        }
        if Instant::now() > deadline {
            return Err(HandoverError::Timeout {
                pid,
                secs: UPGRADE_WAIT.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Writes the outcome for `--upgrade` (whole, through a rename): a line starting `ok ` or
/// `failed `.
pub fn report(rundir: &Path, ok: bool, text: &str) {
    let path = rundir.join(STATUS_FILE);
    let tmp = rundir.join(format!("{STATUS_FILE}.tmp"));
    let line = format!("{} {text}\n", if ok { "ok" } else { "failed" });
    if let Err(e) = std::fs::write(&tmp, line).and_then(|()| std::fs::rename(&tmp, &path)) {
        lvs_common::event!(
            log::Level::Warn,
            "upgrade_report_failed",
            file = path.display(),
            reason = e
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_the_handover_format() {
        let v6 = |s: &str, port| Endpoint::new(Addr::from(s.parse::<IpAddr>().unwrap()), port);
        let e = SyncEntry {
            client: v6("2001:db8:51::2", 5353),
            virt: v6("2001:db8::100", 53),
            dest: v6("2001:db8::12", 53),
            proto: Proto::Udp,
            forward: Forward::Tunnel,
            state: State::Udp,
            flags: SyncEntry::TEMPLATE_FLAG,
            timeout_ms: 1,
            persist_secs: 360,
        };
        assert_eq!(entry(&handed(&e)), Some(e));
        for s in State::TCP.iter().chain([State::Udp].iter()) {
            let x = SyncEntry { state: *s, ..e };
            assert_eq!(entry(&handed(&x)), Some(x));
        }
        let mut bad = handed(&e);
        bad.forward = 9;
        assert_eq!(entry(&bad), None);
    }

    #[test]
    fn a_previous_resume_fd_is_not_passed_on() {
        let args = [
            "-c",
            "/etc/lvs/director.toml",
            "--resume-fd",
            "5",
            "-f",
            "--resume-fd=7",
        ];
        let got = without_resume(args.iter().map(OsString::from));
        assert_eq!(got, ["-c", "/etc/lvs/director.toml", "-f"]);
    }
}
