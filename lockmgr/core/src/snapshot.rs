//! The whole replicated state as one value, and its restoration.
//!
//! A snapshot holds the replicated clock, the request sequence counter, the **fencing token
//! counter** (so tokens keep increasing after a leader change, a restart from a snapshot, or a
//! node catching up from one), every lockspace with the resources it keeps, every session and
//! every lock. Queues are not stored as lists: each queue's order follows from the locks
//! (grants by token, requests by sequence number), so a snapshot cannot contradict itself there.
//! Indexes are rebuilt by [`StateMachine::restore`], which checks everything it reads.
//!
//! Snapshots are canonical: two replicas in the same state produce byte-identical encodings.

use std::collections::{BTreeMap, BTreeSet};

use bincode::{Decode, Encode};
use lvs_proto::FrameLimit;

use crate::codec;
use crate::machine::{Grant, Lock, Lockspace, Pending, Resource, Session, StateMachine};
use crate::mode::LockMode;
use crate::types::{LockRef, MAX_NAME_LEN, NodeId, SessionId, ValueBlock};

/// The snapshot layout version this build writes and reads.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// The whole state of a [`StateMachine`]. Opaque: encode it with [`Snapshot::to_bytes`], decode
/// it with [`Snapshot::from_bytes`], install it with [`StateMachine::restore`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Snapshot {
    format: u32,
    now_ms: u64,
    next_seq: u64,
    next_token: u64,
    lockspaces: Vec<LockspaceImage>,
    sessions: Vec<SessionImage>,
    locks: Vec<LockImage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
struct LockspaceImage {
    name: String,
    /// Every resource that exists: (name, value block).
    resources: Vec<(Vec<u8>, ValueBlock)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
struct SessionImage {
    session: SessionId,
    node: NodeId,
    lease_ms: u64,
    expires_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
struct LockImage {
    lock: LockRef,
    lockspace: String,
    resource: Vec<u8>,
    /// (mode, token of the latest grant).
    granted: Option<(LockMode, u64)>,
    /// (mode, sequence number, deadline, VALBLK).
    pending: Option<(LockMode, u64, Option<u64>, bool)>,
    blocking_notified: bool,
}

/// A snapshot that cannot be installed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Written by another layout version.
    #[error("snapshot format {found} is not supported (this build reads format {SNAPSHOT_FORMAT})")]
    Format {
        /// The format found.
        found: u32,
    },
    /// The bytes are not a snapshot.
    #[error("cannot decode snapshot: {0}")]
    Codec(#[from] lvs_proto::ProtoError),
    /// The snapshot decodes but contradicts itself.
    #[error("inconsistent snapshot: {0}")]
    Invalid(String),
}

impl Snapshot {
    /// The fencing token the next grant will carry: every token handed out so far is smaller.
    pub fn next_token(&self) -> u64 {
        self.next_token
    }

    /// The replicated clock at the time of the snapshot.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Encodes the snapshot as one frame (through `lvs_proto::codec`). Fails if it is larger
    /// than `limit`.
    pub fn to_bytes(&self, limit: FrameLimit) -> Result<Vec<u8>, SnapshotError> {
        Ok(codec::encode(self, limit)?)
    }

    /// Decodes a frame written by [`Snapshot::to_bytes`].
    pub fn from_bytes(bytes: &[u8], limit: FrameLimit) -> Result<Snapshot, SnapshotError> {
        Ok(codec::decode(bytes, limit)?)
    }
}

fn invalid(msg: String) -> SnapshotError {
    SnapshotError::Invalid(msg)
}

impl StateMachine {
    /// The whole state, for Raft's snapshot (and for comparing replicas).
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            format: SNAPSHOT_FORMAT,
            now_ms: self.now_ms,
            next_seq: self.next_seq,
            next_token: self.next_token,
            lockspaces: self
                .lockspaces
                .iter()
                .map(|(name, ls)| LockspaceImage {
                    name: name.clone(),
                    resources: ls
                        .resources
                        .iter()
                        .map(|(n, r)| (n.clone(), r.lvb))
                        .collect(),
                })
                .collect(),
            sessions: self
                .sessions
                .iter()
                .map(|(id, s)| SessionImage {
                    session: *id,
                    node: s.node,
                    lease_ms: s.lease_ms,
                    expires_ms: s.expires_ms,
                })
                .collect(),
            locks: self
                .locks
                .iter()
                .map(|(l, lock)| LockImage {
                    lock: *l,
                    lockspace: lock.lockspace.clone(),
                    resource: lock.resource.clone(),
                    granted: lock.granted.map(|g| (g.mode, g.token)),
                    pending: lock
                        .pending
                        .map(|p| (p.mode, p.seq, p.deadline_ms, p.valblk)),
                    blocking_notified: lock.blocking_notified,
                })
                .collect(),
        }
    }

    /// A state machine in exactly the state the snapshot was taken in. Everything is checked:
    /// a snapshot that contradicts itself is refused rather than installed.
    pub fn restore(snapshot: Snapshot) -> Result<StateMachine, SnapshotError> {
        let Snapshot {
            format,
            now_ms,
            next_seq,
            next_token,
            lockspaces,
            sessions,
            locks,
        } = snapshot;
        if format != SNAPSHOT_FORMAT {
            return Err(SnapshotError::Format { found: format });
        }
        let mut sm = StateMachine::new();
        sm.now_ms = now_ms;
        sm.next_seq = next_seq;
        sm.next_token = next_token;

        for image in lockspaces {
            let name_ok = !image.name.is_empty() && image.name.len() <= MAX_NAME_LEN;
            if !name_ok {
                return Err(invalid(format!("lockspace name {:?}", image.name)));
            }
            let mut ls = Lockspace::default();
            for (name, lvb) in image.resources {
                if name.is_empty() || name.len() > MAX_NAME_LEN {
                    return Err(invalid(format!("resource name of {} bytes", name.len())));
                }
                if ls.resources.insert(name, Resource::new(lvb)).is_some() {
                    return Err(invalid(format!(
                        "resource listed twice in {:?}",
                        image.name
                    )));
                }
            }
            if sm.lockspaces.insert(image.name.clone(), ls).is_some() {
                return Err(invalid(format!("lockspace {:?} listed twice", image.name)));
            }
        }

        for s in sessions {
            if s.lease_ms == 0 {
                return Err(invalid(format!("{} has a lease of 0", s.session)));
            }
            let session = Session {
                node: s.node,
                lease_ms: s.lease_ms,
                expires_ms: s.expires_ms,
            };
            if sm.sessions.insert(s.session, session).is_some() {
                return Err(invalid(format!("{} listed twice", s.session)));
            }
            sm.nodes.entry(s.node).or_default().insert(s.session);
            sm.leases.insert((s.expires_ms, s.session));
        }

        let mut tokens = BTreeSet::new();
        for image in locks {
            let l = image.lock;
            if !sm.sessions.contains_key(&l.session) {
                return Err(invalid(format!("{l} belongs to no open session")));
            }
            let res = sm
                .lockspaces
                .get_mut(&image.lockspace)
                .and_then(|ls| ls.resources.get_mut(&image.resource))
                .ok_or_else(|| invalid(format!("{l} is on a resource that does not exist")))?;
            let granted = image.granted.map(|(mode, token)| Grant { mode, token });
            let pending = image
                .pending
                .map(|(mode, seq, deadline_ms, valblk)| Pending {
                    mode,
                    seq,
                    deadline_ms,
                    valblk,
                });
            if granted.is_none() && pending.is_none() {
                return Err(invalid(format!("{l} is neither granted nor requested")));
            }
            if granted.is_none() && image.blocking_notified {
                return Err(invalid(format!("{l} is not granted but marked blocking")));
            }
            if let Some(g) = granted {
                if g.token >= next_token || !tokens.insert(g.token) {
                    return Err(invalid(format!("{l} has token {} out of order", g.token)));
                }
                if !res.compatible(g.mode, None) {
                    return Err(invalid(format!(
                        "{l} is granted {} beside an incompatible lock",
                        g.mode
                    )));
                }
                res.granted.insert(g.token, l);
                res.counts[g.mode.index()] += 1;
            }
            if let Some(p) = pending {
                if p.seq >= next_seq || sm.pending.insert(p.seq, l).is_some() {
                    return Err(invalid(format!(
                        "{l} has request number {} out of order",
                        p.seq
                    )));
                }
                if granted.is_some() {
                    res.converting.insert(p.seq, l);
                } else {
                    res.waiting.insert(p.seq, l);
                }
                if let Some(d) = p.deadline_ms {
                    sm.timeouts.insert((d, l));
                }
            }
            let lock = Lock {
                lockspace: image.lockspace,
                resource: image.resource,
                granted,
                pending,
                blocking_notified: image.blocking_notified,
            };
            if sm.locks.insert(l, lock).is_some() {
                return Err(invalid(format!("{l} listed twice")));
            }
        }

        let unused: BTreeMap<&String, usize> = sm
            .lockspaces
            .iter()
            .map(|(n, ls)| (n, ls.resources.values().filter(|r| r.is_unused()).count()))
            .filter(|(_, n)| *n > 0)
            .collect();
        if let Some((name, n)) = unused.into_iter().next() {
            return Err(invalid(format!(
                "lockspace {name:?} lists {n} resources with neither locks nor a value block"
            )));
        }
        Ok(sm)
    }
}
