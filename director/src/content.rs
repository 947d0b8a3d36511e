//! The glue between the director and its layer-7 content switching (`lvs-l7`): starts the
//! engine from the configuration, reloads it on SIGHUP, and answers the control requests that
//! concern content services: they are listed by `lvsadm -L` beside the IP-load-balanced
//! services, and the monitor's health verdicts apply to their pool members.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use lvs_l7::{Engine, ServiceView};
use lvs_proto::director::{ContentEdit, ContentStatus};
use lvs_proto::{
    DestConf, DestHealth, DestStatus, ErrorCode, FwdMethod, Handler, PeerInfo, Protocol, Rates,
    Request, Response, ServiceConf, ServiceKey, ServiceStatus, Stats,
};
use lvs_sched_host::Registry;

use crate::config::Config;

/// The content-switching engine, started when the first content service is configured.
#[derive(Debug, Default)]
pub struct ContentSwitch {
    engine: Option<Engine>,
    /// The set in force, for run-time edits ([`Request::EditContent`]).
    services: Vec<lvs_l7::ContentServiceConfig>,
    pools: Vec<lvs_l7::PoolConfig>,
    /// For run-time edits: where schedulers come from and how many workers to start.
    registry: Option<Rc<RefCell<Registry>>>,
    workers: usize,
}

impl ContentSwitch {
    /// Start the services of `cfg`; an error (a scheduler that does not load, an address that
    /// cannot be bound) stops the director's start.
    pub fn start(cfg: &Config, registry: &Rc<RefCell<Registry>>) -> Result<Self, String> {
        let mut me = Self {
            registry: Some(Rc::clone(registry)),
            workers: cfg.worker_count(),
            ..Self::default()
        };
        me.apply(cfg, registry)?;
        Ok(me)
    }

    /// Apply the content services and pools of `cfg`: rule changes swap routing tables under
    /// open connections; nothing changes if the new set is refused.
    pub fn apply(
        &mut self,
        cfg: &Config,
        registry: &Rc<RefCell<Registry>>,
    ) -> Result<usize, String> {
        self.set(
            cfg.content_service.clone(),
            cfg.pool.clone(),
            cfg.worker_count(),
            registry,
        )
    }

    /// One `lvsadm` change ([`Request::EditContent`]): control's model of the set in force is
    /// edited, and the result applied whole, or refused whole.
    fn edit_content(&mut self, edit: ContentEdit) -> Result<(), String> {
        let Some(registry) = self.registry.clone() else {
            return Err("content switching is not running".into());
        };
        let mut model = crate::content_edit::model(&self.services, &self.pools);
        lvs_control::content::apply(
            &mut model,
            edit,
            &crate::content_edit::EngineChecks(&registry),
        )?;
        let (services, pools) = crate::content_edit::engine_config(&self.services, model);
        self.set(services, pools, self.workers, &registry)
            .map(|_| ())
    }

    /// Rules, pools and their counters ([`Request::ListContent`]).
    fn content_status(&self) -> ContentStatus {
        let views = self
            .engine
            .as_ref()
            .map(Engine::services)
            .unwrap_or_default();
        lvs_control::content::status(
            &crate::content_edit::model(&self.services, &self.pools),
            &crate::content_edit::EngineCounters(&views),
        )
    }

    /// Every pool member's health, for monitord and the web console ([`Request::ListHealth`]).
    fn health(&self) -> Vec<DestHealth> {
        let Some(e) = &self.engine else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for s in e.services() {
            let service = ServiceKey {
                protocol: Protocol::Tcp,
                addr: s.vip.ip(),
                port: s.vip.port(),
            };
            for p in &s.pools {
                for m in &p.members {
                    out.push(DestHealth {
                        service,
                        addr: m.addr.ip(),
                        port: m.addr.port(),
                        healthy: m.healthy,
                    });
                }
            }
        }
        out
    }

    fn set(
        &mut self,
        services: Vec<lvs_l7::ContentServiceConfig>,
        pools: Vec<lvs_l7::PoolConfig>,
        workers: usize,
        registry: &Rc<RefCell<Registry>>,
    ) -> Result<usize, String> {
        if self.engine.is_none() {
            if services.is_empty() {
                lvs_l7::config::validate(&services, &pools)?;
                self.services = services;
                self.pools = pools;
                return Ok(0);
            }
            self.engine = Some(Engine::new(workers).map_err(|e| e.to_string())?);
        }
        let Some(engine) = self.engine.as_mut() else {
            return Ok(0);
        };
        let mut plugins = |name: &str| registry.borrow_mut().get(name).map_err(|e| e.to_string());
        let n = engine
            .apply(&services, &pools, &mut plugins)
            .map_err(|e| e.to_string())?;
        self.services = services;
        self.pools = pools;
        Ok(n)
    }

    /// Stop every content service (SIGTERM).
    pub fn stop(&mut self) {
        if let Some(mut e) = self.engine.take() {
            e.stop();
        }
    }

    /// A control handler that answers for content services and passes everything else on.
    pub fn handler<'a, H: Handler>(&'a mut self, inner: &'a mut H) -> WithContent<'a, H> {
        WithContent {
            content: self,
            inner,
        }
    }

    /// Whether a content service listens on `key` (TCP, its address and port).
    pub fn serves(&self, key: &ServiceKey) -> bool {
        key.protocol == Protocol::Tcp
            && self
                .engine
                .as_ref()
                .is_some_and(|e| e.serves(SocketAddr::new(key.addr, key.port)))
    }

    fn listing(&self, only: Option<&ServiceKey>) -> Vec<ServiceStatus> {
        let Some(e) = &self.engine else {
            return Vec::new();
        };
        e.services()
            .iter()
            .filter(|s| only.is_none_or(|k| SocketAddr::new(k.addr, k.port) == s.vip))
            .map(status)
            .collect()
    }
}

/// A content service as `lvsadm -L` shows it: the scheduler column says `l7-http` or
/// `l7-tls-sni`, the flags list the pools (with their schedulers), each rule's hits and the
/// connections refused by the cap (when some were), and the
/// real servers are the pool members (forwarding `Masq`: the director connects to them).
fn status(s: &ServiceView) -> ServiceStatus {
    let pools: Vec<String> = s
        .pools
        .iter()
        .map(|p| format!("{}:{}", p.name, p.scheduler))
        .collect();
    let mut rules: Vec<String> = s
        .rules
        .iter()
        .map(|r| format!("{}->{}={}", r.name, r.pool, r.hits))
        .collect();
    if let Some(d) = &s.default_pool {
        rules.push(format!("default->{d}={}", s.default_hits));
    }
    let mut dests = Vec::new();
    for p in &s.pools {
        for m in &p.members {
            dests.push(DestStatus {
                conf: DestConf {
                    addr: m.addr.ip(),
                    port: m.addr.port(),
                    fwd: FwdMethod::Masq,
                    weight: if m.healthy { m.weight } else { 0 },
                    upper_threshold: 0,
                    lower_threshold: 0,
                },
                active_conns: m.active,
                inactive_conns: 0,
                persist_conns: 0,
                stats: Stats {
                    conns: m.requests,
                    ..Stats::default()
                },
                rates: Rates::default(),
            });
        }
    }
    ServiceStatus {
        conf: ServiceConf {
            key: ServiceKey {
                protocol: Protocol::Tcp,
                addr: s.vip.ip(),
                port: s.vip.port(),
            },
            scheduler: format!("l7-{}", s.mode.name()),
            sched_flags: format!(
                "pools {} rules {}{}",
                pools.join(","),
                rules.join(","),
                // Connections turned away by `max_connections`, once there are any.
                if s.refused > 0 {
                    format!(" refused {}", s.refused)
                } else {
                    String::new()
                }
            ),
            persistence: None,
        },
        stats: Stats {
            conns: s.requests,
            in_pkts: 0,
            out_pkts: 0,
            in_bytes: s.bytes_in,
            out_bytes: s.bytes_out,
        },
        rates: Rates::default(),
        dests,
    }
}

/// See [`ContentSwitch::handler`].
#[derive(Debug)]
pub struct WithContent<'a, H> {
    content: &'a mut ContentSwitch,
    inner: &'a mut H,
}

impl<H: Handler> Handler for WithContent<'_, H> {
    fn handle(&mut self, peer: &PeerInfo, request: Request) -> Response {
        match request {
            Request::ListServices { key: Some(k) } if self.content.serves(&k) => {
                Response::Services(self.content.listing(Some(&k)))
            }
            Request::ListServices { key: None } => {
                match self.inner.handle(peer, Request::ListServices { key: None }) {
                    Response::Services(mut v) => {
                        v.extend(self.content.listing(None));
                        Response::Services(v)
                    }
                    other => other,
                }
            }
            Request::SetHealth {
                service,
                addr,
                port,
                healthy,
            } if self.content.serves(&service) => {
                let vip = SocketAddr::new(service.addr, service.port);
                let server = SocketAddr::new(addr, port);
                let found = self
                    .content
                    .engine
                    .as_mut()
                    .is_some_and(|e| e.set_health(vip, server, healthy));
                if found {
                    lvs_common::event!(
                        log::Level::Info,
                        "content_health",
                        service = vip,
                        server = server,
                        healthy = healthy,
                    );
                    Response::Ok
                } else {
                    Response::Error {
                        code: ErrorCode::InvalidRequest,
                        message: format!("{server} is not in a pool of content service {vip}"),
                    }
                }
            }
            Request::EditContent(edit) => {
                let event = crate::content_edit::describe(&edit);
                match self.content.edit_content(*edit) {
                    Ok(()) => {
                        event.log(log::Level::Info);
                        Response::Ok
                    }
                    Err(message) => Response::Error {
                        code: ErrorCode::InvalidRequest,
                        message,
                    },
                }
            }
            Request::ListContent => Response::Content(self.content.content_status()),
            Request::ListHealth => match self.inner.handle(peer, Request::ListHealth) {
                Response::Health(mut v) => {
                    v.extend(self.content.health());
                    Response::Health(v)
                }
                other => other,
            },
            // A port cannot be both: the IP-LB dataplane would take the packets the content
            // service's listener is waiting for.
            Request::AddService(conf) if self.content.serves(&conf.key) => Response::Error {
                code: ErrorCode::InvalidRequest,
                message: format!(
                    "{} is a content service (from the director's configuration file)",
                    conf.key
                ),
            },
            other => self.inner.handle(peer, other),
        }
    }
}
