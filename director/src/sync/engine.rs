//! The sync thread: batches the workers' records into datagrams (active), serves and asks
//! for bulk resyncs, and hands received entries to the right worker (standby).

use std::collections::HashSet;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::Level;
use lvs_common::event;
use lvs_conntrack::SyncEntry;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};

use super::wire::{self, AuthKey, Builder, FLAG_ACTIVE, Header, Kind, Reject, Replay};
use super::{EngineSide, SyncConfig, SyncShared, worker_of};
use crate::dataplane::worker::Cmd;

const SOCKET: Token = Token(0);
const WAKE: Token = Token(1);
/// How often the active director says it is alive when it has nothing else to send.
const KEEPALIVE: Duration = Duration::from_secs(1);
/// A standby is "receiving" while it heard an active director this recently.
const HEARD_WITHIN: Duration = Duration::from_secs(3);
/// A bulk request unanswered (no end marker) this long is sent again.
const BULK_RETRY: Duration = Duration::from_secs(2);
/// Bulk datagrams sent per loop turn (one turn per millisecond while a bulk is going).
const BULK_BURST: usize = 64;
/// At most one log line per reason this often for rejected datagrams.
const REJECT_LOG_EVERY: Duration = Duration::from_secs(10);

/// What the control thread tells the sync thread.
#[derive(Debug)]
enum Ctl {
    Role(bool),
    Stop,
}

/// What the sync thread needs of one worker: its rings, and its command channel for dumps.
pub struct WorkerLink {
    pub side: EngineSide,
    pub cmds: Sender<Cmd>,
    pub waker: Arc<Waker>,
}

impl std::fmt::Debug for WorkerLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WorkerLink")
    }
}

/// The control thread's handle on the sync thread.
#[derive(Debug)]
pub struct SyncEngine {
    ctl: Sender<Ctl>,
    waker: Arc<Waker>,
    join: Option<JoinHandle<()>>,
    pub shared: Arc<SyncShared>,
    pub config: SyncConfig,
    epoch: Instant,
}

/// A bulk resync being sent to one requester.
struct BulkJob {
    to: SocketAddr,
    bulk_id: u32,
    entries: Vec<SyncEntry>,
    next: usize,
    chunk: u32,
}

/// A bulk resync this standby asked for.
struct BulkWait {
    bulk_id: u32,
    asked: Instant,
    chunks: HashSet<u32>,
    entries: u64,
}

struct Engine {
    cfg: SyncConfig,
    key: AuthKey,
    sock: UdpSocket,
    poll: Poll,
    ctl: Receiver<Ctl>,
    links: Vec<WorkerLink>,
    shared: Arc<SyncShared>,
    epoch: Instant,
    boot_id: u64,
    seq: u64,
    replay: Replay,
    builder: Builder,
    dests: Vec<SocketAddr>,
    active: bool,
    last_sent: Instant,
    jobs: Vec<BulkJob>,
    wait: Option<BulkWait>,
    next_bulk_id: u32,
    reject_logged: [Option<Instant>; 5],
    reject_since_log: [u64; 5],
    touched: Vec<bool>,
}

fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut buf);
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    u64::from_ne_bytes(buf) ^ u64::try_from(t & u128::from(u64::MAX)).unwrap_or(0)
}

/// Opens the socket: bound to `listen`, in the multicast group if one is configured.
fn open_socket(cfg: &SyncConfig) -> std::io::Result<std::net::UdpSocket> {
    let sock = std::net::UdpSocket::bind(cfg.listen)?;
    if let Some(m) = cfg.multicast {
        let ifaddr = match &cfg.interface {
            Some(name) => interface_v4(name).ok_or_else(|| {
                std::io::Error::other(format!("sync.interface {name} has no IPv4 address"))
            })?,
            None => std::net::Ipv4Addr::UNSPECIFIED,
        };
        sock.join_multicast_v4(m.ip(), &ifaddr)?;
        if !ifaddr.is_unspecified() {
            set_multicast_if(&sock, ifaddr)?;
        }
        sock.set_multicast_loop_v4(false)?;
        sock.set_multicast_ttl_v4(1)?;
    }
    // A bulk resync arrives as a burst; a large receive buffer keeps it whole.
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
    let size: libc::c_int = 4 << 20;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
        // SAFETY: `fd` is the open socket above; the option value is a c_int of the given size.
        let _ = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                std::ptr::from_ref(&size).cast(),
                libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).unwrap_or(4),
            )
        };
    }
    sock.set_nonblocking(true)?;
    Ok(sock)
}

/// Send multicast out of the interface that holds `addr` (std has no setter for it).
fn set_multicast_if(sock: &std::net::UdpSocket, addr: std::net::Ipv4Addr) -> std::io::Result<()> {
    let fd = std::os::fd::AsRawFd::as_raw_fd(sock);
    let value = libc::in_addr {
        s_addr: u32::from(addr).to_be(),
    };
    // SAFETY: `fd` is an open UDP socket; the option value is an `in_addr` of the given size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            std::ptr::from_ref(&value).cast(),
            libc::socklen_t::try_from(std::mem::size_of::<libc::in_addr>()).unwrap_or(4),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The first IPv4 address of interface `name`.
fn interface_v4(name: &str) -> Option<std::net::Ipv4Addr> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    addrs
        .filter(|a| a.interface_name == name)
        .find_map(|a| a.address.and_then(|s| s.as_sockaddr_in().map(|s| s.ip())))
}

impl SyncEngine {
    /// Open the socket and start the thread. `active` is the director's role now.
    pub fn start(
        cfg: SyncConfig,
        key: AuthKey,
        links: Vec<WorkerLink>,
        shared: Arc<SyncShared>,
        active: bool,
    ) -> std::io::Result<SyncEngine> {
        let std_sock = open_socket(&cfg)?;
        let mut sock = UdpSocket::from_std(std_sock);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut sock, SOCKET, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let (ctl_tx, ctl_rx) = mpsc::channel();
        let epoch = Instant::now();
        shared.active.store(active, Ordering::Relaxed);
        let n = links.len();
        let engine = Engine {
            dests: cfg.destinations(),
            cfg: cfg.clone(),
            key,
            sock,
            poll,
            ctl: ctl_rx,
            links,
            shared: Arc::clone(&shared),
            epoch,
            boot_id: random_u64(),
            seq: 0,
            replay: Replay::default(),
            builder: Builder::default(),
            active,
            last_sent: Instant::now(),
            jobs: Vec::new(),
            wait: None,
            next_bulk_id: u32::try_from(random_u64() & 0xffff).unwrap_or(1) + 1,
            reject_logged: [None; 5],
            reject_since_log: [0; 5],
            touched: vec![false; n],
        };
        event!(
            Level::Info,
            "sync_started",
            role = if active { "active" } else { "standby" },
            listen = cfg.listen,
            peers = cfg
                .destinations()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            sync_id = cfg.sync_id
        );
        let join = std::thread::Builder::new()
            .name("lvs-sync".into())
            .spawn(move || engine.run())?;
        Ok(SyncEngine {
            ctl: ctl_tx,
            waker,
            join: Some(join),
            shared,
            config: cfg,
            epoch,
        })
    }

    /// The director became active (send) or standby (receive, resync).
    pub fn set_role(&self, active: bool) {
        let _ = self.ctl.send(Ctl::Role(active));
        let _ = self.waker.wake();
    }

    /// Stop the thread and wait for it.
    pub fn stop(&mut self) {
        let _ = self.ctl.send(Ctl::Stop);
        let _ = self.waker.wake();
        if let Some(j) = self.join.take() {
            let _ = j.join();
            event!(Level::Info, "sync_stopped", listen = self.config.listen);
        }
    }

    /// The status for `lvsadm -L --daemon` and lvs-heartbeatd.
    pub fn status(&self) -> lvs_proto::director::SyncStatus {
        let s = &self.shared;
        let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let active = s.active.load(Ordering::Relaxed);
        let heard = get(&s.last_heard);
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last_heard_ms = (heard > 0).then(|| now.saturating_sub(heard));
        let bulk = s.bulk_complete.load(Ordering::Relaxed);
        let receiving = last_heard_ms.is_some_and(|ms| u128::from(ms) < HEARD_WITHIN.as_millis());
        lvs_proto::director::SyncStatus {
            enabled: true,
            active,
            sync_id: self.config.sync_id,
            listen: self.config.listen.to_string(),
            peers: self
                .config
                .destinations()
                .iter()
                .map(ToString::to_string)
                .collect(),
            synced: active || (bulk && receiving),
            bulk_complete: bulk,
            last_heard_ms,
            sent: get(&s.sent),
            entries_sent: get(&s.entries_sent),
            received: get(&s.received),
            entries_applied: get(&s.entries_applied),
            rejected_mac: get(&s.rejected_mac),
            rejected_replay: get(&s.rejected_replay),
            rejected_truncated: get(&s.rejected_truncated),
            rejected_other: get(&s.rejected_other),
            dropped: get(&s.dropped),
            bulk_resyncs: get(&s.bulk_resyncs),
        }
    }
}

impl Drop for SyncEngine {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Engine {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    fn run(mut self) {
        let mut events = Events::with_capacity(16);
        let mut buf = vec![0u8; 65536];
        if !self.active {
            self.ask_bulk();
        }
        loop {
            let wait = if !self.jobs.is_empty() {
                Duration::from_millis(1)
            } else if self.active {
                Duration::from_millis(u64::from(self.cfg.flush_ms))
            } else {
                Duration::from_millis(100)
            };
            if let Err(e) = self.poll.poll(&mut events, Some(wait))
                && e.kind() != ErrorKind::Interrupted
            {
                log::error!("event=sync_poll_failed reason={:?}", e.to_string());
            }
            while let Ok(c) = self.ctl.try_recv() {
                match c {
                    Ctl::Stop => return,
                    Ctl::Role(active) => self.set_role(active),
                }
            }
            self.receive(&mut buf);
            if self.active {
                self.flush_workers();
                if self.last_sent.elapsed() >= KEEPALIVE {
                    self.send_empty(Kind::Keepalive, 0, 0, None);
                }
            } else {
                // Nothing of a standby's own is worth sending; keep the rings empty.
                for l in &mut self.links {
                    while l.side.from_worker.pop().is_some() {}
                }
                let retry = match &self.wait {
                    Some(w) => w.asked.elapsed() >= BULK_RETRY,
                    None => false,
                };
                if retry {
                    self.ask_bulk();
                }
            }
            self.send_jobs();
        }
    }

    fn set_role(&mut self, active: bool) {
        if active == self.active {
            return;
        }
        self.active = active;
        self.shared.active.store(active, Ordering::Relaxed);
        event!(
            Level::Info,
            "sync_role",
            role = if active { "active" } else { "standby" }
        );
        if active {
            self.wait = None;
        } else {
            self.jobs.clear();
            self.ask_bulk();
        }
    }

    fn header(&mut self, kind: Kind, bulk_id: u32, chunk: u32) -> Header {
        self.seq += 1;
        Header {
            kind,
            sync_id: self.cfg.sync_id,
            flags: if self.active { FLAG_ACTIVE } else { 0 },
            boot_id: self.boot_id,
            seq: self.seq,
            bulk_id,
            chunk,
            count: 0,
        }
    }

    fn transmit(&mut self, to: Option<SocketAddr>, records: usize) {
        let bytes = self.builder.seal(&self.key);
        let mut sent = false;
        let targets: &[SocketAddr] = match &to {
            Some(a) => std::slice::from_ref(a),
            None => &self.dests,
        };
        for t in targets {
            match self.sock.send_to(bytes, *t) {
                Ok(_) => sent = true,
                Err(e) => log::debug!("event=sync_send_failed to={t} reason={:?}", e.to_string()),
            }
        }
        if sent {
            SyncShared::bump(&self.shared.sent);
            self.shared
                .entries_sent
                .fetch_add(records as u64, Ordering::Relaxed);
        }
        self.last_sent = Instant::now();
    }

    fn send_empty(&mut self, kind: Kind, bulk_id: u32, chunk: u32, to: Option<SocketAddr>) {
        let h = self.header(kind, bulk_id, chunk);
        self.builder.start(&h);
        self.transmit(to, 0);
    }

    /// Everything the workers queued, in full datagrams plus one partial.
    fn flush_workers(&mut self) {
        let mut open = false;
        for w in 0..self.links.len() {
            while let Some(e) = self.links[w].side.from_worker.pop() {
                if !open {
                    let h = self.header(Kind::Updates, 0, 0);
                    self.builder.start(&h);
                    open = true;
                }
                self.builder.push(&e);
                if self.builder.is_full() {
                    let n = self.builder.len();
                    self.transmit(None, n);
                    open = false;
                }
            }
        }
        if open {
            let n = self.builder.len();
            self.transmit(None, n);
        }
    }

    fn ask_bulk(&mut self) {
        self.next_bulk_id = self.next_bulk_id.wrapping_add(1).max(1);
        let id = self.next_bulk_id;
        self.wait = Some(BulkWait {
            bulk_id: id,
            asked: Instant::now(),
            chunks: HashSet::new(),
            entries: 0,
        });
        self.shared.bulk_complete.store(false, Ordering::Relaxed);
        self.send_empty(Kind::BulkRequest, id, 0, None);
    }

    /// A bulk request: every worker's table, to be sent to `to` a burst at a time.
    fn serve_bulk(&mut self, to: SocketAddr, bulk_id: u32) {
        if self.jobs.iter().any(|j| j.to == to && j.bulk_id == bulk_id) {
            return;
        }
        self.jobs.retain(|j| j.to != to);
        let mut replies = Vec::new();
        for l in &self.links {
            let (tx, rx) = mpsc::sync_channel(1);
            if l.cmds.send(Cmd::SyncDump(tx)).is_ok() {
                let _ = l.waker.wake();
                replies.push(rx);
            }
        }
        let mut entries = Vec::new();
        for rx in replies {
            if let Ok(mut v) = rx.recv_timeout(Duration::from_secs(2)) {
                entries.append(&mut v);
            }
        }
        event!(
            Level::Info,
            "bulk_resync_serving",
            to = to,
            entries = entries.len()
        );
        self.jobs.push(BulkJob {
            to,
            bulk_id,
            entries,
            next: 0,
            chunk: 0,
        });
    }

    fn send_jobs(&mut self) {
        let mut budget = BULK_BURST;
        while budget > 0 && !self.jobs.is_empty() {
            let mut job = self.jobs.remove(0);
            while budget > 0 && job.next < job.entries.len() {
                let h = self.header(Kind::BulkChunk, job.bulk_id, job.chunk);
                self.builder.start(&h);
                while job.next < job.entries.len() && self.builder.push(&job.entries[job.next]) {
                    job.next += 1;
                }
                let n = self.builder.len();
                self.transmit(Some(job.to), n);
                job.chunk += 1;
                budget -= 1;
            }
            if job.next >= job.entries.len() {
                self.send_empty(Kind::BulkEnd, job.bulk_id, job.chunk, Some(job.to));
                SyncShared::bump(&self.shared.bulk_resyncs);
                event!(
                    Level::Info,
                    "bulk_resync_sent",
                    to = job.to,
                    entries = job.entries.len(),
                    chunks = job.chunk
                );
            } else {
                self.jobs.push(job);
            }
        }
    }

    fn receive(&mut self, buf: &mut [u8]) {
        loop {
            let (n, from) = match self.sock.recv_from(buf) {
                Ok(x) => x,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("event=sync_receive_failed reason={:?}", e.to_string());
                    break;
                }
            };
            self.datagram(&buf[..n], from);
        }
        self.wake_touched();
    }

    fn reject(&mut self, why: Reject, from: SocketAddr) {
        let (i, counter) = match why {
            Reject::BadMac => (0, &self.shared.rejected_mac),
            Reject::Replay => (1, &self.shared.rejected_replay),
            Reject::Truncated => (2, &self.shared.rejected_truncated),
            Reject::BadMagic => (3, &self.shared.rejected_other),
            Reject::Malformed => (4, &self.shared.rejected_other),
        };
        SyncShared::bump(counter);
        self.reject_since_log[i] += 1;
        if self.reject_logged[i].is_none_or(|t| t.elapsed() >= REJECT_LOG_EVERY) {
            event!(
                Level::Warn,
                "sync_rejected",
                reason = why.to_string(),
                from = from,
                count = self.reject_since_log[i]
            );
            self.reject_logged[i] = Some(Instant::now());
            self.reject_since_log[i] = 0;
        }
    }

    fn datagram(&mut self, bytes: &[u8], from: SocketAddr) {
        let opened = match wire::open(bytes, &self.key) {
            Ok(o) => o,
            Err(why) => return self.reject(why, from),
        };
        let h = opened.header;
        if h.boot_id == self.boot_id {
            return; // our own, looped back
        }
        if h.sync_id != self.cfg.sync_id {
            return; // another cluster's, like IPVS
        }
        if let Err(why) = self.replay.check(h.boot_id, h.seq) {
            return self.reject(why, from);
        }
        SyncShared::bump(&self.shared.received);
        if h.flags & FLAG_ACTIVE != 0 {
            self.shared
                .last_heard
                .store(self.now_ms(), Ordering::Relaxed);
        }
        match h.kind {
            Kind::Keepalive => {}
            Kind::BulkRequest => {
                if self.active {
                    self.serve_bulk(from, h.bulk_id);
                }
            }
            Kind::Updates | Kind::BulkChunk => {
                if self.active {
                    return;
                }
                let mut applied = 0u64;
                let records: Vec<_> = opened.records().collect();
                for r in records {
                    match r {
                        Ok(e) => {
                            if self.dispatch(e) {
                                applied += 1;
                            }
                        }
                        Err(why) => {
                            self.reject(why, from);
                            break;
                        }
                    }
                }
                if h.kind == Kind::BulkChunk
                    && let Some(w) = &mut self.wait
                    && w.bulk_id == h.bulk_id
                {
                    w.chunks.insert(h.chunk);
                    w.entries += applied;
                }
            }
            Kind::BulkEnd => {
                if self.active {
                    return;
                }
                let Some(w) = &self.wait else { return };
                if w.bulk_id != h.bulk_id {
                    return;
                }
                let total = h.chunk;
                let have = (0..total).filter(|c| w.chunks.contains(c)).count();
                if have == total as usize {
                    event!(
                        Level::Info,
                        "bulk_resync_done",
                        from = from,
                        entries = w.entries,
                        chunks = total
                    );
                    self.wait = None;
                    self.shared.bulk_complete.store(true, Ordering::Relaxed);
                    SyncShared::bump(&self.shared.bulk_resyncs);
                } else {
                    event!(
                        Level::Warn,
                        "bulk_resync_incomplete",
                        from = from,
                        chunks = total,
                        missing = total as usize - have
                    );
                    self.ask_bulk();
                }
            }
        }
    }

    /// Queue a received entry for its worker (a template for every worker).
    fn dispatch(&mut self, e: SyncEntry) -> bool {
        let n = self.links.len();
        if n == 0 || !matches!(IpAddr::from(e.client.addr), IpAddr::V4(_)) {
            SyncShared::bump(&self.shared.dropped);
            return false;
        }
        let targets = if e.is_template() {
            0..n
        } else {
            let w = worker_of(&e, n);
            w..w + 1
        };
        let mut ok = true;
        for w in targets {
            if self.links[w].side.to_worker.push(e) {
                self.touched[w] = true;
            } else {
                SyncShared::bump(&self.shared.dropped);
                ok = false;
            }
        }
        ok
    }

    fn wake_touched(&mut self) {
        for (w, t) in self.touched.iter_mut().enumerate() {
            if std::mem::take(t) {
                let _ = self.links[w].waker.wake();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_conntrack::{Endpoint, Forward, Proto, State};

    const KEY: &[u8] = b"unit test key for sync";

    fn entry(port: u16) -> SyncEntry {
        SyncEntry {
            proto: Proto::Tcp,
            client: Endpoint::v4([198, 51, 100, 2], port),
            virt: Endpoint::v4([203, 0, 113, 100], 80),
            dest: Endpoint::v4([203, 0, 113, 11], 80),
            forward: Forward::Nat,
            state: State::Established,
            flags: 0,
            timeout_ms: 900_000,
            persist_secs: 0,
        }
    }

    /// A fake active director on loopback.
    struct Fake {
        sock: std::net::UdpSocket,
        key: AuthKey,
        seq: u64,
    }

    impl Fake {
        fn recv(&self) -> (Header, SocketAddr) {
            let mut buf = [0u8; 2048];
            loop {
                let (n, from) = self.sock.recv_from(&mut buf).expect("a datagram in time");
                let o = wire::open(&buf[..n], &self.key).expect("authentic");
                if o.header.kind == Kind::BulkRequest {
                    return (o.header, from);
                }
            }
        }

        fn send(&mut self, to: SocketAddr, kind: Kind, bulk_id: u32, chunk: u32, recs: &[u16]) {
            self.seq += 1;
            let mut b = Builder::default();
            b.start(&Header {
                kind,
                sync_id: 0,
                flags: FLAG_ACTIVE,
                boot_id: 77,
                seq: self.seq,
                bulk_id,
                chunk,
                count: 0,
            });
            for &p in recs {
                b.push(&entry(p));
            }
            self.sock.send_to(b.seal(&self.key), to).unwrap();
        }
    }

    #[test]
    fn a_standby_asks_again_when_a_bulk_chunk_is_lost() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut fake = Fake {
            key: AuthKey::from_bytes(KEY),
            seq: 0,
            sock,
        };
        let cfg = SyncConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            peers: vec![fake.sock.local_addr().unwrap()],
            multicast: None,
            interface: None,
            key_file: "unused".into(),
            sync_id: 0,
            refresh_secs: 30,
            flush_ms: 5,
            ring_size: 1024,
        };
        let shared = Arc::new(SyncShared::default());
        let (mut workers, sides) = super::super::rings(1, 16, &cfg, &shared);
        let poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), Token(0)).unwrap());
        let (cmd_tx, _cmd_rx) = mpsc::channel();
        let links = sides
            .into_iter()
            .map(|side| WorkerLink {
                side,
                cmds: cmd_tx.clone(),
                waker: Arc::clone(&waker),
            })
            .collect();
        let mut engine = SyncEngine::start(
            cfg,
            AuthKey::from_bytes(KEY),
            links,
            Arc::clone(&shared),
            false,
        )
        .unwrap();

        let (first, standby) = fake.recv();
        fake.send(standby, Kind::BulkChunk, first.bulk_id, 0, &[1, 2]);
        fake.send(standby, Kind::BulkChunk, first.bulk_id, 2, &[5]);
        fake.send(standby, Kind::BulkEnd, first.bulk_id, 3, &[]);
        let (again, _) = fake.recv();
        assert_ne!(
            again.bulk_id, first.bulk_id,
            "a new request after a lost chunk"
        );
        assert!(!engine.status().bulk_complete);
        for (chunk, recs) in [(0u32, &[1u16, 2][..]), (1, &[3, 4]), (2, &[5])] {
            fake.send(standby, Kind::BulkChunk, again.bulk_id, chunk, recs);
        }
        fake.send(standby, Kind::BulkEnd, again.bulk_id, 3, &[]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !engine.status().synced {
            assert!(Instant::now() < deadline, "{:?}", engine.status());
            std::thread::sleep(Duration::from_millis(10));
        }
        let st = engine.status();
        assert!(st.bulk_complete && !st.active);
        assert_eq!(st.bulk_resyncs, 1);
        let mut got: Vec<u16> = std::iter::from_fn(|| workers[0].inbound.pop())
            .map(|e| e.client.port)
            .collect();
        got.sort_unstable();
        got.dedup();
        assert_eq!(got, vec![1, 2, 3, 4, 5]);
        engine.stop();
    }

    /// Two engines on loopback; the active's worker answers the dump with `n` entries, the
    /// standby's worker ring is drained by a thread: the whole table and then `n` updates
    /// must arrive. It also prints the figures of docs/PERFORMANCE.md, measured with
    /// `LVS_SYNC_FIGURES_N=200000 cargo test -p lvs-director --release --lib
    /// bulk_resync_figures -- --nocapture` (20,000 entries by default, to stay quick in debug).
    #[test]
    fn bulk_resync_figures() {
        let n: usize = std::env::var("LVS_SYNC_FIGURES_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20_000);
        let a_port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b_port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let (a_addr, b_addr) = (a_port.local_addr().unwrap(), b_port.local_addr().unwrap());
        drop((a_port, b_port));
        let cfg = |listen: SocketAddr, peer: SocketAddr| SyncConfig {
            listen,
            peers: vec![peer],
            multicast: None,
            interface: None,
            key_file: "unused".into(),
            sync_id: 0,
            refresh_secs: 30,
            flush_ms: 5,
            ring_size: 1 << 20,
        };
        let poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), Token(0)).unwrap());
        // The active side: one worker whose dump is n entries.
        let a_shared = Arc::new(SyncShared::default());
        let (aw_all, a_sides) = super::super::rings(1, 16, &cfg(a_addr, b_addr), &a_shared);
        let (cmd_tx, cmd_rx) = mpsc::channel::<Cmd>();
        std::thread::spawn(move || {
            while let Ok(c) = cmd_rx.recv() {
                if let Cmd::SyncDump(reply) = c {
                    let v: Vec<SyncEntry> = (0..n)
                        .map(|i| entry(u16::try_from(i % 65_536).unwrap()))
                        .collect();
                    let _ = reply.send(v);
                }
            }
        });
        let links = a_sides
            .into_iter()
            .map(|side| WorkerLink {
                side,
                cmds: cmd_tx.clone(),
                waker: Arc::clone(&waker),
            })
            .collect();
        let mut active = SyncEngine::start(
            cfg(a_addr, b_addr),
            AuthKey::from_bytes(KEY),
            links,
            Arc::clone(&a_shared),
            true,
        )
        .unwrap();
        // The standby side: a thread empties its worker ring.
        let b_shared = Arc::new(SyncShared::default());
        let (mut bw, b_sides) = super::super::rings(1, 16, &cfg(b_addr, a_addr), &b_shared);
        let mut inbound = bw.remove(0).inbound;
        // The client ports of the entries that arrived, in order: the count and identity.
        let got = Arc::new(std::sync::Mutex::new(Vec::<u16>::new()));
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (g, d) = (Arc::clone(&got), Arc::clone(&done));
        let drain = std::thread::spawn(move || {
            while !d.load(Ordering::Relaxed) {
                while let Some(e) = inbound.pop() {
                    g.lock().unwrap().push(e.client.port);
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        let (cmd2, _rx2) = mpsc::channel::<Cmd>();
        let links = b_sides
            .into_iter()
            .map(|side| WorkerLink {
                side,
                cmds: cmd2.clone(),
                waker: Arc::clone(&waker),
            })
            .collect();
        let t0 = Instant::now();
        let mut standby = SyncEngine::start(
            cfg(b_addr, a_addr),
            AuthKey::from_bytes(KEY),
            links,
            Arc::clone(&b_shared),
            false,
        )
        .unwrap();
        while !standby.status().bulk_complete {
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "{:?}",
                standby.status()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let took = t0.elapsed();
        let st = standby.status();
        // Complete means the whole table arrived: every one of the n entries (a chunk asked
        // for again may bring some twice), nothing else.
        let arrived = |from: usize| {
            let mut v = got.lock().unwrap()[from..].to_vec();
            v.sort_unstable();
            v.dedup();
            v
        };
        let mut want_set: Vec<u16> = (0..n).map(|i| u16::try_from(i % 65_536).unwrap()).collect();
        want_set.sort_unstable();
        want_set.dedup();
        let t = Instant::now();
        while arrived(0) != want_set {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "bulk resync complete, but {} of the {} distinct entries arrived ({} in all)",
                arrived(0).len(),
                want_set.len(),
                got.lock().unwrap().len()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // Served once (no chunk lost and asked for again): each entry exactly once.
        if active.status().bulk_resyncs == 1 {
            assert_eq!(got.lock().unwrap().len(), n, "one bulk resync served");
        }
        eprintln!(
            "bulk resync of {n} entries: {took:?} ({:.0} entries/s), {} datagrams sent, {} received, {} requests, dropped {}",
            n as f64 / took.as_secs_f64(),
            active.status().sent,
            st.received,
            st.bulk_resyncs,
            st.dropped
        );
        // Updates: the active's worker queues n changes at once.
        let mut aw = aw_all;
        let base = got.lock().unwrap().len();
        let t1 = Instant::now();
        for i in 0..n {
            assert!(aw[0].send(entry(u16::try_from(i % 65_536).unwrap())));
        }
        while got.lock().unwrap().len() < base + n {
            assert!(
                t1.elapsed() < Duration::from_secs(120),
                "{:?}",
                standby.status()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let took = t1.elapsed();
        assert!(
            arrived(base) == want_set,
            "the updates are not the n entries sent"
        );
        eprintln!(
            "updates: {n} entries through rings, datagrams and rings again in {took:?} ({:.0} entries/s)",
            n as f64 / took.as_secs_f64()
        );
        standby.stop();
        active.stop();
        done.store(true, Ordering::Relaxed);
        drain.join().unwrap();
    }
}
