//! Every scheduler plugin found on the search path, by the name it declares.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{HostError, LoadError, Plugin, SearchPath};

/// Something wrong found while scanning. None of these stops the scan: the other plugins stay
/// usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanProblem {
    #[error("{0}")]
    Load(LoadError),
    #[error(
        "two plugins declare the scheduler name {name:?}: {kept} (used, earlier in the search path) and {ignored} (ignored)"
    )]
    Duplicate {
        name: String,
        kept: PathBuf,
        ignored: PathBuf,
    },
    #[error("cannot read plugin directory {dir}: {reason}")]
    Dir { dir: PathBuf, reason: String },
}

/// What one scan found.
#[derive(Debug, Clone, Default)]
pub struct ScanReport {
    /// `(name, file)` of every usable plugin, in search order.
    pub found: Vec<(String, PathBuf)>,
    pub problems: Vec<ScanProblem>,
}

/// The plugins on the search path.
#[derive(Debug)]
pub struct Registry {
    search: SearchPath,
    by_name: HashMap<String, Arc<Plugin>>,
    /// Every plugin loaded so far, by file, so a rescan does not load one file twice.
    loaded: HashMap<PathBuf, Arc<Plugin>>,
    /// Files that failed, with their identity then: retried only when the file changes, so a
    /// rescan after each unknown name neither repeats the error nor loads a bad library again.
    failed: HashMap<PathBuf, ((u64, u64, i64), LoadError)>,
    /// Problems already logged, so that a rescan logs only what is new.
    logged: Vec<ScanProblem>,
}

impl Registry {
    /// A registry over `search`, scanned once now.
    pub fn new(search: SearchPath) -> Self {
        let mut r = Self {
            search,
            by_name: HashMap::new(),
            loaded: HashMap::new(),
            failed: HashMap::new(),
            logged: Vec::new(),
        };
        r.rescan();
        r
    }

    /// The search path in use.
    pub fn search_path(&self) -> &SearchPath {
        &self.search
    }

    /// Scan every directory again (a name was missing, or SIGHUP). Plugins already in use stay
    /// loaded; a file replaced on disk is loaded anew for services created from now on.
    pub fn rescan(&mut self) -> ScanReport {
        let mut report = ScanReport::default();
        let mut by_name: HashMap<String, Arc<Plugin>> = HashMap::new();
        for dir in self.search.dirs().to_vec() {
            for path in plugin_files(&dir, &mut report) {
                let plugin = match self.load_cached(&path) {
                    Ok(p) => p,
                    Err(e) => {
                        report.problems.push(ScanProblem::Load(e));
                        continue;
                    }
                };
                if let Some(kept) = by_name.get(plugin.name()) {
                    report.problems.push(ScanProblem::Duplicate {
                        name: plugin.name().to_string(),
                        kept: kept.path().to_path_buf(),
                        ignored: path.clone(),
                    });
                    continue;
                }
                report.found.push((plugin.name().to_string(), path.clone()));
                by_name.insert(plugin.name().to_string(), plugin);
            }
        }
        for p in &report.problems {
            if !self.logged.contains(p) {
                lvs_common::event!(log::Level::Warn, "sched_plugin_problem", reason = p);
            }
        }
        self.logged = report.problems.clone();
        for (name, path) in &report.found {
            let known = self.by_name.get(name).is_some_and(|old| {
                Arc::ptr_eq(old, &by_name[name]) && old.path() == path.as_path()
            });
            if !known {
                lvs_common::event!(
                    log::Level::Info,
                    "sched_plugin_loaded",
                    name = name,
                    path = path.display()
                );
            }
        }
        self.by_name = by_name;
        report
    }

    fn load_cached(&mut self, path: &Path) -> Result<Arc<Plugin>, LoadError> {
        let meta = fs::metadata(path).map_err(|e| LoadError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let id = (meta.dev(), meta.ino());
        if let Some(p) = self.loaded.get(path)
            && p.file_id() == id
        {
            return Ok(Arc::clone(p));
        }
        let stamp = (meta.dev(), meta.ino(), meta.mtime());
        if let Some((seen, err)) = self.failed.get(path)
            && *seen == stamp
        {
            return Err(err.clone());
        }
        match Plugin::load(path) {
            Ok(p) => {
                let p = Arc::new(p);
                self.failed.remove(path);
                self.loaded.insert(path.to_path_buf(), Arc::clone(&p));
                Ok(p)
            }
            Err(e) => {
                self.failed.insert(path.to_path_buf(), (stamp, e.clone()));
                Err(e)
            }
        }
    }

    /// The plugin that declares `name`. An unknown name triggers one rescan first, so a `.so`
    /// dropped into a plugin directory is found without a restart.
    pub fn get(&mut self, name: &str) -> Result<Arc<Plugin>, HostError> {
        if !self.by_name.contains_key(name) {
            self.rescan();
        }
        match self.by_name.get(name) {
            Some(p) if p.is_quarantined() => Err(HostError::Quarantined {
                name: name.to_string(),
                reason: p.quarantine_reason().unwrap_or_default(),
            }),
            Some(p) => Ok(Arc::clone(p)),
            None => Err(HostError::NotFound {
                name: name.to_string(),
                searched: self.search.dirs().to_vec(),
            }),
        }
    }

    /// The names known now, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.by_name.keys().cloned().collect();
        v.sort();
        v
    }
}

/// The `*.so` regular files of `dir`, sorted by name so that the order is the same everywhere.
/// A missing directory is normal (`/usr/lib/lvs/sched` on a development machine).
fn plugin_files(dir: &Path, report: &mut ScanReport) -> Vec<PathBuf> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            report.problems.push(ScanProblem::Dir {
                dir: dir.to_path_buf(),
                reason: e.to_string(),
            });
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "so") && p.is_file())
        .collect();
    files.sort();
    files
}
