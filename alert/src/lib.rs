//! Alerts on state changes, for lvs-monitord (a real server down/up/flapping, the sorry
//! server) and lvs-heartbeatd (master/backup/fault): syslog, e-mail over SMTP and a notify
//! command, deduplicated and rate-limited, delivered without ever blocking the caller.
//!
//! ```no_run
//! use std::time::Duration;
//! use lvs_alert::{Alert, AlertConfig, AlertKind, Alerter};
//!
//! # fn config() -> AlertConfig { AlertConfig::default() }
//! // `[alert]` of the daemon's config file, checked with `AlertConfig::validate` at load.
//! let config: AlertConfig = config();
//! let alerter = Alerter::start(&config)?;
//!
//! // In the checking loop: returns at once (the syslog line is written here, mail and the
//! // notify command happen on the alerter's threads).
//! alerter.send(Alert::server_down("tcp/10.0.0.1:80", "10.0.0.2:80", "connect timeout"));
//! alerter.send(Alert::server_up("tcp/10.0.0.1:80", "10.0.0.2:80"));
//! alerter.send(
//!     Alert::new(AlertKind::SorryServerOn)
//!         .service("tcp/10.0.0.1:80")
//!         .server("10.0.0.9:80")
//!         .reason("every real server is down"),
//! );
//! // lvs-heartbeatd:
//! alerter.send(Alert::new(AlertKind::Master).service("vip-group-1").reason("peer silent for 3 s"));
//!
//! // On stop: deliver what is queued, within a deadline.
//! alerter.shutdown(Duration::from_secs(5));
//! # Ok::<(), lvs_alert::AlertError>(())
//! ```
//!
//! # What goes where
//!
//! - **Syslog**: every alert, one event line, at once, on the caller's thread:
//!   `event=server_down service=tcp/10.0.0.1:80 server=10.0.0.2:80 reason="connect timeout"`
//!   (event name = the kind; `warning` for `server_down`, `flapping`, `sorry_server_on`; `err`
//!   for `fault`; `info` otherwise). Callers should not log these transitions again.
//! - **Mail** (`[alert.mail]`): after the rules below; one mail per alert, or one digest.
//!   A failed mail is logged and retried with exponential backoff; a mail the server refuses
//!   for good (5xx) is logged and dropped.
//! - **Notify command** (`[alert.notify]`): `command... KIND SERVICE SERVER STATE REASON`
//!   with `LVS_*` environment variables (see [`NotifyConfig`]), no shell, one at a time, with
//!   a timeout; its output is logged.
//!
//! # The rules (see the `policy` module)
//!
//! - The same state of the same target (kind family, service, server) within
//!   `dedup_window_secs` is mailed once.
//! - More than `flap_changes` changes within `flap_window_secs`: one `flapping` mail, nothing
//!   more about it until it has kept one state for `stable_after_secs`, then one `stable`
//!   mail with that state. The last state of every target is always reported.
//! - At most `max_per_minute` mails in any 60 s; what is held back goes out as one digest
//!   mail as soon as the limit allows.
//!
//! # Log events
//!
//! Each alert is logged as its own event line (`server_down`, `master`, `flapping`, ... with
//! `[service server state reason]`), and delivery as `alert_mail_*`, `alert_notify*`,
//! `alert_suppressed`, `alert_queue_overflow` and `alert_shutdown`: docs/LOGGING.md lists them
//! all with their levels and fields.

mod alert;
mod alerter;
mod clock;
pub mod config;
mod mail;
mod notify;
mod policy;
mod queue;

pub use alert::{Alert, AlertKind, Family};
pub use alerter::{AlertError, AlertSender, Alerter, AlerterBuilder};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{AlertConfig, MailConfig, NotifyConfig, NotifyEvents, Problem, StartTls};
pub use mail::{Mail, MailSink, SendError, SmtpSink};
pub use notify::NOTIFY_PATH;
