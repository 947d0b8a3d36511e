//! lvs-monitord's library: the resource monitor's configuration, check engine and health
//! state machine. The daemon (`lvs-monitord`: director connection, alerts, maintenance) is
//! built on these three pieces:
//!
//! - [`config`]: the TOML file (`etc/lvs-monitord.toml`), validated into [`config::Config`]:
//!   services, real servers, checks with their timing. [`config::load`] is the loader for
//!   [`lvs_common::run()`]; errors are `FILE:LINE:COL: reason`. Defaults (interval 1 s, timeout
//!   800 ms, rise 2, fall 3) and the detection-time arithmetic are in its docs.
//! - [`checks`]: the [`checks::Engine`], running every check of every target concurrently on
//!   one `mio` loop: ICMP echo, TCP connect, HTTP and HTTPS GET (rustls), DNS over UDP, and
//!   scripts. It delivers [`checks::CheckResult`]s.
//! - [`health`]: [`health::Health`] turns results into per-server Up/Down
//!   [`health::Transition`]s with rise/fall counting, all checks combined, reported once, and
//!   a start-up state taken from the director so that a restart does not flap anything.
//!
//! Every check works over IPv4 and IPv6 alike; [`address`] reads the addresses of the
//! configuration and of `ctl` (IPv6 with a port in brackets, `[2001:db8::11]:80`).
//!
//! The glue, in the daemon:
//!
//! ```no_run
//! use lvs_monitord::checks::{Engine, TargetId};
//! use lvs_monitord::config;
//! use lvs_monitord::health::{CheckPolicy, Health, State};
//!
//! let cfg = config::load(Some(std::path::Path::new("/etc/lvs/monitord.toml")))?;
//! let mut engine = Engine::new()?;
//! let mut health: Health<TargetId> = Health::new();
//! for service in &cfg.services {
//!     for server in &service.servers {
//!         let id = engine.add_target(server.addr, server.port, &server.checks);
//!         // Up if the director has it with a weight > 0 (a restart must not flap it).
//!         let initial = State::Up;
//!         health.add_server(id, server.checks.iter().map(CheckPolicy::of).collect(), initial);
//!     }
//! }
//! let mut results = Vec::new();
//! loop {
//!     engine.poll(None, &mut results)?;
//!     for r in results.drain(..) {
//!         if let Some(t) = health.record(&r.target, r.check, r.ok, &r.detail) {
//!             // quiesce / remove / restore the weight at the director; alert.
//!             println!("{:?} {} -> {}: {}", t.server, t.from, t.to, t.reason);
//!         }
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The daemon itself (binary `lvs-monitord`) is built from three more modules:
//!
//! - [`daemon`]: the loop (checks, the director, alerts, maintenance, reload, stop) and what it
//!   does on every transition: `on_failure`, `sorry_server`, re-applying its verdicts when the
//!   director comes back;
//! - [`ctl`]: `lvs-monitord ctl list` and `lvs-monitord ctl maintenance on|off -t VIP:PORT -r
//!   RS:PORT`, over monitord's own socket `<rundir>/monitord.sock`.
//!
//! A service's quorum ([`health::QuorumState`]) is acted upon in [`daemon`]: `quorum_down` /
//! `quorum_up` alerts, and the sorry server (if any) takes the traffic while it is lost.

pub mod address;
pub mod checks;
pub mod config;
pub mod ctl;
pub mod daemon;
pub mod health;
mod sys;

pub use checks::{CheckResult, Engine, EngineOptions, TargetId};
pub use config::Config;
pub use health::{Health, State, Transition};
