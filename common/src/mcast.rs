//! Joining an IPv4 multicast group the way every lvs-rs sender on a LAN segment wants it,
//! written once for lvs-heartbeatd's heartbeats and the director's connection sync: the
//! group joined on one interface, our own datagrams not looped back, TTL 1 (the peers sit
//! on the same segment), and the datagrams we send leaving by that interface.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use crate::sys::set_ip_option;

/// Joins `group` on the interface holding `interface` (`0.0.0.0`: the kernel picks, by its
/// routes, both where to join and where to send). Works on any UDP socket (std or mio).
pub fn join_group(socket: &impl AsRawFd, group: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
    if !group.is_multicast() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{group} is not a multicast group"),
        ));
    }
    let fd = socket.as_raw_fd();
    let mreq = libc::ip_mreq {
        imr_multiaddr: in_addr(group),
        imr_interface: in_addr(interface),
    };
    set_ip_option(fd, libc::IP_ADD_MEMBERSHIP, &mreq)?;
    set_ip_option(fd, libc::IP_MULTICAST_LOOP, &libc::c_int::from(false))?;
    set_ip_option(fd, libc::IP_MULTICAST_TTL, &libc::c_int::from(1u8))?;
    if !interface.is_unspecified() {
        // std has no setter for IP_MULTICAST_IF.
        set_ip_option(fd, libc::IP_MULTICAST_IF, &in_addr(interface))?;
    }
    Ok(())
}

fn in_addr(a: Ipv4Addr) -> libc::in_addr {
    libc::in_addr {
        s_addr: u32::from(a).to_be(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_set_and_a_unicast_group_is_refused() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let e = join_group(&s, Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::LOCALHOST).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        // Joining needs a multicast-capable interface: lo may lack the flag, so only the
        // options that follow a successful join are read back.
        if join_group(&s, Ipv4Addr::new(239, 1, 2, 3), Ipv4Addr::LOCALHOST).is_ok() {
            assert!(!s.multicast_loop_v4().unwrap());
            assert_eq!(s.multicast_ttl_v4().unwrap(), 1);
        }
    }
}
