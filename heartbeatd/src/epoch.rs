//! The mastership epoch on disk.
//!
//! One line, `epoch N`, in a file of its own. [`EpochStore::store`] writes a temporary file
//! beside it, fsyncs it, renames it over the old one and fsyncs the directory, so after a
//! crash the file holds either the old epoch or the new one, never a torn write. The daemon
//! runs [`crate::fsm::Action::PersistEpoch`] through it before acting on the epoch.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use lvs_common::authdgram::statefile::{self, StateError};

/// Why the epoch could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum EpochError {
    /// Reading or writing failed.
    #[error("epoch file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The file holds something other than `epoch N`: refusing to guess (a lower epoch than
    /// the cluster has seen would let this node lose every split-brain tie-break).
    #[error("epoch file {path}: not `epoch N`: {content:?}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What it holds (at most 64 bytes of it).
        content: String,
    },
}

/// The epoch file.
#[derive(Debug, Clone)]
pub struct EpochStore {
    path: PathBuf,
}

impl EpochStore {
    /// The store at `path` (its directory must exist).
    pub fn new(path: impl Into<PathBuf>) -> EpochStore {
        EpochStore { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored epoch; 0 when the file does not exist yet (first start).
    pub fn load(&self) -> Result<u64, EpochError> {
        let content = match fs::read(&self.path) {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(source) => {
                return Err(EpochError::Io {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let text = String::from_utf8_lossy(&content);
        text.trim_end_matches('\n')
            .strip_prefix("epoch ")
            .and_then(|n| {
                if n.bytes().all(|b| b.is_ascii_digit()) {
                    n.parse::<u64>().ok()
                } else {
                    None
                }
            })
            .ok_or_else(|| EpochError::Corrupt {
                path: self.path.clone(),
                content: text.chars().take(64).collect(),
            })
    }

    /// Writes `epoch` atomically and durably: temp file, fsync, rename, fsync of the directory.
    pub fn store(&self, epoch: u64) -> Result<(), EpochError> {
        statefile::write_atomic(&self.path, &format!("epoch {epoch}\n")).map_err(|e| match e {
            StateError::Io { path, source } => EpochError::Io { path, source },
            other => EpochError::Io {
                path: self.path.clone(),
                source: io::Error::other(other.to_string()),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lvs-hb-epoch-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn missing_is_zero_then_round_trips() {
        let d = tmpdir("rt");
        let s = EpochStore::new(d.join("epoch"));
        assert_eq!(s.load().unwrap(), 0);
        s.store(1).unwrap();
        assert_eq!(s.load().unwrap(), 1);
        s.store(u64::MAX).unwrap();
        assert_eq!(s.load().unwrap(), u64::MAX);
        assert_eq!(
            fs::read_to_string(s.path()).unwrap(),
            format!("epoch {}\n", u64::MAX)
        );
        // No temporary file left behind.
        let names: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("epoch")]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_stale_temp_file_does_not_matter() {
        let d = tmpdir("stale");
        let s = EpochStore::new(d.join("epoch"));
        s.store(5).unwrap();
        // A crash between write and rename leaves a temp file: the old epoch stays valid and
        // the next store overwrites the temp file.
        fs::write(d.join("epoch.tmp"), b"epoch 9").unwrap();
        assert_eq!(s.load().unwrap(), 5);
        s.store(6).unwrap();
        assert_eq!(s.load().unwrap(), 6);
        assert!(!d.join("epoch.tmp").exists());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn corrupt_is_refused() {
        let d = tmpdir("corrupt");
        let s = EpochStore::new(d.join("epoch"));
        for bad in [
            &b""[..],
            b"epoch",
            b"epoch -1\n",
            b"epoch 1x\n",
            b"7\n",
            b"epoch 99999999999999999999999\n",
        ] {
            fs::write(s.path(), bad).unwrap();
            assert!(
                matches!(s.load(), Err(EpochError::Corrupt { .. })),
                "{bad:?}"
            );
        }
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn unwritable_directory_is_an_error() {
        let s = EpochStore::new("/nonexistent-lvs-dir/epoch");
        assert!(matches!(s.store(1), Err(EpochError::Io { .. })));
    }
}
