//! The heartbeat state machine of one node facing one peer: deterministic, no clock and no
//! I/O inside. Time comes in as milliseconds of a monotonic clock; every call returns the
//! ordered list of [`Action`]s to carry out, and [`Fsm::next_deadline`] says when to call
//! again if nothing arrives.
//!
//! # Timers (Linux-HA's names)
//!
//! - keepalive: a heartbeat goes out at least this often (and at once on every change).
//! - warntime: a medium silent this long gets a late-heartbeat alert (once per silence).
//! - deadtime: the peer is dead when *every* configured medium has been silent this long.
//!   One medium silent this long while another still hears the peer is a network fault:
//!   alert, and take nothing over.
//! - initdead: at start, how long to wait for the peer before taking over alone.
//!
//! # Rules
//!
//! - Preference: the higher priority, then the lower node id.
//! - Init: the peer heard as master -> backup; as fault -> master; as init or backup ->
//!   the preferred node becomes master, the other backup. Nothing heard for initdead -> master.
//! - Backup: the peer dead or in fault -> master. The peer alive as init or backup (no
//!   master) -> master if we are preferred.
//! - Master: a heartbeat from a peer that is master too (split brain) is settled at once,
//!   the same way on both sides: the higher epoch keeps it, then the preferred node; the
//!   other steps down. With `auto_failback`, a master that is not the preferred node releases
//!   to the preferred peer once that peer is alive as backup, reports its connection table
//!   resynchronised ([`Input::PeerTableSynced`] or [`Status::TABLE_SYNCED`] in its
//!   heartbeat) and has been up for the hold-down time. Without it, a returning preferred node
//!   stays backup.
//! - Epoch: the FSM starts from the stored epoch; it takes over with the highest epoch it
//!   knows plus one, adopts any higher epoch it hears, and emits [`Action::PersistEpoch`]
//!   before any action that relies on the new epoch (the daemon writes it durably first).
//!
//! [`Status::TABLE_SYNCED`]: crate::wire::Status::TABLE_SYNCED

use std::fmt;

use crate::Medium;
use crate::wire::{Heartbeat, NodeState};

/// Linux-HA's timers, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// How often a heartbeat goes out.
    pub keepalive_ms: u64,
    /// Silence on every medium after which the peer is dead.
    pub deadtime_ms: u64,
    /// Silence on a medium after which a late-heartbeat alert goes out.
    pub warntime_ms: u64,
    /// How long to wait for the peer at start.
    pub initdead_ms: u64,
}

impl Default for Timers {
    /// keepalive 200 ms, deadtime 1 s, warntime 500 ms, initdead 2 s: a dead peer is taken
    /// over between 0.8 and 1 s after its last heartbeat went out.
    fn default() -> Self {
        Timers {
            keepalive_ms: 200,
            deadtime_ms: 1000,
            warntime_ms: 500,
            initdead_ms: 2000,
        }
    }
}

/// The default hold-down of `auto_failback`.
pub const DEFAULT_HOLD_DOWN_MS: u64 = 10_000;

/// The state machine's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsmConfig {
    /// Our node id (unique in the cluster).
    pub node_id: u32,
    /// Our priority: the higher is preferred as master.
    pub priority: u16,
    /// The timers.
    pub timers: Timers,
    /// The media heartbeats travel on; the peer is dead only when all of them are silent.
    pub media: Vec<Medium>,
    /// Whether the preferred node takes mastership back when it returns.
    pub auto_failback: bool,
    /// With `auto_failback`: how long the returning preferred node must have been up.
    pub hold_down_ms: u64,
}

impl FsmConfig {
    /// Default timers, both media, no auto failback.
    pub fn new(node_id: u32, priority: u16) -> FsmConfig {
        FsmConfig {
            node_id,
            priority,
            timers: Timers::default(),
            media: vec![Medium::Udp, Medium::Serial],
            auto_failback: false,
            hold_down_ms: DEFAULT_HOLD_DOWN_MS,
        }
    }

    /// Refuses timers that cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let t = &self.timers;
        if t.keepalive_ms == 0 {
            return Err(ConfigError::ZeroKeepalive);
        }
        if t.deadtime_ms < 2 * t.keepalive_ms {
            return Err(ConfigError::Deadtime {
                deadtime: t.deadtime_ms,
                keepalive: t.keepalive_ms,
            });
        }
        if t.warntime_ms <= t.keepalive_ms || t.warntime_ms >= t.deadtime_ms {
            return Err(ConfigError::Warntime {
                warntime: t.warntime_ms,
                keepalive: t.keepalive_ms,
                deadtime: t.deadtime_ms,
            });
        }
        if t.initdead_ms < t.deadtime_ms {
            return Err(ConfigError::Initdead {
                initdead: t.initdead_ms,
                deadtime: t.deadtime_ms,
            });
        }
        if self.media.is_empty() {
            return Err(ConfigError::NoMedia);
        }
        Ok(())
    }
}

/// Timers or media that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// keepalive 0.
    #[error("keepalive must be at least 1 ms")]
    ZeroKeepalive,
    /// deadtime below two keepalives: one lost heartbeat would be a takeover.
    #[error("deadtime ({deadtime} ms) must be at least twice keepalive ({keepalive} ms)")]
    Deadtime {
        /// deadtime.
        deadtime: u64,
        /// keepalive.
        keepalive: u64,
    },
    /// warntime not between keepalive and deadtime.
    #[error(
        "warntime ({warntime} ms) must be above keepalive ({keepalive} ms) and below deadtime ({deadtime} ms)"
    )]
    Warntime {
        /// warntime.
        warntime: u64,
        /// keepalive.
        keepalive: u64,
        /// deadtime.
        deadtime: u64,
    },
    /// initdead below deadtime.
    #[error("initdead ({initdead} ms) must be at least deadtime ({deadtime} ms)")]
    Initdead {
        /// initdead.
        initdead: u64,
        /// deadtime.
        deadtime: u64,
    },
    /// No medium.
    #[error("no heartbeat medium configured")]
    NoMedia,
}

/// What happens to the state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Time passed (call at [`Fsm::next_deadline`], and after any wake-up).
    Tick,
    /// A heartbeat from the peer that passed [`crate::wire::Verifier`].
    Heartbeat {
        /// Where it arrived.
        medium: Medium,
        /// The message.
        heartbeat: Heartbeat,
    },
    /// The peer reports its connection table resynchronised (from the sync protocol).
    PeerTableSynced,
    /// A local fault: this node cannot serve (the director is gone, the VIP could not be
    /// added, the epoch could not be persisted ...).
    Fault {
        /// Why.
        reason: String,
    },
    /// The local fault is over.
    FaultCleared,
}

/// The kinds of alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertKind {
    /// A medium has been silent for warntime.
    LateHeartbeat,
    /// A medium has been silent for deadtime while another still hears the peer.
    NetworkFault,
    /// A medium that was in network fault hears the peer again.
    MediumRecovered,
    /// Every medium silent for deadtime: the peer is dead.
    PeerDead,
    /// The peer is heard again after it was dead.
    PeerRecovered,
    /// Nothing heard from the peer within initdead at start.
    InitDead,
    /// Two masters at once (settled at once by epoch and preference).
    SplitBrain,
    /// The peer is in fault: taking over.
    PeerFault,
    /// `auto_failback`: releasing mastership to the preferred peer.
    Failback,
    /// No master between the two nodes: the preferred one takes it.
    Election,
    /// Taking over from a dead peer.
    Takeover,
}

impl AlertKind {
    /// The name used in logs and notify commands.
    pub const fn name(self) -> &'static str {
        match self {
            AlertKind::LateHeartbeat => "late-heartbeat",
            AlertKind::NetworkFault => "network-fault",
            AlertKind::MediumRecovered => "medium-recovered",
            AlertKind::PeerDead => "peer-dead",
            AlertKind::PeerRecovered => "peer-recovered",
            AlertKind::InitDead => "initdead",
            AlertKind::SplitBrain => "split-brain",
            AlertKind::PeerFault => "peer-fault",
            AlertKind::Failback => "failback",
            AlertKind::Election => "election",
            AlertKind::Takeover => "takeover",
        }
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the daemon must do, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Take over: director active, virtual addresses, gratuitous ARP, notify master.
    BecomeMaster {
        /// The new mastership epoch (already in a preceding [`Action::PersistEpoch`]).
        epoch: u64,
    },
    /// Stand by: release the virtual addresses (if held), director standby, notify backup.
    BecomeBackup,
    /// Enter fault: release everything, notify fault.
    Fault {
        /// Why.
        reason: String,
    },
    /// Write this epoch durably before carrying out the actions after it.
    PersistEpoch(u64),
    /// Tell the operator (syslog, lvs-alert).
    Alert(AlertKind, String),
    /// Send a heartbeat on every medium with this state and epoch.
    SendHeartbeat {
        /// Our state.
        state: NodeState,
        /// Our epoch.
        epoch: u64,
    },
}

/// What we know of the peer.
#[derive(Debug, Clone)]
struct Peer {
    node_id: u32,
    priority: u16,
    state: NodeState,
    epoch: u64,
    generation: u64,
    sequence: u64,
    /// Per medium: when we last heard it there.
    last_heard: [Option<u64>; 2],
    /// Since when it has been alive (first heard, back from dead, restarted, out of fault).
    up_since: u64,
    alive: bool,
    synced: bool,
    late_warned: [bool; 2],
    medium_down: [bool; 2],
}

/// A read-only view of the peer, for status pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerStatus {
    /// Its node id.
    pub node_id: u32,
    /// Its priority.
    pub priority: u16,
    /// Its last state heard.
    pub state: NodeState,
    /// Its last epoch heard.
    pub epoch: u64,
    /// Alive on some medium.
    pub alive: bool,
    /// Reported its table resynchronised since it came up.
    pub synced: bool,
    /// Per medium ([`Medium::index`]): when it was last heard there.
    pub last_heard: [Option<u64>; 2],
}

/// The state machine.
#[derive(Debug, Clone)]
pub struct Fsm {
    node_id: u32,
    priority: u16,
    timers: Timers,
    media: [bool; 2],
    auto_failback: bool,
    hold_down_ms: u64,
    state: NodeState,
    epoch: u64,
    start_ms: u64,
    state_since: u64,
    last_sent: Option<u64>,
    peer: Option<Peer>,
    split_alerted: bool,
}

impl Fsm {
    /// A machine in [`NodeState::Init`] at `now_ms`, starting from the stored epoch.
    pub fn new(config: &FsmConfig, stored_epoch: u64, now_ms: u64) -> Result<Fsm, ConfigError> {
        config.validate()?;
        let mut media = [false; 2];
        for m in &config.media {
            media[m.index()] = true;
        }
        Ok(Fsm {
            node_id: config.node_id,
            priority: config.priority,
            timers: config.timers,
            media,
            auto_failback: config.auto_failback,
            hold_down_ms: config.hold_down_ms,
            state: NodeState::Init,
            epoch: stored_epoch,
            start_ms: now_ms,
            state_since: now_ms,
            last_sent: None,
            peer: None,
            split_alerted: false,
        })
    }

    /// Our state.
    pub fn state(&self) -> NodeState {
        self.state
    }

    /// The highest epoch we know (ours when master), as carried in our heartbeats.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The timers.
    pub fn timers(&self) -> Timers {
        self.timers
    }

    /// Applies a reloaded configuration (priority, timers, media, recovery mode); the node id
    /// stays (it changes only at restart). Refused, and nothing changed, when invalid.
    pub fn reconfigure(&mut self, config: &FsmConfig) -> Result<(), ConfigError> {
        config.validate()?;
        let mut media = [false; 2];
        for m in &config.media {
            media[m.index()] = true;
        }
        self.priority = config.priority;
        self.timers = config.timers;
        self.media = media;
        self.auto_failback = config.auto_failback;
        self.hold_down_ms = config.hold_down_ms;
        Ok(())
    }

    /// What we know of the peer, once heard.
    pub fn peer(&self) -> Option<PeerStatus> {
        self.peer.as_ref().map(|p| PeerStatus {
            node_id: p.node_id,
            priority: p.priority,
            state: p.state,
            epoch: p.epoch,
            alive: p.alive,
            synced: p.synced,
            last_heard: p.last_heard,
        })
    }

    /// Feeds one input at `now_ms`; returns the actions, in order.
    pub fn handle(&mut self, now_ms: u64, input: Input) -> Vec<Action> {
        let now = now_ms;
        let mut out = Vec::new();
        match input {
            Input::Tick => {}
            Input::Heartbeat { medium, heartbeat } => {
                self.on_heartbeat(now, medium, &heartbeat, &mut out)
            }
            Input::PeerTableSynced => {
                if let Some(p) = self.peer.as_mut().filter(|p| p.alive) {
                    p.synced = true;
                }
            }
            Input::Fault { reason } => {
                if self.state != NodeState::Fault {
                    self.set_state(now, NodeState::Fault);
                    out.push(Action::Fault { reason });
                    self.send(now, &mut out);
                }
            }
            Input::FaultCleared => {
                if self.state == NodeState::Fault {
                    self.become_backup(now, &mut out);
                }
            }
        }
        self.evaluate(now, &mut out);
        if self
            .last_sent
            .is_none_or(|t| now.saturating_sub(t) >= self.timers.keepalive_ms)
        {
            self.send(now, &mut out);
        }
        out
    }

    /// When to call [`Fsm::handle`] with [`Input::Tick`] at the latest (absolute
    /// milliseconds, same clock as `now_ms`); may be in the past, meaning at once.
    pub fn next_deadline(&self) -> u64 {
        let t = &self.timers;
        let mut d = self.last_sent.map_or(self.start_ms, |s| s + t.keepalive_ms);
        match self.state {
            NodeState::Init => d = d.min(self.start_ms + t.initdead_ms),
            NodeState::Backup if self.peer.is_none() => d = d.min(self.state_since + t.deadtime_ms),
            NodeState::Master => {
                if let Some(p) = &self.peer
                    && self.failback_candidate(p)
                    && p.synced
                {
                    d = d.min(p.up_since + self.hold_down_ms);
                }
            }
            _ => {}
        }
        if let Some(p) = &self.peer {
            if p.alive
                && let Some(last) = self.last_any(p)
            {
                d = d.min(last + t.deadtime_ms);
            }
            for m in self.configured() {
                let i = m.index();
                if let Some(last) = p.last_heard[i]
                    && !p.late_warned[i]
                {
                    d = d.min(last + t.warntime_ms);
                }
                if p.alive && !p.medium_down[i] {
                    d = d.min(Self::medium_reference(p, i) + t.deadtime_ms);
                }
            }
        }
        d
    }

    fn configured(&self) -> impl Iterator<Item = Medium> + '_ {
        Medium::ALL.into_iter().filter(|m| self.media[m.index()])
    }

    fn last_any(&self, p: &Peer) -> Option<u64> {
        self.configured()
            .filter_map(|m| p.last_heard[m.index()])
            .max()
    }

    /// A medium's silence counts from its last heartbeat, but never from before the peer
    /// came up (a medium gets a full deadtime to show up after the peer returns).
    fn medium_reference(p: &Peer, i: usize) -> u64 {
        p.last_heard[i].unwrap_or(0).max(p.up_since)
    }

    /// Whether (priority a, node a) is preferred over (priority b, node b).
    fn preferred(a: (u16, u32), b: (u16, u32)) -> bool {
        a.0 > b.0 || (a.0 == b.0 && a.1 < b.1)
    }

    fn we_are_preferred(&self, p: &Peer) -> bool {
        Self::preferred((self.priority, self.node_id), (p.priority, p.node_id))
    }

    fn failback_candidate(&self, p: &Peer) -> bool {
        self.auto_failback && p.alive && p.state == NodeState::Backup && !self.we_are_preferred(p)
    }

    fn on_heartbeat(&mut self, now: u64, medium: Medium, hb: &Heartbeat, out: &mut Vec<Action>) {
        let i = medium.index();
        if !self.media[i] {
            log::debug!("heartbeat on unconfigured medium {medium} ignored");
            return;
        }
        if hb.node_id == self.node_id {
            return;
        }
        if let Some(p) = &self.peer
            && p.node_id != hb.node_id
        {
            log::warn!(
                "heartbeat from node {} ignored: this node's peer is node {}",
                hb.node_id,
                p.node_id
            );
            return;
        }
        let first = self.peer.is_none();
        let p = self.peer.get_or_insert(Peer {
            node_id: hb.node_id,
            priority: hb.priority,
            state: hb.state,
            epoch: hb.epoch,
            generation: hb.generation,
            sequence: hb.sequence,
            last_heard: [None; 2],
            up_since: now,
            alive: false,
            synced: false,
            late_warned: [false; 2],
            medium_down: [false; 2],
        });
        let fresh = first || hb.generation != p.generation || hb.sequence > p.sequence;
        p.last_heard[i] = Some(now);
        p.late_warned[i] = false;
        if !p.alive {
            p.alive = true;
            p.up_since = now;
            p.synced = false;
            p.late_warned = [false; 2];
            p.medium_down = [false; 2];
            if !first {
                out.push(Action::Alert(
                    AlertKind::PeerRecovered,
                    format!("peer {} heard again on {medium}", hb.node_id),
                ));
            }
        } else if p.medium_down[i] {
            p.medium_down[i] = false;
            out.push(Action::Alert(
                AlertKind::MediumRecovered,
                format!("peer {} heard again on {medium}", hb.node_id),
            ));
        }
        if !fresh {
            // An older heartbeat overtaken on a faster medium: liveness only.
            return;
        }
        if !first
            && (hb.generation != p.generation
                || (p.state == NodeState::Fault && hb.state != NodeState::Fault))
        {
            p.up_since = now;
            p.synced = false;
        }
        p.priority = hb.priority;
        p.state = hb.state;
        p.epoch = hb.epoch;
        p.generation = hb.generation;
        p.sequence = hb.sequence;
        if hb.status.table_synced() {
            p.synced = true;
        }

        // Two masters: settled before the epoch is adopted, the same way on both sides.
        if hb.state == NodeState::Master {
            if self.state == NodeState::Master {
                let peer_wins = hb.epoch > self.epoch
                    || (hb.epoch == self.epoch
                        && Self::preferred(
                            (hb.priority, hb.node_id),
                            (self.priority, self.node_id),
                        ));
                if peer_wins {
                    out.push(Action::Alert(
                        AlertKind::SplitBrain,
                        format!(
                            "peer {} is master too with epoch {} (ours {}): stepping down",
                            hb.node_id, hb.epoch, self.epoch
                        ),
                    ));
                    self.adopt_epoch(hb.epoch, out);
                    self.become_backup(now, out);
                    return;
                }
                if !self.split_alerted {
                    self.split_alerted = true;
                    out.push(Action::Alert(
                        AlertKind::SplitBrain,
                        format!(
                            "peer {} is master too with epoch {} (ours {}): it steps down",
                            hb.node_id, hb.epoch, self.epoch
                        ),
                    ));
                }
            }
        } else {
            self.split_alerted = false;
        }
        self.adopt_epoch(hb.epoch, out);
    }

    fn adopt_epoch(&mut self, epoch: u64, out: &mut Vec<Action>) {
        if epoch > self.epoch {
            self.epoch = epoch;
            out.push(Action::PersistEpoch(epoch));
        }
    }

    fn evaluate(&mut self, now: u64, out: &mut Vec<Action>) {
        let t = self.timers;
        let state = self.state;
        let last_any = self.peer.as_ref().and_then(|p| self.last_any(p));
        let media = self.media;
        if let Some(p) = self.peer.as_mut() {
            if p.alive && last_any.is_none_or(|l| now.saturating_sub(l) >= t.deadtime_ms) {
                p.alive = false;
                p.synced = false;
                out.push(Action::Alert(
                    AlertKind::PeerDead,
                    format!(
                        "peer {}: no heartbeat on any medium for {} ms",
                        p.node_id,
                        last_any.map_or(0, |l| now.saturating_sub(l))
                    ),
                ));
            }
            for m in Medium::ALL.into_iter().filter(|m| media[m.index()]) {
                let i = m.index();
                if let Some(last) = p.last_heard[i]
                    && !p.late_warned[i]
                    && now.saturating_sub(last) >= t.warntime_ms
                {
                    p.late_warned[i] = true;
                    out.push(Action::Alert(
                        AlertKind::LateHeartbeat,
                        format!(
                            "peer {}: late heartbeat on {m}: none for {} ms",
                            p.node_id,
                            now.saturating_sub(last)
                        ),
                    ));
                }
                if p.alive
                    && !p.medium_down[i]
                    && now.saturating_sub(Self::medium_reference(p, i)) >= t.deadtime_ms
                {
                    p.medium_down[i] = true;
                    out.push(Action::Alert(
                        AlertKind::NetworkFault,
                        format!(
                            "peer {} is alive on another medium but silent on {m} for {} ms or more: network fault, not a dead peer; staying {state}",
                            p.node_id, t.deadtime_ms
                        ),
                    ));
                }
            }
        }

        let peer = self.peer.clone().filter(|p| p.alive);
        match self.state {
            NodeState::Init => match peer {
                Some(p) => match p.state {
                    NodeState::Master => self.become_backup(now, out),
                    NodeState::Fault => self.take_over(
                        now,
                        AlertKind::PeerFault,
                        format!("peer {} is in fault: taking over", p.node_id),
                        out,
                    ),
                    NodeState::Init | NodeState::Backup => {
                        if self.we_are_preferred(&p) {
                            self.take_over(
                                now,
                                AlertKind::Election,
                                format!(
                                    "initial election: priority {} over peer {}'s {}",
                                    self.priority, p.node_id, p.priority
                                ),
                                out,
                            )
                        } else {
                            self.become_backup(now, out)
                        }
                    }
                },
                None => {
                    if now.saturating_sub(self.start_ms) >= t.initdead_ms {
                        self.take_over(
                            now,
                            AlertKind::InitDead,
                            format!(
                                "no peer heard within initdead ({} ms): taking over",
                                t.initdead_ms
                            ),
                            out,
                        );
                    }
                }
            },
            NodeState::Backup => match peer {
                None => {
                    // Dead (already alerted), or never heard since we became backup.
                    if self.peer.is_some() || now.saturating_sub(self.state_since) >= t.deadtime_ms
                    {
                        let why = match &self.peer {
                            Some(p) => {
                                format!("peer {} dead on every medium: taking over", p.node_id)
                            }
                            None => format!(
                                "no peer heard for deadtime ({} ms) as backup: taking over",
                                t.deadtime_ms
                            ),
                        };
                        self.take_over(now, AlertKind::Takeover, why, out);
                    }
                }
                Some(p) => match p.state {
                    NodeState::Master => {}
                    NodeState::Fault => self.take_over(
                        now,
                        AlertKind::PeerFault,
                        format!("peer {} is in fault: taking over", p.node_id),
                        out,
                    ),
                    NodeState::Init | NodeState::Backup => {
                        if self.we_are_preferred(&p) {
                            self.take_over(
                                now,
                                AlertKind::Election,
                                format!(
                                    "no master: priority {} over peer {}'s {}",
                                    self.priority, p.node_id, p.priority
                                ),
                                out,
                            );
                        }
                    }
                },
            },
            NodeState::Master => {
                if let Some(p) = peer
                    && self.failback_candidate(&p)
                    && p.synced
                    && now.saturating_sub(p.up_since) >= self.hold_down_ms
                {
                    out.push(Action::Alert(
                        AlertKind::Failback,
                        format!(
                            "preferred peer {} has been up {} ms with its table resynchronised: releasing to it",
                            p.node_id,
                            now.saturating_sub(p.up_since)
                        ),
                    ));
                    self.become_backup(now, out);
                }
            }
            NodeState::Fault => {}
        }
    }

    fn set_state(&mut self, now: u64, state: NodeState) {
        self.state = state;
        self.state_since = now;
    }

    fn send(&mut self, now: u64, out: &mut Vec<Action>) {
        self.last_sent = Some(now);
        out.push(Action::SendHeartbeat {
            state: self.state,
            epoch: self.epoch,
        });
    }

    fn take_over(&mut self, now: u64, kind: AlertKind, why: String, out: &mut Vec<Action>) {
        self.epoch += 1;
        out.push(Action::PersistEpoch(self.epoch));
        out.push(Action::Alert(kind, why));
        self.set_state(now, NodeState::Master);
        self.split_alerted = false;
        out.push(Action::BecomeMaster { epoch: self.epoch });
        self.send(now, out);
    }

    fn become_backup(&mut self, now: u64, out: &mut Vec<Action>) {
        self.set_state(now, NodeState::Backup);
        out.push(Action::BecomeBackup);
        self.send(now, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Status;

    /// The peer as the tests drive it: builds its heartbeats.
    struct Remote {
        node_id: u32,
        priority: u16,
        generation: u64,
        seq: u64,
        state: NodeState,
        epoch: u64,
        flags: u16,
    }

    impl Remote {
        fn new(node_id: u32, priority: u16, state: NodeState, epoch: u64) -> Remote {
            Remote {
                node_id,
                priority,
                generation: 1000 + u64::from(node_id),
                seq: 0,
                state,
                epoch,
                flags: 0,
            }
        }

        fn beat(&mut self) -> Heartbeat {
            self.seq += 1;
            Heartbeat {
                node_id: self.node_id,
                priority: self.priority,
                medium: Medium::Udp,
                generation: self.generation,
                sequence: self.seq,
                epoch: self.epoch,
                state: self.state,
                status: Status {
                    sync_generation: 0,
                    flags: self.flags,
                },
                timestamp_ms: 0,
                echo: 0,
            }
        }
    }

    fn hear(fsm: &mut Fsm, now: u64, medium: Medium, heartbeat: Heartbeat) -> Vec<Action> {
        fsm.handle(now, Input::Heartbeat { medium, heartbeat })
    }

    /// The remote beats on `media` every keepalive from `from` to `to` (exclusive); the
    /// FSM is also ticked at each of its deadlines. Returns every action.
    fn run(
        fsm: &mut Fsm,
        remote: &mut Remote,
        media: &[Medium],
        from: u64,
        to: u64,
    ) -> Vec<(u64, Action)> {
        let mut all = Vec::new();
        let mut next_beat = from;
        let mut now = from;
        while now < to {
            let deadline = fsm.next_deadline().max(now);
            if !media.is_empty() && next_beat <= deadline && next_beat < to {
                now = next_beat;
                let hb = remote.beat();
                for &m in media {
                    all.extend(hear(fsm, now, m, hb).into_iter().map(|a| (now, a)));
                }
                next_beat += 200;
            } else if deadline < to {
                now = deadline;
                let acts = fsm.handle(now, Input::Tick);
                all.extend(acts.into_iter().map(|a| (now, a)));
                assert!(fsm.next_deadline() > now, "busy deadline at {now}");
            } else {
                now = to;
            }
        }
        all
    }

    fn alerts(actions: &[(u64, Action)], kind: AlertKind) -> Vec<u64> {
        actions
            .iter()
            .filter_map(|(t, a)| matches!(a, Action::Alert(k, _) if *k == kind).then_some(*t))
            .collect()
    }

    fn became_master(actions: &[(u64, Action)]) -> Vec<(u64, u64)> {
        actions
            .iter()
            .filter_map(|(t, a)| match a {
                Action::BecomeMaster { epoch } => Some((*t, *epoch)),
                _ => None,
            })
            .collect()
    }

    fn cfg(node_id: u32, priority: u16) -> FsmConfig {
        FsmConfig::new(node_id, priority)
    }

    const BOTH: [Medium; 2] = [Medium::Udp, Medium::Serial];

    #[test]
    fn reconfigure_applies_valid_timers_and_refuses_bad_ones() {
        let mut fsm = Fsm::new(&cfg(1, 100), 0, 0).unwrap();
        let mut c = cfg(1, 150);
        c.timers.keepalive_ms = 50;
        c.timers.deadtime_ms = 200;
        c.timers.warntime_ms = 100;
        c.timers.initdead_ms = 1000;
        fsm.reconfigure(&c).unwrap();
        assert_eq!(fsm.timers(), c.timers);
        let mut bad = c.clone();
        bad.timers.deadtime_ms = 60;
        assert!(fsm.reconfigure(&bad).is_err());
        assert_eq!(
            fsm.timers(),
            c.timers,
            "a refused configuration changes nothing"
        );
    }

    /// A backup that heard master `remote` until `t`.
    fn backup_hearing(remote: &mut Remote, t: u64) -> Fsm {
        let mut fsm = Fsm::new(&cfg(2, 100), 3, 0).unwrap();
        run(&mut fsm, remote, &BOTH, 0, t);
        assert_eq!(fsm.state(), NodeState::Backup);
        fsm
    }

    #[test]
    fn defaults_and_validation() {
        let t = Timers::default();
        assert_eq!(
            (t.keepalive_ms, t.deadtime_ms, t.warntime_ms, t.initdead_ms),
            (200, 1000, 500, 2000)
        );
        assert_eq!(cfg(1, 1).validate(), Ok(()));
        let mut c = cfg(1, 1);
        c.timers.keepalive_ms = 0;
        assert_eq!(c.validate(), Err(ConfigError::ZeroKeepalive));
        c.timers = Timers {
            keepalive_ms: 600,
            ..t
        };
        assert!(matches!(c.validate(), Err(ConfigError::Deadtime { .. })));
        c.timers = Timers {
            warntime_ms: 1000,
            ..t
        };
        assert!(matches!(c.validate(), Err(ConfigError::Warntime { .. })));
        c.timers = Timers {
            initdead_ms: 999,
            ..t
        };
        assert!(matches!(c.validate(), Err(ConfigError::Initdead { .. })));
        c.timers = t;
        c.media.clear();
        assert_eq!(c.validate(), Err(ConfigError::NoMedia));
        assert!(Fsm::new(&c, 0, 0).is_err());
    }

    #[test]
    fn initdead_at_start() {
        let mut fsm = Fsm::new(&cfg(1, 100), 4, 1000).unwrap();
        assert_eq!(fsm.state(), NodeState::Init);
        assert_eq!(
            fsm.handle(1000, Input::Tick),
            vec![Action::SendHeartbeat {
                state: NodeState::Init,
                epoch: 4
            }]
        );
        let acts = run(
            &mut fsm,
            &mut Remote::new(2, 1, NodeState::Init, 0),
            &[],
            1000,
            2999,
        );
        assert!(became_master(&acts).is_empty());
        let acts = fsm.handle(3000, Input::Tick);
        assert!(
            matches!(
                &acts[..],
                [
                    Action::PersistEpoch(5),
                    Action::Alert(AlertKind::InitDead, _),
                    Action::BecomeMaster { epoch: 5 },
                    Action::SendHeartbeat {
                        state: NodeState::Master,
                        epoch: 5
                    },
                ]
            ),
            "{acts:?}"
        );
        assert_eq!(fsm.epoch(), 5);
    }

    #[test]
    fn initial_election_by_priority() {
        // Both in init: the higher priority becomes master, whoever hears first.
        let mut a = Fsm::new(&cfg(1, 200), 0, 0).unwrap();
        let mut b = Fsm::new(&cfg(2, 100), 0, 0).unwrap();
        let acts = hear(
            &mut a,
            10,
            Medium::Udp,
            Remote::new(2, 100, NodeState::Init, 0).beat(),
        );
        assert!(
            acts.contains(&Action::BecomeMaster { epoch: 1 }),
            "{acts:?}"
        );
        let acts = hear(
            &mut b,
            10,
            Medium::Udp,
            Remote::new(1, 200, NodeState::Init, 0).beat(),
        );
        assert!(acts.contains(&Action::BecomeBackup), "{acts:?}");
        assert_eq!(
            (a.state(), b.state()),
            (NodeState::Master, NodeState::Backup)
        );
        // Equal priorities: the lower node id.
        let mut c = Fsm::new(&cfg(3, 100), 0, 0).unwrap();
        hear(
            &mut c,
            10,
            Medium::Serial,
            Remote::new(4, 100, NodeState::Backup, 0).beat(),
        );
        assert_eq!(c.state(), NodeState::Master);
        let mut d = Fsm::new(&cfg(4, 100), 0, 0).unwrap();
        hear(
            &mut d,
            10,
            Medium::Serial,
            Remote::new(3, 100, NodeState::Init, 0).beat(),
        );
        assert_eq!(d.state(), NodeState::Backup);
        // A preferred node that finds a master does not contest it.
        let mut e = Fsm::new(&cfg(1, 200), 0, 0).unwrap();
        let acts = hear(
            &mut e,
            10,
            Medium::Udp,
            Remote::new(2, 100, NodeState::Master, 7).beat(),
        );
        assert_eq!(
            acts,
            vec![
                Action::PersistEpoch(7),
                Action::BecomeBackup,
                Action::SendHeartbeat {
                    state: NodeState::Backup,
                    epoch: 7
                },
            ]
        );
    }

    #[test]
    fn takeover_after_deadtime_with_all_media_silent() {
        let mut remote = Remote::new(1, 200, NodeState::Master, 3);
        let mut fsm = backup_hearing(&mut remote, 5000);
        // The last heartbeat was at 4800; nothing after.
        let acts = run(&mut fsm, &mut remote, &[], 5000, 5799);
        assert!(became_master(&acts).is_empty(), "{acts:?}");
        let acts = run(&mut fsm, &mut remote, &[], 5799, 9000);
        assert_eq!(became_master(&acts), vec![(5800, 4)]);
        assert_eq!(alerts(&acts, AlertKind::PeerDead), vec![5800]);
        assert_eq!(alerts(&acts, AlertKind::Takeover), vec![5800]);
        let at: Vec<_> = acts
            .iter()
            .filter(|(t, _)| *t == 5800)
            .map(|(_, a)| a.clone())
            .collect();
        let persist = at
            .iter()
            .position(|a| *a == Action::PersistEpoch(4))
            .unwrap();
        let master = at
            .iter()
            .position(|a| *a == Action::BecomeMaster { epoch: 4 })
            .unwrap();
        assert!(persist < master, "{at:?}");
        assert_eq!(fsm.peer().map(|p| p.alive), Some(false));
    }

    #[test]
    fn no_takeover_while_serial_still_hears_the_peer() {
        let mut remote = Remote::new(1, 200, NodeState::Master, 3);
        let mut fsm = backup_hearing(&mut remote, 1000);
        // UDP goes silent (last at 800); serial goes on for a long time.
        let acts = run(&mut fsm, &mut remote, &[Medium::Serial], 1000, 20_000);
        assert!(became_master(&acts).is_empty(), "{acts:?}");
        assert_eq!(alerts(&acts, AlertKind::NetworkFault), vec![1800]);
        assert_eq!(alerts(&acts, AlertKind::LateHeartbeat), vec![1300]);
        assert!(alerts(&acts, AlertKind::PeerDead).is_empty());
        assert_eq!(fsm.state(), NodeState::Backup);
        // UDP is back: recovered, once.
        let acts = run(&mut fsm, &mut remote, &BOTH, 20_000, 21_000);
        assert_eq!(alerts(&acts, AlertKind::MediumRecovered), vec![20_000]);
        // Serial only goes silent: the same, the other way round.
        let acts = run(&mut fsm, &mut remote, &[Medium::Udp], 21_000, 30_000);
        assert!(became_master(&acts).is_empty());
        assert_eq!(alerts(&acts, AlertKind::NetworkFault), vec![21_800]);
        // Then both: takeover one deadtime after the last heartbeat.
        let acts = run(&mut fsm, &mut remote, &[], 30_000, 40_000);
        assert_eq!(became_master(&acts), vec![(30_800, 4)]);
    }

    #[test]
    fn a_medium_that_never_worked_is_a_network_fault() {
        let mut remote = Remote::new(1, 200, NodeState::Master, 3);
        let mut fsm = Fsm::new(&cfg(2, 100), 3, 0).unwrap();
        let acts = run(&mut fsm, &mut remote, &[Medium::Udp], 0, 5000);
        assert_eq!(alerts(&acts, AlertKind::NetworkFault), vec![1000]);
        assert!(became_master(&acts).is_empty());
    }

    #[test]
    fn warntime_warns_once_per_silence() {
        let mut remote = Remote::new(1, 200, NodeState::Master, 3);
        let mut fsm = backup_hearing(&mut remote, 1000);
        // Last heartbeat at 800 on both media.
        assert!(
            fsm.handle(1299, Input::Tick)
                .iter()
                .all(|a| !matches!(a, Action::Alert(..)))
        );
        let acts = fsm.handle(1300, Input::Tick);
        let late: Vec<_> = acts
            .iter()
            .filter(|a| matches!(a, Action::Alert(AlertKind::LateHeartbeat, _)))
            .collect();
        assert_eq!(late.len(), 2, "{acts:?}");
        assert!(
            fsm.handle(1400, Input::Tick)
                .iter()
                .all(|a| !matches!(a, Action::Alert(..)))
        );
        // Heard again: the next silence warns again.
        run(&mut fsm, &mut remote, &BOTH, 1450, 1500);
        let acts = run(&mut fsm, &mut remote, &[], 1500, 1960);
        assert_eq!(alerts(&acts, AlertKind::LateHeartbeat), vec![1950, 1950]);
        assert_eq!(fsm.state(), NodeState::Backup);
    }

    #[test]
    fn step_down_at_once_on_a_higher_epoch() {
        let mut fsm = Fsm::new(&cfg(1, 200), 2, 0).unwrap();
        fsm.handle(2000, Input::Tick);
        assert_eq!((fsm.state(), fsm.epoch()), (NodeState::Master, 3));
        // A master with a lower epoch: it steps down, not us; alerted once.
        let mut low = Remote::new(2, 100, NodeState::Master, 1);
        let acts = hear(&mut fsm, 2100, Medium::Udp, low.beat());
        assert!(
            matches!(&acts[..], [Action::Alert(AlertKind::SplitBrain, _)]),
            "{acts:?}"
        );
        assert!(hear(&mut fsm, 2150, Medium::Serial, low.beat()).is_empty());
        assert_eq!(fsm.state(), NodeState::Master);
        // A master with a higher epoch, even of lower priority: we step down at once.
        let mut high = Remote::new(2, 100, NodeState::Master, 5);
        high.seq = 10;
        let acts = hear(&mut fsm, 2200, Medium::Udp, high.beat());
        assert!(
            matches!(
                &acts[..],
                [
                    Action::Alert(AlertKind::SplitBrain, _),
                    Action::PersistEpoch(5),
                    Action::BecomeBackup,
                    Action::SendHeartbeat {
                        state: NodeState::Backup,
                        epoch: 5
                    },
                ]
            ),
            "{acts:?}"
        );
    }

    #[test]
    fn split_brain_is_healed_deterministically() {
        for (prio_a, prio_b, winner) in [(100, 100, 1), (100, 200, 2), (200, 100, 1)] {
            // Both started alone from the same stored epoch: both masters with epoch 1.
            let mut a = Fsm::new(&cfg(1, prio_a), 0, 0).unwrap();
            let mut b = Fsm::new(&cfg(2, prio_b), 0, 0).unwrap();
            a.handle(2000, Input::Tick);
            b.handle(2000, Input::Tick);
            assert_eq!(
                (a.state(), b.state()),
                (NodeState::Master, NodeState::Master)
            );
            let ha = Remote::new(1, prio_a, NodeState::Master, 1).beat();
            let hb = Remote::new(2, prio_b, NodeState::Master, 1).beat();
            hear(&mut a, 2100, Medium::Udp, hb);
            hear(&mut b, 2100, Medium::Udp, ha);
            let masters: Vec<u32> = [(1, &a), (2, &b)]
                .into_iter()
                .filter(|(_, f)| f.state() == NodeState::Master)
                .map(|(id, _)| id)
                .collect();
            assert_eq!(masters, vec![winner], "priorities {prio_a}/{prio_b}");
            assert_eq!((a.epoch(), b.epoch()), (1, 1));
        }
    }

    #[test]
    fn failback_false_the_returning_primary_stays_backup() {
        let mut secondary = Remote::new(2, 100, NodeState::Master, 6);
        secondary.flags = Status::TABLE_SYNCED;
        let mut primary = Fsm::new(&cfg(1, 200), 5, 0).unwrap();
        let acts = run(&mut primary, &mut secondary, &BOTH, 0, 60_000);
        assert!(became_master(&acts).is_empty());
        assert_eq!((primary.state(), primary.epoch()), (NodeState::Backup, 6));
        // And the master, facing the preferred peer as backup, keeps the VIP.
        let mut master = Fsm::new(&cfg(2, 100), 6, 0).unwrap();
        master.handle(2000, Input::Tick);
        let mut back = Remote::new(1, 200, NodeState::Backup, 7);
        back.flags = Status::TABLE_SYNCED;
        let acts = run(&mut master, &mut back, &BOTH, 2000, 60_000);
        assert!(
            !acts.iter().any(|(_, a)| *a == Action::BecomeBackup),
            "{acts:?}"
        );
        assert_eq!((master.state(), master.epoch()), (NodeState::Master, 7));
    }

    fn failback_master() -> Fsm {
        let mut c = cfg(2, 100);
        c.auto_failback = true;
        c.hold_down_ms = 5000;
        let mut m = Fsm::new(&c, 6, 0).unwrap();
        m.handle(2000, Input::Tick);
        assert_eq!(m.state(), NodeState::Master);
        m
    }

    #[test]
    fn failback_true_waits_for_resync_and_hold_down() {
        let mut m = failback_master();
        let mut primary = Remote::new(1, 200, NodeState::Backup, 7);
        // Back at 3000, never synced: keeps the VIP.
        let acts = run(&mut m, &mut primary, &BOTH, 3000, 30_000);
        assert!(!acts.iter().any(|(_, a)| *a == Action::BecomeBackup));
        // Synced, and the hold-down long past: release at once.
        assert_eq!(m.handle(30_000, Input::PeerTableSynced)[..2], [
            Action::Alert(AlertKind::Failback, "preferred peer 1 has been up 27000 ms with its table resynchronised: releasing to it".into()),
            Action::BecomeBackup,
        ]);

        // Synced early: release exactly when the hold-down has passed.
        let mut m = failback_master();
        let mut primary = Remote::new(1, 200, NodeState::Backup, 7);
        run(&mut m, &mut primary, &BOTH, 3000, 3500);
        m.handle(3500, Input::PeerTableSynced);
        let acts = run(&mut m, &mut primary, &BOTH, 3500, 10_000);
        let released: Vec<u64> = acts
            .iter()
            .filter(|(_, a)| *a == Action::BecomeBackup)
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(released, vec![8000]);
        assert_eq!(alerts(&acts, AlertKind::Failback), vec![8000]);

        // Synced through the heartbeat flag; a restart of the peer resets both conditions.
        let mut m = failback_master();
        let mut primary = Remote::new(1, 200, NodeState::Backup, 7);
        primary.flags = Status::TABLE_SYNCED;
        run(&mut m, &mut primary, &BOTH, 3000, 7000);
        primary.generation += 1;
        primary.seq = 0;
        primary.flags = 0;
        let acts = run(&mut m, &mut primary, &BOTH, 7000, 15_000);
        assert!(
            !acts.iter().any(|(_, a)| *a == Action::BecomeBackup),
            "{acts:?}"
        );
        primary.flags = Status::TABLE_SYNCED;
        let acts = run(&mut m, &mut primary, &BOTH, 15_000, 20_000);
        let released: Vec<u64> = acts
            .iter()
            .filter(|(_, a)| *a == Action::BecomeBackup)
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(
            released,
            vec![15_000],
            "hold-down counted from the restart at 7000"
        );
    }

    #[test]
    fn failback_true_then_the_preferred_node_takes_over() {
        let mut c = cfg(1, 200);
        c.auto_failback = true;
        let mut primary = Fsm::new(&c, 7, 0).unwrap();
        // It came back and found the secondary master: backup.
        hear(
            &mut primary,
            10,
            Medium::Udp,
            Remote::new(2, 100, NodeState::Master, 7).beat(),
        );
        assert_eq!(primary.state(), NodeState::Backup);
        // The secondary released: no master, the preferred node takes it with a new epoch.
        let mut released = Remote::new(2, 100, NodeState::Backup, 7);
        released.seq = 5;
        let acts = hear(&mut primary, 5000, Medium::Udp, released.beat());
        assert!(
            acts.contains(&Action::BecomeMaster { epoch: 8 }),
            "{acts:?}"
        );
        // The secondary, backup, facing the preferred backup, does not take over.
        let mut secondary = Fsm::new(&cfg(2, 100), 7, 0).unwrap();
        hear(
            &mut secondary,
            10,
            Medium::Udp,
            Remote::new(1, 200, NodeState::Backup, 7).beat(),
        );
        assert_eq!(secondary.state(), NodeState::Backup);
    }

    #[test]
    fn faults_both_sides() {
        let mut m = Fsm::new(&cfg(1, 200), 0, 0).unwrap();
        m.handle(2000, Input::Tick);
        let acts = m.handle(
            2100,
            Input::Fault {
                reason: "director gone".into(),
            },
        );
        assert_eq!(
            acts,
            vec![
                Action::Fault {
                    reason: "director gone".into()
                },
                Action::SendHeartbeat {
                    state: NodeState::Fault,
                    epoch: 1
                },
            ]
        );
        assert!(
            m.handle(
                2150,
                Input::Fault {
                    reason: "again".into()
                }
            )
            .is_empty()
        );
        // The backup sees the fault: takes over at once.
        let mut remote = Remote::new(1, 200, NodeState::Master, 1);
        let mut b = backup_hearing(&mut remote, 1000);
        remote.state = NodeState::Fault;
        let acts = hear(&mut b, 1100, Medium::Udp, remote.beat());
        assert!(
            acts.contains(&Action::BecomeMaster { epoch: 4 }),
            "{acts:?}"
        );
        assert!(
            acts.iter()
                .any(|a| matches!(a, Action::Alert(AlertKind::PeerFault, _)))
        );
        // Cleared: backup (the peer is master now).
        let acts = m.handle(3000, Input::FaultCleared);
        assert_eq!(acts[0], Action::BecomeBackup);
        assert_eq!(m.state(), NodeState::Backup);
    }

    #[test]
    fn an_overtaken_heartbeat_refreshes_liveness_only() {
        let mut remote = Remote::new(1, 200, NodeState::Master, 3);
        let mut fsm = backup_hearing(&mut remote, 1000);
        let old = remote.beat();
        remote.state = NodeState::Fault;
        let new = remote.beat();
        hear(&mut fsm, 1000, Medium::Udp, new);
        // The serial copy of the older heartbeat arrives later: the view stays "fault".
        let before = fsm.peer().unwrap();
        hear(&mut fsm, 1050, Medium::Serial, old);
        let after = fsm.peer().unwrap();
        assert_eq!(after.state, before.state);
        assert_eq!(after.last_heard[Medium::Serial.index()], Some(1050));
    }

    #[test]
    fn a_backup_adopts_and_persists_a_higher_epoch() {
        let mut remote = Remote::new(1, 200, NodeState::Master, 3);
        let mut fsm = backup_hearing(&mut remote, 1000);
        remote.epoch = 9;
        let acts = hear(&mut fsm, 1000, Medium::Udp, remote.beat());
        assert_eq!(acts[0], Action::PersistEpoch(9));
        assert_eq!(fsm.epoch(), 9);
        assert!(
            !hear(&mut fsm, 1100, Medium::Udp, remote.beat()).contains(&Action::PersistEpoch(9))
        );
        let acts = run(&mut fsm, &mut remote, &[], 1100, 5000);
        assert_eq!(became_master(&acts), vec![(2100, 10)]);
    }
}
