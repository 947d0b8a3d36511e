//! One client connection of a content service, and the real-server connection it uses for
//! the request in progress.
//!
//! Requests are handled one at a time, in order: a pipelined request waits in the client
//! buffer until the response before it is complete, so responses can only come back in
//! order. Each request is routed on its own and may go to another pool than the one before.
//! Bodies move through four bounded buffers (client in/out, server in/out), read only when
//! there is room, so a fast sender is slowed down to the pace of the slow receiver. A buffer
//! holds memory only while it holds data (see `buf`): an idle connection holds none.

use std::io::{self, ErrorKind};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Registry};

use crate::buf::Buf;
use crate::chunked::ChunkedRecoder;
use crate::config::{ClientAddress, Mode};
use crate::http::{self, BodyKind};
use crate::pool::Pool;
use crate::route::{RequestView, RouteTable};
use crate::servers::{ServerConn, Servers};
use crate::sni::{self, Sni};
use crate::worker::ServiceShared;

/// How long a closing connection is read (and its bytes dropped) after our last answer.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// What a session needs from its worker for one call.
pub(crate) struct Ctx<'a> {
    pub registry: &'a Registry,
    pub servers: &'a mut Servers,
    pub now: Instant,
    /// The session's key: its server connections' events go to it.
    pub key: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for (the rest of) a request head.
    Head,
    /// Waiting for (the rest of) a TLS ClientHello.
    Sni,
    /// A request and its response in flight.
    Exchange,
    /// Bytes both ways, untouched (TLS passthrough, WebSocket after 101).
    Tunnel,
    /// Sending what is left to the client, then closing.
    Closing,
}

#[derive(Debug, Clone, Copy)]
enum Body {
    Length(u64),
    Chunked(ChunkedRecoder),
    UntilClose,
}

impl Body {
    fn from_kind(k: BodyKind) -> Option<Self> {
        match k {
            BodyKind::None => None,
            BodyKind::Length(n) => Some(Body::Length(n)),
            BodyKind::Chunked => Some(Body::Chunked(ChunkedRecoder::default())),
            BodyKind::UntilClose => Some(Body::UntilClose),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RespPhase {
    Head,
    Body,
    Done,
}

/// One request in flight.
#[derive(Debug)]
struct Exchange {
    req_body: Option<Body>,
    resp: RespPhase,
    resp_body: Option<Body>,
    resp_started: bool,
    is_head: bool,
    keep_alive: bool,
    upgrade: bool,
    http10: bool,
    upstream_keep: bool,
    /// The request head, kept while a bodiless idempotent request (RFC 9110 §9.2.2) rides a
    /// reused connection: a server may close an idle connection just as it is reused, and such
    /// a request is sent again, once, on a new one (as browsers and HAProxy do). Any other
    /// request gets a 502: the server may have acted on it.
    retry_head: Option<Vec<u8>>,
    /// The request carries NTLM or Negotiate credentials: its server connection becomes
    /// private.
    binds: bool,
}

/// Decrements a member's in-flight count when the request lets go of it.
#[derive(Debug)]
struct ActiveGuard {
    pool: Arc<Pool>,
    member: usize,
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.pool.members[self.member]
            .counters
            .active
            .fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct Upstream {
    stream: ServerConn,
    addr: SocketAddr,
    connected: bool,
    eof: bool,
    shut: bool,
    ready: bool,
    /// The server bound this connection to the client (NTLM or Negotiate authentication):
    /// it is never shared, only kept for this session ([`Session::pinned`]).
    private: bool,
    guard: ActiveGuard,
}

/// Methods a request may be sent again with, when nothing of its answer came back.
fn idempotent(head: &[u8]) -> bool {
    ["GET ", "HEAD ", "PUT ", "DELETE ", "OPTIONS ", "TRACE "]
        .iter()
        .any(|m| head.starts_with(m.as_bytes()))
}

/// Why a step ended the session.
#[derive(Debug)]
struct Close;

type Step = Result<bool, Close>;

#[derive(Debug)]
pub(crate) struct Session {
    client: TcpStream,
    peer: SocketAddr,
    /// The address the client connected to (for PROXY headers), once asked.
    local: Option<SocketAddr>,
    svc: Arc<ServiceShared>,
    table: Arc<RouteTable>,
    generation: u64,
    cin: Buf,
    cout: Buf,
    uin: Buf,
    uout: Buf,
    up: Option<Upstream>,
    ex: Option<Exchange>,
    phase: Phase,
    /// Members that refused a connection for the current request.
    tried: Vec<usize>,
    pool: Option<Arc<Pool>>,
    /// The current server connection came from the idle pool.
    reused: bool,
    /// The next connect must be a new connection (a reused one just failed).
    fresh_only: bool,
    /// A private server connection between requests: the next request to that server takes
    /// it; no other client ever does. It stays registered under this session's token.
    pinned: Option<(ServerConn, SocketAddr)>,
    /// Counted in the service's open connections (not a connection refused by the cap).
    admitted: bool,
    c_eof: bool,
    /// Edge-triggered readiness: a read is tried only after an event said readable, until it
    /// would block.
    c_ready: bool,
    c_shut: bool,
    close_after: bool,
    /// The client asked to close and its last request was read whole: closing needs no
    /// lingering.
    client_done: bool,
    /// The client's socket is registered with the poller ([`Session::watch_client`]).
    c_registered: bool,
    head_started: bool,
    deadline: Instant,
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.admitted {
            self.svc.open.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == ErrorKind::WouldBlock
}

impl Session {
    /// A session of `svc` with its `current` table and generation (as the accept read them).
    /// A connection not `admitted` (beyond the service's `max_connections`) gets a 503 (an
    /// HTTP service) or nothing (TLS passthrough: a TLS client cannot read an HTTP answer),
    /// and is closed.
    pub fn new(
        client: TcpStream,
        peer: SocketAddr,
        svc: Arc<ServiceShared>,
        current: (Arc<RouteTable>, u64),
        admitted: bool,
        now: Instant,
    ) -> Self {
        let (table, generation) = current;
        let cap = crate::buf::POOLED.max(table.settings.max_header_bytes + 4096);
        let phase = match table.settings.mode {
            Mode::Http => Phase::Head,
            Mode::TlsSni => Phase::Sni,
        };
        let deadline = now
            + match phase {
                Phase::Sni => table.settings.client_timeout,
                _ => table.settings.idle_timeout,
            };
        svc.conns.fetch_add(1, Ordering::Relaxed);
        let mut s = Self {
            client,
            peer,
            local: None,
            svc,
            table,
            generation,
            cin: Buf::new(cap),
            cout: Buf::new(cap),
            uin: Buf::new(cap),
            uout: Buf::new(cap),
            up: None,
            ex: None,
            phase,
            tried: Vec::new(),
            pool: None,
            reused: false,
            fresh_only: false,
            pinned: None,
            admitted,
            c_eof: false,
            c_ready: true,
            c_shut: false,
            close_after: false,
            client_done: false,
            c_registered: false,
            head_started: false,
            deadline,
        };
        if !admitted {
            if s.table.settings.mode == Mode::Http {
                s.cout.push(http::local_response(503));
            }
            s.phase = Phase::Closing;
            s.deadline = now + LINGER;
        }
        s
    }

    /// Do everything that can be done without waiting. `false`: the session is over.
    pub fn drive(&mut self, cx: &mut Ctx<'_>) -> bool {
        match self.drive_inner(cx).and_then(|()| self.watch_client(cx)) {
            Ok(()) => true,
            Err(Close) => false,
        }
    }

    /// The client's socket joins the poller only once the session waits for it: a request
    /// that is read, answered and closed without waiting on the client (a new connection per
    /// request, the usual case) costs no `epoll_ctl`. Joining later loses nothing: the poller
    /// reports a socket that is ready when it joins.
    fn watch_client(&mut self, cx: &mut Ctx<'_>) -> Result<(), Close> {
        let waits_on_server_only = self.phase == Phase::Exchange
            && self.cout.is_empty()
            && self.ex.as_ref().is_some_and(|e| e.req_body.is_none());
        if self.c_registered || waits_on_server_only {
            return Ok(());
        }
        cx.registry
            .register(
                &mut self.client,
                crate::worker::client_token(cx.key),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|_| Close)?;
        self.c_registered = true;
        Ok(())
    }

    fn drive_inner(&mut self, cx: &mut Ctx<'_>) -> Result<(), Close> {
        loop {
            let mut progress = self.read_client(cx.now)?;
            progress |= match self.phase {
                Phase::Head => self.step_head(cx)?,
                Phase::Sni => self.step_sni(cx)?,
                Phase::Exchange => self.step_exchange(cx)?,
                Phase::Tunnel => self.step_tunnel()?,
                Phase::Closing => false,
            };
            progress |= self.upstream_io(cx)?;
            progress |= self.write_client()?;
            if self.phase == Phase::Closing && self.cout.is_empty() {
                if self.c_eof || (self.client_done && self.cin.is_empty()) {
                    return Err(Close);
                }
                if !self.c_shut {
                    // Lingering close: our answer is out; reading on until the client closes
                    // (or a short deadline) keeps the kernel from answering unread request
                    // bytes with a reset that could destroy the answer in flight.
                    let _ = self.client.shutdown(Shutdown::Write);
                    self.c_shut = true;
                    self.deadline = cx.now + LINGER;
                }
            }
            if !progress {
                return Ok(());
            }
        }
    }

    fn read_client(&mut self, now: Instant) -> Step {
        if self.c_eof || !self.c_ready || self.cin.space() == 0 {
            return Ok(false);
        }
        match self.cin.read_from(&mut self.client) {
            Ok((0, _)) => {
                self.c_eof = true;
                Ok(true)
            }
            Ok((_, full)) if self.phase == Phase::Closing => {
                self.c_ready = full;
                self.cin.clear();
                Ok(true)
            }
            Ok((n, full)) => {
                self.c_ready = full;
                self.svc.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                if matches!(self.phase, Phase::Exchange | Phase::Tunnel) {
                    self.touch(now);
                }
                Ok(true)
            }
            Err(e) if would_block(&e) => {
                self.c_ready = false;
                Ok(false)
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(true),
            Err(_) => Err(Close),
        }
    }

    /// The client's socket reported readable: the next pass reads it.
    pub fn client_readable(&mut self) {
        self.c_ready = true;
    }

    /// The server connection in `slot` reported readable (if it is not the current one, it is
    /// the pinned one between requests, checked when it is taken).
    pub fn upstream_readable(&mut self, slot: usize) {
        if let Some(up) = self.up.as_mut()
            && up.stream.slot() == slot
        {
            up.ready = true;
        }
    }

    fn write_client(&mut self) -> Step {
        let mut progress = false;
        while !self.cout.is_empty() {
            match self.cout.write_to(&mut self.client) {
                Ok(0) => return Err(Close),
                Ok(n) => {
                    self.svc.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                    progress = true;
                }
                Err(e) if would_block(&e) => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(Close),
            }
        }
        Ok(progress)
    }

    /// Any sign of life pushes the deadline of a transfer out.
    fn touch(&mut self, now: Instant) {
        let s = &self.table.settings;
        self.deadline = now
            + if self.phase == Phase::Tunnel {
                s.idle_timeout
            } else {
                s.server_timeout.max(s.client_timeout)
            };
    }

    /// The real server this exchange went to, for log lines (empty before one was chosen).
    fn upstream_addr(&self) -> String {
        self.up
            .as_ref()
            .map_or_else(String::new, |u| u.addr.to_string())
    }

    /// Answer with a response of our own and close.
    fn respond(&mut self, status: u16) {
        lvs_common::event!(
            log::Level::Debug,
            "l7_local_response",
            status = status,
            client = self.peer,
        );
        self.release_upstream(None);
        self.ex = None;
        self.cout.push(http::local_response(status));
        self.phase = Phase::Closing;
    }

    fn refresh_table(&mut self) {
        if self.svc.generation.load(Ordering::Acquire) != self.generation {
            let (t, g) = self.svc.current();
            self.table = t;
            self.generation = g;
        }
    }

    fn step_head(&mut self, cx: &mut Ctx<'_>) -> Step {
        if self.cin.is_empty() {
            return if self.c_eof { Err(Close) } else { Ok(false) };
        }
        if !self.head_started {
            self.head_started = true;
            self.deadline = cx.now + self.table.settings.client_timeout;
        }
        self.refresh_table();
        let req = match http::parse_request(self.cin.bytes(), &self.table, self.peer) {
            Ok(None) => return if self.c_eof { Err(Close) } else { Ok(false) },
            Err(status) => {
                self.respond(status);
                return Ok(true);
            }
            Ok(Some(r)) => r,
        };
        self.cin.consume(req.head_len);
        self.head_started = false;
        self.svc.requests.fetch_add(1, Ordering::Relaxed);
        let Some(route) = req.route else {
            self.respond(self.table.settings.no_match);
            return Ok(true);
        };
        match route.rule {
            Some(r) => self.table.rules[r].hits.fetch_add(1, Ordering::Relaxed),
            None => self.table.default_hits.fetch_add(1, Ordering::Relaxed),
        };
        let pool = Arc::clone(&self.table.pools[route.pool]);
        pool.counters.requests.fetch_add(1, Ordering::Relaxed);
        self.uout.clear();
        self.uin.clear();
        self.push_proxy_header();
        self.uout.push(&req.upstream_head);
        let bodiless = req.body == BodyKind::None;
        self.ex = Some(Exchange {
            req_body: Body::from_kind(req.body),
            resp: RespPhase::Head,
            resp_body: None,
            resp_started: false,
            is_head: req.is_head,
            keep_alive: req.keep_alive,
            upgrade: req.upgrade,
            http10: req.http10,
            upstream_keep: false,
            retry_head: None,
            binds: req.binds,
        });
        self.tried.clear();
        self.pool = Some(pool);
        self.phase = Phase::Exchange;
        if self.connect(cx).is_err() {
            self.respond(503);
        } else if self.reused
            && bodiless
            && idempotent(&req.upstream_head)
            && !self.uses_proxy_protocol()
            && let Some(ex) = self.ex.as_mut()
        {
            ex.retry_head = Some(req.upstream_head);
        }
        Ok(true)
    }

    fn push_proxy_header(&mut self) {
        let v2 = match self.table.settings.client_address {
            ClientAddress::ProxyV1 => false,
            ClientAddress::ProxyV2 => true,
            _ => return,
        };
        // Asked of the kernel once per connection, and only when a header needs it.
        let local = *self
            .local
            .get_or_insert_with(|| self.client.local_addr().unwrap_or(self.table.settings.vip));
        crate::proxyproto::write(&mut self.uout, v2, self.peer, local);
    }

    fn uses_proxy_protocol(&self) -> bool {
        matches!(
            self.table.settings.client_address,
            ClientAddress::ProxyV1 | ClientAddress::ProxyV2
        )
    }

    fn step_sni(&mut self, cx: &mut Ctx<'_>) -> Step {
        match sni::parse(self.cin.bytes()) {
            Sni::Incomplete if self.c_eof || self.cin.len() >= sni::MAX_HELLO + 64 => Err(Close),
            Sni::Incomplete => Ok(false),
            Sni::NotTls => Err(Close),
            Sni::Done(name) => {
                let view = RequestView {
                    host: name.as_deref(),
                    path: "",
                    method: "",
                    headers: &[],
                };
                let Some(route) = self.table.route(&view) else {
                    lvs_common::event!(
                        log::Level::Debug,
                        "l7_sni_no_match",
                        client = self.peer,
                        server_name = name.unwrap_or_default(),
                    );
                    return Err(Close);
                };
                match route.rule {
                    Some(r) => self.table.rules[r].hits.fetch_add(1, Ordering::Relaxed),
                    None => self.table.default_hits.fetch_add(1, Ordering::Relaxed),
                };
                let pool = Arc::clone(&self.table.pools[route.pool]);
                pool.counters.requests.fetch_add(1, Ordering::Relaxed);
                self.svc.requests.fetch_add(1, Ordering::Relaxed);
                self.push_proxy_header();
                self.pool = Some(pool);
                self.phase = Phase::Tunnel;
                self.touch(cx.now);
                self.connect(cx).map_err(|()| Close)?;
                Ok(true)
            }
        }
    }

    /// Attach a real server of the current pool: an idle kept-alive connection to it, or a new
    /// non-blocking connect. `Err`: no member is usable.
    fn connect(&mut self, cx: &mut Ctx<'_>) -> Result<(), ()> {
        let pool = Arc::clone(self.pool.as_ref().ok_or(())?);
        let vip = self.table.settings.vip;
        loop {
            let pinned = self.pinned.as_ref().and_then(|(_, a)| {
                pool.members
                    .iter()
                    .position(|m| m.addr == *a && m.healthy.load(Ordering::Relaxed) && m.weight > 0)
            });
            let pick = match pinned {
                Some(i) if !self.tried.contains(&i) && !self.fresh_only => Some(i),
                _ => pool.pick(self.peer, vip, &self.tried),
            };
            let Some(i) = pick else {
                pool.counters.no_server.fetch_add(1, Ordering::Relaxed);
                return Err(());
            };
            let member = &pool.members[i];
            let addr = member.addr;
            let fresh_only = std::mem::take(&mut self.fresh_only);
            let mut private = self.ex.as_ref().is_some_and(|e| e.binds);
            let reused = if self.uses_proxy_protocol() || self.phase == Phase::Tunnel || fresh_only
            {
                None
            } else if let Some(s) = self.take_pinned(addr) {
                private = true;
                Some(s)
            } else {
                cx.servers.take(addr, cx.key, cx.now)
            };
            self.reused = reused.is_some();
            let (stream, connected) = match reused {
                Some(s) => (s, true),
                None => match cx.servers.connect(cx.registry, addr, cx.key) {
                    Ok(s) => (s, false),
                    Err(e) => {
                        lvs_common::event!(
                            log::Level::Debug,
                            "l7_connect_failed",
                            server = addr,
                            reason = e
                        );
                        member.counters.failures.fetch_add(1, Ordering::Relaxed);
                        self.tried.push(i);
                        continue;
                    }
                },
            };
            member.counters.active.fetch_add(1, Ordering::Relaxed);
            member.counters.requests.fetch_add(1, Ordering::Relaxed);
            self.up = Some(Upstream {
                stream,
                addr,
                connected,
                eof: false,
                shut: false,
                // Nothing to read yet on a new connection or a checked idle one; the poller
                // says when there is.
                ready: false,
                private,
                guard: ActiveGuard {
                    pool: Arc::clone(&pool),
                    member: i,
                },
            });
            self.deadline = cx.now
                + if connected {
                    self.table.settings.server_timeout
                } else {
                    self.table.settings.connect_timeout
                };
            return Ok(());
        }
    }

    /// The pinned connection, if it goes to `addr` and is still quiet (a server that closed
    /// it or sent stray bytes gets a new connection).
    fn take_pinned(&mut self, addr: SocketAddr) -> Option<ServerConn> {
        if self.pinned.as_ref().is_none_or(|(_, a)| *a != addr) {
            return None;
        }
        let (s, _) = self.pinned.take()?;
        if !crate::servers::quiet(&s) {
            lvs_common::event!(
                log::Level::Debug,
                "l7_pinned_connection_dropped",
                server = addr
            );
            return None;
        }
        Some(s)
    }

    /// Let go of the real server; when `idle` is given and the connection is clean, back to
    /// the idle pool, or kept for this client alone if it is private.
    fn release_upstream(&mut self, idle: Option<&mut Ctx<'_>>) {
        let Some(up) = self.up.take() else { return };
        let Upstream {
            stream,
            addr,
            guard,
            connected,
            eof,
            private,
            ..
        } = up;
        drop(guard);
        if let Some(cx) = idle
            && connected
            && !eof
            && self.uin.is_empty()
            && self.uout.is_empty()
        {
            if private {
                // A pinned connection to another server, if any, is closed: one is kept.
                self.pinned = Some((stream, addr));
            } else {
                cx.servers.put(stream, addr, cx.now);
            }
        }
    }

    /// The real server failed before answering: try another member, or answer 503.
    fn upstream_failed(&mut self, cx: &mut Ctx<'_>, answered: bool) -> Step {
        if let Some(up) = &self.up {
            let m = up.guard.member;
            up.guard.pool.members[m]
                .counters
                .failures
                .fetch_add(1, Ordering::Relaxed);
            self.tried.push(m);
        }
        self.release_upstream(None);
        if answered {
            // Part of the response went out: all the client can be told is the close.
            self.phase = Phase::Closing;
            return Ok(true);
        }
        // Nothing was sent to a server that never connected, so the whole request is still
        // in the buffer and can go to another member.
        if self.connect(cx).is_ok() {
            return Ok(true);
        }
        if self.phase == Phase::Tunnel {
            return Err(Close);
        }
        self.respond(503);
        Ok(true)
    }

    fn upstream_io(&mut self, cx: &mut Ctx<'_>) -> Step {
        let Some(up) = self.up.as_mut() else {
            return Ok(false);
        };
        let mut progress = false;
        if !up.connected {
            let failed = match up.stream.take_error() {
                Ok(Some(_)) | Err(_) => true,
                Ok(None) => match up.stream.peer_addr() {
                    Ok(_) => {
                        up.connected = true;
                        progress = true;
                        false
                    }
                    Err(e) if e.kind() == ErrorKind::NotConnected => return Ok(false),
                    Err(_) => true,
                },
            };
            if failed {
                lvs_common::event!(log::Level::Debug, "l7_connect_failed", server = up.addr);
                return self.upstream_failed(cx, false);
            }
            self.deadline = cx.now + self.table.settings.server_timeout;
        }
        let up = self.up.as_mut().ok_or(Close)?;
        while !self.uout.is_empty() {
            match self.uout.write_to(&mut *up.stream) {
                Ok(0) => break,
                Ok(_) => progress = true,
                Err(e) if would_block(&e) => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    up.eof = true;
                    self.uout.clear();
                    progress = true;
                    break;
                }
            }
        }
        if !up.eof && up.ready && self.uin.space() > 0 {
            match self.uin.read_from(&mut *up.stream) {
                Ok((0, _)) => {
                    up.eof = true;
                    progress = true;
                }
                Ok((_, full)) => {
                    up.ready = full;
                    progress = true;
                }
                Err(e) if would_block(&e) => up.ready = false,
                Err(e) if e.kind() == ErrorKind::Interrupted => progress = true,
                Err(_) => {
                    up.eof = true;
                    progress = true;
                }
            }
        }
        if progress && self.phase != Phase::Head {
            self.touch(cx.now);
        }
        Ok(progress)
    }

    /// Move up to the end of `body` from `from` to `to`; `None` body moves nothing. Returns
    /// (bytes moved, body complete).
    fn move_body(body: &mut Body, from: &mut Buf, to: &mut Buf) -> Result<(usize, bool), Close> {
        let avail = from.len().min(to.space());
        let (n, done) = match body {
            Body::Length(left) => {
                let n = avail.min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= n as u64;
                (n, *left == 0)
            }
            Body::Chunked(rc) => {
                // Re-encoded, not copied: the next hop gets framing we wrote.
                let n = rc.recode(from.bytes(), to).map_err(|e| {
                    lvs_common::event!(log::Level::Debug, "l7_bad_chunked", reason = e);
                    Close
                })?;
                from.consume(n);
                return Ok((n, rc.is_done()));
            }
            Body::UntilClose => (avail, false),
        };
        to.move_from(from, n);
        Ok((n, done))
    }

    fn step_exchange(&mut self, cx: &mut Ctx<'_>) -> Step {
        let Some(mut ex) = self.ex.take() else {
            return Err(Close);
        };
        let r = self.exchange(&mut ex, cx);
        if self.phase == Phase::Exchange && self.ex.is_none() {
            self.ex = Some(ex);
        }
        r
    }

    fn exchange(&mut self, ex: &mut Exchange, cx: &mut Ctx<'_>) -> Step {
        let mut progress = false;
        // Request body, client to server.
        if let Some(body) = ex.req_body.as_mut() {
            match Self::move_body(body, &mut self.cin, &mut self.uout) {
                Ok((n, done)) => {
                    progress |= n > 0;
                    if done {
                        ex.req_body = None;
                    }
                }
                Err(Close) => {
                    let answered = ex.resp_started;
                    if answered {
                        return Err(Close);
                    }
                    self.respond(400);
                    return Ok(true);
                }
            }
            if ex.req_body.is_some() && self.c_eof && self.cin.is_empty() {
                // The client went away in the middle of its body.
                return Err(Close);
            }
        }
        let req_done = ex.req_body.is_none();
        let up_eof = self.up.as_ref().is_none_or(|u| u.eof);
        // Response, server to client.
        if ex.resp == RespPhase::Head {
            let max = self.uin.space() + self.uin.len();
            match http::parse_response(self.uin.bytes(), ex.is_head, max) {
                Err(()) => {
                    let answered = ex.resp_started;
                    lvs_common::event!(log::Level::Debug, "l7_bad_response", client = self.peer);
                    if answered {
                        return Err(Close);
                    }
                    self.upstream_dead();
                    self.respond(502);
                    return Ok(true);
                }
                Ok(None) => {
                    if up_eof
                        && !ex.resp_started
                        && self.uin.is_empty()
                        && let Some(head) = ex.retry_head.take()
                    {
                        lvs_common::event!(
                            log::Level::Debug,
                            "l7_reused_connection_closed",
                            client = self.peer
                        );
                        self.release_upstream(None);
                        self.uout.clear();
                        self.uout.push(&head);
                        self.fresh_only = true;
                        if self.connect(cx).is_err() {
                            self.respond(503);
                        } else if let Some(up) = self.up.as_mut() {
                            // `ex` is out of `self` here, so `connect` could not see it.
                            up.private |= ex.binds;
                        }
                        return Ok(true);
                    }
                    if up_eof {
                        let answered = ex.resp_started;
                        self.upstream_dead();
                        if answered {
                            self.phase = Phase::Closing;
                        } else {
                            self.respond(502);
                        }
                        return Ok(true);
                    }
                }
                Ok(Some(r)) => {
                    let head_len = r.head_len;
                    if r.status == 101 && !ex.upgrade {
                        // A switch nobody allowed: what follows would escape the rules.
                        lvs_common::event!(
                            log::Level::Info,
                            "l7_unrequested_upgrade",
                            client = self.peer,
                            server = self.upstream_addr(),
                        );
                        self.upstream_dead();
                        self.respond(502);
                        return Ok(true);
                    }
                    if r.status == 101 {
                        if self.cout.space() < head_len {
                            return Ok(progress);
                        }
                        self.cout.push(&self.uin.bytes()[..head_len]);
                        self.uin.consume(head_len);
                        self.phase = Phase::Tunnel;
                        self.touch(cx.now);
                        return Ok(true);
                    }
                    let interim = (100..200).contains(&r.status);
                    let mut r = r;
                    // An HTTP/1.0 client knows no chunked coding (RFC 9112 §6.1): it gets the
                    // data alone, ended by the close.
                    let unchunk = ex.http10 && r.body == BodyKind::Chunked;
                    if unchunk {
                        r.framing.coded = false;
                    }
                    let close =
                        !ex.keep_alive || r.body == BodyKind::UntilClose || self.c_eof || unchunk;
                    let conn: &[u8] = if interim {
                        b""
                    } else if close {
                        b"Connection: close\r\n"
                    } else if ex.http10 {
                        b"Connection: keep-alive\r\n"
                    } else {
                        b""
                    };
                    let head = &self.uin.bytes()[..head_len];
                    match http::write_response_head(head, &r, conn, &mut self.cout) {
                        http::HeadWrite::NoRoom => return Ok(progress),
                        http::HeadWrite::Refused if ex.resp_started => return Err(Close),
                        http::HeadWrite::Refused => {
                            lvs_common::event!(
                                log::Level::Debug,
                                "l7_bad_response",
                                client = self.peer
                            );
                            self.upstream_dead();
                            self.respond(502);
                            return Ok(true);
                        }
                        http::HeadWrite::Written => {}
                    }
                    if !interim
                        && r.binds
                        && let Some(up) = self.up.as_mut()
                        && !up.private
                    {
                        lvs_common::event!(
                            log::Level::Debug,
                            "l7_server_connection_pinned",
                            client = self.peer,
                            server = up.addr,
                        );
                        up.private = true;
                    }
                    self.uin.consume(head_len);
                    if interim {
                        // 100 Continue and other interim answers: the final one follows.
                        ex.resp_started = true;
                        return Ok(true);
                    }
                    self.close_after = close;
                    ex.resp_started = true;
                    ex.upstream_keep = r.keep_alive;
                    ex.resp_body = if unchunk {
                        Some(Body::Chunked(ChunkedRecoder::plain()))
                    } else {
                        Body::from_kind(r.body)
                    };
                    ex.resp = if ex.resp_body.is_some() {
                        RespPhase::Body
                    } else {
                        RespPhase::Done
                    };
                    progress = true;
                }
            }
        }
        if ex.resp == RespPhase::Body
            && let Some(body) = ex.resp_body.as_mut()
        {
            let Ok((n, done)) = Self::move_body(body, &mut self.uin, &mut self.cout) else {
                // Framing we cannot forward: what went out goes out, then the close tells
                // the client the body did not end; the server connection is not reused.
                self.upstream_dead();
                self.phase = Phase::Closing;
                return Ok(true);
            };
            progress |= n > 0;
            let until_close = matches!(body, Body::UntilClose);
            if done || (until_close && up_eof && self.uin.is_empty()) {
                ex.resp = RespPhase::Done;
            } else if up_eof && self.uin.is_empty() {
                // The server died in the middle of the response: the client sees the
                // connection close before the body's end, which is all HTTP/1.1 can say.
                lvs_common::event!(
                    log::Level::Info,
                    "l7_server_died_mid_response",
                    client = self.peer,
                    server = self.upstream_addr(),
                );
                self.upstream_dead();
                self.phase = Phase::Closing;
                return Ok(true);
            }
        }
        if ex.resp == RespPhase::Done {
            let reuse = req_done && ex.upstream_keep && !self.uses_proxy_protocol();
            self.release_upstream(if reuse { Some(cx) } else { None });
            self.pool = None;
            if self.close_after || !req_done {
                // A client that asked to close sends nothing after its request (RFC 9112
                // §9.6): once that request is read whole, there is nothing to linger for.
                self.client_done = req_done && !ex.keep_alive;
                self.phase = Phase::Closing;
            } else {
                self.phase = Phase::Head;
                self.deadline = cx.now + self.table.settings.idle_timeout;
            }
            return Ok(true);
        }
        Ok(progress)
    }

    fn upstream_dead(&mut self) {
        if let Some(up) = &self.up {
            up.guard.pool.members[up.guard.member]
                .counters
                .failures
                .fetch_add(1, Ordering::Relaxed);
        }
        self.release_upstream(None);
    }

    fn step_tunnel(&mut self) -> Step {
        let mut progress = false;
        progress |= self.uout.move_from(&mut self.cin, usize::MAX) > 0;
        progress |= self.cout.move_from(&mut self.uin, usize::MAX) > 0;
        let Some(up) = self.up.as_mut() else {
            return Err(Close);
        };
        if self.c_eof && self.cin.is_empty() && self.uout.is_empty() && up.connected && !up.shut {
            let _ = up.stream.shutdown(Shutdown::Write);
            up.shut = true;
            progress = true;
        }
        if up.eof && self.uin.is_empty() && self.cout.is_empty() && !self.c_shut {
            let _ = self.client.shutdown(Shutdown::Write);
            self.c_shut = true;
            progress = true;
        }
        if self.c_shut && up.shut {
            return Err(Close);
        }
        Ok(progress)
    }

    /// The deadline passed: answer or close, as the phase says. `false`: the session is over.
    pub fn on_timer(&mut self, cx: &mut Ctx<'_>) -> bool {
        if cx.now < self.deadline {
            return true;
        }
        self.deadline = cx.now + self.table.settings.client_timeout;
        match self.phase {
            Phase::Head if self.cin.is_empty() => return false,
            Phase::Head => self.respond(408),
            Phase::Exchange => {
                let connected = self.up.as_ref().is_some_and(|u| u.connected);
                let Some(ex) = self.ex.as_ref() else {
                    return false;
                };
                let waiting_for_client = ex.req_body.is_some() && self.uout.is_empty();
                let started = ex.resp_started;
                if !connected && self.up.is_some() {
                    if self.upstream_failed(cx, false).is_err() {
                        return false;
                    }
                } else if started {
                    return false;
                } else if waiting_for_client {
                    self.respond(408);
                } else {
                    self.upstream_dead();
                    self.respond(504);
                }
            }
            Phase::Sni | Phase::Tunnel | Phase::Closing => return false,
        }
        self.drive(cx)
    }
}
