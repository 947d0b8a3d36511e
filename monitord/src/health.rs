//! The per-server health state machine: rise/fall counters per check, all checks combined.
//!
//! - Each check has its own state: `fall` consecutive failures make it Down, `rise`
//!   consecutive passes make it Up; a result of the other kind resets the run. Starting from
//!   Unknown, whichever count is reached first decides.
//! - A server is **Down as soon as any check is Down** and **Up once every check is Up**;
//!   otherwise (some check still Unknown, none Down) it keeps its state.
//! - A change of the server's state is reported once, as a [`Transition`], by the
//!   [`Health::record`] call that caused it; nothing is reported while the state stays.
//! - Start-up: [`Health::add_server`] takes the initial state. A daemon that restarts gives
//!   `Up` for the servers the director currently has with a non-zero weight and `Down` for the
//!   quiesced ones, so that nothing healthy flaps: an Up server needs `fall` failures to go,
//!   a Down one `rise` passes to come back. `Unknown` (no view) waits for the checks.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;

/// A server's or a check's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum State {
    /// Not decided yet.
    #[default]
    Unknown,
    /// Passing.
    Up,
    /// Failing.
    Down,
}

impl State {
    /// `unknown`, `up` or `down`.
    pub fn name(self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::Up => "up",
            State::Down => "down",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How one check of a server counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckPolicy {
    /// Consecutive passes to become Up (at least 1).
    pub rise: u32,
    /// Consecutive failures to become Down (at least 1).
    pub fall: u32,
    /// A name for reasons, e.g. `http:80/health`.
    pub label: String,
}

impl CheckPolicy {
    /// The policy of a configured check.
    pub fn of(check: &crate::config::Check) -> CheckPolicy {
        CheckPolicy {
            rise: check.rise,
            fall: check.fall,
            label: check.kind.to_string(),
        }
    }
}

/// A server changed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition<K> {
    /// Which server.
    pub server: K,
    /// Its state before.
    pub from: State,
    /// Its state now.
    pub to: State,
    /// Why, one line: `http:80/health failed 3 times: wrong status: 500 ...` or
    /// `all 2 checks pass (tcp:80: connected)`.
    pub reason: String,
}

#[derive(Debug, Clone)]
struct CheckHealth {
    policy: CheckPolicy,
    state: State,
    passes: u32,
    failures: u32,
    last_detail: String,
}

impl CheckHealth {
    /// Counts one result; true if the check's state changed.
    fn record(&mut self, ok: bool, detail: &str) -> bool {
        self.last_detail.clear();
        self.last_detail.push_str(detail);
        let before = self.state;
        if ok {
            self.failures = 0;
            self.passes = self.passes.saturating_add(1);
            if self.state != State::Up && self.passes >= self.policy.rise {
                self.state = State::Up;
            }
        } else {
            self.passes = 0;
            self.failures = self.failures.saturating_add(1);
            if self.state != State::Down && self.failures >= self.policy.fall {
                self.state = State::Down;
            }
        }
        self.state != before
    }
}

#[derive(Debug, Clone)]
struct ServerHealth {
    state: State,
    checks: Vec<CheckHealth>,
}

/// The health of every server, keyed by the daemon's own key `K` (e.g. a
/// [`TargetId`](crate::checks::TargetId)).
#[derive(Debug, Clone)]
pub struct Health<K> {
    servers: HashMap<K, ServerHealth>,
}

impl<K> Default for Health<K> {
    fn default() -> Self {
        Health {
            servers: HashMap::new(),
        }
    }
}

impl<K: Eq + Hash + Clone> Health<K> {
    /// No servers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a server with its checks' policies, in the engine's check order,
    /// starting in `initial` (see the module docs). Every check starts in the same state.
    pub fn add_server(&mut self, server: K, checks: Vec<CheckPolicy>, initial: State) {
        let checks = checks
            .into_iter()
            .map(|policy| CheckHealth {
                policy: CheckPolicy {
                    rise: policy.rise.max(1),
                    fall: policy.fall.max(1),
                    label: policy.label,
                },
                state: initial,
                passes: 0,
                failures: 0,
                last_detail: String::new(),
            })
            .collect();
        self.servers.insert(
            server,
            ServerHealth {
                state: initial,
                checks,
            },
        );
    }

    /// Forgets a server; its state, if it was there.
    pub fn remove_server(&mut self, server: &K) -> Option<State> {
        self.servers.remove(server).map(|s| s.state)
    }

    /// A server's state.
    pub fn state(&self, server: &K) -> Option<State> {
        self.servers.get(server).map(|s| s.state)
    }

    /// A check's state.
    pub fn check_state(&self, server: &K, check: usize) -> Option<State> {
        self.servers.get(server)?.checks.get(check).map(|c| c.state)
    }

    /// Every server and its state (for re-applying the state after the director restarts).
    pub fn iter(&self) -> impl Iterator<Item = (&K, State)> {
        self.servers.iter().map(|(k, s)| (k, s.state))
    }

    /// How many servers are in `state`.
    pub fn count(&self, state: State) -> usize {
        self.servers.values().filter(|s| s.state == state).count()
    }

    /// Counts one result of check `check` of `server`; the server's transition, if this result
    /// made one. Results for unknown servers or checks are ignored.
    pub fn record(
        &mut self,
        server: &K,
        check: usize,
        ok: bool,
        detail: &str,
    ) -> Option<Transition<K>> {
        let s = self.servers.get_mut(server)?;
        let c = s.checks.get_mut(check)?;
        if !c.record(ok, detail) {
            return None;
        }
        let any_down = s.checks.iter().any(|c| c.state == State::Down);
        let all_up = s.checks.iter().all(|c| c.state == State::Up);
        let new = if any_down {
            State::Down
        } else if all_up {
            State::Up
        } else {
            s.state
        };
        if new == s.state {
            return None;
        }
        let reason = match new {
            State::Down => {
                let c = &s.checks[check];
                format!(
                    "{} failed {} time{}: {}",
                    c.policy.label,
                    c.failures,
                    if c.failures == 1 { "" } else { "s" },
                    c.last_detail
                )
            }
            _ => {
                let n = s.checks.len();
                let c = &s.checks[check];
                format!(
                    "all {n} check{} pass ({}: {})",
                    if n == 1 { "" } else { "s" },
                    c.policy.label,
                    c.last_detail
                )
            }
        };
        let from = s.state;
        s.state = new;
        Some(Transition {
            server: server.clone(),
            from,
            to: new,
            reason,
        })
    }
}

/// A service's quorum with hysteresis (keepalived's semantics): gained when at least
/// `min_up + hysteresis` servers are up, lost when fewer than `min_up - hysteresis` are.
/// Starts lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuorumState {
    quorum: crate::config::Quorum,
    met: bool,
}

impl QuorumState {
    /// A quorum not yet met.
    pub fn new(quorum: crate::config::Quorum) -> Self {
        QuorumState { quorum, met: false }
    }

    /// The state of a pool first seen with `up` servers up: met at `min_up` (hysteresis
    /// only applies to changes).
    pub fn starting(quorum: crate::config::Quorum, up: usize) -> Self {
        let met = u64::try_from(up).unwrap_or(u64::MAX) >= u64::from(quorum.min_up);
        QuorumState { quorum, met }
    }

    /// Whether the quorum is met now.
    pub fn met(&self) -> bool {
        self.met
    }

    /// Updates with the number of servers up; `Some(met)` when that changed.
    pub fn update(&mut self, up: usize) -> Option<bool> {
        let up = u64::try_from(up).unwrap_or(u64::MAX);
        let q = u64::from(self.quorum.min_up);
        let h = u64::from(self.quorum.hysteresis);
        let met = if self.met {
            up >= q.saturating_sub(h)
        } else {
            up >= q + h
        };
        (met != self.met).then(|| {
            self.met = met;
            met
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Quorum;
    use proptest::prelude::*;

    fn policy(rise: u32, fall: u32) -> CheckPolicy {
        CheckPolicy {
            rise,
            fall,
            label: "tcp:80".into(),
        }
    }

    #[test]
    fn fall_then_rise_reported_once_each() {
        let mut h = Health::new();
        h.add_server(1, vec![policy(2, 3)], State::Up);
        assert_eq!(h.record(&1, 0, false, "refused"), None);
        assert_eq!(h.record(&1, 0, false, "refused"), None);
        let t = h.record(&1, 0, false, "connect: refused").unwrap();
        assert_eq!((t.from, t.to), (State::Up, State::Down));
        assert_eq!(t.reason, "tcp:80 failed 3 times: connect: refused");
        assert_eq!(h.record(&1, 0, false, "refused"), None, "reported once");
        assert_eq!(h.record(&1, 0, true, "connected"), None);
        let t = h.record(&1, 0, true, "connected").unwrap();
        assert_eq!((t.from, t.to), (State::Down, State::Up));
        assert_eq!(t.reason, "all 1 check pass (tcp:80: connected)");
        assert_eq!(h.record(&1, 0, true, "connected"), None);
    }

    #[test]
    fn a_pass_resets_the_failure_run() {
        let mut h = Health::new();
        h.add_server("a", vec![policy(2, 3)], State::Up);
        for _ in 0..10 {
            assert_eq!(h.record(&"a", 0, false, "x"), None);
            assert_eq!(h.record(&"a", 0, false, "x"), None);
            assert_eq!(h.record(&"a", 0, true, "ok"), None);
        }
        assert_eq!(h.state(&"a"), Some(State::Up));
    }

    #[test]
    fn all_checks_must_pass() {
        let mut h = Health::new();
        h.add_server(7, vec![policy(1, 1), policy(1, 1)], State::Unknown);
        assert_eq!(
            h.record(&7, 0, true, "ok"),
            None,
            "second check still unknown"
        );
        let t = h.record(&7, 1, true, "ok").unwrap();
        assert_eq!((t.from, t.to), (State::Unknown, State::Up));
        let t = h.record(&7, 1, false, "bad").unwrap();
        assert_eq!(t.to, State::Down);
        assert_eq!(
            h.record(&7, 0, true, "ok"),
            None,
            "one passing check is not enough"
        );
        let t = h.record(&7, 1, true, "ok").unwrap();
        assert_eq!(t.to, State::Up);
    }

    #[test]
    fn start_up_from_the_directors_view_does_not_flap() {
        let mut h = Health::new();
        h.add_server(1, vec![policy(2, 3)], State::Up);
        h.add_server(2, vec![policy(2, 3)], State::Down);
        // A healthy server stays up without a transition; a quiesced one needs `rise` passes.
        assert_eq!(h.record(&1, 0, true, "ok"), None);
        assert_eq!(h.record(&2, 0, true, "ok"), None);
        assert_eq!(h.record(&2, 0, true, "ok").unwrap().to, State::Up);
        assert_eq!(h.count(State::Up), 2);
    }

    #[test]
    fn unknown_servers_are_ignored() {
        let mut h: Health<u32> = Health::new();
        assert_eq!(h.record(&9, 0, false, "x"), None);
        h.add_server(9, vec![policy(1, 1)], State::Up);
        assert_eq!(h.record(&9, 5, false, "x"), None);
        assert_eq!(h.remove_server(&9), Some(State::Up));
    }

    #[test]
    fn quorum_hysteresis() {
        let mut q = QuorumState::new(Quorum {
            min_up: 3,
            hysteresis: 1,
        });
        assert_eq!(q.update(3), None);
        assert_eq!(q.update(4), Some(true));
        assert_eq!(q.update(2), None);
        assert_eq!(q.update(1), Some(false));
        assert_eq!(q.update(3), None);
        assert!(!q.met());
        // A pool first seen is judged without hysteresis; changes then use it.
        let q = Quorum {
            min_up: 3,
            hysteresis: 1,
        };
        assert!(QuorumState::starting(q, 3).met());
        assert!(!QuorumState::starting(q, 2).met());
        let mut s = QuorumState::starting(q, 3);
        assert_eq!(s.update(2), None);
        assert_eq!(s.update(1), Some(false));
    }

    proptest! {
        /// Transitions alternate, each one follows exactly `fall` failures or `rise` passes in
        /// a row, and the state always equals a replay by a simple model.
        #[test]
        fn single_check_matches_model(
            rise in 1u32..5, fall in 1u32..5,
            results in proptest::collection::vec(any::<bool>(), 0..200),
            start_up in any::<bool>(),
        ) {
            let initial = if start_up { State::Up } else { State::Down };
            let mut h = Health::new();
            h.add_server(0u8, vec![policy(rise, fall)], initial);
            let mut state = initial;
            let (mut passes, mut fails) = (0u32, 0u32);
            for ok in results {
                if ok { passes += 1; fails = 0; } else { fails += 1; passes = 0; }
                let expect = match state {
                    State::Down if passes >= rise => Some(State::Up),
                    State::Up if fails >= fall => Some(State::Down),
                    _ => None,
                };
                let t = h.record(&0, 0, ok, "d");
                prop_assert_eq!(t.as_ref().map(|t| t.to), expect);
                if let Some(t) = t {
                    prop_assert_eq!(t.from, state);
                    prop_assert_ne!(t.from, t.to);
                    state = t.to;
                }
                prop_assert_eq!(h.state(&0), Some(state));
            }
        }

        /// With several checks the server is Down iff some check is Down, Up iff all are Up.
        #[test]
        fn combined_state_is_all_must_pass(
            results in proptest::collection::vec((0usize..3, any::<bool>()), 0..300),
        ) {
            let mut h = Health::new();
            h.add_server((), vec![policy(2, 2), policy(1, 3), policy(3, 1)], State::Unknown);
            let mut last = State::Unknown;
            for (c, ok) in results {
                let t = h.record(&(), c, ok, "d");
                let states: Vec<State> = (0..3).map(|i| h.check_state(&(), i).unwrap()).collect();
                let s = h.state(&()).unwrap();
                if states.contains(&State::Down) {
                    prop_assert_eq!(s, State::Down);
                } else if states.iter().all(|s| *s == State::Up) {
                    prop_assert_eq!(s, State::Up);
                } else {
                    prop_assert_eq!(s, last);
                }
                prop_assert_eq!(t.is_some(), s != last);
                last = s;
            }
        }
    }
}
