//! The few raw system calls this crate needs beyond netlink, one `unsafe` operation per block.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

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
pub(crate) fn socklen_of<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(std::mem::size_of::<T>()).unwrap_or(libc::socklen_t::MAX)
}
