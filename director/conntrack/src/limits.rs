//! The maximum size and the SYN-flood defence (in the spirit of IPVS `drop_entry`).
//!
//! Half-open entries (TCP in NONE, SYN_SENT, SYN_RECV or SYNACK; UDP that has seen
//! one packet) sit on a FIFO list in the order they became half-open. Above the
//! drop threshold each new entry first drops up to `drop_batch` of the oldest; at
//! capacity with none left the new entry is refused. Nothing else is ever evicted:
//! an ESTABLISHED connection, or any entry past its handshake, stays until its
//! timer, its destination's deletion or the caller removes it.

use crate::error::Error;
use crate::table::{HALF_OPEN, Table};

impl Table {
    /// Make room for one entry or refuse it.
    pub(crate) fn make_room(&mut self, now: u64) -> Result<(), Error> {
        if self.entries.len() >= self.cfg.drop_threshold {
            for _ in 0..self.cfg.drop_batch.max(1) {
                let Some(node) = self.half_open.first(HALF_OPEN) else {
                    break;
                };
                self.remove_node(node, now);
                self.stats.half_open_dropped += 1;
            }
        }
        if self.entries.len() >= self.cfg.capacity {
            self.stats.table_full += 1;
            return Err(Error::TableFull);
        }
        Ok(())
    }

    /// How many half-open entries the table holds (walks every entry: tests and
    /// control path only).
    pub fn half_open_len(&self) -> usize {
        self.entries
            .iter()
            .filter(|(_, c)| c.is_half_open())
            .count()
    }
}
