//! What the director (and the heartbeat daemon) need from the kernel's networking tables,
//! over a synchronous NETLINK_ROUTE socket, plus two small ioctl/AF_PACKET helpers.
//!
//! - [`Netlink`]: links, IPv4 and IPv6 addresses (idempotent add/delete; IPv6 with `nodad` and
//!   its DAD state), the main routing table (IPv4 and IPv6) as a [`Fib`] with longest-prefix
//!   match per family, the neighbour table (ARP and NDP), neighbour resolution, and the
//!   combined [`NextHopTable`] that workers use per packet without system calls.
//! - [`NetlinkMonitor`]: change notifications for a `mio` loop.
//! - [`disable_receive_offloads`]: GRO/LRO off for an AF_PACKET forwarder, undone at stop.
//! - [`send_gratuitous_arp`]: announce a taken-over address; [`NdpSocket`]: the same for
//!   IPv6 (unsolicited neighbour advertisements), and the answers to neighbour solicitations
//!   for addresses held on another interface.
//!
//! Everything here works in the network namespace of the calling thread. Routes, neighbours,
//! next hops and change notifications hold `IpAddr`: one table serves both families, and a
//! lookup only ever matches routes and neighbours of the address's own family. IPv6 default
//! routes usually go via a link-local router (fe80::/10); such a gateway is a neighbour like any
//! other, keyed by its interface.
//!
//! # How the director uses it
//!
//! ```no_run
//! use std::sync::Arc;
//! use lvs_netinfo::{Netlink, NetlinkMonitor, NextHopLookup, disable_receive_offloads};
//!
//! # fn main() -> lvs_netinfo::Result<()> {
//! // Startup: subscribe first (no change may fall between snapshot and subscription),
//! // pick the interfaces, switch their receive offloads off.
//! let mut monitor = NetlinkMonitor::open()?; // register monitor.as_raw_fd() with mio
//! let mut nl = Netlink::open()?;
//! let links = nl.links()?;
//! let mut undo = Vec::new();
//! for link in links.iter().filter(|l| l.is_forwarding_candidate()) {
//!     undo.push(disable_receive_offloads(&link.name)?);
//! }
//!
//! // Control thread: build the snapshot, resolve what is missing, rebuild on change.
//! let real_servers: [std::net::IpAddr; 2] =
//!     ["10.0.1.11".parse().unwrap(), "2001:db8:1::12".parse().unwrap()];
//! let mut table = Arc::new(nl.next_hop_table()?);
//! for hop in table.missing(real_servers) {
//!     nl.resolve(hop.ifindex, hop.addr)?; // never waits for ARP
//! }
//! // ... when mio says the monitor fd is readable:
//! if monitor.drain()?.next_hops_changed() {
//!     table = Arc::new(nl.next_hop_table()?); // hand the new Arc to the workers
//! }
//!
//! // Workers: per packet (or per new connection), no syscall, no allocation, no lock.
//! match table.lookup(real_servers[0]) {
//!     NextHopLookup::Ready(r) => { /* write r.dst_mac, r.src_mac; send on r.ifindex */ }
//!     NextHopLookup::Unresolved { .. } => { /* drop and count; tell the control thread */ }
//!     NextHopLookup::NoRoute => { /* drop and count */ }
//! }
//!
//! // Stop: put the offloads back.
//! for change in &undo {
//!     change.restore()?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Limits
//!
//! - Only the main routing table is read (for IPv6 too): policy routing rules, other tables, TOS-specific
//!   routes and non-unicast routes (local, broadcast, blackhole, unreachable, prohibit) are
//!   ignored. An ECMP route keeps its first next hop.
//! - GRO/LRO are switched with the legacy ethtool ioctl: hardware GRO (`rx-gro-hw`) is not
//!   touched by it (most drivers drop it together with GRO).

mod addr;
mod error;
mod garp;
mod link;
mod mac;
mod monitor;
mod neigh;
mod nexthop;
mod offload;
mod route;
mod rtnl;
mod sys;

pub use addr::{AddressChange, Ipv4Address, Ipv6Address};
pub use error::{NetinfoError, Result};
pub use garp::{
    ALL_NODES, BadSolicitation, GARP_FRAME_LEN, GarpKind, ICMPV6_NEIGHBOUR_ADVERTISEMENT,
    ICMPV6_NEIGHBOUR_SOLICITATION, NA_LEN, NDP_HOP_LIMIT, NaFlags, NdpSocket, NdpStats,
    Solicitation, gratuitous_arp_frame, neighbour_advertisement, parse_neighbour_solicitation,
    send_gratuitous_arp, send_unsolicited_na, solicited_node,
};
pub use link::Link;
pub use mac::{BadMacAddr, MacAddr};
pub use monitor::{Changes, MAX_EVENTS, NetChange, NetlinkMonitor};
pub use neigh::{Neighbour, Neighbours, NudState, ResolveTrigger, resolve_by_datagram};
pub use nexthop::{NextHopLookup, NextHopTable, PendingNeighbour, Resolved};
pub use offload::{OffloadChange, disable_receive_offloads, gro_enabled, lro_enabled, set_gro};
pub use route::{Fib, NextHop, Route};
pub use rtnl::Netlink;
