//! keepalived.conf (keepalived.conf(5)) to a [`Site`]: `global_defs`, `virtual_server` with
//! its `real_server`s and checkers, and the `vrrp_instance`s. Each keyword is either mapped
//! (its line kept with what it became) or a [`Note`] saying why not; a malformed value of a
//! keyword that is mapped is an error naming its line.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::str::FromStr;

use super::model::{
    Alerts, Check, CheckKind, Fwd, Ha, Http, Mail, Note, OnFailure, Server, Service, Set, Site,
    Target, Timing, Udp, Vip,
};
use super::tokens::{self, Node};
use super::{ImportError, Origin};

/// The schedulers the director's plugins provide.
pub const SCHEDULERS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "sh", "dh", "mh", "sed", "nq", "fo", "ovf", "twos",
];

const NO_CHECK: &str = "monitord has no such check; the server keeps its other checks, or gets monitord's default one (a TCP connect to its port, an ICMP echo for UDP)";

/// Reads keepalived.conf at `path` (includes followed).
pub fn read(path: &Path) -> Result<Site, ImportError> {
    let nodes = tokens::read(path)?;
    map(&nodes, &path.display().to_string())
}

/// Maps parsed statements; `source` names the file in the written headers.
pub fn map(nodes: &[Node], source: &str) -> Result<Site, ImportError> {
    let mut m = Mapper::new(source);
    for n in nodes {
        m.top(n)?;
    }
    m.finish()
}

fn note(n: &Node, why: impl Into<String>) -> Note {
    Note {
        at: n.at.clone(),
        text: n.text.clone(),
        why: why.into(),
    }
}

/// `n` and everything inside it, as notes.
fn all_notes(n: &Node, why: &str, out: &mut Vec<Note>) {
    out.push(note(n, why));
    for c in &n.children {
        all_notes(c, &format!("inside `{}` above", n.keyword()), out);
    }
}

fn arg(n: &Node, i: usize) -> Result<&str, ImportError> {
    n.args().get(i).map(String::as_str).ok_or_else(|| {
        ImportError::syntax(n.at.clone(), format!("`{}` needs a value", n.keyword()))
    })
}

fn num<T: FromStr>(n: &Node, i: usize) -> Result<T, ImportError> {
    let v = arg(n, i)?;
    v.parse().map_err(|_| {
        ImportError::syntax(
            n.at.clone(),
            format!("`{}`: `{v}` is not a valid number here", n.keyword()),
        )
    })
}

fn secs(n: &Node) -> Result<f64, ImportError> {
    let v: f64 = num(n, 0)?;
    if !v.is_finite() || v <= 0.0 || v > 3600.0 {
        return Err(ImportError::syntax(
            n.at.clone(),
            format!(
                "`{}`: {v} is not a time between 0 and 3600 seconds",
                n.keyword()
            ),
        ));
    }
    Ok(v)
}

/// Seconds (already checked to be 0 to 3600) in milliseconds.
fn millis(secs: f64) -> u64 {
    u64::try_from(std::time::Duration::from_secs_f64(secs).as_millis()).unwrap_or(u64::MAX)
}

fn ip(n: &Node, i: usize) -> Result<IpAddr, ImportError> {
    let v = arg(n, i)?;
    v.parse().map_err(|_| {
        ImportError::syntax(
            n.at.clone(),
            format!("`{}`: `{v}` is not an IP address", n.keyword()),
        )
    })
}

fn port(n: &Node, i: usize) -> Result<u16, ImportError> {
    num(n, i)
}

fn boolean(n: &Node) -> bool {
    !matches!(
        n.args().first().map(|s| s.to_ascii_lowercase()).as_deref(),
        Some("false" | "no" | "off" | "0")
    )
}

fn fwd(n: &Node) -> Result<Fwd, ImportError> {
    match arg(n, 0)?.to_ascii_uppercase().as_str() {
        "NAT" => Ok(Fwd::Nat),
        "DR" => Ok(Fwd::Dr),
        "TUN" => Ok(Fwd::Tun),
        other => Err(ImportError::syntax(
            n.at.clone(),
            format!("`{}`: `{other}` is not NAT, DR or TUN", n.keyword()),
        )),
    }
}

/// `lvs_method TUN type gue port 6080 ...`: the words after the method.
fn tunnel_options(n: &Node) -> Option<Note> {
    (n.args().len() > 1).then(|| {
        note(
            n,
            format!(
                "`{}` is not imported: the director's tunnels are IP-in-IP",
                n.args()[1..].join(" ")
            ),
        )
    })
}

/// A script given as one string (`"/path/script arg"`) or as words: its argv, if the
/// program is an absolute path (monitord and heartbeatd run no shell).
fn argv(n: &Node) -> Option<Vec<String>> {
    let words: Vec<String> = n
        .args()
        .iter()
        .flat_map(|a| a.split_whitespace().map(str::to_owned))
        .collect();
    words.first().filter(|p| p.starts_with('/'))?;
    Some(words)
}

/// Shell characters that a plain argv cannot stand for.
fn needs_shell(s: &str) -> bool {
    s.chars().any(|c| "|&;<>()$`\\\"'*?[]#~=%{}".contains(c))
}

/// A notify script and where it came from, waiting to be made the one notify command.
struct Script {
    argv: Option<Vec<String>>,
    node: Node,
}

/// The notify commands of one daemon: the first one's program becomes `[alert.notify]`, and
/// every script that runs the same program maps to it (with its arguments only when they
/// all agree: the event comes as arguments anyway).
fn notify(scripts: &[Script], notes: &mut Vec<Note>) -> Option<(Vec<String>, Vec<Origin>)> {
    let program = scripts
        .iter()
        .find_map(|s| s.argv.as_ref()?.first().cloned())?;
    let same: Vec<&Vec<String>> = scripts
        .iter()
        .filter_map(|s| s.argv.as_ref())
        .filter(|a| a[0] == program)
        .collect();
    let argv = if same.iter().all(|a| *a == same[0]) {
        same[0].clone()
    } else {
        vec![program.clone()]
    };
    let mut at = Vec::new();
    for s in scripts {
        match &s.argv {
            None => notes.push(note(
                &s.node,
                "the notify command must be an absolute path (it is run without a shell)",
            )),
            Some(a) if a[0] == program => at.push(s.node.at.clone()),
            Some(_) => notes.push(note(
                &s.node,
                format!(
                    "one notify command runs for every change, with the event and state as \
                     arguments: {program} does this job now (merge this script into it)"
                ),
            )),
        }
    }
    Some((argv, at))
}

struct Global {
    emails: Vec<Set<String>>,
    email_nodes: Vec<Node>,
    from: Option<Set<String>>,
    smtp: Option<(Set<String>, Option<Set<u16>>)>,
    smtp_timeout: Option<Set<u64>>,
    smtp_also: Vec<Origin>,
    /// `smtp_alert` lines: they ask for mail.
    smtp_alerts: Vec<Node>,
    router_id: Option<Set<String>>,
    mcast_group: Option<Set<Ipv4Addr>>,
    mcast_group6: Option<Set<Ipv6Addr>>,
    /// The global lines about VRRP, noted when there is no vrrp_instance.
    vrrp_nodes: Vec<Node>,
    garp_count: Option<Set<u32>>,
    garp_refresh_ms: Option<Set<u64>>,
}

struct Mapper {
    site: Site,
    g: Global,
    monitord_scripts: Vec<Script>,
    vrrp: Vec<Node>,
    sync_groups: Vec<Node>,
}

impl Mapper {
    fn new(source: &str) -> Mapper {
        Mapper {
            site: Site {
                kind: "keepalived",
                source: source.to_owned(),
                services: Vec::new(),
                timeouts: None,
                alerts: Alerts::default(),
                ha: None,
                notes: Vec::new(),
                blocks: Vec::new(),
            },
            g: Global {
                emails: Vec::new(),
                email_nodes: Vec::new(),
                from: None,
                smtp: None,
                smtp_timeout: None,
                smtp_also: Vec::new(),
                smtp_alerts: Vec::new(),
                router_id: None,
                mcast_group: None,
                mcast_group6: None,
                vrrp_nodes: Vec::new(),
                garp_count: None,
                garp_refresh_ms: None,
            },
            monitord_scripts: Vec::new(),
            vrrp: Vec::new(),
            sync_groups: Vec::new(),
        }
    }

    fn note(&mut self, target: Target, n: &Node, why: impl Into<String>) {
        self.site.notes.push((target, note(n, why)));
    }

    fn all(&mut self, target: Target, n: &Node, why: &str) {
        let mut v = Vec::new();
        all_notes(n, why, &mut v);
        self.site.notes.extend(v.into_iter().map(|x| (target, x)));
    }

    fn top(&mut self, n: &Node) -> Result<(), ImportError> {
        match n.keyword() {
            "global_defs" => {
                for c in &n.children {
                    self.global(c)?;
                }
                self.site.blocks.push((n.at.clone(), n.text.clone()));
            }
            "include" => self.site.blocks.push((n.at.clone(), n.text.clone())),
            "virtual_server" => self.virtual_server(n)?,
            "vrrp_instance" => self.vrrp.push(n.clone()),
            "vrrp_sync_group" => self.sync_groups.push(n.clone()),
            "virtual_server_group" => self.all(
                Target::Director,
                n,
                "a virtual_server group has no equivalent: give each address and port its own \
                 virtual_server (the virtual_server that uses the group is a comment too)",
            ),
            "vrrp_script" => self.all(
                Target::Heartbeatd,
                n,
                "heartbeatd runs no track scripts: a failing script cannot lower a priority. \
                 Stop lvs-heartbeatd (or make the node fail) from your own monitoring instead",
            ),
            "static_ipaddress" | "static_routes" | "static_rules" => self.all(
                Target::Heartbeatd,
                n,
                "addresses and routes that never move belong to the system's network configuration",
            ),
            _ => self.all(Target::Director, n, "no equivalent in lvs-rs"),
        }
        Ok(())
    }

    fn global(&mut self, n: &Node) -> Result<(), ImportError> {
        let at = &n.at;
        if n.keyword().starts_with("vrrp_mcast_group")
            || n.keyword().starts_with("vrrp_garp_master_r")
        {
            self.g.vrrp_nodes.push(n.clone());
        }
        match n.keyword() {
            "notification_email" => {
                for c in &n.children {
                    for w in &c.words {
                        self.g.emails.push(Set::new(w.clone(), &c.at));
                    }
                    self.g.email_nodes.push(c.clone());
                }
                if !n.children.is_empty() {
                    self.g.smtp_also.push(at.clone());
                }
                self.g.email_nodes.push(n.clone());
            }
            "notification_email_from" => {
                self.g.from = Some(Set::new(arg(n, 0)?.to_owned(), at));
            }
            "smtp_server" => {
                let host = arg(n, 0)?.to_owned();
                let p = match n.args().get(1) {
                    Some(_) => Some(Set::new(port(n, 1)?, at)),
                    None => None,
                };
                self.g.smtp = Some((Set::new(host, at), p));
            }
            "smtp_connect_timeout" => {
                self.g.smtp_timeout = Some(Set::new(num(n, 0)?, at));
            }
            "router_id" => self.g.router_id = Some(Set::new(arg(n, 0)?.to_owned(), at)),
            "smtp_alert" | "smtp_alert_vrrp" | "smtp_alert_checker" => {
                if boolean(n) {
                    self.g.smtp_alerts.push(n.clone());
                } else {
                    self.note(
                        Target::Monitord,
                        n,
                        "the daemons mail every change once [alert.mail] is configured; leave it out for no mail",
                    );
                }
            }
            "lvs_timeouts" => {
                let (mut tcp, mut fin, mut udp) = (900, 120, 300);
                let words = n.args();
                let mut i = 0;
                while i < words.len() {
                    let v: u32 = num(n, i + 1)?;
                    match words[i].as_str() {
                        "tcp" => tcp = v,
                        "tcpfin" => fin = v,
                        "udp" => udp = v,
                        other => {
                            return Err(ImportError::syntax(
                                at.clone(),
                                format!("lvs_timeouts: `{other}` is not tcp, tcpfin or udp"),
                            ));
                        }
                    }
                    i += 2;
                }
                self.site.timeouts = Some(Set::new((tcp, fin, udp), at));
            }
            "vrrp_mcast_group4" => {
                let IpAddr::V4(g) = ip(n, 0)? else {
                    return Err(ImportError::syntax(at.clone(), "vrrp_mcast_group4 is IPv4"));
                };
                self.g.mcast_group = Some(Set::new(g, at));
            }
            "vrrp_mcast_group6" => {
                let IpAddr::V6(g) = ip(n, 0)? else {
                    return Err(ImportError::syntax(at.clone(), "vrrp_mcast_group6 is IPv6"));
                };
                self.g.mcast_group6 = Some(Set::new(g, at));
            }
            "vrrp_garp_master_repeat" => self.g.garp_count = Some(Set::new(num(n, 0)?, at)),
            "vrrp_garp_master_refresh" => {
                self.g.garp_refresh_ms = Some(Set::new(num::<u64>(n, 0)?.saturating_mul(1000), at));
            }
            "lvs_sync_daemon" => self.note(
                Target::Director,
                n,
                "connection sync needs a shared key and the peers' addresses: see [sync] in etc/lvs-director.toml",
            ),
            "script_user" | "enable_script_security" => self.note(
                Target::Monitord,
                n,
                "monitord runs scripts as its own user, with a clean environment and no shell",
            ),
            "smtp_helo_name" => self.note(
                Target::Monitord,
                n,
                "the mail client names this host itself in HELO",
            ),
            _ => self.note(Target::Director, n, "no equivalent in lvs-rs"),
        }
        Ok(())
    }

    fn virtual_server(&mut self, n: &Node) -> Result<(), ImportError> {
        let first = arg(n, 0)?;
        if first == "fwmark" {
            self.all(
                Target::Director,
                n,
                "firewall-mark services are not imported: the director must be told how packets \
                 are marked; set them up by hand",
            );
            return Ok(());
        }
        if first == "group" {
            self.all(
                Target::Director,
                n,
                "a virtual_server group has no equivalent: give each address its own virtual_server",
            );
            return Ok(());
        }
        let vip = ip(n, 0)?;
        let vport = port(n, 1)?;
        if let Some(p) = n.children.iter().find(|c| c.keyword() == "protocol") {
            let proto = arg(p, 0)?.to_ascii_uppercase();
            if proto != "TCP" && proto != "UDP" {
                self.all(
                    Target::Director,
                    n,
                    "only TCP and UDP services are load balanced by the director",
                );
                return Ok(());
            }
        }
        let mut s = Service::new(n.at.clone(), vip, vport, OnFailure::Remove);
        let mut host: Option<Set<String>> = None;
        if let Some(v) = n.children.iter().find(|c| c.keyword() == "virtualhost") {
            host = Some(Set::new(arg(v, 0)?.to_owned(), &v.at));
        }
        for c in &n.children {
            let at = &c.at;
            match c.keyword() {
                "delay_loop" => s.timing.interval = Some(Set::new(secs(c)?, at)),
                "connect_timeout" => s.timing.timeout = Some(Set::new(secs(c)?, at)),
                "retry" => s.timing.fall = Some(Set::new(num::<u32>(c, 0)?.saturating_add(1), at)),
                "lb_algo" | "lvs_sched" => {
                    let name = arg(c, 0)?;
                    if SCHEDULERS.contains(&name) {
                        s.scheduler = Some(Set::new(name.to_owned(), at));
                    } else {
                        s.rules_notes.push(note(
                            c,
                            format!(
                                "the director has no `{name}` scheduler plugin ({}): the service uses wlc, the default",
                                SCHEDULERS.join(", ")
                            ),
                        ));
                    }
                }
                "lb_kind" | "lvs_method" => {
                    s.fwd = Some(Set::new(fwd(c)?, at));
                    if let Some(n) = tunnel_options(c) {
                        s.rules_notes.push(n);
                    }
                }
                "persistence_timeout" => s.persistence = Some(Set::new(num(c, 0)?, at)),
                "persistence_granularity" => {
                    s.netmask = Some(Set::new(arg(c, 0)?.to_owned(), at));
                }
                "protocol" => {
                    s.udp = arg(c, 0)?.eq_ignore_ascii_case("UDP");
                    s.also.push(at.clone());
                }
                "sorry_server" => {
                    let a = ip(c, 0)?;
                    let p = match c.args().get(1) {
                        Some(_) => port(c, 1)?,
                        None => vport,
                    };
                    s.sorry = Some(Set::new(SocketAddr::new(a, p), at));
                }
                "quorum" => {
                    let q: u32 = num(c, 0)?;
                    s.quorum = Some(Set::new(q.clamp(1, 1000), at));
                }
                "hysteresis" => s.hysteresis = Some(Set::new(num(c, 0)?, at)),
                "quorum_up" | "quorum_down" => self.monitord_scripts.push(Script {
                    argv: argv(c),
                    node: c.clone(),
                }),
                "inhibit_on_failure" => {
                    if boolean(c) {
                        s.on_failure = OnFailure::Quiesce;
                    }
                    s.on_failure_at.push(at.clone());
                }
                "sh-port" | "sh-fallback" | "mh-port" | "mh-fallback" | "flag-1" | "flag-2"
                | "flag-3" => s.sched_flags.push(Set::new(c.keyword().to_owned(), at)),
                "virtualhost" => {}
                "smtp_alert" => self.g.smtp_alerts.push(c.clone()),
                "real_server" => {}
                "persistence_engine" => s.rules_notes.push(note(
                    c,
                    "no persistence engines: persistence is by client address (and netmask)",
                )),
                "alpha" => s.notes.push(note(
                    c,
                    "monitord keeps what the director has at start and takes a server out only \
                     after `fall` failed checks, so a restart takes nothing out",
                )),
                "omega" => s.notes.push(note(
                    c,
                    "monitord never removes services; quorum_down runs as the notify command when \
                     the quorum is lost",
                )),
                "delay_before_retry" | "warmup" => s.notes.push(note(
                    c,
                    "monitord checks at a fixed interval, also while a server is failing",
                )),
                "ha_suspend" => s.notes.push(note(
                    c,
                    "checks run on both directors; the standby's director does not forward",
                )),
                "ops" | "one_packet_scheduling" => s.rules_notes.push(note(
                    c,
                    "no one-packet scheduling: every UDP flow has a connection entry",
                )),
                "sorry_server_inhibit" | "sorry_server_lvs_method" => s.notes.push(note(
                    c,
                    "monitord adds the sorry server with weight 1 while every server is down",
                )),
                "ip_family" => s
                    .rules_notes
                    .push(note(c, "the addresses say their family")),
                _ => s.notes.push(note(c, "no equivalent in lvs-rs")),
            }
        }
        for c in n.children.iter().filter(|c| c.keyword() == "real_server") {
            self.real_server(&mut s, c, host.as_ref())?;
        }
        if let Some(h) = &host
            && !s.servers.iter().any(|r| uses_host(&r.checks, &h.at))
        {
            let v = n.children.iter().find(|c| c.keyword() == "virtualhost");
            s.notes.extend(v.map(|v| note(v, "no HTTP check uses it")));
        }
        // keepalived's default forwarding method is NAT (ipvsadm's is DR).
        if s.fwd.is_none() {
            s.fwd = Some(Set::new(Fwd::Nat, &n.at));
        }
        if let (Some(q), Some(h)) = (&s.quorum, &mut s.hysteresis)
            && h.v >= q.v
        {
            h.v = q.v - 1;
        }
        self.site.services.push(s);
        Ok(())
    }

    fn real_server(
        &mut self,
        s: &mut Service,
        n: &Node,
        vs_host: Option<&Set<String>>,
    ) -> Result<(), ImportError> {
        let mut r = Server {
            at: n.at.clone(),
            addr: ip(n, 0)?,
            port: match n.args().get(1) {
                Some(_) => port(n, 1)?,
                None => s.port,
            },
            weight: None,
            fwd: None,
            uthreshold: None,
            lthreshold: None,
            checks: Vec::new(),
            also: Vec::new(),
            notes: Vec::new(),
        };
        if r.addr.is_ipv4() != s.vip.is_ipv4() {
            return Err(ImportError::syntax(
                n.at.clone(),
                "a real server of another address family than its virtual server",
            ));
        }
        let mut timing = Timing::default();
        let mut timing_nodes = Vec::new();
        let mut host = vs_host.cloned();
        if let Some(v) = n.children.iter().find(|c| c.keyword() == "virtualhost") {
            host = Some(Set::new(arg(v, 0)?.to_owned(), &v.at));
        }
        for c in &n.children {
            let at = &c.at;
            match c.keyword() {
                "weight" => r.weight = Some(Set::new(num::<u32>(c, 0)?.min(65535), at)),
                "inhibit_on_failure" => {
                    if boolean(c) {
                        s.on_failure = OnFailure::Quiesce;
                    }
                    s.on_failure_at.push(at.clone());
                }
                "notify_up" | "notify_down" => self.monitord_scripts.push(Script {
                    argv: argv(c),
                    node: c.clone(),
                }),
                "uthreshold" => r.uthreshold = Some(Set::new(num(c, 0)?, at)),
                "lthreshold" => r.lthreshold = Some(Set::new(num(c, 0)?, at)),
                "lvs_method" | "lb_kind" => {
                    r.fwd = Some(Set::new(fwd(c)?, at));
                    if let Some(n) = tunnel_options(c) {
                        s.rules_notes.push(n);
                    }
                }
                "delay_loop" => {
                    timing.interval = Some(Set::new(secs(c)?, at));
                    timing_nodes.push(c);
                }
                "connect_timeout" => {
                    timing.timeout = Some(Set::new(secs(c)?, at));
                    timing_nodes.push(c);
                }
                "retry" => {
                    timing.fall = Some(Set::new(num::<u32>(c, 0)?.saturating_add(1), at));
                    timing_nodes.push(c);
                }
                "virtualhost" => timing_nodes.push(c),
                "smtp_alert" => self.g.smtp_alerts.push(c.clone()),
                "delay_before_retry" | "warmup" => r.notes.push(note(
                    c,
                    "monitord checks at a fixed interval, also while a server is failing",
                )),
                "HTTP_GET" | "SSL_GET" => {
                    let https = c.keyword() == "SSL_GET";
                    let checks = self.http_check(c, https, host.as_ref())?;
                    r.checks.extend(checks);
                }
                "TCP_CHECK" => {
                    let ch = self.check(c, CheckKind::Tcp, &[])?;
                    r.checks.push(ch);
                }
                "PING_CHECK" => {
                    let ch = self.check(c, CheckKind::Icmp, &[])?;
                    r.checks.push(ch);
                }
                "MISC_CHECK" => {
                    if let Some(ch) = self.misc_check(c, &mut r.notes)? {
                        r.checks.push(ch);
                    }
                }
                "DNS_CHECK" => {
                    if let Some(ch) = self.dns_check(c, &mut r.notes)? {
                        r.checks.push(ch);
                    }
                }
                "SMTP_CHECK" | "UDP_CHECK" | "BFD_CHECK" | "FILE_CHECK" => {
                    all_notes(c, NO_CHECK, &mut r.notes);
                }
                _ => r.notes.push(note(c, "no equivalent in lvs-rs")),
            }
        }
        for ch in &mut r.checks {
            ch.timing = ch.timing.over(&timing);
        }
        for c in timing_nodes {
            let used = if c.keyword() == "virtualhost" {
                uses_host(&r.checks, &c.at)
            } else {
                r.checks.iter().any(|ch| {
                    [
                        ch.timing.interval.as_ref().map(|t| &t.at),
                        ch.timing.timeout.as_ref().map(|t| &t.at),
                        ch.timing.fall.as_ref().map(|t| &t.at),
                    ]
                    .contains(&Some(&c.at))
                })
            };
            if !used {
                r.notes.push(note(
                    c,
                    "no check of this server uses it (monitord's default check has the service's timing; a check's own value wins)",
                ));
            }
        }
        s.servers.push(r);
        Ok(())
    }

    /// A checker's common keywords; `own` lists those the caller handles itself.
    fn check(&mut self, n: &Node, kind: CheckKind, own: &[&str]) -> Result<Check, ImportError> {
        let mut ch = Check {
            at: vec![n.at.clone()],
            kind,
            port: None,
            timing: Timing::default(),
            notes: Vec::new(),
        };
        for c in &n.children {
            let at = &c.at;
            if own.contains(&c.keyword()) {
                continue;
            }
            match c.keyword() {
                "connect_port" => ch.port = Some(Set::new(port(c, 0)?, at)),
                "connect_timeout" | "misc_timeout" => {
                    ch.timing.timeout = Some(Set::new(secs(c)?, at));
                }
                "delay_loop" => ch.timing.interval = Some(Set::new(secs(c)?, at)),
                "retry" | "nb_get_retry" => {
                    ch.timing.fall = Some(Set::new(num::<u32>(c, 0)?.saturating_add(1), at));
                }
                "delay_before_retry" | "warmup" => ch.notes.push(note(
                    c,
                    "monitord checks at a fixed interval, also while a server is failing",
                )),
                "connect_ip" | "bindto" | "bind_port" | "bind_if" | "source_ip" => {
                    ch.notes.push(note(
                        c,
                        "monitord checks the real server's own address, from the director's",
                    ));
                }
                "fwmark" => ch.notes.push(note(c, "checks are not marked")),
                "alpha" => ch.notes.push(note(
                    c,
                    "monitord takes a server out only after `fall` failed checks",
                )),
                _ => ch.notes.push(note(c, "no equivalent in monitord's checks")),
            }
        }
        Ok(ch)
    }

    fn http_check(
        &mut self,
        n: &Node,
        https: bool,
        host: Option<&Set<String>>,
    ) -> Result<Vec<Check>, ImportError> {
        let mut base = self.check(
            n,
            CheckKind::Tcp,
            &[
                "url",
                "virtualhost",
                "http_protocol",
                "enable_sni",
                "tls_compliant",
            ],
        )?;
        let mut host = host.cloned();
        for c in &n.children {
            match c.keyword() {
                "virtualhost" => host = Some(Set::new(arg(c, 0)?.to_owned(), &c.at)),
                "http_protocol" => base.notes.push(note(
                    c,
                    "monitord's checks speak HTTP/1.1 and close the connection",
                )),
                "enable_sni" | "tls_compliant" => base.notes.push(note(
                    c,
                    "monitord sends the host as the TLS server name when one is given",
                )),
                _ => {}
            }
        }
        let urls: Vec<&Node> = n.children.iter().filter(|c| c.keyword() == "url").collect();
        let blank = Node {
            at: n.at.clone(),
            words: vec!["url".into()],
            children: Vec::new(),
            block: true,
            text: String::new(),
        };
        let urls = if urls.is_empty() { vec![&blank] } else { urls };
        let mut out = Vec::new();
        for (i, u) in urls.into_iter().enumerate() {
            let mut h = Http {
                https,
                path: None,
                host: host.clone(),
                status: None,
                body: None,
                no_verify: https,
            };
            let mut ch = base.clone();
            if i > 0 {
                // The checker's own notes are written once.
                ch.notes.clear();
            }
            if u.block && !u.text.is_empty() {
                ch.at.push(u.at.clone());
            }
            let mut codes: Vec<u16> = Vec::new();
            let mut codes_at = None;
            for c in &u.children {
                let at = &c.at;
                match c.keyword() {
                    "path" => {
                        let p = arg(c, 0)?;
                        let p = if p.starts_with('/') {
                            p.to_owned()
                        } else {
                            format!("/{p}")
                        };
                        if p.chars().any(|ch| ch.is_ascii_control() || ch == ' ') {
                            return Err(ImportError::syntax(
                                at.clone(),
                                "path: no spaces or control characters",
                            ));
                        }
                        h.path = Some(Set::new(p, at));
                    }
                    "status_code" => {
                        for w in c.args() {
                            codes.extend(status_codes(c, w)?);
                        }
                        codes_at.get_or_insert_with(|| at.clone());
                        if codes_at.as_ref() != Some(at) {
                            ch.at.push(at.clone());
                        }
                    }
                    "virtualhost" => h.host = Some(Set::new(arg(c, 0)?.to_owned(), at)),
                    "digest" => ch.notes.push(note(
                        c,
                        "monitord compares the body's SHA-256 (body_sha256), not keepalived's MD5: \
                         add body_sha256 = the output of `curl -s URL | sha256sum`",
                    )),
                    "regex" => {
                        let r = arg(c, 0)?;
                        if needs_shell(r) || r.contains(['.', '+', '^']) {
                            ch.notes.push(note(
                                c,
                                "monitord looks for plain text in the body (body = \"...\"), not a regular expression",
                            ));
                        } else {
                            h.body = Some(Set::new(r.to_owned(), at));
                        }
                    }
                    _ => ch
                        .notes
                        .push(note(c, "no equivalent in monitord's HTTP check")),
                }
            }
            if let Some(at) = codes_at {
                codes.sort_unstable();
                codes.dedup();
                h.status = Some(Set::new(codes, &at));
            } else {
                // Without status_code keepalived passes any 2xx: these are the ones HTTP
                // defines.
                h.status = Some(Set::new((200..=206).collect(), &u.at));
            }
            if let Some(hs) = &h.host
                && !valid_host(&hs.v)
            {
                return Err(ImportError::syntax(
                    hs.at.clone(),
                    format!("virtualhost: `{}` is not a host name", hs.v),
                ));
            }
            ch.kind = CheckKind::Http(h);
            out.push(ch);
        }
        Ok(out)
    }

    fn misc_check(
        &mut self,
        n: &Node,
        notes: &mut Vec<Note>,
    ) -> Result<Option<Check>, ImportError> {
        let mut ch = self.check(n, CheckKind::Tcp, &["misc_path", "misc_dynamic", "user"])?;
        let Some(p) = n.children.iter().find(|c| c.keyword() == "misc_path") else {
            all_notes(n, "a MISC_CHECK without misc_path checks nothing", notes);
            return Ok(None);
        };
        arg(p, 0)?;
        let words: Vec<String> = p
            .args()
            .iter()
            .flat_map(|a| a.split_whitespace().map(str::to_owned))
            .collect();
        let (command, args) = if !p.args().iter().any(|a| needs_shell(a))
            && words.first().is_some_and(|w| w.starts_with('/'))
        {
            (words[0].clone(), words[1..].to_vec())
        } else {
            // keepalived runs misc_path through a shell; so does this.
            (
                "/bin/sh".to_owned(),
                vec!["-c".to_owned(), p.args().join(" ")],
            )
        };
        for c in &n.children {
            match c.keyword() {
                "misc_dynamic" => ch.notes.push(note(
                    c,
                    "a script's exit code passes (0) or fails; it does not set the weight",
                )),
                "user" => ch.notes.push(note(
                    c,
                    "monitord runs scripts as its own user, with LVS_SERVER_ADDR and LVS_SERVER_PORT set",
                )),
                _ => {}
            }
        }
        ch.kind = CheckKind::Script {
            command,
            args,
            at: p.at.clone(),
        };
        Ok(Some(ch))
    }

    fn dns_check(&mut self, n: &Node, notes: &mut Vec<Note>) -> Result<Option<Check>, ImportError> {
        let mut ch = self.check(n, CheckKind::Tcp, &["type", "name"])?;
        let qtype = n.children.iter().find(|c| c.keyword() == "type");
        let aaaa = match qtype {
            None => None,
            Some(t) => match arg(t, 0)?.to_ascii_uppercase().as_str() {
                "A" => Some(Set::new(false, &t.at)),
                "AAAA" => Some(Set::new(true, &t.at)),
                _ => {
                    all_notes(
                        n,
                        "monitord's DNS check asks for A or AAAA records only; the server keeps its \
                         other checks, or gets monitord's default one",
                        notes,
                    );
                    return Ok(None);
                }
            },
        };
        let Some(name) = n.children.iter().find(|c| c.keyword() == "name") else {
            all_notes(
                n,
                "keepalived's default question (the SOA of `.`) is not one monitord asks: add name and type A",
                notes,
            );
            return Ok(None);
        };
        if aaaa.is_none() {
            all_notes(
                n,
                "keepalived's default type is SOA, which monitord does not ask: add `type A`",
                notes,
            );
            return Ok(None);
        }
        let name = Set::new(arg(name, 0)?.trim_end_matches('.').to_owned(), &name.at);
        ch.kind = CheckKind::Dns {
            name,
            aaaa,
            expect: None,
        };
        Ok(Some(ch))
    }

    fn finish(mut self) -> Result<Site, ImportError> {
        // Mail, when keepalived would send it: recipients and a server.
        let mail = match (&self.g.smtp, self.g.emails.is_empty()) {
            (Some((server, p)), false) => {
                let mut also = self.g.smtp_also.clone();
                also.extend(self.g.smtp_alerts.iter().map(|n| n.at.clone()));
                also.extend(
                    self.g
                        .email_nodes
                        .iter()
                        .filter(|n| n.block)
                        .map(|n| n.at.clone()),
                );
                Some(Mail {
                    from: self.g.from.clone(),
                    to: self.g.emails.clone(),
                    server: server.clone(),
                    port: p.clone(),
                    timeout: self.g.smtp_timeout.clone(),
                    also,
                })
            }
            _ => {
                let why = "keepalived sends mail only with both notification_email and smtp_server";
                for n in self.g.smtp_alerts.clone() {
                    self.note(Target::Monitord, &n, why);
                }
                for n in self.g.email_nodes.clone() {
                    self.note(Target::Monitord, &n, why);
                }
                if let Some((s, _)) = &self.g.smtp {
                    let at = s.at.clone();
                    self.site.notes.push((
                        Target::Monitord,
                        Note {
                            at,
                            text: format!("smtp_server {}", s.v),
                            why: why.into(),
                        },
                    ));
                }
                None
            }
        };
        let mut monitord_notes = Vec::new();
        self.site.alerts = Alerts {
            node: self.g.router_id.clone(),
            mail: mail.clone(),
            notify: notify(&self.monitord_scripts, &mut monitord_notes),
        };
        self.site
            .notes
            .extend(monitord_notes.into_iter().map(|n| (Target::Monitord, n)));
        if mail.is_none() {
            // The smtp_alert lines and global_defs' own line have nothing to name them.
            if let Some(from) = self.g.from.clone() {
                self.site.notes.push((
                    Target::Monitord,
                    Note {
                        at: from.at.clone(),
                        text: format!("notification_email_from {}", from.v),
                        why: "no mail is sent (no recipients or no smtp_server)".into(),
                    },
                ));
            }
            if let Some(t) = self.g.smtp_timeout.clone() {
                self.site.notes.push((
                    Target::Monitord,
                    Note {
                        at: t.at.clone(),
                        text: format!("smtp_connect_timeout {}", t.v),
                        why: "no mail is sent (no recipients or no smtp_server)".into(),
                    },
                ));
            }
        }
        self.site.ha = self.ha(mail)?;
        if self.site.ha.is_none() {
            // Where no failover is written, these lines stand for nothing; say so.
            for n in self.g.vrrp_nodes.clone() {
                self.note(Target::Director, &n, "no vrrp_instance");
            }
        }
        Ok(self.site)
    }

    fn ha(&mut self, mail: Option<Mail>) -> Result<Option<Ha>, ImportError> {
        if self.vrrp.is_empty() {
            for g in self.sync_groups.clone() {
                self.all(Target::Director, &g, "no vrrp_instance to group");
            }
            return Ok(None);
        }
        let mut ha = Ha {
            at: Vec::new(),
            node_id: 2,
            state: None,
            priority: None,
            auto_failback: Set::new(true, &self.vrrp[0].at),
            hold_down_ms: None,
            keepalive_ms: None,
            udp: Udp::Multicast {
                group: self.g.mcast_group.clone(),
                interface: None,
            },
            udp_at: Vec::new(),
            vips: Vec::new(),
            garp_count: self.g.garp_count.clone(),
            garp_refresh_ms: self.g.garp_refresh_ms.clone(),
            key_at: Vec::new(),
            alerts: Alerts {
                node: self.g.router_id.clone(),
                mail,
                notify: None,
            },
            notes: Vec::new(),
        };
        let mut scripts = Vec::new();
        let mut bind: Option<Set<IpAddr>> = None;
        let mut peers: Vec<Set<IpAddr>> = Vec::new();
        let mut mcast_src: Option<Set<Ipv4Addr>> = None;
        let mut native_ipv6: Option<Origin> = None;
        // The first instance's interface: link-local heartbeat addresses and an IPv6 group
        // need it.
        let mut first_interface: Option<String> = None;
        for g in self.sync_groups.clone() {
            ha.at.push(g.at.clone());
            for c in &g.children {
                match c.keyword() {
                    "group" => {
                        ha.at.push(c.at.clone());
                        ha.at.extend(c.children.iter().map(|x| x.at.clone()));
                    }
                    "notify_master" | "notify_backup" | "notify_fault" | "notify"
                    | "notify_stop" => {
                        scripts.push(Script {
                            argv: argv(c),
                            node: c.clone(),
                        });
                    }
                    "smtp_alert" => ha.at.push(c.at.clone()),
                    _ => all_notes(c, "no equivalent in heartbeatd", &mut ha.notes),
                }
            }
        }
        let instances = self.vrrp.clone();
        for (i, inst) in instances.iter().enumerate() {
            ha.at.push(inst.at.clone());
            let first = i == 0;
            let interface: Option<String> = inst
                .children
                .iter()
                .find(|c| c.keyword() == "interface")
                .map(|c| arg(c, 0).map(str::to_owned))
                .transpose()?;
            if first {
                first_interface.clone_from(&interface);
            }
            for c in &inst.children {
                let at = &c.at;
                match c.keyword() {
                    "state" => {
                        let st = arg(c, 0)?.to_ascii_uppercase();
                        if first {
                            ha.node_id = if st == "MASTER" { 1 } else { 2 };
                            ha.state = Some(at.clone());
                        } else if (st == "MASTER") != (ha.node_id == 1) {
                            ha.notes.push(note(
                                c,
                                "heartbeatd moves every address together: this node's role is the first vrrp_instance's",
                            ));
                        } else {
                            ha.at.push(at.clone());
                        }
                    }
                    "priority" => {
                        let p: u16 = num(c, 0)?;
                        if first {
                            ha.priority = Some(Set::new(p, at));
                        } else if ha.priority.as_ref().is_some_and(|x| x.v == p) {
                            ha.at.push(at.clone());
                        } else {
                            ha.notes.push(note(
                                c,
                                "one priority per node: the first vrrp_instance's",
                            ));
                        }
                    }
                    "interface" => ha.udp_at.push(at.clone()),
                    "advert_int" => {
                        let ms = millis(secs(c)?);
                        match &ha.keepalive_ms {
                            None => ha.keepalive_ms = Some(Set::new(ms, at)),
                            Some(k) if k.v == ms => ha.at.push(at.clone()),
                            Some(_) => ha.notes.push(note(
                                c,
                                "one heartbeat interval per node: the first advert_int",
                            )),
                        }
                    }
                    "authentication" => {
                        ha.key_at.push(at.clone());
                        for a in &c.children {
                            ha.key_at.push(a.at.clone());
                        }
                        // auth_pass is at most 8 characters sent in clear; heartbeatd signs
                        // with HMAC-SHA256 under a key of its own.
                        ha.notes.push(Note {
                            at: at.clone(),
                            text: c.text.clone(),
                            why: "auth_pass is not used: heartbeatd signs every heartbeat with \
                                  HMAC-SHA256 under the key in auth_key_file"
                                .into(),
                        });
                    }
                    "virtual_ipaddress" | "virtual_ipaddress_excluded" => {
                        ha.at.push(at.clone());
                        for v in &c.children {
                            self.vip(&mut ha, v, interface.as_deref())?;
                        }
                    }
                    "unicast_src_ip" => bind = Some(Set::new(ip(c, 0)?, at)),
                    "mcast_src_ip" => match ip(c, 0)? {
                        IpAddr::V4(a) => mcast_src = Some(Set::new(a, at)),
                        // An IPv6 group is joined on the interface, by name.
                        IpAddr::V6(_) => ha.udp_at.push(at.clone()),
                    },
                    "native_ipv6" => native_ipv6 = Some(at.clone()),
                    "unicast_peer" => {
                        ha.udp_at.push(at.clone());
                        for p in &c.children {
                            let addr = p.keyword().parse::<IpAddr>().map_err(|_| {
                                ImportError::syntax(
                                    p.at.clone(),
                                    format!("unicast_peer: `{}` is not an IP address", p.keyword()),
                                )
                            })?;
                            if peers.iter().any(|x| x.v == addr) {
                                ha.at.push(p.at.clone());
                            } else {
                                peers.push(Set::new(addr, &p.at));
                            }
                        }
                    }
                    "nopreempt" => ha.auto_failback = Set::new(false, at),
                    "preempt_delay" => {
                        ha.hold_down_ms =
                            Some(Set::new(millis(secs(c)?), at));
                    }
                    "garp_master_repeat" => ha.garp_count = Some(Set::new(num(c, 0)?, at)),
                    "garp_master_refresh" => {
                        ha.garp_refresh_ms =
                            Some(Set::new(num::<u64>(c, 0)?.saturating_mul(1000), at));
                    }
                    "notify_master" | "notify_backup" | "notify_fault" | "notify" | "notify_stop" => {
                        scripts.push(Script {
                            argv: argv(c),
                            node: c.clone(),
                        });
                    }
                    "smtp_alert" => {
                        if let Some(m) = ha.alerts.mail.as_mut() {
                            m.also.push(at.clone());
                        } else {
                            ha.notes.push(note(c, "no mail is configured (notification_email, smtp_server)"));
                        }
                    }
                    "virtual_router_id" => ha.notes.push(note(
                        c,
                        "a pair of heartbeatd is told apart by its key and its peers, not by a router id",
                    )),
                    "track_interface" => all_notes(
                        c,
                        "heartbeatd watches the carrier of its [[vip]] interfaces (watch_links); no other interfaces",
                        &mut ha.notes,
                    ),
                    "track_script" => all_notes(
                        c,
                        "heartbeatd runs no track scripts",
                        &mut ha.notes,
                    ),
                    "garp_master_delay" => ha.notes.push(note(
                        c,
                        "the gratuitous ARP burst starts at the takeover (count, interval_ms)",
                    )),
                    "lvs_sync_daemon_interface" => ha.notes.push(note(
                        c,
                        "connection sync is the director's [sync] section (a key and the peers)",
                    )),
                    "virtual_routes" | "virtual_rules" => all_notes(
                        c,
                        "heartbeatd moves addresses, not routes",
                        &mut ha.notes,
                    ),
                    _ => all_notes(c, "no equivalent in heartbeatd", &mut ha.notes),
                }
            }
        }
        if peers.is_empty()
            && let Some(b) = bind.take()
        {
            ha.notes.push(Note {
                at: b.at.clone(),
                text: format!("unicast_src_ip {}", b.v),
                why: "no unicast_peer: heartbeats go to the multicast group".into(),
            });
        }
        if !peers.is_empty() {
            // One socket speaks one family: the source address's, else the first peer's.
            let v4 = bind
                .as_ref()
                .map_or(peers[0].v.is_ipv4(), |b| b.v.is_ipv4());
            let (same, other): (Vec<_>, Vec<_>) =
                peers.into_iter().partition(|p| p.v.is_ipv4() == v4);
            for p in other {
                ha.notes.push(Note {
                    at: p.at.clone(),
                    text: p.v.to_string(),
                    why: "heartbeats go over one address family: the source's (unicast_src_ip)"
                        .into(),
                });
            }
            ha.udp = Udp::Unicast {
                bind,
                peers: same,
                scope: first_interface.clone(),
            };
        } else if let Some(interface) = first_interface.clone().filter(|_| {
            native_ipv6.is_some()
                || (!ha.vips.is_empty() && ha.vips.iter().all(|v| v.addr.is_ipv6()))
        }) {
            // keepalived's instance speaks IPv6 (its addresses are): so do the heartbeats.
            ha.udp_at.extend(native_ipv6);
            ha.udp = Udp::Multicast6 {
                group: self.g.mcast_group6.clone(),
                interface,
            };
        } else {
            if let Some(at) = native_ipv6 {
                ha.notes.push(Note {
                    at,
                    text: "native_ipv6".into(),
                    why: "the instance has no interface to join an IPv6 group on".into(),
                });
            }
            ha.udp = Udp::Multicast {
                group: self.g.mcast_group.clone(),
                interface: mcast_src.clone(),
            };
        }
        // The group and source lines of the media not chosen.
        let unused = |n: &Node| match &ha.udp {
            Udp::Unicast { .. } => true,
            Udp::Multicast { .. } => n.keyword() == "vrrp_mcast_group6",
            Udp::Multicast6 { .. } => n.keyword() == "vrrp_mcast_group4",
        };
        let why =
            "the heartbeats go another way (unicast_peer, or the group of the instance's family)";
        for n in self
            .g
            .vrrp_nodes
            .iter()
            .filter(|n| n.keyword().starts_with("vrrp_mcast_group"))
        {
            if unused(n) {
                ha.notes.push(note(n, why));
            }
        }
        if !matches!(ha.udp, Udp::Multicast { .. })
            && let Some(m) = mcast_src
        {
            ha.notes.push(Note {
                at: m.at,
                text: format!("mcast_src_ip {}", m.v),
                why: why.into(),
            });
        }
        ha.alerts.notify = notify(&scripts, &mut ha.notes);
        Ok(Some(ha))
    }

    /// One line of virtual_ipaddress: `ADDR[/LEN] [dev IF] [brd ..] [label ..] [scope ..]`.
    fn vip(&mut self, ha: &mut Ha, n: &Node, interface: Option<&str>) -> Result<(), ImportError> {
        let w = &n.words;
        let (a, len) = w[0].split_once('/').unwrap_or((&w[0], ""));
        let addr: IpAddr = a.parse().map_err(|_| {
            ImportError::syntax(
                n.at.clone(),
                format!("virtual_ipaddress: `{}` is not an address", w[0]),
            )
        })?;
        if let IpAddr::V6(v6) = addr
            && (v6.is_unicast_link_local()
                || v6.is_multicast()
                || v6.is_loopback()
                || v6.is_unspecified()
                || v6.to_ipv4_mapped().is_some())
        {
            ha.notes.push(note(
                n,
                "an IPv6 virtual address must be global or unique local: a link-local one cannot move to another host",
            ));
            return Ok(());
        }
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = if len.is_empty() {
            max
        } else {
            match len.parse() {
                Ok(p) if p <= max => p,
                _ => {
                    return Err(ImportError::syntax(
                        n.at.clone(),
                        format!("virtual_ipaddress: bad prefix length in `{}`", w[0]),
                    ));
                }
            }
        };
        let dev = w
            .iter()
            .position(|x| x == "dev")
            .and_then(|i| w.get(i + 1))
            .map(String::as_str)
            .or(interface);
        let Some(dev) = dev else {
            ha.notes
                .push(note(n, "no interface (dev, or the instance's interface)"));
            return Ok(());
        };
        if ha.vips.iter().any(|v| v.addr == addr) {
            ha.notes.push(note(n, "listed already"));
            return Ok(());
        }
        ha.vips.push(Vip {
            addr,
            prefix,
            interface: dev.to_owned(),
            at: n.at.clone(),
        });
        Ok(())
    }
}

/// Whether an HTTP check's host came from line `at`.
fn uses_host(checks: &[Check], at: &Origin) -> bool {
    checks.iter().any(
        |c| matches!(&c.kind, CheckKind::Http(h) if h.host.as_ref().is_some_and(|h| &h.at == at)),
    )
}

/// `200`, or a range `200-299`.
fn status_codes(n: &Node, w: &str) -> Result<Vec<u16>, ImportError> {
    let bad = || {
        ImportError::syntax(
            n.at.clone(),
            format!("status_code: `{w}` is not an HTTP status code (100-599) or range"),
        )
    };
    let (a, b) = w.split_once('-').unwrap_or((w, w));
    let a: u16 = a.parse().map_err(|_| bad())?;
    let b: u16 = b.parse().map_err(|_| bad())?;
    if !(100..=599).contains(&a) || !(100..=599).contains(&b) || a > b {
        return Err(bad());
    }
    Ok((a..=b).collect())
}

/// What monitord takes as a Host header.
pub fn valid_host(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 255
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:[]".contains(c))
        && v.parse::<std::net::Ipv6Addr>().is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(text: &str) -> Result<Site, ImportError> {
        let nodes = tokens::parse(text, "k.conf", None, 0)?;
        map(&nodes, "k.conf")
    }

    #[test]
    fn a_virtual_server_with_checks() {
        let s = site(
            "virtual_server 192.0.2.1 80 {\n delay_loop 6\n lb_algo wrr\n lb_kind NAT\n persistence_timeout 300\n protocol TCP\n\
             sorry_server 192.0.2.99 8080\n real_server 10.0.0.1 80 {\n  weight 3\n  inhibit_on_failure\n\
             HTTP_GET {\n   url {\n    path /health\n    status_code 200 301-302\n   }\n   connect_timeout 3\n   retry 2\n  }\n }\n}\n",
        )
        .unwrap();
        let vs = &s.services[0];
        assert_eq!(vs.scheduler.as_ref().unwrap().v, "wrr");
        assert_eq!(vs.on_failure, OnFailure::Quiesce);
        assert_eq!(vs.sorry.as_ref().unwrap().v.to_string(), "192.0.2.99:8080");
        let r = &vs.servers[0];
        assert_eq!(r.weight.as_ref().unwrap().v, 3);
        let c = &r.checks[0];
        let CheckKind::Http(h) = &c.kind else {
            panic!()
        };
        assert_eq!(h.status.as_ref().unwrap().v, [200, 301, 302]);
        assert_eq!(c.timing.fall.as_ref().unwrap().v, 3);
        assert_eq!(c.timing.timeout.as_ref().unwrap().v, 3.0);
    }

    /// Statements made of keepalived's own words, in any order and nesting: the mapper and
    /// the writer refuse or map them, and never panic.
    fn soup() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let words = prop::sample::select(vec![
            "virtual_server",
            "real_server",
            "HTTP_GET",
            "SSL_GET",
            "TCP_CHECK",
            "MISC_CHECK",
            "DNS_CHECK",
            "PING_CHECK",
            "url",
            "path",
            "status_code",
            "digest",
            "regex",
            "vrrp_instance",
            "virtual_ipaddress",
            "unicast_peer",
            "state",
            "MASTER",
            "priority",
            "advert_int",
            "global_defs",
            "notification_email",
            "smtp_server",
            "quorum",
            "hysteresis",
            "sorry_server",
            "lb_kind",
            "NAT",
            "TUN",
            "lb_algo",
            "rr",
            "weight",
            "delay_loop",
            "connect_timeout",
            "retry",
            "misc_path",
            "type",
            "A",
            "name",
            "192.0.2.1",
            "10.0.0.1",
            "2001:db8::1",
            "80",
            "0",
            "1",
            "65536",
            "200-299",
            "/x",
            "\"/bin/x a\"",
            "{",
            "}",
            "\n",
            "\n",
            "inhibit_on_failure",
            "lvs_timeouts",
            "tcp",
            "persistence_timeout",
            "protocol",
            "UDP",
            "fwmark",
            "notify_up",
            "authentication",
        ]);
        prop::collection::vec(words, 0..80).prop_map(|w| w.join(" "))
    }

    proptest::proptest! {
        #[test]
        fn keepalived_words_in_any_order_never_panic(text in soup()) {
            if let Ok(nodes) = tokens::parse(&text, "k.conf", None, 0)
                && let Ok(site) = map(&nodes, "k.conf")
            {
                let _ = super::super::emit::render(&site, Path::new("/x"));
            }
        }
    }

    #[test]
    fn ipv6_instances_heartbeat_over_ipv6() {
        let s = site(
            "vrrp_instance V6 {\n state BACKUP\n interface eth1\n priority 90\n\
             virtual_ipaddress {\n  2001:db8::100/64\n  fe80::100/64\n }\n}\n",
        )
        .unwrap();
        let ha = s.ha.unwrap();
        assert_eq!(ha.node_id, 2);
        assert_eq!(ha.vips.len(), 1);
        assert_eq!(ha.vips[0].prefix, 64);
        assert!(
            ha.notes
                .iter()
                .any(|n| n.at.line == 7 && n.why.contains("link-local"))
        );
        assert_eq!(
            ha.udp,
            Udp::Multicast6 {
                group: None,
                interface: "eth1".into()
            }
        );
        let s = site(
            "vrrp_instance V6 {\n interface eth1\n unicast_src_ip fe80::1\n\
             unicast_peer {\n  fe80::2\n  192.0.2.2\n }\n}\n",
        )
        .unwrap();
        let ha = s.ha.as_ref().unwrap();
        let Udp::Unicast { peers, .. } = &ha.udp else {
            panic!("{:?}", ha.udp)
        };
        assert_eq!(peers.len(), 1);
        assert!(ha.notes.iter().any(|n| n.at.line == 6));
        let files = super::super::emit::render(&s, Path::new("/x")).unwrap();
        let hb = &files.iter().find(|f| f.0 == "heartbeatd.toml").unwrap().1;
        assert!(hb.contains("bind = \"[fe80::1%eth1]:694\""), "{hb}");
        assert!(hb.contains("peers = [\"[fe80::2%eth1]:694\"]"), "{hb}");
    }

    #[test]
    fn bad_values_name_their_line() {
        for (text, line) in [
            ("virtual_server 192.0.2.300 80 {\n}\n", 1),
            (
                "virtual_server 192.0.2.1 80 {\n real_server 10.0.0.1 80 {\n  weight heavy\n }\n}\n",
                3,
            ),
            ("virtual_server 192.0.2.1 80 {\n lb_kind BRIDGE\n}\n", 2),
        ] {
            let e = site(text).unwrap_err().to_string();
            assert!(e.starts_with(&format!("k.conf:{line}:")), "{e}");
        }
    }
}
