//! All of this crate's unsafe code: the system calls, here, and the memory shared with the
//! kernel, in [`ring`] and [`frame_ring`] (the receive rings, TPACKET_V3 and TPACKET_V2) and
//! [`mmsg`] (the transmit message arrays). The rest of the crate uses only the safe
//! interfaces they export.
//!
//! Each wrapper here does one call, turns `-1` into `io::Error::last_os_error()`, and is
//! safe to call because its arguments are Rust values of the right size, except
//! [`sendmmsg`], whose messages carry raw pointers and which is therefore `unsafe` (its one
//! caller is [`mmsg`]).

pub mod frame_ring;
pub mod mmsg;
pub mod ring;

use std::ffi::CStr;
use std::io;
use std::mem::size_of_val;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

/// `TP_STATUS_GSO_TCP` (not exported by the `libc` crate): the frame is a TCP GSO packet.
pub const TP_STATUS_GSO_TCP: u32 = 1 << 8;

/// `ETH_P_ALL` in network byte order, as `bind(2)` and `socket(2)` want it.
pub fn eth_p_all_be() -> u16 {
    u16::try_from(libc::ETH_P_ALL).unwrap_or(3).to_be()
}

/// Size of `T` as a `socklen_t`. Every type used here is a few dozen bytes.
fn socklen_of<T>(value: &T) -> libc::socklen_t {
    libc::socklen_t::try_from(size_of_val(value)).unwrap_or(libc::socklen_t::MAX)
}

/// Marks types that the kernel may fill in by `getsockopt(2)`: plain integers or C structs
/// of integers, for which every bit pattern is a valid value.
///
/// # Safety
/// Implementors must be `#[repr(C)]` (or primitive) and valid for any bit pattern.
pub unsafe trait Plain: Copy {}
// SAFETY: a primitive integer is valid for any bit pattern.
unsafe impl Plain for u32 {}
// SAFETY: a primitive integer is valid for any bit pattern.
unsafe impl Plain for i32 {}
// SAFETY: `tpacket_stats_v3` is a `#[repr(C)]` struct of three `c_uint`s.
unsafe impl Plain for libc::tpacket_stats_v3 {}

/// `socket(2)`, always with `SOCK_CLOEXEC`.
pub fn socket(domain: libc::c_int, ty: libc::c_int, protocol: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: `socket` takes no pointers; it only returns a new descriptor or -1.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by `socket`, is open and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt(2)` with `value` passed by pointer and size. The kernel only reads it.
pub fn setsockopt<T: Copy>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    let ptr: *const T = value;
    // SAFETY: `ptr` points to a live `T` of exactly the length passed; the kernel copies
    // at most that many bytes from it and keeps no reference.
    let rc =
        unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, ptr.cast(), socklen_of(value)) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `setsockopt(2)` for options whose value the kernel ignores (`SO_DETACH_FILTER`).
pub fn setsockopt_empty(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<()> {
    let dummy: libc::c_int = 0;
    setsockopt(fd, level, name, &dummy)
}

/// `getsockopt(2)` of a value the kernel fills in.
pub fn getsockopt<T: Plain>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<T> {
    // SAFETY: `T: Plain` is valid for any bit pattern, all zeroes included.
    let mut value: T = unsafe { std::mem::zeroed() };
    let mut len = socklen_of(&value);
    let ptr: *mut T = &mut value;
    // SAFETY: `ptr` points to a live, writable `T` and `len` is its size; the kernel
    // writes at most `len` bytes, and `T: Plain` is valid for any bytes it writes.
    let rc = unsafe { libc::getsockopt(fd.as_raw_fd(), level, name, ptr.cast(), &mut len) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
}

/// A `sockaddr_ll` for `protocol` (network byte order) on `ifindex`, everything else zero.
pub fn sockaddr_ll(protocol_be: u16, ifindex: libc::c_int) -> libc::sockaddr_ll {
    libc::sockaddr_ll {
        sll_family: u16::try_from(libc::AF_PACKET).unwrap_or(17),
        sll_protocol: protocol_be,
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    }
}

/// `bind(2)` a packet socket to `protocol` (network byte order) on `ifindex`.
pub fn bind_ll(fd: BorrowedFd<'_>, protocol_be: u16, ifindex: libc::c_int) -> io::Result<()> {
    let addr = sockaddr_ll(protocol_be, ifindex);
    let ptr: *const libc::sockaddr_ll = &addr;
    // SAFETY: `ptr` points to a live `sockaddr_ll` of the length passed; the kernel copies it.
    let rc = unsafe { libc::bind(fd.as_raw_fd(), ptr.cast(), socklen_of(&addr)) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `poll(2)` one descriptor for `events`; returns the `revents` (0 on timeout).
pub fn poll(
    fd: BorrowedFd<'_>,
    events: libc::c_short,
    timeout_ms: libc::c_int,
) -> io::Result<libc::c_short> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    // SAFETY: `pfd` is one live, writable `pollfd` and we pass a count of 1.
    let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pfd.revents)
}

/// `if_nametoindex(3)`.
pub fn if_nametoindex(name: &CStr) -> io::Result<u32> {
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(index)
}

/// `if_indextoname(3)`.
pub fn if_indextoname(index: u32) -> io::Result<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the `IF_NAMESIZE` bytes the function may write.
    let ptr = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if ptr.is_null() {
        return Err(io::Error::last_os_error());
    }
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c.to_ne_bytes()[0])
        .collect();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A shared, read-write memory mapping of a packet socket's ring, unmapped on drop.
#[derive(Debug)]
pub struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory, owned by this value alone, and not tied to the
// thread that made it; the kernel synchronises with its user through the ring's status
// words, whichever thread that is. It is not `Sync`: one worker uses a ring at a time.
unsafe impl Send for Mmap {}

impl Mmap {
    /// `mmap(2)` `len` bytes of `fd` at offset 0, shared, read-write, pre-faulted.
    pub fn new(fd: BorrowedFd<'_>, len: usize) -> io::Result<Self> {
        // SAFETY: a fresh mapping chosen by the kernel (addr NULL) cannot overlap any Rust
        // object; we check the result before using it.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        Ok(Self { ptr, len })
    }

    /// Start of the mapping.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what `mmap` returned; nothing borrows the mapping
        // any more (the ring's blocks borrow the ring, which owns this).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// `sendmmsg(2)` with `MSG_DONTWAIT`; returns how many messages the kernel took.
///
/// # Safety
/// Every `msg_hdr` in `msgs` must point to a valid `sockaddr_ll` (`msg_name`) and to
/// `msg_iovlen` valid `iovec`s, each pointing to `iov_len` readable bytes, for the duration
/// of the call. The kernel copies the data before returning and keeps no pointer.
unsafe fn sendmmsg(fd: BorrowedFd<'_>, msgs: &mut [libc::mmsghdr]) -> io::Result<usize> {
    let vlen = libc::c_uint::try_from(msgs.len()).unwrap_or(libc::c_uint::MAX);
    // SAFETY: `msgs` is a live, writable array of `vlen` headers (the kernel writes
    // `msg_len`); the pointers inside are valid per this function's contract.
    let rc = unsafe { libc::sendmmsg(fd.as_raw_fd(), msgs.as_mut_ptr(), vlen, libc::MSG_DONTWAIT) };
    usize::try_from(rc).map_err(|_| io::Error::last_os_error())
}

/// Size of a page, for ring geometry checks.
pub fn page_size() -> usize {
    // SAFETY: `sysconf` takes no pointers.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|&s| s > 0)
        .unwrap_or(4096)
}
