//! Decoding random bytes never allocates more than the frame limit at once.
//!
//! A counting global allocator records the largest single allocation made by this thread
//! while the "measuring" flag is set. Its own binary, so the allocator watches nothing else.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use lvs_proto::codec;
use lvs_proto::frame::{FrameDecoder, FrameLimit};
use lvs_proto::message::{ClientFrame, ServerFrame};
use proptest::prelude::*;

thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

struct Counting;

fn record(size: usize) {
    // try_with: during thread teardown the thread-locals may be gone; then just don't count.
    let _ = MEASURING.try_with(|m| {
        if m.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    });
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
// `System`'s guarantees are ours; the bookkeeping touches only const-initialised
// thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` via `alloc`/`realloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        // SAFETY: forwarded as is; `ptr`/`layout` came from this allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The largest single allocation made by `f` on this thread.
fn largest_allocation(f: impl FnOnce()) -> usize {
    LARGEST.with(|l| l.set(0));
    MEASURING.with(|m| m.set(true));
    f();
    MEASURING.with(|m| m.set(false));
    LARGEST.with(Cell::get)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn decoding_random_bytes_stays_within_the_limit(
        bytes in prop::collection::vec(any::<u8>(), 0..1024),
        // Bias towards bodies that claim huge strings and vectors.
        prefix in prop::collection::vec(prop_oneof![Just(0u8), Just(3), Just(251), Just(252), Just(253), Just(255)], 0..6),
    ) {
        let limit = FrameLimit::MIN;
        let mut body = prefix;
        body.extend(bytes);
        let largest = largest_allocation(|| {
            let _ = codec::decode_body::<ClientFrame>(&body, limit);
            let _ = codec::decode_body::<ServerFrame>(&body, limit);
        });
        prop_assert!(largest <= limit.bytes(), "allocated {largest} bytes");

        // The frame decoder: whatever the header claims, at most the limit is reserved.
        let largest = largest_allocation(|| {
            let mut dec = FrameDecoder::new(limit);
            for frame in dec.feed(&body) {
                if frame.is_err() {
                    break;
                }
            }
        });
        prop_assert!(largest <= limit.bytes(), "frame decoder allocated {largest} bytes");
    }
}

#[test]
fn huge_claims_allocate_nothing_big() {
    // ServerFrame::Event(ServerUp) with a string claiming 2^40 bytes; and a frame header of
    // 4 GiB.
    let mut body = vec![3u8, 0, 253];
    body.extend_from_slice(&(1u64 << 40).to_le_bytes());
    let largest = largest_allocation(|| {
        assert!(codec::decode_body::<ServerFrame>(&body, FrameLimit::DEFAULT).is_err());
        let mut dec = FrameDecoder::new(FrameLimit::DEFAULT);
        assert!(dec.feed(&[0xff; 8]).next().unwrap().is_err());
    });
    assert!(largest < 4096, "allocated {largest} bytes");
}

#[test]
fn the_counter_counts() {
    let largest = largest_allocation(|| drop(std::hint::black_box(Vec::<u8>::with_capacity(5000))));
    assert!(largest >= 5000, "measured {largest}");
}
