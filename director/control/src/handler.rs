//! The director's control-socket handler: the model plus the director's hooks, plugged
//! straight into a `proto` [`Server`](lvs_proto::Server).

use lvs_proto::{Handler, PeerInfo, Request, Response};

use crate::hooks::{SchedulerCheck, StatsSource};
use crate::state::{ConfigChange, ControlState};

/// Answers control requests from `lvsadm`, monitord, webmon ... against a [`ControlState`],
/// and hands every accepted change to `on_change` (the dataplane) before answering, so a
/// client that got `Ok` can rely on the change being on its way.
pub struct ControlHandler<S, C, F> {
    state: ControlState,
    stats: S,
    sched: C,
    on_change: F,
}

impl<S, C, F> std::fmt::Debug for ControlHandler<S, C, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlHandler")
            .field("services", &self.state.services().len())
            .finish()
    }
}

impl<S, C, F> ControlHandler<S, C, F>
where
    S: StatsSource,
    C: SchedulerCheck,
    F: FnMut(&[ConfigChange]),
{
    /// A handler starting from `state` (e.g. the rules file's).
    pub fn new(state: ControlState, stats: S, sched: C, on_change: F) -> Self {
        ControlHandler {
            state,
            stats,
            sched,
            on_change,
        }
    }

    /// The current configuration.
    pub fn state(&self) -> &ControlState {
        &self.state
    }

    /// Replaces the configuration (a reload) and hands the difference to `on_change`.
    pub fn replace(&mut self, new: ControlState) -> Vec<ConfigChange> {
        let changes = self.state.replace(new);
        if !changes.is_empty() {
            (self.on_change)(&changes);
        }
        changes
    }

    /// The stats source, e.g. to point it at a restarted dataplane.
    pub fn stats_mut(&mut self) -> &mut S {
        &mut self.stats
    }

    /// The scheduler check, e.g. to rescan the plugin directory.
    pub fn sched_mut(&mut self) -> &mut C {
        &mut self.sched
    }
}

impl<S, C, F> Handler for ControlHandler<S, C, F>
where
    S: StatsSource,
    C: SchedulerCheck,
    F: FnMut(&[ConfigChange]),
{
    fn handle(&mut self, peer: &PeerInfo, request: Request) -> Response {
        let (response, changes) = self.state.apply(request, &self.sched, &self.stats);
        if let Response::Error { message, .. } = &response {
            lvs_common::event!(
                log::Level::Info,
                "request_refused",
                peer = peer,
                reason = message,
            );
        }
        for change in &changes {
            lvs_common::event!(
                log::Level::Info,
                "config_changed",
                peer = peer,
                change = describe(change),
            );
        }
        if !changes.is_empty() {
            (self.on_change)(&changes);
        }
        response
    }
}

/// What a change did, in words (the `change` of its `config_changed` event).
fn describe(change: &ConfigChange) -> String {
    use lvs_proto::AddrPort;
    match change {
        ConfigChange::ServiceAdded(c) => format!("added service {} ({})", c.key, c.scheduler),
        ConfigChange::ServiceEdited(c) => format!("edited service {} ({})", c.key, c.scheduler),
        ConfigChange::ServiceDeleted(k) => format!("deleted service {k}"),
        ConfigChange::DestAdded { service, dest } => format!(
            "added real server {} to {service} ({}, weight {})",
            AddrPort(dest.addr, dest.port),
            dest.fwd.name(),
            dest.weight
        ),
        ConfigChange::DestEdited { service, dest } => format!(
            "edited real server {} of {service} ({}, weight {})",
            AddrPort(dest.addr, dest.port),
            dest.fwd.name(),
            dest.weight
        ),
        ConfigChange::DestDeleted {
            service,
            addr,
            port,
        } => format!(
            "deleted real server {} from {service}",
            AddrPort(*addr, *port)
        ),
        ConfigChange::TimeoutsChanged(t) => format!(
            "timeouts now tcp {} tcpfin {} udp {}",
            t.tcp, t.tcp_fin, t.udp
        ),
        ConfigChange::RoleChanged(r) => format!("role now {r:?}"),
        ConfigChange::Zero(Some(k)) => format!("zeroed the counters of {k}"),
        ConfigChange::Zero(None) => "zeroed all counters".to_owned(),
        ConfigChange::Cleared => "cleared all services".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::mpsc;

    use lvs_proto::{Credentials, ErrorCode, Protocol, Role, ServiceConf, ServiceKey};

    use super::*;
    use crate::hooks::{KnownSchedulers, ZeroStats};

    /// This process, as the server would describe it over a socket pair.
    fn peer() -> PeerInfo {
        let (me, _other) = std::os::unix::net::UnixStream::pair().unwrap();
        PeerInfo {
            credentials: Credentials::of(&me).unwrap(),
            role: Role::Lvsadm,
        }
    }

    #[test]
    fn changes_reach_the_dataplane_before_the_answer() {
        let (tx, rx) = mpsc::channel();
        let mut h = ControlHandler::new(
            ControlState::new(),
            ZeroStats,
            KnownSchedulers::new(["rr"]),
            move |c: &[ConfigChange]| tx.send(c.to_vec()).unwrap(),
        );
        let conf = ServiceConf {
            key: ServiceKey {
                protocol: Protocol::Tcp,
                addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                port: 80,
            },
            scheduler: "rr".into(),
            sched_flags: String::new(),
            persistence: None,
        };
        assert_eq!(
            h.handle(&peer(), Request::AddService(conf.clone())),
            Response::Ok
        );
        assert_eq!(
            rx.try_recv().unwrap(),
            vec![ConfigChange::ServiceAdded(conf.clone())]
        );
        let refused = h.handle(&peer(), Request::AddService(conf.clone()));
        assert_eq!(
            refused,
            Response::Error {
                code: ErrorCode::InvalidRequest,
                message: "Service already exists".into()
            }
        );
        assert!(rx.try_recv().is_err(), "a refusal changes nothing");
        assert_eq!(h.handle(&peer(), Request::Ping), Response::Pong);
        assert_eq!(h.state().services().len(), 1);
        assert_eq!(
            h.replace(ControlState::new()),
            vec![ConfigChange::ServiceDeleted(conf.key)]
        );
        assert_eq!(rx.try_recv().unwrap().len(), 1);
    }
}
