//! Test fixtures: destinations, flows, and driving a scheduler as the director would.

use lvs_sched_abi::{AF_INET, DEST_F_OVERLOADED, Dest, Flow, Options, Scheduler, Service};

/// Destination `id` at 10.0.x.y:80, IPv4.
pub(crate) fn dest(id: u32, weight: u32) -> Dest {
    let b = id.to_be_bytes();
    let mut addr = [0; 16];
    addr[..4].copy_from_slice(&[10, b[1], b[2], b[3]]);
    Dest {
        addr,
        port: 80,
        family: AF_INET,
        weight,
        id,
        ..Dest::default()
    }
}

/// Destinations with ids 1, 2, ... and these weights.
pub(crate) fn dests(weights: &[u32]) -> Vec<Dest> {
    (1..).zip(weights).map(|(id, &w)| dest(id, w)).collect()
}

pub(crate) fn with_conns(mut d: Dest, active: u32, inactive: u32) -> Dest {
    d.active_conns = active;
    d.inactive_conns = inactive;
    d
}

pub(crate) fn overloaded(mut d: Dest) -> Dest {
    d.flags |= DEST_F_OVERLOADED;
    d
}

pub(crate) fn service() -> Service {
    Service {
        addr: [0; 16],
        port: 80,
        family: AF_INET,
        protocol: 6,
        flags: 0,
        options: std::ptr::null(),
        reserved: [0; 4],
    }
}

pub(crate) fn create<T: Scheduler>(options: &str) -> Result<T, String> {
    T::create(
        &service(),
        &Options::parse(options).map_err(|e| e.to_string())?,
    )
}

/// Create a scheduler and add `dests` one by one, as the director does.
pub(crate) fn build<T: Scheduler>(options: &str, dests: &[Dest]) -> T {
    let mut s = create::<T>(options).expect("valid options");
    for i in 0..dests.len() {
        s.add_dest(&dests[..=i], i);
    }
    s
}

/// Remove `dests[index]` as the director does: tell the scheduler, then drop it.
pub(crate) fn remove<T: Scheduler>(s: &mut T, dests: &mut Vec<Dest>, index: usize) {
    s.del_dest(dests, index);
    dests.remove(index);
}

/// The `n`th of a stream of distinct, well spread IPv4 client flows.
pub(crate) fn flow(n: u32) -> Flow {
    let x = n.wrapping_mul(0x9e37_79b1).rotate_left(7) ^ 0x5bd1_e995;
    let mut src_addr = [0; 16];
    src_addr[..4].copy_from_slice(&x.to_be_bytes());
    let mut dst_addr = [0; 16];
    dst_addr[..4].copy_from_slice(&[192, 0, 2, 1]);
    Flow {
        src_addr,
        dst_addr,
        src_port: 1024 + u16::try_from(n % 60_000).unwrap(),
        dst_port: 80,
        family: AF_INET,
        protocol: 6,
        reserved: [0; 2],
    }
}

/// Pick `count` times with distinct flows; the indices chosen.
pub(crate) fn picks<T: Scheduler>(s: &mut T, dests: &[Dest], count: u32) -> Vec<Option<usize>> {
    (0..count).map(|n| s.schedule(&flow(n), dests)).collect()
}
