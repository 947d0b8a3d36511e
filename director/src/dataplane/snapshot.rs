//! What the workers forward by: an immutable picture of the services, real servers and next
//! hops, rebuilt by the control thread on every change and handed to each worker whole. A
//! worker never sees half a change, and reading it takes no lock.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use lvs_conntrack::{Addr, Forward, Proto};
use lvs_netinfo::NextHopTable;
use lvs_sched_host::Instance;

use super::stats::WorkerStats;

/// A virtual service as the workers see it.
#[derive(Debug)]
pub struct ServiceEntry {
    /// The id used for counters and connection entries.
    pub id: u32,
    pub proto: Proto,
    pub vip: Ipv4Addr,
    pub port: u16,
    /// `-p`: (timeout in seconds, netmask as an address).
    pub persistence: Option<(u32, Addr)>,
    /// The scheduler, shared by the workers: it is asked only for a new connection, and a
    /// scheduler like rr must see every new connection of the service to be exact (IPVS takes
    /// its `sched_lock` for the same reason). The packet path of an existing connection never
    /// touches it.
    pub sched: Arc<Mutex<Instance>>,
}

/// A real server as the workers see it.
#[derive(Debug, Clone, Copy)]
pub struct DestEntry {
    pub id: u32,
    pub service: u32,
    pub addr: Ipv4Addr,
    pub port: u16,
    pub forward: Forward,
    /// `-x`/`-y`: connection thresholds, 0 meaning none.
    pub upper: u32,
    pub lower: u32,
}

/// The whole picture.
#[derive(Debug)]
pub struct Snapshot {
    /// By (protocol number, VIP, port); port 0 is a service on every port.
    pub services: HashMap<(u8, Ipv4Addr, u16), Arc<ServiceEntry>>,
    /// By real-server id.
    pub dests: Vec<Option<DestEntry>>,
    /// Ids of the real servers that exist, for publishing their connection counts.
    pub live_dests: Vec<u32>,
    /// Whether any real server uses VS/NAT (only then can a packet be a reply to rewrite).
    pub any_nat: bool,
    /// Where to send: out interface, our MAC, next hop's MAC.
    pub nexthops: Arc<NextHopTable>,
    /// Every worker's counters: a scheduler needs the whole director's connection counts.
    pub all_stats: Arc<[Arc<WorkerStats>]>,
    /// The MTU of each interface by index, for VS/TUN.
    pub mtus: HashMap<u32, u16>,
}

impl Snapshot {
    /// The service a packet to `vip:port` belongs to.
    #[inline]
    pub fn service(&self, proto: Proto, vip: Ipv4Addr, port: u16) -> Option<&Arc<ServiceEntry>> {
        let p = proto_number(proto);
        self.services
            .get(&(p, vip, port))
            .or_else(|| self.services.get(&(p, vip, 0)))
    }

    #[inline]
    pub fn dest(&self, id: u32) -> Option<&DestEntry> {
        self.dests.get(id as usize).and_then(Option::as_ref)
    }
}

pub fn proto_number(p: Proto) -> u8 {
    match p {
        Proto::Tcp => 6,
        Proto::Udp => 17,
    }
}
