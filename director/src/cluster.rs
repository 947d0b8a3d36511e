//! `[cluster]`: whether this director is one of an active/standby pair (the default) or one
//! of several directors active at once behind a router's ECMP (issue 18), and what the
//! active-active mode asks of the services.
//!
//! Behind ECMP any director may get any packet of a flow: when the router's next hops change
//! (a director dies or joins), flows move between directors in mid-connection. Every
//! director must then send a flow to the same real server, so in this mode:
//!
//! - services are scheduled by `mh` (Maglev) on the client's address and port: every director
//!   builds the same table from the same servers, so a flow no director has seen before is
//!   scheduled alike everywhere (the workers' "sloppy TCP": a mid-flow segment creates an
//!   entry, see `dataplane/worker.rs`);
//! - connection sync is many-to-many (`sync/engine.rs`): what one director learns, all do,
//!   so a flow keeps its server even when the server list changed since it began;
//! - VS/NAT is refused: a NAT real server's replies return through the one director whose
//!   address they are routed to, not the one ECMP picked for the client's packets.

use lvs_proto::{DestConf, FwdMethod, Request, ServiceConf};
use serde::Deserialize;

/// `[cluster] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterMode {
    /// One director forwards, the others wait (lvs-heartbeatd decides which).
    #[default]
    ActiveStandby,
    /// Every director forwards; a router spreads flows over them by ECMP.
    ActiveActive,
}

/// `[cluster]` of the director's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    pub mode: ClusterMode,
}

impl ClusterConfig {
    pub fn active_active(&self) -> bool {
        self.mode == ClusterMode::ActiveActive
    }

    /// Checks against the rest of the file; the reason is about `mode`.
    pub fn validate(&self, sync: Option<&crate::sync::SyncConfig>) -> Result<(), String> {
        if !self.active_active() {
            return Ok(());
        }
        match sync {
            Some(s) if s.autostart => Ok(()),
            _ => Err(
                "cluster.mode = \"active-active\" needs connection sync with the other directors: \
                 give a [sync] section (autostart = true) naming them as peers, so that a flow \
                 ECMP moves keeps its real server even when the server list changed"
                    .into(),
            ),
        }
    }
}

/// The scheduler a service gets in active-active mode when it asks for ipvsadm's default.
pub const SCHEDULER: &str = "mh";
/// Its flags: the client's port is hashed too, so that one client's many connections spread.
pub const SCHED_FLAGS: &str = "mh-port";

/// Why active-active mode refuses a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterRefusal {
    #[error(
        "real server {0} cannot be VS/NAT (-m) in active-active mode: its replies return \
         through one director, not the one the router picked for the client's packets; use \
         -g (direct routing) or -i (tunnelling), or cluster.mode = \"active-standby\""
    )]
    Nat(lvs_proto::AddrPort),
}

/// A request as active-active mode takes it: `wlc` (what lvsadm sends without `-s`) becomes
/// `mh` with `mh-port`, since `wlc` counts only this director's connections and directors
/// would disagree; a VS/NAT real server is refused.
pub fn adapt(request: Request) -> Result<Request, ClusterRefusal> {
    Ok(match request {
        Request::AddService(conf) => Request::AddService(service(conf)),
        Request::EditService(conf) => Request::EditService(service(conf)),
        Request::AddDest { service, dest } => Request::AddDest {
            service,
            dest: check_dest(dest)?,
        },
        Request::EditDest { service, dest } => Request::EditDest {
            service,
            dest: check_dest(dest)?,
        },
        other => other,
    })
}

fn service(conf: ServiceConf) -> ServiceConf {
    if conf.scheduler == lvs_control::grammar::DEFAULT_SCHEDULER && conf.sched_flags.is_empty() {
        ServiceConf {
            scheduler: SCHEDULER.into(),
            sched_flags: SCHED_FLAGS.into(),
            ..conf
        }
    } else {
        conf
    }
}

fn check_dest(dest: DestConf) -> Result<DestConf, ClusterRefusal> {
    if dest.fwd == FwdMethod::Masq {
        return Err(ClusterRefusal::Nat(lvs_proto::AddrPort(
            dest.addr, dest.port,
        )));
    }
    Ok(dest)
}

pub mod control {
    //! The control socket in active-active mode: every change passes [`super::adapt`] before
    //! the model sees it.

    use lvs_proto::{Handler, PeerInfo, Request, Response};

    /// `inner`, with requests adapted to active-active mode when `on`.
    #[derive(Debug)]
    pub struct WithCluster<'a, H> {
        on: bool,
        inner: &'a mut H,
    }

    pub fn handler<H: Handler>(on: bool, inner: &mut H) -> WithCluster<'_, H> {
        WithCluster { on, inner }
    }

    impl<H: Handler> Handler for WithCluster<'_, H> {
        fn handle(&mut self, peer: &PeerInfo, request: Request) -> Response {
            if !self.on {
                return self.inner.handle(peer, request);
            }
            match super::adapt(request) {
                Ok(r) => self.inner.handle(peer, r),
                Err(e) => crate::sync::control::refused(peer, &e.to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_proto::ServiceKey;

    fn key() -> ServiceKey {
        lvs_control::parse_line("-D -t 192.0.2.1:80")
            .and_then(Result::ok)
            .and_then(|c| match c {
                lvs_control::Command::DelService(k) => Some(k),
                _ => None,
            })
            .expect("a service")
    }

    fn conf(s: &str, flags: &str) -> ServiceConf {
        ServiceConf {
            key: key(),
            scheduler: s.into(),
            sched_flags: flags.into(),
            persistence: None,
        }
    }

    #[test]
    fn the_default_scheduler_becomes_mh_on_address_and_port() {
        let Ok(Request::AddService(c)) = adapt(Request::AddService(conf("wlc", ""))) else {
            panic!("adapted")
        };
        assert_eq!(
            (c.scheduler.as_str(), c.sched_flags.as_str()),
            ("mh", "mh-port")
        );
        let Ok(Request::EditService(c)) = adapt(Request::EditService(conf("sh", "sh-port"))) else {
            panic!("adapted")
        };
        assert_eq!(c, conf("sh", "sh-port"));
    }

    #[test]
    fn nat_is_refused_saying_why() {
        let dest = |fwd| DestConf {
            addr: "10.0.0.2".parse().expect("an address"),
            port: 8080,
            fwd,
            weight: 1,
            upper_threshold: 0,
            lower_threshold: 0,
        };
        let e = adapt(Request::AddDest {
            service: key(),
            dest: dest(FwdMethod::Masq),
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("10.0.0.2:8080") && e.contains("replies return through one director"),
            "{e}"
        );
        assert!(
            adapt(Request::EditDest {
                service: key(),
                dest: dest(FwdMethod::Masq)
            })
            .is_err()
        );
        for fwd in [FwdMethod::Route, FwdMethod::Tunnel] {
            assert!(
                adapt(Request::AddDest {
                    service: key(),
                    dest: dest(fwd)
                })
                .is_ok()
            );
        }
    }
}
