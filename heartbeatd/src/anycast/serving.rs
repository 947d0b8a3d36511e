//! Whether this director can serve a virtual address now, from what its control socket says:
//! a pure function of the director's answers, so that the rules are tested without one.

use std::net::IpAddr;

use lvs_proto::director::{DestHealth, Protocol, ServiceStatus};
use lvs_proto::{HaRole, Response};

/// What the director said in one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectorView {
    /// It answered: its role, services and real servers' health.
    Answered {
        /// `GetRole`.
        role: HaRole,
        /// `ListServices`.
        services: Vec<ServiceStatus>,
        /// `ListHealth`.
        health: Vec<DestHealth>,
    },
    /// It did not answer (or not as a director answers): why.
    Unreachable(String),
}

impl DirectorView {
    /// The view from the three answers, in order `GetRole`, `ListServices`, `ListHealth`.
    pub fn from_answers(role: Response, services: Response, health: Response) -> DirectorView {
        match (role, services, health) {
            (Response::Role(role), Response::Services(services), Response::Health(health)) => {
                DirectorView::Answered {
                    role,
                    services,
                    health,
                }
            }
            (r, s, h) => DirectorView::Unreachable(format!(
                "director gave unexpected answers: {}",
                [r, s, h]
                    .iter()
                    .find(|a| !matches!(
                        a,
                        Response::Role(_) | Response::Services(_) | Response::Health(_)
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

/// `None` when the director can serve `vip` now; otherwise why not. Every TCP and UDP service
/// on the address needs a real server with a weight above 0 that passes its checks: a director
/// that cannot serve one port of the VIP must not draw that port's flows while another
/// director can. Firewall-mark services have no address and are not looked at.
pub fn why_not(view: &DirectorView, vip: IpAddr) -> Option<String> {
    let (role, services, health) = match view {
        DirectorView::Unreachable(why) => return Some(why.clone()),
        DirectorView::Answered {
            role,
            services,
            health,
        } => (role, services, health),
    };
    if *role != HaRole::Active {
        return Some("director standby".into());
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
