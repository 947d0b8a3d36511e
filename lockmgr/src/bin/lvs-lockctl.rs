//! `lvs-lockctl`: take a lock from the shell, list locks, show the cluster.
//!
//! ```text
//! lvs-lockctl lock NAME [--mode EX] [--lockspace default] [--timeout SECS] [--nowait] -- CMD ARGS...
//! lvs-lockctl list [--lockspace LS]
//! lvs-lockctl status
//! ```
//!
//! `lock` holds the lock while the command runs, like `flock(1)`: it exits with the command's
//! exit code (128 + N if a signal N killed it), or 1 with a message when the lock cannot be
//! had (busy with `--nowait`, timeout, deadlock, daemon not running), or 75 (`EX_TEMPFAIL`)
//! when `--nowait` meets a cluster that cannot commit (no quorum: this node is on the
//! minority side of a partition, or its leader is unreachable); that answer comes within two
//! election timeouts (4 s with the default 100 ms tick). The command finds the
//! fencing token in `LVS_LOCK_TOKEN` (and the lock in `LVS_LOCK_NAME`, `LVS_LOCK_LOCKSPACE`,
//! `LVS_LOCK_MODE`). If lvs-lockctl itself dies, the daemon releases the lock at once.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use clap::{Parser, Subcommand};
use lvs_lockclient::{LockClient, LockError};
use lvs_lockclient::{LockFlags, LockMode};

/// `lock --nowait` on a node of a cluster that cannot commit (no quorum): try again later, or
/// on another node (sysexits' `EX_TEMPFAIL`).
const EXIT_NO_QUORUM: u8 = 75;

/// Take and inspect lvs-lockmgr locks from the shell.
#[derive(Parser, Debug)]
#[command(
    name = "lvs-lockctl",
    version,
    about,
    after_help = "Exit codes of `lock`: the command's (128 + N if signal N killed it); 1 if the lock cannot be had (held with --nowait, timeout, deadlock, daemon not running); 75 if --nowait meets a cluster that cannot commit (no quorum: this node is cut off from the majority or its leader is unreachable), answered within two election timeouts (4 s with the default tick)."
)]
struct Cli {
    /// Directory of lockmgr.sock [env: LVS_RUNDIR] [default: /run/lvs]
    #[arg(long = "rundir", value_name = "DIR", global = true)]
    rundir: Option<PathBuf>,

    #[command(subcommand)]
    command: LockctlCommand,
}

#[derive(Subcommand, Debug)]
enum LockctlCommand {
    /// Run a command while holding a lock (exit code: the command's; 1 if no lock; 75 if
    /// --nowait and no quorum)
    Lock {
        /// The resource to lock (1 to 64 bytes)
        name: String,
        /// Lock mode: NL, CR, CW, PR, PW or EX
        #[arg(long, short = 'm', default_value = "EX")]
        mode: LockMode,
        /// Lockspace (created if missing)
        #[arg(long, short = 'l', default_value = "default")]
        lockspace: String,
        /// Give up after this many seconds of waiting (fractions allowed)
        #[arg(long, short = 't', value_name = "SECS", value_parser = parse_secs)]
        timeout: Option<Duration>,
        /// Fail at once if the lock is not free (try-lock); in a cluster that cannot commit
        /// (no quorum), exit 75 within two election timeouts
        #[arg(long, short = 'n')]
        nowait: bool,
        /// The command and its arguments
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<OsString>,
    },
    /// List resources with their holders, waiters, modes and fencing tokens
    List {
        /// Only this lockspace
        #[arg(long, short = 'l')]
        lockspace: Option<String>,
    },
    /// Show the node, the cluster's members and its leader
    Status,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !v.is_finite() || !(0.0..=1e9).contains(&v) {
        return Err(format!("{s:?} is not a valid number of seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rundir = lvs_proto::rundir::resolve(cli.rundir.as_deref());
    match run(cli.command, &rundir) {
        Ok(code) => code,
        Err((e, code)) => {
            eprintln!("lvs-lockctl: {e}");
            ExitCode::from(code)
        }
    }
}

/// A failure: its message and exit code.
type Failure = (String, u8);

fn fail(e: impl ToString) -> Failure {
    (e.to_string(), 1)
}

fn run(cmd: LockctlCommand, rundir: &std::path::Path) -> Result<ExitCode, Failure> {
    let mut client = LockClient::connect(rundir).map_err(fail)?;
    match cmd {
        LockctlCommand::Lock {
            name,
            mode,
            lockspace,
            timeout,
            nowait,
            command,
        } => {
            let flags = if nowait {
                LockFlags::NOQUEUE
            } else {
                LockFlags::NONE
            };
            let granted = client
                .lock(&lockspace, name.as_bytes(), mode, flags, timeout)
                .map_err(|e| {
                    let (why, code) = match &e {
                        LockError::WouldBlock => ("it is held by another client".to_owned(), 1),
                        LockError::NoQuorum(_) => (e.to_string(), EXIT_NO_QUORUM),
                        other => (other.to_string(), 1),
                    };
                    (
                        format!("cannot lock {lockspace}/{name} in {mode}: {why}"),
                        code,
                    )
                })?;
            let (prog, args) = command.split_first().expect("clap requires a command");
            let status = Command::new(prog)
                .args(args)
                .env("LVS_LOCK_TOKEN", granted.token.to_string())
                .env("LVS_LOCK_NAME", &name)
                .env("LVS_LOCK_LOCKSPACE", &lockspace)
                .env("LVS_LOCK_MODE", mode.name())
                .status();
            let code = match status {
                Ok(s) => match (s.code(), s.signal()) {
                    (Some(c), _) => u8::try_from(c).unwrap_or(1),
                    (None, Some(sig)) => u8::try_from(128 + sig).unwrap_or(255),
                    _ => 1,
                },
                Err(e) => {
                    eprintln!("lvs-lockctl: cannot run {}: {e}", prog.to_string_lossy());
                    if e.kind() == std::io::ErrorKind::NotFound {
                        127
                    } else {
                        126
                    }
                }
            };
            // Explicit release; closing the connection would release it too.
            if let Err(e) = client.unlock(granted.handle, None) {
                eprintln!("lvs-lockctl: unlock of {lockspace}/{name} failed: {e}");
            }
            Ok(ExitCode::from(code))
        }
        LockctlCommand::List { lockspace } => {
            let l = client.list(lockspace.as_deref()).map_err(fail)?;
            let holder = |session: u64| -> String {
                l.clients
                    .iter()
                    .find(|c| c.session.0 == session)
                    .map_or_else(
                        || format!("session {session}"),
                        |c| format!("pid {} ({})", c.pid, c.name),
                    )
            };
            println!(
                "{:<16} {:<24} {:<10} {:>6} {:>10} {:>4} {:>4} HOLDER",
                "LOCKSPACE", "RESOURCE", "STATE", "HANDLE", "TOKEN", "MODE", "WANT"
            );
            for r in &l.resources {
                let name = printable(&r.name);
                let rows = r
                    .granted
                    .iter()
                    .map(|i| {
                        (
                            if i.requested.is_some() {
                                "converting"
                            } else {
                                "granted"
                            },
                            i,
                        )
                    })
                    .chain(r.waiting.iter().map(|i| ("waiting", i)));
                for (state, i) in rows {
                    println!(
                        "{:<16} {:<24} {:<10} {:>6} {:>10} {:>4} {:>4} {}",
                        r.lockspace,
                        name,
                        state,
                        i.lock.handle,
                        i.token.map_or_else(|| "-".to_owned(), |t| t.to_string()),
                        i.granted.map_or("-", LockMode::name),
                        i.requested.map_or("-", LockMode::name),
                        holder(i.lock.session.0),
                    );
                }
                if r.granted.is_empty() && r.waiting.is_empty() {
                    let valid = if r.lvb.valid { "valid" } else { "INVALID" };
                    println!(
                        "{:<16} {:<24} {:<10} (no locks, value block kept: {valid})",
                        r.lockspace, name, "idle"
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        LockctlCommand::Status => {
            let s = client.status().map_err(fail)?;
            let ids = |v: &[lvs_lockcore::NodeId]| {
                v.iter()
                    .map(|n| n.0.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            println!("mode:          {}", s.mode);
            println!("node:          {}", s.node.0);
            println!("members:       {}", ids(&s.members));
            println!(
                "leader:        {}",
                s.leader
                    .map_or_else(|| "none".to_owned(), |n| n.0.to_string())
            );
            println!("applied index: {}", s.applied_index);
            println!("next token:    {}", s.next_token);
            println!("clients:       {}", s.clients);
            let c = s.counts;
            println!(
                "locks:         {} granted, {} converting, {} waiting on {} resources in {} lockspaces ({} sessions)",
                c.granted, c.converting, c.waiting, c.resources, c.lockspaces, c.sessions
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A resource name as text when it is printable, else as hex.
fn printable(name: &[u8]) -> String {
    match std::str::from_utf8(name) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_owned(),
        _ => {
            let hex: String = name.iter().map(|b| format!("{b:02x}")).collect();
            format!("0x{hex}")
        }
    }
}
