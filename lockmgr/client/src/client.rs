//! The blocking Rust client: one [`LockClient`] is one connection, i.e. one session.
//!
//! ```no_run
//! use std::time::Duration;
//! use lvs_lockclient::{LockClient, LockFlags, LockMode};
//!
//! let mut client = LockClient::connect("/run/lvs".as_ref())?;
//! let g = client.lock("default", "orders.db", LockMode::EX, LockFlags::NONE,
//!                     Some(Duration::from_secs(10)))?;
//! // ... write to the shared storage, passing g.token along so it can fence stale holders ...
//! client.unlock(g.handle, None)?;
//! # Ok::<(), lvs_lockclient::LockError>(())
//! ```
//!
//! When the client (or its process) goes away, the daemon releases every lock it held.
//! Blocking notifications (another request waits for a lock this client holds) are read with
//! [`LockClient::poll_event`]; events that arrive while a call waits for its answer are kept
//! for it.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use lvs_lockcore::{Denial, LVB_LEN, LockFlags, LockMode, NodeId, SessionId, ValueBlock};
use lvs_proto::frame::FrameDecoder;
use lvs_proto::{ProtoError, codec, rundir};

use crate::protocol::{
    ClientInfo, ClientMsg, DAEMON, LOCK_PROTOCOL_VERSION, LockEvent, LockReq, Reply, ServerMsg,
    StatusInfo, reply_limit, request_limit,
};

pub use lvs_lockcore::{ResourceInfo, SessionInfo};

/// A lock of this client (unique within its session while the lock exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LockHandle(pub u64);

/// A grant: the completion of a lock or conversion request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    /// The lock.
    pub handle: LockHandle,
    /// The granted mode.
    pub mode: LockMode,
    /// The fencing token: larger than any token of any earlier grant, across restarts. Pass it
    /// with every write to the protected storage.
    pub token: u64,
    /// With [`LockFlags::VALBLK`]: the resource's value block.
    pub lvb: Option<ValueBlock>,
}

/// What `list` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Resources with their queues.
    pub resources: Vec<ResourceInfo>,
    /// Every session.
    pub sessions: Vec<SessionInfo>,
    /// The clients connected to this node (pid, name).
    pub clients: Vec<ClientInfo>,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// NOQUEUE and the lock is held in an incompatible mode (or others wait for it).
    #[error("would block: the lock is held in a conflicting mode")]
    WouldBlock,
    /// The request closed a cycle in the wait-for graph and was chosen to break it.
    #[error("deadlock: this request was chosen to break a wait-for cycle")]
    Deadlock,
    /// The request's timeout ran out before it was granted.
    #[error("timed out waiting for the lock")]
    Timeout,
    /// The request was cancelled (or its lock unlocked) before it was granted.
    #[error("the request was cancelled")]
    Cancelled,
    /// The lock, session or lockspace does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The daemon refused the request (bad name, wrong flags, ...); nothing changed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// This client has no such lock.
    #[error("no lock with handle {0}")]
    UnknownHandle(u64),
    /// Raft mode, a no-wait lock: the node cannot commit (no quorum: the leader is unknown or
    /// unreachable, e.g. on the minority side of a partition); the lock is not granted.
    #[error("no quorum: the lock cluster cannot commit ({0})")]
    NoQuorum(String),
    /// The daemon closed the connection with this reason.
    #[error("lvs-lockmgr closed the connection: {0}")]
    Refused(String),
    /// The connection failed (daemon not running, closed, bad frame).
    #[error(transparent)]
    Proto(#[from] ProtoError),
}

impl From<Denial> for LockError {
    fn from(d: Denial) -> LockError {
        match d {
            Denial::WouldBlock => LockError::WouldBlock,
            Denial::Deadlock => LockError::Deadlock,
            Denial::Timeout => LockError::Timeout,
            Denial::Cancelled => LockError::Cancelled,
            Denial::NotFound(s) => LockError::NotFound(s),
            Denial::BadRequest(s) => LockError::BadRequest(s),
        }
    }
}

/// A session with the local `lvs-lockmgr`.
#[derive(Debug)]
pub struct LockClient {
    stream: UnixStream,
    decoder: FrameDecoder,
    session: SessionId,
    node: NodeId,
    next_id: u64,
    next_handle: u64,
    replies: HashMap<u64, Reply>,
    events: VecDeque<LockEvent>,
    /// Handle -> (lockspace, resource) of every lock this client has or asked for.
    locks: HashMap<u64, (String, Vec<u8>)>,
    /// Handle -> request id of an unanswered `Lock`.
    pending: HashMap<u64, u64>,
    buf: Vec<u8>,
    /// Set once the daemon closed the connection.
    dead: Option<String>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl LockClient {
    /// Connects to `<rundir>/lockmgr.sock` and opens a session.
    pub fn connect(rundir: &Path) -> Result<LockClient, LockError> {
        let name = std::env::args()
            .next()
            .and_then(|a| {
                Path::new(&a)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_default();
        LockClient::connect_socket(&rundir::socket_path(rundir, DAEMON), &name)
    }

    /// Connects to the socket at `path`, naming the client `name` (shown by `lvs-lockctl list`).
    pub fn connect_socket(path: &Path, name: &str) -> Result<LockClient, LockError> {
        let stream = UnixStream::connect(path).map_err(|e| {
            ProtoError::io(
                format!(
                    "cannot connect to {} (is lvs-lockmgr running?)",
                    path.display()
                ),
                e,
            )
        })?;
        let mut client = LockClient {
            stream,
            decoder: FrameDecoder::new(reply_limit()),
            session: SessionId(0),
            node: NodeId(0),
            next_id: 1,
            next_handle: 1,
            replies: HashMap::new(),
            events: VecDeque::new(),
            locks: HashMap::new(),
            pending: HashMap::new(),
            buf: vec![0; 16 * 1024],
            dead: None,
        };
        client.send(&ClientMsg::Hello {
            version: LOCK_PROTOCOL_VERSION,
            name: name.to_owned(),
        })?;
        match client.read_msg(None)? {
            Some(ServerMsg::HelloOk { session, node, .. }) => {
                client.session = session;
                client.node = node;
                Ok(client)
            }
            Some(ServerMsg::Error { message }) => Err(LockError::Refused(message)),
            other => {
                Err(ProtoError::UnexpectedFrame(format!("expected HelloOk, got {other:?}")).into())
            }
        }
    }

    /// This connection's session.
    pub fn session(&self) -> SessionId {
        self.session
    }

    /// The node serving it.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// Locks `name` in `lockspace` (created if missing) in `mode`, blocking until granted.
    /// With [`LockFlags::NOQUEUE`] it fails at once with [`LockError::WouldBlock`] instead of
    /// waiting (Raft mode, on a node that cannot commit: [`LockError::NoQuorum`] within two
    /// election timeouts); with `timeout` it gives up with [`LockError::Timeout`] (resolution: the
    /// daemon's tick, 100 ms by default).
    pub fn lock(
        &mut self,
        lockspace: &str,
        name: impl AsRef<[u8]>,
        mode: LockMode,
        flags: LockFlags,
        timeout: Option<Duration>,
    ) -> Result<Granted, LockError> {
        let handle = self.request(lockspace, name, mode, flags, timeout)?;
        self.wait(handle)
    }

    /// A try-lock: granted now, or [`LockError::WouldBlock`] now.
    pub fn try_lock(
        &mut self,
        lockspace: &str,
        name: impl AsRef<[u8]>,
        mode: LockMode,
    ) -> Result<Granted, LockError> {
        self.lock(lockspace, name, mode, LockFlags::NOQUEUE, None)
    }

    /// Sends a lock request without waiting: the answer comes with [`LockClient::wait`], and
    /// meanwhile the request can be cancelled with [`LockClient::cancel`].
    pub fn request(
        &mut self,
        lockspace: &str,
        name: impl AsRef<[u8]>,
        mode: LockMode,
        flags: LockFlags,
        timeout: Option<Duration>,
    ) -> Result<LockHandle, LockError> {
        let handle = self.next_handle;
        self.next_handle += 1;
        let resource = name.as_ref().to_vec();
        self.locks
            .insert(handle, (lockspace.to_owned(), resource.clone()));
        let id = self.send_request(LockReq::Lock {
            handle,
            lockspace: lockspace.to_owned(),
            resource,
            mode,
            flags: LockFlags(flags.0 & !LockFlags::CONVERT.0),
            timeout_ms: timeout.map(ms),
            lvb: None,
        })?;
        self.pending.insert(handle, id);
        Ok(LockHandle(handle))
    }

    /// Waits for the answer to the pending request of `handle` (from [`LockClient::request`]
    /// or a conversion).
    pub fn wait(&mut self, handle: LockHandle) -> Result<Granted, LockError> {
        let Some(&id) = self.pending.get(&handle.0) else {
            return Err(LockError::UnknownHandle(handle.0));
        };
        let reply = self.wait_reply(id);
        self.pending.remove(&handle.0);
        match reply? {
            Reply::Granted {
                handle,
                mode,
                token,
                lvb,
            } => Ok(Granted {
                handle: LockHandle(handle),
                mode,
                token,
                lvb,
            }),
            Reply::Denied { reason } => {
                // A new lock that was not granted is gone.
                self.locks.remove(&handle.0);
                Err(reason.into())
            }
            Reply::Unavailable { reason } => {
                self.locks.remove(&handle.0);
                Err(LockError::NoQuorum(reason))
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Converts a granted lock to `mode` (up or down), blocking until granted (NOQUEUE: or
    /// [`LockError::WouldBlock`] at once). `lvb`: with a conversion down from PW/EX, the value
    /// block to write (needs [`LockFlags::VALBLK`]). A failed conversion leaves the lock in its
    /// old mode.
    pub fn convert(
        &mut self,
        handle: LockHandle,
        mode: LockMode,
        flags: LockFlags,
        lvb: Option<[u8; LVB_LEN]>,
        timeout: Option<Duration>,
    ) -> Result<Granted, LockError> {
        let Some((lockspace, resource)) = self.locks.get(&handle.0).cloned() else {
            return Err(LockError::UnknownHandle(handle.0));
        };
        let id = self.send_request(LockReq::Lock {
            handle: handle.0,
            lockspace,
            resource,
            mode,
            flags: flags | LockFlags::CONVERT,
            timeout_ms: timeout.map(ms),
            lvb,
        })?;
        let reply = self.wait_reply(id)?;
        match reply {
            Reply::Granted {
                handle,
                mode,
                token,
                lvb,
            } => Ok(Granted {
                handle: LockHandle(handle),
                mode,
                token,
                lvb,
            }),
            Reply::Denied { reason } => Err(reason.into()),
            Reply::Unavailable { reason } => Err(LockError::NoQuorum(reason)),
            other => Err(unexpected(&other)),
        }
    }

    /// Releases a lock (or abandons its request). `lvb`: the value block to write, if held in
    /// PW or EX.
    pub fn unlock(
        &mut self,
        handle: LockHandle,
        lvb: Option<[u8; LVB_LEN]>,
    ) -> Result<(), LockError> {
        let id = self.send_request(LockReq::Unlock {
            handle: handle.0,
            lvb,
        })?;
        let reply = self.wait_reply(id)?;
        match reply {
            Reply::Ok => {
                self.locks.remove(&handle.0);
                if let Some(pending) = self.pending.remove(&handle.0) {
                    self.replies.remove(&pending);
                }
                Ok(())
            }
            Reply::Denied { reason } => Err(reason.into()),
            other => Err(unexpected(&other)),
        }
    }

    /// Cancels the pending request of `handle`: [`LockClient::wait`] on it then returns
    /// [`LockError::Cancelled`] (a cancelled conversion leaves the lock in its old mode).
    pub fn cancel(&mut self, handle: LockHandle) -> Result<(), LockError> {
        let id = self.send_request(LockReq::Cancel { handle: handle.0 })?;
        match self.wait_reply(id)? {
            Reply::Ok => Ok(()),
            Reply::Denied { reason } => Err(reason.into()),
            other => Err(unexpected(&other)),
        }
    }

    /// The next event (queued, blocking notification), waiting up to `timeout` (`None`:
    /// forever). `Ok(None)`: nothing arrived in time.
    pub fn poll_event(
        &mut self,
        timeout: Option<Duration>,
    ) -> Result<Option<LockEvent>, LockError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(ev) = self.events.pop_front() {
                return Ok(Some(ev));
            }
            if !self.pump(deadline)? {
                return Ok(None);
            }
        }
    }

    /// Every resource with its queues (of `lockspace`, or all), sessions and local clients.
    pub fn list(&mut self, lockspace: Option<&str>) -> Result<Listing, LockError> {
        let id = self.send_request(LockReq::List {
            lockspace: lockspace.map(str::to_owned),
        })?;
        match self.wait_reply(id)? {
            Reply::List {
                resources,
                sessions,
                clients,
            } => Ok(Listing {
                resources,
                sessions,
                clients,
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// The node's and the cluster's status.
    pub fn status(&mut self) -> Result<StatusInfo, LockError> {
        let id = self.send_request(LockReq::Status)?;
        match self.wait_reply(id)? {
            Reply::Status(s) => Ok(s),
            other => Err(unexpected(&other)),
        }
    }

    // ---- plumbing ----

    fn send_request(&mut self, request: LockReq) -> Result<u64, LockError> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&ClientMsg::Request { id, request })?;
        Ok(id)
    }

    fn send(&mut self, msg: &ClientMsg) -> Result<(), LockError> {
        if let Some(reason) = &self.dead {
            return Err(LockError::Refused(reason.clone()));
        }
        let frame = codec::to_frame(msg, request_limit())?;
        self.stream
            .write_all(&frame)
            .map_err(|e| ProtoError::io("cannot send to lvs-lockmgr", e))?;
        Ok(())
    }

    fn wait_reply(&mut self, id: u64) -> Result<Reply, LockError> {
        loop {
            if let Some(r) = self.replies.remove(&id) {
                return Ok(r);
            }
            self.pump(None)?;
        }
    }

    /// Reads and files whatever arrives before `deadline`; false if nothing did.
    fn pump(&mut self, deadline: Option<Instant>) -> Result<bool, LockError> {
        match self.read_msg(deadline)? {
            None => Ok(false),
            Some(ServerMsg::Reply { id, reply }) => {
                self.replies.insert(id, reply);
                Ok(true)
            }
            Some(ServerMsg::Event(ev)) => {
                self.events.push_back(ev);
                Ok(true)
            }
            Some(ServerMsg::Error { message }) => {
                self.dead = Some(message.clone());
                Err(LockError::Refused(message))
            }
            Some(other) => Err(ProtoError::UnexpectedFrame(format!("{other:?}")).into()),
        }
    }

    /// One message, waiting until `deadline` (`None`: forever).
    fn read_msg(&mut self, deadline: Option<Instant>) -> Result<Option<ServerMsg>, LockError> {
        loop {
            let timeout = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(t) if !t.is_zero() => Some(t),
                    _ => return Ok(None),
                },
            };
            self.stream
                .set_read_timeout(timeout)
                .map_err(|e| ProtoError::io("cannot set a read timeout", e))?;
            let n = match self.stream.read(&mut self.buf) {
                Ok(0) => {
                    self.decoder.finish()?;
                    let reason = "lvs-lockmgr closed the connection".to_owned();
                    self.dead = Some(reason);
                    return Err(ProtoError::Closed.into());
                }
                Ok(n) => n,
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ProtoError::io("cannot read from lvs-lockmgr", e).into()),
            };
            let mut got = Vec::new();
            for f in self.decoder.feed(&self.buf[..n]) {
                got.push(f?);
            }
            // More than one frame in one read: keep the rest in order for later calls.
            let mut it = got.into_iter();
            if let Some(first) = it.next() {
                for rest in it {
                    let msg: ServerMsg = codec::decode_body(&rest, reply_limit())?;
                    self.stash(msg)?;
                }
                return Ok(Some(codec::decode_body(&first, reply_limit())?));
            }
        }
    }

    fn stash(&mut self, msg: ServerMsg) -> Result<(), LockError> {
        match msg {
            ServerMsg::Reply { id, reply } => {
                self.replies.insert(id, reply);
            }
            ServerMsg::Event(ev) => self.events.push_back(ev),
            ServerMsg::Error { message } => {
                self.dead = Some(message);
            }
            ServerMsg::HelloOk { .. } => {}
        }
        Ok(())
    }
}

impl AsRawFd for LockClient {
    /// The socket, to wait for events in a poll loop (then call [`LockClient::poll_event`]).
    fn as_raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }
}

fn unexpected(reply: &Reply) -> LockError {
    LockError::Proto(ProtoError::UnexpectedFrame(format!(
        "unexpected reply {reply:?}"
    )))
}
