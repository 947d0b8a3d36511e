//! The `lvs-lockmgr` daemon: one `mio` loop serving `<rundir>/lockmgr.sock`.
//!
//! Each connection is a session: its Hello opens one ([`Command::OpenSession`]) and its
//! closing, for whatever reason, closes it ([`Command::CloseSession`]), so the locks of a
//! client that died go at once. A tick every `tick_ms` proposes [`Command::Tick`] (request
//! timeouts, leases) and, every third of a lease, [`Command::Heartbeat`] for this node.
//!
//! Every turn of the loop: handle readiness, propose what it asks, route the applied outputs
//! into the connections' buffers, **sync the log** (single node; one fsync for every command
//! of the turn), and only then write the buffers out. So no client ever sees a grant (or its
//! token) that a crash could take back. In Raft mode the outputs come from entries already
//! durable on a majority, and the log is written by a writer thread off the loop
//! ([`crate::persist`], [`crate::replica`]).
//!
//! With `peers` in the configuration the state is replicated ([`crate::replica`]): proposals
//! of one turn become one Raft entry, a follower forwards them to the leader, and outputs come
//! from committed entries (durable on a majority) as they are applied here. The Raft clock
//! ticks with the daemon's tick; only the leader proposes [`Command::Tick`], continuing the
//! replicated clock from where it found it, by its monotonic clock in capped steps
//! ([`crate::leaderclock`]). Every node heartbeats for its own sessions under a
//! lease owner of its current life (`node_id * 1000 + incarnation`), so the sessions of a node
//! that died expire after their lease, even if it restarts at once. The Hello is answered at
//! once (status and list work on a node cut off from the leader); a session the cluster
//! expired while this node was cut off ends its client's connection with a clear error.
//! A no-wait lock that the cluster does not commit in time (no quorum) is answered
//! [`Reply::Unavailable`] from the tick ([`crate::nowait`]); a late grant of it is released.

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::Level;
use lvs_common::{BoxError, Signal, Signals, Startup, event, signals};
use lvs_lockcore::{
    CloseReason, Command, Denial, LockFlags, LockRef, LockRequest, MAX_NAME_LEN, NodeId, Output,
    SessionId, Target,
};
use lvs_proto::frame_server::{Flushed, FrameServer, FrameServerConfig, Input};
use lvs_proto::peer::AccessPolicy;
use lvs_proto::{FrameLimit, ProtoError, codec, rundir};
use mio::{Events, Poll, Token};

use crate::config::Config;
use crate::leaderclock::LeaderClock;
use crate::node::{Applied, Origin, Replication, SingleNode};
use crate::nowait::Bounds;
use crate::peer::load_key;
use crate::replica::{ClusterConfig, RaftNode};
use crate::storage::Storage;
use lvs_lockclient::protocol::{
    ClientInfo, ClientMsg, DAEMON, LOCK_PROTOCOL_VERSION, LockEvent, LockReq, Reply, ServerMsg,
    StatusInfo, reply_limit, request_limit,
};

/// Counts this node's starts (Raft mode), durably, so each life has its own lease owner and
/// session ids.
fn next_incarnation(state_dir: &std::path::Path) -> Result<u64, BoxError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .map_err(|e| format!("cannot create {}: {e}", state_dir.display()))?;
    let path = state_dir.join("incarnation");
    let last = match std::fs::read_to_string(&path) {
        Ok(t) => t
            .trim()
            .parse::<u64>()
            .map_err(|e| format!("{}: {e}", path.display()))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => return Err(format!("cannot read {}: {e}", path.display()).into()),
    };
    let next = last + 1;
    let tmp = state_dir.join("incarnation.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    writeln!(f, "{next}")?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(state_dir)?.sync_all()?;
    Ok(next)
}

const SIGNALS: Token = Token(0);
/// Raft mode: a peer connection was made, or the log writer finished a round.
const WAKE: Token = Token(2);
/// The socket's listener; its connections follow.
const CLIENTS: usize = 3;
/// A client with more unsent bytes than this does not read: it is disconnected.
const WRITE_LIMIT: usize = 4 << 20;

/// What the daemon keeps per client connection (the socket and its buffers are the
/// [`FrameServer`]'s).
#[derive(Debug, Default)]
struct Conn {
    session: Option<SessionId>,
    name: String,
    /// Handle -> id of the `Lock` request waiting for its grant or denial.
    pending: HashMap<u64, u64>,
    /// Raft mode, handle -> (request id, arrival, conversion) of a no-wait `Lock` in
    /// `pending`: answered `Unavailable` if the cluster does not commit it in time.
    nowait: HashMap<u64, (u64, Instant, bool)>,
    /// Request id -> (handle, conversion) of a no-wait `Lock` answered `Unavailable` but
    /// perhaps applied later: its answer is never sent, a late grant is undone.
    abandoned: HashMap<u64, (u64, bool)>,
    /// The Hello was accepted but its session is not open yet (waits for its commit).
    opening: bool,
}

/// The daemon's state besides the replicated one.
struct Daemon {
    node: NodeId,
    /// The node whose heartbeats keep our sessions' leases: `node` in single-node mode; in
    /// Raft mode `node * 1000 + incarnation`, so the sessions of a previous life of this node
    /// are not kept alive by the new one and expire after their lease.
    lease_owner: NodeId,
    /// Raft mode: session ids come from a counter (no log index is known when a client says
    /// Hello); the incarnation keeps them unique across restarts.
    session_base: Option<u64>,
    session_seq: u64,
    repl: Box<dyn Replication>,
    /// The clients' socket: frames in, frames out (written after the sync, by `end_turn`).
    server: FrameServer<Conn>,
    sessions: HashMap<SessionId, usize>,
    access: AccessPolicy,
    lease_ms: u64,
    /// Connections with output to write after the next sync.
    to_flush: Vec<usize>,
    /// Connections to close at the end of this turn.
    to_close: Vec<(usize, String)>,
    /// While this node is the leader: the replicated clock it moves.
    leader_clock: Option<LeaderClock>,
    /// Raft mode: how long a no-wait request may wait for the cluster.
    nowait_bounds: Option<Bounds>,
    /// Grants of abandoned no-wait requests, to release.
    late_grants: Vec<LockRef>,
    last_sync: Instant,
}

/// The daemon's body, for [`lvs_common::run()`].
pub fn run(config: Config, startup: Startup<Config>) -> Result<(), BoxError> {
    let mut poll = Poll::new()?;
    let mut signals = Signals::new(poll.registry(), SIGNALS)?;
    let node = NodeId(config.node_id);

    let raft_mode = !config.peers.is_empty();
    let mut lease_owner = node;
    let mut session_base = None;
    let mut repl: Box<dyn Replication> = if raft_mode {
        let incarnation = next_incarnation(&config.state_dir)?;
        lease_owner = NodeId(config.node_id * 1000 + incarnation % 1000);
        session_base = Some((config.node_id << 40) | ((incarnation % 1000) << 30));
        let key_file = config.key_file.as_deref().ok_or("peers need key_file")?;
        let cluster = ClusterConfig {
            id: config.node_id,
            members: config.peers.iter().map(|p| (p.id, p.address)).collect(),
            key: load_key(key_file)?,
            snapshot_every: config.snapshot_every,
            incarnation,
            catch_up_gap: Duration::from_millis(config.lease_ms / 2),
            fsync: config.fsync,
        };
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKE)?);
        let r = RaftNode::start(&cluster, &config.state_dir, poll.registry(), waker)?;
        event!(
            Level::Info,
            "lock_state_recovered",
            state_dir = config.state_dir.display(),
            mode = "raft",
            applied_index = r.applied_index(),
            incarnation = incarnation,
        );
        Box::new(r)
    } else {
        let (storage, recovered) = Storage::open(&config.state_dir, config.fsync)?;
        event!(
            Level::Info,
            "lock_state_recovered",
            state_dir = config.state_dir.display(),
            applied_index = recovered.applied_index,
            replayed = recovered.replayed,
            next_token = recovered.state.next_token(),
        );
        let mut repl = Box::new(SingleNode::new(
            node,
            storage,
            recovered,
            config.snapshot_every,
        ));
        // The sessions of our previous life: their clients' sockets are gone.
        let stale: Vec<SessionId> = repl
            .state()
            .sessions()
            .iter()
            .filter(|s| s.node == node)
            .map(|s| s.session)
            .collect();
        for session in &stale {
            repl.propose(Command::CloseSession { session: *session }, None)?;
        }
        if !stale.is_empty() {
            event!(
                Level::Info,
                "lock_stale_sessions_closed",
                sessions = stale.len()
            );
        }
        repl
    };
    for name in &config.lockspaces {
        repl.propose(Command::CreateLockspace { name: name.clone() }, None)?;
    }
    repl.take_applied();
    repl.make_durable()?;

    let group = match &config.client_group {
        Some(name) => Some(
            nix::unistd::Group::from_name(name)?
                .ok_or_else(|| format!("client_group {name}: no such group"))?
                .gid,
        ),
        None => None,
    };
    let socket_path = rundir::socket_path(startup.rundir(), DAEMON);
    let mut server = FrameServer::bind(FrameServerConfig {
        daemon: DAEMON.to_owned(),
        socket_path: socket_path.clone(),
        group,
        read_limit: request_limit(),
        token_base: CLIENTS,
        write_buffer_limit: WRITE_LIMIT,
    })?;
    server.register(poll.registry())?;

    let mut d = Daemon {
        node,
        lease_owner,
        session_base,
        session_seq: 0,
        repl,
        server,
        sessions: HashMap::new(),
        access: group.map_or_else(AccessPolicy::root_only, AccessPolicy::root_and_group),
        lease_ms: config.lease_ms,
        to_flush: Vec::new(),
        to_close: Vec::new(),
        leader_clock: None,
        nowait_bounds: raft_mode.then(|| Bounds::for_tick(Duration::from_millis(config.tick_ms))),
        late_grants: Vec::new(),
        last_sync: Instant::now(),
    };
    // Everything that needs root is open: become the configured user, with the state
    // directory given to it (the log and snapshots are written there from now on).
    if let Some(run_as) = &config.run_as {
        run_as.give(&config.state_dir)?;
        run_as.become_user()?;
    }
    let ctx = startup.ready();
    event!(
        Level::Info,
        "lock_serving",
        socket = socket_path.display(),
        node = config.node_id,
        mode = if raft_mode { "raft" } else { "single-node" },
        next_token = d.repl.state().next_token(),
    );

    let mut config = config;
    let tick = Duration::from_millis(config.tick_ms);
    let heartbeat_every = Duration::from_millis((config.lease_ms / 3).clamp(1, 1000));
    let mut next_tick = Instant::now() + tick;
    let mut next_heartbeat = Instant::now();
    let mut events = Events::with_capacity(256);
    loop {
        // At most a tick: after the monotonic clock went back, `next_tick` is far ahead.
        let timeout = next_tick
            .saturating_duration_since(Instant::now())
            .min(tick);
        signals::poll(&mut poll, &mut events, Some(timeout))?;
        for ev in events.iter() {
            match ev.token() {
                SIGNALS => {
                    for signal in signals.pending() {
                        match signal {
                            Signal::Stop => {
                                // The socket file goes with the server (if still ours).
                                d.stop()?;
                                return Ok(());
                            }
                            Signal::Reload => {
                                if let Some(new) = ctx.reload() {
                                    if new.state_dir != config.state_dir
                                        || new.node_id != config.node_id
                                        || new.peers != config.peers
                                        || new.key_file != config.key_file
                                    {
                                        event!(
                                            Level::Warn,
                                            "lock_reload_partial",
                                            reason = "node_id, state_dir, peers and key_file change only at restart"
                                        );
                                    }
                                    d.lease_ms = new.lease_ms;
                                    config = new;
                                }
                            }
                            Signal::Dump => d.dump(),
                        }
                    }
                }
                WAKE => {}
                // Peer connections: read and written by the Raft turn (end_turn).
                token if crate::peer::PeerNet::owns(token) => d.repl.peer_event(token),
                token if d.server.owns(token) => d.conn_ready(ev),
                Token(_) => {}
            }
        }
        let now = Instant::now();
        // Also when the clock went back further than a tick (or a heartbeat interval): the
        // next one is then due a tick from now, not when the clock is back where it was.
        if now >= next_tick || next_tick > now + tick {
            next_tick = now + tick;
            d.repl.tick();
            if now >= next_heartbeat || next_heartbeat > now + heartbeat_every {
                next_heartbeat = now + heartbeat_every;
                d.propose(
                    Command::Heartbeat {
                        node: d.lease_owner,
                    },
                    None,
                )?;
            }
            d.expire_nowait(now);
            // Only the leader moves the replicated clock, from where it found it.
            if d.repl.is_leader() {
                let now_ms = d.now_ms();
                d.propose(Command::Tick { now_ms }, None)?;
            } else {
                d.leader_clock = None;
            }
        }
        d.end_turn()?;
    }
}

impl Daemon {
    /// The state of open connection `key`.
    fn conn_mut(&mut self, key: usize) -> &mut Conn {
        self.server.state_mut(key).expect("an open connection")
    }

    fn now_ms(&mut self) -> u64 {
        let state_now = self.repl.state().now_ms();
        let now = Instant::now();
        // A step of at most a heartbeat interval: a jump of this node's clock ends no lease.
        let max_step = Duration::from_millis((self.lease_ms / 3).clamp(1, 1000));
        self.leader_clock
            .get_or_insert_with(|| LeaderClock::new(state_now, now))
            .read(now, state_now, max_step)
    }

    /// Proposes a command and routes everything applied so far.
    fn propose(&mut self, cmd: Command, origin: Option<Origin>) -> Result<(), BoxError> {
        if let Err(e) = self.repl.propose(cmd, origin) {
            event!(Level::Error, "lock_log_failed", error = e);
            return Err(e.into());
        }
        let applied = self.repl.take_applied();
        self.route_all(applied);
        Ok(())
    }

    /// The end of a turn: closes what must close, syncs the log, then writes to clients.
    fn end_turn(&mut self) -> Result<(), BoxError> {
        if let Err(e) = self.repl.process() {
            event!(Level::Error, "lock_log_failed", error = e);
            return Err(e.into());
        }
        // A reset first: its clients are told before any answer from the catch-up reaches them.
        if self.repl.take_reset() {
            // Caught up from the leader's snapshot: the answers to our clients' requests in
            // the entries it covers are lost, so they must start over.
            let keys: Vec<usize> = self
                .server
                .iter()
                .filter(|(k, _, c)| c.session.is_some() && !self.server.is_ending(*k))
                .map(|(k, _, _)| k)
                .collect();
            for key in keys {
                self.fatal(
                    key,
                    "this node was cut off from the cluster and is catching up: reconnect (the locks of this session are released)".to_owned(),
                );
            }
        }
        let applied = self.repl.take_applied();
        self.route_all(applied);
        for lock in std::mem::take(&mut self.late_grants) {
            self.propose(Command::Unlock { lock, lvb: None }, None)?;
        }
        while let Some((key, reason)) = self.to_close.pop() {
            self.close(key, &reason)?;
        }
        let due = !self.to_flush.is_empty() || self.last_sync.elapsed() >= Duration::from_secs(1);
        if self.repl.needs_sync() && due {
            if let Err(e) = self.repl.make_durable() {
                event!(Level::Error, "lock_log_failed", error = e);
                return Err(e.into());
            }
            self.last_sync = Instant::now();
        }
        let mut keys = std::mem::take(&mut self.to_flush);
        keys.sort_unstable();
        keys.dedup();
        for key in keys {
            self.flush(key);
        }
        // Closing may have granted locks to others: route, sync and write again.
        if !self.to_close.is_empty() || !self.to_flush.is_empty() {
            return self.end_turn();
        }
        if let Err(e) = self.repl.maintain() {
            event!(Level::Error, "lock_snapshot_failed", error = e);
        }
        Ok(())
    }

    fn stop(&mut self) -> Result<(), BoxError> {
        let keys: Vec<usize> = self.server.iter().map(|(k, _, _)| k).collect();
        for key in keys {
            self.close(key, "daemon stopping")?;
        }
        // Raft mode: give the closes a moment to commit (else the leases end them).
        let deadline = Instant::now() + Duration::from_millis(500);
        while self.repl.membership().mode == "raft" && Instant::now() < deadline {
            self.repl.process()?;
            self.repl.take_applied();
            std::thread::sleep(Duration::from_millis(20));
        }
        self.repl.make_durable()?;
        self.repl.shutdown()?;
        event!(
            Level::Info,
            "lock_snapshot_written",
            applied_index = self.repl.applied_index(),
            next_token = self.repl.state().next_token(),
        );
        Ok(())
    }

    fn dump(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let c = self.repl.state().counts();
        let (batches, writes, syncs) = self.repl.log_counters().map_or((0, 0, 0), |w| {
            (
                w.submissions.load(Relaxed),
                w.rounds.load(Relaxed),
                w.syncs.load(Relaxed),
            )
        });
        event!(
            Level::Info,
            "lock_state",
            clients = self.server.len(),
            sessions = c.sessions,
            lockspaces = c.lockspaces,
            resources = c.resources,
            granted = c.granted,
            converting = c.converting,
            waiting = c.waiting,
            applied_index = self.repl.applied_index(),
            next_token = self.repl.state().next_token(),
            log_batches = batches,
            log_writes = writes,
            log_syncs = syncs,
        );
    }

    /// Reads what a client sent (or accepts new clients) and answers it; the answers are
    /// written after the next sync.
    fn conn_ready(&mut self, ev: &mio::event::Event) {
        if let Some(key) = self.server.conn_of(ev.token())
            && self.server.has_output(key)
        {
            self.to_flush.push(key);
        }
        // The access check waits for the Hello, whose refusal is a lock protocol Error.
        for input in self.server.ready(ev, |_| Ok(Conn::default())) {
            match input {
                Input::Accepted { .. } => {}
                Input::Dropped { error, .. } => {
                    event!(Level::Warn, "lock_client_refused", reason = error);
                }
                Input::AcceptFailed(error) => {
                    event!(Level::Warn, "lock_accept_failed", error = error);
                }
                // After a fatal error nothing more from this client counts: its Error frame
                // goes out, then the connection closes.
                Input::Frame { conn, .. } | Input::End { conn, .. }
                    if self.server.is_ending(conn) => {}
                Input::Frame { conn, body } => {
                    if let Err(message) = self.frame(conn, &body) {
                        self.fatal(conn, message);
                    }
                }
                Input::End {
                    conn,
                    error: ProtoError::Closed,
                } => self
                    .to_close
                    .push((conn, "closed by the client".to_owned())),
                Input::End {
                    conn,
                    error: error @ (ProtoError::Io { .. } | ProtoError::Truncated { .. }),
                } => self.to_close.push((conn, error.to_string())),
                Input::End { conn, error } => self.fatal(conn, error.to_string()),
            }
        }
    }

    /// Tells the client why, then closes its connection (and session).
    fn fatal(&mut self, key: usize, message: String) {
        if self.server.is_ending(key) {
            return;
        }
        let (Some(creds), Some(conn)) = (self.server.credentials(key), self.server.state(key))
        else {
            return;
        };
        event!(
            Level::Warn,
            "lock_client_error",
            pid = creds.pid,
            uid = creds.uid,
            session = conn.session.map_or(0, |s| s.0),
            error = message,
        );
        // The client must not act on any later answer: this is its last frame.
        let msg = ServerMsg::Error { message };
        if let Err(e) = self.server.queue_last(key, &msg, reply_limit()) {
            log::error!("cannot encode an error frame: {e}");
        }
        self.to_flush.push(key);
    }

    /// One frame from a client. `Err`: a protocol error that ends the connection.
    fn frame(&mut self, key: usize, body: &[u8]) -> Result<(), String> {
        let msg = match codec::decode_body::<ClientMsg>(body, request_limit()) {
            Ok(m) => m,
            Err(e) => {
                if let Some(v) = codec::peek_hello_version(body)
                    && v != LOCK_PROTOCOL_VERSION
                {
                    return Err(format!(
                        "lock protocol version {v} not supported; lvs-lockmgr speaks {LOCK_PROTOCOL_VERSION}"
                    ));
                }
                return Err(format!("malformed frame: {e}"));
            }
        };
        let session = self.conn_mut(key).session;
        match (msg, session) {
            (ClientMsg::Hello { version, name }, None) => self.hello(key, version, name),
            (ClientMsg::Hello { .. }, Some(_)) => Err("a second Hello".to_owned()),
            (ClientMsg::Request { .. }, None) => Err("the first frame must be a Hello".to_owned()),
            (ClientMsg::Request { id, request }, Some(session)) => {
                self.request(key, session, id, request)
            }
        }
    }

    fn hello(&mut self, key: usize, version: u32, name: String) -> Result<(), String> {
        if version != LOCK_PROTOCOL_VERSION {
            return Err(format!(
                "lock protocol version {version} not supported; lvs-lockmgr speaks {LOCK_PROTOCOL_VERSION}"
            ));
        }
        let Some(creds) = self.server.credentials(key) else {
            return Ok(());
        };
        self.access.check(&creds).map_err(|e| e.to_string())?;
        let session = match self.session_base {
            Some(base) => {
                self.session_seq += 1;
                SessionId(base | (self.session_seq & ((1 << 30) - 1)))
            }
            // Unique forever: the log index this OpenSession will have, with the node id on top.
            None => SessionId((self.node.0 << 40) | (self.repl.applied_index() + 1)),
        };
        self.sessions.insert(session, key);
        let conn = &mut self.conn_mut(key);
        conn.session = Some(session);
        conn.opening = true;
        conn.name = name.chars().take(64).collect();
        log::debug!("lock session {} opening for {}", session.0, creds);
        let cmd = Command::OpenSession {
            session,
            node: self.lease_owner,
            lease_ms: self.lease_ms,
        };
        self.propose(cmd, None).map_err(|e| e.to_string())?;
        if self.server.state(key).is_some_and(|c| c.opening) && !self.server.is_ending(key) {
            // Raft mode: HelloOk at once, so that status and list work on a node cut off from
            // the leader; this node's requests reach the log after its OpenSession, and a
            // refused open closes the connection (route).
            self.send(
                key,
                &ServerMsg::HelloOk {
                    version: LOCK_PROTOCOL_VERSION,
                    session,
                    node: self.node,
                },
            );
        }
        Ok(())
    }

    fn request(
        &mut self,
        key: usize,
        session: SessionId,
        id: u64,
        request: LockReq,
    ) -> Result<(), String> {
        let origin = |answered_later| Origin {
            session,
            request: id,
            answered_later,
        };
        match request {
            LockReq::Lock {
                handle,
                lockspace,
                resource,
                mode,
                flags,
                timeout_ms,
                lvb,
            } => {
                if self.conn_mut(key).pending.contains_key(&handle) {
                    let reason = Denial::BadRequest(format!(
                        "lock {handle} already has a request pending: wait for it or cancel it"
                    ));
                    self.reply(key, id, Reply::Denied { reason });
                    return Ok(());
                }
                if self
                    .conn_mut(key)
                    .abandoned
                    .values()
                    .any(|(h, _)| *h == handle)
                {
                    // Its abandoned request may still be applied: the two must not mix.
                    let reason = Denial::BadRequest(format!(
                        "lock {handle} has a request the cluster may still apply (answered: no quorum): use another handle"
                    ));
                    self.reply(key, id, Reply::Denied { reason });
                    return Ok(());
                }
                let nowait = self
                    .nowait_bounds
                    .filter(|_| flags.contains(LockFlags::NOQUEUE));
                if let Some(bounds) = nowait {
                    let now = Instant::now();
                    if let Some(reason) = bounds.verdict(now, now, self.repl.leaderless_for()) {
                        // Known at once: nothing is proposed, nothing to undo later.
                        self.unavailable(key, session, handle, id, Duration::ZERO, reason);
                        return Ok(());
                    }
                    let convert = flags.contains(LockFlags::CONVERT);
                    self.conn_mut(key).nowait.insert(handle, (id, now, convert));
                }
                let known = self.repl.state().lockspaces().contains(&lockspace);
                if !known && !lockspace.is_empty() && lockspace.len() <= MAX_NAME_LEN {
                    let cmd = Command::CreateLockspace {
                        name: lockspace.clone(),
                    };
                    self.propose(cmd, None).map_err(|e| e.to_string())?;
                }
                self.conn_mut(key).pending.insert(handle, id);
                let req = LockRequest {
                    lock: LockRef { session, handle },
                    lockspace,
                    resource,
                    mode,
                    flags,
                    timeout_ms,
                    lvb,
                };
                self.propose(Command::Lock(req), Some(origin(true)))
                    .map_err(|e| e.to_string())
            }
            LockReq::Unlock { handle, lvb } => {
                let cmd = Command::Unlock {
                    lock: LockRef { session, handle },
                    lvb,
                };
                self.propose(cmd, Some(origin(false)))
                    .map_err(|e| e.to_string())
            }
            LockReq::Cancel { handle } => {
                let cmd = Command::Cancel {
                    lock: LockRef { session, handle },
                };
                self.propose(cmd, Some(origin(false)))
                    .map_err(|e| e.to_string())
            }
            LockReq::List { lockspace } => {
                let state = self.repl.state();
                let names = match lockspace {
                    Some(ls) => vec![ls],
                    None => state.lockspaces(),
                };
                let resources = names
                    .iter()
                    .filter_map(|ls| state.resources(ls))
                    .flatten()
                    .collect();
                let reply = Reply::List {
                    resources,
                    sessions: state.sessions(),
                    clients: self.clients(),
                };
                self.reply(key, id, reply);
                Ok(())
            }
            LockReq::Status => {
                let m = self.repl.membership();
                let state = self.repl.state();
                let info = StatusInfo {
                    mode: m.mode.to_owned(),
                    node: self.node,
                    members: m.members,
                    leader: m.leader,
                    applied_index: self.repl.applied_index(),
                    next_token: state.next_token(),
                    now_ms: state.now_ms(),
                    counts: state.counts(),
                    clients: u64::try_from(self.sessions.len()).unwrap_or(u64::MAX),
                };
                self.reply(key, id, Reply::Status(info));
                Ok(())
            }
        }
    }

    /// Answers the no-wait requests the cluster did not commit in time (Raft mode); they are
    /// abandoned: a late answer is dropped and a late grant undone (see [`crate::nowait`]).
    fn expire_nowait(&mut self, now: Instant) {
        let Some(bounds) = self.nowait_bounds else {
            return;
        };
        let leaderless = self.repl.leaderless_for();
        let mut expired = Vec::new();
        for (key, conn) in self.server.iter_mut() {
            let Some(session) = conn.session else {
                continue;
            };
            let pending = &conn.pending;
            conn.nowait
                .retain(|handle, (id, _, _)| pending.get(handle) == Some(id));
            for (&handle, &(id, since, convert)) in &conn.nowait {
                if let Some(reason) = bounds.verdict(since, now, leaderless) {
                    expired.push((key, session, handle, id, since, convert, reason));
                }
            }
        }
        for (key, session, handle, id, since, convert, reason) in expired {
            let conn = &mut self.conn_mut(key);
            conn.nowait.remove(&handle);
            conn.pending.remove(&handle);
            let waited = now.saturating_duration_since(since);
            self.unavailable(key, session, handle, id, waited, reason);
            self.conn_mut(key).abandoned.insert(id, (handle, convert));
        }
    }

    /// Answers a no-wait request: the cluster cannot commit.
    fn unavailable(
        &mut self,
        key: usize,
        session: SessionId,
        handle: u64,
        id: u64,
        waited: Duration,
        reason: String,
    ) {
        event!(
            Level::Warn,
            "lock_no_quorum",
            session = session.0,
            handle = handle,
            waited_ms = waited.as_millis(),
            reason = reason,
        );
        self.reply(key, id, Reply::Unavailable { reason });
    }

    fn clients(&self) -> Vec<ClientInfo> {
        let mut v: Vec<ClientInfo> = self
            .server
            .iter()
            .filter_map(|(_, creds, c)| {
                c.session.map(|session| ClientInfo {
                    session,
                    pid: creds.pid.as_raw(),
                    uid: creds.uid.as_raw(),
                    name: c.name.clone(),
                })
            })
            .collect();
        v.sort_by_key(|c| c.session);
        v
    }

    /// Delivers one applied entry's outputs to the sessions they are about, and answers its
    /// origin's request.
    /// Routes applied entries. A node that was cut off applies, when it catches up, grants to
    /// its sessions that the same catch-up then expires: those clients are told the session
    /// expired, never of grants that were already superseded.
    fn route_all(&mut self, applied: Vec<Applied>) {
        let expired: std::collections::HashSet<SessionId> = applied
            .iter()
            .flat_map(|a| a.outputs.iter())
            .filter_map(|o| match o {
                Output::SessionClosed {
                    session,
                    reason: CloseReason::Expired,
                } if self.sessions.contains_key(session) => Some(*session),
                _ => None,
            })
            .collect();
        for mut a in applied {
            if !expired.is_empty() {
                a.outputs.retain(|o| match o {
                    Output::Granted { lock, .. }
                    | Output::Queued { lock, .. }
                    | Output::Blocking { lock, .. } => !expired.contains(&lock.session),
                    _ => true,
                });
            }
            self.route(a);
        }
    }

    fn route(&mut self, applied: Applied) {
        let mut answered = false;
        let origin = applied.origin;
        // An abandoned no-wait request applied after all: was it granted?
        let abandoned = origin.and_then(|o| {
            let key = *self.sessions.get(&o.session)?;
            let (handle, convert) = *self.server.state(key)?.abandoned.get(&o.request)?;
            let lock = LockRef {
                session: o.session,
                handle,
            };
            let granted = applied
                .outputs
                .iter()
                .any(|out| matches!(out, Output::Granted { lock: l, .. } if *l == lock));
            Some((key, o.request, lock, convert, granted))
        });
        for out in applied.outputs {
            match out {
                Output::Granted {
                    lock,
                    mode,
                    token,
                    lvb,
                } => {
                    let reply = Reply::Granted {
                        handle: lock.handle,
                        mode,
                        token,
                        lvb,
                    };
                    answered |= self.answer_pending(lock, origin, reply);
                }
                Output::Denied {
                    target: Target::Lock(lock),
                    reason,
                } => {
                    if reason.is_rejection()
                        && let Some(o) = origin
                        && o.session == lock.session
                    {
                        // A refused command: the answer to the request that proposed it.
                        if let Some(&key) = self.sessions.get(&o.session) {
                            let conn = &mut self.conn_mut(key);
                            if conn.pending.get(&lock.handle) == Some(&o.request) {
                                conn.pending.remove(&lock.handle);
                            }
                            self.reply(key, o.request, Reply::Denied { reason });
                        }
                        answered = true;
                    } else {
                        answered |= self.answer_pending(lock, origin, Reply::Denied { reason });
                    }
                }
                Output::Denied {
                    target: Target::Session(session),
                    reason,
                } if self
                    .sessions
                    .get(&session)
                    .is_some_and(|&k| self.server.state(k).is_some_and(|c| c.opening)) =>
                {
                    let key = self.sessions[&session];
                    self.fatal(key, format!("the session could not be opened: {reason}"));
                }
                Output::Denied { target, reason } => match origin {
                    Some(o) => {
                        if let Some(&key) = self.sessions.get(&o.session) {
                            self.reply(key, o.request, Reply::Denied { reason });
                        }
                        answered = true;
                    }
                    None => event!(
                        Level::Warn,
                        "lock_command_refused",
                        target = format!("{target:?}"),
                        reason = reason,
                    ),
                },
                Output::Queued { lock, mode } => {
                    let ev = LockEvent::Queued {
                        handle: lock.handle,
                        mode,
                    };
                    self.event(lock.session, &ev);
                }
                Output::Blocking {
                    lock,
                    granted,
                    blocked,
                } => {
                    let ev = LockEvent::Blocking {
                        handle: lock.handle,
                        granted,
                        blocked,
                    };
                    self.event(lock.session, &ev);
                }
                Output::Unlocked { lock } => {
                    // A request still waiting on the lock ended with it.
                    let reason = Denial::Cancelled;
                    answered |= self.answer_pending(lock, origin, Reply::Denied { reason });
                }
                Output::SessionOpened { session } => self.session_opened(session),
                Output::SessionClosed {
                    session,
                    reason: CloseReason::Expired,
                } => {
                    // Our node was cut off longer than the lease: the client's locks are gone.
                    if let Some(&key) = self.sessions.get(&session) {
                        self.fatal(
                            key,
                            "session expired: this node lost the cluster for longer than the lease; its locks were released".to_owned(),
                        );
                    }
                }
                Output::SessionClosed { .. }
                | Output::LockspaceReady { .. }
                | Output::LockspaceRemoved { .. } => {}
            }
        }
        if let Some(o) = origin
            && !answered
            && !o.answered_later
            && let Some(&key) = self.sessions.get(&o.session)
        {
            self.reply(key, o.request, Reply::Ok);
        }
        if let Some((key, request, lock, convert, granted)) = abandoned {
            if let Some(conn) = self.server.state_mut(key) {
                conn.abandoned.remove(&request);
            }
            if granted {
                event!(
                    Level::Info,
                    "lock_no_quorum_late_grant",
                    session = lock.session.0,
                    handle = lock.handle,
                    conversion = convert,
                );
                if convert {
                    // The client keeps the old mode in mind: only ending the session is safe.
                    self.fatal(key, format!("the conversion of lock {} was answered \"no quorum\" but granted later: the session ends (its locks are released)", lock.handle));
                } else {
                    self.late_grants.push(lock);
                }
            }
        }
    }

    /// A session of ours is open: the client may go on.
    fn session_opened(&mut self, session: SessionId) {
        let Some(&key) = self.sessions.get(&session) else {
            return;
        };
        let Some(conn) = self.server.state_mut(key) else {
            return;
        };
        if !conn.opening {
            return;
        }
        conn.opening = false;
        if self.session_base.is_none() {
            // Single node: applied at once, the HelloOk follows the open.
            self.send(
                key,
                &ServerMsg::HelloOk {
                    version: LOCK_PROTOCOL_VERSION,
                    session,
                    node: self.node,
                },
            );
        }
    }

    /// Answers the `Lock` request waiting on `lock`; true if that was the origin's request.
    fn answer_pending(&mut self, lock: LockRef, origin: Option<Origin>, reply: Reply) -> bool {
        let Some(&key) = self.sessions.get(&lock.session) else {
            return false;
        };
        let Some(id) = self.conn_mut(key).pending.remove(&lock.handle) else {
            log::debug!("no request waits for {lock}: {reply:?}");
            return false;
        };
        self.reply(key, id, reply);
        origin.is_some_and(|o| o.session == lock.session && o.request == id)
    }

    fn reply(&mut self, key: usize, id: u64, reply: Reply) {
        if self
            .server
            .state(key)
            .is_some_and(|c| c.abandoned.contains_key(&id))
        {
            // Answered "no quorum" already: one answer per request.
            return;
        }
        self.send(key, &ServerMsg::Reply { id, reply });
    }

    fn event(&mut self, session: SessionId, ev: &LockEvent) {
        if let Some(&key) = self.sessions.get(&session) {
            self.send(key, &ServerMsg::Event(ev.clone()));
        }
    }

    /// Queues a frame; it is written after the next sync.
    fn send(&mut self, key: usize, msg: &ServerMsg) {
        // After the Error frame nothing more: the client must not act on a later answer.
        if self.server.is_ending(key) {
            return;
        }
        if let Err(e) = self.server.queue(key, msg, reply_limit()) {
            log::error!("cannot encode a reply: {e}");
            let fallback = ServerMsg::Error {
                message: format!("reply too large: {e}"),
            };
            let _ = self.server.queue_last(key, &fallback, FrameLimit::DEFAULT);
        }
        self.to_flush.push(key);
    }

    fn flush(&mut self, key: usize) {
        match self.server.flush(key) {
            Ok(Flushed::All | Flushed::Partly) => {}
            Ok(Flushed::Last) => self.to_close.push((key, "protocol error".to_owned())),
            Err(e) => self.to_close.push((key, e.to_string())),
        }
    }

    /// Closes a connection and its session: its locks go at once.
    fn close(&mut self, key: usize, reason: &str) -> Result<(), BoxError> {
        let Some((creds, conn)) = self.server.close(key) else {
            return Ok(());
        };
        self.to_flush.retain(|k| *k != key);
        if let Some(session) = conn.session {
            self.sessions.remove(&session);
            log::debug!("lock session {} closed ({}): {reason}", session.0, creds);
            self.propose(Command::CloseSession { session }, None)?;
        }
        Ok(())
    }
}
