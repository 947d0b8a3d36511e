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

use std::mem::offset_of;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::frame::{FrameMeta, Status, Vlan};

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
    pub offset_to_first_pkt: u32,
    pub blk_len: u32,
    pub seq: u64,
}

impl BlockHeader {
    /// The header of the block at `base` if the kernel has handed it to user space.
    ///
    /// # Safety
    /// `base` must be the start of a block of a live, mapped TPACKET_V3 ring (page aligned).
    pub unsafe fn read_if_user(base: *mut u8) -> Option<Self> {
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
pub unsafe fn release_block(base: *mut u8) {
    // SAFETY: per the contract the status word is inside the mapping and 4-aligned; the
    // Release store publishes our writes to the block (rewritten frames) before the kernel
    // reuses it.
    let status = unsafe { AtomicU32::from_ptr(base.wrapping_add(STATUS_OFFSET).cast()) };
    status.store(libc::TP_STATUS_KERNEL, Ordering::Release);
}

/// What we need of a frame header, copied out.
#[derive(Clone, Copy, Debug)]
pub struct FrameHeader {
    pub next_offset: usize,
    mac: usize,
    pub meta: FrameMeta,
}

impl FrameHeader {
    /// Reads the frame header (and its `sockaddr_ll`) at `ptr`.
    ///
    /// # Safety
    /// `ptr .. ptr + FRAME_HEADER_LEN` must lie in a block owned by user space.
    pub unsafe fn read(ptr: *mut u8) -> Self {
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
    pub fn data_range(&self, offset: usize) -> Option<(usize, usize)> {
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
pub unsafe fn frame_bytes<'b>(ptr: *mut u8, len: usize) -> &'b mut [u8] {
    // SAFETY: guaranteed by the caller: valid, exclusively ours for `'b`; `u8` needs no
    // alignment and every byte value is valid.
    unsafe { std::slice::from_raw_parts_mut(ptr, len) }
}
