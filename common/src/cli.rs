//! The command-line options every daemon has, to flatten into its own clap parser.
//!
//! ```
//! use clap::Parser;
//! use lvs_common::cli::DaemonArgs;
//!
//! /// The load balancer.
//! #[derive(Parser, Debug)]
//! #[command(name = "lvs-director", version, about)]
//! struct Cli {
//!     #[command(flatten)]
//!     daemon: DaemonArgs,
//!     // ... the director's own options ...
//! }
//!
//! let cli = Cli::parse_from(["lvs-director", "-f", "-c", "/etc/lvs/director.toml"]);
//! assert!(cli.daemon.foreground);
//! ```
//!
//! | option | meaning |
//! | --- | --- |
//! | `-c, --config FILE` | the TOML configuration; without it the daemon runs on built-in defaults |
//! | `-f, --foreground` | do not daemonize; log to stderr as well as syslog |
//! | `--check-config` | load and check the configuration, print `FILE: configuration OK` or the error, exit 0 or 1 |
//! | `--rundir DIR` | where the socket and pidfile go; else `$LVS_RUNDIR` if set and not empty, else `/run/lvs` |
//! | `--log-level LEVEL` | `error`, `warn`, `info` (default), `debug` or `trace` |
//! | `--no-syslog` | with `-f` only: log to stderr alone (for a terminal, or a supervisor that keeps stderr) |
//!
//! `-V/--version` and `-h/--help` come from the daemon's own parser: give it
//! `#[command(version)]` and clap prints `lvs-director 0.1.0` (name and the crate's version)
//! on stdout and exits 0, before anything else happens. Wrong options print clap's usage
//! error on stderr and exit 2.

use std::path::{Path, PathBuf};

use clap::Args;
use log::LevelFilter;

/// The common daemon options. Flatten with `#[command(flatten)]`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct DaemonArgs {
    /// Configuration file (TOML); built-in defaults without it
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Stay in the foreground and log to stderr as well
    #[arg(short = 'f', long = "foreground")]
    pub foreground: bool,

    /// Check the configuration, print the result and exit (0 if valid, 1 if not)
    #[arg(long = "check-config")]
    pub check_config: bool,

    /// Directory for the socket and pidfile [env: LVS_RUNDIR] [default: /run/lvs]
    #[arg(long = "rundir", value_name = "DIR")]
    pub rundir: Option<PathBuf>,

    /// Most detailed log level: error, warn, info, debug or trace
    #[arg(long = "log-level", value_name = "LEVEL", default_value = "info")]
    pub log_level: LevelFilter,

    /// Do not log to syslog (only with --foreground; stderr still gets every line)
    #[arg(long = "no-syslog", requires = "foreground")]
    pub no_syslog: bool,
}

impl DaemonArgs {
    /// The run directory: `--rundir`, else `$LVS_RUNDIR`, else `/run/lvs`
    /// (see [`lvs_proto::rundir::resolve`]).
    pub fn rundir(&self) -> PathBuf {
        lvs_proto::rundir::resolve(self.rundir.as_deref())
    }

    /// The configuration file, if one was given.
    pub fn config_path(&self) -> Option<&Path> {
        self.config.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use clap::error::ErrorKind;

    #[derive(Parser, Debug)]
    #[command(name = "lvs-demo", version)]
    struct Cli {
        #[command(flatten)]
        daemon: DaemonArgs,
        #[arg(long)]
        extra: bool,
    }

    #[test]
    fn defaults() {
        let cli = Cli::try_parse_from(["lvs-demo"]).unwrap();
        assert_eq!(
            cli.daemon,
            DaemonArgs {
                config: None,
                foreground: false,
                check_config: false,
                rundir: None,
                log_level: LevelFilter::Info,
                no_syslog: false,
            }
        );
    }

    #[test]
    fn all_options() {
        let cli = Cli::try_parse_from([
            "lvs-demo",
            "-c",
            "/etc/lvs/demo.toml",
            "-f",
            "--check-config",
            "--rundir",
            "/tmp/run",
            "--log-level",
            "debug",
            "--no-syslog",
            "--extra",
        ])
        .unwrap();
        let d = &cli.daemon;
        assert_eq!(d.config_path(), Some(Path::new("/etc/lvs/demo.toml")));
        assert!(d.foreground && d.check_config && d.no_syslog && cli.extra);
        assert_eq!(d.rundir(), Path::new("/tmp/run"));
        assert_eq!(d.log_level, LevelFilter::Debug);
        let cli = Cli::try_parse_from(["lvs-demo", "--config=/x", "--foreground"]).unwrap();
        assert_eq!(cli.daemon.config_path(), Some(Path::new("/x")));
    }

    #[test]
    fn refusals_and_version() {
        let kind = |args: &[&str]| Cli::try_parse_from(args).unwrap_err().kind();
        assert_eq!(
            kind(&["lvs-demo", "--no-syslog"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            kind(&["lvs-demo", "--log-level", "loud"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(kind(&["lvs-demo", "-c"]), ErrorKind::InvalidValue);
        assert_eq!(kind(&["lvs-demo", "-V"]), ErrorKind::DisplayVersion);
        assert_eq!(kind(&["lvs-demo", "--version"]), ErrorKind::DisplayVersion);
        let version = Cli::try_parse_from(["lvs-demo", "-V"])
            .unwrap_err()
            .to_string();
        assert_eq!(
            version.trim(),
            format!("lvs-demo {}", env!("CARGO_PKG_VERSION"))
        );
    }
}
