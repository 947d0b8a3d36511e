//! `lvs-heartbeatd`: primary/backup heartbeats over UDP and a serial line; takes over the
//! virtual addresses when the peer dies. Or, with `mode = "anycast"`, announces them over BGP
//! while this director can serve them. See `etc/lvs-heartbeatd.toml` for the configuration
//! and [`lvs_heartbeatd::daemon`] and [`lvs_heartbeatd::anycast`] for what it does.

use std::process::ExitCode;

use clap::Parser;
use lvs_common::DaemonArgs;
use lvs_heartbeatd::settings::{self, Settings};

/// Heartbeats between a primary and a backup director (UDP and serial line, HMAC-SHA256);
/// takes over the virtual addresses (netlink, gratuitous ARP) and tells the director to go
/// active when the peer is dead on every medium; releases them in reverse.
///
/// The addresses live on a TUN device that dies with the process, so even a SIGKILL releases
/// them. A watched interface without carrier is a fault (the peer takes over).
///
/// With mode = "anycast": every director is active behind ECMP routers; each virtual address
/// is announced through BIRD (its control socket) only while the director answers, is active,
/// has its connection table synced and a healthy real server for every service of the
/// address; withdrawn at once otherwise, on SIGTERM and on --drain (the director keeps
/// forwarding).
///
/// SIGTERM releases the addresses, sends a farewell heartbeat (the peer takes over at once)
/// and sets the director standby before exiting; SIGUSR1 logs the state; SIGHUP applies a
/// valid new configuration. State on <rundir>/heartbeatd.sock (HaStatus, AnycastStatus).
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
    /// Anycast mode: tell the running daemon (its socket in the run directory) to withdraw
    /// every route of this director, which keeps forwarding what still arrives; prints the
    /// routes after the change.
    #[arg(long, conflicts_with = "undrain")]
    drain: bool,
    /// Anycast mode: end a drain; the routes are announced again where they can be served.
    #[arg(long)]
    undrain: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.drain || cli.undrain {
        return drain(&cli.daemon, cli.drain);
    }
    lvs_common::run(
        "lvs-heartbeatd",
        &cli.daemon,
        settings::load,
        |settings, startup| match settings {
            Settings::Failover(config) => lvs_heartbeatd::daemon::run(*config, startup),
            Settings::Anycast(config) => lvs_heartbeatd::anycast::run(*config, startup),
        },
    )
}

/// `--drain` / `--undrain` through the running daemon's socket.
fn drain(args: &DaemonArgs, on: bool) -> ExitCode {
    let sock = args.rundir().join("heartbeatd.sock");
    let answer = lvs_proto::Client::connect(&sock, lvs_proto::Role::Other)
        .and_then(|mut c| c.request(lvs_proto::Request::Drain { on }));
    match answer {
        Ok(lvs_proto::Response::Anycast(s)) => {
            println!(
                "{}",
                if s.drained {
                    "drained: every route withdrawn, the director still forwards"
                } else {
                    "not drained"
                }
            );
            for r in &s.routes {
                if r.announced {
                    println!("{} announced", r.prefix);
                } else {
                    println!("{} withdrawn ({})", r.prefix, r.reason);
                }
            }
            ExitCode::SUCCESS
        }
        Ok(lvs_proto::Response::Error { message, .. }) => {
            eprintln!("lvs-heartbeatd: {message} (is it running with mode = \"anycast\"?)");
            ExitCode::FAILURE
        }
        Ok(other) => {
            eprintln!("lvs-heartbeatd: unexpected answer {other:?}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("lvs-heartbeatd: {}: {e}", sock.display());
            ExitCode::FAILURE
        }
    }
}
