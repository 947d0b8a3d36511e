//! The TPACKET_V2 ring memory: fixed-size frame slots, each with its own status word.
//!
//! Layout (Documentation/networking/packet_mmap.rst, include/uapi/linux/if_packet.h):
//!
//! ```text
//! block:  frame slot 0 | frame slot 1 | ... (block_size / frame_size slots, no header)
//! slot:   tpacket2_hdr (32 bytes) | sockaddr_ll (20) | free headroom |
//!         frame bytes at tp_mac, tp_snaplen long | unused up to frame_size
//! ```
//!
//! Unlike TPACKET_V3, where the kernel hands over a whole block when it is full or when the
//! retire timer fires, here each frame is handed over on its own, the moment it is written:
//! the kernel sets `TP_STATUS_USER` in the slot's `tp_status` (after a write barrier) and
//! wakes the socket. We store `TP_STATUS_KERNEL` to give the slot back. Status words are read
//! with `Acquire` and stored with `Release`, as in [`super::ring`].
//!
//! The safe interface: [`FrameMap::next_run`] hands out the run of consecutive user-owned
//! slots starting at the next slot in ring order as a [`UserRun`] guard (at most one at a
//! time, it borrows the map mutably), whose [`RunFrames`] iterator yields each frame's bytes
//! as a disjoint `&mut [u8]` (zero copy), and whose drop gives every slot of the run back.

use std::io;
use std::marker::PhantomData;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU32, Ordering};

use super::Mmap;
use crate::frame::{Frame, FrameMeta, Status, Vlan};

/// `TPACKET2_HDRLEN`: slot header plus `sockaddr_ll`; frame buffers start after it.
pub const FRAME_HEADER_LEN: usize = libc::TPACKET2_HDRLEN;

/// `TPACKET_ALIGN(sizeof(struct tpacket2_hdr))`: where the `sockaddr_ll` sits.
const SLL_OFFSET: usize = (size_of::<libc::tpacket2_hdr>() + libc::TPACKET_ALIGNMENT - 1)
    & !(libc::TPACKET_ALIGNMENT - 1);

/// The status word of the slot at `slot`, if user space owns it.
///
/// # Safety
/// `slot` must be the start of a frame slot of a live, mapped TPACKET_V2 ring (16-aligned).
unsafe fn user_status(slot: *mut u8) -> Option<u32> {
    // SAFETY: per the contract `tp_status` (offset 0) is inside the mapping and 4-aligned;
    // the kernel writes it concurrently, which is why it is accessed atomically.
    let status = unsafe { AtomicU32::from_ptr(slot.cast()) };
    let word = status.load(Ordering::Acquire);
    (word & libc::TP_STATUS_USER != 0).then_some(word)
}

/// Hands the slot at `slot` back to the kernel.
///
/// # Safety
/// `slot` must be the start of a frame slot of a live, mapped TPACKET_V2 ring that user
/// space owns and that nothing borrows any more.
unsafe fn release_slot(slot: *mut u8) {
    // SAFETY: per the contract `tp_status` is inside the mapping and 4-aligned; the Release
    // store publishes our writes to the slot (a rewritten frame) before the kernel reuses it.
    let status = unsafe { AtomicU32::from_ptr(slot.cast()) };
    status.store(libc::TP_STATUS_KERNEL, Ordering::Release);
}

/// A slot's header (and `sockaddr_ll`), copied out: where the frame is, and its metadata.
///
/// # Safety
/// `slot .. slot + FRAME_HEADER_LEN` must lie in a slot owned by user space.
unsafe fn read_header(slot: *mut u8) -> (usize, FrameMeta) {
    // SAFETY: per the contract the header is readable; `read_unaligned` needs no alignment.
    let h = unsafe { slot.cast::<libc::tpacket2_hdr>().read_unaligned() };
    // SAFETY: per the contract `SLL_OFFSET + size_of::<sockaddr_ll>()` bytes are readable.
    let sll = unsafe {
        slot.wrapping_add(SLL_OFFSET)
            .cast::<libc::sockaddr_ll>()
            .read_unaligned()
    };
    let status = Status::from_raw(h.tp_status);
    let vlan = status.has(Status::VLAN_VALID).then(|| Vlan {
        tci: h.tp_vlan_tci,
        tpid: if status.has(Status::VLAN_TPID_VALID) {
            h.tp_vlan_tpid
        } else {
            0x8100
        },
    });
    let meta = FrameMeta {
        len: h.tp_snaplen,
        wire_len: h.tp_len,
        status,
        vlan,
        // TPACKET_V2 has no place for the kernel's flow hash.
        rxhash: 0,
        sec: h.tp_sec,
        nsec: h.tp_nsec,
        pkttype: sll.sll_pkttype,
    };
    (usize::from(h.tp_mac), meta)
}

/// A mapped TPACKET_V2 receive ring, handed out in runs of ready slots, in ring order.
#[derive(Debug)]
pub struct FrameMap {
    map: Mmap,
    block_size: usize,
    frame_size: usize,
    frames_per_block: usize,
    frame_count: usize,
    /// The next slot to hand out.
    current: usize,
}

impl FrameMap {
    /// Maps the ring of `fd` (set up with `PACKET_RX_RING` for this geometry). `block_size`
    /// must be a multiple of the page size and `frame_size` a multiple of 16 that fits in a
    /// block, as the kernel requires too.
    pub fn new(
        fd: BorrowedFd<'_>,
        block_size: usize,
        block_count: usize,
        frame_size: usize,
    ) -> io::Result<Self> {
        let page = super::page_size();
        let geometry_ok = block_size > 0
            && block_size.is_multiple_of(page)
            && block_count > 0
            && frame_size >= FRAME_HEADER_LEN
            && frame_size.is_multiple_of(libc::TPACKET_ALIGNMENT)
            && frame_size <= block_size;
        let len = block_size.checked_mul(block_count);
        let Some(len) = len.filter(|_| geometry_ok) else {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        };
        let frames_per_block = block_size / frame_size;
        Ok(Self {
            map: Mmap::new(fd, len)?,
            block_size,
            frame_size,
            frames_per_block,
            frame_count: frames_per_block * block_count,
            current: 0,
        })
    }

    /// Start of slot `i` (`i < frame_count`): slots never span blocks, so a block may end
    /// with unused bytes.
    fn slot(&self, i: usize) -> *mut u8 {
        let offset = (i / self.frames_per_block) * self.block_size
            + (i % self.frames_per_block) * self.frame_size;
        self.map.as_ptr().wrapping_add(offset)
    }

    /// The ready slots from the next one in ring order, at most `max` of them, or `None` if
    /// the kernel has not handed the next one over. No system call; never blocks.
    #[inline]
    pub fn next_run(&mut self, max: usize) -> Option<UserRun<'_>> {
        let max = max.clamp(1, self.frame_count);
        let mut count = 0;
        let mut i = self.current;
        while count < max {
            // SAFETY: `i < frame_count`, so `slot(i)` is the start of a slot inside the
            // mapping (`block_size * block_count` bytes, checked in `new`), 16-aligned since
            // the mapping is page aligned and block and frame sizes are multiples of 16.
            if unsafe { user_status(self.slot(i)) }.is_none() {
                break;
            }
            count += 1;
            i = if i + 1 == self.frame_count { 0 } else { i + 1 };
        }
        (count > 0).then(|| UserRun {
            first: self.current,
            count,
            map: self,
        })
    }
}

/// A run of slots the kernel handed over: ours until this guard drops, which gives them back.
#[derive(Debug)]
pub struct UserRun<'a> {
    first: usize,
    count: usize,
    map: &'a mut FrameMap,
}

impl UserRun<'_> {
    /// Slots in the run.
    pub fn len(&self) -> usize {
        self.count
    }

    /// The run's frames; `skip_outgoing` leaves out frames this host sent.
    #[inline]
    pub fn frames(&mut self, skip_outgoing: bool) -> RunFrames<'_> {
        RunFrames {
            map: &*self.map,
            next: self.first,
            remaining: self.count,
            skip_outgoing,
            _run: PhantomData,
        }
    }
}

impl Drop for UserRun<'_> {
    #[inline]
    fn drop(&mut self) {
        let mut i = self.first;
        for _ in 0..self.count {
            // SAFETY: slot `i` is one of the run's, which user space owns (status USER, read
            // in `next_run`) and no frame borrows any more (frames borrow `self`).
            unsafe { release_slot(self.map.slot(i)) };
            i = if i + 1 == self.map.frame_count {
                0
            } else {
                i + 1
            };
        }
        self.map.current = i;
    }
}

/// Iterator over a run's frames. Each frame's bytes are a disjoint `&'b mut [u8]` into its
/// own slot.
#[derive(Debug)]
pub struct RunFrames<'b> {
    map: &'b FrameMap,
    next: usize,
    remaining: usize,
    skip_outgoing: bool,
    _run: PhantomData<&'b mut [u8]>,
}

impl<'b> Iterator for RunFrames<'b> {
    type Item = Frame<'b>;

    fn next(&mut self) -> Option<Frame<'b>> {
        while self.remaining > 0 {
            self.remaining -= 1;
            let i = self.next;
            self.next = if i + 1 == self.map.frame_count {
                0
            } else {
                i + 1
            };
            let slot = self.map.slot(i);
            // SAFETY: the slot is one of the run's (user-owned while the run's guard is
            // borrowed), and `FRAME_HEADER_LEN <= frame_size` (checked in `new`); headers
            // are never handed out as slices.
            let (mac, meta) = unsafe { read_header(slot) };
            // The frame must lie after the header and inside its slot; an inconsistent
            // header is skipped rather than trusted.
            let end = usize::try_from(meta.len)
                .ok()
                .and_then(|len| mac.checked_add(len));
            let Some(end) = end.filter(|&e| mac >= FRAME_HEADER_LEN && e <= self.map.frame_size)
            else {
                continue;
            };
            if self.skip_outgoing && meta.pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            // SAFETY: `FRAME_HEADER_LEN..end` lies inside this slot, after its header; the
            // iterator visits each slot of the run once, so the slices it hands out are
            // disjoint; the run is owned by user space and borrowed mutably for `'b`.
            let buf = unsafe {
                std::slice::from_raw_parts_mut(
                    slot.wrapping_add(FRAME_HEADER_LEN),
                    end - FRAME_HEADER_LEN,
                )
            };
            return Some(Frame::new(buf, mac - FRAME_HEADER_LEN, meta));
        }
        None
    }
}
