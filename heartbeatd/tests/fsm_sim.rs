//! Two state machines against each other over simulated UDP and serial media, through the
//! real wire format (sealed, verified), with random losses, one-way and two-way cuts and
//! crashes with restarts (the epoch kept on "disk" by `PersistEpoch`). Checked:
//!
//! - after both media are restored (and both nodes are up), two masters never coexist for
//!   longer than one deadtime, and in the end there is exactly one master, both nodes agree
//!   on the epoch, and with `auto_failback` the master is the preferred node;
//! - epochs never decrease, every raise is persisted before it is acted on, and each
//!   takeover uses a higher epoch than any before it on that node;
//! - no heartbeat is ever rejected (no false replay), and the FSM never asks to be woken
//!   in the past;
//! - no takeover while the master is heard: a node becomes master only when the peer's
//!   latest heartbeat (highest generation and sequence) did not say master, or was
//!   accepted deadtime or longer ago.

use std::collections::VecDeque;

use lvs_heartbeatd::Medium;
use lvs_heartbeatd::fsm::{Action, Fsm, FsmConfig, Input, Timers};
use lvs_heartbeatd::wire::{AuthKey, MESSAGE_LEN, NodeState, Reject, Sealer, Status, Verifier};
use proptest::prelude::*;

const UDP_LATENCY: u64 = 1;
/// A 105-byte frame at 19200 baud.
const SERIAL_LATENCY: u64 = 55;
/// A backup reports its table synced this long after it became backup.
const SYNC_DELAY: u64 = 300;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Link {
    Up,
    Down,
    /// Loses this percentage of heartbeats.
    Lossy(u8),
}

#[derive(Debug, Clone)]
struct Phase {
    duration: u64,
    /// [medium][direction]: direction 0 is node 0 -> node 1.
    links: [[Link; 2]; 2],
    /// (node, how long it stays down) crashed at the start of the phase.
    crash: Option<(usize, u64)>,
}

#[derive(Debug, Clone)]
struct Scenario {
    timers: Timers,
    auto_failback: bool,
    priorities: [u16; 2],
    phases: Vec<Phase>,
    seed: u64,
}

fn link() -> impl Strategy<Value = Link> {
    prop_oneof![
        3 => Just(Link::Up),
        2 => Just(Link::Down),
        2 => (5u8..95).prop_map(Link::Lossy),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let timers = prop_oneof![
        Just(Timers::default()),
        Just(Timers {
            keepalive_ms: 50,
            deadtime_ms: 250,
            warntime_ms: 150,
            initdead_ms: 500,
        }),
    ];
    let phase = (
        100u64..4000,
        [[link(), link()], [link(), link()]],
        prop_oneof![3 => Just(None), 1 => (0usize..2, 0u64..5000).prop_map(Some)],
    )
        .prop_map(|(duration, links, crash)| Phase {
            duration,
            links,
            crash,
        });
    (
        timers,
        any::<bool>(),
        prop_oneof![Just([200u16, 100]), Just([100, 100]), Just([100, 200])],
        proptest::collection::vec(phase, 1..7),
        any::<u64>(),
    )
        .prop_map(
            |(timers, auto_failback, priorities, phases, seed)| Scenario {
                timers,
                auto_failback,
                priorities,
                phases,
                seed,
            },
        )
}

/// xorshift64*: deterministic losses and boot ids from the case's seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

struct Node {
    config: FsmConfig,
    fsm: Option<Fsm>,
    disk_epoch: u64,
    highest_epoch: u64,
    highest_master_epoch: u64,
    sealer: Sealer,
    verifier: Verifier,
    backup_since: Option<u64>,
    restart_at: Option<u64>,
    /// The peer's latest heartbeat accepted: (generation, sequence), whether it said
    /// master, and when it arrived. Forgotten at a restart (the FSM starts afresh).
    latest_from_peer: Option<((u64, u64), bool, u64)>,
}

struct Message {
    at: u64,
    to: usize,
    medium: Medium,
    bytes: [u8; MESSAGE_LEN],
}

struct Sim {
    key: AuthKey,
    nodes: [Node; 2],
    /// FIFO per medium and direction: constant latencies keep each in order.
    queues: [[VecDeque<Message>; 2]; 2],
    links: [[Link; 2]; 2],
    rng: Rng,
    now: u64,
}

impl Sim {
    fn new(s: &Scenario) -> Sim {
        let key = AuthKey::from_bytes(b"simulated shared key, 32 bytes!!").unwrap();
        let mut rng = Rng(s.seed | 1);
        let nodes = [0usize, 1].map(|i| {
            let id = u32::try_from(i + 1).unwrap();
            let mut config = FsmConfig::new(id, s.priorities[i]);
            config.timers = s.timers;
            config.auto_failback = s.auto_failback;
            config.hold_down_ms = 1000;
            Node {
                fsm: Some(Fsm::new(&config, 0, 0).unwrap()),
                disk_epoch: 0,
                highest_epoch: 0,
                highest_master_epoch: 0,
                sealer: {
                    // The random stream stays as it was before generations (regression seeds).
                    let _ = rng.next();
                    Sealer::new(key.clone(), id, s.priorities[i], 1)
                },
                verifier: Verifier::new(key.clone(), id, &[3 - id]),
                backup_since: None,
                restart_at: None,
                latest_from_peer: None,
                config,
            }
        });
        Sim {
            key,
            nodes,
            queues: Default::default(),
            links: [[Link::Up; 2]; 2],
            rng,
            now: 0,
        }
    }

    fn state(&self, i: usize) -> Option<NodeState> {
        self.nodes[i].fsm.as_ref().map(Fsm::state)
    }

    fn crash(&mut self, i: usize, until: u64) {
        let n = &mut self.nodes[i];
        n.fsm = None;
        n.backup_since = None;
        n.restart_at = Some(until);
    }

    fn restart(&mut self, i: usize) {
        let _ = self.rng.next();
        // A restart's generation is higher than any before (the persisted count).
        let generation = self.now + 2;
        let n = &mut self.nodes[i];
        let id = n.config.node_id;
        n.fsm = Some(Fsm::new(&n.config, n.disk_epoch, self.now).unwrap());
        n.sealer = Sealer::new(self.key.clone(), id, n.config.priority, generation);
        n.verifier = Verifier::new(self.key.clone(), id, &[3 - id]);
        n.restart_at = None;
        n.latest_from_peer = None;
    }

    fn feed(&mut self, i: usize, input: Input) -> Result<(), TestCaseError> {
        let now = self.now;
        let Some(fsm) = self.nodes[i].fsm.as_mut() else {
            return Ok(());
        };
        let actions = fsm.handle(now, input);
        let (epoch, deadline, state) = (fsm.epoch(), fsm.next_deadline(), fsm.state());
        prop_assert!(
            deadline > now,
            "node {i} asks to be woken at {deadline} <= {now}"
        );
        for a in actions {
            let n = &mut self.nodes[i];
            match a {
                Action::PersistEpoch(e) => {
                    prop_assert!(
                        e > n.disk_epoch,
                        "persisted epoch {e} after {}",
                        n.disk_epoch
                    );
                    n.disk_epoch = e;
                }
                Action::BecomeMaster { epoch } => {
                    prop_assert_eq!(epoch, n.disk_epoch, "master before persisting its epoch");
                    if let Some((_, true, heard)) = n.latest_from_peer {
                        let deadtime = n.config.timers.deadtime_ms;
                        prop_assert!(
                            now - heard >= deadtime,
                            "node {i} took over at {now}: the master was heard at {heard}, \
                             within the deadtime ({deadtime} ms)"
                        );
                    }
                    prop_assert!(epoch > n.highest_master_epoch);
                    n.highest_master_epoch = epoch;
                }
                Action::SendHeartbeat { state, epoch } => self.send(i, state, epoch),
                _ => {}
            }
        }
        let n = &mut self.nodes[i];
        prop_assert!(
            epoch >= n.highest_epoch,
            "epoch went down: {} -> {epoch}",
            n.highest_epoch
        );
        prop_assert_eq!(epoch, n.disk_epoch, "an epoch raise was not persisted");
        n.highest_epoch = epoch;
        if state == NodeState::Backup {
            n.backup_since.get_or_insert(now);
        } else {
            n.backup_since = None;
        }
        Ok(())
    }

    fn send(&mut self, from: usize, state: NodeState, epoch: u64) {
        let now = self.now;
        let n = &mut self.nodes[from];
        let synced = n.backup_since.is_some_and(|s| now >= s + SYNC_DELAY);
        let status = Status {
            sync_generation: 0,
            flags: if synced { Status::TABLE_SYNCED } else { 0 },
        };
        let hb = n.sealer.next(state, epoch, status, now);
        for medium in Medium::ALL {
            let link = self.links[medium.index()][from];
            let lost = match link {
                Link::Up => false,
                Link::Down => true,
                Link::Lossy(p) => self.rng.next() % 100 < u64::from(p),
            };
            if !lost {
                let latency = match medium {
                    Medium::Udp => UDP_LATENCY,
                    Medium::Serial => SERIAL_LATENCY,
                };
                self.queues[medium.index()][from].push_back(Message {
                    at: now + latency,
                    to: 1 - from,
                    medium,
                    bytes: self.nodes[from].sealer.seal_for(&hb, medium),
                });
            }
        }
    }

    /// Advances one millisecond: restarts, deliveries, deadlines.
    fn step(&mut self) -> Result<(), TestCaseError> {
        for i in 0..2 {
            if self.nodes[i].restart_at.is_some_and(|t| t <= self.now) {
                self.restart(i);
                self.feed(i, Input::Tick)?;
            }
        }
        for m in 0..2 {
            for dir in 0..2 {
                while self.queues[m][dir]
                    .front()
                    .is_some_and(|msg| msg.at <= self.now)
                {
                    let msg = self.queues[m][dir].pop_front().unwrap();
                    if self.nodes[msg.to].fsm.is_none() {
                        continue;
                    }
                    let r = self.nodes[msg.to].verifier.verify(msg.medium, &msg.bytes);
                    // A heartbeat of the sender's previous run still in flight (a slow
                    // medium) when the receiver already heard its new run: refused, rightly.
                    if r == Err(Reject::StaleGeneration) {
                        continue;
                    }
                    let accepted = r.map_err(|e| {
                        TestCaseError::fail(format!("node {} rejected a heartbeat: {e}", msg.to))
                    })?;
                    let hb = accepted.heartbeat;
                    let order = (hb.generation, hb.sequence);
                    let n = &mut self.nodes[msg.to];
                    if n.latest_from_peer.is_none_or(|(o, _, _)| order >= o) {
                        n.latest_from_peer = Some((order, hb.state == NodeState::Master, self.now));
                    }
                    self.feed(
                        msg.to,
                        Input::Heartbeat {
                            medium: msg.medium,
                            heartbeat: accepted.heartbeat,
                        },
                    )?;
                }
            }
        }
        for i in 0..2 {
            if self.nodes[i]
                .fsm
                .as_ref()
                .is_some_and(|f| f.next_deadline() <= self.now)
            {
                self.feed(i, Input::Tick)?;
            }
        }
        Ok(())
    }
}

/// Runs a scenario; returns each change of the two states, with its time.
type Trace = Vec<(u64, [Option<NodeState>; 2])>;

fn run(s: &Scenario) -> Result<Trace, TestCaseError> {
    let mut trace: Trace = Vec::new();
    let mut sim = Sim::new(s);
    for i in 0..2 {
        sim.feed(i, Input::Tick)?;
    }
    let deadtime = s.timers.deadtime_ms;
    let mut end = 0;
    for p in &s.phases {
        end += p.duration;
    }
    let restored = end;
    let last = restored + 6000;
    let mut phases = s.phases.iter();
    let mut phase_end = 0;
    let mut dual_since: Option<u64> = None;
    while sim.now < last {
        if sim.now == phase_end {
            match phases.next() {
                Some(p) => {
                    sim.links = p.links;
                    if let Some((i, down)) = p.crash
                        && sim.nodes[i].fsm.is_some()
                    {
                        sim.crash(i, (sim.now + down).min(restored));
                    }
                    phase_end += p.duration;
                }
                None => {
                    // Restored: both media up both ways, both nodes up.
                    sim.links = [[Link::Up; 2]; 2];
                    phase_end = u64::MAX;
                }
            }
        }
        sim.step()?;
        let states = [sim.state(0), sim.state(1)];
        if trace.last().is_none_or(|(_, s)| *s != states) {
            trace.push((sim.now, states));
        }
        let both =
            sim.state(0) == Some(NodeState::Master) && sim.state(1) == Some(NodeState::Master);
        if both {
            let since = *dual_since.get_or_insert(sim.now);
            if sim.now >= restored {
                prop_assert!(
                    sim.now - since.max(restored) <= deadtime,
                    "two masters since {since}, still at {} (media restored at {restored})",
                    sim.now
                );
            }
        } else {
            dual_since = None;
        }
        sim.now += 1;
    }
    let states = [sim.state(0).unwrap(), sim.state(1).unwrap()];
    let masters: Vec<usize> = (0..2).filter(|&i| states[i] == NodeState::Master).collect();
    prop_assert_eq!(masters.len(), 1, "states at the end: {:?}", states);
    let epochs = [0, 1].map(|i| sim.nodes[i].fsm.as_ref().unwrap().epoch());
    prop_assert_eq!(epochs[0], epochs[1], "epochs at the end");
    if s.auto_failback {
        let preferred = if s.priorities[1] > s.priorities[0] {
            1
        } else {
            0
        };
        prop_assert_eq!(
            masters[0],
            preferred,
            "auto_failback: the preferred node is master"
        );
    }
    for n in &sim.nodes {
        // Only heartbeats of a previous run still in flight at a restart are refused.
        let r = n.verifier.rejects();
        prop_assert_eq!(r.total(), r.stale_generation);
    }
    Ok(trace)
}

proptest! {
    // 128 cases by default; PROPTEST_CASES raises it for a longer hunt.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128)
    ))]
    #[test]
    fn two_nodes_never_keep_two_masters(s in scenario()) {
        run(&s)?;
    }
}

/// The scenario of the issue, spelled out: UDP cut, serial alive -> no takeover; both cut
/// -> takeover; restored -> one master at once.
#[test]
fn udp_cut_then_both_cut_then_restored() {
    let down = [Link::Down; 2];
    let up = [Link::Up; 2];
    let s = Scenario {
        timers: Timers::default(),
        auto_failback: false,
        priorities: [200, 100],
        phases: vec![
            Phase {
                duration: 3000,
                links: [up, up],
                crash: None,
            },
            Phase {
                duration: 5000,
                links: [down, up],
                crash: None,
            },
            Phase {
                duration: 5000,
                links: [down, down],
                crash: None,
            },
        ],
        seed: 7,
    };
    let trace = run(&s).unwrap();
    let at = |t: u64| trace.iter().rev().find(|(when, _)| *when <= t).unwrap().1;
    let (m, b) = (Some(NodeState::Master), Some(NodeState::Backup));
    // Elected by priority at start, and nothing changes while the serial line hears the peer.
    let changes: Vec<_> = trace
        .iter()
        .filter(|(t, _)| (100..8000).contains(t))
        .collect();
    assert!(changes.is_empty(), "{trace:?}");
    assert_eq!(at(7999), [m, b]);
    // Both media cut: the backup takes over within deadtime of the last heartbeat, and not
    // before: the last one left at most a keepalive before the cut (one more of slack).
    let (keepalive, deadtime) = (s.timers.keepalive_ms, s.timers.deadtime_ms);
    assert_eq!(at(8000 + deadtime - 2 * keepalive - 1), [m, b], "{trace:?}");
    assert_eq!(at(8000 + deadtime), [m, m], "{trace:?}");
    println!(
        "took over {} ms after the cut",
        trace
            .iter()
            .find(|(t, st)| *t >= 8000 && *st == [m, m])
            .map_or(0, |(t, _)| t - 8000)
    );
    // Restored: the older master (lower epoch) steps down within one keepalive.
    assert_eq!(at(13_000 + 200 + SERIAL_LATENCY), [b, m], "{trace:?}");
}
