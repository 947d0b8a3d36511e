//! Dropping root after start-up, for the daemons that need it only to start (lvs-lockmgr,
//! lvs-webmon): they bind their sockets and open their files as root, then become the
//! configured `user` for good.
//!
//! [`RunAs::become_user`] sets the user's supplementary groups, its group and its user id
//! (real, effective and saved: a process that was root then has no capabilities left), and
//! then checks that root cannot be had back: `setuid(0)` must fail and the effective and
//! permitted capability sets must be empty. glibc applies the change to every thread of the
//! process, so threads started before it are dropped too.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use log::Level;
use nix::unistd::{Gid, Group, Uid, User};

/// Why the daemon could not become its user.
#[derive(Debug, thiserror::Error)]
pub enum PrivDropError {
    #[error("user {0:?}: no such user")]
    NoUser(String),
    #[error("group {0:?}: no such group")]
    NoGroup(String),
    #[error("cannot look up {what}: {source}")]
    Lookup {
        what: String,
        source: nix::errno::Errno,
    },
    #[error("cannot become user {user} (uid {uid}, gid {gid}): {step} failed: {source}")]
    Switch {
        user: String,
        uid: Uid,
        gid: Gid,
        step: &'static str,
        source: nix::errno::Errno,
    },
    #[error(
        "running as uid {uid}, not root: cannot become user {user}; start as root or leave `user` out"
    )]
    NotRoot { uid: Uid, user: String },
    #[error("still privileged after becoming user {user}: {what}")]
    StillPrivileged { user: String, what: String },
    #[error("cannot give {path} to user {user}: {source}")]
    Chown {
        path: PathBuf,
        user: String,
        source: std::io::Error,
    },
}

/// The user (and group) a daemon runs as after start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub user: String,
    pub uid: Uid,
    pub gid: Gid,
}

impl RunAs {
    /// `user` from the password database, with `group` (by name) or else the user's own.
    pub fn lookup(user: &str, group: Option<&str>) -> Result<RunAs, PrivDropError> {
        let lookup = |what: String| move |source| PrivDropError::Lookup { what, source };
        let u = User::from_name(user)
            .map_err(lookup(format!("user {user:?}")))?
            .ok_or_else(|| PrivDropError::NoUser(user.to_owned()))?;
        let gid = match group {
            None => u.gid,
            Some(g) => {
                Group::from_name(g)
                    .map_err(lookup(format!("group {g:?}")))?
                    .ok_or_else(|| PrivDropError::NoGroup(g.to_owned()))?
                    .gid
            }
        };
        Ok(RunAs {
            user: user.to_owned(),
            uid: u.uid,
            gid,
        })
    }

    /// Gives `dir` and everything in it to the user (while still root): a state directory the
    /// daemon goes on writing after the drop. Symbolic links are not followed.
    pub fn give(&self, dir: &Path) -> Result<(), PrivDropError> {
        let fail = |path: &Path, source: std::io::Error| PrivDropError::Chown {
            path: path.to_path_buf(),
            user: self.user.clone(),
            source,
        };
        let mut todo = vec![dir.to_path_buf()];
        while let Some(path) = todo.pop() {
            std::os::unix::fs::lchown(&path, Some(self.uid.as_raw()), Some(self.gid.as_raw()))
                .map_err(|e| fail(&path, e))?;
            let meta = std::fs::symlink_metadata(&path).map_err(|e| fail(&path, e))?;
            if meta.is_dir() {
                for entry in std::fs::read_dir(&path).map_err(|e| fail(&path, e))? {
                    todo.push(entry.map_err(|e| fail(&path, e))?.path());
                }
            }
        }
        Ok(())
    }

    /// Becomes the user for good and checks that root cannot be had back; logs
    /// `event=privileges_dropped`. Already running as the user (started by it): nothing to do.
    pub fn become_user(&self) -> Result<(), PrivDropError> {
        let euid = nix::unistd::geteuid();
        if euid == self.uid && nix::unistd::getuid() == self.uid {
            return Ok(());
        }
        if !euid.is_root() {
            return Err(PrivDropError::NotRoot {
                uid: euid,
                user: self.user.clone(),
            });
        }
        let fail = |step: &'static str| {
            let (user, uid, gid) = (self.user.clone(), self.uid, self.gid);
            move |source| PrivDropError::Switch {
                user,
                uid,
                gid,
                step,
                source,
            }
        };
        let name = CString::new(self.user.as_str())
            .map_err(|_| PrivDropError::NoUser(self.user.clone()))?;
        nix::unistd::initgroups(&name, self.gid).map_err(fail("initgroups"))?;
        nix::unistd::setgid(self.gid).map_err(fail("setgid"))?;
        nix::unistd::setuid(self.uid).map_err(fail("setuid"))?;
        self.check()?;
        crate::event!(
            Level::Info,
            "privileges_dropped",
            user = self.user,
            uid = self.uid,
            gid = self.gid
        );
        Ok(())
    }

    /// Root cannot be had back: ids all the user's, `setuid(0)` refused, no capabilities.
    fn check(&self) -> Result<(), PrivDropError> {
        let still = |what: String| PrivDropError::StillPrivileged {
            user: self.user.clone(),
            what,
        };
        let ids = nix::unistd::getresuid().map_err(|e| still(format!("getresuid: {e}")))?;
        if [ids.real, ids.effective, ids.saved] != [self.uid; 3] {
            return Err(still(format!(
                "user ids {} {} {}",
                ids.real, ids.effective, ids.saved
            )));
        }
        let gids = nix::unistd::getresgid().map_err(|e| still(format!("getresgid: {e}")))?;
        if [gids.real, gids.effective, gids.saved] != [self.gid; 3] {
            return Err(still(format!(
                "group ids {} {} {}",
                gids.real, gids.effective, gids.saved
            )));
        }
        if !self.uid.is_root() && nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
            return Err(still("setuid(0) succeeded".into()));
        }
        let status = std::fs::read_to_string("/proc/self/status")
            .map_err(|e| still(format!("/proc/self/status: {e}")))?;
        for key in ["CapEff:", "CapPrm:", "CapAmb:"] {
            let set = status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(str::trim)
                .unwrap_or("?");
            if !self.uid.is_root() && u64::from_str_radix(set, 16) != Ok(0) {
                return Err(still(format!("{key} {set}")));
            }
        }
        Ok(())
    }
}

/// The `user` and `group` keys of a daemon's configuration file, checked against the system's
/// users and groups (so `--check-config` refuses a user that does not exist): `None` when
/// neither is given (the daemon stays root).
pub fn from_config(
    src: &crate::config::Source,
    user: Option<&toml::Spanned<String>>,
    group: Option<&toml::Spanned<String>>,
) -> Result<Option<RunAs>, crate::config::ConfigError> {
    match (user, group) {
        (None, None) => Ok(None),
        (None, Some(g)) => Err(src.error_at(g.span(), "group needs user")),
        (Some(u), g) => {
            let name = g.map(|g| g.get_ref().as_str());
            RunAs::lookup(u.get_ref(), name).map(Some).map_err(|e| {
                let span = match (&e, g) {
                    (PrivDropError::NoGroup(_), Some(g)) => g.span(),
                    _ => u.span(),
                };
                src.error_at(span, e.to_string())
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_names_what_is_missing() {
        let root = RunAs::lookup("root", None).unwrap();
        assert_eq!((root.uid, root.gid), (Uid::from_raw(0), Gid::from_raw(0)));
        let e = RunAs::lookup("no-such-user-lvs", None).unwrap_err();
        assert!(e.to_string().contains("no such user"), "{e}");
        let e = RunAs::lookup("root", Some("no-such-group-lvs")).unwrap_err();
        assert!(e.to_string().contains("no such group"), "{e}");
    }
}
