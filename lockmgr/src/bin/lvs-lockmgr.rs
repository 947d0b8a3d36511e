//! `lvs-lockmgr`: the lock manager daemon (single-node mode).

use std::process::ExitCode;

use clap::Parser;
use lvs_common::DaemonArgs;

/// The lvs-rs lock manager: DLM lock modes, deadlock detection and fencing tokens for the
/// applications of this node, on <rundir>/lockmgr.sock.
#[derive(Parser, Debug)]
#[command(name = "lvs-lockmgr", version, about)]
struct Cli {
    #[command(flatten)]
    daemon: DaemonArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    lvs_common::run(
        "lvs-lockmgr",
        &cli.daemon,
        lvs_lockmgr::config::load,
        lvs_lockmgr::daemon::run,
    )
}
