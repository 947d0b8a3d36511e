//! The notify command: run without a shell, with the alert in its arguments and environment,
//! a timeout, and its output captured and logged.

use std::io::{self, Read};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

use log::Level;
use lvs_common::event;
use lvs_common::logging::utc_timestamp;
use mio::unix::pipe::Receiver;
use mio::{Events, Interest, Poll, Token};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::alert::Alert;

/// The `PATH` the command gets (its environment is otherwise only the `LVS_*` variables).
pub const NOTIFY_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Output kept per stream; more is counted, not stored.
const MAX_OUTPUT: usize = 16 * 1024;
/// Output lines logged per stream.
const MAX_LINES: usize = 20;
/// How often a running child is looked at when it writes nothing.
const POLL_SLICE: Duration = Duration::from_millis(20);

/// How a notify command ended.
#[derive(Debug)]
pub(crate) enum Ending {
    Exited(ExitStatus),
    /// Killed at the deadline (with its process group).
    TimedOut,
    /// It exited, but something it started kept its output open until the deadline; the
    /// process group was killed.
    Leftover(ExitStatus),
    /// Could not be started.
    SpawnFailed(io::Error),
}

/// What one run produced.
#[derive(Debug)]
pub(crate) struct Run {
    pub ending: Ending,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Bytes of output beyond what was kept.
    pub lost: usize,
    pub elapsed: Duration,
}

/// The command line: `argv... KIND SERVICE SERVER STATE REASON`.
pub(crate) fn command(argv: &[String], alert: &Alert, node: &str) -> Command {
    let (program, args) = argv.split_first().expect("validated: command is not empty");
    let mut cmd = Command::new(program);
    cmd.args(args)
        .arg(alert.kind.name())
        .arg(&alert.service)
        .arg(&alert.server)
        .arg(alert.state())
        .arg(&alert.reason);
    let unix = alert
        .time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    cmd.env_clear()
        .env("PATH", NOTIFY_PATH)
        .env("LVS_ALERT_KIND", alert.kind.name())
        .env("LVS_SERVICE", &alert.service)
        .env("LVS_SERVER", &alert.server)
        .env("LVS_STATE", alert.state())
        .env("LVS_REASON", &alert.reason)
        .env(
            "LVS_NODE",
            if alert.node.is_empty() {
                node
            } else {
                &alert.node
            },
        )
        .env("LVS_TIME", utc_timestamp(alert.time))
        .env("LVS_TIME_UNIX", unix.to_string());
    if let Some(last) = &alert.last_state {
        cmd.env("LVS_LAST_STATE", last.state());
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a timeout kills whatever it started too.
        .process_group(0);
    cmd
}

struct Stream {
    pipe: Option<Receiver>,
    kept: Vec<u8>,
}

impl Stream {
    /// Reads what is there; false at end of file.
    fn drain(&mut self, lost: &mut usize) -> bool {
        let Some(pipe) = &mut self.pipe else {
            return false;
        };
        let mut buf = [0u8; 4096];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => {
                    self.pipe = None;
                    return false;
                }
                Ok(n) => {
                    let room = MAX_OUTPUT.saturating_sub(self.kept.len());
                    let keep = n.min(room);
                    self.kept.extend_from_slice(&buf[..keep]);
                    *lost += n - keep;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.pipe = None;
                    return false;
                }
            }
        }
    }
}

/// Runs `cmd` until it ends or `deadline` passes (or the earlier deadline `closing` returns
/// once the alerter shuts down), collecting its output.
pub(crate) fn run(
    mut cmd: Command,
    deadline: Instant,
    closing: &dyn Fn() -> Option<Instant>,
) -> Run {
    let start = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            return Run {
                ending: Ending::SpawnFailed(e),
                stdout: Vec::new(),
                stderr: Vec::new(),
                lost: 0,
                elapsed: start.elapsed(),
            };
        }
    };
    let mut lost = 0;
    let (ending, out, err) = match supervise(&mut child, deadline, closing, &mut lost) {
        Ok(result) => result,
        Err(e) => {
            kill_group(&child);
            let _ = child.wait();
            (Ending::SpawnFailed(e), Vec::new(), Vec::new())
        }
    };
    Run {
        ending,
        stdout: out,
        stderr: err,
        lost,
        elapsed: start.elapsed(),
    }
}

fn kill_group(child: &Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // The group may be gone already; nothing else to do then.
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

fn supervise(
    child: &mut Child,
    mut deadline: Instant,
    closing: &dyn Fn() -> Option<Instant>,
    lost: &mut usize,
) -> io::Result<(Ending, Vec<u8>, Vec<u8>)> {
    let mut poll = Poll::new()?;
    let mut streams = [
        Stream {
            pipe: child.stdout.take().map(Receiver::from),
            kept: Vec::new(),
        },
        Stream {
            pipe: child.stderr.take().map(Receiver::from),
            kept: Vec::new(),
        },
    ];
    for (i, stream) in streams.iter_mut().enumerate() {
        if let Some(pipe) = &mut stream.pipe {
            pipe.set_nonblocking(true)?;
            poll.registry()
                .register(pipe, Token(i), Interest::READABLE)?;
        }
    }
    let mut events = Events::with_capacity(4);
    let mut status = None;
    let ending = loop {
        let mut open = false;
        for stream in &mut streams {
            open |= stream.drain(lost);
        }
        if status.is_none() {
            status = child.try_wait()?;
        }
        match status {
            Some(status) if !open => break Ending::Exited(status),
            _ => {}
        }
        if let Some(closing) = closing() {
            deadline = deadline.min(closing);
        }
        let now = Instant::now();
        if now >= deadline {
            kill_group(child);
            break match status {
                Some(status) => Ending::Leftover(status),
                None => {
                    child.wait()?;
                    Ending::TimedOut
                }
            };
        }
        // Woken by output, and every POLL_SLICE to notice the child's exit or a shutdown.
        let wait = (deadline - now).min(POLL_SLICE);
        match poll.poll(&mut events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    };
    let [out, err] = streams;
    Ok((ending, out.kept, err.kept))
}

/// Runs the command for `alert` and logs how it went: `alert_notify` (info) when it exits
/// with 0, `alert_notify_failed` (warning) otherwise, and its output as
/// `alert_notify_output` lines (info).
pub(crate) fn notify(
    argv: &[String],
    alert: &Alert,
    node: &str,
    deadline: Instant,
    closing: &dyn Fn() -> Option<Instant>,
) {
    let program = &argv[0];
    let run = run(command(argv, alert, node), deadline, closing);
    let ms = run.elapsed.as_millis();
    let error = match &run.ending {
        Ending::Exited(status) if status.success() => None,
        Ending::Exited(status) => Some(describe_status(*status)),
        Ending::TimedOut => Some(format!(
            "timed out after {} ms, killed with its process group",
            ms
        )),
        Ending::Leftover(status) => Some(format!(
            "{}, but a process it started kept its output open until the timeout; its process \
             group was killed",
            describe_status(*status)
        )),
        Ending::SpawnFailed(e) => Some(format!("cannot run it: {e}")),
    };
    for (name, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        log_output(program, name, text);
    }
    if run.lost > 0 {
        event!(
            Level::Info,
            "alert_notify_output",
            command = program,
            stream = "both",
            lost_bytes = run.lost
        );
    }
    match error {
        None => event!(
            Level::Info,
            "alert_notify",
            command = program,
            kind = alert.kind.name(),
            service = &alert.service,
            server = &alert.server,
            status = "ok",
            ms = ms,
        ),
        Some(error) => event!(
            Level::Warn,
            "alert_notify_failed",
            command = program,
            kind = alert.kind.name(),
            service = &alert.service,
            server = &alert.server,
            error = error,
            ms = ms,
        ),
    }
}

fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "ended".into(),
    }
}

fn log_output(program: &str, stream: &str, text: &[u8]) {
    if text.is_empty() {
        return;
    }
    let text = String::from_utf8_lossy(text);
    let lines: Vec<&str> = text.lines().collect();
    for line in lines.iter().take(MAX_LINES) {
        event!(
            Level::Info,
            "alert_notify_output",
            command = program,
            stream = stream,
            line = line
        );
    }
    if lines.len() > MAX_LINES {
        event!(
            Level::Info,
            "alert_notify_output",
            command = program,
            stream = stream,
            lines_not_logged = lines.len() - MAX_LINES
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::AlertKind;
    use std::time::SystemTime;

    /// The time `LVS_TIME_UNIX` shows for `t`.
    fn unix(t: SystemTime) -> u64 {
        t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
    }

    fn sh(script: &str) -> Vec<String> {
        // Tests only: the production code never runs a shell; here /bin/sh is the program.
        vec![
            "/bin/sh".into(),
            "-c".into(),
            script.into(),
            "notify".into(),
        ]
    }

    #[test]
    fn arguments_environment_and_output() {
        let alert = Alert::server_down("tcp/10.0.0.1:80", "10.0.0.2:80", "connect timeout");
        let cmd = command(
            &sh(
                "echo \"$@\"; echo \"$LVS_ALERT_KIND|$LVS_SERVER|$LVS_REASON|$LVS_TIME_UNIX|$HOME\" >&2",
            ),
            &alert,
            "d1",
        );
        let run = super::run(cmd, Instant::now() + Duration::from_secs(10), &|| None);
        assert!(
            matches!(run.ending, Ending::Exited(s) if s.success()),
            "{:?}",
            run.ending
        );
        assert_eq!(
            String::from_utf8_lossy(&run.stdout),
            "server_down tcp/10.0.0.1:80 10.0.0.2:80 down connect timeout\n"
        );
        assert_eq!(
            String::from_utf8_lossy(&run.stderr),
            format!(
                "server_down|10.0.0.2:80|connect timeout|{}|\n",
                unix(alert.time)
            )
        );
    }

    #[test]
    fn a_hanging_command_is_killed_with_its_children() {
        let alert = Alert::new(AlertKind::Fault);
        let start = Instant::now();
        // The child starts a grandchild that would hold the pipe open for a minute.
        let cmd = command(&sh("sleep 60 & sleep 60"), &alert, "d1");
        let run = super::run(cmd, Instant::now() + Duration::from_millis(300), &|| None);
        assert!(matches!(run.ending, Ending::TimedOut), "{:?}", run.ending);
        // Killed at the deadline: not before it, and not a minute later.
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(5),
            "{took:?}"
        );

        let cmd = command(&sh("sleep 60 & exit 0"), &alert, "d1");
        let run = super::run(cmd, Instant::now() + Duration::from_millis(300), &|| None);
        assert!(
            matches!(run.ending, Ending::Leftover(_)),
            "{:?}",
            run.ending
        );
    }

    #[test]
    fn output_is_bounded_and_a_missing_program_is_reported() {
        let alert = Alert::new(AlertKind::Master);
        let cmd = command(&sh("head -c 100000 /dev/zero"), &alert, "d1");
        let run = super::run(cmd, Instant::now() + Duration::from_secs(10), &|| None);
        assert_eq!(run.stdout.len(), MAX_OUTPUT);
        assert_eq!(run.lost, 100_000 - MAX_OUTPUT);

        let cmd = command(&["/nonexistent/notify".to_owned()], &alert, "d1");
        let run = super::run(cmd, Instant::now() + Duration::from_secs(1), &|| None);
        assert!(
            matches!(run.ending, Ending::SpawnFailed(_)),
            "{:?}",
            run.ending
        );
    }
}
