//! Receive: a memory-mapped ring on an `AF_PACKET`/`SOCK_RAW` socket, TPACKET_V2 or V3
//! ([`RingVersion`]).
//!
//! Either ring is `block_count` blocks of `block_size` bytes. With TPACKET_V3 the kernel
//! fills one block at a time with variable-sized frames and hands it to us ("retires" it)
//! when it is full or when the retire timeout expires, by setting `TP_STATUS_USER` in the
//! block header: few wake-ups, but a frame waits for its block. With TPACKET_V2 every block
//! is cut into fixed `frame_size` slots, and each frame is handed over on its own as soon as
//! it is written: no wait, one wake-up per frame while the reader sleeps. We take batches
//! strictly in ring order ([`RxRing::next_block`]: a V3 block, or the run of ready V2
//! slots), and hand each back by storing `TP_STATUS_KERNEL` when its [`Block`] guard drops.
//!
//! Reading the ring memory (block, slot and frame headers, frame bytes) is in `sys::ring`
//! (V3) and `sys::frame_ring` (V2).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::iface::Interface;
use crate::queue::{RxBatch, RxQueue};
use crate::sys;
use crate::sys::frame_ring::{self, FrameMap, RunFrames, UserRun};
use crate::sys::ring::{self, BlockFrames, RxMap, UserBlock};

/// The TPACKET version of a receive ring: how the kernel hands frames over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RingVersion {
    /// TPACKET_V2: fixed-size slots, each handed over the moment its frame is written. The
    /// lowest latency; a sleeping reader is woken for every frame. `frame_size` must hold
    /// the largest frame (MTU plus Ethernet and VLAN headers, headroom and slot header), or
    /// frames arrive truncated.
    #[default]
    V2,
    /// TPACKET_V3: variable-sized frames packed into blocks, a block handed over when it is
    /// full or after `retire_timeout_ms`. Fewer wake-ups and denser memory, but each frame
    /// may wait up to the retire timeout.
    V3,
}

/// Most slots a TPACKET_V2 batch holds: about what one `sendmmsg` sends, so that a batch's
/// slots go back to the kernel soon.
const V2_BATCH: usize = 256;

/// Geometry and options of a receive ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RxConfig {
    /// TPACKET_V2 (frame by frame) or TPACKET_V3 (block by block).
    pub version: RingVersion,
    /// Bytes per block: a multiple of the page size. Frames never span blocks, so a block
    /// must hold the largest frame expected (a TCP GSO frame is up to 64 KiB).
    pub block_size: u32,
    /// Number of blocks.
    pub block_count: u32,
    /// Frame size (a multiple of 16 that divides `block_size`). TPACKET_V3 packs frames of
    /// any size, and this only sets the kernel's frame count; for TPACKET_V2 it is the slot
    /// size, which bounds the frame (longer ones are truncated).
    pub frame_size: u32,
    /// TPACKET_V3: milliseconds after which a block that is not full is handed over anyway
    /// (latency at low rates). 0 lets the kernel choose (several ms). Unused by TPACKET_V2.
    pub retire_timeout_ms: u32,
    /// Minimum free bytes before each frame (`PACKET_RESERVE`), so that headers can be
    /// prepended in place (IP-in-IP needs 20).
    pub headroom: u32,
    /// Do not deliver frames this host transmits on the interface (the director's own
    /// output): `PACKET_IGNORE_OUTGOING` (or the fanout flag), and skipping any
    /// `PACKET_OUTGOING` frame that still arrives.
    pub ignore_outgoing: bool,
    /// Ask the kernel to fill in its flow hash (`FrameMeta::rxhash`). TPACKET_V3 only.
    pub fill_rxhash: bool,
}

impl Default for RxConfig {
    /// TPACKET_V2, 4 MiB per ring (32 blocks of 128 KiB, 2 KiB slots), 32 bytes of
    /// headroom; 1 ms retire timeout for TPACKET_V3.
    fn default() -> Self {
        Self {
            version: RingVersion::default(),
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
    /// For TPACKET_V2, raises the slot size so that a frame of `mtu` bytes of IP packet
    /// (plus its Ethernet and VLAN headers, the headroom and the slot header) fits whole,
    /// up to the block size; a frame that does not fit arrives truncated. TPACKET_V3 packs
    /// frames of any size and is left alone.
    pub fn fit_mtu(mut self, mtu: u32) -> Self {
        if self.version == RingVersion::V2 {
            let need = u32::try_from(frame_ring::FRAME_HEADER_LEN)
                .unwrap_or(u32::MAX)
                .saturating_add(self.headroom)
                .saturating_add(18)
                .saturating_add(mtu)
                .saturating_add(15)
                & !15;
            self.frame_size = self.frame_size.max(need).min(self.block_size & !15);
        }
        self
    }

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
        let header = match self.version {
            RingVersion::V2 => frame_ring::FRAME_HEADER_LEN,
            RingVersion::V3 => ring::FRAME_HEADER_LEN,
        };
        let min_frame = header + usize::try_from(self.headroom).unwrap_or(usize::MAX);
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

/// The ring memory of either version.
#[derive(Debug)]
enum RingMap {
    V2(FrameMap),
    V3(RxMap),
}

/// A TPACKET_V2 or TPACKET_V3 receive ring bound to one interface.
#[derive(Debug)]
pub struct RxRing {
    ring: RingMap,
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
        let (version, what) = match cfg.version {
            RingVersion::V2 => (libc::tpacket_versions::TPACKET_V2, "select TPACKET_V2"),
            RingVersion::V3 => (libc::tpacket_versions::TPACKET_V3, "select TPACKET_V3"),
        };
        let version = version as libc::c_int;
        sys::setsockopt(fd.as_fd(), libc::SOL_PACKET, libc::PACKET_VERSION, &version)
            .map_err(|e| Error::sys(what, name, "setsockopt(PACKET_VERSION)", e))?;
        if cfg.headroom > 0 {
            sys::setsockopt(
                fd.as_fd(),
                libc::SOL_PACKET,
                libc::PACKET_RESERVE,
                &cfg.headroom,
            )
            .map_err(|e| Error::sys("reserve headroom", name, "setsockopt(PACKET_RESERVE)", e))?;
        }
        let ring_err = |e| {
            Error::sys(
                "set up the receive ring",
                name,
                "setsockopt(PACKET_RX_RING)",
                e,
            )
        };
        let frame_nr = (cfg.block_size / cfg.frame_size) * cfg.block_count;
        let block_size = usize::try_from(cfg.block_size).unwrap_or(0);
        let block_count = usize::try_from(cfg.block_count).unwrap_or(0);
        let map_err = |e| Error::sys("map the receive ring", name, "mmap", e);
        let ring = match cfg.version {
            RingVersion::V2 => {
                let req = libc::tpacket_req {
                    tp_block_size: cfg.block_size,
                    tp_block_nr: cfg.block_count,
                    tp_frame_size: cfg.frame_size,
                    tp_frame_nr: frame_nr,
                };
                sys::setsockopt(fd.as_fd(), libc::SOL_PACKET, libc::PACKET_RX_RING, &req)
                    .map_err(ring_err)?;
                let frame_size = usize::try_from(cfg.frame_size).unwrap_or(0);
                RingMap::V2(
                    FrameMap::new(fd.as_fd(), block_size, block_count, frame_size)
                        .map_err(map_err)?,
                )
            }
            RingVersion::V3 => {
                let req = libc::tpacket_req3 {
                    tp_block_size: cfg.block_size,
                    tp_block_nr: cfg.block_count,
                    tp_frame_size: cfg.frame_size,
                    tp_frame_nr: frame_nr,
                    tp_retire_blk_tov: cfg.retire_timeout_ms,
                    tp_sizeof_priv: 0,
                    tp_feature_req_word: if cfg.fill_rxhash {
                        libc::TP_FT_REQ_FILL_RXHASH
                    } else {
                        0
                    },
                };
                sys::setsockopt(fd.as_fd(), libc::SOL_PACKET, libc::PACKET_RX_RING, &req)
                    .map_err(ring_err)?;
                RingMap::V3(RxMap::new(fd.as_fd(), block_size, block_count).map_err(map_err)?)
            }
        };
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

    /// The ring's TPACKET version.
    pub fn version(&self) -> RingVersion {
        match self.ring {
            RingMap::V2(_) => RingVersion::V2,
            RingMap::V3(_) => RingVersion::V3,
        }
    }

    /// The next batch: a retired block (TPACKET_V3) or the run of ready slots (TPACKET_V2),
    /// or `None` if the kernel has not handed anything over. No system call; never blocks.
    /// Batches come in ring order, one at a time: the batch must be dropped (given back)
    /// before the next one can be taken.
    #[inline]
    pub fn next_block(&mut self) -> Option<Block<'_>> {
        let skip_outgoing = self.skip_outgoing;
        let inner = match &mut self.ring {
            RingMap::V2(map) => BlockInner::V2(map.next_run(V2_BATCH)?),
            RingMap::V3(map) => BlockInner::V3(map.next_block()?),
        };
        Some(Block {
            inner,
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

    /// Attaches (or atomically replaces) this ring's receive filter (see
    /// [`crate::RxFilter`]); a ring of a fanout group is better served by
    /// [`crate::FanoutControl::set_filter`], which reaches every member.
    pub fn set_filter(&self, prog: &[libc::sock_filter]) -> Result<()> {
        crate::filter::attach(self.fd.as_fd(), &self.iface, prog)
    }

    /// Ring statistics since the ring was opened.
    pub fn stats(&mut self) -> Result<RxStats> {
        let st = read_stats(self.fd.as_fd(), &self.iface)?;
        self.stats.packets += u64::from(st.tp_packets);
        self.stats.drops += u64::from(st.tp_drops);
        self.stats.freezes += u64::from(st.tp_freeze_q_cnt);
        Ok(self.stats)
    }
}

/// The kernel's statistics of a packet socket since they were last read (reading resets
/// them).
pub(crate) fn read_stats(fd: BorrowedFd<'_>, iface: &Interface) -> Result<libc::tpacket_stats_v3> {
    sys::getsockopt(fd, libc::SOL_PACKET, libc::PACKET_STATISTICS).map_err(|e| {
        Error::sys(
            "read ring statistics",
            iface.name(),
            "getsockopt(PACKET_STATISTICS)",
            e,
        )
    })
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

#[derive(Debug)]
enum BlockInner<'a> {
    V2(UserRun<'a>),
    V3(UserBlock<'a>),
}

/// A batch handed over by the kernel: a TPACKET_V3 block, or a run of TPACKET_V2 slots. Its
/// frames may be read and rewritten in place; it goes back to the kernel when this guard
/// drops, never earlier.
#[derive(Debug)]
pub struct Block<'a> {
    inner: BlockInner<'a>,
    skip_outgoing: bool,
}

impl Block<'_> {
    /// Frames in the batch (outgoing ones included, though [`Block::frames`] skips them).
    pub fn num_frames(&self) -> u32 {
        match &self.inner {
            BlockInner::V2(run) => u32::try_from(run.len()).unwrap_or(u32::MAX),
            BlockInner::V3(block) => block.header().num_pkts,
        }
    }

    /// TPACKET_V3: the block's sequence number (increases by one per block the kernel
    /// retires). TPACKET_V2 has none: 0.
    pub fn seq(&self) -> u64 {
        match &self.inner {
            BlockInner::V2(_) => 0,
            BlockInner::V3(block) => block.header().seq,
        }
    }

    /// TPACKET_V3: the block was handed over by the retire timer, not because it was full.
    /// Never for TPACKET_V2, which has no timer.
    pub fn timed_out(&self) -> bool {
        match &self.inner {
            BlockInner::V2(_) => false,
            BlockInner::V3(block) => block.header().status & libc::TP_STATUS_BLK_TMO != 0,
        }
    }

    /// The batch's frames, each a `&mut [u8]` into the ring plus metadata.
    #[inline]
    pub fn frames(&mut self) -> Frames<'_> {
        match &mut self.inner {
            BlockInner::V2(run) => Frames(FramesInner::V2(run.frames(self.skip_outgoing))),
            BlockInner::V3(block) => Frames(FramesInner::V3(block.frames(self.skip_outgoing))),
        }
    }
}

/// Iterator over a batch's frames. Each frame's bytes are a disjoint `&'b mut [u8]` into the
/// ring.
#[derive(Debug)]
pub struct Frames<'b>(FramesInner<'b>);

#[derive(Debug)]
enum FramesInner<'b> {
    V2(RunFrames<'b>),
    V3(BlockFrames<'b>),
}

impl<'b> Iterator for Frames<'b> {
    type Item = crate::frame::Frame<'b>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            FramesInner::V2(f) => f.next(),
            FramesInner::V3(f) => f.next(),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_slots_grow_to_hold_the_mtu_and_v3_is_left_alone() {
        let v2 = RxConfig::default();
        assert_eq!(v2.version, RingVersion::V2);
        assert_eq!(v2.clone().fit_mtu(1500).frame_size, 2048);
        // 52 (slot header) + 32 (headroom) + 18 (Ethernet and VLAN) + 9000, to 16 bytes.
        assert_eq!(v2.clone().fit_mtu(9000).frame_size, 9104);
        // Never beyond a block.
        assert_eq!(v2.clone().fit_mtu(1 << 20).frame_size, v2.block_size);
        assert!(v2.clone().fit_mtu(9000).validate("eth0").is_ok());
        let v3 = RxConfig {
            version: RingVersion::V3,
            ..RxConfig::default()
        };
        assert_eq!(v3.clone().fit_mtu(9000).frame_size, v3.frame_size);
    }
}
