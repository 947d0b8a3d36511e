//! The raw ICMPv6 socket calls of neighbour discovery (sendmsg and recvmsg with their
//! ancillary data), each behind a safe function: with `crate::sys`, the only `unsafe` code
//! of `lvs-netinfo`.

use std::io;
use std::mem::{MaybeUninit, size_of};
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `size_of::<T>()` as a `socklen_t` (every type passed here is a few dozen bytes).
fn socklen_of<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(size_of::<T>()).unwrap_or(libc::socklen_t::MAX)
}

fn sockaddr_in6(addr: Ipv6Addr, scope_id: u32) -> libc::sockaddr_in6 {
    libc::sockaddr_in6 {
        sin6_family: libc::sa_family_t::try_from(libc::AF_INET6).unwrap_or_default(),
        sin6_port: 0,
        sin6_flowinfo: 0,
        sin6_addr: libc::in6_addr {
            s6_addr: addr.octets(),
        },
        sin6_scope_id: scope_id,
    }
}

/// One IPV6_PKTINFO control message as the kernel lays it out: `struct cmsghdr`, then the
/// data at CMSG_DATA (the header's size is already a multiple of the alignment).
#[repr(C)]
struct PktinfoCmsg {
    hdr: libc::cmsghdr,
    info: libc::in6_pktinfo,
}

/// Room for the ancillary data received (one `in6_pktinfo`, one hop limit), aligned as
/// `struct cmsghdr` is.
#[repr(C, align(8))]
struct CmsgBuf([u8; 128]);

/// CMSG_ALIGN: control messages start on `long` boundaries.
const fn cmsg_align(len: usize) -> usize {
    let a = size_of::<libc::c_long>();
    (len + a - 1) & !(a - 1)
}

/// sendmsg(2) of one ICMPv6 message to `dest` (scope `scope_id` for a link-scope
/// destination), leaving by interface `ifindex` with source address `source` (IPV6_PKTINFO).
pub(crate) fn send_icmp6(
    fd: BorrowedFd<'_>,
    msg: &[u8],
    dest: Ipv6Addr,
    scope_id: u32,
    source: Ipv6Addr,
    ifindex: u32,
) -> io::Result<()> {
    let mut name = sockaddr_in6(dest, scope_id);
    let mut iov = libc::iovec {
        iov_base: msg.as_ptr().cast_mut().cast(),
        iov_len: msg.len(),
    };
    // SAFETY: an all-zero cmsghdr is a valid value (its fields are integers; some targets
    // add private padding fields, hence no struct literal).
    let mut hdr: libc::cmsghdr = unsafe { MaybeUninit::zeroed().assume_init() };
    hdr.cmsg_len = (size_of::<libc::cmsghdr>() + size_of::<libc::in6_pktinfo>()) as _;
    hdr.cmsg_level = libc::IPPROTO_IPV6;
    hdr.cmsg_type = libc::IPV6_PKTINFO;
    let mut control = PktinfoCmsg {
        hdr,
        info: libc::in6_pktinfo {
            ipi6_addr: libc::in6_addr {
                s6_addr: source.octets(),
            },
            ipi6_ifindex: ifindex,
        },
    };
    // SAFETY: an all-zero msghdr is valid (null pointers, zero lengths); every pointer set
    // below points into this stack frame and outlives the sendmsg call.
    let mut mh: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
    mh.msg_name = (&raw mut name).cast();
    mh.msg_namelen = socklen_of::<libc::sockaddr_in6>();
    mh.msg_iov = &raw mut iov;
    mh.msg_iovlen = 1;
    mh.msg_control = (&raw mut control).cast();
    mh.msg_controllen = cmsg_align(size_of::<PktinfoCmsg>()) as _;
    // SAFETY: `mh` and everything it points to (name, iov and the message it points to,
    // control) live on this frame until sendmsg returns; the kernel only reads them; `fd`
    // is borrowed, so open.
    let rc = unsafe { libc::sendmsg(fd.as_raw_fd(), &raw const mh, 0) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// One ICMPv6 message received on a raw socket: its length in the buffer, and what the
/// IPv6 header said (the kernel strips it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Received {
    /// Bytes of the ICMPv6 message in the buffer.
    pub len: usize,
    /// The message was longer than the buffer.
    pub truncated: bool,
    /// The IPv6 source address.
    pub source: Ipv6Addr,
    /// IPV6_HOPLIMIT, when the kernel gave it (IPV6_RECVHOPLIMIT set).
    pub hop_limit: Option<i32>,
    /// IPV6_PKTINFO, when the kernel gave it (IPV6_RECVPKTINFO set): destination address
    /// and arrival interface.
    pub destination: Option<(Ipv6Addr, u32)>,
}

/// recvmsg(2) of one message, non-blocking when the socket is; the ancillary data read.
pub(crate) fn recv_icmp6(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Received> {
    let mut name = sockaddr_in6(Ipv6Addr::UNSPECIFIED, 0);
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = CmsgBuf([0; 128]);
    // SAFETY: an all-zero msghdr is valid; every pointer set below points into this stack
    // frame (or `buf`) and outlives the recvmsg call.
    let mut mh: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
    mh.msg_name = (&raw mut name).cast();
    mh.msg_namelen = socklen_of::<libc::sockaddr_in6>();
    mh.msg_iov = &raw mut iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control.0.as_mut_ptr().cast();
    mh.msg_controllen = control.0.len() as _;
    // SAFETY: as above; the kernel writes at most iov_len bytes into `buf`, at most
    // msg_namelen into `name` and at most msg_controllen into `control`.
    let rc = unsafe { libc::recvmsg(fd.as_raw_fd(), &raw mut mh, 0) };
    let len = usize::try_from(rc).map_err(|_| io::Error::last_os_error())?;
    #[allow(clippy::useless_conversion)] // msg_controllen is socklen_t on some targets
    let written = usize::try_from(mh.msg_controllen).unwrap_or(0);
    let (hop_limit, destination) = ancillary(&control.0[..written.min(control.0.len())]);
    Ok(Received {
        len: len.min(buf.len()),
        truncated: mh.msg_flags & libc::MSG_TRUNC != 0,
        source: Ipv6Addr::from(name.sin6_addr.s6_addr),
        hop_limit,
        destination,
    })
}

/// The hop limit and the packet information among the control messages in `control`,
/// read as bytes in the layout of `struct cmsghdr` (length, level, type, then the data).
fn ancillary(control: &[u8]) -> (Option<i32>, Option<(Ipv6Addr, u32)>) {
    let head = size_of::<libc::cmsghdr>();
    let word = size_of::<usize>();
    let int = |b: &[u8]| b.try_into().ok().map(i32::from_ne_bytes);
    let (mut hop_limit, mut destination) = (None, None);
    let mut at = 0;
    while at + head <= control.len() {
        let m = &control[at..];
        let Some(len) = m[..word].try_into().ok().map(usize::from_ne_bytes) else {
            break;
        };
        if len < head || len > m.len() {
            break;
        }
        let (level, kind) = (int(&m[word..word + 4]), int(&m[word + 4..word + 8]));
        let data = &m[head..len];
        match (level, kind) {
            (Some(libc::IPPROTO_IPV6), Some(libc::IPV6_HOPLIMIT)) if data.len() >= 4 => {
                hop_limit = int(&data[..4]);
            }
            (Some(libc::IPPROTO_IPV6), Some(libc::IPV6_PKTINFO)) if data.len() >= 20 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(&data[..16]);
                let ifindex = data[16..20].try_into().ok().map(u32::from_ne_bytes);
                destination = Some((Ipv6Addr::from(a), ifindex.unwrap_or(0)));
            }
            _ => {}
        }
        at += cmsg_align(len);
    }
    (hop_limit, destination)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pktinfo_message_has_the_kernels_layout() {
        // CMSG_LEN(20) = 36 and CMSG_SPACE(20) = 40 on 64-bit Linux.
        assert_eq!(
            size_of::<libc::cmsghdr>() + size_of::<libc::in6_pktinfo>(),
            // SAFETY: CMSG_LEN only computes a length.
            unsafe { libc::CMSG_LEN(20) } as usize
        );
        assert_eq!(
            cmsg_align(size_of::<PktinfoCmsg>()),
            // SAFETY: CMSG_SPACE only computes a length.
            unsafe { libc::CMSG_SPACE(20) } as usize
        );
    }

    #[test]
    fn reads_hop_limit_and_pktinfo_and_stops_at_a_bad_length() {
        let head = size_of::<libc::cmsghdr>();
        let mut c = Vec::new();
        let mut push = |kind: i32, data: &[u8]| {
            let len = head + data.len();
            c.extend(len.to_ne_bytes());
            c.extend(libc::IPPROTO_IPV6.to_ne_bytes());
            c.extend(kind.to_ne_bytes());
            c.extend(data);
            c.resize(cmsg_align(c.len()), 0);
        };
        push(libc::IPV6_HOPLIMIT, &255i32.to_ne_bytes());
        let mut info = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 0x100)
            .octets()
            .to_vec();
        info.extend(7u32.to_ne_bytes());
        push(libc::IPV6_PKTINFO, &info);
        let (h, d) = ancillary(&c);
        assert_eq!(h, Some(255));
        assert_eq!(
            d,
            Some((Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 0x100), 7))
        );
        // A length past the end: nothing read from there on.
        let mut bad = c.clone();
        bad[..size_of::<usize>()].copy_from_slice(&999usize.to_ne_bytes());
        assert_eq!(ancillary(&bad), (None, None));
    }
}
