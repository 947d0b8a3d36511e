//! Receive: a TPACKET_V3 memory-mapped ring on an `AF_PACKET`/`SOCK_RAW` socket.
//!
//! The ring is `block_count` blocks of `block_size` bytes. The kernel fills one block at a
//! time with variable-sized frames and hands it to us ("retires" it) when it is full or
//! when the retire timeout expires, by setting `TP_STATUS_USER` in the block header. We
//! take blocks strictly in ring order ([`RxRing::next_block`]), and hand each back by
//! storing `TP_STATUS_KERNEL` when its [`Block`] guard drops.
//!
//! Reading the ring memory (block and frame headers, frame bytes) is in `sys::ring`.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::iface::Interface;
use crate::queue::{RxBatch, RxQueue};
use crate::sys;
use crate::sys::ring::{self, RxMap, UserBlock};

pub use crate::sys::ring::Frames;

/// Geometry and options of a receive ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RxConfig {
    /// Bytes per block: a multiple of the page size. Frames never span blocks, so a block
    /// must hold the largest frame expected (a TCP GSO frame is up to 64 KiB).
    pub block_size: u32,
    /// Number of blocks.
    pub block_count: u32,
    /// Nominal frame size (a multiple of 16 that divides `block_size`). TPACKET_V3 packs
    /// frames of any size; this only sets the kernel's frame count.
    pub frame_size: u32,
    /// Milliseconds after which a block that is not full is handed over anyway
    /// (latency at low rates). 0 lets the kernel choose (several ms).
    pub retire_timeout_ms: u32,
    /// Minimum free bytes before each frame (`PACKET_RESERVE`), so that headers can be
    /// prepended in place (IP-in-IP needs 20).
    pub headroom: u32,
    /// Do not deliver frames this host transmits on the interface (the director's own
    /// output): `PACKET_IGNORE_OUTGOING` (or the fanout flag), and skipping any
    /// `PACKET_OUTGOING` frame that still arrives.
    pub ignore_outgoing: bool,
    /// Ask the kernel to fill in its flow hash (`FrameMeta::rxhash`).
    pub fill_rxhash: bool,
}

impl Default for RxConfig {
    /// 4 MiB per ring (32 blocks of 128 KiB), 1 ms retire timeout, 32 bytes of headroom.
    fn default() -> Self {
        Self {
            block_size: 128 * 1024,
            block_count: 32,
            frame_size: 2048,
            retire_timeout_ms: 1,
            headroom: 32,
            ignore_outgoing: true,
            fill_rxhash: false,
        }
    }
}

impl RxConfig {
    /// Checks what the kernel would refuse, with a clear reason.
    pub fn validate(&self, iface: &str) -> Result<()> {
        let bad = |reason: String| Err(Error::config("receive ring geometry", iface, reason));
        let page = sys::page_size();
        let block = usize::try_from(self.block_size).unwrap_or(usize::MAX);
        if block == 0 || block % page != 0 {
            return bad(format!(
                "block size {} is not a multiple of the page size {page}",
                self.block_size
            ));
        }
        if self.block_count == 0 {
            return bad("block count is 0".into());
        }
        let min_frame =
            ring::FRAME_HEADER_LEN + usize::try_from(self.headroom).unwrap_or(usize::MAX);
        let frame = usize::try_from(self.frame_size).unwrap_or(0);
        if frame % 16 != 0 || frame < min_frame || frame > block {
            return bad(format!(
                "frame size {} must be a multiple of 16 between {min_frame} and the block size {}",
                self.frame_size, self.block_size
            ));
        }
        if self.headroom > 4096 {
            return bad(format!(
                "headroom {} is more than 4096 bytes",
                self.headroom
            ));
        }
        let frames = (self.block_size / self.frame_size).checked_mul(self.block_count);
        let total = block.checked_mul(usize::try_from(self.block_count).unwrap_or(usize::MAX));
        if frames.is_none() || total.is_none_or(|t| t > isize::MAX as usize) {
            return bad(format!(
                "{} blocks of {} bytes is too much",
                self.block_count, self.block_size
            ));
        }
        Ok(())
    }
}

/// Ring statistics since the ring was opened (`PACKET_STATISTICS`, accumulated: the kernel
/// resets its counters at every read).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxStats {
    /// Frames that reached the socket, including the dropped ones (`tp_packets`).
    pub packets: u64,
    /// Frames dropped because the ring was full (`tp_drops`).
    pub drops: u64,
    /// Times the ring froze because every block was held by user space (`tp_freeze_q_cnt`).
    pub freezes: u64,
}

/// A TPACKET_V3 receive ring bound to one interface.
#[derive(Debug)]
pub struct RxRing {
    ring: RxMap,
    fd: OwnedFd,
    iface: Interface,
    skip_outgoing: bool,
    stats: RxStats,
}

impl RxRing {
    /// Opens a receive ring on `iface` that sees all of its traffic.
    pub fn open(iface: &Interface, cfg: &RxConfig) -> Result<Self> {
        let mut ring = Self::create(iface, cfg)?;
        if cfg.ignore_outgoing {
            ring.ignore_outgoing();
        }
        ring.bind()?;
        Ok(ring)
    }

    /// Socket, ring and mapping, not yet bound (so not yet receiving).
    pub(crate) fn create(iface: &Interface, cfg: &RxConfig) -> Result<Self> {
        let name = iface.name();
        cfg.validate(name)?;
        let fd =
            sys::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK, 0).map_err(|e| {
                Error::sys(
                    "open a packet socket",
                    name,
                    "socket(AF_PACKET, SOCK_RAW)",
                    e,
                )
            })?;
        let version = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
        sys::setsockopt(fd.as_fd(), libc::SOL_PACKET, libc::PACKET_VERSION, &version)
            .map_err(|e| Error::sys("select TPACKET_V3", name, "setsockopt(PACKET_VERSION)", e))?;
        if cfg.headroom > 0 {
            sys::setsockopt(
                fd.as_fd(),
                libc::SOL_PACKET,
                libc::PACKET_RESERVE,
                &cfg.headroom,
            )
            .map_err(|e| Error::sys("reserve headroom", name, "setsockopt(PACKET_RESERVE)", e))?;
        }
        let req = libc::tpacket_req3 {
            tp_block_size: cfg.block_size,
            tp_block_nr: cfg.block_count,
            tp_frame_size: cfg.frame_size,
            tp_frame_nr: (cfg.block_size / cfg.frame_size) * cfg.block_count,
            tp_retire_blk_tov: cfg.retire_timeout_ms,
            tp_sizeof_priv: 0,
            tp_feature_req_word: if cfg.fill_rxhash {
                libc::TP_FT_REQ_FILL_RXHASH
            } else {
                0
            },
        };
        sys::setsockopt(fd.as_fd(), libc::SOL_PACKET, libc::PACKET_RX_RING, &req).map_err(|e| {
            Error::sys(
                "set up the receive ring",
                name,
                "setsockopt(PACKET_RX_RING)",
                e,
            )
        })?;
        let ring = RxMap::new(
            fd.as_fd(),
            usize::try_from(cfg.block_size).unwrap_or(0),
            usize::try_from(cfg.block_count).unwrap_or(0),
        )
        .map_err(|e| Error::sys("map the receive ring", name, "mmap", e))?;
        Ok(Self {
            ring,
            fd,
            iface: iface.clone(),
            skip_outgoing: cfg.ignore_outgoing,
            stats: RxStats::default(),
        })
    }

    /// `PACKET_IGNORE_OUTGOING`, best effort: outgoing frames are skipped anyway.
    pub(crate) fn ignore_outgoing(&mut self) {
        let on: libc::c_int = 1;
        // Older kernels lack the option (ENOPROTOOPT); the frame iterator skips
        // PACKET_OUTGOING frames in that case, so failure here is harmless.
        let _ = sys::setsockopt(
            self.fd.as_fd(),
            libc::SOL_PACKET,
            libc::PACKET_IGNORE_OUTGOING,
            &on,
        );
        self.skip_outgoing = true;
    }

    /// Binds to the interface for every protocol: from here on, frames arrive.
    pub(crate) fn bind(&self) -> Result<()> {
        sys::bind_ll(self.fd.as_fd(), sys::eth_p_all_be(), self.iface.c_index()?).map_err(|e| {
            Error::sys(
                "bind the receive socket",
                self.iface.name(),
                "bind(AF_PACKET)",
                e,
            )
        })
    }

    /// The interface this ring receives from.
    pub fn interface(&self) -> &Interface {
        &self.iface
    }

    /// The next retired block, or `None` if the kernel has not handed one over. No system
    /// call; never blocks. Blocks come in ring order, one at a time: the block must be
    /// dropped (given back) before the next one can be taken.
    pub fn next_block(&mut self) -> Option<Block<'_>> {
        let skip_outgoing = self.skip_outgoing;
        let block = self.ring.next_block()?;
        Some(Block {
            block,
            skip_outgoing,
        })
    }

    /// Waits up to `timeout` (`None`: forever) for the socket to become readable.
    /// Returns whether it is. A pending socket error (the interface went down) is returned
    /// once, see [`RxRing::take_error`].
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool> {
        let ms = timeout.map_or(-1, |t| {
            libc::c_int::try_from(t.as_millis()).unwrap_or(libc::c_int::MAX)
        });
        let revents = loop {
            match sys::poll(self.fd.as_fd(), libc::POLLIN, ms) {
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                r => break r,
            }
        }
        .map_err(|e| Error::sys("wait for frames", self.iface.name(), "poll", e))?;
        if revents & libc::POLLERR != 0 {
            self.take_error()?;
        }
        Ok(revents & libc::POLLIN != 0)
    }

    /// Reads and clears a pending socket error (`SO_ERROR`), returned as an error. The
    /// kernel sets one (ENETDOWN) when the interface goes down; the ring keeps working when
    /// it comes back up. Call this when the event loop reports an error condition on the
    /// descriptor (EPOLLERR), or it will keep being reported.
    pub fn take_error(&self) -> Result<()> {
        let code: i32 = sys::getsockopt(self.fd.as_fd(), libc::SOL_SOCKET, libc::SO_ERROR)
            .map_err(|e| {
                Error::sys(
                    "read the socket error",
                    self.iface.name(),
                    "getsockopt(SO_ERROR)",
                    e,
                )
            })?;
        if code != 0 {
            let err = std::io::Error::from_raw_os_error(code);
            return Err(Error::sys("receive", self.iface.name(), "SO_ERROR", err));
        }
        Ok(())
    }

    /// Ring statistics since the ring was opened.
    pub fn stats(&mut self) -> Result<RxStats> {
        let st: libc::tpacket_stats_v3 =
            sys::getsockopt(self.fd.as_fd(), libc::SOL_PACKET, libc::PACKET_STATISTICS).map_err(
                |e| {
                    Error::sys(
                        "read ring statistics",
                        self.iface.name(),
                        "getsockopt(PACKET_STATISTICS)",
                        e,
                    )
                },
            )?;
        self.stats.packets += u64::from(st.tp_packets);
        self.stats.drops += u64::from(st.tp_drops);
        self.stats.freezes += u64::from(st.tp_freeze_q_cnt);
        Ok(self.stats)
    }
}

impl AsFd for RxRing {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for RxRing {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl RxQueue for RxRing {
    type Error = Error;
    type Batch<'a> = Block<'a>;

    #[inline]
    fn next_batch(&mut self) -> Option<Block<'_>> {
        self.next_block()
    }

    fn take_error(&self) -> Result<()> {
        RxRing::take_error(self)
    }
}

/// A block handed over by the kernel. Its frames may be read and rewritten in place; it
/// goes back to the kernel when this guard drops, never earlier.
#[derive(Debug)]
pub struct Block<'a> {
    block: UserBlock<'a>,
    skip_outgoing: bool,
}

impl Block<'_> {
    /// Frames in the block (outgoing ones included, though [`Block::frames`] skips them).
    pub fn num_frames(&self) -> u32 {
        self.block.header().num_pkts
    }

    /// The block's sequence number (increases by one per block the kernel retires).
    pub fn seq(&self) -> u64 {
        self.block.header().seq
    }

    /// The block was handed over by the retire timer, not because it was full.
    pub fn timed_out(&self) -> bool {
        self.block.header().status & libc::TP_STATUS_BLK_TMO != 0
    }

    /// The block's frames, each a `&mut [u8]` into the ring plus metadata.
    pub fn frames(&mut self) -> Frames<'_> {
        self.block.frames(self.skip_outgoing)
    }
}

impl RxBatch for Block<'_> {
    type Frames<'b>
        = Frames<'b>
    where
        Self: 'b;

    #[inline]
    fn frames(&mut self) -> Frames<'_> {
        Block::frames(self)
    }
}
