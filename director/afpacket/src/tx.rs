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
//! the data into socket buffers before it returns; after that no pointer is used again.
//! A batch leaked with `mem::forget` is discarded, never sent: the next batch starts empty.
//! The message arrays and that argument are in `sys::mmsg`.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use crate::error::{Error, Result};
use crate::queue::{Flushed, TxBatch, TxQueue};
use crate::sys;
use crate::sys::mmsg::{MsgBatch, MsgSlots};

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
    slots: MsgSlots,
    stats: TxStats,
}

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
        Ok(Self {
            fd,
            slots: MsgSlots::new(cfg.batch, cfg.copy_buffer),
            stats: TxStats::default(),
        })
    }

    /// Starts a batch; see the module documentation for the lifetime.
    #[inline]
    pub fn batch(&mut self) -> TxBatchRef<'_> {
        TxBatchRef {
            fd: self.fd.as_fd(),
            msgs: self.slots.batch(),
            stats: &mut self.stats,
        }
    }

    /// Frames per batch.
    pub fn capacity(&self) -> usize {
        self.slots.capacity()
    }

    /// Counters since the socket was opened.
    pub fn stats(&self) -> TxStats {
        self.stats
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
    fd: BorrowedFd<'a>,
    msgs: MsgBatch<'a>,
    stats: &'a mut TxStats,
}

impl<'a> TxBatchRef<'a> {
    /// Queues `frame` (a whole Ethernet frame) for `ifindex`, zero copy. Flushes first if
    /// the batch is full. Frames shorter than an Ethernet header are counted and dropped.
    pub fn push(&mut self, ifindex: u32, frame: &'a [u8]) -> Result<()> {
        let Some(proto) = ethertype_be(frame) else {
            self.refuse(libc::EINVAL);
            return Ok(());
        };
        if self.msgs.is_full() {
            self.flush_slots()?;
        }
        let Some(ifindex) = self.out_index(ifindex) else {
            return Ok(());
        };
        self.msgs.push(ifindex, proto, frame);
        Ok(())
    }

    /// Queues a frame that `fill` writes into a buffer owned by the socket
    /// (`TxConfig::copy_buffer` bytes); `fill` returns its length, 0 to cancel.
    pub fn push_with<F: FnOnce(&mut [u8]) -> usize>(
        &mut self,
        ifindex: u32,
        fill: F,
    ) -> Result<()> {
        if self.msgs.is_full() {
            self.flush_slots()?;
        }
        let buf = self.msgs.buffer();
        let len = fill(buf).min(buf.len());
        let Some(proto) = ethertype_be(&buf[..len]) else {
            if len > 0 {
                self.refuse(libc::EINVAL);
            }
            return Ok(());
        };
        let Some(ifindex) = self.out_index(ifindex) else {
            return Ok(());
        };
        self.msgs.push_buffer(ifindex, proto, len);
        Ok(())
    }

    /// Copies `frame` into an owned buffer and queues it.
    pub fn push_copy(&mut self, ifindex: u32, frame: &[u8]) -> Result<()> {
        if frame.len() > self.msgs.buffer_size() {
            self.refuse(libc::EMSGSIZE);
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
        self.flush_slots()
    }

    /// Frames queued and not yet sent.
    pub fn len(&self) -> usize {
        self.msgs.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.msgs.len() == 0
    }

    /// `ifindex` as `sll_ifindex` wants it; an index out of its range is refused.
    #[inline]
    fn out_index(&mut self, ifindex: u32) -> Option<libc::c_int> {
        let index = libc::c_int::try_from(ifindex).ok();
        if index.is_none() {
            self.refuse(libc::ENXIO);
        }
        index
    }

    fn refuse(&mut self, errno: i32) {
        self.stats.dropped_error += 1;
        self.stats.last_errno = errno;
    }

    /// Sends the queued slots, then empties the batch.
    fn flush_slots(&mut self) -> Result<Flushed> {
        let n = self.msgs.len();
        let mut done = Flushed::default();
        let mut i = 0;
        let mut interrupted = 0;
        let result = loop {
            if i >= n {
                break Ok(());
            }
            self.stats.syscalls += 1;
            match self.msgs.send(self.fd, i) {
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
                        break Err(Error::tx("transmit", "sendmmsg", e));
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
        };
        self.msgs.clear();
        self.stats.sent += done.sent as u64;
        result.map(|()| done)
    }
}

impl Drop for TxBatchRef<'_> {
    fn drop(&mut self) {
        if self.msgs.len() > 0 {
            // Errors are already counted in the socket's statistics.
            let _ = self.flush_slots();
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
