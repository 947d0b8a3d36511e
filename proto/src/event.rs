//! The one event format every daemon logs in: `event=<name> key=value key="value with spaces"`.
//!
//! Sysadmins grep and alert on these lines, so the format is a contract (documented for them in
//! `docs/LOGGING.md`). It lives here, in the crate every daemon links, so that `proto`'s own
//! server logs in it too; `lvs_common` re-exports it (`lvs_common::event!`, `lvs_common::Event`),
//! and that is the path daemons use:
//!
//! - A line is `event=<name>` followed by zero or more ` key=value` fields, separated by one
//!   space, in the order the code gave them.
//! - Names and keys are made of `a-z`, `0-9` and `_`; any other character is replaced by `_`
//!   (an empty one becomes `_`). The key `event` is reserved for the first field.
//! - A value is written bare when it is not empty and every character is an ASCII letter, digit
//!   or one of `- . _ : / @ + , % [ ]` (so addresses such as `10.0.0.2:80`, `[2001:db8::1]:443`
//!   and paths stay readable).
//! - Any other value is put in double quotes, and inside the quotes `\` becomes `\\`, `"`
//!   becomes `\"`, newline `\n`, carriage return `\r`, tab `\t`, and every other control
//!   character (U+0000-U+001F, U+007F-U+009F) and the Unicode line/paragraph separators
//!   (U+2028, U+2029) become `\u{XX}` with the code point in lower-case hex. Other non-ASCII
//!   text is kept as UTF-8.
//!
//! Therefore one event is always exactly one line, and [`parse`] gets the fields back.
//!
//! ```
//! use lvs_proto::event::Event;
//! let ev = Event::new("server_down")
//!     .field("service", "tcp/10.0.0.1:80")
//!     .field("server", "10.0.0.2:80")
//!     .field("reason", "connect timeout");
//! assert_eq!(
//!     ev.as_str(),
//!     r#"event=server_down service=tcp/10.0.0.1:80 server=10.0.0.2:80 reason="connect timeout""#
//! );
//! ```
//!
//! Daemons normally use the [`event!`](crate::event!) macro, which builds the line only when
//! the level is enabled and hands it to the `log` facade.

use std::fmt::{self, Display, Write as _};

/// One event line being built. Cheap to build, allocates one `String`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    line: String,
}

impl Event {
    /// Starts an event line `event=<name>`.
    pub fn new(name: &str) -> Event {
        let mut line = String::with_capacity(64);
        line.push_str("event=");
        push_key(&mut line, name);
        Event { line }
    }

    /// Appends ` key=value` (value through `Display`, quoted if needed). Builder style.
    #[must_use]
    pub fn field(mut self, key: &str, value: impl Display) -> Event {
        self.push(key, value);
        self
    }

    /// Appends ` key=value` in place.
    pub fn push(&mut self, key: &str, value: impl Display) -> &mut Event {
        self.line.push(' ');
        push_key(&mut self.line, key);
        self.line.push('=');
        // Most values are short; format once, then decide on quoting.
        let mut text = String::new();
        let _ = write!(text, "{value}");
        push_value(&mut self.line, &text);
        self
    }

    /// The line, without a trailing newline.
    pub fn as_str(&self) -> &str {
        &self.line
    }

    /// The line, without a trailing newline.
    pub fn into_string(self) -> String {
        self.line
    }

    /// Hands the line to the `log` facade at `level` (use the [`event!`](crate::event!) macro
    /// to skip building it when the level is off).
    pub fn log(&self, level: log::Level) {
        log::log!(level, "{}", self.line);
    }
}

impl Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line)
    }
}

/// Logs one event through the `log` facade; the line is built only if `level` is enabled.
///
/// `event!(level, "name", key = value, ...)`: each value is formatted with `Display`;
/// `key = %value` says the same explicitly, `key = ?value` uses `Debug`. A trailing comma is
/// allowed.
///
/// ```
/// use log::Level;
/// let svc = "tcp/10.0.0.1:80";
/// let addr: std::net::SocketAddr = "10.0.0.2:80".parse().unwrap();
/// lvs_proto::event!(Level::Warn, "server_down", service = svc, server = %addr, reason = "timeout");
/// lvs_proto::event!(Level::Info, "daemon_start");
/// ```
#[macro_export]
macro_rules! event {
    ($level:expr, $name:expr $(, $($fields:tt)*)?) => {{
        let level: $crate::__log::Level = $level;
        if $crate::__log::log_enabled!(level) {
            #[allow(unused_mut)]
            let mut event = $crate::event::Event::new($name);
            $crate::__event_fields!(event; $($($fields)*)?);
            $crate::__log::log!(level, "{}", event);
        }
    }};
}

/// Builds an [`Event`] value with the same field syntax as [`event!`](crate::event!), without
/// logging it (for tests, or to log the same line twice).
///
/// ```
/// let ev = lvs_proto::event_line!("signal", signal = "SIGHUP", action = "reload");
/// assert_eq!(ev.as_str(), "event=signal signal=SIGHUP action=reload");
/// ```
#[macro_export]
macro_rules! event_line {
    ($name:expr $(, $($fields:tt)*)?) => {{
        #[allow(unused_mut)]
        let mut event = $crate::event::Event::new($name);
        $crate::__event_fields!(event; $($($fields)*)?);
        event
    }};
}

#[doc(hidden)]
#[macro_export]
macro_rules! __event_fields {
    ($ev:ident; ) => {};
    ($ev:ident; $key:ident = ? $value:expr $(, $($rest:tt)*)?) => {
        $ev.push(stringify!($key), format_args!("{:?}", $value));
        $crate::__event_fields!($ev; $($($rest)*)?);
    };
    ($ev:ident; $key:ident = % $value:expr $(, $($rest:tt)*)?) => {
        $ev.push(stringify!($key), &$value);
        $crate::__event_fields!($ev; $($($rest)*)?);
    };
    ($ev:ident; $key:ident = $value:expr $(, $($rest:tt)*)?) => {
        $ev.push(stringify!($key), &$value);
        $crate::__event_fields!($ev; $($($rest)*)?);
    };
}

fn push_key(out: &mut String, key: &str) {
    if key.is_empty() {
        out.push('_');
        return;
    }
    out.extend(key.chars().map(|c| {
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
            c
        } else {
            '_'
        }
    }));
}

/// True if `value` may be written without quotes.
pub fn is_bare(value: &str) -> bool {
    !value.is_empty() && value.chars().all(is_bare_char)
}

fn is_bare_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '-' | '.' | '_' | ':' | '/' | '@' | '+' | ',' | '%' | '[' | ']'
        )
}

/// Appends `value` to `out` as the format requires: bare, or quoted and escaped.
pub fn push_value(out: &mut String, value: &str) {
    if is_bare(value) {
        out.push_str(value);
        return;
    }
    out.reserve(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_unicode_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Control characters and line separators: never written raw.
fn needs_unicode_escape(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// Makes any text safe to be one log line: the same escapes as inside a quoted value, except
/// that quotes and backslashes are left alone (plain messages are not `key=value` data).
///
/// The logging backend applies this to every message, so even a plain `log::info!` with a
/// newline in it stays on one line.
pub fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(needs_unicode_escape) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_unicode_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Why a line is not a well-formed event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an event line at byte {offset}: {reason}")]
pub struct ParseError {
    /// Byte offset in the line where parsing stopped.
    pub offset: usize,
    /// What was wrong there.
    pub reason: &'static str,
}

/// Parses an event line back into its fields, `event` first: the inverse of the formatting
/// above. Meant for tests and for tools that read `/var/log/lvs.log`; anything before
/// `event=` (a syslog or stderr prefix) must be cut off by the caller.
pub fn parse(line: &str) -> Result<Vec<(String, String)>, ParseError> {
    let err = |offset, reason| ParseError { offset, reason };
    let bytes = line.as_bytes();
    let mut fields = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !fields.is_empty() {
            if bytes[i] != b' ' {
                return Err(err(i, "expected a space between fields"));
            }
            i += 1;
        }
        let key_start = i;
        while i < bytes.len() && bytes[i] != b'=' {
            let b = bytes[i];
            if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                return Err(err(i, "bad character in key"));
            }
            i += 1;
        }
        if i == bytes.len() || i == key_start {
            return Err(err(i, "expected key="));
        }
        let key = &line[key_start..i];
        i += 1; // '='
        let value = if bytes.get(i) == Some(&b'"') {
            i += 1;
            let mut value = String::new();
            let mut chars = line[i..].char_indices();
            loop {
                let Some((off, c)) = chars.next() else {
                    return Err(err(line.len(), "unterminated quoted value"));
                };
                match c {
                    '"' => {
                        i += off + 1;
                        break;
                    }
                    '\\' => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, 'r')) => value.push('\r'),
                        Some((_, 't')) => value.push('\t'),
                        Some((_, 'u')) => {
                            let rest = &line[i + off + 2..];
                            let close = rest.find('}').filter(|_| rest.starts_with('{'));
                            let Some(close) = close else {
                                return Err(err(i + off, "bad \\u escape"));
                            };
                            let c = u32::from_str_radix(&rest[1..close], 16)
                                .ok()
                                .and_then(char::from_u32)
                                .ok_or(err(i + off, "bad \\u escape"))?;
                            value.push(c);
                            for _ in 0..=close {
                                chars.next();
                            }
                        }
                        _ => return Err(err(i + off, "unknown escape")),
                    },
                    c if needs_unicode_escape(c) => {
                        return Err(err(i + off, "raw control character"));
                    }
                    c => value.push(c),
                }
            }
            value
        } else {
            let start = i;
            while i < bytes.len() && bytes[i] != b' ' {
                i += 1;
            }
            let value = &line[start..i];
            if !is_bare(value) {
                return Err(err(start, "bad bare value"));
            }
            value.to_owned()
        };
        if fields.is_empty() && key != "event" {
            return Err(err(key_start, "line does not start with event="));
        }
        fields.push((key.to_owned(), value));
    }
    if fields.is_empty() {
        return Err(err(0, "empty line"));
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(ev: Event) -> String {
        ev.into_string()
    }

    #[test]
    fn bare_values_stay_bare() {
        let ev = Event::new("server_up")
            .field("server", "10.0.0.2:80")
            .field("v6", "[2001:db8::1]:443")
            .field("path", "/etc/lvs/director.toml")
            .field("weight", 5)
            .field("ratio", "50%");
        assert_eq!(
            line(ev),
            "event=server_up server=10.0.0.2:80 v6=[2001:db8::1]:443 path=/etc/lvs/director.toml weight=5 ratio=50%"
        );
    }

    #[test]
    fn quoting_and_escaping() {
        let ev = Event::new("config_rejected")
            .field("empty", "")
            .field("spaces", "connect timeout")
            .field("eq", "a=b")
            .field("quote", r#"say "hi""#)
            .field("backslash", r"C:\dir")
            .field("nl", "line one\nline two\r\n")
            .field("tab", "a\tb")
            .field("ctl", "bell\u{7}esc\u{1b}del\u{7f}c1\u{85}")
            .field("sep", "a\u{2028}b")
            .field("utf8", "grüße");
        assert_eq!(
            line(ev),
            concat!(
                r#"event=config_rejected empty="" spaces="connect timeout" eq="a=b" "#,
                r#"quote="say \"hi\"" backslash="C:\\dir" nl="line one\nline two\r\n" "#,
                r#"tab="a\tb" ctl="bell\u{7}esc\u{1b}del\u{7f}c1\u{85}" sep="a\u{2028}b" "#,
                r#"utf8="grüße""#
            )
        );
    }

    #[test]
    fn names_and_keys_are_sanitised() {
        let ev = Event::new("Server Down!").field("", 1).field("my-key", 2);
        assert_eq!(line(ev), "event=_erver__own_ _=1 my_key=2");
    }

    #[test]
    fn macro_forms() {
        let addr: std::net::SocketAddr = "10.0.0.2:80".parse().unwrap();
        let reason = String::from("timed out");
        let ev = crate::event_line!(
            "server_down",
            server = %addr,
            reason = reason,
            state = ?Some(3),
            n = 1 + 1,
        );
        assert_eq!(
            ev.as_str(),
            r#"event=server_down server=10.0.0.2:80 reason="timed out" state="Some(3)" n=2"#
        );
        // `reason` was only borrowed.
        assert_eq!(reason, "timed out");
        assert_eq!(crate::event_line!("x").as_str(), "event=x");
    }

    #[test]
    fn one_line_escapes_only_what_breaks_lines() {
        assert_eq!(
            one_line(r#"plain "quoted" \ text"#),
            r#"plain "quoted" \ text"#
        );
        assert_eq!(one_line("a\nb\r\u{0}"), r"a\nb\r\u{0}");
    }

    #[test]
    fn parse_round_trip_and_errors() {
        let ev = Event::new("x").field("a", "1 2").field("b", "q\"\\\n\u{1}");
        let fields = parse(ev.as_str()).unwrap();
        assert_eq!(
            fields,
            vec![
                ("event".into(), "x".into()),
                ("a".into(), "1 2".into()),
                ("b".into(), "q\"\\\n\u{1}".into()),
            ]
        );
        assert!(parse("").is_err());
        assert!(parse("server=1").is_err());
        assert!(parse("event=x a=\"open").is_err());
        assert!(parse("event=x  a=1").is_err());
        assert!(parse("event=x a=has\"quote").is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_value_is_one_line_and_round_trips(
            values in proptest::collection::vec(proptest::prelude::any::<String>(), 0..5),
            key in "[a-z_][a-z0-9_]{0,8}",
        ) {
            let mut ev = Event::new("prop");
            for v in &values {
                ev.push(&key, v);
            }
            let text = ev.as_str();
            let breaks = ['\n', '\r', '\u{2028}', '\u{2029}'];
            proptest::prop_assert!(!text.contains(breaks));
            proptest::prop_assert!(!text.chars().any(char::is_control));
            let fields = parse(text).unwrap();
            proptest::prop_assert_eq!(fields.len(), values.len() + 1);
            for ((k, v), want) in fields[1..].iter().zip(&values) {
                proptest::prop_assert_eq!(k, &key);
                proptest::prop_assert_eq!(v, want);
            }
        }
    }
}
