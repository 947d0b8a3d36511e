//! What can go wrong finding, loading and running a scheduler plugin, in words a sysadmin can
//! act on.

use std::path::PathBuf;

/// Why one `.so` file was not accepted as a scheduler plugin.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum LoadError {
    #[error("{path}: cannot read: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}: not an ELF shared object")]
    NotElf { path: PathBuf },
    #[error("{path}: refusing to load a plugin that anyone may write to (mode {mode:o})")]
    WorldWritable { path: PathBuf, mode: u32 },
    #[error("{path}: cannot load: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("{path}: not an lvs-rs scheduler plugin: it does not export {symbol}")]
    NoEntry { path: PathBuf, symbol: &'static str },
    #[error("{path}: {symbol}() returned no table")]
    NullTable { path: PathBuf, symbol: &'static str },
    #[error(
        "{path}: bad magic number {found:#010x} (expected {expected:#010x}): not an lvs-rs scheduler table"
    )]
    BadMagic {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error("plugin {path} was built for scheduler ABI {plugin}; this director speaks {ours}")]
    AbiMajor {
        path: PathBuf,
        plugin: u16,
        ours: u16,
    },
    #[error(
        "{path}: its table is {size} bytes, too short for ABI {major}.{minor}, which needs {need}"
    )]
    TableTooShort {
        path: PathBuf,
        size: u32,
        major: u16,
        minor: u16,
        need: usize,
    },
    #[error("{path}: bad scheduler name: {reason}")]
    BadName { path: PathBuf, reason: String },
    #[error("{path}: scheduler {name:?} has no {callback} function")]
    MissingCallback {
        path: PathBuf,
        name: String,
        callback: &'static str,
    },
    #[error(
        "{path}: scheduler {name:?} sets table flags {flags:#x}, which this director does not know"
    )]
    UnknownFlags {
        path: PathBuf,
        name: String,
        flags: u32,
    },
}

/// Errors of the registry and of a running scheduler.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum HostError {
    #[error(
        "no scheduler plugin provides {name:?} (searched {})",
        searched_list(searched)
    )]
    NotFound {
        name: String,
        searched: Vec<PathBuf>,
    },
    #[error("scheduler {name:?} is quarantined after an error: {reason}")]
    Quarantined { name: String, reason: String },
    #[error("scheduler {name:?} refused the service: {message} (code {code})")]
    Create {
        name: String,
        code: i32,
        message: String,
    },
    #[error("scheduler options contain a NUL byte")]
    OptionsNul,
    #[error("destination id {0} is already in the list")]
    DuplicateDest(u32),
    #[error("no destination with id {0}")]
    NoSuchDest(u32),
}

fn searched_list(dirs: &[PathBuf]) -> String {
    let names: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    names.join(", ")
}
