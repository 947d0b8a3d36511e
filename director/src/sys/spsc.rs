//! A bounded single-producer/single-consumer ring of `Copy` records, allocated once.
//!
//! Workers hand sync records to the sync thread (and the sync thread hands received ones to
//! the workers) through these: a push or a pop is two atomic loads and one store, never a lock
//! or an allocation, and a full ring refuses the record instead of waiting.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Keeps the producer's and the consumer's index on separate cache lines.
#[repr(align(64))]
struct Padded(AtomicUsize);

struct Shared<T> {
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    mask: usize,
    /// Next slot the producer writes (only the producer stores it).
    head: Padded,
    /// Next slot the consumer reads (only the consumer stores it).
    tail: Padded,
}

// SAFETY: a slot is written only by the one producer while it is outside `tail..head`, and
// read only by the one consumer while it is inside; the release/acquire pairs on `head` and
// `tail` order those accesses. `T: Send` because records cross threads.
unsafe impl<T: Send> Sync for Shared<T> {}

/// The writing end.
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
}

/// The reading end.
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
}

impl<T> std::fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &(self.shared.mask + 1))
            .finish()
    }
}

impl<T> std::fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &(self.shared.mask + 1))
            .finish()
    }
}

/// A ring of at least `capacity` slots (rounded up to a power of two, at least 2).
pub fn ring<T: Copy + Send>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let n = capacity.max(2).next_power_of_two();
    let slots = (0..n)
        .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
        .collect::<Vec<_>>()
        .into_boxed_slice();
    let shared = Arc::new(Shared {
        slots,
        mask: n - 1,
        head: Padded(AtomicUsize::new(0)),
        tail: Padded(AtomicUsize::new(0)),
    });
    (
        Producer {
            shared: Arc::clone(&shared),
        },
        Consumer { shared },
    )
}

impl<T: Copy + Send> Producer<T> {
    /// Appends `value`; false (and nothing written) when the ring is full.
    #[inline]
    pub fn push(&mut self, value: T) -> bool {
        let s = &*self.shared;
        let head = s.head.0.load(Ordering::Relaxed);
        let tail = s.tail.0.load(Ordering::Acquire);
        if head.wrapping_sub(tail) > s.mask {
            return false;
        }
        let slot = &s.slots[head & s.mask];
        // SAFETY: `head` is outside `tail..head`, so the consumer does not read this slot until
        // the release store below publishes it, and this is the only producer.
        unsafe { (*slot.get()).write(value) };
        s.head.0.store(head.wrapping_add(1), Ordering::Release);
        true
    }
}

impl<T: Copy + Send> Consumer<T> {
    /// The oldest record, if any.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        let s = &*self.shared;
        let tail = s.tail.0.load(Ordering::Relaxed);
        let head = s.head.0.load(Ordering::Acquire);
        if tail == head {
            return None;
        }
        let slot = &s.slots[tail & s.mask];
        // SAFETY: `tail` is inside `tail..head`: the producer finished writing it before its
        // release store of `head` (acquired above) and will not touch it until `tail` moves
        // past it, so reading the slot races with nothing.
        let raw: MaybeUninit<T> = unsafe { slot.get().read() };
        // SAFETY: the same: the slot was initialised by `push` before it was published.
        let value = unsafe { raw.assume_init() };
        s.tail.0.store(tail.wrapping_add(1), Ordering::Release);
        Some(value)
    }

    /// Records waiting.
    pub fn len(&self) -> usize {
        let s = &*self.shared;
        s.head
            .0
            .load(Ordering::Acquire)
            .wrapping_sub(s.tail.0.load(Ordering::Relaxed))
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_ring_refuses_and_order_is_kept() {
        let (mut p, mut c) = ring::<u32>(4);
        for i in 0..4 {
            assert!(p.push(i));
        }
        assert!(!p.push(99), "full");
        assert_eq!(c.len(), 4);
        assert_eq!(c.pop(), Some(0));
        assert!(p.push(4));
        let rest: Vec<u32> = std::iter::from_fn(|| c.pop()).collect();
        assert_eq!(rest, vec![1, 2, 3, 4]);
        assert!(c.is_empty());
    }

    #[test]
    fn across_threads_nothing_is_lost_or_reordered() {
        let (mut p, mut c) = ring::<u64>(64);
        const N: u64 = 200_000;
        let t = std::thread::spawn(move || {
            let mut i = 0;
            while i < N {
                if p.push(i) {
                    i += 1;
                } else {
                    std::thread::yield_now();
                }
            }
        });
        let mut want = 0;
        while want < N {
            match c.pop() {
                Some(v) => {
                    assert_eq!(v, want);
                    want += 1;
                }
                None => std::thread::yield_now(),
            }
        }
        t.join().unwrap();
    }
}
