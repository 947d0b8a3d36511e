//! `[alert]`, `[alert.mail]` and `[alert.notify]`: the configuration and its checks.
//!
//! ```toml
//! [alert]
//! # node = "director1"          # default: the host name
//! # dedup_window_secs = 300      # the same alert about the same target: mailed once per window
//! # flap_changes = 5             # more state changes than this within flap_window_secs ...
//! # flap_window_secs = 60        # ... is flapping: one "flapping" mail, then silence ...
//! # stable_after_secs = 300      # ... until no change for this long: one "stable" mail
//! # queue_size = 1000            # alerts waiting for the alerter thread (oldest dropped)
//! # shutdown_timeout_secs = 5    # how long a stop waits for mails and commands in flight
//!
//! [alert.mail]                   # no section: no mail
//! from = "lvs@director1.example.org"
//! to = ["ops@example.org", "oncall@example.org"]
//! # server = "127.0.0.1"
//! # port = 25
//! # starttls = "required"        # "required" | "opportunistic" | "none";
//! #                              # default "none" for a loopback server, else "required"
//! # ca_file = "/etc/lvs/smtp-ca.pem"      # extra trusted CA certificates (PEM)
//! # user = "lvs"                          # SMTP login, with ...
//! # password_file = "/etc/lvs/smtp.pass"  # ... the password in a file no other user can read
//! # timeout_secs = 10
//! # max_per_minute = 10          # more are summarised in one digest mail
//! # subject_prefix = "[lvs]"
//! # retry_min_ms = 1000          # a failed mail is retried after 1 s, 2 s, 4 s ...
//! # retry_max_ms = 300000        # ... at most 5 min apart
//! # queue_size = 100             # mails waiting to be sent (oldest dropped)
//!
//! [alert.notify]                 # no section: no command
//! command = ["/etc/lvs/notify.sh", "--from-lvs"]   # argv, no shell
//! # timeout_secs = 10
//! # events = "all"               # "all": every change; "filtered": what is mailed
//! # queue_size = 100
//! ```

use std::fmt;
use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::Mailbox;
use serde::Deserialize;

/// `[alert]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertConfig {
    /// The node name put in alerts and mail subjects; default: the host name.
    pub node: Option<String>,
    /// The same alert (kind, service, server) is mailed once within this window (seconds;
    /// default 300; 0 turns deduplication off).
    pub dedup_window_secs: u64,
    /// A target changing state more than this many times within `flap_window_secs` is
    /// flapping (default 5; 0 turns flap detection off).
    pub flap_changes: u32,
    /// The window of `flap_changes`, seconds (default 60).
    pub flap_window_secs: u64,
    /// A flapping target is stable again after this long without a change, seconds
    /// (default 300).
    pub stable_after_secs: u64,
    /// Alerts waiting for the alerter thread; when full, the oldest are dropped and counted
    /// (default 1000).
    pub queue_size: usize,
    /// How long a stop waits for mails and commands still in flight, seconds (default 5).
    pub shutdown_timeout_secs: u64,
    /// `[alert.mail]`: no section, no mail.
    pub mail: Option<MailConfig>,
    /// `[alert.notify]`: no section, no command.
    pub notify: Option<NotifyConfig>,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            node: None,
            dedup_window_secs: 300,
            flap_changes: 5,
            flap_window_secs: 60,
            stable_after_secs: 300,
            queue_size: 1000,
            shutdown_timeout_secs: 5,
            mail: None,
            notify: None,
        }
    }
}

/// `[alert.mail]`: e-mail over SMTP.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    /// The SMTP server's host name or address (default `127.0.0.1`).
    #[serde(default = "default_server")]
    pub server: String,
    /// Its port (default 25).
    #[serde(default = "default_port")]
    pub port: u16,
    /// The sender, `lvs@example.org` or `LVS <lvs@example.org>`. Required.
    pub from: String,
    /// The recipients, at least one. Required.
    pub to: Vec<String>,
    /// STARTTLS: `required`, `opportunistic` or `none`. Default: `none` when `server` is a
    /// loopback address or `localhost`, `required` otherwise.
    #[serde(default)]
    pub starttls: Option<StartTls>,
    /// Extra CA certificates (PEM) trusted for the server's certificate, besides the
    /// built-in web PKI roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// SMTP login name; needs `password_file`.
    #[serde(default)]
    pub user: Option<String>,
    /// A file holding the password (one line); it must not be readable by other users.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Connect and command timeout, seconds (default 10).
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// At most this many mails in any minute; the rest are summarised in one digest mail
    /// (default 10).
    #[serde(default = "default_max_per_minute")]
    pub max_per_minute: u32,
    /// Put before every subject (default `[lvs]`).
    #[serde(default = "default_subject_prefix")]
    pub subject_prefix: String,
    /// First retry delay after a failed mail, milliseconds (default 1000); doubled on every
    /// further failure ...
    #[serde(default = "default_retry_min_ms")]
    pub retry_min_ms: u64,
    /// ... up to this, milliseconds (default 300000).
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// Mails waiting to be sent; when full, the oldest are dropped and counted (default 100).
    #[serde(default = "default_mail_queue")]
    pub queue_size: usize,
}

/// `starttls` of `[alert.mail]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartTls {
    /// The mail is not sent unless the server offers STARTTLS and its certificate checks out.
    Required,
    /// STARTTLS when the server offers it (its certificate must then check out), plain text
    /// otherwise.
    Opportunistic,
    /// Plain text.
    None,
}

/// `[alert.notify]`: a command run for every alert.
///
/// It runs as `command... KIND SERVICE SERVER STATE REASON` (empty strings for what does not
/// apply), without a shell, with a clean environment: `PATH`, `LVS_ALERT_KIND`,
/// `LVS_SERVICE`, `LVS_SERVER`, `LVS_STATE`, `LVS_LAST_STATE` (flapping and stable only),
/// `LVS_REASON`, `LVS_NODE`, `LVS_TIME` (RFC 3339, UTC) and `LVS_TIME_UNIX`. Standard input is
/// `/dev/null`; standard output and error are logged. One command runs at a time, in the
/// order of the alerts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// The program (an absolute path) and its first arguments. Required.
    pub command: Vec<String>,
    /// Killed (with everything it started in its process group) after this long, seconds
    /// (default 10).
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Which alerts run it (default `all`).
    #[serde(default)]
    pub events: NotifyEvents,
    /// Alerts waiting for the command; when full, the oldest are dropped and counted
    /// (default 100).
    #[serde(default = "default_notify_queue")]
    pub queue_size: usize,
}

/// `events` of `[alert.notify]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyEvents {
    /// Every state change, in order, as keepalived's notify scripts (only exact repeats within
    /// the dedup window are left out), plus `flapping` and `stable`.
    #[default]
    All,
    /// Only what is mailed: deduplicated, and nothing about a flapping target between its
    /// `flapping` and `stable` alerts (the mail rate limit does not apply).
    Filtered,
}

fn default_server() -> String {
    "127.0.0.1".into()
}
fn default_port() -> u16 {
    25
}
fn default_timeout_secs() -> u64 {
    10
}
fn default_max_per_minute() -> u32 {
    10
}
fn default_subject_prefix() -> String {
    "[lvs]".into()
}
fn default_retry_min_ms() -> u64 {
    1000
}
fn default_retry_max_ms() -> u64 {
    300_000
}
fn default_mail_queue() -> usize {
    100
}
fn default_notify_queue() -> usize {
    100
}

/// One thing wrong with the configuration: the key (`alert.mail.to`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The dotted key, from `alert`.
    pub key: String,
    /// What is wrong, one line.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

/// Reasons quote the file (a path, an address): made one line whatever it holds.
fn problem(key: &str, reason: impl Into<String>) -> Problem {
    Problem {
        key: key.into(),
        reason: lvs_common::one_line_reason(&reason.into()),
    }
}

const MAX_QUEUE: usize = 1_000_000;
const DAY_SECS: u64 = 86_400;

impl AlertConfig {
    /// Checks what serde cannot: ranges, addresses, the files named (the password file must
    /// exist and not be readable by other users; the notify command must be an executable
    /// file). Returns every problem found, not just the first.
    pub fn validate(&self) -> Result<(), Vec<Problem>> {
        let mut problems = Vec::new();
        if let Some(node) = &self.node
            && (node.is_empty() || node.chars().any(char::is_control))
        {
            problems.push(problem(
                "alert.node",
                "must be a non-empty name without control characters",
            ));
        }
        if self.dedup_window_secs > DAY_SECS {
            problems.push(problem(
                "alert.dedup_window_secs",
                "must be at most 86400 (one day)",
            ));
        }
        if self.flap_changes > 0 {
            if self.flap_window_secs == 0 || self.flap_window_secs > DAY_SECS {
                problems.push(problem(
                    "alert.flap_window_secs",
                    "must be between 1 and 86400",
                ));
            }
            if self.stable_after_secs == 0 || self.stable_after_secs > DAY_SECS {
                problems.push(problem(
                    "alert.stable_after_secs",
                    "must be between 1 and 86400",
                ));
            }
        }
        if self.queue_size == 0 || self.queue_size > MAX_QUEUE {
            problems.push(problem("alert.queue_size", "must be between 1 and 1000000"));
        }
        if self.shutdown_timeout_secs > 600 {
            problems.push(problem(
                "alert.shutdown_timeout_secs",
                "must be at most 600",
            ));
        }
        if let Some(mail) = &self.mail {
            mail.check(&mut problems);
        }
        if let Some(notify) = &self.notify {
            notify.check(&mut problems);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// `dedup_window_secs` as a duration.
    pub fn dedup_window(&self) -> Duration {
        Duration::from_secs(self.dedup_window_secs)
    }

    /// `flap_window_secs` as a duration.
    pub fn flap_window(&self) -> Duration {
        Duration::from_secs(self.flap_window_secs)
    }

    /// `stable_after_secs` as a duration.
    pub fn stable_after(&self) -> Duration {
        Duration::from_secs(self.stable_after_secs)
    }

    /// `shutdown_timeout_secs` as a duration.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }
}

/// Whether `host` is `localhost` or a loopback address.
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl MailConfig {
    /// The STARTTLS mode in force: the configured one, else `none` for a loopback server and
    /// `required` for any other.
    pub fn effective_starttls(&self) -> StartTls {
        self.starttls.unwrap_or(if is_loopback(&self.server) {
            StartTls::None
        } else {
            StartTls::Required
        })
    }

    /// `timeout_secs` as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// The sender, parsed.
    pub fn from_mailbox(&self) -> Result<Mailbox, Problem> {
        self.from
            .parse()
            .map_err(|e| problem("alert.mail.from", format!("not a mail address: {e}")))
    }

    /// The recipients, parsed.
    pub fn to_mailboxes(&self) -> Result<Vec<Mailbox>, Problem> {
        if self.to.is_empty() {
            return Err(problem("alert.mail.to", "needs at least one address"));
        }
        self.to
            .iter()
            .map(|to| {
                to.parse().map_err(|e| {
                    problem(
                        "alert.mail.to",
                        format!("{to:?} is not a mail address: {e}"),
                    )
                })
            })
            .collect()
    }

    /// Reads the password from `password_file`, refusing a file that other users can read or
    /// write. `None` without `password_file`. One trailing newline is not part of it.
    pub fn read_password(&self) -> Result<Option<String>, Problem> {
        let Some(path) = &self.password_file else {
            return Ok(None);
        };
        read_secret(path).map(Some)
    }

    /// The extra CA certificates from `ca_file`, as PEM text.
    pub fn read_ca(&self) -> Result<Option<Vec<u8>>, Problem> {
        let Some(path) = &self.ca_file else {
            return Ok(None);
        };
        let pem = fs::read(path).map_err(|e| {
            problem(
                "alert.mail.ca_file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        if !pem
            .windows(b"-----BEGIN CERTIFICATE-----".len())
            .any(|w| w == b"-----BEGIN CERTIFICATE-----")
        {
            return Err(problem(
                "alert.mail.ca_file",
                format!("{} holds no PEM certificate", path.display()),
            ));
        }
        lettre::transport::smtp::client::Certificate::from_pem(&pem).map_err(|e| {
            problem(
                "alert.mail.ca_file",
                format!("{}: bad certificate: {e}", path.display()),
            )
        })?;
        Ok(Some(pem))
    }

    fn check(&self, problems: &mut Vec<Problem>) {
        if self.server.is_empty()
            || self
                .server
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '/')
        {
            problems.push(problem(
                "alert.mail.server",
                format!("{:?} is not a host name or address", self.server),
            ));
        }
        if self.port == 0 {
            problems.push(problem("alert.mail.port", "must be between 1 and 65535"));
        }
        if let Err(p) = self.from_mailbox() {
            problems.push(p);
        }
        if let Err(p) = self.to_mailboxes() {
            problems.push(p);
        }
        if let Err(p) = self.read_ca() {
            problems.push(p);
        }
        match (&self.user, &self.password_file) {
            (Some(_), None) => problems.push(problem(
                "alert.mail.user",
                "needs password_file (the password is never written in the configuration)",
            )),
            (None, Some(_)) => problems.push(problem(
                "alert.mail.password_file",
                "needs user (the login name)",
            )),
            (Some(user), Some(_)) => {
                if user.is_empty() || user.chars().any(char::is_control) {
                    problems.push(problem(
                        "alert.mail.user",
                        "must be a non-empty name without control characters",
                    ));
                }
                if let Err(p) = self.read_password() {
                    problems.push(p);
                }
                if self.effective_starttls() != StartTls::Required && !is_loopback(&self.server) {
                    problems.push(problem(
                        "alert.mail.starttls",
                        "must be \"required\" with a login to a server that is not on this \
                         host, or the password could cross the network in clear text",
                    ));
                }
            }
            (None, None) => {}
        }
        if self.timeout_secs == 0 || self.timeout_secs > 600 {
            problems.push(problem(
                "alert.mail.timeout_secs",
                "must be between 1 and 600",
            ));
        }
        if self.max_per_minute == 0 {
            problems.push(problem(
                "alert.mail.max_per_minute",
                "must be at least 1 (leave out [alert.mail] for no mail)",
            ));
        }
        if self.subject_prefix.chars().any(char::is_control) {
            problems.push(problem(
                "alert.mail.subject_prefix",
                "must not contain control characters",
            ));
        }
        if self.retry_min_ms == 0 || self.retry_min_ms > self.retry_max_ms {
            problems.push(problem(
                "alert.mail.retry_min_ms",
                "must be at least 1 and at most retry_max_ms",
            ));
        }
        if self.retry_max_ms > DAY_SECS * 1000 {
            problems.push(problem(
                "alert.mail.retry_max_ms",
                "must be at most 86400000 (one day)",
            ));
        }
        if self.queue_size == 0 || self.queue_size > MAX_QUEUE {
            problems.push(problem(
                "alert.mail.queue_size",
                "must be between 1 and 1000000",
            ));
        }
    }
}

fn read_secret(path: &Path) -> Result<String, Problem> {
    let key = "alert.mail.password_file";
    let meta = fs::metadata(path)
        .map_err(|e| problem(key, format!("cannot read {}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(problem(
            key,
            format!("{} is not a regular file", path.display()),
        ));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o007 != 0 {
        return Err(problem(
            key,
            format!(
                "{} can be read or written by other users (mode {mode:04o}): \
                 refusing it; run chmod o-rwx on it",
                path.display()
            ),
        ));
    }
    let text = fs::read_to_string(path)
        .map_err(|e| problem(key, format!("cannot read {}: {e}", path.display())))?;
    let password = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    if password.is_empty() {
        return Err(problem(key, format!("{} is empty", path.display())));
    }
    if password.contains(['\n', '\r']) {
        return Err(problem(
            key,
            format!("{} must hold the password on one line", path.display()),
        ));
    }
    Ok(password.to_owned())
}

impl NotifyConfig {
    /// `timeout_secs` as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    fn check(&self, problems: &mut Vec<Problem>) {
        let key = "alert.notify.command";
        match self.command.first() {
            None => problems.push(problem(
                key,
                "needs the program to run, e.g. [\"/etc/lvs/notify.sh\"]",
            )),
            Some(program) => {
                let path = Path::new(program);
                if !path.is_absolute() {
                    problems.push(problem(
                        key,
                        format!("{program:?} must be an absolute path (no shell, no PATH search)"),
                    ));
                } else {
                    match fs::metadata(path) {
                        Err(e) => problems.push(problem(key, format!("{program}: {e}"))),
                        Ok(meta) if !meta.is_file() => {
                            problems.push(problem(key, format!("{program} is not a file")));
                        }
                        Ok(meta) if meta.permissions().mode() & 0o111 == 0 => {
                            problems.push(problem(key, format!("{program} is not executable")));
                        }
                        Ok(_) => {}
                    }
                }
            }
        }
        if self.command.iter().any(|a| a.contains('\0')) {
            problems.push(problem(key, "arguments must not contain NUL characters"));
        }
        if self.timeout_secs == 0 || self.timeout_secs > 3600 {
            problems.push(problem(
                "alert.notify.timeout_secs",
                "must be between 1 and 3600",
            ));
        }
        if self.queue_size == 0 || self.queue_size > MAX_QUEUE {
            problems.push(problem(
                "alert.notify.queue_size",
                "must be between 1 and 1000000",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        alert: AlertConfig,
    }

    fn parse(text: &str) -> Result<AlertConfig, String> {
        toml::from_str::<File>(text)
            .map(|f| f.alert)
            .map_err(|e| e.to_string())
    }

    fn keys(config: &AlertConfig) -> Vec<String> {
        match config.validate() {
            Ok(()) => Vec::new(),
            Err(problems) => problems.into_iter().map(|p| p.key).collect(),
        }
    }

    fn tempdir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lvs-alert-cfg-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn defaults() {
        let c = parse("[alert]\n").unwrap();
        assert_eq!(c, AlertConfig::default());
        assert_eq!(c.validate(), Ok(()));
        let c =
            parse("[alert]\n[alert.mail]\nfrom = \"lvs@example.org\"\nto = [\"a@example.org\"]\n")
                .unwrap();
        let mail = c.mail.as_ref().unwrap();
        assert_eq!(mail.server, "127.0.0.1");
        assert_eq!(mail.port, 25);
        assert_eq!(mail.effective_starttls(), StartTls::None);
        assert_eq!(mail.max_per_minute, 10);
        assert_eq!((mail.retry_min_ms, mail.retry_max_ms), (1000, 300_000));
        assert_eq!(c.validate(), Ok(()));
        let remote = MailConfig {
            server: "smtp.example.org".into(),
            ..mail.clone()
        };
        assert_eq!(remote.effective_starttls(), StartTls::Required);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = parse("[alert]\ndedup_windw_secs = 3\n").unwrap_err();
        assert!(e.contains("dedup_windw_secs"), "{e}");
        let e = parse("[alert.mail]\nfrom = \"a@b.c\"\nto = [\"a@b.c\"]\npassword = \"x\"\n")
            .map(|_| ())
            .unwrap_err();
        assert!(e.contains("password"), "{e}");
        let e = parse("[alert.notify]\ncommand = [\"/bin/true\"]\nshell = true\n").unwrap_err();
        assert!(e.contains("shell"), "{e}");
        let e = parse("[alert.mail]\nfrom = \"a@b.c\"\nto = [\"a@b.c\"]\nstarttls = \"yes\"\n")
            .unwrap_err();
        assert!(e.contains("yes"), "{e}");
        let e = parse("[alert.mail]\nto = [\"a@b.c\"]\n").unwrap_err();
        assert!(e.contains("from"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let c = parse(
            "[alert]\nqueue_size = 0\nflap_window_secs = 0\n\
             [alert.mail]\nfrom = \"not an address\"\nto = []\nport = 0\nmax_per_minute = 0\n\
             retry_min_ms = 10\nretry_max_ms = 5\nserver = \"a b\"\n\
             [alert.notify]\ncommand = [\"notify.sh\"]\ntimeout_secs = 0\n",
        )
        .unwrap();
        let mut got = keys(&c);
        got.sort();
        assert_eq!(
            got,
            [
                "alert.flap_window_secs",
                "alert.mail.from",
                "alert.mail.max_per_minute",
                "alert.mail.port",
                "alert.mail.retry_min_ms",
                "alert.mail.server",
                "alert.mail.to",
                "alert.notify.command",
                "alert.notify.timeout_secs",
                "alert.queue_size",
            ]
        );
        let problems = c.validate().unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|t| t.contains("alert.notify.command: \"notify.sh\" must be an absolute path")),
            "{text:?}"
        );
    }

    #[test]
    fn password_file_rules() {
        let dir = tempdir("pw");
        let pw = dir.join("smtp.pass");
        fs::write(&pw, "s3cret\n").unwrap();
        let base = MailConfig {
            server: "smtp.example.org".into(),
            port: 587,
            from: "lvs@example.org".into(),
            to: vec!["ops@example.org".into()],
            starttls: None,
            ca_file: None,
            user: Some("lvs".into()),
            password_file: Some(pw.clone()),
            timeout_secs: 10,
            max_per_minute: 10,
            subject_prefix: "[lvs]".into(),
            retry_min_ms: 1000,
            retry_max_ms: 300_000,
            queue_size: 100,
        };
        let with = |mail: MailConfig| AlertConfig {
            mail: Some(mail),
            ..AlertConfig::default()
        };

        fs::set_permissions(&pw, fs::Permissions::from_mode(0o644)).unwrap();
        let err = with(base.clone()).validate().unwrap_err();
        assert_eq!(err.len(), 1, "{err:?}");
        assert_eq!(err[0].key, "alert.mail.password_file");
        assert!(err[0].reason.contains("mode 0644"), "{}", err[0]);
        assert!(err[0].reason.contains("chmod o-rwx"), "{}", err[0]);
        assert!(!err[0].reason.contains("s3cret"));

        fs::set_permissions(&pw, fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(with(base.clone()).validate(), Ok(()));
        assert_eq!(base.read_password().unwrap().as_deref(), Some("s3cret"));

        // A login over a plain connection to another host is refused.
        let plain = MailConfig {
            starttls: Some(StartTls::Opportunistic),
            ..base.clone()
        };
        assert_eq!(keys(&with(plain)), ["alert.mail.starttls"]);
        // ... but fine to a relay on this host.
        let local = MailConfig {
            server: "localhost".into(),
            ..base.clone()
        };
        assert_eq!(keys(&with(local)), Vec::<String>::new());

        let no_pw = MailConfig {
            password_file: None,
            ..base.clone()
        };
        assert_eq!(keys(&with(no_pw)), ["alert.mail.user"]);
        let missing = MailConfig {
            password_file: Some(dir.join("nope")),
            ..base.clone()
        };
        assert_eq!(keys(&with(missing)), ["alert.mail.password_file"]);
        let _ = fs::remove_dir_all(&dir);
    }

    /// Found by the fuzzer (config_alert): a notify command with newlines in its path gave a
    /// reason of many lines.
    #[test]
    fn a_reason_quoting_the_file_stays_one_line() {
        let config = AlertConfig {
            notify: Some(NotifyConfig {
                command: vec!["/etc/lv-s/notify.\ndk\nd k\u{c}rom".into()],
                timeout_secs: 10,
                events: NotifyEvents::All,
                queue_size: 10,
            }),
            ..AlertConfig::default()
        };
        let err = config.validate().unwrap_err();
        let shown = err[0].to_string();
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        // Lines joined as every configuration error's are; other control characters escaped.
        assert!(
            shown.starts_with("alert.notify.command: /etc/lv-s/notify.; dk; d k\\u{c}rom: "),
            "{shown}"
        );
    }

    #[test]
    fn notify_command_must_be_executable() {
        let dir = tempdir("notify");
        let script = dir.join("notify.sh");
        fs::write(&script, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o644)).unwrap();
        let config = |command: Vec<String>| AlertConfig {
            notify: Some(NotifyConfig {
                command,
                timeout_secs: 10,
                events: NotifyEvents::All,
                queue_size: 10,
            }),
            ..AlertConfig::default()
        };
        let path = script.to_str().unwrap().to_owned();
        let err = config(vec![path.clone()]).validate().unwrap_err();
        assert!(err[0].reason.contains("not executable"), "{}", err[0]);
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(config(vec![path.clone(), "x".into()]).validate(), Ok(()));
        assert_eq!(keys(&config(Vec::new())), ["alert.notify.command"]);
        let _ = fs::remove_dir_all(&dir);
    }
}
