//! A complete (tiny) daemon built on `lvs-common`, used by the end-to-end tests and as the
//! template for the real ones.
//!
//! It serves its greeting on `<rundir>/demo.sock` (one line per connection), reloads it on
//! SIGHUP, logs its state on SIGUSR1, and on SIGTERM/SIGINT removes its socket and pidfile.
//!
//! ```text
//! cargo run -p lvs-common --example demo_daemon -- -f --rundir /tmp/lvs-demo -c demo.toml
//! ```
//!
//! with `demo.toml`:
//!
//! ```toml
//! greeting = "hello"     # what a client connecting to demo.sock reads
//! fail_start = false     # fail after daemonizing, before ready (tests the start-up pipe)
//! ```

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;
use log::Level;
use lvs_common::{BoxError, DaemonArgs, Signal, Signals, Startup, config, event, signals};
use mio::net::UnixListener;
use mio::{Events, Interest, Poll, Token};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    greeting: String,
    fail_start: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            greeting: "hello".to_owned(),
            fail_start: false,
        }
    }
}

/// Demonstration daemon for lvs-common.
#[derive(Parser, Debug)]
#[command(name = "lvs-demo", version, about)]
struct Cli {
    #[command(flatten)]
    daemon: DaemonArgs,
}

const SIGNALS: Token = Token(0);
const LISTENER: Token = Token(1);

fn main() -> ExitCode {
    let cli = Cli::parse();
    lvs_common::run(
        "lvs-demo",
        &cli.daemon,
        config::load_or_default::<Config>,
        daemon,
    )
}

fn daemon(mut config: Config, startup: Startup<Config>) -> Result<(), BoxError> {
    // Start-up: any error returned here is printed on the starting terminal, exit code 1.
    let mut poll = Poll::new()?;
    let mut signals = Signals::new(poll.registry(), SIGNALS)?;
    let socket_path = startup.socket_path();
    let std_listener = lvs_proto::rundir::bind_socket(&socket_path, startup.name(), None)?;
    std_listener.set_nonblocking(true)?;
    let mut listener = UnixListener::from_std(std_listener);
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    if config.fail_start {
        let _ = std::fs::remove_file(&socket_path);
        return Err("fail_start is set in the configuration".into());
    }

    let ctx = startup.ready();
    let mut events = Events::with_capacity(64);
    let mut served: u64 = 0;
    loop {
        signals::poll(&mut poll, &mut events, None)?;
        for ev in events.iter() {
            match ev.token() {
                SIGNALS => {
                    for signal in signals.pending() {
                        match signal {
                            Signal::Stop => {
                                // Undo what we changed: the socket (the pidfile is run's).
                                drop(listener);
                                std::fs::remove_file(&socket_path)?;
                                return Ok(());
                            }
                            Signal::Reload => {
                                if let Some(new) = ctx.reload() {
                                    config = new;
                                }
                            }
                            Signal::Dump => {
                                event!(
                                    Level::Info,
                                    "state",
                                    greeting = config.greeting,
                                    served = served
                                );
                            }
                        }
                    }
                }
                LISTENER => loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            served += 1;
                            // A fresh socket's buffer takes one short line without blocking.
                            let _ = stream.write_all(format!("{}\n", config.greeting).as_bytes());
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            event!(Level::Warn, "accept_failed", error = e);
                            break;
                        }
                    }
                },
                _ => {}
            }
        }
    }
}
