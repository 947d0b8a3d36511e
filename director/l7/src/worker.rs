//! A worker thread: one `mio` event loop with its own listener for every content service
//! (`SO_REUSEPORT`), its client sessions, and its idle kept-alive real-server connections.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;

use crate::route::RouteTable;
use crate::session::{Ctx, Session};

pub(crate) const WAKER: Token = Token(0);
const LISTENER_BASE: usize = 1;
/// Idle server connections: tokens from here up to `SESSION_BASE`.
const IDLE_BASE: usize = 1 << 15;
const SESSION_BASE: usize = 1 << 16;
/// How often deadlines are looked at.
const TICK: Duration = Duration::from_millis(200);
/// An idle server connection older than this is closed rather than reused.
const IDLE_MAX_AGE: Duration = Duration::from_secs(20);
/// Refusals by the connection cap closer together than this are one burst (one log line).
const BURST_GAP: Duration = Duration::from_secs(10);
/// Idle connections kept per real server per worker.
const IDLE_PER_SERVER: usize = 64;

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

/// Kept-alive connections to real servers, free for the next request to that server. They
/// stay registered with the poller under tokens of their own, so that a server closing one is
/// noticed (and the connection dropped) without a check at reuse, and reuse is a single
/// `reregister`.
#[derive(Debug, Default)]
pub(crate) struct IdlePool {
    conns: Slab<(TcpStream, SocketAddr, Instant)>,
    by_addr: HashMap<SocketAddr, Vec<usize>>,
}

impl IdlePool {
    pub fn put(
        &mut self,
        registry: &Registry,
        addr: SocketAddr,
        mut stream: TcpStream,
        now: Instant,
    ) {
        let list = self.by_addr.entry(addr).or_default();
        if list.len() >= IDLE_PER_SERVER || self.conns.len() >= SESSION_BASE - IDLE_BASE {
            return;
        }
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if registry
            .reregister(&mut stream, Token(IDLE_BASE + key), Interest::READABLE)
            .is_ok()
        {
            entry.insert((stream, addr, now));
            list.push(key);
        }
    }

    /// The newest quiet idle connection to `addr`, registered again under `token`.
    pub fn take(
        &mut self,
        registry: &Registry,
        addr: SocketAddr,
        token: Token,
    ) -> Option<TcpStream> {
        let list = self.by_addr.get_mut(&addr)?;
        while let Some(key) = list.pop() {
            let (mut s, _, _) = self.conns.remove(key);
            if !quiet(&s) {
                // The poller's word may not have arrived yet: a server that closed the
                // connection or sent bytes nobody asked for gets no request on it.
                lvs_common::event!(
                    log::Level::Debug,
                    "l7_idle_connection_dropped",
                    server = addr
                );
                let _ = registry.deregister(&mut s);
                continue;
            }
            if registry
                .reregister(&mut s, token, Interest::READABLE | Interest::WRITABLE)
                .is_ok()
            {
                return Some(s);
            }
        }
        None
    }

    /// An idle connection became readable: the server closed it (or broke the protocol).
    fn event(&mut self, key: usize) {
        if let Some((_, addr, _)) = self.conns.try_remove(key)
            && let Some(list) = self.by_addr.get_mut(&addr)
        {
            list.retain(|&k| k != key);
        }
    }

    fn expire(&mut self, now: Instant) {
        let old: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, (_, _, t))| now.duration_since(*t) >= IDLE_MAX_AGE)
            .map(|(k, _)| k)
            .collect();
        for k in old {
            self.event(k);
        }
    }
}

/// Whether a server connection between requests has nothing to say: no bytes waiting, no
/// end of stream, no error. Anything else makes it unfit for the next request.
pub(crate) fn quiet(s: &TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.peek(&mut b), Err(e) if e.kind() == ErrorKind::WouldBlock)
}

/// Orders from the engine.
#[derive(Debug)]
pub(crate) enum Command {
    Listen(Arc<ServiceShared>, std::net::TcpListener),
    Unlisten(SocketAddr),
    Stop,
}

pub(crate) struct Worker {
    pub poll: Poll,
    pub rx: Receiver<Command>,
    listeners: Slab<(Arc<ServiceShared>, TcpListener)>,
    sessions: Slab<Session>,
    idle: IdlePool,
}

impl Worker {
    pub fn new(poll: Poll, rx: Receiver<Command>) -> Self {
        Self {
            poll,
            rx,
            listeners: Slab::new(),
            sessions: Slab::new(),
            idle: IdlePool::default(),
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
            for ev in events.iter() {
                let t = ev.token().0;
                if ev.token() == WAKER {
                    if !self.commands() {
                        return;
                    }
                } else if t >= SESSION_BASE {
                    let key = (t - SESSION_BASE) / 2;
                    if (ev.is_readable() || ev.is_read_closed() || ev.is_error())
                        && let Some(s) = self.sessions.get_mut(key)
                    {
                        if (t - SESSION_BASE).is_multiple_of(2) {
                            s.client_readable();
                        } else {
                            s.upstream_readable();
                        }
                    }
                    self.session_event(key, now);
                } else if t >= IDLE_BASE {
                    self.idle.event(t - IDLE_BASE);
                } else if t >= LISTENER_BASE {
                    self.accept(t - LISTENER_BASE, now);
                }
            }
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
                Command::Listen(svc, l) => {
                    let mut l = TcpListener::from_std(l);
                    let entry = self.listeners.vacant_entry();
                    let token = Token(LISTENER_BASE + entry.key());
                    if entry.key() + LISTENER_BASE >= IDLE_BASE {
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
                Command::Unlisten(vip) => {
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
                Command::Stop => return false,
            }
        }
        true
    }

    fn accept(&mut self, idx: usize, now: Instant) {
        loop {
            let Some((svc, l)) = self.listeners.get(idx) else {
                return;
            };
            let (mut stream, peer) = match l.accept() {
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
            let _ = stream.set_nodelay(true);
            let entry = self.sessions.vacant_entry();
            let key = entry.key();
            if self
                .poll
                .registry()
                .register(
                    &mut stream,
                    Token(SESSION_BASE + 2 * key),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .is_err()
            {
                continue;
            }
            let current = svc.current();
            // Counted in only once the session exists: its drop counts it out.
            let admitted = svc.admit(current.0.settings.max_connections, now);
            entry.insert(Session::new(stream, peer, svc, current, admitted, now));
            self.session_event(key, now);
        }
    }

    fn session_event(&mut self, key: usize, now: Instant) {
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        let mut cx = Ctx {
            registry: self.poll.registry(),
            idle: &mut self.idle,
            now,
            up_token: Token(SESSION_BASE + 2 * key + 1),
        };
        if !s.drive(&mut cx) {
            self.close(key);
        }
    }

    fn close(&mut self, key: usize) {
        let mut s = self.sessions.remove(key);
        let _ = self.poll.registry().deregister(s.client());
    }

    fn tick(&mut self, now: Instant) {
        self.idle.expire(now);
        let mut dead = Vec::new();
        for (key, s) in self.sessions.iter_mut() {
            let mut cx = Ctx {
                registry: self.poll.registry(),
                idle: &mut self.idle,
                now,
                up_token: Token(SESSION_BASE + 2 * key + 1),
            };
            if !s.on_timer(&mut cx) {
                dead.push(key);
            }
        }
        for k in dead {
            self.close(k);
        }
    }
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("listeners", &self.listeners.len())
            .field("sessions", &self.sessions.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A connected pair on loopback: (our non-blocking side, the server's side).
    fn pair() -> (TcpStream, std::net::TcpStream) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (theirs, _) = l.accept().unwrap();
        ours.set_nonblocking(true).unwrap();
        (TcpStream::from_std(ours), theirs)
    }

    /// The poller has not said anything yet: the check at reuse alone must keep a dirty
    /// connection out.
    #[test]
    fn idle_connections_with_stray_bytes_or_closed_are_not_reused() {
        let poll = Poll::new().unwrap();
        let mut idle = IdlePool::default();
        let now = Instant::now();
        let (clean, _keep) = pair();
        let (dirty, mut talker) = pair();
        let (closed, closer) = pair();
        let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        for (p, mut s) in [(1, clean), (2, dirty), (3, closed)] {
            // As a session's server connection is before it goes idle.
            poll.registry()
                .register(&mut s, Token(SESSION_BASE + 1), Interest::READABLE)
                .unwrap();
            idle.put(poll.registry(), addr(p), s, now);
        }
        assert_eq!(idle.conns.len(), 3);
        talker.write_all(b"HTTP/1.1 200 OK\r\n").unwrap();
        drop(closer);
        // Let the bytes and the FIN cross loopback.
        let deadline = Instant::now() + Duration::from_secs(5);
        let token = Token(SESSION_BASE + 1);
        loop {
            let dirty_gone = idle.by_addr[&addr(2)]
                .iter()
                .all(|&k| !quiet(&idle.conns[k].0));
            let closed_gone = idle.by_addr[&addr(3)]
                .iter()
                .all(|&k| !quiet(&idle.conns[k].0));
            if dirty_gone && closed_gone {
                break;
            }
            assert!(Instant::now() < deadline, "loopback delivered nothing");
            std::thread::yield_now();
        }
        assert!(idle.take(poll.registry(), addr(2), token).is_none());
        assert!(idle.take(poll.registry(), addr(3), token).is_none());
        assert!(idle.take(poll.registry(), addr(1), token).is_some());
        assert!(idle.conns.is_empty(), "the dirty ones were dropped");
    }
}
