//! Whether this director can serve a virtual address now, from what its control socket says:
//! a pure function of the director's answers, so that the rules are tested without one.

use std::net::IpAddr;

use lvs_proto::director::{DestHealth, Protocol, ServiceStatus};
use lvs_proto::{HaRole, Response};

/// What the director said in one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectorView {
    /// It answered: its role, services, real servers' health and connection sync.
    Answered {
        /// `GetRole`.
        role: HaRole,
        /// `ListServices`.
        services: Vec<ServiceStatus>,
        /// `ListHealth`.
        health: Vec<DestHealth>,
        /// `SyncStatus`: `None` without connection sync (`[sync]`), otherwise whether its
        /// table is synced (the bulk resync of its start complete, or no peer to ask).
        synced: Option<bool>,
    },
    /// It did not answer (or not as a director answers): why.
    Unreachable(String),
}

impl DirectorView {
    /// The view from the four answers, in order `GetRole`, `ListServices`, `ListHealth`,
    /// `SyncStatus`.
    pub fn from_answers(
        role: Response,
        services: Response,
        health: Response,
        sync: Response,
    ) -> DirectorView {
        match (role, services, health, sync) {
            (
                Response::Role(role),
                Response::Services(services),
                Response::Health(health),
                Response::Sync(sync),
            ) => DirectorView::Answered {
                role,
                services,
                health,
                synced: sync.enabled.then_some(sync.synced),
            },
            (r, s, h, y) => DirectorView::Unreachable(format!(
                "director gave unexpected answers: {}",
                [r, s, h, y]
                    .iter()
                    .find(|a| !matches!(
                        a,
                        Response::Role(_)
                            | Response::Services(_)
                            | Response::Health(_)
                            | Response::Sync(_)
                    ))
                    .map_or_else(String::new, |a| format!("{a:?}"))
            )),
        }
    }

    /// The director answered and forwards (is active).
    pub fn forwarding(&self) -> bool {
        matches!(
            self,
            DirectorView::Answered {
                role: HaRole::Active,
                ..
            }
        )
    }
}

/// `None` when the director can serve `vip` now; otherwise why not. A director with connection
/// sync must have its table synced first (the bulk resync of its start complete): the routers
/// would otherwise move flows to it that it knows nothing of. Every TCP and UDP service
/// on the address needs a real server with a weight above 0 that passes its checks: a director
/// that cannot serve one port of the VIP must not draw that port's flows while another
/// director can. Firewall-mark services have no address and are not looked at.
pub fn why_not(view: &DirectorView, vip: IpAddr) -> Option<String> {
    let (role, services, health, synced) = match view {
        DirectorView::Unreachable(why) => return Some(why.clone()),
        DirectorView::Answered {
            role,
            services,
            health,
            synced,
        } => (role, services, health, synced),
    };
    if *role != HaRole::Active {
        return Some("director standby".into());
    }
    if *synced == Some(false) {
        return Some("director's connection table not synced yet (bulk resync)".into());
    }
    let mine: Vec<&ServiceStatus> = services
        .iter()
        .filter(|s| s.conf.key.addr == vip && !matches!(s.conf.key.protocol, Protocol::Fwmark(_)))
        .collect();
    if mine.is_empty() {
        return Some("no virtual service on this address at the director".into());
    }
    for s in mine {
        let serving = s.dests.iter().any(|d| {
            d.conf.weight > 0
                && !health.iter().any(|h| {
                    h.service == s.conf.key
                        && h.addr == d.conf.addr
                        && h.port == d.conf.port
                        && !h.healthy
                })
        });
        if !serving {
            return Some(format!(
                "no healthy real server for {} {}",
                s.conf.key.protocol.name(),
                lvs_proto::director::AddrPort(s.conf.key.addr, s.conf.key.port)
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_proto::director::{
        DestConf, DestStatus, FwdMethod, Rates, ServiceConf, ServiceKey, Stats,
    };

    const VIP: &str = "192.0.2.10";

    fn key(port: u16) -> ServiceKey {
        ServiceKey {
            protocol: Protocol::Tcp,
            addr: VIP.parse().unwrap(),
            port,
        }
    }

    fn service(key: ServiceKey, weights: &[u32]) -> ServiceStatus {
        ServiceStatus {
            conf: ServiceConf {
                key,
                scheduler: "mh".into(),
                sched_flags: String::new(),
                persistence: None,
            },
            stats: Stats::default(),
            rates: Rates::default(),
            dests: weights
                .iter()
                .enumerate()
                .map(|(i, &weight)| DestStatus {
                    conf: DestConf {
                        addr: format!("10.0.0.{}", i + 1).parse().unwrap(),
                        port: 80,
                        fwd: FwdMethod::Route,
                        weight,
                        upper_threshold: 0,
                        lower_threshold: 0,
                    },
                    active_conns: 0,
                    inactive_conns: 0,
                    persist_conns: 0,
                    stats: Stats::default(),
                    rates: Rates::default(),
                })
                .collect(),
        }
    }

    fn view(services: Vec<ServiceStatus>, health: Vec<DestHealth>) -> DirectorView {
        DirectorView::Answered {
            role: HaRole::Active,
            services,
            health,
            synced: Some(true),
        }
    }

    fn why(v: &DirectorView) -> Option<String> {
        why_not(v, VIP.parse().unwrap())
    }

    #[test]
    fn served_when_every_service_has_a_healthy_server() {
        let mut fwmark = service(ServiceKey::fwmark(1, false), &[0]);
        fwmark.conf.key.addr = VIP.parse().unwrap();
        let v = view(
            vec![service(key(80), &[0, 1]), service(key(443), &[2]), fwmark],
            vec![],
        );
        assert_eq!(why(&v), None);
    }

    #[test]
    fn each_reason_not_to_announce() {
        let unhealthy = DestHealth {
            service: key(80),
            addr: "10.0.0.2".parse().unwrap(),
            port: 80,
            healthy: false,
        };
        for (v, reason) in [
            (
                DirectorView::Unreachable("director unreachable: gone".into()),
                "director unreachable: gone",
            ),
            (
                DirectorView::Answered {
                    role: HaRole::Standby,
                    services: vec![service(key(80), &[1])],
                    health: vec![],
                    synced: None,
                },
                "director standby",
            ),
            (
                DirectorView::Answered {
                    role: HaRole::Active,
                    services: vec![service(key(80), &[1])],
                    health: vec![],
                    synced: Some(false),
                },
                "not synced yet",
            ),
            (view(vec![], vec![]), "no virtual service on this address"),
            (
                view(
                    vec![service(key(80), &[1]), service(key(443), &[0, 0])],
                    vec![],
                ),
                "no healthy real server for TCP 192.0.2.10:443",
            ),
            (
                view(vec![service(key(80), &[0, 1])], vec![unhealthy]),
                "no healthy real server for TCP 192.0.2.10:80",
            ),
        ] {
            let got = why(&v).unwrap_or_default();
            assert!(got.contains(reason), "{got:?} lacks {reason:?}");
        }
    }
}
