//! One scheduler plugin: a `.so` that passed every check, loaded for good.

use std::ffi::{CStr, c_char};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW, Symbol};
use lvs_sched_abi::{ABI_MAJOR, ENTRY_SYMBOL, EntryFn, MAGIC, NAME_MAX, OPS_SIZE_V1_0, Ops};

use crate::LoadError;

/// The fields every version of the table starts with. Read first, so that nothing beyond the
/// size the plugin declares is ever read.
#[repr(C)]
struct Header {
    magic: u32,
    abi_major: u16,
    abi_minor: u16,
    size: u32,
}

/// A loaded, checked scheduler plugin. Shared by every service that uses it.
#[derive(Debug)]
pub struct Plugin {
    name: String,
    description: String,
    path: PathBuf,
    /// The file's identity when loaded, to tell a replaced file from the same one.
    file_id: (u64, u64),
    ops: &'static Ops,
    quarantined: AtomicBool,
    quarantine_reason: Mutex<String>,
}

impl Plugin {
    /// Check and load `path`. The library is never unloaded.
    pub fn load(path: &Path) -> Result<Plugin, LoadError> {
        let meta = fs::metadata(path).map_err(|e| LoadError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mode = meta.permissions().mode();
        // A plugin runs as root inside the director: a file anyone can replace is a backdoor.
        if mode & 0o002 != 0 {
            return Err(LoadError::WorldWritable {
                path: path.to_path_buf(),
                mode: mode & 0o7777,
            });
        }
        check_elf(path)?;

        // RTLD_NOW: an unresolved symbol fails here, not in the middle of forwarding.
        // RTLD_LOCAL: two plugins may define the same internal symbols without clashing.
        // SAFETY: loading a shared object runs its initialisers. The file passed the checks
        // above and sits in a directory the sysadmin configured for plugins; that trust is the
        // premise of a plugin system, as with `modprobe`.
        let lib = unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) }.map_err(|e| {
            LoadError::Open {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }
        })?;
        // Never unloaded: see the crate documentation.
        let lib: &'static Library = Box::leak(Box::new(lib));

        // SAFETY: the symbol's type is fixed by the ABI (`lvs_sched.h`): a function taking no
        // argument and returning a pointer to the table.
        let entry: Symbol<EntryFn> =
            unsafe { lib.get(ENTRY_SYMBOL.as_bytes()) }.map_err(|_| LoadError::NoEntry {
                path: path.to_path_buf(),
                symbol: ENTRY_SYMBOL,
            })?;
        // SAFETY: calling the plugin's entry function, as the ABI defines it.
        let table = unsafe { entry() };
        if table.is_null() {
            return Err(LoadError::NullTable {
                path: path.to_path_buf(),
                symbol: ENTRY_SYMBOL,
            });
        }
        // SAFETY: every version of the table begins with these 12 bytes; the pointer is to a
        // static inside the library, which is never unloaded.
        let header = unsafe { &*table.cast::<Header>() };
        if header.magic != MAGIC {
            return Err(LoadError::BadMagic {
                path: path.to_path_buf(),
                found: header.magic,
                expected: MAGIC,
            });
        }
        if header.abi_major != ABI_MAJOR {
            return Err(LoadError::AbiMajor {
                path: path.to_path_buf(),
                plugin: header.abi_major,
                ours: ABI_MAJOR,
            });
        }
        // A newer minor may be larger; what we read is always the 1.0 prefix.
        if (header.size as usize) < OPS_SIZE_V1_0 {
            return Err(LoadError::TableTooShort {
                path: path.to_path_buf(),
                size: header.size,
                major: header.abi_major,
                minor: header.abi_minor,
                need: OPS_SIZE_V1_0,
            });
        }
        // SAFETY: the table declares at least the 1.0 size, so the whole `Ops` is in bounds,
        // and it lives as long as the never-unloaded library.
        let ops: &'static Ops = unsafe { &*table };

        let name = read_name(path, ops.name)?;
        let description = if ops.description.is_null() {
            String::new()
        } else {
            // SAFETY: a non-null description is a NUL-terminated static string (ABI).
            let d = unsafe { CStr::from_ptr(ops.description) };
            d.to_string_lossy().into_owned()
        };
        let missing = [
            ("create", ops.create.is_none()),
            ("destroy", ops.destroy.is_none()),
            ("schedule", ops.schedule.is_none()),
        ]
        .into_iter()
        .find(|&(_, missing)| missing);
        if let Some((callback, _)) = missing {
            return Err(LoadError::MissingCallback {
                path: path.to_path_buf(),
                name,
                callback,
            });
        }
        if ops.flags != 0 {
            return Err(LoadError::UnknownFlags {
                path: path.to_path_buf(),
                name,
                flags: ops.flags,
            });
        }
        Ok(Plugin {
            name,
            description,
            path: path.to_path_buf(),
            file_id: (meta.dev(), meta.ino()),
            ops,
            quarantined: AtomicBool::new(false),
            quarantine_reason: Mutex::new(String::new()),
        })
    }

    /// A plugin whose table is compiled into this program rather than loaded: the same thunks
    /// as a `.so`, used for the built-in fallback and in tests.
    pub fn from_static(ops: &'static Ops, origin: &str) -> Result<Plugin, LoadError> {
        let path = PathBuf::from(origin);
        let name = read_name(&path, ops.name)?;
        Ok(Plugin {
            name,
            description: String::new(),
            path,
            file_id: (0, 0),
            ops,
            quarantined: AtomicBool::new(false),
            quarantine_reason: Mutex::new(String::new()),
        })
    }

    /// The name it declares (what `-s` takes).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its one-line description.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn file_id(&self) -> (u64, u64) {
        self.file_id
    }

    pub(crate) fn ops(&self) -> &'static Ops {
        self.ops
    }

    /// Has it failed once? Then no service calls it again.
    #[inline]
    pub fn is_quarantined(&self) -> bool {
        self.quarantined.load(Ordering::Relaxed)
    }

    /// Why it was quarantined, if it was.
    pub fn quarantine_reason(&self) -> Option<String> {
        self.is_quarantined().then(|| {
            self.quarantine_reason
                .lock()
                .map(|r| r.clone())
                .unwrap_or_default()
        })
    }

    /// Take it out of service for good (until a new file replaces it). Logs once.
    pub(crate) fn quarantine(&self, reason: String) {
        if let Ok(mut r) = self.quarantine_reason.lock()
            && r.is_empty()
        {
            *r = reason.clone();
        }
        if !self.quarantined.swap(true, Ordering::Relaxed) {
            lvs_common::event!(
                log::Level::Error,
                "sched_quarantined",
                plugin = self.name,
                path = self.path.display(),
                reason = reason,
                fallback = "rr",
            );
        }
    }
}

/// `dlopen`'s own message for a text file is obscure; say plainly what is wrong.
fn check_elf(path: &Path) -> Result<(), LoadError> {
    let mut magic = [0u8; 4];
    let read = fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic));
    match read {
        Ok(()) if &magic == b"\x7fELF" => Ok(()),
        Ok(()) => Err(LoadError::NotElf {
            path: path.to_path_buf(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(LoadError::NotElf {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(LoadError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

fn read_name(path: &Path, name: *const c_char) -> Result<String, LoadError> {
    let bad = |reason: &str| LoadError::BadName {
        path: path.to_path_buf(),
        reason: reason.into(),
    };
    if name.is_null() {
        return Err(bad("the table has no name"));
    }
    // SAFETY: a non-null name is a NUL-terminated static string (ABI). We stop at NAME_MAX + 1
    // bytes through `to_bytes`' length check below only after the scan; a plugin that violates
    // the ABI with an unterminated string is not something a check here could catch.
    let raw = unsafe { CStr::from_ptr(name) };
    let bytes = raw.to_bytes();
    if bytes.is_empty() || bytes.len() > NAME_MAX {
        return Err(bad(&format!(
            "names are 1 to {NAME_MAX} bytes, this one is {}",
            bytes.len()
        )));
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-')
    {
        return Err(bad(&format!(
            "{:?} uses characters outside [a-z0-9_-]",
            String::from_utf8_lossy(bytes)
        )));
    }
    Ok(String::from_utf8_lossy(bytes).into_owned())
}
