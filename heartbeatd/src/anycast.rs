//! `mode = "anycast"`: every director is active, the routers spread flows over them by ECMP,
//! and this daemon announces each virtual address to them through the BGP daemon beside it
//! (BIRD 2, over its control socket: [`bird`]) only while this director can serve it.
//!
//! Every `check_interval_ms` (and at once after a drain or a reload) one check:
//!
//! 1. the director: `GetRole`, `ListServices`, `ListHealth` and `SyncStatus` over its control
//!    socket (each bounded by [`REQUEST_TIMEOUT`]); a standby director is told `SetRole
//!    Active` (in this mode every director forwards);
//! 2. per virtual address, why not to announce it ([`serving::why_not`]): stopping, drained,
//!    the director unreachable or standby, its connection table not synced yet (with
//!    `[sync]`: the bulk resync of its start), no service on the address, a service without
//!    a real server of weight > 0 that passes its checks;
//! 3. BIRD: `show protocols`; the VIP's `static` protocol enabled when it should be announced
//!    and disabled otherwise (BIRD then sends the update or the withdrawal); the BGP sessions'
//!    states read for the log and the console.
//!
//! What ends without any check: the addresses live on the TUN device of [`crate::vipdev`],
//! and each BIRD static route points into that device (`route ADDR/32 via "lvs-vip0"`). When
//! this process dies in any way the kernel deletes the device, BIRD sees the interface go and
//! withdraws every route through it: a dead lvs-heartbeatd announces nothing. A dead BIRD
//! closes its BGP sessions (or stops answering BFD): the router drops its routes.
//!
//! SIGTERM withdraws every route and leaves the director active, so that what the routers
//! still send while the withdrawal spreads is forwarded. A drain (`lvs-heartbeatd --drain`,
//! [`Request::Drain`]) withdraws every route the same way and keeps the director forwarding
//! until `--undrain` (or a restart) announces them again.

pub mod bird;
pub mod config;
pub mod serving;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use log::Level;
use lvs_alert::{Alert, AlertKind, Alerter};
use lvs_common::{BoxError, Signal, Signals, Startup, event, signals};
use lvs_netinfo::Netlink;
use lvs_proto::message::{AnycastRoute, AnycastStatus, BgpSession, HaMedium, HaStatus};
use lvs_proto::server::{Handler, Server, ServerConfig};
use lvs_proto::{
    Connect, DirectorLink, ErrorCode, HaRole, LinkOptions, PeerInfo, Request, Response, Role,
};
use mio::{Events, Poll, Token};

use self::bird::{Bird, ProtocolRow};
use self::config::{AnycastConfig, AnycastVip};
use self::serving::DirectorView;
use crate::settings::Settings;
use crate::vipdev::VipDevice;

const SIGNALS: Token = Token(0);
/// The control socket's tokens start here.
const SERVER_BASE: usize = 1024;
/// How long one director request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);
/// How long SIGTERM waits for the alerter.
const ALERT_FLUSH: Duration = Duration::from_secs(2);

/// The link to the director: no back-off of its own, the next check tries again.
const DIRECTOR_LINK: LinkOptions = LinkOptions {
    role: Role::Heartbeatd,
    timeout: REQUEST_TIMEOUT,
    backoff_min: Duration::ZERO,
    backoff_max: Duration::ZERO,
    report: lvs_proto::log_director_link,
};

/// One virtual address and what was last done with it.
#[derive(Debug, Clone)]
struct Route {
    vip: AnycastVip,
    announced: bool,
    /// Why withdrawn (empty while announced).
    reason: String,
    /// What the log last said: `None` before the first check.
    logged: Option<(bool, String)>,
}

struct Anycast {
    config: AnycastConfig,
    vipdev: VipDevice,
    netlink: Option<Netlink>,
    link: DirectorLink,
    bird: Bird,
    alerter: Alerter,
    routes: Vec<Route>,
    sessions: Vec<ProtocolRow>,
    director_up: bool,
    daemon_up: Option<bool>,
    drained: bool,
    stopping: bool,
    node: String,
}

/// The daemon's body in anycast mode, for [`lvs_common::run()`].
pub fn run(config: AnycastConfig, startup: Startup<Settings>) -> Result<(), BoxError> {
    let mut poll = Poll::new()?;
    let mut signals = Signals::new(poll.registry(), SIGNALS)?;
    let vipdev = VipDevice::create(&config.vip_device)?;
    let netlink = Netlink::open()?;
    let alerter = Alerter::start(&config.alert)?;
    let director = director_path(&config, startup.rundir());
    let mut sc = ServerConfig::new("heartbeatd", startup.rundir());
    sc.token_base = SERVER_BASE;
    let mut server = Server::bind(sc)?;
    server.register(poll.registry())?;
    let mut a = Anycast {
        link: DirectorLink::new(&director, DIRECTOR_LINK),
        bird: Bird::new(&config.control_socket),
        routes: Vec::new(),
        node: format!("node-{}", config.node_id),
        config,
        vipdev,
        netlink: Some(netlink),
        alerter,
        sessions: Vec::new(),
        director_up: false,
        daemon_up: None,
        drained: false,
        stopping: false,
    };
    for vip in a.config.vips.clone() {
        a.add_vip(vip)?;
    }
    event!(
        Level::Info,
        "anycast_start",
        node_id = a.config.node_id,
        vips = a.config.vips.len(),
        vip_device = a.vipdev.name(),
        daemon = a.config.daemon,
        control_socket = a.config.control_socket.display(),
        check_interval_ms = a.config.check_interval_ms,
    );
    a.check();
    let ctx = startup.ready();
    let mut events = Events::with_capacity(64);
    let mut next_check = Instant::now() + a.interval();
    loop {
        let timeout = next_check.saturating_duration_since(Instant::now());
        signals::poll(&mut poll, &mut events, Some(timeout))?;
        for ev in events.iter() {
            match ev.token() {
                SIGNALS => {
                    for signal in signals.pending() {
                        match signal {
                            Signal::Stop => {
                                a.stop();
                                return Ok(());
                            }
                            Signal::Reload => match ctx.reload() {
                                Some(Settings::Anycast(new)) => {
                                    let path = director_path(&new, ctx.rundir());
                                    a.apply(*new, &path);
                                    next_check = Instant::now();
                                }
                                Some(Settings::Failover(_)) => event!(
                                    Level::Error,
                                    "config_apply_failed",
                                    part = "mode",
                                    error =
                                        "the mode changes from anycast to failover only at restart"
                                ),
                                None => {}
                            },
                            Signal::Dump => a.dump(),
                        }
                    }
                }
                t if server.owns(t) => server.ready(ev, &mut Ctl(&mut a)),
                _ => {}
            }
        }
        if Instant::now() >= next_check {
            a.check();
            next_check = Instant::now() + a.interval();
        }
    }
}

fn director_path(config: &AnycastConfig, rundir: &std::path::Path) -> std::path::PathBuf {
    config
        .director_socket
        .clone()
        .unwrap_or_else(|| rundir.join("director.sock"))
}

/// The control socket's answers.
struct Ctl<'a>(&'a mut Anycast);

impl Handler for Ctl<'_> {
    fn handle(&mut self, _peer: &PeerInfo, request: Request) -> Response {
        match request {
            Request::Ping => Response::Pong,
            Request::HaStatus => Response::HaStatus(self.0.ha_status()),
            Request::AnycastStatus => Response::Anycast(self.0.status()),
            Request::Drain { on } => {
                self.0.drain(on);
                Response::Anycast(self.0.status())
            }
            other => Response::Error {
                code: ErrorCode::Unsupported,
                message: format!("lvs-heartbeatd (anycast) does not handle {other:?}"),
            },
        }
    }
}

impl Anycast {
    fn interval(&self) -> Duration {
        Duration::from_millis(self.config.check_interval_ms)
    }

    fn netlink(&mut self) -> Result<&mut Netlink, String> {
        if self.netlink.is_none() {
            self.netlink = Some(Netlink::open().map_err(|e| e.to_string())?);
        }
        self.netlink.as_mut().ok_or_else(|| "no netlink".to_owned())
    }

    /// The address on the VIP device (so that the kernel takes its packets while the director
    /// serves it), and its route followed from now on.
    fn add_vip(&mut self, vip: AnycastVip) -> Result<(), String> {
        let ifindex = self.vipdev.ifindex();
        let nl = self.netlink()?;
        let r = match vip.addr {
            IpAddr::V4(a) => nl.add_ipv4_address(ifindex, a, 32),
            IpAddr::V6(a) => nl.add_ipv6_address(ifindex, a, 128, true),
        };
        if let Err(e) = r {
            self.netlink = None;
            return Err(format!(
                "cannot add {} to {}: {e}",
                vip.prefix(),
                self.vipdev.name()
            ));
        }
        self.routes.push(Route {
            vip,
            announced: false,
            reason: "not checked yet".into(),
            logged: None,
        });
        Ok(())
    }

    fn del_vip(&mut self, vip: &AnycastVip) {
        let ifindex = self.vipdev.ifindex();
        let r = self.netlink().and_then(|nl| {
            match vip.addr {
                IpAddr::V4(a) => nl.del_ipv4_address(ifindex, a, 32),
                IpAddr::V6(a) => nl.del_ipv6_address(ifindex, a, 128),
            }
            .map_err(|e| e.to_string())
        });
        if let Err(e) = r {
            self.netlink = None;
            event!(
                Level::Warn,
                "anycast_vip_remove_failed",
                vip = vip.prefix(),
                error = e
            );
        }
    }

    /// The director's answers, a standby director told to go active.
    fn ask_director(&mut self) -> DirectorView {
        if self.link.connect_if_due(Instant::now()) == Connect::No {
            return DirectorView::Unreachable(match self.link.unreachable_reason() {
                Some(e) => format!("director unreachable: {e}"),
                None => "director unreachable".into(),
            });
        }
        let mut answers = Vec::with_capacity(4);
        for r in [
            Request::GetRole,
            Request::ListServices { key: None },
            Request::ListHealth,
            Request::SyncStatus,
        ] {
            match self.link.request(r) {
                Ok(a) => answers.push(a),
                Err(e) => return DirectorView::Unreachable(format!("director unreachable: {e}")),
            }
        }
        let sync = answers.pop().unwrap_or(Response::Ok);
        let health = answers.pop().unwrap_or(Response::Ok);
        let services = answers.pop().unwrap_or(Response::Ok);
        let role = answers.pop().unwrap_or(Response::Ok);
        let mut view = DirectorView::from_answers(role, services, health, sync);
        if let DirectorView::Answered { role, .. } = &mut view
            && *role == HaRole::Standby
            && !self.stopping
        {
            let t = Instant::now();
            let result = match self.link.request(Request::SetRole {
                role: HaRole::Active,
            }) {
                Ok(Response::Ok) => {
                    *role = HaRole::Active;
                    "ok".to_owned()
                }
                Ok(other) => format!("refused: {other:?}"),
                Err(e) => format!("failed: {e}"),
            };
            event!(
                Level::Info,
                "director_role",
                role = "active",
                result = result,
                ms = format!("{:.1}", t.elapsed().as_secs_f64() * 1000.0)
            );
        }
        view
    }

    /// One check: the director, each route's verdict, BIRD brought in line.
    fn check(&mut self) {
        let view = self.ask_director();
        self.director_up = view.forwarding();
        let rows = match self.bird.protocols() {
            Ok(rows) => {
                if self.daemon_up != Some(true) {
                    event!(
                        Level::Info,
                        "bgp_daemon_reachable",
                        daemon = self.config.daemon,
                        control_socket = self.config.control_socket.display()
                    );
                }
                self.daemon_up = Some(true);
                rows
            }
            Err(e) => {
                if self.daemon_up != Some(false) {
                    event!(
                        Level::Error,
                        "bgp_daemon_unreachable",
                        daemon = self.config.daemon,
                        error = e
                    );
                }
                self.daemon_up = Some(false);
                // Nothing to tell it; a dead BIRD announces nothing.
                let why = format!("{} unreachable", self.config.daemon);
                for r in &mut self.routes {
                    r.announced = false;
                    r.reason.clone_from(&why);
                }
                self.log_routes();
                self.update_sessions(&[]);
                return;
            }
        };
        for i in 0..self.routes.len() {
            let vip = self.routes[i].vip.clone();
            let want = if self.stopping {
                Some("stopping".to_owned())
            } else if self.drained {
                Some("drained".to_owned())
            } else {
                serving::why_not(&view, vip.addr)
            };
            let (announced, reason) = self.steer(&vip, &rows, want);
            self.routes[i].announced = announced;
            self.routes[i].reason = reason;
        }
        self.log_routes();
        self.update_sessions(&rows);
    }

    /// Enables or disables the VIP's protocol as `want` says (`None`: announce); returns
    /// whether it is announced and, if not, why.
    fn steer(
        &mut self,
        vip: &AnycastVip,
        rows: &[ProtocolRow],
        want: Option<String>,
    ) -> (bool, String) {
        let Some(row) = rows.iter().find(|r| r.name == vip.protocol) else {
            return (
                false,
                format!(
                    "no protocol {} in {}'s configuration",
                    vip.protocol, self.config.daemon
                ),
            );
        };
        // Disabled shows as `down`; `start` and `up` both mean enabled.
        let enabled = row.state != "down";
        let on = want.is_none();
        if on != enabled
            && let Err(e) = self.bird.set_enabled(&vip.protocol, on)
        {
            event!(
                Level::Error,
                "anycast_route_failed",
                vip = vip.prefix(),
                protocol = vip.protocol,
                action = if on { "enable" } else { "disable" },
                error = e
            );
            return (enabled, e.to_string());
        }
        (on, want.unwrap_or_default())
    }

    /// One line per route whose state changed since the last.
    fn log_routes(&mut self) {
        for i in 0..self.routes.len() {
            let r = &self.routes[i];
            let now = (r.announced, r.reason.clone());
            if r.logged.as_ref() == Some(&now) {
                continue;
            }
            let first = r.logged.is_none();
            let was_announced = r.logged.as_ref().is_some_and(|l| l.0);
            let (prefix, protocol) = (r.vip.prefix(), r.vip.protocol.clone());
            if r.announced {
                event!(
                    Level::Info,
                    "anycast_announce",
                    vip = prefix,
                    protocol = protocol
                );
                self.notify(AlertKind::Custom("announce".into()), &prefix, "announced");
            } else {
                let level = if was_announced && !self.stopping && !self.drained {
                    Level::Warn
                } else {
                    Level::Info
                };
                event!(
                    level,
                    "anycast_withdraw",
                    vip = prefix,
                    protocol = protocol,
                    reason = now.1
                );
                if !first && !self.stopping {
                    self.notify(AlertKind::Custom("withdraw".into()), &prefix, &now.1);
                }
            }
            self.routes[i].logged = Some(now);
        }
    }

    fn notify(&self, kind: AlertKind, vip: &str, reason: &str) {
        self.alerter.send(
            Alert::new(kind)
                .node(self.node.clone())
                .service(vip.to_owned())
                .reason(reason.to_owned()),
        );
    }

    /// The watched BGP sessions from `show protocols`; a line for each that came up or went
    /// down (and for each at the first check).
    fn update_sessions(&mut self, rows: &[ProtocolRow]) {
        let watched: Vec<ProtocolRow> = rows
            .iter()
            .filter(|r| {
                if self.config.sessions.is_empty() {
                    r.kind == "BGP"
                } else {
                    self.config.sessions.contains(&r.name)
                }
            })
            .cloned()
            .collect();
        for s in &watched {
            let before = self.sessions.iter().find(|o| o.name == s.name);
            if before.map(ProtocolRow::established) == Some(s.established()) {
                continue;
            }
            let state = format!("{} {}", s.state, s.info);
            if s.established() {
                event!(
                    Level::Info,
                    "bgp_session_up",
                    session = s.name,
                    state = state
                );
            } else {
                event!(
                    Level::Warn,
                    "bgp_session_down",
                    session = s.name,
                    state = state.trim()
                );
            }
        }
        for gone in self
            .sessions
            .iter()
            .filter(|o| o.established() && !watched.iter().any(|s| s.name == o.name))
        {
            event!(
                Level::Warn,
                "bgp_session_down",
                session = gone.name,
                state = "gone"
            );
        }
        self.sessions = watched;
    }

    fn drain(&mut self, on: bool) {
        if self.drained != on {
            self.drained = on;
            if on {
                event!(Level::Info, "anycast_drain", vips = self.routes.len());
            } else {
                event!(Level::Info, "anycast_undrain", vips = self.routes.len());
            }
        }
        self.check();
    }

    /// SIGTERM: every route withdrawn; the director stays active.
    fn stop(mut self) {
        self.stopping = true;
        self.check();
        event!(
            Level::Info,
            "anycast_stop",
            withdrawn = self.routes.iter().filter(|r| !r.announced).count()
        );
        self.alerter.shutdown(ALERT_FLUSH);
    }

    /// SIGHUP with a valid file: what can change while running.
    fn apply(&mut self, mut new: AnycastConfig, director: &std::path::Path) {
        let mut kept = Vec::new();
        if new.node_id != self.config.node_id {
            kept.push("node_id");
            new.node_id = self.config.node_id;
        }
        if new.vip_device != self.config.vip_device {
            kept.push("vip_device");
            new.vip_device.clone_from(&self.config.vip_device);
        }
        let gone: Vec<Route> = self
            .routes
            .iter()
            .filter(|r| !new.vips.contains(&r.vip))
            .cloned()
            .collect();
        for r in &gone {
            if let Err(e) = self.bird.set_enabled(&r.vip.protocol, false) {
                event!(
                    Level::Error,
                    "anycast_route_failed",
                    vip = r.vip.prefix(),
                    protocol = r.vip.protocol,
                    action = "disable",
                    error = e
                );
            }
            event!(
                Level::Info,
                "anycast_withdraw",
                vip = r.vip.prefix(),
                protocol = r.vip.protocol,
                reason = "removed from the configuration"
            );
            self.del_vip(&r.vip);
        }
        self.routes.retain(|r| new.vips.contains(&r.vip));
        for v in &new.vips {
            if !self.routes.iter().any(|r| &r.vip == v)
                && let Err(e) = self.add_vip(v.clone())
            {
                event!(
                    Level::Error,
                    "config_apply_failed",
                    part = "vip",
                    addr = v.prefix(),
                    error = e
                );
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
        self.bird.set_path(&new.control_socket);
        self.link.set_path(director);
        self.config = new;
        event!(
            Level::Info,
            "config_applied",
            vips = self.config.vips.len(),
            check_interval_ms = self.config.check_interval_ms,
            kept_until_restart = kept.join(",")
        );
    }

    fn status(&self) -> AnycastStatus {
        AnycastStatus {
            drained: self.drained,
            daemon: self.config.daemon.clone(),
            daemon_up: self.daemon_up == Some(true),
            director_up: self.director_up,
            routes: self
                .routes
                .iter()
                .map(|r| AnycastRoute {
                    prefix: r.vip.prefix(),
                    protocol: r.vip.protocol.clone(),
                    announced: r.announced,
                    reason: r.reason.clone(),
                })
                .collect(),
            sessions: self
                .sessions
                .iter()
                .map(|s| BgpSession {
                    name: s.name.clone(),
                    up: s.established(),
                    state: format!("{} {}", s.state, s.info).trim().to_owned(),
                })
                .collect(),
        }
    }

    /// The failover status, filled in as far as it means anything here: state `anycast`,
    /// the routes as the addresses (held: announced), the BGP sessions as the media.
    fn ha_status(&self) -> HaStatus {
        let withdrawn = self.routes.iter().find(|r| !r.announced);
        HaStatus {
            node: self.node.clone(),
            node_id: self.config.node_id,
            state: "anycast".into(),
            fault_reason: if self.drained {
                "drained".into()
            } else {
                withdrawn.map_or_else(String::new, |r| {
                    format!("{} withdrawn: {}", r.vip.prefix(), r.reason)
                })
            },
            epoch: 0,
            vips: self.routes.iter().map(|r| r.vip.prefix()).collect(),
            holds_vips: self.routes.iter().any(|r| r.announced),
            table_synced: None,
            peer: None,
            media: self
                .sessions
                .iter()
                .map(|s| HaMedium {
                    name: format!("bgp {}", s.name),
                    up: s.established(),
                    last_heard_ms: None,
                    accepted: 0,
                    rejected: Vec::new(),
                })
                .collect(),
            links: Vec::new(),
        }
    }

    fn dump(&self) {
        for r in &self.routes {
            event!(
                Level::Info,
                "anycast_state",
                vip = r.vip.prefix(),
                protocol = r.vip.protocol,
                announced = r.announced,
                reason = r.reason,
                drained = self.drained
            );
        }
        for s in &self.sessions {
            event!(
                Level::Info,
                "bgp_session_state",
                session = s.name,
                up = s.established(),
                state = format!("{} {}", s.state, s.info).trim()
            );
        }
    }
}
