//! A pool: real servers with their own scheduler plugin instance, weights, health and counters.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lvs_sched_abi::{AF_INET, AF_INET6, DEST_F_QUIESCED};
use lvs_sched_host::{Dest, Flow, Instance, Plugin, ServiceSpec};

use crate::config::PoolConfig;
use crate::error::L7Error;

/// Counters of one real server in one pool. Kept across reloads (looked up by pool name and
/// address), so a reload does not zero them.
#[derive(Debug, Default)]
pub struct MemberCounters {
    /// Requests (or, in tls-sni mode, connections) in flight.
    pub active: AtomicU32,
    /// Requests sent to it.
    pub requests: AtomicU64,
    /// Connections to it that failed, or died before the response ended.
    pub failures: AtomicU64,
}

/// Counters of a pool.
#[derive(Debug, Default)]
pub struct PoolCounters {
    pub requests: AtomicU64,
    /// Requests answered 503 because no member was usable.
    pub no_server: AtomicU64,
}

#[derive(Debug)]
pub struct Member {
    pub addr: SocketAddr,
    pub weight: u32,
    pub healthy: AtomicBool,
    pub counters: Arc<MemberCounters>,
}

pub struct Pool {
    pub name: String,
    pub scheduler: String,
    pub members: Vec<Member>,
    pub counters: Arc<PoolCounters>,
    /// The plugin's state. Picks take this lock: schedulers are not thread-safe by the ABI's
    /// contract, and a pick is a few hundred nanoseconds, once per request.
    sched: Mutex<Instance>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.name)
            .field("scheduler", &self.scheduler)
            .field("members", &self.members.len())
            .finish()
    }
}

fn addr_bytes(ip: IpAddr) -> ([u8; 16], u8) {
    let mut a = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => {
            a[..4].copy_from_slice(&v4.octets());
            (a, AF_INET)
        }
        IpAddr::V6(v6) => (v6.octets(), AF_INET6),
    }
}

fn dest(id: u32, addr: SocketAddr, weight: u32) -> Dest {
    let (a, family) = addr_bytes(addr.ip());
    Dest {
        addr: a,
        port: addr.port(),
        family,
        weight,
        flags: if weight == 0 { DEST_F_QUIESCED } else { 0 },
        id,
        ..Dest::default()
    }
}

impl Pool {
    /// A pool for the service at `vip`; `counters` gives the lasting counters by name;
    /// `healthy` the monitor's current verdict on a member.
    pub fn new(
        cfg: &PoolConfig,
        plugin: Arc<Plugin>,
        vip: SocketAddr,
        counters: &mut dyn FnMut(Option<SocketAddr>) -> CountersRef,
        healthy: &dyn Fn(SocketAddr) -> bool,
    ) -> Result<Self, L7Error> {
        let (a, family) = addr_bytes(vip.ip());
        let spec = ServiceSpec {
            addr: a,
            port: vip.port(),
            family,
            protocol: 6,
            flags: 0,
            options: cfg.options.clone(),
        };
        let mut inst = Instance::new(plugin, spec).map_err(|e| L7Error::Scheduler {
            pool: cfg.name.clone(),
            reason: e.to_string(),
        })?;
        let mut members = Vec::with_capacity(cfg.servers.len());
        for (i, s) in cfg.servers.iter().enumerate() {
            let addr = SocketAddr::new(s.address, s.port);
            let ok = healthy(addr);
            let id = u32::try_from(i + 1).unwrap_or(u32::MAX);
            inst.add_dest(dest(id, addr, if ok { s.weight } else { 0 }))
                .map_err(|e| L7Error::Scheduler {
                    pool: cfg.name.clone(),
                    reason: e.to_string(),
                })?;
            let CountersRef::Member(c) = counters(Some(addr)) else {
                unreachable!("member counters asked")
            };
            members.push(Member {
                addr,
                weight: s.weight,
                healthy: AtomicBool::new(ok),
                counters: c,
            });
        }
        let CountersRef::Pool(pc) = counters(None) else {
            unreachable!("pool counters asked")
        };
        Ok(Self {
            name: cfg.name.clone(),
            scheduler: cfg.scheduler.clone(),
            members,
            counters: pc,
            sched: Mutex::new(inst),
        })
    }

    /// Pick a member for a request from `client` to `vip`, skipping those in `exclude` (servers
    /// that just refused a connection).
    pub fn pick(&self, client: SocketAddr, vip: SocketAddr, exclude: &[usize]) -> Option<usize> {
        let (src, family) = addr_bytes(client.ip());
        let (dst, _) = addr_bytes(vip.ip());
        let flow = Flow {
            src_addr: src,
            dst_addr: dst,
            src_port: client.port(),
            dst_port: vip.port(),
            family,
            protocol: 6,
            reserved: [0; 2],
        };
        let mut inst = self.sched.lock().unwrap_or_else(|p| p.into_inner());
        for (i, m) in self.members.iter().enumerate() {
            inst.set_conns(i, m.counters.active.load(Ordering::Relaxed), 0, 0);
        }
        for _ in 0..self.members.len().max(1) {
            let i = inst.schedule(&flow)?;
            if !exclude.contains(&i) {
                return Some(i);
            }
        }
        None
    }

    /// Apply the monitor's verdict on `addr`, if it is a member. An unhealthy member is
    /// scheduled as if its weight were 0.
    pub fn set_health(&self, addr: SocketAddr, healthy: bool) -> bool {
        let mut found = false;
        for (i, m) in self.members.iter().enumerate() {
            if m.addr != addr {
                continue;
            }
            found = true;
            if m.healthy.swap(healthy, Ordering::Relaxed) == healthy {
                continue;
            }
            let id = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let mut inst = self.sched.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = inst.update_dest(dest(id, addr, if healthy { m.weight } else { 0 })) {
                lvs_common::event!(
                    log::Level::Warn,
                    "l7_health_update_failed",
                    pool = self.name,
                    server = addr,
                    reason = e,
                );
            }
        }
        found
    }
}

/// What [`Pool::new`]'s counter lookup returns.
#[derive(Debug)]
pub enum CountersRef {
    Member(Arc<MemberCounters>),
    Pool(Arc<PoolCounters>),
}
