//! The seam between the daemon and replication: every state change goes through
//! [`Replication::propose`].
//!
//! The daemon never touches the [`StateMachine`] directly. It proposes a [`Command`] with the
//! [`Origin`] (the local request it answers, if any), and later drains [`Applied`] entries:
//! each is one command applied to the state, in log order, with its outputs. The daemon routes
//! the outputs to the sessions that own the locks, and answers the origin's request.
//!
//! [`SingleNode`] (this step) appends the command to its write-ahead log and applies it at
//! once, so the entry is ready on return. [`crate::replica::RaftNode`] implements the same
//! trait: `propose` collects the commands of one turn into one Raft entry (each carrying its
//! proposer and origin), and `take_applied` returns committed entries as the Raft ready loop
//! applies them, on every node, with `origin: None` for entries proposed elsewhere. Outputs about a session are routed by
//! session id, so a grant caused by another node's command still reaches our client.
//! [`Replication::make_durable`] is the group commit the daemon calls before it lets any
//! output reach a client.

use std::collections::VecDeque;
use std::io;

use lvs_lockcore::{Command, NodeId, Output, StateMachine};

use crate::storage::{Recovered, Storage, StorageError};

/// The local request a proposed command answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The session (connection) that asked.
    pub session: lvs_lockcore::SessionId,
    /// The request id to answer.
    pub request: u64,
    /// A `Lock` request, answered when granted or denied rather than at once.
    pub answered_later: bool,
}

/// One command applied to the state, with what it produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Its log index.
    pub index: u64,
    /// The local request it answers, if proposed here.
    pub origin: Option<Origin>,
    /// Its outputs, in the state machine's order.
    pub outputs: Vec<Output>,
}

/// Why a proposal was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    /// The log could not be written: the node cannot go on safely.
    #[error("cannot write the log: {0}")]
    Log(#[from] io::Error),
    /// Not the leader, or no quorum (Raft only).
    #[error("this node cannot propose now: {0}")]
    Unavailable(String),
}

/// How the cluster looks from this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// `single-node`, or the replication mode.
    pub mode: &'static str,
    /// Every member.
    pub members: Vec<NodeId>,
    /// The leader, if known.
    pub leader: Option<NodeId>,
}

/// What the daemon needs from replication.
pub trait Replication {
    /// Proposes `cmd`; its [`Applied`] entry appears in [`Replication::take_applied`] once it
    /// is committed and applied (at once for a single node).
    fn propose(&mut self, cmd: Command, origin: Option<Origin>) -> Result<(), ProposeError>;
    /// The entries applied since the last call, in log order.
    fn take_applied(&mut self) -> Vec<Applied>;
    /// The applied state (for reads: list, status).
    fn state(&self) -> &StateMachine;
    /// The index of the last applied entry.
    fn applied_index(&self) -> u64;
    /// Makes every applied entry durable; called before any output reaches a client.
    fn make_durable(&mut self) -> io::Result<()>;
    /// Whether entries were applied since the last [`Replication::make_durable`].
    fn needs_sync(&self) -> bool;
    /// Housekeeping between turns of the loop (snapshots, log compaction).
    fn maintain(&mut self) -> Result<(), StorageError>;
    /// A clean stop: the last snapshot.
    fn shutdown(&mut self) -> Result<(), StorageError>;
    /// Members and leader.
    fn membership(&self) -> Membership;
    /// One clock tick of the consensus (elections, heartbeats). Nothing for a single node.
    fn tick(&mut self) {}
    /// Whether this node may propose the replicated clock ([`Command::Tick`]).
    fn is_leader(&self) -> bool {
        true
    }
    /// One turn of the consensus: receive, propose what this turn collected, persist, send,
    /// apply. Nothing for a single node (it applies at once).
    fn process(&mut self) -> Result<(), ProposeError> {
        Ok(())
    }
    /// Writes a snapshot of the applied state now and shortens the log (Raft mode).
    fn compact_now(&mut self) -> Result<(), StorageError> {
        Ok(())
    }
    /// True once after the state jumped (a snapshot from the leader replaced it): outputs of
    /// the entries it covers were never seen here, so local clients cannot be answered.
    fn take_reset(&mut self) -> bool {
        false
    }
    /// How long this node has known no leader (Raft mode); `None` while it knows one, and
    /// always for a single node (which commits alone).
    fn leaderless_for(&self) -> Option<std::time::Duration> {
        None
    }
    /// An event on a peer connection's token (Raft mode).
    fn peer_event(&mut self, _token: mio::Token) {}
    /// How the log was synced so far (None: not counted).
    fn log_counters(&self) -> Option<&crate::persist::Counters> {
        None
    }
}

/// Single-node mode: a local write-ahead log, applied at once.
#[derive(Debug)]
pub struct SingleNode {
    node: NodeId,
    state: StateMachine,
    storage: Storage,
    applied_index: u64,
    snapshot_every: u64,
    applied: VecDeque<Applied>,
}

impl SingleNode {
    /// A node on recovered storage.
    pub fn new(node: NodeId, storage: Storage, recovered: Recovered, snapshot_every: u64) -> Self {
        SingleNode {
            node,
            state: recovered.state,
            storage,
            applied_index: recovered.applied_index,
            snapshot_every,
            applied: VecDeque::new(),
        }
    }
}

impl Replication for SingleNode {
    fn propose(&mut self, cmd: Command, origin: Option<Origin>) -> Result<(), ProposeError> {
        let index = self.applied_index + 1;
        // Write-ahead: logged (buffered) before it is applied; synced before any output is
        // shown (make_durable).
        self.storage.append(index, &cmd)?;
        let outputs = self.state.apply(&cmd);
        self.applied_index = index;
        self.applied.push_back(Applied {
            index,
            origin,
            outputs,
        });
        Ok(())
    }

    fn take_applied(&mut self) -> Vec<Applied> {
        self.applied.drain(..).collect()
    }

    fn state(&self) -> &StateMachine {
        &self.state
    }

    fn applied_index(&self) -> u64 {
        self.applied_index
    }

    fn make_durable(&mut self) -> io::Result<()> {
        self.storage.sync()
    }

    fn needs_sync(&self) -> bool {
        self.storage.is_dirty()
    }

    fn log_counters(&self) -> Option<&crate::persist::Counters> {
        Some(self.storage.counters())
    }

    fn maintain(&mut self) -> Result<(), StorageError> {
        if self.storage.wal_records() >= self.snapshot_every {
            self.storage.snapshot(self.applied_index, &self.state)?;
        }
        Ok(())
    }

    fn shutdown(&mut self) -> Result<(), StorageError> {
        self.storage.snapshot(self.applied_index, &self.state)
    }

    fn membership(&self) -> Membership {
        Membership {
            mode: "single-node",
            members: vec![self.node],
            leader: Some(self.node),
        }
    }
}
