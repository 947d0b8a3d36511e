//! `schedule` runs once per new connection on the director's hot path and must not allocate.
//! A counting global allocator checks that for every scheduler, including the fallback scans
//! of the hashing ones.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use lvs_sched_abi::{AF_INET, DEST_F_OVERLOADED, Dest, Flow, Options, Scheduler, Service};
use lvs_sched_algos::{Dh, Fo, Lc, Mh, Nq, Ovf, Rr, Sed, Sh, Twos, Wlc, Wrr};

/// Counts allocations made by the current thread, so tests running in parallel do not see
/// each other's.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: the slot may be gone while the thread is being torn down.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds `GlobalAlloc`'s
// contract; counting touches only a const-initialised thread-local that never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: the caller's guarantees for `layout` are passed on as they are.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: `ptr` was allocated by `System` via this allocator with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` via this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

fn dests() -> Vec<Dest> {
    (1..=16u32)
        .map(|id| {
            let b = id.to_be_bytes();
            let mut addr = [0; 16];
            addr[..4].copy_from_slice(&[10, 0, b[2], b[3]]);
            Dest {
                addr,
                port: 80,
                family: AF_INET,
                // Some unusable, to exercise skipping and fallback.
                flags: if id % 3 == 0 { DEST_F_OVERLOADED } else { 0 },
                weight: id % 5,
                active_conns: id * 7 % 11,
                inactive_conns: id * 13 % 17,
                id,
                ..Dest::default()
            }
        })
        .collect()
}

fn flow(n: u32) -> Flow {
    let mut src_addr = [0; 16];
    src_addr[..4].copy_from_slice(&n.wrapping_mul(0x9e37_79b1).to_be_bytes());
    Flow {
        src_addr,
        dst_addr: src_addr,
        src_port: 1024,
        dst_port: 80,
        family: AF_INET,
        protocol: 6,
        reserved: [0; 2],
    }
}

fn assert_schedule_does_not_allocate<T: Scheduler>(options: &str) {
    let service = Service {
        addr: [0; 16],
        port: 80,
        family: AF_INET,
        protocol: 6,
        flags: 0,
        options: std::ptr::null(),
        reserved: [0; 4],
    };
    let d = dests();
    let mut s = T::create(&service, &Options::parse(options).unwrap()).unwrap();
    for i in 0..d.len() {
        s.add_dest(&d[..=i], i);
    }
    let flows: Vec<Flow> = (0..2000).map(flow).collect();
    let before = allocations();
    let mut picked = 0;
    for f in &flows {
        picked += usize::from(s.schedule(f, &d).is_some());
    }
    let after = allocations();
    assert_eq!(after - before, 0, "{options}: schedule allocated");
    assert!(picked > 0, "{options}: never picked");
}

#[test]
fn schedule_never_allocates() {
    assert_schedule_does_not_allocate::<Rr>("");
    assert_schedule_does_not_allocate::<Wrr>("");
    assert_schedule_does_not_allocate::<Lc>("");
    assert_schedule_does_not_allocate::<Wlc>("");
    assert_schedule_does_not_allocate::<Sed>("");
    assert_schedule_does_not_allocate::<Nq>("");
    assert_schedule_does_not_allocate::<Fo>("");
    assert_schedule_does_not_allocate::<Ovf>("");
    assert_schedule_does_not_allocate::<Twos>("");
    assert_schedule_does_not_allocate::<Sh>("port");
    assert_schedule_does_not_allocate::<Sh>("fallback");
    assert_schedule_does_not_allocate::<Dh>("fallback,port");
    assert_schedule_does_not_allocate::<Mh>("");
    assert_schedule_does_not_allocate::<Mh>("fallback,port,table_size=251");
}

#[test]
fn the_counter_counts() {
    let before = allocations();
    let v = std::hint::black_box(vec![1u8; 10]);
    assert!(allocations() > before);
    drop(v);
}
