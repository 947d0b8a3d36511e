//! Change notifications: a non-blocking NETLINK_ROUTE socket subscribed to link, address
//! (IPv4 and IPv6), route (IPv4 and IPv6) and neighbour events, for the caller's `mio` loop.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use netlink_packet_core::{NetlinkBuffer, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::neighbour::NeighbourMessage;
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage};
use netlink_packet_route::{AddressFamily, link::LinkAttribute};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::error::{NetinfoError, Result};
use crate::mac::MacAddr;
use crate::neigh::{NudState, neighbour_from_message};
use crate::rtnl::split_frames;

/// Legacy multicast group bits (rtnetlink(7)).
const RTMGRP_LINK: u32 = 0x1;
const RTMGRP_NEIGH: u32 = 0x4;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV4_ROUTE: u32 = 0x40;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;
const RTMGRP_IPV6_ROUTE: u32 = 0x400;
/// Message types, used when a message cannot be parsed but its kind still matters.
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_NEWNEIGH: u16 = 28;
const RTM_DELNEIGH: u16 = 29;
/// Socket receive buffer asked for: bursts (an interface going down) must not overflow it.
const RCVBUF: usize = 1 << 20;
/// At most this many detailed events are kept per drain; the flags are always exact.
pub const MAX_EVENTS: usize = 1024;

/// One change the kernel announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetChange {
    /// An interface appeared, changed (up/down, MTU, MAC ...) or disappeared.
    Link {
        /// Interface index.
        ifindex: u32,
        /// Its name, if the message carried it.
        name: Option<String>,
        /// True for RTM_DELLINK.
        removed: bool,
    },
    /// An IPv4 or IPv6 address was added or removed.
    Address {
        /// Interface index.
        ifindex: u32,
        /// The address.
        addr: IpAddr,
        /// Its prefix length.
        prefix_len: u8,
        /// True for RTM_DELADDR.
        removed: bool,
    },
    /// A route of the main table (IPv4 or IPv6) was added, changed or removed.
    Route {
        /// Destination network.
        dst: IpAddr,
        /// Prefix length.
        prefix_len: u8,
        /// True for RTM_DELROUTE.
        removed: bool,
    },
    /// A neighbour entry (ARP or NDP) changed state or was removed.
    Neighbour {
        /// Interface index.
        ifindex: u32,
        /// Neighbour address.
        addr: IpAddr,
        /// Its MAC, if known.
        mac: Option<MacAddr>,
        /// Its new state.
        state: NudState,
        /// True for RTM_DELNEIGH.
        removed: bool,
    },
}

/// What one [`NetlinkMonitor::drain`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Some interface changed: rebuild the link list (and the next-hop table).
    pub links: bool,
    /// Some address (IPv4 or IPv6) changed.
    pub addresses: bool,
    /// The main routing table (IPv4 or IPv6) changed: rebuild the FIB.
    pub routes: bool,
    /// The neighbour table (IPv4 or IPv6) changed: rebuild the next-hop table.
    pub neighbours: bool,
    /// The kernel dropped notifications (socket buffer full): rebuild everything.
    pub overrun: bool,
    /// The individual changes, oldest first, at most [`MAX_EVENTS`] of them.
    pub events: Vec<NetChange>,
}

impl Changes {
    /// True when nothing relevant happened.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        !(self.links || self.addresses || self.routes || self.neighbours || self.overrun)
    }

    /// True when the next-hop table (FIB, links or neighbours) should be rebuilt.
    #[must_use]
    pub fn next_hops_changed(&self) -> bool {
        self.links || self.routes || self.neighbours || self.overrun
    }

    fn push(&mut self, event: NetChange) {
        if self.events.len() < MAX_EVENTS {
            self.events.push(event);
        }
    }

    /// Account for one notification (already parsed).
    pub(crate) fn record(&mut self, msg: &RouteNetlinkMessage) {
        use RouteNetlinkMessage as M;
        match msg {
            M::NewLink(l) | M::DelLink(l) => {
                self.links = true;
                let name = l.attributes.iter().find_map(|a| match a {
                    LinkAttribute::IfName(n) => Some(n.clone()),
                    _ => None,
                });
                self.push(NetChange::Link {
                    ifindex: l.header.index,
                    name,
                    removed: matches!(msg, M::DelLink(_)),
                });
            }
            M::NewAddress(a) | M::DelAddress(a)
                if matches!(a.header.family, AddressFamily::Inet | AddressFamily::Inet6) =>
            {
                self.addresses = true;
                let v6 = a.header.family == AddressFamily::Inet6;
                let ours = |v: &IpAddr| v.is_ipv6() == v6;
                // IPv4 puts the interface's own address in IFA_LOCAL (IFA_ADDRESS is the peer
                // on point-to-point links); IPv6 sends IFA_ADDRESS only, unless there is a peer.
                let addr = a.attributes.iter().find_map(|at| match at {
                    AddressAttribute::Local(v) if ours(v) => Some(*v),
                    _ => None,
                });
                let addr = addr.or_else(|| {
                    a.attributes.iter().find_map(|at| match at {
                        AddressAttribute::Address(v) if ours(v) => Some(*v),
                        _ => None,
                    })
                });
                if let Some(addr) = addr {
                    self.push(NetChange::Address {
                        ifindex: a.header.index,
                        addr,
                        prefix_len: a.header.prefix_len,
                        removed: matches!(msg, M::DelAddress(_)),
                    });
                }
            }
            M::NewRoute(r) | M::DelRoute(r) if is_main(r) => {
                self.routes = true;
                let v6 = r.header.address_family == AddressFamily::Inet6;
                let dst = r
                    .attributes
                    .iter()
                    .find_map(|a| match a {
                        RouteAttribute::Destination(RouteAddress::Inet(d)) if !v6 => {
                            Some(IpAddr::V4(*d))
                        }
                        RouteAttribute::Destination(RouteAddress::Inet6(d)) if v6 => {
                            Some(IpAddr::V6(*d))
                        }
                        _ => None,
                    })
                    .unwrap_or(if v6 {
                        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
                    } else {
                        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
                    });
                self.push(NetChange::Route {
                    dst,
                    prefix_len: r.header.destination_prefix_length,
                    removed: matches!(msg, M::DelRoute(_)),
                });
            }
            M::NewNeighbour(n) | M::DelNeighbour(n) => self.record_neighbour(n, msg),
            _ => {}
        }
    }

    fn record_neighbour(&mut self, n: &NeighbourMessage, msg: &RouteNetlinkMessage) {
        if let Some(nb) = neighbour_from_message(n) {
            self.neighbours = true;
            self.push(NetChange::Neighbour {
                ifindex: nb.ifindex,
                addr: nb.addr,
                mac: nb.mac,
                state: nb.state,
                removed: matches!(msg, RouteNetlinkMessage::DelNeighbour(_)),
            });
        }
    }

    /// Account for a notification that could not be parsed: at least say what kind changed.
    fn record_unparsed(&mut self, kind: u16) {
        match kind {
            RTM_NEWLINK | RTM_DELLINK => self.links = true,
            RTM_NEWADDR | RTM_DELADDR => self.addresses = true,
            RTM_NEWROUTE | RTM_DELROUTE => self.routes = true,
            RTM_NEWNEIGH | RTM_DELNEIGH => self.neighbours = true,
            _ => {}
        }
    }
}

/// A route of the main table, IPv4 or IPv6 (the local table and the others are not read).
fn is_main(r: &RouteMessage) -> bool {
    let table = r
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(r.header.table));
    matches!(
        r.header.address_family,
        AddressFamily::Inet | AddressFamily::Inet6
    ) && table == u32::from(RouteHeader::RT_TABLE_MAIN)
}

/// A subscription to the kernel's link, address, route and neighbour notifications (IPv4 and
/// IPv6).
///
/// Register [`NetlinkMonitor::as_raw_fd`] with `mio` (`SourceFd`, readable, edge-triggered is
/// fine) and call [`NetlinkMonitor::drain`] when it is readable: it reads until the socket is
/// empty. Subscribe *before* taking the snapshots, so that no change falls between the two.
#[derive(Debug)]
pub struct NetlinkMonitor {
    sock: Socket,
    buf: Vec<u8>,
}

impl NetlinkMonitor {
    /// Open the socket, non-blocking, in the calling thread's network namespace.
    ///
    /// # Errors
    /// [`NetinfoError::Socket`] when the socket cannot be set up.
    pub fn open() -> Result<Self> {
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(NetinfoError::Socket)?;
        let groups = RTMGRP_LINK
            | RTMGRP_NEIGH
            | RTMGRP_IPV4_IFADDR
            | RTMGRP_IPV4_ROUTE
            | RTMGRP_IPV6_IFADDR
            | RTMGRP_IPV6_ROUTE;
        sock.bind(&SocketAddr::new(0, groups))
            .map_err(NetinfoError::Socket)?;
        sock.set_non_blocking(true).map_err(NetinfoError::Socket)?;
        if let Err(e) = sock.set_rx_buf_sz(RCVBUF) {
            log::debug!("netlink monitor: cannot raise the receive buffer: {e}");
        }
        Ok(Self {
            sock,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// Read every pending notification and say what changed. Never blocks.
    ///
    /// # Errors
    /// An unexpected socket error (not "nothing more to read", not "buffer overrun", which is
    /// reported as [`Changes::overrun`]).
    pub fn drain(&mut self) -> Result<Changes> {
        let mut changes = Changes::default();
        loop {
            self.buf.clear();
            match self.sock.recv(&mut self.buf, 0) {
                Ok(0) => break,
                Ok(_) => decode_notifications(&self.buf, &mut changes),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    lvs_common::event!(log::Level::Warn, "netlink_notifications_lost");
                    changes.overrun = true;
                }
                Err(source) => {
                    return Err(NetinfoError::Io {
                        op: "read network change notifications".into(),
                        source,
                    });
                }
            }
        }
        Ok(changes)
    }
}

/// Decode one datagram of notifications into `changes`.
pub(crate) fn decode_notifications(buf: &[u8], changes: &mut Changes) {
    for raw in split_frames(buf) {
        let Ok(raw) = raw else {
            // Broken framing: we cannot know what was lost.
            changes.overrun = true;
            return;
        };
        let kind = NetlinkBuffer::new(raw).message_type();
        match NetlinkMessage::<RouteNetlinkMessage>::deserialize(raw) {
            Ok(m) => {
                if let NetlinkPayload::InnerMessage(inner) = m.payload {
                    changes.record(&inner);
                }
            }
            Err(e) => {
                log::debug!("netlink monitor: unparsed message of type {kind}: {e}");
                changes.record_unparsed(kind);
            }
        }
    }
}

impl AsRawFd for NetlinkMonitor {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

impl AsFd for NetlinkMonitor {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtnl::tests::{nla, nlmsg};

    #[test]
    fn decodes_a_batch_of_notifications() {
        // RTM_NEWADDR 10.0.0.5/24 on 3.
        let mut addr = vec![2u8, 24, 0, 0];
        addr.extend(3u32.to_ne_bytes());
        addr.extend(nla(2, &[10, 0, 0, 5]));
        // RTM_DELNEIGH 10.0.0.7 on 3, state FAILED.
        let mut neigh = vec![2u8, 0, 0, 0];
        neigh.extend(3u32.to_ne_bytes());
        neigh.extend(0x20u16.to_ne_bytes());
        neigh.extend([0u8, 1]);
        neigh.extend(nla(1, &[10, 0, 0, 7]));
        // RTM_NEWROUTE in table local (ignored) and in main.
        let route = |table: u8| {
            let mut r = vec![2u8, 24, 0, 0, table, 2, 0, 1];
            r.extend(0u32.to_ne_bytes());
            r.extend(nla(1, &[10, 0, 0, 0]));
            r.extend(nla(4, &3u32.to_ne_bytes()));
            r
        };
        let mut dgram = nlmsg(RTM_NEWADDR, 0, 0, &addr);
        dgram.extend(nlmsg(RTM_DELNEIGH, 0, 0, &neigh));
        dgram.extend(nlmsg(RTM_NEWROUTE, 0, 0, &route(255)));
        dgram.extend(nlmsg(RTM_NEWROUTE, 0, 0, &route(254)));
        dgram.extend(nlmsg(RTM_NEWLINK, 0, 0, &[0u8; 4])); // truncated: still counts as a link change
        let mut c = Changes::default();
        decode_notifications(&dgram, &mut c);
        assert!(c.addresses && c.neighbours && c.routes && c.links && !c.overrun);
        assert!(c.next_hops_changed());
        assert_eq!(
            c.events,
            vec![
                NetChange::Address {
                    ifindex: 3,
                    addr: Ipv4Addr::new(10, 0, 0, 5).into(),
                    prefix_len: 24,
                    removed: false
                },
                NetChange::Neighbour {
                    ifindex: 3,
                    addr: Ipv4Addr::new(10, 0, 0, 7).into(),
                    mac: None,
                    state: NudState::Failed,
                    removed: true
                },
                NetChange::Route {
                    dst: Ipv4Addr::new(10, 0, 0, 0).into(),
                    prefix_len: 24,
                    removed: false
                },
            ]
        );
    }

    #[test]
    fn only_local_table_routes_change_nothing_for_the_fib() {
        let mut r = vec![2u8, 32, 0, 0, 255, 2, 0, 2];
        r.extend(0u32.to_ne_bytes());
        let mut c = Changes::default();
        decode_notifications(&nlmsg(RTM_NEWROUTE, 0, 0, &r), &mut c);
        assert!(c.is_empty());
        let mut c = Changes::default();
        decode_notifications(&[1, 2, 3], &mut c);
        assert!(c.overrun);
    }

    #[test]
    fn decodes_ipv6_notifications() {
        let v6 = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        // RTM_NEWADDR 2001:db8::5/64 on 3 (IPv6 sends IFA_ADDRESS only).
        let mut addr = vec![10u8, 64, 0, 0];
        addr.extend(3u32.to_ne_bytes());
        addr.extend(nla(1, &v6("2001:db8::5").octets()));
        // RTM_NEWNEIGH fe80::1 on 3, REACHABLE, with its MAC.
        let mut neigh = vec![10u8, 0, 0, 0];
        neigh.extend(3u32.to_ne_bytes());
        neigh.extend(0x02u16.to_ne_bytes());
        neigh.extend([0u8, 1]);
        neigh.extend(nla(1, &v6("fe80::1").octets()));
        neigh.extend(nla(2, &[2, 0, 0, 0, 0, 1]));
        // RTM_DELROUTE of the IPv6 default route (main table, no RTA_DST).
        let mut route = vec![10u8, 0, 0, 0, 254, 9, 0, 1];
        route.extend(0u32.to_ne_bytes());
        route.extend(nla(4, &3u32.to_ne_bytes()));
        // The local table's routes for our own addresses change nothing.
        let mut local = vec![10u8, 128, 0, 0, 255, 2, 0, 2];
        local.extend(0u32.to_ne_bytes());
        let mut dgram = nlmsg(RTM_NEWADDR, 0, 0, &addr);
        dgram.extend(nlmsg(RTM_NEWNEIGH, 0, 0, &neigh));
        dgram.extend(nlmsg(RTM_NEWROUTE, 0, 0, &local));
        dgram.extend(nlmsg(RTM_DELROUTE, 0, 0, &route));
        let mut c = Changes::default();
        decode_notifications(&dgram, &mut c);
        assert!(c.addresses && c.neighbours && c.routes && !c.links && !c.overrun);
        assert_eq!(
            c.events,
            vec![
                NetChange::Address {
                    ifindex: 3,
                    addr: v6("2001:db8::5").into(),
                    prefix_len: 64,
                    removed: false
                },
                NetChange::Neighbour {
                    ifindex: 3,
                    addr: v6("fe80::1").into(),
                    mac: Some(MacAddr([2, 0, 0, 0, 0, 1])),
                    state: NudState::Reachable,
                    removed: false
                },
                NetChange::Route {
                    dst: Ipv6Addr::UNSPECIFIED.into(),
                    prefix_len: 0,
                    removed: true
                },
            ]
        );
    }
}
