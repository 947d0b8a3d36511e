//! The director's control plane: its configuration model and the ipvsadm grammar.
//!
//! - [`state`]: [`ControlState`], the authoritative virtual services and real servers, with
//!   IPVS's rules and ipvsadm's error messages; every change yields [`ConfigChange`]s for
//!   the dataplane.
//! - [`hooks`]: what the director supplies: [`StatsSource`] (live counters, connections)
//!   and [`SchedulerCheck`] (which schedulers its plugins provide).
//! - [`handler`]: [`ControlHandler`], the `proto` server handler wrapping all of it.
//! - [`grammar`]: one ipvsadm command line to a typed [`Command`];
//!   [`rules`]: `ipvsadm-save` text (restore input, the rules file) with line numbers;
//!   [`save`](mod@save): the `ipvsadm-save` output; [`order`]: ipvsadm's listing order;
//!   [`address`]: `host[:port]` and netmasks; [`names`]: host and service names from
//!   `/etc/hosts` and `/etc/services`; [`sched_flags`]: `-b`, ipvsadm's flags and the
//!   plugins' options.
//! - [`content`]: layer-7 content switching: lvsadm's pool and rule commands, the model they
//!   edit ([`ContentModel`]) and its listing.
//!
//! The director uses it like this:
//!
//! ```
//! use lvs_control::{AnyScheduler, ControlHandler, ZeroStats, load_rules};
//!
//! let rules = "-A -t 192.0.2.1:80 -s rr\n-a -t 192.0.2.1:80 -r 10.0.0.2:80 -m -w 1\n";
//! let state = load_rules(rules, &AnyScheduler).expect("valid rules");
//! assert_eq!(state.save(), rules);
//! // Then serve it: `Server::bind(config)?.spawn(handler)` or the director's own loop.
//! let _handler = ControlHandler::new(state, ZeroStats, AnyScheduler, |state: &_, changes: &[_]| {
//!     let _ = (state, changes); // hand to the dataplane
//! });
//! ```

pub mod address;
pub mod content;
pub mod error;
pub mod grammar;
pub mod handler;
pub mod hooks;
pub mod names;
pub mod order;
pub mod rules;
pub mod save;
pub mod sched_flags;
pub mod state;

pub use content::ContentModel;
pub use error::ControlError;
pub use grammar::{Command, ListFormat, ListOptions, ListWhat, ParseError, parse_args};
pub use handler::ControlHandler;
pub use hooks::{
    AnyScheduler, DestCounters, KnownSchedulers, SCHEDULER_NOT_FOUND, SchedulerCheck, StatsSource,
    ZeroStats,
};
pub use names::Names;
pub use rules::{
    RulesError, RulesErrorKind, load_rules, load_rules_with, parse_line, parse_rules, split_line,
};
pub use save::{save, save_named};
pub use state::{ConfigChange, ControlState, MAX_TIMEOUT, MAX_WEIGHT, Refusal, Service};
