//! The vocabulary of the state machine: identifiers, flags, value blocks, commands and outputs.
//!
//! Everything here derives `bincode::Encode`/`Decode`, but is encoded only through
//! `lvs_proto::codec` (see [`crate::codec`]).

use std::fmt;
use std::ops::BitOr;

use bincode::{Decode, Encode};

use crate::mode::LockMode;

/// Longest lockspace or resource name, in bytes (the DLM's `DLM_RESNAME_MAXLEN`).
pub const MAX_NAME_LEN: usize = 64;

/// Bytes in a lock value block.
pub const LVB_LEN: usize = 32;

/// A client session, chosen by the proposing node (unique cluster-wide, e.g. node id in the
/// high bits and a counter in the low bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct SessionId(pub u64);

/// A lock manager node (the owner of a session's lease).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct NodeId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session {}", self.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {}", self.0)
    }
}

/// One lock: a handle chosen by its session, unique within the session while the lock exists
/// (free again after unlock). Every output about a lock names it this way, so the daemon routes
/// outputs by `session` and the client matches them by `handle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct LockRef {
    /// The session that owns the lock.
    pub session: SessionId,
    /// The session's handle for it.
    pub handle: u64,
}

impl LockRef {
    /// Lock `handle` of `session`.
    pub fn new(session: u64, handle: u64) -> LockRef {
        LockRef {
            session: SessionId(session),
            handle,
        }
    }
}

impl fmt::Display for LockRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lock {} of session {}", self.handle, self.session.0)
    }
}

/// Request flags, as the DLM's `DLM_LKF_*`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Encode, Decode)]
pub struct LockFlags(pub u32);

impl LockFlags {
    /// No flags.
    pub const NONE: LockFlags = LockFlags(0);
    /// Try-lock: if the request cannot be granted at once it fails with
    /// [`Denial::WouldBlock`] instead of queueing.
    pub const NOQUEUE: LockFlags = LockFlags(1);
    /// Convert the existing lock named by the request's handle to the requested mode.
    pub const CONVERT: LockFlags = LockFlags(1 << 1);
    /// Return the resource's value block with the grant (and allow writing it, see
    /// [`LockRequest::lvb`]).
    pub const VALBLK: LockFlags = LockFlags(1 << 2);
    /// Every defined flag.
    pub const ALL: LockFlags = LockFlags(0b111);

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: LockFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The bits that are not defined flags (non-zero input is refused).
    pub fn unknown_bits(self) -> u32 {
        self.0 & !Self::ALL.0
    }
}

impl BitOr for LockFlags {
    type Output = LockFlags;

    fn bitor(self, rhs: LockFlags) -> LockFlags {
        LockFlags(self.0 | rhs.0)
    }
}

/// A resource's lock value block as a grant returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub struct ValueBlock {
    /// The last value written by a PW or EX holder (zeros on a new resource).
    pub bytes: [u8; LVB_LEN],
    /// False once a PW or EX holder died (session closed or expired) without writing it: the
    /// bytes may be stale, and the next writer should rebuild them. Set again by a write.
    pub valid: bool,
}

impl ValueBlock {
    /// The value block of a new resource: zeros, valid.
    pub const INITIAL: ValueBlock = ValueBlock {
        bytes: [0; LVB_LEN],
        valid: true,
    };
}

/// A request for a new lock, or (with [`LockFlags::CONVERT`]) the conversion of an existing one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Encode, Decode)]
pub struct LockRequest {
    /// The lock: a new handle, or with CONVERT the existing lock.
    pub lock: LockRef,
    /// The lockspace (must exist). With CONVERT it must be the lock's.
    pub lockspace: String,
    /// The resource name, 1 to [`MAX_NAME_LEN`] bytes, any bytes. With CONVERT it must be the
    /// lock's.
    pub resource: Vec<u8>,
    /// The requested mode.
    pub mode: LockMode,
    /// NOQUEUE, CONVERT, VALBLK.
    pub flags: LockFlags,
    /// Give up with [`Denial::Timeout`] if not granted within this many milliseconds of
    /// replicated time (checked on [`Command::Tick`]). A timed-out conversion leaves the lock
    /// granted in its old mode.
    pub timeout_ms: Option<u64>,
    /// With CONVERT from PW or EX to a mode that is not stronger: the new value block, written
    /// to the resource before the conversion is granted. Anything else is refused.
    pub lvb: Option<[u8; LVB_LEN]>,
}

/// One entry of the replicated log. Applying the same sequence of commands to the same state
/// gives the same state and the same outputs on every node.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Encode, Decode)]
pub enum Command {
    /// Creates a lockspace (1 to [`MAX_NAME_LEN`] bytes of UTF-8), or joins it if it exists.
    CreateLockspace {
        /// Its name.
        name: String,
    },
    /// Removes an empty lockspace (no locks), with any value blocks it kept.
    RemoveLockspace {
        /// Its name.
        name: String,
    },
    /// Opens a session for a client of `node`. It expires when `node` has not sent a
    /// [`Command::Heartbeat`] for `lease_ms` milliseconds of replicated time.
    OpenSession {
        /// A new, unused id.
        session: SessionId,
        /// The node whose heartbeats keep it alive.
        node: NodeId,
        /// The lease, more than 0.
        lease_ms: u64,
    },
    /// `node` is alive: renews the lease of each of its sessions from the current replicated
    /// time. Silent: no output, and nothing happens for a node without sessions.
    Heartbeat {
        /// The node.
        node: NodeId,
    },
    /// The client is gone (its socket closed): its locks and requests go at once.
    CloseSession {
        /// The session.
        session: SessionId,
    },
    /// A lock or conversion request.
    Lock(LockRequest),
    /// Releases a lock in whatever state it is (a pending request or conversion on it goes
    /// with it). The handle is free afterwards.
    Unlock {
        /// The lock.
        lock: LockRef,
        /// If the lock is granted in PW or EX: the value block to write. Refused otherwise.
        lvb: Option<[u8; LVB_LEN]>,
    },
    /// Cancels the lock's pending request: a waiting lock goes away, a converting one stays
    /// granted in its old mode.
    Cancel {
        /// The lock.
        lock: LockRef,
    },
    /// Advances the replicated clock (proposed by the leader). The clock never goes back: a
    /// smaller `now_ms` leaves it where it is. Then every request timeout and session lease
    /// that has run out is processed, in deadline order.
    Tick {
        /// Milliseconds of cluster time.
        now_ms: u64,
    },
}

/// What an [`Output::Denied`] is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Encode, Decode)]
pub enum Target {
    /// A lock or lock request.
    Lock(LockRef),
    /// A session command (open, close).
    Session(SessionId),
    /// A lockspace command (create, remove).
    Lockspace(String),
}

/// Why a command or request did not do what it asked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Encode, Decode)]
pub enum Denial {
    /// NOQUEUE and not grantable at once.
    WouldBlock,
    /// The request was chosen to break a deadlock.
    Deadlock,
    /// The request's timeout ran out.
    Timeout,
    /// The request was cancelled.
    Cancelled,
    /// A session, lockspace or lock named by the command does not exist.
    NotFound(String),
    /// The command is malformed or not allowed in the current state.
    BadRequest(String),
}

impl Denial {
    /// Whether this denial refuses a command that changed nothing (NotFound, BadRequest).
    pub fn is_rejection(&self) -> bool {
        matches!(self, Denial::NotFound(_) | Denial::BadRequest(_))
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denial::WouldBlock => f.write_str("would block"),
            Denial::Deadlock => f.write_str("deadlock"),
            Denial::Timeout => f.write_str("timed out"),
            Denial::Cancelled => f.write_str("cancelled"),
            Denial::NotFound(what) => write!(f, "not found: {what}"),
            Denial::BadRequest(why) => write!(f, "bad request: {why}"),
        }
    }
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub enum CloseReason {
    /// [`Command::CloseSession`].
    Closed,
    /// Its node's lease ran out.
    Expired,
}

/// A consequence of applying a command, addressed to a session (or, for lockspace commands, to
/// whoever proposed it). A command's outputs come in a fixed order: its direct answer, then
/// grants in queue order as they happen, then deadlock denials, then blocking notifications.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Encode, Decode)]
pub enum Output {
    /// The lockspace exists now (`created`: it did not before).
    LockspaceReady {
        /// Its name.
        name: String,
        /// Whether this command created it.
        created: bool,
    },
    /// The lockspace was removed.
    LockspaceRemoved {
        /// Its name.
        name: String,
    },
    /// The session is open.
    SessionOpened {
        /// The session.
        session: SessionId,
    },
    /// The session ended; its locks and requests are gone.
    SessionClosed {
        /// The session.
        session: SessionId,
        /// Closed by its client or expired.
        reason: CloseReason,
    },
    /// The request (or conversion) waits; a [`Output::Granted`] or [`Output::Denied`] will
    /// follow (or an [`Output::Unlocked`] / [`Output::SessionClosed`] ends it).
    Queued {
        /// The lock.
        lock: LockRef,
        /// The requested mode.
        mode: LockMode,
    },
    /// Completion: the lock is granted in `mode` (a completion AST).
    Granted {
        /// The lock.
        lock: LockRef,
        /// The granted mode.
        mode: LockMode,
        /// The fencing token of this grant: greater than every token any earlier grant of any
        /// resource carried. Pass it with every write to the protected storage.
        token: u64,
        /// With VALBLK: the resource's value block.
        lvb: Option<ValueBlock>,
    },
    /// A blocking notification (a BAST): the lock, granted in `granted`, blocks a queued request
    /// for `blocked`. Sent once per blocking episode: again only after the lock's mode changed
    /// or nothing was blocked by it for a while.
    Blocking {
        /// The blocking lock.
        lock: LockRef,
        /// Its granted mode.
        granted: LockMode,
        /// The mode of the first queued request it blocks.
        blocked: LockMode,
    },
    /// The lock is released (and any request pending on it ended).
    Unlocked {
        /// The lock.
        lock: LockRef,
    },
    /// A request ended without a grant, or a command was refused (NotFound, BadRequest: the
    /// state did not change).
    Denied {
        /// What it is about.
        target: Target,
        /// Why.
        reason: Denial,
    },
}
