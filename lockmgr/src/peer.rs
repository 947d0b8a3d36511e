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
//! The sockets are driven by small threads (one sender per peer, one reader per incoming
//! connection) that hand decoded messages to the daemon's `mio` loop through a channel and a
//! [`mio::Waker`]: the loop never blocks on a slow or partitioned peer, and a message that
//! cannot be sent at once is dropped (Raft retransmits).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread;
use std::time::Duration;

use log::Level;
use lvs_common::authdgram::{AuthKey, KeyError, MAC_LEN, tag_parts, verify_parts};
use lvs_common::event;
use protobuf::Message as _;
use raft::eraftpb::Message;

const MAGIC: &[u8; 6] = b"LVSLK1";
const NONCE_LEN: usize = 16;
const TAG_LEN: usize = MAC_LEN;
/// Largest frame payload (a snapshot of a big lock table fits).
const MAX_FRAME: usize = 256 << 20;
const KIND_RAFT: u8 = 1;
const KIND_FORWARD: u8 = 2;
/// Messages queued for one peer before new ones are dropped.
const QUEUE: usize = 4096;

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

/// The peer network of one node.
#[derive(Debug)]
pub struct PeerNet {
    senders: Vec<(u64, SyncSender<Vec<u8>>)>,
    inbox: Receiver<(u64, PeerMsg)>,
}

impl PeerNet {
    /// Listens on `listen`, connects to every `(id, address)` of `peers` (not this node), and
    /// wakes `waker` whenever a message arrives.
    pub fn start(
        me: u64,
        listen: SocketAddr,
        peers: &[(u64, SocketAddr)],
        key: AuthKey,
        waker: Arc<mio::Waker>,
    ) -> io::Result<PeerNet> {
        let listener = TcpListener::bind(listen)?;
        let (tx, inbox) = sync_channel::<(u64, PeerMsg)>(QUEUE);
        let allowed: Vec<u64> = peers.iter().map(|(id, _)| *id).collect();
        {
            let key = key.clone();
            thread::Builder::new()
                .name("lock-peer-accept".to_owned())
                .spawn(move || accept_loop(&listener, me, &allowed, &key, &tx, &waker))?;
        }
        let mut senders = Vec::new();
        for &(id, addr) in peers {
            let (stx, srx) = sync_channel::<Vec<u8>>(QUEUE);
            let key = key.clone();
            let local = listen.ip();
            thread::Builder::new()
                .name(format!("lock-peer-{id}"))
                .spawn(move || send_loop(me, id, addr, local, &key, &srx))?;
            senders.push((id, stx));
        }
        Ok(PeerNet { senders, inbox })
    }

    /// Queues a Raft message; false if its peer's queue is full or unknown (it is dropped).
    pub fn send_raft(&self, msg: &Message) -> bool {
        let Ok(body) = msg.write_to_bytes() else {
            return false;
        };
        self.send(msg.to, KIND_RAFT, &body)
    }

    /// Queues forwarded commands for `to`.
    pub fn send_forward(&self, to: u64, batch: &[u8]) -> bool {
        self.send(to, KIND_FORWARD, batch)
    }

    fn send(&self, to: u64, kind: u8, body: &[u8]) -> bool {
        let Some((_, tx)) = self.senders.iter().find(|(id, _)| *id == to) else {
            return false;
        };
        let mut payload = Vec::with_capacity(body.len() + 1);
        payload.push(kind);
        payload.extend_from_slice(body);
        match tx.try_send(payload) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }

    /// Everything received since the last call.
    pub fn receive(&self) -> Vec<(u64, PeerMsg)> {
        self.inbox.try_iter().collect()
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
    tx: &SyncSender<(u64, PeerMsg)>,
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
                match accept_handshake(&stream, me, &allowed, &key) {
                    Ok((peer, ks)) => {
                        let reason = read_frames(stream, peer, &ks, &tx, &waker);
                        log::debug!("peer connection from node {peer} ({addr}) ended: {reason}");
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
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let ks = tag_parts(key, &[b"S", parts[0], parts[1], parts[2], parts[3]]);
    Ok((peer, session_key(&ks).map_err(|e| e.to_string())?))
}

/// Reads authenticated frames until the connection fails; returns why it ended.
fn read_frames(
    mut s: TcpStream,
    peer: u64,
    ks: &AuthKey,
    tx: &SyncSender<(u64, PeerMsg)>,
    waker: &mio::Waker,
) -> String {
    let mut seq: u64 = 0;
    loop {
        let mut len = [0u8; 4];
        if let Err(e) = s.read_exact(&mut len) {
            return e.to_string();
        }
        let len = usize::try_from(u32::from_be_bytes(len)).unwrap_or(usize::MAX);
        if len == 0 || len > MAX_FRAME {
            event!(
                Level::Warn,
                "lock_peer_refused",
                node = peer,
                reason = "bad frame length"
            );
            return "bad frame length".to_owned();
        }
        let mut buf = vec![0u8; len + TAG_LEN];
        if let Err(e) = s.read_exact(&mut buf) {
            return e.to_string();
        }
        let (payload, tag) = buf.split_at(len);
        if !verify_parts(ks, &[&seq.to_be_bytes(), payload], tag) {
            event!(
                Level::Warn,
                "lock_peer_refused",
                node = peer,
                reason = "bad frame MAC"
            );
            let _ = s.shutdown(Shutdown::Both);
            return "bad MAC".to_owned();
        }
        seq += 1;
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
        // Full: the loop is behind; dropping is what a lossy network would do.
        if tx.try_send((peer, msg)).is_ok() {
            let _ = waker.wake();
        }
    }
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

/// Keeps a connection to peer `id` and writes what the loop queues for it.
fn send_loop(
    me: u64,
    id: u64,
    addr: SocketAddr,
    local: std::net::IpAddr,
    key: &AuthKey,
    rx: &Receiver<Vec<u8>>,
) {
    let mut refused_logged = false;
    loop {
        let result = connect_from(local, addr)
            .and_then(|s| connect_handshake(&s, me, id, key).map(|ks| (s, ks)));
        let (mut s, ks) = match result {
            Ok(ok) => ok,
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
                // Queued messages are stale by now: Raft sends fresh ones.
                while rx.try_recv().is_ok() {}
                thread::sleep(Duration::from_millis(200));
                if matches!(
                    rx.try_recv(),
                    Err(std::sync::mpsc::TryRecvError::Disconnected)
                ) {
                    return;
                }
                continue;
            }
        };
        refused_logged = false;
        log::debug!("connected to peer node {id} at {addr}");
        let _ = s.set_write_timeout(Some(Duration::from_secs(3)));
        let _ = s.set_nodelay(true);
        let mut seq: u64 = 0;
        let mut out = Vec::new();
        loop {
            let first = match rx.recv() {
                Ok(p) => p,
                Err(_) => return,
            };
            out.clear();
            // Batch whatever else is queued into one write.
            for payload in std::iter::once(first).chain(rx.try_iter().take(256)) {
                let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&payload);
                out.extend_from_slice(&tag_parts(&ks, &[&seq.to_be_bytes(), &payload]));
                seq += 1;
            }
            if let Err(e) = s.write_all(&out) {
                log::debug!("peer node {id} at {addr}: {e}");
                let _ = s.shutdown(Shutdown::Both);
                break;
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
