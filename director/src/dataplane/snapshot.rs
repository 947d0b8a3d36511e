//! What the workers forward by: an immutable picture of the services, real servers and next
//! hops, rebuilt by the control thread on every change and handed to each worker whole. A
//! worker never sees half a change, and reading it takes no lock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use lvs_conntrack::{Addr, Forward, Proto, TemplateKey};
use lvs_netinfo::NextHopTable;
use lvs_sched_host::Instance;

use super::stats::WorkerStats;
use crate::fwmark::MarkTable;

/// A virtual service as the workers see it.
#[derive(Debug)]
pub struct ServiceEntry {
    /// The id used for counters and connection entries.
    pub id: u32,
    pub proto: Proto,
    pub vip: IpAddr,
    pub port: u16,
    /// `-f MARK`: a firewall-mark service (its `vip` is the unspecified address of its
    /// family, its `port` 0).
    pub mark: Option<u32>,
    /// `-p`: (timeout in seconds, netmask as an address).
    pub persistence: Option<(u32, Addr)>,
    /// The scheduler, shared by the workers: it is asked only for a new connection, and a
    /// scheduler like rr must see every new connection of the service to be exact (IPVS takes
    /// its `sched_lock` for the same reason). The packet path of an existing connection never
    /// touches it.
    pub sched: Arc<Mutex<Instance>>,
    /// `-p`: which real server each client (network) was given, shared by the workers. The
    /// fanout steers by client address *and port*, so two connections of one client usually
    /// land on two workers, each with its own table and templates: without this, each worker
    /// would schedule the client afresh. Asked only when a worker has no template of its own.
    pub affinity: Arc<Mutex<Affinity>>,
}

/// The persistence choices of one service, across workers: template key -> (real-server id,
/// valid until). Refreshed on every new connection of the client; stale entries are pruned
/// when the map has doubled since the last pruning.
#[derive(Debug, Default)]
pub struct Affinity {
    map: HashMap<TemplateKey, (u32, Instant)>,
    next_prune: usize,
}

impl Affinity {
    /// The real server this client network was given, if still valid.
    pub fn get(&self, key: &TemplateKey, now: Instant) -> Option<u32> {
        self.map
            .get(key)
            .filter(|(_, until)| *until > now)
            .map(|(dest, _)| *dest)
    }

    /// Record (or refresh) the client network's real server for `timeout_secs`.
    pub fn set(&mut self, key: TemplateKey, dest: u32, now: Instant, timeout_secs: u32) {
        let until = now + std::time::Duration::from_secs(u64::from(timeout_secs));
        self.map.insert(key, (dest, until));
        if self.map.len() >= self.next_prune {
            self.map.retain(|_, (_, u)| *u > now);
            self.next_prune = (self.map.len() * 2).max(1024);
        }
    }

    /// How many client networks are placed on this real server now.
    pub fn count(&self, dest: u32, now: Instant) -> u32 {
        let n = self
            .map
            .values()
            .filter(|(d, until)| *d == dest && *until > now)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Forget every client sent to this real server (it was deleted; its id may come back).
    pub fn forget_dest(&mut self, dest: u32) {
        self.map.retain(|_, (d, _)| *d != dest);
    }
}

/// A real server as the workers see it.
#[derive(Debug, Clone, Copy)]
pub struct DestEntry {
    pub id: u32,
    pub service: u32,
    pub addr: IpAddr,
    pub port: u16,
    pub forward: Forward,
    /// The weight the scheduler has: 0 when quiesced (`-w 0`) or reported unhealthy.
    pub weight: u32,
    /// `-x`/`-y`: connection thresholds, 0 meaning none.
    pub upper: u32,
    pub lower: u32,
}

/// The whole picture.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// By (protocol number, VIP, port); port 0 is a service on every port.
    pub services: HashMap<(u8, IpAddr, u16), Arc<ServiceEntry>>,
    /// Firewall-mark services by (mark, IPv6).
    pub by_mark: HashMap<(u32, bool), Arc<ServiceEntry>>,
    /// The `[[fwmark]]` rules of the marks in `by_mark`: asked when no address service
    /// matches.
    pub marks: Arc<MarkTable>,
    /// By real-server id.
    pub dests: Vec<Option<DestEntry>>,
    /// Every VIP with a service, sorted (IPv4 before IPv6): a packet the parser refuses by
    /// policy (a fragment, IP options, an IPv6 header chain it does not take) is counted when
    /// it was meant for one of them.
    pub vips: Vec<IpAddr>,
    /// The VS/NAT real servers' addresses, sorted, no duplicates: their replies come back
    /// through the director (the receive filter lets frames from them in).
    pub nat_servers: Vec<IpAddr>,
    /// Ids of the real servers that exist, for publishing their connection counts.
    pub live_dests: Vec<u32>,
    /// Active: forward. Standby: forward nothing (the heartbeat daemon's decision); the
    /// kernel guard still keeps the host's kernel from answering.
    pub active: bool,
    /// Active-active mode (IPVS's `sloppy_tcp`): a TCP segment other than a SYN that finds no
    /// entry (the router moved its flow here before sync told us of it) is scheduled like a
    /// SYN, by the same hash every director uses, instead of dropped.
    pub sloppy_tcp: bool,
    /// Whether any real server uses VS/NAT (only then can a packet be a reply to rewrite).
    pub any_nat: bool,
    /// Where to send: out interface, our MAC, next hop's MAC.
    pub nexthops: Arc<NextHopTable>,
    /// Every worker's counters: a scheduler needs the whole director's connection counts.
    pub all_stats: Arc<[Arc<WorkerStats>]>,
    /// The MTU of each interface by index, for VS/TUN.
    pub mtus: HashMap<u32, u16>,
    /// Each interface's addresses, for the VS/TUN outer source.
    pub if_addrs: Arc<super::IfAddrs>,
    /// Real-server ids by (service id, address, port), for entries received by sync.
    pub dest_index: HashMap<(u32, IpAddr, u16), u32>,
}

impl Snapshot {
    /// The service a packet to `vip:port` belongs to: by address first, then by the mark
    /// the `[[fwmark]]` rules give it (IPVS's order).
    #[inline]
    pub fn service(&self, proto: Proto, vip: IpAddr, port: u16) -> Option<&Arc<ServiceEntry>> {
        let p = proto_number(proto);
        self.services
            .get(&(p, vip, port))
            .or_else(|| self.services.get(&(p, vip, 0)))
            .or_else(|| {
                let mark = self.marks.classify(proto, vip, port)?;
                self.by_mark.get(&(mark, vip.is_ipv6()))
            })
    }

    /// The firewall-mark service of a persistence template received by sync: its virtual
    /// address is the mark ([`template_addr`]), its port 0.
    pub fn template_service(&self, vip: IpAddr, port: u16) -> Option<&Arc<ServiceEntry>> {
        let mark = match vip {
            _ if port != 0 => return None,
            IpAddr::V4(a) => u32::from(a),
            IpAddr::V6(a) => u32::try_from(u128::from(a)).ok()?,
        };
        self.by_mark.get(&(mark, vip.is_ipv6()))
    }

    /// The director's own address to send from on `ifindex` toward `dst`, as the kernel would
    /// pick it: an address of `dst`'s family, primary, whose subnet holds `dst`, else the first
    /// primary one that is not a host route (a VIP is usually a /32 or /128), else any. An IPv6
    /// link-local address is never picked for a destination beyond the link.
    pub fn source_addr(&self, ifindex: u32, dst: IpAddr) -> Option<IpAddr> {
        let addrs = self.if_addrs.get(&ifindex)?;
        let host = host_prefix(dst);
        let usable = |e: &&(IpAddr, u8, bool)| {
            e.0.is_ipv4() == dst.is_ipv4() && (!is_link_local(e.0) || is_link_local(dst))
        };
        let same_subnet = |e: &&(IpAddr, u8, bool)| same_prefix(e.0, dst, e.1);
        let mut family = addrs.iter().filter(usable);
        family
            .clone()
            .find(|e| same_subnet(e) && e.1 < host)
            .or_else(|| family.clone().find(|e| e.1 < host))
            .or_else(|| family.next())
            .map(|e| e.0)
    }

    /// The id of a service's real server by address and port (a port-0 server matches any).
    pub fn dest_by_addr(&self, service: u32, addr: IpAddr, port: u16) -> Option<u32> {
        self.dest_index
            .get(&(service, addr, port))
            .or_else(|| self.dest_index.get(&(service, addr, 0)))
            .copied()
    }

    #[inline]
    pub fn dest(&self, id: u32) -> Option<&DestEntry> {
        self.dests.get(id as usize).and_then(Option::as_ref)
    }
}

/// The virtual address of a firewall-mark service's persistence templates: the mark itself
/// (`0.0.0.1` for mark 1; `::1` for IPv6), as IPVS keys them. One template per client
/// covers every address, port and protocol of the mark.
pub fn template_addr(mark: u32, ipv6: bool) -> IpAddr {
    if ipv6 {
        IpAddr::V6(u128::from(mark).into())
    } else {
        IpAddr::V4(mark.into())
    }
}

/// 32 for IPv4, 128 for IPv6: the prefix length of a host route.
fn host_prefix(a: IpAddr) -> u8 {
    if a.is_ipv4() { 32 } else { 128 }
}

fn is_link_local(a: IpAddr) -> bool {
    matches!(a, IpAddr::V6(v) if v.segments()[0] & 0xffc0 == 0xfe80)
}

/// Whether `a` and `b` (of one family) share their first `len` bits.
fn same_prefix(a: IpAddr, b: IpAddr, len: u8) -> bool {
    let bits = |x: IpAddr| match x {
        IpAddr::V4(v) => u128::from(u32::from(v)) << 96,
        IpAddr::V6(v) => u128::from(v),
    };
    if a.is_ipv4() != b.is_ipv4() {
        return false;
    }
    let mask = u128::MAX
        .checked_shl(128 - u32::from(len.min(host_prefix(a))))
        .unwrap_or(0);
    bits(a) & mask == bits(b) & mask
}

pub fn proto_number(p: Proto) -> u8 {
    match p {
        Proto::Tcp => 6,
        Proto::Udp => 17,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_conntrack::Endpoint;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    fn key(client: [u8; 4]) -> TemplateKey {
        let vip = Endpoint::new(Ipv4Addr::new(203, 0, 113, 100).into(), 80);
        let mask = Addr::prefix_mask(true, 32);
        TemplateKey::new(Proto::Tcp, Ipv4Addr::from(client).into(), &mask, vip)
    }

    #[test]
    fn affinity_holds_until_its_timeout_and_forgets_a_deleted_server() {
        let mut a = Affinity::default();
        let t0 = Instant::now();
        a.set(key([198, 51, 100, 2]), 7, t0, 60);
        a.set(key([198, 51, 100, 3]), 8, t0, 60);
        assert_eq!(a.get(&key([198, 51, 100, 2]), t0), Some(7));
        assert_eq!(a.get(&key([198, 51, 100, 9]), t0), None);
        assert_eq!(
            a.get(&key([198, 51, 100, 2]), t0 + Duration::from_secs(61)),
            None
        );
        a.forget_dest(7);
        assert_eq!(a.get(&key([198, 51, 100, 2]), t0), None);
        assert_eq!(a.get(&key([198, 51, 100, 3]), t0), Some(8));
    }

    #[test]
    fn count_is_one_per_live_client_network() {
        let mut a = Affinity::default();
        let t0 = Instant::now();
        a.set(key([198, 51, 100, 2]), 7, t0, 60);
        // The same client again (another worker's connection): still one.
        a.set(key([198, 51, 100, 2]), 7, t0, 60);
        a.set(key([198, 51, 100, 3]), 7, t0, 30);
        a.set(key([198, 51, 100, 4]), 8, t0, 60);
        assert_eq!((a.count(7, t0), a.count(8, t0), a.count(9, t0)), (2, 1, 0));
        assert_eq!(a.count(7, t0 + Duration::from_secs(31)), 1, "one expired");
    }

    fn with_addrs(addrs: Vec<(IpAddr, u8, bool)>) -> Snapshot {
        Snapshot {
            services: HashMap::new(),
            by_mark: HashMap::new(),
            marks: Arc::default(),
            dests: Vec::new(),
            vips: Vec::new(),
            nat_servers: Vec::new(),
            live_dests: Vec::new(),
            active: true,
            sloppy_tcp: false,
            any_nat: false,
            nexthops: Arc::new(lvs_netinfo::NextHopTable::default()),
            all_stats: Vec::new().into(),
            mtus: HashMap::new(),
            if_addrs: Arc::new(HashMap::from([(2, addrs)])),
            dest_index: HashMap::new(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    /// The VS/TUN outer source: the director's address of the real server's family, in its
    /// subnet when there is one, never the VIP (a host route) nor a link-local address.
    #[test]
    fn the_source_address_is_of_the_destinations_family() {
        let snap = with_addrs(vec![
            (ip("203.0.113.100"), 32, false),
            (ip("fe80::1"), 64, false),
            (ip("2001:db8::100"), 128, false),
            (ip("203.0.113.1"), 24, false),
            (ip("2001:db8:1::1"), 64, false),
            (ip("2001:db8:2::1"), 64, false),
        ]);
        let src = |dst: &str| snap.source_addr(2, ip(dst));
        assert_eq!(src("203.0.113.11"), Some(ip("203.0.113.1")));
        assert_eq!(src("198.51.100.2"), Some(ip("203.0.113.1")));
        assert_eq!(src("2001:db8:2::11"), Some(ip("2001:db8:2::1")));
        assert_eq!(src("2001:db8:9::11"), Some(ip("2001:db8:1::1")));
        assert_eq!(src("fe80::11"), Some(ip("fe80::1")));
        assert_eq!(snap.source_addr(3, ip("2001:db8:2::11")), None);
        let v4_only = with_addrs(vec![(ip("203.0.113.1"), 24, false)]);
        assert_eq!(v4_only.source_addr(2, ip("2001:db8::11")), None);
    }
}
