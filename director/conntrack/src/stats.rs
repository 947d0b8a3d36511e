//! Table-wide counters.

/// What the table has done since it was built. Plain integers: one table belongs
/// to one worker, and the control path reads a copy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections inserted.
    pub inserts: u64,
    /// Persistence templates inserted.
    pub templates: u64,
    /// Entries (connections and templates) removed by their timer.
    pub expired: u64,
    /// Entries removed because their destination was deleted.
    pub dest_expired: u64,
    /// Entries removed by the caller (`remove`, `clear`).
    pub removed: u64,
    /// Connections expired at once because a new connection (a TCP SYN) reused their
    /// client address and port (`expire_reused`).
    pub reused: u64,
    /// Half-open entries dropped to make room (SYN-flood defence).
    pub half_open_dropped: u64,
    /// New entries refused because the table was full.
    pub table_full: u64,
    /// Lookups that found an entry.
    pub hits: u64,
    /// Lookups that found none.
    pub misses: u64,
    /// Entries inserted or updated by connection sync.
    pub synced: u64,
}
