//! Peer traffic between lock managers: TCP, authenticated with HMAC-SHA256 under the shared key.
//!
//! Every node connects to each peer and sends on that connection only; it receives on the
//! connections its peers made to it. A connection starts with a handshake that proves both ends
//! hold the key, with fresh nonces so a recorded conversation cannot be replayed:
//!
//! 1. connector -> acceptor: `LVSLK1`, its node id (u64), nonce `nc` (16 bytes)
//! 2. acceptor -> connector: its node id, nonce `na`, `HMAC(key, "A" nc na idc ida)`
//! 3. connector -> acceptor: `HMAC(key, "C" nc na idc ida)`
//!
//! Both then use `ks = HMAC(key, "S" nc na idc ida)`. Each frame is a length (u32), the payload
//! and `HMAC(ks, seq payload)` where `seq` counts the frames of the connection, so frames
//! cannot be replayed, reordered or moved to another connection. Nothing reaches a decoder
//! (protobuf for Raft messages, bincode for forwarded commands) before its MAC checked out; a
//! peer with the wrong key is refused and logged, and its connection closed.
//!
//! The daemon's `mio` loop reads and writes the established connections itself, non-blocking
//! (one `write` per peer per turn of the loop with every frame of that turn, and reads until
//! the socket is empty): a message crosses no thread on its way. Small threads only connect
//! and run the handshakes (blocking, with timeouts), then hand the connection to the loop
//! and wake it: the loop never blocks on a slow or partitioned peer. A message that cannot be
//! sent at once (no connection, or too much unsent) is dropped (Raft retransmits); a
//! connection that takes no bytes for [`STALL`] is closed and made again.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::thread;
use std::time::{Duration, Instant};

use log::Level;
use lvs_common::authdgram::{AuthKey, KeyError, MAC_LEN, tag_parts, verify_parts};
use lvs_common::event;
use mio::{Interest, Registry, Token};
use protobuf::Message as _;
use raft::eraftpb::Message;

const MAGIC: &[u8; 6] = b"LVSLK1";
const NONCE_LEN: usize = 16;
const TAG_LEN: usize = MAC_LEN;
/// Largest frame payload (a snapshot of a big lock table fits).
const MAX_FRAME: usize = 256 << 20;
const KIND_RAFT: u8 = 1;
const KIND_FORWARD: u8 = 2;
/// Unsent bytes kept for one peer before new messages are dropped (a snapshot may exceed it
/// alone: it is taken when nothing else waits).
const MAX_UNSENT: usize = 16 << 20;
/// A connection whose unsent bytes did not move for this long is made again.
pub const STALL: Duration = Duration::from_secs(3);
/// An incoming connection silent for this long is closed (the peer connects again).
const SILENT: Duration = Duration::from_secs(60);
/// The first of the `mio` tokens of the peer connections: the daemon's own are below.
pub const TOKEN_BASE: usize = usize::MAX / 2;
/// Tokens of outgoing connections are `TOKEN_BASE + peer id`; incoming ones follow.
const MAX_PEER_ID: usize = 1 << 16;

/// What a peer sent.
#[derive(Debug)]
pub enum PeerMsg {
    /// A Raft message.
    Raft(Message),
    /// Commands a follower forwards to the leader (a batch, see [`crate::replica`]).
    Forward(Vec<u8>),
}

/// Reads the shared key of the peers with `lvs_common::authdgram`'s checks: a regular file
/// only its owner (root or the daemon's user) can access, 16 to 1024 bytes less one final
/// line ending, zeroed once read.
pub fn load_key(path: &std::path::Path) -> Result<AuthKey, KeyError> {
    AuthKey::from_file(path, "lock peer")
}

/// The key of one connection, `HMAC(key, "S" nc na idc ida)`.
fn session_key(ks: &[u8; TAG_LEN]) -> io::Result<AuthKey> {
    AuthKey::from_bytes(ks).map_err(io::Error::other)
}

fn nonce() -> io::Result<[u8; NONCE_LEN]> {
    let mut n = [0u8; NONCE_LEN];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut n)?;
    Ok(n)
}

/// A connection whose handshake is done, for the loop to drive.
#[derive(Debug)]
enum Established {
    /// Ours to peer `peer` (we only write on it).
    Out {
        peer: u64,
        stream: TcpStream,
        key: AuthKey,
    },
    /// Peer `peer`'s to us (we only read from it).
    In {
        peer: u64,
        stream: TcpStream,
        key: AuthKey,
    },
}

/// The connection to one peer that we write on.
#[derive(Debug)]
struct Out {
    id: u64,
    addr: SocketAddr,
    conn: Option<(mio::net::TcpStream, AuthKey)>,
    seq: u64,
    /// Framed bytes not yet written.
    unsent: Vec<u8>,
    /// When `unsent` last shrank (or started to fill).
    moved_at: Instant,
    /// Asks the connector thread for a new connection.
    reconnect: Sender<()>,
    /// Counts the connections (see [`PeerNet::generation`]).
    generation: u64,
}

/// A connection from a peer that we read.
#[derive(Debug)]
struct In {
    peer: u64,
    stream: mio::net::TcpStream,
    key: AuthKey,
    seq: u64,
    buf: Vec<u8>,
    heard_at: Instant,
}

/// The peer network of one node.
#[derive(Debug)]
pub struct PeerNet {
    registry: Registry,
    outs: Vec<Out>,
    ins: slab::Slab<In>,
    established: Receiver<Established>,
    inbox: Vec<(u64, PeerMsg)>,
    /// Incoming connections with an event since they were last read.
    readable: Vec<usize>,
    /// Reads land here first (allocated once).
    scratch: Vec<u8>,
}

impl PeerNet {
    /// Listens on `listen`, connects to every `(id, address)` of `peers` (not this node), and
    /// registers the connections with `registry` (tokens from [`TOKEN_BASE`] on); `waker`
    /// wakes the loop when a connection is ready to be taken in.
    pub fn start(
        me: u64,
        listen: SocketAddr,
        peers: &[(u64, SocketAddr)],
        key: AuthKey,
        registry: &Registry,
        waker: Arc<mio::Waker>,
    ) -> io::Result<PeerNet> {
        let listener = TcpListener::bind(listen)?;
        let (tx, established) = channel::<Established>();
        let allowed: Vec<u64> = peers.iter().map(|(id, _)| *id).collect();
        if allowed
            .iter()
            .any(|&id| usize::try_from(id).map_or(true, |i| i >= MAX_PEER_ID))
        {
            return Err(io::Error::other(format!(
                "peer ids must be below {MAX_PEER_ID}"
            )));
        }
        {
            let key = key.clone();
            let tx = tx.clone();
            let waker = Arc::clone(&waker);
            thread::Builder::new()
                .name("lock-peer-accept".to_owned())
                .spawn(move || accept_loop(&listener, me, &allowed, &key, &tx, &waker))?;
        }
        let mut outs = Vec::new();
        for &(id, addr) in peers {
            let (reconnect, requests) = channel::<()>();
            let key = key.clone();
            let local = listen.ip();
            let tx = tx.clone();
            let waker = Arc::clone(&waker);
            thread::Builder::new()
                .name(format!("lock-peer-{id}"))
                .spawn(move || connect_loop(me, id, addr, local, &key, &requests, &tx, &waker))?;
            outs.push(Out {
                id,
                addr,
                conn: None,
                seq: 0,
                unsent: Vec::new(),
                moved_at: Instant::now(),
                reconnect,
                generation: 0,
            });
        }
        Ok(PeerNet {
            registry: registry.try_clone()?,
            outs,
            ins: slab::Slab::new(),
            established,
            inbox: Vec::new(),
            readable: Vec::new(),
            scratch: vec![0; 64 * 1024],
        })
    }

    /// Whether `token` is one of the peer connections'.
    pub fn owns(token: Token) -> bool {
        token.0 >= TOKEN_BASE
    }

    /// An event on `token` (one of ours): the next [`PeerNet::receive`] reads that
    /// connection, [`PeerNet::flush`] writes what waits.
    pub fn ready(&mut self, token: Token) {
        if let Some(slot) = token.0.checked_sub(TOKEN_BASE + MAX_PEER_ID) {
            self.readable.push(slot);
        }
    }

    /// Changes whenever the connection to `peer` does: what was sent on an earlier one may
    /// not have arrived.
    pub fn generation(&self, peer: u64) -> u64 {
        self.outs
            .iter()
            .find(|o| o.id == peer)
            .map_or(0, |o| o.generation)
    }

    /// Queues a Raft message; false if it is dropped (no connection, or too much unsent).
    pub fn send_raft(&mut self, msg: &Message) -> bool {
        let Ok(body) = msg.write_to_bytes() else {
            return false;
        };
        self.send(msg.to, KIND_RAFT, &body)
    }

    /// Queues forwarded commands for `to`.
    pub fn send_forward(&mut self, to: u64, batch: &[u8]) -> bool {
        self.send(to, KIND_FORWARD, batch)
    }

    fn send(&mut self, to: u64, kind: u8, body: &[u8]) -> bool {
        let Some(out) = self.outs.iter_mut().find(|o| o.id == to) else {
            return false;
        };
        let Some((_, ks)) = &out.conn else {
            return false;
        };
        if !out.unsent.is_empty() && out.unsent.len() + body.len() > MAX_UNSENT {
            return false;
        }
        let Ok(len) = u32::try_from(body.len() + 1) else {
            return false;
        };
        if out.unsent.is_empty() {
            out.moved_at = Instant::now();
        }
        let seq = out.seq.to_be_bytes();
        out.unsent.extend_from_slice(&len.to_be_bytes());
        out.unsent.push(kind);
        out.unsent.extend_from_slice(body);
        let tag = tag_parts(ks, &[&seq, &[kind], body]);
        out.unsent.extend_from_slice(&tag);
        out.seq += 1;
        true
    }

    /// Writes what was queued (one `write` per peer), without blocking; a connection that
    /// failed or stalled is closed and made again.
    pub fn flush(&mut self) {
        for out in &mut self.outs {
            let Some((stream, _)) = out.conn.as_mut() else {
                continue;
            };
            let mut failed = None;
            while !out.unsent.is_empty() {
                match stream.write(&out.unsent) {
                    Ok(0) => {
                        failed = Some("the connection is closed".to_owned());
                        break;
                    }
                    Ok(n) => {
                        out.unsent.drain(..n);
                        out.moved_at = Instant::now();
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if out.moved_at.elapsed() >= STALL {
                            failed = Some(format!("no progress for {} s", STALL.as_secs()));
                        }
                        break;
                    }
                    Err(e) => {
                        failed = Some(e.to_string());
                        break;
                    }
                }
            }
            if let Some(reason) = failed {
                log::debug!("peer node {} at {}: {reason}", out.id, out.addr);
                drop_out(&self.registry, out);
            }
        }
    }

    /// Everything received since the last call (and connections the handshake threads made
    /// are taken in).
    pub fn receive(&mut self) -> Vec<(u64, PeerMsg)> {
        self.take_established();
        let mut slots = std::mem::take(&mut self.readable);
        slots.sort_unstable();
        slots.dedup();
        let mut closed = Vec::new();
        for slot in slots {
            let Some(conn) = self.ins.get_mut(slot) else {
                continue;
            };
            if let Err(reason) = read_frames(conn, &mut self.scratch, &mut self.inbox) {
                closed.push((slot, reason));
            }
        }
        // A peer that vanished without closing (its heartbeats stop): it connects again.
        let now = Instant::now();
        for (slot, conn) in &self.ins {
            if now.duration_since(conn.heard_at) >= SILENT {
                closed.push((slot, "silent".to_owned()));
            }
        }
        for (slot, reason) in closed {
            if let Some(mut conn) = self.ins.try_remove(slot) {
                log::debug!("peer connection from node {} ended: {reason}", conn.peer);
                let _ = self.registry.deregister(&mut conn.stream);
                let _ = conn.stream.shutdown(Shutdown::Both);
            }
        }
        // An outgoing connection the peer closed fails at the next write (heartbeats come
        // every two ticks).
        std::mem::take(&mut self.inbox)
    }

    fn take_established(&mut self) {
        loop {
            let e = match self.established.try_recv() {
                Ok(e) => e,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            };
            match e {
                Established::Out { peer, stream, key } => {
                    let Some(out) = self.outs.iter_mut().find(|o| o.id == peer) else {
                        continue;
                    };
                    if let Some((mut old, _)) = out.conn.take() {
                        let _ = self.registry.deregister(&mut old);
                    }
                    let mut stream = mio::net::TcpStream::from_std(stream);
                    let token = Token(TOKEN_BASE + usize::try_from(peer).unwrap_or(0));
                    if let Err(e) = self.registry.register(
                        &mut stream,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        log::warn!("cannot register the connection to node {peer}: {e}");
                        let _ = out.reconnect.send(());
                        continue;
                    }
                    out.conn = Some((stream, key));
                    out.generation += 1;
                    out.seq = 0;
                    out.unsent.clear();
                    out.moved_at = Instant::now();
                    log::debug!("connected to peer node {peer} at {}", out.addr);
                }
                Established::In { peer, stream, key } => {
                    let entry = self.ins.vacant_entry();
                    let token = Token(TOKEN_BASE + MAX_PEER_ID + entry.key());
                    let mut stream = mio::net::TcpStream::from_std(stream);
                    if let Err(e) = self
                        .registry
                        .register(&mut stream, token, Interest::READABLE)
                    {
                        log::warn!("cannot register the connection from node {peer}: {e}");
                        continue;
                    }
                    entry.insert(In {
                        peer,
                        stream,
                        key,
                        seq: 0,
                        buf: Vec::new(),
                        heard_at: Instant::now(),
                    });
                }
            }
        }
    }
}

/// Closes the connection to `out` (if any) and asks its thread for a new one.
fn drop_out(registry: &Registry, out: &mut Out) {
    if let Some((mut stream, _)) = out.conn.take() {
        let _ = registry.deregister(&mut stream);
        let _ = stream.shutdown(Shutdown::Both);
        out.unsent.clear();
        out.generation += 1;
        let _ = out.reconnect.send(());
    }
}

fn handshake_parts<'a>(
    nc: &'a [u8],
    na: &'a [u8],
    idc: &'a [u8; 8],
    ida: &'a [u8; 8],
) -> [&'a [u8]; 4] {
    [nc, na, idc.as_slice(), ida.as_slice()]
}

fn accept_loop(
    listener: &TcpListener,
    me: u64,
    allowed: &[u64],
    key: &AuthKey,
    tx: &Sender<Established>,
    waker: &Arc<mio::Waker>,
) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let allowed = allowed.to_vec();
        let key = key.clone();
        let tx = tx.clone();
        let waker = Arc::clone(waker);
        let spawned = thread::Builder::new()
            .name("lock-peer-in".to_owned())
            .spawn(move || {
                let addr = stream
                    .peer_addr()
                    .map_or_else(|_| "?".to_owned(), |a| a.to_string());
                let ready = accept_handshake(&stream, me, &allowed, &key).and_then(|hs| {
                    stream
                        .set_nonblocking(true)
                        .map(|()| hs)
                        .map_err(|e| e.to_string())
                });
                match ready {
                    Ok((peer, key)) => {
                        if tx.send(Established::In { peer, stream, key }).is_ok() {
                            let _ = waker.wake();
                        }
                    }
                    Err(reason) => {
                        event!(
                            Level::Warn,
                            "lock_peer_refused",
                            address = addr,
                            reason = reason
                        );
                    }
                }
            });
        if spawned.is_err() {
            event!(
                Level::Warn,
                "lock_peer_refused",
                reason = "cannot start a thread"
            );
        }
    }
}

/// The acceptor's side of the handshake: the peer's id and the session key.
fn accept_handshake(
    mut s: &TcpStream,
    me: u64,
    allowed: &[u64],
    key: &AuthKey,
) -> Result<(u64, AuthKey), String> {
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut hello = [0u8; 6 + 8 + NONCE_LEN];
    s.read_exact(&mut hello)
        .map_err(|e| format!("no handshake: {e}"))?;
    if &hello[..6] != MAGIC {
        return Err("not an lvs-lockmgr peer (bad magic)".to_owned());
    }
    let idc: [u8; 8] = hello[6..14].try_into().map_err(|_| "short hello")?;
    let nc = &hello[14..];
    let peer = u64::from_be_bytes(idc);
    let ida = me.to_be_bytes();
    let na = nonce().map_err(|e| e.to_string())?;
    let parts = handshake_parts(nc, &na, &idc, &ida);
    let mut reply = Vec::with_capacity(8 + NONCE_LEN + TAG_LEN);
    reply.extend_from_slice(&ida);
    reply.extend_from_slice(&na);
    reply.extend_from_slice(&tag_parts(
        key,
        &[b"A", parts[0], parts[1], parts[2], parts[3]],
    ));
    s.write_all(&reply).map_err(|e| e.to_string())?;
    let mut proof = [0u8; TAG_LEN];
    s.read_exact(&mut proof)
        .map_err(|e| format!("node {peer} did not prove the key: {e}"))?;
    if !verify_parts(key, &[b"C", parts[0], parts[1], parts[2], parts[3]], &proof) {
        return Err(format!("node {peer} has the wrong key"));
    }
    if !allowed.contains(&peer) {
        return Err(format!("node {peer} is not a configured peer"));
    }
    let ks = tag_parts(key, &[b"S", parts[0], parts[1], parts[2], parts[3]]);
    Ok((peer, session_key(&ks).map_err(|e| e.to_string())?))
}

/// Reads what `conn` has (until the socket is empty) and takes the whole authenticated
/// frames into `inbox`; `Err`: why the connection must close.
fn read_frames(
    conn: &mut In,
    chunk: &mut [u8],
    inbox: &mut Vec<(u64, PeerMsg)>,
) -> Result<(), String> {
    let peer = conn.peer;
    loop {
        match conn.stream.read(chunk) {
            Ok(0) => return Err("closed by the peer".to_owned()),
            Ok(n) => {
                conn.buf.extend_from_slice(&chunk[..n]);
                conn.heard_at = Instant::now();
                if n < chunk.len() {
                    // Drained for now; more data makes a new (edge-triggered) event.
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    let mut pos = 0;
    while let Some(len_bytes) = conn.buf.get(pos..pos + 4) {
        let len = len_bytes
            .try_into()
            .map(u32::from_be_bytes)
            .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
        if len == 0 || len > MAX_FRAME {
            event!(
                Level::Warn,
                "lock_peer_refused",
                node = peer,
                reason = "bad frame length"
            );
            return Err("bad frame length".to_owned());
        }
        let Some(frame) = conn.buf.get(pos + 4..pos + 4 + len + TAG_LEN) else {
            break;
        };
        let (payload, tag) = frame.split_at(len);
        if !verify_parts(&conn.key, &[&conn.seq.to_be_bytes(), payload], tag) {
            event!(
                Level::Warn,
                "lock_peer_refused",
                node = peer,
                reason = "bad frame MAC"
            );
            return Err("bad MAC".to_owned());
        }
        conn.seq += 1;
        pos += 4 + len + TAG_LEN;
        let msg = match payload[0] {
            KIND_RAFT => match Message::parse_from_bytes(&payload[1..]) {
                Ok(m) if m.from == peer => PeerMsg::Raft(m),
                Ok(m) => {
                    log::warn!("node {peer} sent a message from node {}", m.from);
                    continue;
                }
                Err(e) => {
                    log::warn!("undecodable Raft message from node {peer}: {e}");
                    continue;
                }
            },
            KIND_FORWARD => PeerMsg::Forward(payload[1..].to_vec()),
            other => {
                log::warn!("unknown frame kind {other} from node {peer}");
                continue;
            }
        };
        inbox.push((peer, msg));
    }
    conn.buf.drain(..pos);
    Ok(())
}

/// Connects `local` -> `addr` (so that the peer sees our configured address).
fn connect_from(local: std::net::IpAddr, addr: SocketAddr) -> io::Result<TcpStream> {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, SockaddrStorage, bind, connect, socket,
    };
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    if !local.is_unspecified() {
        bind(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &SockaddrStorage::from(SocketAddr::new(local, 0)),
        )?;
    }
    // Linux bounds a blocking connect by the send timeout: without it, a connect into a
    // partition would wait out every SYN retry (minutes) and reconnect late after the heal.
    nix::sys::socket::setsockopt(
        &fd,
        nix::sys::socket::sockopt::SendTimeout,
        &nix::sys::time::TimeVal::new(2, 0),
    )?;
    connect(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrStorage::from(addr),
    )?;
    Ok(TcpStream::from(fd))
}

/// Connects to peer `id` whenever the loop asks (at the start, and after it closed the
/// connection), until the connection and its handshake succeed, and hands it to the loop.
#[allow(clippy::too_many_arguments)]
fn connect_loop(
    me: u64,
    id: u64,
    addr: SocketAddr,
    local: std::net::IpAddr,
    key: &AuthKey,
    requests: &Receiver<()>,
    tx: &Sender<Established>,
    waker: &mio::Waker,
) {
    let mut refused_logged = false;
    loop {
        let result = connect_from(local, addr).and_then(|s| {
            let ks = connect_handshake(&s, me, id, key)?;
            let _ = s.set_nodelay(true);
            s.set_nonblocking(true)?;
            Ok((s, ks))
        });
        match result {
            Ok((stream, key)) => {
                refused_logged = false;
                if tx
                    .send(Established::Out {
                        peer: id,
                        stream,
                        key,
                    })
                    .is_err()
                {
                    return;
                }
                let _ = waker.wake();
                // Until the loop closes it (and asks again), or stops.
                if requests.recv().is_err() {
                    return;
                }
                while requests.try_recv().is_ok() {}
            }
            Err(e) => {
                if e.kind() == io::ErrorKind::PermissionDenied && !refused_logged {
                    event!(
                        Level::Warn,
                        "lock_peer_refused",
                        node = id,
                        address = addr,
                        reason = e
                    );
                    refused_logged = true;
                }
                thread::sleep(Duration::from_millis(200));
                if matches!(requests.try_recv(), Err(TryRecvError::Disconnected)) {
                    return;
                }
            }
        }
    }
}

/// The connector's side: proves the key, checks the acceptor's proof; the session key.
fn connect_handshake(mut s: &TcpStream, me: u64, id: u64, key: &AuthKey) -> io::Result<AuthKey> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let nc = nonce()?;
    let idc = me.to_be_bytes();
    let mut hello = Vec::with_capacity(6 + 8 + NONCE_LEN);
    hello.extend_from_slice(MAGIC);
    hello.extend_from_slice(&idc);
    hello.extend_from_slice(&nc);
    s.write_all(&hello)?;
    let mut reply = [0u8; 8 + NONCE_LEN + TAG_LEN];
    s.read_exact(&mut reply)?;
    let ida: [u8; 8] = reply[..8].try_into().map_err(io::Error::other)?;
    let na = &reply[8..8 + NONCE_LEN];
    let tag = &reply[8 + NONCE_LEN..];
    let parts = handshake_parts(&nc, na, &idc, &ida);
    if !verify_parts(key, &[b"A", parts[0], parts[1], parts[2], parts[3]], tag) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the peer has the wrong key",
        ));
    }
    if u64::from_be_bytes(ida) != id {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("expected node {id}, found node {}", u64::from_be_bytes(ida)),
        ));
    }
    s.write_all(&tag_parts(
        key,
        &[b"C", parts[0], parts[1], parts[2], parts[3]],
    ))?;
    s.set_read_timeout(None)?;
    session_key(&tag_parts(
        key,
        &[b"S", parts[0], parts[1], parts[2], parts[3]],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_must_be_private_and_long_enough() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("lvs-lock-key-{}", std::process::id()));
        std::fs::write(&path, "a key of thirty-two bytes, or so\n").unwrap();
        for mode in [0o644, 0o640, 0o604] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = load_key(&path).unwrap_err().to_string();
            assert!(e.contains("gives group or others access"), "{mode:o}: {e}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(load_key(&path).is_ok());
        std::fs::write(&path, "short\n").unwrap();
        let e = load_key(&path).unwrap_err().to_string();
        assert!(e.contains("must be 16 to"), "{e}");
        std::fs::remove_file(&path).unwrap();
    }
}
