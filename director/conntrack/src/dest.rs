//! Per-destination connection counters, kept exact by the table itself.

/// A real server's connection counts in this table, as `ipvsadm -L` shows them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DestCounts {
    /// Connections in an active state (ActiveConn).
    pub active: u32,
    /// Other connections (InActConn), UDP included.
    pub inactive: u32,
    /// Persistence templates pointing at this server (PersistConn).
    pub persistent: u32,
}

impl DestCounts {
    /// IPVS's load figure for the lc family: `active * 256 + inactive`.
    pub fn overhead(&self) -> u64 {
        u64::from(self.active) * 256 + u64::from(self.inactive)
    }
}

/// One destination id's slot.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct DestSlot {
    /// Bumped when the destination is deleted: entries carrying an older
    /// generation belong to the deleted server and are dead.
    pub(crate) generation: u16,
    pub(crate) counts: DestCounts,
}
