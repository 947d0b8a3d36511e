//! What the director plugs into the model: live counters and its scheduler registry.
//!
//! The model holds configuration only. Counters, connection counts and the connection table
//! live in the dataplane, and which schedulers exist is known to the plugin host; these two
//! traits let the model ask without knowing either.

use lvs_proto::director::IPVS_VERSION;
use lvs_proto::{ConnEntry, DestConf, DirectorInfo, Rates, ServiceKey, Stats};

/// The live figures of one real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DestCounters {
    /// Established connections.
    pub active_conns: u32,
    /// Other connections.
    pub inactive_conns: u32,
    /// Persistence templates pointing at this server.
    pub persist_conns: u32,
    /// Cumulative counters.
    pub stats: Stats,
    /// Current rates.
    pub rates: Rates,
}

/// Where listings get their numbers. The director implements it over its dataplane.
///
/// Called on the control path only (one call per service and server of a listing).
pub trait StatsSource {
    /// Counters and rates of a virtual service.
    fn service(&self, key: &ServiceKey) -> (Stats, Rates);
    /// Connection counts, counters and rates of one real server of `service`.
    fn dest(&self, service: &ServiceKey, dest: &DestConf) -> DestCounters;
    /// The connection table, for `-L -c`.
    fn connections(&self) -> Vec<ConnEntry>;
    /// Version and table size, for the `-L` header.
    fn info(&self) -> DirectorInfo {
        DirectorInfo {
            version: IPVS_VERSION.to_owned(),
            conn_table_size: 4096,
            conn_count: 0,
        }
    }
    /// Connection sync's status, for `lvsadm -L --daemon`; `None` when sync is not
    /// configured.
    fn sync_status(&self) -> Option<lvs_proto::director::SyncStatus> {
        None
    }
}

/// A [`StatsSource`] with no traffic: every counter 0, no connections. For tests and for a
/// director whose dataplane is not running.
#[derive(Debug, Clone, Copy, Default)]
pub struct ZeroStats;

impl StatsSource for ZeroStats {
    fn service(&self, _key: &ServiceKey) -> (Stats, Rates) {
        (Stats::default(), Rates::default())
    }

    fn dest(&self, _service: &ServiceKey, _dest: &DestConf) -> DestCounters {
        DestCounters::default()
    }

    fn connections(&self) -> Vec<ConnEntry> {
        Vec::new()
    }
}

/// libipvs's message for an unknown scheduler (`ENOENT` from `ipvs_add_service`), which
/// `lvsadm` prints as ipvsadm does; the director logs what it searched.
pub const SCHEDULER_NOT_FOUND: &str = "Scheduler or persistence engine not found";

/// Validates a scheduler name and its plugin options against what is installed.
///
/// The director implements it over its plugin registry. An unknown name is refused with
/// [`SCHEDULER_NOT_FOUND`]; options the plugin refuses with the plugin's own reason.
pub trait SchedulerCheck {
    /// `Ok` if `name` exists and accepts `options`: what [`crate::sched_flags::plugin_options`]
    /// made of the service's `-b` (comma-separated, possibly empty).
    fn check(&self, name: &str, options: &str) -> Result<(), String>;
}

/// Accepts every scheduler; for tests and tools that have no registry.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnyScheduler;

impl SchedulerCheck for AnyScheduler {
    fn check(&self, _name: &str, _options: &str) -> Result<(), String> {
        Ok(())
    }
}

/// Accepts the schedulers in a fixed list, with any plugin options (it has no plugin to ask);
/// refuses others with the message ipvsadm prints. For tests and as an example; ipvsadm's own
/// `-b` checks happen before any [`SchedulerCheck`] is asked, so they apply here too.
#[derive(Debug, Clone, Default)]
pub struct KnownSchedulers {
    names: Vec<String>,
}

impl KnownSchedulers {
    /// A checker that knows exactly `names`.
    pub fn new<I, S>(names: I) -> KnownSchedulers
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        KnownSchedulers {
            names: names.into_iter().map(Into::into).collect(),
        }
    }
}

impl SchedulerCheck for KnownSchedulers {
    fn check(&self, name: &str, _options: &str) -> Result<(), String> {
        if self.names.iter().any(|n| n == name) {
            Ok(())
        } else {
            Err(SCHEDULER_NOT_FOUND.to_owned())
        }
    }
}
