//! Loading what the director runs from: the TOML file and the rules file it names, both
//! checked before anything is applied, so that `--check-config` and SIGHUP refuse a bad file
//! with its line and the running configuration stays.

use std::path::{Path, PathBuf};

use lvs_common::ConfigError;
use lvs_control::{AnyScheduler, ControlState};

use crate::config::Config;

/// A checked configuration: the file and the parsed rules.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub config: Config,
    /// The rules file's text, when one is configured (checked for syntax and IPVS's rules;
    /// scheduler names are checked against the plugins when applied).
    pub rules: Option<(PathBuf, String)>,
}

fn invalid(path: &Path, reason: String) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_path_buf(),
        location: None,
        reason,
    }
}

/// The `lvs_common::run` loader.
pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
    let config: Config = lvs_common::config::load_or_default(path)?;
    let file = path.unwrap_or(Path::new("(defaults)"));
    config.validate().map_err(|r| invalid(file, r))?;
    let rules = match &config.rules_file {
        None => None,
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Io {
                path: p.clone(),
                source,
            })?;
            lvs_control::load_rules(&text, &AnyScheduler).map_err(|e| invalid(p, e.to_string()))?;
            Some((p.clone(), text))
        }
    };
    Ok(Settings { config, rules })
}

impl Settings {
    /// The rules as a control state, with scheduler names checked by `sched`.
    pub fn rules_state(
        &self,
        sched: &dyn lvs_control::SchedulerCheck,
    ) -> Result<ControlState, String> {
        match &self.rules {
            None => Ok(ControlState::new()),
            Some((path, text)) => {
                lvs_control::load_rules(text, sched).map_err(|e| format!("{}: {e}", path.display()))
            }
        }
    }
}
