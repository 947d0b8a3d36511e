//! [`run`]: the start-up sequence every daemon shares, in the one right order.
//!
//! 1. load the configuration (the file of `-c`, or the defaults); with `--check-config`, print
//!    the verdict and exit 0/1;
//! 2. a bad configuration: print `lvs-x: FILE:LINE:COL: reason` on stderr, exit 1;
//! 3. daemonize unless `-f` (still single-threaded here);
//! 4. logging (syslog, and stderr with `-f`);
//! 5. the run directory (`--rundir`/`$LVS_RUNDIR`//run/lvs) and the locked pidfile in it;
//! 6. the daemon's closure, given the config and a [`Startup`]: it binds its sockets, registers
//!    [`Signals`](crate::signals::Signals), starts its threads, then calls
//!    [`Startup::ready`] (the starting process exits 0 here; `event=daemon_start`) and runs its
//!    loop with the returned [`Context`] until a stop signal;
//! 7. `event=daemon_stop`, the pidfile is removed, and the exit code is returned.
//!
//! An error before `ready` reaches the starting terminal on stderr and makes it exit 1; an error
//! after it is logged. See the crate documentation for a complete `main`.

use std::cell::RefCell;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;

use log::Level;

use crate::cli::DaemonArgs;
use crate::config::{self, ConfigError};
use crate::daemonize::{Readiness, daemonize};
use crate::logging::{self, LogOptions};
use crate::pidfile::Pidfile;

/// The error a daemon's closure may return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A function that loads the configuration: the file when a path is given, defaults
/// otherwise. [`config::load_or_default`] for configs with no extra checks.
pub type Loader<C> = fn(Option<&Path>) -> Result<C, ConfigError>;

/// What a running daemon knows about itself, and how it reloads its configuration.
#[derive(Debug)]
pub struct Context<C> {
    name: String,
    rundir: PathBuf,
    config_path: Option<PathBuf>,
    foreground: bool,
    loader: Loader<C>,
}

impl<C> Context<C> {
    /// The display name, e.g. `lvs-director` (also the syslog ident).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The run directory.
    pub fn rundir(&self) -> &Path {
        &self.rundir
    }

    /// `<rundir>/<daemon>.sock`, for [`lvs_proto::rundir::bind_socket`].
    pub fn socket_path(&self) -> PathBuf {
        lvs_proto::rundir::socket_path(&self.rundir, &self.name)
    }

    /// `<rundir>/<daemon>.pid`.
    pub fn pidfile_path(&self) -> PathBuf {
        lvs_proto::rundir::pidfile_path(&self.rundir, &self.name)
    }

    /// The configuration file, if one was given.
    pub fn config_path(&self) -> Option<&Path> {
        self.config_path.as_deref()
    }

    /// Running with `-f`.
    pub fn foreground(&self) -> bool {
        self.foreground
    }

    /// Loads the configuration again (for SIGHUP). A valid one is returned, and logged as
    /// `event=config_reload file=...`; an invalid one is logged as `event=config_rejected
    /// file=... line=... col=... reason="..."` and `None` is returned: keep running the old.
    pub fn reload(&self) -> Option<C> {
        let file = self
            .config_path
            .as_ref()
            .map_or_else(|| "none".to_owned(), |p| p.display().to_string());
        match (self.loader)(self.config_path.as_deref()) {
            Ok(config) => {
                crate::event!(Level::Info, "config_reload", file = file, status = "ok");
                Some(config)
            }
            Err(e) => {
                e.log_rejected();
                None
            }
        }
    }
}

/// The daemon while it starts: everything in [`Context`] (through `Deref`), plus
/// [`ready`](Startup::ready).
#[derive(Debug)]
pub struct Startup<C> {
    ctx: Context<C>,
    readiness: Rc<RefCell<Option<Readiness>>>,
}

impl<C> Deref for Startup<C> {
    type Target = Context<C>;
    fn deref(&self) -> &Context<C> {
        &self.ctx
    }
}

impl<C> Startup<C> {
    /// Start-up is complete: logs `event=daemon_start` and lets the starting process exit 0
    /// (its stdout and stderr are let go). Errors after this point are only logged.
    ///
    /// A daemon that returns (even `Ok`) without calling this has not started: the starting
    /// process exits 1.
    pub fn ready(self) -> Context<C> {
        let config = self
            .ctx
            .config_path
            .as_ref()
            .map_or_else(|| "none".to_owned(), |p| p.display().to_string());
        crate::event!(
            Level::Info,
            "daemon_start",
            version = env!("CARGO_PKG_VERSION"),
            config = config,
            rundir = self.ctx.rundir.display(),
            foreground = if self.ctx.foreground { "yes" } else { "no" },
        );
        let readiness = self.readiness.borrow_mut().take();
        if let Some(readiness) = readiness
            && let Err(e) = readiness.ready()
        {
            crate::event!(Level::Warn, "detach_failed", error = e);
        }
        self.ctx
    }
}

/// Runs a daemon named `name` (`lvs-director` or `director`) with the common options `args`,
/// the configuration loader `load` and the daemon's own code `daemon`; returns the process's
/// exit code. See the module documentation for the sequence.
pub fn run<C, F>(name: &str, args: &DaemonArgs, load: Loader<C>, daemon: F) -> ExitCode
where
    F: FnOnce(C, Startup<C>) -> Result<(), BoxError>,
{
    let name = lvs_proto::rundir::display_name(name);
    let config_path = args.config_path();

    let config = load(config_path);
    if args.check_config {
        return config::check_config(config_path, &config);
    }
    let config = match config {
        Ok(config) => config,
        Err(e) => {
            print_error(&name, &e);
            return ExitCode::FAILURE;
        }
    };

    let readiness = if args.foreground {
        Readiness::foreground()
    } else {
        match daemonize() {
            Ok(readiness) => readiness,
            Err(e) => {
                eprintln!("{name}: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    // From here on, in the daemon. Until `ready`, stderr is still the starting terminal's.
    let readiness = Rc::new(RefCell::new(Some(readiness)));
    let fail_early = |e: &dyn std::fmt::Display| {
        // Before `ready` the admin is still watching stderr; syslog gets it too.
        if !args.foreground {
            print_error(&name, e);
        }
        crate::event!(Level::Error, "daemon_stop", status = "failed", error = e);
        ExitCode::FAILURE
    };

    let mut log_opts = LogOptions::new(&name, args.log_level, args.foreground);
    log_opts.syslog = !args.no_syslog;
    if let Err(e) = logging::init(log_opts) {
        print_error(&name, &e);
        return ExitCode::FAILURE;
    }

    let rundir = args.rundir();
    if let Err(e) = lvs_proto::rundir::ensure(&rundir, None) {
        return fail_early(&e);
    }
    let pidfile = match Pidfile::create(&lvs_proto::rundir::pidfile_path(&rundir, &name), &name) {
        Ok(pidfile) => pidfile,
        Err(e) => return fail_early(&e),
    };

    let startup = Startup {
        ctx: Context {
            name: name.clone(),
            rundir,
            config_path: config_path.map(Path::to_path_buf),
            foreground: args.foreground,
            loader: load,
        },
        readiness: Rc::clone(&readiness),
    };
    let result = daemon(config, startup);
    let code = match result {
        Ok(()) => {
            crate::event!(Level::Info, "daemon_stop", status = "ok");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let pending = readiness.borrow_mut().take();
            if pending.as_ref().is_some_and(Readiness::is_waiting) {
                print_error(&name, &e);
            }
            crate::event!(Level::Error, "daemon_stop", status = "failed", error = e);
            *readiness.borrow_mut() = pending;
            ExitCode::FAILURE
        }
    };
    // Remove the pidfile before the starting process (if still waiting) learns the outcome.
    drop(pidfile);
    drop(readiness);
    log::logger().flush();
    code
}

/// `lvs-x: message` on stderr, without repeating the name when the message starts with it
/// (`lvs-x is already running (pid N)`).
fn print_error(name: &str, e: &dyn std::fmt::Display) {
    let text = e.to_string();
    if text.starts_with(name) {
        eprintln!("{text}");
    } else {
        eprintln!("{name}: {text}");
    }
}
