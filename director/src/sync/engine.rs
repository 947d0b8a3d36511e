//! The sync thread: batches the workers' records into datagrams (active), serves and asks
//! for bulk resyncs, and hands received entries to the right worker (standby).

use std::collections::HashSet;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::Level;
use lvs_common::authdgram::{Boot, Freshness, PeerFloors, Stale};
use lvs_common::event;
use lvs_conntrack::SyncEntry;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};

use super::wire::{self, AuthKey, Builder, Echoes, FLAG_ACTIVE, Header, Kind, Reject, TO_GROUP};
use super::{EngineSide, SyncConfig, SyncShared, worker_of};
use crate::dataplane::worker::WorkerCommand;

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
/// Datagrams read per loop turn: a flood (forged or replayed) must not keep the sync thread
/// from sending; the rest is read on the next turn, which does not wait.
const RECEIVE_BURST: usize = 256;
/// How long the workers get to hand over their tables for a bulk resync (all of them
/// together; the sync thread goes on meanwhile). A worker later than this is left out.
const DUMP_WAIT: Duration = Duration::from_secs(2);
/// A requester gets at most one bulk resync started this often (its retry after a lost chunk
/// comes after `BULK_RETRY`): a replayed or repeated request cannot make the active director
/// dump its table in a loop.
const BULK_MIN_INTERVAL: Duration = Duration::from_secs(1);
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
    pub cmds: Sender<WorkerCommand>,
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
    /// The thread gives the workers' links back when it stops, for the next daemon.
    join: Option<JoinHandle<Vec<WorkerLink>>>,
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

/// A bulk resync waiting for the workers' tables.
struct PendingDump {
    to: SocketAddr,
    bulk_id: u32,
    replies: Vec<Receiver<Vec<SyncEntry>>>,
    entries: Vec<SyncEntry>,
    since: Instant,
}

/// A bulk resync this standby (or active-active director) asked for.
struct BulkWait {
    bulk_id: u32,
    asked: Instant,
    /// By sender: with many peers answering one request, each numbers its chunks from 0.
    chunks: HashSet<(u64, u32)>,
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
    boot: Boot,
    seq: u64,
    fresh: Freshness,
    /// The generation accepted last from each peer heard recently, echoed in every datagram.
    echoes: Echoes,
    builder: Builder,
    dests: Vec<SocketAddr>,
    /// The multicast group as datagrams are sent to it (with its interface for link scope).
    group: Option<SocketAddr>,
    active: bool,
    last_sent: Instant,
    jobs: Vec<BulkJob>,
    dumps: Vec<PendingDump>,
    /// When a bulk resync was last started for each requester (pruned as they age).
    served: Vec<(SocketAddr, Instant)>,
    wait: Option<BulkWait>,
    next_bulk_id: u32,
    reject_logged: [Option<Instant>; Reject::ALL.len()],
    reject_since_log: [u64; Reject::ALL.len()],
    touched: Vec<bool>,
}

/// Opens the socket: bound to `listen`, in the multicast group if one is configured.
/// Returns it and the group as datagrams are sent to it (an IPv6 group of link scope carries
/// its interface's index, which names where it leaves).
fn open_socket(cfg: &SyncConfig) -> std::io::Result<(std::net::UdpSocket, Option<SocketAddr>)> {
    let sock = std::net::UdpSocket::bind(cfg.listen)?;
    let group = match cfg.multicast {
        Some(SocketAddr::V4(m)) => {
            let ifaddr = match &cfg.interface {
                Some(name) => interface_v4(name).ok_or_else(|| {
                    std::io::Error::other(format!("sync.interface {name} has no IPv4 address"))
                })?,
                None => std::net::Ipv4Addr::UNSPECIFIED,
            };
            lvs_common::mcast::join_group(&sock, *m.ip(), ifaddr)?;
            Some(SocketAddr::V4(m))
        }
        Some(SocketAddr::V6(m)) => Some(SocketAddr::V6(join_group_v6(&sock, m, cfg)?)),
        None => None,
    };
    if cfg.ttl != 1 {
        match group {
            Some(SocketAddr::V4(_)) => sock.set_multicast_ttl_v4(u32::from(cfg.ttl))?,
            Some(SocketAddr::V6(_)) => nix::sys::socket::setsockopt(
                &sock,
                nix::sys::socket::sockopt::Ipv6MulticastHops,
                &i32::from(cfg.ttl),
            )?,
            None => {}
        }
    }
    // A bulk resync arrives as a burst; a large receive buffer keeps it whole. Forcing past
    // the sysctl limits needs CAP_NET_ADMIN: without it, the default sizes do.
    let size: usize = 4 << 20;
    let _ = nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::RcvBufForce, &size);
    let _ = nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::SndBufForce, &size);
    sock.set_nonblocking(true)?;
    Ok((sock, group))
}

/// Joins an IPv6 group as [`lvs_common::mcast::join_group`] joins an IPv4 one: on the
/// configured interface (by index; none: the kernel's choice), our own datagrams not looped
/// back, one hop. The group returned carries the interface as its scope id, so that a
/// link-scoped group's datagrams leave by that interface.
fn join_group_v6(
    sock: &std::net::UdpSocket,
    group: std::net::SocketAddrV6,
    cfg: &SyncConfig,
) -> std::io::Result<std::net::SocketAddrV6> {
    let index = match &cfg.interface {
        Some(name) => nix::net::if_::if_nametoindex(name.as_str()).map_err(|e| {
            std::io::Error::other(format!("sync.interface {name}: no such interface ({e})"))
        })?,
        None => 0,
    };
    sock.join_multicast_v6(group.ip(), index)?;
    sock.set_multicast_loop_v6(false)?;
    nix::sys::socket::setsockopt(sock, nix::sys::socket::sockopt::Ipv6MulticastHops, &1)?;
    let scope = if super::config::needs_interface(*group.ip()) {
        index
    } else {
        0
    };
    Ok(std::net::SocketAddrV6::new(
        *group.ip(),
        group.port(),
        group.flowinfo(),
        scope,
    ))
}

/// The local address the kernel would send from toward `to` (a connected UDP socket sends
/// nothing).
fn source_toward(to: SocketAddr) -> Option<IpAddr> {
    let any = match to {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    };
    let s = std::net::UdpSocket::bind(any).ok()?;
    s.connect(to).ok()?;
    s.local_addr().ok().map(|a| a.ip())
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
        Self::start_keeping(cfg, key, links, shared, active).map_err(|(e, _)| e)
    }

    /// [`SyncEngine::start`], giving the workers' links back when it fails (a later daemon
    /// needs them).
    pub fn start_keeping(
        cfg: SyncConfig,
        key: AuthKey,
        links: Vec<WorkerLink>,
        shared: Arc<SyncShared>,
        active: bool,
    ) -> Result<SyncEngine, (std::io::Error, Vec<WorkerLink>)> {
        let opened = (|| -> std::io::Result<_> {
            // Advanced and fsynced before the first datagram: peers refuse every datagram of
            // an earlier generation, so nothing recorded during an earlier run can be replayed.
            let state_err =
                |e: lvs_common::authdgram::StateError| std::io::Error::other(e.to_string());
            let boot = Boot::advance(&cfg.generation_file()).map_err(state_err)?;
            let floors = PeerFloors::load(&cfg.peers_file()).map_err(state_err)?;
            let (std_sock, group) = open_socket(&cfg)?;
            let mut sock = UdpSocket::from_std(std_sock);
            let poll = Poll::new()?;
            poll.registry()
                .register(&mut sock, SOCKET, Interest::READABLE)?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
            Ok((boot, floors, group, sock, poll, waker))
        })();
        let (boot, floors, group, sock, poll, waker) = match opened {
            Ok(v) => v,
            Err(e) => return Err((e, links)),
        };
        let (ctl_tx, ctl_rx) = mpsc::channel();
        let epoch = Instant::now();
        shared.active.store(active, Ordering::Relaxed);
        shared.running.store(true, Ordering::Relaxed);
        let n = links.len();
        let engine = Engine {
            dests: cfg.peers.iter().copied().chain(group).collect(),
            group,
            cfg: cfg.clone(),
            key,
            sock,
            poll,
            ctl: ctl_rx,
            links,
            shared: Arc::clone(&shared),
            epoch,
            boot,
            seq: 0,
            // Our generation is the challenge: after this restart, a peer's known generation
            // is accepted only from datagrams echoing it (recorded ones cannot).
            fresh: Freshness::with_challenge(floors, boot.generation),
            echoes: Echoes::default(),
            // Records per datagram: as many as fit a 1500-byte MTU under this family's headers,
            // or the smaller `maxlen` (ipvsadm's --sync-maxlen).
            builder: Builder::with_limit(match (cfg.maxlen, cfg.listen.is_ipv4()) {
                (0, true) => wire::MAX_DATAGRAM,
                (0, false) => wire::MAX_DATAGRAM_V6,
                (n, true) => usize::from(n).min(wire::MAX_DATAGRAM),
                (n, false) => usize::from(n).min(wire::MAX_DATAGRAM_V6),
            }),
            active,
            last_sent: Instant::now(),
            jobs: Vec::new(),
            dumps: Vec::new(),
            served: Vec::new(),
            wait: None,
            next_bulk_id: u32::try_from(boot.generation & 0xffff).unwrap_or(1) + 1,
            reject_logged: [None; Reject::ALL.len()],
            reject_since_log: [0; Reject::ALL.len()],
            touched: vec![false; n],
        };
        event!(
            Level::Info,
            "sync_started",
            role = if active { "active" } else { "standby" },
            mode = if cfg.many_to_many {
                "active-active"
            } else {
                "active-standby"
            },
            listen = cfg.listen,
            peers = cfg
                .destinations()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            sync_id = cfg.sync_id,
            sender = format!("{:016x}", boot.id),
            generation = boot.generation
        );
        let join = std::thread::Builder::new()
            .name("lvs-sync".into())
            .spawn(move || engine.run())
            .map_err(|e| (e, Vec::new()))?;
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

    /// Stop the thread and wait for it; the workers' links come back (`None` if it was
    /// stopped before, or died).
    pub fn stop(&mut self) -> Option<Vec<WorkerLink>> {
        let _ = self.ctl.send(Ctl::Stop);
        let _ = self.waker.wake();
        let j = self.join.take()?;
        let links = j.join().ok();
        self.shared.running.store(false, Ordering::Relaxed);
        event!(Level::Info, "sync_stopped", listen = self.config.listen);
        links
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
            // Active-active: every director forwards, and its table is synced once the bulk
            // resync of its start is complete (what lvs-heartbeatd may wait for before it
            // announces the VIPs).
            synced: if self.config.many_to_many {
                bulk
            } else {
                active || (bulk && receiving)
            },
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
            active_active: self.config.many_to_many,
            // The workers count it (`Dataplane::sync_status`).
            midflow_created: 0,
        }
    }
}

impl Drop for SyncEngine {
    fn drop(&mut self) {
        drop(self.stop());
    }
}

impl Engine {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    fn run(mut self) -> Vec<WorkerLink> {
        let mut events = Events::with_capacity(16);
        let mut buf = vec![0u8; 65536];
        // An active-active director (re)joining learns its peers' flows before ECMP moves
        // them here.
        if !self.active || self.cfg.many_to_many {
            self.ask_bulk();
        }
        let mut more = false;
        loop {
            let wait = if more {
                Duration::ZERO
            } else if !self.jobs.is_empty() || !self.dumps.is_empty() {
                Duration::from_millis(1)
            } else if self.active {
                Duration::from_millis(u64::from(self.cfg.flush_ms))
            } else {
                Duration::from_millis(100)
            };
            if let Err(e) = self.poll.poll(&mut events, Some(wait))
                && e.kind() != ErrorKind::Interrupted
            {
                event!(Level::Error, "sync_poll_failed", reason = e);
            }
            while let Ok(c) = self.ctl.try_recv() {
                match c {
                    Ctl::Stop => return std::mem::take(&mut self.links),
                    Ctl::Role(active) => self.set_role(active),
                }
            }
            more = self.receive(&mut buf);
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
            }
            if !self.active || self.cfg.many_to_many {
                let retry = match &self.wait {
                    Some(w) => w.asked.elapsed() >= BULK_RETRY,
                    None => false,
                };
                if self.alone() {
                    self.wait = None;
                    self.shared.bulk_complete.store(true, Ordering::Relaxed);
                    event!(
                        Level::Info,
                        "bulk_resync_done",
                        from = "none",
                        entries = 0,
                        chunks = 0
                    );
                } else if retry {
                    self.ask_bulk();
                }
            }
            self.collect_dumps();
            self.send_jobs();
        }
    }

    /// Active-active: no peer has said a word since this director started, a few seconds
    /// ago. It is the first director of its cluster (or the only one left): there is no table
    /// to learn, and waiting for one would keep it from ever calling itself synced.
    fn alone(&self) -> bool {
        self.cfg.many_to_many
            && self.wait.is_some()
            && self.shared.last_heard.load(Ordering::Relaxed) == 0
            && self.epoch.elapsed() >= HEARD_WITHIN
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
        if active && !self.cfg.many_to_many {
            self.wait = None;
        } else if !active {
            self.jobs.clear();
            self.dumps.clear();
            self.ask_bulk();
        }
    }

    fn header(&mut self, kind: Kind, bulk_id: u32, chunk: u32) -> Header {
        self.seq += 1;
        Header {
            kind,
            sync_id: self.cfg.sync_id,
            flags: if self.active { FLAG_ACTIVE } else { 0 },
            sender: self.boot.id,
            generation: self.boot.generation,
            seq: self.seq,
            bulk_id,
            chunk,
            count: 0,
            reply_to: None,
            echoes: self.echoes,
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
                Err(e) => event!(Level::Debug, "sync_send_failed", to = t, reason = e),
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
        // One request per destination, each naming where the answer must go (under the MAC).
        for i in 0..self.dests.len() {
            let to = self.dests[i];
            let mut h = self.header(Kind::BulkRequest, id, 0);
            h.reply_to = Some(self.reply_address(to));
            self.builder.start(&h);
            self.transmit(Some(to), 0);
        }
    }

    /// Our address as `to` sees it (the group's placeholder for a multicast group).
    fn reply_address(&self, to: SocketAddr) -> SocketAddr {
        if to.ip().is_multicast() {
            return TO_GROUP;
        }
        let port = self
            .sock
            .local_addr()
            .map_or(self.cfg.listen.port(), |a| a.port());
        let ip = if self.cfg.listen.ip().is_unspecified() {
            source_toward(to).unwrap_or(self.cfg.listen.ip())
        } else {
            self.cfg.listen.ip()
        };
        SocketAddr::new(ip, port)
    }

    /// Where a bulk request may be answered: its reply address when that is its source and
    /// a configured peer, the configured group for the group's placeholder; else nowhere.
    fn requester(&self, reply_to: Option<SocketAddr>, from: SocketAddr) -> Option<SocketAddr> {
        let r = reply_to?;
        if r == TO_GROUP {
            return self.group;
        }
        // Address and port: a received IPv6 source may carry a flow label or scope id that
        // neither the reply address nor the configuration has.
        let same = |a: &SocketAddr| a.ip() == from.ip() && a.port() == from.port();
        (same(&r) && self.cfg.peers.iter().any(same)).then_some(from)
    }

    /// A bulk request: every worker is asked for its table; [`Engine::collect_dumps`] turns
    /// the answers into a job without ever waiting for them.
    fn serve_bulk(&mut self, to: SocketAddr, bulk_id: u32) {
        let same = |t: SocketAddr, b: u32| t == to && b == bulk_id;
        if self.jobs.iter().any(|j| same(j.to, j.bulk_id))
            || self.dumps.iter().any(|d| same(d.to, d.bulk_id))
        {
            return;
        }
        self.served.retain(|(_, t)| t.elapsed() < BULK_MIN_INTERVAL);
        if self.served.iter().any(|(a, _)| *a == to) {
            event!(
                Level::Warn,
                "bulk_resync_deferred",
                to = to,
                reason = "asked again too soon"
            );
            return;
        }
        self.served.push((to, Instant::now()));
        self.jobs.retain(|j| j.to != to);
        self.dumps.retain(|d| d.to != to);
        let mut replies = Vec::new();
        for l in &self.links {
            let (tx, rx) = mpsc::sync_channel(1);
            if l.cmds.send(WorkerCommand::SyncDump(tx)).is_ok() {
                let _ = l.waker.wake();
                replies.push(rx);
            }
        }
        self.dumps.push(PendingDump {
            to,
            bulk_id,
            replies,
            entries: Vec::new(),
            since: Instant::now(),
        });
    }

    /// Takes the tables the workers have handed over; a dump whose workers all answered (or
    /// whose time is up) becomes a job.
    fn collect_dumps(&mut self) {
        let mut i = 0;
        while i < self.dumps.len() {
            let PendingDump {
                replies, entries, ..
            } = &mut self.dumps[i];
            replies.retain(|rx| match rx.try_recv() {
                Ok(mut v) => {
                    entries.append(&mut v);
                    false
                }
                Err(TryRecvError::Empty) => true,
                Err(TryRecvError::Disconnected) => false,
            });
            if !replies.is_empty() && self.dumps[i].since.elapsed() < DUMP_WAIT {
                i += 1;
                continue;
            }
            let d = self.dumps.remove(i);
            event!(
                Level::Info,
                "bulk_resync_serving",
                to = d.to,
                entries = d.entries.len(),
                workers_late = d.replies.len()
            );
            self.jobs.push(BulkJob {
                to: d.to,
                bulk_id: d.bulk_id,
                entries: d.entries,
                next: 0,
                chunk: 0,
            });
        }
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

    /// Reads at most [`RECEIVE_BURST`] datagrams; whether more may be waiting (the socket
    /// is edge-triggered: the loop comes back at once, without waiting for an event).
    fn receive(&mut self, buf: &mut [u8]) -> bool {
        let mut more = true;
        for _ in 0..RECEIVE_BURST {
            let (n, from) = match self.sock.recv_from(buf) {
                Ok(x) => x,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    more = false;
                    break;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    event!(Level::Warn, "sync_receive_failed", reason = e);
                    more = false;
                    break;
                }
            };
            self.datagram(&buf[..n], from);
        }
        self.wake_touched();
        more
    }

    fn reject(&mut self, why: Reject, from: SocketAddr) {
        // The status has four counters: a stale generation is a replay of an earlier run, an
        // unconfirmed datagram maybe one recorded before our restart; the log line names the
        // exact reason.
        let counter = match why {
            Reject::BadMac => &self.shared.rejected_mac,
            Reject::Replay | Reject::StaleGeneration | Reject::Unconfirmed => {
                &self.shared.rejected_replay
            }
            Reject::Truncated => &self.shared.rejected_truncated,
            Reject::BadMagic
            | Reject::Malformed
            | Reject::OldVersion
            | Reject::UnknownRequester
            | Reject::SenderClash => &self.shared.rejected_other,
        };
        let i = why.index();
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
        if h.sender == self.boot.id {
            if h.generation != self.boot.generation {
                return self.reject(Reject::SenderClash, from);
            }
            return; // our own, looped back
        }
        if h.sync_id != self.cfg.sync_id {
            return; // another cluster's, like IPVS
        }
        let echo = h.echoes.get(self.boot.id);
        let fresh = self
            .fresh
            .check_echo(h.sender, 0, h.generation, h.seq, echo);
        if let Some(e) = self.fresh.take_persist_error() {
            event!(Level::Error, "sync_peer_generation_store_failed", error = e);
        }
        if fresh.is_ok() {
            self.echoes.note(h.sender, h.generation);
        }
        match fresh {
            Err(Stale::OldGeneration) => return self.reject(Reject::StaleGeneration, from),
            Err(Stale::Replay) => return self.reject(Reject::Replay, from),
            Err(Stale::Unconfirmed) => return self.reject(Reject::Unconfirmed, from),
            Ok(f) if f.new_generation => event!(
                Level::Info,
                "sync_peer_generation",
                from = from,
                sender = format!("{:016x}", h.sender),
                generation = h.generation,
                previous = f
                    .previous
                    .map_or_else(|| "none".to_owned(), |g| g.to_string())
            ),
            Ok(_) => {}
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
                    match self.requester(h.reply_to, from) {
                        Some(to) => self.serve_bulk(to, h.bulk_id),
                        None => self.reject(Reject::UnknownRequester, from),
                    }
                }
            }
            Kind::Updates | Kind::BulkChunk => {
                // Active/standby: the active director's table is the reference, it takes
                // nothing. Active-active: every director takes every peer's flows.
                if self.active && !self.cfg.many_to_many {
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
                    w.chunks.insert((h.sender, h.chunk));
                    w.entries += applied;
                }
            }
            Kind::BulkEnd => {
                if self.active && !self.cfg.many_to_many {
                    return;
                }
                let Some(w) = &self.wait else { return };
                if w.bulk_id != h.bulk_id {
                    return;
                }
                // Active-active: the first peer whose answer is whole completes the resync
                // (each has every flow, by sync); the others' chunks are applied as they come.
                let total = h.chunk;
                let have = (0..total)
                    .filter(|c| w.chunks.contains(&(h.sender, *c)))
                    .count();
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
        if n == 0 {
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
    use lvs_conntrack::{Addr, Endpoint, Forward, Proto, State};

    const KEY: &[u8] = b"unit test key for sync";

    fn key() -> AuthKey {
        AuthKey::from_bytes(KEY).unwrap()
    }

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

    fn state_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("lvs-sync-state-{}-{name}", std::process::id()))
    }

    /// A state directory of its own for each engine of each test.
    fn state_dir(name: &str) -> std::path::PathBuf {
        let d = state_path(name);
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Removes the state directories of a test when it ends, failed or not.
    struct RemoveOnDrop(&'static [&'static str]);

    impl Drop for RemoveOnDrop {
        fn drop(&mut self) {
            for name in self.0 {
                let _ = std::fs::remove_dir_all(state_path(name));
            }
        }
    }

    fn config(listen: SocketAddr, peer: SocketAddr, state: &str) -> SyncConfig {
        SyncConfig {
            listen,
            peers: vec![peer],
            multicast: None,
            interface: None,
            key_file: "unused".into(),
            sync_id: 0,
            refresh_secs: 30,
            flush_ms: 5,
            ring_size: 1 << 16,
            state_dir: state_dir(state),
            autostart: true,
            ttl: 1,
            maxlen: 0,
            many_to_many: false,
        }
    }

    /// A fake director on loopback.
    struct Fake {
        sock: std::net::UdpSocket,
        seq: u64,
    }

    impl Fake {
        fn new() -> Fake {
            let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            Fake { sock, seq: 0 }
        }

        fn addr(&self) -> SocketAddr {
            self.sock.local_addr().unwrap()
        }

        /// The next datagram of `kind` (others skipped); `None` when none comes in `within`.
        fn recv_kind(&self, kind: Kind, within: Duration) -> Option<(Header, SocketAddr)> {
            let mut buf = [0u8; 2048];
            let end = Instant::now() + within;
            while Instant::now() < end {
                self.sock
                    .set_read_timeout(Some(
                        end.saturating_duration_since(Instant::now())
                            .max(Duration::from_millis(1)),
                    ))
                    .unwrap();
                let Ok((n, from)) = self.sock.recv_from(&mut buf) else {
                    continue;
                };
                let o = wire::open(&buf[..n], &key()).expect("authentic");
                if o.header.kind == kind {
                    return Some((o.header, from));
                }
            }
            None
        }

        fn recv(&self) -> (Header, SocketAddr) {
            self.recv_kind(Kind::BulkRequest, Duration::from_secs(10))
                .expect("a bulk request in time")
        }

        fn send_header(&mut self, to: SocketAddr, h: Header, recs: &[u16]) {
            self.seq += 1;
            let mut b = Builder::default();
            b.start(&Header { seq: self.seq, ..h });
            for &p in recs {
                b.push(&entry(p));
            }
            self.sock.send_to(b.seal(&key()), to).unwrap();
        }

        fn header(kind: Kind, bulk_id: u32, chunk: u32) -> Header {
            Header {
                kind,
                sync_id: 0,
                flags: FLAG_ACTIVE,
                sender: 0x77,
                generation: 5,
                seq: 0,
                bulk_id,
                chunk,
                count: 0,
                reply_to: None,
                echoes: Echoes::default(),
            }
        }

        fn send(&mut self, to: SocketAddr, kind: Kind, bulk_id: u32, chunk: u32, recs: &[u16]) {
            self.send_header(to, Fake::header(kind, bulk_id, chunk), recs);
        }
    }

    /// An engine whose workers' command channel is `cmds` (answer dumps, or not at all).
    fn engine(
        cfg: SyncConfig,
        workers: usize,
        cmds: &Sender<WorkerCommand>,
        active: bool,
    ) -> (SyncEngine, Vec<super::super::WorkerSync>) {
        let shared = Arc::new(SyncShared::default());
        let (w, sides) = super::super::rings(workers, 16, &cfg, &shared);
        let poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), Token(0)).unwrap());
        let links = sides
            .into_iter()
            .map(|side| WorkerLink {
                side,
                cmds: cmds.clone(),
                waker: Arc::clone(&waker),
            })
            .collect();
        (
            SyncEngine::start(cfg, key(), links, shared, active).unwrap(),
            w,
        )
    }

    /// Active-active: an active director asks its peers for their flows when it starts, takes
    /// their updates (standby-only before), and sends its own. Two peers answer one bulk
    /// request, each numbering its chunks from 0: the first whole answer completes it.
    #[test]
    fn many_to_many_sends_takes_and_resyncs_while_active() {
        let _rm = RemoveOnDrop(&["m2m"]);
        let mut fake = Fake::new();
        let mut cfg = config("127.0.0.1:0".parse().unwrap(), fake.addr(), "m2m");
        cfg.many_to_many = true;
        let (cmd_tx, _cmd_rx) = mpsc::channel();
        let (engine, mut workers) = engine(cfg, 1, &cmd_tx, true);
        let (ask, me) = fake.recv();
        let other = Header {
            sender: 0x78,
            ..Fake::header(Kind::BulkChunk, ask.bulk_id, 0)
        };
        // The other peer's chunk 0 and end (of 2 chunks): incomplete on its own ...
        fake.send_header(me, other, &[7]);
        fake.send_header(
            me,
            Header {
                kind: Kind::BulkEnd,
                chunk: 2,
                ..other
            },
            &[],
        );
        let (again, _) = fake.recv();
        // ... and not completed by this peer's chunks of the same numbers.
        fake.send(me, Kind::BulkChunk, again.bulk_id, 0, &[1]);
        fake.send(me, Kind::BulkChunk, again.bulk_id, 1, &[2]);
        fake.send(me, Kind::BulkEnd, again.bulk_id, 2, &[]);
        fake.send(me, Kind::Updates, 0, 0, &[3]);
        lvs_testsupport::wait_for("bulk complete", Duration::from_secs(10), || {
            engine.status().bulk_complete.then_some(())
        });
        let st = engine.status();
        assert!(st.active && st.active_active && st.synced);
        let mut got: Vec<u16> = Vec::new();
        lvs_testsupport::wait_for("entries", Duration::from_secs(10), || {
            got.extend(std::iter::from_fn(|| workers[0].inbound.pop()).map(|e| e.client.port));
            (got.len() >= 4).then_some(())
        });
        got.sort_unstable();
        assert_eq!(got, vec![1, 2, 3, 7]);
        // Its own connections go out as ever.
        assert!(workers[0].send(entry(40)));
        let (h, _) = fake
            .recv_kind(Kind::Updates, Duration::from_secs(10))
            .expect("an update");
        assert_eq!(h.flags & FLAG_ACTIVE, FLAG_ACTIVE);
    }

    /// Active-active, the first director of its cluster: no peer answers; it stops asking and
    /// calls itself synced (nothing to learn) a few seconds after its start.
    #[test]
    fn many_to_many_alone_is_synced_after_a_while() {
        let _rm = RemoveOnDrop(&["m2m-alone"]);
        let fake = Fake::new();
        let mut cfg = config("127.0.0.1:0".parse().unwrap(), fake.addr(), "m2m-alone");
        cfg.many_to_many = true;
        let (cmd_tx, _cmd_rx) = mpsc::channel();
        let (engine, _workers) = engine(cfg, 1, &cmd_tx, true);
        fake.recv();
        assert!(!engine.status().synced, "not before it gave its peers time");
        lvs_testsupport::wait_for("synced alone", Duration::from_secs(10), || {
            engine.status().synced.then_some(())
        });
        assert!(engine.status().bulk_complete);
        // It stopped asking (what it sent before is still queued here).
        while fake
            .recv_kind(Kind::BulkRequest, Duration::from_millis(200))
            .is_some()
        {}
        assert!(
            fake.recv_kind(Kind::BulkRequest, BULK_RETRY * 2).is_none(),
            "asked again"
        );
    }

    #[test]
    fn a_standby_asks_again_when_a_bulk_chunk_is_lost() {
        let _rm = RemoveOnDrop(&["lost"]);
        let mut fake = Fake::new();
        let cfg = config("127.0.0.1:0".parse().unwrap(), fake.addr(), "lost");
        let (cmd_tx, _cmd_rx) = mpsc::channel();
        let (mut engine, mut workers) = engine(cfg, 1, &cmd_tx, false);

        let (first, standby) = fake.recv();
        assert_eq!(
            first.reply_to,
            Some(standby),
            "the request names its sender"
        );
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
        lvs_testsupport::wait_for("engine.status().synced", Duration::from_secs(10), || {
            (engine.status().synced).then_some(())
        });
        let st = engine.status();
        assert!(st.bulk_complete && !st.active);
        assert_eq!(st.bulk_resyncs, 1);
        let mut got: Vec<u16> = std::iter::from_fn(|| workers[0].inbound.pop())
            .map(|e| e.client.port)
            .collect();
        got.sort_unstable();
        got.dedup();
        assert_eq!(got, vec![1, 2, 3, 4, 5]);

        // The same sender's earlier generation: refused, and its records never reach a worker.
        let st = engine.status();
        let old = Header {
            generation: 4,
            ..Fake::header(Kind::Updates, 0, 0)
        };
        fake.send_header(standby, old, &[9]);
        lvs_testsupport::wait_for(
            "engine.status().rejected_replay != st.rejected_replay",
            Duration::from_secs(10),
            || (engine.status().rejected_replay != st.rejected_replay).then_some(()),
        );
        assert!(
            workers[0].inbound.pop().is_none(),
            "a stale entry was applied"
        );
        engine.stop();
    }

    /// A standby restarts: the active director's generation is known to it (`sync.peers`),
    /// but not how far its sequence got. Datagrams of that generation are refused until one
    /// echoes the standby's new generation, which its bulk request names.
    #[test]
    fn a_restarted_standby_takes_a_known_generation_only_with_its_echo() {
        let _rm = RemoveOnDrop(&["restart"]);
        let mut fake = Fake::new();
        let cfg = config("127.0.0.1:0".parse().unwrap(), fake.addr(), "restart");
        let (cmd_tx, _cmd_rx) = mpsc::channel();
        let ports = |workers: &mut Vec<super::super::WorkerSync>, want: &[u16]| {
            let mut got = Vec::new();
            let what = format!("the entries of client ports {want:?}");
            lvs_testsupport::wait_for(&what, Duration::from_secs(10), || {
                while let Some(e) = workers[0].inbound.pop() {
                    got.push(e.client.port);
                }
                got.sort_unstable();
                (got == want).then_some(())
            });
        };

        // The first run hears the fake's generation 5: new to it, no echo needed.
        let (mut standby, mut workers) = engine(cfg.clone(), 1, &cmd_tx, false);
        let (first, addr) = fake.recv();
        fake.send(addr, Kind::Updates, 0, 0, &[1]);
        ports(&mut workers, &[1]);
        standby.stop();
        drop((standby, workers));

        // The second run, with the same state directory: a new generation, which its bulk
        // request carries (those of the first run may still be queued at the fake).
        let (mut standby, mut workers) = engine(cfg, 1, &cmd_tx, false);
        let (request, addr) = loop {
            let (h, from) = fake.recv();
            if h.generation != first.generation {
                break (h, from);
            }
        };
        assert_eq!(request.sender, first.sender);
        assert!(request.generation > first.generation);
        // Generation 5 as recorded before the restart: echoing nothing, or the earlier run.
        for echo in [None, Some(first.generation)] {
            let mut h = Fake::header(Kind::Updates, 0, 0);
            if let Some(g) = echo {
                h.echoes.note(0x99, 1);
                h.echoes.note(first.sender, g);
            }
            fake.send_header(addr, h, &[2]);
        }
        lvs_testsupport::wait_for(
            "standby.status().rejected_replay >= 2",
            Duration::from_secs(10),
            || (standby.status().rejected_replay >= 2).then_some(()),
        );
        assert!(workers[0].inbound.pop().is_none(), "an unconfirmed entry");
        assert_eq!(standby.status().received, 0);
        // The live director echoes the new generation: accepted, and so is what follows.
        let mut h = Fake::header(Kind::Updates, 0, 0);
        h.echoes.note(request.sender, request.generation);
        fake.send_header(addr, h, &[3]);
        fake.send(addr, Kind::Updates, 0, 0, &[4]);
        ports(&mut workers, &[3, 4]);
        let st = standby.status();
        assert_eq!((st.rejected_replay, st.received), (2, 2), "{st:?}");
        standby.stop();
    }

    /// The other way round: the active director restarts. A standby's bulk request of its
    /// known generation is answered only once it echoes the active's new generation.
    #[test]
    fn a_restarted_active_answers_a_known_standby_once_it_echoes() {
        let _rm = RemoveOnDrop(&["restart-active"]);
        let mut fake = Fake::new();
        let listen = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = listen.local_addr().unwrap();
        drop(listen);
        let cfg = config(addr, fake.addr(), "restart-active");
        let (cmd_tx, cmd_rx) = mpsc::channel::<WorkerCommand>();
        std::thread::spawn(move || {
            while let Ok(c) = cmd_rx.recv() {
                if let WorkerCommand::SyncDump(reply) = c {
                    let _ = reply.send(vec![entry(1)]);
                }
            }
        });
        let me = fake.addr();
        // A bulk request, echoing `echo` for other directors than the active one.
        let request = |bulk_id: u32, echo: Option<u64>| {
            let mut h = Header {
                reply_to: Some(me),
                flags: 0,
                ..Fake::header(Kind::BulkRequest, bulk_id, 0)
            };
            if let Some(g) = echo {
                h.echoes.note(0x1234, 1);
                h.echoes.note(u64::MAX, g);
            }
            h
        };
        let (mut active, _w) = engine(cfg.clone(), 1, &cmd_tx, true);
        let first = fake
            .recv_kind(Kind::Keepalive, Duration::from_secs(10))
            .unwrap()
            .0;
        fake.send_header(addr, request(1, None), &[]);
        let end = fake.recv_kind(Kind::BulkEnd, Duration::from_secs(10));
        assert_eq!(end.map(|(h, _)| h.bulk_id), Some(1), "first contact");
        active.stop();
        drop((active, _w));

        let (mut active, _w) = engine(cfg, 1, &cmd_tx, true);
        let now = loop {
            let (h, _) = fake
                .recv_kind(Kind::Keepalive, Duration::from_secs(10))
                .unwrap();
            if h.generation != first.generation {
                break h;
            }
        };
        // Echoing the right generation for another id, or the earlier run's: refused.
        assert_ne!(now.sender, u64::MAX);
        let mine = |g: u64| {
            let mut h = request(3, None);
            h.echoes.note(now.sender, g);
            h
        };
        fake.send_header(addr, request(2, Some(now.generation)), &[]);
        fake.send_header(addr, mine(first.generation), &[]);
        lvs_testsupport::wait_for(
            "active.status().rejected_replay >= 2",
            Duration::from_secs(10),
            || (active.status().rejected_replay >= 2).then_some(()),
        );
        assert!(
            fake.recv_kind(Kind::BulkEnd, Duration::from_millis(300))
                .is_none()
        );
        fake.send_header(addr, mine(now.generation), &[]);
        let end = fake.recv_kind(Kind::BulkEnd, Duration::from_secs(10));
        assert_eq!(end.map(|(h, _)| h.bulk_id), Some(3));
        active.stop();
    }

    /// Workers that never hand over their tables: the sync thread goes on sending updates
    /// meanwhile (it used to wait up to 2 s per worker).
    #[test]
    fn a_bulk_request_never_blocks_the_sync_thread() {
        let _rm = RemoveOnDrop(&["block"]);
        let mut fake = Fake::new();
        let listen = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = listen.local_addr().unwrap();
        drop(listen);
        let (cmd_tx, cmd_rx) = mpsc::channel::<WorkerCommand>();
        let (mut active, mut workers) =
            engine(config(addr, fake.addr(), "block"), 2, &cmd_tx, true);
        let request = Header {
            reply_to: Some(fake.addr()),
            ..Fake::header(Kind::BulkRequest, 1, 0)
        };
        fake.send_header(addr, request, &[]);
        // Both workers were asked (and will never answer).
        let asked = [
            cmd_rx.recv_timeout(Duration::from_secs(10)),
            cmd_rx.recv_timeout(Duration::from_secs(10)),
        ];
        assert!(
            asked
                .iter()
                .all(|c| matches!(c, Ok(WorkerCommand::SyncDump(_))))
        );
        let t = Instant::now();
        assert!(workers[0].send(entry(4242)));
        let got = fake.recv_kind(Kind::Updates, Duration::from_secs(10));
        let took = t.elapsed();
        assert!(got.is_some(), "no update at all");
        assert!(
            took < Duration::from_millis(500),
            "an update waited {took:?} behind the bulk request"
        );
        // The dump's time is up: the bulk goes out with what there is (nothing).
        let end = fake.recv_kind(Kind::BulkEnd, Duration::from_secs(10));
        assert_eq!(end.map(|(h, _)| h.chunk), Some(0));
        drop(asked);
        active.stop();
    }

    /// A bulk request whose reply address is not its source, or whose source is not a
    /// configured peer, is not answered (and is counted).
    #[test]
    fn a_bulk_request_from_elsewhere_is_not_answered() {
        let _rm = RemoveOnDrop(&["elsewhere"]);
        let peer = Fake::new();
        let mut stranger = Fake::new();
        let listen = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = listen.local_addr().unwrap();
        drop(listen);
        let (cmd_tx, cmd_rx) = mpsc::channel::<WorkerCommand>();
        std::thread::spawn(move || {
            while let Ok(c) = cmd_rx.recv() {
                if let WorkerCommand::SyncDump(reply) = c {
                    let _ = reply.send(vec![entry(1)]);
                }
            }
        });
        let (mut active, _w) = engine(config(addr, peer.addr(), "elsewhere"), 1, &cmd_tx, true);
        // From a stranger, naming itself; from a stranger, naming the configured peer.
        for (i, reply_to) in [stranger.addr(), peer.addr()].into_iter().enumerate() {
            let h = Header {
                reply_to: Some(reply_to),
                ..Fake::header(Kind::BulkRequest, 10 + u32::try_from(i).unwrap(), 0)
            };
            stranger.send_header(addr, h, &[]);
        }
        lvs_testsupport::wait_for(
            "active.status().rejected_other >= 2",
            Duration::from_secs(10),
            || (active.status().rejected_other >= 2).then_some(()),
        );
        assert!(
            stranger
                .recv_kind(Kind::BulkEnd, Duration::from_millis(300))
                .is_none()
        );
        assert!(
            peer.recv_kind(Kind::BulkEnd, Duration::from_millis(300))
                .is_none()
        );
        // The configured peer, naming itself: answered.
        let mut peer = peer;
        let h = Header {
            reply_to: Some(peer.addr()),
            sender: 0x78,
            ..Fake::header(Kind::BulkRequest, 12, 0)
        };
        peer.send_header(addr, h, &[]);
        let end = peer.recv_kind(Kind::BulkEnd, Duration::from_secs(10));
        assert_eq!(end.map(|(h, _)| h.bulk_id), Some(12));
        active.stop();
    }

    /// A director sending under our sender id (its state directory copied from ours) is
    /// refused and counted, not taken silently for our own looped-back datagrams.
    #[test]
    fn another_director_with_our_sender_id_is_refused() {
        let _rm = RemoveOnDrop(&["clash"]);
        let mut fake = Fake::new();
        let cfg = config("127.0.0.1:0".parse().unwrap(), fake.addr(), "clash");
        let file = cfg.generation_file();
        let (cmd_tx, _cmd_rx) = mpsc::channel();
        let (mut standby, _w) = engine(cfg, 1, &cmd_tx, false);
        let (_, addr) = fake.recv();
        let text = std::fs::read_to_string(file).unwrap();
        let w: Vec<&str> = text.split_whitespace().collect();
        let id = u64::from_str_radix(w[1], 16).unwrap();
        let generation: u64 = w[3].parse().unwrap();
        let clash = Header {
            sender: id,
            generation: generation - 1,
            ..Fake::header(Kind::Keepalive, 0, 0)
        };
        fake.send_header(addr, clash, &[]);
        lvs_testsupport::wait_for(
            "standby.status().rejected_other != 0",
            Duration::from_secs(10),
            || (standby.status().rejected_other != 0).then_some(()),
        );
        standby.stop();
    }

    /// `n` IPv6 entries of 2001:db8:c::/48 clients (NAT, DR and TUN), and one /64 template.
    fn entries6(n: u16) -> Vec<SyncEntry> {
        let a = |net: u8, last: u16| {
            let [hi, lo] = last.to_be_bytes();
            Addr::v6([0x20, 1, 0xd, 0xb8, 0, net, 0, 0, 0, 0, 0, 0, 0, 0, hi, lo])
        };
        let forwards = [Forward::Nat, Forward::DirectRoute, Forward::Tunnel];
        let mut v: Vec<SyncEntry> = (0..n)
            .map(|i| SyncEntry {
                proto: Proto::Tcp,
                client: Endpoint::new(a(0xc, i), 40_000 + i),
                virt: Endpoint::new(a(0xa, 1), 80),
                dest: Endpoint::new(a(0xb, 11 + i % 3), 80),
                forward: forwards[usize::from(i % 3)],
                state: State::Established,
                flags: 0,
                timeout_ms: 900_000,
                persist_secs: 0,
            })
            .collect();
        v.push(SyncEntry {
            client: Endpoint::new(a(0xc, 0), 0),
            state: State::None,
            flags: SyncEntry::TEMPLATE_FLAG,
            timeout_ms: 300_000,
            persist_secs: 300,
            ..v[0]
        });
        v
    }

    /// Runs `f` on a thread in network namespace `ns` (`None`: this one). Sockets keep the
    /// namespace they were opened in, so an engine started there stays there.
    fn in_netns<T: Send>(ns: Option<&str>, f: impl FnOnce() -> T + Send) -> T {
        let Some(ns) = ns else { return f() };
        let file = std::fs::File::open(format!("/run/netns/{ns}")).expect("open netns");
        std::thread::scope(|s| {
            s.spawn(|| {
                use std::os::fd::AsRawFd;
                // SAFETY: setns on a valid namespace descriptor changes only this thread's
                // network namespace; the thread ends with the scope.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("thread in netns")
        })
    }

    /// Pops what arrives at `w` until every entry of `want` has (in any order, some maybe
    /// twice; besides, only entries of `also`); the deadline is generous for a busy machine.
    fn wait_entries(
        w: &mut super::super::WorkerSync,
        want: &[SyncEntry],
        also: &[SyncEntry],
        what: &str,
    ) {
        let mut got: Vec<SyncEntry> = Vec::new();
        lvs_testsupport::wait_for(what, Duration::from_secs(20), || {
            while let Some(e) = w.inbound.pop() {
                got.push(e);
            }
            want.iter().all(|e| got.contains(e)).then_some(())
        });
        let other: Vec<_> = got
            .iter()
            .filter(|e| !want.contains(e) && !also.contains(e))
            .collect();
        assert!(
            other.is_empty(),
            "{what}: something else arrived: {other:?}"
        );
    }

    /// An active and a standby engine (in namespaces `ns`, or here): the standby's bulk
    /// resync brings the active's table `table`, then the active's worker queues `updates`,
    /// which arrive as they were sent.
    fn sync_pair(
        ns: [Option<&str>; 2],
        cfgs: [SyncConfig; 2],
        table: &[SyncEntry],
        updates: &[SyncEntry],
    ) {
        let [a, b] = cfgs;
        let (cmd_tx, cmd_rx) = mpsc::channel::<WorkerCommand>();
        let dump = table.to_vec();
        std::thread::spawn(move || {
            while let Ok(c) = cmd_rx.recv() {
                if let WorkerCommand::SyncDump(reply) = c {
                    let _ = reply.send(dump.clone());
                }
            }
        });
        let (mut active, mut aw) = in_netns(ns[0], || engine(a, 1, &cmd_tx, true));
        let (cmd2, _rx2) = mpsc::channel::<WorkerCommand>();
        let (mut standby, mut bw) = in_netns(ns[1], || engine(b, 1, &cmd2, false));
        wait_entries(&mut bw[0], table, &[], "the bulk resync's entries");
        lvs_testsupport::wait_for("the bulk resync complete", Duration::from_secs(20), || {
            standby.status().bulk_complete.then_some(())
        });
        for e in updates {
            assert!(aw[0].send(*e));
        }
        // A chunk lost on a busy machine is asked for again: the table may come twice.
        wait_entries(&mut bw[0], updates, table, "the updates");
        let st = standby.status();
        assert_eq!(
            (
                st.rejected_mac,
                st.rejected_other,
                st.rejected_truncated,
                st.dropped
            ),
            (0, 0, 0, 0),
            "{st:?}"
        );
        standby.stop();
        active.stop();
    }

    /// Ports two engines can listen on (free now, on `ip`).
    fn two_ports(ip: &str) -> [SocketAddr; 2] {
        let s1 = std::net::UdpSocket::bind((ip, 0)).unwrap();
        let s2 = std::net::UdpSocket::bind((ip, 0)).unwrap();
        [s1.local_addr().unwrap(), s2.local_addr().unwrap()]
    }

    /// Connection sync over IPv6 unicast (on ::1): IPv6 entries, templates, every
    /// forwarding method, a bulk resync of several datagrams and then updates.
    #[test]
    fn ipv6_entries_sync_over_ipv6_unicast() {
        let _rm = RemoveOnDrop(&["v6-a", "v6-b"]);
        let [a, b] = two_ports("::1");
        let table = entries6(50);
        let updates: Vec<SyncEntry> = entries6(5)
            .into_iter()
            .map(|e| SyncEntry {
                state: State::FinWait,
                timeout_ms: 120_000,
                ..e
            })
            .collect();
        sync_pair(
            [None, None],
            [config(a, b, "v6-a"), config(b, a, "v6-b")],
            &table,
            &updates,
        );
    }

    /// IPv6 entries over an IPv4 socket, beside IPv4 ones: the entry's family is its own,
    /// not the transport's.
    #[test]
    fn ipv6_entries_sync_over_ipv4_too() {
        let _rm = RemoveOnDrop(&["v4v6-a", "v4v6-b"]);
        let [a, b] = two_ports("127.0.0.1");
        let mut table = entries6(30);
        table.extend((1..=30).map(entry));
        let updates = [entries6(1)[0], entry(7)];
        sync_pair(
            [None, None],
            [config(a, b, "v4v6-a"), config(b, a, "v4v6-b")],
            &table,
            &updates,
        );
    }

    /// Two namespaces joined by a veth pair, a node on each; removed when dropped.
    struct VethPair(String);

    impl VethPair {
        fn new(name: &str) -> VethPair {
            let base = format!("lvs-s6{}-{name}", std::process::id());
            let pair = VethPair(base.clone());
            let ip = |args: &str| {
                let out = std::process::Command::new("ip")
                    .args(args.split_whitespace())
                    .output()
                    .expect("ip");
                assert!(out.status.success(), "ip {args}: {out:?}");
            };
            for side in ["a", "b"] {
                ip(&format!("netns add {base}-{side}"));
                // The link-local address must be usable at once (no duplicate detection).
                let out = std::process::Command::new("ip")
                    .args(["netns", "exec", &format!("{base}-{side}"), "sysctl", "-qw"])
                    .arg("net.ipv6.conf.default.accept_dad=0")
                    .output()
                    .expect("sysctl");
                assert!(out.status.success(), "{out:?}");
            }
            ip(&format!(
                "link add va netns {base}-a type veth peer name vb netns {base}-b"
            ));
            for (side, dev) in [("a", "va"), ("b", "vb")] {
                ip(&format!("-n {base}-{side} link set lo up"));
                ip(&format!("-n {base}-{side} link set {dev} up"));
            }
            for (side, dev) in [("a", "va"), ("b", "vb")] {
                let ns = format!("{base}-{side}");
                lvs_testsupport::wait_for(
                    &format!("a usable link-local address on {dev}"),
                    Duration::from_secs(20),
                    || {
                        let out = std::process::Command::new("ip")
                            .args(["-n", &ns, "-6", "addr", "show", "dev", dev])
                            .output()
                            .ok()?;
                        let text = String::from_utf8_lossy(&out.stdout).into_owned();
                        (text.contains("fe80::") && !text.contains("tentative")).then_some(())
                    },
                );
            }
            pair
        }

        fn ns(&self, side: &str) -> String {
            format!("{}-{side}", self.0)
        }
    }

    impl Drop for VethPair {
        fn drop(&mut self) {
            for side in ["a", "b"] {
                let _ = std::process::Command::new("ip")
                    .args(["netns", "del", &self.ns(side)])
                    .output();
            }
        }
    }

    /// Connection sync over an IPv6 multicast group of link scope (ipvsadm's
    /// `--mcast-group ff02::...` with `--mcast-interface`), between two namespaces: the
    /// standby's bulk request goes to the group, and so do the table and the updates.
    #[test]
    fn ipv6_entries_sync_over_an_ipv6_multicast_group() {
        let _rm = RemoveOnDrop(&["mc6-a", "mc6-b"]);
        let pair = VethPair::new("mc");
        let port = two_ports("::1")[0].port();
        let group: SocketAddr = format!("[ff02::51]:{port}").parse().unwrap();
        let cfg = |dev: &str, state: &str| SyncConfig {
            peers: vec![],
            multicast: Some(group),
            interface: Some(dev.into()),
            ..config(SocketAddr::from(([0u16; 8], port)), group, state)
        };
        let (a, b) = (cfg("va", "mc6-a"), cfg("vb", "mc6-b"));
        assert_eq!(a.validate(), Ok(()));
        let mut table = entries6(40);
        table.push(entry(1));
        let updates = entries6(3);
        sync_pair(
            [Some(&pair.ns("a")), Some(&pair.ns("b"))],
            [a, b],
            &table,
            &updates,
        );
    }

    /// Two engines on loopback; the active's worker answers the dump with `n` entries, the
    /// standby's worker ring is drained by a thread: the whole table and then `n` updates
    /// must arrive. It also prints the figures of docs/PERFORMANCE.md, measured with
    /// `LVS_SYNC_FIGURES_N=200000 cargo test -p lvs-director --release --lib
    /// bulk_resync_figures -- --nocapture` (20,000 entries by default, to stay quick in debug).
    #[test]
    fn bulk_resync_figures() {
        let _rm = RemoveOnDrop(&["fig-a", "fig-b"]);
        let n: usize = std::env::var("LVS_SYNC_FIGURES_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20_000);
        let a_port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b_port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let (a_addr, b_addr) = (a_port.local_addr().unwrap(), b_port.local_addr().unwrap());
        drop((a_port, b_port));
        let cfg = |listen: SocketAddr, peer: SocketAddr, state: &str| SyncConfig {
            ring_size: 1 << 20,
            ..config(listen, peer, state)
        };
        let poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), Token(0)).unwrap());
        // The active side: one worker whose dump is n entries.
        let a_shared = Arc::new(SyncShared::default());
        let (aw_all, a_sides) =
            super::super::rings(1, 16, &cfg(a_addr, b_addr, "fig-a"), &a_shared);
        let (cmd_tx, cmd_rx) = mpsc::channel::<WorkerCommand>();
        std::thread::spawn(move || {
            while let Ok(c) = cmd_rx.recv() {
                if let WorkerCommand::SyncDump(reply) = c {
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
            cfg(a_addr, b_addr, "fig-a"),
            key(),
            links,
            Arc::clone(&a_shared),
            true,
        )
        .unwrap();
        // The standby side: a thread empties its worker ring.
        let b_shared = Arc::new(SyncShared::default());
        let (mut bw, b_sides) =
            super::super::rings(1, 16, &cfg(b_addr, a_addr, "fig-b"), &b_shared);
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
        let (cmd2, _rx2) = mpsc::channel::<WorkerCommand>();
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
            cfg(b_addr, a_addr, "fig-b"),
            key(),
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
