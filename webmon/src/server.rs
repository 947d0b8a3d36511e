//! The HTTP(S) connections on one `mio` event loop: TLS by rustls, requests parsed within
//! limits, a deadline per request against slow clients, a bounded number of connections.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::mpsc::{Receiver, Sender, channel};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token, Waker};
use slab::Slab;

use crate::actions::Failure;
use crate::app::{App, Handled, Job};
use crate::http::{self, Parsed, Response};

/// Tokens of connections start here.
pub const CONN_BASE: usize = 16;

/// How long an admin action may take on top of the request timeout (two requests of at most
/// 3 s each to a daemon).
const ACTION_TIME: Duration = Duration::from_secs(10);

type Done = (usize, u64, Box<Job>, Result<String, Failure>);

/// One client connection.
#[derive(Debug)]
struct Conn {
    sock: TcpStream,
    /// `None` on the plaintext (redirect-only) listener.
    tls: Option<rustls::ServerConnection>,
    peer: SocketAddr,
    inbuf: Vec<u8>,
    /// Plaintext listener only: bytes not written yet.
    out: Vec<u8>,
    /// The current request must be complete by then (or, idle, the connection goes).
    deadline: Instant,
    closing: bool,
    /// The TLS close_notify is queued.
    notified: bool,
    /// Tells this connection from a later one in the same slab slot.
    id: u64,
    /// An admin action runs for this connection; `Some(keep_alive)` of its request.
    waiting: Option<bool>,
}

/// The connections, and the worker thread that runs admin actions (they block on a daemon's
/// socket, so they never run on the event loop).
#[derive(Debug)]
pub struct Connections {
    conns: Slab<Conn>,
    /// Connections refused because the limit was reached.
    pub refused: u64,
    next_id: u64,
    jobs: Sender<(usize, u64, Box<Job>)>,
    done: Receiver<Done>,
}

enum Step {
    Keep,
    Close,
}

impl Connections {
    /// Starts the action worker; it wakes the loop through `waker` when an action is done.
    pub fn new(waker: Arc<Waker>) -> io::Result<Connections> {
        let (jobs, job_rx) = channel::<(usize, u64, Box<Job>)>();
        let (done_tx, done) = channel::<Done>();
        std::thread::Builder::new()
            .name("actions".into())
            .spawn(move || {
                // Ends when the loop drops its sender.
                for (key, id, job) in job_rx {
                    let result = job.run();
                    if done_tx.send((key, id, job, result)).is_err() {
                        return;
                    }
                    let _ = waker.wake();
                }
            })?;
        Ok(Connections {
            conns: Slab::new(),
            refused: 0,
            next_id: 0,
            jobs,
            done,
        })
    }

    /// Sends the answers of finished actions (after the waker fired).
    pub fn complete(&mut self, registry: &Registry, app: &mut App) {
        while let Ok((key, id, job, result)) = self.done.try_recv() {
            // The action was done whether or not its browser is still there: log it.
            let mut r = app.finish(&job, result);
            let Some(conn) = self.conns.get_mut(key).filter(|c| c.id == id) else {
                continue;
            };
            let Some(keep_alive) = conn.waiting.take() else {
                continue;
            };
            if !keep_alive {
                r.close = true;
            }
            conn.send(&r, false);
            conn.closing = r.close;
            conn.deadline = Instant::now() + app.cfg.request_timeout;
            if let Step::Close = conn.turn(app, key, &self.jobs) {
                self.close(key, registry);
            }
        }
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// None open.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Accepts everything waiting on `listener`.
    pub fn accept(
        &mut self,
        listener: &TcpListener,
        registry: &Registry,
        tls: Option<&Arc<rustls::ServerConfig>>,
        app: &App,
    ) {
        loop {
            let (mut sock, peer) = match listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: give up this round, the loop comes back.
                    lvs_common::event!(log::Level::Warn, "accept_failed", error = e);
                    return;
                }
            };
            if self.conns.len() >= app.cfg.max_connections {
                self.refused += 1;
                drop(sock);
                continue;
            }
            let tls = match tls {
                Some(cfg) => match rustls::ServerConnection::new(Arc::clone(cfg)) {
                    Ok(mut c) => {
                        c.set_buffer_limit(None);
                        Some(c)
                    }
                    Err(_) => continue,
                },
                None => None,
            };
            let _ = sock.set_nodelay(true);
            self.next_id += 1;
            let entry = self.conns.vacant_entry();
            let token = Token(CONN_BASE + entry.key());
            if registry
                .register(&mut sock, token, Interest::READABLE | Interest::WRITABLE)
                .is_err()
            {
                continue;
            }
            entry.insert(Conn {
                sock,
                tls,
                peer,
                inbuf: Vec::new(),
                out: Vec::new(),
                deadline: Instant::now() + app.cfg.request_timeout,
                closing: false,
                notified: false,
                id: self.next_id,
                waiting: None,
            });
        }
    }

    /// The connection behind `token` is ready.
    pub fn ready(&mut self, token: Token, registry: &Registry, app: &mut App) {
        let Some(key) = token.0.checked_sub(CONN_BASE) else {
            return;
        };
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if let Step::Close = conn.turn(app, key, &self.jobs) {
            self.close(key, registry);
        }
    }

    fn close(&mut self, key: usize, registry: &Registry) {
        if let Some(mut c) = self.conns.try_remove(key) {
            let _ = registry.deregister(&mut c.sock);
        }
    }

    /// Closes connections whose request did not arrive in time (a 408 first, if they had
    /// started one). Returns how many were cut off.
    pub fn sweep(&mut self, now: Instant, registry: &Registry) -> usize {
        let late: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| now >= c.deadline)
            .map(|(k, _)| k)
            .collect();
        for &k in &late {
            if let Some(c) = self.conns.get_mut(k)
                && !c.inbuf.is_empty()
                && !c.closing
            {
                let mut r = Response::text(408, "request timeout");
                r.close = true;
                c.send(&r, false);
                c.flush();
            }
            self.close(k, registry);
        }
        late.len()
    }

    /// The earliest deadline, for the poll timeout.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns.iter().map(|(_, c)| c.deadline).min()
    }
}

impl Conn {
    fn send(&mut self, r: &Response, head_only: bool) {
        let bytes = r.to_bytes(self.tls.is_some(), head_only);
        match &mut self.tls {
            Some(t) => {
                let _ = t.writer().write_all(&bytes);
            }
            None => self.out.extend_from_slice(&bytes),
        }
    }

    /// Writes what is pending; false when the socket failed.
    fn flush(&mut self) -> bool {
        match &mut self.tls {
            Some(t) => {
                while t.wants_write() {
                    match t.write_tls(&mut self.sock) {
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => return false,
                    }
                }
                true
            }
            None => {
                while !self.out.is_empty() {
                    match self.sock.write(&self.out) {
                        Ok(0) => return false,
                        Ok(n) => {
                            self.out.drain(..n);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => return false,
                    }
                }
                true
            }
        }
    }

    fn pending_out(&self) -> bool {
        match &self.tls {
            Some(t) => t.wants_write(),
            None => !self.out.is_empty(),
        }
    }

    /// Reads what is there into `inbuf`; false on EOF or error.
    fn read(&mut self, cap: usize) -> bool {
        let mut buf = [0u8; 16 * 1024];
        loop {
            if self.inbuf.len() > cap {
                // The parser refuses this much; reading more would only buffer an attack.
                return true;
            }
            match &mut self.tls {
                Some(t) => {
                    match t.read_tls(&mut self.sock) {
                        Ok(0) => return false,
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => return false,
                    }
                    if t.process_new_packets().is_err() {
                        // rustls queued an alert; send it, then close.
                        let _ = t.write_tls(&mut self.sock);
                        return false;
                    }
                    loop {
                        match t.reader().read(&mut buf) {
                            Ok(0) => return false,
                            Ok(n) => self.inbuf.extend_from_slice(&buf[..n]),
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(_) => return false,
                        }
                    }
                }
                None => match self.sock.read(&mut buf) {
                    Ok(0) => return false,
                    Ok(n) => self.inbuf.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return false,
                },
            }
        }
    }

    fn turn(&mut self, app: &mut App, key: usize, jobs: &Sender<(usize, u64, Box<Job>)>) -> Step {
        let cap = app.cfg.max_header_bytes + app.cfg.max_body_bytes;
        let open = self.closing || self.read(cap);
        loop {
            if !self.flush() {
                return Step::Close;
            }
            // One response at a time: a client that pipelines requests without reading the
            // answers gets nothing more until it does (its requests wait in the kernel).
            if self.pending_out() || self.closing || self.waiting.is_some() {
                break;
            }
            match http::parse(
                &self.inbuf,
                app.cfg.max_header_bytes,
                app.cfg.max_body_bytes,
            ) {
                Parsed::Incomplete => {
                    if self.inbuf.len() <= cap {
                        break;
                    }
                    let mut r = Response::text(413, "request too large");
                    r.close = true;
                    self.send(&r, false);
                    self.closing = true;
                }
                Parsed::Refuse(status, why) => {
                    let mut r = Response::text(status, why);
                    r.close = true;
                    self.send(&r, false);
                    self.closing = true;
                }
                Parsed::Done(req, used) => {
                    self.inbuf.drain(..used);
                    let handled = if self.tls.is_some() {
                        app.handle(&req, self.peer)
                    } else {
                        Handled::Now(app.redirect_plain(&req))
                    };
                    let mut r = match handled {
                        Handled::Now(r) => r,
                        Handled::Later(job) => {
                            if jobs.send((key, self.id, job)).is_err() {
                                Response::json_error(500, "the action worker is gone")
                            } else {
                                self.waiting = Some(req.keep_alive);
                                self.deadline =
                                    Instant::now() + app.cfg.request_timeout + ACTION_TIME;
                                break;
                            }
                        }
                    };
                    if !req.keep_alive {
                        r.close = true;
                    }
                    self.send(&r, req.method == "HEAD");
                    self.closing = r.close;
                    self.deadline = Instant::now() + app.cfg.request_timeout;
                }
            }
        }
        if self.closing
            && !self.notified
            && let Some(t) = &mut self.tls
        {
            t.send_close_notify();
            self.notified = true;
        }
        if !self.flush() {
            return Step::Close;
        }
        if !open || (self.closing && !self.pending_out()) {
            // Closed by the peer (what we could not write is lost with it), or all said.
            return Step::Close;
        }
        Step::Keep
    }
}

/// How long the loop may sleep: until the next deadline, at most `max`.
pub fn timeout(conns: &Connections, now: Instant, max: Duration) -> Duration {
    conns
        .next_deadline()
        .map_or(max, |d| d.saturating_duration_since(now).min(max))
        .max(Duration::from_millis(10))
}
