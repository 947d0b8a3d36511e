//! The [`Alerter`]: takes alerts without ever blocking, and delivers them on its own threads.
//!
//! ```text
//! send() --[alerts queue]--> rules thread --[mail queue]--> mail thread (SMTP, retries)
//!   |                         (Policy)    --[notify queue]--> notify thread (one command at a time)
//!   +--> syslog line, at once, on the caller's thread
//! ```
//!
//! Every queue is bounded: when one is full, its oldest entry is dropped and the count logged.

use std::fmt;
use std::io;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use log::Level;
use lvs_common::event;

use crate::alert::Alert;
use crate::clock::{Clock, SystemClock};
use crate::config::{AlertConfig, MailConfig, NotifyConfig, Problem};
use crate::mail::{Mail, MailSink, SmtpSink};
use crate::notify;
use crate::policy::{Action, Policy, PolicyConfig};
use crate::queue::{Pop, Queue};

/// Alerts listed in one digest mail; older ones are only counted.
const DIGEST_MAX: usize = 200;

/// Why an [`Alerter`] could not start.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The configuration is not valid.
    #[error("invalid alert configuration: {}", join(.0))]
    Config(Vec<Problem>),
    /// A thread could not be started.
    #[error("cannot start the alert thread: {0}")]
    Thread(#[source] io::Error),
}

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(Debug)]
struct Shared {
    input: Queue<Alert>,
    node: String,
    /// Threads still running, and a condition variable signalled as each ends.
    running: Mutex<usize>,
    ended: Condvar,
}

impl Shared {
    fn send(&self, mut alert: Alert) {
        if alert.node.is_empty() {
            alert.node.clone_from(&self.node);
        }
        alert.log();
        self.input.push(alert);
    }
}

/// Decrements the running count when a thread ends, even by a panic.
struct Running(Arc<Shared>);

impl Drop for Running {
    fn drop(&mut self) {
        let mut running = self.0.running.lock().unwrap_or_else(|e| e.into_inner());
        *running -= 1;
        self.0.ended.notify_all();
    }
}

/// Delivers alerts: syslog at once, mail and the notify command on its own threads, under the
/// deduplication, flapping and rate-limit rules.
///
/// [`Alerter::send`] never blocks on delivery: it logs the syslog line, puts the alert in a
/// bounded queue and returns. Stop it with [`Alerter::shutdown`], which gives what is in
/// flight a deadline; dropping it closes the queues without waiting.
pub struct Alerter {
    shared: Arc<Shared>,
    mail: Option<Arc<Queue<Mail>>>,
    notify: Option<Arc<Queue<Alert>>>,
    threads: Vec<JoinHandle<()>>,
    shutdown_timeout: Duration,
    stopped: bool,
}

impl fmt::Debug for Alerter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Alerter")
            .field("node", &self.shared.node)
            .field("mail", &self.mail.is_some())
            .field("notify", &self.notify.is_some())
            .finish_non_exhaustive()
    }
}

/// A cheap, cloneable handle that sends to an [`Alerter`] from any thread.
#[derive(Debug, Clone)]
pub struct AlertSender {
    shared: Arc<Shared>,
}

impl AlertSender {
    /// Same as [`Alerter::send`].
    pub fn send(&self, alert: Alert) {
        self.shared.send(alert);
    }
}

/// Starts an [`Alerter`] with a clock or a mail sink other than the real ones.
#[derive(Debug)]
pub struct AlerterBuilder {
    config: AlertConfig,
    clock: Arc<dyn Clock>,
    sink: Option<Box<dyn MailSink>>,
}

impl AlerterBuilder {
    /// The clock the rules run on (default: [`SystemClock`]).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> AlerterBuilder {
        self.clock = clock;
        self
    }

    /// Where mails go instead of SMTP. Used only when `[alert.mail]` is configured, whose
    /// other settings (rate limit, retries, queue) still apply.
    #[must_use]
    pub fn mail_sink(mut self, sink: Box<dyn MailSink>) -> AlerterBuilder {
        self.sink = Some(sink);
        self
    }

    /// Validates the configuration and starts the threads.
    pub fn start(self) -> Result<Alerter, AlertError> {
        let config = self.config;
        config.validate().map_err(AlertError::Config)?;
        let node = config.node.clone().unwrap_or_else(host_name);
        let shared = Arc::new(Shared {
            input: Queue::new(config.queue_size),
            node: node.clone(),
            running: Mutex::new(0),
            ended: Condvar::new(),
        });
        let mut alerter = Alerter {
            shared: Arc::clone(&shared),
            mail: None,
            notify: None,
            threads: Vec::new(),
            shutdown_timeout: config.shutdown_timeout(),
            stopped: false,
        };

        let mut mail_parts = None;
        if let Some(mail) = &config.mail {
            let sink: Box<dyn MailSink> = match self.sink {
                Some(sink) => sink,
                None => Box::new(SmtpSink::new(mail).map_err(|p| AlertError::Config(vec![p]))?),
            };
            let queue = Arc::new(Queue::new(mail.queue_size));
            alerter.mail = Some(Arc::clone(&queue));
            mail_parts = Some((queue, sink, mail.clone()));
        }
        if let Some(notify) = &config.notify {
            let queue = Arc::new(Queue::new(notify.queue_size));
            alerter.notify = Some(Arc::clone(&queue));
            let notify = notify.clone();
            let node = node.clone();
            alerter.spawn("lvs-alert-notify", move || notifier(&queue, &notify, &node))?;
        }
        if let Some((queue, sink, mail)) = mail_parts {
            alerter.spawn("lvs-alert-mail", move || mailer(&queue, sink, &mail))?;
        }

        let policy = Policy::new(PolicyConfig {
            dedup_window: config.dedup_window(),
            flap_changes: config.flap_changes,
            flap_window: config.flap_window(),
            stable_after: config.stable_after(),
            mail: config.mail.is_some(),
            max_per_minute: config.mail.as_ref().map_or(u32::MAX, |m| m.max_per_minute),
            notify: config.notify.as_ref().map(|n| n.events),
            digest_max: DIGEST_MAX,
        });
        let rules = Rules {
            shared: Arc::clone(&shared),
            clock: self.clock,
            mail: alerter.mail.clone(),
            notify: alerter.notify.clone(),
            prefix: config
                .mail
                .as_ref()
                .map(|m| m.subject_prefix.clone())
                .unwrap_or_default(),
            limit: config.mail.as_ref().map_or(0, |m| m.max_per_minute),
        };
        alerter.spawn("lvs-alert", move || rules.run(policy))?;
        Ok(alerter)
    }
}

impl Alerter {
    /// Validates `config` and starts delivering: syslog always, mail and the notify command
    /// when configured.
    pub fn start(config: &AlertConfig) -> Result<Alerter, AlertError> {
        Alerter::builder(config).start()
    }

    /// A builder, to replace the clock or the mail transport (tests).
    pub fn builder(config: &AlertConfig) -> AlerterBuilder {
        AlerterBuilder {
            config: config.clone(),
            clock: Arc::new(SystemClock),
            sink: None,
        }
    }

    fn spawn(
        &mut self,
        name: &str,
        body: impl FnOnce() + Send + 'static,
    ) -> Result<(), AlertError> {
        *self
            .shared
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner()) += 1;
        let running = Running(Arc::clone(&self.shared));
        let spawned = thread::Builder::new().name(name.into()).spawn(move || {
            let _running = running;
            body();
        });
        match spawned {
            Ok(handle) => {
                self.threads.push(handle);
                Ok(())
            }
            Err(e) => Err(AlertError::Thread(e)),
        }
    }

    /// Hands over one alert and returns at once: logs its syslog line (every alert gets one,
    /// whatever the rules decide about mail), then queues it for the rules thread. When that
    /// queue is full the oldest alert waiting is dropped (and counted in the log).
    ///
    /// An empty `node` is filled in with the alerter's node name.
    pub fn send(&self, alert: Alert) {
        self.shared.send(alert);
    }

    /// A handle for sending from other threads.
    pub fn sender(&self) -> AlertSender {
        AlertSender {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The node name used in alerts.
    pub fn node(&self) -> &str {
        &self.shared.node
    }

    /// Stops taking alerts and gives what is queued until `timeout` to be delivered: the
    /// rules send what the rate limit held back (one last mail, whatever the limit), mails
    /// are tried (a failed one is retried only while the deadline allows), commands run (the
    /// one running at the deadline is killed). Returns true if everything was delivered or
    /// given up in time; false if the deadline passed first (a mail still being sent is then
    /// abandoned to its thread, and the count of what was left is logged).
    pub fn shutdown(mut self, timeout: Duration) -> bool {
        self.stop(timeout)
    }

    /// [`Alerter::shutdown`] with `[alert] shutdown_timeout_secs`.
    pub fn shutdown_default(self) -> bool {
        let timeout = self.shutdown_timeout;
        self.shutdown(timeout)
    }

    fn stop(&mut self, timeout: Duration) -> bool {
        if self.stopped {
            return true;
        }
        self.stopped = true;
        let deadline = Instant::now() + timeout;
        self.shared.input.close(deadline);
        let mut running = self
            .shared
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        while *running > 0 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            running = self
                .shared
                .ended
                .wait_timeout(running, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let left = *running;
        drop(running);
        if left == 0 {
            for handle in self.threads.drain(..) {
                let _ = handle.join();
            }
            event!(Level::Info, "alert_shutdown", status = "drained");
            true
        } else {
            self.threads.clear();
            event!(
                Level::Warn,
                "alert_shutdown",
                status = "deadline",
                mails_left = self.mail.as_ref().map_or(0, |q| q.len()),
                commands_left = self.notify.as_ref().map_or(0, |q| q.len()),
            );
            false
        }
    }
}

impl Drop for Alerter {
    fn drop(&mut self) {
        if !self.stopped {
            // Do not wait here: the threads finish in the background within the deadline.
            self.shared
                .input
                .close(Instant::now() + self.shutdown_timeout);
        }
    }
}

/// The host name, for `[alert] node`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn report_dropped<T>(queue: &Queue<T>, name: &str) {
    let dropped = queue.take_dropped();
    if dropped > 0 {
        event!(
            Level::Warn,
            "alert_queue_overflow",
            queue = name,
            dropped = dropped
        );
    }
}

/// The rules thread.
struct Rules {
    shared: Arc<Shared>,
    clock: Arc<dyn Clock>,
    mail: Option<Arc<Queue<Mail>>>,
    notify: Option<Arc<Queue<Alert>>>,
    prefix: String,
    limit: u32,
}

impl Rules {
    fn run(self, mut policy: Policy) {
        let mut out = Vec::new();
        loop {
            let now = self.clock.now();
            policy.tick(now, &mut out);
            self.handle(&mut out);
            let max = self.clock.max_sleep();
            let sleep = policy
                .next_wakeup()
                .map_or(max, |at| at.saturating_duration_since(now).min(max));
            match self.shared.input.pop(Some(Instant::now() + sleep)) {
                Pop::Item(alert) => {
                    report_dropped(&self.shared.input, "alerts");
                    policy.push(alert, self.clock.now(), &mut out);
                    self.handle(&mut out);
                }
                Pop::Timeout => {}
                Pop::Closed => {
                    policy.finish(self.clock.now(), &mut out);
                    self.handle(&mut out);
                    let deadline = self.shared.input.closed().unwrap_or_else(Instant::now);
                    if let Some(q) = &self.mail {
                        q.close(deadline);
                    }
                    if let Some(q) = &self.notify {
                        q.close(deadline);
                    }
                    return;
                }
            }
        }
    }

    fn handle(&self, out: &mut Vec<Action>) {
        for action in out.drain(..) {
            match action {
                Action::Log(alert) => alert.log(),
                Action::Notify(alert) => {
                    if let Some(q) = &self.notify {
                        q.push(alert);
                    }
                }
                Action::Mail { alerts, omitted } => {
                    if let Some(q) = &self.mail {
                        q.push(Mail::new(
                            &self.prefix,
                            &self.shared.node,
                            alerts,
                            omitted,
                            self.limit,
                        ));
                    }
                }
                Action::Suppressed { alert, why } => event!(
                    Level::Debug,
                    "alert_suppressed",
                    kind = alert.kind.name(),
                    service = &alert.service,
                    server = &alert.server,
                    why = why,
                ),
                Action::Deferred { pending, next } => event!(
                    Level::Info,
                    "alert_mail_deferred",
                    pending = pending,
                    limit = self.limit,
                    next_in_secs = next.as_secs() + u64::from(next.subsec_nanos() > 0),
                ),
            }
        }
    }
}

/// The delay before retry number `attempt` (1-based).
fn backoff(attempt: u32, min_ms: u64, max_ms: u64) -> Duration {
    let doublings = attempt.saturating_sub(1).min(40);
    Duration::from_millis(min_ms.saturating_mul(1u64 << doublings).min(max_ms))
}

/// The mail thread: one mail at a time, in order, retried with backoff.
fn mailer(queue: &Queue<Mail>, mut sink: Box<dyn MailSink>, config: &MailConfig) {
    loop {
        let mail = match queue.pop(None) {
            Pop::Item(mail) => mail,
            Pop::Timeout => continue,
            Pop::Closed => return,
        };
        report_dropped(queue, "mail");
        let mut attempt = 0u32;
        loop {
            if let Some(deadline) = queue.closed()
                && Instant::now() >= deadline
            {
                event!(
                    Level::Error,
                    "alert_mail_dropped",
                    what = mail.what(),
                    reason = "shutdown deadline",
                    also_dropped = queue.len(),
                );
                return;
            }
            attempt += 1;
            match sink.send(&mail) {
                Ok(()) => {
                    event!(
                        Level::Info,
                        "alert_mail_sent",
                        what = mail.what(),
                        alerts = mail.alerts.len() as u64 + mail.omitted,
                        attempt = attempt,
                        subject = &mail.subject,
                    );
                    break;
                }
                Err(e) if e.permanent => {
                    event!(
                        Level::Error,
                        "alert_mail_dropped",
                        what = mail.what(),
                        reason = "refused",
                        error = &e.message,
                    );
                    break;
                }
                Err(e) => {
                    let delay = backoff(attempt, config.retry_min_ms, config.retry_max_ms);
                    event!(
                        Level::Warn,
                        "alert_mail_failed",
                        what = mail.what(),
                        attempt = attempt,
                        error = &e.message,
                        retry_in_ms = delay.as_millis(),
                    );
                    let now = Instant::now();
                    match queue.closed() {
                        // Closing: wait out the backoff, but not past the deadline.
                        Some(deadline) => {
                            thread::sleep(delay.min(deadline.saturating_duration_since(now)));
                        }
                        None => {
                            if let Some(deadline) = queue.sleep(now + delay) {
                                // Closed while waiting: the rest of the backoff, within the
                                // deadline.
                                let until = (now + delay).min(deadline);
                                thread::sleep(until.saturating_duration_since(Instant::now()));
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The notify thread: one command at a time, in order.
fn notifier(queue: &Queue<Alert>, config: &NotifyConfig, node: &str) {
    loop {
        let alert = match queue.pop(None) {
            Pop::Item(alert) => alert,
            Pop::Timeout => continue,
            Pop::Closed => return,
        };
        report_dropped(queue, "notify");
        let mut deadline = Instant::now() + config.timeout();
        if let Some(closing) = queue.closed() {
            if Instant::now() >= closing {
                event!(
                    Level::Warn,
                    "alert_notify_failed",
                    command = &config.command[0],
                    kind = alert.kind.name(),
                    service = &alert.service,
                    server = &alert.server,
                    error = "not run: shutdown deadline",
                    also_not_run = queue.len(),
                );
                return;
            }
            deadline = deadline.min(closing);
        }
        notify::notify(&config.command, &alert, node, deadline, &|| queue.closed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::AlertKind;
    use crate::clock::ManualClock;
    use crate::config::StartTls;
    use crate::mail::SendError;

    #[test]
    fn handles_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Alerter>();
        shared::<AlertSender>();
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let ms = |a| backoff(a, 1000, 300_000).as_millis();
        assert_eq!(
            [ms(1), ms(2), ms(3), ms(9), ms(10)],
            [1000, 2000, 4000, 256_000, 300_000]
        );
        assert_eq!(ms(u32::MAX), 300_000);
    }

    #[derive(Debug, Clone, Default)]
    struct Capture(Arc<Mutex<Vec<Mail>>>, Arc<Mutex<u32>>);

    impl MailSink for Capture {
        fn send(&mut self, mail: &Mail) -> Result<(), SendError> {
            let mut failures = self.1.lock().unwrap();
            if *failures > 0 {
                *failures -= 1;
                return Err(SendError {
                    message: "451 try again".into(),
                    permanent: false,
                });
            }
            self.0.lock().unwrap().push(mail.clone());
            Ok(())
        }
    }

    impl Capture {
        fn subjects(&self) -> Vec<String> {
            self.0
                .lock()
                .unwrap()
                .iter()
                .map(|m| m.subject.clone())
                .collect()
        }
        fn wait_for(&self, n: usize) -> Vec<String> {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let subjects = self.subjects();
                if subjects.len() >= n || Instant::now() >= deadline {
                    return subjects;
                }
                thread::sleep(Duration::from_millis(2));
            }
        }
    }

    fn mail_config() -> MailConfig {
        MailConfig {
            server: "127.0.0.1".into(),
            port: 25,
            from: "lvs@example.org".into(),
            to: vec!["ops@example.org".into()],
            starttls: Some(StartTls::None),
            ca_file: None,
            user: None,
            password_file: None,
            timeout_secs: 5,
            max_per_minute: 3,
            subject_prefix: "[t]".into(),
            retry_min_ms: 1,
            retry_max_ms: 5,
            queue_size: 10,
        }
    }

    #[test]
    fn threads_apply_the_rules_on_the_injected_clock() {
        let clock = Arc::new(ManualClock::new());
        let capture = Capture::default();
        *capture.1.lock().unwrap() = 2; // the first mail fails twice, then goes.
        let config = AlertConfig {
            node: Some("d1".into()),
            mail: Some(mail_config()),
            ..AlertConfig::default()
        };
        let alerter = Alerter::builder(&config)
            .clock(clock.clone())
            .mail_sink(Box::new(capture.clone()))
            .start()
            .unwrap();
        for i in 0..5 {
            alerter.send(Alert::server_down("svc", format!("s{i}"), "timeout"));
        }
        assert_eq!(capture.wait_for(3).len(), 3);
        // Two more wait for the rate limit: one digest a minute later (fake minute).
        clock.advance(Duration::from_secs(60));
        let subjects = capture.wait_for(4);
        assert_eq!(subjects.len(), 4, "{subjects:?}");
        assert_eq!(subjects[0], "[t] server_down s0 in svc (d1)");
        assert_eq!(subjects[3], "[t] digest: 2 alerts (d1)");
        assert!(alerter.shutdown(Duration::from_secs(5)));
    }

    #[test]
    fn shutdown_flushes_what_the_rate_limit_holds() {
        let capture = Capture::default();
        let config = AlertConfig {
            mail: Some(mail_config()),
            ..AlertConfig::default()
        };
        let alerter = Alerter::builder(&config)
            .mail_sink(Box::new(capture.clone()))
            .start()
            .unwrap();
        for i in 0..10 {
            alerter.send(Alert::new(AlertKind::Custom(format!("c{i}"))));
        }
        assert!(alerter.shutdown(Duration::from_secs(5)));
        let subjects = capture.subjects();
        assert_eq!(subjects.len(), 4, "{subjects:?}");
        assert!(subjects[3].contains("digest: 7 alerts"), "{subjects:?}");
    }

    #[test]
    fn bad_config_is_refused_with_reasons() {
        let config = AlertConfig {
            queue_size: 0,
            ..AlertConfig::default()
        };
        let err = Alerter::start(&config).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid alert configuration: alert.queue_size: must be between 1 and 1000000"
        );
    }
}
