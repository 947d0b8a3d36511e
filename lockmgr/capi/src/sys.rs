//! The one system call the session needs that std does not offer: a non-blocking readability
//! check of the socket.

use std::os::fd::RawFd;

/// Whether `fd` has something to read (or has hung up) right now; never blocks.
pub fn readable(fd: RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid, initialised pollfd on this stack frame, and nfds is 1; a
    // timeout of 0 returns at once. A closed fd only yields POLLNVAL.
    let n = unsafe { libc::poll(&raw mut pfd, 1, 0) };
    n > 0 && pfd.revents != 0
}
