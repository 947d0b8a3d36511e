//! The forwarding engine: worker threads on AF_PACKET rings, and the control-side handle that
//! turns configuration changes into snapshots and commands for them.

pub mod icmp_limit;
pub mod snapshot;
pub mod stats;
pub mod worker;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lvs_afpacket::{FanoutConfig, FanoutControl, Interface, RxConfig, TxConfig, TxSocket};
use lvs_conntrack::{Addr, Forward, Proto, Table};
use lvs_netinfo::NextHopTable;
use lvs_proto::{ConnEntry, DestConf, FwdMethod, Protocol, Rates, ServiceConf, ServiceKey, Stats};
use lvs_sched_host::{Dest, Instance, Registry, ServiceSpec};
use mio::{Poll, Waker};
use slab::Slab;

use crate::guard::{Endpoint, GuardRules, L4};
use snapshot::{DestEntry, ServiceEntry, Snapshot};
use stats::{MAX_DESTS, MAX_SERVICES, RateEstimator, WorkerStats};
use worker::{Cmd, Worker};

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
    #[error("only IPv4 virtual services and real servers are forwarded yet: {0}")]
    NotIpv4(String),
}

/// Each interface's IPv4 addresses by index: (address, prefix length, secondary), primary
/// addresses first. VS/TUN takes its outer source address from here.
pub type IfAddrs = HashMap<u32, Vec<(Ipv4Addr, u8, bool)>>;

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
}

struct WorkerHandle {
    cmds: Sender<Cmd>,
    waker: Arc<Waker>,
    join: Option<JoinHandle<()>>,
}

/// One real server as the control side keeps it.
#[derive(Debug, Clone)]
struct DestState {
    id: u32,
    conf: DestConf,
}

/// One virtual service as the control side keeps it.
struct ServiceState {
    id: u32,
    conf: ServiceConf,
    sched: Arc<Mutex<Instance>>,
    affinity: Arc<Mutex<snapshot::Affinity>>,
    dests: Vec<DestState>,
}

/// The control side of the dataplane. Lives on the control thread.
pub struct Dataplane {
    workers: Vec<WorkerHandle>,
    stats: Arc<[Arc<WorkerStats>]>,
    fanouts: Vec<FanoutControl>,
    services: Vec<(ServiceKey, ServiceState)>,
    service_ids: Slab<()>,
    dest_ids: Slab<()>,
    nexthops: Arc<NextHopTable>,
    mtus: HashMap<u32, u16>,
    if_addrs: Arc<IfAddrs>,
    misses: Receiver<Ipv4Addr>,
    /// Counters at the last `lvsadm -Z`, by service id and by real-server id.
    svc_base: HashMap<u32, Stats>,
    dest_base: HashMap<u32, Stats>,
    svc_rates: HashMap<u32, RateEstimator>,
    dest_rates: HashMap<u32, RateEstimator>,
    last_sample: Instant,
    conn_table_size: usize,
    /// Forwarding (active) or not (standby).
    active: bool,
    /// Connection sync: its configuration and the sync thread's ends of the rings until
    /// `start_sync`, then the running thread.
    sync_setup: Option<(crate::sync::SyncConfig, Vec<crate::sync::EngineSide>)>,
    sync_shared: Option<Arc<crate::sync::SyncShared>>,
    sync: Option<crate::sync::SyncEngine>,
}

impl std::fmt::Debug for Dataplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataplane")
            .field("workers", &self.workers.len())
            .field("services", &self.services.len())
            .finish()
    }
}

fn proto_of(p: Protocol) -> Proto {
    match p {
        Protocol::Tcp => Proto::Tcp,
        Protocol::Udp => Proto::Udp,
    }
}

fn forward_of(f: FwdMethod) -> Forward {
    match f {
        FwdMethod::Masq => Forward::Nat,
        FwdMethod::Route => Forward::DirectRoute,
        FwdMethod::Tunnel => Forward::Tunnel,
    }
}

fn v4(a: IpAddr, what: &str) -> Result<Ipv4Addr, DataplaneError> {
    match a {
        IpAddr::V4(v) => Ok(v),
        IpAddr::V6(v) => Err(DataplaneError::NotIpv4(format!("{what} {v}"))),
    }
}

impl Dataplane {
    /// Open every ring and start the workers. Rings are opened here, on the calling thread and
    /// in worker order, so that member `i` of every interface's fanout group is worker `i`.
    pub fn start(
        setup: &Setup,
        nexthops: Arc<NextHopTable>,
        mtus: HashMap<u32, u16>,
        if_addrs: IfAddrs,
    ) -> Result<Self, DataplaneError> {
        let if_addrs = Arc::new(if_addrs);
        let n = setup.workers.max(1);
        let mut rings_per_worker: Vec<Vec<lvs_afpacket::RxRing>> =
            (0..n).map(|_| Vec::new()).collect();
        let mut fanouts = Vec::new();
        for iface in &setup.interfaces {
            let (rings, control) = lvs_afpacket::open_fanout(
                iface,
                &setup.rx,
                &FanoutConfig {
                    members: n,
                    vips: Vec::new(),
                    group_id: None,
                },
            )?;
            for (w, ring) in rings.into_iter().enumerate() {
                rings_per_worker[w].push(ring);
            }
            fanouts.push(control);
        }
        let stats: Arc<[Arc<WorkerStats>]> = (0..n)
            .map(|_| Arc::new(WorkerStats::default()))
            .collect::<Vec<_>>()
            .into();
        let (miss_tx, miss_rx): (SyncSender<Ipv4Addr>, Receiver<Ipv4Addr>) =
            mpsc::sync_channel(1024);
        let per_worker = (setup.conn_table_size / n).max(1024);
        let first = Arc::new(Snapshot {
            services: HashMap::new(),
            vips: Vec::new(),
            dests: Vec::new(),
            live_dests: Vec::new(),
            any_nat: false,
            active: true,
            nexthops: Arc::clone(&nexthops),
            all_stats: Arc::clone(&stats),
            mtus: mtus.clone(),
            if_addrs: Arc::clone(&if_addrs),
            dest_index: HashMap::new(),
        });
        let sync_shared = setup
            .sync
            .as_ref()
            .map(|_| Arc::new(crate::sync::SyncShared::default()));
        let (mut worker_syncs, engine_sides) = match (&setup.sync, &sync_shared) {
            (Some(cfg), Some(shared)) => {
                let (w, e) = crate::sync::rings(n, per_worker, cfg, shared);
                (w.into_iter().map(Some).collect::<Vec<_>>(), Some(e))
            }
            _ => ((0..n).map(|_| None).collect(), None),
        };
        let mut workers = Vec::with_capacity(n);
        for (index, rings) in rings_per_worker.into_iter().enumerate() {
            let fail = |reason: String| DataplaneError::Worker {
                worker: index,
                reason,
            };
            let tx = TxSocket::open(&TxConfig::default())?;
            let mut cfg = lvs_conntrack::Config::with_capacity(per_worker);
            cfg.dest_slots = 256;
            cfg.hash_seed = random_seed();
            let now = 0;
            let mut table =
                Table::new(cfg, now).map_err(|e| DataplaneError::Table(e.to_string()))?;
            let (tcp, tcp_fin, udp) = setup.timeouts;
            table.set_timeouts(tcp, tcp_fin, udp);
            let (cmd_tx, cmd_rx) = mpsc::channel();
            let poll = Poll::new().map_err(|e| fail(e.to_string()))?;
            let mut w = Worker {
                index,
                rings,
                tx,
                table,
                snap: Arc::clone(&first),
                stats: Arc::clone(&stats[index]),
                cmds: cmd_rx,
                misses: miss_tx.clone(),
                poll,
                epoch: Instant::now(),
                sync: worker_syncs[index].take(),
                icmp_limit: icmp_limit::TokenBucket::default(),
            };
            w.register().map_err(|e| fail(e.to_string()))?;
            let waker = w.waker().map_err(|e| fail(e.to_string()))?;
            let join = std::thread::Builder::new()
                .name(format!("lvs-worker-{index}"))
                .spawn(move || w.run())
                .map_err(|e| fail(e.to_string()))?;
            workers.push(WorkerHandle {
                cmds: cmd_tx,
                waker: Arc::new(waker),
                join: Some(join),
            });
        }
        Ok(Self {
            workers,
            stats,
            fanouts,
            services: Vec::new(),
            service_ids: Slab::new(),
            dest_ids: Slab::new(),
            nexthops,
            mtus,
            if_addrs,
            misses: miss_rx,
            svc_base: HashMap::new(),
            dest_base: HashMap::new(),
            svc_rates: HashMap::new(),
            dest_rates: HashMap::new(),
            last_sample: Instant::now(),
            conn_table_size: setup.conn_table_size,
            active: true,
            sync_setup: setup.sync.clone().zip(engine_sides),
            sync_shared,
            sync: None,
        })
    }

    /// Start the sync thread (after `start`, with the key read from `key_file`).
    pub fn start_sync(&mut self, key: crate::sync::wire::AuthKey) -> std::io::Result<()> {
        let (Some((cfg, sides)), Some(shared)) = (self.sync_setup.take(), &self.sync_shared) else {
            return Ok(());
        };
        let links = sides
            .into_iter()
            .zip(&self.workers)
            .map(|(side, w)| crate::sync::engine::WorkerLink {
                side,
                cmds: w.cmds.clone(),
                waker: Arc::clone(&w.waker),
            })
            .collect();
        self.sync = Some(crate::sync::SyncEngine::start(
            cfg,
            key,
            links,
            Arc::clone(shared),
            self.active,
        )?);
        Ok(())
    }

    /// Connection sync's status (`None`: not configured).
    pub fn sync_status(&self) -> Option<lvs_proto::director::SyncStatus> {
        self.sync.as_ref().map(crate::sync::SyncEngine::status)
    }

    fn send(&self, make: impl Fn() -> Cmd) {
        for w in &self.workers {
            let _ = w.cmds.send(make());
            let _ = w.waker.wake();
        }
    }

    fn service_mut(&mut self, key: &ServiceKey) -> Option<&mut ServiceState> {
        self.services
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, s)| s)
    }

    /// Build a scheduler instance for `conf` from the plugin registry.
    fn instance(registry: &mut Registry, conf: &ServiceConf) -> Result<Instance, DataplaneError> {
        let plugin = registry
            .get(&conf.scheduler)
            .map_err(|e| DataplaneError::Sched(e.to_string()))?;
        let vip = v4(conf.key.addr, "virtual service")?;
        let mut addr = [0u8; 16];
        addr[..4].copy_from_slice(&vip.octets());
        let spec = ServiceSpec {
            addr,
            port: conf.key.port,
            family: lvs_sched_abi::AF_INET,
            protocol: match conf.key.protocol {
                Protocol::Tcp => 6,
                Protocol::Udp => 17,
            },
            flags: if conf.persistence.is_some() {
                lvs_sched_abi::SVC_F_PERSISTENT
            } else {
                0
            },
            options: lvs_control::sched_flags::plugin_options(&conf.scheduler, &conf.sched_flags),
        };
        Instance::new(plugin, spec).map_err(|e| DataplaneError::Sched(e.to_string()))
    }

    fn sched_dest(id: u32, conf: &DestConf) -> Result<Dest, DataplaneError> {
        let a = v4(conf.addr, "real server")?;
        let mut addr = [0u8; 16];
        addr[..4].copy_from_slice(&a.octets());
        Ok(Dest {
            addr,
            port: conf.port,
            family: lvs_sched_abi::AF_INET,
            weight: conf.weight,
            flags: if conf.weight == 0 {
                lvs_sched_abi::DEST_F_QUIESCED
            } else {
                0
            },
            id,
            ..Dest::default()
        })
    }

    /// Apply changes accepted by the control model, then hand the workers a new snapshot.
    pub fn apply(&mut self, registry: &mut Registry, changes: &[lvs_control::ConfigChange]) {
        use lvs_control::ConfigChange as C;
        for change in changes {
            let result = match change {
                C::ServiceAdded(conf) => self.add_service(registry, conf),
                C::ServiceEdited(conf) => self.edit_service(registry, conf),
                C::ServiceDeleted(key) => {
                    self.delete_service(key);
                    Ok(())
                }
                C::DestAdded { service, dest } => self.add_dest(service, dest),
                C::DestEdited { service, dest } => self.edit_dest(service, dest),
                C::DestDeleted {
                    service,
                    addr,
                    port,
                } => {
                    self.delete_dest(service, *addr, *port);
                    Ok(())
                }
                C::TimeoutsChanged(t) => {
                    let (tcp, tcp_fin, udp) = (t.tcp, t.tcp_fin, t.udp);
                    self.send(|| Cmd::Timeouts { tcp, tcp_fin, udp });
                    Ok(())
                }
                C::Zero(key) => {
                    self.zero(key.as_ref());
                    Ok(())
                }
                C::RoleChanged(role) => {
                    self.active = *role == lvs_proto::HaRole::Active;
                    if let Some(s) = &self.sync {
                        s.set_role(self.active);
                    }
                    lvs_common::event!(
                        log::Level::Info,
                        "role_changed",
                        role = if self.active { "active" } else { "standby" },
                    );
                    Ok(())
                }
                C::Cleared => {
                    let keys: Vec<ServiceKey> = self.services.iter().map(|(k, _)| *k).collect();
                    for k in keys {
                        self.delete_service(&k);
                    }
                    self.send(|| Cmd::Clear);
                    Ok(())
                }
            };
            if let Err(e) = result {
                lvs_common::event!(
                    log::Level::Error,
                    "dataplane_change_failed",
                    change = ?change,
                    reason = e,
                );
            }
        }
        self.publish();
    }

    fn add_service(
        &mut self,
        registry: &mut Registry,
        conf: &ServiceConf,
    ) -> Result<(), DataplaneError> {
        v4(conf.key.addr, "virtual service")?;
        if self.service_mut(&conf.key).is_some() {
            // Already there (a change applied twice): an edit, never a second copy.
            return self.edit_service(registry, conf);
        }
        if self.service_ids.len() >= MAX_SERVICES {
            return Err(DataplaneError::Full {
                what: "virtual services",
                max: MAX_SERVICES,
            });
        }
        let inst = Self::instance(registry, conf)?;
        let id = u32::try_from(self.service_ids.insert(())).unwrap_or(u32::MAX);
        self.svc_base.insert(id, self.service_raw(id));
        self.svc_rates.insert(id, RateEstimator::default());
        self.services.push((
            conf.key,
            ServiceState {
                id,
                conf: conf.clone(),
                sched: Arc::new(Mutex::new(inst)),
                affinity: Arc::default(),
                dests: Vec::new(),
            },
        ));
        Ok(())
    }

    fn edit_service(
        &mut self,
        registry: &mut Registry,
        conf: &ServiceConf,
    ) -> Result<(), DataplaneError> {
        let Some(svc) = self.service_mut(&conf.key) else {
            return Ok(());
        };
        let new_sched =
            svc.conf.scheduler != conf.scheduler || svc.conf.sched_flags != conf.sched_flags;
        svc.conf = conf.clone();
        if new_sched {
            let mut inst = Self::instance(registry, conf)?;
            let svc = self
                .service_mut(&conf.key)
                .ok_or(DataplaneError::Sched("gone".into()))?;
            for d in &svc.dests {
                let _ = inst.add_dest(Self::sched_dest(d.id, &d.conf)?);
            }
            svc.sched = Arc::new(Mutex::new(inst));
        }
        Ok(())
    }

    fn delete_service(&mut self, key: &ServiceKey) {
        let Some(pos) = self.services.iter().position(|(k, _)| k == key) else {
            return;
        };
        let (_, svc) = self.services.remove(pos);
        for d in &svc.dests {
            self.retire_dest(d.id);
        }
        self.service_ids.try_remove(svc.id as usize);
        self.svc_base.remove(&svc.id);
        self.svc_rates.remove(&svc.id);
    }

    fn add_dest(&mut self, service: &ServiceKey, conf: &DestConf) -> Result<(), DataplaneError> {
        v4(conf.addr, "real server")?;
        if self.dest_ids.len() >= MAX_DESTS {
            return Err(DataplaneError::Full {
                what: "real servers",
                max: MAX_DESTS,
            });
        }
        let id = u32::try_from(self.dest_ids.insert(())).unwrap_or(u32::MAX);
        let base = self.dest_raw(id);
        self.dest_base.insert(id, base);
        self.dest_rates.insert(id, RateEstimator::default());
        let d = Self::sched_dest(id, conf)?;
        let Some(svc) = self.service_mut(service) else {
            return Ok(());
        };
        svc.dests.push(DestState { id, conf: *conf });
        let mut inst = svc
            .sched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        inst.add_dest(d)
            .map_err(|e| DataplaneError::Sched(e.to_string()))?;
        Ok(())
    }

    fn edit_dest(&mut self, service: &ServiceKey, conf: &DestConf) -> Result<(), DataplaneError> {
        let Some(svc) = self.service_mut(service) else {
            return Ok(());
        };
        let Some(d) = svc
            .dests
            .iter_mut()
            .find(|d| d.conf.addr == conf.addr && d.conf.port == conf.port)
        else {
            return Ok(());
        };
        d.conf = *conf;
        let sd = Self::sched_dest(d.id, conf)?;
        let mut inst = svc
            .sched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        inst.update_dest(sd)
            .map_err(|e| DataplaneError::Sched(e.to_string()))?;
        Ok(())
    }

    fn delete_dest(&mut self, service: &ServiceKey, addr: IpAddr, port: u16) {
        let Some(svc) = self.service_mut(service) else {
            return;
        };
        let Some(pos) = svc
            .dests
            .iter()
            .position(|d| d.conf.addr == addr && d.conf.port == port)
        else {
            return;
        };
        let d = svc.dests.remove(pos);
        {
            let mut inst = svc
                .sched
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = inst.del_dest(d.id);
        }
        svc.affinity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .forget_dest(d.id);
        self.retire_dest(d.id);
    }

    /// The workers expire the server's connections before the id can come back.
    fn retire_dest(&mut self, id: u32) {
        self.send(|| Cmd::ExpireDest(id));
        self.dest_ids.try_remove(id as usize);
        self.dest_base.remove(&id);
        self.dest_rates.remove(&id);
    }

    /// Build the snapshot and hand it to every worker; update the fanout programs.
    pub fn publish(&mut self) {
        let mut services = HashMap::new();
        let mut dest_index = HashMap::new();
        let mut dests: Vec<Option<DestEntry>> = Vec::new();
        let mut live = Vec::new();
        let mut any_nat = false;
        let mut vips = Vec::new();
        for (key, svc) in &self.services {
            let Ok(vip) = v4(key.addr, "virtual service") else {
                continue;
            };
            vips.push(vip);
            let proto = proto_of(key.protocol);
            let persistence = svc
                .conf
                .persistence
                .map(|p| (p.timeout_secs, Addr::prefix_mask(true, p.netmask)));
            let entry = ServiceEntry {
                id: svc.id,
                proto,
                vip,
                port: key.port,
                persistence,
                sched: Arc::clone(&svc.sched),
                affinity: Arc::clone(&svc.affinity),
            };
            services.insert(
                (snapshot::proto_number(proto), vip, key.port),
                Arc::new(entry),
            );
            for d in &svc.dests {
                let Ok(addr) = v4(d.conf.addr, "real server") else {
                    continue;
                };
                let forward = forward_of(d.conf.fwd);
                any_nat |= forward == Forward::Nat;
                let i = d.id as usize;
                if dests.len() <= i {
                    dests.resize(i + 1, None);
                }
                dests[i] = Some(DestEntry {
                    id: d.id,
                    service: svc.id,
                    addr,
                    port: if d.conf.port == 0 {
                        key.port
                    } else {
                        d.conf.port
                    },
                    forward,
                    weight: d.conf.weight,
                    upper: d.conf.upper_threshold,
                    lower: d.conf.lower_threshold,
                });
                live.push(d.id);
                dest_index.insert((svc.id, addr, d.conf.port), d.id);
            }
        }
        vips.sort_unstable();
        vips.dedup();
        for f in &self.fanouts {
            if let Err(e) = f.set_vips(&vips) {
                lvs_common::event!(log::Level::Error, "fanout_update_failed", reason = e);
            }
        }
        let snap = Arc::new(Snapshot {
            services,
            vips,
            dests,
            live_dests: live,
            any_nat,
            active: self.active,
            nexthops: Arc::clone(&self.nexthops),
            all_stats: Arc::clone(&self.stats),
            mtus: self.mtus.clone(),
            if_addrs: Arc::clone(&self.if_addrs),
            dest_index,
        });
        self.send(|| Cmd::Snapshot(Arc::clone(&snap)));
    }

    /// New next hops (neighbours resolved, routes changed).
    pub fn set_nexthops(
        &mut self,
        table: Arc<NextHopTable>,
        mtus: HashMap<u32, u16>,
        if_addrs: IfAddrs,
    ) {
        self.nexthops = table;
        self.mtus = mtus;
        self.if_addrs = Arc::new(if_addrs);
        self.publish();
    }

    /// Next hops the workers found without a MAC since the last call.
    pub fn take_misses(&self) -> Vec<Ipv4Addr> {
        let mut v: Vec<Ipv4Addr> = self.misses.try_iter().collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The real servers' addresses, to resolve their MACs ahead of the first packet.
    pub fn dest_addrs(&self) -> Vec<Ipv4Addr> {
        self.services
            .iter()
            .flat_map(|(_, s)| s.dests.iter())
            .filter_map(|d| v4(d.conf.addr, "").ok())
            .collect()
    }

    /// What the kernel guard must keep from the kernel.
    pub fn guard_rules(&self) -> GuardRules {
        let mut rules = GuardRules::default();
        for (key, svc) in &self.services {
            let Ok(vip) = v4(key.addr, "") else { continue };
            let proto = match key.protocol {
                Protocol::Tcp => L4::Tcp,
                Protocol::Udp => L4::Udp,
            };
            rules.services.push(Endpoint {
                addr: vip,
                proto,
                port: key.port,
            });
            for d in &svc.dests {
                if d.conf.fwd == FwdMethod::Masq
                    && let Ok(addr) = v4(d.conf.addr, "")
                {
                    let port = if d.conf.port == 0 {
                        key.port
                    } else {
                        d.conf.port
                    };
                    rules.nat_servers.push(Endpoint { addr, proto, port });
                }
            }
        }
        rules
    }

    fn service_raw(&self, id: u32) -> Stats {
        stats::sum_stats(
            self.stats
                .iter()
                .filter_map(|w| w.services.get(id as usize)),
        )
    }

    fn dest_raw(&self, id: u32) -> Stats {
        stats::sum_stats(self.stats.iter().filter_map(|w| w.dests.get(id as usize)))
    }

    fn zero(&mut self, key: Option<&ServiceKey>) {
        let targets: Vec<(u32, Vec<u32>)> = self
            .services
            .iter()
            .filter(|(k, _)| key.is_none_or(|want| want == k))
            .map(|(_, s)| (s.id, s.dests.iter().map(|d| d.id).collect()))
            .collect();
        for (sid, dids) in targets {
            let raw = self.service_raw(sid);
            self.svc_base.insert(sid, raw);
            for d in dids {
                let raw = self.dest_raw(d);
                self.dest_base.insert(d, raw);
            }
        }
    }

    /// Sample rates; call every couple of seconds.
    pub fn tick(&mut self) {
        let elapsed = u64::try_from(self.last_sample.elapsed().as_millis()).unwrap_or(0);
        if elapsed < 1900 {
            return;
        }
        self.last_sample = Instant::now();
        let sids: Vec<u32> = self.services.iter().map(|(_, s)| s.id).collect();
        for id in sids {
            let raw = self.service_raw(id);
            self.svc_rates.entry(id).or_default().sample(&raw, elapsed);
        }
        let dids: Vec<u32> = self
            .services
            .iter()
            .flat_map(|(_, s)| s.dests.iter().map(|d| d.id))
            .collect();
        for id in dids {
            let raw = self.dest_raw(id);
            self.dest_rates.entry(id).or_default().sample(&raw, elapsed);
        }
    }

    fn service_id(&self, key: &ServiceKey) -> Option<&ServiceState> {
        self.services.iter().find(|(k, _)| k == key).map(|(_, s)| s)
    }

    /// Stop every worker and wait for them.
    pub fn stop(&mut self) {
        if let Some(mut s) = self.sync.take() {
            s.stop();
        }
        self.send(|| Cmd::Stop);
        for w in &mut self.workers {
            if let Some(j) = w.join.take() {
                let _ = j.join();
            }
        }
    }

    /// Drop counters summed over workers, by name (parser's reasons and the director's).
    pub fn drops(&self) -> Vec<(&'static str, u64)> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut out = Vec::new();
        for r in lvs_packet::DropReason::ALL {
            let n: u64 = self
                .stats
                .iter()
                .map(|w| w.parse_drops[r.index()].load(Relaxed))
                .sum();
            out.push((r.as_str(), n));
        }
        for d in stats::Loss::ALL {
            let n: u64 = self
                .stats
                .iter()
                .map(|w| w.drops[d as usize].load(Relaxed))
                .sum();
            out.push((d.as_str(), n));
        }
        out
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
        let Some(s) = self.service_id(key) else {
            return (Stats::default(), Rates::default());
        };
        let raw = self.service_raw(s.id);
        let base = self.svc_base.get(&s.id).copied().unwrap_or_default();
        let rates = self
            .svc_rates
            .get(&s.id)
            .map(RateEstimator::rates)
            .unwrap_or_default();
        (stats::sub(&raw, &base), rates)
    }

    fn dest(&self, service: &ServiceKey, dest: &DestConf) -> lvs_control::DestCounters {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(s) = self.service_id(service) else {
            return Default::default();
        };
        let Some(d) = s
            .dests
            .iter()
            .find(|d| d.conf.addr == dest.addr && d.conf.port == dest.port)
        else {
            return Default::default();
        };
        let (mut a, mut ia, mut p) = (0u32, 0u32, 0u32);
        for w in self.stats.iter() {
            if let Some(c) = w.conns.get(d.id as usize) {
                a = a.saturating_add(c.active.load(Relaxed));
                ia = ia.saturating_add(c.inactive.load(Relaxed));
                p = p.saturating_add(c.persist.load(Relaxed));
            }
        }
        // Each worker keeps its own templates, so one client whose connections land on two
        // workers has two: the shared affinity map has one entry per client network, which
        // is what IPVS's template count (ipvsadm's PersistConn) means.
        if s.conf.persistence.is_some() {
            p = s
                .affinity
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .count(d.id, Instant::now());
        }
        let raw = self.dest_raw(d.id);
        let base = self.dest_base.get(&d.id).copied().unwrap_or_default();
        lvs_control::DestCounters {
            active_conns: a,
            inactive_conns: ia,
            persist_conns: p,
            stats: stats::sub(&raw, &base),
            rates: self
                .dest_rates
                .get(&d.id)
                .map(RateEstimator::rates)
                .unwrap_or_default(),
        }
    }

    fn connections(&self) -> Vec<ConnEntry> {
        let mut replies = Vec::new();
        for w in &self.workers {
            let (tx, rx) = mpsc::sync_channel(1);
            if w.cmds.send(Cmd::ListConns(tx)).is_ok() {
                let _ = w.waker.wake();
                replies.push(rx);
            }
        }
        let mut out = Vec::new();
        for rx in replies {
            // A worker answers within one loop turn; a stuck worker must not hang lvsadm.
            if let Ok(list) = rx.recv_timeout(Duration::from_secs(2)) {
                out.extend(list.into_iter().map(|c| conn_entry(&c)));
            }
        }
        out
    }

    fn info(&self) -> lvs_proto::DirectorInfo {
        use std::sync::atomic::Ordering::Relaxed;
        lvs_proto::DirectorInfo {
            version: lvs_proto::director::IPVS_VERSION.to_owned(),
            conn_table_size: self.conn_table_size as u64,
            conn_count: self.stats.iter().map(|w| w.table_len.load(Relaxed)).sum(),
        }
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

/// A hash seed per worker table, so that an attacker cannot aim at one bucket.
fn random_seed() -> u64 {
    let mut buf = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut buf);
    }
    u64::from_ne_bytes(buf) ^ lvs_conntrack::DEFAULT_SEED
}
