//! Gratuitous ARP: announce that an address now lives at our MAC (after a takeover), as
//! keepalived and heartbeat do, on an AF_PACKET socket; and its IPv6 counterpart, neighbour
//! discovery (RFC 4861) on a raw ICMPv6 socket ([`NdpSocket`]): the unsolicited neighbour
//! advertisement of a takeover (§7.2.6), and the answers to neighbour solicitations for the
//! addresses we hold (§7.2.4), which the kernel does not give for an address that lives on
//! another interface than the one the solicitation arrived on.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use crate::error::{NetinfoError, Result};
use crate::mac::MacAddr;
use crate::sys::{send_frame, set_int_option, set_option, socket};

mod sys;

const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IP: u16 = 0x0800;
const ARPHRD_ETHER: u16 = 1;
/// Frame length: Ethernet header (14) + ARP (28), padded to the 60-byte Ethernet minimum.
pub const GARP_FRAME_LEN: usize = 60;

/// The two forms of gratuitous ARP. Senders traditionally use both, because some hosts update
/// their cache only from one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GarpKind {
    /// ARP request for our own address (sender = target = the address, target MAC broadcast).
    Request,
    /// Unsolicited ARP reply (sender = target = the address, target MAC = our MAC).
    Reply,
}

/// Build one gratuitous ARP frame, broadcast, announcing `addr` at `mac`.
#[must_use]
pub fn gratuitous_arp_frame(mac: MacAddr, addr: Ipv4Addr, kind: GarpKind) -> [u8; GARP_FRAME_LEN] {
    let (op, target_mac) = match kind {
        GarpKind::Request => (1u16, MacAddr::BROADCAST),
        GarpKind::Reply => (2u16, mac),
    };
    let mut f = [0u8; GARP_FRAME_LEN];
    f[0..6].copy_from_slice(&MacAddr::BROADCAST.0);
    f[6..12].copy_from_slice(&mac.0);
    f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    f[14..16].copy_from_slice(&ARPHRD_ETHER.to_be_bytes());
    f[16..18].copy_from_slice(&ETH_P_IP.to_be_bytes());
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&op.to_be_bytes());
    f[22..28].copy_from_slice(&mac.0);
    f[28..32].copy_from_slice(&addr.octets());
    f[32..38].copy_from_slice(&target_mac.0);
    f[38..42].copy_from_slice(&addr.octets());
    f
}

/// Send gratuitous ARP for `addr` out of interface `ifindex` whose MAC is `mac`, one frame per
/// entry of `kinds` (e.g. `&[GarpKind::Request, GarpKind::Reply]`).
///
/// # Errors
/// No CAP_NET_RAW (EPERM), the interface is gone or down (ENXIO/ENETDOWN) ...
pub fn send_gratuitous_arp(
    ifindex: u32,
    mac: MacAddr,
    addr: Ipv4Addr,
    kinds: &[GarpKind],
) -> Result<()> {
    let fail = |op, source| NetinfoError::Send {
        ifindex,
        op,
        source,
    };
    let sll_ifindex =
        libc::c_int::try_from(ifindex).map_err(|_| NetinfoError::NoSuchIfindex(ifindex))?;
    // Protocol 0: this socket only sends, it never receives a frame.
    let fd = socket(libc::AF_PACKET, libc::SOCK_RAW, 0)
        .map_err(|e| fail("open an AF_PACKET socket for gratuitous ARP", e))?;
    let mut sll_addr = [0u8; 8];
    sll_addr[..6].copy_from_slice(&MacAddr::BROADCAST.0);
    let dest = libc::sockaddr_ll {
        sll_family: libc::sa_family_t::try_from(libc::AF_PACKET).unwrap_or_default(),
        sll_protocol: ETH_P_ARP.to_be(),
        sll_ifindex,
        sll_hatype: ARPHRD_ETHER,
        sll_pkttype: 0,
        sll_halen: 6,
        sll_addr,
    };
    for &kind in kinds {
        let frame = gratuitous_arp_frame(mac, addr, kind);
        send_frame(fd.as_fd(), &frame, &dest)
            .map_err(|e| fail("send a gratuitous ARP frame", e))?;
    }
    Ok(())
}

/// ICMPv6 type of a neighbour solicitation.
pub const ICMPV6_NEIGHBOUR_SOLICITATION: u8 = 135;
/// ICMPv6 type of a neighbour advertisement.
pub const ICMPV6_NEIGHBOUR_ADVERTISEMENT: u8 = 136;
/// The only hop limit neighbour discovery is sent and accepted with (RFC 4861 §7.1): no
/// router forwards with it, so a receiver knows the message came from its own link, and
/// drops any other.
pub const NDP_HOP_LIMIT: u8 = 255;
/// A neighbour advertisement with its target link-layer address option: ICMPv6 header (4),
/// flags (4), target (16), option (8).
pub const NA_LEN: usize = 32;
/// ff02::1, every node of the link: where unsolicited advertisements go.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

const NA_FLAG_ROUTER: u8 = 0x80;
const NA_FLAG_SOLICITED: u8 = 0x40;
const NA_FLAG_OVERRIDE: u8 = 0x20;
const OPT_SOURCE_LLADDR: u8 = 1;
const OPT_TARGET_LLADDR: u8 = 2;
/// `setsockopt(IPPROTO_ICMPV6, ICMP6_FILTER)` (linux/icmpv6.h).
const ICMP6_FILTER: libc::c_int = 1;
/// `SO_BINDTOIFINDEX` (asm-generic/socket.h, Linux 5.0): bind to an interface by index.
const SO_BINDTOIFINDEX: libc::c_int = 62;

/// The flags of a neighbour advertisement besides Override, which is always set here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NaFlags {
    /// Router (RFC 4861 §4.4): the sender forwards packets. Set, as Linux sets it, when
    /// IPv6 forwarding is on on the interface (a VS/NAT director is its real servers'
    /// gateway): a receiver that knew the address as a router's drops it from its default
    /// routers on an advertisement without the flag.
    pub router: bool,
    /// Solicited: an answer to a solicitation.
    pub solicited: bool,
}

/// Build a neighbour advertisement for `target` at `mac` (the ICMPv6 message; the kernel
/// adds the IPv6 header and, on a raw ICMPv6 socket, the checksum, left 0 here). Override is
/// always set: the address moved to us and must replace any cached MAC.
#[must_use]
pub fn neighbour_advertisement(mac: MacAddr, target: Ipv6Addr, flags: NaFlags) -> [u8; NA_LEN] {
    let mut m = [0u8; NA_LEN];
    m[0] = ICMPV6_NEIGHBOUR_ADVERTISEMENT;
    m[4] = NA_FLAG_OVERRIDE
        | if flags.router { NA_FLAG_ROUTER } else { 0 }
        | if flags.solicited {
            NA_FLAG_SOLICITED
        } else {
            0
        };
    m[8..24].copy_from_slice(&target.octets());
    m[24] = OPT_TARGET_LLADDR;
    m[25] = 1; // in units of 8 octets
    m[26..32].copy_from_slice(&mac.0);
    m
}

/// The solicited-node multicast address of `addr` (ff02::1:ffXX:XXXX, RFC 4291 §2.7.1):
/// the group a solicitation for `addr` is sent to.
#[must_use]
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

fn is_solicited_node(addr: Ipv6Addr) -> bool {
    addr.octets()[..13] == solicited_node(Ipv6Addr::UNSPECIFIED).octets()[..13]
}

/// A valid neighbour solicitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Solicitation {
    /// Whose link-layer address is asked for.
    pub target: Ipv6Addr,
    /// The asker's link-layer address (source link-layer address option), if given.
    pub source_mac: Option<MacAddr>,
    /// Sent from the unspecified address: duplicate-address detection by a node that wants
    /// `target` for itself (the answer goes to all nodes, RFC 4861 §7.2.4).
    pub dad: bool,
}

/// Why a neighbour solicitation was dropped (RFC 4861 §7.1.1); each is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadSolicitation {
    /// Not ICMPv6 type 135 (the socket's filter lets nothing else through).
    NotSolicitation,
    /// IP hop limit other than 255, or not known: it may come from off the link.
    HopLimit,
    /// ICMP code other than 0.
    Code,
    /// Shorter than 24 octets, or truncated by the receive buffer.
    Short,
    /// The target is a multicast address.
    MulticastTarget,
    /// An option of length 0, or one running past the end of the message.
    BadOption,
    /// From the unspecified address but not to a solicited-node multicast address.
    DadNotToSolicitedNode,
    /// From the unspecified address with a source link-layer address option.
    DadWithSourceLladdr,
}

impl BadSolicitation {
    /// Every reason, in counter order.
    pub const ALL: [BadSolicitation; 8] = [
        BadSolicitation::NotSolicitation,
        BadSolicitation::HopLimit,
        BadSolicitation::Code,
        BadSolicitation::Short,
        BadSolicitation::MulticastTarget,
        BadSolicitation::BadOption,
        BadSolicitation::DadNotToSolicitedNode,
        BadSolicitation::DadWithSourceLladdr,
    ];

    /// Its name in counters and logs.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            BadSolicitation::NotSolicitation => "not_solicitation",
            BadSolicitation::HopLimit => "hop_limit",
            BadSolicitation::Code => "code",
            BadSolicitation::Short => "short",
            BadSolicitation::MulticastTarget => "multicast_target",
            BadSolicitation::BadOption => "bad_option",
            BadSolicitation::DadNotToSolicitedNode => "dad_not_to_solicited_node",
            BadSolicitation::DadWithSourceLladdr => "dad_with_source_lladdr",
        }
    }
}

/// Checks `msg` (an ICMPv6 message, its checksum already verified by the kernel) as RFC 4861
/// §7.1.1 says a neighbour solicitation must be, given what its IPv6 header said.
///
/// # Errors
/// The first rule it breaks.
pub fn parse_neighbour_solicitation(
    msg: &[u8],
    hop_limit: Option<i32>,
    source: Ipv6Addr,
    destination: Ipv6Addr,
) -> std::result::Result<Solicitation, BadSolicitation> {
    if msg.first() != Some(&ICMPV6_NEIGHBOUR_SOLICITATION) {
        return Err(BadSolicitation::NotSolicitation);
    }
    if hop_limit != Some(i32::from(NDP_HOP_LIMIT)) {
        return Err(BadSolicitation::HopLimit);
    }
    if msg.len() < 24 {
        return Err(BadSolicitation::Short);
    }
    if msg[1] != 0 {
        return Err(BadSolicitation::Code);
    }
    let mut t = [0u8; 16];
    t.copy_from_slice(&msg[8..24]);
    let target = Ipv6Addr::from(t);
    if target.is_multicast() {
        return Err(BadSolicitation::MulticastTarget);
    }
    let mut source_mac = None;
    let mut opts = &msg[24..];
    while !opts.is_empty() {
        let len = usize::from(*opts.get(1).ok_or(BadSolicitation::BadOption)?) * 8;
        if len == 0 || len > opts.len() {
            return Err(BadSolicitation::BadOption);
        }
        if opts[0] == OPT_SOURCE_LLADDR && len == 8 {
            source_mac = MacAddr::from_slice(&opts[2..8]);
        }
        opts = &opts[len..];
    }
    let dad = source.is_unspecified();
    if dad && !is_solicited_node(destination) {
        return Err(BadSolicitation::DadNotToSolicitedNode);
    }
    if dad && source_mac.is_some() {
        return Err(BadSolicitation::DadWithSourceLladdr);
    }
    Ok(Solicitation {
        target,
        source_mac,
        dad,
    })
}

/// What an [`NdpSocket`] did with the solicitations it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NdpStats {
    /// Valid solicitations for one of our addresses, answered.
    pub answered: u64,
    /// Valid solicitations for an address we do not hold (ignored).
    pub not_ours: u64,
    /// Answers the kernel refused.
    pub send_errors: u64,
    /// Unsolicited advertisements sent.
    pub announced: u64,
    /// Dropped as malformed, by [`BadSolicitation`] (in [`BadSolicitation::ALL`] order).
    pub malformed: [u64; 8],
}

impl NdpStats {
    /// Malformed solicitations of every reason.
    #[must_use]
    pub fn malformed_total(&self) -> u64 {
        self.malformed.iter().sum()
    }

    /// The malformed counters by name.
    #[must_use]
    pub fn malformed_named(&self) -> Vec<(&'static str, u64)> {
        BadSolicitation::ALL
            .iter()
            .zip(self.malformed)
            .map(|(r, n)| (r.name(), n))
            .collect()
    }
}

/// Neighbour discovery for the addresses this host holds on one interface: a raw ICMPv6
/// socket bound to the interface, sending with hop limit 255, receiving only neighbour
/// solicitations (with their hop limit and destination), non-blocking (register
/// [`NdpSocket::raw_fd`] for readability with a poll loop and call [`NdpSocket::serve`]).
///
/// It exists because the kernel answers a solicitation only for an address of the interface
/// it arrived on, while lvs-heartbeatd keeps its virtual addresses on a device of their own
/// (so that they die with the process). The socket's group memberships and answers die with
/// the process too.
#[derive(Debug)]
pub struct NdpSocket {
    fd: OwnedFd,
    ifindex: u32,
    mac: MacAddr,
    targets: Vec<Ipv6Addr>,
    groups: Vec<Ipv6Addr>,
    router: bool,
    stats: NdpStats,
}

impl NdpSocket {
    /// Opens the socket on interface `ifindex`, whose MAC is `mac`. It answers nothing until
    /// [`NdpSocket::set_targets`] names the addresses.
    ///
    /// # Errors
    /// No CAP_NET_RAW (EPERM), IPv6 disabled, the interface gone (ENODEV) ...
    pub fn open(ifindex: u32, mac: MacAddr) -> Result<NdpSocket> {
        let fail = |op, source| NetinfoError::Send {
            ifindex,
            op,
            source,
        };
        let index =
            libc::c_int::try_from(ifindex).map_err(|_| NetinfoError::NoSuchIfindex(ifindex))?;
        let fd = socket(
            libc::AF_INET6,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK,
            libc::IPPROTO_ICMPV6,
        )
        .map_err(|e| fail("open a raw ICMPv6 socket for neighbour discovery", e))?;
        let b = fd.as_fd();
        // Blocked types have their bit set; only solicitations pass.
        let mut filter = [u32::MAX; 8];
        let ns = usize::from(ICMPV6_NEIGHBOUR_SOLICITATION);
        filter[ns >> 5] &= !(1u32 << (ns & 31));
        set_option(b, libc::IPPROTO_ICMPV6, ICMP6_FILTER, &filter)
            .map_err(|e| fail("set the ICMPv6 filter of the neighbour discovery socket", e))?;
        set_int_option(b, libc::SOL_SOCKET, SO_BINDTOIFINDEX, index)
            .map_err(|e| fail("bind the neighbour discovery socket to its interface", e))?;
        let hops = libc::c_int::from(NDP_HOP_LIMIT);
        for (option, value, what) in [
            (libc::IPV6_UNICAST_HOPS, hops, "set unicast hop limit 255"),
            (
                libc::IPV6_MULTICAST_HOPS,
                hops,
                "set multicast hop limit 255",
            ),
            (
                libc::IPV6_MULTICAST_LOOP,
                0,
                "switch multicast loopback off",
            ),
            (
                libc::IPV6_RECVHOPLIMIT,
                1,
                "ask for the hop limit of solicitations",
            ),
            (
                libc::IPV6_RECVPKTINFO,
                1,
                "ask for the destination of solicitations",
            ),
        ] {
            set_int_option(b, libc::IPPROTO_IPV6, option, value).map_err(|e| fail(what, e))?;
        }
        Ok(NdpSocket {
            fd,
            ifindex,
            mac,
            targets: Vec::new(),
            groups: Vec::new(),
            router: false,
            stats: NdpStats::default(),
        })
    }

    /// The descriptor, to register for readability.
    #[must_use]
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The counters.
    #[must_use]
    pub fn stats(&self) -> NdpStats {
        self.stats
    }

    /// Whether our advertisements carry the Router flag (see [`NaFlags::router`]).
    pub fn set_router(&mut self, router: bool) {
        self.router = router;
    }

    /// The addresses answered for from now on (none: stop answering). Joins their
    /// solicited-node groups on the interface (multicast solicitations reach us only then)
    /// and leaves those no longer needed.
    ///
    /// # Errors
    /// The kernel refused a membership; the targets are set all the same.
    pub fn set_targets(&mut self, targets: &[Ipv6Addr]) -> Result<()> {
        self.targets = targets.to_vec();
        let mut want: Vec<Ipv6Addr> = targets.iter().map(|&a| solicited_node(a)).collect();
        want.sort_unstable();
        want.dedup();
        let mut first_error = None;
        for g in std::mem::take(&mut self.groups) {
            if !want.contains(&g)
                && let Err(e) = self.membership(libc::IPV6_DROP_MEMBERSHIP, g)
            {
                first_error.get_or_insert(e);
            }
        }
        for g in &want {
            if let Err(e) = self.membership(libc::IPV6_ADD_MEMBERSHIP, *g) {
                // Still a member from the previous targets: no error.
                if e.errno() != Some(libc::EADDRINUSE) {
                    first_error.get_or_insert(e);
                    continue;
                }
            }
            self.groups.push(*g);
        }
        first_error.map_or(Ok(()), Err)
    }

    fn membership(&self, option: libc::c_int, group: Ipv6Addr) -> Result<()> {
        let mreq = libc::ipv6_mreq {
            ipv6mr_multiaddr: libc::in6_addr {
                s6_addr: group.octets(),
            },
            ipv6mr_interface: self.ifindex,
        };
        set_option(self.fd.as_fd(), libc::IPPROTO_IPV6, option, &mreq).map_err(|source| {
            NetinfoError::Send {
                ifindex: self.ifindex,
                op: "join or leave a solicited-node multicast group",
                source,
            }
        })
    }

    /// Sends one unsolicited neighbour advertisement for `target` (RFC 4861 §7.2.6): to
    /// ff02::1, Override set, Solicited clear, our MAC as the target link-layer address,
    /// hop limit 255, from `target` itself (as Linux sends its own). Receivers that have
    /// `target` in their neighbour cache take the new MAC at once (state STALE); the others
    /// ignore it and ask when they need to.
    ///
    /// # Errors
    /// The kernel refused it (the interface down, `target` not a local address ...).
    pub fn announce(&mut self, target: Ipv6Addr) -> Result<()> {
        let flags = NaFlags {
            router: self.router,
            solicited: false,
        };
        let na = neighbour_advertisement(self.mac, target, flags);
        sys::send_icmp6(
            self.fd.as_fd(),
            &na,
            ALL_NODES,
            self.ifindex,
            target,
            self.ifindex,
        )
        .map_err(|source| NetinfoError::Send {
            ifindex: self.ifindex,
            op: "send an unsolicited neighbour advertisement",
            source,
        })?;
        self.stats.announced += 1;
        Ok(())
    }

    /// Reads at most `max` waiting solicitations; answers the valid ones for our targets
    /// (RFC 4861 §7.2.4: to the asker with Solicited set, or to all nodes for
    /// duplicate-address detection), counts and drops the rest. True when `max` were read and
    /// more may wait: a flood costs the caller's loop one burst per turn, never its timers
    /// (for an edge-triggered poll, call again without waiting for readiness).
    ///
    /// # Errors
    /// Reading failed other than with "nothing more to read".
    pub fn serve(&mut self, max: usize) -> Result<bool> {
        let mut buf = [0u8; 1280];
        for _ in 0..max {
            let got = match sys::recv_icmp6(self.fd.as_fd(), &mut buf) {
                Ok(g) => g,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(NetinfoError::Send {
                        ifindex: self.ifindex,
                        op: "read neighbour solicitations",
                        source,
                    });
                }
            };
            let (destination, arrived) = got.destination.unwrap_or((Ipv6Addr::UNSPECIFIED, 0));
            if arrived != 0 && arrived != self.ifindex {
                continue;
            }
            let parsed = if got.truncated {
                Err(BadSolicitation::Short)
            } else {
                parse_neighbour_solicitation(
                    &buf[..got.len],
                    got.hop_limit,
                    got.source,
                    destination,
                )
            };
            let sol = match parsed {
                Ok(s) => s,
                Err(why) => {
                    if let Some(i) = BadSolicitation::ALL.iter().position(|&r| r == why) {
                        self.stats.malformed[i] += 1;
                    }
                    continue;
                }
            };
            if !self.targets.contains(&sol.target) {
                self.stats.not_ours += 1;
                continue;
            }
            let (to, solicited) = if sol.dad {
                (ALL_NODES, false)
            } else {
                (got.source, true)
            };
            let flags = NaFlags {
                router: self.router,
                solicited,
            };
            let na = neighbour_advertisement(self.mac, sol.target, flags);
            let scope = if to.is_multicast() || to.is_unicast_link_local() {
                self.ifindex
            } else {
                0
            };
            match sys::send_icmp6(self.fd.as_fd(), &na, to, scope, sol.target, self.ifindex) {
                Ok(()) => self.stats.answered += 1,
                Err(_) => self.stats.send_errors += 1,
            }
        }
        Ok(true)
    }
}

/// Sends `count` unsolicited neighbour advertisements for `addr` out of interface `ifindex`
/// whose MAC is `mac`, on a socket of its own (see [`NdpSocket::announce`]).
///
/// # Errors
/// As [`NdpSocket::open`] and [`NdpSocket::announce`].
pub fn send_unsolicited_na(ifindex: u32, mac: MacAddr, addr: Ipv6Addr, count: u32) -> Result<()> {
    let mut s = NdpSocket::open(ifindex, mac)?;
    for _ in 0..count {
        s.announce(addr)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_reply_frames() {
        let mac = MacAddr([2, 0, 0, 0, 0, 0x42]);
        let vip = Ipv4Addr::new(10, 0, 0, 100);
        let req = gratuitous_arp_frame(mac, vip, GarpKind::Request);
        let expected_head: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 0x42, 0x08, 0x06, // ethernet
            0, 1, 0x08, 0, 6, 4, 0, 1, // htype, ptype, hlen, plen, op=request
            2, 0, 0, 0, 0, 0x42, 10, 0, 0, 100, // sender
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 10, 0, 0, 100, // target
        ];
        assert_eq!(req[..42], expected_head);
        assert!(req[42..].iter().all(|&b| b == 0));
        let rep = gratuitous_arp_frame(mac, vip, GarpKind::Reply);
        assert_eq!(rep[20..22], [0, 2]);
        assert_eq!(rep[32..38], mac.0);
        assert_eq!(rep[0..6], [0xff; 6]);
    }

    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x42]);

    fn vip6() -> Ipv6Addr {
        "2001:db8::100".parse().unwrap()
    }

    #[test]
    fn unsolicited_and_solicited_advertisements() {
        let na = neighbour_advertisement(MAC, vip6(), NaFlags::default());
        let mut expected = vec![136u8, 0, 0, 0, 0x20, 0, 0, 0]; // type, code, csum; O only
        expected.extend(vip6().octets());
        expected.extend([2, 1, 2, 0, 0, 0, 0, 0x42]); // target link-layer address option
        assert_eq!(na.to_vec(), expected);
        let solicited = NaFlags {
            router: false,
            solicited: true,
        };
        let na = neighbour_advertisement(MAC, vip6(), solicited);
        assert_eq!(na[4], 0x60, "Solicited and Override");
        let router = NaFlags {
            router: true,
            solicited: false,
        };
        assert_eq!(neighbour_advertisement(MAC, vip6(), router)[4], 0xa0);
    }

    #[test]
    fn solicited_node_groups() {
        assert_eq!(
            solicited_node("2001:db8::12:3456:789a".parse().unwrap()),
            "ff02::1:ff56:789a".parse::<Ipv6Addr>().unwrap()
        );
        assert!(is_solicited_node("ff02::1:ff00:100".parse().unwrap()));
        assert!(!is_solicited_node(ALL_NODES));
    }

    fn ns(target: Ipv6Addr, options: &[u8]) -> Vec<u8> {
        let mut m = vec![135u8, 0, 0x12, 0x34, 0, 0, 0, 0];
        m.extend(target.octets());
        m.extend(options);
        m
    }

    const SLLA: [u8; 8] = [1, 1, 2, 0, 0, 0, 0, 0x99];

    #[test]
    fn a_valid_solicitation_and_a_valid_dad_probe() {
        let client: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let group = solicited_node(vip6());
        let s = parse_neighbour_solicitation(&ns(vip6(), &SLLA), Some(255), client, group);
        assert_eq!(
            s,
            Ok(Solicitation {
                target: vip6(),
                source_mac: Some(MacAddr([2, 0, 0, 0, 0, 0x99])),
                dad: false,
            })
        );
        // Unknown options are skipped; no option at all is fine too.
        let mut opts = vec![14u8, 1, 0, 0, 0, 0, 0, 0];
        opts.extend(SLLA);
        let s = parse_neighbour_solicitation(&ns(vip6(), &opts), Some(255), client, vip6());
        assert_eq!(
            s.map(|s| s.source_mac),
            Ok(Some(MacAddr([2, 0, 0, 0, 0, 0x99])))
        );
        let s =
            parse_neighbour_solicitation(&ns(vip6(), &[]), Some(255), Ipv6Addr::UNSPECIFIED, group);
        assert_eq!(s.map(|s| s.dad), Ok(true));
    }

    #[test]
    fn every_rule_of_rfc4861_7_1_1_is_enforced() {
        let client: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let group = solicited_node(vip6());
        let check = |m: &[u8], hops, src, dst| parse_neighbour_solicitation(m, hops, src, dst);
        let good = ns(vip6(), &SLLA);
        assert_eq!(
            check(&good, Some(64), client, group),
            Err(BadSolicitation::HopLimit)
        );
        assert_eq!(
            check(&good, None, client, group),
            Err(BadSolicitation::HopLimit)
        );
        let mut coded = good.clone();
        coded[1] = 1;
        assert_eq!(
            check(&coded, Some(255), client, group),
            Err(BadSolicitation::Code)
        );
        assert_eq!(
            check(&good[..23], Some(255), client, group),
            Err(BadSolicitation::Short)
        );
        assert_eq!(
            check(&[], Some(255), client, group),
            Err(BadSolicitation::NotSolicitation)
        );
        let mut na = good.clone();
        na[0] = 136;
        assert_eq!(
            check(&na, Some(255), client, group),
            Err(BadSolicitation::NotSolicitation)
        );
        assert_eq!(
            check(&ns(ALL_NODES, &SLLA), Some(255), client, group),
            Err(BadSolicitation::MulticastTarget)
        );
        for bad in [
            &[1u8, 0, 0, 0, 0, 0, 0, 0][..],
            &[1, 2, 0, 0, 0, 0, 0, 0],
            &[1],
        ] {
            assert_eq!(
                check(&ns(vip6(), bad), Some(255), client, group),
                Err(BadSolicitation::BadOption),
                "{bad:?}"
            );
        }
        let any = Ipv6Addr::UNSPECIFIED;
        assert_eq!(
            check(&ns(vip6(), &[]), Some(255), any, vip6()),
            Err(BadSolicitation::DadNotToSolicitedNode)
        );
        assert_eq!(
            check(&good, Some(255), any, group),
            Err(BadSolicitation::DadWithSourceLladdr)
        );
    }

    #[test]
    fn random_bytes_never_panic_the_parser() {
        // A small deterministic generator: no dev-dependency needed for this.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let client: Ipv6Addr = "fe80::2".parse().unwrap();
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = usize::try_from(x % 64).unwrap();
            let mut m: Vec<u8> = (0..len).map(|i| x.to_le_bytes()[i % 8]).collect();
            if let Some(b) = m.first_mut() {
                *b = 135;
            }
            let _ = parse_neighbour_solicitation(&m, Some(255), client, client);
        }
    }
}
