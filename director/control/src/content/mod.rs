//! Layer-7 content switching on the control path: lvsadm's own commands for pools and rules,
//! the model they edit, and its listing.
//!
//! - [`grammar`]: `--add-pool`, `--del-pool`, `--add-pool-server`, `--del-pool-server`,
//!   `--add-rule`, `--del-rule`, `--list-rules`; [`crate::parse_args`] hands a command line
//!   naming one of them here, so `lvsadm` has one parser and one error path.
//! - [`model`]: [`ContentModel`], the rules and pools in force, as plain data.
//! - [`edit`]: one [`ContentEdit`](lvs_proto::director::ContentEdit) applied to a model,
//!   with the checks the director supplies ([`ContentChecks`]).
//! - [`status`]: the model and the engine's counters ([`ContentCounters`]) as `lvsadm
//!   --list-rules` receives them.
//!
//! The model is not the layer-7 engine's configuration: a content service has more settings
//! (timeouts, caps, client address) that only its configuration file sets. The director
//! converts its configuration to a model, edits that, and converts the result back before it
//! hands it to the engine, so this crate stays free of the engine.

pub mod edit;
pub mod grammar;
pub mod model;
pub mod status;

pub use edit::{ContentChecks, apply};
pub use model::{ContentModel, ContentService, Pool};
pub use status::{ContentCounters, status};
