//! The daemon side: a `mio`-driven listener and its connections.
//!
//! The daemon owns the `mio::Poll`; the [`Server`] registers its listener at
//! `Token(token_base)` and connection `k` of its slab at `Token(token_base + 1 + k)`, so tokens
//! below `token_base` stay free for the daemon's own sources. The daemon's loop hands every
//! event whose token [`Server::owns`] to [`Server::ready`], and calls [`Server::broadcast`]
//! when something happens. For a daemon (or test) with nothing else to watch,
//! [`Server::run_blocking`] and [`Server::spawn`] provide the loop.
//!
//! Every connection is closed alone: bad input from one peer costs that peer its connection
//! (with an Error frame when it can still be told why, and one log line), never the server.
//!
//! Log lines are events (`control_*`, see `docs/LOGGING.md`): `daemon` names the daemon whose
//! socket it is, and a client is given by its `role` (`none` before its Hello) and the kernel's
//! `pid uid gid`.

use std::collections::HashSet;
use std::fmt;
use std::fmt::Display;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use log::Level;
use mio::net::{UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, send};
use slab::Slab;

use crate::codec;
use crate::error::{ProtoError, Result};
use crate::frame::{FrameDecoder, FrameLimit};
use crate::message::{
    ClientFrame, ErrorCode, Event, Hello, HelloOk, PROTOCOL_VERSION, Request, Response, Role,
    ServerFrame, Topic,
};
use crate::peer::{AccessPolicy, Credentials, PeerInfo};
use crate::rundir;

/// What each daemon supplies: the answer to every request the server does not handle itself.
///
/// The server answers `Subscribe` and `Unsubscribe` (they change connection state it owns);
/// everything else, `Ping` included, comes here.
pub trait Handler {
    /// Answers one request. Runs on the event loop: do not block.
    fn handle(&mut self, peer: &PeerInfo, request: Request) -> Response;
}

/// A handler that answers `Ping` and refuses everything else; for tests and as a starting
/// point.
#[derive(Debug, Default, Clone, Copy)]
pub struct PingHandler;

impl Handler for PingHandler {
    fn handle(&mut self, _peer: &PeerInfo, request: Request) -> Response {
        match request {
            Request::Ping => Response::Pong,
            other => Response::Error {
                code: ErrorCode::Unsupported,
                message: format!("this daemon does not handle {other:?}"),
            },
        }
    }
}

/// How to set up a [`Server`].
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Short daemon name, e.g. `director` (names the socket and appears in messages).
    pub daemon: String,
    /// Where to listen.
    pub socket_path: PathBuf,
    /// Who may connect.
    pub access: AccessPolicy,
    /// Largest frame accepted from a client and sent to it.
    pub frame_limit: FrameLimit,
    /// First mio token the server uses; the daemon keeps `0..token_base` for itself.
    pub token_base: usize,
    /// A peer with more unsent bytes than this is disconnected as not reading.
    pub write_buffer_limit: usize,
}

impl ServerConfig {
    /// Defaults for `daemon` in run directory `rundir`: socket `<rundir>/<daemon>.sock`, root
    /// only, 1 MiB frames, tokens from 1024, 4 MiB of unsent output per peer.
    pub fn new(daemon: &str, rundir: &Path) -> ServerConfig {
        ServerConfig {
            daemon: daemon.to_owned(),
            socket_path: rundir::socket_path(rundir, daemon),
            access: AccessPolicy::root_only(),
            frame_limit: FrameLimit::DEFAULT,
            token_base: 1024,
            write_buffer_limit: 4 << 20,
        }
    }
}

/// Where a connection is in the conversation.
#[derive(Debug)]
enum State {
    AwaitHello,
    Ready(PeerInfo),
}

#[derive(Debug)]
struct Conn {
    stream: UnixStream,
    credentials: Credentials,
    state: State,
    decoder: FrameDecoder,
    out: Vec<u8>,
    subscriptions: HashSet<Topic>,
}

impl Conn {
    /// The role it said in its Hello.
    fn role(&self) -> Option<Role> {
        match &self.state {
            State::AwaitHello => None,
            State::Ready(peer) => Some(peer.role),
        }
    }
}

/// Logs event `name` about one client of `daemon`'s socket, with `reason` when there is one.
fn log_client(
    level: Level,
    name: &str,
    daemon: &str,
    role: Option<Role>,
    credentials: &Credentials,
    reason: Option<&dyn Display>,
) {
    if !log::log_enabled!(level) {
        return;
    }
    let mut event = crate::event::Event::new(name);
    event.push("daemon", daemon);
    match role {
        Some(role) => event.push("role", format_args!("{role:?}")),
        None => event.push("role", "none"),
    };
    event
        .push("pid", credentials.pid)
        .push("uid", credentials.uid)
        .push("gid", credentials.gid);
    if let Some(reason) = reason {
        event.push("reason", reason);
    }
    event.log(level);
}

/// Why a connection ends.
enum Close {
    /// The peer hung up between frames.
    PeerClosed,
    /// Something went wrong; the peer is told when that still makes sense.
    Error(ProtoError),
}

impl From<ProtoError> for Close {
    fn from(e: ProtoError) -> Self {
        match e {
            ProtoError::Closed => Close::PeerClosed,
            e => Close::Error(e),
        }
    }
}

/// The parts of the server that frame handling reads while a connection is borrowed.
#[derive(Debug)]
struct Settings {
    display: String,
    limit: FrameLimit,
    write_limit: usize,
}

/// A listening socket and its connections, driven by the daemon's `mio` loop.
pub struct Server {
    config: ServerConfig,
    settings: Settings,
    listener: UnixListener,
    conns: Slab<Conn>,
    registry: Option<Registry>,
    /// (device, inode) of the socket we bound, so `Drop` removes only our own file.
    socket_id: (u64, u64),
    scratch: Box<[u8]>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("daemon", &self.settings.display)
            .field("socket", &self.config.socket_path)
            .field("connections", &self.conns.len())
            .finish()
    }
}

const READ_CHUNK: usize = 64 * 1024;

impl Server {
    /// Binds the socket (replacing a stale one, refusing to steal a live one). The run
    /// directory must exist: see [`rundir::ensure`].
    pub fn bind(config: ServerConfig) -> Result<Server> {
        let std_listener =
            rundir::bind_socket(&config.socket_path, &config.daemon, config.access.group())?;
        let meta = std::fs::symlink_metadata(&config.socket_path).map_err(|e| {
            ProtoError::io(
                format!("cannot inspect {}", config.socket_path.display()),
                e,
            )
        })?;
        std_listener
            .set_nonblocking(true)
            .map_err(|e| ProtoError::io("cannot make the listener non-blocking", e))?;
        let display = rundir::display_name(&config.daemon);
        crate::event!(
            Level::Info,
            "control_listening",
            daemon = display,
            socket = config.socket_path.display(),
            protocol = PROTOCOL_VERSION
        );
        Ok(Server {
            settings: Settings {
                display,
                limit: config.frame_limit,
                write_limit: config.write_buffer_limit,
            },
            listener: UnixListener::from_std(std_listener),
            conns: Slab::new(),
            registry: None,
            socket_id: (meta.dev(), meta.ino()),
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
            config,
        })
    }

    /// Registers the listener with the daemon's poll. Connections accepted later are
    /// registered with the same registry.
    pub fn register(&mut self, registry: &Registry) -> Result<()> {
        let token = self.listener_token();
        registry
            .register(&mut self.listener, token, Interest::READABLE)
            .map_err(|e| ProtoError::io("cannot register the listener", e))?;
        self.registry = Some(
            registry
                .try_clone()
                .map_err(|e| ProtoError::io("cannot clone the mio registry", e))?,
        );
        Ok(())
    }

    /// The socket this server listens on.
    pub fn socket_path(&self) -> &Path {
        &self.config.socket_path
    }

    /// Whether `token` belongs to this server (and so goes to [`Server::ready`]).
    pub fn owns(&self, token: Token) -> bool {
        token.0 >= self.config.token_base
    }

    /// Open connections (including those still before their Hello).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Connections subscribed to `topic`.
    pub fn subscriber_count(&self, topic: Topic) -> usize {
        self.conns
            .iter()
            .filter(|(_, c)| c.subscriptions.contains(&topic))
            .count()
    }

    fn listener_token(&self) -> Token {
        Token(self.config.token_base)
    }

    fn conn_token(&self, key: usize) -> Token {
        Token(self.config.token_base + 1 + key)
    }

    /// Handles one readiness event for a token this server [`owns`](Server::owns).
    pub fn ready<H: Handler>(&mut self, event: &mio::event::Event, handler: &mut H) {
        let token = event.token();
        if token == self.listener_token() {
            self.accept_all();
            return;
        }
        let Some(key) = token.0.checked_sub(self.config.token_base + 1) else {
            return;
        };
        if !self.conns.contains(key) {
            // Closed earlier in this same batch of events.
            return;
        }
        if let Err(close) = self.service(key, handler) {
            self.close(key, close);
        }
    }

    /// Sends `event` to every connection subscribed to its topic; returns how many.
    pub fn broadcast(&mut self, event: &Event) -> usize {
        let frame = match codec::to_frame(&ServerFrame::Event(event.clone()), self.settings.limit) {
            Ok(frame) => frame,
            Err(e) => {
                crate::event!(
                    Level::Error,
                    "control_broadcast_failed",
                    daemon = self.settings.display,
                    topic = ?event.topic(),
                    error = e
                );
                return 0;
            }
        };
        let topic = event.topic();
        let mut failed = Vec::new();
        let mut sent = 0;
        for (key, conn) in &mut self.conns {
            if !conn.subscriptions.contains(&topic) {
                continue;
            }
            conn.out.extend_from_slice(&frame);
            match flush(conn, &self.settings) {
                Ok(()) => sent += 1,
                Err(e) => failed.push((key, e)),
            }
        }
        for (key, e) in failed {
            self.close(key, Close::Error(e));
        }
        sent
    }

    /// Serves forever on a poll of its own; for daemons with nothing else to watch. Returns
    /// only if polling fails.
    pub fn run_blocking<H: Handler>(self, handler: &mut H) -> Result<()> {
        let poll = Poll::new().map_err(|e| ProtoError::io("cannot create a mio poll", e))?;
        self.serve(poll, handler, None)
    }

    /// Serves on a thread of its own; the returned handle broadcasts and stops. The waker uses
    /// `Token(0)`, so `token_base` must be at least 1.
    pub fn spawn<H: Handler + Send + 'static>(self, mut handler: H) -> Result<ServerThread<H>> {
        if self.config.token_base == 0 {
            return Err(ProtoError::io(
                "cannot spawn the server",
                io::Error::new(io::ErrorKind::InvalidInput, "token_base must be at least 1"),
            ));
        }
        let poll = Poll::new().map_err(|e| ProtoError::io("cannot create a mio poll", e))?;
        let waker = Arc::new(
            Waker::new(poll.registry(), WAKER)
                .map_err(|e| ProtoError::io("cannot create a mio waker", e))?,
        );
        let (tx, rx) = mpsc::channel();
        let socket_path = self.config.socket_path.clone();
        let name = format!("{}-server", self.settings.display);
        let daemon = self.settings.display.clone();
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                if let Err(e) = self.serve(poll, &mut handler, Some(&rx)) {
                    crate::event!(
                        Level::Error,
                        "control_loop_failed",
                        daemon = daemon,
                        error = e
                    );
                }
                handler
            })
            .map_err(|e| ProtoError::io("cannot start the server thread", e))?;
        Ok(ServerThread {
            tx,
            waker,
            thread: Some(thread),
            socket_path,
        })
    }

    fn serve<H: Handler>(
        mut self,
        mut poll: Poll,
        handler: &mut H,
        control: Option<&Receiver<Command>>,
    ) -> Result<()> {
        self.register(poll.registry())?;
        let mut events = Events::with_capacity(256);
        loop {
            if let Err(e) = poll.poll(&mut events, None) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(ProtoError::io("poll failed", e));
            }
            for event in &events {
                if event.token() == WAKER {
                    let Some(rx) = control else { continue };
                    while let Ok(cmd) = rx.try_recv() {
                        match cmd {
                            Command::Broadcast(ev) => {
                                self.broadcast(&ev);
                            }
                            Command::Stop => return Ok(()),
                        }
                    }
                } else if self.owns(event.token()) {
                    self.ready(event, handler);
                }
            }
        }
    }

    fn accept_all(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => self.admit(stream),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Typically EMFILE; the next connection attempt triggers another try.
                    crate::event!(
                        Level::Error,
                        "control_accept_failed",
                        daemon = self.settings.display,
                        error = e
                    );
                    return;
                }
            }
        }
    }

    fn admit(&mut self, mut stream: UnixStream) {
        let display = &self.settings.display;
        let credentials = match Credentials::of(&stream) {
            Ok(c) => c,
            Err(e) => {
                crate::event!(
                    Level::Warn,
                    "control_client_unidentified",
                    daemon = display,
                    error = e
                );
                return;
            }
        };
        if let Err(e) = self.config.access.check(&credentials) {
            log_client(
                Level::Warn,
                "control_client_refused",
                display,
                None,
                &credentials,
                Some(&e),
            );
            // The socket is fresh and its buffer empty, so this one send does not block.
            let mut out = Vec::new();
            if queue_error(&mut out, &e, self.settings.limit) {
                let _ = send(stream.as_raw_fd(), &out, MsgFlags::MSG_NOSIGNAL);
            }
            return;
        }
        let key = self.conns.vacant_key();
        let token = self.conn_token(key);
        if let Some(registry) = &self.registry
            && let Err(e) =
                registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
        {
            let reason = format!("cannot register the connection: {e}");
            log_client(
                Level::Error,
                "control_client_dropped",
                display,
                None,
                &credentials,
                Some(&reason),
            );
            return;
        }
        log_client(
            Level::Debug,
            "control_client_accepted",
            display,
            None,
            &credentials,
            None,
        );
        self.conns.insert(Conn {
            stream,
            credentials,
            state: State::AwaitHello,
            decoder: FrameDecoder::new(self.settings.limit),
            out: Vec::new(),
            subscriptions: HashSet::new(),
        });
    }

    /// Reads everything available, answers it, and writes what fits.
    fn service<H: Handler>(&mut self, key: usize, handler: &mut H) -> Result<(), Close> {
        let Server {
            conns,
            settings,
            scratch,
            ..
        } = self;
        let conn = &mut conns[key];
        // Edge-triggered: read until WouldBlock, or the next readiness never comes.
        loop {
            match conn.stream.read(scratch) {
                Ok(0) => {
                    // Answers to what did arrive still go out before we hang up.
                    let _ = flush(conn, settings);
                    conn.decoder.finish()?;
                    return Err(Close::PeerClosed);
                }
                Ok(n) => {
                    let mut input = &scratch[..n];
                    while let Some(body) = conn.decoder.decode(&mut input)? {
                        on_frame(conn, settings, &body, handler)?;
                    }
                    if conn.out.len() > settings.write_limit {
                        // Do not read more from a peer that is not reading our answers.
                        flush(conn, settings)?;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Close::Error(ProtoError::io("read failed", e))),
            }
        }
        flush(conn, settings)?;
        Ok(())
    }

    fn close(&mut self, key: usize, close: Close) {
        let mut conn = self.conns.remove(key);
        if let Some(registry) = &self.registry {
            let _ = registry.deregister(&mut conn.stream);
        }
        let display = &self.settings.display;
        let (role, credentials) = (conn.role(), conn.credentials);
        match close {
            Close::PeerClosed => log_client(
                Level::Debug,
                "control_client_closed",
                display,
                role,
                &credentials,
                None,
            ),
            Close::Error(e) => {
                log_client(
                    Level::Warn,
                    "control_client_dropped",
                    display,
                    role,
                    &credentials,
                    Some(&e),
                );
                if tell_peer(&e) && queue_error(&mut conn.out, &e, self.settings.limit) {
                    // Best effort: whatever fits in the socket buffer now.
                    let _ = flush_raw(&conn.stream, &mut conn.out);
                }
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for (_, conn) in &self.conns {
            log_client(
                Level::Info,
                "control_client_dropped",
                &self.settings.display,
                conn.role(),
                &conn.credentials,
                Some(&"the daemon is shutting down"),
            );
        }
        // Remove the socket file only if it is still ours: a successor may have replaced it.
        let path = &self.config.socket_path;
        if let Ok(meta) = std::fs::symlink_metadata(path)
            && (meta.dev(), meta.ino()) == self.socket_id
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Handles one complete frame from `conn`.
fn on_frame<H: Handler>(
    conn: &mut Conn,
    settings: &Settings,
    body: &[u8],
    handler: &mut H,
) -> Result<()> {
    let peer = match &conn.state {
        State::AwaitHello => {
            let hello = decode_hello(body, settings.limit)?;
            let peer = PeerInfo {
                credentials: conn.credentials,
                role: hello.role,
            };
            log_client(
                Level::Debug,
                "control_client_hello",
                &settings.display,
                Some(peer.role),
                &peer.credentials,
                None,
            );
            conn.state = State::Ready(peer);
            let ok = ServerFrame::HelloOk(HelloOk {
                version: PROTOCOL_VERSION,
                daemon: settings.display.clone(),
            });
            return codec::encode_frame(&ok, settings.limit, &mut conn.out);
        }
        State::Ready(peer) => peer,
    };
    let (id, request) = match codec::decode_body::<ClientFrame>(body, settings.limit)? {
        ClientFrame::Request { id, request } => (id, request),
        ClientFrame::Hello(_) => {
            return Err(ProtoError::UnexpectedFrame("a second Hello".to_owned()));
        }
    };
    let response = match request {
        Request::Subscribe { topics } => {
            conn.subscriptions.extend(topics);
            Response::Ok
        }
        Request::Unsubscribe { topics } if topics.is_empty() => {
            conn.subscriptions.clear();
            Response::Ok
        }
        Request::Unsubscribe { topics } => {
            for t in &topics {
                conn.subscriptions.remove(t);
            }
            Response::Ok
        }
        other => handler.handle(peer, other),
    };
    let frame = ServerFrame::Response { id, response };
    if let Err(e) = codec::encode_frame(&frame, settings.limit, &mut conn.out) {
        // A handler produced an answer too big for one frame: say so instead of hanging up.
        let reason = format!("cannot send its response: {e}");
        log_client(
            Level::Error,
            "control_response_failed",
            &settings.display,
            Some(peer.role),
            &peer.credentials,
            Some(&reason),
        );
        let fallback = ServerFrame::Response {
            id,
            response: Response::Error {
                code: ErrorCode::Internal,
                message: format!("the daemon could not send its answer: {e}"),
            },
        };
        codec::encode_frame(&fallback, settings.limit, &mut conn.out)?;
    }
    Ok(())
}

/// The first frame must be a Hello of our version; anything else gets a precise complaint.
fn decode_hello(body: &[u8], limit: FrameLimit) -> Result<Hello> {
    match codec::peek_hello_version(body) {
        Some(PROTOCOL_VERSION) => match codec::decode_body::<ClientFrame>(body, limit)? {
            ClientFrame::Hello(hello) => Ok(hello),
            other => Err(ProtoError::HelloRequired {
                got: other.kind().to_owned(),
            }),
        },
        Some(theirs) => Err(ProtoError::VersionMismatch {
            theirs,
            ours: PROTOCOL_VERSION,
        }),
        None => match codec::decode_body::<ClientFrame>(body, limit) {
            Ok(other) => Err(ProtoError::HelloRequired {
                got: other.kind().to_owned(),
            }),
            Err(e) => Err(e),
        },
    }
}

/// Whether closing for `e` deserves an Error frame: not when the peer is gone or the socket
/// is clogged.
fn tell_peer(e: &ProtoError) -> bool {
    !matches!(
        e,
        ProtoError::Io { .. }
            | ProtoError::Truncated { .. }
            | ProtoError::Closed
            | ProtoError::SlowConsumer { .. }
    )
}

fn queue_error(out: &mut Vec<u8>, e: &ProtoError, limit: FrameLimit) -> bool {
    let frame = ServerFrame::Error {
        code: e.code(),
        message: e.to_string(),
    };
    codec::encode_frame(&frame, limit, out).is_ok()
}

/// Writes what the socket takes; a peer that lets too much pile up is disconnected.
fn flush(conn: &mut Conn, settings: &Settings) -> Result<()> {
    flush_raw(&conn.stream, &mut conn.out).map_err(|e| ProtoError::io("write failed", e))?;
    if conn.out.len() > settings.write_limit {
        return Err(ProtoError::SlowConsumer {
            pending: conn.out.len(),
            limit: settings.write_limit,
        });
    }
    Ok(())
}

/// Sends from the front of `out` until it is empty or the socket is full.
fn flush_raw(stream: &UnixStream, out: &mut Vec<u8>) -> io::Result<()> {
    let mut sent = 0;
    let result = loop {
        if sent == out.len() {
            break Ok(());
        }
        // MSG_NOSIGNAL: a vanished peer must be an error here, not a SIGPIPE for the daemon.
        match send(stream.as_raw_fd(), &out[sent..], MsgFlags::MSG_NOSIGNAL) {
            Ok(n) => sent += n,
            Err(Errno::EAGAIN) => break Ok(()),
            Err(Errno::EINTR) => {}
            Err(e) => break Err(io::Error::from(e)),
        }
    };
    out.drain(..sent);
    result
}

const WAKER: Token = Token(0);

enum Command {
    Broadcast(Event),
    Stop,
}

/// A [`Server`] running on its own thread (see [`Server::spawn`]). Dropping it stops the
/// server.
pub struct ServerThread<H> {
    tx: Sender<Command>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<H>>,
    socket_path: PathBuf,
}

impl<H> fmt::Debug for ServerThread<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerThread")
            .field("socket", &self.socket_path)
            .finish()
    }
}

impl<H> ServerThread<H> {
    /// The socket the server listens on.
    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    /// Asks the server thread to broadcast `event` to its subscribers.
    pub fn broadcast(&self, event: Event) {
        self.command(Command::Broadcast(event));
    }

    /// Stops the server (closing its socket and connections) and returns the handler.
    pub fn stop(mut self) -> H {
        self.command(Command::Stop);
        let thread = self.thread.take().expect("joined only once");
        match thread.join() {
            Ok(handler) => handler,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    fn command(&self, cmd: Command) {
        if self.tx.send(cmd).is_ok()
            && let Err(e) = self.waker.wake()
        {
            crate::event!(Level::Error, "control_wake_failed", error = e);
        }
    }
}

impl<H> Drop for ServerThread<H> {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.command(Command::Stop);
            let _ = thread.join();
        }
    }
}
