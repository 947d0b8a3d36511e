//! The content switching's rules and pools, as plain data.

use lvs_proto::ServiceKey;
use lvs_proto::director::{ContentRule, PoolServer};

/// The rules and pools in force: what `lvsadm` edits ([`super::apply`]) and lists
/// ([`super::status`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentModel {
    /// Content services, in configuration order. Edits change their rules, never the list.
    pub services: Vec<ContentService>,
    /// Every pool, used or not; director-wide.
    pub pools: Vec<Pool>,
}

/// One content service: what an edit or a listing needs of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentService {
    /// Its address and port (always TCP).
    pub key: ServiceKey,
    /// `http` or `tls-sni`.
    pub mode: String,
    /// Where requests no rule matches go.
    pub default_pool: Option<String>,
    /// Its rules, in match order, each with its name: a rule the configuration file left
    /// unnamed is `rule<N>` by its position when the model is made, and keeps that name when
    /// rules are added before it or removed (so its counters stay its own).
    pub rules: Vec<ContentRule>,
}

/// A pool: real servers with their own scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// Its name.
    pub name: String,
    /// Its scheduler plugin.
    pub scheduler: String,
    /// Scheduler options, as `lvsadm -b`.
    pub options: String,
    /// Its real servers.
    pub servers: Vec<PoolServer>,
}
