//! `lvs-monitord`: the resource monitor daemon, and `lvs-monitord ctl` to drive it. See
//! `etc/lvs-monitord.toml` for the configuration and [`lvs_monitord::daemon`] for what it does.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use lvs_common::DaemonArgs;
use lvs_monitord::ctl;
use lvs_proto::Protocol;

/// Checks the real servers of the director's virtual services (ICMP, TCP, HTTP(S), DNS,
/// scripts), takes a failed one out of scheduling and puts it back when it recovers, and
/// alerts (syslog, mail, notify command).
///
/// Manual control of a running daemon:
///
///   lvs-monitord ctl list
///
///   lvs-monitord ctl maintenance on  -t VIP:PORT -r RS:PORT
///
///   lvs-monitord ctl maintenance off -t VIP:PORT -r RS:PORT
///
/// A server in maintenance is marked unhealthy at the director (weight 0) and stays out
/// whatever its checks say until maintenance is off. SIGHUP reloads the configuration (a bad
/// file is refused and the old one keeps running); SIGTERM stops the daemon without changing
/// the director: a server it took out stays out.
#[derive(Parser, Debug)]
#[command(
    name = "lvs-monitord",
    version,
    about,
    long_about,
    verbatim_doc_comment
)]
struct Cli {
    #[command(flatten)]
    daemon: DaemonArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Talk to a running lvs-monitord: list its servers, or switch maintenance.
    Ctl {
        /// The run directory of the daemon (else $LVS_RUNDIR, else /run/lvs).
        #[arg(long = "rundir", value_name = "DIR")]
        rundir: Option<PathBuf>,
        #[command(subcommand)]
        action: Action,
    },
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Every monitored server: weight, state, maintenance, last check.
    List,
    /// Take a real server out for maintenance (on) or give it back to its checks (off).
    Maintenance {
        /// on or off.
        switch: Switch,
        /// A TCP service, VIP:PORT.
        #[arg(
            short = 't',
            long = "tcp-service",
            value_name = "VIP:PORT",
            conflicts_with = "udp"
        )]
        tcp: Option<String>,
        /// A UDP service, VIP:PORT.
        #[arg(short = 'u', long = "udp-service", value_name = "VIP:PORT")]
        udp: Option<String>,
        /// The real server, RS[:PORT] (the port defaults to the service's).
        #[arg(short = 'r', long = "real-server", value_name = "RS:PORT")]
        real: String,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Switch {
    On,
    Off,
}

fn ctl(rundir: Option<PathBuf>, action: Action) -> Result<String, ctl::CtlError> {
    let rundir = lvs_proto::rundir::resolve(rundir.as_deref());
    match action {
        Action::List => ctl::list(&rundir),
        Action::Maintenance {
            switch,
            tcp,
            udp,
            real,
        } => {
            let bad = |message: String| ctl::CtlError { code: 2, message };
            let service = match (tcp, udp) {
                (Some(t), None) => ctl::service_key(Protocol::Tcp, &t),
                (None, Some(u)) => ctl::service_key(Protocol::Udp, &u),
                _ => Err("give the service with -t VIP:PORT or -u VIP:PORT".to_owned()),
            }
            .map_err(bad)?;
            let server = ctl::parse_addr(&real, service.port).map_err(bad)?;
            ctl::maintenance(&rundir, service, server, matches!(switch, Switch::On))
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Ctl { rundir, action }) = cli.command {
        return match ctl(rundir, action) {
            Ok(text) => {
                print!("{text}");
                if !text.ends_with('\n') {
                    println!();
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("lvs-monitord: {}", e.message);
                ExitCode::from(e.code)
            }
        };
    }
    lvs_common::run(
        "lvs-monitord",
        &cli.daemon,
        lvs_monitord::config::load,
        lvs_monitord::daemon::run,
    )
}
