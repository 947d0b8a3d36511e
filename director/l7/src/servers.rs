//! A worker's connections to real servers: in use by a session, or idle and free for the next
//! request to the same server.
//!
//! Each connection is registered with the poller once, under a token of its own (its *slot*),
//! for its whole life; handing it from a session to the idle list and on to the next session
//! only changes who its events go to. (Re-registering it at every hand-over cost two
//! `epoll_ctl` calls per request.) A connection's slot is freed only after the connection is
//! closed ([`Servers::reap`]), so a slot never names two connections at once.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use slab::Slab;

/// An idle server connection older than this is closed rather than reused.
pub(crate) const IDLE_MAX_AGE: Duration = Duration::from_secs(20);
/// An idle connection younger than this is reused on the poller's word alone: a server that
/// closed it or sent stray bytes has raised an event, and the worker looks at the events of
/// idle connections ([`Servers::idle_event`]) before it hands any connection out. An older
/// one is also asked directly ([`quiet`]), one `recv` more, in case the word is still on its
/// way (a server's keep-alive timeout closes connections that waited long).
pub(crate) const PEEK_AFTER: Duration = Duration::from_secs(1);
/// Idle connections kept per real server per worker. Every idle connection was in use once,
/// so this bounds only what a burst leaves behind (for [`IDLE_MAX_AGE`] at most); it must not
/// bound the connections a steady load keeps busy, or every request beyond it pays a new
/// connection (64 here cost 0.6 connects per request at 256 clients).
const IDLE_PER_SERVER: usize = 1024;

thread_local! {
    /// Slots of connections closed since the last [`Servers::reap`] (each worker is one
    /// thread).
    static RETIRED: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// A connection to a real server, registered under its slot's token; closing it (dropping)
/// frees the slot at the next reap.
#[derive(Debug)]
pub(crate) struct ServerConn {
    stream: TcpStream,
    slot: usize,
}

impl ServerConn {
    pub fn slot(&self) -> usize {
        self.slot
    }
}

impl Deref for ServerConn {
    type Target = TcpStream;
    fn deref(&self) -> &TcpStream {
        &self.stream
    }
}

impl DerefMut for ServerConn {
    fn deref_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }
}

impl Drop for ServerConn {
    fn drop(&mut self) {
        // At thread exit the list may be gone: nobody reaps then anyway.
        let _ = RETIRED.try_with(|r| r.borrow_mut().push(self.slot));
    }
}

/// Who a server connection's events go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// The session with this key (its request in progress, or its pinned connection).
    Session(usize),
    /// Idle, under this key of the idle list.
    Idle(usize),
}

#[derive(Debug)]
struct IdleConn {
    conn: ServerConn,
    addr: SocketAddr,
    since: Instant,
}

#[derive(Debug)]
pub(crate) struct Servers {
    token: fn(usize) -> Token,
    owners: Slab<Owner>,
    idle: Slab<IdleConn>,
    by_addr: HashMap<SocketAddr, Vec<usize>>,
}

impl Servers {
    /// `token` gives the poller token of a slot.
    pub fn new(token: fn(usize) -> Token) -> Self {
        Self {
            token,
            owners: Slab::new(),
            idle: Slab::new(),
            by_addr: HashMap::new(),
        }
    }

    /// A new non-blocking connection to `addr` for `session`, registered for good.
    pub fn connect(
        &mut self,
        registry: &Registry,
        addr: SocketAddr,
        session: usize,
    ) -> io::Result<ServerConn> {
        let mut stream = TcpStream::connect(addr)?;
        let _ = stream.set_nodelay(true);
        let entry = self.owners.vacant_entry();
        let slot = entry.key();
        registry.register(
            &mut stream,
            (self.token)(slot),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        entry.insert(Owner::Session(session));
        Ok(ServerConn { stream, slot })
    }

    pub fn owner(&self, slot: usize) -> Option<Owner> {
        self.owners.get(slot).copied()
    }

    /// A clean connection to `addr` after its request: free for the next one (or closed, when
    /// enough wait already).
    pub fn put(&mut self, conn: ServerConn, addr: SocketAddr, now: Instant) {
        let list = self.by_addr.entry(addr).or_default();
        if list.len() >= IDLE_PER_SERVER {
            return;
        }
        let slot = conn.slot;
        let key = self.idle.insert(IdleConn {
            conn,
            addr,
            since: now,
        });
        list.push(key);
        if let Some(o) = self.owners.get_mut(slot) {
            *o = Owner::Idle(key);
        }
    }

    /// The newest idle connection to `addr` that is fit for a request, now `session`'s.
    pub fn take(&mut self, addr: SocketAddr, session: usize, now: Instant) -> Option<ServerConn> {
        let list = self.by_addr.get_mut(&addr)?;
        while let Some(key) = list.pop() {
            let IdleConn { conn, since, .. } = self.idle.remove(key);
            if now.duration_since(since) >= PEEK_AFTER && !quiet(&conn) {
                lvs_common::event!(
                    log::Level::Debug,
                    "l7_idle_connection_dropped",
                    server = addr
                );
                continue;
            }
            if let Some(o) = self.owners.get_mut(conn.slot) {
                *o = Owner::Session(session);
            }
            return Some(conn);
        }
        None
    }

    /// An idle connection became readable (or reported an error): the server closed it or
    /// broke the protocol. It is closed.
    pub fn idle_event(&mut self, key: usize) {
        if let Some(IdleConn { addr, .. }) = self.idle.try_remove(key)
            && let Some(list) = self.by_addr.get_mut(&addr)
        {
            list.retain(|&k| k != key);
        }
    }

    /// Close idle connections that waited too long.
    pub fn expire(&mut self, now: Instant) {
        let old: Vec<usize> = self
            .idle
            .iter()
            .filter(|(_, c)| now.duration_since(c.since) >= IDLE_MAX_AGE)
            .map(|(k, _)| k)
            .collect();
        for k in old {
            self.idle_event(k);
        }
    }

    /// Free the slots of connections closed since the last call.
    pub fn reap(&mut self) {
        let _ = RETIRED.try_with(|r| {
            for slot in r.borrow_mut().drain(..) {
                self.owners.try_remove(slot);
            }
        });
    }

    /// Connections waiting idle (for tests).
    #[cfg(test)]
    pub fn idle_len(&self) -> usize {
        self.idle.len()
    }

    /// Slots in use (for tests).
    #[cfg(test)]
    pub fn slots(&self) -> usize {
        self.owners.len()
    }
}

/// Whether a server connection between requests has nothing to say: no bytes waiting, no
/// end of stream, no error. Anything else makes it unfit for the next request.
pub(crate) fn quiet(s: &TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.peek(&mut b), Err(e) if e.kind() == ErrorKind::WouldBlock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll};
    use std::io::Write;

    fn token(slot: usize) -> Token {
        Token(1000 + slot)
    }

    /// Three connections of `session` to a local server, through `servers`, each with the
    /// server's side: (ours, theirs, the address it is filed under).
    fn three(
        poll: &Poll,
        servers: &mut Servers,
    ) -> Vec<(ServerConn, std::net::TcpStream, SocketAddr)> {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        (1..=3)
            .map(|p| {
                let ours = servers
                    .connect(poll.registry(), l.local_addr().unwrap(), 7)
                    .unwrap();
                let (theirs, _) = l.accept().unwrap();
                (ours, theirs, SocketAddr::from(([127, 0, 0, 1], p)))
            })
            .collect()
    }

    /// Idle connections 1 (clean), 2 (the server wrote stray bytes) and 3 (the server closed
    /// it), after both have crossed loopback; returns the server side of the clean one.
    fn dirty_two(poll: &Poll, servers: &mut Servers, since: Instant) -> std::net::TcpStream {
        let mut conns = three(poll, servers);
        let (c3, closer, a3) = conns.pop().unwrap();
        let (c2, mut talker, a2) = conns.pop().unwrap();
        let (c1, keep, a1) = conns.pop().unwrap();
        for (c, a) in [(c1, a1), (c2, a2), (c3, a3)] {
            servers.put(c, a, since);
        }
        assert_eq!(servers.idle_len(), 3);
        talker.write_all(b"HTTP/1.1 200 OK\r\n").unwrap();
        drop(closer);
        // Let the bytes and the FIN cross loopback.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let dirty = |a: SocketAddr| {
                servers.by_addr[&a]
                    .iter()
                    .all(|&k| !quiet(&servers.idle[k].conn))
            };
            if dirty(a2) && dirty(a3) {
                break;
            }
            assert!(Instant::now() < deadline, "loopback delivered nothing");
            std::thread::yield_now();
        }
        keep
    }

    fn addr(p: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], p))
    }

    /// An idle connection old enough is asked directly at reuse, so a dirty one stays out even
    /// when the poller has not said anything (its events are never looked at here).
    #[test]
    fn idle_connections_with_stray_bytes_or_closed_are_not_reused() {
        let poll = Poll::new().unwrap();
        let mut servers = Servers::new(token);
        let since = Instant::now();
        let _keep = dirty_two(&poll, &mut servers, since);
        let now = since + PEEK_AFTER;
        assert!(servers.take(addr(2), 9, now).is_none());
        assert!(servers.take(addr(3), 9, now).is_none());
        let c = servers.take(addr(1), 9, now).expect("the clean one");
        assert_eq!(servers.owner(c.slot()), Some(Owner::Session(9)));
        assert_eq!(servers.idle_len(), 0, "the dirty ones were dropped");
        servers.reap();
        assert_eq!(servers.slots(), 1, "their slots are free again");
    }

    /// A young idle connection is not asked (no `recv` at reuse): the poller's events, looked
    /// at before any reuse, keep the dirty ones out.
    #[test]
    fn young_idle_connections_are_judged_by_the_poller() {
        let mut poll = Poll::new().unwrap();
        let mut servers = Servers::new(token);
        let since = Instant::now();
        let _keep = dirty_two(&poll, &mut servers, since);
        let mut events = Events::with_capacity(64);
        let deadline = Instant::now() + Duration::from_secs(5);
        while servers.idle_len() > 1 {
            assert!(Instant::now() < deadline, "the poller said nothing");
            poll.poll(&mut events, Some(Duration::from_millis(100)))
                .unwrap();
            for ev in events.iter() {
                let slot = ev.token().0 - 1000;
                if (ev.is_readable() || ev.is_read_closed() || ev.is_error())
                    && let Some(Owner::Idle(k)) = servers.owner(slot)
                {
                    servers.idle_event(k);
                }
            }
        }
        assert!(servers.take(addr(2), 9, since).is_none());
        assert!(servers.take(addr(3), 9, since).is_none());
        let c = servers.take(addr(1), 9, since).expect("the clean one");
        assert_eq!(servers.owner(c.slot()), Some(Owner::Session(9)));
        drop(c);
        servers.reap();
        assert_eq!(servers.slots(), 0);
    }
}
