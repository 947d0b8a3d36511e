//! The figures `lvsadm -L` shows, read from the workers' counters: summed over workers, minus
//! the baseline of the last `lvsadm -Z`, with rates sampled every two seconds.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use lvs_proto::{Rates, Stats};

use super::registry::Slot;
use super::stats::{self, Loss, RateEstimator, WorkerStats};

/// One worker's counters per service and real server, and what the control thread keeps
/// beside them, by id.
#[derive(Debug)]
pub struct Meter {
    stats: Arc<[Arc<WorkerStats>]>,
    /// Counters at the last `lvsadm -Z`, by service id and by real-server id.
    svc_base: HashMap<u32, Stats>,
    dest_base: HashMap<u32, Stats>,
    svc_rates: HashMap<u32, RateEstimator>,
    dest_rates: HashMap<u32, RateEstimator>,
    last_sample: Instant,
}

impl Meter {
    pub fn new(stats: Arc<[Arc<WorkerStats>]>) -> Self {
        Self {
            stats,
            svc_base: HashMap::new(),
            dest_base: HashMap::new(),
            svc_rates: HashMap::new(),
            dest_rates: HashMap::new(),
            last_sample: Instant::now(),
        }
    }

    /// Every worker's counters (the snapshot hands them to the schedulers).
    pub fn workers(&self) -> &Arc<[Arc<WorkerStats>]> {
        &self.stats
    }

    fn service_raw(&self, id: u32) -> Stats {
        stats::sum_stats(
            self.stats
                .iter()
                .filter_map(|w| w.services.get(id as usize)),
        )
    }

    fn dest_raw(&self, id: u32) -> Stats {
        stats::sum_stats(self.stats.iter().filter_map(|w| w.dests.get(id as usize)))
    }

    /// A new service id starts at zero: what a former holder of the id counted is its base.
    pub fn start_service(&mut self, id: u32) {
        self.svc_base.insert(id, self.service_raw(id));
        self.svc_rates.insert(id, RateEstimator::default());
    }

    /// A new real-server id starts at zero.
    pub fn start_dest(&mut self, id: u32) {
        self.dest_base.insert(id, self.dest_raw(id));
        self.dest_rates.insert(id, RateEstimator::default());
    }

    pub fn forget_service(&mut self, id: u32) {
        self.svc_base.remove(&id);
        self.svc_rates.remove(&id);
    }

    pub fn forget_dest(&mut self, id: u32) {
        self.dest_base.remove(&id);
        self.dest_rates.remove(&id);
    }

    /// `lvsadm -Z` for one service and its real servers.
    /// Counters that go on from `from` (an upgrade): the baseline is set below what the
    /// workers counted so far by that much.
    pub fn carry_service(&mut self, id: u32, from: &Stats) {
        let base = stats::sub(&self.service_raw(id), from);
        self.svc_base.insert(id, base);
    }

    pub fn carry_dest(&mut self, id: u32, from: &Stats) {
        let base = stats::sub(&self.dest_raw(id), from);
        self.dest_base.insert(id, base);
    }

    pub fn zero(&mut self, slot: &Slot) {
        let raw = self.service_raw(slot.id);
        self.svc_base.insert(slot.id, raw);
        for d in slot.dest_ids() {
            let raw = self.dest_raw(d);
            self.dest_base.insert(d, raw);
        }
    }

    /// Sample rates; call every couple of seconds.
    pub fn tick<'a>(&mut self, slots: impl Iterator<Item = &'a Slot>) {
        let elapsed = u64::try_from(self.last_sample.elapsed().as_millis()).unwrap_or(0);
        if elapsed < 1900 {
            return;
        }
        self.last_sample = Instant::now();
        for slot in slots {
            let raw = self.service_raw(slot.id);
            self.svc_rates
                .entry(slot.id)
                .or_default()
                .sample(&raw, elapsed);
            for id in slot.dest_ids() {
                let raw = self.dest_raw(id);
                self.dest_rates.entry(id).or_default().sample(&raw, elapsed);
            }
        }
    }

    /// A service's counters since `-Z`, and its rates.
    pub fn service(&self, id: u32) -> (Stats, Rates) {
        since_zero(self.service_raw(id), &self.svc_base, &self.svc_rates, id)
    }

    /// A real server's counters since `-Z`, and its rates.
    pub fn dest(&self, id: u32) -> (Stats, Rates) {
        since_zero(self.dest_raw(id), &self.dest_base, &self.dest_rates, id)
    }

    /// A real server's (active, inactive, persistence template) connections, over workers.
    pub fn conns(&self, id: u32) -> (u32, u32, u32) {
        let (mut a, mut ia, mut p) = (0u32, 0u32, 0u32);
        for w in self.stats.iter() {
            if let Some(c) = w.conns.get(id as usize) {
                a = a.saturating_add(c.active.load(Relaxed));
                ia = ia.saturating_add(c.inactive.load(Relaxed));
                p = p.saturating_add(c.persist.load(Relaxed));
            }
        }
        (a, ia, p)
    }

    /// Entries in every worker's table.
    pub fn table_len(&self) -> u64 {
        self.stats.iter().map(|w| w.table_len.load(Relaxed)).sum()
    }

    /// Connections created from a mid-flow segment, summed over workers.
    pub fn midflow(&self) -> u64 {
        self.stats.iter().map(|w| w.midflow.load(Relaxed)).sum()
    }

    /// Drop counters summed over workers, by name (parser's reasons and the director's).
    pub fn drops(&self) -> Vec<(&'static str, u64)> {
        let mut out = Vec::new();
        for r in lvs_packet::DropReason::ALL {
            let n: u64 = self
                .stats
                .iter()
                .map(|w| w.parse_drops[r.index()].load(Relaxed))
                .sum();
            out.push((r.as_str(), n));
        }
        for d in Loss::ALL {
            let n: u64 = self
                .stats
                .iter()
                .map(|w| w.drops[d as usize].load(Relaxed))
                .sum();
            out.push((d.as_str(), n));
        }
        out
    }
}

fn since_zero(
    raw: Stats,
    base: &HashMap<u32, Stats>,
    rates: &HashMap<u32, RateEstimator>,
    id: u32,
) -> (Stats, Rates) {
    let base = base.get(&id).copied().unwrap_or_default();
    let rates = rates.get(&id).map(RateEstimator::rates).unwrap_or_default();
    (stats::sub(&raw, &base), rates)
}
