//! The next-hop table: FIB + links + neighbours combined into one immutable snapshot that the
//! director's workers consult per packet, without system calls, allocation or locks.

use std::net::IpAddr;

use crate::error::Result;
use crate::link::Link;
use crate::mac::MacAddr;
use crate::neigh::{Key, Neighbours, key};
use crate::route::Fib;
use crate::rtnl::Netlink;

/// Everything needed to put an Ethernet header on a packet and send it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    /// Output interface index.
    pub ifindex: u32,
    /// Our MAC on that interface (the frame's source).
    pub src_mac: MacAddr,
    /// The next hop's MAC (the frame's destination).
    pub dst_mac: MacAddr,
}

/// The answer of [`NextHopTable::lookup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextHopLookup {
    /// Ready to send.
    Ready(Resolved),
    /// Routed out of `ifindex` via `neighbour`, whose MAC is not known (or not usable) yet:
    /// the control thread should [`Netlink::resolve`] it and rebuild the table.
    Unresolved {
        /// Output interface index.
        ifindex: u32,
        /// The address whose MAC is missing (gateway or the destination itself).
        neighbour: IpAddr,
    },
    /// No route, or the route leaves through an interface that is down or not Ethernet-like.
    NoRoute,
}

/// A neighbour whose MAC the table lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PendingNeighbour {
    /// Interface index.
    pub ifindex: u32,
    /// Neighbour address.
    pub addr: IpAddr,
}

/// FIB, link MACs and usable neighbour MACs, frozen at build time.
///
/// Build it on the control path (after a [`crate::NetlinkMonitor`] says something changed),
/// share it read-only with the workers (an `Arc` swapped by the control thread), and call
/// [`NextHopTable::lookup`] per packet or per new connection.
#[derive(Debug, Clone, Default)]
pub struct NextHopTable {
    fib: Fib,
    /// Up, Ethernet-like links: (ifindex, MAC), sorted.
    links: Vec<(u32, MacAddr)>,
    /// Usable neighbour entries, IPv4 and IPv6: ((ifindex, addr) key, MAC), sorted.
    neighbours: Vec<(Key, MacAddr)>,
}

impl NextHopTable {
    /// Combine the three snapshots.
    #[must_use]
    pub fn build(links: &[Link], fib: Fib, neighbours: &Neighbours) -> Self {
        let mut l: Vec<(u32, MacAddr)> = links
            .iter()
            .filter(|l| l.up && l.is_forwarding_candidate())
            .filter_map(|l| l.mac.map(|m| (l.ifindex, m)))
            .collect();
        l.sort_unstable_by_key(|e| e.0);
        // `Neighbours` is sorted by the same key already.
        let n = neighbours
            .iter()
            .filter_map(|n| n.usable_mac().map(|m| (key(n.ifindex, n.addr), m)))
            .collect();
        Self {
            fib,
            links: l,
            neighbours: n,
        }
    }

    /// Where and how to send a packet for `dst` (IPv4 or IPv6). No allocation, no lock, no
    /// system call.
    #[must_use]
    pub fn lookup(&self, dst: impl Into<IpAddr>) -> NextHopLookup {
        let dst = dst.into();
        let Some(hop) = self.fib.lookup(dst) else {
            return NextHopLookup::NoRoute;
        };
        let Ok(li) = self.links.binary_search_by_key(&hop.ifindex, |e| e.0) else {
            return NextHopLookup::NoRoute;
        };
        let neighbour = hop.neighbour_for(dst);
        match self
            .neighbours
            .binary_search_by_key(&key(hop.ifindex, neighbour), |e| e.0)
        {
            Ok(ni) => NextHopLookup::Ready(Resolved {
                ifindex: hop.ifindex,
                src_mac: self.links[li].1,
                dst_mac: self.neighbours[ni].1,
            }),
            Err(_) => NextHopLookup::Unresolved {
                ifindex: hop.ifindex,
                neighbour,
            },
        }
    }

    /// The neighbours to resolve: every gateway of the FIB plus the next hop of each of
    /// `destinations` (real servers, say) whose MAC is missing. Sorted, without duplicates.
    pub fn missing<A: Into<IpAddr>>(
        &self,
        destinations: impl IntoIterator<Item = A>,
    ) -> Vec<PendingNeighbour> {
        let mut out: Vec<PendingNeighbour> = self
            .fib
            .gateways()
            .into_iter()
            .filter(|(ifindex, _)| self.links.binary_search_by_key(ifindex, |e| e.0).is_ok())
            .filter(|&(ifindex, gw)| {
                self.neighbours
                    .binary_search_by_key(&key(ifindex, gw), |e| e.0)
                    .is_err()
            })
            .map(|(ifindex, addr)| PendingNeighbour { ifindex, addr })
            .collect();
        out.extend(
            destinations
                .into_iter()
                .filter_map(|d| match self.lookup(d) {
                    NextHopLookup::Unresolved { ifindex, neighbour } => Some(PendingNeighbour {
                        ifindex,
                        addr: neighbour,
                    }),
                    _ => None,
                }),
        );
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The routing snapshot inside.
    #[must_use]
    pub fn fib(&self) -> &Fib {
        &self.fib
    }
}

impl Netlink {
    /// Read links, the main routing table and the neighbour table, and combine them.
    ///
    /// # Errors
    /// Netlink failures.
    pub fn next_hop_table(&mut self) -> Result<NextHopTable> {
        let links = self.links()?;
        let fib = self.fib()?;
        let neighbours = self.neighbours()?;
        Ok(NextHopTable::build(&links, fib, &neighbours))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::neigh::{Neighbour, NudState};
    use crate::route::Route;
    use std::net::Ipv4Addr;

    fn link(ifindex: u32, up: bool, mac: Option<[u8; 6]>) -> Link {
        Link {
            ifindex,
            name: format!("if{ifindex}"),
            mac: mac.map(MacAddr),
            mtu: 1500,
            up,
            running: up,
            loopback: ifindex == 1,
            noarp: false,
        }
    }

    fn table() -> NextHopTable {
        let links = [
            link(1, true, Some([0; 6])),
            link(2, true, Some([2, 0, 0, 0, 0, 2])),
            link(3, true, Some([2, 0, 0, 0, 0, 3])),
            link(4, false, Some([2, 0, 0, 0, 0, 4])),
        ];
        let route = |dst: [u8; 4], prefix_len, gateway: Option<[u8; 4]>, oif| Route {
            dst: dst.into(),
            prefix_len,
            gateway: gateway.map(IpAddr::from),
            oif,
            metric: 0,
        };
        let fib = Fib::from_routes([
            route([0, 0, 0, 0], 0, Some([10, 0, 0, 1]), 2),
            route([10, 0, 0, 0], 24, None, 2),
            route([10, 1, 0, 0], 24, None, 3),
            route([10, 4, 0, 0], 24, None, 4),
        ]);
        let n = |ifindex, a: [u8; 4], state| Neighbour {
            ifindex,
            addr: a.into(),
            mac: Some(MacAddr([0xaa, 0, 0, 0, a[2], a[3]])),
            state,
        };
        let neighbours = Neighbours::from_entries([
            n(2, [10, 0, 0, 1], NudState::Reachable),
            n(3, [10, 1, 0, 5], NudState::Stale),
            n(3, [10, 1, 0, 6], NudState::Failed),
        ]);
        NextHopTable::build(&links, fib, &neighbours)
    }

    #[test]
    fn combines_fib_links_and_neighbours() {
        let t = table();
        let ready = |ifindex, src: u8, dst: [u8; 2]| {
            NextHopLookup::Ready(Resolved {
                ifindex,
                src_mac: MacAddr([2, 0, 0, 0, 0, src]),
                dst_mac: MacAddr([0xaa, 0, 0, 0, dst[0], dst[1]]),
            })
        };
        // Via the default gateway.
        assert_eq!(t.lookup(Ipv4Addr::new(8, 8, 8, 8)), ready(2, 2, [0, 1]));
        // Directly connected, neighbour known (stale is usable).
        assert_eq!(t.lookup(Ipv4Addr::new(10, 1, 0, 5)), ready(3, 3, [0, 5]));
        // Connected but failed / unknown: needs resolution of the destination itself.
        assert_eq!(
            t.lookup(Ipv4Addr::new(10, 1, 0, 6)),
            NextHopLookup::Unresolved {
                ifindex: 3,
                neighbour: Ipv4Addr::new(10, 1, 0, 6).into()
            }
        );
        // Interface down.
        assert_eq!(t.lookup(Ipv4Addr::new(10, 4, 0, 9)), NextHopLookup::NoRoute);
        assert_eq!(
            NextHopTable::default().lookup(Ipv4Addr::new(1, 1, 1, 1)),
            NextHopLookup::NoRoute
        );
    }

    #[test]
    fn lists_missing_next_hops() {
        let t = table();
        let dests = [
            Ipv4Addr::new(10, 1, 0, 5), // known
            Ipv4Addr::new(10, 1, 0, 6), // failed
            Ipv4Addr::new(10, 1, 0, 7), // unknown
            Ipv4Addr::new(10, 1, 0, 7), // duplicate
            Ipv4Addr::new(9, 9, 9, 9),  // via the known gateway
        ];
        assert_eq!(
            t.missing(dests),
            vec![
                PendingNeighbour {
                    ifindex: 3,
                    addr: Ipv4Addr::new(10, 1, 0, 6).into()
                },
                PendingNeighbour {
                    ifindex: 3,
                    addr: Ipv4Addr::new(10, 1, 0, 7).into()
                },
            ]
        );
        // An unknown gateway is always listed.
        let fib = Fib::from_routes([Route {
            dst: Ipv4Addr::UNSPECIFIED.into(),
            prefix_len: 0,
            gateway: Some(Ipv4Addr::new(10, 0, 0, 254).into()),
            oif: 2,
            metric: 0,
        }]);
        let t = NextHopTable::build(&[link(2, true, Some([2; 6]))], fib, &Neighbours::default());
        assert_eq!(
            t.missing::<IpAddr>([]),
            vec![PendingNeighbour {
                ifindex: 2,
                addr: Ipv4Addr::new(10, 0, 0, 254).into()
            }]
        );
    }

    #[test]
    fn ipv6_next_hops_via_link_local_routers() {
        let links = [
            link(2, true, Some([2, 0, 0, 0, 0, 2])),
            link(3, true, Some([2, 0, 0, 0, 0, 3])),
        ];
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        let route = |dst: &str, prefix_len, gateway: Option<&str>, oif| Route {
            dst: v6(dst),
            prefix_len,
            gateway: gateway.map(v6),
            oif,
            metric: 0,
        };
        let fib = Fib::from_routes([
            route("::", 0, Some("fe80::1"), 2),
            route("2001:db8:1::", 64, None, 3),
            route("fe80::", 64, None, 3),
        ]);
        let n = |ifindex, a: &str, last| Neighbour {
            ifindex,
            addr: v6(a),
            mac: Some(MacAddr([0xaa, 0, 0, 0, 0, last])),
            state: NudState::Reachable,
        };
        // The same link-local address on another interface is another neighbour.
        let neighbours = Neighbours::from_entries([
            n(3, "fe80::1", 0x31),
            n(2, "fe80::1", 0x21),
            n(3, "2001:db8:1::5", 0x05),
        ]);
        let t = NextHopTable::build(&links, fib, &neighbours);
        let ready = |ifindex, src: u8, dst: u8| {
            NextHopLookup::Ready(Resolved {
                ifindex,
                src_mac: MacAddr([2, 0, 0, 0, 0, src]),
                dst_mac: MacAddr([0xaa, 0, 0, 0, 0, dst]),
            })
        };
        assert_eq!(t.lookup(v6("2606:4700::1")), ready(2, 2, 0x21));
        assert_eq!(t.lookup(v6("2001:db8:1::5")), ready(3, 3, 0x05));
        assert_eq!(
            t.lookup(v6("2001:db8:1::6")),
            NextHopLookup::Unresolved {
                ifindex: 3,
                neighbour: v6("2001:db8:1::6")
            }
        );
        // No IPv4 route at all: IPv4 destinations have none, whatever the IPv6 table says.
        assert_eq!(t.lookup(Ipv4Addr::new(10, 0, 0, 1)), NextHopLookup::NoRoute);
        assert_eq!(
            t.missing([v6("2001:db8:1::6"), v6("2001:db8:1::5")]),
            vec![PendingNeighbour {
                ifindex: 3,
                addr: v6("2001:db8:1::6")
            }]
        );
        // An unresolved link-local default router is listed for resolution on its interface.
        let t = NextHopTable::build(&links, t.fib().clone(), &Neighbours::default());
        assert!(t.missing::<IpAddr>([]).contains(&PendingNeighbour {
            ifindex: 2,
            addr: v6("fe80::1")
        }));
    }
}
