//! The framing half of a daemon's socket: listen, accept with peer credentials, read frames,
//! buffer and write frames, disconnect a peer that does not read. What the frames mean is the
//! caller's business: [`crate::server::Server`] speaks the request/response protocol of
//! [`crate::message`] on it, and `lvs-lockmgr` its lock protocol, whose answers come late,
//! arrive unasked and may only be written once the daemon's log is durable.
//!
//! The caller drives it from its own `mio` loop: [`FrameServer::ready`] reads and returns what
//! arrived as [`Input`]s, the caller answers with [`FrameServer::queue`] (to any connection,
//! not only the one that spoke) and writes with [`FrameServer::flush`] when it chooses. It
//! never writes on its own, so a caller that must sync before answering can; and it logs
//! nothing, so each caller reports in its own terms.
//!
//! Tokens: the listener is `Token(token_base)`, connection `k` is `Token(token_base + 1 + k)`;
//! tokens below `token_base` stay free for the daemon's own sources.

use std::fmt;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use bincode::Encode;
use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, send};
use nix::unistd::Gid;
use slab::Slab;

use crate::codec;
use crate::error::{ProtoError, Result};
use crate::frame::{FrameDecoder, FrameLimit};
use crate::peer::Credentials;
use crate::rundir;

/// How to set up a [`FrameServer`].
#[derive(Debug, Clone)]
pub struct FrameServerConfig {
    /// Short daemon name, e.g. `lockmgr` (for messages about the socket).
    pub daemon: String,
    /// Where to listen.
    pub socket_path: PathBuf,
    /// The group that may use the socket besides root (`None`: root only).
    pub group: Option<Gid>,
    /// Largest frame accepted from a peer.
    pub read_limit: FrameLimit,
    /// First mio token used; the daemon keeps `0..token_base` for itself.
    pub token_base: usize,
    /// A peer with more unsent bytes than this is disconnected as not reading.
    pub write_buffer_limit: usize,
}

/// What [`FrameServer::ready`] found.
#[derive(Debug)]
pub enum Input {
    /// A new connection `conn` from `credentials`, admitted.
    Accepted {
        /// The connection.
        conn: usize,
        /// Its peer.
        credentials: Credentials,
    },
    /// A new connection could not be set up (its credentials unreadable, its registration
    /// failed): it is dropped.
    Dropped {
        /// Its peer, if known.
        credentials: Option<Credentials>,
        /// Why.
        error: ProtoError,
    },
    /// `accept(2)` failed (typically out of file descriptors); the next connection attempt
    /// triggers another try.
    AcceptFailed(ProtoError),
    /// One complete frame body from connection `conn`.
    Frame {
        /// The connection.
        conn: usize,
        /// The frame's body (without its length prefix).
        body: Vec<u8>,
    },
    /// Connection `conn` will send nothing more: [`ProtoError::Closed`] when it hung up between
    /// frames, otherwise why (a cut frame, a frame too large, a read error). It stays open until
    /// the caller closes it, so the caller can still tell it why.
    End {
        /// The connection.
        conn: usize,
        /// Why.
        error: ProtoError,
    },
}

/// How far [`FrameServer::flush`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// Everything queued is written.
    All,
    /// The socket is full; the rest goes when it is writable again.
    Partly,
    /// The last frame (see [`FrameServer::queue_last`]) is written: close the connection now.
    Last,
}

#[derive(Debug)]
struct Conn<S> {
    stream: UnixStream,
    credentials: Credentials,
    decoder: FrameDecoder,
    out: Vec<u8>,
    /// Nothing more is read: the peer ended, or it was sent its last frame.
    ended: bool,
    /// Its last frame is queued: nothing more is queued after it.
    last: bool,
    /// Registered for writability too (only while output waits).
    writable: bool,
    state: S,
}

/// A listening socket and its connections, each carrying the caller's state `S`.
pub struct FrameServer<S> {
    config: FrameServerConfig,
    listener: UnixListener,
    conns: Slab<Conn<S>>,
    registry: Option<Registry>,
    /// (device, inode) of the socket we bound, so `Drop` removes only our own file.
    socket_id: (u64, u64),
    scratch: Box<[u8]>,
}

impl<S> fmt::Debug for FrameServer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameServer")
            .field("daemon", &self.config.daemon)
            .field("socket", &self.config.socket_path)
            .field("connections", &self.conns.len())
            .finish()
    }
}

const READ_CHUNK: usize = 64 * 1024;

impl<S> FrameServer<S> {
    /// Binds the socket (replacing a stale one, refusing to steal a live one). The run
    /// directory must exist: see [`rundir::ensure`].
    pub fn bind(config: FrameServerConfig) -> Result<FrameServer<S>> {
        let std_listener = rundir::bind_socket(&config.socket_path, &config.daemon, config.group)?;
        let meta = std::fs::symlink_metadata(&config.socket_path).map_err(|e| {
            ProtoError::io(
                format!("cannot inspect {}", config.socket_path.display()),
                e,
            )
        })?;
        std_listener
            .set_nonblocking(true)
            .map_err(|e| ProtoError::io("cannot make the listener non-blocking", e))?;
        Ok(FrameServer {
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
        let token = Token(self.config.token_base);
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

    /// Whether `token` belongs to this server (and so goes to [`FrameServer::ready`]).
    pub fn owns(&self, token: Token) -> bool {
        token.0 >= self.config.token_base
    }

    /// The open connection that `token` stands for.
    pub fn conn_of(&self, token: Token) -> Option<usize> {
        let key = token.0.checked_sub(self.config.token_base + 1)?;
        self.conns.contains(key).then_some(key)
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Whether `conn` is open.
    pub fn contains(&self, conn: usize) -> bool {
        self.conns.contains(conn)
    }

    /// The peer of `conn` (`SO_PEERCRED` at accept).
    pub fn credentials(&self, conn: usize) -> Option<Credentials> {
        self.conns.get(conn).map(|c| c.credentials)
    }

    /// The caller's state of `conn`.
    pub fn state(&self, conn: usize) -> Option<&S> {
        self.conns.get(conn).map(|c| &c.state)
    }

    /// The caller's state of `conn`, to change.
    pub fn state_mut(&mut self, conn: usize) -> Option<&mut S> {
        self.conns.get_mut(conn).map(|c| &mut c.state)
    }

    /// Every open connection: (id, peer, state).
    pub fn iter(&self) -> impl Iterator<Item = (usize, Credentials, &S)> {
        self.conns.iter().map(|(k, c)| (k, c.credentials, &c.state))
    }

    /// Every open connection's state, to change.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut S)> {
        self.conns.iter_mut().map(|(k, c)| (k, &mut c.state))
    }

    /// Whether `conn` has output not yet written.
    pub fn has_output(&self, conn: usize) -> bool {
        self.conns.get(conn).is_some_and(|c| !c.out.is_empty())
    }

    /// Whether `conn` was queued its last frame (or is gone).
    pub fn is_ending(&self, conn: usize) -> bool {
        self.conns.get(conn).is_none_or(|c| c.last)
    }

    /// Handles one readiness event for a token this server [`owns`](FrameServer::owns): accepts
    /// new connections (`admit` gives each its state, or refuses it with a last frame to send),
    /// or reads what a connection sent. Writes nothing but refusals: see [`FrameServer::flush`].
    pub fn ready(
        &mut self,
        event: &mio::event::Event,
        admit: impl FnMut(&Credentials) -> std::result::Result<S, Vec<u8>>,
    ) -> Vec<Input> {
        let mut inputs = Vec::new();
        if event.token() == Token(self.config.token_base) {
            self.accept_all(admit, &mut inputs);
        } else if let Some(key) = self.conn_of(event.token()) {
            // A peer's FIN already reported with this event raises no new edge: read to the end.
            let drain = event.is_read_closed() || event.is_error();
            self.read(key, drain, &mut inputs);
        }
        inputs
    }

    fn accept_all(
        &mut self,
        mut admit: impl FnMut(&Credentials) -> std::result::Result<S, Vec<u8>>,
        inputs: &mut Vec<Input>,
    ) {
        loop {
            let mut stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    inputs.push(Input::AcceptFailed(ProtoError::io("accept failed", e)));
                    return;
                }
            };
            let credentials = match Credentials::of(&stream) {
                Ok(c) => c,
                Err(error) => {
                    inputs.push(Input::Dropped {
                        credentials: None,
                        error,
                    });
                    continue;
                }
            };
            let state = match admit(&credentials) {
                Ok(state) => state,
                Err(refusal) => {
                    // The socket is fresh and its buffer empty, so this one send does not block.
                    let _ = send(stream.as_raw_fd(), &refusal, MsgFlags::MSG_NOSIGNAL);
                    continue;
                }
            };
            let key = self.conns.vacant_key();
            let token = Token(self.config.token_base + 1 + key);
            // Readable only, so that epoll reports connections in the order their frames
            // arrived (a connection on its ready list for writability would jump the queue).
            if let Some(registry) = &self.registry
                && let Err(e) = registry.register(&mut stream, token, Interest::READABLE)
            {
                inputs.push(Input::Dropped {
                    credentials: Some(credentials),
                    error: ProtoError::io("cannot register the connection", e),
                });
                continue;
            }
            inputs.push(Input::Accepted {
                conn: key,
                credentials,
            });
            self.conns.insert(Conn {
                stream,
                credentials,
                decoder: FrameDecoder::new(self.config.read_limit),
                out: Vec::new(),
                ended: false,
                last: false,
                writable: false,
                state,
            });
        }
    }

    /// Reads until the socket is drained (edge-triggered: or the next readiness never comes).
    /// A read shorter than the buffer drained the stream's receive queue; bytes that arrive
    /// after it raise a new edge, so no further read is made only to hear `EAGAIN` (one
    /// system call less per request of a client that waits for its answer); unless `drain`.
    fn read(&mut self, key: usize, drain: bool, inputs: &mut Vec<Input>) {
        let FrameServer { conns, scratch, .. } = self;
        let conn = &mut conns[key];
        while !conn.ended {
            match conn.stream.read(scratch) {
                Ok(0) => {
                    conn.ended = true;
                    let error = match conn.decoder.finish() {
                        Ok(()) => ProtoError::Closed,
                        Err(e) => e,
                    };
                    inputs.push(Input::End { conn: key, error });
                }
                Ok(n) => {
                    for body in conn.decoder.feed(&scratch[..n]) {
                        match body {
                            Ok(body) => inputs.push(Input::Frame { conn: key, body }),
                            Err(error) => {
                                conn.ended = true;
                                inputs.push(Input::End { conn: key, error });
                            }
                        }
                    }
                    if n < scratch.len() && !drain {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    conn.ended = true;
                    let error = ProtoError::io("read failed", e);
                    inputs.push(Input::End { conn: key, error });
                }
            }
        }
    }

    /// Queues `msg` as one frame of at most `limit` for `conn` (written by the next
    /// [`FrameServer::flush`]). Nothing is queued after a last frame, or for a closed `conn`.
    pub fn queue<T: Encode>(&mut self, conn: usize, msg: &T, limit: FrameLimit) -> Result<()> {
        match self.conns.get_mut(conn) {
            Some(c) if !c.last => codec::encode_frame(msg, limit, &mut c.out),
            _ => Ok(()),
        }
    }

    /// Queues the last frame for `conn`: nothing is read from it or queued for it after this,
    /// and [`FrameServer::flush`] says [`Flushed::Last`] once it is written.
    pub fn queue_last<T: Encode>(&mut self, conn: usize, msg: &T, limit: FrameLimit) -> Result<()> {
        let result = self.queue(conn, msg, limit);
        if let Some(c) = self.conns.get_mut(conn) {
            c.last = true;
            c.ended = true;
        }
        result
    }

    /// Writes what the socket of `conn` takes now. An error (the peer is gone, or lets more
    /// than the write buffer limit pile up) means: close it.
    pub fn flush(&mut self, conn: usize) -> Result<Flushed> {
        let Some(c) = self.conns.get_mut(conn) else {
            return Ok(Flushed::All);
        };
        flush_raw(&c.stream, &mut c.out).map_err(|e| ProtoError::io("write failed", e))?;
        if c.out.len() > self.config.write_buffer_limit {
            return Err(ProtoError::SlowConsumer {
                pending: c.out.len(),
                limit: self.config.write_buffer_limit,
            });
        }
        let want_write = !c.out.is_empty();
        if want_write != c.writable
            && let Some(registry) = &self.registry
        {
            let interest = if want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let token = Token(self.config.token_base + 1 + conn);
            registry
                .reregister(&mut c.stream, token, interest)
                .map_err(|e| ProtoError::io("cannot watch the connection", e))?;
            c.writable = want_write;
        }
        Ok(match (c.out.is_empty(), c.last) {
            (true, true) => Flushed::Last,
            (true, false) => Flushed::All,
            (false, _) => Flushed::Partly,
        })
    }

    /// Closes `conn` at once (unwritten output is lost) and hands back its peer and state.
    pub fn close(&mut self, conn: usize) -> Option<(Credentials, S)> {
        let mut c = self.conns.try_remove(conn)?;
        if let Some(registry) = &self.registry {
            let _ = registry.deregister(&mut c.stream);
        }
        Some((c.credentials, c.state))
    }
}

impl<S> Drop for FrameServer<S> {
    fn drop(&mut self) {
        // Remove the socket file only if it is still ours: a successor may have replaced it.
        let path = &self.config.socket_path;
        if let Ok(meta) = std::fs::symlink_metadata(path)
            && (meta.dev(), meta.ino()) == self.socket_id
        {
            let _ = std::fs::remove_file(path);
        }
    }
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
