//! Routes, IPv4 and IPv6: a snapshot of the main table (RTM_GETROUTE dump) with a
//! longest-prefix-match lookup per family in plain Rust, and the kernel's own answer for one
//! address (RTM_GETROUTE).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::{NetinfoError, Result};
use crate::rtnl::Netlink;

/// One unicast route of the main table (IPv4 or IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Destination network (host bits zero); its family is the route's family.
    pub dst: IpAddr,
    /// Prefix length, 0 for the default route.
    pub prefix_len: u8,
    /// Next-hop router; `None` for a directly connected network. For IPv6 usually a link-local
    /// address (fe80::/10), which only means something together with `oif`.
    pub gateway: Option<IpAddr>,
    /// Output interface index.
    pub oif: u32,
    /// Route metric (RTA_PRIORITY); lower wins between routes to the same prefix.
    pub metric: u32,
}

/// Where to send a packet: out of `ifindex`, to `gateway` or (if `None`) straight to the
/// destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NextHop {
    /// Output interface index.
    pub ifindex: u32,
    /// Router to hand the packet to, `None` when the destination is on the link.
    pub gateway: Option<IpAddr>,
}

impl NextHop {
    /// The address whose MAC the packet must carry: the gateway, or the destination itself.
    #[must_use]
    pub fn neighbour_for(&self, dst: IpAddr) -> IpAddr {
        self.gateway.unwrap_or(dst)
    }
}

/// An address family's numbers as one unsigned integer, for masks and binary searches.
trait Bits: Copy + Ord + Default + std::ops::BitAnd<Output = Self> + std::fmt::Debug {
    /// Address length in bits (32 or 128).
    const LEN: u8;
    /// All ones.
    const ONES: Self;
    /// `self << n` for n < LEN.
    fn shl(self, n: u8) -> Self;
    /// The address's bits, when it is of this family.
    fn of(addr: IpAddr) -> Option<Self>;

    fn mask(prefix_len: u8) -> Self {
        match prefix_len {
            0 => Self::default(),
            n => Self::ONES.shl(Self::LEN - n.min(Self::LEN)),
        }
    }
}

macro_rules! bits {
    ($t:ty, $family:ident, $len:literal) => {
        impl Bits for $t {
            const LEN: u8 = $len;
            const ONES: Self = <$t>::MAX;
            fn shl(self, n: u8) -> Self {
                self << n
            }
            fn of(addr: IpAddr) -> Option<Self> {
                match addr {
                    IpAddr::$family(a) => Some(a.into()),
                    _ => None,
                }
            }
        }
    };
}
bits!(u32, V4, 32);
bits!(u128, V6, 128);

fn mask(prefix_len: u8) -> u32 {
    <u32 as Bits>::mask(prefix_len)
}

/// `addr` with its host bits beyond `prefix_len` cleared (same family).
fn network(addr: IpAddr, prefix_len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask(prefix_len))),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(
            u128::from(a) & <u128 as Bits>::mask(prefix_len),
        )),
    }
}

fn ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

/// Build a [`Route`] from an RTM_NEWROUTE message; `None` for anything the director must not
/// use: other families, other tables, non-unicast (local, broadcast, blackhole, unreachable ...),
/// TOS-specific, cloned or dead routes.
pub(crate) fn route_from_message(m: &RouteMessage) -> Option<Route> {
    let h = &m.header;
    let (unspecified, max_len) = match h.address_family {
        AddressFamily::Inet => (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 32),
        AddressFamily::Inet6 => (IpAddr::V6(Ipv6Addr::UNSPECIFIED), 128),
        _ => return None,
    };
    if h.kind != RouteType::Unicast
        || h.tos != 0
        || h.destination_prefix_length > max_len
        || h.flags.intersects(RouteFlags::Cloned | RouteFlags::Dead)
    {
        return None;
    }
    let same_family = |a: IpAddr| (a.is_ipv4() == unspecified.is_ipv4()).then_some(a);
    let mut table = u32::from(h.table);
    let mut dst = unspecified;
    let mut gateway = None;
    let mut oif = None;
    let mut metric = 0;
    for attr in &m.attributes {
        match attr {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(a) => dst = ip(a).and_then(same_family)?,
            RouteAttribute::Gateway(a) => gateway = ip(a).and_then(same_family),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::MultiPath(hops) if oif.is_none() => {
                // ECMP: the snapshot keeps the first live next hop (see the crate's limits).
                if let Some(hop) = hops.iter().find(|h| h.interface_index != 0) {
                    oif = Some(hop.interface_index);
                    gateway = hop.attributes.iter().find_map(|a| match a {
                        RouteAttribute::Gateway(g) => ip(g).and_then(same_family),
                        _ => None,
                    });
                }
            }
            _ => {}
        }
    }
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        return None;
    }
    let prefix_len = h.destination_prefix_length;
    Some(Route {
        dst: network(dst, prefix_len),
        prefix_len,
        gateway,
        oif: oif?,
        metric,
    })
}

/// One family's longest-prefix-match index over a range of [`Fib::routes`].
#[derive(Debug, Clone, Default)]
struct Lpm<K> {
    /// Network numbers of the family's routes, same order as they are in `Fib::routes`.
    keys: Vec<K>,
    /// Where the family's routes start in `Fib::routes`.
    start: usize,
    /// (prefix length, mask, range in `keys`) for every prefix length present, longest first.
    levels: Vec<(u8, K, Range<usize>)>,
}

impl<K: Bits> Lpm<K> {
    /// Index `routes` (all of this family, sorted longest prefix first, then by network),
    /// which sit at `start..` in the snapshot.
    fn new(routes: &[Route], start: usize) -> Self {
        let keys = routes.iter().filter_map(|r| K::of(r.dst)).collect();
        let mut levels: Vec<(u8, K, Range<usize>)> = Vec::new();
        for (i, r) in routes.iter().enumerate() {
            match levels.last_mut() {
                Some((len, _, range)) if *len == r.prefix_len => range.end = i + 1,
                _ => levels.push((r.prefix_len, K::mask(r.prefix_len), i..i + 1)),
            }
        }
        Self {
            keys,
            start,
            levels,
        }
    }

    /// Index in `Fib::routes` of the most specific route covering `a`.
    fn find(&self, a: K) -> Option<usize> {
        self.levels.iter().find_map(|(_, m, range)| {
            self.keys[range.clone()]
                .binary_search(&(a & *m))
                .ok()
                .map(|i| self.start + range.start + i)
        })
    }
}

/// An immutable snapshot of the main routing table, IPv4 and IPv6, with longest-prefix-match
/// lookup within the address's family.
///
/// Layout per family: routes sorted by prefix length (longest first) then network; one binary
/// search per prefix length present (usually a handful). `lookup` neither allocates nor locks.
#[derive(Debug, Clone, Default)]
pub struct Fib {
    /// IPv4 routes, then IPv6 routes; each family sorted by (prefix_len descending, dst), one
    /// route per prefix (the lowest metric).
    routes: Vec<Route>,
    v4: Lpm<u32>,
    v6: Lpm<u128>,
}

/// The sort key within one family: longest prefix first, then network, then metric.
fn order(r: &Route) -> (std::cmp::Reverse<u8>, IpAddr, u32) {
    (std::cmp::Reverse(r.prefix_len), r.dst, r.metric)
}

impl Fib {
    /// Build a snapshot from routes of both families (their host bits are cleared; between
    /// routes to the same prefix the lowest metric wins, as in the kernel).
    pub fn from_routes(routes: impl IntoIterator<Item = Route>) -> Fib {
        let (mut v4, mut v6): (Vec<Route>, Vec<Route>) = routes
            .into_iter()
            .filter(|r| r.prefix_len <= if r.dst.is_ipv4() { 32 } else { 128 })
            .map(|mut r| {
                r.dst = network(r.dst, r.prefix_len);
                r
            })
            .partition(|r| r.dst.is_ipv4());
        for family in [&mut v4, &mut v6] {
            family.sort_by_key(order);
            family.dedup_by_key(|r| (r.prefix_len, r.dst));
        }
        let v4_index = Lpm::new(&v4, 0);
        let v6_index = Lpm::new(&v6, v4.len());
        v4.append(&mut v6);
        Fib {
            routes: v4,
            v4: v4_index,
            v6: v6_index,
        }
    }

    /// The most specific route of `addr`'s family covering `addr`.
    #[must_use]
    pub fn lookup_route(&self, addr: impl Into<IpAddr>) -> Option<&Route> {
        let i = match addr.into() {
            IpAddr::V4(a) => self.v4.find(u32::from(a)),
            IpAddr::V6(a) => self.v6.find(u128::from(a)),
        };
        i.map(|i| &self.routes[i])
    }

    /// Where a packet for `addr` goes, by longest prefix match; `None` when no route covers it.
    #[must_use]
    pub fn lookup(&self, addr: impl Into<IpAddr>) -> Option<NextHop> {
        self.lookup_route(addr).map(|r| NextHop {
            ifindex: r.oif,
            gateway: r.gateway,
        })
    }

    /// All routes of the snapshot: IPv4 then IPv6, each most specific first.
    #[must_use]
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Number of routes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when the snapshot has no route at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Every (interface, gateway) pair the table routes through, without duplicates.
    #[must_use]
    pub fn gateways(&self) -> Vec<(u32, IpAddr)> {
        let mut v: Vec<_> = self
            .routes
            .iter()
            .filter_map(|r| r.gateway.map(|g| (r.oif, g)))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

impl Netlink {
    /// A snapshot of the main routing table, IPv4 and IPv6 (unicast routes only).
    ///
    /// # Errors
    /// Netlink failures.
    pub fn fib(&mut self) -> Result<Fib> {
        Ok(Fib::from_routes(self.main_routes()?))
    }

    /// The unicast routes of the main table, IPv4 then IPv6, as the kernel lists them.
    ///
    /// # Errors
    /// Netlink failures.
    pub fn main_routes(&mut self) -> Result<Vec<Route>> {
        let request = |family| {
            let mut req = RouteMessage::default();
            req.header.address_family = family;
            RouteNetlinkMessage::GetRoute(req)
        };
        let msgs = self.dump_both_families(request, ["IPv4 route", "IPv6 route"])?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => route_from_message(r),
                _ => None,
            })
            .collect())
    }

    /// The kernel's own routing decision for `addr` (like `ip route get`), all tables and rules
    /// considered. For a local address the interface is the loopback.
    ///
    /// # Errors
    /// ENETUNREACH/EHOSTUNREACH when there is no route; other netlink failures.
    pub fn route_get(&mut self, addr: impl Into<IpAddr>) -> Result<NextHop> {
        let addr = addr.into();
        let mut req = RouteMessage::default();
        let (family, len, dst) = match addr {
            IpAddr::V4(a) => (AddressFamily::Inet, 32, RouteAddress::Inet(a)),
            IpAddr::V6(a) => (AddressFamily::Inet6, 128, RouteAddress::Inet6(a)),
        };
        req.header.address_family = family;
        req.header.destination_prefix_length = len;
        req.attributes.push(RouteAttribute::Destination(dst));
        let op = || format!("look up the route to {addr}");
        let msgs = self.request(RouteNetlinkMessage::GetRoute(req), 0, &op)?;
        msgs.iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => {
                    let mut hop = NextHop {
                        ifindex: 0,
                        gateway: None,
                    };
                    for attr in &r.attributes {
                        match attr {
                            RouteAttribute::Oif(i) => hop.ifindex = *i,
                            RouteAttribute::Gateway(g) => hop.gateway = ip(g),
                            _ => {}
                        }
                    }
                    Some(hop)
                }
                _ => None,
            })
            .ok_or_else(|| NetinfoError::Decode {
                op: op(),
                detail: "the kernel acknowledged without sending a route".into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtnl::tests::{nla, nlmsg};
    use crate::rtnl::{Frame, classify};

    fn r(dst: [u8; 4], len: u8, gw: Option<[u8; 4]>, oif: u32, metric: u32) -> Route {
        Route {
            dst: dst.into(),
            prefix_len: len,
            gateway: gw.map(IpAddr::from),
            oif,
            metric,
        }
    }

    fn hop(ifindex: u32, gw: Option<[u8; 4]>) -> Option<NextHop> {
        Some(NextHop {
            ifindex,
            gateway: gw.map(IpAddr::from),
        })
    }

    #[test]
    fn longest_prefix_wins() {
        let fib = Fib::from_routes([
            r([0, 0, 0, 0], 0, Some([10, 0, 0, 1]), 2, 0),
            r([10, 0, 0, 0], 24, None, 2, 0),
            r([10, 0, 0, 0], 8, Some([10, 0, 0, 254]), 2, 0),
            r([192, 168, 7, 0], 24, None, 3, 0),
            r([192, 168, 7, 128], 25, Some([192, 168, 7, 1]), 3, 0),
            r([192, 168, 7, 200], 32, None, 4, 0),
        ]);
        let at = |s: &str| fib.lookup(s.parse::<IpAddr>().unwrap());
        assert_eq!(at("10.0.0.77"), hop(2, None));
        assert_eq!(at("10.9.9.9"), hop(2, Some([10, 0, 0, 254])));
        assert_eq!(at("8.8.8.8"), hop(2, Some([10, 0, 0, 1])));
        assert_eq!(at("192.168.7.5"), hop(3, None));
        assert_eq!(at("192.168.7.129"), hop(3, Some([192, 168, 7, 1])));
        assert_eq!(at("192.168.7.200"), hop(4, None));
        assert_eq!(at("192.168.7.201"), hop(3, Some([192, 168, 7, 1])));
        assert_eq!(fib.v4.levels.len(), 5);
        assert_eq!(fib.gateways().len(), 3);
    }

    #[test]
    fn no_default_route_means_no_answer() {
        let fib = Fib::from_routes([r([10, 1, 0, 0], 16, None, 5, 0)]);
        assert_eq!(fib.lookup(Ipv4Addr::new(10, 2, 0, 1)), None);
        assert_eq!(fib.lookup(Ipv4Addr::new(10, 1, 255, 255)), hop(5, None));
        assert_eq!(Fib::default().lookup(Ipv4Addr::new(1, 1, 1, 1)), None);
        assert!(Fib::default().is_empty());
    }

    #[test]
    fn lowest_metric_wins_and_host_bits_are_cleared() {
        let fib = Fib::from_routes([
            r([0, 0, 0, 0], 0, Some([10, 0, 0, 2]), 2, 200),
            r([0, 0, 0, 0], 0, Some([10, 0, 0, 1]), 2, 100),
            r([172, 16, 3, 9], 16, None, 7, 0), // host bits set: still 172.16.0.0/16
        ]);
        assert_eq!(fib.len(), 2);
        assert_eq!(
            fib.lookup(Ipv4Addr::new(1, 2, 3, 4)),
            hop(2, Some([10, 0, 0, 1]))
        );
        assert_eq!(fib.routes()[0].dst, Ipv4Addr::new(172, 16, 0, 0));
        assert_eq!(fib.lookup(Ipv4Addr::new(172, 16, 200, 1)), hop(7, None));
    }

    #[test]
    fn lpm_agrees_with_a_linear_scan() {
        // A deterministic pseudo-random table and addresses, checked against brute force.
        let mut x: u32 = 0x1234_5678;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let routes: Vec<Route> = (0..300)
            .map(|i| {
                let len = u8::try_from(next() % 33).unwrap();
                Route {
                    dst: Ipv4Addr::from(next() & mask(len) & 0x0fff_ffff).into(),
                    prefix_len: len,
                    gateway: None,
                    oif: i,
                    metric: next() % 3,
                }
            })
            .collect();
        let fib = Fib::from_routes(routes.clone());
        for _ in 0..5000 {
            let a = next() & 0x0fff_ffff;
            let best = routes
                .iter()
                .filter(|r| IpAddr::V4(Ipv4Addr::from(a & mask(r.prefix_len))) == r.dst)
                .min_by_key(|r| (std::cmp::Reverse(r.prefix_len), r.metric, r.dst));
            let got = fib.lookup_route(Ipv4Addr::from(a));
            assert_eq!(
                got.map(|r| (r.dst, r.prefix_len, r.metric)),
                best.map(|r| (r.dst, r.prefix_len, r.metric)),
                "address {}",
                Ipv4Addr::from(a)
            );
        }
    }

    fn r6(dst: &str, len: u8, gw: Option<&str>, oif: u32, metric: u32) -> Route {
        Route {
            dst: dst.parse().unwrap(),
            prefix_len: len,
            gateway: gw.map(|g| g.parse().unwrap()),
            oif,
            metric,
        }
    }

    #[test]
    fn ipv6_longest_prefix_wins_within_its_family() {
        let fib = Fib::from_routes([
            r([0, 0, 0, 0], 0, Some([10, 0, 0, 1]), 2, 0),
            r6("::", 0, Some("fe80::1"), 2, 1024),
            r6("2001:db8::", 32, Some("fe80::2"), 3, 0),
            r6("2001:db8:1::", 64, None, 4, 256),
            r6("2001:db8:1::77", 128, None, 5, 0),
            r6("2001:db8:2:ffff::", 48, None, 6, 0), // host bits set: still 2001:db8:2::/48
            r6("2001:db8:1::", 64, None, 7, 512),    // higher metric: loses
        ]);
        let at = |s: &str| fib.lookup(s.parse::<IpAddr>().unwrap());
        let hop6 = |ifindex, gw: Option<&str>| {
            Some(NextHop {
                ifindex,
                gateway: gw.map(|g| g.parse().unwrap()),
            })
        };
        assert_eq!(at("2001:db8:1::5"), hop6(4, None));
        assert_eq!(at("2001:db8:1::77"), hop6(5, None));
        assert_eq!(at("2001:db8:2::1"), hop6(6, None));
        assert_eq!(at("2001:db8:9::1"), hop6(3, Some("fe80::2")));
        assert_eq!(at("2606:4700::1"), hop6(2, Some("fe80::1")));
        // Each family only matches its own routes: the IPv4 default does not catch IPv6, and
        // the IPv6 default does not catch IPv4 (nor IPv4-mapped addresses' low bits).
        assert_eq!(at("10.9.9.9"), hop(2, Some([10, 0, 0, 1])));
        let v6_only = Fib::from_routes([r6("::", 0, Some("fe80::1"), 2, 0)]);
        assert_eq!(v6_only.lookup(Ipv4Addr::new(1, 2, 3, 4)), None);
        let v4_only = Fib::from_routes([r([0, 0, 0, 0], 0, None, 2, 0)]);
        assert_eq!(v4_only.lookup("::1".parse::<IpAddr>().unwrap()), None);
        // IPv4 routes come first in the listing; the IPv6 default is last.
        assert_eq!(fib.len(), 6);
        assert!(fib.routes()[0].dst.is_ipv4());
        assert_eq!(fib.routes()[5].dst, "::".parse::<IpAddr>().unwrap());
        assert_eq!(fib.gateways().len(), 3);
        assert_eq!(fib.v6.levels.len(), 5);
    }

    #[test]
    fn ipv6_lpm_agrees_with_a_linear_scan() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // Addresses within 2001:db8::/32 with varied bits at every depth.
        let base = u128::from("2001:db8::".parse::<Ipv6Addr>().unwrap());
        let addr = |n: u64, m: u64| base | (u128::from(n) << 64 | u128::from(m)) >> 32;
        let routes: Vec<Route> = (0..300)
            .map(|i| {
                let len = 32 + u8::try_from(next() % 97).unwrap();
                let a = addr(next(), next()) & <u128 as Bits>::mask(len);
                Route {
                    dst: Ipv6Addr::from(a).into(),
                    prefix_len: len,
                    gateway: None,
                    oif: i,
                    metric: u32::try_from(next() % 3).unwrap(),
                }
            })
            .collect();
        let fib = Fib::from_routes(routes.clone());
        for i in 0..5000 {
            // Half the probes inside some route's network, half anywhere.
            let a = if i % 2 == 0 {
                let r = &routes[usize::try_from(next() % 300).unwrap()];
                let IpAddr::V6(d) = r.dst else { unreachable!() };
                u128::from(d) | (addr(next(), next()) & !<u128 as Bits>::mask(r.prefix_len))
            } else {
                addr(next(), next())
            };
            let probe = IpAddr::V6(Ipv6Addr::from(a));
            let best = routes
                .iter()
                .filter(|r| network(probe, r.prefix_len) == r.dst)
                .min_by_key(|r| (std::cmp::Reverse(r.prefix_len), r.metric, r.dst));
            let got = fib.lookup_route(probe);
            assert_eq!(
                got.map(|r| (r.dst, r.prefix_len, r.metric)),
                best.map(|r| (r.dst, r.prefix_len, r.metric)),
                "address {probe}"
            );
        }
    }

    /// An rtmsg + attributes as the kernel sends them.
    fn raw_route(table: u8, kind: u8, len: u8, attrs: &[Vec<u8>]) -> RouteMessage {
        raw_route_of(2, table, kind, len, attrs)
    }

    fn raw_route_of(family: u8, table: u8, kind: u8, len: u8, attrs: &[Vec<u8>]) -> RouteMessage {
        // family, dst_len, src_len, tos, table, protocol (boot), scope, type; flags u32.
        let mut payload = vec![family, len, 0, 0, table, 3, 0, kind];
        payload.extend(0u32.to_ne_bytes());
        for a in attrs {
            payload.extend(a);
        }
        let raw = nlmsg(24, 2, 1, &payload);
        match classify(&raw, &String::new).unwrap() {
            Frame::Message(RouteNetlinkMessage::NewRoute(m)) => m,
            other => panic!("not a route: {other:?}"),
        }
    }

    #[test]
    fn parses_raw_routes_and_filters_non_unicast() {
        let dst = nla(1, &[10, 1, 2, 0]); // RTA_DST
        let oif = nla(4, &3u32.to_ne_bytes()); // RTA_OIF
        let gw = nla(5, &[10, 1, 2, 254]); // RTA_GATEWAY
        let prio = nla(6, &50u32.to_ne_bytes()); // RTA_PRIORITY
        let m = raw_route(
            254,
            1,
            24,
            &[dst.clone(), gw.clone(), oif.clone(), prio.clone()],
        );
        assert_eq!(
            route_from_message(&m),
            Some(r([10, 1, 2, 0], 24, Some([10, 1, 2, 254]), 3, 50))
        );
        // Default route: no RTA_DST at all.
        let m = raw_route(254, 1, 0, &[gw.clone(), oif.clone()]);
        assert_eq!(
            route_from_message(&m),
            Some(r([0, 0, 0, 0], 0, Some([10, 1, 2, 254]), 3, 0))
        );
        // Local table, local type, blackhole (no oif): all ignored.
        assert_eq!(
            route_from_message(&raw_route(255, 1, 24, &[dst.clone(), oif.clone()])),
            None
        );
        assert_eq!(
            route_from_message(&raw_route(254, 2, 32, &[dst.clone(), oif.clone()])),
            None
        );
        assert_eq!(
            route_from_message(&raw_route(254, 6, 24, std::slice::from_ref(&dst))),
            None
        );
        // Table given only as RTA_TABLE (header says RT_TABLE_UNSPEC or a number > 255).
        let main = nla(15, &254u32.to_ne_bytes());
        let other = nla(15, &1000u32.to_ne_bytes());
        assert!(
            route_from_message(&raw_route(0, 1, 24, &[dst.clone(), oif.clone(), main])).is_some()
        );
        assert_eq!(
            route_from_message(&raw_route(0, 1, 24, &[dst, oif, other])),
            None
        );
        // ECMP: RTA_MULTIPATH with two rtnexthop entries; the first is kept.
        let mut mp = Vec::new();
        for (ifx, g) in [(4u32, [10, 9, 0, 1]), (5, [10, 9, 0, 2])] {
            let gwa = nla(5, &g);
            mp.extend(u16::try_from(8 + gwa.len()).unwrap().to_ne_bytes());
            mp.extend([0u8, 0]); // flags, hops
            mp.extend(ifx.to_ne_bytes());
            mp.extend(gwa);
        }
        let m = raw_route(254, 1, 0, &[nla(9, &mp)]);
        assert_eq!(
            route_from_message(&m),
            Some(r([0, 0, 0, 0], 0, Some([10, 9, 0, 1]), 4, 0))
        );
    }

    #[test]
    fn parses_raw_ipv6_routes() {
        let v6 = |s: &str| s.parse::<Ipv6Addr>().unwrap().octets();
        let dst = nla(1, &v6("2001:db8:5::")); // RTA_DST
        let oif = nla(4, &3u32.to_ne_bytes());
        let gw = nla(5, &v6("fe80::1")); // a link-local router, as RA gives
        let table = nla(15, &254u32.to_ne_bytes());
        let m = raw_route_of(10, 254, 1, 48, &[dst.clone(), gw.clone(), oif.clone()]);
        assert_eq!(
            route_from_message(&m),
            Some(r6("2001:db8:5::", 48, Some("fe80::1"), 3, 0))
        );
        // The IPv6 default route: no RTA_DST; the table only as RTA_TABLE.
        let m = raw_route_of(10, 0, 1, 0, &[gw, oif.clone(), table]);
        assert_eq!(
            route_from_message(&m),
            Some(r6("::", 0, Some("fe80::1"), 3, 0))
        );
        // A prefix length over 128: refused.
        assert_eq!(
            route_from_message(&raw_route_of(10, 254, 1, 129, std::slice::from_ref(&oif))),
            None
        );
        // Multicast (ff00::/8 lives in the local table with type multicast): ignored.
        assert_eq!(
            route_from_message(&raw_route_of(10, 254, 5, 8, &[dst, oif])),
            None
        );
    }
}
