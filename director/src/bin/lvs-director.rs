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

    /// Upgrade the running director to the binary now installed at its path, keeping its
    /// connections (see docs/UPGRADE.md); waits for the new binary's report
    #[arg(long = "upgrade", conflicts_with = "check_config")]
    upgrade: bool,

    /// (internal) Take over the state a previous binary left in this descriptor
    #[arg(long = "resume-fd", value_name = "FD", hide = true)]
    resume_fd: Option<i32>,
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if cli.upgrade {
        return match lvs_director::handover::request(&cli.daemon.rundir()) {
            Ok(report) => {
                println!("lvs-director: {report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("lvs-director: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let Some(fd) = cli.resume_fd else {
        return lvs_common::run(
            "lvs-director",
            &cli.daemon,
            lvs_director::config::load,
            lvs_director::daemon::run,
        );
    };
    // Executed by the previous binary: already detached (same process id, session and
    // descriptors), so it does not fork again.
    let handover = lvs_director::handover::read_inherited(fd);
    cli.daemon.foreground = true;
    let rundir = cli.daemon.rundir();
    lvs_common::run(
        "lvs-director",
        &cli.daemon,
        lvs_director::config::load,
        move |config, startup| match handover {
            Ok(h) => lvs_director::daemon::run_resumed(config, startup, Some(h)),
            Err(e) => {
                // The connections are lost, but the director runs: better than none.
                lvs_common::event!(log::Level::Error, "upgrade_state_lost", reason = e);
                lvs_director::handover::report(&rundir, false, &e.to_string());
                lvs_director::daemon::run_resumed(config, startup, None)
            }
        },
    )
}
