//! The system calls of the checks that neither std nor nix offer in the shape we need (the
//! raw socket of the SYN probe with its batched I/O, the ICMPv6 type filter, pidfd_open), each
//! behind a safe function:
//! the only place in `lvs-monitord` with `unsafe` code, one operation per block.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// The most datagrams one [`send_batch`] or [`recv_batch`] moves.
pub(crate) const MAX_BATCH: usize = 64;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// socket(2), non-blocking and close-on-exec.
pub(crate) fn socket(
    family: libc::c_int,
    kind: libc::c_int,
    proto: libc::c_int,
) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers; any argument values are safe to pass.
    let fd = cvt(unsafe {
        libc::socket(
            family,
            kind | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            proto,
        )
    })?;
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// pidfd_open(2) of the child `pid`; `None` when the kernel has no pidfds (before 5.3) or the
/// process is gone.
pub(crate) fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; it touches no memory
    // of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = i32::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: `fd` was just returned by pidfd_open, is open, and nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A socket address as the kernel reads and writes it (IPv4 or IPv6).
#[derive(Clone, Copy)]
pub(crate) struct SockAddr {
    ss: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl std::fmt::Debug for SockAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SockAddr")
            .field("ip", &self.ip())
            .field("port", &self.port())
            .finish()
    }
}

impl SockAddr {
    /// Room for any address, for the kernel to fill in.
    pub(crate) fn empty() -> SockAddr {
        SockAddr {
            // SAFETY: sockaddr_storage is plain old data; all zeroes is a valid (unspecified)
            // value.
            ss: unsafe { zeroed() },
            len: socklen_of::<libc::sockaddr_storage>(),
        }
    }

    pub(crate) fn new(addr: SocketAddr) -> SockAddr {
        let mut s = SockAddr::empty();
        s.len = match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::sa_family_t::try_from(libc::AF_INET).unwrap_or(0),
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in, and
                // `s.ss` is a live, exclusively borrowed value.
                unsafe { (&raw mut s.ss).cast::<libc::sockaddr_in>().write(sin) };
                socklen_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::sa_family_t::try_from(libc::AF_INET6).unwrap_or(0),
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: 0,
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6, and
                // `s.ss` is a live, exclusively borrowed value.
                unsafe { (&raw mut s.ss).cast::<libc::sockaddr_in6>().write(sin6) };
                socklen_of::<libc::sockaddr_in6>()
            }
        };
        s
    }

    fn v4(&self) -> Option<libc::sockaddr_in> {
        (libc::c_int::from(self.ss.ss_family) == libc::AF_INET).then(|| {
            // SAFETY: the family says a sockaddr_in is stored (by us or by the kernel), and
            // sockaddr_storage is larger than and aligned for it.
            unsafe { (&raw const self.ss).cast::<libc::sockaddr_in>().read() }
        })
    }

    fn v6(&self) -> Option<libc::sockaddr_in6> {
        (libc::c_int::from(self.ss.ss_family) == libc::AF_INET6).then(|| {
            // SAFETY: the family says a sockaddr_in6 is stored (by us or by the kernel), and
            // sockaddr_storage is larger than and aligned for it.
            unsafe { (&raw const self.ss).cast::<libc::sockaddr_in6>().read() }
        })
    }

    /// The address, if it is IPv4 or IPv6.
    pub(crate) fn ip(&self) -> Option<IpAddr> {
        if let Some(sin) = self.v4() {
            return Some(IpAddr::from(sin.sin_addr.s_addr.to_ne_bytes()));
        }
        self.v6().map(|sin6| IpAddr::from(sin6.sin6_addr.s6_addr))
    }

    /// The port, if it is IPv4 or IPv6.
    pub(crate) fn port(&self) -> Option<u16> {
        if let Some(sin) = self.v4() {
            return Some(u16::from_be(sin.sin_port));
        }
        self.v6().map(|sin6| u16::from_be(sin6.sin6_port))
    }
}

fn socklen_of<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(size_of::<T>()).unwrap_or(0)
}

/// bind(2).
pub(crate) fn bind(fd: BorrowedFd<'_>, addr: &SockAddr) -> io::Result<()> {
    // SAFETY: `addr.ss` is a valid sockaddr of `addr.len` bytes, alive for the call.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), (&raw const addr.ss).cast(), addr.len) }).map(drop)
}

/// getsockname(2).
pub(crate) fn local_addr(fd: BorrowedFd<'_>) -> io::Result<SockAddr> {
    let mut addr = SockAddr::empty();
    // SAFETY: `addr.ss` has room for `addr.len` bytes, and the kernel writes at most that many
    // (and the length it wrote back into `addr.len`).
    cvt(unsafe {
        libc::getsockname(fd.as_raw_fd(), (&raw mut addr.ss).cast(), &raw mut addr.len)
    })?;
    Ok(addr)
}

/// SO_ATTACH_FILTER: the classic BPF program `filter` decides what the socket receives.
pub(crate) fn attach_filter(fd: BorrowedFd<'_>, filter: &[libc::sock_filter]) -> io::Result<()> {
    let prog = libc::sock_fprog {
        len: u16::try_from(filter.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "BPF program too long"))?,
        // The kernel only reads the program.
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `filter` (`len` instructions), alive for the call; the kernel
    // copies the program and never writes to it.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&raw const prog).cast(),
            socklen_of::<libc::sock_fprog>(),
        )
    })
    .map(drop)
}

/// `ICMPV6_FILTER` (linux/icmpv6.h), at level `IPPROTO_ICMPV6`; not in the libc crate.
const ICMPV6_FILTER: libc::c_int = 1;

/// ICMPV6_FILTER on a raw ICMPv6 socket: the kernel delivers only the message types in `pass`
/// (a raw ICMPv6 socket otherwise gets every neighbour solicitation, router advertisement and
/// multicast listener report of the host, each one a wake-up for nothing).
pub(crate) fn icmp6_pass_only(fd: BorrowedFd<'_>, pass: &[u8]) -> io::Result<()> {
    // Linux's `struct icmp6_filter`: 256 bits, a set bit blocks that type.
    let mut blocked = [u32::MAX; 8];
    for &t in pass {
        blocked[usize::from(t >> 5)] &= !(1u32 << (t & 31));
    }
    // SAFETY: `blocked` is the 32-byte struct the option takes, alive for the call; the kernel
    // only reads it.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_ICMPV6,
            ICMPV6_FILTER,
            blocked.as_ptr().cast(),
            socklen_of::<[u32; 8]>(),
        )
    })
    .map(drop)
}

const EMPTY_IOV: libc::iovec = libc::iovec {
    iov_base: std::ptr::null_mut(),
    iov_len: 0,
};
const NO_NAME: (*mut libc::c_void, libc::socklen_t) = (std::ptr::null_mut(), 0);

/// The headers of one sendmmsg/recvmmsg call: header `i` carries the one buffer `iov[i]` and
/// the address `names[i]` (pointer and length).
fn headers(
    iov: &mut [libc::iovec; MAX_BATCH],
    names: [(*mut libc::c_void, libc::socklen_t); MAX_BATCH],
) -> [libc::mmsghdr; MAX_BATCH] {
    // SAFETY: mmsghdr is plain old data; zeroes are valid (no control data, no flags).
    let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { zeroed() };
    // One pointer for all of them: each header points into the same borrow of `iov`.
    let first = iov.as_mut_ptr();
    for (i, (hdr, (name, len))) in hdrs.iter_mut().zip(names).enumerate() {
        hdr.msg_hdr.msg_name = name;
        hdr.msg_hdr.msg_namelen = len;
        hdr.msg_hdr.msg_iov = first.wrapping_add(i);
        hdr.msg_hdr.msg_iovlen = 1;
    }
    hdrs
}

/// sendmmsg(2): `packets[i]` to `to[i]`, up to [`MAX_BATCH`] of them (as many as both slices
/// hold). The number sent, at least one; an error means the first one was not sent.
pub(crate) fn send_batch<const N: usize>(
    fd: BorrowedFd<'_>,
    packets: &[[u8; N]],
    to: &[SockAddr],
) -> io::Result<usize> {
    let n = packets.len().min(to.len()).min(MAX_BATCH);
    if n == 0 {
        return Ok(0);
    }
    let mut iov = [EMPTY_IOV; MAX_BATCH];
    let mut names = [NO_NAME; MAX_BATCH];
    for (i, (packet, addr)) in packets.iter().zip(to).take(n).enumerate() {
        // sendmmsg only reads the data and the addresses: the `*mut` the C types want is
        // never written through.
        iov[i] = libc::iovec {
            iov_base: packet.as_ptr().cast_mut().cast(),
            iov_len: N,
        };
        names[i] = ((&raw const addr.ss).cast_mut().cast(), addr.len);
    }
    let mut hdrs = headers(&mut iov, names);
    // SAFETY: hdrs[..n] point at iovecs, packets and addresses that live (unmoved, not
    // otherwise borrowed mutably) until the call returns.
    let r = unsafe {
        libc::sendmmsg(
            fd.as_raw_fd(),
            hdrs.as_mut_ptr(),
            u32::try_from(n).unwrap_or(0),
            0,
        )
    };
    match usize::try_from(r) {
        Ok(0) => Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "sendmmsg sent nothing",
        )),
        Ok(sent) => Ok(sent),
        Err(_) => Err(io::Error::last_os_error()),
    }
}

/// recvmmsg(2) with MSG_DONTWAIT into `bufs`, up to [`MAX_BATCH`] datagrams (as many as all
/// three slices hold): datagram `i` is `bufs[i][..lens[i]]` (cut to the buffer), from
/// `from[i]`. The number received (`WouldBlock`: none was waiting).
pub(crate) fn recv_batch<const N: usize>(
    fd: BorrowedFd<'_>,
    bufs: &mut [[u8; N]],
    from: &mut [SockAddr],
    lens: &mut [usize],
) -> io::Result<usize> {
    let n = bufs.len().min(from.len()).min(lens.len()).min(MAX_BATCH);
    let mut iov = [EMPTY_IOV; MAX_BATCH];
    let mut names = [NO_NAME; MAX_BATCH];
    for (i, (buf, addr)) in bufs.iter_mut().zip(from.iter_mut()).take(n).enumerate() {
        *addr = SockAddr::empty();
        iov[i] = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: N,
        };
        names[i] = ((&raw mut addr.ss).cast(), addr.len);
    }
    let mut hdrs = headers(&mut iov, names);
    // SAFETY: every header points at a buffer and an address of the sizes given, alive,
    // unmoved and not otherwise borrowed during the call.
    let r = unsafe {
        libc::recvmmsg(
            fd.as_raw_fd(),
            hdrs.as_mut_ptr(),
            u32::try_from(n).unwrap_or(0),
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    let got = usize::try_from(r).map_err(|_| io::Error::last_os_error())?;
    for ((hdr, addr), len) in hdrs
        .iter()
        .zip(from.iter_mut())
        .zip(lens.iter_mut())
        .take(got)
    {
        *len = usize::try_from(hdr.msg_len).unwrap_or(0).min(N);
        addr.len = hdr.msg_hdr.msg_namelen;
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_addresses_round_trip() {
        for a in ["192.0.2.9:80", "[2001:db8::9]:443", "0.0.0.0:0", "[::]:0"] {
            let a: SocketAddr = a.parse().unwrap();
            let s = SockAddr::new(a);
            assert_eq!((s.ip(), s.port()), (Some(a.ip()), Some(a.port())));
        }
        assert_eq!(SockAddr::empty().ip(), None);
    }

    #[test]
    fn batches_go_out_and_come_back() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = SockAddr::new(rx.local_addr().unwrap());
        let sent = send_batch(
            std::os::fd::AsFd::as_fd(&tx),
            &[*b"one", *b"two"],
            &[to, to],
        )
        .unwrap();
        assert_eq!(sent, 2);
        rx.set_nonblocking(true).unwrap();
        let mut bufs = [[0u8; 2]; 4];
        let mut from = [SockAddr::empty(); 4];
        let mut lens = [0usize; 4];
        let fd = std::os::fd::AsFd::as_fd(&rx);
        let mut got = 0;
        let limit = std::time::Duration::from_secs(10);
        lvs_testsupport::wait_for("the two datagrams", limit, || {
            match recv_batch(fd, &mut bufs[got..], &mut from[got..], &mut lens[got..]) {
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
            (got >= 2).then_some(())
        });
        // Cut to the 2-byte buffers, from the sender's address.
        assert_eq!(
            (&bufs[0][..lens[0]], &bufs[1][..lens[1]]),
            (&b"on"[..], &b"tw"[..])
        );
        let me = tx.local_addr().unwrap();
        assert_eq!(
            (from[0].ip(), from[0].port()),
            (Some(me.ip()), Some(me.port()))
        );
        assert_eq!(
            recv_batch(fd, &mut bufs, &mut from, &mut lens)
                .unwrap_err()
                .kind(),
            io::ErrorKind::WouldBlock
        );
    }
}
