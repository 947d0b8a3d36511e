//! The message arrays of a batched transmit: one `mmsghdr`, `iovec` and `sockaddr_ll` per
//! slot, and one owned buffer per slot, allocated once and handed to `sendmmsg(2)` whole.
//!
//! The iovecs hold raw pointers to the frames queued, which the kernel reads during the
//! call. What makes that sound is a lifetime: [`MsgSlots::batch`] returns a
//! [`MsgBatch<'a>`] that borrows the arrays mutably for `'a`, and [`MsgBatch::push`] takes
//! frames as `&'a [u8]`, so every frame queued outlives the batch that may send it (a frame
//! from a receive block keeps the block borrowed, so the block cannot go back to the kernel
//! meanwhile). A batch starts empty, so slots of an earlier batch (one leaked with
//! `mem::forget`, say) are never sent; a slot is filled whole before it is counted.

use std::io;
use std::marker::PhantomData;
use std::os::fd::BorrowedFd;

/// The arrays, sized for one batch.
#[derive(Debug)]
pub struct MsgSlots {
    // `Vec`s allocated once and never resized: the pointers in `msgs` to `addrs`/`iovs`
    // stay valid when the arrays move.
    msgs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    addrs: Vec<libc::sockaddr_ll>,
    _buffers: Vec<u8>,
    /// `buffers.as_mut_ptr()`, taken once: slot buffers are carved from it so that a new
    /// slot's `&mut [u8]` never reborrows (and invalidates) the pointers of earlier slots.
    buffers_base: *mut u8,
    buffer_size: usize,
}

// SAFETY: the raw pointers in `msgs` point into this value's own heap arrays, or (only while
// a `MsgBatch` borrows the arrays) into frames that batch borrows; none is tied to a thread.
// It is not `Sync`: one worker uses a socket at a time.
unsafe impl Send for MsgSlots {}

impl MsgSlots {
    /// Arrays for `n` frames per batch and `buffer_size` bytes per owned buffer.
    pub fn new(n: usize, buffer_size: usize) -> Self {
        let mut buffers = vec![0; n * buffer_size];
        let buffers_base = buffers.as_mut_ptr();
        // SAFETY: `mmsghdr` is a C struct of integers and pointers, for which all-zero is a
        // valid (null, empty) value.
        let empty: libc::mmsghdr = unsafe { std::mem::zeroed() };
        let mut slots = Self {
            msgs: vec![empty; n],
            iovs: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                n
            ],
            addrs: vec![super::sockaddr_ll(0, 0); n],
            _buffers: buffers,
            buffers_base,
            buffer_size,
        };
        let addr_len = libc::socklen_t::try_from(size_of::<libc::sockaddr_ll>()).unwrap_or(0);
        for msg in &mut slots.msgs {
            msg.msg_hdr.msg_namelen = addr_len;
            msg.msg_hdr.msg_iovlen = 1;
        }
        slots
    }

    /// Frames per batch.
    pub fn capacity(&self) -> usize {
        self.msgs.len()
    }

    /// Starts an empty batch whose frames must outlive `'a`.
    #[inline]
    pub fn batch(&mut self) -> MsgBatch<'_> {
        MsgBatch {
            slots: self,
            len: 0,
            _frames: PhantomData,
        }
    }
}

/// A batch being filled: borrows the arrays, and every frame pushed, for `'a`.
#[derive(Debug)]
pub struct MsgBatch<'a> {
    slots: &'a mut MsgSlots,
    /// Slots `0..len` are filled.
    len: usize,
    _frames: PhantomData<&'a [u8]>,
}

impl<'a> MsgBatch<'a> {
    /// Slots filled.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether every slot is filled (send, then [`MsgBatch::clear`], before pushing more).
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == self.slots.msgs.len()
    }

    /// Bytes per owned buffer.
    #[inline]
    pub fn buffer_size(&self) -> usize {
        self.slots.buffer_size
    }

    /// Fills the next slot with `frame` for `ifindex`, zero copy.
    ///
    /// # Panics
    /// If the batch is full.
    #[inline]
    pub fn push(&mut self, ifindex: libc::c_int, protocol_be: u16, frame: &'a [u8]) {
        self.fill(ifindex, protocol_be, frame.as_ptr(), frame.len());
    }

    /// The next slot's owned buffer, for a frame that does not fit in place; queue what was
    /// written with [`MsgBatch::push_buffer`].
    ///
    /// # Panics
    /// If the batch is full.
    #[inline]
    pub fn buffer(&mut self) -> &mut [u8] {
        assert!(!self.is_full(), "owned buffer of a full batch");
        let size = self.slots.buffer_size;
        let slot = self.slots.buffers_base.wrapping_add(self.len * size);
        // SAFETY: slot `len < capacity` of the buffers (`size` bytes at `len * size`, inside
        // the vector, which is never resized); no other reference to these bytes exists:
        // earlier slots' pointers cover other bytes, and the returned slice borrows `self`,
        // so it is gone before the slot can be queued or sent.
        unsafe { std::slice::from_raw_parts_mut(slot, size) }
    }

    /// Queues the first `len` bytes of the next slot's owned buffer for `ifindex`.
    ///
    /// # Panics
    /// If the batch is full.
    #[inline]
    pub fn push_buffer(&mut self, ifindex: libc::c_int, protocol_be: u16, len: usize) {
        let size = self.slots.buffer_size;
        let slot = self.slots.buffers_base.wrapping_add(self.len * size);
        self.fill(ifindex, protocol_be, slot, len.min(size));
    }

    /// Fills slot `len` with `frame_len` bytes at `ptr`, then counts it.
    #[inline]
    fn fill(&mut self, ifindex: libc::c_int, protocol_be: u16, ptr: *const u8, frame_len: usize) {
        let i = self.len;
        let s = &mut *self.slots;
        s.iovs[i] = libc::iovec {
            iov_base: ptr.cast_mut().cast(),
            iov_len: frame_len,
        };
        s.addrs[i].sll_ifindex = ifindex;
        s.addrs[i].sll_protocol = protocol_be;
        // Pointers into our own arrays, derived afresh after the writes above.
        let hdr = &mut s.msgs[i].msg_hdr;
        hdr.msg_name = s.addrs.as_mut_ptr().wrapping_add(i).cast();
        hdr.msg_iov = s.iovs.as_mut_ptr().wrapping_add(i);
        self.len += 1;
    }

    /// `sendmmsg(2)` of slots `from..len` with `MSG_DONTWAIT`: how many the kernel took.
    ///
    /// # Panics
    /// If `from > len`.
    pub fn send(&mut self, fd: BorrowedFd<'_>, from: usize) -> io::Result<usize> {
        // SAFETY: slots `from..len` were filled in this batch by `push` (frames that outlive
        // `'a`, which outlives `self`) or `push_buffer` (our own buffers): their names point
        // into `addrs` and their iovecs to readable bytes, all valid for the call.
        unsafe { super::sendmmsg(fd, &mut self.slots.msgs[from..self.len]) }
    }

    /// Empties the batch (after sending it).
    #[inline]
    pub fn clear(&mut self) {
        self.len = 0;
    }
}
