//! The few raw system calls this crate needs beyond netlink, each behind a safe function: the
//! only place in `lvs-netinfo` with `unsafe` code, one operation per block.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// socket(2), returning an owned descriptor (closed on drop). `SOCK_CLOEXEC` is always added.
pub(crate) fn socket(
    domain: libc::c_int,
    kind: libc::c_int,
    protocol: libc::c_int,
) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers; any argument values are safe to pass.
    let fd = unsafe { libc::socket(domain, kind | libc::SOCK_CLOEXEC, protocol) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2), is valid, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `size_of::<T>()` as a `socklen_t` (every type passed here is a few dozen bytes).
fn socklen_of<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(std::mem::size_of::<T>()).unwrap_or(libc::socklen_t::MAX)
}

/// The result of a system call that returns a negative value on failure (and sets errno).
fn check(failed: bool) -> io::Result<()> {
    if failed {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// sendto(2) of one link-layer frame to `dest` (an AF_PACKET socket).
pub(crate) fn send_frame(
    fd: BorrowedFd<'_>,
    frame: &[u8],
    dest: &libc::sockaddr_ll,
) -> io::Result<()> {
    // SAFETY: `frame` and `dest` are valid for the lengths passed and live until sendto
    // returns; `fd` is borrowed, so it stays open for the call.
    let rc = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            std::ptr::from_ref(dest).cast(),
            socklen_of::<libc::sockaddr_ll>(),
        )
    };
    check(rc < 0)
}

/// setsockopt(2) of one option whose value is a C `int`.
pub(crate) fn set_int_option(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    option: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    set_option(fd, level, option, &value)
}

/// setsockopt(2) of one option whose value is the plain C value `value` (an int, a struct
/// such as `ipv6_mreq`).
pub(crate) fn set_option<T: Copy>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    option: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `fd` is borrowed, so open for the whole call; `value` is a valid, initialised
    // value whose exact size is passed as the length, and the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            option,
            std::ptr::from_ref(value).cast(),
            socklen_of::<T>(),
        )
    };
    check(rc < 0)
}

/// The ethtool ioctl (linux/sockios.h).
const SIOCETHTOOL: libc::Ioctl = 0x8946;
/// Interface names are at most 15 bytes plus NUL.
pub(crate) const IFNAMSIZ: usize = 16;

/// `struct ethtool_value`.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// `struct ifreq` with the `ifr_data` member of its union, padded to the full union size.
#[repr(C)]
struct IfreqData {
    name: [u8; IFNAMSIZ],
    data: *mut EthtoolValue,
    pad: [u8; 16],
}

/// One SIOCETHTOOL request of the `ethtool_value` kind (`cmd`, `data`) on interface `name`
/// (NUL-padded); the `data` the kernel answers with.
pub(crate) fn ethtool_value(
    fd: BorrowedFd<'_>,
    name: [u8; IFNAMSIZ],
    cmd: u32,
    data: u32,
) -> io::Result<u32> {
    let mut value = EthtoolValue { cmd, data };
    let mut ifr = IfreqData {
        name,
        data: &raw mut value,
        pad: [0; 16],
    };
    // SAFETY: `ifr` is a fully initialised struct at least as large as `struct ifreq`;
    // SIOCETHTOOL reads it and reads/writes the `ethtool_value` it points to, and both live
    // on this stack frame until the call returns.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), SIOCETHTOOL, &raw mut ifr) };
    check(rc < 0)?;
    Ok(value.data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_is_at_least_as_large_as_the_kernels() {
        assert!(std::mem::size_of::<IfreqData>() >= 40);
        assert_eq!(std::mem::size_of::<EthtoolValue>(), 8);
    }
}
