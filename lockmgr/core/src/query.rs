//! Read-only views of the state, for `lvs-lockctl list` and for counters.
//!
//! Every view is plain data with `Encode`/`Decode`, so the daemon can send it as it is. Lists
//! come in a fixed order: lockspaces and resources by name, locks in queue order, sessions by
//! id.

use bincode::{Decode, Encode};

use crate::machine::{Lock, Resource, StateMachine};
use crate::mode::LockMode;
use crate::types::{LockRef, NodeId, SessionId, ValueBlock};

/// One lock as `lvs-lockctl list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct LockInfo {
    /// The lock.
    pub lock: LockRef,
    /// The node of its session.
    pub node: NodeId,
    /// The granted mode, if any.
    pub granted: Option<LockMode>,
    /// The fencing token of its latest grant, if granted.
    pub token: Option<u64>,
    /// The mode of its pending request or conversion, if any.
    pub requested: Option<LockMode>,
    /// When that request times out (replicated clock), if it has a timeout.
    pub deadline_ms: Option<u64>,
}

/// One resource with its queues.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ResourceInfo {
    /// The lockspace.
    pub lockspace: String,
    /// The resource name.
    pub name: Vec<u8>,
    /// Its value block.
    pub lvb: ValueBlock,
    /// The grant queue, oldest grant first (converting locks included).
    pub granted: Vec<LockInfo>,
    /// The convert queue, in order.
    pub converting: Vec<LockInfo>,
    /// The wait queue, in order.
    pub waiting: Vec<LockInfo>,
}

/// One session.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct SessionInfo {
    /// The session.
    pub session: SessionId,
    /// Its node.
    pub node: NodeId,
    /// Its lease.
    pub lease_ms: u64,
    /// When it expires unless its node sends a heartbeat (replicated clock).
    pub expires_ms: u64,
    /// Its locks, granted or not.
    pub locks: u64,
}

/// Totals, for counters and `lvs-lockctl`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Encode, Decode)]
pub struct Counts {
    /// Lockspaces.
    pub lockspaces: u64,
    /// Resources that exist (with locks, or keeping a value block).
    pub resources: u64,
    /// Open sessions.
    pub sessions: u64,
    /// Locks with a granted mode (converting ones included).
    pub granted: u64,
    /// Pending conversions.
    pub converting: u64,
    /// Pending new requests.
    pub waiting: u64,
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl StateMachine {
    /// The replicated clock (milliseconds; advanced by [`crate::Command::Tick`]).
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// The token the next grant will carry.
    pub fn next_token(&self) -> u64 {
        self.next_token
    }

    /// Lockspace names, in order.
    pub fn lockspaces(&self) -> Vec<String> {
        self.lockspaces.keys().cloned().collect()
    }

    /// Every resource of `lockspace` with its queues (`None` if it does not exist).
    pub fn resources(&self, lockspace: &str) -> Option<Vec<ResourceInfo>> {
        let ls = self.lockspaces.get(lockspace)?;
        Some(
            ls.resources
                .iter()
                .map(|(name, res)| self.build_resource_info(lockspace, name, res))
                .collect(),
        )
    }

    /// One resource with its queues.
    pub fn resource_info(&self, lockspace: &str, name: &[u8]) -> Option<ResourceInfo> {
        let res = self.lockspaces.get(lockspace)?.resources.get(name)?;
        Some(self.build_resource_info(lockspace, name, res))
    }

    /// One lock.
    pub fn lock_info(&self, lock: LockRef) -> Option<LockInfo> {
        self.locks.get(&lock).map(|l| self.info(lock, l))
    }

    /// The resource a lock is on: (lockspace, name).
    pub fn lock_resource(&self, lock: LockRef) -> Option<(&str, &[u8])> {
        self.locks
            .get(&lock)
            .map(|l| (l.lockspace.as_str(), l.resource.as_slice()))
    }

    /// Every open session.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        self.sessions
            .iter()
            .map(|(id, s)| SessionInfo {
                session: *id,
                node: s.node,
                lease_ms: s.lease_ms,
                expires_ms: s.expires_ms,
                locks: count(
                    self.locks
                        .range(LockRef::new(id.0, 0)..=LockRef::new(id.0, u64::MAX))
                        .count(),
                ),
            })
            .collect()
    }

    /// Totals.
    pub fn counts(&self) -> Counts {
        let mut c = Counts {
            lockspaces: count(self.lockspaces.len()),
            sessions: count(self.sessions.len()),
            ..Counts::default()
        };
        for res in self
            .lockspaces
            .values()
            .flat_map(|ls| ls.resources.values())
        {
            c.resources += 1;
            c.granted += count(res.granted.len());
            c.converting += count(res.converting.len());
            c.waiting += count(res.waiting.len());
        }
        c
    }

    fn build_resource_info(&self, lockspace: &str, name: &[u8], res: &Resource) -> ResourceInfo {
        let infos = |q: &std::collections::BTreeMap<u64, LockRef>| {
            q.values().map(|l| self.info(*l, &self.locks[l])).collect()
        };
        ResourceInfo {
            lockspace: lockspace.to_owned(),
            name: name.to_vec(),
            lvb: res.lvb,
            granted: infos(&res.granted),
            converting: infos(&res.converting),
            waiting: infos(&res.waiting),
        }
    }

    fn info(&self, l: LockRef, lock: &Lock) -> LockInfo {
        LockInfo {
            lock: l,
            node: self.sessions[&l.session].node,
            granted: lock.granted.map(|g| g.mode),
            token: lock.granted.map(|g| g.token),
            requested: lock.pending.map(|p| p.mode),
            deadline_ms: lock.pending.and_then(|p| p.deadline_ms),
        }
    }
}
