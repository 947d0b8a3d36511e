//! Alert mails: their text, and the SMTP transport that sends them (lettre's blocking
//! `SmtpTransport`, run on the alerter's mail thread only).

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use lvs_common::logging::utc_timestamp;

use crate::alert::{Alert, AlertKind};
use crate::config::{MailConfig, Problem, StartTls};

/// One mail, ready to send: about one alert, or a digest of several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// `Subject:` (one line).
    pub subject: String,
    /// The plain-text body.
    pub body: String,
    /// `Message-ID:` (without angle brackets), the same on every retry.
    pub message_id: String,
    /// `Date:`.
    pub date: SystemTime,
    /// The alerts it reports.
    pub alerts: Vec<Alert>,
    /// How many more alerts a digest left out.
    pub omitted: u64,
}

static MAIL_SEQ: AtomicU64 = AtomicU64::new(0);

impl Mail {
    /// The mail for `alerts` (one: a plain alert mail; several: a digest). `node` names the
    /// sending node; `limit` is the rate limit a digest explains.
    pub fn new(prefix: &str, node: &str, alerts: Vec<Alert>, omitted: u64, limit: u32) -> Mail {
        let now = SystemTime::now();
        let subject = match alerts.as_slice() {
            [one] if omitted == 0 => {
                let mut subject = format!("{prefix} {}", one.kind);
                if !one.server.is_empty() {
                    let _ = write!(subject, " {}", one.server);
                }
                if !one.service.is_empty() {
                    let sep = if one.server.is_empty() { "" } else { " in" };
                    let _ = write!(subject, "{sep} {}", one.service);
                }
                if matches!(one.kind, AlertKind::Stable) {
                    let _ = write!(subject, ": {}", one.state());
                }
                let _ = write!(subject, " ({})", node_of(one, node));
                subject
            }
            many => format!(
                "{prefix} digest: {} alerts ({node})",
                many.len() as u64 + omitted
            ),
        };
        let mut body = String::new();
        match alerts.as_slice() {
            [one] if omitted == 0 => describe(&mut body, one, node),
            many => {
                let _ = writeln!(
                    body,
                    "{} alerts were held back by the rate limit (at most {limit} mails a \
                     minute). Oldest first:\n",
                    many.len() as u64 + omitted
                );
                if omitted > 0 {
                    let _ = writeln!(
                        body,
                        "({omitted} older alerts are left out here; syslog has every one.)\n"
                    );
                }
                for alert in many {
                    let mut line = alert.event();
                    if alert.node.as_str() != node && !alert.node.is_empty() {
                        line.push("node", &alert.node);
                    }
                    let _ = writeln!(body, "{} {line}", utc_timestamp(alert.time));
                }
            }
        }
        let unix = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let host: String = node
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Mail {
            subject: subject
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
            body,
            message_id: format!(
                "{}.{}.{}.lvs-alert@{}",
                unix.as_secs(),
                unix.subsec_nanos(),
                MAIL_SEQ.fetch_add(1, Ordering::Relaxed),
                if host.is_empty() { "localhost" } else { &host }
            ),
            date: now,
            alerts,
            omitted,
        }
    }

    /// What the mail is about, for log lines: the kind of its one alert, or `digest`.
    pub fn what(&self) -> &str {
        match self.alerts.as_slice() {
            [one] if self.omitted == 0 => one.kind.name(),
            _ => "digest",
        }
    }
}

fn node_of<'a>(alert: &'a Alert, node: &'a str) -> &'a str {
    if alert.node.is_empty() {
        node
    } else {
        &alert.node
    }
}

fn describe(body: &mut String, alert: &Alert, node: &str) {
    let mut field = |name: &str, value: &str| {
        if !value.is_empty() {
            let _ = writeln!(body, "{name:<8} {value}");
        }
    };
    field("event:", alert.kind.name());
    field("service:", &alert.service);
    field("server:", &alert.server);
    field("state:", alert.state());
    if let Some(last) = &alert.last_state {
        field("last:", last.state());
    }
    field("reason:", &alert.reason);
    field("node:", node_of(alert, node));
    field("time:", &utc_timestamp(alert.time));
    let _ = writeln!(body, "\nlog line: {}", alert.event());
}

/// Why a mail was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// What went wrong, one line.
    pub message: String,
    /// True when retrying cannot help (the server refused the mail for good, e.g. an unknown
    /// recipient); the mail is then dropped instead of retried.
    pub permanent: bool,
}

/// Where alert mails go: [`SmtpSink`] in production; tests plug in their own.
///
/// Called on the alerter's mail thread only; it may block (up to the SMTP timeout).
pub trait MailSink: Send + fmt::Debug {
    /// Sends one mail.
    fn send(&mut self, mail: &Mail) -> Result<(), SendError>;
}

/// Mail over SMTP with lettre's blocking transport: one connection per mail, STARTTLS with
/// rustls as configured, login when configured.
pub struct SmtpSink {
    transport: SmtpTransport,
    from: Mailbox,
    to: Vec<Mailbox>,
    description: String,
}

impl fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the credentials.
        f.debug_struct("SmtpSink")
            .field("server", &self.description)
            .field("from", &self.from.to_string())
            .field("to", &self.to.len())
            .finish_non_exhaustive()
    }
}

impl SmtpSink {
    /// A transport for `config`: parses the addresses, reads the CA file and the password
    /// file (with the same checks as [`AlertConfig::validate`](crate::AlertConfig::validate)).
    pub fn new(config: &MailConfig) -> Result<SmtpSink, Problem> {
        let from = config.from_mailbox()?;
        let to = config.to_mailboxes()?;
        let tls = match config.effective_starttls() {
            StartTls::None => Tls::None,
            mode => {
                let mut params = TlsParameters::builder(config.server.clone());
                if let Some(pem) = config.read_ca()? {
                    let cert = Certificate::from_pem(&pem).map_err(|e| Problem {
                        key: "alert.mail.ca_file".into(),
                        reason: format!("bad certificate: {e}"),
                    })?;
                    params = params.add_root_certificate(cert);
                }
                let params = params.build_rustls().map_err(|e| Problem {
                    key: "alert.mail.starttls".into(),
                    reason: format!("cannot set up TLS: {e}"),
                })?;
                if mode == StartTls::Required {
                    Tls::Required(params)
                } else {
                    Tls::Opportunistic(params)
                }
            }
        };
        let mut builder = SmtpTransport::builder_dangerous(config.server.clone())
            .port(config.port)
            .timeout(Some(config.timeout()))
            .tls(tls);
        if let (Some(user), Some(password)) = (&config.user, config.read_password()?) {
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(SmtpSink {
            transport: builder.build(),
            from,
            to,
            description: format!("{}:{}", config.server, config.port),
        })
    }

    /// The lettre message for `mail`.
    fn message(&self, mail: &Mail) -> Result<Message, SendError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(mail.subject.clone())
            .date(mail.date)
            .message_id(Some(format!("<{}>", mail.message_id)))
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder.body(mail.body.clone()).map_err(|e| SendError {
            message: format!("cannot build the message: {e}"),
            permanent: true,
        })
    }
}

impl MailSink for SmtpSink {
    fn send(&mut self, mail: &Mail) -> Result<(), SendError> {
        let message = self.message(mail)?;
        self.transport
            .send(&message)
            .map(|_| ())
            .map_err(|e| SendError {
                message: format!("{}: {e}", self.description),
                permanent: e.is_permanent(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_digest_text() {
        let alert =
            Alert::server_down("tcp/10.0.0.1:80", "10.0.0.2:80", "connect timeout").at(UNIX_EPOCH);
        let mail = Mail::new("[lvs]", "director1", vec![alert.clone()], 0, 10);
        assert_eq!(
            mail.subject,
            "[lvs] server_down 10.0.0.2:80 in tcp/10.0.0.1:80 (director1)"
        );
        assert!(
            mail.body.contains("server:  10.0.0.2:80\n"),
            "{}",
            mail.body
        );
        assert!(
            mail.body.contains("reason:  connect timeout\n"),
            "{}",
            mail.body
        );
        assert!(
            mail.body.contains("time:    1970-01-01T00:00:00.000Z\n"),
            "{}",
            mail.body
        );
        assert_eq!(mail.what(), "server_down");

        let master = Alert::new(AlertKind::Master).service("vi_1\nX-Injected: yes");
        let mail = Mail::new("[lvs]", "d1", vec![master], 0, 10);
        assert_eq!(mail.subject, "[lvs] master vi_1 X-Injected: yes (d1)");

        let mail = Mail::new("[lvs]", "director1", vec![alert.clone(), alert], 3, 10);
        assert_eq!(mail.subject, "[lvs] digest: 5 alerts (director1)");
        assert_eq!(mail.what(), "digest");
        assert!(
            mail.body.contains("3 older alerts are left out"),
            "{}",
            mail.body
        );
        assert!(
            mail.body.contains(
                "1970-01-01T00:00:00.000Z event=server_down service=tcp/10.0.0.1:80 \
                 server=10.0.0.2:80 reason=\"connect timeout\""
            ),
            "{}",
            mail.body
        );
    }

    #[test]
    fn message_ids_differ() {
        let a = Mail::new("[lvs]", "my node", Vec::new(), 0, 1);
        let b = Mail::new("[lvs]", "my node", Vec::new(), 0, 1);
        assert_ne!(a.message_id, b.message_id);
        assert!(a.message_id.ends_with("@my_node"), "{}", a.message_id);
    }
}
