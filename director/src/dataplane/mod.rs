//! The forwarding engine: worker threads on AF_PACKET rings, and the control-side handle that
//! turns the control state into snapshots and commands for them.
//!
//! - [`workers`]: starting, commanding and stopping the worker threads (and the sync thread);
//! - [`registry`]: the ids and scheduler instances that outlive edits;
//! - [`build`]: the snapshot (and the kernel guard's rules) made from the control state;
//! - [`rates`]: the counters and rates `lvsadm -L` shows;
//! - [`worker`], [`snapshot`], [`stats`], [`icmp_limit`]: the worker threads' side.

pub mod build;
pub mod icmp_limit;
#[cfg(test)]
mod memory_queue;
pub mod rates;
pub mod registry;
pub mod snapshot;
pub mod stats;
pub mod worker;
pub mod workers;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use log::Level;
use lvs_afpacket::{Interface, RxConfig};
use lvs_common::event;
use lvs_conntrack::Proto;
use lvs_control::{ConfigChange, ControlState};
use lvs_netinfo::NextHopTable;
use lvs_proto::{ConnEntry, DestConf, Protocol, Rates, ServiceKey, Stats};
use lvs_sched_host::Registry;

use crate::nftables::NftRules;
use build::Surroundings;
use rates::Meter;
use registry::ServiceRegistry;
use snapshot::Snapshot;
use stats::WorkerStats;
use worker::WorkerCommand;
use workers::Workers;

/// Why the dataplane could not start or apply a change.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error("{0}")]
    Io(#[from] lvs_afpacket::Error),
    #[error("cannot start worker {worker}: {reason}")]
    Worker { worker: usize, reason: String },
    #[error("connection table: {0}")]
    Table(String),
    #[error("too many {what} (at most {max})")]
    Full { what: &'static str, max: usize },
    #[error("{0}")]
    Sched(String),
    #[error(
        "real server {dest} is not of the address family of {service}: the director tunnels \
         IPv4 in IPv4 and IPv6 in IPv6 only"
    )]
    CrossFamily { dest: String, service: String },
}

/// Each interface's IPv4 and IPv6 addresses by index: (address, prefix length, second
/// choice), the others first. A second choice is an IPv4 secondary address, or an IPv6 one
/// still in duplicate-address detection. VS/TUN takes its outer source address from here.
pub type IfAddrs = HashMap<u32, Vec<(IpAddr, u8, bool)>>;

/// How to start the workers.
#[derive(Debug, Clone)]
pub struct Setup {
    pub interfaces: Vec<Interface>,
    pub workers: usize,
    pub conn_table_size: usize,
    pub rx: RxConfig,
    pub timeouts: (u32, u32, u32),
    /// Connection sync (`[sync]`), when configured.
    pub sync: Option<crate::sync::SyncConfig>,
    /// The `[[fwmark]]` rules.
    pub marks: crate::fwmark::MarkTable,
    /// Active-active (`[cluster] mode`): a mid-flow TCP segment without an entry is scheduled.
    pub sloppy_tcp: bool,
}

/// The control side of the dataplane. Lives on the control thread.
#[derive(Debug)]
pub struct Dataplane {
    workers: Workers,
    registry: ServiceRegistry,
    meter: Meter,
    around: Surroundings,
    /// What the workers have now, and the guard rules made with it.
    snap: Arc<Snapshot>,
    guard: NftRules,
    /// The interfaces forwarded on, for the guard's ingress chain.
    devices: Vec<String>,
    conn_table_size: usize,
}

impl Dataplane {
    /// Open every ring and start the workers, with no service yet.
    pub fn start(
        setup: &Setup,
        nexthops: Arc<NextHopTable>,
        mtus: HashMap<u32, u16>,
        if_addrs: IfAddrs,
    ) -> Result<Self, DataplaneError> {
        let n = setup.workers.max(1);
        let stats: Arc<[Arc<WorkerStats>]> = (0..n)
            .map(|_| Arc::new(WorkerStats::default()))
            .collect::<Vec<_>>()
            .into();
        let around = Surroundings {
            nexthops,
            mtus,
            if_addrs: Arc::new(if_addrs),
            all_stats: Arc::clone(&stats),
            active: true,
            marks: Arc::new(setup.marks.clone()),
            sloppy_tcp: setup.sloppy_tcp,
        };
        let registry = ServiceRegistry::default();
        let (first, guard) = build::build(&ControlState::new(), &registry, &around);
        let snap = Arc::new(first);
        let workers = Workers::start(setup, &snap, &stats)?;
        Ok(Self {
            workers,
            registry,
            meter: Meter::new(stats),
            around,
            snap,
            guard,
            devices: setup
                .interfaces
                .iter()
                .map(|i| i.name().to_owned())
                .collect(),
            conn_table_size: setup.conn_table_size,
        })
    }

    /// Start the sync thread (after `start`, with the key read from `key_file`).
    pub fn start_sync(&mut self, key: crate::sync::wire::AuthKey) -> std::io::Result<()> {
        self.workers.start_sync(key, self.around.active)
    }

    /// Connection sync's status (`None`: not configured).
    pub fn sync_status(&self) -> Option<lvs_proto::director::SyncStatus> {
        self.workers
            .sync_status()
            .map(|s| lvs_proto::director::SyncStatus {
                midflow_created: self.meter.midflow(),
                ..s
            })
    }

    /// The sync daemons (`lvsadm --start-daemon`, `--stop-daemon`, `-L --daemon`).
    pub fn sync_daemons(&mut self) -> &mut crate::sync::Daemons {
        self.workers.sync_daemons()
    }

    /// Follow the control state after `changes`, then hand the workers a new snapshot.
    ///
    /// Services and real servers are read from `state`; `changes` says only what is not in
    /// it: which servers an `-e` touched, new timeouts, `-Z`, a new role, `-C`.
    pub fn apply(
        &mut self,
        plugins: &mut Registry,
        state: &ControlState,
        changes: &[ConfigChange],
    ) {
        let edited: HashSet<(ServiceKey, IpAddr, u16)> = changes
            .iter()
            .filter_map(|c| match c {
                ConfigChange::DestEdited { service, dest } => {
                    Some((*service, dest.addr, dest.port))
                }
                _ => None,
            })
            .collect();
        let synced = self.registry.sync(plugins, state, &edited);
        // Retired before the new ones start: an id freed here may be given out again below,
        // and the workers must expire the old server's connections first.
        for &id in &synced.gone_dests {
            self.workers.send(|| WorkerCommand::ExpireDest(id));
            self.meter.forget_dest(id);
        }
        for &id in &synced.gone_services {
            self.meter.forget_service(id);
        }
        for &id in &synced.new_services {
            self.meter.start_service(id);
        }
        for &id in &synced.new_dests {
            self.meter.start_dest(id);
        }
        for (what, e) in &synced.failed {
            event!(
                Level::Error,
                "dataplane_change_failed",
                change = what,
                reason = e.to_string()
            );
        }
        for change in changes {
            match change {
                ConfigChange::TimeoutsChanged(t) => {
                    let (tcp, tcp_fin, udp) = (t.tcp, t.tcp_fin, t.udp);
                    self.workers
                        .send(|| WorkerCommand::Timeouts { tcp, tcp_fin, udp });
                }
                ConfigChange::Zero(key) => self.zero(key.as_ref()),
                ConfigChange::RoleChanged(role) => {
                    self.around.active = *role == lvs_proto::HaRole::Active;
                    self.workers.set_role(self.around.active);
                    event!(
                        Level::Info,
                        "role_changed",
                        role = if self.around.active {
                            "active"
                        } else {
                            "standby"
                        }
                    );
                }
                // The services are gone from the state (and their servers expired above);
                // whatever the tables still hold goes too.
                ConfigChange::Cleared => self.workers.send(|| WorkerCommand::Clear),
                ConfigChange::ServiceAdded(c) => self.warn_unmarked(&c.key),
                // Read from the state.
                ConfigChange::ServiceEdited(_)
                | ConfigChange::ServiceDeleted(_)
                | ConfigChange::DestAdded { .. }
                | ConfigChange::DestEdited { .. }
                | ConfigChange::DestDeleted { .. } => {}
            }
        }
        let (snap, guard) = build::build(state, &self.registry, &self.around);
        self.guard = guard;
        self.publish(snap);
    }

    /// New `[[fwmark]]` rules (a reload): a new snapshot and guard from `state`.
    pub fn set_marks(&mut self, marks: crate::fwmark::MarkTable, state: &ControlState) {
        if *self.around.marks == marks {
            return;
        }
        self.around.marks = Arc::new(marks);
        for s in state.services() {
            self.warn_unmarked(&s.conf.key);
        }
        let (snap, guard) = build::build(state, &self.registry, &self.around);
        self.guard = guard;
        self.publish(snap);
    }

    /// A firewall-mark service whose mark no `[[fwmark]]` rule of its family gives is
    /// accepted (as ipvsadm accepts a mark no netfilter rule sets yet, and a restore file may
    /// come before the configuration), but it gets no packet until a rule does: say so.
    fn warn_unmarked(&self, key: &ServiceKey) {
        if let Some(m) = key.mark()
            && !self.around.marks.defines(m, key.addr.is_ipv6())
        {
            event!(
                Level::Warn,
                "fwmark_undefined",
                service = key.to_string(),
                reason = "no [[fwmark]] rule of the director's configuration gives this mark to a packet of this family: the service gets no packet until one does"
            );
        }
    }

    /// Hand `snap` to every worker; update the fanout programs.
    fn publish(&mut self, snap: Snapshot) {
        self.workers.set_vips(&snap.vips);
        self.workers.set_filter(&snap);
        let snap = Arc::new(snap);
        self.snap = Arc::clone(&snap);
        self.workers
            .send(|| WorkerCommand::Snapshot(Arc::clone(&snap)));
    }

    /// New next hops (neighbours resolved, routes changed).
    pub fn set_nexthops(
        &mut self,
        table: Arc<NextHopTable>,
        mtus: HashMap<u32, u16>,
        if_addrs: IfAddrs,
    ) {
        self.around.nexthops = table;
        self.around.mtus = mtus;
        self.around.if_addrs = Arc::new(if_addrs);
        let snap = Snapshot {
            nexthops: Arc::clone(&self.around.nexthops),
            mtus: self.around.mtus.clone(),
            if_addrs: Arc::clone(&self.around.if_addrs),
            ..Snapshot::clone(&self.snap)
        };
        self.publish(snap);
    }

    /// Next hops the workers found without a MAC since the last call.
    pub fn take_misses(&self) -> Vec<IpAddr> {
        self.workers.take_misses()
    }

    /// The real servers' addresses, to resolve their MACs ahead of the first packet.
    pub fn dest_addrs(&self) -> Vec<IpAddr> {
        self.snap.dests.iter().flatten().map(|d| d.addr).collect()
    }

    /// What the kernel guard must keep from the kernel.
    pub fn nft_rules(&self) -> NftRules {
        NftRules {
            devices: self.devices.clone(),
            ..self.guard.clone()
        }
    }

    fn zero(&mut self, key: Option<&ServiceKey>) {
        match key {
            Some(key) => {
                if let Some(slot) = self.registry.service(key) {
                    self.meter.zero(slot);
                }
            }
            None => {
                for slot in self.registry.slots() {
                    self.meter.zero(slot);
                }
            }
        }
    }

    /// Sample rates; call every couple of seconds.
    pub fn tick(&mut self) {
        self.meter.tick(self.registry.slots());
    }

    /// An upgrade: stop every worker and return their tables' entries.
    pub fn hand_over(&mut self) -> Vec<lvs_conntrack::SyncEntry> {
        self.workers.hand_over()
    }

    /// After an upgrade: the previous binary's entries into the workers' tables (after the
    /// services are applied); returns how many went in.
    pub fn import(&self, entries: Vec<lvs_conntrack::SyncEntry>) -> usize {
        self.workers.import(entries)
    }

    /// After an upgrade: counters go on from the previous binary's `stats` (of a service,
    /// or of its real server `dest`).
    pub fn carry(&mut self, key: &ServiceKey, dest: Option<(IpAddr, u16)>, stats: &Stats) {
        let Some(slot) = self.registry.service(key) else {
            return;
        };
        match dest {
            None => self.meter.carry_service(slot.id, stats),
            Some((addr, port)) => {
                if let Some(id) = slot.dest(addr, port) {
                    self.meter.carry_dest(id, stats);
                }
            }
        }
    }

    /// Stop every worker and wait for them.
    pub fn stop(&mut self) {
        self.workers.stop();
    }

    /// Frames the receive rings have taken since the start (past the receive filter).
    pub fn ring_frames(&mut self) -> u64 {
        self.workers.ring_frames()
    }

    /// Drop counters summed over workers, by name (parser's reasons and the director's).
    pub fn drops(&self) -> Vec<(&'static str, u64)> {
        self.meter.drops()
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `StatsSource` the control handler reads: counters minus the zero baseline, rates, and
/// connection counts summed over workers.
impl lvs_control::StatsSource for Dataplane {
    fn service(&self, key: &ServiceKey) -> (Stats, Rates) {
        match self.registry.service(key) {
            Some(slot) => self.meter.service(slot.id),
            None => (Stats::default(), Rates::default()),
        }
    }

    fn dest(&self, service: &ServiceKey, dest: &DestConf) -> lvs_control::DestCounters {
        let Some(slot) = self.registry.service(service) else {
            return Default::default();
        };
        let Some(id) = slot.dest(dest.addr, dest.port) else {
            return Default::default();
        };
        let (active_conns, inactive_conns, mut persist_conns) = self.meter.conns(id);
        // Each worker keeps its own templates, so one client whose connections land on two
        // workers has two: the shared affinity map has one entry per client network, which
        // is what IPVS's template count (ipvsadm's PersistConn) means.
        if self.persistent(service) {
            persist_conns = slot
                .affinity
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .count(id, Instant::now());
        }
        let (stats, rates) = self.meter.dest(id);
        lvs_control::DestCounters {
            active_conns,
            inactive_conns,
            persist_conns,
            stats,
            rates,
        }
    }

    fn connections(&self) -> Vec<ConnEntry> {
        self.workers.connections().iter().map(conn_entry).collect()
    }

    fn info(&self) -> lvs_proto::DirectorInfo {
        lvs_proto::DirectorInfo {
            version: lvs_proto::director::IPVS_VERSION.to_owned(),
            conn_table_size: self.conn_table_size as u64,
            conn_count: self.meter.table_len(),
        }
    }
}

impl Dataplane {
    /// Whether the workers have `-p` for this service now.
    fn persistent(&self, key: &ServiceKey) -> bool {
        let entry = match key.protocol {
            Protocol::Fwmark(m) => self.snap.by_mark.get(&(m, key.addr.is_ipv6())),
            Protocol::Tcp | Protocol::Udp => {
                let proto = if key.protocol == Protocol::Tcp {
                    Proto::Tcp
                } else {
                    Proto::Udp
                };
                self.snap
                    .services
                    .get(&(snapshot::proto_number(proto), key.addr, key.port))
            }
        };
        entry.is_some_and(|s| s.persistence.is_some())
    }
}

fn conn_entry(c: &lvs_conntrack::ConnInfo) -> ConnEntry {
    let ep = |e: lvs_conntrack::Endpoint| (IpAddr::from(e.addr), e.port);
    ConnEntry {
        protocol: match c.proto {
            Proto::Tcp => Protocol::Tcp,
            Proto::Udp => Protocol::Udp,
        },
        expire_secs: u32::try_from(c.expires_ms.div_ceil(1000)).unwrap_or(u32::MAX),
        state: c.state.name().to_owned(),
        client: ep(c.client),
        virtual_addr: ep(c.virt),
        dest: ep(c.dest),
        template: c.template,
    }
}
