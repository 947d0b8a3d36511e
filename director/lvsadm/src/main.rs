//! lvsadm: the director's command line, in ipvsadm's syntax, with ipvsadm's output and exit
//! codes.
//!
//! Exit codes, as ipvsadm's: 0 success; 2 a bad command line or no director to talk to;
//! 255 (ipvsadm's `-1`) a usage error or a change the director refused; 1 a listing failed.

mod content_listing;
mod import;
mod listing;
mod run;
mod usage;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let code = run::main(&args, std::env::var_os(lvs_proto::rundir::ENV_VAR));
    std::process::exit(code);
}
