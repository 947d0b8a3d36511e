//! The workers' snapshot and the kernel guard's rules, made straight from the control state
//! with the registry's ids and scheduler instances. What the registry refused is left out of
//! both.

use std::collections::HashMap;
use std::sync::Arc;

use lvs_conntrack::{Addr, Forward, Proto};
use lvs_control::ControlState;
use lvs_netinfo::NextHopTable;
use lvs_proto::{FwdMethod, Protocol};

use super::IfAddrs;
use super::registry::ServiceRegistry;
use super::snapshot::{self, DestEntry, ServiceEntry, Snapshot};
use super::stats::WorkerStats;
use crate::fwmark::{MarkTable, Net, PortRange};
use crate::nftables::{Endpoint, L4, Marked, NftRules};

/// What the snapshot needs beside the configuration: where to send, and the counters.
#[derive(Debug, Clone)]
pub struct Surroundings {
    pub nexthops: Arc<NextHopTable>,
    pub mtus: HashMap<u32, u16>,
    pub if_addrs: Arc<IfAddrs>,
    pub all_stats: Arc<[Arc<WorkerStats>]>,
    pub active: bool,
    /// Every `[[fwmark]]` rule of the configuration.
    pub marks: Arc<MarkTable>,
    /// Active-active mode: see [`Snapshot::sloppy_tcp`].
    pub sloppy_tcp: bool,
}

/// A firewall-mark service has no protocol of its own: TCP stands in, as in IPVS.
fn proto_of(p: Protocol) -> Proto {
    match p {
        Protocol::Tcp | Protocol::Fwmark(_) => Proto::Tcp,
        Protocol::Udp => Proto::Udp,
    }
}

fn l4_of(p: Proto) -> L4 {
    match p {
        Proto::Tcp => L4::Tcp,
        Proto::Udp => L4::Udp,
    }
}

fn forward_of(f: FwdMethod) -> Forward {
    match f {
        FwdMethod::Masq => Forward::Nat,
        FwdMethod::Route => Forward::DirectRoute,
        FwdMethod::Tunnel => Forward::Tunnel,
    }
}

/// The snapshot of `state` (real servers at their effective weight: 0 while unhealthy) and
/// the guard rules that go with it.
pub fn build(
    state: &ControlState,
    registry: &ServiceRegistry,
    around: &Surroundings,
) -> (Snapshot, NftRules) {
    let mut services = HashMap::new();
    let mut by_mark = HashMap::new();
    let mut dest_index = HashMap::new();
    let mut dests: Vec<Option<DestEntry>> = Vec::new();
    let mut live = Vec::new();
    let mut any_nat = false;
    let mut vips = Vec::new();
    let mut nat_servers = Vec::new();
    let mut guard = NftRules::default();
    // VS/NAT servers of firewall-mark services: (mark, address, port), guarded below with
    // the ports of the mark's rules.
    let mut marked_nat = Vec::new();
    for svc in state.services() {
        let key = svc.conf.key;
        let Some(slot) = registry.service(&key) else {
            continue;
        };
        let vip = key.addr;
        let mark = key.mark();
        let proto = proto_of(key.protocol);
        let l4 = l4_of(proto);
        if mark.is_none() {
            vips.push(vip);
            guard.services.push(Endpoint {
                addr: vip,
                proto: l4,
                port: key.port,
            });
        }
        let persistence = svc
            .conf
            .persistence
            .map(|p| (p.timeout_secs, Addr::prefix_mask(vip.is_ipv4(), p.netmask)));
        let entry = Arc::new(ServiceEntry {
            id: slot.id,
            proto,
            vip,
            port: key.port,
            mark,
            persistence,
            sched: Arc::clone(&slot.sched),
            affinity: Arc::clone(&slot.affinity),
        });
        match mark {
            Some(m) => by_mark.insert((m, vip.is_ipv6()), entry),
            None => services.insert((snapshot::proto_number(proto), vip, key.port), entry),
        };
        for d in &svc.dests {
            let Some(id) = slot.dest(d.addr, d.port) else {
                continue;
            };
            let addr = d.addr;
            let conf = state.effective(&key, *d);
            let forward = forward_of(conf.fwd);
            any_nat |= forward == Forward::Nat;
            let port = if conf.port == 0 { key.port } else { conf.port };
            if forward == Forward::Nat {
                nat_servers.push(addr);
                match mark {
                    Some(m) => marked_nat.push((m, addr, port)),
                    None => guard.nat_servers.push(Endpoint {
                        addr,
                        proto: l4,
                        port,
                    }),
                }
            }
            let i = id as usize;
            if dests.len() <= i {
                dests.resize(i + 1, None);
            }
            dests[i] = Some(DestEntry {
                id,
                service: slot.id,
                addr,
                port,
                forward,
                weight: conf.weight,
                upper: conf.upper_threshold,
                lower: conf.lower_threshold,
            });
            live.push(id);
            dest_index.insert((slot.id, addr, conf.port), id);
        }
    }
    let marks = around.marks.active(|m, v6| by_mark.contains_key(&(m, v6)));
    for r in &marks.rules {
        vips.extend(r.net.addresses());
        guard.marked.push(Marked {
            net: r.net,
            proto: r.proto.map(l4_of),
            ports: r.ports.clone(),
        });
    }
    for (m, addr, port) in marked_nat {
        let rules = marks
            .rules
            .iter()
            .filter(|r| r.mark == m && r.net.addr.is_ipv6() == addr.is_ipv6());
        for r in rules {
            let ports = if port == 0 {
                r.ports.clone()
            } else {
                vec![PortRange {
                    first: port,
                    last: port,
                }]
            };
            guard.marked_nat.push(Marked {
                net: Net::host(addr),
                proto: r.proto.map(l4_of),
                ports,
            });
        }
    }
    vips.sort_unstable();
    vips.dedup();
    nat_servers.sort_unstable();
    nat_servers.dedup();
    let snap = Snapshot {
        services,
        by_mark,
        marks: Arc::new(marks),
        vips,
        nat_servers,
        dests,
        live_dests: live,
        any_nat,
        active: around.active,
        sloppy_tcp: around.sloppy_tcp,
        nexthops: Arc::clone(&around.nexthops),
        all_stats: Arc::clone(&around.all_stats),
        mtus: around.mtus.clone(),
        if_addrs: Arc::clone(&around.if_addrs),
        dest_index,
    };
    (snap, guard)
}
