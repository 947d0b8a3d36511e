//! The neighbour table, IPv4 (ARP) and IPv6 (NDP): snapshot (RTM_GETNEIGH) and resolution
//! on a miss.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::os::fd::AsFd;

use netlink_packet_core::NLM_F_CREATE;
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::{NetinfoError, Result};
use crate::mac::MacAddr;
use crate::rtnl::Netlink;
use crate::sys::set_int_option;

/// The discard port: where the fallback resolution datagram goes.
const DISCARD_PORT: u16 = 9;

/// Neighbour Unreachability Detection state of an entry (`ip neigh` shows these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NudState {
    /// Resolution in progress, no MAC yet.
    Incomplete,
    /// Confirmed recently.
    Reachable,
    /// Usable, not confirmed recently; the kernel re-checks it on next use.
    Stale,
    /// Used while stale; waiting for confirmation.
    Delay,
    /// Being re-checked by unicast probes.
    Probe,
    /// Resolution failed.
    Failed,
    /// No ARP on this device (point-to-point, loopback).
    NoArp,
    /// Static entry (`ip neigh add ... nud permanent`).
    Permanent,
    /// Fresh entry, nothing done yet.
    None,
    /// Some other bit combination.
    Other(u16),
}

impl NudState {
    /// Whether the entry's MAC can be used to send: reachable, stale, delay, probe, permanent
    /// and noarp are; incomplete, failed and none are not.
    #[must_use]
    pub fn is_usable(self) -> bool {
        matches!(
            self,
            Self::Reachable
                | Self::Stale
                | Self::Delay
                | Self::Probe
                | Self::Permanent
                | Self::NoArp
        )
    }

    /// The state from the kernel's `ndm_state` bits.
    #[must_use]
    pub fn from_bits(bits: u16) -> Self {
        match bits {
            0x00 => Self::None,
            0x01 => Self::Incomplete,
            0x02 => Self::Reachable,
            0x04 => Self::Stale,
            0x08 => Self::Delay,
            0x10 => Self::Probe,
            0x20 => Self::Failed,
            0x40 => Self::NoArp,
            0x80 => Self::Permanent,
            other => Self::Other(other),
        }
    }
}

/// One neighbour entry (IPv4 or IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbour {
    /// Interface index.
    pub ifindex: u32,
    /// The neighbour's address.
    pub addr: IpAddr,
    /// Its MAC, when known.
    pub mac: Option<MacAddr>,
    /// NUD state.
    pub state: NudState,
}

impl Neighbour {
    /// The MAC, if the entry is in a usable state and has one.
    #[must_use]
    pub fn usable_mac(&self) -> Option<MacAddr> {
        self.mac.filter(|_| self.state.is_usable())
    }
}

pub(crate) fn neighbour_from_message(m: &NeighbourMessage) -> Option<Neighbour> {
    let family = m.header.family;
    if family != AddressFamily::Inet && family != AddressFamily::Inet6 {
        return None;
    }
    let mut addr = None;
    let mut mac = None;
    for attr in &m.attributes {
        match attr {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a))
                if family == AddressFamily::Inet =>
            {
                addr = Some(IpAddr::V4(*a));
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a))
                if family == AddressFamily::Inet6 =>
            {
                addr = Some(IpAddr::V6(*a));
            }
            NeighbourAttribute::LinkLocalAddress(l) => mac = MacAddr::from_slice(l),
            _ => {}
        }
    }
    Some(Neighbour {
        ifindex: m.header.ifindex,
        addr: addr?,
        mac,
        state: NudState::from_bits(u16::from(m.header.state)),
    })
}

/// The search key of a neighbour: (address bits, interface index and family). Two integer
/// compares, no hashing, and exact: an IPv4 address and the IPv6 address with the same low
/// bits never meet, because the family is part of the key.
pub(crate) type Key = (u128, u64);

pub(crate) fn key(ifindex: u32, addr: IpAddr) -> Key {
    match addr {
        IpAddr::V4(a) => (u128::from(u32::from(a)), u64::from(ifindex) << 1),
        IpAddr::V6(a) => (u128::from(a), (u64::from(ifindex) << 1) | 1),
    }
}

/// An immutable snapshot of the neighbour table (IPv4 and IPv6), searchable by (interface,
/// address).
#[derive(Debug, Clone, Default)]
pub struct Neighbours {
    entries: Vec<Neighbour>,
}

impl Neighbours {
    /// Build a snapshot from entries (a later duplicate of the same key is dropped).
    pub fn from_entries(entries: impl IntoIterator<Item = Neighbour>) -> Self {
        let mut entries: Vec<Neighbour> = entries.into_iter().collect();
        entries.sort_by_key(|n| key(n.ifindex, n.addr));
        entries.dedup_by_key(|n| key(n.ifindex, n.addr));
        Self { entries }
    }

    /// The entry for `addr` on interface `ifindex`.
    #[must_use]
    pub fn get(&self, ifindex: u32, addr: impl Into<IpAddr>) -> Option<&Neighbour> {
        let k = key(ifindex, addr.into());
        self.entries
            .binary_search_by_key(&k, |n| key(n.ifindex, n.addr))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// The MAC of `addr` on `ifindex`, if the entry is usable.
    #[must_use]
    pub fn usable_mac(&self, ifindex: u32, addr: impl Into<IpAddr>) -> Option<MacAddr> {
        self.get(ifindex, addr).and_then(Neighbour::usable_mac)
    }

    /// All entries, in key order.
    pub fn iter(&self) -> impl Iterator<Item = &Neighbour> {
        self.entries.iter()
    }

    /// Number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// How [`Netlink::resolve`] got the kernel to resolve an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveTrigger {
    /// RTM_NEWNEIGH with NTF_USE: the kernel created the entry if needed and started ARP
    /// (IPv4) or neighbour discovery (IPv6).
    Netlink,
    /// The kernel refused NTF_USE; a UDP datagram to the discard port made it resolve.
    Datagram,
}

impl Netlink {
    /// A snapshot of the neighbour table, IPv4 and IPv6.
    ///
    /// # Errors
    /// Netlink failures.
    pub fn neighbours(&mut self) -> Result<Neighbours> {
        let request = |family| {
            let mut req = NeighbourMessage::default();
            req.header.family = family;
            RouteNetlinkMessage::GetNeighbour(req)
        };
        let msgs = self.dump_both_families(request, ["IPv4 neighbour", "IPv6 neighbour"])?;
        Ok(Neighbours::from_entries(msgs.iter().filter_map(
            |m| match m {
                RouteNetlinkMessage::NewNeighbour(n) => neighbour_from_message(n),
                _ => None,
            },
        )))
    }

    /// Make the kernel resolve `addr` on interface `ifindex`, without waiting for the answer.
    ///
    /// Sends RTM_NEWNEIGH with NTF_USE (creating the entry when there is none), which starts ARP
    /// (IPv4) or a neighbour solicitation (IPv6) for a new or failed entry and re-validates a
    /// stale one; a reachable entry is left alone. If the kernel refuses that (no CAP_NET_ADMIN,
    /// an old kernel), one empty UDP datagram to `addr`'s discard port (9) out of `ifindex`
    /// does the same. Watch the neighbour table (or [`crate::NetlinkMonitor`]) for the result.
    ///
    /// # Errors
    /// The interface does not exist, or both ways failed.
    pub fn resolve(&mut self, ifindex: u32, addr: impl Into<IpAddr>) -> Result<ResolveTrigger> {
        let addr = addr.into();
        let mut m = NeighbourMessage::default();
        let (family, dst) = match addr {
            IpAddr::V4(a) => (AddressFamily::Inet, NeighbourAddress::Inet(a)),
            IpAddr::V6(a) => (AddressFamily::Inet6, NeighbourAddress::Inet6(a)),
        };
        m.header.family = family;
        m.header.ifindex = ifindex;
        m.header.state = NeighbourState::None;
        m.header.flags = NeighbourFlags::Use;
        m.attributes.push(NeighbourAttribute::Destination(dst));
        let op = || format!("resolve {addr} on interface index {ifindex}");
        match self.request(RouteNetlinkMessage::NewNeighbour(m), NLM_F_CREATE, &op) {
            Ok(_) => Ok(ResolveTrigger::Netlink),
            Err(e) if e.errno() == Some(libc::ENODEV) => Err(e),
            Err(e) => {
                log::debug!("netlink: {e}; falling back to a discard-port datagram");
                resolve_by_datagram(ifindex, addr)?;
                Ok(ResolveTrigger::Datagram)
            }
        }
    }
}

/// Make the kernel resolve `addr` by sending it one empty UDP datagram (discard port 9) out of
/// `ifindex`. Never blocks: the kernel queues the datagram while it runs ARP or neighbour
/// discovery. An IPv6 link-local address is sent to with `ifindex` as its scope.
///
/// # Errors
/// The socket cannot be created or the kernel has no route for `addr` out of `ifindex`.
pub fn resolve_by_datagram(ifindex: u32, addr: impl Into<IpAddr>) -> Result<()> {
    let addr = addr.into();
    let fail = |op, source| NetinfoError::Send {
        ifindex,
        op,
        source,
    };
    let (any, level, option, dest) = match addr {
        IpAddr::V4(_) => (
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            libc::IPPROTO_IP,
            libc::IP_UNICAST_IF,
            SocketAddr::new(addr, DISCARD_PORT),
        ),
        IpAddr::V6(a) => {
            let scope = if a.is_unicast_link_local() {
                ifindex
            } else {
                0
            };
            (
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                libc::IPPROTO_IPV6,
                libc::IPV6_UNICAST_IF,
                SocketAddr::V6(SocketAddrV6::new(a, DISCARD_PORT, 0, scope)),
            )
        }
    };
    let sock = UdpSocket::bind((any, 0))
        .map_err(|e| fail("open a UDP socket for neighbour resolution", e))?;
    sock.set_nonblocking(true)
        .map_err(|e| fail("make the resolution socket non-blocking", e))?;
    // IP_UNICAST_IF and IPV6_UNICAST_IF both take the interface index in network byte order.
    let value = libc::c_int::from_ne_bytes(ifindex.to_be_bytes());
    set_int_option(sock.as_fd(), level, option, value)
        .map_err(|e| fail("bind the resolution socket to the interface", e))?;
    match sock.send_to(&[], dest) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(fail("send the resolution datagram", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtnl::tests::{nla, nlmsg};
    use crate::rtnl::{Frame, classify};

    fn raw_neigh(family: u8, ifindex: u32, state: u16, attrs: &[Vec<u8>]) -> NeighbourMessage {
        let mut payload = vec![family, 0, 0, 0];
        payload.extend(ifindex.to_ne_bytes());
        payload.extend(state.to_ne_bytes());
        payload.extend([0u8, 1]); // flags, type RTN_UNICAST
        for a in attrs {
            payload.extend(a);
        }
        match classify(&nlmsg(28, 2, 1, &payload), &String::new).unwrap() {
            Frame::Message(RouteNetlinkMessage::NewNeighbour(m)) => m,
            other => panic!("not a neighbour: {other:?}"),
        }
    }

    #[test]
    fn parses_raw_neighbours() {
        let dst = nla(1, &[10, 0, 0, 2]); // NDA_DST
        let ll = nla(2, &[2, 0, 0, 0, 0, 0x22]); // NDA_LLADDR
        let n = neighbour_from_message(&raw_neigh(2, 4, 0x04, &[dst.clone(), ll])).unwrap();
        assert_eq!(n.addr, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(n.ifindex, 4);
        assert_eq!(n.state, NudState::Stale);
        assert_eq!(n.usable_mac(), Some(MacAddr([2, 0, 0, 0, 0, 0x22])));
        // Incomplete: no MAC, not usable.
        let n = neighbour_from_message(&raw_neigh(2, 4, 0x01, &[dst])).unwrap();
        assert_eq!(
            (n.state, n.mac, n.usable_mac()),
            (NudState::Incomplete, None, None)
        );
        // IPv6 (NDP) entries, link-local routers included.
        let ll6 = nla(2, &[2, 0, 0, 0, 0, 0x66]);
        let dst6 = nla(1, &[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        let n = neighbour_from_message(&raw_neigh(10, 4, 0x02, &[dst6, ll6])).unwrap();
        assert_eq!(n.addr, "fe80::1".parse::<IpAddr>().unwrap());
        assert_eq!(n.usable_mac(), Some(MacAddr([2, 0, 0, 0, 0, 0x66])));
        // Other families (AF_BRIDGE fdb entries) are not ours.
        let dst6 = nla(1, &[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            neighbour_from_message(&raw_neigh(7, 4, 0x02, &[dst6])),
            None
        );
    }

    #[test]
    fn ipv4_and_ipv6_keys_never_meet() {
        let v4: IpAddr = Ipv4Addr::new(0, 0, 0, 1).into();
        let v6: IpAddr = Ipv6Addr::LOCALHOST.into(); // ::1, same low bits
        assert_ne!(key(3, v4), key(3, v6));
        assert_ne!(key(3, v6), key(4, v6));
        let n = |addr, last| Neighbour {
            ifindex: 3,
            addr,
            mac: Some(MacAddr([2, 0, 0, 0, 0, last])),
            state: NudState::Reachable,
        };
        let t = Neighbours::from_entries([n(v6, 6), n(v4, 4)]);
        assert_eq!(t.usable_mac(3, v4), Some(MacAddr([2, 0, 0, 0, 0, 4])));
        assert_eq!(t.usable_mac(3, v6), Some(MacAddr([2, 0, 0, 0, 0, 6])));
        assert_eq!(t.usable_mac(4, v6), None);
    }

    #[test]
    fn usable_states() {
        for (bits, usable) in [
            (0x01, false),
            (0x02, true),
            (0x04, true),
            (0x08, true),
            (0x10, true),
            (0x20, false),
            (0x40, true),
            (0x80, true),
            (0x00, false),
            (0x06, false),
        ] {
            assert_eq!(
                NudState::from_bits(bits).is_usable(),
                usable,
                "state {bits:#x}"
            );
        }
    }

    #[test]
    fn snapshot_lookup_by_interface_and_address() {
        let n = |ifindex, last, state| Neighbour {
            ifindex,
            addr: Ipv4Addr::new(10, 0, 0, last).into(),
            mac: Some(MacAddr([2, 0, 0, 0, 0, last])),
            state,
        };
        let t = Neighbours::from_entries([
            n(3, 9, NudState::Reachable),
            n(2, 9, NudState::Failed),
            n(2, 1, NudState::Permanent),
        ]);
        assert_eq!(t.len(), 3);
        assert_eq!(
            t.usable_mac(3, Ipv4Addr::new(10, 0, 0, 9)),
            Some(MacAddr([2, 0, 0, 0, 0, 9]))
        );
        assert_eq!(t.usable_mac(2, Ipv4Addr::new(10, 0, 0, 9)), None);
        assert_eq!(
            t.get(2, Ipv4Addr::new(10, 0, 0, 9)).unwrap().state,
            NudState::Failed
        );
        assert!(t.get(4, Ipv4Addr::new(10, 0, 0, 9)).is_none());
        assert!(t.usable_mac(2, Ipv4Addr::new(10, 0, 0, 1)).is_some());
    }
}
