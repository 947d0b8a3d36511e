//! Loading what the director runs from: the TOML file and the rules file it names, both
//! checked before anything is applied, so that `--check-config` and SIGHUP refuse a bad file
//! with its line and the running configuration stays.

use std::path::{Path, PathBuf};

use lvs_common::{ConfigError, Source};
use lvs_control::{AnyScheduler, ControlState};
use lvs_l7::config::Place;

mod file;

pub use file::{FileConfig, FileRing, FileTimeouts};

/// What the director runs from: the checked file, and the files it names, read and checked.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub file: FileConfig,
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

/// Where `key` of the first `[table]` is in the file's text (a byte offset), else the table's
/// header; `None` without such a table.
fn locate_key(text: &str, table: &str, key: &str) -> Option<usize> {
    let (tables, ends) = tables(text);
    let idx = tables.iter().position(|t| t.0 == table)?;
    Some(key_in(text, &tables, &ends, idx, Some(key)))
}

/// Each table header of `text`: (name, offset of the header, offset of its body), and where
/// each body ends (the next header, then the end of the text), shifted by one.
fn tables(text: &str) -> (Vec<(&str, usize, usize)>, Vec<usize>) {
    let mut tables: Vec<(&str, usize, usize)> = Vec::new();
    let mut offset = 0;
    let mut ends = Vec::new();
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        if t.starts_with('[') {
            ends.push(offset);
            let name = t
                .split(']')
                .next()
                .unwrap_or("")
                .trim_start_matches('[')
                .trim();
            let indent = line.len() - t.len();
            tables.push((name, offset + indent, offset + line.len()));
        }
        offset += line.len();
    }
    ends.push(text.len());
    (tables, ends)
}

/// Where `place` is in the file's text (a byte offset): the key's line within its
/// `[[pool]]`, `[[content_service]]` or `[[content_service.rule]]` table, else the table's
/// header. `None` when the table is not written with its own header (an inline table).
fn locate(text: &str, place: Place) -> Option<usize> {
    let (tables, ends) = tables(text);
    let (kind, n, key) = match place {
        Place::Pool(i, k) => ("pool", i, k),
        Place::Service(i, k) => ("content_service", i, k),
        Place::Rule(si, ri, k) => {
            // The ri-th rule header after the si-th service header, before the next service.
            let svc = tables
                .iter()
                .enumerate()
                .filter(|(_, t)| t.0 == "content_service")
                .nth(si)?
                .0;
            let idx = tables
                .iter()
                .enumerate()
                .skip(svc + 1)
                .take_while(|(_, t)| t.0 != "content_service")
                .filter(|(_, t)| t.0 == "content_service.rule")
                .nth(ri)?
                .0;
            return Some(key_in(text, &tables, &ends, idx, k));
        }
    };
    let idx = tables
        .iter()
        .enumerate()
        .filter(|(_, t)| t.0 == kind)
        .nth(n)?
        .0;
    Some(key_in(text, &tables, &ends, idx, key))
}

/// The offset of `key = ` in the body of table `idx`, else of its header.
fn key_in(
    text: &str,
    tables: &[(&str, usize, usize)],
    ends: &[usize],
    idx: usize,
    key: Option<&str>,
) -> usize {
    let (_, header, body) = tables[idx];
    let end = ends[idx + 1];
    let Some(key) = key else {
        return header;
    };
    let mut offset = body;
    for line in text[body..end].split_inclusive('\n') {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix(key)
            && rest.trim_start().starts_with('=')
        {
            return offset + (line.len() - t.len());
        }
        offset += line.len();
    }
    header
}

/// The rules text as a control state; in active-active mode every line passes
/// [`crate::cluster::adapt`] (`mh` for the default scheduler, VS/NAT refused with its line).
fn load_rules(
    text: &str,
    sched: &dyn lvs_control::SchedulerCheck,
    active_active: bool,
) -> Result<ControlState, lvs_control::RulesError> {
    if active_active {
        lvs_control::load_rules_with(text, sched, &|r| {
            crate::cluster::adapt(r).map_err(|e| e.to_string())
        })
    } else {
        lvs_control::load_rules(text, sched)
    }
}

/// The `lvs_common::run` loader.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    let source = path.map(Source::read).transpose()?;
    let file = match &source {
        Some(s) => parse(s)?,
        None => {
            let file = FileConfig::default();
            file.validate()
                .map_err(|r| invalid(Path::new("(defaults)"), r))?;
            file
        }
    };
    let path = path.unwrap_or(Path::new("(defaults)"));
    let sync_key = match &file.sync {
        None => None,
        Some(s) => {
            if !s.state_dir.is_dir() {
                return Err(invalid(
                    path,
                    format!(
                        "sync.state_dir {}: not a directory (it keeps sync.generation and sync.peers; create it)",
                        s.state_dir.display()
                    ),
                ));
            }
            Some(
                crate::sync::wire::AuthKey::from_file(&s.key_file, "sync")
                    .map_err(|e| invalid(path, e.to_string()))?,
            )
        }
    };
    let rules = match &file.rules_file {
        None => None,
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Io {
                path: p.clone(),
                source,
            })?;
            load_rules(&text, &AnyScheduler, file.cluster.active_active())
                .map_err(|e| invalid(p, e.to_string()))?;
            Some((p.clone(), text))
        }
    };
    Ok(Config {
        file,
        rules,
        sync_key,
    })
}

/// The file's text parsed and checked, without reading the files it names (the sync key, the
/// rules file): what [`load`] does first.
pub fn parse(src: &Source) -> Result<FileConfig, ConfigError> {
    let mut config: FileConfig = src.parse()?;
    if let Err((place, reason)) = lvs_l7::config::validate_at(&config.content_service, &config.pool)
    {
        return Err(match locate(src.text(), place) {
            Some(at) => src.error_at(at..at, reason),
            None => src.error(reason),
        });
    }
    if let Err(reason) = config.cluster.validate(config.sync.as_ref()) {
        return Err(match locate_key(src.text(), "cluster", "mode") {
            Some(at) => src.error_at(at..at, reason),
            None => src.error(reason),
        });
    }
    config.validate().map_err(|r| invalid(src.path(), r))?;
    if let Some(s) = &mut config.sync {
        s.many_to_many = config.cluster.active_active();
    }
    Ok(config)
}

impl Config {
    /// The rules as a control state, with scheduler names checked by `sched`. `None` when no
    /// `rules_file` is configured: then the services are whatever `lvsadm` made at run time,
    /// and a reload must leave them (and the monitor's verdicts on them) as they are.
    pub fn rules_state(
        &self,
        sched: &dyn lvs_control::SchedulerCheck,
    ) -> Result<Option<ControlState>, String> {
        match &self.rules {
            None => Ok(None),
            Some((path, text)) => load_rules(text, sched, self.file.cluster.active_active())
                .map(Some)
                .map_err(|e| format!("{}: {e}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_sync_key_others_can_read_refuses_the_configuration() {
        let dir = std::env::temp_dir().join(format!("lvs-config-sync-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("sync.key");
        std::fs::write(&key, "a shared secret for sync\n").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let conf = dir.join("director.toml");
        std::fs::write(
            &conf,
            format!(
                "[sync]\npeers = [\"192.0.2.2:8848\"]\nkey_file = \"{}\"\nstate_dir = \"{}\"\n",
                key.display(),
                dir.display()
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
        // A state directory that does not exist: refused before anything starts.
        std::fs::write(
            &conf,
            format!(
                "[sync]\npeers = [\"192.0.2.2:8848\"]\nkey_file = \"{}\"\nstate_dir = \"{}\"\n",
                key.display(),
                dir.join("none").display()
            ),
        )
        .unwrap();
        let err = super::load(Some(&conf)).unwrap_err().to_string();
        assert!(
            err.contains("sync.state_dir") && err.contains("none"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A firewall mark on the port of a content service is refused, naming both.
    #[test]
    fn a_mark_on_a_content_services_port_is_refused() {
        let dir = std::env::temp_dir().join(format!("lvs-config-fwm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("director.toml");
        let text = "[[content_service]]\naddress = \"192.0.2.1\"\nport = 80\n\
                    default_pool = \"p\"\n\n\
                    [[pool]]\nname = \"p\"\nservers = [{ address = \"10.0.0.1\", port = 80 }]\n\n\
                    [[fwmark]]\nmark = 1\nmatch = [{ daddr = \"192.0.2.0/28\", dport = [80, 443] }]\n";
        std::fs::write(&conf, text).unwrap();
        let err = super::load(Some(&conf)).unwrap_err().to_string();
        assert!(
            err.contains("director.toml") && err.contains("mark 1 takes TCP 192.0.2.1:80"),
            "{err}"
        );
        std::fs::write(&conf, text.replace("[80, 443]", "[443]")).unwrap();
        assert!(super::load(Some(&conf)).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Content-switching mistakes point at their line, as TOML syntax errors do.
    #[test]
    fn content_errors_name_file_line_and_column() {
        let dir = std::env::temp_dir().join(format!("lvs-config-l7-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("director.toml");
        let text = "workers = 1\n\n[[content_service]]\naddress = \"192.0.2.1\"\nport = 80\n\n\
                    [[content_service.rule]]\nname = \"a\"\npool = \"p\"\n\n\
                    [[content_service.rule]]\nname = \"b\"\n  path_regex = \"(\"\n  pool = \"p\"\n\n\
                    [[pool]]\nname = \"p\"\nservers = [{ address = \"10.0.0.1\", port = 80 }]\n";
        let cases = [
            (text.to_string(), "director.toml:13:3:", "path_regex"),
            (
                text.replace(
                    "pool = \"p\"\n\n[[content_service.rule]]",
                    "pool = \"q\"\n\n[[content_service.rule]]",
                ),
                "director.toml:9:1:",
                "\"q\"",
            ),
            (
                text.replace("port = 80 }", "port = 0 }"),
                "director.toml:18:1:",
                "port 0",
            ),
            (
                text.replace("port = 80\n", "port = 80\nno_match = 500\n"),
                "director.toml:6:1:",
                "no_match",
            ),
        ];
        for (t, at, what) in cases {
            std::fs::write(&conf, &t).unwrap();
            let err = super::load(Some(&conf)).unwrap_err().to_string();
            assert!(err.contains(at) && err.contains(what), "{err}\n{t}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Active-active mode without sync is refused at the `mode` line; with sync, a rules
    /// file's VS/NAT server is refused at its line, and the default scheduler becomes mh.
    #[test]
    fn active_active_needs_sync_and_refuses_nat_by_line() {
        let dir = std::env::temp_dir().join(format!("lvs-config-aa-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("sync.key");
        std::fs::write(&key, "a shared secret for sync\n").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let rules = dir.join("rules");
        let conf = dir.join("director.toml");
        let head = "workers = 1\n\n[cluster]\n# behind ECMP\nmode = \"active-active\"\n";
        std::fs::write(&conf, head).unwrap();
        let err = super::load(Some(&conf)).unwrap_err().to_string();
        assert!(
            err.contains("director.toml:5:") && err.contains("needs connection sync"),
            "{err}"
        );
        let sync = format!(
            "rules_file = \"{}\"\n\n{head}\n[sync]\npeers = [\"192.0.2.2:8848\"]\nkey_file = \"{}\"\nstate_dir = \"{}\"\n",
            rules.display(),
            key.display(),
            dir.display()
        );
        std::fs::write(&conf, &sync).unwrap();
        std::fs::write(
            &rules,
            "-A -t 192.0.2.1:80\n-a -t 192.0.2.1:80 -r 10.0.0.2 -g\n-a -t 192.0.2.1:80 -r 10.0.0.3 -m\n",
        )
        .unwrap();
        let err = super::load(Some(&conf)).unwrap_err().to_string();
        assert!(
            err.contains("rules") && err.contains("line 3") && err.contains("VS/NAT"),
            "{err}"
        );
        std::fs::write(
            &rules,
            "-A -t 192.0.2.1:80\n-a -t 192.0.2.1:80 -r 10.0.0.2 -g\n",
        )
        .unwrap();
        let ok = super::load(Some(&conf)).unwrap();
        assert!(ok.file.sync.as_ref().unwrap().many_to_many);
        let state = ok.rules_state(&lvs_control::AnyScheduler).unwrap().unwrap();
        assert_eq!(
            state.save(),
            "-A -t 192.0.2.1:80 -s mh -b mh-port\n-a -t 192.0.2.1:80 -r 10.0.0.2:80 -g -w 1\n"
        );
        // The same file in the default mode: as before.
        std::fs::write(&conf, sync.replace("active-active", "active-standby")).unwrap();
        let ok = super::load(Some(&conf)).unwrap();
        assert!(!ok.file.sync.as_ref().unwrap().many_to_many);
        let state = ok.rules_state(&lvs_control::AnyScheduler).unwrap().unwrap();
        assert!(state.save().starts_with("-A -t 192.0.2.1:80 -s wlc\n"));
        std::fs::write(&conf, sync.replace("active-active", "active")).unwrap();
        let err = super::load(Some(&conf)).unwrap_err().to_string();
        assert!(
            err.contains("director.toml:7:") && err.contains("`active-active`"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
