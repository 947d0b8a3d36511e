//! The run-time API: worker threads, listeners, routing tables, health, counters.
//!
//! [`Engine::apply`] takes a whole new set of content services and pools, builds every table
//! (and binds every new listener) first, and only then commits: existing services get their
//! table swapped (open connections stay, their next request uses the new rules), new services
//! start listening, removed ones stop. A refused set changes nothing. Adding or deleting a
//! rule or pool at run time is the same call with the edited set.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use lvs_sched_host::Plugin;
use mio::{Poll, Waker};

use crate::config::{ContentServiceConfig, Mode, PoolConfig, validate};
use crate::error::L7Error;
use crate::listener::bind_reuseport;
use crate::pool::{CountersRef, MemberCounters, Pool, PoolCounters};
use crate::route::{HostMatch, RouteTable, Rule, Settings};
use crate::worker::{Command, ServiceShared, WAKER, Worker};

/// Where scheduler plugins come from (the director's plugin registry).
pub trait PluginSource {
    fn plugin(&mut self, name: &str) -> Result<Arc<Plugin>, String>;
}

impl<F: FnMut(&str) -> Result<Arc<Plugin>, String>> PluginSource for F {
    fn plugin(&mut self, name: &str) -> Result<Arc<Plugin>, String> {
        self(name)
    }
}

#[derive(Debug)]
struct WorkerHandle {
    tx: Sender<Command>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

impl WorkerHandle {
    fn send(&self, c: Command) {
        if self.tx.send(c).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

/// Counters that outlive reloads, by (service, pool, member) and (service, rule) names.
#[derive(Debug, Default)]
struct LastingCounters {
    members: HashMap<(SocketAddr, String, SocketAddr), Arc<MemberCounters>>,
    pools: HashMap<(SocketAddr, String), Arc<PoolCounters>>,
    rules: HashMap<(SocketAddr, String), Arc<AtomicU64>>,
}

/// The content-switching engine of a director.
#[derive(Debug)]
pub struct Engine {
    workers: Vec<WorkerHandle>,
    services: Vec<(Arc<ServiceShared>, Mode)>,
    health: Arc<Mutex<HashMap<SocketAddr, bool>>>,
    counters: LastingCounters,
}

/// A rule as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleView {
    pub name: String,
    pub pool: String,
    pub hits: u64,
}

/// A pool as listed: (address, weight, healthy, in flight, requests) per member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolView {
    pub name: String,
    pub scheduler: String,
    pub requests: u64,
    pub no_server: u64,
    pub members: Vec<MemberView>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub addr: SocketAddr,
    pub weight: u32,
    pub healthy: bool,
    pub active: u32,
    pub requests: u64,
    pub failures: u64,
}

/// A content service as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceView {
    pub vip: SocketAddr,
    pub mode: Mode,
    pub conns: u64,
    /// Client connections open now.
    pub open: u64,
    /// Client connections refused by `max_connections`.
    pub refused: u64,
    pub requests: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub rules: Vec<RuleView>,
    pub default_pool: Option<String>,
    pub default_hits: u64,
    pub pools: Vec<PoolView>,
}

impl Engine {
    /// Start `workers` threads (no services yet).
    pub fn new(workers: usize) -> Result<Self, L7Error> {
        let mut handles = Vec::new();
        for i in 0..workers.max(1) {
            let poll = Poll::new().map_err(L7Error::Thread)?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(L7Error::Thread)?);
            let (tx, rx) = channel();
            let worker = Worker::new(poll, rx);
            let thread = std::thread::Builder::new()
                .name(format!("l7-worker-{i}"))
                .spawn(move || worker.run())
                .map_err(L7Error::Thread)?;
            handles.push(WorkerHandle {
                tx,
                waker,
                thread: Some(thread),
            });
        }
        Ok(Self {
            workers: handles,
            services: Vec::new(),
            health: Arc::default(),
            counters: LastingCounters::default(),
        })
    }

    fn build(
        &mut self,
        cfg: &ContentServiceConfig,
        pools: &[PoolConfig],
        plugins: &mut dyn PluginSource,
    ) -> Result<RouteTable, L7Error> {
        let settings = Settings::from_config(cfg);
        let vip = settings.vip;
        // Only the pools this service uses, in first-use order.
        let mut used: Vec<&str> = Vec::new();
        for name in cfg
            .default_pool
            .iter()
            .map(String::as_str)
            .chain(cfg.rules.iter().map(|r| r.pool.as_str()))
        {
            if !used.contains(&name) {
                used.push(name);
            }
        }
        let health = self
            .health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut built = Vec::new();
        for name in &used {
            let pc = pools
                .iter()
                .find(|p| p.name == *name)
                .ok_or_else(|| L7Error::Config(format!("pool {name:?} is not defined")))?;
            let plugin = plugins
                .plugin(&pc.scheduler)
                .map_err(|reason| L7Error::Scheduler {
                    pool: pc.name.clone(),
                    reason,
                })?;
            let c = &mut self.counters;
            let mut lookup = |m: Option<SocketAddr>| match m {
                Some(a) => CountersRef::Member(Arc::clone(
                    c.members.entry((vip, pc.name.clone(), a)).or_default(),
                )),
                None => CountersRef::Pool(Arc::clone(
                    c.pools.entry((vip, pc.name.clone())).or_default(),
                )),
            };
            let healthy = |a: SocketAddr| health.get(&a).copied().unwrap_or(true);
            built.push(Arc::new(Pool::new(pc, plugin, vip, &mut lookup, &healthy)?));
        }
        let index = |name: &str| used.iter().position(|u| *u == name).unwrap_or(0);
        let mut rules = Vec::new();
        for (i, r) in cfg.rules.iter().enumerate() {
            let name = r.display_name(i);
            let path_regex = match &r.path_regex {
                Some(re) => Some(
                    regex::Regex::new(re)
                        .map_err(|e| L7Error::Config(format!("rule {name}: path_regex: {e}")))?,
                ),
                None => None,
            };
            let hits = Arc::clone(self.counters.rules.entry((vip, name.clone())).or_default());
            rules.push(Rule {
                name,
                host: r.host.as_deref().map(HostMatch::parse),
                path_prefix: r.path_prefix.clone(),
                path_regex,
                methods: r.methods.iter().map(|m| m.to_ascii_uppercase()).collect(),
                headers: r
                    .headers
                    .iter()
                    .map(|h| (h.name.clone(), h.value.clone()))
                    .collect(),
                pool: index(&r.pool),
                hits,
            });
        }
        let default_hits = Arc::clone(
            self.counters
                .rules
                .entry((vip, "(default)".into()))
                .or_default(),
        );
        Ok(RouteTable {
            settings,
            rules,
            pools: built,
            default_pool: cfg.default_pool.as_deref().map(index),
            default_hits,
        })
    }

    /// Replace the whole content configuration. Returns how many services were added,
    /// changed or removed.
    pub fn apply(
        &mut self,
        services: &[ContentServiceConfig],
        pools: &[PoolConfig],
        plugins: &mut dyn PluginSource,
    ) -> Result<usize, L7Error> {
        validate(services, pools).map_err(L7Error::Config)?;
        let mut tables = Vec::new();
        for s in services {
            tables.push((s, Arc::new(self.build(s, pools, plugins)?)));
        }
        // New listeners, all bound before anything changes.
        let mut fresh = Vec::new();
        for (s, t) in &tables {
            let vip = t.settings.vip;
            if self
                .services
                .iter()
                .any(|(x, m)| x.vip == vip && *m == s.mode)
            {
                continue;
            }
            let mut ls = Vec::new();
            for _ in &self.workers {
                ls.push(bind_reuseport(vip).map_err(|source| L7Error::Listen { vip, source })?);
            }
            fresh.push((vip, ls));
        }
        let mut changes = 0;
        let mut next = Vec::new();
        for (s, t) in tables {
            let vip = t.settings.vip;
            if let Some((svc, _)) = self
                .services
                .iter()
                .find(|(x, m)| x.vip == vip && *m == s.mode)
            {
                svc.replace(t);
                next.push((Arc::clone(svc), s.mode));
                changes += 1;
                continue;
            }
            let svc = Arc::new(ServiceShared::new(vip, t));
            let ls = fresh
                .iter_mut()
                .find(|(v, _)| *v == vip)
                .map(|(_, l)| std::mem::take(l))
                .unwrap_or_default();
            for (w, l) in self.workers.iter().zip(ls) {
                w.send(Command::Listen(Arc::clone(&svc), l));
            }
            lvs_common::event!(
                log::Level::Info,
                "content_service_added",
                vip = vip,
                mode = s.mode.name(),
            );
            next.push((svc, s.mode));
            changes += 1;
        }
        for (old, mode) in &self.services {
            if !next.iter().any(|(n, m)| Arc::ptr_eq(n, old) && m == mode) {
                for w in &self.workers {
                    w.send(Command::Unlisten(old.vip));
                }
                lvs_common::event!(log::Level::Info, "content_service_removed", vip = old.vip);
                changes += 1;
            }
        }
        self.services = next;
        Ok(changes)
    }

    /// Is there a content service on `vip`?
    pub fn serves(&self, vip: SocketAddr) -> bool {
        self.services.iter().any(|(s, _)| s.vip == vip)
    }

    /// The monitor's verdict on a real server, applied to every pool that has it. `false` if
    /// no pool of `vip`'s service has it.
    pub fn set_health(&mut self, vip: SocketAddr, server: SocketAddr, healthy: bool) -> bool {
        self.health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(server, healthy);
        let mut found = false;
        for (svc, _) in &self.services {
            let (t, _) = svc.current();
            for p in &t.pools {
                let hit = p.set_health(server, healthy);
                found |= hit && svc.vip == vip;
            }
        }
        found
    }

    /// Every content service with its rules, pools and counters.
    pub fn services(&self) -> Vec<ServiceView> {
        self.services
            .iter()
            .map(|(svc, mode)| {
                let (t, _) = svc.current();
                ServiceView {
                    vip: svc.vip,
                    mode: *mode,
                    conns: svc.conns.load(Ordering::Relaxed),
                    open: svc.open.load(Ordering::Relaxed),
                    refused: svc.refused.load(Ordering::Relaxed),
                    requests: svc.requests.load(Ordering::Relaxed),
                    bytes_in: svc.bytes_in.load(Ordering::Relaxed),
                    bytes_out: svc.bytes_out.load(Ordering::Relaxed),
                    rules: t
                        .rules
                        .iter()
                        .map(|r| RuleView {
                            name: r.name.clone(),
                            pool: t.pools[r.pool].name.clone(),
                            hits: r.hits.load(Ordering::Relaxed),
                        })
                        .collect(),
                    default_pool: t.default_pool.map(|p| t.pools[p].name.clone()),
                    default_hits: t.default_hits.load(Ordering::Relaxed),
                    pools: t
                        .pools
                        .iter()
                        .map(|p| PoolView {
                            name: p.name.clone(),
                            scheduler: p.scheduler.clone(),
                            requests: p.counters.requests.load(Ordering::Relaxed),
                            no_server: p.counters.no_server.load(Ordering::Relaxed),
                            members: p
                                .members
                                .iter()
                                .map(|m| MemberView {
                                    addr: m.addr,
                                    weight: m.weight,
                                    healthy: m.healthy.load(Ordering::Relaxed),
                                    active: m.counters.active.load(Ordering::Relaxed),
                                    requests: m.counters.requests.load(Ordering::Relaxed),
                                    failures: m.counters.failures.load(Ordering::Relaxed),
                                })
                                .collect(),
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// Stop the workers; every client connection is closed.
    pub fn stop(&mut self) {
        for w in &self.workers {
            w.send(Command::Stop);
        }
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
        self.services.clear();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}
