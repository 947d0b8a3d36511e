//! The daemon: one `mio` loop wiring the heartbeat media, the verifier, the state machine and
//! the epoch store (as the crate documentation describes), and carrying out the takeover and
//! the release:
//!
//! - takeover ([`Action::BecomeMaster`]): director `SetRole Active` (handed to the
//!   [`DirectorThread`], never waited for), each virtual address added (netlink, on the
//!   TUN device of [`crate::vipdev`], so that the addresses die with the process), gratuitous
//!   ARP on the physical interface (the first frames at once, the rest of the burst from the
//!   loop, never blocking it) — for an IPv6 address, an unsolicited neighbour advertisement
//!   instead, and from then on the answers to neighbour solicitations ([`crate::ndp`]) —,
//!   notify `master` (lvs-alert) — each step timed and logged (`event=takeover step=...
//!   ms=...`);
//! - release ([`Action::BecomeBackup`], [`Action::Fault`], SIGTERM): the reverse: addresses
//!   removed, director `SetRole Standby`, notify `backup`/`fault`.
//!
//! A watched interface without carrier is a local fault ([`crate::linkwatch`]); SIGTERM sends
//! a farewell heartbeat in state `fault` so that the peer takes over at once; SIGHUP applies a
//! validated configuration; `<rundir>/heartbeatd.sock` answers [`Request::HaStatus`].
//!
//! The epoch is written durably ([`Action::PersistEpoch`]) before anything after it runs; a
//! failed write is a local fault.

use std::collections::VecDeque;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use log::Level;
use lvs_alert::{Alert, AlertKind as NotifyKind, Alerter};
use lvs_common::{BoxError, Signal, Signals, Startup, event, signals};
use lvs_netinfo::{GarpKind, Netlink, send_gratuitous_arp};
use lvs_proto::message::{HaMedium, HaPeer, HaStatus};
use lvs_proto::server::{Handler, Server, ServerConfig};
use lvs_proto::{ErrorCode, HaRole, PeerInfo, Request, Response};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token};

use crate::Medium;
use crate::config::{Config, Vip};
use crate::director::DirectorThread;
use crate::epoch::EpochStore;
use crate::fsm::{Action, Fsm, Input};
use crate::linkwatch::LinkWatch;
use crate::ndp::Responders;
use crate::serial::SerialPort;
use crate::settings::Settings;
use crate::udp::{MAX_DATAGRAM, UdpHeartbeat};
use crate::vipdev::VipDevice;
use crate::wire::{AuthKey, NodeState, Sealer, Status, Verifier, wall_clock_ms};
use lvs_common::authdgram::{Boot, PeerFloors};

const SIGNALS: Token = Token(0);
const UDP: Token = Token(1);
const SERIAL: Token = Token(2);
const LINKS: Token = Token(3);
/// The neighbour discovery sockets' tokens start here (one per interface).
const NDP_BASE: usize = 512;
/// The control socket's tokens start here.
const SERVER_BASE: usize = 1024;
/// UDP datagrams read per turn of the loop: a flood (forged, replayed or just noise) must
/// not keep the loop from its timers, its own heartbeats and the serial line. What is left
/// is read on the next turn, which then does not wait.
pub const UDP_BURST: usize = 64;

/// How long SIGTERM waits for the farewell heartbeat to leave on the serial line.
const FAREWELL_FLUSH: Duration = Duration::from_millis(300);
/// How long SIGTERM waits for the director to take the standby role.
const DIRECTOR_STOP: Duration = Duration::from_secs(1);

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
    vipdev: VipDevice,
    director: DirectorThread,
    alerter: Alerter,
    links: Option<LinkWatch>,
    link_fault: Option<String>,
    fault_reason: String,
    stopping: bool,
    holds_vips: bool,
    garp: Option<GarpPlan>,
    ndp: Responders,
    registry: Registry,
    node: String,
}

/// The daemon's body, for [`lvs_common::run()`].
pub fn run(config: Config, startup: Startup<Settings>) -> Result<(), BoxError> {
    let mut poll = Poll::new()?;
    let mut signals = Signals::new(poll.registry(), SIGNALS)?;
    let key = AuthKey::from_file(&config.auth_key_file, "heartbeat")?;
    let epochs = EpochStore::new(&config.epoch_file);
    let stored = epochs.load()?;
    // Validated now; the machine itself starts once everything is set up (below).
    Fsm::new(&config.fsm, stored, 0)?;
    // Advanced and fsynced before the first heartbeat is sealed: peers refuse anything of
    // an earlier generation, so nothing recorded during an earlier run can be replayed.
    let boot = Boot::advance(&config.generation_file())?;
    let floors = PeerFloors::load(&config.peers_file())?;
    let sealer = Sealer::new(
        key.clone(),
        config.fsm.node_id,
        config.fsm.priority,
        boot.generation,
    );
    // Our generation is the challenge: after this restart a peer's known generation is
    // accepted only from heartbeats echoing it (recorded ones cannot).
    let verifier = Verifier::with_floors(
        key,
        config.fsm.node_id,
        &config.peers,
        floors,
        boot.generation,
    );
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
    let vipdev = VipDevice::create(&config.vip_device)?;
    let mut netlink = Netlink::open()?;
    let links = open_links(&config, &mut netlink, poll.registry())?;
    let alerter = Alerter::start(&config.alert)?;
    let director = DirectorThread::start(director_path(&config, &startup))?;
    let mut sc = ServerConfig::new("heartbeatd", startup.rundir());
    sc.token_base = SERVER_BASE;
    let mut server = Server::bind(sc)?;
    server.register(poll.registry())?;
    let node = format!("node-{}", config.fsm.node_id);
    // The clock (and initdead) starts after the set-up, which can take a while on a loaded
    // machine: the peer gets the whole initdead to be heard.
    let start = Instant::now();
    let fsm = Fsm::new(&config.fsm, stored, 0)?;
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
        netlink: Some(netlink),
        vipdev,
        director,
        alerter,
        links,
        link_fault: None,
        fault_reason: String::new(),
        stopping: false,
        holds_vips: false,
        garp: None,
        ndp: Responders::new(NDP_BASE),
        registry: poll.registry().try_clone()?,
        node,
    };
    // An older lvs-heartbeatd put the addresses on the physical interface, where they outlive
    // the process: remove such leftovers (ours now live on the VIP device).
    d.remove_legacy_vips();
    event!(
        Level::Info,
        "heartbeat_start",
        node_id = d.config.fsm.node_id,
        priority = d.config.fsm.priority,
        epoch = stored,
        generation = d.sealer.generation(),
        media = d
            .config
            .fsm
            .media
            .iter()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(","),
        vips = d.config.vips.len(),
        vip_device = d.vipdev.name(),
        auto_failback = d.config.fsm.auto_failback,
    );
    d.check_links();
    let ctx = startup.ready();

    let mut events = Events::with_capacity(64);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut frames = Vec::new();
    // The socket is edge-triggered: set by its readable event, cleared only once a read
    // found it empty.
    let mut udp_pending = false;
    let mut ndp_pending = false;
    loop {
        let now = d.now();
        let mut deadline = d.fsm.next_deadline();
        if let Some(g) = d.garp {
            deadline = deadline.min(g.due_ms);
        }
        let timeout = if udp_pending || ndp_pending {
            Duration::ZERO
        } else {
            Duration::from_millis(deadline.saturating_sub(now))
        };
        signals::poll(&mut poll, &mut events, Some(timeout))?;
        let mut inputs = Vec::new();
        for ev in events.iter() {
            match ev.token() {
                SIGNALS => {
                    for signal in signals.pending() {
                        match signal {
                            Signal::Stop => {
                                d.stop();
                                return Ok(());
                            }
                            Signal::Reload => match ctx.reload() {
                                Some(Settings::Failover(new)) => {
                                    let path = director_path(&new, &ctx);
                                    d.apply(*new, path, poll.registry());
                                }
                                Some(Settings::Anycast(_)) => event!(
                                    Level::Error,
                                    "config_apply_failed",
                                    part = "mode",
                                    error =
                                        "the mode changes from failover to anycast only at restart"
                                ),
                                None => {}
                            },
                            Signal::Dump => d.dump(),
                        }
                    }
                }
                UDP => udp_pending = true,
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
                LINKS => {
                    let changed = match (d.links.as_mut(), d.netlink.as_mut()) {
                        (Some(w), Some(nl)) => w.readable(nl),
                        _ => false,
                    };
                    if changed {
                        d.check_links();
                    }
                }
                t if d.ndp.owns(t) => {
                    d.ndp.readable(t);
                    ndp_pending = true;
                }
                t if server.owns(t) => server.ready(ev, &mut Ctl(&d)),
                _ => {}
            }
        }
        if ndp_pending {
            let (more, errors) = d.ndp.serve();
            ndp_pending = more;
            for e in errors {
                event!(Level::Warn, "ndp_failed", error = e);
            }
        }
        if udp_pending {
            udp_pending = d.read_udp(&mut buf, &mut inputs);
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

fn director_path<C>(config: &Config, ctx: &impl RunDir<C>) -> std::path::PathBuf {
    config
        .director_socket
        .clone()
        .unwrap_or_else(|| ctx.run_dir().join("director.sock"))
}

/// The run directory of a [`Startup`] or a running [`lvs_common::Context`].
trait RunDir<C> {
    fn run_dir(&self) -> &std::path::Path;
}

impl<C> RunDir<C> for Startup<C> {
    fn run_dir(&self) -> &std::path::Path {
        self.rundir()
    }
}

impl<C> RunDir<C> for lvs_common::Context<C> {
    fn run_dir(&self) -> &std::path::Path {
        self.rundir()
    }
}

/// The watched interfaces: those the VIPs are served on.
fn open_links(
    config: &Config,
    nl: &mut Netlink,
    registry: &Registry,
) -> Result<Option<LinkWatch>, BoxError> {
    if !config.watch_links || config.vips.is_empty() {
        return Ok(None);
    }
    let mut names: Vec<String> = config.vips.iter().map(|v| v.interface.clone()).collect();
    names.sort();
    names.dedup();
    let w = LinkWatch::open(&names, nl)?;
    registry.register(&mut SourceFd(&w.raw_fd()), LINKS, Interest::READABLE)?;
    Ok(Some(w))
}

/// The control socket's answers.
struct Ctl<'a>(&'a Daemon);

impl Handler for Ctl<'_> {
    fn handle(&mut self, _peer: &PeerInfo, request: Request) -> Response {
        match request {
            Request::Ping => Response::Pong,
            Request::HaStatus => Response::HaStatus(self.0.status()),
            other => Response::Error {
                code: ErrorCode::Unsupported,
                message: format!("lvs-heartbeatd does not handle {other:?}"),
            },
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

    /// Reads at most [`UDP_BURST`] datagrams; whether more may be waiting.
    fn read_udp(&mut self, buf: &mut [u8], inputs: &mut Vec<Input>) -> bool {
        let Some(u) = self.udp.as_mut() else {
            return false;
        };
        let verifier = &mut self.verifier;
        let more = u.recv_burst(buf, UDP_BURST, |bytes| {
            if let Ok(acc) = verifier.verify(Medium::Udp, bytes) {
                inputs.push(Input::Heartbeat {
                    medium: Medium::Udp,
                    heartbeat: acc.heartbeat,
                });
            }
        });
        more.unwrap_or_else(|e| {
            event!(Level::Debug, "udp_recv_error", error = e);
            false
        })
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
                let name = kind.name().replace('-', "_");
                self.alerter.send(
                    Alert::new(NotifyKind::Custom(name))
                        .node(self.node.clone())
                        .reason(text),
                );
                None
            }
            Action::BecomeMaster { epoch } => {
                self.fault_reason.clear();
                self.take_over(epoch)
            }
            Action::BecomeBackup => {
                self.fault_reason.clear();
                self.release("backup", NotifyKind::Backup);
                None
            }
            Action::Fault { reason } => {
                if self.stopping {
                    self.release("stop", NotifyKind::Backup);
                } else {
                    event!(Level::Error, "heartbeat_fault", reason = reason);
                    self.fault_reason.clone_from(&reason);
                    self.release("fault", NotifyKind::Fault);
                }
                None
            }
        }
    }

    fn send_heartbeat(&mut self, state: NodeState, epoch: u64) {
        // Only a director that says its table is synced lets us claim it: a returning
        // primary takes the VIP back (auto_failback) only once no connection would be lost.
        let status = Status {
            sync_generation: 0,
            flags: if self.director.sync_state().is_synced() {
                Status::TABLE_SYNCED
            } else {
                0
            },
        };
        let mut hb = self.sealer.next(state, epoch, status, wall_clock_ms());
        hb.echo = self.verifier.next_echo();
        if let Some(u) = self.udp.as_mut() {
            u.send_all(&self.sealer.seal_for(&hb, Medium::Udp));
        }
        if let Some(s) = self.serial.as_mut() {
            let _ = s.send_frame(&self.sealer.seal_for(&hb, Medium::Serial));
        }
    }

    /// SIGTERM: the addresses released, a farewell heartbeat in state `fault` on every medium
    /// (the peer takes over at once instead of after the deadtime), the director standby.
    fn stop(mut self) {
        self.stopping = true;
        self.feed(Input::Fault {
            reason: "stopping".into(),
        });
        // The fault heartbeat may already have gone out as part of the fault; one more does
        // no harm and covers a lost datagram.
        let (state, epoch) = (self.fsm.state(), self.fsm.epoch());
        self.send_heartbeat(state, epoch);
        let t = Instant::now();
        if let Some(s) = self.serial.as_mut() {
            while s.wants_write() && t.elapsed() < FAREWELL_FLUSH {
                if s.flush().is_err() {
                    break;
                }
                if s.wants_write() {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
        event!(
            Level::Info,
            "farewell_sent",
            state = state.name(),
            ms = ms(t)
        );
        self.director.stop(DIRECTOR_STOP);
        self.alerter.shutdown(Duration::from_secs(2));
    }

    /// Director active, addresses, gratuitous ARP, notify.
    fn take_over(&mut self, epoch: u64) -> Option<Input> {
        let t0 = Instant::now();
        event!(Level::Info, "takeover_start", epoch = epoch);
        let t = Instant::now();
        self.director.set_role(HaRole::Active);
        event!(
            Level::Info,
            "takeover",
            step = "director",
            ms = ms(t),
            result = "queued"
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
                    device = self.vipdev.name(),
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
                        reason: format!("cannot add {vip} to {}: {e}", self.vipdev.name()),
                    });
                }
            }
        }
        self.hold_ndp(true);
        self.start_garp();
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

    fn start_garp(&mut self) {
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
    }

    /// The reverse of the takeover: addresses removed, director standby, notify.
    fn release(&mut self, why: &str, notify: NotifyKind) {
        let t0 = Instant::now();
        self.garp = None;
        let had = self.holds_vips;
        self.hold_ndp(false);
        self.remove_vips(why);
        self.director.set_role(HaRole::Standby);
        event!(
            Level::Info,
            "release",
            step = "director",
            why = why,
            result = "queued"
        );
        if why != "stop" {
            self.alerter.send(
                Alert::new(notify)
                    .node(self.node.clone())
                    .service(self.vip_list())
                    .reason(if self.fault_reason.is_empty() {
                        why.to_owned()
                    } else {
                        self.fault_reason.clone()
                    }),
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
            self.remove_vip(vip, why);
        }
    }

    fn remove_vip(&mut self, vip: &Vip, why: &str) {
        let t = Instant::now();
        match self.del_vip(vip) {
            Ok(removed) => event!(
                Level::Info,
                "release",
                step = "vip",
                why = why,
                addr = vip,
                interface = vip.interface,
                removed = removed,
                ms = ms(t)
            ),
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

    /// Removes copies of the VIPs on their physical interfaces (left by an older version).
    fn remove_legacy_vips(&mut self) {
        for vip in self.config.vips.clone() {
            // Older versions knew IPv4 only.
            let IpAddr::V4(addr) = vip.addr else {
                continue;
            };
            let res = self.netlink().and_then(|nl| {
                let link = nl.link_by_name(&vip.interface).map_err(|e| e.to_string())?;
                nl.del_ipv4_address(link.ifindex, addr, vip.prefix)
                    .map_err(|e| e.to_string())
            });
            if let Ok(lvs_netinfo::AddressChange::Removed) = res {
                event!(
                    Level::Warn,
                    "legacy_vip_removed",
                    addr = vip,
                    interface = vip.interface
                );
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

    /// The address goes on the VIP device as /32 (/128): no subnet route points into the
    /// device, and the kernel still answers ARP for it on the physical interface (neighbour
    /// solicitations are answered by [`crate::ndp`]).
    ///
    /// An IPv6 address goes on with `nodad` (IFA_F_NODAD). Without it the kernel marks a new
    /// address `tentative` until duplicate-address detection has run: on the TUN device
    /// (NOARP) it skips the probe, but only later, from its address-configuration work
    /// queue; on a device that probes, about a second. A tentative address is neither used
    /// as a source nor accepted in a bind, so the director's answers and every listener on
    /// the VIP would wait. With `nodad` the address is usable as soon as the kernel has
    /// acknowledged it. A probe would learn nothing anyway: the other holder of the address
    /// is the peer we take it from, dead or giving it up.
    fn add_vip(&mut self, vip: &Vip) -> Result<(), String> {
        let ifindex = self.vipdev.ifindex();
        let nl = self.netlink()?;
        let r = match vip.addr {
            IpAddr::V4(a) => nl.add_ipv4_address(ifindex, a, 32),
            IpAddr::V6(a) => nl.add_ipv6_address(ifindex, a, 128, true),
        };
        r.map(|_| ()).map_err(|e| {
            self.netlink = None;
            e.to_string()
        })
    }

    fn del_vip(&mut self, vip: &Vip) -> Result<bool, String> {
        let ifindex = self.vipdev.ifindex();
        let nl = self.netlink()?;
        let r = match vip.addr {
            IpAddr::V4(a) => nl.del_ipv4_address(ifindex, a, 32),
            IpAddr::V6(a) => nl.del_ipv6_address(ifindex, a, 128),
        };
        match r {
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
            let res = match vip.addr {
                IpAddr::V4(addr) => self.netlink().and_then(|nl| {
                    let link = nl.link_by_name(&vip.interface).map_err(|e| e.to_string())?;
                    let mac = link
                        .mac
                        .ok_or_else(|| format!("{} has no MAC address", vip.interface))?;
                    send_gratuitous_arp(
                        link.ifindex,
                        mac,
                        addr,
                        &[GarpKind::Request, GarpKind::Reply],
                    )
                    .map_err(|e| e.to_string())
                }),
                IpAddr::V6(addr) => match self.netlink() {
                    Ok(_) => match self.netlink.as_mut() {
                        Some(nl) => self.ndp.announce(nl, &self.registry, &vip, addr),
                        None => Err("no netlink".to_owned()),
                    },
                    Err(e) => Err(e),
                },
            };
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

    /// Neighbour solicitations for the IPv6 addresses answered (held) or not (released).
    fn hold_ndp(&mut self, held: bool) {
        if self.ndp.is_empty() && !self.config.vips.iter().any(|v| v.addr.is_ipv6()) {
            return;
        }
        let failed = match self.netlink() {
            Ok(_) => match self.netlink.as_mut() {
                Some(nl) => self.ndp.hold(nl, &self.registry, &self.config.vips, held),
                None => Vec::new(),
            },
            Err(e) => vec![(String::new(), e)],
        };
        for (interface, error) in failed {
            event!(
                Level::Warn,
                "ndp_failed",
                interface = interface,
                error = error
            );
        }
    }

    /// A watched link lost its carrier: a local fault; every link back: backup again.
    fn check_links(&mut self) {
        let Some(w) = &self.links else { return };
        let down = w.down();
        if !down.is_empty() {
            let reason = format!("link {} down", down.join(","));
            event!(Level::Warn, "link_down", interfaces = down.join(","));
            if self.link_fault.as_ref() != Some(&reason) {
                self.link_fault = Some(reason.clone());
                self.feed(Input::Fault { reason });
            }
        } else if self.link_fault.take().is_some() {
            event!(Level::Info, "link_up", interfaces = self.link_names());
            self.feed(Input::FaultCleared);
        }
    }

    fn link_names(&self) -> String {
        self.links.as_ref().map_or(String::new(), |w| {
            w.links()
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
    }

    /// SIGHUP with a valid file: applies what can change while running.
    fn apply(&mut self, mut new: Config, director: std::path::PathBuf, registry: &Registry) {
        let old = &self.config;
        let mut kept = Vec::new();
        if new.fsm.node_id != old.fsm.node_id {
            kept.push("node_id");
            new.fsm.node_id = old.fsm.node_id;
        }
        if new.auth_key_file != old.auth_key_file {
            kept.push("auth_key_file");
            new.auth_key_file.clone_from(&old.auth_key_file);
        }
        if new.epoch_file != old.epoch_file {
            kept.push("epoch_file");
            new.epoch_file.clone_from(&old.epoch_file);
        }
        if new.vip_device != old.vip_device {
            kept.push("vip_device");
            new.vip_device.clone_from(&old.vip_device);
        }
        if let Err(e) = self.fsm.reconfigure(&new.fsm) {
            event!(Level::Error, "config_apply_failed", error = e);
            return;
        }
        self.sealer.set_priority(new.fsm.priority);
        for &p in &new.peers {
            self.verifier.add_peer(p);
        }
        if new.udp != self.config.udp {
            if let Some(mut u) = self.udp.take() {
                let _ = registry.deregister(u.socket_mut());
            }
            if let Some(cfg) = &new.udp {
                match UdpHeartbeat::bind(cfg) {
                    Ok(mut u) => {
                        if let Err(e) = registry.register(u.socket_mut(), UDP, Interest::READABLE) {
                            event!(Level::Error, "config_apply_failed", part = "udp", error = e);
                        }
                        self.udp = Some(u);
                    }
                    Err(e) => event!(Level::Error, "config_apply_failed", part = "udp", error = e),
                }
            }
        }
        if new.serial != self.config.serial {
            if let Some(s) = self.serial.take() {
                let _ = registry.deregister(&mut SourceFd(&s.as_raw_fd()));
            }
            self.serial_writable = false;
            if let Some(cfg) = &new.serial {
                match SerialPort::open(&cfg.device, cfg.baud) {
                    Ok(s) => {
                        if let Err(e) = registry.register(
                            &mut SourceFd(&s.as_raw_fd()),
                            SERIAL,
                            Interest::READABLE,
                        ) {
                            event!(
                                Level::Error,
                                "config_apply_failed",
                                part = "serial",
                                error = e
                            );
                        }
                        self.serial = Some(s);
                    }
                    Err(e) => {
                        event!(
                            Level::Error,
                            "config_apply_failed",
                            part = "serial",
                            error = e
                        )
                    }
                }
            }
        }
        if new.alert != self.config.alert {
            match Alerter::start(&new.alert) {
                Ok(a) => {
                    let old = std::mem::replace(&mut self.alerter, a);
                    old.shutdown(Duration::from_millis(500));
                }
                Err(e) => event!(
                    Level::Error,
                    "config_apply_failed",
                    part = "alert",
                    error = e
                ),
            }
        }
        self.director.set_path(director);
        // The addresses: those gone are removed, new ones added (and announced) while master.
        let old_vips = std::mem::take(&mut self.config.vips);
        if self.holds_vips {
            for v in old_vips
                .iter()
                .filter(|v| !new.vips.iter().any(|n| n.addr == v.addr))
            {
                self.remove_vip(v, "reload");
            }
            for v in new
                .vips
                .iter()
                .filter(|n| !old_vips.iter().any(|o| o.addr == n.addr))
            {
                if let Err(e) = self.add_vip(v) {
                    event!(
                        Level::Error,
                        "config_apply_failed",
                        part = "vip",
                        addr = v,
                        error = e
                    );
                }
            }
        }
        let relink = new.watch_links != self.config.watch_links
            || old_vips
                .iter()
                .map(|v| &v.interface)
                .ne(new.vips.iter().map(|v| &v.interface));
        self.config = new;
        if self.holds_vips {
            self.hold_ndp(true);
            self.start_garp();
        }
        if relink {
            if let Some(w) = self.links.take() {
                let _ = registry.deregister(&mut SourceFd(&w.raw_fd()));
            }
            let opened = match self.netlink() {
                Ok(_) => match self.netlink.as_mut() {
                    Some(nl) => open_links(&self.config, nl, registry).map_err(|e| e.to_string()),
                    None => Ok(None),
                },
                Err(e) => Err(e),
            };
            match opened {
                Ok(w) => self.links = w,
                Err(e) => event!(
                    Level::Error,
                    "config_apply_failed",
                    part = "links",
                    error = e
                ),
            }
            if self.links.is_none() && self.link_fault.take().is_some() {
                self.feed(Input::FaultCleared);
            }
            self.check_links();
        }
        event!(
            Level::Info,
            "config_applied",
            priority = self.config.fsm.priority,
            keepalive_ms = self.config.fsm.timers.keepalive_ms,
            deadtime_ms = self.config.fsm.timers.deadtime_ms,
            vips = self.config.vips.len(),
            kept_until_restart = kept.join(",")
        );
    }

    fn status(&self) -> HaStatus {
        let now = self.now();
        let peer = self.fsm.peer();
        let deadtime = self.fsm.timers().deadtime_ms;
        let media = self
            .config
            .fsm
            .media
            .iter()
            .map(|&m| {
                let last = peer.and_then(|p| p.last_heard[m.index()]);
                let ago = last.map(|t| now.saturating_sub(t));
                HaMedium {
                    name: m.name().to_owned(),
                    up: ago.is_some_and(|a| a < deadtime),
                    last_heard_ms: ago,
                    accepted: self.verifier.accepted(m),
                    rejected: self
                        .verifier
                        .rejects_on(m)
                        .named()
                        .iter()
                        .map(|&(n, c)| (n.to_owned(), c))
                        .collect(),
                }
            })
            .collect();
        HaStatus {
            node: self.node.clone(),
            node_id: self.config.fsm.node_id,
            state: self.fsm.state().name().to_owned(),
            fault_reason: self.fault_reason.clone(),
            epoch: self.fsm.epoch(),
            vips: self
                .config
                .vips
                .iter()
                .map(|v| format!("{v}@{}", v.interface))
                .collect(),
            holds_vips: self.holds_vips,
            table_synced: self.director.sync_state().known(),
            peer: peer.map(|p| HaPeer {
                node_id: p.node_id,
                state: p.state.name().to_owned(),
                epoch: p.epoch,
                alive: p.alive,
                synced: p.synced,
            }),
            media,
            links: self
                .links
                .as_ref()
                .map_or_else(Vec::new, |w| w.links().to_vec()),
        }
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
            rejected_stale_generation = rejects.stale_generation,
            rejected_old_version = rejects.old_version,
            generation = self.sealer.generation(),
            ndp_answered = self.ndp.stats().answered,
            ndp_announced = self.ndp.stats().announced,
            ndp_malformed = self.ndp.stats().malformed_total(),
        );
    }
}

fn ms(t: Instant) -> String {
    format!("{:.1}", t.elapsed().as_secs_f64() * 1000.0)
}
