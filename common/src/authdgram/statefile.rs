//! Small state files written atomically and durably: a temporary file beside the target,
//! fsync, rename over the target, fsync of the directory. After a crash the file holds the
//! old content or the new one, never a torn write.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why a state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("state file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The file does not hold what this daemon writes there: refusing to guess (a lower
    /// generation than the peers have seen would get every datagram refused).
    #[error("state file {path}: line {line} is not `{expected}`: {content:?}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The line (1-based).
        line: usize,
        /// What that line should look like.
        expected: &'static str,
        /// What it holds (at most 64 characters of it).
        content: String,
    },
}

/// The file's text; `None` when it does not exist yet (first start).
pub fn read_optional(path: &Path) -> Result<Option<String>, StateError> {
    match fs::read(path) {
        Ok(c) => Ok(Some(String::from_utf8_lossy(&c).into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StateError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Replaces `path`'s content with `text`, atomically and durably (mode 0644).
pub fn write_atomic(path: &Path, text: &str) -> Result<(), StateError> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let write = || -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()
    };
    write().map_err(|source| {
        let _ = fs::remove_file(&tmp);
        StateError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// A corrupt-line error for `path`.
pub(crate) fn corrupt(path: &Path, line: usize, expected: &'static str, text: &str) -> StateError {
    StateError::Corrupt {
        path: path.to_path_buf(),
        line,
        expected,
        content: text.chars().take(64).collect(),
    }
}

/// A decimal `u64` made of digits only (no sign, no spaces).
pub(crate) fn parse_u64(s: &str) -> Option<u64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_and_leave_no_temp_file() {
        let d = std::env::temp_dir().join(format!("lvs-statefile-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        let p = d.join("state");
        assert_eq!(read_optional(&p).unwrap(), None);
        fs::write(d.join("state.tmp"), "left by a crash").unwrap();
        write_atomic(&p, "one\n").unwrap();
        write_atomic(&p, "two\n").unwrap();
        assert_eq!(read_optional(&p).unwrap().as_deref(), Some("two\n"));
        let names: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state")]);
        assert!(matches!(
            write_atomic(Path::new("/nonexistent-lvs-dir/state"), "x"),
            Err(StateError::Io { .. })
        ));
        assert_eq!(parse_u64("12"), Some(12));
        for bad in ["", "-1", "1 ", "+1", "99999999999999999999999"] {
            assert_eq!(parse_u64(bad), None, "{bad:?}");
        }
        fs::remove_dir_all(&d).unwrap();
    }
}
