//! `lvsadm --import keepalived|ldirectord FILE -o DIR`: a keepalived or ldirectord site
//! moved over in one command. The source is read into [`model::Site`] (every line of it
//! either mapped, with its file and line kept beside what it became, or kept as a note saying
//! why not), then written as the suite's files by [`emit`]:
//!
//! - `DIR/rules`: the virtual services in ipvsadm-save format (what the director loads);
//! - `DIR/director.toml`: names the rules file;
//! - `DIR/monitord.toml`: the checks, sorry servers, quorum and alerts;
//! - `DIR/heartbeatd.toml` and its key `DIR/heartbeat.key`, when the source has VRRP.
//!
//! A syntax error writes nothing. Exit codes: 0 written, 1 the source is refused (file, line
//! and reason on stderr) or a file could not be written, 2 a bad command line.

use std::fmt;
use std::path::{Path, PathBuf};

pub mod emit;
pub mod keepalived;
pub mod ldirectord;
pub mod model;
pub mod tokens;

/// Where a line of the source is: its file as named (an included file by its own path) and
/// its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    pub file: String,
    pub line: usize,
}

impl Origin {
    pub fn new(file: &str, line: usize) -> Origin {
        Origin {
            file: file.to_owned(),
            line,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// Why an import did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {reason}", path = path.display())]
    Read { path: PathBuf, reason: String },
    /// The source is not valid keepalived.conf / ldirectord.cf.
    #[error("{at}: {reason}")]
    Syntax { at: Origin, reason: String },
    #[error("{path}: {reason}", path = path.display())]
    Write { path: PathBuf, reason: String },
    #[error("{0}")]
    Usage(String),
}

impl ImportError {
    pub fn syntax(at: Origin, reason: impl Into<String>) -> ImportError {
        ImportError::Syntax {
            at,
            reason: reason.into(),
        }
    }
}

/// Which program's configuration the source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Keepalived,
    Ldirectord,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Keepalived => "keepalived",
            Kind::Ldirectord => "ldirectord",
        }
    }
}

/// What an import wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub files: Vec<PathBuf>,
    /// Lines of the source kept as comments.
    pub notes: usize,
    /// The heartbeat key was made now (it must be copied to the peer).
    pub new_key: Option<PathBuf>,
}

/// Reads `source` as `kind` and writes the suite's files into `dir` (made if missing).
pub fn import(kind: Kind, source: &Path, dir: &Path) -> Result<Written, ImportError> {
    let site = match kind {
        Kind::Keepalived => keepalived::read(source)?,
        Kind::Ldirectord => ldirectord::read(source)?,
    };
    std::fs::create_dir_all(dir).map_err(|e| ImportError::Write {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    // Absolute, so that the files name each other wherever the daemons are started from.
    let dir = std::fs::canonicalize(dir).map_err(|e| ImportError::Write {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    let files = emit::render(&site, &dir)?;
    let mut written = Written {
        files: Vec::new(),
        notes: site.note_count(),
        new_key: None,
    };
    for (name, text) in &files {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| ImportError::Write {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        written.files.push(path);
    }
    if site.ha.is_some() {
        let key = dir.join(emit::KEY_FILE);
        if !key.exists() {
            make_key(&key)?;
            written.new_key = Some(key.clone());
        }
        written.files.push(key);
    }
    Ok(written)
}

/// A new heartbeat key as the README makes one: 32 random bytes, mode 0600.
fn make_key(path: &Path) -> Result<(), ImportError> {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let err = |e: std::io::Error| ImportError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .map_err(err)?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(&key))
        .map_err(err)
}

/// `lvsadm --import KIND FILE -o DIR`: the arguments after `--import`. Returns the exit code.
pub fn cli(args: &[String]) -> i32 {
    match parse_cli(args)
        .and_then(|(kind, source, dir)| import(kind, &source, &dir).map(|w| (kind, source, w)))
    {
        Ok((kind, source, w)) => {
            for f in &w.files {
                println!("wrote {}", f.display());
            }
            println!(
                "{} lines of {} ({}) could not be mapped: they are comments in the files above, each with its line and why",
                w.notes,
                source.display(),
                kind.name()
            );
            if let Some(key) = w.new_key {
                println!(
                    "made a new heartbeat key {}: copy this same file to the other director",
                    key.display()
                );
            }
            0
        }
        Err(ImportError::Usage(m)) => {
            eprintln!("{m}");
            eprintln!("Usage: lvsadm --import keepalived|ldirectord FILE -o DIR");
            2
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

fn parse_cli(args: &[String]) -> Result<(Kind, PathBuf, PathBuf), ImportError> {
    let mut it = args.iter();
    let kind = match it.next().map(String::as_str) {
        Some("keepalived") => Kind::Keepalived,
        Some("ldirectord") => Kind::Ldirectord,
        Some(other) => {
            return Err(ImportError::Usage(format!(
                "--import: `{other}` is neither keepalived nor ldirectord"
            )));
        }
        None => {
            return Err(ImportError::Usage(
                "--import needs keepalived or ldirectord".into(),
            ));
        }
    };
    let mut source = None;
    let mut dir = None;
    while let Some(a) = it.next() {
        if a == "-o" || a == "--output" {
            let v = it
                .next()
                .ok_or_else(|| ImportError::Usage(format!("{a} needs a directory")))?;
            dir = Some(PathBuf::from(v));
        } else if let Some(v) = a.strip_prefix("--output=") {
            dir = Some(PathBuf::from(v));
        } else if source.is_none() && !a.starts_with('-') {
            source = Some(PathBuf::from(a));
        } else {
            return Err(ImportError::Usage(format!("--import: unexpected `{a}`")));
        }
    }
    let source =
        source.ok_or_else(|| ImportError::Usage("--import needs the file to read".into()))?;
    let dir = dir.ok_or_else(|| ImportError::Usage("--import needs -o DIR".into()))?;
    Ok((kind, source, dir))
}
