//! IPv4 routes: a snapshot of the main table (RTM_GETROUTE dump) with a longest-prefix-match
//! lookup in plain Rust, and the kernel's own answer for one address (RTM_GETROUTE).

use std::net::Ipv4Addr;

use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::{NetinfoError, Result};
use crate::rtnl::Netlink;

/// One unicast IPv4 route of the main table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Destination network (host bits zero).
    pub dst: Ipv4Addr,
    /// Prefix length, 0 for the default route.
    pub prefix_len: u8,
    /// Next-hop router; `None` for a directly connected network.
    pub gateway: Option<Ipv4Addr>,
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
    pub gateway: Option<Ipv4Addr>,
}

impl NextHop {
    /// The address whose MAC the packet must carry: the gateway, or the destination itself.
    #[must_use]
    pub fn neighbour_for(&self, dst: Ipv4Addr) -> Ipv4Addr {
        self.gateway.unwrap_or(dst)
    }
}

fn mask(prefix_len: u8) -> u32 {
    match prefix_len {
        0 => 0,
        n => u32::MAX << (32 - u32::from(n.min(32))),
    }
}

fn v4(a: &RouteAddress) -> Option<Ipv4Addr> {
    match a {
        RouteAddress::Inet(a) => Some(*a),
        _ => None,
    }
}

/// Build a [`Route`] from an RTM_NEWROUTE message; `None` for anything the director must not
/// use: other families, other tables, non-unicast (local, broadcast, blackhole, unreachable ...),
/// TOS-specific, cloned or dead routes.
pub(crate) fn route_from_message(m: &RouteMessage) -> Option<Route> {
    let h = &m.header;
    if h.address_family != AddressFamily::Inet
        || h.kind != RouteType::Unicast
        || h.tos != 0
        || h.destination_prefix_length > 32
        || h.flags.intersects(RouteFlags::Cloned | RouteFlags::Dead)
    {
        return None;
    }
    let mut table = u32::from(h.table);
    let mut dst = Ipv4Addr::UNSPECIFIED;
    let mut gateway = None;
    let mut oif = None;
    let mut metric = 0;
    for attr in &m.attributes {
        match attr {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(a) => dst = v4(a)?,
            RouteAttribute::Gateway(a) => gateway = v4(a),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::MultiPath(hops) if oif.is_none() => {
                // ECMP: the snapshot keeps the first live next hop (see the crate's limits).
                if let Some(hop) = hops.iter().find(|h| h.interface_index != 0) {
                    oif = Some(hop.interface_index);
                    gateway = hop.attributes.iter().find_map(|a| match a {
                        RouteAttribute::Gateway(g) => v4(g),
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
        dst: Ipv4Addr::from(u32::from(dst) & mask(prefix_len)),
        prefix_len,
        gateway,
        oif: oif?,
        metric,
    })
}

/// An immutable snapshot of the main IPv4 routing table with longest-prefix-match lookup.
///
/// Layout: routes sorted by prefix length (longest first) then network; one binary search per
/// prefix length present (usually a handful). `lookup` neither allocates nor locks.
#[derive(Debug, Clone, Default)]
pub struct Fib {
    /// Sorted by (prefix_len descending, dst); one route per prefix (the lowest metric).
    routes: Vec<Route>,
    /// Network numbers of `routes`, same order, for the binary searches.
    keys: Vec<u32>,
    /// (prefix length, mask, range in `routes`) for every prefix length present, longest first.
    levels: Vec<(u8, u32, std::ops::Range<usize>)>,
}

impl Fib {
    /// Build a snapshot from routes (their host bits are cleared; between routes to the same
    /// prefix the lowest metric wins, as in the kernel).
    pub fn from_routes(routes: impl IntoIterator<Item = Route>) -> Fib {
        let mut routes: Vec<Route> = routes
            .into_iter()
            .filter(|r| r.prefix_len <= 32)
            .map(|mut r| {
                r.dst = Ipv4Addr::from(u32::from(r.dst) & mask(r.prefix_len));
                r
            })
            .collect();
        routes.sort_by_key(|r| (std::cmp::Reverse(r.prefix_len), u32::from(r.dst), r.metric));
        routes.dedup_by_key(|r| (r.prefix_len, r.dst));
        let keys = routes.iter().map(|r| u32::from(r.dst)).collect();
        let mut levels: Vec<(u8, u32, std::ops::Range<usize>)> = Vec::new();
        for (i, r) in routes.iter().enumerate() {
            match levels.last_mut() {
                Some((len, _, range)) if *len == r.prefix_len => range.end = i + 1,
                _ => levels.push((r.prefix_len, mask(r.prefix_len), i..i + 1)),
            }
        }
        Fib {
            routes,
            keys,
            levels,
        }
    }

    /// The most specific route covering `addr`.
    #[must_use]
    pub fn lookup_route(&self, addr: Ipv4Addr) -> Option<&Route> {
        let a = u32::from(addr);
        self.levels.iter().find_map(|(_, m, range)| {
            let keys = &self.keys[range.clone()];
            keys.binary_search(&(a & m))
                .ok()
                .map(|i| &self.routes[range.start + i])
        })
    }

    /// Where a packet for `addr` goes, by longest prefix match; `None` when no route covers it.
    #[must_use]
    pub fn lookup(&self, addr: Ipv4Addr) -> Option<NextHop> {
        self.lookup_route(addr).map(|r| NextHop {
            ifindex: r.oif,
            gateway: r.gateway,
        })
    }

    /// All routes of the snapshot, most specific first.
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
    pub fn gateways(&self) -> Vec<(u32, Ipv4Addr)> {
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
    /// A snapshot of the main IPv4 routing table (unicast routes only).
    ///
    /// # Errors
    /// Netlink failures.
    pub fn fib(&mut self) -> Result<Fib> {
        Ok(Fib::from_routes(self.main_routes()?))
    }

    /// The unicast IPv4 routes of the main table, as the kernel lists them.
    ///
    /// # Errors
    /// Netlink failures.
    pub fn main_routes(&mut self) -> Result<Vec<Route>> {
        let mut req = RouteMessage::default();
        req.header.address_family = AddressFamily::Inet;
        let msgs = self.dump(&RouteNetlinkMessage::GetRoute(req), "IPv4 route")?;
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
    pub fn route_get(&mut self, addr: Ipv4Addr) -> Result<NextHop> {
        let mut req = RouteMessage::default();
        req.header.address_family = AddressFamily::Inet;
        req.header.destination_prefix_length = 32;
        req.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(addr)));
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
                            RouteAttribute::Gateway(g) => hop.gateway = v4(g),
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
            gateway: gw.map(Ipv4Addr::from),
            oif,
            metric,
        }
    }

    fn hop(ifindex: u32, gw: Option<[u8; 4]>) -> Option<NextHop> {
        Some(NextHop {
            ifindex,
            gateway: gw.map(Ipv4Addr::from),
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
        let at = |s: &str| fib.lookup(s.parse().unwrap());
        assert_eq!(at("10.0.0.77"), hop(2, None));
        assert_eq!(at("10.9.9.9"), hop(2, Some([10, 0, 0, 254])));
        assert_eq!(at("8.8.8.8"), hop(2, Some([10, 0, 0, 1])));
        assert_eq!(at("192.168.7.5"), hop(3, None));
        assert_eq!(at("192.168.7.129"), hop(3, Some([192, 168, 7, 1])));
        assert_eq!(at("192.168.7.200"), hop(4, None));
        assert_eq!(at("192.168.7.201"), hop(3, Some([192, 168, 7, 1])));
        assert_eq!(fib.levels.len(), 5);
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
                    dst: Ipv4Addr::from(next() & mask(len) & 0x0fff_ffff),
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
                .filter(|r| a & mask(r.prefix_len) == u32::from(r.dst))
                .min_by_key(|r| (std::cmp::Reverse(r.prefix_len), r.metric, u32::from(r.dst)));
            let got = fib.lookup_route(Ipv4Addr::from(a));
            assert_eq!(
                got.map(|r| (r.dst, r.prefix_len, r.metric)),
                best.map(|r| (r.dst, r.prefix_len, r.metric)),
                "address {}",
                Ipv4Addr::from(a)
            );
        }
    }

    /// An rtmsg + attributes as the kernel sends them.
    fn raw_route(table: u8, kind: u8, len: u8, attrs: &[Vec<u8>]) -> RouteMessage {
        // family, dst_len, src_len, tos, table, protocol (boot), scope, type; flags u32.
        let mut payload = vec![2u8, len, 0, 0, table, 3, 0, kind];
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
}
