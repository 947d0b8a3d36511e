//! `lvs-webmon`: the browser console. See `etc/lvs-webmon.toml` for the configuration and
//! `webmon/README.md` for the pages and the JSON API.

use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use lvs_common::DaemonArgs;
use lvs_webmon::users::Role;

/// The browser console of the LVS cluster: a live view of the directors, virtual services,
/// real servers and the lock manager, and admin actions, over HTTPS with authentication.
///
/// Add a user (asks for the password; reads one line from standard input when it is not a
/// terminal):
///
///   lvs-webmon -c /etc/lvs/webmon.toml --add-user alice --role admin
///
/// On the first start without a certificate it makes a self-signed one (the log says where,
/// with its SHA-256 fingerprint). SIGHUP re-reads the configuration, the users and the
/// certificate; SIGTERM stops it.
#[derive(Parser, Debug)]
#[command(name = "lvs-webmon", version, about, long_about, verbatim_doc_comment)]
struct Cli {
    #[command(flatten)]
    daemon: DaemonArgs,
    /// Add or replace this user in the users file, then exit.
    #[arg(long = "add-user", value_name = "NAME")]
    add_user: Option<String>,
    /// The new user's role.
    #[arg(
        long = "role",
        value_enum,
        default_value = "viewer",
        requires = "add_user"
    )]
    role: RoleArg,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum RoleArg {
    Admin,
    Viewer,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(name) = &cli.add_user {
        let cfg = match lvs_webmon::config::load(cli.daemon.config_path()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("lvs-webmon: {e}");
                return ExitCode::FAILURE;
            }
        };
        let role = match cli.role {
            RoleArg::Admin => Role::Admin,
            RoleArg::Viewer => Role::Viewer,
        };
        let result = lvs_webmon::adduser::ask_password(name)
            .and_then(|pw| lvs_webmon::adduser::add_user(&cfg.users_file, name, role, &pw));
        return match result {
            Ok(()) => {
                println!(
                    "lvs-webmon: user {name} ({role}) written to {}",
                    cfg.users_file.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("lvs-webmon: {e}");
                ExitCode::FAILURE
            }
        };
    }
    lvs_common::run(
        "lvs-webmon",
        &cli.daemon,
        lvs_webmon::config::load,
        lvs_webmon::daemon::run,
    )
}
