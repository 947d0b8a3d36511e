//! From argv to the director and back to the terminal.

use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::path::PathBuf;

use lvs_control::{
    Command, ListFormat, ListOptions, ListWhat, Names, ParseError, RulesErrorKind, parse_args,
    parse_line,
};
use lvs_proto::{CONNS_PAGE_MAX, Client, ConnEntry, ProtoError, Request, Response, Role, rundir};

use crate::{content_listing, listing, usage};

/// ipvsadm's exit code for a refused change (its `return -1`).
const EXIT_REFUSED: i32 = 255;
/// ipvsadm's `fail(2, ...)`.
const EXIT_FAIL: i32 = 2;
/// ipvsadm's `exit(1)` when a listing fails.
const EXIT_LIST: i32 = 1;

/// Runs lvsadm with `args` (program name first) and the value of `$LVS_RUNDIR`; returns the
/// exit code.
pub fn main(args: &[String], env_rundir: Option<OsString>) -> i32 {
    // ipvsadm names itself as it was invoked (`/usr/sbin/ipvsadm`) in help and "Try" lines.
    let program = args.first().map_or("lvsadm", String::as_str);
    // Not a director command: it reads another program's configuration and writes files.
    if args.get(1).map(String::as_str) == Some("--import") {
        return crate::import::cli(&args[2..]);
    }
    let (rundir_flag, rest) = match take_rundir(args.get(1..).unwrap_or_default()) {
        Ok(split) => split,
        Err(e) => return parse_failure(program, &e),
    };
    let command = if rest.is_empty() {
        // Like ipvsadm without arguments: list everything.
        Command::List(ListOptions {
            what: ListWhat::Services(None),
            format: ListFormat::Plain,
            numeric: false,
            exact: false,
            sort: true,
        })
    } else {
        match parse_args(&rest) {
            Ok(cmd) => cmd,
            Err(e) => return parse_failure(program, &e),
        }
    };
    match command {
        Command::Help => return print(&usage::usage(program)),
        Command::Version => return print(&usage::version()),
        _ => {}
    }
    let dir = rundir::resolve_with(rundir_flag.as_deref(), env_rundir);
    let socket = rundir::socket_path(&dir, "director");
    let mut client = match Client::connect(&socket, Role::Lvsadm) {
        Ok(c) => c,
        Err(e) => return fail(EXIT_FAIL, &format!("Can't initialize ipvs: {e}")),
    };
    match command {
        Command::List(opts) => list(&mut client, &opts),
        Command::ListRules(key) => match request(&mut client, Request::ListContent) {
            Ok(Response::Content(status)) => print(&content_listing::rules(&status, key.as_ref())),
            other => refused(EXIT_LIST, other),
        },
        Command::Save { numeric } => {
            match request(&mut client, Request::ListServices { key: None }) {
                Ok(Response::Services(mut list)) => {
                    // Content services (layer 7) and their pools and rules live in the
                    // director's TOML file: `-S` output stays what ipvsadm-restore and the
                    // director's rules file read, so they are listed (`--list-rules`), not
                    // saved.
                    list.retain(|s| !s.conf.scheduler.starts_with("l7-"));
                    let names = (!numeric).then(Names::load);
                    print(&lvs_control::save_named(&list, true, names.as_ref()))
                }
                other => refused(EXIT_LIST, other),
            }
        }
        Command::Restore => restore(program, &mut client, std::io::stdin().lock()),
        // As ipvsadm: a refusal is libipvs's message and exit code 255.
        Command::StartDaemon(d) => match change(&mut client, Request::StartSyncDaemon(d)) {
            Ok(()) => 0,
            Err(message) => fail(EXIT_REFUSED, &message),
        },
        Command::StopDaemon(s) => match change(&mut client, Request::StopSyncDaemon(s)) {
            Ok(()) => 0,
            Err(message) => fail(EXIT_REFUSED, &message),
        },
        other => {
            let Some(req) = other.to_request() else {
                unreachable!("every other command changes configuration")
            };
            match change(&mut client, req) {
                Ok(()) => 0,
                Err(message) => fail(EXIT_REFUSED, &message),
            }
        }
    }
}

/// `-R`, line by line as ipvsadm's `restore_table`: each line is applied as it is read, so
/// the lines before a failing one stay applied. A line ipvsadm rejects with `fail()` (a bad
/// value, an option that does not go with its command) ends the restore with exit code 2;
/// a line without a command ends it with the "Try" line and 255; a line with an unknown
/// option, or one the director refuses, prints why and the restore goes on. The exit code
/// is then the last line's, as in ipvsadm: 0 if the last line was applied.
fn restore(program: &str, client: &mut Client, input: impl BufRead) -> i32 {
    let mut code = 0;
    for line in input.lines() {
        let line = match line {
            Ok(l) => l,
            Err(e) => return fail(EXIT_FAIL, &format!("cannot read the rules from stdin: {e}")),
        };
        match parse_line(&line) {
            None => {}
            Some(Ok(cmd)) => {
                let req = cmd.to_request().expect("parse_line keeps only rules");
                code = match change(client, req) {
                    Ok(()) => 0,
                    Err(message) => fail(EXIT_REFUSED, &message),
                };
            }
            Some(Err(RulesErrorKind::Parse(e))) if e.is_usage() => {
                if e == ParseError::NoCommand {
                    return parse_failure(program, &e);
                }
                code = fail(EXIT_REFUSED, &e.to_string());
            }
            Some(Err(e)) => return fail(EXIT_FAIL, &e.to_string()),
        }
    }
    code
}

/// Splits `--rundir DIR` / `--rundir=DIR` (lvsadm's own option) from ipvsadm's options.
fn take_rundir(args: &[String]) -> Result<(Option<PathBuf>, Vec<String>), ParseError> {
    let mut dir = None;
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--rundir" {
            let value = it
                .next()
                .ok_or_else(|| ParseError::MissingArgument(arg.clone()))?;
            dir = Some(PathBuf::from(value));
        } else if let Some(value) = arg.strip_prefix("--rundir=") {
            dir = Some(PathBuf::from(value));
        } else {
            rest.push(arg.clone());
        }
    }
    Ok((dir, rest))
}

fn list(client: &mut Client, opts: &ListOptions) -> i32 {
    let names = (!opts.numeric).then(Names::load);
    let names = names.as_ref();
    match opts.what {
        ListWhat::Connections => match connections(client) {
            Ok(conns) => print(&listing::connections(&conns, opts.format, names)),
            Err(other) => refused(EXIT_LIST, *other),
        },
        // ipvsadm's lines for the daemons lvsadm started; the `[sync]` of the director's
        // file (or a director without run-time daemons) as before.
        ListWhat::Daemon => match request(client, Request::ListSyncDaemons) {
            Ok(Response::SyncDaemons(list)) if !list.is_empty() => print(&listing::daemons(&list)),
            _ => match request(client, Request::SyncStatus) {
                Ok(Response::Sync(status)) => print(&listing::daemon(&status)),
                other => refused(EXIT_LIST, other),
            },
        },
        ListWhat::Timeouts => match request(client, Request::GetTimeouts) {
            Ok(Response::Timeouts(t)) => print(&listing::timeouts(&t)),
            other => refused(EXIT_LIST, other),
        },
        ListWhat::Services(key) => {
            // A full listing starts with the version header; one service's does not.
            let mut out = String::new();
            if key.is_none() {
                match request(client, Request::GetInfo) {
                    Ok(Response::Info(info)) => out.push_str(&listing::header(&info)),
                    other => return refused(EXIT_LIST, other),
                }
            }
            match request(client, Request::ListServices { key }) {
                Ok(Response::Services(list)) => {
                    out.push_str(&listing::services(&list, opts, names));
                    print(&out)
                }
                other => refused(EXIT_LIST, other),
            }
        }
    }
}

/// Sends a change; `Err` carries the message to show.
fn change(client: &mut Client, req: Request) -> Result<(), String> {
    match request(client, req) {
        Ok(Response::Ok) => Ok(()),
        other => Err(describe(other)),
    }
}

fn request(client: &mut Client, req: Request) -> Result<Response, ProtoError> {
    client.request(req)
}

/// The whole connection table, page by page (one frame could not carry a large one).
fn connections(client: &mut Client) -> Result<Vec<ConnEntry>, Box<Result<Response, ProtoError>>> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        match request(
            client,
            Request::ListConnsPage {
                after,
                max: CONNS_PAGE_MAX,
            },
        ) {
            Ok(Response::ConnsPage { conns, more }) => {
                after = conns.last().map(ConnEntry::cursor);
                all.extend(conns);
                if !more || after.is_none() {
                    return Ok(all);
                }
            }
            other => return Err(Box::new(other)),
        }
    }
}

fn describe(answer: Result<Response, ProtoError>) -> String {
    match answer {
        Ok(Response::Error { message, .. }) => message,
        Ok(other) => format!("unexpected answer from the director: {other:?}"),
        Err(e) => format!("lost the director: {e}"),
    }
}

fn refused(code: i32, answer: Result<Response, ProtoError>) -> i32 {
    fail(code, &describe(answer))
}

fn fail(code: i32, message: &str) -> i32 {
    eprintln!("{message}");
    code
}

/// A command line ipvsadm would refuse, as it refuses it: without a command first, only the
/// "Try" line (255); popt's errors, their message alone (255); the others, the message (2).
fn parse_failure(program: &str, e: &ParseError) -> i32 {
    if *e == ParseError::NoCommand {
        eprintln!("Try `{program} -h' or '{program} --help' for more information.");
        EXIT_REFUSED
    } else if e.is_usage() {
        fail(EXIT_REFUSED, &e.to_string())
    } else {
        fail(EXIT_FAIL, &e.to_string())
    }
}

/// Writes all of `text` to stdout; a closed pipe (`lvsadm -L | head`) is not an error worth
/// a panic.
fn print(text: &str) -> i32 {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => fail(EXIT_LIST, &format!("cannot write to stdout: {e}")),
    }
}
