//! Reading a daemon's TOML configuration, with errors that name file, line and column.
//!
//! Conventions for every daemon's config structs:
//!
//! - `#[derive(Deserialize)]` with `#[serde(deny_unknown_fields)]` on every struct, so a
//!   misspelt key is an error at its line instead of being silently ignored;
//! - `#[serde(default)]` where a built-in default makes sense, and `impl Default` for the whole
//!   config, so a daemon started without `-c` runs on defaults;
//! - checks serde cannot express (ranges, cross references) go in the daemon's own loader
//!   function, which reports them with [`Source::error_at`] (wrap the field in
//!   [`toml::Spanned`] to know where it was) or [`Source::error`].
//!
//! A loader is a plain function `fn(Option<&Path>) -> Result<C, ConfigError>`; the one for
//! configs with no extra checks is [`load_or_default`]. [`crate::run()`] calls it at start and on
//! every SIGHUP, and keeps the running config when it fails.

use std::fmt;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::de::DeserializeOwned;

/// A configuration that cannot be used. `Display` is `FILE:LINE:COL: reason` when the place is
/// known, `FILE: reason` otherwise; always one line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file was read, but is not acceptable.
    #[error("{}", Located { path, location: location.as_ref(), reason })]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Where in the file, when known.
        location: Option<Location>,
        /// What is wrong, one line.
        reason: String,
    },
}

/// A place in a text file, both 1-based; the column counts characters, not bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1, in characters.
    pub column: usize,
}

struct Located<'a> {
    path: &'a Path,
    location: Option<&'a Location>,
    reason: &'a str,
}

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Loaders may build `ConfigError::Invalid` themselves: one line whatever they put in.
        let reason = one_line_reason(self.reason);
        match self.location {
            Some(l) => write!(
                f,
                "{}:{}:{}: {}",
                self.path.display(),
                l.line,
                l.column,
                reason
            ),
            None => write!(f, "{}: {}", self.path.display(), reason),
        }
    }
}

impl ConfigError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ConfigError::Io { path, .. } | ConfigError::Invalid { path, .. } => path,
        }
    }

    /// Line and column, when known.
    pub fn location(&self) -> Option<Location> {
        match self {
            ConfigError::Io { .. } => None,
            ConfigError::Invalid { location, .. } => *location,
        }
    }

    /// The reason alone, without file and place.
    pub fn reason(&self) -> String {
        match self {
            ConfigError::Io { source, .. } => format!("cannot read: {source}"),
            ConfigError::Invalid { reason, .. } => reason.clone(),
        }
    }

    /// Logs `event=config_rejected file=... line=... col=... reason="..."` at error level.
    pub fn log_rejected(&self) {
        let mut ev = crate::event::Event::new("config_rejected");
        ev.push("file", self.path().display());
        if let Some(l) = self.location() {
            ev.push("line", l.line).push("col", l.column);
        }
        ev.push("reason", self.reason());
        ev.log(log::Level::Error);
    }
}

/// A configuration file's text and path, kept together so errors can point into it.
#[derive(Debug, Clone)]
pub struct Source {
    path: PathBuf,
    text: String,
}

impl Source {
    /// Reads `path`.
    pub fn read(path: &Path) -> Result<Source, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Source::new(path, text))
    }

    /// A source from text already in memory; `path` is only used in messages.
    pub fn new(path: &Path, text: impl Into<String>) -> Source {
        Source {
            path: path.to_path_buf(),
            text: text.into(),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Deserializes the whole text as TOML.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        toml::from_str(&self.text).map_err(|e| {
            let location = e.span().map(|span| location_of(&self.text, span.start));
            ConfigError::Invalid {
                path: self.path.clone(),
                location,
                reason: one_line_reason(e.message()),
            }
        })
    }

    /// An error at the start of `span` (a byte range, as [`toml::Spanned::span`] gives).
    pub fn error_at(&self, span: Range<usize>, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.clone(),
            location: Some(location_of(&self.text, span.start)),
            reason: one_line_reason(&reason.into()),
        }
    }

    /// An error about the file as a whole.
    pub fn error(&self, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.clone(),
            location: None,
            reason: one_line_reason(&reason.into()),
        }
    }
}

/// Reads and deserializes `path`.
pub fn load_toml<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    Source::read(path)?.parse()
}

/// Deserializes `text`; `path` is only used in messages.
pub fn parse_toml<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
    Source::new(path, text).parse()
}

/// The loader for configs with no checks beyond serde: the file when a path is given, else
/// `T::default()`.
pub fn load_or_default<T: DeserializeOwned + Default>(
    path: Option<&Path>,
) -> Result<T, ConfigError> {
    match path {
        Some(path) => load_toml(path),
        None => Ok(T::default()),
    }
}

/// What `--check-config` does with a load result: prints `FILE: configuration OK` on stdout
/// (`built-in defaults: configuration OK` without a file) and returns success, or prints the
/// error on stderr and returns failure (exit code 1).
pub fn check_config<T>(path: Option<&Path>, result: &Result<T, ConfigError>) -> ExitCode {
    match result {
        Ok(_) => {
            match path {
                Some(path) => println!("{}: configuration OK", path.display()),
                None => println!("built-in defaults: configuration OK"),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Line and column (1-based, column in characters) of byte `offset` in `text`.
pub fn location_of(text: &str, offset: usize) -> Location {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Location {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
    }
}

/// `reason` as one line: its lines joined with "; ", and control characters (a lone CR, an
/// escape sequence) shown escaped, since reasons quote the file and must not let it rewrite
/// the line a terminal or log shows. What every configuration error's reason goes through.
pub fn one_line_reason(reason: &str) -> String {
    let reason = reason.trim();
    let joined = if reason.contains('\n') {
        reason
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ")
    } else {
        reason.to_owned()
    };
    if joined.chars().any(is_unsafe_control) {
        joined
            .chars()
            .map(|c| {
                if is_unsafe_control(c) {
                    c.escape_debug().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect()
    } else {
        joined
    }
}

/// A control character that changes how a line shows (a tab does not).
fn is_unsafe_control(c: char) -> bool {
    c.is_control() && c != '\t'
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, Default, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Conf {
        #[serde(default)]
        name: String,
        #[serde(default)]
        servers: Vec<Server>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Server {
        addr: String,
        weight: Option<toml::Spanned<u32>>,
    }

    fn path() -> &'static Path {
        Path::new("/etc/lvs/test.toml")
    }

    #[test]
    fn good_file_parses() {
        let c: Conf = parse_toml(
            "name = \"x\"\n[[servers]]\naddr = \"10.0.0.2:80\"\nweight = 3\n",
            path(),
        )
        .unwrap();
        assert_eq!(c.name, "x");
        assert_eq!(*c.servers[0].weight.as_ref().unwrap().get_ref(), 3);
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let text = "name = \"x\"\n\n[[servers]]\naddr = = 1\n";
        let e = parse_toml::<Conf>(text, path()).unwrap_err();
        let loc = e.location().unwrap();
        assert_eq!(loc.line, 4, "{e}");
        assert_eq!(loc.column, 8, "{e}");
        let shown = e.to_string();
        assert!(shown.starts_with("/etc/lvs/test.toml:4:8: "), "{shown}");
        assert!(!shown.contains('\n'), "{shown}");
    }

    /// Found by the fuzzer (config_alert, config_heartbeatd, config_monitord,
    /// config_director): a CR inside a quoted key, a value or a regex reached the "one line"
    /// error as it was.
    #[test]
    fn control_characters_from_the_file_are_shown_escaped() {
        let e = parse_toml::<Conf>("\"\\rg\" = [\"ops@%xam.sh\"]   # gu\n", path()).unwrap_err();
        let shown = e.to_string();
        assert!(!shown.contains(['\r', '\n']), "{shown:?}");
        assert!(
            shown.contains("`\\rg`"),
            "the key as the file has it: {shown:?}"
        );
        let src = Source::new(path(), "name = 1\n");
        let shown = src
            .error_at(0..1, "bad \"a\rb\x1b[2Kc\"\nsecond line")
            .to_string();
        assert_eq!(
            shown,
            "/etc/lvs/test.toml:1:1: bad \"a\\rb\\u{1b}[2Kc\"; second line"
        );
        // Built by a loader without going through `Source`: one line all the same.
        let direct = ConfigError::Invalid {
            path: path().to_path_buf(),
            location: None,
            reason: "x\ry\nz".into(),
        };
        assert_eq!(direct.to_string(), "/etc/lvs/test.toml: x\\ry; z");
    }

    #[test]
    fn unknown_field_points_at_the_key() {
        let text = "name = \"x\"\n[[servers]]\naddr = \"a\"\n  wieght = 3\n";
        let e = parse_toml::<Conf>(text, path()).unwrap_err();
        let shown = e.to_string();
        assert!(shown.starts_with("/etc/lvs/test.toml:4:3: "), "{shown}");
        assert!(shown.contains("unknown field `wieght`"), "{shown}");
    }

    #[test]
    fn missing_field_and_wrong_type() {
        let e = parse_toml::<Conf>("[[servers]]\nweight = 1\n", path()).unwrap_err();
        assert!(e.to_string().contains("missing field `addr`"), "{e}");
        assert_eq!(e.location().unwrap().line, 1, "{e}");
        let e = parse_toml::<Conf>("name = 5\n", path()).unwrap_err();
        assert_eq!(e.location(), Some(Location { line: 1, column: 8 }), "{e}");
    }

    #[test]
    fn semantic_errors_point_into_the_file() {
        let src = Source::new(path(), "[[servers]]\naddr = \"a\"\nweight = 70000\n");
        let c: Conf = src.parse().unwrap();
        let w = c.servers[0].weight.as_ref().unwrap();
        let e = src.error_at(w.span(), "weight must be at most 65535");
        assert_eq!(
            e.to_string(),
            "/etc/lvs/test.toml:3:10: weight must be at most 65535"
        );
        assert_eq!(
            src.error("no\nservers").to_string(),
            "/etc/lvs/test.toml: no; servers"
        );
    }

    #[test]
    fn io_error_names_the_file() {
        let e = load_toml::<Conf>(Path::new("/nonexistent/lvs.toml")).unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.starts_with("/nonexistent/lvs.toml: cannot read: "),
            "{shown}"
        );
        assert_eq!(e.path(), Path::new("/nonexistent/lvs.toml"));
    }

    #[test]
    fn defaults_without_a_file() {
        assert_eq!(load_or_default::<Conf>(None).unwrap(), Conf::default());
    }

    #[test]
    fn location_counts_characters() {
        let text = "a = \"é\"\nbé = 1";
        assert_eq!(location_of(text, 0), Location { line: 1, column: 1 });
        let off = text.find("= 1").unwrap();
        assert_eq!(location_of(text, off), Location { line: 2, column: 4 });
        assert_eq!(location_of(text, 10_000), Location { line: 2, column: 7 });
    }
}
