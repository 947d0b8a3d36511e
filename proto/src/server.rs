//! The daemon side: a `mio`-driven listener and its connections.
//!
//! The daemon owns the `mio::Poll`; the [`Server`] registers its listener at
//! `Token(token_base)` and connection `k` of its slab at `Token(token_base + 1 + k)`, so tokens
//! below `token_base` stay free for the daemon's own sources. The daemon's loop hands every
//! event whose token [`Server::owns`] to [`Server::ready`], and calls [`Server::broadcast`]
//! when something happens. For a daemon (or test) with nothing else to watch,
//! [`Server::run_blocking`] and [`Server::spawn`] provide the loop.
//!
//! The socket, its connections and their framing are a [`FrameServer`]'s; this module is the
//! request/response protocol on it.
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
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use log::Level;
use mio::{Events, Poll, Registry, Token, Waker};

use crate::codec;
use crate::error::{ProtoError, Result};
use crate::frame::FrameLimit;
use crate::frame_server::{FrameServer, FrameServerConfig, Input};
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

/// What this protocol keeps per connection of the [`FrameServer`].
#[derive(Debug)]
struct Conn {
    state: State,
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

/// A listening socket and its connections, driven by the daemon's `mio` loop: the request,
/// response and event protocol of [`crate::message`] on a [`FrameServer`].
pub struct Server {
    frames: FrameServer<Conn>,
    display: String,
    limit: FrameLimit,
    access: AccessPolicy,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("daemon", &self.display)
            .field("socket", &self.frames.socket_path())
            .field("connections", &self.frames.len())
            .finish()
    }
}

impl Server {
    /// Binds the socket (replacing a stale one, refusing to steal a live one). The run
    /// directory must exist: see [`rundir::ensure`].
    pub fn bind(config: ServerConfig) -> Result<Server> {
        let display = rundir::display_name(&config.daemon);
        let frames = FrameServer::bind(FrameServerConfig {
            daemon: config.daemon.clone(),
            socket_path: config.socket_path.clone(),
            group: config.access.group(),
            read_limit: config.frame_limit,
            token_base: config.token_base,
            write_buffer_limit: config.write_buffer_limit,
        })?;
        crate::event!(
            Level::Info,
            "control_listening",
            daemon = display,
            socket = config.socket_path.display(),
            protocol = PROTOCOL_VERSION
        );
        Ok(Server {
            frames,
            display,
            limit: config.frame_limit,
            access: config.access,
        })
    }

    /// Registers the listener with the daemon's poll. Connections accepted later are
    /// registered with the same registry.
    pub fn register(&mut self, registry: &Registry) -> Result<()> {
        self.frames.register(registry)
    }

    /// The socket this server listens on.
    pub fn socket_path(&self) -> &Path {
        self.frames.socket_path()
    }

    /// Whether `token` belongs to this server (and so goes to [`Server::ready`]).
    pub fn owns(&self, token: Token) -> bool {
        self.frames.owns(token)
    }

    /// Open connections (including those still before their Hello).
    pub fn connection_count(&self) -> usize {
        self.frames.len()
    }

    /// Connections subscribed to `topic`.
    pub fn subscriber_count(&self, topic: Topic) -> usize {
        self.frames
            .iter()
            .filter(|(_, _, c)| c.subscriptions.contains(&topic))
            .count()
    }

    /// Handles one readiness event for a token this server [`owns`](Server::owns).
    pub fn ready<H: Handler>(&mut self, event: &mio::event::Event, handler: &mut H) {
        let (display, access, limit) = (&self.display, &self.access, self.limit);
        let inputs = self.frames.ready(event, |credentials| {
            if let Err(e) = access.check(credentials) {
                log_client(
                    Level::Warn,
                    "control_client_refused",
                    display,
                    None,
                    credentials,
                    Some(&e),
                );
                let mut refusal = Vec::new();
                queue_error(&mut refusal, &e, limit);
                return Err(refusal);
            }
            Ok(Conn {
                state: State::AwaitHello,
                subscriptions: HashSet::new(),
            })
        });
        for input in inputs {
            match input {
                Input::Accepted { credentials, .. } => log_client(
                    Level::Debug,
                    "control_client_accepted",
                    &self.display,
                    None,
                    &credentials,
                    None,
                ),
                Input::Dropped {
                    credentials: None,
                    error,
                } => crate::event!(
                    Level::Warn,
                    "control_client_unidentified",
                    daemon = self.display,
                    error = error
                ),
                Input::Dropped {
                    credentials: Some(credentials),
                    error,
                } => log_client(
                    Level::Error,
                    "control_client_dropped",
                    &self.display,
                    None,
                    &credentials,
                    Some(&error),
                ),
                // Typically EMFILE; the next connection attempt triggers another try.
                Input::AcceptFailed(error) => crate::event!(
                    Level::Error,
                    "control_accept_failed",
                    daemon = self.display,
                    error = error
                ),
                Input::Frame { conn, body } => {
                    if !self.frames.contains(conn) {
                        continue;
                    }
                    if let Err(e) = self.on_frame(conn, &body, handler) {
                        self.close(conn, Close::Error(e));
                    }
                }
                Input::End { conn, error } => {
                    if !self.frames.contains(conn) {
                        continue;
                    }
                    if matches!(error, ProtoError::Closed) {
                        // Answers to what did arrive still go out before we hang up.
                        let _ = self.frames.flush(conn);
                    }
                    self.close(conn, error.into());
                }
            }
        }
        if let Some(conn) = self.frames.conn_of(event.token())
            && let Err(e) = self.frames.flush(conn)
        {
            self.close(conn, Close::Error(e));
        }
    }

    /// Sends `event` to every connection subscribed to its topic; returns how many.
    pub fn broadcast(&mut self, event: &Event) -> usize {
        let frame = ServerFrame::Event(event.clone());
        let topic = event.topic();
        let subscribers: Vec<usize> = self
            .frames
            .iter()
            .filter(|(_, _, c)| c.subscriptions.contains(&topic))
            .map(|(k, _, _)| k)
            .collect();
        let mut sent = 0;
        for conn in subscribers {
            if let Err(e) = self.frames.queue(conn, &frame, self.limit) {
                crate::event!(
                    Level::Error,
                    "control_broadcast_failed",
                    daemon = self.display,
                    topic = ?topic,
                    error = e
                );
                return sent;
            }
            match self.frames.flush(conn) {
                Ok(_) => sent += 1,
                Err(e) => self.close(conn, Close::Error(e)),
            }
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
        if self.frames.owns(WAKER) {
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
        let socket_path = self.socket_path().to_path_buf();
        let name = format!("{}-server", self.display);
        let daemon = self.display.clone();
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

    fn close(&mut self, conn: usize, close: Close) {
        let display = &self.display;
        if let Close::Error(e) = &close
            && tell_peer(e)
        {
            let frame = ServerFrame::Error {
                code: e.code(),
                message: e.to_string(),
            };
            // Best effort: whatever fits in the socket buffer now.
            if self.frames.queue_last(conn, &frame, self.limit).is_ok() {
                let _ = self.frames.flush(conn);
            }
        }
        let Some((credentials, state)) = self.frames.close(conn) else {
            return;
        };
        let role = state.role();
        match close {
            Close::PeerClosed => log_client(
                Level::Debug,
                "control_client_closed",
                display,
                role,
                &credentials,
                None,
            ),
            Close::Error(e) => log_client(
                Level::Warn,
                "control_client_dropped",
                display,
                role,
                &credentials,
                Some(&e),
            ),
        }
    }

    /// Handles one complete frame from `conn`.
    fn on_frame<H: Handler>(&mut self, conn: usize, body: &[u8], handler: &mut H) -> Result<()> {
        let (display, limit) = (&self.display, self.limit);
        let credentials = self.frames.credentials(conn).expect("an open connection");
        let Some(state) = self.frames.state_mut(conn) else {
            return Ok(());
        };
        let peer = match &state.state {
            State::AwaitHello => {
                let hello = decode_hello(body, limit)?;
                let peer = PeerInfo {
                    credentials,
                    role: hello.role,
                };
                log_client(
                    Level::Debug,
                    "control_client_hello",
                    display,
                    Some(peer.role),
                    &peer.credentials,
                    None,
                );
                state.state = State::Ready(peer);
                let ok = ServerFrame::HelloOk(HelloOk {
                    version: PROTOCOL_VERSION,
                    daemon: display.clone(),
                });
                return self.frames.queue(conn, &ok, limit);
            }
            State::Ready(peer) => peer.clone(),
        };
        let (id, request) = match codec::decode_body::<ClientFrame>(body, limit)? {
            ClientFrame::Request { id, request } => (id, request),
            ClientFrame::Hello(_) => {
                return Err(ProtoError::UnexpectedFrame("a second Hello".to_owned()));
            }
        };
        let response = match request {
            Request::Subscribe { topics } => {
                state.subscriptions.extend(topics);
                Response::Ok
            }
            Request::Unsubscribe { topics } if topics.is_empty() => {
                state.subscriptions.clear();
                Response::Ok
            }
            Request::Unsubscribe { topics } => {
                for t in &topics {
                    state.subscriptions.remove(t);
                }
                Response::Ok
            }
            other => handler.handle(&peer, other),
        };
        let frame = ServerFrame::Response { id, response };
        if let Err(e) = self.frames.queue(conn, &frame, limit) {
            // A handler produced an answer too big for one frame: say so instead of hanging up.
            let reason = format!("cannot send its response: {e}");
            log_client(
                Level::Error,
                "control_response_failed",
                display,
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
            self.frames.queue(conn, &fallback, limit)?;
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for (_, credentials, conn) in self.frames.iter() {
            log_client(
                Level::Info,
                "control_client_dropped",
                &self.display,
                conn.role(),
                &credentials,
                Some(&"the daemon is shutting down"),
            );
        }
    }
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
