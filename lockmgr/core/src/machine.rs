//! The state machine: applies one [`Command`] at a time and reports its [`Output`]s.

use std::collections::{BTreeMap, BTreeSet};

use crate::deadlock;
use crate::mode::LockMode;
use crate::types::{
    CloseReason, Command, Denial, LVB_LEN, LockFlags, LockRef, LockRequest, MAX_NAME_LEN, NodeId,
    Output, SessionId, Target, ValueBlock,
};

/// A resource's key: lockspace and resource name.
pub(crate) type ResKey = (String, Vec<u8>);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Lockspace {
    pub(crate) resources: BTreeMap<Vec<u8>, Resource>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resource {
    pub(crate) lvb: ValueBlock,
    /// Every lock with a granted mode (converting ones too), by the token of its latest grant.
    pub(crate) granted: BTreeMap<u64, LockRef>,
    /// Granted locks waiting to convert, by request sequence number.
    pub(crate) converting: BTreeMap<u64, LockRef>,
    /// New requests, by request sequence number.
    pub(crate) waiting: BTreeMap<u64, LockRef>,
    /// How many locks hold each granted mode.
    pub(crate) counts: [u32; 6],
}

impl Resource {
    pub(crate) fn new(lvb: ValueBlock) -> Resource {
        Resource {
            lvb,
            granted: BTreeMap::new(),
            converting: BTreeMap::new(),
            waiting: BTreeMap::new(),
            counts: [0; 6],
        }
    }

    /// Whether `mode` is compatible with every granted mode, not counting one lock granted in
    /// `own` (the converting lock itself).
    pub(crate) fn compatible(&self, mode: LockMode, own: Option<LockMode>) -> bool {
        LockMode::ALL.into_iter().all(|m| {
            let n = self.counts[m.index()] - u32::from(own == Some(m));
            n == 0 || mode.compatible(m)
        })
    }

    /// Nothing to keep: no locks and the value block of a new resource.
    pub(crate) fn is_unused(&self) -> bool {
        self.granted.is_empty() && self.waiting.is_empty() && self.lvb == ValueBlock::INITIAL
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Grant {
    pub(crate) mode: LockMode,
    pub(crate) token: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pending {
    pub(crate) mode: LockMode,
    pub(crate) seq: u64,
    pub(crate) deadline_ms: Option<u64>,
    pub(crate) valblk: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lock {
    pub(crate) lockspace: String,
    pub(crate) resource: Vec<u8>,
    pub(crate) granted: Option<Grant>,
    pub(crate) pending: Option<Pending>,
    /// A blocking notification was sent and the lock has blocked a request ever since.
    pub(crate) blocking_notified: bool,
}

impl Lock {
    pub(crate) fn key(&self) -> ResKey {
        (self.lockspace.clone(), self.resource.clone())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Session {
    pub(crate) node: NodeId,
    pub(crate) lease_ms: u64,
    pub(crate) expires_ms: u64,
}

/// The replicated lock state.
///
/// # Queues (as the kernel DLM)
/// Each resource has a grant queue (ordered by the token of each lock's latest grant), a
/// convert queue and a wait queue (both ordered by the sequence number given when a request
/// was queued). Whenever a resource changes, its queues are served:
/// 1. conversions first: any queued conversion whose mode is compatible with every *other*
///    granted mode (converting locks keep their granted mode until converted) is granted,
///    scanning again from the head after each grant;
/// 2. then, only while the convert queue is empty, the head of the wait queue is granted if it is
///    compatible with every granted mode, then the next head, and so on. A waiter never passes
///    an earlier one: no starvation.
///
/// A new request is granted at once only if both queues are empty and its mode is compatible
/// with every granted mode. A conversion is granted at once if its mode is compatible with
/// every other granted mode (a down-conversion always is); otherwise it queues.
///
/// # Time
/// The state machine has no clock of its own. [`Command::Tick`] moves the replicated clock
/// forward; lease and request timeouts in commands are durations, stored as absolute deadlines
/// on that clock, and run out when a Tick reaches them. So every replica expires the same
/// sessions and requests at the same point of the log.
///
/// Two `StateMachine`s that start equal and apply the same commands stay equal (`==`), give the
/// same outputs and produce byte-identical snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateMachine {
    pub(crate) now_ms: u64,
    /// The sequence number of the next queued request (the age order of requests).
    pub(crate) next_seq: u64,
    /// The fencing token of the next grant.
    pub(crate) next_token: u64,
    pub(crate) lockspaces: BTreeMap<String, Lockspace>,
    pub(crate) sessions: BTreeMap<SessionId, Session>,
    pub(crate) locks: BTreeMap<LockRef, Lock>,
    // Indexes, rebuilt from the above on restore.
    pub(crate) nodes: BTreeMap<NodeId, BTreeSet<SessionId>>,
    pub(crate) leases: BTreeSet<(u64, SessionId)>,
    pub(crate) timeouts: BTreeSet<(u64, LockRef)>,
    /// Every pending request (waiting or converting), by sequence number.
    pub(crate) pending: BTreeMap<u64, LockRef>,
}

impl Default for StateMachine {
    fn default() -> Self {
        StateMachine::new()
    }
}

/// What one command did, beyond its outputs.
struct Effects<'a> {
    out: &'a mut Vec<Output>,
    /// Resources whose queues changed: their blocking notifications are brought up to date.
    touched: BTreeSet<ResKey>,
    /// A request was queued or a lock granted: a new wait-for cycle is possible.
    check_deadlock: bool,
}

impl<'a> Effects<'a> {
    fn deny(&mut self, target: Target, reason: Denial) {
        self.out.push(Output::Denied { target, reason });
    }
}

fn check_name(what: &str, name: &[u8]) -> Result<(), Denial> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(Denial::BadRequest(format!(
            "{what} name of {} bytes: must be 1 to {MAX_NAME_LEN} bytes",
            name.len()
        )));
    }
    Ok(())
}

impl StateMachine {
    /// An empty state: no lockspaces, no sessions, clock at 0, first token 1.
    pub fn new() -> StateMachine {
        StateMachine {
            now_ms: 0,
            next_seq: 1,
            next_token: 1,
            lockspaces: BTreeMap::new(),
            sessions: BTreeMap::new(),
            locks: BTreeMap::new(),
            nodes: BTreeMap::new(),
            leases: BTreeSet::new(),
            timeouts: BTreeSet::new(),
            pending: BTreeMap::new(),
        }
    }

    /// Applies one command and returns its outputs.
    pub fn apply(&mut self, cmd: &Command) -> Vec<Output> {
        let mut out = Vec::new();
        self.apply_into(cmd, &mut out);
        out
    }

    /// Applies one command, appending its outputs to `out`.
    ///
    /// Never panics on any command, whatever the state: bad commands are answered with
    /// [`Output::Denied`] (NotFound or BadRequest) and change nothing.
    pub fn apply_into(&mut self, cmd: &Command, out: &mut Vec<Output>) {
        let mut fx = Effects {
            out,
            touched: BTreeSet::new(),
            check_deadlock: false,
        };
        match cmd {
            Command::CreateLockspace { name } => self.create_lockspace(name, &mut fx),
            Command::RemoveLockspace { name } => self.remove_lockspace(name, &mut fx),
            Command::OpenSession {
                session,
                node,
                lease_ms,
            } => self.open_session(*session, *node, *lease_ms, &mut fx),
            Command::Heartbeat { node } => self.heartbeat(*node),
            Command::CloseSession { session } => {
                if self.sessions.contains_key(session) {
                    self.end_session(*session, CloseReason::Closed, &mut fx);
                } else {
                    fx.deny(
                        Target::Session(*session),
                        Denial::NotFound(format!("{session}")),
                    );
                }
            }
            Command::Lock(req) => self.lock(req, &mut fx),
            Command::Unlock { lock, lvb } => self.unlock(*lock, lvb.as_ref(), &mut fx),
            Command::Cancel { lock } => self.cancel(*lock, &mut fx),
            Command::Tick { now_ms } => self.tick(*now_ms, &mut fx),
        }
        self.settle(&mut fx);
    }

    // ---- lockspaces and sessions ----

    fn create_lockspace(&mut self, name: &str, fx: &mut Effects<'_>) {
        if let Err(d) = check_name("lockspace", name.as_bytes()) {
            return fx.deny(Target::Lockspace(name.to_owned()), d);
        }
        let created = !self.lockspaces.contains_key(name);
        if created {
            self.lockspaces
                .insert(name.to_owned(), Lockspace::default());
        }
        fx.out.push(Output::LockspaceReady {
            name: name.to_owned(),
            created,
        });
    }

    fn remove_lockspace(&mut self, name: &str, fx: &mut Effects<'_>) {
        let target = Target::Lockspace(name.to_owned());
        let Some(ls) = self.lockspaces.get(name) else {
            return fx.deny(target, Denial::NotFound(format!("lockspace {name:?}")));
        };
        let locks: usize = ls
            .resources
            .values()
            .map(|r| r.granted.len() + r.waiting.len())
            .sum();
        if locks > 0 {
            return fx.deny(
                target,
                Denial::BadRequest(format!(
                    "lockspace {name:?} still has {locks} locks: unlock them or close their sessions first"
                )),
            );
        }
        self.lockspaces.remove(name);
        fx.out.push(Output::LockspaceRemoved {
            name: name.to_owned(),
        });
    }

    fn open_session(
        &mut self,
        session: SessionId,
        node: NodeId,
        lease_ms: u64,
        fx: &mut Effects<'_>,
    ) {
        let target = Target::Session(session);
        if self.sessions.contains_key(&session) {
            return fx.deny(
                target,
                Denial::BadRequest(format!("{session} is already open")),
            );
        }
        if lease_ms == 0 {
            return fx.deny(
                target,
                Denial::BadRequest("a lease of 0 ms would expire at once".to_owned()),
            );
        }
        let expires_ms = self.now_ms.saturating_add(lease_ms);
        self.sessions.insert(
            session,
            Session {
                node,
                lease_ms,
                expires_ms,
            },
        );
        self.nodes.entry(node).or_default().insert(session);
        self.leases.insert((expires_ms, session));
        fx.out.push(Output::SessionOpened { session });
    }

    fn heartbeat(&mut self, node: NodeId) {
        let Some(ids) = self.nodes.get(&node) else {
            return;
        };
        for id in ids {
            let s = self
                .sessions
                .get_mut(id)
                .expect("node index names open sessions");
            self.leases.remove(&(s.expires_ms, *id));
            s.expires_ms = self.now_ms.saturating_add(s.lease_ms);
            self.leases.insert((s.expires_ms, *id));
        }
    }

    /// Closes or expires a session: its locks and requests go (a PW or EX holder leaves the
    /// value block invalid), then the queues of every resource it used are served.
    fn end_session(&mut self, session: SessionId, reason: CloseReason, fx: &mut Effects<'_>) {
        let s = self.sessions.remove(&session).expect("caller checked");
        self.leases.remove(&(s.expires_ms, session));
        if let Some(ids) = self.nodes.get_mut(&s.node) {
            ids.remove(&session);
            if ids.is_empty() {
                self.nodes.remove(&s.node);
            }
        }
        fx.out.push(Output::SessionClosed { session, reason });
        let handles: Vec<LockRef> = self
            .locks
            .range(
                LockRef { session, handle: 0 }..=LockRef {
                    session,
                    handle: u64::MAX,
                },
            )
            .map(|(l, _)| *l)
            .collect();
        let mut keys = BTreeSet::new();
        for l in handles {
            keys.insert(self.remove_lock(l, None, true));
        }
        for key in keys {
            self.grant_pending(&key, fx);
            self.gc(&key);
            fx.touched.insert(key);
        }
    }

    // ---- lock requests ----

    fn lock(&mut self, req: &LockRequest, fx: &mut Effects<'_>) {
        let target = Target::Lock(req.lock);
        if let Err(d) = self.check_lock(req) {
            return fx.deny(target, d);
        }
        if req.flags.contains(LockFlags::CONVERT) {
            return self.convert(req, fx);
        }
        let key: ResKey = (req.lockspace.clone(), req.resource.clone());
        let res = self
            .lockspaces
            .get_mut(&req.lockspace)
            .expect("checked")
            .resources
            .entry(req.resource.clone())
            .or_insert_with(|| Resource::new(ValueBlock::INITIAL));
        let now =
            res.converting.is_empty() && res.waiting.is_empty() && res.compatible(req.mode, None);
        if !now && req.flags.contains(LockFlags::NOQUEUE) {
            self.gc(&key);
            return fx.deny(target, Denial::WouldBlock);
        }
        self.locks.insert(
            req.lock,
            Lock {
                lockspace: req.lockspace.clone(),
                resource: req.resource.clone(),
                granted: None,
                pending: None,
                blocking_notified: false,
            },
        );
        let valblk = req.flags.contains(LockFlags::VALBLK);
        if now {
            self.grant(req.lock, req.mode, valblk, fx);
        } else {
            self.enqueue(req, valblk, fx);
        }
        fx.touched.insert(key);
    }

    /// Everything that can be refused before looking at the queues.
    fn check_lock(&self, req: &LockRequest) -> Result<(), Denial> {
        if req.flags.unknown_bits() != 0 {
            return Err(Denial::BadRequest(format!(
                "unknown flags {:#x}",
                req.flags.unknown_bits()
            )));
        }
        if !self.sessions.contains_key(&req.lock.session) {
            return Err(Denial::NotFound(format!("{}", req.lock.session)));
        }
        check_name("lockspace", req.lockspace.as_bytes())?;
        check_name("resource", &req.resource)?;
        if !self.lockspaces.contains_key(&req.lockspace) {
            return Err(Denial::NotFound(format!("lockspace {:?}", req.lockspace)));
        }
        if req.lvb.is_some() && !req.flags.contains(LockFlags::VALBLK) {
            return Err(Denial::BadRequest(
                "a value block was given without the VALBLK flag".to_owned(),
            ));
        }
        if !req.flags.contains(LockFlags::CONVERT) {
            if self.locks.contains_key(&req.lock) {
                return Err(Denial::BadRequest(format!(
                    "{} is in use (convert it with CONVERT, or use a new handle)",
                    req.lock
                )));
            }
            if req.lvb.is_some() {
                return Err(Denial::BadRequest(
                    "a new lock cannot write the value block: only a conversion down from PW or EX, or an unlock of PW or EX, writes it".to_owned(),
                ));
            }
            return Ok(());
        }
        let Some(lock) = self.locks.get(&req.lock) else {
            return Err(Denial::NotFound(format!("{}", req.lock)));
        };
        if lock.lockspace != req.lockspace || lock.resource != req.resource {
            return Err(Denial::BadRequest(format!(
                "{} is on another resource",
                req.lock
            )));
        }
        if lock.pending.is_some() {
            return Err(Denial::BadRequest(if lock.granted.is_some() {
                format!("{} already has a conversion pending", req.lock)
            } else {
                format!("{} is not granted yet: cancel the request first", req.lock)
            }));
        }
        let granted = lock
            .granted
            .expect("a lock without pending request is granted");
        if req.lvb.is_some()
            && !(granted.mode.writes_value_block() && granted.mode.is_down_conversion(req.mode))
        {
            return Err(Denial::BadRequest(format!(
                "converting {} to {} cannot write the value block: only a conversion from PW or EX to a mode that is not stronger writes it",
                granted.mode, req.mode
            )));
        }
        Ok(())
    }

    fn convert(&mut self, req: &LockRequest, fx: &mut Effects<'_>) {
        let lock = &self.locks[&req.lock];
        let key = lock.key();
        let old = lock.granted.expect("checked").mode;
        let res = &self.lockspaces[&key.0].resources[&key.1];
        if res.compatible(req.mode, Some(old)) {
            if let Some(bytes) = req.lvb {
                self.write_lvb(&key, bytes);
            }
            self.grant(
                req.lock,
                req.mode,
                req.flags.contains(LockFlags::VALBLK),
                fx,
            );
            // A weaker mode may let others in.
            self.grant_pending(&key, fx);
        } else if req.flags.contains(LockFlags::NOQUEUE) {
            fx.deny(Target::Lock(req.lock), Denial::WouldBlock);
        } else {
            self.enqueue(req, req.flags.contains(LockFlags::VALBLK), fx);
        }
        fx.touched.insert(key);
    }

    fn enqueue(&mut self, req: &LockRequest, valblk: bool, fx: &mut Effects<'_>) {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.saturating_add(1);
        let deadline_ms = req.timeout_ms.map(|t| self.now_ms.saturating_add(t));
        let lock = self.locks.get_mut(&req.lock).expect("inserted or checked");
        lock.pending = Some(Pending {
            mode: req.mode,
            seq,
            deadline_ms,
            valblk,
        });
        let res = self
            .lockspaces
            .get_mut(&req.lockspace)
            .and_then(|ls| ls.resources.get_mut(&req.resource))
            .expect("resource of a lock exists");
        if lock.granted.is_some() {
            res.converting.insert(seq, req.lock);
        } else {
            res.waiting.insert(seq, req.lock);
        }
        self.pending.insert(seq, req.lock);
        if let Some(d) = deadline_ms {
            self.timeouts.insert((d, req.lock));
        }
        fx.out.push(Output::Queued {
            lock: req.lock,
            mode: req.mode,
        });
        fx.check_deadlock = true;
    }

    fn unlock(&mut self, l: LockRef, lvb: Option<&[u8; LVB_LEN]>, fx: &mut Effects<'_>) {
        let target = Target::Lock(l);
        let Some(lock) = self.locks.get(&l) else {
            return fx.deny(target, Denial::NotFound(format!("{l}")));
        };
        if lvb.is_some() {
            match lock.granted {
                Some(g) if g.mode.writes_value_block() => {}
                Some(g) => {
                    return fx.deny(
                        target,
                        Denial::BadRequest(format!(
                            "{l} is held in {}: only PW and EX holders write the value block",
                            g.mode
                        )),
                    );
                }
                None => {
                    return fx.deny(
                        target,
                        Denial::BadRequest(format!(
                            "{l} is not granted: it cannot write the value block"
                        )),
                    );
                }
            }
        }
        let key = self.remove_lock(l, lvb, false);
        fx.out.push(Output::Unlocked { lock: l });
        self.grant_pending(&key, fx);
        self.gc(&key);
        fx.touched.insert(key);
    }

    fn cancel(&mut self, l: LockRef, fx: &mut Effects<'_>) {
        let target = Target::Lock(l);
        let Some(lock) = self.locks.get(&l) else {
            return fx.deny(target, Denial::NotFound(format!("{l}")));
        };
        if lock.pending.is_none() {
            return fx.deny(
                target,
                Denial::BadRequest(format!("{l} has no pending request to cancel")),
            );
        }
        self.end_request(l, Denial::Cancelled, fx);
    }

    /// Ends `l`'s pending request without a grant: a conversion leaves the lock in its granted
    /// mode, a new request goes with its lock.
    fn end_request(&mut self, l: LockRef, reason: Denial, fx: &mut Effects<'_>) {
        self.take_pending(l);
        let lock = &self.locks[&l];
        let key = lock.key();
        if lock.granted.is_none() {
            self.locks.remove(&l);
        }
        fx.deny(Target::Lock(l), reason);
        self.grant_pending(&key, fx);
        self.gc(&key);
        fx.touched.insert(key);
    }

    fn tick(&mut self, now_ms: u64, fx: &mut Effects<'_>) {
        self.now_ms = self.now_ms.max(now_ms);
        loop {
            let timeout = self
                .timeouts
                .first()
                .copied()
                .filter(|t| t.0 <= self.now_ms);
            let lease = self.leases.first().copied().filter(|s| s.0 <= self.now_ms);
            match (timeout, lease) {
                (Some((t, l)), lease) if lease.is_none_or(|(s, _)| t <= s) => {
                    self.end_request(l, Denial::Timeout, fx);
                }
                (_, Some((_, session))) => self.end_session(session, CloseReason::Expired, fx),
                (_, None) => break,
            }
        }
    }

    // ---- queue mechanics ----

    /// Grants `mode` to `l` (whose pending request, if any, was taken off its queue).
    fn grant(&mut self, l: LockRef, mode: LockMode, valblk: bool, fx: &mut Effects<'_>) {
        let token = self.next_token;
        self.next_token = self.next_token.saturating_add(1);
        let lock = self.locks.get_mut(&l).expect("granted lock exists");
        let res = self
            .lockspaces
            .get_mut(&lock.lockspace)
            .and_then(|ls| ls.resources.get_mut(&lock.resource))
            .expect("resource of a lock exists");
        if let Some(old) = lock.granted {
            res.granted.remove(&old.token);
            res.counts[old.mode.index()] -= 1;
        }
        res.granted.insert(token, l);
        res.counts[mode.index()] += 1;
        lock.granted = Some(Grant { mode, token });
        lock.blocking_notified = false;
        fx.out.push(Output::Granted {
            lock: l,
            mode,
            token,
            lvb: valblk.then_some(res.lvb),
        });
        fx.check_deadlock = true;
    }

    /// Takes `l`'s pending request off its queue and the indexes.
    fn take_pending(&mut self, l: LockRef) -> Option<Pending> {
        let lock = self.locks.get_mut(&l)?;
        let p = lock.pending.take()?;
        let res = self
            .lockspaces
            .get_mut(&lock.lockspace)
            .and_then(|ls| ls.resources.get_mut(&lock.resource))
            .expect("resource of a lock exists");
        if lock.granted.is_some() {
            res.converting.remove(&p.seq);
        } else {
            res.waiting.remove(&p.seq);
        }
        self.pending.remove(&p.seq);
        if let Some(d) = p.deadline_ms {
            self.timeouts.remove(&(d, l));
        }
        Some(p)
    }

    /// Removes a lock in any state. `lvb`: a value block written on the way out; `died`: its
    /// session is gone, so a PW or EX grant leaves the value block invalid.
    fn remove_lock(&mut self, l: LockRef, lvb: Option<&[u8; LVB_LEN]>, died: bool) -> ResKey {
        self.take_pending(l);
        let lock = self.locks.remove(&l).expect("caller checked");
        let key = (lock.lockspace, lock.resource);
        let res = self
            .lockspaces
            .get_mut(&key.0)
            .and_then(|ls| ls.resources.get_mut(&key.1))
            .expect("resource of a lock exists");
        if let Some(g) = lock.granted {
            res.granted.remove(&g.token);
            res.counts[g.mode.index()] -= 1;
            if let Some(bytes) = lvb {
                res.lvb = ValueBlock {
                    bytes: *bytes,
                    valid: true,
                };
            } else if died && g.mode.writes_value_block() {
                res.lvb.valid = false;
            }
        }
        key
    }

    fn write_lvb(&mut self, key: &ResKey, bytes: [u8; LVB_LEN]) {
        if let Some(res) = self
            .lockspaces
            .get_mut(&key.0)
            .and_then(|ls| ls.resources.get_mut(&key.1))
        {
            res.lvb = ValueBlock { bytes, valid: true };
        }
    }

    /// Serves the resource's queues: conversions first, then waiters in order.
    fn grant_pending(&mut self, key: &ResKey, fx: &mut Effects<'_>) {
        loop {
            let Some(res) = self.resource(key) else {
                return;
            };
            let conversion = res.converting.values().copied().find(|l| {
                let lock = &self.locks[l];
                let mode = lock.pending.expect("converting lock has a request").mode;
                res.compatible(mode, lock.granted.map(|g| g.mode))
            });
            let next = match conversion {
                Some(l) => l,
                None if !res.converting.is_empty() => return,
                None => match res.waiting.values().next() {
                    Some(l) => {
                        let mode = self.locks[l]
                            .pending
                            .expect("waiting lock has a request")
                            .mode;
                        if !res.compatible(mode, None) {
                            return;
                        }
                        *l
                    }
                    None => return,
                },
            };
            let p = self.take_pending(next).expect("queued lock has a request");
            self.grant(next, p.mode, p.valblk, fx);
        }
    }

    pub(crate) fn resource(&self, key: &ResKey) -> Option<&Resource> {
        self.lockspaces.get(&key.0)?.resources.get(&key.1)
    }

    /// Forgets a resource that has no locks and nothing in its value block.
    fn gc(&mut self, key: &ResKey) {
        if let Some(ls) = self.lockspaces.get_mut(&key.0)
            && ls.resources.get(&key.1).is_some_and(Resource::is_unused)
        {
            ls.resources.remove(&key.1);
        }
    }

    // ---- after every command ----

    fn settle(&mut self, fx: &mut Effects<'_>) {
        if fx.check_deadlock {
            while let Some(victim) = deadlock::find_victim(self) {
                self.end_request(victim, Denial::Deadlock, fx);
            }
        }
        let touched = std::mem::take(&mut fx.touched);
        for key in &touched {
            self.notify_blockers(key, fx);
        }
    }

    /// Sends a blocking notification to each holder of the resource that blocks a queued
    /// request and has not been told since it started to; forgets the notice of holders that
    /// block nothing any more.
    fn notify_blockers(&mut self, key: &ResKey, fx: &mut Effects<'_>) {
        let Some(res) = self.resource(key) else {
            return;
        };
        // The first two queued requests of each mode, in queue order (conversions first):
        // enough to find, for any holder, the first request it blocks that is not its own.
        let mut firsts: Vec<(LockRef, LockMode)> = Vec::new();
        let mut seen = [0u8; 6];
        for l in res.converting.values().chain(res.waiting.values()) {
            let mode = self.locks[l]
                .pending
                .expect("queued lock has a request")
                .mode;
            if seen[mode.index()] < 2 {
                seen[mode.index()] += 1;
                firsts.push((*l, mode));
            }
        }
        let mut changes = Vec::new();
        for h in res.granted.values() {
            let lock = &self.locks[h];
            let granted = lock.granted.expect("granted lock").mode;
            let blocked = firsts
                .iter()
                .find(|(l, m)| l != h && !granted.compatible(*m))
                .map(|(_, m)| *m);
            match (blocked, lock.blocking_notified) {
                (Some(blocked), false) => {
                    fx.out.push(Output::Blocking {
                        lock: *h,
                        granted,
                        blocked,
                    });
                    changes.push((*h, true));
                }
                (None, true) => changes.push((*h, false)),
                _ => {}
            }
        }
        for (h, notified) in changes {
            if let Some(lock) = self.locks.get_mut(&h) {
                lock.blocking_notified = notified;
            }
        }
    }
}
