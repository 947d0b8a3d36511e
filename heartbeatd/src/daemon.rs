//! The daemon: one `mio` loop wiring the heartbeat media, the verifier, the state machine and
//! the epoch store (as the crate documentation describes), and carrying out the takeover and
//! the release:
//!
//! - takeover ([`Action::BecomeMaster`]): director `SetRole Active`, each virtual address
//!   added (netlink), gratuitous ARP (the first frames at once, the rest of the burst from the
//!   loop, never blocking it), notify `master` (lvs-alert) — each step timed and logged
//!   (`event=takeover step=... ms=...`);
//! - release ([`Action::BecomeBackup`], [`Action::Fault`], SIGTERM): the reverse: addresses
//!   removed, director `SetRole Standby`, notify `backup`/`fault`.
//!
//! The epoch is written durably ([`Action::PersistEpoch`]) before anything after it runs; a
//! failed write is a local fault.

use std::collections::VecDeque;
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use log::Level;
use lvs_alert::{Alert, AlertKind as NotifyKind, Alerter};
use lvs_common::{BoxError, Signal, Signals, Startup, event, signals};
use lvs_netinfo::{GarpKind, Netlink, send_gratuitous_arp};
use lvs_proto::{Client, ClientOptions, HaRole, Request, Response, Role};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use crate::Medium;
use crate::config::{Config, Vip};
use crate::epoch::EpochStore;
use crate::fsm::{Action, AlertKind, Fsm, Input};
use crate::serial::SerialPort;
use crate::udp::{MAX_DATAGRAM, UdpHeartbeat};
use crate::wire::{AuthKey, NodeState, Sealer, Status, Verifier, wall_clock_ms};

const SIGNALS: Token = Token(0);
const UDP: Token = Token(1);
const SERIAL: Token = Token(2);

/// How long one director request may take (the takeover waits for it).
const DIRECTOR_TIMEOUT: Duration = Duration::from_millis(500);

/// A pending gratuitous ARP burst.
#[derive(Debug, Clone, Copy)]
struct GarpPlan {
    due_ms: u64,
    remaining: u32,
}

struct Daemon {
    config: Config,
    start: Instant,
    fsm: Fsm,
    sealer: Sealer,
    verifier: Verifier,
    epochs: EpochStore,
    udp: Option<UdpHeartbeat>,
    serial: Option<SerialPort>,
    serial_writable: bool,
    netlink: Option<Netlink>,
    director_path: PathBuf,
    director: Option<Client>,
    director_warned: bool,
    alerter: Alerter,
    holds_vips: bool,
    garp: Option<GarpPlan>,
    node: String,
}

/// The daemon's body, for [`lvs_common::run`].
pub fn run(config: Config, startup: Startup<Config>) -> Result<(), BoxError> {
    let mut poll = Poll::new()?;
    let mut signals = Signals::new(poll.registry(), SIGNALS)?;
    let key = AuthKey::from_file(&config.auth_key_file)?;
    let epochs = EpochStore::new(&config.epoch_file);
    let stored = epochs.load()?;
    let start = Instant::now();
    let fsm = Fsm::new(&config.fsm, stored, 0)?;
    let sealer = Sealer::new(key.clone(), config.fsm.node_id, config.fsm.priority)?;
    let verifier = Verifier::new(key, config.fsm.node_id, &config.peers);
    let mut udp = match &config.udp {
        Some(u) => Some(UdpHeartbeat::bind(u).map_err(|e| format!("udp heartbeat socket: {e}"))?),
        None => None,
    };
    if let Some(u) = udp.as_mut() {
        poll.registry()
            .register(u.socket_mut(), UDP, Interest::READABLE)?;
    }
    let serial = match &config.serial {
        Some(s) => Some(SerialPort::open(&s.device, s.baud)?),
        None => None,
    };
    if let Some(s) = &serial {
        poll.registry()
            .register(&mut SourceFd(&s.as_raw_fd()), SERIAL, Interest::READABLE)?;
    }
    let netlink = if config.vips.is_empty() {
        None
    } else {
        Some(Netlink::open()?)
    };
    let alerter = Alerter::start(&config.alert)?;
    let director_path = config
        .director_socket
        .clone()
        .unwrap_or_else(|| startup.rundir().join("director.sock"));
    let node = format!("node-{}", config.fsm.node_id);
    let mut d = Daemon {
        config,
        start,
        fsm,
        sealer,
        verifier,
        epochs,
        udp,
        serial,
        serial_writable: false,
        netlink,
        director_path,
        director: None,
        director_warned: false,
        alerter,
        holds_vips: false,
        garp: None,
        node,
    };
    // A previous run that died as master may have left the addresses behind: we start as
    // init, and init holds nothing.
    d.holds_vips = true;
    d.remove_vips("start");
    event!(
        Level::Info,
        "heartbeat_start",
        node_id = d.config.fsm.node_id,
        priority = d.config.fsm.priority,
        epoch = stored,
        media = d
            .config
            .fsm
            .media
            .iter()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(","),
        vips = d.config.vips.len(),
        auto_failback = d.config.fsm.auto_failback,
    );
    let ctx = startup.ready();

    let mut events = Events::with_capacity(64);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut frames = Vec::new();
    loop {
        let now = d.now();
        let mut deadline = d.fsm.next_deadline();
        if let Some(g) = d.garp {
            deadline = deadline.min(g.due_ms);
        }
        let timeout = Duration::from_millis(deadline.saturating_sub(now));
        signals::poll(&mut poll, &mut events, Some(timeout))?;
        let mut inputs = Vec::new();
        for ev in events.iter() {
            match ev.token() {
                SIGNALS => {
                    for signal in signals.pending() {
                        match signal {
                            Signal::Stop => {
                                d.release("stop", NotifyKind::Backup);
                                d.alerter.shutdown(Duration::from_secs(2));
                                return Ok(());
                            }
                            Signal::Reload => {
                                if ctx.reload().is_some() {
                                    event!(
                                        Level::Warn,
                                        "config_reload_deferred",
                                        reason =
                                            "lvs-heartbeatd applies a new configuration at restart"
                                    );
                                }
                            }
                            Signal::Dump => d.dump(),
                        }
                    }
                }
                UDP => {
                    if let Some(u) = d.udp.as_mut() {
                        loop {
                            match u.recv(&mut buf) {
                                Ok(Some((n, _from))) => {
                                    if let Ok(acc) = d.verifier.verify(Medium::Udp, &buf[..n]) {
                                        inputs.push(Input::Heartbeat {
                                            medium: Medium::Udp,
                                            heartbeat: acc.heartbeat,
                                        });
                                    }
                                }
                                Ok(None) => break,
                                Err(e) => {
                                    event!(Level::Debug, "udp_recv_error", error = e);
                                    break;
                                }
                            }
                        }
                    }
                }
                SERIAL => {
                    if let Some(s) = d.serial.as_mut() {
                        if ev.is_writable() {
                            let _ = s.flush();
                        }
                        frames.clear();
                        if let Err(e) = s.read_frames(&mut frames)
                            && e.kind() != io::ErrorKind::WouldBlock
                        {
                            event!(Level::Debug, "serial_read_error", error = e);
                        }
                        for f in frames.drain(..) {
                            if let Ok(acc) = d.verifier.verify(Medium::Serial, &f) {
                                inputs.push(Input::Heartbeat {
                                    medium: Medium::Serial,
                                    heartbeat: acc.heartbeat,
                                });
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        inputs.push(Input::Tick);
        for input in inputs {
            d.feed(input);
        }
        d.run_garp();
        // WRITABLE interest on the serial line only while a frame waits.
        let want = d.serial.as_ref().is_some_and(SerialPort::wants_write);
        if want != d.serial_writable
            && let Some(s) = &d.serial
        {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            poll.registry()
                .reregister(&mut SourceFd(&s.as_raw_fd()), SERIAL, interest)?;
            d.serial_writable = want;
        }
    }
}

impl Daemon {
    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// One input into the state machine, and its actions (and theirs) carried out in order.
    fn feed(&mut self, input: Input) {
        let now = self.now();
        let mut queue: VecDeque<Action> = self.fsm.handle(now, input).into();
        while let Some(action) = queue.pop_front() {
            let follow_up = self.act(action);
            if let Some(input) = follow_up {
                // A local fault: what was still queued is superseded.
                queue.clear();
                let now = self.now();
                queue.extend(self.fsm.handle(now, input));
            }
        }
    }

    /// Carries out one action; returns an input for the state machine when it failed.
    fn act(&mut self, action: Action) -> Option<Input> {
        match action {
            Action::PersistEpoch(epoch) => {
                let t = Instant::now();
                if let Err(e) = self.epochs.store(epoch) {
                    event!(Level::Error, "epoch_store_failed", epoch = epoch, error = e);
                    return Some(Input::Fault {
                        reason: format!("cannot persist epoch {epoch}: {e}"),
                    });
                }
                event!(Level::Info, "epoch_stored", epoch = epoch, ms = ms(t));
                None
            }
            Action::SendHeartbeat { state, epoch } => {
                self.send_heartbeat(state, epoch);
                None
            }
            Action::Alert(kind, text) => {
                if kind == AlertKind::PeerDead {
                    for &p in &self.config.peers {
                        for m in Medium::ALL {
                            self.verifier.forget_window(p, m);
                        }
                    }
                }
                let name = kind.name().replace('-', "_");
                self.alerter.send(
                    Alert::new(NotifyKind::Custom(name))
                        .node(self.node.clone())
                        .reason(text),
                );
                None
            }
            Action::BecomeMaster { epoch } => self.take_over(epoch),
            Action::BecomeBackup => {
                self.release("backup", NotifyKind::Backup);
                None
            }
            Action::Fault { reason } => {
                event!(Level::Error, "heartbeat_fault", reason = reason);
                self.release("fault", NotifyKind::Fault);
                None
            }
        }
    }

    fn send_heartbeat(&mut self, state: NodeState, epoch: u64) {
        // No connection sync yet: there is no table to wait for, so it is always "synced".
        let status = Status {
            sync_generation: 0,
            flags: Status::TABLE_SYNCED,
        };
        let hb = self.sealer.next(state, epoch, status, wall_clock_ms());
        if let Some(u) = self.udp.as_mut() {
            u.send_all(&self.sealer.seal_for(&hb, Medium::Udp));
        }
        if let Some(s) = self.serial.as_mut() {
            let _ = s.send_frame(&self.sealer.seal_for(&hb, Medium::Serial));
        }
    }

    /// Director active, addresses, gratuitous ARP, notify.
    fn take_over(&mut self, epoch: u64) -> Option<Input> {
        let t0 = Instant::now();
        event!(Level::Info, "takeover_start", epoch = epoch);
        let t = Instant::now();
        let res = self.set_role(HaRole::Active);
        event!(
            Level::Info,
            "takeover",
            step = "director",
            ms = ms(t),
            result = res
        );
        self.holds_vips = true;
        for vip in self.config.vips.clone() {
            let t = Instant::now();
            match self.add_vip(&vip) {
                Ok(()) => event!(
                    Level::Info,
                    "takeover",
                    step = "vip",
                    addr = vip,
                    interface = vip.interface,
                    ms = ms(t)
                ),
                Err(e) => {
                    event!(
                        Level::Error,
                        "takeover_failed",
                        step = "vip",
                        addr = vip,
                        interface = vip.interface,
                        error = e
                    );
                    return Some(Input::Fault {
                        reason: format!("cannot add {vip} to {}: {e}", vip.interface),
                    });
                }
            }
        }
        if self.config.garp.count > 0 && !self.config.vips.is_empty() {
            let t = Instant::now();
            self.garp = Some(GarpPlan {
                due_ms: 0,
                remaining: self.config.garp.count,
            });
            self.run_garp();
            event!(
                Level::Info,
                "takeover",
                step = "garp",
                count = self.config.garp.count,
                interval_ms = self.config.garp.interval_ms,
                ms = ms(t)
            );
        }
        let t = Instant::now();
        self.alerter.send(
            Alert::new(NotifyKind::Master)
                .node(self.node.clone())
                .service(self.vip_list())
                .reason(format!("epoch {epoch}")),
        );
        event!(Level::Info, "takeover", step = "notify", ms = ms(t));
        event!(
            Level::Info,
            "takeover_done",
            epoch = epoch,
            vips = self.config.vips.len(),
            ms = ms(t0)
        );
        None
    }

    /// The reverse of the takeover: addresses removed, director standby, notify.
    fn release(&mut self, why: &str, notify: NotifyKind) {
        let t0 = Instant::now();
        self.garp = None;
        let had = self.holds_vips;
        self.remove_vips(why);
        let t = Instant::now();
        let res = self.set_role(HaRole::Standby);
        event!(
            Level::Info,
            "release",
            step = "director",
            why = why,
            ms = ms(t),
            result = res
        );
        if why != "stop" {
            self.alerter.send(
                Alert::new(notify)
                    .node(self.node.clone())
                    .service(self.vip_list())
                    .reason(why.to_owned()),
            );
        }
        event!(
            Level::Info,
            "release_done",
            why = why,
            held = had,
            ms = ms(t0)
        );
    }

    fn remove_vips(&mut self, why: &str) {
        if !self.holds_vips {
            return;
        }
        self.holds_vips = false;
        for vip in self.config.vips.clone().iter().rev() {
            let t = Instant::now();
            match self.del_vip(vip) {
                Ok(removed) => {
                    if removed || why != "start" {
                        event!(
                            Level::Info,
                            "release",
                            step = "vip",
                            why = why,
                            addr = vip,
                            interface = vip.interface,
                            removed = removed,
                            ms = ms(t)
                        );
                    }
                }
                Err(e) => event!(
                    Level::Error,
                    "release_failed",
                    step = "vip",
                    addr = vip,
                    interface = vip.interface,
                    error = e
                ),
            }
        }
    }

    fn vip_list(&self) -> String {
        self.config
            .vips
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    fn netlink(&mut self) -> Result<&mut Netlink, String> {
        if self.netlink.is_none() {
            self.netlink = Some(Netlink::open().map_err(|e| e.to_string())?);
        }
        self.netlink.as_mut().ok_or_else(|| "no netlink".to_owned())
    }

    fn add_vip(&mut self, vip: &Vip) -> Result<(), String> {
        let nl = self.netlink()?;
        let link = nl.link_by_name(&vip.interface).map_err(|e| e.to_string())?;
        let r = nl.add_ipv4_address(link.ifindex, vip.addr, vip.prefix);
        r.map(|_| ()).map_err(|e| {
            self.netlink = None;
            e.to_string()
        })
    }

    fn del_vip(&mut self, vip: &Vip) -> Result<bool, String> {
        let nl = self.netlink()?;
        let link = nl.link_by_name(&vip.interface).map_err(|e| e.to_string())?;
        match nl.del_ipv4_address(link.ifindex, vip.addr, vip.prefix) {
            Ok(change) => Ok(change == lvs_netinfo::AddressChange::Removed),
            Err(e) => {
                self.netlink = None;
                Err(e.to_string())
            }
        }
    }

    /// Sends the due round of the gratuitous ARP burst, and plans the next.
    fn run_garp(&mut self) {
        let Some(plan) = self.garp else { return };
        let now = self.now();
        if now < plan.due_ms {
            return;
        }
        for vip in self.config.vips.clone() {
            let res = self.netlink().and_then(|nl| {
                let link = nl.link_by_name(&vip.interface).map_err(|e| e.to_string())?;
                let mac = link
                    .mac
                    .ok_or_else(|| format!("{} has no MAC address", vip.interface))?;
                send_gratuitous_arp(
                    link.ifindex,
                    mac,
                    vip.addr,
                    &[GarpKind::Request, GarpKind::Reply],
                )
                .map_err(|e| e.to_string())
            });
            if let Err(e) = res {
                event!(
                    Level::Warn,
                    "garp_failed",
                    addr = vip,
                    interface = vip.interface,
                    error = e
                );
            }
        }
        let remaining = plan.remaining.saturating_sub(1);
        self.garp = if remaining > 0 {
            Some(GarpPlan {
                due_ms: now + self.config.garp.interval_ms,
                remaining,
            })
        } else if self.config.garp.refresh_ms > 0 {
            Some(GarpPlan {
                due_ms: now + self.config.garp.refresh_ms,
                remaining: self.config.garp.count.max(1),
            })
        } else {
            None
        };
    }

    /// Tells the director its role; `ok`, `no-director` or the error. A missing director is
    /// logged once and never stops the takeover (the addresses still move).
    fn set_role(&mut self, role: HaRole) -> String {
        for attempt in 0..2 {
            if self.director.is_none() {
                if !self.director_path.exists() {
                    if !self.director_warned {
                        self.director_warned = true;
                        event!(
                            Level::Warn,
                            "director_unreachable",
                            socket = self.director_path.display(),
                            error = "no socket"
                        );
                    }
                    return "no-director".into();
                }
                let options = ClientOptions {
                    timeout: DIRECTOR_TIMEOUT,
                    ..ClientOptions::default()
                };
                match Client::connect_with(&self.director_path, Role::Heartbeatd, options) {
                    Ok(c) => {
                        self.director_warned = false;
                        event!(
                            Level::Info,
                            "director_connected",
                            socket = self.director_path.display()
                        );
                        self.director = Some(c);
                    }
                    Err(e) => {
                        event!(
                            Level::Warn,
                            "director_unreachable",
                            socket = self.director_path.display(),
                            error = e
                        );
                        return "unreachable".into();
                    }
                }
            }
            let Some(client) = self.director.as_mut() else {
                continue;
            };
            match client.request(Request::SetRole { role }) {
                Ok(Response::Ok) => return "ok".into(),
                Ok(other) => {
                    event!(Level::Warn, "director_answer", request = "SetRole", answer = ?other);
                    return "refused".into();
                }
                Err(e) => {
                    // A stale connection (the director restarted): reconnect once.
                    self.director = None;
                    if attempt == 1 {
                        event!(Level::Warn, "director_lost", error = e);
                        return "failed".into();
                    }
                }
            }
        }
        "failed".into()
    }

    fn dump(&self) {
        let peer = self.fsm.peer();
        let rejects = self.verifier.rejects();
        event!(
            Level::Info,
            "state",
            state = self.fsm.state().name(),
            epoch = self.fsm.epoch(),
            holds_vips = self.holds_vips,
            peer_state = peer.map_or("unknown", |p| p.state.name()),
            peer_alive = peer.is_some_and(|p| p.alive),
            accepted_udp = self.verifier.accepted(Medium::Udp),
            accepted_serial = self.verifier.accepted(Medium::Serial),
            rejected = rejects.total(),
            rejected_mac = rejects.bad_mac,
            rejected_replay = rejects.replay,
        );
    }
}

fn ms(t: Instant) -> String {
    format!("{:.1}", t.elapsed().as_secs_f64() * 1000.0)
}
