//! The users file: one user per line, `NAME ROLE HASH`, where HASH is an Argon2id PHC string
//! (`$argon2id$v=19$m=...`). `#` starts a comment. Written by `lvs-webmon --add-user`, mode
//! 0600, replaced atomically (write a temporary file, rename).

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, BufRead, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees everything, changes things.
    Admin,
    /// Sees everything, changes nothing.
    Viewer,
}

impl Role {
    /// `admin` or `viewer`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    /// Parses `admin` / `viewer`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why the users file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// Reading or writing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A line is malformed.
    #[error("{}:{line}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// Why.
        reason: String,
    },
    /// A bad name or password was given to `--add-user`.
    #[error("{0}")]
    Refused(String),
}

/// One user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Their role.
    pub role: Role,
    /// The Argon2id PHC string.
    pub hash: String,
}

/// The users, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Users {
    users: BTreeMap<String, User>,
}

/// A user name: letters, digits, `.`, `_`, `-`, 1 to 64 of them.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn argon2() -> Argon2<'static> {
    // OWASP's first choice for Argon2id: 19 MiB, 2 passes, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// An Argon2id hash of `password` with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, UsersError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UsersError::Refused(format!("cannot hash the password: {e}")))
}

impl Users {
    /// Reads the file; a missing file is an empty list (nobody can log in yet).
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Users::default()),
            Err(source) => {
                return Err(UsersError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let mut users = Users::default();
        for (i, line) in io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|source| UsersError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            let invalid = |reason: String| UsersError::Invalid {
                path: path.to_path_buf(),
                line: i + 1,
                reason,
            };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            let [name, role, hash] = f[..] else {
                return Err(invalid("expected NAME ROLE HASH".into()));
            };
            if !valid_name(name) {
                return Err(invalid(format!("bad user name {name:?}")));
            }
            let role = Role::parse(role)
                .ok_or_else(|| invalid(format!("role {role:?} is not admin or viewer")))?;
            match PasswordHash::new(hash) {
                Ok(h) if h.algorithm.as_str() == "argon2id" => {}
                _ => return Err(invalid("the hash is not an Argon2id PHC string".into())),
            }
            if users.users.contains_key(name) {
                return Err(invalid(format!("user {name} is listed twice")));
            }
            users.users.insert(
                name.to_owned(),
                User {
                    role,
                    hash: hash.to_owned(),
                },
            );
        }
        Ok(users)
    }

    /// The user, if known.
    pub fn get(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// No users at all.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The user's role if the password is right. An unknown name costs as much as a known
    /// one, so that timing does not tell which names exist.
    pub fn verify(&self, name: &str, password: &str) -> Option<Role> {
        static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let (hash, role) = match self.users.get(name) {
            Some(u) => (u.hash.as_str(), Some(u.role)),
            None => (
                DUMMY
                    .get_or_init(|| hash_password("not a password").unwrap_or_default())
                    .as_str(),
                None,
            ),
        };
        let parsed = PasswordHash::new(hash).ok()?;
        let ok = argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        if ok { role } else { None }
    }

    /// Adds or replaces a user.
    pub fn set(&mut self, name: &str, role: Role, hash: String) {
        self.users.insert(name.to_owned(), User { role, hash });
    }

    /// Writes the file (mode 0600) through a temporary file and a rename.
    pub fn save(&self, path: &Path) -> Result<(), UsersError> {
        let io_err = |source| UsersError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(io_err)?;
        }
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err)?;
        let mut text = String::from(
            "# lvs-webmon users: NAME ROLE ARGON2ID-HASH. Managed by `lvs-webmon --add-user`.\n",
        );
        for (name, u) in &self.users {
            text.push_str(&format!("{name} {} {}\n", u.role, u.hash));
        }
        f.write_all(text.as_bytes()).map_err(io_err)?;
        f.sync_all().map_err(io_err)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(io_err)?;
        std::fs::rename(&tmp, path).map_err(io_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_verify() {
        let dir = std::env::temp_dir().join(format!("webmon-users-{}", std::process::id()));
        let path = dir.join("users");
        let mut u = Users::default();
        u.set(
            "alice",
            Role::Admin,
            hash_password("correct horse").unwrap(),
        );
        u.set("bob", Role::Viewer, hash_password("battery").unwrap());
        u.save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = Users::load(&path).unwrap();
        assert_eq!(back, u);
        assert_eq!(back.verify("alice", "correct horse"), Some(Role::Admin));
        assert_eq!(back.verify("alice", "wrong"), None);
        assert_eq!(back.verify("bob", "battery"), Some(Role::Viewer));
        assert_eq!(back.verify("carol", "battery"), None);
        std::fs::write(
            &path,
            "alice admin $argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$aGFzaA\n",
        )
        .unwrap();
        let e = Users::load(&path).unwrap_err();
        assert!(e.to_string().contains(":1: the hash"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
