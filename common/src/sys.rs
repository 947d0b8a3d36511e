//! The system calls of this crate that Rust cannot check, each behind a safe function whose
//! checks make it sound: the only place in `lvs-common` with `unsafe` code.

use std::io;
use std::os::fd::RawFd;

use nix::unistd::ForkResult;

/// fork(2), refused (`WouldBlock`: try again from a single thread) while the process has more
/// than one thread: `fork` copies only the calling thread, so a lock another thread holds
/// would stay locked forever in the child.
pub(crate) fn fork_single_threaded() -> io::Result<ForkResult> {
    let threads = crate::daemonize::thread_count();
    if threads > 1 {
        return Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!("fork refused: {threads} threads are running"),
        ));
    }
    // SAFETY: the process has one thread (checked just above, and nothing in this function
    // starts one), so the child is a complete copy and may run any code, not only
    // async-signal-safe functions.
    unsafe { nix::unistd::fork() }.map_err(io::Error::from)
}

/// Ends the process at once, without running destructors or `atexit` handlers (those of a
/// forked child belong to its parent).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` has no preconditions; it ends the process immediately.
    unsafe { libc::_exit(code) }
}

/// A value an `IPPROTO_IP` option reads: plain C data without padding, so that every byte the
/// kernel reads is initialised.
pub(crate) trait IpOptionValue {}
impl IpOptionValue for libc::ip_mreq {}
impl IpOptionValue for libc::in_addr {}
impl IpOptionValue for libc::c_int {}

/// setsockopt(2) of one `IPPROTO_IP` option. The kernel checks that the option and the size
/// of `T` go together (EINVAL otherwise), and that `fd` is a socket (EBADF, ENOTSOCK).
pub(crate) fn set_ip_option<T: IpOptionValue>(
    fd: RawFd,
    option: libc::c_int,
    value: &T,
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(std::mem::size_of::<T>()).unwrap_or(libc::socklen_t::MAX);
    // SAFETY: `value` is a live, fully initialised `T` (no padding, see `IpOptionValue`) for
    // the whole call and `len` is its exact size, so the kernel reads only our bytes; a wrong
    // option for `T` makes the call fail, which is returned.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            option,
            std::ptr::from_ref(value).cast::<libc::c_void>(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ip_option_of_the_wrong_size_is_refused_by_the_kernel() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&s);
        set_ip_option(fd, libc::IP_MULTICAST_TTL, &libc::c_int::from(3u8)).unwrap();
        assert_eq!(s.multicast_ttl_v4().unwrap(), 3);
        let group = libc::in_addr { s_addr: 0 };
        let e = set_ip_option(fd, libc::IP_ADD_MEMBERSHIP, &group).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    }
}
