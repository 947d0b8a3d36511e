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
    /// The connection-sync key, read (and its permissions checked) with the file.
    pub sync_key: Option<crate::sync::wire::AuthKey>,
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
    let sync_key = match &config.sync {
        None => None,
        Some(s) => Some(
            crate::sync::wire::AuthKey::from_file(&s.key_file)
                .map_err(|e| invalid(file, e.to_string()))?,
        ),
    };
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
    Ok(Settings {
        config,
        rules,
        sync_key,
    })
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_sync_key_others_can_read_refuses_the_configuration() {
        let dir = std::env::temp_dir().join(format!("lvs-settings-sync-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("sync.key");
        std::fs::write(&key, "a shared secret for sync\n").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let conf = dir.join("director.toml");
        std::fs::write(
            &conf,
            format!(
                "[sync]\npeers = [\"192.0.2.2:8848\"]\nkey_file = \"{}\"\n",
                key.display()
            ),
        )
        .unwrap();
        let err = super::load(Some(&conf)).unwrap_err().to_string();
        assert!(
            err.contains("director.toml") && err.contains("chmod 600"),
            "{err}"
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let ok = super::load(Some(&conf)).unwrap();
        assert!(ok.sync_key.is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
