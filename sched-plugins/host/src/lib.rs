//! The scheduler plugin host: finds scheduler `.so` files, checks them, loads them, and runs one
//! scheduler state per virtual service.
//!
//! - [`SearchPath`]: `$LVS_PLUGIN_PATH`, then the running binary's directory, then
//!   `/usr/lib/lvs/sched`.
//! - [`Registry`]: every plugin found, by the name it declares inside itself. A name asked for
//!   but not known triggers a rescan, so a `.so` dropped in later is usable without a restart.
//! - [`Instance`]: one scheduler state for one virtual service, with its destination list. A
//!   plugin that returns an error is quarantined and the instance falls back to the built-in
//!   round robin.
//!
//! Libraries are never unloaded: code of a plugin may still be referenced (a function pointer, a
//! destructor, a thread-local) and unloading it would be undefined behaviour.

mod error;
mod instance;
mod plugin;
mod registry;
mod search;

pub use error::{HostError, LoadError};
pub use instance::{Instance, ServiceSpec};
pub use lvs_sched_abi::{Dest, Flow};
pub use plugin::Plugin;
pub use registry::{Registry, ScanProblem, ScanReport};
pub use search::{DEFAULT_SYSTEM_DIR, PLUGIN_PATH_ENV, SearchPath};
