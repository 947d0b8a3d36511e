//! The DLM semantics, one scenario at a time, with the exact outputs each command must give.

mod common;

use common::*;
use lvs_lockcore::LockMode::{CR, CW, EX, NL, PR, PW};
use lvs_lockcore::{
    CloseReason, Command, Denial, LockFlags, LockMode, NodeId, Output, SessionId, Snapshot,
    StateMachine, Target, ValueBlock,
};
use lvs_proto::FrameLimit;

#[test]
fn full_compatibility_matrix_grants_or_queues() {
    // The standard VMS/DLM table, written out independently of the implementation.
    #[rustfmt::skip]
    let table: [[bool; 6]; 6] = [
        //        NL     CR     CW     PR     PW     EX
        /*NL*/ [true,  true,  true,  true,  true,  true ],
        /*CR*/ [true,  true,  true,  true,  true,  false],
        /*CW*/ [true,  true,  true,  false, false, false],
        /*PR*/ [true,  true,  false, true,  false, false],
        /*PW*/ [true,  true,  false, false, false, false],
        /*EX*/ [true,  false, false, false, false, false],
    ];
    for (i, held) in LockMode::ALL.into_iter().enumerate() {
        for (j, asked) in LockMode::ALL.into_iter().enumerate() {
            assert_eq!(held.compatible(asked), table[i][j], "{held} vs {asked}");
            let mut sm = machine(2);
            granted_only(&lock(&mut sm, l(1, 1), "r", held), l(1, 1), held);
            let out = lock(&mut sm, l(2, 1), "r", asked);
            if table[i][j] {
                granted_only(&out, l(2, 1), asked);
            } else {
                assert_eq!(
                    out,
                    vec![queued(l(2, 1), asked), blocking(l(1, 1), held, asked)],
                    "{held} then {asked}"
                );
                // And the queued one is granted as soon as the holder goes.
                assert_eq!(
                    unlock(&mut sm, l(1, 1)),
                    vec![
                        Output::Unlocked { lock: l(1, 1) },
                        grant_output(&sm, l(2, 1), asked)
                    ]
                );
            }
        }
    }
}

fn grant_output(sm: &StateMachine, lk: lvs_lockcore::LockRef, mode: LockMode) -> Output {
    Output::Granted {
        lock: lk,
        mode,
        token: sm.next_token() - 1,
        lvb: None,
    }
}

#[test]
fn up_and_down_conversions() {
    let mut sm = machine(2);
    let t1 = granted_only(&lock(&mut sm, l(1, 1), "r", NL), l(1, 1), NL);
    // Up, alone: granted at once with a new token.
    let t2 = granted_only(&convert(&mut sm, l(1, 1), "r", EX), l(1, 1), EX);
    assert!(t2 > t1);
    // Down to PR: at once.
    granted_only(&convert(&mut sm, l(1, 1), "r", PR), l(1, 1), PR);
    granted_only(&lock(&mut sm, l(2, 1), "r", PR), l(2, 1), PR);
    // Up while another PR holder exists: queued, the other holder told.
    assert_eq!(
        convert(&mut sm, l(1, 1), "r", EX),
        vec![queued(l(1, 1), EX), blocking(l(2, 1), PR, EX)]
    );
    let info = sm.lock_info(l(1, 1)).unwrap();
    assert_eq!((info.granted, info.requested), (Some(PR), Some(EX)));
    assert_eq!(
        unlock(&mut sm, l(2, 1)),
        vec![
            Output::Unlocked { lock: l(2, 1) },
            grant_output(&sm, l(1, 1), EX)
        ]
    );
    // A waiter behind the EX; the down-conversion lets it in.
    assert_eq!(
        lock(&mut sm, l(2, 2), "r", PR),
        vec![queued(l(2, 2), PR), blocking(l(1, 1), EX, PR)]
    );
    let out = convert(&mut sm, l(1, 1), "r", NL);
    assert_eq!(grants(&out), vec![(l(1, 1), NL), (l(2, 2), PR)]);
    // PR -> CW is not a down-conversion: it waits for the other PR holder.
    granted_only(&convert(&mut sm, l(1, 1), "r", PR), l(1, 1), PR);
    assert_eq!(
        convert(&mut sm, l(1, 1), "r", CW),
        vec![queued(l(1, 1), CW), blocking(l(2, 2), PR, CW)]
    );
}

#[test]
fn conversion_deadlock_of_two_pr_holders() {
    let mut sm = machine(2);
    lock(&mut sm, l(1, 1), "r", PR);
    lock(&mut sm, l(2, 1), "r", PR);
    assert_eq!(
        convert(&mut sm, l(1, 1), "r", EX),
        vec![queued(l(1, 1), EX), blocking(l(2, 1), PR, EX)]
    );
    // The second converter closes the cycle and, being the youngest, loses.
    assert_eq!(
        convert(&mut sm, l(2, 1), "r", EX),
        vec![queued(l(2, 1), EX), denied(l(2, 1), Denial::Deadlock)]
    );
    let info = sm.lock_info(l(2, 1)).unwrap();
    assert_eq!((info.granted, info.requested), (Some(PR), None));
    assert_eq!(
        unlock(&mut sm, l(2, 1)),
        vec![
            Output::Unlocked { lock: l(2, 1) },
            grant_output(&sm, l(1, 1), EX)
        ]
    );
}

#[test]
fn waiters_are_served_in_order_without_starvation() {
    let mut sm = machine(3);
    lock(&mut sm, l(1, 1), "r", PR);
    assert_eq!(
        lock(&mut sm, l(2, 1), "r", EX),
        vec![queued(l(2, 1), EX), blocking(l(1, 1), PR, EX)]
    );
    // PR is compatible with the granted PR, but does not pass the queued EX.
    assert_eq!(lock(&mut sm, l(3, 1), "r", PR), vec![queued(l(3, 1), PR)]);
    // Nor does a try-lock.
    assert_eq!(
        lock_f(&mut sm, l(3, 2), "r", NL, LockFlags::NOQUEUE),
        vec![denied(l(3, 2), Denial::WouldBlock)]
    );
    assert_eq!(
        unlock(&mut sm, l(1, 1)),
        vec![
            Output::Unlocked { lock: l(1, 1) },
            grant_output(&sm, l(2, 1), EX),
            blocking(l(2, 1), EX, PR)
        ]
    );
    assert_eq!(
        unlock(&mut sm, l(2, 1)),
        vec![
            Output::Unlocked { lock: l(2, 1) },
            grant_output(&sm, l(3, 1), PR)
        ]
    );
}

#[test]
fn conversions_are_served_before_waiters() {
    let mut sm = machine(3);
    lock(&mut sm, l(1, 1), "r", PR);
    lock(&mut sm, l(2, 1), "r", PR);
    assert_eq!(
        lock(&mut sm, l(3, 1), "r", EX),
        vec![
            queued(l(3, 1), EX),
            blocking(l(1, 1), PR, EX),
            blocking(l(2, 1), PR, EX)
        ]
    );
    // l(2,1) PR -> PW waits for l(1,1)'s PR; both already know they block the EX.
    assert_eq!(
        convert(&mut sm, l(2, 1), "r", PW),
        vec![queued(l(2, 1), PW)]
    );
    // Releasing l(1,1) grants the conversion, not the older waiter; the new PW is a new
    // blocking episode for its holder.
    assert_eq!(
        unlock(&mut sm, l(1, 1)),
        vec![
            Output::Unlocked { lock: l(1, 1) },
            grant_output(&sm, l(2, 1), PW),
            blocking(l(2, 1), PW, EX)
        ]
    );
    assert_eq!(grants(&unlock(&mut sm, l(2, 1))), vec![(l(3, 1), EX)]);
}

#[test]
fn try_lock_fails_at_once_and_changes_nothing() {
    let mut sm = machine(2);
    lock(&mut sm, l(1, 1), "r", EX);
    lock(&mut sm, l(1, 2), "s", PR);
    lock(&mut sm, l(2, 2), "s", PR);
    let before = sm.snapshot();
    assert_eq!(
        lock_f(&mut sm, l(2, 1), "r", PR, LockFlags::NOQUEUE),
        vec![denied(l(2, 1), Denial::WouldBlock)]
    );
    assert_eq!(
        lock_f(
            &mut sm,
            l(2, 2),
            "s",
            EX,
            LockFlags::NOQUEUE | LockFlags::CONVERT
        ),
        vec![denied(l(2, 2), Denial::WouldBlock)]
    );
    assert_eq!(sm.snapshot(), before);
    // Also on a resource that did not exist before and is not kept.
    lock(&mut sm, l(1, 3), "t", EX);
    let before_t = sm.snapshot();
    assert_eq!(
        lock_f(&mut sm, l(2, 3), "t", CR, LockFlags::NOQUEUE),
        vec![denied(l(2, 3), Denial::WouldBlock)]
    );
    assert_eq!(sm.snapshot(), before_t);
    granted_only(
        &lock_f(&mut sm, l(2, 1), "q", EX, LockFlags::NOQUEUE),
        l(2, 1),
        EX,
    );
}

#[test]
fn cancel_waiting_and_converting_requests() {
    let mut sm = machine(3);
    lock(&mut sm, l(1, 1), "r", PR);
    lock(&mut sm, l(2, 1), "r", EX);
    lock(&mut sm, l(3, 1), "r", PR);
    // Cancelling the EX lets the PR behind it in.
    assert_eq!(
        sm.apply(&Command::Cancel { lock: l(2, 1) }),
        vec![
            denied(l(2, 1), Denial::Cancelled),
            grant_output(&sm, l(3, 1), PR)
        ]
    );
    assert!(sm.lock_info(l(2, 1)).is_none());
    // A cancelled conversion leaves the lock in its old mode.
    assert_eq!(
        convert(&mut sm, l(1, 1), "r", EX),
        vec![queued(l(1, 1), EX), blocking(l(3, 1), PR, EX)]
    );
    assert_eq!(
        sm.apply(&Command::Cancel { lock: l(1, 1) }),
        vec![denied(l(1, 1), Denial::Cancelled)]
    );
    let info = sm.lock_info(l(1, 1)).unwrap();
    assert_eq!((info.granted, info.requested), (Some(PR), None));
    // Nothing to cancel: refused, nothing changes.
    let before = sm.snapshot();
    let out = sm.apply(&Command::Cancel { lock: l(1, 1) });
    assert!(is_rejection(&out), "{out:?}");
    assert_eq!(sm.snapshot(), before);
}

#[test]
fn request_timeouts_run_out_on_tick() {
    let mut sm = machine(3);
    lock(&mut sm, l(1, 1), "r", PR);
    let mut r = req(l(2, 1), "r", EX, LockFlags::NONE);
    r.timeout_ms = Some(100);
    assert_eq!(
        sm.apply(&Command::Lock(r)),
        vec![queued(l(2, 1), EX), blocking(l(1, 1), PR, EX)]
    );
    assert_eq!(sm.lock_info(l(2, 1)).unwrap().deadline_ms, Some(100));
    assert_eq!(lock(&mut sm, l(3, 1), "r", PR), vec![queued(l(3, 1), PR)]);
    assert_eq!(tick(&mut sm, 99), vec![]);
    // The EX times out; the PR behind it is granted.
    assert_eq!(
        tick(&mut sm, 100),
        vec![
            denied(l(2, 1), Denial::Timeout),
            grant_output(&sm, l(3, 1), PR)
        ]
    );
    // A conversion that times out keeps its granted mode.
    let mut c = req(l(1, 1), "r", EX, LockFlags::CONVERT);
    c.timeout_ms = Some(50);
    assert_eq!(
        sm.apply(&Command::Lock(c)),
        vec![queued(l(1, 1), EX), blocking(l(3, 1), PR, EX)]
    );
    assert_eq!(tick(&mut sm, 149), vec![]);
    assert_eq!(tick(&mut sm, 150), vec![denied(l(1, 1), Denial::Timeout)]);
    let info = sm.lock_info(l(1, 1)).unwrap();
    assert_eq!((info.granted, info.requested), (Some(PR), None));
    // A timeout on a request granted at once means nothing.
    let mut g = req(l(2, 2), "z", EX, LockFlags::NONE);
    g.timeout_ms = Some(1);
    granted_only(&sm.apply(&Command::Lock(g)), l(2, 2), EX);
    assert_eq!(tick(&mut sm, 500), vec![]);
}

#[test]
fn clock_never_goes_back() {
    let mut sm = machine(1);
    tick(&mut sm, 100);
    tick(&mut sm, 50);
    assert_eq!(sm.now_ms(), 100);
}

#[test]
fn value_blocks_are_written_read_and_invalidated() {
    let mut sm = machine(4);
    let v = LockFlags::VALBLK;
    let out = lock_f(&mut sm, l(1, 1), "r", EX, v);
    assert_eq!(lvbs(&out), vec![ValueBlock::INITIAL]);
    // EX -> NL writes.
    let mut down = req(l(1, 1), "r", NL, LockFlags::CONVERT | v);
    down.lvb = Some(bytes(7));
    let written = ValueBlock {
        bytes: bytes(7),
        valid: true,
    };
    assert_eq!(lvbs(&sm.apply(&Command::Lock(down))), vec![written]);
    // The next grant reads it; without VALBLK no value block comes.
    assert_eq!(lvbs(&lock_f(&mut sm, l(2, 1), "r", PR, v)), vec![written]);
    assert_eq!(lvbs(&lock(&mut sm, l(2, 2), "r", PR)), vec![]);
    // Only PW/EX holders write: refused, nothing changes.
    let before = sm.snapshot();
    let out = sm.apply(&Command::Unlock {
        lock: l(2, 1),
        lvb: Some(bytes(1)),
    });
    assert!(is_rejection(&out), "{out:?}");
    let mut up = req(l(2, 1), "r", EX, LockFlags::CONVERT | v);
    up.lvb = Some(bytes(1));
    assert!(is_rejection(&sm.apply(&Command::Lock(up))));
    assert_eq!(sm.snapshot(), before);
    // With no lock left the resource keeps its value block.
    for lk in [l(1, 1), l(2, 1), l(2, 2)] {
        unlock(&mut sm, lk);
    }
    let res = sm.resource_info("ls", b"r").unwrap();
    assert_eq!((res.lvb, res.granted.len()), (written, 0));
    // An EX unlock writes too.
    lock_f(&mut sm, l(3, 1), "r", EX, v);
    sm.apply(&Command::Unlock {
        lock: l(3, 1),
        lvb: Some(bytes(8)),
    });
    let eight = ValueBlock {
        bytes: bytes(8),
        valid: true,
    };
    assert_eq!(lvbs(&lock_f(&mut sm, l(3, 2), "r", EX, v)), vec![eight]);
    // The EX holder's node stops sending heartbeats: its session expires, the waiter gets
    // the last value marked invalid.
    assert_eq!(
        lock_f(&mut sm, l(4, 1), "r", PR, v),
        vec![queued(l(4, 1), PR), blocking(l(3, 2), EX, PR)]
    );
    tick(&mut sm, 500);
    for node in [1, 2, 4] {
        assert_eq!(sm.apply(&Command::Heartbeat { node: NodeId(node) }), vec![]);
    }
    let out = tick(&mut sm, 1_000);
    let stale = ValueBlock {
        bytes: bytes(8),
        valid: false,
    };
    assert_eq!(
        out,
        vec![
            Output::SessionClosed {
                session: SessionId(3),
                reason: CloseReason::Expired
            },
            Output::Granted {
                lock: l(4, 1),
                mode: PR,
                token: sm.next_token() - 1,
                lvb: Some(stale)
            }
        ]
    );
    // The next writer makes it valid again.
    granted_only(&convert(&mut sm, l(4, 1), "r", EX), l(4, 1), EX);
    let mut w = req(l(4, 1), "r", PR, LockFlags::CONVERT | v);
    w.lvb = Some(bytes(9));
    assert_eq!(
        lvbs(&sm.apply(&Command::Lock(w))),
        vec![ValueBlock {
            bytes: bytes(9),
            valid: true
        }]
    );
    // A PW holder whose client dies invalidates it as well, even with nobody waiting.
    granted_only(&convert(&mut sm, l(4, 1), "r", PW), l(4, 1), PW);
    sm.apply(&Command::CloseSession {
        session: SessionId(4),
    });
    let res = sm.resource_info("ls", b"r").unwrap();
    assert!(!res.lvb.valid);
    assert!(res.granted.is_empty());
}

#[test]
fn blocking_notifications_once_per_episode() {
    let mut sm = machine(4);
    lock(&mut sm, l(1, 1), "r", EX);
    assert_eq!(
        lock(&mut sm, l(2, 1), "r", PR),
        vec![queued(l(2, 1), PR), blocking(l(1, 1), EX, PR)]
    );
    // Same episode: no second notification.
    assert_eq!(lock(&mut sm, l(3, 1), "r", CW), vec![queued(l(3, 1), CW)]);
    sm.apply(&Command::Cancel { lock: l(2, 1) });
    assert_eq!(
        sm.apply(&Command::Cancel { lock: l(3, 1) }),
        vec![denied(l(3, 1), Denial::Cancelled)]
    );
    // The episode ended when nothing was blocked any more: a new request starts a new one.
    assert_eq!(
        lock(&mut sm, l(4, 1), "r", CR),
        vec![queued(l(4, 1), CR), blocking(l(1, 1), EX, CR)]
    );
    // A down-conversion that still blocks is a new episode in the new mode... PW still blocks
    // nothing here (CR is compatible with PW), so the CR is granted and nobody is told.
    let out = convert(&mut sm, l(1, 1), "r", PW);
    assert_eq!(grants(&out), vec![(l(1, 1), PW), (l(4, 1), CR)]);
    assert_eq!(out.len(), 2);
    assert_eq!(
        lock(&mut sm, l(2, 2), "r", PR),
        vec![queued(l(2, 2), PR), blocking(l(1, 1), PW, PR)]
    );
    // Completion: the waiter is told when it is granted.
    assert_eq!(
        unlock(&mut sm, l(1, 1)),
        vec![
            Output::Unlocked { lock: l(1, 1) },
            grant_output(&sm, l(2, 2), PR)
        ]
    );
}

#[test]
fn deadlock_between_two_sessions() {
    let mut sm = machine(2);
    lock(&mut sm, l(1, 1), "a", EX);
    lock(&mut sm, l(2, 1), "b", EX);
    assert_eq!(
        lock(&mut sm, l(1, 2), "b", EX),
        vec![queued(l(1, 2), EX), blocking(l(2, 1), EX, EX)]
    );
    assert_eq!(
        lock(&mut sm, l(2, 2), "a", EX),
        vec![queued(l(2, 2), EX), denied(l(2, 2), Denial::Deadlock)]
    );
    assert_eq!(sm.counts().waiting, 1);
    assert_eq!(grants(&unlock(&mut sm, l(2, 1))), vec![(l(1, 2), EX)]);
}

#[test]
fn deadlock_between_three_sessions() {
    let mut sm = machine(3);
    lock(&mut sm, l(1, 1), "a", EX);
    lock(&mut sm, l(2, 1), "b", PW);
    lock(&mut sm, l(3, 1), "c", PR);
    assert_eq!(lock(&mut sm, l(1, 2), "b", CW)[0], queued(l(1, 2), CW));
    assert_eq!(lock(&mut sm, l(2, 2), "c", EX)[0], queued(l(2, 2), EX));
    // Session 3 closes the cycle 1 -> 2 -> 3 -> 1; its request is the youngest.
    assert_eq!(
        lock(&mut sm, l(3, 2), "a", PR),
        vec![queued(l(3, 2), PR), denied(l(3, 2), Denial::Deadlock)]
    );
    // Breaking it lets everyone finish: 3 releases c, 2 gets it and releases b, 1 gets b.
    assert_eq!(grants(&unlock(&mut sm, l(3, 1))), vec![(l(2, 2), EX)]);
    assert_eq!(grants(&unlock(&mut sm, l(2, 1))), vec![(l(1, 2), CW)]);
}

#[test]
fn deadlock_formed_by_a_grant_is_found() {
    // R is held by session 4; session 2 queues EX on R, then EX on X (held by session 1);
    // session 1 queues PR on R behind session 2. No cycle yet: session 2's request on R waits
    // only for session 4. When 4 releases R, session 2 holds R and waits for X while session 1
    // holds X and waits for R.
    let mut sm = machine(4);
    lock(&mut sm, l(4, 1), "R", EX);
    lock(&mut sm, l(1, 1), "X", EX);
    assert_eq!(lock(&mut sm, l(2, 1), "R", EX)[0], queued(l(2, 1), EX));
    assert_eq!(lock(&mut sm, l(2, 2), "X", EX)[0], queued(l(2, 2), EX));
    assert_eq!(lock(&mut sm, l(1, 2), "R", PR), vec![queued(l(1, 2), PR)]);
    let out = unlock(&mut sm, l(4, 1));
    assert_eq!(
        out,
        vec![
            Output::Unlocked { lock: l(4, 1) },
            grant_output_at(l(2, 1), EX, sm.next_token() - 1),
            denied(l(1, 2), Denial::Deadlock)
        ]
    );
}

fn grant_output_at(lk: lvs_lockcore::LockRef, mode: LockMode, token: u64) -> Output {
    Output::Granted {
        lock: lk,
        mode,
        token,
        lvb: None,
    }
}

#[test]
fn waiting_for_ones_own_lock_is_a_deadlock() {
    let mut sm = machine(1);
    lock(&mut sm, l(1, 1), "r", EX);
    assert_eq!(
        lock(&mut sm, l(1, 2), "r", EX),
        vec![queued(l(1, 2), EX), denied(l(1, 2), Denial::Deadlock)]
    );
    // Compatible second locks are fine.
    lock(&mut sm, l(1, 3), "s", PR);
    granted_only(&lock(&mut sm, l(1, 4), "s", PR), l(1, 4), PR);
}

#[test]
fn deadlock_victims_are_the_same_on_every_replica() {
    let log = [
        Command::Lock(req(l(1, 1), "a", EX, LockFlags::NONE)),
        Command::Lock(req(l(2, 1), "b", EX, LockFlags::NONE)),
        Command::Lock(req(l(3, 1), "c", EX, LockFlags::NONE)),
        Command::Lock(req(l(1, 2), "b", PR, LockFlags::NONE)),
        Command::Lock(req(l(2, 2), "c", PR, LockFlags::NONE)),
        Command::Lock(req(l(3, 2), "a", PR, LockFlags::NONE)),
        Command::Lock(req(l(3, 3), "b", PR, LockFlags::NONE)),
        Command::Unlock {
            lock: l(2, 1),
            lvb: None,
        },
    ];
    let run = || {
        let mut sm = machine(3);
        let outs: Vec<Vec<Output>> = log.iter().map(|c| sm.apply(c)).collect();
        (outs, sm.snapshot())
    };
    assert_eq!(run(), run());
}

#[test]
fn closing_a_session_releases_and_regrants() {
    let mut sm = machine(3);
    lock(&mut sm, l(1, 1), "r", EX);
    lock(&mut sm, l(1, 2), "s", PR);
    lock(&mut sm, l(2, 1), "r", PR);
    lock(&mut sm, l(3, 1), "s", EX);
    let t = sm.next_token();
    assert_eq!(
        sm.apply(&Command::CloseSession {
            session: SessionId(1)
        }),
        vec![
            Output::SessionClosed {
                session: SessionId(1),
                reason: CloseReason::Closed
            },
            grant_output_at(l(2, 1), PR, t),
            grant_output_at(l(3, 1), EX, t + 1),
        ]
    );
    assert!(sm.lock_info(l(1, 1)).is_none());
    // The session is gone: its id is unknown now.
    let out = lock(&mut sm, l(1, 9), "r", NL);
    assert_eq!(
        out,
        vec![denied(l(1, 9), Denial::NotFound("session 1".into()))]
    );
    let out = sm.apply(&Command::CloseSession {
        session: SessionId(1),
    });
    assert!(is_rejection(&out));
}

#[test]
fn lease_expiry_releases_and_regrants() {
    let mut sm = machine(2);
    lock(&mut sm, l(2, 1), "r", EX);
    lock(&mut sm, l(1, 1), "r", EX);
    // Node 1 keeps sending heartbeats, node 2 is dead.
    tick(&mut sm, 500);
    sm.apply(&Command::Heartbeat { node: NodeId(1) });
    assert_eq!(tick(&mut sm, 999), vec![]);
    let t = sm.next_token();
    assert_eq!(
        tick(&mut sm, 1_000),
        vec![
            Output::SessionClosed {
                session: SessionId(2),
                reason: CloseReason::Expired
            },
            grant_output_at(l(1, 1), EX, t),
        ]
    );
    assert_eq!(sm.sessions().len(), 1);
    assert_eq!(sm.sessions()[0].expires_ms, 1_500);
    // A timeout and an expiry due at one tick are processed in deadline order.
    sm.apply(&Command::OpenSession {
        session: SessionId(5),
        node: NodeId(5),
        lease_ms: 100_000,
    });
    lock(&mut sm, l(5, 1), "q", EX);
    let mut r = req(l(1, 2), "q", PR, LockFlags::NONE);
    r.timeout_ms = Some(100);
    sm.apply(&Command::Lock(r));
    let out = tick(&mut sm, 10_000);
    assert_eq!(
        out,
        vec![
            denied(l(1, 2), Denial::Timeout),
            Output::SessionClosed {
                session: SessionId(1),
                reason: CloseReason::Expired
            }
        ]
    );
    assert_eq!(sm.counts().granted, 1);
}

#[test]
fn fencing_tokens_strictly_increase_per_resource() {
    let mut sm = machine(3);
    let mut last = 0;
    let mut check = |out: &[Output]| {
        for t in tokens(out) {
            assert!(t > last, "token {t} after {last}");
            last = t;
        }
    };
    for round in 0..20u64 {
        let s = round % 3 + 1;
        check(&lock(&mut sm, l(s, round), "r", EX));
        check(&convert(&mut sm, l(s, round), "r", PR));
        check(&unlock(&mut sm, l(s, round)));
    }
    // Through a holder's expiry, and through a snapshot: the counter is part of it.
    check(&lock(&mut sm, l(1, 100), "r", EX));
    check(&lock(&mut sm, l(2, 100), "r", EX));
    sm.apply(&Command::Heartbeat { node: NodeId(2) });
    check(&tick(&mut sm, 5_000));
    let bytes = sm.snapshot().to_bytes(FrameLimit::DEFAULT).unwrap();
    let mut sm =
        StateMachine::restore(Snapshot::from_bytes(&bytes, FrameLimit::DEFAULT).unwrap()).unwrap();
    sm.apply(&Command::OpenSession {
        session: SessionId(9),
        node: NodeId(9),
        lease_ms: 1_000,
    });
    check(&lock(&mut sm, l(9, 1), "r", EX));
    // A resource forgotten and created again does not start over.
    check(&lock(&mut sm, l(9, 2), "fresh", EX));
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let mut sm = machine(2);
    lock(&mut sm, l(1, 1), "r", PR);
    lock(&mut sm, l(2, 1), "r", EX);
    let long = "x".repeat(65);
    let ok64 = "y".repeat(64);
    let mut cases: Vec<Command> = vec![
        Command::Lock(req(l(1, 2), &long, EX, LockFlags::NONE)),
        Command::Lock(req(l(1, 2), "", EX, LockFlags::NONE)),
        Command::Lock(req(l(1, 2), "r", EX, LockFlags(1 << 9))),
        Command::Lock(req(l(1, 1), "r", EX, LockFlags::NONE)),
        Command::Lock(req(l(1, 7), "r", EX, LockFlags::CONVERT)),
        Command::Lock(req(l(1, 1), "other", EX, LockFlags::CONVERT)),
        Command::Lock(req(l(2, 1), "r", EX, LockFlags::CONVERT)),
        Command::Lock(req(l(7, 1), "r", EX, LockFlags::NONE)),
        Command::Unlock {
            lock: l(1, 7),
            lvb: None,
        },
        Command::Unlock {
            lock: l(2, 1),
            lvb: Some(bytes(1)),
        },
        Command::Cancel { lock: l(1, 7) },
        Command::Cancel { lock: l(1, 1) },
        Command::OpenSession {
            session: SessionId(1),
            node: NodeId(1),
            lease_ms: 10,
        },
        Command::OpenSession {
            session: SessionId(5),
            node: NodeId(1),
            lease_ms: 0,
        },
        Command::CloseSession {
            session: SessionId(6),
        },
        Command::CreateLockspace { name: long.clone() },
        Command::CreateLockspace {
            name: String::new(),
        },
        Command::RemoveLockspace {
            name: "nope".into(),
        },
        Command::RemoveLockspace { name: LS.into() },
    ];
    let mut other_ls = req(l(1, 2), "r", EX, LockFlags::NONE);
    other_ls.lockspace = "nope".into();
    cases.push(Command::Lock(other_ls));
    let mut lvb_new = req(l(1, 2), "r", EX, LockFlags::VALBLK);
    lvb_new.lvb = Some(bytes(3));
    cases.push(Command::Lock(lvb_new));
    let mut lvb_no_flag = req(l(1, 2), "r", EX, LockFlags::NONE);
    lvb_no_flag.lvb = Some(bytes(3));
    cases.push(Command::Lock(lvb_no_flag));
    let before = sm.snapshot();
    for cmd in &cases {
        let out = sm.apply(cmd);
        assert!(is_rejection(&out), "{cmd:?} gave {out:?}");
        assert_eq!(sm.snapshot(), before, "{cmd:?} changed the state");
    }
    // The messages say what is wrong.
    let out = sm.apply(&cases[0]);
    assert_eq!(
        out,
        vec![denied(
            l(1, 2),
            Denial::BadRequest("resource name of 65 bytes: must be 1 to 64 bytes".into())
        )]
    );
    assert!(matches!(
        &sm.apply(&cases[18])[..],
        [Output::Denied { target: Target::Lockspace(_), reason: Denial::BadRequest(m) }] if m.contains("2 locks")
    ));
    // 64 bytes is fine.
    granted_only(&lock(&mut sm, l(1, 2), &ok64, EX), l(1, 2), EX);
    // Double unlock.
    assert_eq!(
        unlock(&mut sm, l(1, 2)),
        vec![Output::Unlocked { lock: l(1, 2) }]
    );
    let before = sm.snapshot();
    assert_eq!(
        unlock(&mut sm, l(1, 2)),
        vec![denied(
            l(1, 2),
            Denial::NotFound("lock 2 of session 1".into())
        )]
    );
    assert_eq!(sm.snapshot(), before);
    // Heartbeats from a node without sessions do nothing, silently.
    assert_eq!(sm.apply(&Command::Heartbeat { node: NodeId(77) }), vec![]);
    assert_eq!(sm.snapshot(), before);
}

#[test]
fn unlock_ends_a_pending_request_too() {
    let mut sm = machine(2);
    lock(&mut sm, l(1, 1), "r", EX);
    lock(&mut sm, l(2, 1), "r", EX);
    assert_eq!(
        unlock(&mut sm, l(2, 1)),
        vec![Output::Unlocked { lock: l(2, 1) }]
    );
    lock(&mut sm, l(2, 2), "r", NL);
    convert(&mut sm, l(2, 2), "r", EX);
    assert_eq!(sm.counts().converting, 1);
    assert_eq!(
        unlock(&mut sm, l(2, 2)),
        vec![Output::Unlocked { lock: l(2, 2) }]
    );
    assert_eq!(sm.counts().converting, 0);
}

#[test]
fn lockspaces_come_and_go() {
    let mut sm = machine(1);
    assert_eq!(
        sm.apply(&Command::CreateLockspace { name: LS.into() }),
        vec![Output::LockspaceReady {
            name: LS.into(),
            created: false
        }]
    );
    lock(&mut sm, l(1, 1), "r", EX);
    assert!(is_rejection(
        &sm.apply(&Command::RemoveLockspace { name: LS.into() })
    ));
    unlock(&mut sm, l(1, 1));
    assert_eq!(
        sm.apply(&Command::RemoveLockspace { name: LS.into() }),
        vec![Output::LockspaceRemoved { name: LS.into() }]
    );
    assert_eq!(
        lock(&mut sm, l(1, 2), "r", EX),
        vec![denied(l(1, 2), Denial::NotFound("lockspace \"ls\"".into()))]
    );
}

#[test]
fn query_lists_queues_holders_and_tokens() {
    let mut sm = machine(3);
    let t = granted_only(&lock(&mut sm, l(1, 1), "r", PR), l(1, 1), PR);
    lock(&mut sm, l(2, 1), "r", PR);
    convert(&mut sm, l(2, 1), "r", EX);
    let mut w = req(l(3, 1), "r", CR, LockFlags::NONE);
    w.timeout_ms = Some(40);
    sm.apply(&Command::Lock(w));
    lock(
        &mut sm,
        l(3, 2),
        b"\xffbinary name".escape_ascii().to_string().as_str(),
        NL,
    );
    let list = sm.resources(LS).unwrap();
    assert_eq!(list.len(), 2);
    let r = sm.resource_info(LS, b"r").unwrap();
    assert_eq!(
        r.granted.iter().map(|i| i.lock).collect::<Vec<_>>(),
        vec![l(1, 1), l(2, 1)]
    );
    assert_eq!(r.granted[0].token, Some(t));
    assert_eq!(r.granted[0].node, NodeId(1));
    assert_eq!(r.converting.len(), 1);
    assert_eq!(r.converting[0].requested, Some(EX));
    assert_eq!(r.waiting[0].lock, l(3, 1));
    assert_eq!(r.waiting[0].deadline_ms, Some(40));
    assert_eq!(r.waiting[0].granted, None);
    let c = sm.counts();
    assert_eq!(
        (
            c.lockspaces,
            c.resources,
            c.sessions,
            c.granted,
            c.converting,
            c.waiting
        ),
        (1, 2, 3, 3, 1, 1)
    );
    let s = &sm.sessions()[2];
    assert_eq!((s.session, s.locks), (SessionId(3), 2));
    assert_eq!(sm.lock_resource(l(3, 1)), Some((LS, &b"r"[..])));
    assert_eq!(sm.lockspaces(), vec![LS.to_owned()]);
    assert!(sm.resources("nope").is_none());
}

#[test]
fn snapshot_restore_and_continue_gives_the_same_outputs() {
    let mut log = vec![
        Command::Lock(req(l(1, 1), "a", PR, LockFlags::VALBLK)),
        Command::Lock(req(l(2, 1), "a", PR, LockFlags::NONE)),
        Command::Lock(req(l(1, 1), "a", EX, LockFlags::CONVERT)),
        Command::Lock(req(l(3, 1), "a", CW, LockFlags::NONE)),
        Command::Tick { now_ms: 300 },
        Command::Heartbeat { node: NodeId(1) },
        Command::Heartbeat { node: NodeId(3) },
    ];
    let mut timed = req(l(3, 2), "b", EX, LockFlags::NONE);
    timed.timeout_ms = Some(800);
    log.push(Command::Lock(req(l(2, 2), "b", PW, LockFlags::NONE)));
    log.push(Command::Lock(timed));
    log.push(Command::Tick { now_ms: 1_000 });
    log.push(Command::Lock(req(l(1, 2), "b", NL, LockFlags::NONE)));
    log.push(Command::Tick { now_ms: 1_200 });
    log.push(Command::Unlock {
        lock: l(1, 1),
        lvb: Some(bytes(4)),
    });
    log.push(Command::Tick { now_ms: 5_000 });
    let mut whole = machine(3);
    let expected: Vec<Vec<Output>> = log.iter().map(|c| whole.apply(c)).collect();
    assert!(expected.iter().flatten().count() > 15);
    for split in 0..=log.len() {
        let mut sm = machine(3);
        let mut outs: Vec<Vec<Output>> = log[..split].iter().map(|c| sm.apply(c)).collect();
        let bytes = sm.snapshot().to_bytes(FrameLimit::DEFAULT).unwrap();
        let snap = Snapshot::from_bytes(&bytes, FrameLimit::DEFAULT).unwrap();
        let mut restored = StateMachine::restore(snap).unwrap();
        assert_eq!(restored, sm, "restored state differs at {split}");
        outs.extend(log[split..].iter().map(|c| restored.apply(c)));
        assert_eq!(outs, expected, "split at {split}");
        assert_eq!(restored.snapshot(), whole.snapshot());
    }
}

#[test]
fn damaged_snapshots_are_refused() {
    let mut sm = machine(2);
    lock(&mut sm, l(1, 1), "r", EX);
    let bytes = sm.snapshot().to_bytes(FrameLimit::DEFAULT).unwrap();
    assert!(Snapshot::from_bytes(&bytes[..bytes.len() - 1], FrameLimit::DEFAULT).is_err());
    let mut other = bytes.clone();
    other[4] = 2; // the format field
    let snap = Snapshot::from_bytes(&other, FrameLimit::DEFAULT).unwrap();
    let err = StateMachine::restore(snap).unwrap_err();
    assert!(err.to_string().contains("format 2"), "{err}");
    // A header that lies about the length.
    let mut lying = bytes.clone();
    lying[3] = lying[3].wrapping_add(1);
    assert!(Snapshot::from_bytes(&lying, FrameLimit::DEFAULT).is_err());
}

#[test]
fn commands_and_outputs_round_trip_through_the_codec() {
    let mut r = req(
        l(1, u64::MAX),
        "r",
        EX,
        LockFlags::VALBLK | LockFlags::NOQUEUE,
    );
    r.lvb = Some(bytes(0xAB));
    r.timeout_ms = Some(5);
    r.resource = vec![0xFF; 64];
    r.lockspace = "z".repeat(64);
    let cmds = vec![
        Command::Lock(r),
        Command::Tick { now_ms: u64::MAX },
        Command::OpenSession {
            session: SessionId(3),
            node: NodeId(4),
            lease_ms: 5,
        },
    ];
    for c in cmds {
        let b = c.to_bytes().unwrap();
        assert_eq!(Command::from_bytes(&b).unwrap(), c);
    }
    let o = Output::Granted {
        lock: l(1, 2),
        mode: PW,
        token: 99,
        lvb: Some(ValueBlock::INITIAL),
    };
    assert_eq!(Output::from_bytes(&o.to_bytes().unwrap()).unwrap(), o);
    // An unknown mode on the wire is a clear decode error.
    let err = lvs_lockcore::codec::decode::<LockMode>(&[0, 0, 0, 1, 9], FrameLimit::MIN)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown LockMode variant 9"), "{err}");
    assert!(Command::from_bytes(&[0, 0, 0, 5, 1]).is_err());
}
