//! Packet parsing and in-place rewriting for the director's workers: VS/NAT, VS/DR and VS/TUN.
//!
//! Every function here runs once per packet on bytes straight from the wire, so each one
//! allocates nothing, locks nothing, makes no system call, and never panics or writes outside
//! the buffers it is given, whatever they hold. A malformed frame is a [`DropReason`]; a
//! rewrite that cannot apply is a [`RewriteError`] or [`TunError`], each with the drop counter
//! it belongs to.
//!
//! IPv4 with TCP, UDP and ICMP for now. Addresses are `IpAddr` in every public type so that
//! IPv6 can be added without changing them; IPv4 layout lives inside the functions. The
//! [`ipv6`] module walks an IPv6 header chain to the transport header, and
//! [`checksum::ipv6_l4_checksum`] sums the IPv6 pseudo-header; neither is in the data path yet.
//!
//! # How a worker uses it
//!
//! Every frame: `let pkt = parse(frame)?` (count the `Err` by [`DropReason::index`]; the
//! [`DropClass::NotForUs`] ones are left to the kernel), then look up `pkt.flow` (or, for an
//! ICMP error, `pkt.embedded()`'s flow reversed) in the connection table. `csum_partial` is
//! the ring's `TP_STATUS_CSUMNOTREADY` bit for this frame. Then, by forwarding method:
//!
//! - **NAT, client to real server**: [`decrement_ttl`] (on `TtlExpired`, optionally
//!   [`icmp_time_exceeded`] from the unmodified frame), [`nat_in`] to the real server's address
//!   and port, [`set_macs`], send `frame`.
//! - **NAT, real server's reply**: [`decrement_ttl`], [`nat_out`] to VIP:vport, [`set_macs`]
//!   toward the client's next hop, send.
//! - **NAT, ICMP error** from a client about a reply: [`decrement_ttl`], [`nat_icmp_in`],
//!   [`set_macs`]; from a real server about a client's packet: [`decrement_ttl`],
//!   [`nat_icmp_out`], [`set_macs`].
//! - **DR**: [`dr_rewrite`] (MACs only, plus the checksum if partial), send. ICMP errors for a
//!   DR connection go to the real server the same way, unchanged.
//! - **TUN**: [`tun_encap`] into a transmit buffer and send that. On [`TunError::TooBig`],
//!   [`icmp_frag_needed`] from the VIP with the reported MTU, into a transmit buffer, back to
//!   the client; on [`TunError::NeedsFragmentation`], drop and count.
//!
//! The rewrites change no length: send the frame as it was received.

mod bytes;
pub mod checksum;
mod dr;
mod drop;
mod error;
mod eth;
mod icmp;
pub mod ipv6;
mod nat;
mod parse;
mod ttl;
mod tun;

pub use checksum::{complete_l4_checksum, verify_ip_header, verify_l4};
pub use dr::dr_rewrite;
pub use drop::{DropClass, DropReason};
pub use error::RewriteError;
pub use eth::{MacPair, set_macs};
pub use icmp::{
    ICMP_ERROR_MAX_LEN, icmp_frag_needed, icmp_time_exceeded, nat_icmp_in, nat_icmp_out,
};
pub use nat::{nat_in, nat_out};
pub use parse::{
    ETH_HEADER_LEN, Embedded, Flow, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, ICMP_HEADER_LEN,
    ICMP_PARAMETER_PROBLEM, ICMP_TIME_EXCEEDED, IPV4_HEADER_LEN, IcmpInfo, L4Proto, Mac, Packet,
    TcpFlags, parse,
};
pub use ttl::decrement_ttl;
pub use tun::{TunError, TunParams, tun_encap};
