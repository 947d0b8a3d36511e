//! A history checker for the lock service: is what clients saw consistent with a lock manager?
//!
//! A history is what clients observed, one [`Event`] per line of JSON (the randomised fault
//! test of `tests/cluster.rs` writes one): each operation (`lock` or `unlock`) is an `invoke`
//! and then its completion, `ok`, `fail` (it certainly did not happen: a denial, a timeout, no
//! quorum) or `unknown` (the connection broke: it may or may not have happened; an invoke with
//! no completion at the end counts as unknown too). Times are one clock for every client.
//!
//! [`check`] verifies, per resource:
//! - **mutual exclusion** per the mode compatibility matrix: a grant that was answered `ok` and
//!   whose unlock was answered `ok` was certainly held from its grant's answer to its unlock's
//!   invocation; two such windows of incompatible modes never overlap. (A grant whose unlock
//!   did not answer may have ended earlier, when its session expired: no window is certain.)
//! - **tokens strictly increasing**: a grant answered before another was requested carries a
//!   smaller token.
//! - **nothing granted twice**: no two grants carry one token.
//! - **no grant lost** and **value blocks read what the last EX holder wrote**: a grant (with
//!   the value block) reads the value of a write that may have preceded it, and no other write
//!   certainly came between; zeros only if no write certainly preceded it; an invalid value
//!   block only if an EX holder may have died before. A write that an acknowledged grant made and
//!   a later grant does not see is a lost grant.
//! - the history is **well formed**: each client has one operation at a time, a completion
//!   follows its invocation, an unlock names a lock its client was granted.
//!
//! Unknown operations are not assumed to have happened or not: they never make a window
//! certain, and a write with an unknown outcome may or may not be read.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

use lvs_lockclient::LockMode;
use serde::{Deserialize, Serialize};

/// What an event is: an invocation or a completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The client sent the request.
    Invoke,
    /// It was answered: it happened.
    Ok,
    /// It was answered: it did not happen.
    Fail,
    /// No answer (the connection broke): it may or may not have happened.
    Unknown,
}

/// The operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// A lock request (with the value block).
    Lock,
    /// A release; from EX it writes the value block.
    Unlock,
}

/// One line of a history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The client (one session at a time).
    pub client: u64,
    /// Invocation or completion.
    pub kind: Kind,
    /// The operation.
    pub op: Op,
    /// The resource.
    pub resource: String,
    /// The mode, by its name (EX, PR, ...).
    pub mode: String,
    /// `lock` `ok`: the fencing token granted; `unlock`: the token of the lock released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<u64>,
    /// `lock` `ok`: the value block read; `unlock` `invoke` from EX: the value written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `lock` `ok`: whether the value block read was valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid: Option<bool>,
    /// `fail` and `unknown`: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When, in nanoseconds (one clock for every client).
    pub time_ns: u64,
}

/// One way a history breaks the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// The events do not describe operations (a completion without an invocation, ...).
    Malformed(String),
    /// Two incompatible grants certainly held at once.
    Overlap(String),
    /// A later grant with a token not larger than an earlier one's.
    TokenOrder(String),
    /// Two grants with one token.
    GrantedTwice(String),
    /// A value block read that is not the last EX holder's write.
    ValueBlock(String),
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Malformed(s) => write!(f, "malformed history: {s}"),
            Violation::Overlap(s) => write!(f, "mutual exclusion broken: {s}"),
            Violation::TokenOrder(s) => write!(f, "tokens not increasing: {s}"),
            Violation::GrantedTwice(s) => write!(f, "granted twice: {s}"),
            Violation::ValueBlock(s) => write!(f, "value block: {s}"),
        }
    }
}

/// What a consistent history held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Events read.
    pub events: usize,
    /// Lock requests answered `ok`.
    pub grants: usize,
    /// Operations answered `fail`.
    pub failed: usize,
    /// Operations with an unknown outcome.
    pub unknown: usize,
    /// Value blocks read and checked.
    pub reads: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "consistent with a lock service: {} events, {} grants, {} failed, {} unknown, {} value blocks read",
            self.events, self.grants, self.failed, self.unknown, self.reads
        )
    }
}

/// Reads a history, one JSON event per line (blank lines skipped).
pub fn parse(text: &str) -> Result<Vec<Event>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", n + 1)))
        .collect()
}

/// An operation: an invocation and its completion (`None` if it never came: unknown).
#[derive(Debug, Clone)]
struct Operation<'a> {
    invoke: &'a Event,
    done: Option<&'a Event>,
}

impl Operation<'_> {
    fn kind(&self) -> Kind {
        self.done.map_or(Kind::Unknown, |d| d.kind)
    }
}

/// A lock answered `ok`, with how it ended.
#[derive(Debug, Clone)]
struct Grant {
    client: u64,
    resource: String,
    mode: LockMode,
    token: u64,
    value: Option<String>,
    valid: bool,
    requested: u64,
    granted: u64,
    /// The unlock: (invoked, answered `ok` at), if it was.
    released: Option<(u64, u64)>,
    /// The unlock's invocation, answered or not.
    unlock_invoked: Option<u64>,
    written: Option<String>,
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "client {} {} {} token {} (requested {}, granted {}",
            self.client, self.resource, self.mode, self.token, self.requested, self.granted
        )?;
        match self.released {
            Some((i, _)) => write!(f, ", released from {i})"),
            None => write!(f, ", release unknown)"),
        }
    }
}

/// Checks `events` (in the order they were recorded; the times decide what came first).
pub fn check(events: &[Event]) -> Result<Summary, Vec<Violation>> {
    let mut bad = Vec::new();
    let ops = operations(events, &mut bad);
    let mut summary = Summary {
        events: events.len(),
        ..Summary::default()
    };
    for op in &ops {
        match op.kind() {
            Kind::Fail => summary.failed += 1,
            Kind::Unknown => summary.unknown += 1,
            _ => {}
        }
    }
    let grants = grants(&ops, &mut bad);
    summary.grants = grants.len();
    let mut by_resource: BTreeMap<&str, Vec<&Grant>> = BTreeMap::new();
    for g in &grants {
        by_resource.entry(&g.resource).or_default().push(g);
    }
    let mut tokens: HashMap<u64, &Grant> = HashMap::new();
    for g in &grants {
        if let Some(first) = tokens.insert(g.token, g) {
            bad.push(Violation::GrantedTwice(format!("{first} and {g}")));
        }
    }
    for (resource, list) in &by_resource {
        exclusion(list, &mut bad);
        token_order(list, &mut bad);
        let maybe_died: Vec<u64> = ops
            .iter()
            .filter(|o| {
                o.invoke.op == Op::Lock
                    && &o.invoke.resource == resource
                    && o.invoke.mode == "EX"
                    && o.kind() == Kind::Unknown
            })
            .map(|o| o.invoke.time_ns)
            .chain(
                list.iter()
                    .filter(|g| g.mode == LockMode::EX && g.released.is_none())
                    .map(|g| g.granted),
            )
            .collect();
        summary.reads += value_blocks(list, &maybe_died, &mut bad);
    }
    if bad.is_empty() {
        Ok(summary)
    } else {
        Err(bad)
    }
}

/// Pairs each invocation with its completion.
fn operations<'a>(events: &'a [Event], bad: &mut Vec<Violation>) -> Vec<Operation<'a>> {
    let mut ops: Vec<Operation<'a>> = Vec::new();
    let mut open: HashMap<u64, usize> = HashMap::new();
    for e in events {
        if e.kind == Kind::Invoke {
            if let Some(&i) = open.get(&e.client) {
                bad.push(Violation::Malformed(format!(
                    "client {} invoked {:?} at {} with {:?} of {} unanswered",
                    e.client, e.op, e.time_ns, ops[i].invoke.op, ops[i].invoke.time_ns
                )));
            }
            open.insert(e.client, ops.len());
            ops.push(Operation {
                invoke: e,
                done: None,
            });
            continue;
        }
        match open.remove(&e.client) {
            Some(i) if ops[i].invoke.op == e.op && ops[i].invoke.time_ns <= e.time_ns => {
                ops[i].done = Some(e);
            }
            _ => bad.push(Violation::Malformed(format!(
                "client {}: {:?} {:?} at {} completes no invocation of it",
                e.client, e.kind, e.op, e.time_ns
            ))),
        }
    }
    ops
}

/// The grants, each with its unlock.
fn grants(ops: &[Operation<'_>], bad: &mut Vec<Violation>) -> Vec<Grant> {
    let mut grants: Vec<Grant> = Vec::new();
    // Client -> token -> index in `grants`, while held.
    let mut held: HashMap<(u64, u64), usize> = HashMap::new();
    for op in ops {
        let e = op.invoke;
        match (e.op, op.done) {
            (Op::Lock, Some(done)) if done.kind == Kind::Ok => {
                let Ok(mode) = LockMode::from_str(&e.mode) else {
                    bad.push(Violation::Malformed(format!("unknown mode {:?}", e.mode)));
                    continue;
                };
                let Some(token) = done.token else {
                    bad.push(Violation::Malformed(format!(
                        "client {}: a grant at {} without a token",
                        e.client, done.time_ns
                    )));
                    continue;
                };
                held.insert((e.client, token), grants.len());
                grants.push(Grant {
                    client: e.client,
                    resource: e.resource.clone(),
                    mode,
                    token,
                    value: done.value.clone(),
                    valid: done.valid.unwrap_or(true),
                    requested: e.time_ns,
                    granted: done.time_ns,
                    released: None,
                    unlock_invoked: None,
                    written: None,
                });
            }
            (Op::Unlock, done) => {
                let Some(i) = e.token.and_then(|t| held.remove(&(e.client, t))) else {
                    bad.push(Violation::Malformed(format!(
                        "client {} unlocks token {:?} at {}, which it does not hold",
                        e.client, e.token, e.time_ns
                    )));
                    continue;
                };
                let g = &mut grants[i];
                g.unlock_invoked = Some(e.time_ns);
                g.written = e.value.clone().filter(|_| g.mode == LockMode::EX);
                if let Some(d) = done.filter(|d| d.kind == Kind::Ok) {
                    g.released = Some((e.time_ns, d.time_ns));
                }
            }
            _ => {}
        }
    }
    grants
}

/// No two incompatible grants whose certain windows (grant answered .. unlock invoked) overlap.
fn exclusion(list: &[&Grant], bad: &mut Vec<Violation>) {
    let mut windows: Vec<(u64, u64, &Grant)> = list
        .iter()
        .filter_map(|g| g.released.map(|(from, _)| (g.granted, from, *g)))
        .collect();
    windows.sort_by_key(|w| w.0);
    let mut active: Vec<(u64, u64, &Grant)> = Vec::new();
    for w in windows {
        active.retain(|a| a.1 > w.0);
        for a in &active {
            if !a.2.mode.compatible(w.2.mode) && w.0 < w.1 {
                bad.push(Violation::Overlap(format!("{} and {}", a.2, w.2)));
            }
        }
        active.push(w);
    }
}

/// A grant answered before another was requested has the smaller token.
fn token_order(list: &[&Grant], bad: &mut Vec<Violation>) {
    let mut by_answer: Vec<&Grant> = list.to_vec();
    by_answer.sort_by_key(|g| g.granted);
    let mut by_request: Vec<&Grant> = list.to_vec();
    by_request.sort_by_key(|g| g.requested);
    let mut before: Option<&Grant> = None;
    let mut next = 0;
    for g in by_request {
        while next < by_answer.len() && by_answer[next].granted < g.requested {
            let a = by_answer[next];
            if before.is_none_or(|b| a.token > b.token) {
                before = Some(a);
            }
            next += 1;
        }
        if let Some(b) = before
            && b.token >= g.token
        {
            bad.push(Violation::TokenOrder(format!("{b}, then {g}")));
        }
    }
}

/// Every value block read is one the last EX holder may have written; returns how many were
/// checked.
fn value_blocks(list: &[&Grant], maybe_died: &[u64], bad: &mut Vec<Violation>) -> usize {
    // (value, write invoked, write answered: None if unknown)
    let writes: Vec<(&str, u64, Option<u64>)> = list
        .iter()
        .filter_map(|g| {
            let v = g.written.as_deref()?;
            Some((v, g.unlock_invoked?, g.released.map(|r| r.1)))
        })
        .collect();
    // Certain writes by answer, with the latest invocation among them so far.
    let mut certain: Vec<(u64, u64)> = writes
        .iter()
        .filter_map(|w| w.2.map(|done| (done, w.1)))
        .collect();
    certain.sort_unstable();
    let mut latest_invoked = Vec::with_capacity(certain.len());
    let mut m = 0;
    for c in &certain {
        m = m.max(c.1);
        latest_invoked.push(m);
    }
    // The latest invocation of a write answered before `t`.
    let superseding = |t: u64| -> Option<u64> {
        let n = certain.partition_point(|c| c.0 < t);
        n.checked_sub(1).map(|i| latest_invoked[i])
    };
    let mut reads = 0;
    for g in list {
        let Some(value) = g.value.as_deref() else {
            continue;
        };
        reads += 1;
        if !g.valid {
            if !maybe_died.iter().any(|&t| t < g.granted) {
                bad.push(Violation::ValueBlock(format!(
                    "{g} read an invalid value block, though no EX holder can have died before"
                )));
            }
            continue;
        }
        if value.is_empty() {
            if superseding(g.requested).is_some() {
                bad.push(Violation::ValueBlock(format!(
                    "{g} read the initial value block after a write was acknowledged"
                )));
            }
            continue;
        }
        let Some(w) = writes.iter().find(|w| w.0 == value) else {
            bad.push(Violation::ValueBlock(format!(
                "{g} read {value:?}, which nobody wrote"
            )));
            continue;
        };
        if w.1 >= g.granted {
            bad.push(Violation::ValueBlock(format!(
                "{g} read {value:?}, written only at {}",
                w.1
            )));
        } else if let (Some(done), Some(later)) = (w.2, superseding(g.requested))
            && later > done
        {
            bad.push(Violation::ValueBlock(format!(
                "{g} read {value:?}, but a write invoked at {later} (after it) was acknowledged before the request: a lost grant"
            )));
        }
    }
    reads
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-made history: `at` advances the clock.
    #[derive(Default)]
    struct H(Vec<Event>);

    fn ev(client: u64, kind: Kind, op: Op, resource: &str, mode: &str, t: u64) -> Event {
        Event {
            client,
            kind,
            op,
            resource: resource.to_owned(),
            mode: mode.to_owned(),
            token: None,
            value: None,
            valid: None,
            error: None,
            time_ns: t,
        }
    }

    impl H {
        fn lock(&mut self, c: u64, mode: &str, t: u64) -> &mut Self {
            self.0.push(ev(c, Kind::Invoke, Op::Lock, "r", mode, t));
            self
        }
        fn granted(&mut self, c: u64, mode: &str, token: u64, value: &str, t: u64) -> &mut Self {
            let mut e = ev(c, Kind::Ok, Op::Lock, "r", mode, t);
            e.token = Some(token);
            e.value = Some(value.to_owned());
            e.valid = Some(true);
            self.0.push(e);
            self
        }
        fn done(&mut self, c: u64, kind: Kind, op: Op, t: u64) -> &mut Self {
            self.0.push(ev(c, kind, op, "r", "EX", t));
            self
        }
        fn unlock(
            &mut self,
            c: u64,
            mode: &str,
            token: u64,
            write: Option<&str>,
            t: u64,
        ) -> &mut Self {
            let mut e = ev(c, Kind::Invoke, Op::Unlock, "r", mode, t);
            e.token = Some(token);
            e.value = write.map(str::to_owned);
            self.0.push(e);
            self
        }
        /// A whole EX section: lock at t, granted at t+1, unlock at t+5, answered at t+6.
        fn ex(&mut self, c: u64, token: u64, read: &str, write: &str, t: u64) -> &mut Self {
            self.lock(c, "EX", t)
                .granted(c, "EX", token, read, t + 1)
                .unlock(c, "EX", token, Some(write), t + 5)
                .done(c, Kind::Ok, Op::Unlock, t + 6)
        }
        fn check(&self) -> Result<Summary, Vec<Violation>> {
            check(&self.0)
        }
    }

    fn fails(h: &H, what: fn(&Violation) -> bool) {
        let v = h.check().expect_err("a bad history passed");
        assert!(v.iter().any(what), "{v:?}");
    }

    #[test]
    fn a_sequence_of_holders_and_shared_readers_is_consistent() {
        let mut h = H::default();
        h.ex(1, 1, "", "a", 0).ex(2, 2, "a", "b", 10);
        h.lock(1, "PR", 20).lock(2, "PR", 20);
        h.granted(1, "PR", 3, "b", 21).granted(2, "PR", 4, "b", 22);
        h.unlock(1, "PR", 3, None, 25).unlock(2, "PR", 4, None, 26);
        h.done(1, Kind::Ok, Op::Unlock, 27)
            .done(2, Kind::Ok, Op::Unlock, 27);
        h.ex(3, 5, "b", "c", 30);
        let s = h.check().unwrap();
        assert_eq!((s.grants, s.reads, s.unknown), (5, 5, 0));
        // Its JSON lines read back the same.
        let text: String =
            h.0.iter()
                .map(|e| serde_json::to_string(e).unwrap() + "\n")
                .collect();
        assert_eq!(parse(&text).unwrap(), h.0);
    }

    #[test]
    fn overlapping_ex_holders_are_caught() {
        let mut h = H::default();
        h.lock(1, "EX", 0).granted(1, "EX", 1, "", 1);
        h.lock(2, "EX", 2).granted(2, "EX", 2, "", 3);
        h.unlock(1, "EX", 1, Some("a"), 5)
            .done(1, Kind::Ok, Op::Unlock, 6);
        h.unlock(2, "EX", 2, Some("b"), 7)
            .done(2, Kind::Ok, Op::Unlock, 8);
        fails(&h, |v| matches!(v, Violation::Overlap(_)));
    }

    #[test]
    fn ex_overlapping_pr_is_caught_but_two_pr_are_not() {
        let mut h = H::default();
        h.lock(1, "PR", 0).granted(1, "PR", 1, "", 1);
        h.lock(2, "PR", 0).granted(2, "PR", 2, "", 1);
        h.unlock(1, "PR", 1, None, 5)
            .done(1, Kind::Ok, Op::Unlock, 6);
        h.unlock(2, "PR", 2, None, 5)
            .done(2, Kind::Ok, Op::Unlock, 6);
        h.check().unwrap();
        h.lock(3, "EX", 2).granted(3, "EX", 3, "", 3);
        h.unlock(3, "EX", 3, Some("x"), 8)
            .done(3, Kind::Ok, Op::Unlock, 9);
        fails(&h, |v| matches!(v, Violation::Overlap(_)));
    }

    #[test]
    fn a_holder_whose_release_is_unknown_may_have_lost_its_lock_earlier() {
        // Client 1's unlock never answered (its session may have expired): client 2's grant
        // inside its apparent hold is no violation, and an invalid value block may follow.
        let mut h = H::default();
        h.lock(1, "EX", 0).granted(1, "EX", 1, "", 1);
        h.lock(2, "EX", 2);
        let mut e = ev(2, Kind::Ok, Op::Lock, "r", "EX", 3);
        e.token = Some(2);
        e.value = Some(String::new());
        e.valid = Some(false);
        h.0.push(e);
        h.unlock(2, "EX", 2, Some("b"), 4)
            .done(2, Kind::Ok, Op::Unlock, 5);
        h.unlock(1, "EX", 1, Some("a"), 6)
            .done(1, Kind::Unknown, Op::Unlock, 7);
        let s = h.check().unwrap();
        assert_eq!(s.unknown, 1);
    }

    #[test]
    fn decreasing_tokens_are_caught() {
        let mut h = H::default();
        h.ex(1, 7, "", "a", 0).ex(2, 5, "a", "b", 10);
        fails(&h, |v| matches!(v, Violation::TokenOrder(_)));
    }

    #[test]
    fn one_token_granted_twice_is_caught() {
        let mut h = H::default();
        h.ex(1, 3, "", "a", 0);
        h.lock(2, "PR", 10).granted(2, "PR", 3, "a", 11);
        h.unlock(2, "PR", 3, None, 12)
            .done(2, Kind::Ok, Op::Unlock, 13);
        fails(&h, |v| matches!(v, Violation::GrantedTwice(_)));
    }

    #[test]
    fn a_lost_grant_is_caught_by_the_value_block_it_wrote() {
        // Client 2's acknowledged grant and write are gone: client 3 reads client 1's value.
        let mut h = H::default();
        h.ex(1, 1, "", "a", 0)
            .ex(2, 2, "a", "b", 10)
            .ex(3, 3, "a", "c", 20);
        fails(&h, |v| matches!(v, Violation::ValueBlock(_)));
        // Or everything is gone: the initial value after acknowledged writes.
        let mut h = H::default();
        h.ex(1, 1, "", "a", 0).ex(2, 2, "", "b", 10);
        fails(&h, |v| matches!(v, Violation::ValueBlock(_)));
    }

    #[test]
    fn value_blocks_nobody_wrote_or_invalid_without_a_death_are_caught() {
        let mut h = H::default();
        h.ex(1, 1, "", "a", 0).ex(2, 2, "zz", "b", 10);
        fails(&h, |v| matches!(v, Violation::ValueBlock(_)));
        let mut h = H::default();
        h.ex(1, 1, "", "a", 0).lock(2, "EX", 10);
        let mut e = ev(2, Kind::Ok, Op::Lock, "r", "EX", 11);
        e.token = Some(2);
        e.value = Some("a".to_owned());
        e.valid = Some(false);
        h.0.push(e);
        fails(&h, |v| matches!(v, Violation::ValueBlock(_)));
    }

    #[test]
    fn a_write_of_unknown_outcome_may_or_may_not_be_read() {
        for read in ["a", "b"] {
            let mut h = H::default();
            h.ex(1, 1, "", "a", 0);
            h.lock(2, "EX", 10).granted(2, "EX", 2, "a", 11);
            h.unlock(2, "EX", 2, Some("b"), 12)
                .done(2, Kind::Unknown, Op::Unlock, 13);
            h.ex(3, 3, read, "c", 20);
            h.check().unwrap();
        }
    }

    #[test]
    fn malformed_histories_are_refused() {
        let mut h = H::default();
        h.done(1, Kind::Ok, Op::Lock, 0);
        fails(&h, |v| matches!(v, Violation::Malformed(_)));
        let mut h = H::default();
        h.unlock(1, "EX", 9, None, 0)
            .done(1, Kind::Ok, Op::Unlock, 1);
        fails(&h, |v| matches!(v, Violation::Malformed(_)));
        let mut h = H::default();
        h.lock(1, "EX", 0).lock(1, "EX", 1);
        fails(&h, |v| matches!(v, Violation::Malformed(_)));
        assert!(parse("{\"client\": 1}\n").is_err());
    }

    #[test]
    fn failed_requests_and_an_unanswered_invocation_are_fine() {
        let mut h = H::default();
        h.ex(1, 1, "", "a", 0);
        h.lock(2, "EX", 2).done(2, Kind::Fail, Op::Lock, 4);
        h.lock(3, "EX", 20);
        let s = h.check().unwrap();
        assert_eq!((s.failed, s.unknown, s.grants), (1, 1, 1));
    }
}
