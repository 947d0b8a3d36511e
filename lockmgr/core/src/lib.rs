//! The lock manager's deterministic core: the state machine that Raft replicates.
//!
//! [`StateMachine::apply`] is a pure function of the state and one [`Command`]: no clock, no
//! randomness, no I/O, and every collection whose order can be observed is ordered (`BTreeMap`,
//! sequence numbers). Every node that applies the same log reaches the same state and emits the
//! same [`Output`]s in the same order; [`StateMachine::snapshot`] and
//! [`StateMachine::restore`] carry the state across log compaction and restarts.
//!
//! # Semantics (VMS / Linux DLM)
//! - **Lockspaces** ([`Command::CreateLockspace`]) hold **resources**, named by 1 to
//!   [`MAX_NAME_LEN`] arbitrary bytes. A resource exists while it has locks or keeps a value
//!   block; it is created by the first request.
//! - **Modes** NL, CR, CW, PR, PW, EX with the standard compatibility matrix
//!   ([`LockMode::compatible`]).
//! - **Queues**: grant, convert and wait queue per resource, served conversions first, waiters
//!   strictly in order (see [`StateMachine`] for the rules). Up- and
//!   down-conversions with [`LockFlags::CONVERT`]; try-locks with [`LockFlags::NOQUEUE`]
//!   ([`Denial::WouldBlock`]); [`Command::Cancel`]; bounded waits with
//!   [`LockRequest::timeout_ms`] ([`Denial::Timeout`], checked on [`Command::Tick`]).
//! - **Value blocks** ([`LockFlags::VALBLK`], [`LVB_LEN`] bytes): read with every grant of a
//!   VALBLK request; written by a conversion from PW or EX to a mode that is not stronger, or by
//!   the unlock of a PW or EX lock; marked invalid when a PW or EX holder's session closes or
//!   expires. A resource that has no locks but a written (or invalid) value block is kept, so
//!   neither the value nor its invalidity is lost while nobody holds a lock.
//! - **Notifications**: [`Output::Granted`] is the completion, [`Output::Blocking`] the
//!   blocking notification (once per blocking episode of a holder).
//! - **Deadlocks** across all resources and sessions are found after every command that queued
//!   or granted anything (a grant can close a cycle too: a request that waited behind another
//!   now waits for its holder), and broken by denying the youngest request (the most recently
//!   queued) on a cycle with [`Denial::Deadlock`]. The wait-for graph: a session with pending
//!   requests waits for each of them (a session is one thread of control, like a DLM
//!   transaction); a request waits for the session of every other lock on its resource whose
//!   granted mode conflicts with it, and a new request also for every queued conversion and the
//!   waiter ahead of it. A session waiting for its own lock is a deadlock too.
//! - **Sessions** belong to a node and live while the node's [`Command::Heartbeat`]s keep their
//!   lease; [`Command::CloseSession`] (the client's socket closed) or expiry releases their
//!   locks and requests at once, and the queues they were in are served.
//!
//! # Fencing tokens
//! Every [`Output::Granted`] carries a token from one counter of the replicated state, so a
//! token is larger than every token handed out before it, on any resource: per resource it
//! strictly increases across every grant, ever. The counter is part of the [`Snapshot`] and of
//! the log, so it survives leader changes, restarts and snapshot installation. A resource being
//! forgotten and created again does not reset it.
//!
//! An application passes the token with each write to the shared storage, and the storage (or
//! a thin check in front of it) remembers the largest token it has accepted per resource and
//! refuses anything smaller:
//!
//! ```
//! /// What the storage side keeps per protected object.
//! struct Fenced { highest: u64 }
//!
//! impl Fenced {
//!     fn write(&mut self, token: u64, _data: &[u8]) -> Result<(), &'static str> {
//!         if token < self.highest {
//!             return Err("stale lock holder: a newer grant exists");
//!         }
//!         self.highest = token;
//!         Ok(()) // ... perform the write
//!     }
//! }
//!
//! let mut f = Fenced { highest: 0 };
//! assert!(f.write(7, b"old holder").is_ok());
//! assert!(f.write(9, b"new holder after the old one's lease ran out").is_ok());
//! assert!(f.write(7, b"old holder wakes up").is_err());
//! ```
//!
//! # Time
//! Time enters only through [`Command::Tick`]`{ now_ms }`, which the leader proposes. The
//! replicated clock never goes backwards (a smaller value is ignored), so a new leader whose
//! local clock is behind cannot shorten anything; it should propose the last applied time plus
//! its own elapsed time. Commands carry durations (leases, request timeouts); the state stores
//! absolute deadlines computed from the replicated clock at the time the command is applied,
//! which is why every replica expires the same things at the same log position. The
//! resolution of every deadline is the leader's tick interval.
//!
//! # Encoding
//! Commands, outputs, snapshots and query results derive `bincode::Encode`/`Decode`; they are
//! encoded only through `lvs_proto::codec` ([`codec`], [`Command::to_bytes`],
//! [`Snapshot::to_bytes`]).

mod deadlock;
mod machine;
mod mode;
mod query;
mod snapshot;
mod types;

pub mod codec;

pub use machine::StateMachine;
pub use mode::{LockMode, UnknownMode};
pub use query::{Counts, LockInfo, ResourceInfo, SessionInfo};
pub use snapshot::{SNAPSHOT_FORMAT, Snapshot, SnapshotError};
pub use types::{
    CloseReason, Command, Denial, LVB_LEN, LockFlags, LockRef, LockRequest, MAX_NAME_LEN, NodeId,
    Output, SessionId, Target, ValueBlock,
};
