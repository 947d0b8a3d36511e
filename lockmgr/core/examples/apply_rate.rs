//! A rough measurement of the state machine alone (no Raft, no I/O): commands applied per
//! second, uncontended and contended, and the cost of a snapshot.
//!
//! `cargo run --release -p lvs-lockcore --example apply_rate`

use std::time::Instant;

use lvs_lockcore::{
    Command, LockFlags, LockMode, LockRef, LockRequest, NodeId, SessionId, Snapshot, StateMachine,
};
use lvs_proto::FrameLimit;

fn req(lock: LockRef, res: String, mode: LockMode) -> Command {
    Command::Lock(LockRequest {
        lock,
        lockspace: "bench".into(),
        resource: res.into_bytes(),
        mode,
        flags: LockFlags::NONE,
        timeout_ms: None,
        lvb: None,
    })
}

fn setup(sessions: u64) -> StateMachine {
    let mut sm = StateMachine::new();
    sm.apply(&Command::CreateLockspace {
        name: "bench".into(),
    });
    for s in 0..sessions {
        sm.apply(&Command::OpenSession {
            session: SessionId(s),
            node: NodeId(s % 3),
            lease_ms: 10_000,
        });
    }
    sm
}

fn rate(what: &str, n: u64, f: impl FnOnce()) {
    let t = Instant::now();
    f();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{what}: {:.0} commands/s ({n} in {secs:.3} s)",
        n as f64 / secs
    );
}

fn main() {
    let rounds = 200_000u64;
    let mut sm = setup(100);
    let mut out = Vec::new();
    rate("uncontended lock+unlock", 2 * rounds, || {
        for i in 0..rounds {
            let l = LockRef::new(i % 100, i);
            sm.apply_into(&req(l, format!("r{}", i % 1000), LockMode::EX), &mut out);
            sm.apply_into(&Command::Unlock { lock: l, lvb: None }, &mut out);
            out.clear();
        }
    });

    // 100 sessions queue for one EX lock; each unlock grants the next, which queues again.
    let mut sm = setup(100);
    for s in 0..100 {
        sm.apply(&req(LockRef::new(s, 0), "hot".into(), LockMode::EX));
    }
    rate("contended lock+unlock (100 waiters)", 2 * rounds, || {
        for i in 0..rounds {
            let s = i % 100;
            sm.apply_into(
                &Command::Unlock {
                    lock: LockRef::new(s, i / 100),
                    lvb: None,
                },
                &mut out,
            );
            sm.apply_into(
                &req(LockRef::new(s, i / 100 + 1), "hot".into(), LockMode::EX),
                &mut out,
            );
            out.clear();
        }
    });

    let mut sm = setup(1000);
    for i in 0..100_000u64 {
        sm.apply(&req(
            LockRef::new(i % 1000, i),
            format!("file-{i}"),
            LockMode::PR,
        ));
    }
    let t = Instant::now();
    let bytes = sm.snapshot().to_bytes(FrameLimit::MAX).unwrap();
    let taken = t.elapsed();
    let t = Instant::now();
    StateMachine::restore(Snapshot::from_bytes(&bytes, FrameLimit::MAX).unwrap()).unwrap();
    println!(
        "snapshot of 100000 locks: {} bytes, encoded in {:.1} ms, restored in {:.1} ms",
        bytes.len(),
        taken.as_secs_f64() * 1e3,
        t.elapsed().as_secs_f64() * 1e3
    );
}
