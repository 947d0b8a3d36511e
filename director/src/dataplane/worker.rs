//! One worker thread: its rings (one per interface, its member of each fanout group), its
//! transmit socket and its own connection table. Nothing here is shared with another worker
//! but read-only snapshots and single-writer counters, so the packet path takes no lock (the
//! one exception: choosing a real server for a new connection, see `ServiceEntry::sched`).
//!
//! The worker is generic over the packet I/O backend (`lvs_afpacket`'s [`RxQueue`] and
//! [`TxQueue`]), monomorphised for the one in use: AF_PACKET today, another backend is a new
//! implementation of the two traits. No call on the packet path goes through a vtable.

use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use lvs_afpacket::{FrameMeta, RxBatch, RxQueue, TxBatch, TxQueue};
use lvs_conntrack::{
    ConnId, ConnInfo, Dir, Endpoint, FlowKey, Forward, NewConn, NewTemplate, Proto, Table,
    TcpFlags, TemplateKey,
};
use lvs_netinfo::{NextHopLookup, Resolved};
use lvs_packet::{L4Proto, MacPair, Packet, RewriteError, TunError, TunParams};
use lvs_sched_abi::{DEST_F_OVERLOADED, Flow as SchedFlow};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use super::snapshot::{ServiceEntry, Snapshot, template_addr};
use super::stats::{Loss, WorkerStats};

/// What the control thread tells a worker. Commands arrive in order, so a real-server id is
/// never reused before every worker has expired the old server's connections.
#[derive(Debug)]
pub enum WorkerCommand {
    Snapshot(Arc<Snapshot>),
    ExpireDest(u32),
    Timeouts {
        tcp: u32,
        tcp_fin: u32,
        udp: u32,
    },
    ListConns(SyncSender<Vec<ConnInfo>>),
    /// Every entry as connection sync sends it (a bulk resync).
    SyncDump(SyncSender<Vec<lvs_conntrack::SyncEntry>>),
    Clear,
    Stop,
    /// An upgrade: answer with every entry, then stop (no flow changes after the dump).
    HandOver(SyncSender<Vec<lvs_conntrack::SyncEntry>>),
    /// After an upgrade: the previous binary's entries for this worker; answers how many
    /// went in.
    Import(Vec<lvs_conntrack::SyncEntry>, SyncSender<usize>),
}

pub const WAKER: Token = Token(usize::MAX - 1);

/// Everything a worker owns: `R` is its receive queue (one per interface), `T` its transmit
/// queue.
#[allow(missing_debug_implementations)] // rings and sockets: nothing useful to print
pub struct ForwardingWorker<R, T> {
    pub index: usize,
    pub rings: Vec<R>,
    pub tx: T,
    pub table: Table,
    pub snap: Arc<Snapshot>,
    pub stats: Arc<WorkerStats>,
    pub cmds: Receiver<WorkerCommand>,
    /// Next hops whose MAC is missing, for the control thread to resolve. Bounded: when full,
    /// the control thread is already busy resolving.
    pub misses: SyncSender<IpAddr>,
    pub poll: Poll,
    pub epoch: Instant,
    /// Connection sync, when configured.
    pub sync: Option<crate::sync::WorkerSync>,
    /// The ICMP errors this worker generates itself.
    pub icmp_limit: super::icmp_limit::TokenBucket,
}

impl<R: RxQueue, T: TxQueue> ForwardingWorker<R, T> {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Register the rings with this worker's poll; `waker` wakes it for commands.
    pub fn register(&mut self) -> std::io::Result<()> {
        for (i, ring) in self.rings.iter().enumerate() {
            let fd = ring.as_fd().as_raw_fd();
            self.poll
                .registry()
                .register(&mut SourceFd(&fd), Token(i), Interest::READABLE)?;
        }
        Ok(())
    }

    pub fn waker(&self) -> std::io::Result<Waker> {
        Waker::new(self.poll.registry(), WAKER)
    }

    /// The worker's loop, until `WorkerCommand::Stop`.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(64);
        let mut ip_id: u16 = u16::try_from(self.index).unwrap_or(0).wrapping_mul(7919);
        loop {
            let now = self.now_ms();
            let wait = self
                .table
                .next_wakeup()
                .map_or(100, |t| t.saturating_sub(now).min(100));
            if let Err(e) = self
                .poll
                .poll(&mut events, Some(Duration::from_millis(wait)))
                && e.kind() != std::io::ErrorKind::Interrupted
            {
                lvs_common::event!(
                    log::Level::Error,
                    "worker_poll_failed",
                    worker = self.index,
                    reason = e,
                );
            }
            if !self.commands() {
                return;
            }
            let now = self.now_ms();
            self.apply_synced(now);
            let ForwardingWorker {
                rings,
                tx,
                table,
                snap,
                stats,
                misses,
                sync,
                icmp_limit,
                ..
            } = &mut self;
            let mut fwd = Forwarder {
                table,
                snap,
                stats,
                misses,
                now,
                ip_id,
                sync: sync.as_mut(),
                icmp_limit,
            };
            // An error condition (the interface went down) is cleared where the poll
            // reports it, rather than asked for on every pass (a system call per ring).
            for event in events.iter().filter(|e| e.is_error()) {
                if let Some(ring) = rings.get(event.token().0)
                    && let Err(e) = ring.take_error()
                {
                    lvs_common::event!(log::Level::Warn, "ring_error", reason = e);
                }
            }
            drain(rings, tx, &mut fwd);
            ip_id = fwd.ip_id;
            self.table.expire(now, |_| {});
            self.publish();
        }
    }

    /// Apply pending commands; false on `Stop`.
    fn commands(&mut self) -> bool {
        while let Ok(cmd) = self.cmds.try_recv() {
            match cmd {
                WorkerCommand::Snapshot(s) => {
                    let dests = s.dests.len();
                    self.table.reserve_dests(dests);
                    self.snap = s;
                }
                WorkerCommand::ExpireDest(id) => {
                    let _ = self.table.expire_dest(id);
                }
                WorkerCommand::Timeouts { tcp, tcp_fin, udp } => {
                    self.table.set_timeouts(tcp, tcp_fin, udp)
                }
                WorkerCommand::ListConns(reply) => {
                    let _ = reply.try_send(self.table.list(self.now_ms()));
                }
                WorkerCommand::SyncDump(reply) => {
                    let _ = reply.try_send(self.table.sync_dump(self.now_ms()));
                }
                WorkerCommand::Clear => {
                    let now = self.now_ms();
                    self.table.clear(now);
                }
                WorkerCommand::Stop => return false,
                WorkerCommand::HandOver(reply) => {
                    let _ = reply.try_send(self.table.sync_dump(self.now_ms()));
                    return false;
                }
                WorkerCommand::Import(entries, reply) => {
                    let now = self.now_ms();
                    let n = crate::handover::import(&mut self.table, &self.snap, &entries, now);
                    let _ = reply.try_send(n);
                }
            }
        }
        true
    }

    /// Entries the sync thread received for this worker (standby): into the table, with
    /// this director's own service and real-server ids. Allocates nothing.
    fn apply_synced(&mut self, now: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(sync) = self.sync.as_mut() else {
            return;
        };
        let snap: &Snapshot = &self.snap;
        while let Some(e) = sync.inbound.pop() {
            let (vip, rs) = (IpAddr::from(e.virt.addr), IpAddr::from(e.dest.addr));
            let found = snap
                .service(e.proto, vip, e.virt.port)
                .or_else(|| snap.template_service(vip, e.virt.port))
                .and_then(|svc| {
                    snap.dest_by_addr(svc.id, rs, e.dest.port)
                        .map(|d| (svc.id, d))
                });
            let done =
                found.is_some_and(|(svc, dest)| self.table.sync_import(&e, svc, dest, now).is_ok());
            let counter = if done {
                &sync.shared.entries_applied
            } else {
                &sync.shared.dropped
            };
            counter.fetch_add(1, Relaxed);
        }
    }

    /// Publish this worker's connection counts per real server.
    fn publish(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        for &id in &self.snap.live_dests {
            let c = self.table.dest_counts(id);
            if let Some(slot) = self.stats.conns.get(id as usize) {
                slot.active.store(c.active, Relaxed);
                slot.inactive.store(c.inactive, Relaxed);
                slot.persist.store(c.persistent, Relaxed);
            }
        }
        self.stats.table_len.store(self.table.len() as u64, Relaxed);
    }
}

/// Forwards what the rings hold now.
fn drain<R: RxQueue, T: TxQueue>(rings: &mut [R], tx: &mut T, fwd: &mut Forwarder<'_>) {
    for ring in rings.iter_mut() {
        while let Some(mut block) = ring.next_batch() {
            let mut out = tx.batch();
            for frame in block.frames() {
                let meta = frame.meta;
                let data = frame.into_data();
                fwd.frame(data, &meta, &mut out);
            }
            if out.flush().is_err() {
                fwd.stats.lose(Loss::TxFailed);
            }
        }
    }
}

/// The per-packet logic, borrowing what it needs from the worker.
struct Forwarder<'w> {
    table: &'w mut Table,
    snap: &'w Arc<Snapshot>,
    stats: &'w Arc<WorkerStats>,
    misses: &'w SyncSender<IpAddr>,
    now: u64,
    ip_id: u16,
    sync: Option<&'w mut crate::sync::WorkerSync>,
    icmp_limit: &'w mut super::icmp_limit::TokenBucket,
}

/// Where a packet goes after its rewrite.
enum Verdict {
    /// Transmit the (rewritten) frame on this interface.
    Send(u32),
    /// Encapsulate into a new frame (VS/TUN).
    Tunnel(u32, TunParams),
    /// Nothing to send (dropped, counted, or not ours).
    Done,
}

/// What a packet does with the connection entry its flow found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reuse {
    /// Go where the entry says.
    Keep,
    /// Expire the entry and schedule the packet as a new connection.
    Reschedule,
    /// Expire the entry and drop the packet.
    Drop,
}

/// IPVS's rules for a packet that hits an entry (`conn_reuse_mode` 1 and
/// `expire_nodest_conn`). `syn` is a TCP SYN without ACK; `dest` is the entry's real server
/// in the current snapshot.
///
/// - A SYN on a closing entry (FIN_WAIT, TIME_WAIT, CLOSE, CLOSE_WAIT, LAST_ACK) is a new
///   connection that reuses the client's port: it is scheduled by the service's current
///   configuration (server, weights, forwarding method), not sent where the old one went.
/// - A SYN on an entry whose server is quiesced (weight 0, or unhealthy) is scheduled anew too,
///   whatever the entry's state. A persistent client still finds its template.
/// - An entry whose server is no longer in the service: a SYN is scheduled anew, anything
///   else is dropped, and the entry goes.
fn reuse(
    state: lvs_conntrack::State,
    service: u32,
    syn: bool,
    dest: Option<&super::snapshot::DestEntry>,
) -> Reuse {
    match dest.filter(|d| d.service == service) {
        None if syn => Reuse::Reschedule,
        None => Reuse::Drop,
        Some(d) if syn && (state.is_closing() || d.weight == 0) => Reuse::Reschedule,
        Some(_) => Reuse::Keep,
    }
}

/// The IPv4 or IPv6 destination of a frame the parser refused, if the bytes reach that far.
fn ip_dst(frame: &[u8]) -> Option<IpAddr> {
    let ethertype = |at: usize| {
        frame
            .get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let (l3, ipv6) = match ethertype(12)? {
        0x0800 => (14, false),
        0x86dd => (14, true),
        0x8100 => match ethertype(16)? {
            0x0800 => (18, false),
            0x86dd => (18, true),
            _ => return None,
        },
        _ => return None,
    };
    if ipv6 {
        let d: [u8; 16] = frame.get(l3 + 24..l3 + 40)?.try_into().ok()?;
        Some(IpAddr::from(d))
    } else {
        let d: [u8; 4] = frame.get(l3 + 16..l3 + 20)?.try_into().ok()?;
        Some(IpAddr::from(d))
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`). The connection table holds IPv4 in
/// exactly that form, so an IPv6 packet carrying one would pass for IPv4 (and find IPv4
/// entries and next hops): such packets are left to the kernel, which drops them (RFC 4291
/// 2.5.5.2 keeps these addresses off the wire).
#[inline]
fn ipv4_mapped(a: IpAddr) -> bool {
    matches!(a, IpAddr::V6(v) if v.to_ipv4_mapped().is_some())
}

fn proto_of(p: L4Proto) -> Option<Proto> {
    match p {
        L4Proto::Tcp => Some(Proto::Tcp),
        L4Proto::Udp => Some(Proto::Udp),
        _ => None,
    }
}

impl<'w> Forwarder<'w> {
    fn frame<'a, B: TxBatch<'a>>(&mut self, data: &'a mut [u8], meta: &FrameMeta, out: &mut B) {
        if meta.truncated() {
            self.stats.parse_drop(lvs_packet::DropReason::Truncated);
            return;
        }
        let pkt = match lvs_packet::parse(data) {
            Ok(p) => p,
            Err(reason) => {
                // Malformed bytes always count; a well-formed packet refused by policy (a
                // fragment, IP options, ...) counts when it was meant for a virtual service:
                // anything else on the wire is the kernel's business, not a drop of ours.
                if reason.is_malformed()
                    || (reason.class() == lvs_packet::DropClass::Policy
                        && ip_dst(data).is_some_and(|d| self.snap.vips.binary_search(&d).is_ok()))
                {
                    self.stats.parse_drop(reason);
                }
                return;
            }
        };
        let partial = meta.status.csum_not_ready();
        match self.decide(data, &pkt, partial) {
            Verdict::Send(ifindex) => {
                let frame: &'a [u8] = data;
                if out.push(ifindex, frame).is_err() {
                    self.stats.lose(Loss::TxFailed);
                }
            }
            Verdict::Tunnel(ifindex, params) => {
                let mut failed = None;
                let frame: &[u8] = data;
                let pushed = out.push_with(ifindex, |buf| {
                    match lvs_packet::tun_encap(frame, &pkt, &params, partial, buf) {
                        Ok(n) => n,
                        Err(e) => {
                            failed = Some(e);
                            0
                        }
                    }
                });
                if pushed.is_err() {
                    self.stats.lose(Loss::TxFailed);
                }
                match failed {
                    None => {}
                    Some(TunError::TooBig { mtu }) => {
                        self.stats.lose(Loss::TooBig);
                        self.frag_needed(frame, &pkt, mtu, out);
                    }
                    Some(e) => self.stats.parse_drop(e.drop_reason()),
                }
            }
            Verdict::Done => {}
        }
    }

    /// Decide and rewrite in place.
    fn decide(&mut self, data: &mut [u8], pkt: &Packet, partial: bool) -> Verdict {
        if !self.snap.active {
            return Verdict::Done;
        }
        if pkt.icmp.is_some() {
            return self.icmp(data, pkt);
        }
        let Some(proto) = proto_of(pkt.flow.protocol) else {
            return Verdict::Done;
        };
        let (src, dst) = (pkt.flow.src, pkt.flow.dst);
        if ipv4_mapped(src) || ipv4_mapped(dst) {
            return Verdict::Done;
        }
        // A plain reference for the whole packet: cloning the Arc would bounce its count's
        // cache line between workers on every packet.
        let snap: &'w Snapshot = self.snap;
        if let Some(svc) = snap.service(proto, dst, pkt.flow.dst_port) {
            return self.inbound(data, pkt, partial, proto, src, svc);
        }
        if snap.any_nat {
            let key = FlowKey::new(
                proto,
                Endpoint::new(src.into(), pkt.flow.src_port),
                Endpoint::new(dst.into(), pkt.flow.dst_port),
            );
            if let Some(id) = self.table.lookup_out(&key) {
                return self.reply(data, pkt, partial, id);
            }
        }
        Verdict::Done
    }

    fn inbound(
        &mut self,
        data: &mut [u8],
        pkt: &Packet,
        partial: bool,
        proto: Proto,
        client: IpAddr,
        svc: &ServiceEntry,
    ) -> Verdict {
        let client_ep = Endpoint::new(client.into(), pkt.flow.src_port);
        // The packet's own destination: a firewall-mark service has no single VIP.
        let virt = Endpoint::new(pkt.flow.dst.into(), pkt.flow.dst_port);
        let key = FlowKey::new(proto, client_ep, virt);
        let flags = TcpFlags(pkt.tcp_flags.0);
        let syn = proto == Proto::Tcp
            && pkt.tcp_flags.contains(lvs_packet::TcpFlags::SYN)
            && !pkt.tcp_flags.contains(lvs_packet::TcpFlags::ACK);
        let mut found = self.table.lookup_in(&key);
        if let Some(old) = found
            && let Some(conn) = self.table.get(old)
        {
            let dest = self.snap.dest(conn.dest_id());
            match reuse(conn.state(), conn.service(), syn, dest) {
                Reuse::Keep => {}
                Reuse::Reschedule => {
                    // A new connection on the address and port of an old one: the old entry
                    // goes now, and the SYN is scheduled by the service as it is today.
                    let _ = self.table.expire_reused(old, self.now);
                    found = None;
                }
                Reuse::Drop => {
                    // Its real server is gone (expire_nodest_conn): the client's next SYN is
                    // scheduled afresh.
                    let _ = self.table.remove(old, self.now);
                    self.stats.lose(Loss::NoDestination);
                    return Verdict::Done;
                }
            }
        }
        let mut created = false;
        let id = match found {
            Some(id) => id,
            None => {
                created = true;
                // Only a SYN opens a TCP connection, as in IPVS: anything else is a leftover
                // of a connection this director does not know (or a scan). In active-active
                // mode it may be a flow the router moved here: scheduled by the hash every
                // director shares, it goes on to its real server (a RST is never worth it).
                let midflow = proto == Proto::Tcp && !syn;
                if midflow
                    && (!self.snap.sloppy_tcp || pkt.tcp_flags.contains(lvs_packet::TcpFlags::RST))
                {
                    self.stats.lose(Loss::NoConnection);
                    return Verdict::Done;
                }
                let id = match self.new_conn(pkt, proto, client_ep, virt, svc) {
                    Some(id) => id,
                    None => return Verdict::Done,
                };
                if midflow {
                    // VS/NAT is refused in this mode; should one slip through, its replies
                    // would not come back here: no entry to a server that cannot answer.
                    if self
                        .table
                        .get(id)
                        .is_none_or(|c| c.forward() == Forward::Nat)
                    {
                        let _ = self.table.remove(id, self.now);
                        self.stats.lose(Loss::NoConnection);
                        return Verdict::Done;
                    }
                    self.stats.midflow_created();
                }
                id
            }
        };
        let Some(conn) = self.table.get(id) else {
            return Verdict::Done;
        };
        let (dest_ep, dest_id, forward) = (conn.dest(), conn.dest_id(), conn.forward());
        let before = conn.state();
        let after = self.table.on_packet(id, Dir::In, flags, self.now);
        self.sync_conn(id, created || after != Ok(before));
        let bytes = pkt.end - pkt.l3;
        if let Some(c) = self.stats.services.get(svc.id as usize) {
            c.inbound(bytes);
        }
        if let Some(c) = self.stats.dests.get(dest_id as usize) {
            c.inbound(bytes);
        }
        let rs = IpAddr::from(dest_ep.addr);
        let Some(hop) = self.next_hop(rs) else {
            return Verdict::Done;
        };
        let macs = MacPair {
            src: hop.src_mac.0,
            dst: hop.dst_mac.0,
        };
        let done = match forward {
            Forward::Nat => lvs_packet::decrement_ttl(data, pkt)
                .and_then(|()| lvs_packet::nat_in(data, pkt, rs, dest_ep.port, partial))
                .and_then(|()| lvs_packet::set_macs(data, macs)),
            Forward::DirectRoute => lvs_packet::dr_rewrite(data, pkt, macs, partial),
            Forward::Tunnel => {
                self.ip_id = self.ip_id.wrapping_add(1);
                // From the director's own address, as IPVS does: a real server holding the
                // VIP itself would drop a packet from the VIP as a martian.
                let outer_src = self
                    .snap
                    .source_addr(hop.ifindex, rs)
                    .unwrap_or(pkt.flow.dst);
                let params = TunParams {
                    outer_src,
                    outer_dst: rs,
                    macs,
                    mtu: self.snap.mtus.get(&hop.ifindex).copied().unwrap_or(1500),
                    ip_id: self.ip_id,
                };
                return Verdict::Tunnel(hop.ifindex, params);
            }
        };
        self.verdict(done, hop.ifindex)
    }

    fn verdict(&self, done: Result<(), RewriteError>, ifindex: u32) -> Verdict {
        match done {
            Ok(()) => Verdict::Send(ifindex),
            Err(e) => {
                self.stats.parse_drop(e.drop_reason());
                Verdict::Done
            }
        }
    }

    /// A new connection: persistence template or scheduler, then a table entry.
    fn new_conn(
        &mut self,
        pkt: &Packet,
        proto: Proto,
        client: Endpoint,
        virt: Endpoint,
        svc: &ServiceEntry,
    ) -> Option<ConnId> {
        let mut template = None;
        let mut chosen = None;
        if let Some((timeout, mask)) = svc.persistence {
            // A firewall-mark service's template is (mark, client network) alone, as in
            // IPVS: one real server for every address, port and protocol of the mark (the
            // classic 80 + 443 set-up).
            let tkey = match svc.mark {
                Some(m) => {
                    let tvirt = Endpoint::new(template_addr(m, svc.vip.is_ipv6()).into(), 0);
                    TemplateKey::new(Proto::Tcp, client.addr, &mask, tvirt)
                }
                None => TemplateKey::new(
                    proto,
                    client.addr,
                    &mask,
                    Endpoint::new(virt.addr, svc.port),
                ),
            };
            let now = Instant::now();
            let mut affinity = svc
                .affinity
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Another worker may already have placed this client: follow it.
            let shared = affinity
                .get(&tkey, now)
                .filter(|id| self.snap.dest(*id).is_some());
            if let Some(hit) = self.table.lookup_template(&tkey) {
                template = Some(hit.id);
                chosen = Some(hit.dest_id);
                affinity.set(tkey, hit.dest_id, now, timeout);
            } else if let Some(dest_id) = shared.or_else(|| self.schedule(pkt, svc)) {
                affinity.set(tkey, dest_id, now, timeout);
                let d = self.snap.dest(dest_id)?;
                let new = NewTemplate {
                    key: tkey,
                    dest: Endpoint::new(d.addr.into(), d.port),
                    forward: d.forward,
                    service: svc.id,
                    dest_id,
                    timeout_secs: timeout,
                };
                match self.table.insert_template(&new, self.now) {
                    Ok(t) => template = Some(t),
                    Err(_) => {
                        self.stats.lose(Loss::TableFull);
                        return None;
                    }
                }
                chosen = Some(dest_id);
            }
        } else {
            chosen = self.schedule(pkt, svc);
        }
        if let (Some(t), Some(sync)) = (template, self.sync.as_deref_mut())
            && let Some(e) = self.table.sync_export_template(t, self.now)
        {
            sync.send(e);
        }
        let Some(dest_id) = chosen else {
            self.stats.lose(Loss::NoDestination);
            return None;
        };
        let Some(d) = self.snap.dest(dest_id).copied() else {
            self.stats.lose(Loss::NoDestination);
            return None;
        };
        // A NAT real server on port 0 (or a port-0 service) keeps the client's port.
        let port = if d.port == 0 { virt.port } else { d.port };
        let new = NewConn {
            proto,
            client,
            virt,
            dest: Endpoint::new(d.addr.into(), port),
            forward: d.forward,
            service: svc.id,
            dest_id,
        };
        match self.table.insert(&new, template, self.now) {
            Ok(id) => {
                if let Some(c) = self.stats.services.get(svc.id as usize) {
                    c.conn();
                }
                if let Some(c) = self.stats.dests.get(dest_id as usize) {
                    c.conn();
                }
                Some(id)
            }
            Err(_) => {
                self.stats.lose(Loss::TableFull);
                None
            }
        }
    }

    /// Hand connection `id` to the sync thread when it is new, changed state, or is due
    /// for a refresh.
    #[inline]
    fn sync_conn(&mut self, id: ConnId, force: bool) {
        let Some(sync) = self.sync.as_deref_mut() else {
            return;
        };
        if !sync.due(id.slot(), self.now, force) {
            return;
        }
        if let Some(e) = self.table.sync_export(id, self.now)
            && sync.send(e)
        {
            sync.mark(id.slot(), self.now);
        }
        // A refresh carries the connection's template along, so a client that keeps one
        // long connection keeps its persistence on the standby too.
        if !force
            && let Some(t) = self.table.template_of(id)
            && let Some(e) = self.table.sync_export_template(t, self.now)
        {
            sync.send(e);
        }
    }

    /// Ask the service's scheduler, with the whole director's connection counts.
    fn schedule(&self, pkt: &Packet, svc: &ServiceEntry) -> Option<u32> {
        let (src_addr, family) = super::registry::abi_addr(pkt.flow.src);
        let (dst_addr, _) = super::registry::abi_addr(pkt.flow.dst);
        let mut flow = SchedFlow {
            family,
            protocol: pkt.flow.protocol.number(),
            src_addr,
            dst_addr,
            ..Default::default()
        };
        flow.src_port = pkt.flow.src_port;
        flow.dst_port = pkt.flow.dst_port;
        let mut inst = match svc.sched.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        self.sync_counts(&mut inst);
        let k = inst.schedule(&flow)?;
        inst.dests().get(k).map(|d| d.id)
    }

    /// Copy the director-wide connection counts into the scheduler's list and mark servers
    /// over their upper threshold as overloaded, with IPVS's hysteresis (back below the lower
    /// threshold, or 3/4 of the upper one when no lower is set).
    fn sync_counts(&self, inst: &mut lvs_sched_host::Instance) {
        let n = inst.dests().len();
        for i in 0..n {
            let id = inst.dests()[i].id as usize;
            let Some(slot) = self.stats_all_conns(id) else {
                continue;
            };
            let (a, ia, p) = slot;
            inst.set_conns(i, a, ia, p);
            if let Some(d) = self.snap.dest(u32::try_from(id).unwrap_or(u32::MAX))
                && d.upper > 0
            {
                let total = a.saturating_add(ia);
                let mut dest = inst.dests()[i];
                let over = dest.flags & DEST_F_OVERLOADED != 0;
                let low = if d.lower > 0 {
                    d.lower
                } else {
                    d.upper * 3 / 4
                };
                let now_over = if over { total >= low } else { total >= d.upper };
                if now_over != over {
                    dest.flags ^= DEST_F_OVERLOADED;
                    let _ = inst.update_dest(dest);
                }
            }
        }
    }

    /// The sum over all workers of one real server's counts. Every worker's counters are
    /// reachable from its stats, which the director hands to each worker at start.
    fn stats_all_conns(&self, id: usize) -> Option<(u32, u32, u32)> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut sum = (0u32, 0u32, 0u32);
        for w in self.snap_all_stats() {
            let c = w.conns.get(id)?;
            sum.0 = sum.0.saturating_add(c.active.load(Relaxed));
            sum.1 = sum.1.saturating_add(c.inactive.load(Relaxed));
            sum.2 = sum.2.saturating_add(c.persist.load(Relaxed));
        }
        Some(sum)
    }

    fn snap_all_stats(&self) -> &[Arc<WorkerStats>] {
        &self.snap.all_stats[..]
    }

    /// A VS/NAT reply from a real server: the source becomes the VIP again.
    fn reply(&mut self, data: &mut [u8], pkt: &Packet, partial: bool, id: ConnId) -> Verdict {
        let Some(conn) = self.table.get(id) else {
            return Verdict::Done;
        };
        let (virt, client, svc, dest_id) =
            (conn.virt(), conn.client(), conn.service(), conn.dest_id());
        let before = conn.state();
        let after = self
            .table
            .on_packet(id, Dir::Out, TcpFlags(pkt.tcp_flags.0), self.now);
        self.sync_conn(id, after != Ok(before));
        let bytes = pkt.end - pkt.l3;
        if let Some(c) = self.stats.services.get(svc as usize) {
            c.outbound(bytes);
        }
        if let Some(c) = self.stats.dests.get(dest_id as usize) {
            c.outbound(bytes);
        }
        let (vip, cl) = (IpAddr::from(virt.addr), IpAddr::from(client.addr));
        self.routed(data, pkt, cl, |d| {
            lvs_packet::nat_out(d, pkt, vip, virt.port, partial)
        })
    }

    /// Forward as a router does: the next hop towards `to`, TTL down by one, the NAT rewrite,
    /// then our MAC and the next hop's.
    fn routed(
        &mut self,
        data: &mut [u8],
        pkt: &Packet,
        to: IpAddr,
        rewrite: impl FnOnce(&mut [u8]) -> Result<(), RewriteError>,
    ) -> Verdict {
        let Some(hop) = self.next_hop(to) else {
            return Verdict::Done;
        };
        let macs = MacPair {
            src: hop.src_mac.0,
            dst: hop.dst_mac.0,
        };
        let done = lvs_packet::decrement_ttl(data, pkt)
            .and_then(|()| rewrite(data))
            .and_then(|()| lvs_packet::set_macs(data, macs));
        self.verdict(done, hop.ifindex)
    }

    /// ICMP errors about a tracked VS/NAT connection are rewritten and passed on; anything
    /// else ICMP is the kernel's business.
    fn icmp(&mut self, data: &mut [u8], pkt: &Packet) -> Verdict {
        let Some(info) = pkt.icmp else {
            return Verdict::Done;
        };
        let Some(emb) = info.embedded else {
            return Verdict::Done;
        };
        let Some(proto) = proto_of(emb.flow.protocol) else {
            return Verdict::Done;
        };
        let (es, ed) = (emb.flow.src, emb.flow.dst);
        if [pkt.flow.src, pkt.flow.dst, es, ed]
            .into_iter()
            .any(ipv4_mapped)
        {
            return Verdict::Done;
        }
        // The quoted packet went the other way: reversed, it is the flow we track.
        let quoted_rev = FlowKey::new(
            proto,
            Endpoint::new(ed.into(), emb.flow.dst_port),
            Endpoint::new(es.into(), emb.flow.src_port),
        );
        if let Some(id) = self.table.lookup_in(&quoted_rev) {
            // About our reply to the client (VIP -> client), sent from the client's side: the
            // real server must hear of it.
            let Some(conn) = self.table.get(id) else {
                return Verdict::Done;
            };
            if conn.forward() != Forward::Nat {
                return Verdict::Done;
            }
            let dest = conn.dest();
            let rs = IpAddr::from(dest.addr);
            return self.routed(data, pkt, rs, |d| {
                lvs_packet::nat_icmp_in(d, pkt, rs, dest.port)
            });
        }
        if let Some(id) = self.table.lookup_out(&quoted_rev) {
            // From the real server's side about the forwarded request: the client hears it
            // from the VIP.
            let Some(conn) = self.table.get(id) else {
                return Verdict::Done;
            };
            let (virt, client) = (conn.virt(), conn.client());
            let (vip, cl) = (IpAddr::from(virt.addr), IpAddr::from(client.addr));
            return self.routed(data, pkt, cl, |d| {
                lvs_packet::nat_icmp_out(d, pkt, vip, virt.port)
            });
        }
        Verdict::Done
    }

    /// Our reply when a VS/TUN packet does not fit the tunnel: "fragmentation needed" from
    /// the VIP to the client, as IPVS sends.
    fn frag_needed<'a, B: TxBatch<'a>>(
        &mut self,
        frame: &[u8],
        pkt: &Packet,
        mtu: u16,
        out: &mut B,
    ) {
        let (client, vip) = (pkt.flow.src, pkt.flow.dst);
        if !self.icmp_limit.allow(self.now) {
            self.stats.lose(Loss::IcmpRateLimited);
            return;
        }
        let Some(hop) = self.next_hop(client) else {
            return;
        };
        let macs = MacPair {
            src: hop.src_mac.0,
            dst: hop.dst_mac.0,
        };
        let _ = out.push_with(hop.ifindex, |buf| {
            lvs_packet::icmp_frag_needed(frame, pkt, vip, mtu, macs, buf).unwrap_or(0)
        });
    }

    fn next_hop(&self, dst: IpAddr) -> Option<Resolved> {
        match self.snap.nexthops.lookup(dst) {
            NextHopLookup::Ready(r) => Some(r),
            NextHopLookup::Unresolved { neighbour, .. } => {
                self.stats.lose(Loss::NoNeighbour);
                match self.misses.try_send(neighbour) {
                    Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
                }
                None
            }
            NextHopLookup::NoRoute => {
                self.stats.lose(Loss::NoRoute);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::snapshot::DestEntry;
    use super::*;
    use lvs_conntrack::State;
    use lvs_netinfo::{Fib, Link, MacAddr, Neighbour, Neighbours, NextHopTable, NudState, Route};
    use std::collections::HashMap;
    use std::net::Ipv4Addr;
    use std::sync::Mutex;

    fn dest(weight: u32) -> DestEntry {
        DestEntry {
            id: 3,
            service: 1,
            addr: Ipv4Addr::new(203, 0, 113, 11).into(),
            port: 80,
            forward: Forward::Nat,
            weight,
            upper: 0,
            lower: 0,
        }
    }

    #[test]
    fn a_syn_on_a_closing_entry_is_a_new_connection() {
        let live = dest(1);
        for s in State::TCP {
            let want = if s.is_closing() {
                Reuse::Reschedule
            } else {
                Reuse::Keep
            };
            assert_eq!(reuse(s, 1, true, Some(&live)), want, "{s}");
            // Anything but a SYN belongs to the connection, closing or not.
            assert_eq!(reuse(s, 1, false, Some(&live)), Reuse::Keep, "{s}");
        }
        assert_eq!(reuse(State::Udp, 1, false, Some(&live)), Reuse::Keep);
    }

    #[test]
    fn a_syn_for_a_quiesced_server_is_rescheduled_in_any_state() {
        let quiesced = dest(0);
        for s in State::TCP {
            assert_eq!(reuse(s, 1, true, Some(&quiesced)), Reuse::Reschedule, "{s}");
            // Its established connections carry on.
            assert_eq!(reuse(s, 1, false, Some(&quiesced)), Reuse::Keep, "{s}");
        }
    }

    #[test]
    fn an_entry_whose_server_left_the_service_goes() {
        let moved = dest(1);
        for (d, service) in [(None, 1), (Some(&moved), 2)] {
            assert_eq!(
                reuse(State::Established, service, true, d),
                Reuse::Reschedule
            );
            assert_eq!(reuse(State::Established, service, false, d), Reuse::Drop);
            assert_eq!(reuse(State::Udp, service, false, d), Reuse::Drop);
        }
    }

    /// Takes the first server with weight: the test knows where a connection goes.
    struct First;

    impl lvs_sched_abi::Scheduler for First {
        fn create(_: &lvs_sched_abi::Service, _: &lvs_sched_abi::Options) -> Result<Self, String> {
            Ok(First)
        }

        fn schedule(&mut self, _: &SchedFlow, dests: &[lvs_sched_abi::Dest]) -> Option<usize> {
            dests.iter().position(|d| d.weight > 0)
        }
    }

    static FIRST: lvs_sched_abi::Ops =
        lvs_sched_abi::ops_for::<First>(c"first", c"the first server with weight");

    /// The addresses of one family's test network: the client's network is on one interface,
    /// the real server's on the other.
    struct Net {
        vip: IpAddr,
        rs: IpAddr,
        client: IpAddr,
        rs_net: IpAddr,
        client_net: IpAddr,
        prefix_len: u8,
    }

    fn v4_net() -> Net {
        Net {
            vip: Ipv4Addr::new(203, 0, 113, 100).into(),
            rs: Ipv4Addr::new(10, 0, 0, 11).into(),
            client: Ipv4Addr::new(198, 51, 100, 2).into(),
            rs_net: Ipv4Addr::new(10, 0, 0, 0).into(),
            client_net: Ipv4Addr::new(198, 51, 100, 0).into(),
            prefix_len: 24,
        }
    }

    fn v6_net() -> Net {
        let a = |s: &str| s.parse::<IpAddr>().expect("an address");
        Net {
            vip: a("2001:db8::100"),
            rs: a("2001:db8:1::11"),
            client: a("2001:db8:51::2"),
            rs_net: a("2001:db8:1::"),
            client_net: a("2001:db8:51::"),
            prefix_len: 64,
        }
    }

    /// The interface towards the real servers, and the one towards the clients.
    const RS_IF: u32 = 2;
    const CLIENT_IF: u32 = 3;
    const RS_IF_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const CLIENT_IF_MAC: [u8; 6] = [2, 0, 0, 0, 0, 3];
    const RS_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x11];
    const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xc1];

    fn link(ifindex: u32, mac: [u8; 6]) -> Link {
        Link {
            ifindex,
            name: format!("eth{ifindex}"),
            mac: Some(MacAddr(mac)),
            mtu: 1500,
            up: true,
            running: true,
            loopback: false,
            noarp: false,
        }
    }

    fn route(dst: IpAddr, prefix_len: u8, oif: u32) -> Route {
        Route {
            dst,
            prefix_len,
            gateway: None,
            oif,
            metric: 0,
        }
    }

    fn neighbour(ifindex: u32, addr: IpAddr, mac: [u8; 6]) -> Neighbour {
        Neighbour {
            ifindex,
            addr,
            mac: Some(MacAddr(mac)),
            state: NudState::Reachable,
        }
    }

    /// `proto` VIP:80 by `forward` to RS:`rs_port` (service 0, real server 1), both sides
    /// resolved.
    fn snapshot(
        net: &Net,
        proto: Proto,
        forward: Forward,
        rs_port: u16,
        stats: &Arc<WorkerStats>,
    ) -> Snapshot {
        let plugin = lvs_sched_host::Plugin::from_static(&FIRST, "built-in").expect("table");
        let (addr, family) = super::super::registry::abi_addr(net.vip);
        let spec = lvs_sched_host::ServiceSpec {
            addr,
            port: 80,
            family,
            protocol: super::super::snapshot::proto_number(proto),
            ..Default::default()
        };
        let mut sched = lvs_sched_host::Instance::new(Arc::new(plugin), spec).expect("create");
        let (addr, family) = super::super::registry::abi_addr(net.rs);
        sched
            .add_dest(lvs_sched_abi::Dest {
                addr,
                port: rs_port,
                family,
                weight: 1,
                id: 1,
                ..Default::default()
            })
            .expect("add_dest");
        let service = ServiceEntry {
            id: 0,
            proto,
            vip: net.vip,
            port: 80,
            mark: None,
            persistence: None,
            sched: Arc::new(Mutex::new(sched)),
            affinity: Arc::default(),
        };
        let dest = DestEntry {
            id: 1,
            service: 0,
            addr: net.rs,
            port: rs_port,
            forward,
            weight: 1,
            upper: 0,
            lower: 0,
        };
        let nexthops = NextHopTable::build(
            &[link(RS_IF, RS_IF_MAC), link(CLIENT_IF, CLIENT_IF_MAC)],
            Fib::from_routes([
                route(net.rs_net, net.prefix_len, RS_IF),
                route(net.client_net, net.prefix_len, CLIENT_IF),
            ]),
            &Neighbours::from_entries([
                neighbour(RS_IF, net.rs, RS_MAC),
                neighbour(CLIENT_IF, net.client, CLIENT_MAC),
            ]),
        );
        // The director's own address on the real servers' side: the VS/TUN outer source.
        let own = match net.rs {
            IpAddr::V4(_) => Ipv4Addr::new(10, 0, 0, 1).into(),
            IpAddr::V6(_) => "2001:db8:1::1".parse().expect("an address"),
        };
        Snapshot {
            services: HashMap::from([(
                (super::super::snapshot::proto_number(proto), net.vip, 80),
                Arc::new(service),
            )]),
            by_mark: HashMap::new(),
            marks: Arc::default(),
            dests: vec![None, Some(dest)],
            vips: vec![net.vip],
            nat_servers: if forward == Forward::Nat {
                vec![net.rs]
            } else {
                Vec::new()
            },
            live_dests: vec![1],
            active: true,
            sloppy_tcp: false,
            any_nat: forward == Forward::Nat,
            nexthops: Arc::new(nexthops),
            all_stats: vec![Arc::clone(stats)].into(),
            mtus: HashMap::from([(RS_IF, 1500), (CLIENT_IF, 1500)]),
            if_addrs: Arc::new(HashMap::from([(RS_IF, vec![(own, net.prefix_len, false)])])),
            dest_index: HashMap::from([((0, net.rs, rs_port), 1)]),
        }
    }

    /// A TCP segment with its checksums right; `syn_ack` false for the client's SYN.
    fn tcp_frame(
        macs: ([u8; 6], [u8; 6]),
        from: (IpAddr, u16),
        to: (IpAddr, u16),
        syn_ack: bool,
    ) -> Vec<u8> {
        let eth = etherparse::PacketBuilder::ethernet2(macs.0, macs.1);
        let ip = match (from.0, to.0) {
            (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
            (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
            _ => panic!("one family"),
        };
        let b = ip.tcp(from.1, to.1, 1000, 65535).syn();
        let b = if syn_ack { b.ack(1) } else { b };
        let mut frame = Vec::new();
        b.write(&mut frame, &[]).expect("build frame");
        frame
    }

    /// A UDP datagram of `payload` bytes, DF set over IPv4.
    fn udp_frame(
        macs: ([u8; 6], [u8; 6]),
        from: (IpAddr, u16),
        to: (IpAddr, u16),
        payload: usize,
    ) -> Vec<u8> {
        let eth = etherparse::PacketBuilder::ethernet2(macs.0, macs.1);
        let ip = match (from.0, to.0) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let mut h = etherparse::Ipv4Header::new(
                    0,
                    64,
                    etherparse::IpNumber::UDP,
                    s.octets(),
                    d.octets(),
                )
                .expect("a header");
                h.dont_fragment = true;
                eth.ip(etherparse::IpHeaders::Ipv4(h, Default::default()))
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
            _ => panic!("one family"),
        };
        let mut frame = Vec::new();
        ip.udp(from.1, to.1)
            .write(&mut frame, &vec![0x5a; payload])
            .expect("build frame");
        frame
    }

    /// (source, TCP source port, destination, TCP destination port, TTL or hop limit) of a
    /// frame, after checking that its checksums are right.
    fn addresses(frame: &[u8]) -> (IpAddr, u16, IpAddr, u16, u8) {
        let pkt = lvs_packet::parse(frame).expect("a parsable frame");
        assert!(
            lvs_packet::verify_ip_header(frame, &pkt),
            "IP header checksum"
        );
        assert!(lvs_packet::verify_l4(frame, &pkt), "TCP checksum");
        let hops = if pkt.is_ipv6() {
            frame[pkt.l3 + 7]
        } else {
            frame[pkt.l3 + 8]
        };
        (
            pkt.flow.src,
            pkt.flow.src_port,
            pkt.flow.dst,
            pkt.flow.dst_port,
            hops,
        )
    }

    /// A worker running on an in-memory backend with `snap`, and how to talk to it.
    struct Running {
        wire: super::super::memory_queue::MemoryWire,
        stats: Arc<WorkerStats>,
        cmds: std::sync::mpsc::Sender<WorkerCommand>,
        waker: Waker,
        thread: std::thread::JoinHandle<()>,
    }

    impl Running {
        fn start(snap: impl FnOnce(&Arc<WorkerStats>) -> Snapshot) -> Running {
            use super::super::memory_queue::memory_queues;
            let (rx, tx, wire) = memory_queues();
            let stats = Arc::new(WorkerStats::default());
            let mut cfg = lvs_conntrack::Config::with_capacity(1024);
            cfg.dest_slots = 256;
            let (cmd_tx, cmd_rx) = std::sync::mpsc::channel();
            let (miss_tx, _miss_rx) = std::sync::mpsc::sync_channel(16);
            let mut worker = ForwardingWorker {
                index: 0,
                rings: vec![rx],
                tx,
                table: Table::new(cfg, 0).expect("table"),
                snap: Arc::new(snap(&stats)),
                stats: Arc::clone(&stats),
                cmds: cmd_rx,
                misses: miss_tx,
                poll: Poll::new().expect("poll"),
                epoch: Instant::now(),
                sync: None,
                icmp_limit: super::super::icmp_limit::TokenBucket::default(),
            };
            worker.register().expect("register");
            let waker = worker.waker().expect("waker");
            let thread = std::thread::spawn(move || worker.run());
            Running {
                wire,
                stats,
                cmds: cmd_tx,
                waker,
                thread,
            }
        }

        /// Deliver `frame`; the `n`th frame sent (1-based) once there.
        fn deliver(&self, frame: Vec<u8>, n: usize) -> (u32, Vec<u8>) {
            self.wire.deliver(vec![frame]);
            let out = lvs_testsupport::wait_for("a frame sent", Duration::from_secs(10), || {
                Some(self.wire.sent()).filter(|s| s.len() >= n)
            });
            out[n - 1].clone()
        }

        fn stop(self) {
            self.cmds
                .send(WorkerCommand::Stop)
                .expect("worker listening");
            self.waker.wake().expect("wake");
            self.thread.join().expect("worker ran cleanly");
        }
    }

    /// The whole worker (event loop, commands, packet path): a client's SYN to the VIP
    /// leaves for the real server rewritten, and the server's answer leaves for the client
    /// from the VIP, with every checksum right and the TTL (hop limit) one lower.
    fn forwards_vs_nat(net: &Net) {
        let w = Running::start(|stats| snapshot(net, Proto::Tcp, Forward::Nat, 8080, stats));
        let syn = tcp_frame(
            (CLIENT_MAC, CLIENT_IF_MAC),
            (net.client, 40_000),
            (net.vip, 80),
            false,
        );
        let (ifindex, frame) = w.deliver(syn, 1);
        assert_eq!(ifindex, RS_IF);
        assert_eq!((&frame[0..6], &frame[6..12]), (&RS_MAC[..], &RS_IF_MAC[..]));
        assert_eq!(addresses(&frame), (net.client, 40_000, net.rs, 8080, 63));
        let svc = w.stats.services[0].read();
        assert_eq!((svc.conns, svc.in_pkts), (1, 1));

        let syn_ack = tcp_frame(
            (RS_MAC, RS_IF_MAC),
            (net.rs, 8080),
            (net.client, 40_000),
            true,
        );
        let (ifindex, frame) = w.deliver(syn_ack, 2);
        assert_eq!(ifindex, CLIENT_IF);
        assert_eq!(
            (&frame[0..6], &frame[6..12]),
            (&CLIENT_MAC[..], &CLIENT_IF_MAC[..])
        );
        assert_eq!(addresses(&frame), (net.vip, 80, net.client, 40_000, 63));
        assert_eq!(w.stats.services[0].read().out_pkts, 1);
        lvs_testsupport::wait_for("every batch given back", Duration::from_secs(10), || {
            (w.wire.released() == 2).then_some(())
        });
        w.stop();
    }

    /// On a backend that is not AF_PACKET (the queue traits implemented in memory).
    #[test]
    fn the_worker_forwards_vs_nat_on_any_backend_implementing_the_queue_traits() {
        forwards_vs_nat(&v4_net());
    }

    /// A firewall-mark service in the worker: the `[[fwmark]]` rule marks port 443 of the
    /// VIP, the service of that mark takes the SYN, and its real server on port 0 gets the
    /// packet's own port.
    #[test]
    fn the_worker_forwards_a_marked_packet_to_the_port_it_was_sent_to() {
        let net = v4_net();
        let w = Running::start(|stats| {
            let mut snap = snapshot(&net, Proto::Tcp, Forward::Nat, 0, stats);
            let (_, svc) = snap.services.drain().next().expect("the service");
            let svc = Arc::try_unwrap(svc).expect("one owner");
            let fwm = ServiceEntry {
                mark: Some(1),
                vip: Ipv4Addr::UNSPECIFIED.into(),
                port: 0,
                ..svc
            };
            snap.by_mark.insert((1, false), Arc::new(fwm));
            snap.marks = Arc::new(crate::fwmark::MarkTable {
                rules: vec![crate::fwmark::MarkRule {
                    mark: 1,
                    proto: Some(Proto::Tcp),
                    net: crate::fwmark::Net::host(net.vip),
                    ports: vec![crate::fwmark::PortRange {
                        first: 443,
                        last: 443,
                    }],
                }],
            });
            snap
        });
        let syn = tcp_frame(
            (CLIENT_MAC, CLIENT_IF_MAC),
            (net.client, 40_000),
            (net.vip, 443),
            false,
        );
        let (ifindex, frame) = w.deliver(syn, 1);
        assert_eq!(ifindex, RS_IF);
        assert_eq!(addresses(&frame), (net.client, 40_000, net.rs, 443, 63));
        assert_eq!(w.stats.services[0].read().conns, 1);
        w.stop();
    }

    #[test]
    fn the_worker_forwards_vs_nat_over_ipv6() {
        forwards_vs_nat(&v6_net());
    }

    /// An IPv6 packet from an IPv4-mapped address would meet the IPv4 entries of the same
    /// client in the table: it is not forwarded (the next, ordinary SYN is the first frame
    /// out).
    #[test]
    fn an_ipv6_packet_with_an_ipv4_mapped_address_is_not_forwarded() {
        let net = v6_net();
        let w = Running::start(|stats| snapshot(&net, Proto::Tcp, Forward::Nat, 8080, stats));
        let mapped: IpAddr = "::ffff:198.51.100.2".parse().unwrap();
        let bad = tcp_frame(
            (CLIENT_MAC, CLIENT_IF_MAC),
            (mapped, 40_000),
            (net.vip, 80),
            false,
        );
        w.wire.deliver(vec![bad]);
        let good = tcp_frame(
            (CLIENT_MAC, CLIENT_IF_MAC),
            (net.client, 40_001),
            (net.vip, 80),
            false,
        );
        let (_, frame) = w.deliver(good, 1);
        assert_eq!(addresses(&frame), (net.client, 40_001, net.rs, 8080, 63));
        assert_eq!(w.wire.sent().len(), 1, "the mapped one was dropped");
        assert_eq!(w.stats.services[0].read().conns, 1);
        w.stop();
    }

    /// VS/TUN over IPv6: a SYN leaves wrapped in an outer IPv6 header (next header 41) from
    /// the director's own address to the real server; a full-size datagram does not fit the
    /// tunnel and the client gets ICMPv6 "packet too big" from the VIP with the tunnel's MTU
    /// (1500 less the 40-byte outer header).
    #[test]
    fn the_worker_tunnels_ipv6_in_ipv6_and_answers_packet_too_big() {
        let net = v6_net();
        let w = Running::start(|stats| snapshot(&net, Proto::Tcp, Forward::Tunnel, 80, stats));
        let syn = tcp_frame(
            (CLIENT_MAC, CLIENT_IF_MAC),
            (net.client, 40_000),
            (net.vip, 80),
            false,
        );
        let (ifindex, frame) = w.deliver(syn.clone(), 1);
        assert_eq!(ifindex, RS_IF);
        assert_eq!((&frame[0..6], &frame[6..12]), (&RS_MAC[..], &RS_IF_MAC[..]));
        assert_eq!(&frame[12..14], &[0x86, 0xdd]);
        let outer = &frame[14..54];
        assert_eq!(outer[6], 41, "IPv6 in IPv6");
        let own: IpAddr = "2001:db8:1::1".parse().unwrap();
        let src: [u8; 16] = outer[8..24].try_into().unwrap();
        let dst: [u8; 16] = outer[24..40].try_into().unwrap();
        assert_eq!((IpAddr::from(src), IpAddr::from(dst)), (own, net.rs));
        assert_eq!(
            &frame[54..],
            &syn[14..],
            "the client's packet inside, unchanged"
        );
        w.stop();

        let w = Running::start(|stats| snapshot(&net, Proto::Udp, Forward::Tunnel, 80, stats));
        // 1500 bytes of IPv6: no room for the outer header.
        let big = udp_frame(
            (CLIENT_MAC, CLIENT_IF_MAC),
            (net.client, 40_000),
            (net.vip, 80),
            1500 - 40 - 8,
        );
        let (ifindex, frame) = w.deliver(big, 1);
        assert_eq!(ifindex, CLIENT_IF);
        assert_eq!(
            (&frame[0..6], &frame[6..12]),
            (&CLIENT_MAC[..], &CLIENT_IF_MAC[..])
        );
        let pkt = lvs_packet::parse(&frame).expect("a parsable ICMPv6 error");
        assert_eq!((pkt.flow.src, pkt.flow.dst), (net.vip, net.client));
        assert!(lvs_packet::verify_l4(&frame, &pkt), "ICMPv6 checksum");
        let icmp = &frame[pkt.l4..];
        assert_eq!(icmp[0], 2, "packet too big");
        assert_eq!(u32::from_be_bytes(icmp[4..8].try_into().unwrap()), 1460);
        w.stop();
    }

    /// A client's mid-flow segment (ACK and data, no SYN) to `to`.
    fn ack_frame(net: &Net, port: u16, rst: bool) -> Vec<u8> {
        let eth = etherparse::PacketBuilder::ethernet2(CLIENT_MAC, CLIENT_IF_MAC);
        let ip = match (net.client, net.vip) {
            (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
            (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
            _ => panic!("one family"),
        };
        let b = ip.tcp(port, 80, 5000, 65535).ack(7);
        let b = if rst { b.rst() } else { b.psh() };
        let mut frame = Vec::new();
        b.write(&mut frame, b"GET / HTTP/1.1\r\n\r\n")
            .expect("build frame");
        frame
    }

    /// Outside active-active mode a mid-flow segment without an entry is dropped and
    /// counted, as before; in it (sloppy TCP) the segment is scheduled, goes to the real
    /// server by VS/DR, and its entry is established at once. A RST opens nothing.
    #[test]
    fn a_mid_flow_segment_opens_an_entry_only_in_active_active_mode() {
        let net = v4_net();
        let w = Running::start(|stats| snapshot(&net, Proto::Tcp, Forward::DirectRoute, 80, stats));
        w.wire.deliver(vec![ack_frame(&net, 40_001, false)]);
        lvs_testsupport::wait_for("the drop counted", Duration::from_secs(10), || {
            (w.stats.drops[Loss::NoConnection as usize].load(std::sync::atomic::Ordering::Relaxed)
                == 1)
                .then_some(())
        });
        assert!(w.wire.sent().is_empty());
        assert_eq!(
            w.stats.midflow.load(std::sync::atomic::Ordering::Relaxed),
            0
        );
        w.stop();

        let w = Running::start(|stats| {
            let mut snap = snapshot(&net, Proto::Tcp, Forward::DirectRoute, 80, stats);
            snap.sloppy_tcp = true;
            snap
        });
        w.wire.deliver(vec![ack_frame(&net, 40_002, true)]);
        lvs_testsupport::wait_for("the RST dropped", Duration::from_secs(10), || {
            (w.stats.drops[Loss::NoConnection as usize].load(std::sync::atomic::Ordering::Relaxed)
                == 1)
                .then_some(())
        });
        let (ifindex, frame) = w.deliver(ack_frame(&net, 40_001, false), 1);
        assert_eq!(ifindex, RS_IF);
        assert_eq!((&frame[0..6], &frame[6..12]), (&RS_MAC[..], &RS_IF_MAC[..]));
        assert_eq!(addresses(&frame), (net.client, 40_001, net.vip, 80, 64));
        assert_eq!(
            w.stats.midflow.load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        w.cmds
            .send(WorkerCommand::ListConns(tx))
            .expect("worker listening");
        w.waker.wake().expect("wake");
        let conns = rx.recv_timeout(Duration::from_secs(10)).expect("a listing");
        assert_eq!(conns.len(), 1);
        assert_eq!(conns[0].state, lvs_conntrack::State::Established);
        assert_eq!(conns[0].client.port, 40_001);
        w.stop();
    }
}
