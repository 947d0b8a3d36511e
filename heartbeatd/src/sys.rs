//! The interface ioctls of the VIP device ([`crate::vipdev`]) and the one socket option nix
//! has no setter for, each behind a safe function: the only place in `lvs-heartbeatd` with
//! `unsafe` code.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};

/// `_IOW('T', 202, int)`: attach to (create) a TUN/TAP device.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
/// `IFNAMSIZ`.
pub(crate) const IFNAMSIZ: usize = 16;

/// `struct ifreq` with the `ifr_flags` member of its union (40 bytes on 64-bit Linux).
#[repr(C)]
struct IfReqFlags {
    name: [u8; IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

impl IfReqFlags {
    /// `name` must be shorter than [`IFNAMSIZ`] (checked by the callers' name validation; a
    /// longer one is cut, never written past the array).
    fn new(name: &str, flags: libc::c_short) -> IfReqFlags {
        let mut r = IfReqFlags {
            name: [0; IFNAMSIZ],
            flags,
            _pad: [0; 22],
        };
        let len = name.len().min(IFNAMSIZ - 1);
        r.name[..len].copy_from_slice(&name.as_bytes()[..len]);
        r
    }
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// TUNSETIFF on an open `/dev/net/tun`: creates (or attaches to) the device `name` with
/// `flags` (`IFF_TUN`, `IFF_NO_PI` ...). The device lives as long as `tun` stays open.
pub(crate) fn tun_set_iff(tun: &File, name: &str, flags: libc::c_short) -> io::Result<()> {
    let mut req = IfReqFlags::new(name, flags);
    // SAFETY: TUNSETIFF reads and writes one `struct ifreq`; `req` is a properly sized,
    // initialised `#[repr(C)]` ifreq that lives across the call, and `tun` is open.
    check(unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETIFF, &raw mut req) })
}

/// Sets IFF_UP on `name` (SIOCGIFFLAGS / SIOCSIFFLAGS on a datagram socket).
pub(crate) fn set_interface_up(name: &str) -> io::Result<()> {
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let mut req = IfReqFlags::new(name, 0);
    // SAFETY: SIOCGIFFLAGS fills `ifr_flags` of the ifreq `req`, which outlives the call.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &raw mut req) })?;
    #[allow(clippy::cast_possible_truncation)] // IFF_UP is 1
    {
        req.flags |= libc::IFF_UP as libc::c_short;
    }
    // SAFETY: SIOCSIFFLAGS reads the ifreq `req`, which outlives the call.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &raw const req) })
}

/// IPV6_MULTICAST_IF: multicast datagrams of `socket` leave by interface `ifindex`.
pub(crate) fn set_ipv6_multicast_if(socket: &impl AsRawFd, ifindex: u32) -> io::Result<()> {
    let value = libc::c_int::try_from(ifindex)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface index too large"))?;
    // SAFETY: the option value is a c_int on this stack frame whose exact size is passed;
    // the kernel only reads it, and a closed descriptor only makes the call fail (EBADF).
    check(unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_MULTICAST_IF,
            (&raw const value).cast(),
            libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).unwrap_or(4),
        )
    })
}
