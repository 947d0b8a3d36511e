//! The TPACKET_V3 ring memory: block headers, frame headers, frame bytes.
//!
//! Layout (Documentation/networking/packet_mmap.rst, include/uapi/linux/if_packet.h):
//!
//! ```text
//! block:  tpacket_block_desc { version, offset_to_priv, tpacket_hdr_v1 { block_status,
//!         num_pkts, offset_to_first_pkt, blk_len, seq_num, ts_first, ts_last } }
//!         ... frames, starting at offset_to_first_pkt, each TPACKET_ALIGNed:
//! frame:  tpacket3_hdr (48 bytes incl. padding) | sockaddr_ll (20) | free headroom |
//!         frame bytes at tp_mac, tp_snaplen long | padding | next frame at tp_next_offset
//! ```
//!
//! Ownership of a block passes by its `block_status` word: the kernel sets
//! `TP_STATUS_USER` (after writing the block, with a write barrier) and never touches the
//! block again until we store `TP_STATUS_KERNEL`. We read the word with `Acquire` and store
//! it with `Release`, so the block's contents are ours, exclusively, in between.
//!
//! The safe interface: [`RxMap::next_block`] hands out the next block in ring order as a
//! [`UserBlock`] guard (at most one at a time, it borrows the map mutably), whose
//! [`BlockFrames`] iterator yields each frame's bytes as a disjoint `&mut [u8]` into the ring
//! (zero copy), and whose drop gives the block back to the kernel. Every pointer
//! computation and bound check is here; the frame walk checks each header against the
//! block's length once, as it did when it lived in `rx`.

use std::io;
use std::marker::PhantomData;
use std::mem::offset_of;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU32, Ordering};

use super::Mmap;
use crate::frame::{Frame, FrameMeta, Status, Vlan};

/// `TPACKET3_HDRLEN`: frame header plus `sockaddr_ll`; frame buffers start after it.
pub const FRAME_HEADER_LEN: usize = libc::TPACKET3_HDRLEN;

/// `TPACKET_ALIGN(sizeof(struct tpacket3_hdr))`: where the `sockaddr_ll` sits.
const SLL_OFFSET: usize = (size_of::<libc::tpacket3_hdr>() + libc::TPACKET_ALIGNMENT - 1)
    & !(libc::TPACKET_ALIGNMENT - 1);

/// Offset of `block_status` in a block.
const STATUS_OFFSET: usize =
    offset_of!(libc::tpacket_block_desc, hdr) + offset_of!(libc::tpacket_hdr_v1, block_status);

/// Offset of the `tpacket_hdr_v1` in a block.
const HDR_V1_OFFSET: usize = offset_of!(libc::tpacket_block_desc, hdr);

/// What we need of a block header, copied out.
#[derive(Clone, Copy, Debug)]
pub struct BlockHeader {
    pub status: u32,
    pub num_pkts: u32,
    offset_to_first_pkt: u32,
    blk_len: u32,
    pub seq: u64,
}

impl BlockHeader {
    /// The header of the block at `base` if the kernel has handed it to user space.
    ///
    /// # Safety
    /// `base` must be the start of a block of a live, mapped TPACKET_V3 ring (page aligned).
    unsafe fn read_if_user(base: *mut u8) -> Option<Self> {
        // SAFETY: per the contract the status word is inside the mapping and 4-aligned
        // (offset 8 of a page-aligned block); the kernel writes it concurrently, which is
        // why it is accessed atomically.
        let status = unsafe { AtomicU32::from_ptr(base.wrapping_add(STATUS_OFFSET).cast()) };
        let word = status.load(Ordering::Acquire);
        if word & libc::TP_STATUS_USER == 0 {
            return None;
        }
        // SAFETY: the block is ours (status USER, read with Acquire after the kernel's
        // barrier), the header is inside it and 8-aligned as `tpacket_hdr_v1` requires.
        let h = unsafe {
            base.wrapping_add(HDR_V1_OFFSET)
                .cast::<libc::tpacket_hdr_v1>()
                .read()
        };
        Some(Self {
            status: word,
            num_pkts: h.num_pkts,
            offset_to_first_pkt: h.offset_to_first_pkt,
            blk_len: h.blk_len,
            seq: h.seq_num,
        })
    }
}

/// Hands the block at `base` back to the kernel.
///
/// # Safety
/// `base` must be the start of a block of a live, mapped TPACKET_V3 ring that user space
/// owns and that nothing borrows any more.
unsafe fn release_block(base: *mut u8) {
    // SAFETY: per the contract the status word is inside the mapping and 4-aligned; the
    // Release store publishes our writes to the block (rewritten frames) before the kernel
    // reuses it.
    let status = unsafe { AtomicU32::from_ptr(base.wrapping_add(STATUS_OFFSET).cast()) };
    status.store(libc::TP_STATUS_KERNEL, Ordering::Release);
}

/// What we need of a frame header, copied out.
#[derive(Clone, Copy, Debug)]
struct FrameHeader {
    next_offset: usize,
    mac: usize,
    meta: FrameMeta,
}

impl FrameHeader {
    /// Reads the frame header (and its `sockaddr_ll`) at `ptr`.
    ///
    /// # Safety
    /// `ptr .. ptr + FRAME_HEADER_LEN` must lie in a block owned by user space.
    unsafe fn read(ptr: *mut u8) -> Self {
        // SAFETY: per the contract the header is readable; `read_unaligned` needs no alignment.
        let h = unsafe { ptr.cast::<libc::tpacket3_hdr>().read_unaligned() };
        // SAFETY: per the contract `SLL_OFFSET + size_of::<sockaddr_ll>()` bytes are readable.
        let sll = unsafe {
            ptr.wrapping_add(SLL_OFFSET)
                .cast::<libc::sockaddr_ll>()
                .read_unaligned()
        };
        let status = Status::from_raw(h.tp_status);
        let vlan = status.has(Status::VLAN_VALID).then(|| Vlan {
            tci: u16::try_from(h.hv1.tp_vlan_tci & 0xffff).unwrap_or(0),
            tpid: if status.has(Status::VLAN_TPID_VALID) {
                h.hv1.tp_vlan_tpid
            } else {
                0x8100
            },
        });
        Self {
            next_offset: usize::try_from(h.tp_next_offset).unwrap_or(usize::MAX),
            mac: usize::from(h.tp_mac),
            meta: FrameMeta {
                len: h.tp_snaplen,
                wire_len: h.tp_len,
                status,
                vlan,
                rxhash: h.hv1.tp_rxhash,
                sec: h.tp_sec,
                nsec: h.tp_nsec,
                pkttype: sll.sll_pkttype,
            },
        }
    }

    /// The frame bytes' range within the block, for a header at `offset`; `None` if the
    /// header is inconsistent (bytes overlapping the header, or overflow).
    fn data_range(&self, offset: usize) -> Option<(usize, usize)> {
        if self.mac < FRAME_HEADER_LEN {
            return None;
        }
        let start = offset.checked_add(self.mac)?;
        let end = start.checked_add(usize::try_from(self.meta.len).ok()?)?;
        Some((start, end))
    }
}

/// A frame's bytes in the ring.
///
/// # Safety
/// `ptr .. ptr + len` must lie in a block owned by user space for `'b`, and no other live
/// reference may overlap it during `'b`.
unsafe fn frame_bytes<'b>(ptr: *mut u8, len: usize) -> &'b mut [u8] {
    // SAFETY: guaranteed by the caller: valid, exclusively ours for `'b`; `u8` needs no
    // alignment and every byte value is valid.
    unsafe { std::slice::from_raw_parts_mut(ptr, len) }
}

/// A mapped receive ring, handed out one block at a time, in ring order.
#[derive(Debug)]
pub struct RxMap {
    map: Mmap,
    block_size: usize,
    block_count: usize,
    /// The next block to hand out.
    current: usize,
}

impl RxMap {
    /// Maps the ring of `fd` (set up with `PACKET_RX_RING` for this geometry).
    /// `block_size` must be a multiple of the page size, as the kernel requires too, and
    /// `block_count` at least 1.
    pub fn new(fd: BorrowedFd<'_>, block_size: usize, block_count: usize) -> io::Result<Self> {
        let len = block_size.checked_mul(block_count);
        let page = super::page_size();
        let geometry_ok = block_size > 0 && block_size.is_multiple_of(page) && block_count > 0;
        let Some(len) = len.filter(|_| geometry_ok) else {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        };
        Ok(Self {
            map: Mmap::new(fd, len)?,
            block_size,
            block_count,
            current: 0,
        })
    }

    /// The next block if the kernel has handed it over. No system call; never blocks.
    #[inline]
    pub fn next_block(&mut self) -> Option<UserBlock<'_>> {
        let base = self
            .map
            .as_ptr()
            .wrapping_add(self.current * self.block_size);
        // SAFETY: `current < block_count`, so `base` is the start of a block inside the
        // mapping (`block_size * block_count` bytes, checked in `new`), page aligned since
        // the mapping is and `block_size` is a multiple of the page size.
        let header = unsafe { BlockHeader::read_if_user(base) }?;
        Some(UserBlock {
            base,
            header,
            map: self,
        })
    }
}

/// A block the kernel handed over: ours until this guard drops, which gives it back.
#[derive(Debug)]
pub struct UserBlock<'a> {
    base: *mut u8,
    header: BlockHeader,
    map: &'a mut RxMap,
}

impl UserBlock<'_> {
    /// The block's header, as read when it was handed over.
    pub fn header(&self) -> &BlockHeader {
        &self.header
    }

    /// The block's frames; `skip_outgoing` leaves out frames this host sent.
    #[inline]
    pub fn frames(&mut self, skip_outgoing: bool) -> BlockFrames<'_> {
        let block_len = usize::try_from(self.header.blk_len)
            .unwrap_or(0)
            .min(self.map.block_size);
        BlockFrames {
            base: self.base,
            block_len,
            offset: usize::try_from(self.header.offset_to_first_pkt).unwrap_or(usize::MAX),
            remaining: self.header.num_pkts,
            skip_outgoing,
            _block: PhantomData,
        }
    }
}

impl Drop for UserBlock<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: `base` is block `current` of the mapping, which user space owns (status
        // USER, read in `next_block`) and no frame borrows any more (frames borrow `self`).
        unsafe { release_block(self.base) };
        self.map.current = (self.map.current + 1) % self.map.block_count;
    }
}

/// Iterator over a block's frames. Each frame's bytes are a disjoint `&'b mut [u8]` into
/// the ring.
#[derive(Debug)]
pub struct BlockFrames<'b> {
    /// Start of the block, owned by user space while the iterator borrows its guard.
    base: *mut u8,
    /// Bytes of the block in use (`blk_len`, at most the block size).
    block_len: usize,
    /// Offset of the next frame header from `base`.
    offset: usize,
    remaining: u32,
    skip_outgoing: bool,
    _block: PhantomData<&'b mut [u8]>,
}

impl<'b> Iterator for BlockFrames<'b> {
    type Item = Frame<'b>;

    fn next(&mut self) -> Option<Frame<'b>> {
        while self.remaining > 0 {
            self.remaining -= 1;
            if self
                .offset
                .checked_add(FRAME_HEADER_LEN)
                .is_none_or(|end| end > self.block_len)
            {
                self.remaining = 0;
                return None;
            }
            // SAFETY: `offset .. offset + FRAME_HEADER_LEN` lies inside the block (checked
            // above), which we own; frame headers are never handed out as slices.
            let hdr = unsafe { FrameHeader::read(self.base.wrapping_add(self.offset)) };
            let this = self.offset;
            // Where the next frame starts: the bound for this frame's bytes.
            let next = if self.remaining > 0 {
                this.saturating_add(hdr.next_offset)
            } else {
                self.block_len
            };
            let Some((start, end)) = hdr
                .data_range(this)
                .filter(|&(_, end)| end <= next && next <= self.block_len)
            else {
                // Inconsistent header: stop rather than hand out overlapping memory.
                self.remaining = 0;
                return None;
            };
            if self.remaining > 0 && next <= this {
                self.remaining = 0;
            }
            self.offset = next;
            if self.skip_outgoing && hdr.meta.pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            let buf_start = this + FRAME_HEADER_LEN;
            // SAFETY: `buf_start..end` lies inside this frame's slot, after its header and
            // before the next frame's header, so slices handed out by this iterator are
            // disjoint and never overlap a header we read; the block is owned by user space
            // and borrowed mutably for `'b`.
            let buf = unsafe { frame_bytes(self.base.wrapping_add(buf_start), end - buf_start) };
            return Some(Frame::new(buf, start - buf_start, hdr.meta));
        }
        None
    }
}
