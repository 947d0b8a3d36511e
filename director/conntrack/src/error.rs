//! The table's errors.

/// Why an operation on the table failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The table is at its configured maximum and no half-open entry could be
    /// dropped; the new connection is refused (counted as `table_full`).
    #[error("connection table full")]
    TableFull,
    /// An entry with the same inbound key (or template key) already exists.
    #[error("entry already exists")]
    Exists,
    /// The destination id is beyond the slots reserved with `reserve_dests`.
    #[error("destination id {0} has no counter slot")]
    UnknownDest(u32),
    /// The id does not name a live entry of the right kind.
    #[error("no such entry")]
    NoEntry,
    /// A persistence template cannot be removed while connections depend on it.
    #[error("template still controls {0} connections")]
    TemplateInUse(u32),
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The capacity is zero or too large for 32-bit entry numbers.
    #[error("capacity {0} out of range 1..={max}", max = crate::config::MAX_CAPACITY)]
    Capacity(usize),
    /// The drop threshold is above the capacity.
    #[error("drop threshold {threshold} above capacity {capacity}")]
    Threshold {
        /// The threshold asked for.
        threshold: usize,
        /// The capacity.
        capacity: usize,
    },
    /// A batch size is zero.
    #[error("{0} must be at least 1")]
    ZeroBatch(&'static str),
}
