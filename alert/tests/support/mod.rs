//! What the integration tests share: a logger that keeps every line, temporary directories,
//! polling with deadlines, and a real SMTP server (Python's aiosmtpd) on loopback.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

// ---- logging ----------------------------------------------------------------------------

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Keep;

impl log::Log for Keep {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{}: {}", record.level(), record.args());
        LINES.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }
    fn flush(&self) {}
}

/// Installs the logger (once per test binary).
pub fn init_log() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        log::set_boxed_logger(Box::new(Keep)).expect("no other logger");
        log::set_max_level(log::LevelFilter::Debug);
    });
}

/// The lines logged so far that contain every one of `needles`.
pub fn lines_with(needles: &[&str]) -> Vec<String> {
    LINES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .cloned()
        .collect()
}

// ---- waiting ----------------------------------------------------------------------------

/// Polls `f` until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ---- files ------------------------------------------------------------------------------

/// A fresh directory, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "lvs-alert-{}-{name}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
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

// ---- the SMTP server ----------------------------------------------------------------------

/// A real SMTP server (aiosmtpd) on 127.0.0.1, on a port the kernel picked, writing every
/// message it accepts to `dir` as `NNNN.eml` (envelope in `X-Envelope-*` lines first).
/// Killed when dropped; it also exits by itself when the test process dies (its stdin
/// closes).
pub struct SmtpServer {
    child: Child,
    _stdin: ChildStdin,
    pub port: u16,
    mail_dir: PathBuf,
    _root: TempDir,
}

const SERVER_PY: &str = r#"
import asyncio, logging, os, sys, warnings
warnings.simplefilter("ignore")  # "AUTH without TLS": on loopback, on purpose
logging.disable(logging.CRITICAL)
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

outdir = sys.argv[1]
login = sys.argv[2].encode() if len(sys.argv) > 2 and sys.argv[2] else None
tls = None
if len(sys.argv) > 4:
    import ssl
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(sys.argv[3], sys.argv[4])

class Handler:
    def __init__(self):
        self.n = 0
    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        tmp = os.path.join(outdir, ".%04d.tmp" % self.n)
        with open(tmp, "wb") as f:
            f.write(b"X-Envelope-From: " + envelope.mail_from.encode() + b"\r\n")
            f.write(b"X-Envelope-To: " + ",".join(envelope.rcpt_tos).encode() + b"\r\n")
            f.write(b"X-Authenticated: " + (session.authenticated and b"yes" or b"no") + b"\r\n")
            f.write(b"X-TLS: " + (session.ssl is not None and b"yes" or b"no") + b"\r\n")
            f.write(envelope.original_content or envelope.content)
        os.rename(tmp, os.path.join(outdir, "%04d.eml" % self.n))
        return "250 Message accepted for delivery"

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and \
        auth_data.login + b":" + auth_data.password == login
    return AuthResult(success=ok)

async def main():
    loop = asyncio.get_running_loop()
    handler = Handler()
    def factory():
        kw = {}
        if login is not None:
            kw.update(authenticator=authenticator, auth_required=True, auth_require_tls=False)
        if tls is not None:
            kw.update(tls_context=tls, require_starttls=True)
        return SMTP(handler, hostname="lvs-test-smtp", **kw)
    server = await loop.create_server(factory, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await loop.run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"#;

const INSTALL: &str = "the SMTP tests need Python's aiosmtpd: install the Debian package \
     python3-aiosmtpd (apt-get install python3-aiosmtpd; scripts/test.sh lists it), or set \
     LVS_TEST_PYTHON to a python3 that can `import aiosmtpd`";

/// A python3 that has aiosmtpd.
fn python() -> String {
    let mut candidates = Vec::new();
    if let Ok(p) = std::env::var("LVS_TEST_PYTHON") {
        candidates.push(p);
    }
    // Debian's interpreter first: a python3 earlier in PATH (pyenv, a venv) may not see the
    // Debian package.
    candidates.extend(["/usr/bin/python3".to_owned(), "python3".to_owned()]);
    for candidate in candidates {
        let ok = Command::new(&candidate)
            .args(["-c", "import aiosmtpd.smtp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return candidate;
        }
    }
    panic!("{INSTALL}");
}

impl SmtpServer {
    /// Starts it; `login` (`user:password`) makes it require that login.
    pub fn start(login: Option<&str>) -> SmtpServer {
        SmtpServer::start_with(login, None)
    }

    /// Starts it; with `tls` (certificate and key PEM files) it requires STARTTLS.
    pub fn start_with(login: Option<&str>, tls: Option<(&Path, &Path)>) -> SmtpServer {
        let python = python();
        let dir = TempDir::new("smtp");
        let script = dir.path().join("server.py");
        std::fs::write(&script, SERVER_PY).unwrap();
        let mail_dir = dir.path().join("mail");
        std::fs::create_dir(&mail_dir).unwrap();
        let mut cmd = Command::new(&python);
        cmd.arg(&script).arg(&mail_dir);
        cmd.arg(login.unwrap_or(""));
        if let Some((cert, key)) = tls {
            cmd.arg(cert).arg(key);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {python}: {e}; {INSTALL}"));
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut guard = Started(Some(child));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("the SMTP server did not start within 20 s; {INSTALL}"));
        let port: u16 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the SMTP server did not start ({line:?}); {INSTALL}"));
        SmtpServer {
            child: guard.0.take().unwrap(),
            _stdin: stdin,
            port,
            mail_dir,
            _root: dir,
        }
    }

    /// The messages received so far, in order.
    pub fn messages(&self) -> Vec<String> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.mail_dir)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        names.retain(|p| p.extension().is_some_and(|e| e == "eml"));
        names.sort();
        names
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect()
    }

    /// Waits until at least `n` messages arrived (or `timeout`), and returns them all.
    pub fn wait_messages(&self, n: usize, timeout: Duration) -> Vec<String> {
        wait_for(timeout, || {
            let got = self.messages();
            (got.len() >= n).then_some(got)
        })
        .unwrap_or_else(|| self.messages())
    }
}

/// Kills a half-started server if start-up panics.
struct Started(Option<Child>);

impl Drop for Started {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `text` to `path` with `mode`.
pub fn write_file(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    drop(f);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
