//! The `log` backend of every daemon: syslog (facility `daemon`, ident = the binary's name)
//! and, in the foreground, stderr too. One message is always one line.
//!
//! - syslog: datagrams to `/dev/log` through the `syslog` crate, in the local RFC 3164 form
//!   without a date (the receiver stamps the arrival time), e.g.
//!   `<28>lvs-director[1234]: event=server_down ...` (28 = daemon.warning).
//!   If the socket is missing at start, a warning event (`event=syslog_unavailable`) is written
//!   and messages go to stderr instead; the backend tries to reconnect every few seconds (and
//!   at once when a send fails, e.g. after rsyslog restarted).
//! - stderr: `2025-06-01T12:00:00.123Z lvs-director[1234]: warning: event=server_down ...`:
//!   the time in UTC with milliseconds, then the same ident, pid, severity and message.
//!
//! Levels map to syslog severities: `error` -> `err`, `warn` -> `warning`, `info` -> `info`,
//! `debug` and `trace` -> `debug`. Messages pass through [`crate::event::one_line`], so even a
//! plain `log::info!` with a newline stays on one line. The format of the events themselves is
//! in [`crate::event`](mod@crate::event) and `docs/LOGGING.md`.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};
use syslog::{Facility, LogFormat, LoggerBackend, Severity};

use crate::event::{Event, one_line};

/// The system's syslog socket.
pub const SYSLOG_SOCKET: &str = "/dev/log";

/// How long to wait between two attempts to reach a syslog socket that is not there.
const RETRY: Duration = Duration::from_secs(5);

/// What [`init`] sets up.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// The syslog ident and stderr prefix: the binary's name, e.g. `lvs-director`.
    pub ident: String,
    /// The most detailed level that is logged.
    pub level: LevelFilter,
    /// Also write every line to stderr (the foreground).
    pub stderr: bool,
    /// Send to syslog.
    pub syslog: bool,
    /// The syslog socket; `None` for the system's ([`SYSLOG_SOCKET`]). Tests point this
    /// elsewhere.
    pub syslog_socket: Option<PathBuf>,
}

impl LogOptions {
    /// Syslog to the system socket at `level`; stderr too if `foreground`.
    pub fn new(ident: &str, level: LevelFilter, foreground: bool) -> LogOptions {
        LogOptions {
            ident: ident.to_owned(),
            level,
            stderr: foreground,
            syslog: true,
            syslog_socket: None,
        }
    }
}

/// [`init`] was called twice.
#[derive(Debug, thiserror::Error)]
#[error("a logger is already installed in this process")]
pub struct AlreadyInitialized;

/// Installs the backend as the process's `log` logger. Call it once, after
/// [`crate::daemonize()`] (the pid in every line is taken here).
pub fn init(opts: LogOptions) -> Result<(), AlreadyInitialized> {
    let level = opts.level;
    let (logger, warning) = Logger::new(opts, Box::new(io::stderr()));
    log::set_boxed_logger(Box::new(logger)).map_err(|_| AlreadyInitialized)?;
    log::set_max_level(level);
    if let Some(warning) = warning {
        warning.log(Level::Warn);
    }
    Ok(())
}

type Connection = syslog::Logger<LoggerBackend, LocalFormat>;

/// RFC 3164 for the local socket, without the timestamp: `<28>lvs-director[1234]: msg`.
///
/// Like glibc's `syslog()` minus the date, which the receiver (rsyslog, journald) then takes
/// from the arrival time. The `syslog` crate's own `Formatter3164` writes the time in UTC,
/// which rsyslog would read as local time.
#[derive(Debug, Clone)]
struct LocalFormat {
    ident: String,
    pid: u32,
}

impl<T: std::fmt::Display> LogFormat<T> for LocalFormat {
    fn format<W: Write>(&self, w: &mut W, severity: Severity, message: T) -> syslog::Result<()> {
        let priority = Facility::LOG_DAEMON as u8 | severity as u8;
        write!(w, "<{priority}>{}[{}]: {message}", self.ident, self.pid)
            .map_err(syslog::Error::Write)
    }
}

/// The backend. [`init`] installs one; tests may use one directly through [`Log`].
pub struct Logger {
    ident: String,
    pid: u32,
    level: LevelFilter,
    to_stderr: bool,
    stderr: Mutex<Box<dyn Write + Send>>,
    syslog: Option<Mutex<Syslog>>,
}

impl std::fmt::Debug for Logger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logger")
            .field("ident", &self.ident)
            .field("level", &self.level)
            .field("to_stderr", &self.to_stderr)
            .field("syslog", &self.syslog.is_some())
            .finish_non_exhaustive()
    }
}

struct Syslog {
    socket: Option<PathBuf>,
    conn: Option<Connection>,
    /// When to try again while `conn` is `None`.
    next_attempt: Instant,
}

impl Logger {
    /// A backend writing to `stderr` (where it writes "stderr" lines) as `opts` says. Returns
    /// the warning event to log if syslog was wanted but could not be reached.
    pub fn new(opts: LogOptions, stderr: Box<dyn Write + Send>) -> (Logger, Option<Event>) {
        let pid = std::process::id();
        let mut warning = None;
        let syslog = opts.syslog.then(|| {
            let conn = match connect(&opts.ident, pid, opts.syslog_socket.as_ref()) {
                Ok(conn) => Some(conn),
                Err(e) => {
                    let socket = opts
                        .syslog_socket
                        .as_ref()
                        .map_or_else(|| SYSLOG_SOCKET.to_owned(), |p| p.display().to_string());
                    warning = Some(
                        Event::new("syslog_unavailable")
                            .field("socket", socket)
                            .field("error", e)
                            .field("fallback", "stderr"),
                    );
                    None
                }
            };
            Mutex::new(Syslog {
                socket: opts.syslog_socket.clone(),
                conn,
                next_attempt: Instant::now() + RETRY,
            })
        });
        let logger = Logger {
            ident: opts.ident,
            pid,
            level: opts.level,
            to_stderr: opts.stderr,
            stderr: Mutex::new(stderr),
            syslog,
        };
        (logger, warning)
    }

    fn write_stderr(&self, level: Level, msg: &str) {
        let mut line = String::with_capacity(msg.len() + 64);
        let _ = writeln!(
            line,
            "{} {}[{}]: {}: {}",
            utc_timestamp(SystemTime::now()),
            self.ident,
            self.pid,
            severity_name(level),
            msg
        );
        if let Ok(mut w) = self.stderr.lock() {
            // One write call per line, so lines of several threads do not interleave.
            let _ = w.write_all(line.as_bytes());
            let _ = w.flush();
        }
    }

    /// Sends to syslog; false if it could not be sent.
    fn write_syslog(&self, sink: &Mutex<Syslog>, level: Level, msg: &str) -> bool {
        let Ok(mut sink) = sink.lock() else {
            return false;
        };
        let sink = &mut *sink;
        if let Some(conn) = sink.conn.as_mut() {
            if send(conn, level, msg) {
                return true;
            }
            // The daemon may have restarted: reconnect once, right now.
            sink.conn = None;
            sink.next_attempt = Instant::now();
        }
        if Instant::now() < sink.next_attempt {
            return false;
        }
        sink.next_attempt = Instant::now() + RETRY;
        match connect(&self.ident, self.pid, sink.socket.as_ref()) {
            Ok(mut conn) => {
                let sent = send(&mut conn, level, msg);
                sink.conn = Some(conn);
                sent
            }
            Err(_) => false,
        }
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        // The netlink parsing crates warn about every attribute a newer kernel adds; that is
        // noise to a sysadmin, so only their errors get through.
        if metadata.target().starts_with("netlink_packet") && metadata.level() > Level::Error {
            return false;
        }
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let text = match record.args().as_str() {
            Some(s) => std::borrow::Cow::Borrowed(s),
            None => std::borrow::Cow::Owned(record.args().to_string()),
        };
        let msg = one_line(&text);
        let sent = match &self.syslog {
            Some(sink) => self.write_syslog(sink, record.level(), &msg),
            None => false,
        };
        // stderr in the foreground; also the fallback when syslog is wanted but down.
        if self.to_stderr || (self.syslog.is_some() && !sent) {
            self.write_stderr(record.level(), &msg);
        }
    }

    fn flush(&self) {
        if let Ok(mut w) = self.stderr.lock() {
            let _ = w.flush();
        }
    }
}

fn connect(ident: &str, pid: u32, socket: Option<&PathBuf>) -> syslog::Result<Connection> {
    let formatter = LocalFormat {
        ident: ident.to_owned(),
        pid,
    };
    match socket {
        Some(path) => syslog::unix_custom(formatter, path),
        None => syslog::unix_custom(formatter, SYSLOG_SOCKET),
    }
}

fn send(conn: &mut Connection, level: Level, msg: &str) -> bool {
    match level {
        Level::Error => conn.err(msg),
        Level::Warn => conn.warning(msg),
        Level::Info => conn.info(msg),
        Level::Debug | Level::Trace => conn.debug(msg),
    }
    .is_ok()
}

/// The syslog severity name a level is logged at (`err`, `warning`, `info`, `debug`).
pub fn severity_name(level: Level) -> &'static str {
    match level {
        Level::Error => "err",
        Level::Warn => "warning",
        Level::Info => "info",
        Level::Debug | Level::Trace => "debug",
    }
}

/// `2025-06-01T12:00:00.123Z`: RFC 3339 in UTC with milliseconds.
pub fn utc_timestamp(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(since.as_secs()).unwrap_or(i64::MAX / 2);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Year, month, day of a count of days since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn emit(logger: &Logger, level: Level, msg: &str) {
        logger.log(
            &Record::builder()
                .args(format_args!("{msg}"))
                .level(level)
                .build(),
        );
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("lvs-common-logging-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn timestamps() {
        let t = |s| utc_timestamp(UNIX_EPOCH + Duration::from_millis(s));
        assert_eq!(t(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(t(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(t(1_748_779_199_999), "2025-06-01T11:59:59.999Z");
        assert_eq!(t(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
    }

    #[test]
    fn syslog_datagrams_and_stderr_lines() {
        let dir = temp_dir("syslog");
        let socket = dir.join("log");
        let server = UnixDatagram::bind(&socket).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let out = Buffer::default();
        let mut opts = LogOptions::new("lvs-test", LevelFilter::Info, true);
        opts.syslog_socket = Some(socket.clone());
        let (logger, warning) = Logger::new(opts, Box::new(out.clone()));
        assert!(warning.is_none());

        emit(&logger, Level::Warn, "event=server_down reason=\"a\nb\"");
        emit(&logger, Level::Error, "plain\nmessage");
        emit(&logger, Level::Debug, "not enabled");

        let mut buf = [0u8; 2048];
        let pid = std::process::id();
        let n = server.recv(&mut buf).unwrap();
        let got = std::str::from_utf8(&buf[..n]).unwrap();
        // daemon (3) * 8 + warning (4)
        assert_eq!(
            got,
            format!("<28>lvs-test[{pid}]: event=server_down reason=\"a\\nb\"")
        );
        let n = server.recv(&mut buf).unwrap();
        let got = std::str::from_utf8(&buf[..n]).unwrap();
        assert_eq!(got, format!("<27>lvs-test[{pid}]: plain\\nmessage"));
        server.set_nonblocking(true).unwrap();
        assert!(server.recv(&mut buf).is_err(), "debug must be filtered");

        let text = out.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].ends_with(&format!(
                "Z lvs-test[{pid}]: warning: event=server_down reason=\"a\\nb\""
            )),
            "{text}"
        );
        assert!(lines[1].ends_with(": err: plain\\nmessage"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn falls_back_to_stderr_without_syslog_and_reconnects() {
        let dir = temp_dir("fallback");
        let socket = dir.join("log");
        let out = Buffer::default();
        let mut opts = LogOptions::new("lvs-test", LevelFilter::Info, false);
        opts.syslog_socket = Some(socket.clone());
        let (logger, warning) = Logger::new(opts, Box::new(out.clone()));
        let warning = warning.expect("a warning about the missing socket");
        assert!(
            warning.as_str().starts_with(&format!(
                "event=syslog_unavailable socket={} error=",
                socket.display()
            )),
            "{warning}"
        );
        assert!(warning.as_str().ends_with(" fallback=stderr"), "{warning}");
        emit(&logger, Level::Info, "event=x");
        assert!(out.text().ends_with(": info: event=x\n"), "{}", out.text());

        // syslog appears; the next attempt (forced here) reaches it and stderr stays quiet.
        let server = UnixDatagram::bind(&socket).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        logger.syslog.as_ref().unwrap().lock().unwrap().next_attempt = Instant::now();
        let before = out.text();
        emit(&logger, Level::Info, "event=y");
        let mut buf = [0u8; 512];
        let n = server.recv(&mut buf).unwrap();
        assert!(
            std::str::from_utf8(&buf[..n])
                .unwrap()
                .ends_with(": event=y")
        );
        assert_eq!(out.text(), before);

        // syslog goes away (rsyslog restart): the failed send is not lost.
        drop(server);
        std::fs::remove_file(&socket).unwrap();
        emit(&logger, Level::Info, "event=z");
        assert!(out.text().ends_with(": info: event=z\n"), "{}", out.text());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
