//! Expiry: the timer wheel's due entries, and the sweep that clears entries of
//! deleted destinations.
//!
//! `expire_dest` (IPVS `expire_nodest_conn`) works in two steps. At once, the
//! destination's generation changes: its entries stop matching lookups (the next
//! packet of such a connection finds nothing, so a SYN is scheduled afresh and
//! anything else is the caller's to drop), its counters read zero, and its
//! templates stop steering clients. Then, promptly, `expire` sweeps the table a
//! bounded number of slots per call and removes them, reporting each one.

use crate::dest::DestCounts;
use crate::error::Error;
use crate::inspect::ConnInfo;
use crate::table::{Table, node_of};
use crate::wheel::Pop;

/// Why an entry left the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpireReason {
    /// Its timer ran out.
    Timeout,
    /// Its real server was deleted.
    DestRemoved,
}

/// An entry that `expire` removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expired {
    /// The entry as it was.
    pub conn: ConnInfo,
    /// Why it went.
    pub reason: ExpireReason,
}

/// What one `expire` call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExpireRun {
    /// Entries removed by this call.
    pub removed: usize,
    /// Work is left (a batch limit was reached); call again soon.
    pub more: bool,
}

impl Table {
    /// Remove entries whose time is up at `now`, and (while a deleted destination
    /// has entries left) sweep part of the table for them. Bounded by the
    /// configured `expire_batch` and `sweep_batch`; `on_expired` sees each removed
    /// entry. Allocates nothing.
    pub fn expire(&mut self, now: u64, mut on_expired: impl FnMut(&Expired)) -> ExpireRun {
        let mut run = ExpireRun::default();
        let mut budget = self.cfg.expire_batch;
        loop {
            let entries = &self.entries;
            let popped = self
                .wheel
                .pop_expired(now, &mut budget, |n| entries[n as usize].deadline);
            match popped {
                Pop::Expired(node) => {
                    let c = &mut self.entries[node as usize];
                    if c.is_template() && c.word_b > 0 {
                        // Still steering live connections: keep it another period.
                        c.deadline = now + c.persist_ms();
                        self.wheel.arm(node, c.deadline);
                        continue;
                    }
                    let reason = if Table::alive(&self.dests, c) {
                        self.stats.expired += 1;
                        ExpireReason::Timeout
                    } else {
                        self.stats.dest_expired += 1;
                        ExpireReason::DestRemoved
                    };
                    let conn = ConnInfo::of(c, 0);
                    self.remove_node(node, now);
                    run.removed += 1;
                    on_expired(&Expired { conn, reason });
                }
                Pop::Idle => break,
                Pop::Budget => {
                    run.more = true;
                    break;
                }
            }
        }
        if self.dead_pending > 0 {
            self.sweep(now, &mut on_expired, &mut run);
        }
        run
    }

    fn sweep(&mut self, now: u64, on_expired: &mut impl FnMut(&Expired), run: &mut ExpireRun) {
        let capacity = self.cfg.capacity;
        for _ in 0..self.cfg.sweep_batch {
            if self.dead_pending == 0 {
                break;
            }
            let slot = self.sweep_cursor;
            self.sweep_cursor = (slot + 1) % capacity;
            let Some(c) = self.entries.get(slot) else {
                continue;
            };
            if Table::alive(&self.dests, c) || (c.is_template() && c.word_b > 0) {
                // Live, or a dead template that goes with its last connection.
                continue;
            }
            let conn = ConnInfo::of(c, 0);
            self.remove_node(node_of(slot), now);
            self.stats.dest_expired += 1;
            run.removed += 1;
            on_expired(&Expired {
                conn,
                reason: ExpireReason::DestRemoved,
            });
        }
        if self.dead_pending > 0 {
            run.more = true;
        }
    }

    /// A real server was deleted (IPVS `expire_nodest_conn`): its connections and
    /// templates stop matching at once and are removed by the next `expire` calls.
    /// Its counters restart from zero, so the id may be reused for a new server.
    /// Returns the counts it had.
    pub fn expire_dest(&mut self, dest_id: u32) -> Result<DestCounts, Error> {
        let slot = self
            .dests
            .get_mut(dest_id as usize)
            .ok_or(Error::UnknownDest(dest_id))?;
        let had = slot.counts;
        slot.generation = slot.generation.wrapping_add(1);
        slot.counts = DestCounts::default();
        self.dead_pending +=
            u64::from(had.active) + u64::from(had.inactive) + u64::from(had.persistent);
        Ok(had)
    }
}
