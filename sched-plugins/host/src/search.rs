//! Where scheduler plugins are looked for, in order.

use std::path::{Path, PathBuf};

/// The environment variable with extra plugin directories, colon-separated, searched first.
pub const PLUGIN_PATH_ENV: &str = "LVS_PLUGIN_PATH";
/// The system directory, searched last.
pub const DEFAULT_SYSTEM_DIR: &str = "/usr/lib/lvs/sched";

/// The ordered list of plugin directories. Earlier directories win when two plugins declare
/// the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPath {
    dirs: Vec<PathBuf>,
}

impl SearchPath {
    /// `$LVS_PLUGIN_PATH`, the directory of the running binary, `/usr/lib/lvs/sched`.
    pub fn from_env() -> Self {
        let env = std::env::var_os(PLUGIN_PATH_ENV);
        let exe = std::env::current_exe().ok();
        Self::build(
            env.as_deref().and_then(|v| v.to_str()),
            exe.as_deref().and_then(Path::parent),
        )
    }

    /// Exactly these directories, in this order (tests, `--plugin-dir`).
    pub fn from_dirs(dirs: impl IntoIterator<Item = PathBuf>) -> Self {
        let mut out = Self { dirs: Vec::new() };
        for d in dirs {
            out.push(d);
        }
        out
    }

    fn build(env: Option<&str>, exe_dir: Option<&Path>) -> Self {
        let mut out = Self { dirs: Vec::new() };
        for part in env.unwrap_or("").split(':').filter(|p| !p.is_empty()) {
            out.push(PathBuf::from(part));
        }
        if let Some(dir) = exe_dir {
            out.push(dir.to_path_buf());
        }
        out.push(PathBuf::from(DEFAULT_SYSTEM_DIR));
        out
    }

    fn push(&mut self, dir: PathBuf) {
        if !self.dirs.contains(&dir) {
            self.dirs.push(dir);
        }
    }

    /// The directories, in search order.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_env_then_exe_dir_then_system() {
        let sp = SearchPath::build(Some("/a::/b:/a"), Some(Path::new("/opt/lvs/bin")));
        let want: Vec<PathBuf> = ["/a", "/b", "/opt/lvs/bin", DEFAULT_SYSTEM_DIR]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(sp.dirs(), want.as_slice());
    }

    #[test]
    fn no_env_means_exe_dir_and_system() {
        let sp = SearchPath::build(None, None);
        assert_eq!(sp.dirs(), &[PathBuf::from(DEFAULT_SYSTEM_DIR)]);
    }
}
