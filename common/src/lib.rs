//! What every lvs-rs daemon shares, written once: the command line ([`cli`]), logging in one
//! event format ([`logging`], [`event`](mod@event), `docs/LOGGING.md`), the pidfile ([`pidfile`]),
//! daemonizing ([`daemonize`](mod@daemonize)), signals in the `mio` loop ([`signals`]), configuration files
//! with `FILE:LINE:COL` errors ([`config`]), and the start-up sequence tying them together
//! ([`run`](mod@run)); joining a multicast group for LAN peers ([`mcast`]); the CRC-32 of the
//! framed formats ([`crc32`](mod@crc32)).
//!
//! A daemon's `main` (see `examples/demo_daemon.rs` for a complete one):
//!
//! ```no_run
//! use std::process::ExitCode;
//!
//! use clap::Parser;
//! use lvs_common::{DaemonArgs, Signal, Signals, config, event, signals};
//! use log::Level;
//! use mio::{Events, Poll, Token};
//! use serde::Deserialize;
//!
//! #[derive(Debug, Default, Deserialize)]
//! #[serde(deny_unknown_fields, default)]
//! struct Config {
//!     port: u16,
//! }
//!
//! /// The load balancer.
//! #[derive(Parser)]
//! #[command(name = "lvs-director", version, about)]
//! struct Cli {
//!     #[command(flatten)]
//!     daemon: DaemonArgs,
//! }
//!
//! const SIGNALS: Token = Token(0);
//!
//! fn main() -> ExitCode {
//!     let cli = Cli::parse();
//!     lvs_common::run("lvs-director", &cli.daemon, config::load_or_default::<Config>, |mut config, startup| {
//!         // Start-up: errors here reach the admin's terminal and exit 1.
//!         let mut poll = Poll::new()?;
//!         let mut signals = Signals::new(poll.registry(), SIGNALS)?;
//!         let listener = lvs_proto::rundir::bind_socket(&startup.socket_path(), startup.name(), None)?;
//!         // ... register the listener, start worker threads ...
//!         let ctx = startup.ready();
//!         let mut events = Events::with_capacity(256);
//!         loop {
//!             signals::poll(&mut poll, &mut events, None)?;
//!             for ev in events.iter() {
//!                 if ev.token() == SIGNALS {
//!                     for signal in signals.pending() {
//!                         match signal {
//!                             Signal::Stop => {
//!                                 // undo what we changed in the system, then:
//!                                 drop(listener);
//!                                 let _ = std::fs::remove_file(ctx.socket_path());
//!                                 return Ok(());
//!                             }
//!                             Signal::Reload => {
//!                                 if let Some(new) = ctx.reload() {
//!                                     config = new;
//!                                 }
//!                             }
//!                             Signal::Dump => event!(Level::Info, "state", port = config.port),
//!                         }
//!                     }
//!                 }
//!             }
//!         }
//!     })
//! }
//! ```

pub mod authdgram;
pub mod cli;
pub mod config;
pub mod crc32;
pub mod daemonize;
/// The event line: defined in `lvs-proto` (whose own server logs in it too), used through here.
pub use lvs_proto::event;
pub use lvs_proto::event_line;
pub mod logging;
pub mod mcast;
pub mod pidfile;
pub mod privdrop;
pub mod run;
pub mod signals;
mod sys;

pub use cli::DaemonArgs;
pub use config::{ConfigError, Source, check_config, load_toml, one_line_reason, parse_toml};
pub use daemonize::{Readiness, daemonize};
pub use event::Event;
pub use pidfile::{Pidfile, PidfileError};
pub use run::{BoxError, Context, Startup, run};
pub use signals::{Signal, Signals};
