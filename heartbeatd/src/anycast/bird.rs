//! BIRD 2's control socket, spoken directly (what `birdc` speaks; no program started).
//!
//! The protocol (BIRD's `doc/prog-root` and `client/client.c`): the daemon greets with
//! `0001 BIRD <version> ready.`; a command is one line; the reply is lines of a four-digit
//! code and a separator: `-` when more lines follow, a space on the last one. A line that
//! starts with a space continues the previous code. Codes 0xxx report an action, 1xxx are
//! table rows, 2xxx table headings, 8xxx run-time errors and 9xxx parse errors; a line that
//! starts with `+` is an asynchronous message (ignored here). Anything else is malformed: the
//! connection is dropped and opened again on the next call.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one command may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
/// The longest reply line accepted.
const MAX_LINE: usize = 4096;
/// The most lines one reply may have.
const MAX_LINES: usize = 10_000;

/// What went wrong with the control socket.
#[derive(Debug, thiserror::Error)]
pub enum BirdError {
    /// Not reachable, or the connection broke or timed out.
    #[error("BIRD control socket {path}: {source}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Something that is not BIRD's reply format.
    #[error("BIRD control socket {path}: malformed reply line {line:?}")]
    Malformed {
        /// The socket.
        path: PathBuf,
        /// The line (cut to 80 characters).
        line: String,
    },
    /// BIRD refused the command (an 8xxx or 9xxx code).
    #[error("BIRD refused {command:?}: {code:04} {text}")]
    Refused {
        /// The command.
        command: String,
        /// BIRD's code.
        code: u16,
        /// BIRD's words.
        text: String,
    },
}

/// One line of a reply: its code (that of the line it continues, for a continuation) and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyLine {
    /// The four-digit code.
    pub code: u16,
    /// The text after the code and separator.
    pub text: String,
}

/// One protocol row of `show protocols`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolRow {
    /// Its name.
    pub name: String,
    /// Its kind: `BGP`, `Static`, `Device`, `BFD` ...
    pub kind: String,
    /// `up`, `down` (disabled or failed), `start` or `stop`.
    pub state: String,
    /// The rest of the row after the time: for BGP the session state (`Established`,
    /// `Active`, `Connect` ...) and perhaps the last error.
    pub info: String,
}

impl ProtocolRow {
    /// A BGP session that is up.
    pub fn established(&self) -> bool {
        self.state == "up" && self.info.split_whitespace().next() == Some("Established")
    }
}

/// A connection to BIRD's control socket, opened on demand.
#[derive(Debug)]
pub struct Bird {
    path: PathBuf,
    conn: Option<BufReader<UnixStream>>,
}

/// Parses one reply line; `None` for an asynchronous `+` message. `Ok((line, last))`.
fn parse_line(raw: &str, current: Option<u16>) -> Result<Option<(ReplyLine, bool)>, ()> {
    if raw.starts_with('+') {
        return Ok(None);
    }
    if let Some(rest) = raw.strip_prefix(' ') {
        let code = current.ok_or(())?;
        return Ok(Some((
            ReplyLine {
                code,
                text: rest.to_owned(),
            },
            false,
        )));
    }
    let bytes = raw.as_bytes();
    if bytes.len() < 5 || !bytes[..4].iter().all(u8::is_ascii_digit) {
        return Err(());
    }
    let code: u16 = raw[..4].parse().map_err(|_| ())?;
    let last = match bytes[4] {
        b' ' => true,
        b'-' => false,
        _ => return Err(()),
    };
    Ok(Some((
        ReplyLine {
            code,
            text: raw[5..].to_owned(),
        },
        last,
    )))
}

/// The protocol rows of a `show protocols` reply (code 1002 and its continuations).
pub fn parse_protocols(lines: &[ReplyLine]) -> Vec<ProtocolRow> {
    lines
        .iter()
        .filter(|l| l.code == 1002)
        .filter_map(|l| {
            let w: Vec<&str> = l.text.split_whitespace().collect();
            if w.len() < 4 {
                return None;
            }
            // Name, kind, table, state, then the time (one or two words, as `timeformat
            // protocol` writes it) and the info. A BGP session's info starts with its state,
            // a word of letters only; a time has digits.
            let info = w[4..]
                .iter()
                .skip_while(|t| t.chars().any(|c| c.is_ascii_digit()))
                .copied()
                .collect::<Vec<_>>()
                .join(" ");
            Some(ProtocolRow {
                name: w[0].to_owned(),
                kind: w[1].to_owned(),
                state: w[3].to_owned(),
                info,
            })
        })
        .collect()
}

impl Bird {
    /// The daemon at `path` (not connected yet).
    pub fn new(path: &Path) -> Bird {
        Bird {
            path: path.to_owned(),
            conn: None,
        }
    }

    /// Another socket (configuration reload).
    pub fn set_path(&mut self, path: &Path) {
        if path != self.path {
            self.path = path.to_owned();
            self.conn = None;
        }
    }

    fn io(&self, source: io::Error) -> BirdError {
        BirdError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn malformed(&self, line: &str) -> BirdError {
        BirdError::Malformed {
            path: self.path.clone(),
            line: line.chars().take(80).collect(),
        }
    }

    /// Reads one reply; the connection is dropped on any error but a refusal.
    fn read_reply(&mut self) -> Result<Vec<ReplyLine>, BirdError> {
        let mut lines = Vec::new();
        let mut current = None;
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Err(self.io(io::ErrorKind::NotConnected.into()));
            };
            let mut raw = String::new();
            let n = conn
                .by_ref()
                .take(MAX_LINE as u64 + 1)
                .read_line(&mut raw)
                .map_err(|e| self.io(e))?;
            if n == 0 {
                return Err(self.io(io::ErrorKind::UnexpectedEof.into()));
            }
            if !raw.ends_with('\n') || lines.len() >= MAX_LINES {
                return Err(self.malformed(&raw));
            }
            let raw = raw.trim_end_matches('\n');
            match parse_line(raw, current) {
                Err(()) => return Err(self.malformed(raw)),
                Ok(None) => {}
                Ok(Some((line, last))) => {
                    current = Some(line.code);
                    lines.push(line);
                    if last {
                        return Ok(lines);
                    }
                }
            }
        }
    }

    fn connect(&mut self) -> Result<(), BirdError> {
        if self.conn.is_some() {
            return Ok(());
        }
        let s = UnixStream::connect(&self.path).map_err(|e| self.io(e))?;
        s.set_read_timeout(Some(COMMAND_TIMEOUT))
            .and_then(|()| s.set_write_timeout(Some(COMMAND_TIMEOUT)))
            .map_err(|e| self.io(e))?;
        self.conn = Some(BufReader::new(s));
        let greeting = self.read_reply();
        match greeting {
            Ok(l) if l.first().is_some_and(|l| l.code == 1) => Ok(()),
            Ok(l) => {
                self.conn = None;
                let text = l.first().map_or(String::new(), |l| l.text.clone());
                Err(self.malformed(&text))
            }
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }

    /// Sends `command` (one line, connecting first if need be) and returns the reply.
    pub fn command(&mut self, command: &str) -> Result<Vec<ReplyLine>, BirdError> {
        self.connect()?;
        let sent = match self.conn.as_mut() {
            Some(c) => c.get_mut().write_all(format!("{command}\n").as_bytes()),
            None => Err(io::ErrorKind::NotConnected.into()),
        };
        let reply = sent
            .map_err(|e| self.io(e))
            .and_then(|()| self.read_reply());
        let lines = match reply {
            Ok(l) => l,
            Err(e) => {
                self.conn = None;
                return Err(e);
            }
        };
        if let Some(bad) = lines.iter().find(|l| l.code >= 8000) {
            return Err(BirdError::Refused {
                command: command.to_owned(),
                code: bad.code,
                text: bad.text.clone(),
            });
        }
        Ok(lines)
    }

    /// `show protocols`.
    pub fn protocols(&mut self) -> Result<Vec<ProtocolRow>, BirdError> {
        self.command("show protocols").map(|l| parse_protocols(&l))
    }

    /// `enable NAME` or `disable NAME` (done or already so: both fine).
    pub fn set_enabled(&mut self, name: &str, on: bool) -> Result<(), BirdError> {
        let verb = if on { "enable" } else { "disable" };
        self.command(&format!("{verb} {name}")).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<ReplyLine> {
        let mut out = Vec::new();
        let mut current = None;
        for raw in text.lines() {
            if let Some((l, _)) = parse_line(raw, current).unwrap() {
                current = Some(l.code);
                out.push(l);
            }
        }
        out
    }

    /// A reply as BIRD 2.0.12 writes it, with both time formats and an asynchronous line.
    #[test]
    fn show_protocols_rows() {
        let rows = parse_protocols(&lines(
            "2002-Name       Proto      Table      State  Since         Info\n\
             1002-device1    Device     ---        up     05:40:57.606  \n\
             +event in between\n\
             \x20vip_10_0_0_100 Static     master4    down   05:40:57.606  \n\
             \x20upstream   BGP        ---        up     2026-12-07 05:41:14  Established   \n\
             \x20other      BGP        ---        start  05:41:14.733  Active        Socket: Connection refused\n\
             0000 \n",
        ));
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[1].name, "vip_10_0_0_100");
        assert_eq!(rows[1].kind, "Static");
        assert_eq!(rows[1].state, "down");
        assert!(rows[2].established());
        assert_eq!(rows[2].info, "Established");
        assert!(!rows[3].established());
        assert_eq!(rows[3].info, "Active Socket: Connection refused");
    }

    #[test]
    fn malformed_lines_are_refused() {
        for bad in ["", "12 x", "00a1 x", "0001x", "hello"] {
            assert!(parse_line(bad, Some(1)).is_err(), "{bad:?}");
        }
        // A continuation before any code.
        assert!(parse_line(" text", None).is_err());
        assert_eq!(
            parse_line("0009-vip: disabled", None),
            Ok(Some((
                ReplyLine {
                    code: 9,
                    text: "vip: disabled".into()
                },
                false
            )))
        );
        assert_eq!(parse_line("+async", None), Ok(None));
    }
}
