//! Shorthands shared by the integration tests.
#![allow(dead_code)]

use lvs_lockcore::{
    Command, Denial, LVB_LEN, LockFlags, LockMode, LockRef, LockRequest, NodeId, Output, SessionId,
    StateMachine, Target, ValueBlock,
};

pub const LS: &str = "ls";
pub const LEASE: u64 = 1_000;

pub fn l(session: u64, handle: u64) -> LockRef {
    LockRef::new(session, handle)
}

pub fn req(lock: LockRef, res: &str, mode: LockMode, flags: LockFlags) -> LockRequest {
    LockRequest {
        lock,
        lockspace: LS.to_owned(),
        resource: res.as_bytes().to_vec(),
        mode,
        flags,
        timeout_ms: None,
        lvb: None,
    }
}

/// A machine with lockspace "ls" and sessions 1..=n, session s on node s.
pub fn machine(n: u64) -> StateMachine {
    let mut sm = StateMachine::new();
    sm.apply(&Command::CreateLockspace { name: LS.into() });
    for s in 1..=n {
        let out = sm.apply(&Command::OpenSession {
            session: SessionId(s),
            node: NodeId(s),
            lease_ms: LEASE,
        });
        assert_eq!(
            out,
            vec![Output::SessionOpened {
                session: SessionId(s)
            }]
        );
    }
    sm
}

pub fn lock(sm: &mut StateMachine, lk: LockRef, res: &str, mode: LockMode) -> Vec<Output> {
    sm.apply(&Command::Lock(req(lk, res, mode, LockFlags::NONE)))
}

pub fn lock_f(
    sm: &mut StateMachine,
    lk: LockRef,
    res: &str,
    mode: LockMode,
    flags: LockFlags,
) -> Vec<Output> {
    sm.apply(&Command::Lock(req(lk, res, mode, flags)))
}

pub fn convert(sm: &mut StateMachine, lk: LockRef, res: &str, mode: LockMode) -> Vec<Output> {
    sm.apply(&Command::Lock(req(lk, res, mode, LockFlags::CONVERT)))
}

pub fn unlock(sm: &mut StateMachine, lk: LockRef) -> Vec<Output> {
    sm.apply(&Command::Unlock {
        lock: lk,
        lvb: None,
    })
}

pub fn tick(sm: &mut StateMachine, now_ms: u64) -> Vec<Output> {
    sm.apply(&Command::Tick { now_ms })
}

/// The (lock, mode) of every Granted output, in order.
pub fn grants(out: &[Output]) -> Vec<(LockRef, LockMode)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Granted { lock, mode, .. } => Some((*lock, *mode)),
            _ => None,
        })
        .collect()
}

pub fn tokens(out: &[Output]) -> Vec<u64> {
    out.iter()
        .filter_map(|o| match o {
            Output::Granted { token, .. } => Some(*token),
            _ => None,
        })
        .collect()
}

pub fn lvbs(out: &[Output]) -> Vec<ValueBlock> {
    out.iter()
        .filter_map(|o| match o {
            Output::Granted { lvb: Some(v), .. } => Some(*v),
            _ => None,
        })
        .collect()
}

pub fn denied(lk: LockRef, reason: Denial) -> Output {
    Output::Denied {
        target: Target::Lock(lk),
        reason,
    }
}

pub fn queued(lk: LockRef, mode: LockMode) -> Output {
    Output::Queued { lock: lk, mode }
}

pub fn blocking(lk: LockRef, granted: LockMode, blocked: LockMode) -> Output {
    Output::Blocking {
        lock: lk,
        granted,
        blocked,
    }
}

/// Asserts the output is exactly one Granted of `mode` to `lk`, and returns its token.
pub fn granted_only(out: &[Output], lk: LockRef, mode: LockMode) -> u64 {
    match out {
        [
            Output::Granted {
                lock,
                mode: m,
                token,
                ..
            },
        ] if *lock == lk && *m == mode => *token,
        other => panic!("expected one grant of {mode} to {lk}, got {other:?}"),
    }
}

pub fn is_rejection(out: &[Output]) -> bool {
    matches!(out, [Output::Denied { reason, .. }] if reason.is_rejection())
}

pub fn bytes(b: u8) -> [u8; LVB_LEN] {
    [b; LVB_LEN]
}
