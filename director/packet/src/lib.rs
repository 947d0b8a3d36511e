//! Packet parsing and in-place rewriting for the director's workers: VS/NAT, VS/DR and VS/TUN.
//!
//! Every function here runs once per packet on bytes straight from the wire, so each one
//! allocates nothing, locks nothing, makes no system call, and never panics or writes outside
//! the buffers it is given, whatever they hold. A malformed frame is a [`DropReason`]; a
//! rewrite that cannot apply is a [`RewriteError`] or [`TunError`], each with the drop counter
//! it belongs to.
//!
//! IPv4 with TCP, UDP and ICMP, and IPv6 with TCP, UDP and ICMPv6, through the same functions:
//! addresses are `IpAddr` in every public type, a `Packet`'s family is its addresses'
//! ([`Packet::is_ipv6`]), and each function takes the layout of that family. An address of the
//! other family is [`RewriteError::FamilyMismatch`]. Over IPv6:
//!
//! - [`parse`] walks the extension headers ([`ipv6`]: hop-by-hop, routing, destination
//!   options, fragment, authentication) to the transport header; a packet whose transport
//!   header cannot be found (a non-first fragment, a chain past the payload, too many headers,
//!   an unknown header) is a [`DropReason`], never a `Packet`. Every IPv6 bad input has its own
//!   reason: `malformed_ipv6_ext_header`, `malformed_ipv6_payload_length`,
//!   `malformed_ipv6_hop_by_hop_not_first`, `ipv6_too_many_ext_headers`, `fragment`,
//!   `ipv6_jumbogram`, `ipv6_routing_type0`, `ipv6_routing_segments_left`,
//!   `ipv6_unrecognised_option`, `ipv6_unknown_ext_header`, `malformed_ipv6_udp_zero_checksum`, `malformed_bad_icmp` (an
//!   error quoting a packet cut before its ports), and `ttl_expired` from [`decrement_ttl`]
//!   for a hop limit of 1.
//! - ICMPv6 is [`L4Proto::Icmpv6`], a protocol of its own rather than `Icmp` with the family
//!   deciding: its number (58) is what the scheduler and the connection table see, and its
//!   checksum covers a pseudo-header. A worker needs no new branch for it: ICMP errors of
//!   either family come with [`Packet::embedded`], and `pkt.icmp.is_some()` is true for both.
//! - The `Packet` fields named after IPv4 mean: `ttl` the hop limit, `tos` the traffic class,
//!   `ip_id` 0, `dont_fragment` true.
//! - TUN is IPv6-in-IPv6 (next header 41, what Linux's `ip6tnl` decapsulates); an IPv4
//!   packet over an IPv6 tunnel or the reverse is [`TunError::MixedFamilies`]. The
//!   "fragmentation needed" of [`icmp_frag_needed`] is ICMPv6 "packet too big".
//!
//! # How a worker uses it
//!
//! Every frame: `let pkt = parse(frame)?` (count the `Err` by [`DropReason::index`]; the
//! [`DropClass::NotForUs`] ones are left to the kernel), then look up `pkt.flow` (or, for an
//! ICMP or ICMPv6 error, `pkt.embedded()`'s flow reversed) in the connection table. `csum_partial` is
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
mod family;
mod icmp;
mod icmp6;
pub mod ipv6;
mod nat;
mod parse;
mod parse6;
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
pub use icmp6::ICMPV6_ERROR_MAX_LEN;
pub use ipv6::IPV6_HEADER_LEN;
pub use nat::{nat_in, nat_out};
pub use parse::{
    ETH_HEADER_LEN, Embedded, Flow, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, ICMP_HEADER_LEN,
    ICMP_PARAMETER_PROBLEM, ICMP_TIME_EXCEEDED, IPV4_HEADER_LEN, IcmpInfo, L4Proto, Mac, Packet,
    TcpFlags, parse,
};
pub use parse6::{
    ICMPV6_DEST_UNREACH, ICMPV6_PACKET_TOO_BIG, ICMPV6_PARAMETER_PROBLEM, ICMPV6_TIME_EXCEEDED,
};
pub use ttl::decrement_ttl;
pub use tun::{TunError, TunParams, tun_encap};
