//! Counters the workers write and the control thread reads: per service, per real server, and
//! drops by reason. Each worker owns its own arrays (one writer, so a relaxed load and store
//! is enough and no cache line is shared between workers); readers add the workers up.
//! Zeroing (`lvsadm -Z`) never writes a worker's counters: the control thread keeps a
//! baseline and reports the difference, as a snapshot-and-subtract.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use lvs_packet::DropReason;
use lvs_proto::{Rates, Stats};

/// Service ids are `0..MAX_SERVICES`.
pub const MAX_SERVICES: usize = 1024;
/// Real-server ids are `0..MAX_DESTS`.
pub const MAX_DESTS: usize = 8192;

/// Why the director itself dropped a packet (beyond what the parser reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Loss {
    /// A TCP segment other than SYN for a service, with no connection.
    NoConnection = 0,
    /// The scheduler found no usable real server.
    NoDestination,
    /// The connection table is full.
    TableFull,
    /// The next hop's MAC is not known yet (resolution was triggered).
    NoNeighbour,
    /// No route to the real server or the client.
    NoRoute,
    /// The transmit queue refused it.
    TxFailed,
    /// A VS/TUN packet too big for the tunnel (the client got "fragmentation needed").
    TooBig,
    /// A rewrite failed (a bug: counted, never a panic).
    Internal,
    /// An ICMP error of our own (fragmentation needed) not sent: over the worker's rate
    /// (`dataplane::icmp_limit`).
    IcmpRateLimited,
}

impl Loss {
    pub const ALL: [Loss; 9] = [
        Loss::NoConnection,
        Loss::NoDestination,
        Loss::TableFull,
        Loss::NoNeighbour,
        Loss::NoRoute,
        Loss::TxFailed,
        Loss::TooBig,
        Loss::Internal,
        Loss::IcmpRateLimited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Loss::NoConnection => "no_connection",
            Loss::NoDestination => "no_destination",
            Loss::TableFull => "table_full",
            Loss::NoNeighbour => "no_neighbour",
            Loss::NoRoute => "no_route",
            Loss::TxFailed => "tx_failed",
            Loss::TooBig => "too_big",
            Loss::Internal => "internal",
            Loss::IcmpRateLimited => "icmp_ratelimited",
        }
    }
}

/// conns, in_pkts, out_pkts, in_bytes, out_bytes.
#[derive(Debug, Default)]
pub struct Counters([AtomicU64; 5]);

const CONNS: usize = 0;
const IN_PKTS: usize = 1;
const OUT_PKTS: usize = 2;
const IN_BYTES: usize = 3;
const OUT_BYTES: usize = 4;

#[inline]
fn bump(c: &AtomicU64, by: u64) {
    // One writer per counter: no read-modify-write instruction needed.
    c.store(
        c.load(Ordering::Relaxed).wrapping_add(by),
        Ordering::Relaxed,
    );
}

impl Counters {
    #[inline]
    pub fn conn(&self) {
        bump(&self.0[CONNS], 1);
    }

    #[inline]
    pub fn inbound(&self, bytes: usize) {
        bump(&self.0[IN_PKTS], 1);
        bump(&self.0[IN_BYTES], bytes as u64);
    }

    #[inline]
    pub fn outbound(&self, bytes: usize) {
        bump(&self.0[OUT_PKTS], 1);
        bump(&self.0[OUT_BYTES], bytes as u64);
    }

    pub fn read(&self) -> Stats {
        let v = |i: usize| self.0[i].load(Ordering::Relaxed);
        Stats {
            conns: v(CONNS),
            in_pkts: v(IN_PKTS),
            out_pkts: v(OUT_PKTS),
            in_bytes: v(IN_BYTES),
            out_bytes: v(OUT_BYTES),
        }
    }
}

/// One worker's connection counts for one real server, published after every batch for the
/// schedulers (lc, wlc ... need the whole director's figures) and for listings.
#[derive(Debug, Default)]
pub struct ConnCounts {
    pub active: AtomicU32,
    pub inactive: AtomicU32,
    pub persist: AtomicU32,
}

/// Everything one worker counts.
#[derive(Debug)]
pub struct WorkerStats {
    pub services: Vec<Counters>,
    pub dests: Vec<Counters>,
    pub conns: Vec<ConnCounts>,
    pub parse_drops: Vec<AtomicU64>,
    pub drops: Vec<AtomicU64>,
    /// Entries in this worker's connection table.
    pub table_len: AtomicU64,
    /// Connections created from a mid-flow TCP segment (active-active mode's sloppy TCP).
    pub midflow: AtomicU64,
}

impl Default for WorkerStats {
    fn default() -> Self {
        Self {
            services: (0..MAX_SERVICES).map(|_| Counters::default()).collect(),
            dests: (0..MAX_DESTS).map(|_| Counters::default()).collect(),
            conns: (0..MAX_DESTS).map(|_| ConnCounts::default()).collect(),
            parse_drops: (0..DropReason::COUNT).map(|_| AtomicU64::new(0)).collect(),
            drops: (0..Loss::ALL.len()).map(|_| AtomicU64::new(0)).collect(),
            table_len: AtomicU64::new(0),
            midflow: AtomicU64::new(0),
        }
    }
}

impl WorkerStats {
    #[inline]
    pub fn parse_drop(&self, r: DropReason) {
        if let Some(c) = self.parse_drops.get(r.index()) {
            bump(c, 1);
        }
    }

    #[inline]
    pub fn lose(&self, d: Loss) {
        bump(&self.drops[d as usize], 1);
    }

    /// One more connection created from a mid-flow segment.
    #[inline]
    pub fn midflow_created(&self) {
        bump(&self.midflow, 1);
    }
}

/// Sum of `Stats` over workers.
pub fn sum_stats<'a>(each: impl Iterator<Item = &'a Counters>) -> Stats {
    each.map(Counters::read)
        .fold(Stats::default(), |a, b| add(&a, &b))
}

pub fn add(a: &Stats, b: &Stats) -> Stats {
    Stats {
        conns: a.conns.wrapping_add(b.conns),
        in_pkts: a.in_pkts.wrapping_add(b.in_pkts),
        out_pkts: a.out_pkts.wrapping_add(b.out_pkts),
        in_bytes: a.in_bytes.wrapping_add(b.in_bytes),
        out_bytes: a.out_bytes.wrapping_add(b.out_bytes),
    }
}

pub fn sub(a: &Stats, b: &Stats) -> Stats {
    Stats {
        conns: a.conns.wrapping_sub(b.conns),
        in_pkts: a.in_pkts.wrapping_sub(b.in_pkts),
        out_pkts: a.out_pkts.wrapping_sub(b.out_pkts),
        in_bytes: a.in_bytes.wrapping_sub(b.in_bytes),
        out_bytes: a.out_bytes.wrapping_sub(b.out_bytes),
    }
}

/// A rate estimator in IPVS's spirit: sampled every couple of seconds, smoothed so that one
/// burst does not make the figure jump.
#[derive(Debug, Clone, Copy, Default)]
pub struct RateEstimator {
    last: Stats,
    /// Smoothed rates, scaled by 1024 to keep precision in integers.
    scaled: [u64; 5],
    primed: bool,
}

impl RateEstimator {
    /// Take a sample `elapsed_ms` after the previous one.
    pub fn sample(&mut self, now: &Stats, elapsed_ms: u64) {
        if !self.primed {
            self.last = *now;
            self.primed = true;
            return;
        }
        let d = sub(now, &self.last);
        self.last = *now;
        let ms = elapsed_ms.max(1);
        let fresh = [d.conns, d.in_pkts, d.out_pkts, d.in_bytes, d.out_bytes]
            .map(|x| x.saturating_mul(1024 * 1000) / ms);
        for (s, f) in self.scaled.iter_mut().zip(fresh) {
            // Weight 1/4 for the new sample, as IPVS's estimator does for 2 s samples.
            *s = (*s * 3 + f) / 4;
        }
    }

    pub fn rates(&self) -> Rates {
        let r = |i: usize| (self.scaled[i] + 512) / 1024;
        Rates {
            cps: r(0),
            in_pps: r(1),
            out_pps: r(2),
            in_bps: r(3),
            out_bps: r(4),
        }
    }
}
