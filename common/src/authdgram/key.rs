//! The shared HMAC-SHA256 key and the checks on its file.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Shortest key accepted.
pub const MIN_KEY_LEN: usize = 16;
/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 1024;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Why a key could not be used. `what` names the key in messages ("heartbeat", "sync").
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be opened or read.
    #[error("{what} key file {path}: {source}")]
    Io {
        /// Which key.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The key file is not a regular file.
    #[error("{what} key file {path}: not a regular file")]
    NotRegular {
        /// Which key.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// Group or others have some access to the key file.
    #[error(
        "{what} key file {path}: mode {mode:04o} gives group or others access; refusing a shared key others can read (chmod 600 {path})"
    )]
    Permissions {
        /// Which key.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file belongs to a user other than root or the daemon's user.
    #[error("{what} key file {path}: owned by uid {owner}, expected root or uid {euid}")]
    Owner {
        /// Which key.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The daemon's effective uid.
        euid: u32,
    },
    /// The key is too short or too long.
    #[error("{what} key{}: {len} bytes, must be {MIN_KEY_LEN} to {MAX_KEY_LEN}", path_suffix(.path))]
    Length {
        /// Which key.
        what: &'static str,
        /// The file, when the key came from one.
        path: Option<PathBuf>,
        /// The key's length after the final line ending was removed.
        len: usize,
    },
}

fn path_suffix(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!(" file {}", p.display()))
        .unwrap_or_default()
}

/// The shared key, kept only as the keyed HMAC state. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct AuthKey {
    mac: HmacSha256,
}

impl fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthKey(..)")
    }
}

impl AuthKey {
    /// A key from bytes ([`MIN_KEY_LEN`] to [`MAX_KEY_LEN`] of them).
    pub fn from_bytes(key: &[u8]) -> Result<AuthKey, KeyError> {
        let too = || KeyError::Length {
            what: "shared",
            path: None,
            len: key.len(),
        };
        if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&key.len()) {
            return Err(too());
        }
        let mac = HmacSha256::new_from_slice(key).map_err(|_| too())?;
        Ok(AuthKey { mac })
    }

    /// Reads the key from a file: the whole content, less one final line ending (`\n` or
    /// `\r\n`). The file must be a regular file that neither group nor others can access
    /// (`0600` or `0400`), owned by root or by the daemon's user. The checks use the opened
    /// file, so a rename between check and read cannot slip another file in. The bytes read
    /// are zeroed before this returns.
    pub fn from_file(path: &Path, what: &'static str) -> Result<AuthKey, KeyError> {
        let p = || path.to_path_buf();
        let io_err = |source| KeyError::Io {
            what,
            path: p(),
            source,
        };
        let mut file = File::open(path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        if !meta.file_type().is_file() {
            return Err(KeyError::NotRegular { what, path: p() });
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                what,
                path: p(),
                mode,
            });
        }
        let euid = nix::unistd::geteuid().as_raw();
        if meta.uid() != 0 && meta.uid() != euid {
            return Err(KeyError::Owner {
                what,
                path: p(),
                owner: meta.uid(),
                euid,
            });
        }
        // Room for the longest key and its line ending up front: the vector never
        // reallocates, so no copy of the key is left behind unzeroed.
        let mut content = Vec::with_capacity(MAX_KEY_LEN + 4);
        let read = file
            .by_ref()
            .take(MAX_KEY_LEN as u64 + 3)
            .read_to_end(&mut content);
        let result = read.map_err(io_err).and_then(|_| {
            let mut key: &[u8] = &content;
            if let Some(rest) = key.strip_suffix(b"\n") {
                key = rest.strip_suffix(b"\r").unwrap_or(rest);
            }
            AuthKey::from_bytes(key).map_err(|e| match e {
                KeyError::Length { len, .. } => KeyError::Length {
                    what,
                    path: Some(p()),
                    len,
                },
                other => other,
            })
        });
        content.fill(0);
        std::hint::black_box(&content);
        result
    }

    /// The keyed HMAC state, for [`crate::authdgram::seal`].
    pub(crate) fn mac(&self) -> HmacSha256 {
        self.mac.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lvs-authkey-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn key_file_checks() {
        let d = tmpdir("key");
        let p = d.join("authkey");
        std::fs::write(&p, b"a-long-enough-shared-secret\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = AuthKey::from_file(&p, "sync").unwrap_err();
        assert!(
            matches!(e, KeyError::Permissions { mode: 0o644, .. }),
            "{e}"
        );
        assert!(e.to_string().starts_with("sync key file"), "{e}");
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            AuthKey::from_file(&p, "sync"),
            Err(KeyError::Permissions { .. })
        ));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let from_file = AuthKey::from_file(&p, "sync").unwrap();
        // The final newline is not part of the key.
        let direct = AuthKey::from_bytes(b"a-long-enough-shared-secret").unwrap();
        assert_eq!(
            crate::authdgram::tag(&from_file, b"x"),
            crate::authdgram::tag(&direct, b"x")
        );
        assert_eq!(format!("{from_file:?}"), "AuthKey(..)");
        std::fs::write(&p, b"short\r\n").unwrap();
        let e = AuthKey::from_file(&p, "heartbeat").unwrap_err();
        assert!(matches!(e, KeyError::Length { len: 5, .. }), "{e}");
        assert!(e.to_string().contains("heartbeat key file"), "{e}");
        std::fs::write(&p, vec![b'k'; MAX_KEY_LEN + 1]).unwrap();
        assert!(matches!(
            AuthKey::from_file(&p, "sync"),
            Err(KeyError::Length { .. })
        ));
        assert!(matches!(
            AuthKey::from_file(&d.join("nope"), "sync"),
            Err(KeyError::Io { .. })
        ));
        assert!(matches!(
            AuthKey::from_file(&d, "sync"),
            Err(KeyError::NotRegular { .. })
        ));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn key_file_owned_by_someone_else_is_refused() {
        if !lvs_testsupport::root_or_skip("key_file_owned_by_someone_else_is_refused") {
            return;
        }
        let d = tmpdir("owner");
        let p = d.join("authkey");
        std::fs::write(&p, b"a-long-enough-shared-secret").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        nix::unistd::chown(&p, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        assert!(matches!(
            AuthKey::from_file(&p, "sync"),
            Err(KeyError::Owner { owner: 65534, .. })
        ));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
