//! Property tests: random logs of commands, checked against the rules every replica relies on.

mod common;

use std::collections::BTreeMap;

use common::bytes;
use lvs_lockcore::{
    Command, Denial, LVB_LEN, LockFlags, LockMode, LockRef, LockRequest, NodeId, Output, SessionId,
    Snapshot, StateMachine, Target,
};
use lvs_proto::FrameLimit;
use proptest::prelude::*;

const SESSIONS: u64 = 4;

fn mode() -> impl Strategy<Value = LockMode> {
    prop::sample::select(LockMode::ALL.to_vec())
}

fn lock_ref() -> impl Strategy<Value = LockRef> {
    // Session 5 is never opened; handles are few so that they collide.
    (1..=SESSIONS + 1, 0..4u64).prop_map(|(s, h)| LockRef::new(s, h))
}

fn lvb() -> impl Strategy<Value = Option<[u8; LVB_LEN]>> {
    prop_oneof![4 => Just(None), 1 => any::<u8>().prop_map(|b| Some(bytes(b)))]
}

fn lock_request() -> impl Strategy<Value = LockRequest> {
    let lockspace = prop_oneof![8 => Just("a".to_owned()), 1 => Just("b".to_owned()), 1 => Just("l".repeat(65))];
    let resource = prop_oneof![
        10 => prop::sample::select(vec![b"r".to_vec(), b"s".to_vec(), b"t".to_vec()]),
        1 => Just(vec![b'x'; 65]),
        1 => Just(Vec::new()),
    ];
    let flags = prop_oneof![
        20 => (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(n, c, v)| {
            let mut f = LockFlags::NONE;
            if n { f = f | LockFlags::NOQUEUE; }
            if c { f = f | LockFlags::CONVERT; }
            if v { f = f | LockFlags::VALBLK; }
            f
        }),
        1 => Just(LockFlags(1 << 7)),
    ];
    let timeout = prop_oneof![3 => Just(None), 1 => (0..300u64).prop_map(Some)];
    (
        lock_ref(),
        lockspace,
        resource,
        mode(),
        flags,
        timeout,
        lvb(),
    )
        .prop_map(
            |(lock, lockspace, resource, mode, flags, timeout_ms, lvb)| LockRequest {
                lock,
                lockspace,
                resource,
                mode,
                flags,
                timeout_ms,
                lvb,
            },
        )
}

/// A command; Tick carries a delta that [`absolute`] turns into a clock value.
fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        30 => lock_request().prop_map(Command::Lock),
        10 => (lock_ref(), lvb()).prop_map(|(lock, lvb)| Command::Unlock { lock, lvb }),
        4 => lock_ref().prop_map(|lock| Command::Cancel { lock }),
        6 => (0..250u64).prop_map(|d| Command::Tick { now_ms: d }),
        5 => (1..=3u64).prop_map(|n| Command::Heartbeat { node: NodeId(n) }),
        2 => (1..=SESSIONS + 1).prop_map(|s| Command::CloseSession { session: SessionId(s) }),
        2 => (1..=SESSIONS + 1, 1..=2u64, 0..700u64).prop_map(|(s, n, lease)| Command::OpenSession {
            session: SessionId(s),
            node: NodeId(n),
            lease_ms: lease,
        }),
        1 => prop::sample::select(vec!["a", "b"]).prop_map(|n| Command::CreateLockspace { name: n.into() }),
        1 => prop::sample::select(vec!["a", "b"]).prop_map(|n| Command::RemoveLockspace { name: n.into() }),
    ]
}

/// Turns Tick deltas into a clock that mostly moves forward and sometimes goes back.
fn absolute(cmds: Vec<Command>) -> Vec<Command> {
    let mut clock = 0u64;
    cmds.into_iter()
        .map(|c| match c {
            Command::Tick { now_ms } if now_ms >= 240 => Command::Tick {
                now_ms: clock.saturating_sub(100),
            },
            Command::Tick { now_ms } => {
                clock += now_ms;
                Command::Tick { now_ms: clock }
            }
            other => other,
        })
        .collect()
}

fn log() -> impl Strategy<Value = Vec<Command>> {
    prop::collection::vec(command(), 1..120).prop_map(|cmds| {
        let mut log = vec![Command::CreateLockspace { name: "a".into() }];
        for s in 1..=SESSIONS {
            log.push(Command::OpenSession {
                session: SessionId(s),
                node: NodeId(s % 3 + 1),
                lease_ms: 400,
            });
        }
        log.extend(absolute(cmds));
        log
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Granted(LockMode),
    Converting(LockMode, LockMode),
    Waiting(LockMode),
}

/// Every lock as the query API shows it.
fn observed(sm: &StateMachine) -> BTreeMap<LockRef, Status> {
    let mut all = BTreeMap::new();
    for ls in sm.lockspaces() {
        for res in sm.resources(&ls).unwrap() {
            for i in res.granted.iter().chain(&res.waiting) {
                let st = match (i.granted, i.requested) {
                    (Some(g), None) => Status::Granted(g),
                    (Some(g), Some(r)) => Status::Converting(g, r),
                    (None, Some(r)) => Status::Waiting(r),
                    (None, None) => panic!("{} is neither granted nor requested", i.lock),
                };
                assert!(all.insert(i.lock, st).is_none(), "{} listed twice", i.lock);
            }
        }
    }
    all
}

/// The lock states implied by the outputs alone.
fn follow(model: &mut BTreeMap<LockRef, Status>, out: &[Output]) -> Result<(), TestCaseError> {
    for o in out {
        match o {
            Output::Queued { lock, mode } => {
                let next = match model.get(lock) {
                    None => Status::Waiting(*mode),
                    Some(Status::Granted(g)) => Status::Converting(*g, *mode),
                    Some(other) => {
                        return Err(TestCaseError::fail(format!(
                            "{lock} queued while {other:?}"
                        )));
                    }
                };
                model.insert(*lock, next);
            }
            Output::Granted { lock, mode, .. } => {
                model.insert(*lock, Status::Granted(*mode));
            }
            Output::Denied {
                target: Target::Lock(lock),
                reason,
            } if !reason.is_rejection() => match model.get(lock).copied() {
                Some(Status::Converting(g, _)) => {
                    model.insert(*lock, Status::Granted(g));
                }
                Some(Status::Waiting(_)) => {
                    model.remove(lock);
                }
                _ => prop_assert_eq!(reason, &Denial::WouldBlock, "{} denied while idle", lock),
            },
            Output::Unlocked { lock } => {
                prop_assert!(model.remove(lock).is_some(), "{} unlocked twice", lock);
            }
            Output::SessionClosed { session, .. } => {
                model.retain(|l, _| l.session != *session);
            }
            _ => {}
        }
    }
    Ok(())
}

/// Safety and liveness of every resource's queues.
fn check_queues(sm: &StateMachine) -> Result<(), TestCaseError> {
    for ls in sm.lockspaces() {
        for res in sm.resources(&ls).unwrap() {
            let held: Vec<(LockRef, LockMode)> = res
                .granted
                .iter()
                .map(|i| (i.lock, i.granted.unwrap()))
                .collect();
            for (i, (a, ma)) in held.iter().enumerate() {
                for (b, mb) in &held[i + 1..] {
                    prop_assert!(ma.compatible(*mb), "{} {} and {} {} at once", a, ma, b, mb);
                }
            }
            let compatible_with_others = |me: LockRef, mode: LockMode| {
                held.iter().all(|(l, m)| *l == me || m.compatible(mode))
            };
            for c in &res.converting {
                prop_assert!(
                    !compatible_with_others(c.lock, c.requested.unwrap()),
                    "conversion of {} is grantable but waits",
                    c.lock
                );
            }
            if res.converting.is_empty()
                && let Some(w) = res.waiting.first()
            {
                prop_assert!(
                    !compatible_with_others(w.lock, w.requested.unwrap()),
                    "head waiter {} is grantable but waits",
                    w.lock
                );
            }
        }
    }
    Ok(())
}

/// Lets every session that waits for nothing release its locks, until none is left: if the
/// state is free of deadlocks and missed grants, every request is granted on the way.
fn drain(sm: &mut StateMachine) -> Result<(), TestCaseError> {
    loop {
        let locks = observed(sm);
        let waiting: Vec<SessionId> = locks
            .iter()
            .filter(|(_, s)| !matches!(s, Status::Granted(_)))
            .map(|(l, _)| l.session)
            .collect();
        let Some(free) = locks
            .keys()
            .find(|l| !waiting.contains(&l.session))
            .copied()
        else {
            prop_assert!(locks.is_empty(), "stuck: {:?}", locks);
            return Ok(());
        };
        let out = sm.apply(&Command::Unlock {
            lock: free,
            lvb: None,
        });
        prop_assert_eq!(&out[0], &Output::Unlocked { lock: free });
        check_queues(sm)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, .. ProptestConfig::default() })]

    #[test]
    fn random_logs_keep_every_rule(log in log(), split in any::<prop::sample::Index>()) {
        let mut a = StateMachine::new();
        let mut b = StateMachine::new();
        let mut model = BTreeMap::new();
        let mut last_token = 0;
        let mut all_outputs = Vec::new();
        for cmd in &log {
            let before = a.snapshot();
            let out = a.apply(cmd);
            // Two replicas agree on every output.
            prop_assert_eq!(&out, &b.apply(cmd));
            // Refused commands change nothing.
            if out.len() == 1 && matches!(&out[0], Output::Denied { reason, .. } if reason.is_rejection()) {
                prop_assert_eq!(&a.snapshot(), &before, "{:?} was refused but changed the state", cmd);
            }
            // Tokens only grow (across all resources, so per resource too).
            for o in &out {
                if let Output::Granted { token, .. } = o {
                    prop_assert!(*token > last_token);
                    last_token = *token;
                }
            }
            // What the outputs said happened is what the state shows.
            follow(&mut model, &out)?;
            prop_assert_eq!(&model, &observed(&a), "after {:?} -> {:?}", cmd, out);
            check_queues(&a)?;
            all_outputs.push(out);
        }
        // Identical snapshots, byte for byte.
        let sa = a.snapshot().to_bytes(FrameLimit::DEFAULT).unwrap();
        let sb = b.snapshot().to_bytes(FrameLimit::DEFAULT).unwrap();
        prop_assert_eq!(&sa, &sb);

        // Snapshot at a random point, restore, continue: same outputs, same final state.
        let k = split.index(log.len() + 1);
        let mut c = StateMachine::new();
        for cmd in &log[..k] {
            c.apply(cmd);
        }
        let bytes = c.snapshot().to_bytes(FrameLimit::DEFAULT).unwrap();
        let mut c = StateMachine::restore(Snapshot::from_bytes(&bytes, FrameLimit::DEFAULT).unwrap()).unwrap();
        for (cmd, expected) in log[k..].iter().zip(&all_outputs[k..]) {
            prop_assert_eq!(&c.apply(cmd), expected);
        }
        prop_assert_eq!(c.snapshot().to_bytes(FrameLimit::DEFAULT).unwrap(), sa);

        // No request is left hanging: letting free sessions finish grants everything.
        drain(&mut a)?;
    }
}
