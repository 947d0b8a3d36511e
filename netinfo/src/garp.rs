//! Gratuitous ARP: announce that an address now lives at our MAC (after a takeover), as
//! keepalived and heartbeat do, on an AF_PACKET socket.

use std::net::Ipv4Addr;
use std::os::fd::AsFd;

use crate::error::{NetinfoError, Result};
use crate::mac::MacAddr;
use crate::sys::{send_frame, socket};

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
}
