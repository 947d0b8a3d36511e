//! The backend-agnostic packet I/O interface: receive a batch, send a batch.
//!
//! The director's workers are written against these traits only, so that an AF_XDP
//! backend can sit beside AF_PACKET later without touching the code above.
//!
//! ```no_run
//! use lvs_afpacket::{RxBatch, RxQueue, TxBatch, TxQueue};
//! # fn rewrite_in_place(_: &mut [u8]) {}
//!
//! fn run<R: RxQueue, T: TxQueue>(rx: &mut R, tx: &mut T, out_ifindex: u32) -> Result<(), T::Error> {
//!     // (poll rx's fd in the event loop; then drain:)
//!     while let Some(mut batch) = rx.next_batch() {
//!         let mut out = tx.batch();
//!         for frame in batch.frames() {
//!             let data = frame.into_data();
//!             rewrite_in_place(data);
//!             out.push(out_ifindex, data)?; // zero copy: points into the rx batch
//!         }
//!         out.flush()?; // `out` must end before `batch` is released
//!     } // `batch` dropped: its memory goes back to the kernel
//!     Ok(())
//! }
//! ```

use std::os::fd::AsFd;

use crate::frame::Frame;

/// A receive queue: one interface's (share of) traffic for one worker.
///
/// The descriptor ([`AsFd`]) becomes readable when a batch is ready; register it with the
/// worker's event loop. With edge-triggered polling, drain with [`RxQueue::next_batch`]
/// until it returns `None`.
pub trait RxQueue: AsFd {
    /// Error of [`RxQueue::take_error`].
    type Error: std::error::Error;

    /// A batch of received frames, owned by the caller until dropped.
    type Batch<'a>: RxBatch
    where
        Self: 'a;

    /// The next ready batch, or `None` if nothing is ready. Never blocks, no system call.
    fn next_batch(&mut self) -> Option<Self::Batch<'_>>;

    /// Reads and clears an error condition of the queue (its interface went down, say),
    /// returned as an error; the queue keeps working once the condition is gone. The event
    /// loop calls this when it is woken, before draining, so that a condition that the
    /// descriptor keeps reporting is cleared. A backend without such conditions returns
    /// `Ok(())`.
    fn take_error(&self) -> Result<(), Self::Error>;
}

/// A batch of received frames. Dropping it gives the memory back to the kernel.
pub trait RxBatch {
    /// Iterator over the batch's frames.
    type Frames<'b>: Iterator<Item = Frame<'b>>
    where
        Self: 'b;

    /// The frames, each mutable in place and usable until the iterator's borrow ends.
    fn frames(&mut self) -> Self::Frames<'_>;
}

/// What one flush did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flushed {
    /// Frames the kernel accepted.
    pub sent: usize,
    /// Frames dropped (queue full or refused); also counted in the queue's statistics.
    pub dropped: usize,
}

/// A transmit queue. Frames are collected in a [`TxBatch`] and sent together.
pub trait TxQueue {
    /// Error of a flush that cannot continue (a bug or a closed socket, not a full queue).
    type Error: std::error::Error;

    /// A batch under construction. `'a` is both the borrow of the queue and the lifetime of
    /// the frames pushed into it: frames borrowed from a receive batch keep that batch
    /// alive (unreleased) until this batch is dropped.
    type Batch<'a>: TxBatch<'a, Error = Self::Error>
    where
        Self: 'a;

    /// Starts a batch. Dropping the batch flushes what is left in it.
    fn batch(&mut self) -> Self::Batch<'_>;
}

/// A batch of frames to send.
pub trait TxBatch<'a> {
    /// See [`TxQueue::Error`].
    type Error: std::error::Error;

    /// Queues `frame` for the interface `ifindex` without copying it. If the batch is full,
    /// it is flushed first.
    fn push(&mut self, ifindex: u32, frame: &'a [u8]) -> Result<(), Self::Error>;

    /// Queues a frame built in a buffer owned by the queue: `fill` writes it and returns its
    /// length (0 to cancel). For frames that do not fit in place (ICMP errors, encapsulation
    /// without headroom).
    fn push_with<F: FnOnce(&mut [u8]) -> usize>(
        &mut self,
        ifindex: u32,
        fill: F,
    ) -> Result<(), Self::Error>;

    /// Sends everything queued. Congestion is counted, not returned as an error.
    fn flush(&mut self) -> Result<Flushed, Self::Error>;

    /// Frames queued and not yet sent.
    fn len(&self) -> usize;

    /// Whether nothing is queued.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
