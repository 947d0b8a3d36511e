//! The `packet` target's input: a parameter block, then the Ethernet frame.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Length of the parameter block before the frame.
///
/// The block has one length whatever the family it names, so that a mutation of the family
/// bit re-reads the same frame with an address of the other family instead of shifting the
/// frame by twelve bytes (which would only test the parser's refusals again).
pub const PACKET_PARAMS_LEN: usize = 22;

/// Byte 0, bit 0: the frame arrived with a partial checksum (`TP_STATUS_CSUMNOTREADY`).
pub const FLAG_CSUM_PARTIAL: u8 = 1;
/// Byte 0, bit 1: cut byte 1's count of bytes off the frame before the rewrites, so that the
/// `Packet` may describe more than the frame holds.
pub const FLAG_CUT: u8 = 2;
/// Byte 0, bit 2: the address is IPv6 (bytes 6..22), not IPv4 (bytes 6..10).
pub const FLAG_IPV6: u8 = 4;
/// Byte 0, bit 3: the tunnel's outer source is of the other family than the address.
pub const FLAG_MIXED_TUNNEL: u8 = 8;

/// What the parameter block asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketParams {
    /// Rewrites complete the transport checksum rather than update it.
    pub csum_partial: bool,
    /// Bytes cut off the frame before the rewrites (0 to 255).
    pub cut: usize,
    /// The address every rewrite is given (real server, VIP, tunnel end, ICMP source), of
    /// either family: a rewrite to the packet's family must be accepted, to the other refused.
    pub addr: IpAddr,
    /// The port the NAT rewrites are given; also the tunnel's IPv4 identification.
    pub port: u16,
    /// The tunnel's link MTU and the MTU "fragmentation needed" reports.
    pub mtu: u16,
    /// The tunnel's outer source is of the other family than `addr`.
    pub mixed_tunnel: bool,
}

impl PacketParams {
    /// The director's own address for the tunnel's outer source: of `addr`'s family, or the
    /// other one with `mixed_tunnel`.
    pub fn tunnel_src(&self) -> IpAddr {
        if self.addr.is_ipv6() != self.mixed_tunnel {
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1))
        } else {
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))
        }
    }
}

/// Splits the `packet` target's input into its parameter block and the frame:
///
/// | bytes | what |
/// | --- | --- |
/// | 0 | flags: [`FLAG_CSUM_PARTIAL`], [`FLAG_CUT`], [`FLAG_IPV6`], [`FLAG_MIXED_TUNNEL`] |
/// | 1 | bytes to cut off the frame, with [`FLAG_CUT`] |
/// | 2..4 | port, big-endian |
/// | 4..6 | MTU, big-endian |
/// | 6..22 | address: IPv6, or IPv4 in its first four bytes |
///
/// `None` if the input is shorter than the block.
pub fn packet_input(data: &[u8]) -> Option<(PacketParams, &[u8])> {
    let (p, frame) = data.split_at_checked(PACKET_PARAMS_LEN)?;
    let flags = p[0];
    let addr: [u8; 16] = p[6..22].try_into().ok()?;
    let addr = if flags & FLAG_IPV6 != 0 {
        IpAddr::V6(Ipv6Addr::from(addr))
    } else {
        IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]))
    };
    let params = PacketParams {
        csum_partial: flags & FLAG_CSUM_PARTIAL != 0,
        cut: if flags & FLAG_CUT != 0 {
            usize::from(p[1])
        } else {
            0
        },
        addr,
        port: u16::from_be_bytes([p[2], p[3]]),
        mtu: u16::from_be_bytes([p[4], p[5]]),
        mixed_tunnel: flags & FLAG_MIXED_TUNNEL != 0,
    };
    Some((params, frame))
}
