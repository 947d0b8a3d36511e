//! A packet I/O backend in memory, for tests: frames are `Vec<u8>`s instead of ring slots.
//!
//! It implements `lvs_afpacket`'s [`RxQueue`]/[`TxQueue`] and nothing else, so a worker that
//! runs on it shows that the worker asks no more of a backend than those traits: a second
//! real backend (AF_XDP) is a new implementation of them, not a change to the worker.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use lvs_afpacket::{Flushed, Frame, FrameMeta, RxBatch, RxQueue, Status, TxBatch, TxQueue};

/// Bytes of the queue's own buffer for `push_with` (as AF_PACKET's default copy buffer).
const COPY_BUFFER: usize = 2048;

/// What the test and the queues share: batches waiting, batches released, frames sent.
#[derive(Debug, Default)]
struct Wire {
    waiting: Mutex<VecDeque<Vec<Vec<u8>>>>,
    released: AtomicUsize,
    sent: Mutex<Vec<(u32, Vec<u8>)>>,
}

/// The test's end: delivers batches to the receive queue, reads what was sent.
#[derive(Debug)]
pub struct MemoryWire {
    wire: Arc<Wire>,
    doorbell: UnixDatagram,
}

impl MemoryWire {
    /// Queues one batch of frames and makes the receive queue's descriptor readable.
    pub fn deliver(&self, frames: Vec<Vec<u8>>) {
        lock(&self.wire.waiting).push_back(frames);
        // A full doorbell is already readable: the worker will drain the batch anyway.
        let _ = self.doorbell.send(&[1]);
    }

    /// Batches the worker has taken and given back.
    pub fn released(&self) -> usize {
        self.wire.released.load(Ordering::Acquire)
    }

    /// Frames the worker has sent, with their out interface, in order.
    pub fn sent(&self) -> Vec<(u32, Vec<u8>)> {
        lock(&self.wire.sent).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A receive queue, a transmit queue and the test's end of both.
pub fn memory_queues() -> (MemoryRx, MemoryTx, MemoryWire) {
    let wire = Arc::new(Wire::default());
    let (bell_rx, bell_tx) = UnixDatagram::pair().expect("socketpair");
    bell_rx.set_nonblocking(true).expect("nonblocking doorbell");
    bell_tx.set_nonblocking(true).expect("nonblocking doorbell");
    (
        MemoryRx {
            wire: Arc::clone(&wire),
            doorbell: bell_rx,
        },
        MemoryTx {
            wire: Arc::clone(&wire),
            copy: vec![0; COPY_BUFFER],
        },
        MemoryWire {
            wire,
            doorbell: bell_tx,
        },
    )
}

/// The receive side; its descriptor is readable while batches wait.
#[derive(Debug)]
pub struct MemoryRx {
    wire: Arc<Wire>,
    doorbell: UnixDatagram,
}

impl AsFd for MemoryRx {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.doorbell.as_fd()
    }
}

impl RxQueue for MemoryRx {
    type Error = Infallible;
    type Batch<'a> = MemoryBatch<'a>;

    fn next_batch(&mut self) -> Option<MemoryBatch<'_>> {
        let Some(frames) = lock(&self.wire.waiting).pop_front() else {
            // Drained: quiet the descriptor until the next delivery rings again.
            let mut byte = [0u8; 1];
            while self.doorbell.recv(&mut byte).is_ok() {}
            return None;
        };
        Some(MemoryBatch {
            frames,
            wire: &self.wire,
        })
    }

    fn take_error(&self) -> Result<(), Infallible> {
        Ok(())
    }
}

/// A received batch; dropping it counts as its release.
#[derive(Debug)]
pub struct MemoryBatch<'a> {
    frames: Vec<Vec<u8>>,
    wire: &'a Wire,
}

impl Drop for MemoryBatch<'_> {
    fn drop(&mut self) {
        self.wire.released.fetch_add(1, Ordering::Release);
    }
}

/// What AF_PACKET reports for a whole frame addressed to this host.
fn meta(len: usize) -> FrameMeta {
    let len = u32::try_from(len).expect("test frames are small");
    FrameMeta {
        len,
        wire_len: len,
        status: Status::default(),
        vlan: None,
        rxhash: 0,
        sec: 0,
        nsec: 0,
        pkttype: 0, // PACKET_HOST
    }
}

#[expect(
    clippy::ptr_arg,
    reason = "mapped over `slice::IterMut<Vec<u8>>`, named in a type"
)]
fn frame(buf: &mut Vec<u8>) -> Frame<'_> {
    let m = meta(buf.len());
    Frame::new(buf, 0, m)
}

impl RxBatch for MemoryBatch<'_> {
    type Frames<'b>
        = std::iter::Map<std::slice::IterMut<'b, Vec<u8>>, fn(&'b mut Vec<u8>) -> Frame<'b>>
    where
        Self: 'b;

    fn frames(&mut self) -> Self::Frames<'_> {
        self.frames.iter_mut().map(frame)
    }
}

/// The transmit side.
#[derive(Debug)]
pub struct MemoryTx {
    wire: Arc<Wire>,
    copy: Vec<u8>,
}

impl TxQueue for MemoryTx {
    type Error = Infallible;
    type Batch<'a> = MemoryTxBatch<'a>;

    fn batch(&mut self) -> MemoryTxBatch<'_> {
        MemoryTxBatch {
            tx: self,
            queued: Vec::new(),
        }
    }
}

/// A batch being filled; it is "sent" (appended to what the test reads) on flush or drop.
#[derive(Debug)]
pub struct MemoryTxBatch<'a> {
    tx: &'a mut MemoryTx,
    queued: Vec<(u32, Vec<u8>)>,
}

impl<'a> TxBatch<'a> for MemoryTxBatch<'a> {
    type Error = Infallible;

    fn push(&mut self, ifindex: u32, frame: &'a [u8]) -> Result<(), Infallible> {
        self.queued.push((ifindex, frame.to_vec()));
        Ok(())
    }

    fn push_with<F: FnOnce(&mut [u8]) -> usize>(
        &mut self,
        ifindex: u32,
        fill: F,
    ) -> Result<(), Infallible> {
        let len = fill(&mut self.tx.copy).min(COPY_BUFFER);
        if len > 0 {
            self.queued.push((ifindex, self.tx.copy[..len].to_vec()));
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<Flushed, Infallible> {
        let sent = self.queued.len();
        lock(&self.tx.wire.sent).append(&mut self.queued);
        Ok(Flushed { sent, dropped: 0 })
    }

    fn len(&self) -> usize {
        self.queued.len()
    }
}

impl Drop for MemoryTxBatch<'_> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[test]
fn a_delivered_batch_comes_out_whole_and_is_released_when_dropped() {
    let (mut rx, mut tx, wire) = memory_queues();
    assert!(rx.next_batch().is_none());
    wire.deliver(vec![vec![1; 14], vec![2; 20]]);
    {
        let mut batch = rx.next_batch().expect("a batch");
        let mut out = tx.batch();
        for f in batch.frames() {
            assert_eq!(f.meta.len, f.meta.wire_len);
            out.push(7, f.into_data()).expect("push");
        }
        assert_eq!(out.len(), 2);
        assert_eq!(wire.released(), 0, "released only when dropped");
    }
    assert_eq!(wire.released(), 1);
    assert_eq!(wire.sent(), vec![(7, vec![1; 14]), (7, vec![2; 20])]);
}
