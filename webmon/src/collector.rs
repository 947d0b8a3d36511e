//! The collector: a thread that asks the daemons for their state every poll interval and
//! publishes one [`Snapshot`] for the web side to serve. Blocking Unix-socket clients live
//! here, off the HTTP event loop, so a slow daemon never stalls a browser.
//!
//! Sources: the director (`ListServices`, `ListHealth`, `GetRole`, `GetInfo`, and a
//! subscription to its events), lvs-monitord (`ListMonitored`), lvs-heartbeatd (see
//! `Collector::heartbeat`) and lvs-lockmgr (its client library: status and listing).
//! A daemon that is not running is shown as unreachable; the others are still shown.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lvs_lockclient::LockClient;
use lvs_proto::{
    AddrPort, Client, ClientOptions, Connect, DestHealth, DirectorLink, Event, HaRole, LinkError,
    LinkOptions, MonitoredServer, Rates, Request, Response, Role, ServiceKey, ServiceStatus, Stats,
    Topic,
};
use serde::Serialize;

/// Samples of rate history kept per real server (one per poll: 5 minutes at 1 s).
pub const HISTORY: usize = 300;
/// Recent events kept.
pub const MAX_EVENTS: usize = 200;

/// `tcp/VIP:PORT`, the id of a service in the API.
pub fn service_id(key: &ServiceKey) -> String {
    format!(
        "{}/{}",
        key.protocol.name().to_ascii_lowercase(),
        AddrPort(key.addr, key.port)
    )
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Counters as the API shows them.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct StatsView {
    /// Connections scheduled.
    pub conns: u64,
    /// Packets in.
    pub in_pkts: u64,
    /// Packets out.
    pub out_pkts: u64,
    /// Bytes in.
    pub in_bytes: u64,
    /// Bytes out.
    pub out_bytes: u64,
}

impl From<Stats> for StatsView {
    fn from(s: Stats) -> Self {
        StatsView {
            conns: s.conns,
            in_pkts: s.in_pkts,
            out_pkts: s.out_pkts,
            in_bytes: s.in_bytes,
            out_bytes: s.out_bytes,
        }
    }
}

/// Rates as the API shows them.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct RatesView {
    /// Connections per second.
    pub cps: u64,
    /// Packets per second in.
    pub in_pps: u64,
    /// Packets per second out.
    pub out_pps: u64,
    /// Bytes per second in.
    pub in_bps: u64,
    /// Bytes per second out.
    pub out_bps: u64,
}

impl From<Rates> for RatesView {
    fn from(r: Rates) -> Self {
        RatesView {
            cps: r.cps,
            in_pps: r.in_pps,
            out_pps: r.out_pps,
            in_bps: r.in_bps,
            out_bps: r.out_bps,
        }
    }
}

/// The last check of a real server.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CheckView {
    /// Passed or not.
    pub ok: Option<bool>,
    /// What it said.
    pub detail: String,
    /// How long ago, in ms.
    pub age_ms: Option<u64>,
}

/// Rate history, oldest first.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct History {
    /// Connections/s.
    pub cps: Vec<u64>,
    /// Packets/s, both ways.
    pub pps: Vec<u64>,
    /// Bytes/s, both ways.
    pub bps: Vec<u64>,
}

/// One real server.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ServerView {
    /// `ADDR:PORT`.
    pub id: String,
    /// Forwarding method (`Masq`, `Route`, `Tunnel`).
    pub fwd: String,
    /// The weight at the director.
    pub weight: u32,
    /// `up`, `down`, `quiesced` or `maintenance`.
    pub health: String,
    /// The director schedules it (its health flag).
    pub healthy: bool,
    /// In maintenance at monitord.
    pub maintenance: bool,
    /// The last check, if monitord checks it.
    pub last_check: Option<CheckView>,
    /// Established connections.
    pub active_conns: u32,
    /// Other connections.
    pub inactive_conns: u32,
    /// Persistence templates.
    pub persist_conns: u32,
    /// Counters.
    pub stats: StatsView,
    /// Rates.
    pub rates: RatesView,
    /// Rate history.
    pub history: History,
}

/// One virtual service.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ServiceView {
    /// `tcp/VIP:PORT`.
    pub id: String,
    /// `TCP` / `UDP`.
    pub protocol: String,
    /// `VIP:PORT`.
    pub address: String,
    /// Scheduler name.
    pub scheduler: String,
    /// Scheduler flags.
    pub flags: String,
    /// Persistence timeout (s), if persistent.
    pub persistent: Option<u32>,
    /// Counters.
    pub stats: StatsView,
    /// Rates.
    pub rates: RatesView,
    /// Real servers.
    pub servers: Vec<ServerView>,
}

/// One heartbeat medium.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MediumView {
    /// E.g. `udp 192.0.2.2:694` or `serial /dev/ttyS0`.
    pub name: String,
    /// Heartbeats arriving.
    pub up: bool,
    /// Detail.
    pub detail: String,
}

/// One director.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct DirectorView {
    /// Which one (`local`).
    pub name: String,
    /// Its control socket answered.
    pub reachable: bool,
    /// Why not.
    pub error: Option<String>,
    /// `active` / `standby`.
    pub role: Option<String>,
    /// The HA epoch, when heartbeatd reports one.
    pub epoch: Option<u64>,
    /// The virtual addresses (of its services, or as heartbeatd reports them).
    pub vips: Vec<String>,
    /// Heartbeat media, when heartbeatd reports them; in anycast mode the BGP sessions.
    pub media: Vec<MediumView>,
    /// Where role/epoch/media came from: `heartbeatd` or `director`.
    pub ha_source: String,
    /// lvs-heartbeatd's state: `init`, `master`, `backup` or `fault`; `anycast` in anycast
    /// mode (then `vips` say which are announced and `media` are the BGP sessions).
    pub ha_state: Option<String>,
    /// Why in fault.
    pub fault_reason: Option<String>,
    /// Holds its virtual addresses now.
    pub holds_vips: Option<bool>,
    /// Watched interfaces and their carrier.
    pub links: Vec<(String, bool)>,
    /// Connection sync, when the director has it configured.
    pub sync: Option<SyncView>,
    /// IPVS version string.
    pub version: Option<String>,
    /// Connection table entries.
    pub conn_count: Option<u64>,
    /// Connection table size.
    pub conn_table_size: Option<u64>,
}

/// The director's connection sync (`Request::SyncStatus`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct SyncView {
    /// Sending (active) rather than receiving.
    pub active: bool,
    /// The table is synced (always true on the active director).
    pub synced: bool,
    /// Peers and the multicast group.
    pub peers: Vec<String>,
    /// Datagrams sent.
    pub sent: u64,
    /// Authentic datagrams received.
    pub received: u64,
    /// Entries applied from received datagrams.
    pub entries_applied: u64,
    /// Datagrams rejected (bad MAC, replay, truncated, other).
    pub rejected: u64,
}

/// One lock holder or waiter.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LockView {
    /// Node of the session.
    pub node: u64,
    /// Session.
    pub session: u64,
    /// Granted mode.
    pub mode: Option<String>,
    /// Requested mode.
    pub requested: Option<String>,
    /// Fencing token.
    pub token: Option<u64>,
}

/// One locked resource.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ResourceView {
    /// Lockspace.
    pub lockspace: String,
    /// Name (lossy text).
    pub name: String,
    /// Holders.
    pub granted: Vec<LockView>,
    /// Converting and waiting.
    pub waiting: Vec<LockView>,
}

/// The lock manager.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct LockmgrView {
    /// Its socket answered.
    pub reachable: bool,
    /// Why not.
    pub error: Option<String>,
    /// `single-node` or the replication mode.
    pub mode: Option<String>,
    /// This node.
    pub node: Option<u64>,
    /// Members.
    pub members: Vec<u64>,
    /// Leader.
    pub leader: Option<u64>,
    /// Resources, sessions, granted, converting, waiting.
    pub counts: HashMap<String, u64>,
    /// Resources with their holders (at most 50).
    pub resources: Vec<ResourceView>,
}

/// Something that happened.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EventView {
    /// When (ms since the epoch).
    pub time_ms: u64,
    /// `director`, `webmon`, `admin` ...
    pub source: String,
    /// One line.
    pub text: String,
}

/// One daemon socket and whether it answered.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SourceView {
    /// `director`, `monitord` ...
    pub daemon: String,
    /// Its socket.
    pub socket: String,
    /// Answered at the last poll.
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
}

/// Everything the page shows.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// When it was taken.
    pub time_ms: u64,
    /// The poll interval, ms.
    pub interval_ms: u64,
    /// Directors.
    pub directors: Vec<DirectorView>,
    /// Virtual services.
    pub services: Vec<ServiceView>,
    /// The lock manager.
    pub lockmgr: LockmgrView,
    /// Recent events, oldest first.
    pub events: Vec<EventView>,
    /// The daemons' sockets.
    pub sources: Vec<SourceView>,
}

/// What the collector and the web side share.
#[derive(Debug, Default)]
pub struct Shared {
    /// The latest snapshot.
    pub snapshot: Arc<Snapshot>,
    /// Recent events (also copied into each snapshot).
    pub events: VecDeque<EventView>,
}

impl Shared {
    /// Adds an event.
    pub fn push_event(&mut self, source: &str, text: String) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(EventView {
            time_ms: now_ms(),
            source: source.to_owned(),
            text,
        });
    }
}

/// Where the collector finds the daemons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    /// lvs-director's socket.
    pub director: PathBuf,
    /// lvs-monitord's socket.
    pub monitord: PathBuf,
    /// lvs-heartbeatd's socket.
    pub heartbeatd: PathBuf,
    /// lvs-lockmgr's socket.
    pub lockmgr: PathBuf,
}

/// A running collector thread.
#[derive(Debug)]
pub struct CollectorThread {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
    /// New targets / interval for the thread (after a reload).
    pub settings: Arc<Mutex<(Targets, Duration)>>,
}

impl CollectorThread {
    /// Starts polling.
    pub fn start(
        targets: Targets,
        interval: Duration,
        shared: Arc<Mutex<Shared>>,
    ) -> std::io::Result<CollectorThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let settings = Arc::new(Mutex::new((targets, interval)));
        let (s2, set2) = (Arc::clone(&stop), Arc::clone(&settings));
        let handle = std::thread::Builder::new()
            .name("collector".into())
            .spawn(move || {
                let mut c = Collector::default();
                while !s2.load(Ordering::Relaxed) {
                    let (targets, interval) = match set2.lock() {
                        Ok(g) => g.clone(),
                        Err(_) => return,
                    };
                    let start = Instant::now();
                    c.poll(&targets, interval, &shared);
                    // Sleep in small steps so that a stop is quick.
                    while !s2.load(Ordering::Relaxed) && start.elapsed() < interval {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            })?;
        Ok(CollectorThread {
            stop,
            handle: Some(handle),
            settings,
        })
    }
}

impl Drop for CollectorThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The collector's own state between polls.
#[derive(Debug, Default)]
pub struct Collector {
    /// Requests to the director (made at the first poll; follows a moved socket).
    director: Option<DirectorLink>,
    /// A second connection to the director, subscribed to all its events.
    events: Option<DirectorLink>,
    /// `events` is subscribed (a new connection is not, until told again).
    subscribed: bool,
    heartbeatd: Option<Client>,
    monitord: Option<Client>,
    lockmgr: Option<LockClient>,
    history: HashMap<(String, String), VecDeque<[u64; 3]>>,
    last_health: HashMap<(String, String), String>,
    /// Whether each daemon answered at the last poll, to report changes as events.
    last_ok: HashMap<String, bool>,
}

/// The collector's links to the director: a request may take 2 s (this thread is off the
/// HTTP loop); no back-off of their own (one attempt per poll) and no log lines of their own:
/// the page shows the director unreachable and why, and the collector's events say when that
/// changes.
const DIRECTOR_LINK: LinkOptions = LinkOptions {
    role: Role::Webmon,
    timeout: Duration::from_secs(2),
    backoff_min: Duration::ZERO,
    backoff_max: Duration::ZERO,
    report: lvs_proto::ignore_link_report,
};

/// The link in `slot` (made on first use), pointed at `path`.
fn director_link<'a>(slot: &'a mut Option<DirectorLink>, path: &Path) -> &'a mut DirectorLink {
    let link = slot.get_or_insert_with(|| DirectorLink::new(path, DIRECTOR_LINK));
    link.set_path(path);
    link
}

/// One request to the director, connecting first if need be; the error as the page shows it.
fn ask_director(link: &mut DirectorLink, req: Request) -> Result<Response, String> {
    link.connect_if_due(Instant::now());
    link.request(req).map_err(|e| match e {
        LinkError::Refused { message, .. } => message,
        LinkError::Lost(e) => e.to_string(),
        LinkError::Down => link
            .unreachable_reason()
            .map_or_else(|| "not connected".to_owned(), ToString::to_string),
    })
}

fn opts() -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_secs(2),
        ..ClientOptions::default()
    }
}

fn ask(slot: &mut Option<Client>, path: &Path, req: Request) -> Result<Response, String> {
    if slot.is_none() {
        *slot = Some(Client::connect_with(path, Role::Webmon, opts()).map_err(|e| e.to_string())?);
    }
    let c = slot.as_mut().ok_or("not connected")?;
    match c.request(req) {
        Ok(Response::Error { message, .. }) => Err(message),
        Ok(r) => Ok(r),
        Err(e) => {
            *slot = None;
            Err(e.to_string())
        }
    }
}

fn event_text(e: &Event) -> String {
    match e {
        Event::ServerUp { service, server } => format!("{server} of {service} is up"),
        Event::ServerDown {
            service,
            server,
            reason,
        } => format!("{server} of {service} is down: {reason}"),
        Event::RoleChanged { role } => format!("director is now {}", role_name(*role)),
        Event::ConfigChanged { path, generation } => {
            format!("configuration {path} loaded (generation {generation})")
        }
    }
}

fn role_name(r: HaRole) -> &'static str {
    match r {
        HaRole::Active => "active",
        HaRole::Standby => "standby",
    }
}

impl Collector {
    /// One round: ask every daemon, build and publish the snapshot.
    pub fn poll(&mut self, t: &Targets, interval: Duration, shared: &Mutex<Shared>) {
        let mut new_events = Vec::new();
        let mut sources = Vec::new();
        let mut source = |daemon: &str, path: &PathBuf, r: &Result<(), String>| {
            sources.push(SourceView {
                daemon: daemon.to_owned(),
                socket: path.display().to_string(),
                ok: r.is_ok(),
                error: r.as_ref().err().cloned(),
            });
        };

        // The director.
        let director = director_link(&mut self.director, &t.director);
        let services = match ask_director(director, Request::ListServices { key: None }) {
            Ok(Response::Services(s)) => Ok(s),
            Ok(_) => Err("unexpected answer to ListServices".to_owned()),
            Err(e) => Err(e),
        };
        let health = match ask_director(director, Request::ListHealth) {
            Ok(Response::Health(h)) => h,
            _ => Vec::new(),
        };
        let role = match ask_director(director, Request::GetRole) {
            Ok(Response::Role(r)) => Some(r),
            _ => None,
        };
        let info = match ask_director(director, Request::GetInfo) {
            Ok(Response::Info(i)) => Some(i),
            _ => None,
        };
        let sync = match ask_director(director, Request::SyncStatus) {
            Ok(Response::Sync(s)) if s.enabled => Some(SyncView {
                active: s.active,
                synced: s.synced,
                peers: s.peers.clone(),
                sent: s.sent,
                received: s.received,
                entries_applied: s.entries_applied,
                rejected: s
                    .rejected_mac
                    .saturating_add(s.rejected_replay)
                    .saturating_add(s.rejected_truncated)
                    .saturating_add(s.rejected_other),
            }),
            _ => None,
        };
        source(
            "director",
            &t.director,
            &services.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        self.drain_events(&t.director, &mut new_events);

        // The monitor.
        let monitored = match ask(&mut self.monitord, &t.monitord, Request::ListMonitored) {
            Ok(Response::Monitored(m)) => Ok(m),
            Ok(_) => Err("unexpected answer to ListMonitored".to_owned()),
            Err(e) => Err(e),
        };
        source(
            "monitord",
            &t.monitord,
            &monitored.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        let monitored = monitored.unwrap_or_default();

        let services_ok = services.as_ref().ok().cloned().unwrap_or_default();
        let svc_views = self.services(&services_ok, &health, &monitored, &mut new_events);

        let mut director = DirectorView {
            name: "local".into(),
            reachable: services.is_ok(),
            error: services.as_ref().err().cloned(),
            role: role.map(|r| role_name(r).to_owned()),
            ha_source: "director".into(),
            version: info.as_ref().map(|i| i.version.clone()),
            conn_count: info.as_ref().map(|i| i.conn_count),
            conn_table_size: info.as_ref().map(|i| i.conn_table_size),
            sync,
            ..DirectorView::default()
        };
        let mut vips: Vec<String> = services_ok
            .iter()
            .map(|s| s.conf.key.addr.to_string())
            .collect();
        vips.sort();
        vips.dedup();
        director.vips = vips;
        let mut directors = vec![];
        let hb = self.heartbeat(&t.heartbeatd, &mut director, &mut directors);
        source("heartbeatd", &t.heartbeatd, &hb);
        directors.insert(0, director);

        // The lock manager.
        let lockmgr = self.lockmgr(&t.lockmgr);
        source(
            "lockmgr",
            &t.lockmgr,
            &match &lockmgr.error {
                None => Ok(()),
                Some(e) => Err(e.clone()),
            },
        );

        for src in &sources {
            let before = self.last_ok.insert(src.daemon.clone(), src.ok);
            if before != Some(src.ok) {
                let text = if src.ok {
                    format!("lvs-{} answers on {}", src.daemon, src.socket)
                } else {
                    format!(
                        "lvs-{} unreachable: {}",
                        src.daemon,
                        src.error.as_deref().unwrap_or("no answer")
                    )
                };
                new_events.push(("webmon", text));
            }
        }
        let Ok(mut sh) = shared.lock() else { return };
        for (src, text) in new_events {
            sh.push_event(src, text);
        }
        let snap = Snapshot {
            time_ms: now_ms(),
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(1000),
            directors,
            services: svc_views,
            lockmgr,
            events: sh.events.iter().cloned().collect(),
            sources,
        };
        sh.snapshot = Arc::new(snap);
    }

    fn drain_events(&mut self, path: &Path, out: &mut Vec<(&'static str, String)>) {
        let link = director_link(&mut self.events, path);
        match link.connect_if_due(Instant::now()) {
            Connect::No => return,
            // Perhaps a restarted director: it knows no subscription of ours.
            Connect::Fresh => self.subscribed = false,
            Connect::Already => {}
        }
        if !self.subscribed {
            let subscribe = Request::Subscribe {
                topics: Topic::ALL.to_vec(),
            };
            self.subscribed = matches!(link.request(subscribe), Ok(Response::Ok));
            if !self.subscribed {
                return;
            }
        }
        for _ in 0..100 {
            match link.next_event(Duration::from_millis(1)) {
                Ok(Some(e)) => out.push(("director", event_text(&e))),
                // A lost link reconnects at the next poll.
                Ok(None) | Err(_) => return,
            }
        }
    }

    fn services(
        &mut self,
        services: &[ServiceStatus],
        health: &[DestHealth],
        monitored: &[MonitoredServer],
        events: &mut Vec<(&'static str, String)>,
    ) -> Vec<ServiceView> {
        let mut seen = Vec::new();
        let mut out = Vec::new();
        for s in services {
            let sid = service_id(&s.conf.key);
            let mut servers = Vec::new();
            for d in &s.dests {
                let c = d.conf;
                let rid = AddrPort(c.addr, c.port).to_string();
                let healthy = health
                    .iter()
                    .find(|h| h.service == s.conf.key && h.addr == c.addr && h.port == c.port)
                    .is_none_or(|h| h.healthy);
                let m = monitored
                    .iter()
                    .find(|m| m.service == s.conf.key && m.addr == c.addr && m.port == c.port);
                let maintenance = m.is_some_and(|m| m.maintenance);
                let checks_down = m.is_some_and(|m| m.state == "down");
                let state = if maintenance {
                    "maintenance"
                } else if !healthy || checks_down {
                    "down"
                } else if c.weight == 0 {
                    "quiesced"
                } else {
                    "up"
                };
                let key = (sid.clone(), rid.clone());
                let hist = self.history.entry(key.clone()).or_default();
                if hist.len() >= HISTORY {
                    hist.pop_front();
                }
                let r = d.rates;
                hist.push_back([
                    r.cps,
                    r.in_pps.saturating_add(r.out_pps),
                    r.in_bps.saturating_add(r.out_bps),
                ]);
                let history = History {
                    cps: hist.iter().map(|h| h[0]).collect(),
                    pps: hist.iter().map(|h| h[1]).collect(),
                    bps: hist.iter().map(|h| h[2]).collect(),
                };
                match self.last_health.insert(key.clone(), state.to_owned()) {
                    Some(old) if old != state => {
                        events.push(("webmon", format!("{rid} of {sid}: {old} -> {state}")));
                    }
                    _ => {}
                }
                seen.push(key);
                servers.push(ServerView {
                    id: rid,
                    fwd: c.fwd.name().to_owned(),
                    weight: c.weight,
                    health: state.to_owned(),
                    healthy,
                    maintenance,
                    last_check: m.map(|m| CheckView {
                        ok: m.last_ok,
                        detail: m.last_detail.clone(),
                        age_ms: m.last_age_ms,
                    }),
                    active_conns: d.active_conns,
                    inactive_conns: d.inactive_conns,
                    persist_conns: d.persist_conns,
                    stats: d.stats.into(),
                    rates: d.rates.into(),
                    history,
                });
            }
            out.push(ServiceView {
                id: sid,
                protocol: s.conf.key.protocol.name().to_owned(),
                address: AddrPort(s.conf.key.addr, s.conf.key.port).to_string(),
                scheduler: s.conf.scheduler.clone(),
                flags: s.conf.sched_flags.clone(),
                persistent: s.conf.persistence.map(|p| p.timeout_secs),
                stats: s.stats.into(),
                rates: s.rates.into(),
                servers,
            });
        }
        self.history.retain(|k, _| seen.contains(k));
        self.last_health.retain(|k, _| seen.contains(k));
        out
    }

    /// lvs-heartbeatd's HA status (`Request::HaStatus`): state, epoch, virtual addresses,
    /// media and links of this director, and the peer director as heartbeatd last heard it
    /// (pushed to `peers`). Without heartbeatd the page shows the director's own `GetRole`
    /// (`ha_source = "director"`).
    fn heartbeat(
        &mut self,
        path: &Path,
        director: &mut DirectorView,
        peers: &mut Vec<DirectorView>,
    ) -> Result<(), String> {
        if !path.exists() {
            self.heartbeatd = None;
            return Err("not running (no socket)".into());
        }
        let h = match ask(&mut self.heartbeatd, path, Request::HaStatus)? {
            Response::HaStatus(h) => h,
            other => return Err(format!("unexpected answer to HaStatus: {other:?}")),
        };
        director.name = h.node.clone();
        director.ha_source = "heartbeatd".into();
        director.ha_state = Some(h.state.clone());
        director.fault_reason = (!h.fault_reason.is_empty()).then(|| h.fault_reason.clone());
        director.epoch = Some(h.epoch);
        director.holds_vips = Some(h.holds_vips);
        if !h.vips.is_empty() {
            director.vips = h.vips.clone();
        }
        director.links = h.links.clone();
        director.media = h
            .media
            .iter()
            .map(|m| {
                let mut detail = format!("{} accepted", m.accepted);
                if let Some(ms) = m.last_heard_ms {
                    detail.push_str(&format!(", last heard {ms} ms ago"));
                }
                // Only the reasons that happened: a row of zeros hides the one that matters.
                for (why, n) in m.rejected.iter().filter(|(_, n)| *n > 0) {
                    detail.push_str(&format!(", {n} rejected ({why})"));
                }
                MediumView {
                    name: m.name.clone(),
                    up: m.up,
                    detail,
                }
            })
            .collect();
        if h.state == "anycast" {
            self.anycast(path, director)?;
        }
        if let Some(p) = &h.peer {
            peers.push(DirectorView {
                name: format!("node-{} (peer)", p.node_id),
                reachable: p.alive,
                error: (!p.alive).then(|| "not heard within the deadtime".to_owned()),
                epoch: Some(p.epoch),
                ha_source: "heartbeatd".into(),
                ha_state: Some(p.state.clone()),
                media: director.media.clone(),
                ..DirectorView::default()
            });
        }
        Ok(())
    }

    /// lvs-heartbeatd in anycast mode (`Request::AnycastStatus`): the virtual addresses with
    /// whether this director announces them (and why not), the routing daemon's BGP sessions
    /// in place of the heartbeat media.
    fn anycast(&mut self, path: &Path, director: &mut DirectorView) -> Result<(), String> {
        let a = match ask(&mut self.heartbeatd, path, Request::AnycastStatus)? {
            Response::Anycast(a) => a,
            other => return Err(format!("unexpected answer to AnycastStatus: {other:?}")),
        };
        director.vips = a
            .routes
            .iter()
            .map(|r| {
                if r.announced {
                    format!("{} announced", r.prefix)
                } else {
                    format!("{} withdrawn ({})", r.prefix, r.reason)
                }
            })
            .collect();
        director.media = a
            .sessions
            .iter()
            .map(|s| MediumView {
                name: format!("{} BGP {}", a.daemon, s.name),
                up: s.up,
                detail: s.state.clone(),
            })
            .collect();
        if !a.daemon_up {
            director.media.push(MediumView {
                name: a.daemon.clone(),
                up: false,
                detail: "control socket not answering".into(),
            });
        }
        Ok(())
    }

    fn lockmgr(&mut self, path: &Path) -> LockmgrView {
        let mut v = LockmgrView::default();
        if self.lockmgr.is_none() {
            if !path.exists() {
                v.error = Some("not running (no socket)".into());
                return v;
            }
            match LockClient::connect_socket(path, "lvs-webmon") {
                Ok(c) => self.lockmgr = Some(c),
                Err(e) => {
                    v.error = Some(e.to_string());
                    return v;
                }
            }
        }
        let Some(c) = self.lockmgr.as_mut() else {
            return v;
        };
        let status = match c.status() {
            Ok(s) => s,
            Err(e) => {
                self.lockmgr = None;
                v.error = Some(e.to_string());
                return v;
            }
        };
        v.reachable = true;
        v.mode = Some(status.mode.clone());
        v.node = Some(status.node.0);
        v.members = status.members.iter().map(|n| n.0).collect();
        v.leader = status.leader.map(|n| n.0);
        let k = &status.counts;
        for (name, n) in [
            ("lockspaces", k.lockspaces),
            ("resources", k.resources),
            ("sessions", k.sessions),
            ("granted", k.granted),
            ("converting", k.converting),
            ("waiting", k.waiting),
            ("clients", status.clients),
        ] {
            v.counts.insert(name.to_owned(), n);
        }
        if let Ok(list) = c.list(None) {
            let lock = |l: &lvs_lockclient::LockInfo| LockView {
                node: l.node.0,
                session: l.lock.session.0,
                mode: l.granted.map(|m| m.to_string()),
                requested: l.requested.map(|m| m.to_string()),
                token: l.token,
            };
            v.resources = list
                .resources
                .iter()
                .take(50)
                .map(|r| ResourceView {
                    lockspace: r.lockspace.clone(),
                    name: String::from_utf8_lossy(&r.name).into_owned(),
                    granted: r.granted.iter().map(lock).collect(),
                    waiting: r.converting.iter().chain(&r.waiting).map(lock).collect(),
                })
                .collect();
        }
        v
    }
}

/// The key of a service id (`tcp/VIP:PORT`) for the API.
pub fn parse_service_id(id: &str) -> Option<ServiceKey> {
    let (proto, addr) = id.split_once('/')?;
    let protocol = match proto.to_ascii_lowercase().as_str() {
        "tcp" => lvs_proto::Protocol::Tcp,
        "udp" => lvs_proto::Protocol::Udp,
        _ => return None,
    };
    let sa: std::net::SocketAddr = addr.parse().ok()?;
    Some(ServiceKey {
        protocol,
        addr: sa.ip(),
        port: sa.port(),
    })
}

#[cfg(test)]
mod tests {
    use lvs_proto::server::{Handler, Server, ServerConfig, ServerThread};
    use lvs_proto::{AccessPolicy, ErrorCode, PeerInfo};
    use lvs_testsupport::wait_for;

    use super::*;

    /// A director with no services that refuses everything else.
    struct EmptyDirector;

    impl Handler for EmptyDirector {
        fn handle(&mut self, _peer: &PeerInfo, request: Request) -> Response {
            match request {
                Request::ListServices { .. } => Response::Services(Vec::new()),
                _ => Response::Error {
                    code: ErrorCode::Unsupported,
                    message: "unsupported".into(),
                },
            }
        }
    }

    fn serve(rundir: &Path) -> ServerThread<EmptyDirector> {
        let mut config = ServerConfig::new("director", rundir);
        config.access = AccessPolicy::root_and_group(nix::unistd::getgid());
        Server::bind(config).unwrap().spawn(EmptyDirector).unwrap()
    }

    fn poll(c: &mut Collector, t: &Targets, shared: &Mutex<Shared>) -> Arc<Snapshot> {
        c.poll(t, Duration::from_secs(1), shared);
        Arc::clone(&shared.lock().unwrap().snapshot)
    }

    fn director_events(shared: &Mutex<Shared>) -> usize {
        let sh = shared.lock().unwrap();
        sh.events.iter().filter(|e| e.source == "director").count()
    }

    /// An IPv6 service and real server as the JSON API shows them: bracketed `[ADDR]:PORT`,
    /// and the service id the API hands out leads back to the same service.
    #[test]
    fn ipv6_services_are_rendered_bracketed_in_the_json_api() {
        let vip: std::net::IpAddr = "2001:db8::1".parse().unwrap();
        let rip: std::net::IpAddr = "2001:db8:1::7".parse().unwrap();
        let key = ServiceKey {
            protocol: lvs_proto::Protocol::Tcp,
            addr: vip,
            port: 80,
        };
        let status = ServiceStatus {
            conf: lvs_proto::ServiceConf {
                key,
                scheduler: "rr".into(),
                sched_flags: String::new(),
                persistence: None,
            },
            stats: Stats::default(),
            rates: Rates::default(),
            dests: vec![lvs_proto::DestStatus {
                conf: lvs_proto::DestConf {
                    addr: rip,
                    port: 8080,
                    fwd: lvs_proto::FwdMethod::Masq,
                    weight: 1,
                    upper_threshold: 0,
                    lower_threshold: 0,
                },
                active_conns: 0,
                inactive_conns: 0,
                persist_conns: 0,
                stats: Stats::default(),
                rates: Rates::default(),
            }],
        };
        let mut c = Collector::default();
        let mut events = Vec::new();
        let views = c.services(&[status], &[], &[], &mut events);
        let json = serde_json::to_value(&views).unwrap();
        assert_eq!(json[0]["id"], "tcp/[2001:db8::1]:80", "{json}");
        assert_eq!(json[0]["address"], "[2001:db8::1]:80", "{json}");
        assert_eq!(
            json[0]["servers"][0]["id"], "[2001:db8:1::7]:8080",
            "{json}"
        );
        assert_eq!(parse_service_id(json[0]["id"].as_str().unwrap()), Some(key));
    }

    #[test]
    fn the_director_away_then_back_with_its_events_subscribed_again() {
        let rundir =
            std::env::temp_dir().join(format!("lvs-webmon-collector-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&rundir);
        lvs_proto::rundir::ensure(&rundir, None).unwrap();
        let t = Targets {
            director: rundir.join("director.sock"),
            monitord: rundir.join("monitord.sock"),
            heartbeatd: rundir.join("heartbeatd.sock"),
            lockmgr: rundir.join("lockmgr.sock"),
        };
        let shared = Mutex::new(Shared::default());
        let mut c = Collector::default();

        // Away: shown unreachable, with the connect error that says what to check.
        let snap = poll(&mut c, &t, &shared);
        let error = snap.directors[0].error.clone().unwrap();
        assert!(!snap.directors[0].reachable);
        assert!(error.contains("is lvs-director running"), "{error}");

        // There, and its events reach the page.
        let server = serve(&rundir);
        assert!(poll(&mut c, &t, &shared).directors[0].reachable);
        let role = Event::RoleChanged {
            role: HaRole::Standby,
        };
        server.broadcast(role.clone());
        wait_for("the first event", Duration::from_secs(5), || {
            poll(&mut c, &t, &shared);
            (director_events(&shared) == 1).then_some(())
        });

        // Restarted: it knows no subscription; the collector reconnects and subscribes again.
        server.stop();
        assert!(!poll(&mut c, &t, &shared).directors[0].reachable);
        let server = serve(&rundir);
        wait_for("the director again", Duration::from_secs(5), || {
            poll(&mut c, &t, &shared).directors[0]
                .reachable
                .then_some(())
        });
        wait_for("an event after the restart", Duration::from_secs(5), || {
            server.broadcast(role.clone());
            poll(&mut c, &t, &shared);
            (director_events(&shared) >= 2).then_some(())
        });
        drop(server);
        let _ = std::fs::remove_dir_all(&rundir);
    }
}
