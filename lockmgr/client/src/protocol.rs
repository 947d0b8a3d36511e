//! The lock protocol on `<rundir>/lockmgr.sock`.
//!
//! Framing and body encoding are `lvs-proto`'s (4-byte big-endian length, bincode body through
//! `lvs_proto::codec`, the length checked before anything is allocated); the messages are ours,
//! because a lock conversation differs from the request/response of the other daemons: a
//! connection *is* a session, a `Lock` request may be answered much later (when granted), and
//! the daemon pushes events (queued, blocking notifications) at any time.
//!
//! A conversation:
//! 1. client: [`ClientMsg::Hello`] (variant 0, version first, like every lvs-rs Hello, so a
//!    newer client still gets a readable "wrong version"); daemon: [`ServerMsg::HelloOk`] with
//!    the session id, or [`ServerMsg::Error`] and hang-up.
//! 2. client: [`ClientMsg::Request`]`{ id, request }`, any number, pipelined; daemon:
//!    exactly one [`ServerMsg::Reply`]`{ id, .. }` per request. Replies to `Lock` come when
//!    the lock is granted or denied (so they may come out of order); every other request is
//!    answered at once. In Raft mode a no-wait `Lock` on a node that cannot commit (no
//!    quorum) is answered [`Reply::Unavailable`] within a bound instead of waiting.
//! 3. daemon, at any time: [`ServerMsg::Event`] ([`LockEvent::Queued`],
//!    [`LockEvent::Blocking`]).
//! 4. either side closes: the session ends, its locks and requests are released at once.
//!
//! A malformed frame (or anything but a Hello first) gets one [`ServerMsg::Error`] and the
//! connection is closed; a well-formed but invalid request (a 65-byte name, a handle in use)
//! gets a [`Reply::Denied`] and the connection stays.

use bincode::{Decode, Encode};
use lvs_lockcore::{
    Counts, Denial, LVB_LEN, LockFlags, LockMode, NodeId, ResourceInfo, SessionId, SessionInfo,
    ValueBlock,
};
use lvs_proto::FrameLimit;

/// The lock protocol's version; the daemon refuses any other.
pub const LOCK_PROTOCOL_VERSION: u32 = 1;

/// The socket's short name: `<rundir>/lockmgr.sock`.
pub const DAEMON: &str = "lockmgr";

/// Largest frame a client may send: every request is a few hundred bytes at most.
pub fn request_limit() -> FrameLimit {
    FrameLimit::new(4096)
}

/// Largest frame the daemon sends (a `List` of many locks).
pub fn reply_limit() -> FrameLimit {
    FrameLimit::new(16 << 20)
}

/// Every frame a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum ClientMsg {
    /// Must be first; stays variant 0 with `version` first.
    Hello {
        /// [`LOCK_PROTOCOL_VERSION`].
        version: u32,
        /// A name for `lvs-lockctl list` (e.g. the program name); informative only.
        name: String,
    },
    /// A request; the reply carries the same `id`.
    Request {
        /// Chosen by the client, echoed in the reply.
        id: u64,
        /// The request.
        request: LockReq,
    },
}

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum LockReq {
    /// A new lock (handle unused in this session) or, with [`LockFlags::CONVERT`], the
    /// conversion of lock `handle`. The lockspace is created if it does not exist.
    Lock {
        /// The session's handle for the lock.
        handle: u64,
        /// The lockspace.
        lockspace: String,
        /// The resource, 1 to 64 bytes.
        resource: Vec<u8>,
        /// The mode wanted.
        mode: LockMode,
        /// NOQUEUE, CONVERT, VALBLK.
        flags: LockFlags,
        /// Give up after this many milliseconds in the queue.
        timeout_ms: Option<u64>,
        /// With CONVERT down from PW/EX: the value block to write.
        lvb: Option<[u8; LVB_LEN]>,
    },
    /// Releases lock `handle` (writing the value block if given and held in PW/EX).
    Unlock {
        /// The lock.
        handle: u64,
        /// The value block to write.
        lvb: Option<[u8; LVB_LEN]>,
    },
    /// Cancels the pending request of lock `handle` (its `Lock` is answered `Cancelled`).
    Cancel {
        /// The lock.
        handle: u64,
    },
    /// Every resource with its queues (of one lockspace, or of all), and the sessions.
    List {
        /// Only this lockspace.
        lockspace: Option<String>,
    },
    /// The node and cluster status.
    Status,
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Reply {
    /// Done (Unlock, Cancel).
    Ok,
    /// The lock (or conversion) is granted: the completion.
    Granted {
        /// The lock.
        handle: u64,
        /// The granted mode.
        mode: LockMode,
        /// The fencing token of this grant.
        token: u64,
        /// With VALBLK: the resource's value block.
        lvb: Option<ValueBlock>,
    },
    /// The request did not happen: would block, deadlock, timeout, cancelled, or refused.
    Denied {
        /// Why.
        reason: Denial,
    },
    /// The answer to [`LockReq::List`].
    List {
        /// Resources, by lockspace and name.
        resources: Vec<ResourceInfo>,
        /// Every session of the cluster.
        sessions: Vec<SessionInfo>,
        /// The clients connected to this node.
        clients: Vec<ClientInfo>,
    },
    /// The answer to [`LockReq::Status`].
    Status(StatusInfo),
    /// Raft mode, a no-wait `Lock` (NOQUEUE): this node cannot commit (no quorum: the leader
    /// is unknown or unreachable) within the bound, so the lock is not granted. Sent at most
    /// two of the longest election timeouts after the request (see the daemon's `nowait` module).
    Unavailable {
        /// Why, for a human.
        reason: String,
    },
}

/// Something the daemon tells a client without being asked.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum LockEvent {
    /// The lock's request waits in a queue; its `Lock` is answered later.
    Queued {
        /// The lock.
        handle: u64,
        /// The requested mode.
        mode: LockMode,
    },
    /// Blocking notification: the lock, held in `granted`, blocks a request for `blocked`.
    Blocking {
        /// The lock.
        handle: u64,
        /// Its granted mode.
        granted: LockMode,
        /// The mode it blocks.
        blocked: LockMode,
    },
}

/// Every frame the daemon sends.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum ServerMsg {
    /// The Hello is accepted: the connection is session `session` of node `node`.
    HelloOk {
        /// [`LOCK_PROTOCOL_VERSION`].
        version: u32,
        /// This connection's session.
        session: SessionId,
        /// The node serving it.
        node: NodeId,
    },
    /// Fatal: the connection is closed after this frame.
    Error {
        /// What went wrong.
        message: String,
    },
    /// The answer to request `id`.
    Reply {
        /// The request's id.
        id: u64,
        /// The answer.
        reply: Reply,
    },
    /// An event.
    Event(LockEvent),
}

/// A client connected to this node.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ClientInfo {
    /// Its session.
    pub session: SessionId,
    /// Its process id (`SO_PEERCRED`).
    pub pid: i32,
    /// Its user id (`SO_PEERCRED`).
    pub uid: u32,
    /// The name it gave in its Hello.
    pub name: String,
}

/// The node's view of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct StatusInfo {
    /// `single-node`, or the replication mode.
    pub mode: String,
    /// This node.
    pub node: NodeId,
    /// Every member.
    pub members: Vec<NodeId>,
    /// The leader, if known.
    pub leader: Option<NodeId>,
    /// Log entries applied since the state began.
    pub applied_index: u64,
    /// The token the next grant will carry.
    pub next_token: u64,
    /// The replicated clock.
    pub now_ms: u64,
    /// Totals.
    pub counts: Counts,
    /// Clients connected to this node.
    pub clients: u64,
}
