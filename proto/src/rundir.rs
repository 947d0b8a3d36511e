//! The run directory: where the daemons' sockets and pidfiles live.
//!
//! One directory per suite (default `/run/lvs`), so that two complete suites can run on one
//! host (in two network namespaces) by pointing them at two directories.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid};

use crate::error::{ProtoError, Result};

/// Where the run directory is when neither `--rundir` nor `LVS_RUNDIR` says otherwise.
pub const DEFAULT_RUNDIR: &str = "/run/lvs";
/// The environment variable that moves the run directory.
pub const ENV_VAR: &str = "LVS_RUNDIR";
/// Mode of the run directory: the owner (root) may do anything, the configured group may
/// enter and read, nobody else may even look.
pub const DIR_MODE: u32 = 0o750;
/// Mode of a socket file: connecting needs write permission, so owner and group only.
pub const SOCKET_MODE: u32 = 0o660;

/// The run directory: the `--rundir` flag if given, else `$LVS_RUNDIR` if set and not empty,
/// else [`DEFAULT_RUNDIR`].
pub fn resolve(cli: Option<&Path>) -> PathBuf {
    resolve_with(cli, std::env::var_os(ENV_VAR))
}

/// [`resolve`] with the environment value passed in (for tests and callers that read the
/// environment themselves).
pub fn resolve_with(cli: Option<&Path>, env: Option<OsString>) -> PathBuf {
    if let Some(dir) = cli {
        return dir.to_path_buf();
    }
    match env {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(DEFAULT_RUNDIR),
    }
}

/// Creates `dir` (and missing parents) with mode [`DIR_MODE`], and gives it to `group`.
///
/// An existing directory we own is fixed up (mode, group). One owned by someone else is
/// accepted only if it is not accessible by everyone: we will not tighten or loosen a
/// directory that is not ours (think `--rundir /tmp`).
pub fn ensure(dir: &Path, group: Option<Gid>) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|e| ProtoError::io(format!("cannot create run directory {}", dir.display()), e))?;
    let meta = fs::symlink_metadata(dir)
        .map_err(|e| ProtoError::io(format!("cannot inspect {}", dir.display()), e))?;
    if !meta.file_type().is_dir() {
        return Err(unsafe_dir(
            dir,
            "is not a directory (symbolic links are refused)",
        ));
    }
    if meta.uid() != Uid::effective().as_raw() {
        if meta.mode() & 0o007 != 0 {
            return Err(unsafe_dir(
                dir,
                &format!(
                    "is owned by uid {} and accessible by everyone (mode {:o}); use a private directory",
                    meta.uid(),
                    meta.mode() & 0o7777
                ),
            ));
        }
        return Ok(());
    }
    if meta.mode() & 0o7777 != DIR_MODE {
        fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))
            .map_err(|e| ProtoError::io(format!("cannot chmod {}", dir.display()), e))?;
    }
    if let Some(gid) = group {
        chown_group(dir, gid)?;
    }
    Ok(())
}

/// `<dir>/<daemon>.sock`, e.g. `/run/lvs/director.sock`.
pub fn socket_path(dir: &Path, daemon: &str) -> PathBuf {
    dir.join(format!("{}.sock", short_name(daemon)))
}

/// `<dir>/<daemon>.pid`, e.g. `/run/lvs/director.pid`.
pub fn pidfile_path(dir: &Path, daemon: &str) -> PathBuf {
    dir.join(format!("{}.pid", short_name(daemon)))
}

/// The name logs and messages use: `director` becomes `lvs-director`.
pub fn display_name(daemon: &str) -> String {
    format!("lvs-{}", short_name(daemon))
}

fn short_name(daemon: &str) -> &str {
    daemon.strip_prefix("lvs-").unwrap_or(daemon)
}

/// Binds a listening socket at `path` for `daemon`, mode [`SOCKET_MODE`], group `group`.
///
/// A socket file left by a dead daemon is removed, but only after a test connect is refused:
/// if somebody answers, this fails with [`ProtoError::AlreadyRunning`] and leaves it alone.
pub fn bind_socket(path: &Path, daemon: &str, group: Option<Gid>) -> Result<UnixListener> {
    let already_running = || ProtoError::AlreadyRunning {
        daemon: display_name(daemon),
        path: path.to_path_buf(),
    };
    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(ProtoError::NotASocket {
                path: path.to_path_buf(),
            });
        }
        Ok(_) => match UnixStream::connect(path) {
            Ok(_) => return Err(already_running()),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                crate::event!(
                    log::Level::Info,
                    "stale_socket_removed",
                    socket = path.display()
                );
                match fs::remove_file(path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        return Err(ProtoError::io(
                            format!("cannot remove stale socket {}", path.display()),
                            e,
                        ));
                    }
                    _ => {}
                }
            }
            // Removed between our look and our connect: fine, the path is free.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ProtoError::io(
                    format!("cannot check whether {} is in use", path.display()),
                    e,
                ));
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(ProtoError::io(
                format!("cannot inspect {}", path.display()),
                e,
            ));
        }
    }
    let listener = UnixListener::bind(path).map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            // Another instance bound it between our check and our bind.
            already_running()
        } else {
            ProtoError::io(format!("cannot bind {}", path.display()), e)
        }
    })?;
    fs::set_permissions(path, fs::Permissions::from_mode(SOCKET_MODE))
        .map_err(|e| ProtoError::io(format!("cannot chmod {}", path.display()), e))?;
    if let Some(gid) = group {
        chown_group(path, gid)?;
    }
    Ok(listener)
}

fn chown_group(path: &Path, gid: Gid) -> Result<()> {
    nix::unistd::chown(path, None, Some(gid)).map_err(|e| {
        ProtoError::io(
            format!("cannot give {} to group {gid}", path.display()),
            io::Error::from(e),
        )
    })
}

fn unsafe_dir(path: &Path, reason: &str) -> ProtoError {
    ProtoError::UnsafeRunDir {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_prefers_flag_then_env_then_default() {
        let flag = Path::new("/tmp/flag");
        assert_eq!(resolve_with(Some(flag), Some("/tmp/env".into())), flag);
        assert_eq!(
            resolve_with(None, Some("/tmp/env".into())),
            Path::new("/tmp/env")
        );
        assert_eq!(
            resolve_with(None, Some("".into())),
            Path::new(DEFAULT_RUNDIR)
        );
        assert_eq!(resolve_with(None, None), Path::new(DEFAULT_RUNDIR));
    }

    #[test]
    fn paths_and_names() {
        let dir = Path::new("/run/lvs");
        assert_eq!(
            socket_path(dir, "director"),
            Path::new("/run/lvs/director.sock")
        );
        assert_eq!(
            socket_path(dir, "lvs-director"),
            Path::new("/run/lvs/director.sock")
        );
        assert_eq!(
            pidfile_path(dir, "monitord"),
            Path::new("/run/lvs/monitord.pid")
        );
        assert_eq!(display_name("director"), "lvs-director");
    }

    #[test]
    fn ensure_creates_private_directory() {
        let base = std::env::temp_dir().join(format!("lvs-proto-rundir-{}", std::process::id()));
        let dir = base.join("a/b");
        ensure(&dir, None).unwrap();
        let mode = fs::metadata(&dir).unwrap().mode() & 0o7777;
        assert_eq!(mode, DIR_MODE);
        // Loosened by someone else: fixed up again.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        ensure(&dir, Some(Gid::effective())).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o7777, DIR_MODE);
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn not_a_socket_is_left_alone() {
        let base = std::env::temp_dir().join(format!("lvs-proto-notsock-{}", std::process::id()));
        ensure(&base, None).unwrap();
        let path = socket_path(&base, "director");
        fs::write(&path, b"precious").unwrap();
        let err = bind_socket(&path, "director", None).unwrap_err();
        assert!(matches!(err, ProtoError::NotASocket { .. }), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"precious");
        fs::remove_dir_all(&base).unwrap();
    }
}
