//! `lvs-director`: the load balancer daemon. See `etc/lvs-director.toml` for its
//! configuration and `lvsadm` for its control.

use std::process::ExitCode;

use clap::Parser;
use lvs_common::DaemonArgs;

/// Forwards connections for virtual services to real servers (VS/NAT, VS/DR, VS/TUN).
#[derive(Parser, Debug)]
#[command(name = "lvs-director", version, about)]
struct Cli {
    #[command(flatten)]
    daemon: DaemonArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    lvs_common::run(
        "lvs-director",
        &cli.daemon,
        lvs_director::config::load,
        lvs_director::daemon::run,
    )
}
