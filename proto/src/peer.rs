//! Who is on the other end of a socket, and whether they may talk to us.
//!
//! Decided by the kernel's `SO_PEERCRED`, never by what the peer claims in its Hello.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::AsFd;

use nix::sys::socket::{getsockopt, sockopt};
use nix::unistd::{Gid, Group, Pid, Uid, User};

use crate::error::{ProtoError, Result};
use crate::message::Role;

/// The peer process's credentials at `connect()` time, as the kernel recorded them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials {
    /// Process id (0 if the peer is in a pid namespace we cannot see).
    pub pid: Pid,
    /// Effective user id.
    pub uid: Uid,
    /// Effective (primary) group id.
    pub gid: Gid,
}

impl Credentials {
    /// Reads `SO_PEERCRED` from a connected Unix socket.
    pub fn of(socket: &impl AsFd) -> Result<Credentials> {
        let cred = getsockopt(socket, sockopt::PeerCredentials)
            .map_err(|e| ProtoError::io("cannot read peer credentials", io::Error::from(e)))?;
        Ok(Credentials {
            pid: Pid::from_raw(cred.pid()),
            uid: Uid::from_raw(cred.uid()),
            gid: Gid::from_raw(cred.gid()),
        })
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} uid {} gid {}", self.pid, self.uid, self.gid)
    }
}

/// What a request handler knows about its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// From `SO_PEERCRED`: trustworthy.
    pub credentials: Credentials,
    /// From the Hello: informative only.
    pub role: Role,
}

impl fmt::Display for PeerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} ({})", self.role, self.credentials)
    }
}

/// Who may use a socket: root always, plus the members of one optional group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccessPolicy {
    group: Option<(Gid, String)>,
}

impl AccessPolicy {
    /// Only uid 0.
    pub fn root_only() -> AccessPolicy {
        AccessPolicy { group: None }
    }

    /// Root and members of `gid` (primary or supplementary).
    pub fn root_and_group(gid: Gid) -> AccessPolicy {
        // The name is only for messages; a group without a name is shown by number.
        let name = Group::from_gid(gid)
            .ok()
            .flatten()
            .map_or_else(|| gid.to_string(), |g| g.name);
        AccessPolicy {
            group: Some((gid, name)),
        }
    }

    /// The allowed group, if any.
    pub fn group(&self) -> Option<Gid> {
        self.group.as_ref().map(|(gid, _)| *gid)
    }

    /// Ok if the peer is root or in the group; looks the peer's groups up only when needed.
    pub fn check(&self, peer: &Credentials) -> Result<()> {
        self.check_with(peer, supplementary_groups)
    }

    /// [`AccessPolicy::check`] with the group lookup supplied by the caller.
    pub fn check_with(
        &self,
        peer: &Credentials,
        groups_of: impl FnOnce(&Credentials) -> Vec<Gid>,
    ) -> Result<()> {
        if peer.uid.is_root() {
            return Ok(());
        }
        if let Some((gid, _)) = &self.group
            && (peer.gid == *gid || groups_of(peer).contains(gid))
        {
            return Ok(());
        }
        Err(ProtoError::PermissionDenied {
            uid: peer.uid.as_raw(),
            group: self.group.as_ref().map(|(_, name)| name.clone()),
        })
    }
}

/// The peer's supplementary groups: from `/proc/<pid>/status` (what the process really has),
/// else from the group database for its uid (when `/proc` hides the process).
pub fn supplementary_groups(peer: &Credentials) -> Vec<Gid> {
    if peer.pid.as_raw() > 0
        && let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", peer.pid))
        && let Some(groups) = parse_status_groups(&status)
    {
        return groups;
    }
    let Ok(Some(user)) = User::from_uid(peer.uid) else {
        return Vec::new();
    };
    let Ok(name) = CString::new(user.name) else {
        return Vec::new();
    };
    nix::unistd::getgrouplist(&name, peer.gid).unwrap_or_default()
}

/// The `Groups:` line of a `/proc/<pid>/status` file.
pub fn parse_status_groups(status: &str) -> Option<Vec<Gid>> {
    let line = status.lines().find_map(|l| l.strip_prefix("Groups:"))?;
    line.split_whitespace()
        .map(|g| g.parse().ok().map(Gid::from_raw))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(uid: u32, gid: u32) -> Credentials {
        Credentials {
            pid: Pid::from_raw(1),
            uid: Uid::from_raw(uid),
            gid: Gid::from_raw(gid),
        }
    }

    #[test]
    fn parses_groups_line() {
        let status = "Name:\tbash\nGid:\t100\t100\t100\t100\nGroups:\t4 24 27 \nNgid:\t0\n";
        assert_eq!(
            parse_status_groups(status),
            Some(vec![Gid::from_raw(4), Gid::from_raw(24), Gid::from_raw(27)])
        );
        assert_eq!(parse_status_groups("Groups:\t\n"), Some(vec![]));
        assert_eq!(parse_status_groups("Name:\tx\n"), None);
    }

    #[test]
    fn root_primary_and_supplementary_groups_pass() {
        let policy = AccessPolicy {
            group: Some((Gid::from_raw(4242), "lvs".into())),
        };
        let none = |_: &Credentials| Vec::new();
        assert!(policy.check_with(&creds(0, 0), none).is_ok());
        assert!(policy.check_with(&creds(1000, 4242), none).is_ok());
        assert!(
            policy
                .check_with(&creds(1000, 1000), |_| vec![Gid::from_raw(4242)])
                .is_ok()
        );
        let err = policy.check_with(&creds(1000, 1000), none).unwrap_err();
        assert_eq!(
            err.to_string(),
            "permission denied: uid 1000 is not root and not in group lvs"
        );
        let err = AccessPolicy::root_only()
            .check_with(&creds(1000, 1000), none)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "permission denied: uid 1000 is not root and no group is allowed on this socket"
        );
    }

    #[test]
    fn own_process_groups_are_readable() {
        let me = Credentials {
            pid: nix::unistd::getpid(),
            uid: Uid::effective(),
            gid: Gid::effective(),
        };
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        assert_eq!(
            Some(supplementary_groups(&me)),
            parse_status_groups(&status)
        );
    }
}
