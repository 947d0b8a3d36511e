//! Raft mode: the lock state machine replicated with the `raft` crate (0.7) across the peers.
//!
//! [`RaftNode`] implements [`Replication`]. Commands proposed during one turn of the daemon's
//! loop are collected and proposed as **one** Raft entry (a `Batch`); a follower forwards its
//! batch to the leader over the peer network ([`crate::peer`]) and the leader proposes it. Each
//! command in a batch carries the node that proposed it and its [`Origin`], so when the entry
//! is applied (on every node, in log order) the proposing node answers its client's request and
//! every node routes grants and notifications to the sessions connected to it.
//!
//! [`RaftNode::process`] is the Ready loop, called once per turn: step received messages,
//! take in what the log writer finished, propose, then for each ready: install a snapshot,
//! send the leader's appends (the followers write while the leader does), apply committed
//! entries, hand the new entries and hard state to the log writer thread ([`crate::persist`])
//! and go on. The ready's other messages (acknowledgements, votes) wait until the writer
//! reports it **written and fsynced**; only then are they sent and raft told
//! (`on_persist_ready`), which is when a leader counts its own copy towards a commit. The loop
//! is never blocked by an fsync: it keeps taking in commands, sending and applying, and the
//! writer puts every ready that arrived during one fsync into the next (group commit).
//! Committed means stored by a majority (the leader's own copy counted only once fsynced), so
//! a minority side of a partition commits nothing and grants nothing, and raft applies an
//! entry here only once it is also fsynced here.
//!
//! A forwarded batch can be lost (the leader dies or loses its term before the entry is
//! committed). So every command carries its proposer's sequence number, the proposer keeps its
//! commands until it sees them applied, and sends them all again, in order, when the leader
//! changes or nothing was applied for a while; every replica skips a command whose sequence
//! number it has applied already (the table of last sequence numbers is replicated state: it is
//! in the snapshot). A client's request is therefore applied exactly once, even across a
//! failover, and its answer is never lost while its node lives.
//!
//! A node that was cut off (no word from a leader for half a lease) or that had to take the
//! leader's snapshot does not hand its clients what it applies while catching up: a grant
//! committed before the cut may have been overtaken since (the session expired and the lock
//! went to someone else). Its clients are disconnected instead ([`Replication::take_reset`]),
//! and reconnect. A leader election alone does not trigger this: it is shorter than half a
//! lease, and the replicated clock does not move without a leader, so no lease runs out
//! meanwhile. What no lock manager can rule out (a client that stalls longer than its lease)
//! the fencing tokens catch. Log compaction writes a snapshot of the state machine every
//! `snapshot_every` entries; a follower too far behind receives it.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bincode::{Decode, Encode};
use log::Level;
use lvs_common::event;
use lvs_lockcore::{Command, NodeId, Snapshot as StateSnapshot, StateMachine};
use lvs_proto::FrameLimit;
use raft::eraftpb::{Entry, EntryType, Message};
use raft::{RawNode, StateRole};

use crate::node::{Applied, Membership, Origin, ProposeError, Replication};
use crate::peer::{PeerMsg, PeerNet};
use crate::persist::{Counters, Persister};
use crate::raftlog::DiskLog;
use crate::storage::StorageError;

/// Largest batch (one Raft entry, or one forwarded frame).
fn batch_limit() -> FrameLimit {
    FrameLimit::new(8 << 20)
}

/// Commands of ours not yet applied are dropped beyond this (a node cut off for very long).
const MAX_UNACKED: usize = 100_000;
/// Send our unapplied commands again after this long without progress.
const RETRY_AFTER: Duration = Duration::from_secs(3);

/// The election timeout's lower bound in ticks of the daemon's clock; raft draws each timeout
/// between this and twice this.
pub const ELECTION_TICKS: usize = 10;

/// One command as it travels in a Raft entry.
#[derive(Debug, Clone, Encode, Decode)]
struct Item {
    /// The node that proposed it (answers `origin`).
    proposer: u64,
    /// The proposer's incarnation (starts of the daemon): with `proposer`, whose `seq` it is.
    epoch: u64,
    /// Increases by one for each command of the proposer's incarnation.
    seq: u64,
    /// `(session, request, answered_later)` of the local request it answers.
    origin: Option<(u64, u64, bool)>,
    cmd: Command,
}

/// The data of one Raft entry: the commands of one turn of one node's loop.
#[derive(Debug, Clone, Encode, Decode)]
struct Batch {
    items: Vec<Item>,
}

fn encode_batch(items: Vec<Item>) -> Result<Vec<u8>, lvs_proto::ProtoError> {
    lvs_lockcore::codec::encode(&Batch { items }, batch_limit())
}

fn decode_batch(bytes: &[u8]) -> Result<Batch, lvs_proto::ProtoError> {
    lvs_lockcore::codec::decode(bytes, batch_limit())
}

/// The replicated state in a Raft snapshot: the lock state and the deduplication table.
#[derive(Debug, Encode, Decode)]
struct SnapData {
    /// [`StateSnapshot::to_bytes`].
    state: Vec<u8>,
    /// `(proposer, epoch, last applied seq)`.
    applied_seqs: Vec<(u64, u64, u64)>,
}

type Seqs = std::collections::BTreeMap<(u64, u64), u64>;

fn decode_snapshot(data: &[u8]) -> Result<(StateMachine, Seqs), String> {
    let d: SnapData =
        lvs_lockcore::codec::decode(data, FrameLimit::MAX).map_err(|e| e.to_string())?;
    let s = StateSnapshot::from_bytes(&d.state, FrameLimit::MAX).map_err(|e| e.to_string())?;
    let state = StateMachine::restore(s).map_err(|e| e.to_string())?;
    let seqs = d
        .applied_seqs
        .into_iter()
        .map(|(p, e, s)| ((p, e), s))
        .collect();
    Ok((state, seqs))
}

/// The cluster as configured.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// This node.
    pub id: u64,
    /// Every member with its peer address, this node included.
    pub members: Vec<(u64, SocketAddr)>,
    /// The shared key.
    pub key: lvs_common::authdgram::AuthKey,
    /// Write a snapshot (and shorten the log) after this many entries.
    pub snapshot_every: u64,
    /// This start of the daemon (counted in the state directory).
    pub incarnation: u64,
    /// Silence from the leader longer than this means this node was cut off: the answers it
    /// would give its clients while catching up may be stale (see [`Replication::take_reset`]).
    pub catch_up_gap: Duration,
    /// fsync the log (off only for tests and benchmarks).
    pub fsync: bool,
}

/// This node's replica of the lock state.
pub struct RaftNode {
    id: u64,
    members: Vec<u64>,
    raw: RawNode<DiskLog>,
    net: PeerNet,
    state: StateMachine,
    applied_index: u64,
    snapshot_every: u64,
    epoch: u64,
    next_seq: u64,
    /// Our commands not yet seen applied, in order.
    unacked: VecDeque<Item>,
    /// How many of `unacked` went to the current leader.
    sent: usize,
    /// When `unacked` last went out in full, or last made progress.
    progress_at: Instant,
    /// The leader, term and connection to it ([`PeerNet::generation`]) the sent ones went
    /// to: a new connection may have lost what was sent on the old one.
    sent_to: (u64, u64, u64),
    /// Other nodes' commands forwarded to us.
    forwarded: Vec<Item>,
    /// The last seq applied per (proposer, epoch): replicated state.
    applied_seqs: Seqs,
    applied: VecDeque<Applied>,
    last_leader: u64,
    last_role: StateRole,
    compact_failed_at: Option<Instant>,
    /// A snapshot replaced the state, or the node catches up after being cut off (see
    /// [`Replication::take_reset`]).
    reset: bool,
    /// When a leader (or this node as leader) was last heard; None before the first time.
    leader_contact: Option<Instant>,
    catch_up_gap: Duration,
    /// Since when this node knows no leader (seen once per turn); None while it knows one.
    leaderless_since: Option<Instant>,
    /// Writes and fsyncs the log off the loop.
    writer: Persister,
    /// Persisted messages of readies not yet written: (the writer's number that covers the
    /// ready, the ready's number, its messages), in order.
    unwritten: VecDeque<(u64, u64, Vec<Message>)>,
}

impl std::fmt::Debug for RaftNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftNode")
            .field("id", &self.id)
            .field("applied_index", &self.applied_index)
            .finish_non_exhaustive()
    }
}

/// Why Raft mode cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The stored log.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The stored snapshot of the state machine.
    #[error("the Raft snapshot does not hold a lock state: {0}")]
    Snapshot(String),
    /// raft refused the configuration or the stored state.
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    /// The peer listener or threads.
    #[error("peer network: {0}")]
    Net(#[from] io::Error),
}

impl RaftNode {
    /// Opens the log in `state_dir`, restores the state machine from its snapshot, starts the
    /// peer network. Committed entries after the snapshot are applied again by the Ready loop.
    pub fn start(
        cfg: &ClusterConfig,
        state_dir: &std::path::Path,
        registry: &mio::Registry,
        waker: Arc<mio::Waker>,
    ) -> Result<RaftNode, StartError> {
        let voters: Vec<u64> = cfg.members.iter().map(|(id, _)| *id).collect();
        let log = DiskLog::open(&state_dir.join("raft"), cfg.fsync, &voters)?;
        let snap = log.snapshot_ref();
        let applied = snap.get_metadata().index;
        let (state, applied_seqs) = if snap.data.is_empty() {
            (StateMachine::new(), Seqs::new())
        } else {
            decode_snapshot(&snap.data).map_err(StartError::Snapshot)?
        };
        // Election timeout 10 to 20 ticks (of the daemon's tick_ms); heartbeats every 2.
        let config = raft::Config {
            id: cfg.id,
            election_tick: ELECTION_TICKS,
            heartbeat_tick: 2,
            applied,
            pre_vote: true,
            check_quorum: true,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            // Appends to one follower within a turn (commit broadcasts after acknowledgements,
            // then the turn's new entry) go as one message.
            batch_append: true,
            ..Default::default()
        };
        config.validate()?;
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let wake = Arc::clone(&waker);
        let writer = Persister::start("lock-log-writer", log.file(), log.fsyncs(), move || {
            let _ = wake.wake();
        })?;
        let raw = RawNode::new(&config, log, &logger)?;
        let listen = cfg
            .members
            .iter()
            .find(|(id, _)| *id == cfg.id)
            .map(|(_, a)| *a)
            .ok_or_else(|| io::Error::other("this node is not among the members"))?;
        let peers: Vec<(u64, SocketAddr)> = cfg
            .members
            .iter()
            .filter(|(id, _)| *id != cfg.id)
            .copied()
            .collect();
        let net = PeerNet::start(cfg.id, listen, &peers, cfg.key.clone(), registry, waker)?;
        Ok(RaftNode {
            id: cfg.id,
            members: voters,
            raw,
            net,
            state,
            applied_index: applied,
            snapshot_every: cfg.snapshot_every,
            epoch: cfg.incarnation,
            next_seq: 1,
            unacked: VecDeque::new(),
            sent: 0,
            progress_at: Instant::now(),
            sent_to: (0, 0, 0),
            forwarded: Vec::new(),
            applied_seqs,
            applied: VecDeque::new(),
            last_leader: 0,
            last_role: StateRole::Follower,
            compact_failed_at: None,
            reset: false,
            leader_contact: None,
            catch_up_gap: cfg.catch_up_gap,
            leaderless_since: Some(Instant::now()),
            writer,
            unwritten: VecDeque::new(),
        })
    }

    /// The writer wrote (and fsynced) up to `written`: the readies it covers are persisted,
    /// their messages go out and raft hears of it.
    fn on_written(&mut self, written: u64) {
        let mut persisted = written;
        while self
            .unwritten
            .front()
            .is_some_and(|(at, _, _)| *at <= written)
        {
            let Some((_, number, msgs)) = self.unwritten.pop_front() else {
                break;
            };
            persisted = persisted.max(number);
            self.send_all(msgs);
        }
        self.raw.on_persist_ready(persisted);
    }

    /// Takes in what the writer finished since the last call.
    fn take_written(&mut self) -> io::Result<()> {
        if let Some(n) = self.writer.completed()? {
            self.on_written(n);
        }
        Ok(())
    }

    /// Blocks until the writer has written everything handed to it (before a rewrite of the
    /// log file, and at a stop).
    fn wait_written(&mut self) -> io::Result<()> {
        if let Some(n) = self.writer.wait_idle()? {
            self.on_written(n);
        }
        Ok(())
    }

    fn leader(&self) -> u64 {
        self.raw.raft.leader_id
    }

    fn send_all(&mut self, msgs: Vec<Message>) {
        for m in msgs {
            let to = m.to;
            let is_snapshot = m.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot;
            if !self.net.send_raft(&m) {
                self.raw.report_unreachable(to);
                if is_snapshot {
                    self.raw.report_snapshot(to, raft::SnapshotStatus::Failure);
                }
            }
        }
    }

    /// Proposes or forwards what this turn collected, and ours again if they may be lost.
    fn flush_batch(&mut self) -> Result<(), ProposeError> {
        let leader = self.leader();
        let term = self.raw.raft.term;
        let to = (leader, term, self.net.generation(leader));
        if to != self.sent_to || (self.sent > 0 && self.progress_at.elapsed() >= RETRY_AFTER) {
            // A new leader (or none), a new connection to it, or no progress: whatever went
            // out may be lost. All of ours go again, in order: a replica skips a command whose
            // sequence number it applied, so a lost one must never be overtaken.
            self.sent = 0;
            self.sent_to = to;
        }
        let mut items = std::mem::take(&mut self.forwarded);
        let before = self.sent;
        if leader != 0 && self.sent < self.unacked.len() {
            if self.sent == 0 {
                self.progress_at = Instant::now();
            }
            items.extend(self.unacked.iter().skip(self.sent).cloned());
            self.sent = self.unacked.len();
        }
        if items.is_empty() {
            return Ok(());
        }
        let data = encode_batch(items).map_err(|e| ProposeError::Unavailable(e.to_string()))?;
        if self.raw.raft.state == StateRole::Leader {
            if let Err(e) = self.raw.propose(Vec::new(), data) {
                log::debug!("proposal dropped: {e}");
                self.sent = before;
            }
        } else if leader != 0 && !self.net.send_forward(leader, &data) {
            log::debug!("forward to node {leader} dropped");
            self.sent = before;
        }
        // Without a leader, others' commands are dropped: their proposers send them again.
        Ok(())
    }

    fn apply_entries(&mut self, entries: Vec<Entry>) {
        for e in entries {
            if e.index <= self.applied_index {
                continue;
            }
            self.applied_index = e.index;
            if e.get_entry_type() != EntryType::EntryNormal || e.data.is_empty() {
                continue;
            }
            let batch = match decode_batch(&e.data) {
                Ok(b) => b,
                Err(err) => {
                    event!(
                        Level::Error,
                        "lock_entry_undecodable",
                        index = e.index,
                        error = err
                    );
                    continue;
                }
            };
            for item in batch.items {
                let last = self
                    .applied_seqs
                    .entry((item.proposer, item.epoch))
                    .or_insert(0);
                if item.seq <= *last {
                    continue;
                }
                *last = item.seq;
                if item.proposer == self.id && item.epoch == self.epoch {
                    while self.unacked.front().is_some_and(|u| u.seq <= item.seq) {
                        self.unacked.pop_front();
                        self.sent = self.sent.saturating_sub(1);
                        self.progress_at = Instant::now();
                    }
                }
                let outputs = self.state.apply(&item.cmd);
                let origin = if item.proposer == self.id && item.epoch == self.epoch {
                    item.origin
                        .map(|(session, request, answered_later)| Origin {
                            session: lvs_lockcore::SessionId(session),
                            request,
                            answered_later,
                        })
                } else {
                    None
                };
                self.applied.push_back(Applied {
                    index: e.index,
                    origin,
                    outputs,
                });
            }
        }
    }

    fn install(&mut self, snap: raft::eraftpb::Snapshot) -> Result<(), ProposeError> {
        let index = snap.get_metadata().index;
        let (state, seqs) = match decode_snapshot(&snap.data) {
            Ok(s) => s,
            Err(e) => {
                return Err(ProposeError::Unavailable(format!(
                    "the leader's snapshot is unusable: {e}"
                )));
            }
        };
        self.raw
            .mut_store()
            .install_snapshot(snap)
            .map_err(|e| ProposeError::Log(io::Error::other(e.to_string())))?;
        self.state = state;
        self.reset = true;
        self.applied_seqs = seqs;
        self.applied_index = index;
        // Ours that the snapshot covers are applied.
        let done = self
            .applied_seqs
            .get(&(self.id, self.epoch))
            .copied()
            .unwrap_or(0);
        while self.unacked.front().is_some_and(|u| u.seq <= done) {
            self.unacked.pop_front();
            self.sent = self.sent.saturating_sub(1);
        }
        event!(
            Level::Info,
            "lock_snapshot_installed",
            applied_index = index
        );
        Ok(())
    }

    /// Handles one ready; false if there was none.
    fn handle_ready(&mut self) -> Result<bool, ProposeError> {
        if !self.raw.has_ready() {
            return Ok(false);
        }
        let mut ready = self.raw.ready();
        let number = ready.number();
        let snapshot = !ready.snapshot().is_empty();
        if snapshot {
            // The snapshot rewrites the log file: the writer must be done with it.
            self.wait_written()?;
            self.install(ready.snapshot().clone())?;
        }
        // The leader's appends go out before its own write (Raft thesis §10.2.1), so that the
        // followers write in parallel with it: raft counts the leader's own copy towards a
        // commit only once on_persist_ready reports it written. A follower has none of these:
        // its acknowledgements and votes are persisted messages, sent once written.
        let early = ready.take_messages();
        self.send_all(early);
        // Committed here means committed and persisted on this node (raft's bound).
        self.apply_entries(ready.take_committed_entries());
        let records = self.raw.mut_store().stage(ready.entries(), ready.hs())?;
        let persisted = ready.take_persisted_messages();
        let covered_by = if records.is_empty() {
            // Nothing to write: persisted once everything handed over before it is.
            self.writer.submitted()
        } else {
            self.writer.submit(number, records, ready.must_sync())?;
            number
        };
        self.raw.advance_append_async(ready);
        if covered_by <= self.writer.written() {
            self.raw.on_persist_ready(number);
            self.send_all(persisted);
        } else {
            self.unwritten.push_back((covered_by, number, persisted));
        }
        if snapshot {
            // Raft takes the snapshot for applied only once it is persisted.
            self.wait_written()?;
        }
        self.raw.advance_apply();
        Ok(true)
    }

    fn note_role(&mut self) {
        let leader = self.leader();
        let role = self.raw.raft.state;
        if leader == 0 {
            self.leaderless_since.get_or_insert_with(Instant::now);
        } else {
            self.leaderless_since = None;
        }
        if leader != self.last_leader || role != self.last_role {
            event!(
                Level::Info,
                "lock_raft_role",
                node = self.id,
                role = format!("{role:?}").to_lowercase(),
                term = self.raw.raft.term,
                leader = leader,
            );
            self.last_leader = leader;
            self.last_role = role;
        }
    }
}

impl Replication for RaftNode {
    fn propose(&mut self, cmd: Command, origin: Option<Origin>) -> Result<(), ProposeError> {
        if self.unacked.len() >= MAX_UNACKED {
            self.unacked.pop_front();
            self.sent = self.sent.saturating_sub(1);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.unacked.push_back(Item {
            proposer: self.id,
            epoch: self.epoch,
            seq,
            origin: origin.map(|o| (o.session.0, o.request, o.answered_later)),
            cmd,
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
        // Entries are persisted in the Ready loop before they can be committed or applied.
        Ok(())
    }

    fn needs_sync(&self) -> bool {
        false
    }

    fn maintain(&mut self) -> Result<(), StorageError> {
        if self.raw.store().records() < self.snapshot_every {
            return Ok(());
        }
        self.compact_now()
    }

    fn shutdown(&mut self) -> Result<(), StorageError> {
        // A clean stop leaves a snapshot, so that the next start replays little.
        self.compact_failed_at = None;
        self.compact_now()
    }

    fn compact_now(&mut self) -> Result<(), StorageError> {
        if self.applied_index <= self.raw.store().snapshot_index() {
            return Ok(());
        }
        // The rewrite replaces the log file: the writer must be done with it.
        self.wait_written().map_err(|source| StorageError::Io {
            what: "cannot write the Raft log".to_owned(),
            source,
        })?;
        if self
            .compact_failed_at
            .is_some_and(|t| t.elapsed() < Duration::from_secs(10))
        {
            return Ok(());
        }
        let encode_err = |e: String| StorageError::Io {
            what: "cannot encode the snapshot".to_owned(),
            source: io::Error::other(e),
        };
        let state = self
            .state
            .snapshot()
            .to_bytes(FrameLimit::MAX)
            .map_err(|e| encode_err(e.to_string()))?;
        let snap = SnapData {
            state,
            applied_seqs: self
                .applied_seqs
                .iter()
                .map(|(&(p, e), &s)| (p, e, s))
                .collect(),
        };
        let data = lvs_lockcore::codec::encode(&snap, FrameLimit::MAX)
            .map_err(|e| encode_err(e.to_string()))?;
        let index = self.applied_index;
        match self.raw.mut_store().compact(index, data) {
            Ok(()) => {
                self.compact_failed_at = None;
                log::debug!("raft log compacted to {index}");
                Ok(())
            }
            Err(e) => {
                self.compact_failed_at = Some(Instant::now());
                Err(e)
            }
        }
    }

    fn membership(&self) -> Membership {
        let leader = self.leader();
        Membership {
            mode: "raft",
            members: self.members.iter().map(|&id| NodeId(id)).collect(),
            leader: (leader != 0).then_some(NodeId(leader)),
        }
    }

    fn tick(&mut self) {
        self.raw.tick();
    }

    fn take_reset(&mut self) -> bool {
        std::mem::take(&mut self.reset)
    }

    fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    fn leaderless_for(&self) -> Option<Duration> {
        self.leaderless_since.map(|t| t.elapsed())
    }

    fn peer_event(&mut self, token: mio::Token) {
        self.net.ready(token);
    }

    fn log_counters(&self) -> Option<&Counters> {
        Some(self.writer.counters())
    }

    fn process(&mut self) -> Result<(), ProposeError> {
        let now = Instant::now();
        if self.is_leader() {
            self.leader_contact = Some(now);
        }
        for (from, msg) in self.net.receive() {
            match msg {
                PeerMsg::Raft(m) => {
                    use raft::eraftpb::MessageType as T;
                    let from_leader = matches!(
                        m.get_msg_type(),
                        T::MsgAppend | T::MsgHeartbeat | T::MsgSnapshot
                    ) && m.term >= self.raw.raft.term;
                    if from_leader {
                        // Cut off for a while: what the catch-up applies may have been
                        // overtaken already (a grant whose session expired meanwhile).
                        if self
                            .leader_contact
                            .is_some_and(|t| now.duration_since(t) > self.catch_up_gap)
                        {
                            event!(
                                Level::Warn,
                                "lock_catching_up",
                                node = self.id,
                                silent_ms = self
                                    .leader_contact
                                    .map_or(0, |t| now.duration_since(t).as_millis()),
                            );
                            self.reset = true;
                        }
                        self.leader_contact = Some(now);
                    }
                    if let Err(e) = self.raw.step(m) {
                        log::debug!("raft message from node {from} ignored: {e}");
                    }
                }
                PeerMsg::Forward(bytes) => match decode_batch(&bytes) {
                    Ok(b) => self.forwarded.extend(b.items),
                    Err(e) => log::warn!("undecodable forwarded batch from node {from}: {e}"),
                },
            }
        }
        self.take_written()?;
        self.flush_batch()?;
        // A ready handled at once (nothing to write) can make another (commits, appends).
        for _ in 0..4 {
            if !self.handle_ready()? {
                break;
            }
        }
        // One write per peer for everything this turn sends.
        self.net.flush();
        self.note_role();
        Ok(())
    }
}
