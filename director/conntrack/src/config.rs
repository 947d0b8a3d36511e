//! Construction-time settings of one worker's table.

use crate::error::ConfigError;
use crate::key::DEFAULT_SEED;

/// The largest capacity: entry numbers are `u32`, with room left for list heads.
pub const MAX_CAPACITY: usize = 1 << 31;

/// Settings fixed when a table is built; everything is allocated for them up front.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Maximum number of entries (connections plus templates).
    pub capacity: usize,
    /// Above this many entries, each insert first drops up to `drop_batch` of the
    /// oldest half-open entries (IPVS `drop_entry`). Default: 90% of capacity.
    pub drop_threshold: usize,
    /// Half-open entries dropped per insert above the threshold. Dropping more than
    /// one per insert lets the table shrink back under a sustained flood.
    pub drop_batch: usize,
    /// Most entries one `expire` call looks at, so one call never stalls a worker.
    pub expire_batch: usize,
    /// Table slots one `expire` call scans for entries of deleted destinations.
    pub sweep_batch: usize,
    /// Destination ids `0..dest_slots` have counters from the start; more can be
    /// reserved on the control path with `Table::reserve_dests`.
    pub dest_slots: usize,
    /// Seed of the index hash. Fixed by default; a daemon may pass a random one to
    /// make bucket collisions unpredictable to an attacker.
    pub hash_seed: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config::with_capacity(1_000_000)
    }
}

impl Config {
    /// The defaults for a table of `capacity` entries.
    pub fn with_capacity(capacity: usize) -> Config {
        Config {
            capacity,
            drop_threshold: capacity - capacity / 10,
            drop_batch: 2,
            expire_batch: 4096,
            sweep_batch: 16_384,
            dest_slots: 256,
            hash_seed: DEFAULT_SEED,
        }
    }

    /// Check the settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.capacity == 0 || self.capacity > MAX_CAPACITY {
            return Err(ConfigError::Capacity(self.capacity));
        }
        if self.drop_threshold > self.capacity {
            return Err(ConfigError::Threshold {
                threshold: self.drop_threshold,
                capacity: self.capacity,
            });
        }
        for (name, v) in [
            ("expire_batch", self.expire_batch),
            ("sweep_batch", self.sweep_batch),
        ] {
            if v == 0 {
                return Err(ConfigError::ZeroBatch(name));
            }
        }
        Ok(())
    }
}
