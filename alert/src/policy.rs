//! The rules deciding which alerts become mails and notify commands: deduplication, flap
//! detection and the mail rate limit. Plain data, no threads, no clock of its own: every call
//! gets `now`, so the tests drive it with made-up instants.
//!
//! - **Syslog** is not decided here: every alert is logged when it is sent (the
//!   [`Alerter`](crate::Alerter) does it), and the `flapping`/`stable` alerts generated here
//!   come back as [`Action::Log`].
//! - **Targets.** An alert of a state kind (`server_up`/`server_down`, `sorry_server_on/off`,
//!   `master`/`backup`/`fault`) is a state of its target (family, service, server). A
//!   different state than the last one is a *change*.
//! - **Deduplication.** The same state as the last one reported for the target, within
//!   `dedup_window`, is not reported again; after the window it is (a reminder). Custom kinds:
//!   the same (kind, service, server) within the window is reported once.
//! - **Flapping.** When a target has changed state more than `flap_changes` times within
//!   `flap_window`, one `flapping` alert is reported, then nothing about the target until it
//!   has not changed for `stable_after`; then one `stable` alert reports the state it settled
//!   in. So the last state of every target is always reported.
//! - **Rate limit.** At most `max_per_minute` mails in any 60 s. What is held back waits, in
//!   order, and goes out as one digest mail as soon as the limit allows (at most
//!   `digest_max` alerts are listed, the oldest are counted instead).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use crate::alert::{Alert, AlertKind, Family};
use crate::config::NotifyEvents;

/// The window of the mail rate limit.
pub(crate) const RATE_WINDOW: Duration = Duration::from_secs(60);

/// The rules' settings (from [`AlertConfig`](crate::AlertConfig)).
#[derive(Debug, Clone)]
pub(crate) struct PolicyConfig {
    pub dedup_window: Duration,
    /// 0: no flap detection.
    pub flap_changes: u32,
    pub flap_window: Duration,
    pub stable_after: Duration,
    /// Whether mails are sent at all.
    pub mail: bool,
    pub max_per_minute: u32,
    /// Whether a notify command runs, and for which alerts.
    pub notify: Option<NotifyEvents>,
    /// Alerts listed in one digest mail.
    pub digest_max: usize,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// An alert generated here (`flapping`, `stable`): log it to syslog.
    Log(Alert),
    /// Run the notify command for this alert.
    Notify(Alert),
    /// Send one mail: one alert, or a digest of several; `omitted` more were left out of it.
    Mail { alerts: Vec<Alert>, omitted: u64 },
    /// Not reported (`why`: `duplicate` or `flapping`); logged at debug level.
    Suppressed { alert: Alert, why: &'static str },
    /// The rate limit holds mails back; the next may go out in `next`. Once per hold-up.
    Deferred { pending: usize, next: Duration },
}

#[derive(Debug)]
struct Target {
    /// The last state seen.
    last: AlertKind,
    /// The last state reported, and when.
    reported: Option<(AlertKind, Instant)>,
    /// When the recent changes happened (within `flap_window`).
    changes: VecDeque<Instant>,
    flapping: bool,
    last_change: Instant,
    last_seen: Instant,
    /// The last alert about the target, to build `flapping`/`stable` from.
    template: Alert,
}

type TargetKey = (Family, String, String);

/// The state of the rules.
#[derive(Debug)]
pub(crate) struct Policy {
    config: PolicyConfig,
    targets: BTreeMap<TargetKey, Target>,
    /// Custom kinds: (kind, service, server) -> last reported.
    custom: BTreeMap<(String, String, String), Instant>,
    /// When the mails of the last `RATE_WINDOW` went out.
    sent: VecDeque<Instant>,
    /// Mail-worthy alerts held back by the rate limit.
    pending: VecDeque<Alert>,
    omitted: u64,
    deferred_logged: bool,
}

impl Policy {
    pub(crate) fn new(config: PolicyConfig) -> Policy {
        Policy {
            config,
            targets: BTreeMap::new(),
            custom: BTreeMap::new(),
            sent: VecDeque::new(),
            pending: VecDeque::new(),
            omitted: 0,
            deferred_logged: false,
        }
    }

    /// One alert arrives at `now`.
    pub(crate) fn push(&mut self, alert: Alert, now: Instant, out: &mut Vec<Action>) {
        self.tick(now, out);
        let Some(family) = alert.kind.family() else {
            let key = (
                alert.kind.name().to_owned(),
                alert.service.clone(),
                alert.server.clone(),
            );
            if let Some(&at) = self.custom.get(&key)
                && now < at + self.config.dedup_window
            {
                out.push(Action::Suppressed {
                    alert,
                    why: "duplicate",
                });
                return;
            }
            self.custom.insert(key, now);
            self.report(alert, now, out);
            return;
        };

        let key = (family, alert.service.clone(), alert.server.clone());
        let config = &self.config;
        let target = self.targets.entry(key).or_insert_with(|| Target {
            last: alert.kind.clone(),
            reported: None,
            changes: VecDeque::new(),
            flapping: false,
            last_change: now,
            last_seen: now,
            template: alert.clone(),
        });
        let is_change = target.last != alert.kind || target.reported.is_none() && !target.flapping;
        target.last_seen = now;
        target.template = alert.clone();
        if !is_change {
            let duplicate = target.flapping
                || target.reported.as_ref().is_some_and(|(kind, at)| {
                    *kind == alert.kind && now < *at + config.dedup_window
                });
            if duplicate {
                let why = if target.flapping {
                    "flapping"
                } else {
                    "duplicate"
                };
                out.push(Action::Suppressed { alert, why });
                return;
            }
            target.reported = Some((alert.kind.clone(), now));
            self.report(alert, now, out);
            return;
        }

        target.last = alert.kind.clone();
        target.last_change = now;
        target.changes.push_back(now);
        while target
            .changes
            .front()
            .is_some_and(|&t| t + config.flap_window <= now)
        {
            target.changes.pop_front();
        }

        if target.flapping {
            if config.notify == Some(NotifyEvents::All) {
                out.push(Action::Notify(alert.clone()));
            }
            out.push(Action::Suppressed {
                alert,
                why: "flapping",
            });
            return;
        }

        let flap_limit = usize::try_from(config.flap_changes).unwrap_or(usize::MAX);
        if flap_limit > 0 && target.changes.len() > flap_limit {
            target.flapping = true;
            target.reported = Some((AlertKind::Flapping, now));
            let flapping = Alert {
                kind: AlertKind::Flapping,
                reason: format!(
                    "{} state changes within {} s, now {}; no more mails about it until it \
                     keeps one state for {} s",
                    target.changes.len(),
                    config.flap_window.as_secs(),
                    alert.kind.state(),
                    config.stable_after.as_secs()
                ),
                last_state: Some(alert.kind.clone()),
                ..alert.clone()
            };
            if config.notify == Some(NotifyEvents::All) {
                out.push(Action::Notify(alert.clone()));
            }
            out.push(Action::Suppressed {
                alert,
                why: "flapping",
            });
            out.push(Action::Log(flapping.clone()));
            self.report(flapping, now, out);
            return;
        }

        target.reported = Some((alert.kind.clone(), now));
        self.report(alert, now, out);
    }

    /// Time passes: flapping targets that have settled report `stable`, held-back mails go
    /// out when the rate limit allows, and forgotten targets are dropped.
    pub(crate) fn tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        let config = &self.config;
        let mut settled = Vec::new();
        for target in self.targets.values_mut() {
            if target.flapping && now >= target.last_change + config.stable_after {
                target.flapping = false;
                target.changes.clear();
                target.reported = Some((target.last.clone(), now));
                settled.push(Alert {
                    kind: AlertKind::Stable,
                    reason: format!(
                        "no state change for {} s, now {}",
                        config.stable_after.as_secs(),
                        target.last.state()
                    ),
                    time: SystemTime::now(),
                    last_state: Some(target.last.clone()),
                    ..target.template.clone()
                });
            }
        }
        for alert in settled {
            out.push(Action::Log(alert.clone()));
            self.report(alert, now, out);
        }

        let forget = self.config.dedup_window.max(self.config.flap_window);
        self.targets
            .retain(|_, t| t.flapping || now < t.last_seen + forget);
        let dedup = self.config.dedup_window;
        self.custom.retain(|_, at| now < *at + dedup);
        self.flush(now, false, out);
    }

    /// When [`Policy::tick`] has something to do next, if ever.
    pub(crate) fn next_wakeup(&self) -> Option<Instant> {
        let mail = if self.config.mail && !self.pending.is_empty() {
            self.sent.front().map(|&t| t + RATE_WINDOW)
        } else {
            None
        };
        let stable = self
            .targets
            .values()
            .filter(|t| t.flapping)
            .map(|t| t.last_change + self.config.stable_after)
            .min();
        match (mail, stable) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The alerter stops: settled targets report `stable`, targets still flapping are
    /// reported as such (mail only), and everything held back goes out in one last mail,
    /// whatever the rate limit says.
    pub(crate) fn finish(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.tick(now, out);
        let mut still = Vec::new();
        for target in self.targets.values().filter(|t| t.flapping) {
            still.push(Alert {
                kind: AlertKind::Flapping,
                reason: format!(
                    "still flapping when the alerter stopped, last state {}",
                    target.last.state()
                ),
                time: SystemTime::now(),
                last_state: Some(target.last.clone()),
                ..target.template.clone()
            });
        }
        for alert in still {
            out.push(Action::Log(alert.clone()));
            if self.config.mail {
                self.enqueue(alert);
            }
        }
        self.flush(now, true, out);
    }

    fn report(&mut self, alert: Alert, now: Instant, out: &mut Vec<Action>) {
        if self.config.notify.is_some() {
            out.push(Action::Notify(alert.clone()));
        }
        if self.config.mail {
            self.enqueue(alert);
            self.flush(now, false, out);
        }
    }

    fn enqueue(&mut self, alert: Alert) {
        self.pending.push_back(alert);
        while self.pending.len() > self.config.digest_max.max(1) {
            self.pending.pop_front();
            self.omitted += 1;
        }
    }

    fn flush(&mut self, now: Instant, force: bool, out: &mut Vec<Action>) {
        while self.sent.front().is_some_and(|&t| t + RATE_WINDOW <= now) {
            self.sent.pop_front();
        }
        if self.pending.is_empty() {
            return;
        }
        let limit = usize::try_from(self.config.max_per_minute).unwrap_or(usize::MAX);
        if force || self.sent.len() < limit {
            out.push(Action::Mail {
                alerts: self.pending.drain(..).collect(),
                omitted: std::mem::take(&mut self.omitted),
            });
            self.sent.push_back(now);
            self.deferred_logged = false;
        } else if !self.deferred_logged {
            self.deferred_logged = true;
            let next = self.sent.front().map_or(Duration::ZERO, |&t| {
                (t + RATE_WINDOW).saturating_duration_since(now)
            });
            out.push(Action::Deferred {
                pending: self.pending.len(),
                next,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    fn config() -> PolicyConfig {
        PolicyConfig {
            dedup_window: Duration::from_secs(300),
            flap_changes: 5,
            flap_window: Duration::from_secs(60),
            stable_after: Duration::from_secs(300),
            mail: true,
            max_per_minute: 10,
            notify: Some(NotifyEvents::All),
            digest_max: 100,
        }
    }

    struct Run {
        policy: Policy,
        clock: ManualClock,
        out: Vec<Action>,
    }

    impl Run {
        fn new(config: PolicyConfig) -> Run {
            Run {
                policy: Policy::new(config),
                clock: ManualClock::new(),
                out: Vec::new(),
            }
        }
        fn push(&mut self, alert: Alert) {
            self.policy.push(alert, self.clock.now(), &mut self.out);
        }
        fn wait(&mut self, secs: u64) {
            self.clock.advance(Duration::from_secs(secs));
            self.policy.tick(self.clock.now(), &mut self.out);
        }
        fn mails(&self) -> Vec<(Vec<String>, u64)> {
            self.out
                .iter()
                .filter_map(|a| match a {
                    Action::Mail { alerts, omitted } => Some((
                        alerts
                            .iter()
                            .map(|a| format!("{} {} {}", a.kind, a.server, a.state()))
                            .collect(),
                        *omitted,
                    )),
                    _ => None,
                })
                .collect()
        }
        fn notified(&self) -> Vec<String> {
            self.out
                .iter()
                .filter_map(|a| match a {
                    Action::Notify(a) => Some(format!("{} {}", a.kind, a.state())),
                    _ => None,
                })
                .collect()
        }
    }

    fn down(server: &str) -> Alert {
        Alert::server_down("tcp/10.0.0.1:80", server, "connect timeout")
    }
    fn up(server: &str) -> Alert {
        Alert::server_up("tcp/10.0.0.1:80", server)
    }

    #[test]
    fn duplicates_within_the_window_are_mailed_once() {
        let mut run = Run::new(config());
        run.push(down("a"));
        run.wait(10);
        run.push(down("a"));
        run.wait(100);
        run.push(down("a"));
        assert_eq!(run.mails().len(), 1);
        assert_eq!(run.notified(), ["server_down down"]);
        // After the window: a reminder.
        run.wait(300);
        run.push(down("a"));
        assert_eq!(run.mails().len(), 2);
        // A change is never a duplicate, even back to a recent state.
        run.push(up("a"));
        run.wait(1);
        run.push(down("a"));
        assert_eq!(run.mails().len(), 4);
        // Other servers are other targets.
        run.push(down("b"));
        assert_eq!(run.mails().len(), 5);
    }

    #[test]
    fn custom_kinds_are_deduplicated_by_kind_service_server() {
        let mut run = Run::new(config());
        let custom = |server: &str| {
            Alert::new(AlertKind::Custom("quorum_lost".into()))
                .service("tcp/10.0.0.1:80")
                .server(server)
        };
        run.push(custom(""));
        run.push(custom(""));
        run.push(custom("x"));
        run.wait(301);
        run.push(custom(""));
        assert_eq!(run.mails().len(), 3);
    }

    #[test]
    fn a_flapping_server_gets_one_flapping_mail_then_one_stable_mail() {
        let mut run = Run::new(config());
        for i in 0..20 {
            run.push(if i % 2 == 0 { down("a") } else { up("a") });
            run.wait(1);
        }
        let mails = run.mails();
        // Five changes mailed one by one, the sixth makes it flapping.
        assert_eq!(mails.len(), 6, "{mails:?}");
        assert_eq!(mails[5].0, ["flapping a flapping"]);
        // Nothing more while it flaps, nor right after.
        run.wait(298);
        assert_eq!(run.mails().len(), 6);
        // 300 s after the last change (up, i = 19): stable, up.
        run.wait(1);
        let mails = run.mails();
        assert_eq!(mails.len(), 7);
        assert_eq!(mails[6].0, ["stable a up"]);
        // Syslog gets the generated alerts; notify got every change plus both.
        let logged: Vec<_> = run
            .out
            .iter()
            .filter_map(|a| match a {
                Action::Log(a) => Some(a.kind.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(logged, [AlertKind::Flapping, AlertKind::Stable]);
        let notified = run.notified();
        assert_eq!(notified.len(), 22, "{notified:?}");
        assert_eq!(notified[6], "flapping flapping");
        assert_eq!(notified[21], "stable up");
        // A change after it settled is mailed again.
        run.push(down("a"));
        assert_eq!(run.mails().len(), 8);
    }

    #[test]
    fn filtered_notify_follows_the_mails() {
        let mut run = Run::new(PolicyConfig {
            notify: Some(NotifyEvents::Filtered),
            ..config()
        });
        for i in 0..20 {
            run.push(if i % 2 == 0 { down("a") } else { up("a") });
        }
        run.wait(300);
        let notified = run.notified();
        assert_eq!(notified.len(), 7, "{notified:?}");
        assert_eq!(notified[5], "flapping flapping");
        assert_eq!(notified[6], "stable up");
    }

    #[test]
    fn the_rate_limit_holds_back_into_one_digest() {
        let mut run = Run::new(config());
        for i in 0..25 {
            run.push(down(&format!("10.0.0.{i}:80")));
        }
        assert_eq!(run.mails().len(), 10);
        assert!(
            run.out
                .iter()
                .any(|a| matches!(a, Action::Deferred { pending: 1, .. }))
        );
        assert_eq!(
            run.policy.next_wakeup(),
            Some(run.clock.now() + RATE_WINDOW)
        );
        run.wait(59);
        assert_eq!(run.mails().len(), 10);
        run.wait(1);
        let mails = run.mails();
        assert_eq!(mails.len(), 11);
        assert_eq!(mails[10].0.len(), 15);
        assert_eq!(run.policy.next_wakeup(), None);
    }

    #[test]
    fn a_long_digest_counts_what_it_leaves_out() {
        let mut run = Run::new(PolicyConfig {
            max_per_minute: 1,
            digest_max: 5,
            ..config()
        });
        for i in 0..12 {
            run.push(down(&format!("s{i}")));
        }
        run.wait(60);
        let mails = run.mails();
        assert_eq!(mails.len(), 2);
        assert_eq!(mails[1].0.len(), 5);
        assert_eq!(mails[1].1, 6);
        assert_eq!(mails[1].0[4], "server_down s11 down");
    }

    #[test]
    fn finish_sends_what_is_held_back_and_who_still_flaps() {
        let mut run = Run::new(PolicyConfig {
            max_per_minute: 6,
            ..config()
        });
        for i in 0..10 {
            run.push(if i % 2 == 0 { down("a") } else { up("a") });
        }
        run.push(down("b"));
        assert_eq!(run.mails().len(), 6);
        let now = run.clock.now();
        run.policy.finish(now, &mut run.out);
        let mails = run.mails();
        assert_eq!(mails.len(), 7);
        assert_eq!(mails[6].0, ["server_down b down", "flapping a flapping"]);
    }

    #[test]
    fn flap_detection_off() {
        let mut run = Run::new(PolicyConfig {
            flap_changes: 0,
            max_per_minute: 1000,
            ..config()
        });
        for i in 0..50 {
            run.push(if i % 2 == 0 { down("a") } else { up("a") });
        }
        assert_eq!(run.mails().len(), 50);
    }

    #[test]
    fn no_mail_no_pending() {
        let mut run = Run::new(PolicyConfig {
            mail: false,
            notify: None,
            ..config()
        });
        for i in 0..50 {
            run.push(down(&format!("s{i}")));
        }
        assert!(run.out.iter().all(|a| !matches!(a, Action::Mail { .. })));
        assert!(run.policy.pending.is_empty());
        assert_eq!(run.policy.next_wakeup(), None);
    }

    #[test]
    fn idle_targets_are_forgotten() {
        let mut run = Run::new(config());
        for i in 0..100 {
            run.push(down(&format!("s{i}")));
        }
        assert_eq!(run.policy.targets.len(), 100);
        run.wait(301);
        assert!(run.policy.targets.is_empty());
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        const TARGETS: usize = 3;
        const FLAP: usize = 3;
        const RATE: usize = 4;

        fn prop_config() -> PolicyConfig {
            PolicyConfig {
                dedup_window: Duration::from_secs(120),
                flap_changes: 3,
                flap_window: Duration::from_secs(60),
                stable_after: Duration::from_secs(90),
                mail: true,
                max_per_minute: 4,
                notify: Some(NotifyEvents::Filtered),
                digest_max: 1000,
            }
        }

        fn state_of(alert: &Alert) -> Option<bool> {
            match (&alert.kind, &alert.last_state) {
                (AlertKind::ServerUp, _) | (AlertKind::Stable, Some(AlertKind::ServerUp)) => {
                    Some(true)
                }
                (AlertKind::ServerDown, _) | (AlertKind::Stable, Some(AlertKind::ServerDown)) => {
                    Some(false)
                }
                _ => None,
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(300))]
            #[test]
            fn mails_stay_within_limits_and_the_last_state_is_reported(
                ops in proptest::collection::vec((0..TARGETS, any::<bool>(), 0u64..40_000), 1..200),
            ) {
                let clock = ManualClock::new();
                let mut policy = Policy::new(prop_config());
                let mut out = Vec::new();
                let mut mails: Vec<(Instant, Vec<Alert>)> = Vec::new();
                let mut last = [None; TARGETS];
                let mut collect = |out: &mut Vec<Action>, now: Instant| {
                    for action in out.drain(..) {
                        if let Action::Mail { alerts, .. } = action {
                            mails.push((now, alerts));
                        }
                    }
                };
                // Alerts carry the manual clock's time, so that the per-target rule below is
                // checked on when the changes happened: a digest held back by the global rate
                // limit may carry several earlier changes in one later mail.
                let t0 = clock.now();
                for &(target, is_up, gap_ms) in &ops {
                    clock.advance(Duration::from_millis(gap_ms));
                    let now = clock.now();
                    policy.tick(now, &mut out);
                    let server = format!("s{target}");
                    let at = SystemTime::UNIX_EPOCH + (now - t0);
                    let alert = if is_up { up(&server) } else { down(&server) }.at(at);
                    policy.push(alert, now, &mut out);
                    last[target] = Some(is_up);
                    collect(&mut out, now);
                }
                // Let everything settle, waking when the policy asks to.
                let mut guard = 0;
                while let Some(at) = policy.next_wakeup() {
                    guard += 1;
                    prop_assert!(guard < 1000, "the policy never settles");
                    let now = clock.now();
                    if at > now {
                        clock.advance(at - now);
                    }
                    let now = clock.now();
                    policy.tick(now, &mut out);
                    collect(&mut out, now);
                }

                // 1. Never more than RATE mails within any 60 s.
                for (i, (t, _)) in mails.iter().enumerate() {
                    let in_window = mails[..=i]
                        .iter()
                        .filter(|(s, _)| *s + RATE_WINDOW > *t)
                        .count();
                    prop_assert!(in_window <= RATE, "{} mails within 60 s", in_window);
                }
                // 2. Per target: at most FLAP changes + 1 reminder mailed one by one within
                //    any flap window, and flapping/stable alternate, starting with flapping.
                for (target, want) in last.iter().enumerate() {
                    let server = format!("s{target}");
                    let about: Vec<(Instant, &Alert)> = mails
                        .iter()
                        .flat_map(|(t, alerts)| alerts.iter().map(move |a| (*t, a)))
                        .filter(|(_, a)| a.server == server)
                        .collect();
                    let mut singles: Vec<SystemTime> = about
                        .iter()
                        .filter(|(_, a)| a.kind.family().is_some())
                        .map(|(_, a)| a.time)
                        .collect();
                    singles.sort();
                    for (i, t) in singles.iter().enumerate() {
                        let n = singles[..=i]
                            .iter()
                            .filter(|s| **s + Duration::from_secs(60) > *t)
                            .count();
                        prop_assert!(n <= FLAP + 1, "{} single mails about {} in 60 s", n, server);
                    }
                    let mut flapping = false;
                    for (_, a) in &about {
                        match a.kind {
                            AlertKind::Flapping => {
                                prop_assert!(!flapping, "two flapping alerts in a row");
                                flapping = true;
                            }
                            AlertKind::Stable => {
                                prop_assert!(flapping, "stable without flapping");
                                flapping = false;
                            }
                            _ => prop_assert!(!flapping, "a single mail while flapping"),
                        }
                    }
                    // 3. The last state mailed is the last state sent.
                    let reported = about.iter().rev().find_map(|(_, a)| state_of(a));
                    prop_assert_eq!(reported, *want, "target {}", server);
                }
            }
        }
    }
}
