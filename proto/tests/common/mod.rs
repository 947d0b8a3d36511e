//! Helpers shared by the integration tests: temp run directories, a server on a thread, raw
//! connections for sending bad input, a log capture, and deadline-bounded waiting.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lvs_proto::codec;
use lvs_proto::frame::{FrameDecoder, FrameLimit};
use lvs_proto::message::{ClientFrame, ErrorCode, Hello, Request, Role, ServerFrame};
use lvs_proto::rundir;
use lvs_proto::server::{PingHandler, Server, ServerConfig, ServerThread};

pub const TIMEOUT: Duration = Duration::from_secs(5);

/// A run directory of its own, removed on drop.
pub struct TempRunDir(pub PathBuf);

impl TempRunDir {
    pub fn new(tag: &str) -> TempRunDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "lvs-proto-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        rundir::ensure(&dir, None).expect("create temp run directory");
        TempRunDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempRunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn config(dir: &TempRunDir) -> ServerConfig {
    ServerConfig::new("director", dir.path())
}

pub fn start(config: ServerConfig) -> ServerThread<PingHandler> {
    init_logging();
    Server::bind(config)
        .expect("bind server")
        .spawn(PingHandler)
        .expect("spawn server")
}

/// Polls `cond` until it holds; fails the test at the deadline.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn frame_of(msg: &ClientFrame) -> Vec<u8> {
    codec::to_frame(msg, FrameLimit::DEFAULT).unwrap()
}

pub fn hello(version: u32) -> Vec<u8> {
    frame_of(&ClientFrame::Hello(Hello {
        version,
        role: Role::Other,
    }))
}

pub fn ping(id: u64) -> Vec<u8> {
    frame_of(&ClientFrame::Request {
        id,
        request: Request::Ping,
    })
}

/// A hand-driven connection for sending what a real client never would.
pub struct RawConn {
    pub stream: UnixStream,
    dec: FrameDecoder,
    pending: VecDeque<ServerFrame>,
}

impl RawConn {
    pub fn connect(path: &Path) -> RawConn {
        let stream = UnixStream::connect(path).expect("raw connect");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        RawConn {
            stream,
            dec: FrameDecoder::new(FrameLimit::DEFAULT),
            pending: VecDeque::new(),
        }
    }

    /// Sends, ignoring a peer that has already hung up (some tests provoke exactly that).
    pub fn send(&mut self, bytes: &[u8]) {
        match self.stream.write_all(bytes) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ) => {}
            Err(e) => panic!("raw send failed: {e}"),
        }
    }

    /// The next frame from the server, or `None` once it closed the connection.
    pub fn read_frame(&mut self) -> Option<ServerFrame> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(frame) = self.pending.pop_front() {
                return Some(frame);
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => {
                    for body in self.dec.feed(&buf[..n]) {
                        let body = body.expect("server sent a bad frame");
                        let frame = codec::decode_body(&body, FrameLimit::DEFAULT)
                            .expect("server sent an undecodable frame");
                        self.pending.push_back(frame);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("raw read failed: {e}"),
            }
        }
    }

    /// Asserts an Error frame of `code` followed by a close; returns its message.
    pub fn expect_error_and_close(&mut self, code: ErrorCode) -> String {
        let message = match self.read_frame() {
            Some(ServerFrame::Error { code: got, message }) => {
                assert_eq!(got, code, "error code (message: {message})");
                message
            }
            other => panic!("expected an Error frame {code:?}, got {other:?}"),
        };
        self.expect_closed();
        message
    }

    pub fn expect_closed(&mut self) {
        if let Some(frame) = self.read_frame() {
            panic!("expected the server to close, got {frame:?}");
        }
    }

    /// Sends a valid Hello and checks the HelloOk.
    pub fn hello(&mut self) {
        self.send(&hello(lvs_proto::PROTOCOL_VERSION));
        match self.read_frame() {
            Some(ServerFrame::HelloOk(_)) => {}
            other => panic!("expected HelloOk, got {other:?}"),
        }
    }
}

/// Log lines of every test in this binary (the logger is process-wide).
pub static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {}", record.level(), record.args());
        if std::env::var_os("LVS_PROTO_TEST_LOG").is_some() {
            eprintln!("{line}");
        }
        LOG.lock().unwrap().push(line);
    }
    fn flush(&self) {}
}

pub fn init_logging() {
    static LOGGER: Capture = Capture;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Debug);
    }
}

/// Whether any captured log line contains all of `needles`.
pub fn logged(needles: &[&str]) -> bool {
    LOG.lock()
        .unwrap()
        .iter()
        .any(|l| needles.iter().all(|n| l.contains(n)))
}
