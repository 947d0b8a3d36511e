//! `lvs-webmon --add-user NAME [--role admin|viewer]`: asks for the password (twice, without
//! echo, on a terminal; one line from standard input otherwise, so scripts can feed it) and
//! writes the user with an Argon2id hash into the users file.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::Path;

use nix::sys::termios::{self, LocalFlags, SetArg};

use crate::users::{self, Role, Users, UsersError};

/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 8;

fn read_line(stdin: &mut impl BufRead) -> Result<String, UsersError> {
    let mut line = String::new();
    let n = stdin
        .read_line(&mut line)
        .map_err(|e| UsersError::Refused(format!("cannot read the password: {e}")))?;
    if n == 0 {
        return Err(UsersError::Refused(
            "no password given on standard input".into(),
        ));
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// Reads a password on the terminal with echo off; the terminal is restored even on error.
fn read_hidden(prompt: &str) -> Result<String, UsersError> {
    let stdin = io::stdin();
    let old = termios::tcgetattr(&stdin)
        .map_err(|e| UsersError::Refused(format!("cannot read the terminal's settings: {e}")))?;
    let mut quiet = old.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    eprint!("{prompt}");
    let _ = io::stderr().flush();
    termios::tcsetattr(&stdin, SetArg::TCSANOW, &quiet)
        .map_err(|e| UsersError::Refused(format!("cannot turn echo off: {e}")))?;
    let r = read_line(&mut stdin.lock());
    let _ = termios::tcsetattr(&stdin, SetArg::TCSANOW, &old);
    r
}

/// Asks for the password: twice with echo off on a terminal, one line otherwise.
pub fn ask_password(name: &str) -> Result<String, UsersError> {
    let pw = if io::stdin().is_terminal() {
        let a = read_hidden(&format!("Password for {name}: "))?;
        let b = read_hidden("Again: ")?;
        if a != b {
            return Err(UsersError::Refused(
                "the passwords differ; nothing changed".into(),
            ));
        }
        a
    } else {
        read_line(&mut io::stdin().lock())?
    };
    if pw.chars().count() < MIN_PASSWORD {
        return Err(UsersError::Refused(format!(
            "the password is too short: at least {MIN_PASSWORD} characters; nothing changed"
        )));
    }
    Ok(pw)
}

/// Adds (or replaces) user `name` with `role` and `password` in the file at `path`.
pub fn add_user(path: &Path, name: &str, role: Role, password: &str) -> Result<(), UsersError> {
    if !users::valid_name(name) {
        return Err(UsersError::Refused(format!(
            "bad user name {name:?}: use letters, digits, '.', '_' and '-' (at most 64)"
        )));
    }
    let mut list = Users::load(path)?;
    let hash = users::hash_password(password)?;
    list.set(name, role, hash);
    list.save(path)
}
