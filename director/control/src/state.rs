//! The authoritative configuration: virtual services and their real servers, with IPVS's
//! rules for what may be added, changed and removed.
//!
//! Every change returns the [`ConfigChange`]s the dataplane must apply; a refused change
//! returns a [`ControlError`] and leaves the state as it was.

use std::net::IpAddr;

use lvs_proto::{
    AddrPort, CONNS_PAGE_MAX, ConnCursor, ConnEntry, DestConf, DestStatus, ErrorCode, FwdMethod,
    Request, Response, ServiceConf, ServiceKey, ServiceStatus, Timeouts,
};

use crate::error::ControlError;
use crate::hooks::{SCHEDULER_NOT_FOUND, SchedulerCheck, StatsSource};
use crate::sched_flags;

/// The longest timeout IPVS accepts anywhere: 31 days, in seconds.
pub const MAX_TIMEOUT: u32 = 86400 * 31;
/// The largest weight ipvsadm accepts.
pub const MAX_WEIGHT: u32 = 65535;

/// What the dataplane must do after a successful change. Deleting a service implies
/// deleting its real servers; no separate `DestDeleted` is sent for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    /// A new virtual service, with no real servers yet.
    ServiceAdded(ServiceConf),
    /// A service's scheduler or persistence changed; its real servers stay.
    ServiceEdited(ServiceConf),
    /// A service and all its real servers are gone.
    ServiceDeleted(ServiceKey),
    /// A real server joined `service`.
    DestAdded {
        /// The service.
        service: ServiceKey,
        /// The new server.
        dest: DestConf,
    },
    /// A real server's settings changed (weight, thresholds, forwarding method).
    DestEdited {
        /// The service.
        service: ServiceKey,
        /// The server's new settings.
        dest: DestConf,
    },
    /// A real server left `service`: its connections expire.
    DestDeleted {
        /// The service.
        service: ServiceKey,
        /// The server's address.
        addr: IpAddr,
        /// The server's port.
        port: u16,
    },
    /// The connection timeouts are now these.
    TimeoutsChanged(Timeouts),
    /// Zero the counters of one service (and its servers), or of all.
    Zero(Option<ServiceKey>),
    /// Every service is gone.
    Cleared,
    /// Active (forward) or standby (forward nothing).
    RoleChanged(lvs_proto::HaRole),
}

/// One virtual service and its real servers, in the order they were added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The service's settings.
    pub conf: ServiceConf,
    /// Its real servers.
    pub dests: Vec<DestConf>,
}

/// The director's configuration: ordered services, ordered real servers, timeouts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ControlState {
    services: Vec<Service>,
    timeouts: Timeouts,
    /// Real servers the monitor reported unhealthy: scheduled as weight 0 until it reports
    /// them healthy again. Kept apart from the configuration, so that the configured weight
    /// comes back and a reloaded rules file does not undo the monitor's verdict.
    down: Vec<(ServiceKey, IpAddr, u16)>,
    /// Standby: forward nothing (the heartbeat daemon decides).
    standby: bool,
}

/// The result of one change: what the dataplane must do.
pub type Changes = Result<Vec<ConfigChange>, ControlError>;

/// Why [`ControlState::change`] did nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The model refused the change.
    Refused(ControlError),
    /// The request does not change configuration (a listing, `Ping`, ...).
    NotAChange(Box<Request>),
}

impl ControlState {
    /// No services, IPVS's default timeouts.
    pub fn new() -> ControlState {
        ControlState::default()
    }

    /// The services, in the order they were added.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// One service.
    pub fn service(&self, key: &ServiceKey) -> Option<&Service> {
        self.services.iter().find(|s| s.conf.key == *key)
    }

    /// The connection timeouts.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// Answers one control request: changes are applied and returned for the dataplane,
    /// listings are filled from `stats`. Requests that are not the director's are answered
    /// with `Unsupported`.
    pub fn apply(
        &mut self,
        request: Request,
        sched: &dyn SchedulerCheck,
        stats: &dyn StatsSource,
    ) -> (Response, Vec<ConfigChange>) {
        let response = match request {
            Request::ListServices { key } => match self.list(key.as_ref(), stats) {
                Ok(list) => Response::Services(list),
                Err(e) => e.to_response(),
            },
            Request::ListConns => Response::Conns(stats.connections()),
            Request::ListConnsPage { after, max } => conns_page(stats.connections(), after, max),
            Request::GetTimeouts => Response::Timeouts(self.timeouts),
            Request::GetInfo => Response::Info(stats.info()),
            Request::Ping => Response::Pong,
            Request::ListHealth => Response::Health(self.health()),
            Request::GetRole => Response::Role(self.role()),
            Request::SyncStatus => Response::Sync(stats.sync_status().unwrap_or_else(|| {
                lvs_proto::director::SyncStatus {
                    active: self.role() == lvs_proto::HaRole::Active,
                    ..Default::default()
                }
            })),
            other => match self.change(other, sched) {
                Ok(changes) => return (Response::Ok, changes),
                Err(Refusal::Refused(e)) => e.to_response(),
                Err(Refusal::NotAChange(other)) => Response::Error {
                    code: ErrorCode::Unsupported,
                    message: format!("the director's model does not handle {other:?}"),
                },
            },
        };
        (response, Vec::new())
    }

    /// Carries out a request that changes configuration (`AddService` ... `SetTimeouts`).
    pub fn change(
        &mut self,
        request: Request,
        sched: &dyn SchedulerCheck,
    ) -> Result<Vec<ConfigChange>, Refusal> {
        let changes = match request {
            Request::AddService(conf) => self.add_service(conf, sched),
            Request::EditService(conf) => self.edit_service(conf, sched),
            Request::DelService(key) => self.del_service(&key),
            Request::Clear => Ok(self.clear()),
            Request::AddDest { service, dest } => self.add_dest(&service, dest),
            Request::EditDest { service, dest } => self.edit_dest(&service, dest),
            Request::DelDest {
                service,
                addr,
                port,
            } => self.del_dest(&service, addr, port),
            Request::Zero { key } => self.zero(key.as_ref()),
            Request::SetTimeouts(t) => self.set_timeouts(t),
            Request::SetHealth {
                service,
                addr,
                port,
                healthy,
            } => self.set_health(&service, addr, port, healthy),
            Request::SetRole { role } => Ok(self.set_role(role)),
            other => return Err(Refusal::NotAChange(Box::new(other))),
        };
        changes
            .map(|c| self.effective_changes(c))
            .map_err(Refusal::Refused)
    }

    /// Whether the monitor reported this real server unhealthy.
    pub fn is_down(&self, key: &ServiceKey, addr: IpAddr, port: u16) -> bool {
        self.down.contains(&(*key, addr, port))
    }

    /// A real server as the dataplane must schedule it: weight 0 while unhealthy.
    pub fn effective(&self, key: &ServiceKey, dest: DestConf) -> DestConf {
        if self.is_down(key, dest.addr, dest.port) {
            DestConf { weight: 0, ..dest }
        } else {
            dest
        }
    }

    /// Rewrite the real servers in `changes` to their effective settings, and forget the
    /// health of servers that are gone.
    fn effective_changes(&mut self, mut changes: Vec<ConfigChange>) -> Vec<ConfigChange> {
        let services = &self.services;
        self.down.retain(|(k, a, p)| {
            services
                .iter()
                .any(|s| s.conf.key == *k && s.find_dest(*a, *p).is_some())
        });
        for c in &mut changes {
            if let ConfigChange::DestAdded { service, dest }
            | ConfigChange::DestEdited { service, dest } = c
            {
                *dest = self.effective(service, *dest);
            }
        }
        changes
    }

    /// The monitor's verdict on a real server.
    pub fn set_health(
        &mut self,
        key: &ServiceKey,
        addr: IpAddr,
        port: u16,
        healthy: bool,
    ) -> Changes {
        let service = self.service(key).ok_or(ControlError::NoSuchService(*key))?;
        let at = service
            .find_dest(addr, port)
            .ok_or(ControlError::NoSuchDest(AddrPort(addr, port)))?;
        let conf = service.dests[at];
        let was_down = self.is_down(key, addr, port);
        if was_down != healthy {
            return Ok(Vec::new());
        }
        if healthy {
            self.down.retain(|d| *d != (*key, addr, port));
        } else {
            self.down.push((*key, addr, port));
        }
        Ok(vec![ConfigChange::DestEdited {
            service: *key,
            dest: conf,
        }])
    }

    /// Every real server's health, in configuration order.
    pub fn health(&self) -> Vec<lvs_proto::DestHealth> {
        self.services
            .iter()
            .flat_map(|s| {
                s.dests.iter().map(|d| lvs_proto::DestHealth {
                    service: s.conf.key,
                    addr: d.addr,
                    port: d.port,
                    healthy: !self.is_down(&s.conf.key, d.addr, d.port),
                })
            })
            .collect()
    }

    /// Active or standby.
    pub fn role(&self) -> lvs_proto::HaRole {
        if self.standby {
            lvs_proto::HaRole::Standby
        } else {
            lvs_proto::HaRole::Active
        }
    }

    /// The heartbeat daemon's decision.
    pub fn set_role(&mut self, role: lvs_proto::HaRole) -> Vec<ConfigChange> {
        let standby = role == lvs_proto::HaRole::Standby;
        if standby == self.standby {
            return Vec::new();
        }
        self.standby = standby;
        vec![ConfigChange::RoleChanged(role)]
    }

    /// `-A`: adds a service with no real servers.
    pub fn add_service(&mut self, conf: ServiceConf, sched: &dyn SchedulerCheck) -> Changes {
        let conf = check_service(conf, sched)?;
        if self.service(&conf.key).is_some() {
            return Err(ControlError::ServiceExists(conf.key));
        }
        self.services.push(Service {
            conf: conf.clone(),
            dests: Vec::new(),
        });
        Ok(vec![ConfigChange::ServiceAdded(conf)])
    }

    /// `-E`: replaces a service's scheduler and persistence (all of them, as ipvsadm does:
    /// what is not given returns to its default). Its real servers stay.
    pub fn edit_service(&mut self, conf: ServiceConf, sched: &dyn SchedulerCheck) -> Changes {
        let conf = check_service(conf, sched)?;
        let service = self
            .service_mut(&conf.key)
            .ok_or(ControlError::NoSuchService(conf.key))?;
        service.conf = conf.clone();
        Ok(vec![ConfigChange::ServiceEdited(conf)])
    }

    /// `-D`: deletes a service and its real servers.
    pub fn del_service(&mut self, key: &ServiceKey) -> Changes {
        let at = self
            .position(key)
            .ok_or(ControlError::NoSuchService(*key))?;
        self.services.remove(at);
        Ok(vec![ConfigChange::ServiceDeleted(*key)])
    }

    /// `-C`: deletes every service.
    pub fn clear(&mut self) -> Vec<ConfigChange> {
        self.services.clear();
        vec![ConfigChange::Cleared]
    }

    /// `-a`: adds a real server to a service.
    pub fn add_dest(&mut self, key: &ServiceKey, dest: DestConf) -> Changes {
        let service = self
            .service_mut(key)
            .ok_or(ControlError::ServiceNotDefined(*key))?;
        let dest = check_dest(&service.conf.key, dest)?;
        if service.find_dest(dest.addr, dest.port).is_some() {
            return Err(ControlError::DestExists(AddrPort(dest.addr, dest.port)));
        }
        // The kernel's ip_vs_new_dest: only a new server's address type is checked.
        if !is_unicast(dest.addr) {
            return Err(ControlError::NotUnicast(dest.addr));
        }
        // After ipvsadm's own checks, in their order: what IPVS would accept but the data
        // plane cannot do.
        if dest.addr.is_ipv4() != key.addr.is_ipv4() {
            return Err(ControlError::TunnelAddressFamily);
        }
        service.dests.push(dest);
        Ok(vec![ConfigChange::DestAdded {
            service: *key,
            dest,
        }])
    }

    /// `-e`: replaces a real server's settings (what is not given returns to its default).
    pub fn edit_dest(&mut self, key: &ServiceKey, dest: DestConf) -> Changes {
        let service = self
            .service_mut(key)
            .ok_or(ControlError::ServiceNotDefined(*key))?;
        let dest = check_dest(&service.conf.key, dest)?;
        let at = service
            .find_dest(dest.addr, dest.port)
            .ok_or(ControlError::NoSuchDest(AddrPort(dest.addr, dest.port)))?;
        service.dests[at] = dest;
        Ok(vec![ConfigChange::DestEdited {
            service: *key,
            dest,
        }])
    }

    /// `-d`: removes a real server from a service.
    pub fn del_dest(&mut self, key: &ServiceKey, addr: IpAddr, port: u16) -> Changes {
        let service = self
            .service_mut(key)
            .ok_or(ControlError::ServiceNotDefined(*key))?;
        let at = service
            .find_dest(addr, port)
            .ok_or(ControlError::NoSuchDest(AddrPort(addr, port)))?;
        service.dests.remove(at);
        Ok(vec![ConfigChange::DestDeleted {
            service: *key,
            addr,
            port,
        }])
    }

    /// `-Z`: zero the counters of one service or all. The counters are the dataplane's; the
    /// model only checks that the service exists.
    pub fn zero(&mut self, key: Option<&ServiceKey>) -> Changes {
        if let Some(key) = key
            && self.service(key).is_none()
        {
            return Err(ControlError::NoSuchService(*key));
        }
        Ok(vec![ConfigChange::Zero(key.copied())])
    }

    /// `--set tcp tcpfin udp`: a 0 leaves that timeout as it is, as with IPVS.
    pub fn set_timeouts(&mut self, t: Timeouts) -> Changes {
        for v in [t.tcp, t.tcp_fin, t.udp] {
            if v > MAX_TIMEOUT {
                return Err(ControlError::BadTimeout(v));
            }
        }
        let keep = |new: u32, old: u32| if new == 0 { old } else { new };
        self.timeouts = Timeouts {
            tcp: keep(t.tcp, self.timeouts.tcp),
            tcp_fin: keep(t.tcp_fin, self.timeouts.tcp_fin),
            udp: keep(t.udp, self.timeouts.udp),
        };
        Ok(vec![ConfigChange::TimeoutsChanged(self.timeouts)])
    }

    /// `-L`: one service or all, in configuration order, with live figures from `stats`.
    pub fn list(
        &self,
        key: Option<&ServiceKey>,
        stats: &dyn StatsSource,
    ) -> Result<Vec<ServiceStatus>, ControlError> {
        let status = |s: &Service| {
            let (svc_stats, svc_rates) = stats.service(&s.conf.key);
            ServiceStatus {
                conf: s.conf.clone(),
                stats: svc_stats,
                rates: svc_rates,
                dests: s
                    .dests
                    .iter()
                    .map(|d| {
                        let c = stats.dest(&s.conf.key, d);
                        DestStatus {
                            conf: self.effective(&s.conf.key, *d),
                            active_conns: c.active_conns,
                            inactive_conns: c.inactive_conns,
                            persist_conns: c.persist_conns,
                            stats: c.stats,
                            rates: c.rates,
                        }
                    })
                    .collect(),
            }
        };
        match key {
            Some(key) => self
                .service(key)
                .map(|s| vec![status(s)])
                .ok_or(ControlError::NoSuchService(*key)),
            None => Ok(self.services.iter().map(status).collect()),
        }
    }

    /// Replaces this configuration with `new` (a reloaded rules file) and returns the
    /// smallest set of changes that gets the dataplane there: services and servers that did
    /// not change are not touched, so their connections live on.
    pub fn replace(&mut self, new: ControlState) -> Vec<ConfigChange> {
        let mut changes = Vec::new();
        for old in &self.services {
            if new.service(&old.conf.key).is_none() {
                changes.push(ConfigChange::ServiceDeleted(old.conf.key));
            }
        }
        for svc in &new.services {
            let key = svc.conf.key;
            let Some(old) = self.service(&key) else {
                changes.push(ConfigChange::ServiceAdded(svc.conf.clone()));
                changes.extend(svc.dests.iter().map(|d| ConfigChange::DestAdded {
                    service: key,
                    dest: *d,
                }));
                continue;
            };
            if old.conf != svc.conf {
                changes.push(ConfigChange::ServiceEdited(svc.conf.clone()));
            }
            for d in &old.dests {
                if svc.find_dest(d.addr, d.port).is_none() {
                    changes.push(ConfigChange::DestDeleted {
                        service: key,
                        addr: d.addr,
                        port: d.port,
                    });
                }
            }
            for d in &svc.dests {
                match old.find_dest(d.addr, d.port) {
                    None => changes.push(ConfigChange::DestAdded {
                        service: key,
                        dest: *d,
                    }),
                    Some(at) if old.dests[at] != *d => changes.push(ConfigChange::DestEdited {
                        service: key,
                        dest: *d,
                    }),
                    Some(_) => {}
                }
            }
        }
        if new.timeouts != self.timeouts {
            changes.push(ConfigChange::TimeoutsChanged(new.timeouts));
        }
        // The monitor's verdicts and the role are not configuration: a reload keeps them.
        let (down, standby) = (std::mem::take(&mut self.down), self.standby);
        *self = ControlState {
            down,
            standby,
            ..new
        };
        self.effective_changes(changes)
    }

    fn position(&self, key: &ServiceKey) -> Option<usize> {
        self.services.iter().position(|s| s.conf.key == *key)
    }

    fn service_mut(&mut self, key: &ServiceKey) -> Option<&mut Service> {
        self.services.iter_mut().find(|s| s.conf.key == *key)
    }
}

impl Service {
    /// Index of the real server at `addr`:`port`.
    pub fn find_dest(&self, addr: IpAddr, port: u16) -> Option<usize> {
        self.dests
            .iter()
            .position(|d| d.addr == addr && d.port == port)
    }
}

/// The longest persistence prefix of `addr`'s family: 32 or 128.
pub fn full_prefix(addr: &IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn check_service(
    mut conf: ServiceConf,
    sched: &dyn SchedulerCheck,
) -> Result<ServiceConf, ControlError> {
    match conf.persistence {
        None if conf.key.port == 0 && conf.key.mark().is_none() => {
            return Err(ControlError::ZeroPortNotPersistent);
        }
        None => {}
        Some(p) => {
            if p.timeout_secs == 0 || p.timeout_secs > MAX_TIMEOUT {
                return Err(ControlError::BadPersistentTimeout(p.timeout_secs));
            }
            let ok = match conf.key.addr {
                IpAddr::V4(_) => p.netmask <= 32,
                IpAddr::V6(_) => (1..=128).contains(&p.netmask),
            };
            if !ok {
                return Err(ControlError::BadNetmask);
            }
        }
    }
    if conf.scheduler.is_empty() {
        return Err(ControlError::Scheduler(SCHEDULER_NOT_FOUND.to_owned()));
    }
    conf.sched_flags = sched_flags::normalize(&conf.scheduler, &conf.sched_flags)?;
    sched
        .check(
            &conf.scheduler,
            &sched_flags::plugin_options(&conf.scheduler, &conf.sched_flags),
        )
        .map_err(ControlError::Scheduler)?;
    Ok(conf)
}

/// What the kernel takes for a real server: IPv4 other than 0.0.0.0/8, broadcast and
/// multicast (`inet_addr_type` local or unicast); IPv6 unicast other than link-local.
fn is_unicast(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.octets()[0] != 0 && !a.is_broadcast() && !a.is_multicast(),
        IpAddr::V6(a) => {
            !a.is_unspecified() && !a.is_multicast() && (a.segments()[0] & 0xffc0) != 0xfe80
        }
    }
}

fn check_dest(key: &ServiceKey, mut dest: DestConf) -> Result<DestConf, ControlError> {
    if dest.weight > MAX_WEIGHT {
        return Err(ControlError::BadWeight);
    }
    if dest.lower_threshold > dest.upper_threshold {
        return Err(ControlError::Thresholds {
            lower: dest.lower_threshold,
            upper: dest.upper_threshold,
        });
    }
    if dest.addr.is_ipv4() != key.addr.is_ipv4() && dest.fwd != FwdMethod::Tunnel {
        return Err(ControlError::AddressFamily);
    }
    match dest.fwd {
        // DR and TUN cannot change the port: the real server answers on the service's.
        FwdMethod::Route | FwdMethod::Tunnel => dest.port = key.port,
        FwdMethod::Masq if dest.port == 0 && key.port != 0 => {
            return Err(ControlError::ZeroPortMasq);
        }
        FwdMethod::Masq => {}
    }
    Ok(dest)
}

/// One page of the connection table: the `max` (at most [`CONNS_PAGE_MAX`]) entries that come
/// first in cursor order after `after`, sorted. Each page looks at the whole table (the
/// workers' tables have no common order to resume from): O(table) per page, without sorting
/// more than the page.
fn conns_page(mut all: Vec<ConnEntry>, after: Option<ConnCursor>, max: u32) -> Response {
    let max = max.clamp(1, CONNS_PAGE_MAX) as usize;
    if let Some(after) = after {
        all.retain(|c| c.cursor() > after);
    }
    let more = all.len() > max;
    if more {
        all.select_nth_unstable_by_key(max, ConnEntry::cursor);
        all.truncate(max);
    }
    all.sort_unstable_by_key(ConnEntry::cursor);
    Response::ConnsPage { conns: all, more }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use lvs_proto::{Persistence, Protocol};

    use super::*;
    use crate::hooks::{AnyScheduler, KnownSchedulers, ZeroStats};

    fn key(port: u16) -> ServiceKey {
        ServiceKey {
            protocol: Protocol::Tcp,
            addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            port,
        }
    }

    fn conf(port: u16) -> ServiceConf {
        ServiceConf {
            key: key(port),
            scheduler: "rr".into(),
            sched_flags: String::new(),
            persistence: None,
        }
    }

    fn dest(last: u8, fwd: FwdMethod) -> DestConf {
        DestConf {
            addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)),
            port: 8080,
            fwd,
            weight: 1,
            upper_threshold: 0,
            lower_threshold: 0,
        }
    }

    fn msg(r: Result<Vec<ConfigChange>, ControlError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn services_add_edit_delete_with_ipvsadm_errors() {
        let mut s = ControlState::new();
        assert_eq!(
            s.add_service(conf(80), &AnyScheduler).unwrap(),
            vec![ConfigChange::ServiceAdded(conf(80))]
        );
        assert_eq!(
            msg(s.add_service(conf(80), &AnyScheduler)),
            "Service already exists"
        );
        assert_eq!(
            msg(s.edit_service(conf(81), &AnyScheduler)),
            "No such service"
        );
        assert_eq!(msg(s.del_service(&key(81))), "No such service");
        assert_eq!(msg(s.zero(Some(&key(81)))), "No such service");
        assert_eq!(
            msg(s.add_service(conf(0), &AnyScheduler)),
            "Zero port specified for non-persistent service"
        );
        let mut wide = conf(0);
        wide.persistence = Some(Persistence {
            timeout_secs: 300,
            netmask: 33,
        });
        assert_eq!(
            msg(s.add_service(wide.clone(), &AnyScheduler)),
            "illegal virtual server persistent mask specified"
        );
        wide.persistence = Some(Persistence {
            timeout_secs: 300,
            netmask: 24,
        });
        s.add_service(wide, &AnyScheduler).unwrap();
        let known = KnownSchedulers::new(["rr", "wlc"]);
        let mut bad = conf(443);
        bad.scheduler = "nope".into();
        assert_eq!(
            msg(s.add_service(bad, &known)),
            "Scheduler or persistence engine not found"
        );
        let mut edited = conf(80);
        edited.scheduler = "wlc".into();
        edited.sched_flags = "flag-2,,flag-1,flag-2".into();
        let changes = s.edit_service(edited.clone(), &known).unwrap();
        edited.sched_flags = "flag-1,flag-2".into();
        assert_eq!(changes, vec![ConfigChange::ServiceEdited(edited.clone())]);
        assert_eq!(s.service(&key(80)).unwrap().conf, edited);
        assert_eq!(
            s.del_service(&key(80)).unwrap(),
            vec![ConfigChange::ServiceDeleted(key(80))]
        );
        assert_eq!(s.services().len(), 1);
        assert_eq!(s.clear(), vec![ConfigChange::Cleared]);
        assert!(s.services().is_empty());
    }

    #[test]
    fn real_servers_with_ipvsadm_errors() {
        let mut s = ControlState::new();
        assert_eq!(
            msg(s.add_dest(&key(80), dest(2, FwdMethod::Masq))),
            "Service not defined"
        );
        s.add_service(conf(80), &AnyScheduler).unwrap();
        s.add_dest(&key(80), dest(2, FwdMethod::Masq)).unwrap();
        assert_eq!(
            msg(s.add_dest(&key(80), dest(2, FwdMethod::Masq))),
            "Destination already exists"
        );
        // DR: the port becomes the service's.
        let changes = s.add_dest(&key(80), dest(3, FwdMethod::Route)).unwrap();
        let mut dr = dest(3, FwdMethod::Route);
        dr.port = 80;
        assert_eq!(
            changes,
            vec![ConfigChange::DestAdded {
                service: key(80),
                dest: dr
            }]
        );
        assert_eq!(
            msg(s.edit_dest(&key(80), dest(9, FwdMethod::Masq))),
            "No such destination"
        );
        let mut heavy = dest(2, FwdMethod::Masq);
        heavy.weight = 65536;
        assert_eq!(
            msg(s.edit_dest(&key(80), heavy)),
            "illegal weight specified"
        );
        heavy.weight = 0;
        heavy.lower_threshold = 5;
        assert_eq!(
            msg(s.edit_dest(&key(80), heavy)),
            "Numerical result out of range"
        );
        heavy.upper_threshold = 10;
        s.edit_dest(&key(80), heavy).unwrap();
        for bad in [
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "ff02::1",
            "fe80::1",
        ] {
            let mut d = dest(2, FwdMethod::Tunnel);
            d.addr = bad.parse().unwrap();
            assert_eq!(
                msg(s.add_dest(&key(80), d)),
                "Invalid operation.  Possibly wrong module version, address not unicast, ...",
                "{bad}"
            );
        }
        assert_eq!(s.service(&key(80)).unwrap().dests[0], heavy);
        let mut zero = dest(4, FwdMethod::Masq);
        zero.port = 0;
        assert!(msg(s.add_dest(&key(80), zero)).starts_with("Zero port specified"));
        let mut v6 = dest(5, FwdMethod::Masq);
        v6.addr = "2001:db8::5".parse().unwrap();
        assert_eq!(
            msg(s.add_dest(&key(80), v6)),
            "Different address family is allowed only for tunneling servers"
        );
        let mut v6_tun = dest(6, FwdMethod::Tunnel);
        v6_tun.addr = "2001:db8::6".parse().unwrap();
        assert!(
            msg(s.add_dest(&key(80), v6_tun))
                .starts_with("Different address family tunneling is not supported")
        );
        assert_eq!(
            msg(s.del_dest(&key(80), dest(9, FwdMethod::Masq).addr, 8080)),
            "No such destination"
        );
        assert_eq!(
            s.del_dest(&key(80), heavy.addr, 8080).unwrap(),
            vec![ConfigChange::DestDeleted {
                service: key(80),
                addr: heavy.addr,
                port: 8080
            }]
        );
        assert_eq!(s.service(&key(80)).unwrap().dests, vec![dr]);
    }

    #[test]
    fn timeouts_zero_means_unchanged() {
        let mut s = ControlState::new();
        assert_eq!(s.timeouts(), Timeouts::default());
        let changes = s
            .set_timeouts(Timeouts {
                tcp: 60,
                tcp_fin: 0,
                udp: 30,
            })
            .unwrap();
        let want = Timeouts {
            tcp: 60,
            tcp_fin: 120,
            udp: 30,
        };
        assert_eq!(changes, vec![ConfigChange::TimeoutsChanged(want)]);
        assert_eq!(s.timeouts(), want);
        assert!(
            s.set_timeouts(Timeouts {
                tcp: MAX_TIMEOUT + 1,
                tcp_fin: 0,
                udp: 0
            })
            .is_err()
        );
        assert_eq!(s.timeouts(), want);
    }

    #[test]
    fn sync_status_without_sync_says_disabled() {
        let mut s = ControlState::new();
        let (r, c) = s.apply(Request::SyncStatus, &AnyScheduler, &ZeroStats);
        assert!(c.is_empty());
        match r {
            Response::Sync(st) => assert!(!st.enabled && st.active && !st.synced),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn apply_answers_requests() {
        let mut s = ControlState::new();
        let (r, c) = s.apply(Request::AddService(conf(80)), &AnyScheduler, &ZeroStats);
        assert_eq!((r, c.len()), (Response::Ok, 1));
        let (r, c) = s.apply(Request::AddService(conf(80)), &AnyScheduler, &ZeroStats);
        assert_eq!(
            r,
            Response::Error {
                code: ErrorCode::InvalidRequest,
                message: "Service already exists".into()
            }
        );
        assert!(c.is_empty());
        let (r, _) = s.apply(
            Request::ListServices { key: Some(key(80)) },
            &AnyScheduler,
            &ZeroStats,
        );
        let Response::Services(list) = r else {
            panic!("{r:?}")
        };
        assert_eq!(list[0].conf, conf(80));
        let (r, _) = s.apply(
            Request::ListServices { key: Some(key(81)) },
            &AnyScheduler,
            &ZeroStats,
        );
        assert!(matches!(r, Response::Error { message, .. } if message == "No such service"));
        let (r, _) = s.apply(Request::GetTimeouts, &AnyScheduler, &ZeroStats);
        assert_eq!(r, Response::Timeouts(Timeouts::default()));
        let (r, _) = s.apply(
            Request::Subscribe { topics: vec![] },
            &AnyScheduler,
            &ZeroStats,
        );
        assert!(matches!(
            r,
            Response::Error {
                code: ErrorCode::Unsupported,
                ..
            }
        ));
    }

    #[test]
    fn replace_touches_only_what_changed() {
        let mut old = ControlState::new();
        old.add_service(conf(80), &AnyScheduler).unwrap();
        old.add_service(conf(81), &AnyScheduler).unwrap();
        old.add_dest(&key(80), dest(2, FwdMethod::Masq)).unwrap();
        old.add_dest(&key(80), dest(3, FwdMethod::Masq)).unwrap();
        old.add_dest(&key(80), dest(4, FwdMethod::Masq)).unwrap();
        let mut new = ControlState::new();
        new.add_service(conf(80), &AnyScheduler).unwrap();
        new.add_service(conf(82), &AnyScheduler).unwrap();
        new.add_dest(&key(80), dest(2, FwdMethod::Masq)).unwrap();
        let mut heavier = dest(3, FwdMethod::Masq);
        heavier.weight = 5;
        new.add_dest(&key(80), heavier).unwrap();
        new.add_dest(&key(80), dest(5, FwdMethod::Masq)).unwrap();
        new.add_dest(&key(82), dest(6, FwdMethod::Masq)).unwrap();
        let changes = old.replace(new.clone());
        assert_eq!(
            changes,
            vec![
                ConfigChange::ServiceDeleted(key(81)),
                ConfigChange::DestDeleted {
                    service: key(80),
                    addr: dest(4, FwdMethod::Masq).addr,
                    port: 8080
                },
                ConfigChange::DestEdited {
                    service: key(80),
                    dest: heavier
                },
                ConfigChange::DestAdded {
                    service: key(80),
                    dest: dest(5, FwdMethod::Masq)
                },
                ConfigChange::ServiceAdded(conf(82)),
                ConfigChange::DestAdded {
                    service: key(82),
                    dest: dest(6, FwdMethod::Masq)
                },
            ]
        );
        assert_eq!(old, new);
        assert!(old.replace(new).is_empty());
    }

    #[test]
    fn an_unhealthy_server_is_scheduled_as_weight_zero_and_gets_its_weight_back() {
        let mut s = ControlState::new();
        s.add_service(conf(80), &AnyScheduler).unwrap();
        let d = DestConf {
            weight: 5,
            ..dest(2, FwdMethod::Masq)
        };
        s.add_dest(&key(80), d).unwrap();
        let down = s
            .change(
                Request::SetHealth {
                    service: key(80),
                    addr: d.addr,
                    port: d.port,
                    healthy: false,
                },
                &AnyScheduler,
            )
            .unwrap();
        assert_eq!(
            down,
            vec![ConfigChange::DestEdited {
                service: key(80),
                dest: DestConf { weight: 0, ..d }
            }]
        );
        let list = s.list(None, &ZeroStats).unwrap();
        assert_eq!(
            list[0].dests[0].conf.weight, 0,
            "listed as lvsadm -L -n shows a quiesced server"
        );
        assert!(!s.health()[0].healthy);
        // Repeating the verdict changes nothing; an admin's new weight waits for recovery.
        let again = s
            .change(
                Request::SetHealth {
                    service: key(80),
                    addr: d.addr,
                    port: d.port,
                    healthy: false,
                },
                &AnyScheduler,
            )
            .unwrap();
        assert!(again.is_empty());
        let edited = s.edit_dest(&key(80), DestConf { weight: 7, ..d }).unwrap();
        let edited = s.effective_changes(edited);
        assert_eq!(
            edited,
            vec![ConfigChange::DestEdited {
                service: key(80),
                dest: DestConf { weight: 0, ..d }
            }]
        );
        // A reload keeps the verdict.
        let mut reloaded = ControlState::new();
        reloaded.add_service(conf(80), &AnyScheduler).unwrap();
        reloaded
            .add_dest(&key(80), DestConf { weight: 9, ..d })
            .unwrap();
        let changes = s.replace(reloaded);
        assert_eq!(
            changes,
            vec![ConfigChange::DestEdited {
                service: key(80),
                dest: DestConf { weight: 0, ..d }
            }]
        );
        let up = s
            .change(
                Request::SetHealth {
                    service: key(80),
                    addr: d.addr,
                    port: d.port,
                    healthy: true,
                },
                &AnyScheduler,
            )
            .unwrap();
        assert_eq!(
            up,
            vec![ConfigChange::DestEdited {
                service: key(80),
                dest: DestConf { weight: 9, ..d }
            }]
        );
        assert_eq!(s.list(None, &ZeroStats).unwrap()[0].dests[0].conf.weight, 9);
        // Unknown servers are refused with ipvsadm's words.
        let err = s
            .change(
                Request::SetHealth {
                    service: key(80),
                    addr: dest(9, FwdMethod::Masq).addr,
                    port: 80,
                    healthy: true,
                },
                &AnyScheduler,
            )
            .unwrap_err();
        assert!(matches!(err, Refusal::Refused(ControlError::NoSuchDest(_))));
    }

    #[test]
    fn the_role_changes_once_and_survives_a_reload() {
        let mut s = ControlState::new();
        assert_eq!(s.role(), lvs_proto::HaRole::Active);
        let c = s
            .change(
                Request::SetRole {
                    role: lvs_proto::HaRole::Standby,
                },
                &AnyScheduler,
            )
            .unwrap();
        assert_eq!(
            c,
            vec![ConfigChange::RoleChanged(lvs_proto::HaRole::Standby)]
        );
        assert!(
            s.change(
                Request::SetRole {
                    role: lvs_proto::HaRole::Standby
                },
                &AnyScheduler
            )
            .unwrap()
            .is_empty()
        );
        s.replace(ControlState::new());
        assert_eq!(s.role(), lvs_proto::HaRole::Standby);
    }

    fn conn(i: u32) -> ConnEntry {
        let [a, b, c, d] = i.to_be_bytes();
        ConnEntry {
            protocol: lvs_proto::Protocol::Tcp,
            expire_secs: 900,
            state: "ESTABLISHED".into(),
            client: (IpAddr::from([10, b, c, d]), 40_000 + u16::from(a)),
            virtual_addr: (IpAddr::from([192, 0, 2, 1]), 80),
            dest: (IpAddr::from([10, 9, 0, 1]), 80),
            template: false,
        }
    }

    /// Paging through 50,000 entries (more than one frame could carry) gives each entry
    /// once, in order, although entries come and go between the pages: those there from
    /// start to end are all listed, and none twice.
    #[test]
    fn the_connection_table_pages_through_every_entry_once() {
        let mut table: Vec<ConnEntry> = (0..50_000).map(conn).collect();
        let mut seen = Vec::new();
        let mut after = None;
        let mut pages = 0;
        loop {
            let Response::ConnsPage { conns, more } = conns_page(table.clone(), after, u32::MAX)
            else {
                panic!("not a page")
            };
            pages += 1;
            assert!(conns.len() <= CONNS_PAGE_MAX as usize);
            after = conns.last().map(ConnEntry::cursor);
            seen.extend(conns);
            if !more {
                break;
            }
            // Between pages: the oldest entries go, new ones come.
            table.drain(..100);
            table.extend((0..100).map(|n| conn(1_000_000 + pages * 100 + n)));
        }
        assert_eq!(pages, 7);
        assert!(
            seen.windows(2).all(|w| w[0].cursor() < w[1].cursor()),
            "sorted, no duplicate"
        );
        let seen: std::collections::BTreeSet<_> = seen.iter().map(ConnEntry::cursor).collect();
        // Six drains of the oldest 100: entries 600 and later were there all along.
        for i in 600..50_000 {
            assert!(seen.contains(&conn(i).cursor()), "entry {i} missing");
        }
        let Response::ConnsPage { conns, more } = conns_page(Vec::new(), None, 0) else {
            panic!("not a page")
        };
        assert!(conns.is_empty() && !more);
    }
}
