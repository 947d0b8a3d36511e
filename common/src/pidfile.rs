//! `<rundir>/<daemon>.pid`: the running instance's pid, held under an exclusive `flock`.
//!
//! The lock, not the file's existence, says whether a daemon runs: a file left behind by a
//! crashed instance is unlocked and simply taken over. A second instance finds the lock held
//! and refuses with `lvs-director is already running (pid N)`. The lock lives as long as the
//! [`Pidfile`] value (the descriptor is close-on-exec, so programs the daemon starts do not
//! inherit it); dropping it removes the file.
//!
//! Create it after [`crate::daemonize()`], so it names the final process. `std::process::exit`
//! skips `Drop`: return from `main` instead (or drop the value first).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// Mode of the pidfile: everyone may read the pid.
pub const MODE: u32 = 0o644;

/// Why the pidfile could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum PidfileError {
    /// Another live instance holds the lock.
    #[error("{daemon} is already running (pid {})", pid.map_or_else(|| "unknown".to_owned(), |p| p.to_string()))]
    AlreadyRunning {
        /// The daemon's display name, e.g. `lvs-director`.
        daemon: String,
        /// The pid written in the file, if it could be read.
        pid: Option<u32>,
    },
    /// A system call on the file failed.
    #[error("pidfile {}: {what}: {source}", path.display())]
    Io {
        /// The pidfile.
        path: PathBuf,
        /// What we were doing.
        what: &'static str,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
}

/// A locked pidfile containing this process's pid. Removed and unlocked on drop.
#[derive(Debug)]
pub struct Pidfile {
    path: PathBuf,
    // Declared last in `drop` order terms: `Drop::drop` unlinks first, then this unlocks.
    file: Flock<File>,
}

impl Pidfile {
    /// Takes `path` for `daemon` (the name used in the "already running" message) and writes
    /// the current pid into it.
    pub fn create(path: &Path, daemon: &str) -> Result<Pidfile, PidfileError> {
        let io_err = |what, source| PidfileError::Io {
            path: path.to_path_buf(),
            what,
            source,
        };
        // An instance that is exiting unlinks the file and then unlocks it. If we opened the
        // old file just before the unlink, we may get its lock on a file that no longer has a
        // name: check that the path still names what we locked, and retry if not.
        for _ in 0..10 {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(MODE)
                .open(path)
                .map_err(|e| io_err("cannot open", e))?;
            let mut locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(locked) => locked,
                Err((mut file, Errno::EWOULDBLOCK)) => {
                    return Err(PidfileError::AlreadyRunning {
                        daemon: daemon.to_owned(),
                        pid: read_pid(&mut file),
                    });
                }
                Err((_, errno)) => return Err(io_err("cannot lock", errno.into())),
            };
            let ours = locked.metadata().map_err(|e| io_err("cannot stat", e))?;
            match fs::metadata(path) {
                Ok(named) if named.dev() == ours.dev() && named.ino() == ours.ino() => {}
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("cannot stat", e)),
            }
            // The umask may have narrowed the mode of a new file.
            locked
                .set_permissions(fs::Permissions::from_mode(MODE))
                .map_err(|e| io_err("cannot chmod", e))?;
            locked
                .set_len(0)
                .map_err(|e| io_err("cannot truncate", e))?;
            locked.rewind().map_err(|e| io_err("cannot truncate", e))?;
            locked
                .write_all(format!("{}\n", std::process::id()).as_bytes())
                .map_err(|e| io_err("cannot write", e))?;
            locked.sync_data().map_err(|e| io_err("cannot write", e))?;
            return Ok(Pidfile {
                path: path.to_path_buf(),
                file: locked,
            });
        }
        Err(io_err(
            "cannot lock",
            io::Error::other("the file keeps being replaced"),
        ))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        // Remove the name only if it is still ours (an admin may have moved things around).
        let ours = self.file.metadata();
        let named = fs::metadata(&self.path);
        if let (Ok(ours), Ok(named)) = (ours, named)
            && ours.dev() == named.dev()
            && ours.ino() == named.ino()
            && let Err(e) = fs::remove_file(&self.path)
        {
            log::warn!("cannot remove pidfile {}: {e}", self.path.display());
        }
        // `self.file` is dropped after this: unlock and close.
    }
}

/// The pid in an (already opened) pidfile, if it holds one.
fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// The pid in the pidfile at `path`, if the file exists, holds a pid and is locked by a live
/// instance. For `status` commands and tests.
pub fn running_pid(path: &Path) -> Option<u32> {
    let mut file = File::open(path).ok()?;
    match Flock::lock(file.try_clone().ok()?, FlockArg::LockSharedNonblock) {
        // We got the lock: nobody holds it. Dropping `_free` unlocks again.
        Ok(_free) => None,
        Err((_, Errno::EWOULDBLOCK)) => read_pid(&mut file),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn temp_dir(tag: &str) -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "lvs-common-pidfile-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn second_instance_is_refused_and_drop_removes() {
        let dir = temp_dir("double");
        let path = dir.join("director.pid");
        let first = Pidfile::create(&path, "lvs-director").unwrap();
        let me = std::process::id();
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{me}\n"));
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            MODE
        );
        assert_eq!(running_pid(&path), Some(me));

        // flock locks belong to the open file description: a second open conflicts even in
        // the same process.
        let err = Pidfile::create(&path, "lvs-director").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("lvs-director is already running (pid {me})")
        );
        // The refused attempt did not touch the file.
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{me}\n"));

        drop(first);
        assert!(!path.exists());
        assert_eq!(running_pid(&path), None);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stale_file_is_taken_over() {
        let dir = temp_dir("stale");
        let path = dir.join("monitord.pid");
        fs::write(&path, "4194303\nrubbish that is longer than a pid\n").unwrap();
        assert_eq!(running_pid(&path), None);
        let pf = Pidfile::create(&path, "lvs-monitord").unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
        drop(pf);
        assert!(!path.exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unreadable_pid_still_refuses() {
        let dir = temp_dir("garbage");
        let path = dir.join("x.pid");
        let holder = File::create(&path).unwrap();
        let _lock = Flock::lock(holder, FlockArg::LockExclusiveNonblock).unwrap();
        let err = Pidfile::create(&path, "lvs-x").unwrap_err();
        assert_eq!(err.to_string(), "lvs-x is already running (pid unknown)");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_directory_is_an_io_error() {
        let err = Pidfile::create(Path::new("/nonexistent-lvs/x.pid"), "lvs-x").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("pidfile /nonexistent-lvs/x.pid: cannot open: "),
            "{err}"
        );
    }
}
