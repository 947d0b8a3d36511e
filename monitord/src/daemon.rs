//! The lvs-monitord daemon: checks every real server, tells the director, alerts, and takes
//! manual maintenance commands on its own control socket.
//!
//! # What it does
//!
//! - **Start**: reads the director's state (`ListServices`, `ListHealth`) and starts every
//!   configured server in the state the director has for it (healthy with a weight > 0: up;
//!   unhealthy or weight 0: down; missing from a `remove` service: down, it was removed), so
//!   that a restart of monitord flaps nothing. Servers the director has and the configuration
//!   does not list are *discovered*: they get a TCP connect to their port
//!   ([`Check::default_for`]). The director's list is read again every [`RELIST`] to pick up
//!   servers added or removed with `lvsadm`.
//! - **Transitions** (rise/fall, [`crate::health`]): down -> `SetHealth false` (`on_failure =
//!   "quiesce"`, weight 0 at the director, connections finish) or `DelDest` (`"remove"`, the
//!   server's settings are kept to add it back); up -> `SetHealth true` / `AddDest`. Each one
//!   is an alert (`server_down`, `server_up`; lvs-alert writes the syslog line, mail and the
//!   notify command). A server whose first verdict comes from the checks (the director was
//!   not reachable at start) is not alerted when it is found up.
//! - **Sorry server**: when every server of a service is down (or in maintenance), the sorry
//!   server is added (weight 1, the forwarding method of the others), and removed when one
//!   comes back (`sorry_server_on` / `sorry_server_off` alerts).
//! - **Quorum** (`quorum`, `hysteresis`): decided once every server of the service has a
//!   verdict; a change is a `quorum_down` / `quorum_up` alert. While it is lost, a service
//!   with a sorry server hands it the traffic and takes its remaining healthy servers out too
//!   (keepalived's behaviour); without one, nothing changes at the director.
//! - **The director away**: checking goes on; the link reconnects with backoff
//!   ([`DIRECTOR_LINK`], [`lvs_proto::link`]) and on reconnect re-applies the health of every server (the
//!   director may have restarted and forgotten it). Every [`RELIST`] the health flags the
//!   director reports are compared with monitord's verdicts and corrected.
//! - **Maintenance** (`Request::Maintenance`, `lvs-monitord ctl maintenance on|off`): the
//!   server is marked unhealthy at the director and stays so whatever its checks say, until
//!   maintenance is turned off. Kept in `<rundir>/monitord.maintenance` across restarts.
//! - **SIGHUP**: reload; a bad file is refused (`event=config_rejected` with file and line) and
//!   the old configuration keeps running. Servers whose checks did not change keep their
//!   state and counters.
//! - **SIGTERM**: stops checking and exits. It restores nothing at the director: a server it
//!   marked down stays down (the safe choice: nobody checks it any more), and the director
//!   keeps forwarding to the others.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use log::Level;
use lvs_alert::{Alert, AlertKind, Alerter};
use lvs_common::{BoxError, Signal, Signals, Startup, event, signals};
use lvs_proto::server::{Handler, Server, ServerConfig};
use lvs_proto::{
    AddrPort, Connect, DestConf, DirectorLink, ErrorCode, FwdMethod, LinkError, LinkOptions,
    MonitoredServer, PeerInfo, Protocol, Request, Response, Role, ServiceKey, ServiceStatus,
};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use crate::checks::{CheckResult, Engine, TargetId};
use crate::config::Quorum;
use crate::config::{Check, Config, OnFailure};
use crate::health::{CheckPolicy, Health, QuorumState, State};

const SIGNALS: Token = Token(0);
const ENGINE: Token = Token(1);
const SERVER_BASE: usize = 1024;

/// How often the director's list of services and servers is read again.
pub const RELIST: Duration = Duration::from_secs(3);
/// The longest the loop sleeps.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// The file (in the run directory) that keeps maintenance across restarts.
pub const MAINTENANCE_FILE: &str = "monitord.maintenance";

/// A real server within a service.
pub type ServerKey = (ServiceKey, IpAddr, u16);

/// `tcp/203.0.113.100:80`, the service as alerts name it.
pub fn service_name(key: &ServiceKey) -> String {
    format!(
        "{}/{}",
        key.protocol.name().to_ascii_lowercase(),
        AddrPort(key.addr, key.port)
    )
}

/// One real server being checked.
#[derive(Debug)]
struct Monitored {
    key: ServerKey,
    /// The weight it has when healthy.
    weight: u32,
    checks: Vec<Check>,
    target: TargetId,
    /// Found at the director, not in the configuration.
    discovered: bool,
    /// What the director was last told (or reported): scheduled or not. None: unknown.
    applied: Option<bool>,
    /// Its settings at the director, to add it back after a removal.
    dest: Option<DestConf>,
    last: Option<(bool, String, Instant)>,
}

/// One virtual service.
#[derive(Debug)]
struct Svc {
    key: ServiceKey,
    on_failure: OnFailure,
    sorry: Option<SocketAddr>,
    /// The sorry server monitord added and has not removed yet.
    sorry_added: Option<SocketAddr>,
    /// How its servers are reached (for servers and the sorry server monitord adds).
    fwd: Option<FwdMethod>,
    configured: bool,
    /// The configured quorum, and its state once every server has a verdict.
    quorum: Option<Quorum>,
    quorum_state: Option<QuorumState>,
}

/// What the director has: its services and every real server's health flag.
#[derive(Debug, Default)]
struct View {
    services: Vec<ServiceStatus>,
    health: HashMap<ServerKey, bool>,
}

impl View {
    fn service(&self, key: &ServiceKey) -> Option<&ServiceStatus> {
        self.services.iter().find(|s| s.conf.key == *key)
    }

    fn dest(&self, key: &ServerKey) -> Option<&DestConf> {
        self.service(&key.0)?
            .dests
            .iter()
            .map(|d| &d.conf)
            .find(|d| d.addr == key.1 && d.port == key.2)
    }

    fn healthy(&self, key: &ServerKey) -> bool {
        self.health.get(key).copied().unwrap_or(true)
    }
}

/// The daemon's state, apart from its sockets.
#[derive(Debug)]
pub struct Monitor {
    cfg: Config,
    rundir: PathBuf,
    engine: Engine,
    health: Health<TargetId>,
    servers: Vec<Monitored>,
    by_key: HashMap<ServerKey, usize>,
    by_target: HashMap<TargetId, usize>,
    services: Vec<Svc>,
    maintenance: HashSet<ServerKey>,
    link: DirectorLink,
    alerter: Option<Alerter>,
    next_relist: Instant,
}

/// The link to the director: a connect or request may take a second (the loop never waits
/// longer for an absent or wedged director); reconnects back off from 200 ms to 5 s.
pub const DIRECTOR_LINK: LinkOptions = LinkOptions {
    role: Role::Monitord,
    timeout: Duration::from_secs(1),
    backoff_min: Duration::from_millis(200),
    backoff_max: Duration::from_secs(5),
    report: lvs_proto::log_director_link,
};

fn director_socket(cfg: &Config, rundir: &Path) -> PathBuf {
    cfg.director_socket
        .clone()
        .unwrap_or_else(|| lvs_proto::rundir::socket_path(rundir, "director"))
}

fn err_response(code: ErrorCode, message: impl Into<String>) -> Response {
    Response::Error {
        code,
        message: message.into(),
    }
}

impl Monitor {
    /// Sets everything up from `cfg`: connects to the director (if it is there), reads its
    /// state and starts every check.
    pub fn new(cfg: Config, rundir: &Path) -> Result<Monitor, BoxError> {
        let alerter = Alerter::start(&cfg.alert)?;
        let link = DirectorLink::new(&director_socket(&cfg, rundir), DIRECTOR_LINK);
        let mut m = Monitor {
            cfg: Config::default(),
            rundir: rundir.to_path_buf(),
            engine: Engine::new()?,
            health: Health::new(),
            servers: Vec::new(),
            by_key: HashMap::new(),
            by_target: HashMap::new(),
            services: Vec::new(),
            maintenance: HashSet::new(),
            link,
            alerter: Some(alerter),
            next_relist: Instant::now() + RELIST,
        };
        m.maintenance = m.load_maintenance();
        let view = match m.link.connect_if_due(Instant::now()) {
            Connect::No => None,
            _ => m.read_view(),
        };
        m.install(cfg, view.as_ref());
        if let Some(view) = &view {
            m.discover(view);
        }
        m.update_quorums();
        event!(
            Level::Info,
            "monitor_start",
            servers = m.servers.len(),
            discovered = m.servers.iter().filter(|s| s.discovered).count(),
            director = if view.is_some() { "connected" } else { "away" },
            maintenance = m.maintenance.len()
        );
        Ok(m)
    }

    /// The engine's epoll descriptor, for the daemon's poll.
    pub fn engine_fd(&self) -> i32 {
        self.engine.as_raw_fd()
    }

    /// How long the loop may sleep.
    pub fn timeout(&self) -> Duration {
        let now = Instant::now();
        let mut t = MAX_SLEEP.min(self.next_relist.saturating_duration_since(now));
        if let Some(e) = self.engine.next_timeout() {
            t = t.min(e);
        }
        if let Some(at) = self.link.next_attempt() {
            t = t.min(at.saturating_duration_since(now));
        }
        t
    }

    /// One turn: check results, director reconnects, the periodic re-read.
    pub fn turn(&mut self, results: &mut Vec<CheckResult>) -> std::io::Result<()> {
        self.turn_woken(true, results)
    }

    /// [`Monitor::turn`], told whether the engine's descriptor was reported readable (when
    /// not, the engine only runs its timers).
    pub fn turn_woken(
        &mut self,
        engine_woke: bool,
        results: &mut Vec<CheckResult>,
    ) -> std::io::Result<()> {
        self.engine.turn(engine_woke, results)?;
        for r in results.drain(..) {
            self.result(r);
        }
        let now = Instant::now();
        if self.link.connect_if_due(now) == Connect::Fresh {
            self.resync();
        } else if now >= self.next_relist {
            self.next_relist = now + RELIST;
            if let Some(view) = self.read_view() {
                self.discover(&view);
                self.reconcile(&view, false);
            } else if self.link.connect_if_due(Instant::now()) == Connect::Fresh {
                self.resync();
            }
        }
        Ok(())
    }

    fn alert(&self, alert: Alert) {
        if let Some(a) = &self.alerter {
            a.send(alert);
        }
    }

    fn reindex(&mut self) {
        self.by_key = self
            .servers
            .iter()
            .enumerate()
            .map(|(i, s)| (s.key, i))
            .collect();
        self.by_target = self
            .servers
            .iter()
            .enumerate()
            .map(|(i, s)| (s.target, i))
            .collect();
    }

    fn svc(&self, key: &ServiceKey) -> Option<&Svc> {
        self.services.iter().find(|s| s.key == *key)
    }

    fn svc_mut(&mut self, key: &ServiceKey) -> Option<&mut Svc> {
        self.services.iter_mut().find(|s| s.key == *key)
    }

    fn state(&self, i: usize) -> State {
        self.health
            .state(&self.servers[i].target)
            .unwrap_or(State::Unknown)
    }

    /// What the director should do with server `i`: Some(true) schedule it, Some(false) not,
    /// None leave it alone (no verdict yet).
    fn desired(&self, i: usize) -> Option<bool> {
        if self.maintenance.contains(&self.servers[i].key) {
            return Some(false);
        }
        match self.state(i) {
            State::Up => Some(!self.held_by_quorum(&self.servers[i].key.0)),
            State::Down => Some(false),
            State::Unknown => None,
        }
    }

    /// True when `key` lost its quorum and has a sorry server: then the sorry server takes
    /// the traffic and the healthy servers left are taken out too, as keepalived does (a
    /// pool below its quorum would be overwhelmed).
    fn held_by_quorum(&self, key: &ServiceKey) -> bool {
        self.svc(key)
            .is_some_and(|s| s.sorry.is_some() && s.quorum_state.is_some_and(|q| !q.met()))
    }

    /// Servers of `key` passing their checks (maintenance excluded), servers in all, and
    /// whether every one has a verdict.
    fn pool_count(&self, key: &ServiceKey) -> (usize, usize, bool) {
        let (mut up, mut total, mut known) = (0, 0, true);
        for (i, m) in self.servers.iter().enumerate() {
            if m.key.0 != *key {
                continue;
            }
            total += 1;
            match self.state(i) {
                State::Up if !self.maintenance.contains(&m.key) => up += 1,
                State::Unknown => known = false,
                _ => {}
            }
        }
        (up, total, known)
    }

    fn update_quorums(&mut self) {
        let keys: Vec<ServiceKey> = self
            .services
            .iter()
            .filter(|s| s.quorum.is_some())
            .map(|s| s.key)
            .collect();
        for key in keys {
            self.update_quorum(&key);
        }
    }

    /// Updates the quorum of `key` from its servers' states; alerts on a change, and puts
    /// the service's servers where the new state wants them.
    fn update_quorum(&mut self, key: &ServiceKey) {
        let Some(svc) = self.svc(key) else {
            return;
        };
        let Some(quorum) = svc.quorum else {
            return;
        };
        let (up, total, known) = self.pool_count(key);
        let change = match svc.quorum_state {
            Some(mut q) => {
                let change = q.update(up);
                if let Some(s) = self.svc_mut(key) {
                    s.quorum_state = Some(q);
                }
                change
            }
            // Decided once every server has a verdict; announced only when lost.
            None if known => {
                let q = QuorumState::starting(quorum, up);
                if let Some(s) = self.svc_mut(key) {
                    s.quorum_state = Some(q);
                }
                (!q.met()).then_some(false)
            }
            None => None,
        };
        let Some(met) = change else {
            return;
        };
        let reason = format!(
            "{up} of {total} real servers up; quorum {} (hysteresis {}){}",
            quorum.min_up,
            quorum.hysteresis,
            match (met, self.svc(key).is_some_and(|s| s.sorry.is_some())) {
                (false, true) => ": the sorry server takes the traffic",
                (false, false) => ": no sorry server, the servers left keep the traffic",
                (true, true) => ": the real servers take the traffic again",
                (true, false) => "",
            }
        );
        let kind = if met {
            AlertKind::QuorumUp
        } else {
            AlertKind::QuorumDown
        };
        self.alert(Alert::new(kind).service(service_name(key)).reason(reason));
        // Lost: the sorry server first, then the others out; met: the reverse. Either way
        // the service is never left without a server in between.
        if !met {
            self.sorry(key);
        }
        for i in 0..self.servers.len() {
            if self.servers[i].key.0 == *key {
                self.apply(i, false, None);
            }
        }
        self.sorry(key);
    }

    /// The state a server starts in, from the director's view.
    fn initial_state(&self, key: &ServerKey, on_failure: OnFailure, view: Option<&View>) -> State {
        let Some(view) = view else {
            return State::Unknown;
        };
        if view.service(&key.0).is_none() {
            return State::Unknown;
        }
        match view.dest(key) {
            Some(d) if view.healthy(key) && d.weight > 0 => State::Up,
            Some(_) => State::Down,
            None if on_failure == OnFailure::Remove => State::Down,
            None => State::Unknown,
        }
    }

    /// Installs `cfg`: keeps servers whose checks are unchanged, (re)starts the others.
    fn install(&mut self, cfg: Config, view: Option<&View>) {
        let mut old: HashMap<ServerKey, Monitored> =
            self.servers.drain(..).map(|s| (s.key, s)).collect();
        let old_svcs: HashMap<ServiceKey, Svc> =
            self.services.drain(..).map(|s| (s.key, s)).collect();
        let mut services = Vec::new();
        let mut servers = Vec::new();
        for s in &cfg.services {
            let key = s.key();
            let prev = old_svcs.get(&key);
            let fwd = view
                .and_then(|v| v.service(&key))
                .and_then(|st| st.dests.first().map(|d| d.conf.fwd))
                .or(prev.and_then(|p| p.fwd));
            let sorry_added = prev.and_then(|p| p.sorry_added).or_else(|| {
                let sorry = s.sorry_server?;
                view?.dest(&(key, sorry.ip(), sorry.port())).map(|_| sorry)
            });
            services.push(Svc {
                key,
                on_failure: s.on_failure,
                sorry: s.sorry_server,
                sorry_added,
                fwd,
                configured: true,
                quorum: s.quorum,
                // Same quorum: same state (a reload does not re-announce it).
                quorum_state: prev
                    .filter(|p| p.quorum == s.quorum)
                    .and_then(|p| p.quorum_state),
            });
            for rs in &s.servers {
                let skey = (key, rs.addr, rs.port);
                let dest = view.and_then(|v| v.dest(&skey)).copied();
                let applied = view.and_then(|v| {
                    v.dest(&skey)
                        .map(|_| v.healthy(&skey))
                        .or((s.on_failure == OnFailure::Remove).then_some(false))
                });
                match old.remove(&skey) {
                    Some(mut m) if m.checks == rs.checks => {
                        m.weight = rs.weight;
                        m.discovered = false;
                        servers.push(m);
                    }
                    Some(m) => {
                        // Changed checks: new counters, same state.
                        let state = self.health.remove_server(&m.target).unwrap_or_default();
                        self.engine.remove_target(m.target);
                        let target = self.start_target(skey, &rs.checks, state);
                        servers.push(Monitored {
                            weight: rs.weight,
                            checks: rs.checks.clone(),
                            target,
                            discovered: false,
                            ..m
                        });
                    }
                    None => {
                        let state = self.initial_state(&skey, s.on_failure, view);
                        let target = self.start_target(skey, &rs.checks, state);
                        servers.push(Monitored {
                            key: skey,
                            weight: rs.weight,
                            checks: rs.checks.clone(),
                            target,
                            discovered: false,
                            applied,
                            dest,
                            last: None,
                        });
                    }
                }
            }
        }
        // Servers no longer configured: stop checking them (a discovered one comes back
        // with the next read of the director's list, if the director still has it).
        for (_, m) in old {
            self.health.remove_server(&m.target);
            self.engine.remove_target(m.target);
        }
        // A sorry server of a service that was dropped or changed stays at the director
        // only if monitord added it: take it away.
        for (key, s) in old_svcs {
            let kept = services
                .iter()
                .any(|n: &Svc| n.key == key && n.sorry_added == s.sorry_added);
            if !kept && let Some(sorry) = s.sorry_added {
                let _ = self.link.request(Request::DelDest {
                    service: key,
                    addr: sorry.ip(),
                    port: sorry.port(),
                });
            }
        }
        self.services = services;
        self.servers = servers;
        self.cfg = cfg;
        self.reindex();
    }

    fn start_target(&mut self, key: ServerKey, checks: &[Check], state: State) -> TargetId {
        let target = self.engine.add_target(key.1, key.2, checks);
        self.health
            .add_server(target, checks.iter().map(CheckPolicy::of).collect(), state);
        target
    }

    /// Picks up servers (and services) the director has and monitord does not know; forgets
    /// discovered ones the director no longer has.
    fn discover(&mut self, view: &View) {
        let mut changed = false;
        for st in &view.services {
            let key = st.conf.key;
            if self.svc(&key).is_none() {
                self.services.push(Svc {
                    key,
                    on_failure: OnFailure::Quiesce,
                    sorry: None,
                    sorry_added: None,
                    fwd: st.dests.first().map(|d| d.conf.fwd),
                    configured: false,
                    quorum: None,
                    quorum_state: None,
                });
            }
            let svc = self.svc(&key).expect("just added");
            let sorry = svc.sorry.or(svc.sorry_added);
            for d in &st.dests {
                let skey = (key, d.conf.addr, d.conf.port);
                if sorry == Some(SocketAddr::new(d.conf.addr, d.conf.port)) {
                    continue;
                }
                if let Some(&i) = self.by_key.get(&skey) {
                    let m = &mut self.servers[i];
                    if m.discovered {
                        m.weight = d.conf.weight;
                    }
                    m.dest = Some(d.conf);
                    continue;
                }
                let checks = vec![Check::default_with(
                    key.protocol,
                    d.conf.port,
                    self.cfg.tcp_probe,
                )];
                let state = self.initial_state(&skey, OnFailure::Quiesce, Some(view));
                let target = self.start_target(skey, &checks, state);
                event!(
                    Level::Info,
                    "server_discovered",
                    service = service_name(&key),
                    server = AddrPort(skey.1, skey.2),
                    weight = d.conf.weight,
                    state = state
                );
                self.servers.push(Monitored {
                    key: skey,
                    weight: d.conf.weight,
                    checks,
                    target,
                    discovered: true,
                    applied: Some(view.healthy(&skey)),
                    dest: Some(d.conf),
                    last: None,
                });
                changed = true;
            }
        }
        let before = self.servers.len();
        let mut gone = Vec::new();
        self.servers.retain(|m| {
            let keep = !m.discovered || view.dest(&m.key).is_some();
            if !keep {
                gone.push((m.key, m.target));
            }
            keep
        });
        for (key, target) in gone {
            self.health.remove_server(&target);
            self.engine.remove_target(target);
            event!(
                Level::Info,
                "server_forgotten",
                service = service_name(&key.0),
                server = AddrPort(key.1, key.2)
            );
        }
        let live: HashSet<ServiceKey> = view.services.iter().map(|s| s.conf.key).collect();
        self.services
            .retain(|s| s.configured || live.contains(&s.key));
        if changed || self.servers.len() != before {
            self.reindex();
        }
    }

    /// Reads the director's services and health flags.
    fn read_view(&mut self) -> Option<View> {
        let services = match self.link.request(Request::ListServices { key: None }) {
            Ok(Response::Services(s)) => s,
            Ok(other) => {
                event!(
                    Level::Warn,
                    "director_answer",
                    request = "ListServices",
                    answer = format!("{other:?}")
                );
                return None;
            }
            Err(_) => return None,
        };
        let health = match self.link.request(Request::ListHealth) {
            Ok(Response::Health(h)) => h
                .into_iter()
                .map(|h| ((h.service, h.addr, h.port), h.healthy))
                .collect(),
            Ok(_) | Err(_) => return None,
        };
        for st in &services {
            if let Some(fwd) = st.dests.first().map(|d| d.conf.fwd)
                && let Some(svc) = self.svc_mut(&st.conf.key)
            {
                svc.fwd = Some(fwd);
            }
        }
        Some(View { services, health })
    }

    /// A new connection to the director: it may have restarted and forgotten everything.
    /// Servers without a verdict take the director's state; every verdict is applied again.
    fn resync(&mut self) {
        let Some(view) = self.read_view() else {
            return;
        };
        for i in 0..self.servers.len() {
            if self.state(i) == State::Unknown {
                let key = self.servers[i].key;
                let on_failure = self
                    .svc(&key.0)
                    .map_or(OnFailure::Quiesce, |s| s.on_failure);
                let state = self.initial_state(&key, on_failure, Some(&view));
                if state != State::Unknown {
                    let target = self.servers[i].target;
                    let checks = self.servers[i].checks.clone();
                    self.health.add_server(
                        target,
                        checks.iter().map(CheckPolicy::of).collect(),
                        state,
                    );
                }
            }
        }
        self.discover(&view);
        self.reconcile(&view, true);
        event!(
            Level::Info,
            "director_resync",
            servers = self.servers.len(),
            down = (0..self.servers.len())
                .filter(|&i| self.desired(i) == Some(false))
                .count()
        );
    }

    /// Makes the director agree with monitord's verdicts where it does not. `full` (after a
    /// reconnect) also re-adds removed servers and the sorry servers the director lacks.
    fn reconcile(&mut self, view: &View, full: bool) {
        for i in 0..self.servers.len() {
            let Some(want) = self.desired(i) else {
                continue;
            };
            let key = self.servers[i].key;
            let on_failure = self
                .svc(&key.0)
                .map_or(OnFailure::Quiesce, |s| s.on_failure);
            let present = view.dest(&key).is_some();
            let differs = match on_failure {
                OnFailure::Quiesce => present && view.healthy(&key) != want,
                OnFailure::Remove => full && present != want,
            };
            if differs {
                self.apply(i, true, Some(view));
            } else {
                self.servers[i].applied = Some(want);
            }
        }
        let keys: Vec<ServiceKey> = self.services.iter().map(|s| s.key).collect();
        for key in keys {
            if full
                && let Some(svc) = self.svc_mut(&key)
                && let Some(sorry) = svc.sorry_added
                && view.dest(&(key, sorry.ip(), sorry.port())).is_none()
            {
                // The director forgot it: add it again below if still wanted.
                svc.sorry_added = None;
            }
            self.update_quorum(&key);
            self.sorry(&key);
        }
    }

    /// Tells the director what server `i` should be, unless it was told already (`force`:
    /// tell it anyway).
    fn apply(&mut self, i: usize, force: bool, view: Option<&View>) {
        let Some(want) = self.desired(i) else {
            return;
        };
        if !force && self.servers[i].applied == Some(want) {
            return;
        }
        let key = self.servers[i].key;
        let (service, addr, port) = key;
        let on_failure = self
            .svc(&service)
            .map_or(OnFailure::Quiesce, |s| s.on_failure);
        let result = match on_failure {
            OnFailure::Quiesce => self
                .link
                .request(Request::SetHealth {
                    service,
                    addr,
                    port,
                    healthy: want,
                })
                .map(drop),
            OnFailure::Remove => {
                let present = match view {
                    Some(v) => v.dest(&key).is_some(),
                    None => self.servers[i].applied != Some(false),
                };
                if want && !present {
                    let fwd = self.svc(&service).and_then(|s| s.fwd);
                    let m = &self.servers[i];
                    let dest = DestConf {
                        weight: m.weight,
                        ..m.dest.unwrap_or(DestConf {
                            addr,
                            port,
                            fwd: fwd.unwrap_or(FwdMethod::Route),
                            weight: m.weight,
                            upper_threshold: 0,
                            lower_threshold: 0,
                        })
                    };
                    self.link
                        .request(Request::AddDest { service, dest })
                        .and_then(|_| {
                            // It may have been flagged unhealthy before it was removed.
                            self.link.request(Request::SetHealth {
                                service,
                                addr,
                                port,
                                healthy: true,
                            })
                        })
                        .map(drop)
                } else if want {
                    self.link
                        .request(Request::SetHealth {
                            service,
                            addr,
                            port,
                            healthy: true,
                        })
                        .map(drop)
                } else if present {
                    if let Some(d) = view.and_then(|v| v.dest(&key)) {
                        self.servers[i].dest = Some(*d);
                    }
                    self.link
                        .request(Request::DelDest {
                            service,
                            addr,
                            port,
                        })
                        .map(drop)
                } else {
                    Ok(())
                }
            }
        };
        let action = match (on_failure, want) {
            (OnFailure::Quiesce, true) => "restore",
            (OnFailure::Quiesce, false) => "quiesce",
            (OnFailure::Remove, true) => "add",
            (OnFailure::Remove, false) => "remove",
        };
        match result {
            Ok(()) => {
                self.servers[i].applied = Some(want);
                event!(
                    Level::Info,
                    "director_update",
                    service = service_name(&service),
                    server = AddrPort(addr, port),
                    action = action
                );
            }
            Err(e) => {
                // Down: re-applied on reconnect. Refused: logged; the next re-read retries.
                self.servers[i].applied = None;
                event!(
                    Level::Warn,
                    "director_update_failed",
                    service = service_name(&service),
                    server = AddrPort(addr, port),
                    action = action,
                    error = e
                );
            }
        }
    }

    /// Adds or removes the sorry server of `key` as its servers require.
    fn sorry(&mut self, key: &ServiceKey) {
        let Some(svc) = self.svc(key) else {
            return;
        };
        let mut total = 0;
        let mut verdicts = 0;
        let mut up = 0;
        for i in 0..self.servers.len() {
            if self.servers[i].key.0 == *key {
                total += 1;
                match self.desired(i) {
                    Some(true) => {
                        verdicts += 1;
                        up += 1;
                    }
                    Some(false) => verdicts += 1,
                    None => {}
                }
            }
        }
        let lost = svc.sorry.is_some() && svc.quorum_state.is_some_and(|q| !q.met());
        let want = svc
            .sorry
            .filter(|_| lost || (total > 0 && verdicts == total && up == 0));
        let have = svc.sorry_added;
        let fwd = svc.fwd.unwrap_or(FwdMethod::Route);
        let service = service_name(key);
        if let Some(old) = have
            && want != Some(old)
        {
            match self.link.request(Request::DelDest {
                service: *key,
                addr: old.ip(),
                port: old.port(),
            }) {
                Ok(_) | Err(LinkError::Refused { .. }) => {
                    if let Some(s) = self.svc_mut(key) {
                        s.sorry_added = None;
                    }
                    self.alert(
                        Alert::new(AlertKind::SorryServerOff)
                            .service(service.clone())
                            .server(old.to_string())
                            .reason(format!("{up} real server(s) up again")),
                    );
                }
                Err(e) => event!(
                    Level::Warn,
                    "director_update_failed",
                    service = service,
                    server = old,
                    action = "sorry_off",
                    error = e
                ),
            }
        }
        if let Some(new) = want
            && have != Some(new)
        {
            let dest = DestConf {
                addr: new.ip(),
                port: new.port(),
                fwd,
                weight: 1,
                upper_threshold: 0,
                lower_threshold: 0,
            };
            match self.link.request(Request::AddDest {
                service: *key,
                dest,
            }) {
                Ok(_) => {
                    if let Some(s) = self.svc_mut(key) {
                        s.sorry_added = Some(new);
                    }
                    self.alert(
                        Alert::new(AlertKind::SorryServerOn)
                            .service(service)
                            .server(new.to_string())
                            .reason(if lost {
                                "the service lost its quorum"
                            } else {
                                "every real server is down"
                            }),
                    );
                }
                Err(e) => event!(
                    Level::Warn,
                    "director_update_failed",
                    service = service,
                    server = new,
                    action = "sorry_on",
                    error = e
                ),
            }
        }
    }

    fn result(&mut self, r: CheckResult) {
        let Some(&i) = self.by_target.get(&r.target) else {
            return;
        };
        self.servers[i].last = Some((r.ok, r.detail.clone(), Instant::now()));
        let Some(t) = self.health.record(&r.target, r.check, r.ok, &r.detail) else {
            return;
        };
        let (service, addr, port) = self.servers[i].key;
        let sname = service_name(&service);
        let server = AddrPort(addr, port).to_string();
        let maint = self.maintenance.contains(&self.servers[i].key);
        match (t.from, t.to) {
            (_, State::Down) => {
                let reason = if maint {
                    format!("{} (in maintenance)", t.reason)
                } else {
                    t.reason.clone()
                };
                self.alert(Alert::server_down(sname, server, reason));
            }
            (State::Down, State::Up) => {
                let reason = if maint {
                    format!("{}; stays out: in maintenance", t.reason)
                } else {
                    t.reason.clone()
                };
                self.alert(Alert::server_up(sname, server).reason(reason));
            }
            (_, State::Up) => event!(
                Level::Info,
                "server_checked",
                service = sname,
                server = server,
                state = "up",
                reason = t.reason
            ),
            (_, State::Unknown) => {}
        }
        self.update_quorum(&service);
        self.apply(i, false, None);
        self.sorry(&service);
    }

    /// `Request::Maintenance`.
    fn set_maintenance(&mut self, key: ServerKey, on: bool) -> Response {
        let Some(&i) = self.by_key.get(&key) else {
            return err_response(
                ErrorCode::InvalidRequest,
                format!(
                    "{} is not a real server of {} that lvs-monitord checks",
                    AddrPort(key.1, key.2),
                    key.0
                ),
            );
        };
        let changed = if on {
            self.maintenance.insert(key)
        } else {
            self.maintenance.remove(&key)
        };
        if changed {
            event!(
                Level::Info,
                "maintenance",
                service = service_name(&key.0),
                server = AddrPort(key.1, key.2),
                on = if on { "yes" } else { "no" },
                state = self.state(i)
            );
            self.save_maintenance();
        }
        self.update_quorum(&key.0);
        self.apply(i, false, None);
        self.sorry(&key.0);
        if self.servers[i].applied != self.desired(i) && self.desired(i).is_some() {
            return err_response(
                ErrorCode::Internal,
                format!(
                    "maintenance is {} for {}, but the director could not be told yet (it will be on reconnect)",
                    if on { "on" } else { "off" },
                    AddrPort(key.1, key.2)
                ),
            );
        }
        Response::Ok
    }

    fn list(&self) -> Vec<MonitoredServer> {
        let now = Instant::now();
        self.servers
            .iter()
            .enumerate()
            .map(|(i, m)| MonitoredServer {
                service: m.key.0,
                addr: m.key.1,
                port: m.key.2,
                weight: m.weight,
                state: self.state(i).name().to_owned(),
                maintenance: self.maintenance.contains(&m.key),
                in_service: m.applied.unwrap_or(false),
                discovered: m.discovered,
                last_ok: m.last.as_ref().map(|l| l.0),
                last_detail: m.last.as_ref().map(|l| l.1.clone()).unwrap_or_default(),
                last_age_ms: m.last.as_ref().map(|l| {
                    u64::try_from(now.duration_since(l.2).as_millis()).unwrap_or(u64::MAX)
                }),
            })
            .collect()
    }

    fn maintenance_path(&self) -> PathBuf {
        self.rundir.join(MAINTENANCE_FILE)
    }

    /// `PROTO VIP:PORT RS:PORT` per line.
    fn load_maintenance(&self) -> HashSet<ServerKey> {
        let Ok(text) = std::fs::read_to_string(self.maintenance_path()) else {
            return HashSet::new();
        };
        text.lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let protocol = match f.next()? {
                    "tcp" => Protocol::Tcp,
                    "udp" => Protocol::Udp,
                    _ => return None,
                };
                let vip: SocketAddr = f.next()?.parse().ok()?;
                let rs: SocketAddr = f.next()?.parse().ok()?;
                Some((
                    ServiceKey {
                        protocol,
                        addr: vip.ip(),
                        port: vip.port(),
                    },
                    rs.ip(),
                    rs.port(),
                ))
            })
            .collect()
    }

    fn save_maintenance(&self) {
        let mut text = String::new();
        for (s, a, p) in &self.maintenance {
            text.push_str(&format!(
                "{} {} {}\n",
                s.protocol.name().to_ascii_lowercase(),
                SocketAddr::new(s.addr, s.port),
                SocketAddr::new(*a, *p)
            ));
        }
        let path = self.maintenance_path();
        let tmp = path.with_extension("tmp");
        if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path)) {
            event!(
                Level::Warn,
                "maintenance_not_saved",
                file = path.display(),
                error = e
            );
        }
    }

    /// SIGHUP with a valid file.
    pub fn reload(&mut self, cfg: Config) {
        if cfg.alert != self.cfg.alert {
            match Alerter::start(&cfg.alert) {
                Ok(new) => {
                    if let Some(old) = self.alerter.replace(new) {
                        old.shutdown(Duration::from_secs(1));
                    }
                }
                Err(e) => event!(Level::Error, "alerter_not_restarted", error = e),
            }
        }
        self.link.set_path(&director_socket(&cfg, &self.rundir));
        let view = match self.link.connect_if_due(Instant::now()) {
            Connect::No => None,
            _ => self.read_view(),
        };
        self.install(cfg, view.as_ref());
        if let Some(view) = &view {
            self.discover(view);
            self.reconcile(view, false);
        }
        self.update_quorums();
        event!(
            Level::Info,
            "monitor_reload",
            servers = self.servers.len(),
            services = self.services.len()
        );
    }

    /// SIGUSR1: every server's state in the log.
    pub fn dump(&self) {
        for s in self.list() {
            event!(
                Level::Info,
                "server_state",
                service = service_name(&s.service),
                server = AddrPort(s.addr, s.port),
                state = s.state,
                maintenance = s.maintenance,
                in_service = s.in_service,
                discovered = s.discovered,
                last = s.last_detail
            );
        }
    }

    /// SIGTERM: deliver queued alerts (within `[alert] shutdown_timeout_secs`).
    pub fn stop(&mut self) {
        if let Some(a) = self.alerter.take() {
            a.shutdown_default();
        }
    }
}

/// The control socket's handler.
struct Ctl<'a>(&'a mut Monitor);

impl Handler for Ctl<'_> {
    fn handle(&mut self, _peer: &PeerInfo, request: Request) -> Response {
        match request {
            Request::Ping => Response::Pong,
            Request::Maintenance {
                service,
                addr,
                port,
                on,
            } => self.0.set_maintenance((service, addr, port), on),
            Request::ListMonitored => Response::Monitored(self.0.list()),
            other => err_response(
                ErrorCode::Unsupported,
                format!("lvs-monitord does not handle {other:?}"),
            ),
        }
    }
}

/// The daemon's body, for [`lvs_common::run()`].
pub fn run(cfg: Config, startup: Startup<Config>) -> Result<(), BoxError> {
    let mut poll = Poll::new()?;
    let mut signals = Signals::new(poll.registry(), SIGNALS)?;
    let mut sc = ServerConfig::new("monitord", startup.rundir());
    sc.token_base = SERVER_BASE;
    let mut server = Server::bind(sc)?;
    server.register(poll.registry())?;
    let mut monitor = Monitor::new(cfg, startup.rundir())?;
    let fd = monitor.engine_fd();
    poll.registry()
        .register(&mut SourceFd(&fd), ENGINE, Interest::READABLE)?;

    let ctx = startup.ready();
    let mut events = Events::with_capacity(128);
    let mut results = Vec::new();
    loop {
        signals::poll(&mut poll, &mut events, Some(monitor.timeout()))?;
        let mut engine_woke = false;
        for ev in events.iter() {
            match ev.token() {
                ENGINE => engine_woke = true,
                SIGNALS => {
                    for s in signals.pending() {
                        match s {
                            Signal::Stop => {
                                monitor.stop();
                                return Ok(());
                            }
                            Signal::Reload => {
                                if let Some(new) = ctx.reload() {
                                    monitor.reload(new);
                                }
                            }
                            Signal::Dump => monitor.dump(),
                        }
                    }
                }
                t if server.owns(t) => server.ready(ev, &mut Ctl(&mut monitor)),
                _ => {}
            }
        }
        monitor.turn_woken(engine_woke, &mut results)?;
    }
}
