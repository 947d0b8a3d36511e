//! The `lvs-lockmgr` daemon: one `mio` loop serving `<rundir>/lockmgr.sock`.
//!
//! Each connection is a session: its Hello opens one ([`Command::OpenSession`]) and its
//! closing, for whatever reason, closes it ([`Command::CloseSession`]), so the locks of a
//! client that died go at once. A tick every `tick_ms` proposes [`Command::Tick`] (request
//! timeouts, leases) and, every third of a lease, [`Command::Heartbeat`] for this node.
//!
//! Every turn of the loop: handle readiness, propose what it asks, route the applied outputs
//! into the connections' buffers, **sync the log**, and only then write the buffers out. So no
//! client ever sees a grant (or its token) that a crash could take back.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use log::Level;
use lvs_common::{BoxError, Signal, Signals, Startup, event, signals};
use lvs_lockcore::{
    Command, Denial, LockRef, LockRequest, MAX_NAME_LEN, NodeId, Output, SessionId, Target,
};
use lvs_proto::frame::FrameDecoder;
use lvs_proto::peer::{AccessPolicy, Credentials};
use lvs_proto::{FrameLimit, codec, rundir};
use mio::net::{UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;

use crate::config::Config;
use crate::node::{Applied, Origin, Replication, SingleNode};
use crate::protocol::{
    ClientInfo, ClientMsg, DAEMON, LOCK_PROTOCOL_VERSION, LockEvent, LockReq, Reply, ServerMsg,
    StatusInfo, reply_limit, request_limit,
};
use crate::storage::Storage;

const SIGNALS: Token = Token(0);
const LISTENER: Token = Token(1);
const FIRST_CONN: usize = 2;
/// A client with more unsent bytes than this does not read: it is disconnected.
const WRITE_LIMIT: usize = 4 << 20;
const READ_CHUNK: usize = 16 * 1024;

#[derive(Debug)]
struct Conn {
    stream: UnixStream,
    creds: Credentials,
    session: Option<SessionId>,
    name: String,
    decoder: FrameDecoder,
    out: Vec<u8>,
    /// Handle -> id of the `Lock` request waiting for its grant or denial.
    pending: HashMap<u64, u64>,
    /// Close once `out` is written (after an Error frame).
    closing: bool,
    writable: bool,
}

/// The daemon's state besides the replicated one.
struct Daemon {
    node: NodeId,
    repl: Box<dyn Replication>,
    registry: Registry,
    listener: UnixListener,
    conns: Slab<Conn>,
    sessions: HashMap<SessionId, usize>,
    access: AccessPolicy,
    lease_ms: u64,
    /// Connections with output to write after the next sync.
    to_flush: Vec<usize>,
    /// Connections to close at the end of this turn.
    to_close: Vec<(usize, String)>,
    clock_base: u64,
    started: Instant,
    last_sync: Instant,
    scratch: Box<[u8]>,
}

/// The daemon's body, for [`lvs_common::run`].
pub fn run(config: Config, startup: Startup<Config>) -> Result<(), BoxError> {
    let mut poll = Poll::new()?;
    let mut signals = Signals::new(poll.registry(), SIGNALS)?;
    let node = NodeId(config.node_id);

    let (storage, recovered) = Storage::open(&config.state_dir, config.fsync)?;
    event!(
        Level::Info,
        "lock_state_recovered",
        state_dir = config.state_dir.display(),
        applied_index = recovered.applied_index,
        replayed = recovered.replayed,
        next_token = recovered.state.next_token(),
    );
    let mut repl: Box<dyn Replication> = Box::new(SingleNode::new(
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
    let std_listener = rundir::bind_socket(&socket_path, DAEMON, group)?;
    std_listener.set_nonblocking(true)?;
    let mut listener = UnixListener::from_std(std_listener);
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;

    let clock_base = repl.state().now_ms();
    let mut d = Daemon {
        node,
        repl,
        registry: poll.registry().try_clone()?,
        listener,
        conns: Slab::new(),
        sessions: HashMap::new(),
        access: group.map_or_else(AccessPolicy::root_only, AccessPolicy::root_and_group),
        lease_ms: config.lease_ms,
        to_flush: Vec::new(),
        to_close: Vec::new(),
        clock_base,
        started: Instant::now(),
        last_sync: Instant::now(),
        scratch: vec![0; READ_CHUNK].into_boxed_slice(),
    };
    let ctx = startup.ready();
    event!(
        Level::Info,
        "lock_serving",
        socket = socket_path.display(),
        node = config.node_id,
        mode = "single-node",
        next_token = d.repl.state().next_token(),
    );

    let mut config = config;
    let tick = Duration::from_millis(config.tick_ms);
    let heartbeat_every = Duration::from_millis((config.lease_ms / 3).clamp(1, 1000));
    let mut next_tick = Instant::now() + tick;
    let mut next_heartbeat = Instant::now();
    let mut events = Events::with_capacity(256);
    loop {
        let timeout = next_tick.saturating_duration_since(Instant::now());
        signals::poll(&mut poll, &mut events, Some(timeout))?;
        for ev in events.iter() {
            match ev.token() {
                SIGNALS => {
                    for signal in signals.pending() {
                        match signal {
                            Signal::Stop => {
                                d.stop()?;
                                let _ = std::fs::remove_file(&socket_path);
                                return Ok(());
                            }
                            Signal::Reload => {
                                if let Some(new) = ctx.reload() {
                                    if new.state_dir != config.state_dir
                                        || new.node_id != config.node_id
                                    {
                                        event!(
                                            Level::Warn,
                                            "lock_reload_partial",
                                            reason = "node_id and state_dir change only at restart"
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
                LISTENER => d.accept_all(),
                Token(t) => {
                    if let Some(key) = t.checked_sub(FIRST_CONN) {
                        d.conn_ready(key, ev.is_readable() || ev.is_read_closed());
                    }
                }
            }
        }
        let now = Instant::now();
        if now >= next_tick {
            next_tick = now + tick;
            if now >= next_heartbeat {
                next_heartbeat = now + heartbeat_every;
                d.propose(Command::Heartbeat { node: d.node }, None)?;
            }
            let now_ms = d.now_ms();
            d.propose(Command::Tick { now_ms }, None)?;
        }
        d.end_turn()?;
    }
}

impl Daemon {
    fn now_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.clock_base.saturating_add(elapsed)
    }

    /// Proposes a command and routes everything applied so far.
    fn propose(&mut self, cmd: Command, origin: Option<Origin>) -> Result<(), BoxError> {
        if let Err(e) = self.repl.propose(cmd, origin) {
            event!(Level::Error, "lock_log_failed", error = e);
            return Err(e.into());
        }
        for applied in self.repl.take_applied() {
            self.route(applied);
        }
        Ok(())
    }

    /// The end of a turn: closes what must close, syncs the log, then writes to clients.
    fn end_turn(&mut self) -> Result<(), BoxError> {
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
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.close(key, "daemon stopping")?;
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
        let c = self.repl.state().counts();
        event!(
            Level::Info,
            "lock_state",
            clients = self.conns.len(),
            sessions = c.sessions,
            lockspaces = c.lockspaces,
            resources = c.resources,
            granted = c.granted,
            converting = c.converting,
            waiting = c.waiting,
            applied_index = self.repl.applied_index(),
            next_token = self.repl.state().next_token(),
        );
    }

    fn accept_all(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    let creds = match Credentials::of(&stream) {
                        Ok(c) => c,
                        Err(e) => {
                            event!(Level::Warn, "lock_client_refused", reason = e);
                            continue;
                        }
                    };
                    let entry = self.conns.vacant_entry();
                    let token = Token(FIRST_CONN + entry.key());
                    if let Err(e) = self
                        .registry
                        .register(&mut stream, token, Interest::READABLE)
                    {
                        event!(Level::Warn, "lock_client_refused", reason = e);
                        continue;
                    }
                    entry.insert(Conn {
                        stream,
                        creds,
                        session: None,
                        name: String::new(),
                        decoder: FrameDecoder::new(request_limit()),
                        out: Vec::new(),
                        pending: HashMap::new(),
                        closing: false,
                        writable: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    event!(Level::Warn, "lock_accept_failed", error = e);
                    break;
                }
            }
        }
    }

    fn conn_ready(&mut self, key: usize, readable: bool) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if !conn.out.is_empty() {
            self.to_flush.push(key);
        }
        if !readable || conn.closing {
            return;
        }
        let mut bodies = Vec::new();
        let mut end: Option<String> = None;
        let mut fatal: Option<String> = None;
        loop {
            match conn.stream.read(&mut self.scratch) {
                Ok(0) => {
                    end = Some(match conn.decoder.finish() {
                        Ok(()) => "closed by the client".to_owned(),
                        Err(e) => e.to_string(),
                    });
                    break;
                }
                Ok(n) => {
                    for body in conn.decoder.feed(&self.scratch[..n]) {
                        match body {
                            Ok(b) => bodies.push(b),
                            Err(e) => fatal = Some(e.to_string()),
                        }
                    }
                    if fatal.is_some() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    end = Some(e.to_string());
                    break;
                }
            }
        }
        for body in bodies {
            if let Err(message) = self.frame(key, &body) {
                fatal = Some(message);
                break;
            }
            if self.conns.get(key).is_none_or(|c| c.closing) {
                break;
            }
        }
        if let Some(message) = fatal {
            self.fatal(key, message);
        } else if let Some(reason) = end {
            self.to_close.push((key, reason));
        }
    }

    /// Tells the client why, then closes its connection (and session).
    fn fatal(&mut self, key: usize, message: String) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        event!(
            Level::Warn,
            "lock_client_error",
            pid = conn.creds.pid,
            uid = conn.creds.uid,
            session = conn.session.map_or(0, |s| s.0),
            error = message,
        );
        conn.closing = true;
        self.send(key, &ServerMsg::Error { message });
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
        let session = self.conns[key].session;
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
        let creds = self.conns[key].creds;
        self.access.check(&creds).map_err(|e| e.to_string())?;
        // Unique forever: the log index this OpenSession will have, with the node id on top.
        let session = SessionId((self.node.0 << 40) | (self.repl.applied_index() + 1));
        self.sessions.insert(session, key);
        let conn = &mut self.conns[key];
        conn.session = Some(session);
        conn.name = name.chars().take(64).collect();
        let cmd = Command::OpenSession {
            session,
            node: self.node,
            lease_ms: self.lease_ms,
        };
        self.propose(cmd, None).map_err(|e| e.to_string())?;
        let open = self
            .repl
            .state()
            .sessions()
            .iter()
            .any(|s| s.session == session);
        if !open {
            self.sessions.remove(&session);
            self.conns[key].session = None;
            return Err("the session could not be opened".to_owned());
        }
        log::debug!("lock session {} opened for {}", session.0, creds);
        self.send(
            key,
            &ServerMsg::HelloOk {
                version: LOCK_PROTOCOL_VERSION,
                session,
                node: self.node,
            },
        );
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
                if self.conns[key].pending.contains_key(&handle) {
                    let reason = Denial::BadRequest(format!(
                        "lock {handle} already has a request pending: wait for it or cancel it"
                    ));
                    self.reply(key, id, Reply::Denied { reason });
                    return Ok(());
                }
                let known = self.repl.state().lockspaces().contains(&lockspace);
                if !known && !lockspace.is_empty() && lockspace.len() <= MAX_NAME_LEN {
                    let cmd = Command::CreateLockspace {
                        name: lockspace.clone(),
                    };
                    self.propose(cmd, None).map_err(|e| e.to_string())?;
                }
                self.conns[key].pending.insert(handle, id);
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

    fn clients(&self) -> Vec<ClientInfo> {
        let mut v: Vec<ClientInfo> = self
            .conns
            .iter()
            .filter_map(|(_, c)| {
                c.session.map(|session| ClientInfo {
                    session,
                    pid: c.creds.pid.as_raw(),
                    uid: c.creds.uid.as_raw(),
                    name: c.name.clone(),
                })
            })
            .collect();
        v.sort_by_key(|c| c.session);
        v
    }

    /// Delivers one applied entry's outputs to the sessions they are about, and answers its
    /// origin's request.
    fn route(&mut self, applied: Applied) {
        let mut answered = false;
        let origin = applied.origin;
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
                            let conn = &mut self.conns[key];
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
                Output::SessionOpened { .. }
                | Output::SessionClosed { .. }
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
    }

    /// Answers the `Lock` request waiting on `lock`; true if that was the origin's request.
    fn answer_pending(&mut self, lock: LockRef, origin: Option<Origin>, reply: Reply) -> bool {
        let Some(&key) = self.sessions.get(&lock.session) else {
            return false;
        };
        let Some(id) = self.conns[key].pending.remove(&lock.handle) else {
            log::debug!("no request waits for {lock}: {reply:?}");
            return false;
        };
        self.reply(key, id, reply);
        origin.is_some_and(|o| o.session == lock.session && o.request == id)
    }

    fn reply(&mut self, key: usize, id: u64, reply: Reply) {
        self.send(key, &ServerMsg::Reply { id, reply });
    }

    fn event(&mut self, session: SessionId, ev: &LockEvent) {
        if let Some(&key) = self.sessions.get(&session) {
            self.send(key, &ServerMsg::Event(ev.clone()));
        }
    }

    /// Queues a frame; it is written after the next sync.
    fn send(&mut self, key: usize, msg: &ServerMsg) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if let Err(e) = codec::encode_frame(msg, reply_limit(), &mut conn.out) {
            log::error!("cannot encode a reply: {e}");
            let fallback = ServerMsg::Error {
                message: format!("reply too large: {e}"),
            };
            let _ = codec::encode_frame(&fallback, FrameLimit::DEFAULT, &mut conn.out);
            conn.closing = true;
        }
        self.to_flush.push(key);
    }

    fn flush(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let mut written = 0;
        let mut failed = None;
        while written < conn.out.len() {
            match conn.stream.write(&conn.out[written..]) {
                Ok(0) => {
                    failed = Some("the client stopped reading".to_owned());
                    break;
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            }
        }
        conn.out.drain(..written);
        if failed.is_none() && conn.out.len() > WRITE_LIMIT {
            failed = Some(format!(
                "the client does not read: {} bytes waiting",
                conn.out.len()
            ));
        }
        if let Some(reason) = failed {
            self.to_close.push((key, reason));
            return;
        }
        if conn.out.is_empty() && conn.closing {
            self.to_close.push((key, "protocol error".to_owned()));
            return;
        }
        let want_write = !conn.out.is_empty();
        if want_write != conn.writable {
            let interest = if want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let token = Token(FIRST_CONN + key);
            if self
                .registry
                .reregister(&mut conn.stream, token, interest)
                .is_ok()
            {
                conn.writable = want_write;
            }
        }
    }

    /// Closes a connection and its session: its locks go at once.
    fn close(&mut self, key: usize, reason: &str) -> Result<(), BoxError> {
        if !self.conns.contains(key) {
            return Ok(());
        }
        let mut conn = self.conns.remove(key);
        let _ = self.registry.deregister(&mut conn.stream);
        self.to_flush.retain(|k| *k != key);
        if let Some(session) = conn.session {
            self.sessions.remove(&session);
            log::debug!(
                "lock session {} closed ({}): {reason}",
                session.0,
                conn.creds
            );
            self.propose(Command::CloseSession { session }, None)?;
        }
        Ok(())
    }
}
