//! lvs-webmon against stand-in daemons (no root): real lvs-proto servers on Unix sockets in a
//! run directory, answering as the director, lvs-monitord and lvs-heartbeatd would, and
//! recording what lvs-webmon asks. Checks the mapping to the page's states (maintenance,
//! quiesced, down, up), heartbeatd's HA status and the peer, `/metrics` with real rows, and
//! that each admin action sends the right request and shows the daemon's refusal as it is.

mod support;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lvs_proto::message::{AnycastRoute, AnycastStatus, BgpSession, HaMedium, HaPeer, HaStatus};
use lvs_proto::server::{Handler, Server, ServerConfig, ServerThread};
use lvs_proto::{
    AccessPolicy, DestConf, DestHealth, DestStatus, DirectorInfo, ErrorCode, FwdMethod, HaRole,
    MonitoredServer, PeerInfo, Protocol, Rates, Request, Response, ServiceConf, ServiceKey,
    ServiceStatus, Stats,
};
use support::{Webmon, wait_for};

type Log = Arc<Mutex<Vec<Request>>>;

/// A weight the stand-in director hangs on.
const HANG_WEIGHT: u32 = 4242;

fn key() -> ServiceKey {
    ServiceKey {
        protocol: Protocol::Tcp,
        addr: "192.0.2.10".parse().unwrap(),
        port: 80,
    }
}

fn rs(n: u8) -> IpAddr {
    IpAddr::from([10, 0, 0, n])
}

fn dest(n: u8, weight: u32) -> DestStatus {
    DestStatus {
        conf: DestConf {
            addr: rs(n),
            port: 80,
            fwd: FwdMethod::Masq,
            weight,
            upper_threshold: 7,
            lower_threshold: 3,
        },
        active_conns: u32::from(n),
        inactive_conns: 1,
        persist_conns: 0,
        stats: Stats {
            conns: 100 + u64::from(n),
            in_pkts: 1000,
            out_pkts: 900,
            in_bytes: 60_000,
            out_bytes: 1_200_000,
        },
        rates: Rates {
            cps: u64::from(n),
            ..Rates::default()
        },
    }
}

struct Director(Log);

impl Handler for Director {
    fn handle(&mut self, _peer: &PeerInfo, request: Request) -> Response {
        self.0.lock().unwrap().push(request.clone());
        match request {
            Request::ListServices { .. } => Response::Services(vec![ServiceStatus {
                conf: ServiceConf {
                    key: key(),
                    scheduler: "wlc".into(),
                    sched_flags: String::new(),
                    persistence: None,
                },
                stats: Stats::default(),
                rates: Rates::default(),
                dests: vec![dest(1, 1), dest(2, 0), dest(3, 2), dest(4, 1)],
            }]),
            Request::ListHealth => Response::Health(vec![DestHealth {
                service: key(),
                addr: rs(3),
                port: 80,
                healthy: false,
            }]),
            Request::GetRole => Response::Role(HaRole::Active),
            Request::GetInfo => Response::Info(DirectorInfo {
                version: "1.2.1".into(),
                conn_table_size: 4096,
                conn_count: 17,
            }),
            Request::EditDest { dest, .. } if dest.weight == HANG_WEIGHT => {
                // A director that hangs: longer than lvs-webmon's 3 s request timeout.
                std::thread::sleep(Duration::from_secs(6));
                Response::Ok
            }
            Request::Subscribe { .. } | Request::EditDest { .. } | Request::AddService(_) => {
                Response::Ok
            }
            Request::SyncStatus => Response::Sync(lvs_proto::director::SyncStatus {
                enabled: true,
                active: true,
                synced: true,
                peers: vec!["192.0.2.2:8848".into()],
                sent: 9,
                rejected_mac: 1,
                ..Default::default()
            }),
            Request::DelService(_) => Response::Error {
                code: ErrorCode::InvalidRequest,
                message: "no such service (test)".into(),
            },
            other => Response::Error {
                code: ErrorCode::Unsupported,
                message: format!("{other:?}"),
            },
        }
    }
}

struct Monitord(Log);

impl Handler for Monitord {
    fn handle(&mut self, _peer: &PeerInfo, request: Request) -> Response {
        self.0.lock().unwrap().push(request.clone());
        match request {
            Request::ListMonitored => Response::Monitored(
                (1..=4)
                    .map(|n| MonitoredServer {
                        service: key(),
                        addr: rs(n),
                        port: 80,
                        weight: 1,
                        state: if n == 3 { "down" } else { "up" }.into(),
                        maintenance: n == 1,
                        in_service: n == 4,
                        discovered: false,
                        last_ok: Some(n != 3),
                        last_detail: if n == 3 {
                            "connection refused"
                        } else {
                            "status 200 OK"
                        }
                        .into(),
                        last_age_ms: Some(300),
                    })
                    .collect(),
            ),
            Request::Maintenance { .. } => Response::Ok,
            _ => Response::Error {
                code: ErrorCode::Unsupported,
                message: "unsupported".into(),
            },
        }
    }
}

struct Heartbeatd;

impl Handler for Heartbeatd {
    fn handle(&mut self, _peer: &PeerInfo, request: Request) -> Response {
        match request {
            Request::HaStatus => Response::HaStatus(HaStatus {
                node: "node-1".into(),
                node_id: 1,
                state: "master".into(),
                fault_reason: String::new(),
                epoch: 7,
                vips: vec!["192.0.2.10/24@eth0".into()],
                holds_vips: true,
                table_synced: Some(true),
                peer: Some(HaPeer {
                    node_id: 2,
                    state: "backup".into(),
                    epoch: 7,
                    alive: true,
                    synced: true,
                }),
                media: vec![
                    HaMedium {
                        name: "udp".into(),
                        up: true,
                        last_heard_ms: Some(200),
                        accepted: 50,
                        rejected: vec![],
                    },
                    HaMedium {
                        name: "serial".into(),
                        up: false,
                        last_heard_ms: None,
                        accepted: 0,
                        rejected: vec![("bad_mac".into(), 2)],
                    },
                ],
                links: vec![("eth0".into(), true)],
            }),
            Request::Ping => Response::Pong,
            _ => Response::Error {
                code: ErrorCode::Unsupported,
                message: "unsupported".into(),
            },
        }
    }
}

/// lvs-heartbeatd in anycast mode: one route announced, one withdrawn, one BGP session.
struct AnycastHeartbeatd;

impl Handler for AnycastHeartbeatd {
    fn handle(&mut self, _peer: &PeerInfo, request: Request) -> Response {
        match request {
            Request::HaStatus => Response::HaStatus(HaStatus {
                node: "node-3".into(),
                node_id: 3,
                state: "anycast".into(),
                fault_reason: "2001:db8::10/128 withdrawn: no healthy real server".into(),
                epoch: 0,
                vips: vec!["192.0.2.10/32".into(), "2001:db8::10/128".into()],
                holds_vips: true,
                table_synced: None,
                peer: None,
                media: vec![],
                links: vec![],
            }),
            Request::AnycastStatus => Response::Anycast(AnycastStatus {
                drained: false,
                daemon: "bird".into(),
                daemon_up: true,
                director_up: true,
                routes: vec![
                    AnycastRoute {
                        prefix: "192.0.2.10/32".into(),
                        protocol: "vip_192_0_2_10".into(),
                        announced: true,
                        reason: String::new(),
                    },
                    AnycastRoute {
                        prefix: "2001:db8::10/128".into(),
                        protocol: "vip_2001_db8__10".into(),
                        announced: false,
                        reason: "no healthy real server".into(),
                    },
                ],
                sessions: vec![BgpSession {
                    name: "upstream".into(),
                    up: true,
                    state: "up Established".into(),
                }],
            }),
            Request::Ping => Response::Pong,
            _ => Response::Error {
                code: ErrorCode::Unsupported,
                message: "unsupported".into(),
            },
        }
    }
}

fn serve<H: Handler + Send + 'static>(
    rundir: &std::path::Path,
    daemon: &str,
    h: H,
) -> ServerThread<H> {
    let mut sc = ServerConfig::new(daemon, rundir);
    // The test may run as a normal user: let our own group in.
    sc.access = AccessPolicy::root_and_group(nix::unistd::getgid());
    Server::bind(sc)
        .and_then(|s| s.spawn(h))
        .unwrap_or_else(|e| panic!("cannot serve {daemon}: {e}"))
}

fn state(w: &Webmon, cookie: &str) -> serde_json::Value {
    let r = w.get("/api/state", Some(cookie));
    assert_eq!(r.status, 200, "{r:?}");
    serde_json::from_str(&r.body).expect("json")
}

#[test]
fn states_ha_status_metrics_and_actions() {
    let rundir = std::env::temp_dir().join(format!("lvs-webmon-fakes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&rundir);
    std::fs::create_dir_all(&rundir).unwrap();
    let (dlog, mlog): (Log, Log) = Default::default();
    let _d = serve(&rundir, "director", Director(Arc::clone(&dlog)));
    let _m = serve(&rundir, "monitord", Monitord(Arc::clone(&mlog)));
    let _h = serve(&rundir, "heartbeatd", Heartbeatd);
    let w = Webmon::start(Some(&rundir), "", &[("admin", "admin", "admin-password-1")]);
    let (cookie, csrf) = w.session("admin", "admin-password-1");

    let st = wait_for(
        "the state of all three daemons",
        Duration::from_secs(30),
        || {
            let st = state(&w, &cookie);
            (st["services"][0]["servers"]
                .as_array()
                .is_some_and(|a| a.len() == 4)
                && st["directors"][0]["ha_state"] == "master")
                .then_some(st)
        },
    );
    let servers = &st["services"][0]["servers"];
    let health: Vec<&str> = (0..4)
        .map(|i| servers[i]["health"].as_str().unwrap())
        .collect();
    assert_eq!(health, ["maintenance", "quiesced", "down", "up"], "{st}");
    assert_eq!(servers[2]["last_check"]["detail"], "connection refused");
    assert_eq!(servers[3]["active_conns"], 4);
    assert_eq!(servers[3]["stats"]["out_bytes"], 1_200_000);
    let d = &st["directors"][0];
    assert_eq!(d["role"], "active");
    assert_eq!(d["epoch"], 7);
    assert_eq!(d["ha_source"], "heartbeatd");
    assert_eq!(d["vips"][0], "192.0.2.10/24@eth0");
    assert_eq!(d["media"][1]["up"], false);
    assert!(
        d["media"][1]["detail"]
            .as_str()
            .unwrap()
            .contains("bad_mac"),
        "{d}"
    );
    assert_eq!(d["conn_count"], 17);
    assert_eq!(d["sync"]["active"], true);
    assert_eq!(d["sync"]["peers"][0], "192.0.2.2:8848");
    let peer = &st["directors"][1];
    assert_eq!(
        (peer["name"].as_str(), peer["ha_state"].as_str()),
        (Some("node-2 (peer)"), Some("backup"))
    );
    assert!(
        st["sources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["daemon"] == "lockmgr" && s["ok"] == false)
    );

    // /metrics with real rows.
    let r = w.metrics();
    for line in [
        "lvs_server_health{service=\"tcp/192.0.2.10:80\",server=\"10.0.0.3:80\",lvs_server_health=\"down\"} 1",
        "lvs_server_health{service=\"tcp/192.0.2.10:80\",server=\"10.0.0.3:80\",lvs_server_health=\"up\"} 0",
        "lvs_server_health{service=\"tcp/192.0.2.10:80\",server=\"10.0.0.1:80\",lvs_server_health=\"maintenance\"} 1",
        "lvs_server_out_bytes_total{service=\"tcp/192.0.2.10:80\",server=\"10.0.0.4:80\"} 1200000",
        "lvs_server_connections_total{service=\"tcp/192.0.2.10:80\",server=\"10.0.0.2:80\"} 102",
        "lvs_server_weight{service=\"tcp/192.0.2.10:80\",server=\"10.0.0.2:80\"} 0",
        "lvs_heartbeat_epoch{director=\"node-1\"} 7",
        "lvs_heartbeat_medium_up{director=\"node-1\",medium=\"serial\"} 0",
        "lvs_director_active{director=\"node-1\"} 1",
        "lvs_daemon_up{daemon=\"heartbeatd\"} 1",
        "lvs_sync_sent_datagrams_total{director=\"node-1\"} 9",
        "lvs_sync_rejected_datagrams_total{director=\"node-1\"} 1",
        "lvs_sync_synced{director=\"node-1\"} 1",
    ] {
        assert!(
            r.body.lines().any(|l| l == line),
            "missing {line}\n{}",
            r.body
        );
    }

    // Actions: each sends its request; the page gets the result or the daemon's error text.
    let act = |name: &str, body: &str| {
        w.request(
            "POST",
            &format!("/api/action/{name}"),
            &[
                ("Cookie", &cookie),
                ("Content-Type", "application/json"),
                ("X-CSRF-Token", &csrf),
            ],
            body,
        )
    };
    let r = act(
        "drain",
        r#"{"service":"tcp/192.0.2.10:80","server":"10.0.0.4:80"}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("quiesced"), "{}", r.body);
    let edit = dlog.lock().unwrap().iter().rev().find_map(|r| match r {
        Request::EditDest { dest, .. } => Some(*dest),
        _ => None,
    });
    let edit = edit.expect("an EditDest");
    assert_eq!(
        (edit.addr, edit.weight, edit.fwd, edit.upper_threshold),
        (rs(4), 0, FwdMethod::Masq, 7)
    );
    let r = act(
        "weight",
        r#"{"service":"tcp/192.0.2.10:80","server":"10.0.0.2","weight":5}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(dlog.lock().unwrap().iter().any(
        |r| matches!(r, Request::EditDest { dest, .. } if dest.addr == rs(2) && dest.weight == 5)
    ));
    let r = act(
        "weight",
        r#"{"service":"tcp/192.0.2.10:80","server":"10.0.0.9:80","weight":5}"#,
    );
    assert_eq!(r.status, 404, "{r:?}");
    let r = act(
        "maintenance",
        r#"{"service":"tcp/192.0.2.10:80","server":"10.0.0.3:80","on":true}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        mlog.lock()
            .unwrap()
            .iter()
            .any(|r| matches!(r, Request::Maintenance { addr, on: true, .. } if *addr == rs(3)))
    );
    let r = act(
        "add-service",
        r#"{"service":"udp/192.0.2.20:53","scheduler":"rr"}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(dlog.lock().unwrap().iter().any(|r| matches!(r, Request::AddService(c) if c.scheduler == "rr" && c.key.protocol == Protocol::Udp && c.key.port == 53)));
    let r = act("remove-service", r#"{"service":"tcp/192.0.2.10:80"}"#);
    assert_eq!(r.status, 502, "{r:?}");
    assert!(r.body.contains("no such service (test)"), "{}", r.body);
    let r = act(
        "add-server",
        r#"{"service":"tcp/192.0.2.10:80","server":"10.0.0.5:80","fwd":"bogus"}"#,
    );
    assert_eq!(r.status, 400);
    let r = act("reboot", "{}");
    assert_eq!(r.status, 404);
    // Each action is in the page's events and in syslog with the user's name.
    let st = state(&w, &cookie);
    assert!(
        st["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["source"] == "admin" && e["text"].as_str().unwrap().starts_with("admin: ")),
        "{st}"
    );
    assert!(
        w.log()
            .contains("event=admin_action user=admin action=maintenance"),
        "{}",
        w.log()
    );

    // A hanging director holds up only the action that waits for it: the event loop serves
    // other requests meanwhile, and the action ends with the timeout's error.
    let pending = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let slow = std::thread::scope(|scope| {
        let p = Arc::clone(&pending);
        let h = scope.spawn(move || {
            let body = format!(
                r#"{{"service":"tcp/192.0.2.10:80","server":"10.0.0.4:80","weight":{HANG_WEIGHT}}}"#
            );
            let r = act("weight", &body);
            p.store(false, std::sync::atomic::Ordering::SeqCst);
            r
        });
        wait_for(
            "the hanging EditDest at the director",
            Duration::from_secs(30),
            || {
                dlog.lock()
                .unwrap()
                .iter()
                .any(|r| matches!(r, Request::EditDest { dest, .. } if dest.weight == HANG_WEIGHT))
                .then_some(())
            },
        );
        assert_eq!(w.get("/login", None).status, 200);
        assert_eq!(w.get("/api/session", Some(&cookie)).status, 200);
        assert!(
            pending.load(std::sync::atomic::Ordering::SeqCst),
            "the action should still be waiting for the director"
        );
        h.join().unwrap()
    });
    assert_eq!(slow.status, 502, "{slow:?}");
    assert!(slow.body.contains("lvs-director"), "{}", slow.body);
    let _ = std::fs::remove_dir_all(&rundir);
}

/// An anycast director: the console shows which addresses it announces (and why not) and its
/// BGP sessions where a failover director shows its heartbeat media.
#[test]
fn anycast_routes_and_bgp_sessions() {
    let rundir = std::env::temp_dir().join(format!("lvs-webmon-anycast-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&rundir);
    std::fs::create_dir_all(&rundir).unwrap();
    let dlog: Log = Default::default();
    let _d = serve(&rundir, "director", Director(Arc::clone(&dlog)));
    let _h = serve(&rundir, "heartbeatd", AnycastHeartbeatd);
    let w = Webmon::start(Some(&rundir), "", &[("admin", "admin", "admin-password-1")]);
    let (cookie, _csrf) = w.session("admin", "admin-password-1");
    let st = wait_for("the anycast state", Duration::from_secs(30), || {
        let st = state(&w, &cookie);
        (st["directors"][0]["ha_state"] == "anycast").then_some(st)
    });
    let d = &st["directors"][0];
    assert_eq!(d["name"], "node-3", "{d}");
    assert_eq!(d["vips"][0], "192.0.2.10/32 announced", "{d}");
    assert_eq!(
        d["vips"][1], "2001:db8::10/128 withdrawn (no healthy real server)",
        "{d}"
    );
    assert_eq!(d["media"][0]["name"], "bird BGP upstream", "{d}");
    assert_eq!(d["media"][0]["up"], true, "{d}");
    assert_eq!(d["media"][0]["detail"], "up Established", "{d}");
    assert_eq!(st["directors"].as_array().map(Vec::len), Some(1), "{st}");
    let _ = std::fs::remove_dir_all(&rundir);
}
