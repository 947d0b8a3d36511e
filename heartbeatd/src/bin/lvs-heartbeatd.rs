//! `lvs-heartbeatd`: primary/backup heartbeats over UDP and a serial line; takes over the
//! virtual addresses when the peer dies. See `etc/lvs-heartbeatd.toml` for the configuration
//! and [`lvs_heartbeatd::daemon`] for what it does.

use std::process::ExitCode;

use clap::Parser;
use lvs_common::DaemonArgs;

/// Heartbeats between a primary and a backup director (UDP and serial line, HMAC-SHA256);
/// takes over the virtual addresses (netlink, gratuitous ARP) and tells the director to go
/// active when the peer is dead on every medium; releases them in reverse.
///
/// The addresses live on a TUN device that dies with the process, so even a SIGKILL releases
/// them. A watched interface without carrier is a fault (the peer takes over).
///
/// SIGTERM releases the addresses, sends a farewell heartbeat (the peer takes over at once)
/// and sets the director standby before exiting; SIGUSR1 logs the state; SIGHUP applies a
/// valid new configuration. State on <rundir>/heartbeatd.sock (HaStatus).
#[derive(Parser, Debug)]
#[command(
    name = "lvs-heartbeatd",
    version,
    about,
    long_about,
    verbatim_doc_comment
)]
struct Cli {
    #[command(flatten)]
    daemon: DaemonArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    lvs_common::run(
        "lvs-heartbeatd",
        &cli.daemon,
        lvs_heartbeatd::config::load,
        lvs_heartbeatd::daemon::run,
    )
}
