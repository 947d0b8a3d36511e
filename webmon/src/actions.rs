//! Admin actions: each is one request to the director or monitord over its control socket.
//! The answer (or the daemon's error text) goes back to the page as it is.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use lvs_proto::{
    AddrPort, Client, ClientOptions, DestConf, FwdMethod, Request, Response, Role, ServiceConf,
    ServiceKey,
};
use serde::Deserialize;

use crate::collector::{parse_service_id, service_id};

/// The body of every action (fields that an action does not use are ignored).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    /// `tcp/VIP:PORT`.
    #[serde(default)]
    pub service: String,
    /// `ADDR:PORT` (or `ADDR`: the service's port).
    #[serde(default)]
    pub server: String,
    /// New weight.
    pub weight: Option<u32>,
    /// Maintenance on/off.
    pub on: Option<bool>,
    /// `nat`, `dr` or `tun` (default nat) for a new real server.
    pub fwd: Option<String>,
    /// Scheduler of a new service (default wlc).
    pub scheduler: Option<String>,
    /// Scheduler flags of a new service.
    pub flags: Option<String>,
}

/// An action that failed: the HTTP status and the text for the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// 400 for bad input, 502 when a daemon refused or was away.
    pub status: u16,
    /// What to show.
    pub message: String,
}

fn bad(message: impl Into<String>) -> Failure {
    Failure {
        status: 400,
        message: message.into(),
    }
}

/// Where the actions go.
#[derive(Debug, Clone, Copy)]
pub struct Sockets<'a> {
    /// lvs-director.
    pub director: &'a Path,
    /// lvs-monitord.
    pub monitord: &'a Path,
}

fn call(path: &Path, daemon: &str, req: Request) -> Result<Response, Failure> {
    let away = |e: lvs_proto::ProtoError| Failure {
        status: 502,
        message: format!("{daemon}: {e}"),
    };
    let opts = ClientOptions {
        timeout: Duration::from_secs(3),
        ..ClientOptions::default()
    };
    let mut c = Client::connect_with(path, Role::Webmon, opts).map_err(away)?;
    match c.request(req).map_err(away)? {
        Response::Error { message, .. } => Err(Failure {
            status: 502,
            message: format!("{daemon} refused: {message}"),
        }),
        r => Ok(r),
    }
}

fn expect_ok(r: Response, daemon: &str) -> Result<(), Failure> {
    match r {
        Response::Ok => Ok(()),
        other => Err(Failure {
            status: 502,
            message: format!("{daemon} answered {other:?}"),
        }),
    }
}

fn service(b: &ActionBody) -> Result<ServiceKey, Failure> {
    parse_service_id(&b.service).ok_or_else(|| {
        bad(format!(
            "service {:?} is not PROTO/VIP:PORT, e.g. tcp/192.0.2.10:80 or tcp/[2001:db8::10]:80",
            b.service
        ))
    })
}

fn server(b: &ActionBody, key: &ServiceKey) -> Result<(IpAddr, u16), Failure> {
    if let Ok(sa) = b.server.parse::<SocketAddr>() {
        return Ok((sa.ip(), sa.port()));
    }
    if let Ok(ip) = b.server.parse::<IpAddr>() {
        return Ok((ip, key.port));
    }
    Err(bad(format!(
        "server {:?} is not ADDR:PORT, e.g. 10.0.0.11:80 or [2001:db8::11]:80",
        b.server
    )))
}

fn weight(w: Option<u32>) -> Result<u32, Failure> {
    match w {
        Some(w) if w <= 65535 => Ok(w),
        Some(w) => Err(bad(format!("weight {w} is out of range (0 to 65535)"))),
        None => Err(bad("give a weight")),
    }
}

/// The current settings of a real server, from the director.
fn dest_conf(
    s: Sockets<'_>,
    key: ServiceKey,
    addr: IpAddr,
    port: u16,
) -> Result<DestConf, Failure> {
    match call(
        s.director,
        "lvs-director",
        Request::ListServices { key: Some(key) },
    )? {
        Response::Services(list) => list
            .iter()
            .flat_map(|svc| &svc.dests)
            .map(|d| d.conf)
            .find(|d| d.addr == addr && d.port == port)
            .ok_or_else(|| Failure {
                status: 404,
                message: format!(
                    "{} is not a real server of {}",
                    AddrPort(addr, port),
                    service_id(&key)
                ),
            }),
        other => Err(Failure {
            status: 502,
            message: format!("lvs-director answered {other:?}"),
        }),
    }
}

fn set_weight(
    s: Sockets<'_>,
    key: ServiceKey,
    addr: IpAddr,
    port: u16,
    w: u32,
) -> Result<(), Failure> {
    let mut dest = dest_conf(s, key, addr, port)?;
    dest.weight = w;
    expect_ok(
        call(
            s.director,
            "lvs-director",
            Request::EditDest { service: key, dest },
        )?,
        "lvs-director",
    )
}

/// Runs the action `name` (the last part of `/api/action/NAME`); on success, the text for the
/// page and the syslog line's target.
pub fn run(s: Sockets<'_>, name: &str, b: &ActionBody) -> Result<String, Failure> {
    match name {
        "weight" => {
            let key = service(b)?;
            let (addr, port) = server(b, &key)?;
            let w = weight(b.weight)?;
            set_weight(s, key, addr, port, w)?;
            Ok(format!("weight of {} set to {w}", AddrPort(addr, port)))
        }
        "drain" => {
            let key = service(b)?;
            let (addr, port) = server(b, &key)?;
            set_weight(s, key, addr, port, 0)?;
            Ok(format!(
                "{} quiesced (weight 0): no new connections, existing ones finish",
                AddrPort(addr, port)
            ))
        }
        "maintenance" => {
            let key = service(b)?;
            let (addr, port) = server(b, &key)?;
            let on = b.on.ok_or_else(|| bad("give on: true or false"))?;
            expect_ok(
                call(
                    s.monitord,
                    "lvs-monitord",
                    Request::Maintenance {
                        service: key,
                        addr,
                        port,
                        on,
                    },
                )?,
                "lvs-monitord",
            )?;
            Ok(format!(
                "maintenance {} for {}",
                if on { "on" } else { "off" },
                AddrPort(addr, port)
            ))
        }
        "add-server" => {
            let key = service(b)?;
            let (addr, port) = server(b, &key)?;
            let fwd = match b.fwd.as_deref().unwrap_or("nat") {
                "nat" | "masq" | "m" => FwdMethod::Masq,
                "dr" | "route" | "g" => FwdMethod::Route,
                "tun" | "tunnel" | "i" => FwdMethod::Tunnel,
                other => return Err(bad(format!("forwarding {other:?} is not nat, dr or tun"))),
            };
            let dest = DestConf {
                addr,
                port,
                fwd,
                weight: weight(Some(b.weight.unwrap_or(1)))?,
                upper_threshold: 0,
                lower_threshold: 0,
            };
            expect_ok(
                call(
                    s.director,
                    "lvs-director",
                    Request::AddDest { service: key, dest },
                )?,
                "lvs-director",
            )?;
            Ok(format!(
                "{} added to {}",
                AddrPort(addr, port),
                service_id(&key)
            ))
        }
        "remove-server" => {
            let key = service(b)?;
            let (addr, port) = server(b, &key)?;
            expect_ok(
                call(
                    s.director,
                    "lvs-director",
                    Request::DelDest {
                        service: key,
                        addr,
                        port,
                    },
                )?,
                "lvs-director",
            )?;
            Ok(format!(
                "{} removed from {}",
                AddrPort(addr, port),
                service_id(&key)
            ))
        }
        "add-service" => {
            let key = service(b)?;
            let scheduler = b.scheduler.clone().unwrap_or_else(|| "wlc".to_owned());
            if scheduler.is_empty()
                || !scheduler
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'_')
            {
                return Err(bad(format!(
                    "scheduler {scheduler:?} is not a scheduler name"
                )));
            }
            let conf = ServiceConf {
                key,
                scheduler,
                sched_flags: b.flags.clone().unwrap_or_default(),
                persistence: None,
            };
            expect_ok(
                call(s.director, "lvs-director", Request::AddService(conf))?,
                "lvs-director",
            )?;
            Ok(format!("service {} added", service_id(&key)))
        }
        "remove-service" => {
            let key = service(b)?;
            expect_ok(
                call(s.director, "lvs-director", Request::DelService(key))?,
                "lvs-director",
            )?;
            Ok(format!("service {} removed", service_id(&key)))
        }
        other => Err(Failure {
            status: 404,
            message: format!("no action {other:?}"),
        }),
    }
}

/// The action names, for the docs and the router.
pub const ACTIONS: [&str; 7] = [
    "weight",
    "drain",
    "maintenance",
    "add-server",
    "remove-server",
    "add-service",
    "remove-service",
];
