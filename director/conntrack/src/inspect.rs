//! What the control path reads: `ipvsadm -L -c` rows and the memory footprint.

use crate::addr::{Endpoint, Proto};
use crate::dest::DestSlot;
use crate::entry::{Conn, Forward};
use crate::table::Table;
use crate::tcp_state::State;

/// One entry as `ipvsadm -L -c` shows it, plus the ids the caller needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// `pro` column.
    pub proto: Proto,
    /// Milliseconds until the entry expires (`expire` column, printed mm:ss).
    pub expires_ms: u64,
    /// `state` column (templates: NONE).
    pub state: State,
    /// Whether this is a persistence template.
    pub template: bool,
    /// `source` column: client (templates: masked client, port 0).
    pub client: Endpoint,
    /// `virtual` column.
    pub virt: Endpoint,
    /// `destination` column.
    pub dest: Endpoint,
    /// The forwarding method.
    pub forward: Forward,
    /// The caller's service id.
    pub service: u32,
    /// The caller's destination id.
    pub dest_id: u32,
}

impl ConnInfo {
    pub(crate) fn of(c: &Conn, expires_ms: u64) -> ConnInfo {
        ConnInfo {
            proto: c.proto,
            expires_ms,
            state: c.state,
            template: c.is_template(),
            client: c.client,
            virt: c.virt,
            dest: c.dest,
            forward: c.fwd,
            service: c.service,
            dest_id: c.dest_id,
        }
    }

    /// The expiry in whole seconds, rounded up as a countdown shows it.
    pub fn expires_secs(&self) -> u64 {
        self.expires_ms.div_ceil(1000)
    }
}

impl Table {
    /// Every live entry, connections and templates, in slot order (control path;
    /// entries of deleted destinations are left out).
    pub fn iter(&self, now: u64) -> impl Iterator<Item = ConnInfo> + '_ {
        self.entries
            .iter()
            .filter(|(_, c)| Table::alive(&self.dests, c))
            .map(move |(_, c)| ConnInfo::of(c, c.deadline.saturating_sub(now)))
    }

    /// [`Table::iter`] collected.
    pub fn list(&self, now: u64) -> Vec<ConnInfo> {
        self.iter(now).collect()
    }
}

/// What the table allocated, to report memory per entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footprint {
    /// Entries the table is sized for.
    pub capacity: usize,
    /// `size_of` one stored entry.
    pub entry_bytes: usize,
    /// `size_of` one slab slot (the entry plus the slab's vacant/occupied tag).
    pub slot_bytes: usize,
    /// The index: buckets and chain links.
    pub index_bytes: usize,
    /// The timer wheel's links.
    pub wheel_bytes: usize,
    /// The half-open list's links.
    pub half_open_bytes: usize,
    /// Everything, destination counters included.
    pub total_bytes: usize,
}

/// The same shape as the slab's private slot type, to measure it.
#[allow(dead_code)]
enum SlotShape {
    Vacant(usize),
    Occupied(Conn),
}

impl Footprint {
    pub(crate) fn of(t: &Table) -> Footprint {
        let slot_bytes = std::mem::size_of::<SlotShape>();
        let slab = t.entries.capacity() * slot_bytes;
        let index_bytes = t.index.bytes();
        let wheel_bytes = t.wheel.bytes();
        let half_open_bytes = t.half_open.bytes();
        let dests = t.dests.capacity() * std::mem::size_of::<DestSlot>();
        Footprint {
            capacity: t.cfg.capacity,
            entry_bytes: std::mem::size_of::<Conn>(),
            slot_bytes,
            index_bytes,
            wheel_bytes,
            half_open_bytes,
            total_bytes: slab + index_bytes + wheel_bytes + half_open_bytes + dests,
        }
    }

    /// Total bytes divided by capacity.
    pub fn bytes_per_entry(&self) -> f64 {
        // Precision loss is irrelevant at these magnitudes.
        #[allow(clippy::cast_precision_loss)]
        let per = self.total_bytes as f64 / self.capacity as f64;
        per
    }
}
