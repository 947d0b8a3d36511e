//! Which mode the configuration file asks for: `mode = "failover"` (the default: a primary and
//! a backup, [`crate::config`]) or `mode = "anycast"` (every director active behind ECMP,
//! announcing its virtual addresses over BGP while it can serve them, [`crate::anycast`]).

use std::path::{Path, PathBuf};

use lvs_common::config::{ConfigError, Source};
use serde::Deserialize;
use toml::Spanned;

use crate::anycast::config::AnycastConfig;
use crate::config::Config;

/// A validated configuration of either mode.
#[derive(Debug, Clone)]
pub enum Settings {
    /// Primary/backup failover.
    Failover(Box<Config>),
    /// Active-active behind ECMP.
    Anycast(Box<AnycastConfig>),
}

/// Only the `mode` key: the rest is read by the mode's own parser.
#[derive(Debug, Deserialize)]
struct ModeOnly {
    mode: Option<Spanned<String>>,
}

/// Reads and validates `path`: the loader for [`lvs_common::run()`].
pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
    match path {
        Some(path) => parse(&Source::read(path)?),
        None => Err(ConfigError::Invalid {
            path: PathBuf::from("(none)"),
            location: None,
            reason: "lvs-heartbeatd needs a configuration file (-c FILE)".into(),
        }),
    }
}

/// Parses a file of either mode.
pub fn parse(src: &Source) -> Result<Settings, ConfigError> {
    let m: ModeOnly = src.parse()?;
    match m.mode {
        None => Ok(Settings::Failover(Box::new(crate::config::parse(src)?))),
        Some(m) => match m.get_ref().as_str() {
            "failover" => Ok(Settings::Failover(Box::new(crate::config::parse(src)?))),
            "anycast" => Ok(Settings::Anycast(Box::new(crate::anycast::config::parse(
                src,
            )?))),
            other => Err(src.error_at(
                m.span(),
                format!("mode: {other:?} is neither \"failover\" nor \"anycast\""),
            )),
        },
    }
}
