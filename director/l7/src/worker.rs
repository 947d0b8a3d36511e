//! A worker thread: one `mio` event loop with its own listener for every content service
//! (`SO_REUSEPORT`), its client sessions, and its idle kept-alive real-server connections.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::route::RouteTable;
use crate::servers::{Owner, Servers};
use crate::session::{Ctx, Session};

pub(crate) const WAKER: Token = Token(0);
const LISTENER_BASE: usize = 1;
/// Client connections (even) and server connections (odd): tokens from here up.
const SESSION_BASE: usize = 1 << 16;
/// How often deadlines are looked at.
const TICK: Duration = Duration::from_millis(200);
/// Refusals by the connection cap closer together than this are one burst (one log line).
const BURST_GAP: Duration = Duration::from_secs(10);

pub(crate) fn client_token(key: usize) -> Token {
    Token(SESSION_BASE + 2 * key)
}

pub(crate) fn server_token(slot: usize) -> Token {
    Token(SESSION_BASE + 2 * slot + 1)
}

/// Whether an event says a socket has something to read (bytes, end of stream or an error).
fn readable(ev: &mio::event::Event) -> bool {
    ev.is_readable() || ev.is_read_closed() || ev.is_error()
}

/// What every worker shares about one content service: its current routing table and its
/// counters. The table is replaced whole; sessions notice through `generation` and pick the new
/// one at their next request, without taking the lock on the way otherwise.
#[derive(Debug)]
pub(crate) struct ServiceShared {
    pub vip: SocketAddr,
    table: Mutex<Arc<RouteTable>>,
    pub generation: AtomicU64,
    pub conns: AtomicU64,
    pub requests: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Client connections open now, against the service's `max_connections`.
    pub open: AtomicU64,
    /// Client connections refused by the cap, ever.
    pub refused: AtomicU64,
    /// When the last refusal happened, in milliseconds since `born` (`u64::MAX`: never).
    last_refusal: AtomicU64,
    born: Instant,
}

impl ServiceShared {
    pub fn new(vip: SocketAddr, table: Arc<RouteTable>) -> Self {
        Self {
            vip,
            table: Mutex::new(table),
            generation: AtomicU64::new(1),
            conns: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            open: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            last_refusal: AtomicU64::new(u64::MAX),
            born: Instant::now(),
        }
    }

    /// Count a new client connection in, unless `max` (0: none) are open already. Refusals
    /// come in bursts (a flood, or clients churning at the cap): only the first refusal of a
    /// burst is logged, a burst being refusals less than [`BURST_GAP`] apart.
    pub fn admit(&self, max: u32, now: Instant) -> bool {
        let max = u64::from(max);
        let ok = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (max == 0 || n < max).then_some(n + 1)
            })
            .is_ok();
        if !ok {
            let total = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
            let at =
                u64::try_from(now.duration_since(self.born).as_millis()).unwrap_or(u64::MAX - 1);
            let before = self.last_refusal.swap(at, Ordering::Relaxed);
            let gap = u64::try_from(BURST_GAP.as_millis()).unwrap_or(u64::MAX);
            if before == u64::MAX || at.saturating_sub(before) >= gap {
                lvs_common::event!(
                    log::Level::Warn,
                    "l7_connection_cap_reached",
                    service = self.vip,
                    max_connections = max,
                    refused_total = total,
                );
            }
        }
        ok
    }

    pub fn current(&self) -> (Arc<RouteTable>, u64) {
        let t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        (Arc::clone(&t), self.generation.load(Ordering::Acquire))
    }

    pub fn replace(&self, table: Arc<RouteTable>) {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        *t = table;
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// Orders from the engine.
#[derive(Debug)]
pub(crate) enum ProxyCommand {
    Listen(Arc<ServiceShared>, std::net::TcpListener),
    Unlisten(SocketAddr),
    Stop,
}

pub(crate) struct ProxyWorker {
    pub poll: Poll,
    pub rx: Receiver<ProxyCommand>,
    listeners: Slab<(Arc<ServiceShared>, TcpListener)>,
    sessions: Slab<Session>,
    servers: Servers,
    /// Sessions accepted in this round, not yet driven.
    fresh: Vec<usize>,
}

impl ProxyWorker {
    pub fn new(poll: Poll, rx: Receiver<ProxyCommand>) -> Self {
        Self {
            poll,
            rx,
            listeners: Slab::new(),
            sessions: Slab::new(),
            servers: Servers::new(server_token),
            fresh: Vec::new(),
        }
    }

    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut next_tick = Instant::now() + TICK;
        loop {
            if let Err(e) = self.poll.poll(&mut events, Some(TICK)) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                lvs_common::event!(log::Level::Error, "l7_poll_failed", reason = e);
                return;
            }
            let now = Instant::now();
            // Idle server connections first: one that the server closed or wrote to must be
            // out of the idle list before any session of this round can take it.
            for ev in events.iter() {
                if let Some(slot) = server_slot(ev.token())
                    && readable(ev)
                    && let Some(Owner::Idle(k)) = self.servers.owner(slot)
                {
                    self.servers.idle_event(k);
                }
            }
            for ev in events.iter() {
                let t = ev.token().0;
                if ev.token() == WAKER {
                    if !self.commands() {
                        return;
                    }
                } else if let Some(slot) = server_slot(ev.token()) {
                    if let Some(Owner::Session(key)) = self.servers.owner(slot) {
                        if readable(ev)
                            && let Some(s) = self.sessions.get_mut(key)
                        {
                            s.upstream_readable(slot);
                        }
                        self.session_event(key, now);
                    }
                } else if t >= SESSION_BASE {
                    let key = (t - SESSION_BASE) / 2;
                    if readable(ev)
                        && let Some(s) = self.sessions.get_mut(key)
                    {
                        s.client_readable();
                    }
                    self.session_event(key, now);
                } else if t >= LISTENER_BASE {
                    self.accept(t - LISTENER_BASE, now);
                }
            }
            // New connections are first read after the round's other events: a client's
            // request often follows its handshake by a little, and reading at once would meet
            // an empty socket (a recv for nothing, then an epoll_ctl to wait for it).
            for key in std::mem::take(&mut self.fresh) {
                self.session_event(key, now);
            }
            self.servers.reap();
            if now >= next_tick {
                next_tick = now + TICK;
                self.tick(now);
            }
        }
    }

    /// `false`: stop.
    fn commands(&mut self) -> bool {
        while let Ok(cmd) = self.rx.try_recv() {
            match cmd {
                ProxyCommand::Listen(svc, l) => {
                    let mut l = TcpListener::from_std(l);
                    let entry = self.listeners.vacant_entry();
                    let token = Token(LISTENER_BASE + entry.key());
                    if entry.key() + LISTENER_BASE >= SESSION_BASE {
                        lvs_common::event!(log::Level::Error, "l7_too_many_listeners");
                        continue;
                    }
                    if let Err(e) = self
                        .poll
                        .registry()
                        .register(&mut l, token, Interest::READABLE)
                    {
                        lvs_common::event!(log::Level::Error, "l7_listen_failed", reason = e);
                        continue;
                    }
                    entry.insert((svc, l));
                }
                ProxyCommand::Unlisten(vip) => {
                    let keys: Vec<usize> = self
                        .listeners
                        .iter()
                        .filter(|(_, (s, _))| s.vip == vip)
                        .map(|(k, _)| k)
                        .collect();
                    for k in keys {
                        let (_, mut l) = self.listeners.remove(k);
                        let _ = self.poll.registry().deregister(&mut l);
                    }
                }
                ProxyCommand::Stop => return false,
            }
        }
        true
    }

    fn accept(&mut self, idx: usize, now: Instant) {
        loop {
            let Some((svc, l)) = self.listeners.get(idx) else {
                return;
            };
            let (stream, peer) = match l.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors or memory: leave the rest in the backlog for the
                    // next tick rather than spin.
                    lvs_common::event!(log::Level::Warn, "l7_accept_failed", reason = e);
                    return;
                }
            };
            let svc = Arc::clone(svc);
            let entry = self.sessions.vacant_entry();
            let key = entry.key();
            // The session registers its client with the poller when it first waits for it.
            let current = svc.current();
            // Counted in only once the session exists: its drop counts it out.
            let admitted = svc.admit(current.0.settings.max_connections, now);
            entry.insert(Session::new(stream, peer, svc, current, admitted, now));
            self.fresh.push(key);
        }
    }

    fn session_event(&mut self, key: usize, now: Instant) {
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        let mut cx = Ctx {
            registry: self.poll.registry(),
            servers: &mut self.servers,
            now,
            key,
        };
        if !s.drive(&mut cx) {
            self.close(key);
        }
    }

    /// Closing the sockets takes them out of the poller too: no `epoll_ctl` needed.
    fn close(&mut self, key: usize) {
        self.sessions.remove(key);
    }

    fn tick(&mut self, now: Instant) {
        self.servers.expire(now);
        let mut dead = Vec::new();
        for (key, s) in self.sessions.iter_mut() {
            let mut cx = Ctx {
                registry: self.poll.registry(),
                servers: &mut self.servers,
                now,
                key,
            };
            if !s.on_timer(&mut cx) {
                dead.push(key);
            }
        }
        for k in dead {
            self.close(k);
        }
        self.servers.reap();
    }
}

/// The server connection slot a token names, if it names one.
fn server_slot(t: Token) -> Option<usize> {
    (t.0 >= SESSION_BASE && !(t.0 - SESSION_BASE).is_multiple_of(2))
        .then(|| (t.0 - SESSION_BASE) / 2)
}

impl std::fmt::Debug for ProxyWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyWorker")
            .field("listeners", &self.listeners.len())
            .field("sessions", &self.sessions.len())
            .finish()
    }
}
