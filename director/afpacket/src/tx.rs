//! Transmit: batches of whole Ethernet frames sent with one `sendmmsg(2)` on an
//! `AF_PACKET`/`SOCK_RAW` socket of protocol 0 (it receives nothing).
//!
//! Every message names its out interface in its own `sockaddr_ll`, so one socket serves all
//! interfaces. The `mmsghdr`/`iovec`/`sockaddr_ll` arrays are allocated once, sized for a
//! batch; pushing a frame only fills in slot `n`.
//!
//! # Zero copy from the receive ring
//!
//! [`TxSocket::batch`] returns a [`TxBatchRef<'a>`] that borrows the socket mutably for
//! `'a`, and [`TxBatchRef::push`] takes frames as `&'a [u8]`. The iovecs hold raw pointers to
//! those frames, but the borrow checker guarantees every pushed frame outlives the batch:
//! a frame from a receive [`Block`](crate::Block) keeps the block borrowed, so the block
//! cannot be released (dropped) while the batch may still send from it. The batch is
//! flushed by [`TxBatchRef::flush`] or, at the latest, when it drops, and `sendmmsg` copies
//! the data into socket buffers before it returns; after that no pointer is used again
//! (the length is reset to 0 and stale pointers are overwritten before the next send).
//! A batch leaked with `mem::forget` is discarded, never sent, by the next
//! [`TxSocket::batch`].

use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use crate::error::{Error, Result};
use crate::queue::{Flushed, TxBatch, TxQueue};
use crate::sys;

const TX_NAME: &str = "the transmit socket";

/// Options of a transmit socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxConfig {
    /// Frames per `sendmmsg` (at most 1024, the kernel's `UIO_MAXIOV`).
    pub batch: usize,
    /// Bytes per owned buffer for [`TxBatchRef::push_with`] (one buffer per batch slot).
    pub copy_buffer: usize,
    /// Skip the qdisc layer (`PACKET_QDISC_BYPASS`): faster, no traffic shaping.
    pub qdisc_bypass: bool,
    /// `SO_SNDBUF` (forced with `SO_SNDBUFFORCE` when allowed); `None` keeps the default.
    pub sndbuf: Option<usize>,
}

impl Default for TxConfig {
    /// 64 frames per batch, 2 KiB owned buffers, qdisc bypass, 4 MiB send buffer.
    fn default() -> Self {
        Self {
            batch: 64,
            copy_buffer: 2048,
            qdisc_bypass: true,
            sndbuf: Some(4 << 20),
        }
    }
}

/// Transmit counters since the socket was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxStats {
    /// Frames the kernel accepted.
    pub sent: u64,
    /// Frames dropped because the socket or the device queue was full (EAGAIN, ENOBUFS).
    pub dropped_congestion: u64,
    /// Frames refused (interface down or gone, frame too long or too short, ...).
    pub dropped_error: u64,
    /// The errno of the last refusal (0 if none).
    pub last_errno: i32,
    /// `sendmmsg` calls made.
    pub syscalls: u64,
}

/// A batched transmit socket for any interface.
#[derive(Debug)]
pub struct TxSocket {
    fd: OwnedFd,
    // The three arrays and the buffers are `Vec`s allocated once and never resized: the
    // pointers in `msgs` to `addrs`/`iovs` stay valid when the socket moves.
    msgs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    addrs: Vec<libc::sockaddr_ll>,
    _buffers: Vec<u8>,
    /// `buffers.as_mut_ptr()`, taken once: slot buffers are carved from it so that a new
    /// slot's `&mut [u8]` never reborrows (and invalidates) the pointers of earlier slots.
    buffers_base: *mut u8,
    copy_buffer: usize,
    len: usize,
    stats: TxStats,
}

// SAFETY: the raw pointers in `msgs` point into this value's own heap arrays, or (only while
// a `TxBatchRef` borrows the socket) into frames that batch borrows; none is tied to a
// thread. It is not `Sync`: one worker uses a socket at a time.
unsafe impl Send for TxSocket {}

impl TxSocket {
    /// Opens a transmit socket.
    pub fn open(cfg: &TxConfig) -> Result<Self> {
        if cfg.batch == 0 || cfg.batch > 1024 {
            return Err(Error::config(
                "batch size",
                TX_NAME,
                format!("{} is not between 1 and 1024", cfg.batch),
            ));
        }
        if cfg.copy_buffer > 65536 {
            return Err(Error::config(
                "copy buffer size",
                TX_NAME,
                format!("{} is above 65536", cfg.copy_buffer),
            ));
        }
        let fd = sys::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK, 0)
            .map_err(|e| Error::tx("open the transmit socket", "socket(AF_PACKET, SOCK_RAW)", e))?;
        if cfg.qdisc_bypass {
            let on: libc::c_int = 1;
            sys::setsockopt(fd.as_fd(), libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, &on)
                .map_err(|e| Error::tx("bypass the qdisc", "setsockopt(PACKET_QDISC_BYPASS)", e))?;
        }
        if let Some(size) = cfg.sndbuf {
            let size = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
            // SO_SNDBUFFORCE needs CAP_NET_ADMIN; fall back to the capped SO_SNDBUF.
            sys::setsockopt(fd.as_fd(), libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &size)
                .or_else(|_| sys::setsockopt(fd.as_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF, &size))
                .map_err(|e| Error::tx("size the send buffer", "setsockopt(SO_SNDBUF)", e))?;
        }
        let n = cfg.batch;
        let mut buffers = vec![0; n * cfg.copy_buffer];
        let buffers_base = buffers.as_mut_ptr();
        let mut socket = Self {
            fd,
            // SAFETY: `mmsghdr` is a C struct of integers and pointers, for which all-zero
            // is a valid (null, empty) value.
            msgs: vec![unsafe { std::mem::zeroed() }; n],
            iovs: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                n
            ],
            addrs: vec![sys::sockaddr_ll(0, 0); n],
            _buffers: buffers,
            buffers_base,
            copy_buffer: cfg.copy_buffer,
            len: 0,
            stats: TxStats::default(),
        };
        let addr_len = libc::socklen_t::try_from(size_of::<libc::sockaddr_ll>()).unwrap_or(0);
        for msg in &mut socket.msgs {
            msg.msg_hdr.msg_namelen = addr_len;
            msg.msg_hdr.msg_iovlen = 1;
        }
        Ok(socket)
    }

    /// Starts a batch; see the module documentation for the lifetime.
    pub fn batch(&mut self) -> TxBatchRef<'_> {
        // A batch flushes when it drops, so slots are left over only if one was leaked
        // (`mem::forget`): their frames may be gone, so they must never be sent.
        self.len = 0;
        TxBatchRef {
            tx: self,
            _frames: PhantomData,
        }
    }

    /// Frames per batch.
    pub fn capacity(&self) -> usize {
        self.msgs.len()
    }

    /// Counters since the socket was opened.
    pub fn stats(&self) -> TxStats {
        self.stats
    }

    /// Fills slot `len` with a frame at `ptr`, `len` bytes long, for `ifindex`.
    fn fill_slot(
        &mut self,
        ifindex: u32,
        ptr: *const u8,
        frame_len: usize,
        ethertype_be: u16,
    ) -> bool {
        let Ok(ifindex) = libc::c_int::try_from(ifindex) else {
            self.refuse(libc::ENXIO);
            return false;
        };
        let i = self.len;
        self.iovs[i] = libc::iovec {
            iov_base: ptr.cast_mut().cast(),
            iov_len: frame_len,
        };
        self.addrs[i].sll_ifindex = ifindex;
        self.addrs[i].sll_protocol = ethertype_be;
        // Pointers into our own arrays, derived afresh after the writes above.
        let hdr = &mut self.msgs[i].msg_hdr;
        hdr.msg_name = self.addrs.as_mut_ptr().wrapping_add(i).cast();
        hdr.msg_iov = self.iovs.as_mut_ptr().wrapping_add(i);
        self.len += 1;
        true
    }

    fn refuse(&mut self, errno: i32) {
        self.stats.dropped_error += 1;
        self.stats.last_errno = errno;
    }

    /// Sends slots `0..len`, then empties the batch.
    fn flush_slots(&mut self) -> Result<Flushed> {
        let n = std::mem::take(&mut self.len);
        let mut done = Flushed::default();
        let mut i = 0;
        let mut interrupted = 0;
        while i < n {
            self.stats.syscalls += 1;
            // SAFETY: slots `i..n` were filled by `push`/`push_with` of the current batch:
            // their names point into `self.addrs`, their iovecs into `self.buffers` or into
            // frames borrowed by the live `TxBatchRef` (see the module documentation), and
            // all of them are valid for the call.
            match unsafe { sys::sendmmsg(self.fd.as_fd(), &mut self.msgs[i..n]) } {
                Ok(0) => {
                    self.refuse(0);
                    done.dropped += 1;
                    i += 1;
                }
                Ok(k) => {
                    done.sent += k;
                    i += k;
                }
                Err(e) => match e.raw_os_error().unwrap_or(0) {
                    libc::EINTR if interrupted < 3 => interrupted += 1,
                    libc::EAGAIN | libc::ENOBUFS => {
                        // The socket or the device queue is full: retrying now would only
                        // spin. Drop the rest of the batch and count it.
                        self.stats.dropped_congestion += (n - i) as u64;
                        done.dropped += n - i;
                        i = n;
                    }
                    libc::EBADF | libc::EFAULT | libc::ENOTSOCK => {
                        self.stats.dropped_error += (n - i) as u64;
                        self.stats.sent += done.sent as u64;
                        return Err(Error::tx("transmit", "sendmmsg", e));
                    }
                    errno => {
                        // This message is refused (interface down, too long ...); the next
                        // ones may go to other interfaces.
                        self.refuse(errno);
                        done.dropped += 1;
                        i += 1;
                    }
                },
            }
        }
        self.stats.sent += done.sent as u64;
        Ok(done)
    }
}

/// The ethertype of a frame in network byte order, as `sll_protocol` wants it.
fn ethertype_be(frame: &[u8]) -> Option<u16> {
    match frame {
        [_, _, _, _, _, _, _, _, _, _, _, _, a, b, ..] => Some(u16::from_ne_bytes([*a, *b])),
        _ => None,
    }
}

impl AsFd for TxSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for TxSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl TxQueue for TxSocket {
    type Error = Error;
    type Batch<'a> = TxBatchRef<'a>;

    #[inline]
    fn batch(&mut self) -> TxBatchRef<'_> {
        TxSocket::batch(self)
    }
}

/// A batch being filled: borrows the socket, and every frame pushed, for `'a`.
#[derive(Debug)]
pub struct TxBatchRef<'a> {
    tx: &'a mut TxSocket,
    _frames: PhantomData<&'a [u8]>,
}

impl<'a> TxBatchRef<'a> {
    /// Queues `frame` (a whole Ethernet frame) for `ifindex`, zero copy. Flushes first if
    /// the batch is full. Frames shorter than an Ethernet header are counted and dropped.
    pub fn push(&mut self, ifindex: u32, frame: &'a [u8]) -> Result<()> {
        let Some(proto) = ethertype_be(frame) else {
            self.tx.refuse(libc::EINVAL);
            return Ok(());
        };
        if self.tx.len == self.tx.capacity() {
            self.tx.flush_slots()?;
        }
        self.tx
            .fill_slot(ifindex, frame.as_ptr(), frame.len(), proto);
        Ok(())
    }

    /// Queues a frame that `fill` writes into a buffer owned by the socket
    /// (`TxConfig::copy_buffer` bytes); `fill` returns its length, 0 to cancel.
    pub fn push_with<F: FnOnce(&mut [u8]) -> usize>(
        &mut self,
        ifindex: u32,
        fill: F,
    ) -> Result<()> {
        if self.tx.len == self.tx.capacity() {
            self.tx.flush_slots()?;
        }
        let size = self.tx.copy_buffer;
        let slot = self.tx.buffers_base.wrapping_add(self.tx.len * size);
        // SAFETY: slot `len` of `buffers` (`size` bytes at `len * size`, inside the vector,
        // which is never resized); no other reference to this slot exists: earlier slots'
        // pointers cover other bytes and the socket is borrowed mutably by this batch.
        let buf = unsafe { std::slice::from_raw_parts_mut(slot, size) };
        let len = fill(buf).min(size);
        let Some(proto) = ethertype_be(&buf[..len]) else {
            if len > 0 {
                self.tx.refuse(libc::EINVAL);
            }
            return Ok(());
        };
        let ptr = buf.as_ptr();
        self.tx.fill_slot(ifindex, ptr, len, proto);
        Ok(())
    }

    /// Copies `frame` into an owned buffer and queues it.
    pub fn push_copy(&mut self, ifindex: u32, frame: &[u8]) -> Result<()> {
        if frame.len() > self.tx.copy_buffer {
            self.tx.refuse(libc::EMSGSIZE);
            return Ok(());
        }
        self.push_with(ifindex, |buf| {
            buf[..frame.len()].copy_from_slice(frame);
            frame.len()
        })
    }

    /// Sends everything queued. Congestion and refused frames are counted (in the result
    /// and in [`TxSocket::stats`]); an error means the socket itself is unusable.
    pub fn flush(&mut self) -> Result<Flushed> {
        self.tx.flush_slots()
    }

    /// Frames queued and not yet sent.
    pub fn len(&self) -> usize {
        self.tx.len
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.tx.len == 0
    }
}

impl Drop for TxBatchRef<'_> {
    fn drop(&mut self) {
        if self.tx.len > 0 {
            // Errors are already counted in the socket's statistics.
            let _ = self.tx.flush_slots();
        }
    }
}

impl<'a> TxBatch<'a> for TxBatchRef<'a> {
    type Error = Error;

    #[inline]
    fn push(&mut self, ifindex: u32, frame: &'a [u8]) -> Result<()> {
        TxBatchRef::push(self, ifindex, frame)
    }

    #[inline]
    fn push_with<F: FnOnce(&mut [u8]) -> usize>(&mut self, ifindex: u32, fill: F) -> Result<()> {
        TxBatchRef::push_with(self, ifindex, fill)
    }

    #[inline]
    fn flush(&mut self) -> Result<Flushed> {
        TxBatchRef::flush(self)
    }

    #[inline]
    fn len(&self) -> usize {
        TxBatchRef::len(self)
    }
}
