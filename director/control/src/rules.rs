//! Rules text: `ipvsadm-save` output, one command per line, as read by `lvsadm -R` and by
//! the director's rules file.
//!
//! A line is split on blanks; everything from a `#` on is a comment; a leading `ipvsadm` or
//! `lvsadm` word is ignored (ipvsadm's `config_stream_read` does the same), so a shell
//! script of ipvsadm commands is also a rules file. Errors name the line.

use crate::error::ControlError;
use crate::grammar::{Command, ParseError, parse_ipvsadm};
use crate::hooks::SchedulerCheck;
use crate::state::{ControlState, Refusal};

/// Why a rules text is refused, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct RulesError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub kind: RulesErrorKind,
}

/// What is wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesErrorKind {
    /// The line is not a valid command.
    #[error("{0}")]
    Parse(#[from] ParseError),
    /// A valid command that does not change configuration (`-L`, `-S`, `-R`, `-h`, `-v`).
    #[error("`{0}' cannot appear in rules: only -A -E -D -C -a -e -d -Z --set can")]
    NotARule(String),
    /// The command was refused by the model (when loading into a state).
    #[error("{0}")]
    Refused(#[from] ControlError),
    /// The command was refused by the director's mode (see [`load_rules_with`]).
    #[error("{0}")]
    Mode(String),
}

/// The words of one line: comment stripped, a leading `ipvsadm`/`lvsadm` dropped. Empty for
/// blank and comment lines.
pub fn split_line(line: &str) -> Vec<&str> {
    let line = line.split('#').next().unwrap_or("");
    let mut words: Vec<&str> = line.split_whitespace().collect();
    if matches!(words.first(), Some(&("ipvsadm" | "lvsadm"))) {
        words.remove(0);
    }
    words
}

/// Parses one line: `None` for a blank or comment line. Only ipvsadm's commands that
/// change configuration are accepted (content services, their pools and rules, live in the
/// director's configuration file).
pub fn parse_line(line: &str) -> Option<Result<Command, RulesErrorKind>> {
    let words = split_line(line);
    if words.is_empty() {
        return None;
    }
    Some(match parse_ipvsadm(&words) {
        Ok(cmd) if cmd.to_request().is_none() => Err(RulesErrorKind::NotARule(words.join(" "))),
        Ok(cmd) => Ok(cmd),
        Err(e) => Err(e.into()),
    })
}

/// Parses every line; returns the commands with their line numbers, or the first error.
pub fn parse_rules(text: &str) -> Result<Vec<(usize, Command)>, RulesError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match parse_line(line) {
            None => {}
            Some(Ok(cmd)) => out.push((i + 1, cmd)),
            Some(Err(kind)) => return Err(RulesError { line: i + 1, kind }),
        }
    }
    Ok(out)
}

/// Builds a fresh configuration from a rules text (the director's rules file at start or on
/// reload). All or nothing: the first bad line refuses the whole text.
pub fn load_rules(text: &str, sched: &dyn SchedulerCheck) -> Result<ControlState, RulesError> {
    load_rules_with(text, sched, &|r| Ok(r))
}

/// [`load_rules`], each request first passed through `adapt`, which may change it or refuse
/// it with a reason (the director's active-active mode refuses VS/NAT, for one).
pub fn load_rules_with(
    text: &str,
    sched: &dyn SchedulerCheck,
    adapt: &dyn Fn(lvs_proto::Request) -> Result<lvs_proto::Request, String>,
) -> Result<ControlState, RulesError> {
    let mut state = ControlState::new();
    for (line, cmd) in parse_rules(text)? {
        let request = cmd.to_request().expect("parse_rules keeps only rules");
        let request = adapt(request).map_err(|reason| RulesError {
            line,
            kind: RulesErrorKind::Mode(reason),
        })?;
        match state.change(request, sched) {
            Ok(_) => {}
            Err(Refusal::Refused(e)) => {
                return Err(RulesError {
                    line,
                    kind: e.into(),
                });
            }
            Err(Refusal::NotAChange(_)) => unreachable!("parse_rules keeps only rules"),
        }
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::{AnyScheduler, KnownSchedulers};

    #[test]
    fn comments_blank_lines_and_program_names() {
        let text = "# saved by ipvsadm\n\n  ipvsadm -A -t 192.0.2.1:80 -s rr # web\nlvsadm -a -t 192.0.2.1:80 -r 10.0.0.2 -m\n\t\n--set 0 0 60\n";
        let rules = parse_rules(text).unwrap();
        assert_eq!(
            rules.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
            vec![3, 4, 6]
        );
        let state = load_rules(text, &AnyScheduler).unwrap();
        assert_eq!(
            state.save(),
            "-A -t 192.0.2.1:80 -s rr\n-a -t 192.0.2.1:80 -r 10.0.0.2:80 -m -w 1\n"
        );
        assert_eq!(state.timeouts().udp, 60);
        assert_eq!(split_line("# only a comment"), Vec::<&str>::new());
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse_rules("-C\n-A -t 192.0.2.1:80 -w 3\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2: Illegal 'weight' option with the 'add-service' command"
        );
        let e = parse_rules("-C\n\n-L -n\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 3: `-L -n' cannot appear in rules: only -A -E -D -C -a -e -d -Z --set can"
        );
        let text = "-A -t 192.0.2.1:80 -s rr\n-A -t 192.0.2.1:80 -s rr\n";
        assert_eq!(
            load_rules(text, &AnyScheduler).unwrap_err().to_string(),
            "line 2: Service already exists"
        );
        let e =
            load_rules("-A -t 192.0.2.1:80 -s foo\n", &KnownSchedulers::new(["rr"])).unwrap_err();
        assert_eq!(e.line, 1);
        assert_eq!(
            e.to_string(),
            "line 1: Scheduler or persistence engine not found"
        );
    }
}
