//! `/metrics` in the OpenMetrics text format (Prometheus reads it too): every counter of
//! `lvsadm -L -n --stats` per service and per real server, the rates of `--rate`, the
//! connection gauges, the weights and the health states, and whether each daemon answered.

use std::fmt::Write as _;

use crate::collector::{RatesView, Snapshot, StatsView};

/// The Content-Type of an OpenMetrics exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The health states of the `lvs_server_health` state set.
pub const STATES: [&str; 4] = ["up", "down", "quiesced", "maintenance"];

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        let _ = writeln!(self.out, "# HELP {name} {help}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", esc(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

type Row<'a> = (Vec<(&'static str, &'a str)>, StatsView, RatesView);

/// The whole exposition, ending with `# EOF`.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::with_capacity(4096);
    let mut f = Family { out: &mut out };

    // Rows: per service (label service) and per real server (service, server).
    let svc_rows: Vec<Row<'_>> = s
        .services
        .iter()
        .map(|v| (vec![("service", v.id.as_str())], v.stats, v.rates))
        .collect();
    let srv_rows: Vec<Row<'_>> = s
        .services
        .iter()
        .flat_map(|v| {
            v.servers.iter().map(move |r| {
                (
                    vec![("service", v.id.as_str()), ("server", r.id.as_str())],
                    r.stats,
                    r.rates,
                )
            })
        })
        .collect();

    type Get = fn(&StatsView) -> u64;
    let counters: [(&str, &str, Get); 5] = [
        ("connections", "Connections scheduled", |x| x.conns),
        ("in_packets", "Packets from clients", |x| x.in_pkts),
        ("out_packets", "Packets to clients", |x| x.out_pkts),
        ("in_bytes", "Bytes from clients", |x| x.in_bytes),
        ("out_bytes", "Bytes to clients", |x| x.out_bytes),
    ];
    type GetR = fn(&RatesView) -> u64;
    let rates: [(&str, &str, GetR); 5] = [
        ("connections_per_second", "Connections per second", |x| {
            x.cps
        }),
        (
            "in_packets_per_second",
            "Packets per second from clients",
            |x| x.in_pps,
        ),
        (
            "out_packets_per_second",
            "Packets per second to clients",
            |x| x.out_pps,
        ),
        (
            "in_bytes_per_second",
            "Bytes per second from clients",
            |x| x.in_bps,
        ),
        ("out_bytes_per_second", "Bytes per second to clients", |x| {
            x.out_bps
        }),
    ];
    for (level, rows) in [("service", &svc_rows), ("server", &srv_rows)] {
        for (name, help, get) in counters {
            let fam = format!("lvs_{level}_{name}");
            f.head(
                &fam,
                "counter",
                &format!("{help} (lvsadm --stats), per {level}"),
            );
            for (labels, st, _) in rows.iter() {
                f.sample(&format!("{fam}_total"), labels, get(st));
            }
        }
        for (name, help, get) in rates {
            let fam = format!("lvs_{level}_{name}");
            f.head(
                &fam,
                "gauge",
                &format!("{help} (lvsadm --rate), per {level}"),
            );
            for (labels, _, r) in rows.iter() {
                f.sample(&fam, labels, get(r));
            }
        }
    }

    type GetS = fn(&crate::collector::ServerView) -> u64;
    let gauges: [(&str, &str, GetS); 4] = [
        (
            "lvs_server_active_connections",
            "Established connections (ActiveConn)",
            |r| u64::from(r.active_conns),
        ),
        (
            "lvs_server_inactive_connections",
            "Other connections (InActConn)",
            |r| u64::from(r.inactive_conns),
        ),
        (
            "lvs_server_persistent_connections",
            "Persistence templates",
            |r| u64::from(r.persist_conns),
        ),
        ("lvs_server_weight", "Weight at the director", |r| {
            u64::from(r.weight)
        }),
    ];
    for (fam, help, get) in gauges {
        f.head(fam, "gauge", help);
        for v in &s.services {
            for r in &v.servers {
                f.sample(fam, &[("service", &v.id), ("server", &r.id)], get(r));
            }
        }
    }
    f.head(
        "lvs_server_health",
        "stateset",
        "Health of each real server: up, down, quiesced or maintenance",
    );
    for v in &s.services {
        for r in &v.servers {
            for st in STATES {
                f.sample(
                    "lvs_server_health",
                    &[
                        ("service", &v.id),
                        ("server", &r.id),
                        ("lvs_server_health", st),
                    ],
                    u64::from(r.health == st),
                );
            }
        }
    }

    f.head(
        "lvs_director_connection_entries",
        "gauge",
        "Entries in the connection table",
    );
    for d in &s.directors {
        if let Some(n) = d.conn_count {
            f.sample(
                "lvs_director_connection_entries",
                &[("director", &d.name)],
                n,
            );
        }
    }
    f.head(
        "lvs_director_active",
        "gauge",
        "1 if the director is active, 0 if standby",
    );
    for d in &s.directors {
        if let Some(r) = &d.role {
            f.sample(
                "lvs_director_active",
                &[("director", &d.name)],
                u64::from(r == "active"),
            );
        }
    }
    type GetSync = fn(&crate::collector::SyncView) -> u64;
    let sync: [(&str, &str, GetSync); 4] = [
        (
            "lvs_sync_sent_datagrams",
            "Connection-sync datagrams sent",
            |v| v.sent,
        ),
        (
            "lvs_sync_received_datagrams",
            "Authentic connection-sync datagrams received",
            |v| v.received,
        ),
        (
            "lvs_sync_applied_entries",
            "Connection entries applied from sync",
            |v| v.entries_applied,
        ),
        (
            "lvs_sync_rejected_datagrams",
            "Connection-sync datagrams rejected",
            |v| v.rejected,
        ),
    ];
    for (fam, help, get) in sync {
        f.head(fam, "counter", help);
        for d in &s.directors {
            if let Some(v) = &d.sync {
                f.sample(&format!("{fam}_total"), &[("director", &d.name)], get(v));
            }
        }
    }
    f.head(
        "lvs_sync_synced",
        "gauge",
        "1 if the connection table is synced",
    );
    for d in &s.directors {
        if let Some(v) = &d.sync {
            f.sample(
                "lvs_sync_synced",
                &[("director", &d.name)],
                u64::from(v.synced),
            );
        }
    }
    f.head(
        "lvs_heartbeat_epoch",
        "gauge",
        "The mastership epoch lvs-heartbeatd knows",
    );
    for d in &s.directors {
        if let Some(e) = d.epoch {
            f.sample("lvs_heartbeat_epoch", &[("director", &d.name)], e);
        }
    }
    f.head(
        "lvs_heartbeat_medium_up",
        "gauge",
        "1 if the peer was heard on this medium within the deadtime",
    );
    if let Some(d) = s.directors.first() {
        for m in &d.media {
            f.sample(
                "lvs_heartbeat_medium_up",
                &[("director", &d.name), ("medium", &m.name)],
                u64::from(m.up),
            );
        }
    }
    f.head(
        "lvs_daemon_up",
        "gauge",
        "1 if the daemon's control socket answered the last poll",
    );
    for src in &s.sources {
        f.sample(
            "lvs_daemon_up",
            &[("daemon", &src.daemon)],
            u64::from(src.ok),
        );
    }
    f.head("lvs_lockmgr_locks", "gauge", "Lock manager totals by kind");
    let mut counts: Vec<_> = s.lockmgr.counts.iter().collect();
    counts.sort();
    for (k, n) in counts {
        f.sample("lvs_lockmgr_locks", &[("kind", k)], *n);
    }
    out.push_str("# EOF\n");
    out
}
