//! Writing a [`Site`] as the suite's files. Every key names the source lines it came from in a
//! trailing comment, and every note is a comment with its line and why, so that a reader (and
//! the test) finds each line of the source again.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use super::model::{
    Alerts, Check, CheckKind, Ha, Mail, Note, OnFailure, Server, Service, Set, Site, Target,
    Timing, Udp,
};
use super::{ImportError, Origin};

/// The heartbeat key's file name in the output directory, as the README names it.
pub const KEY_FILE: &str = "heartbeat.key";
/// The rules file's name in the output directory.
pub const RULES_FILE: &str = "rules";
/// heartbeatd's UDP port (Linux-HA's).
const HEARTBEAT_PORT: u16 = 694;
/// monitord's built-in timing, which applies where the source gives none.
const DEFAULT_INTERVAL: f64 = 1.0;
const DEFAULT_TIMEOUT: f64 = 0.8;

/// The files to write, by name, in the order to write them.
pub fn render(site: &Site, dir: &Path) -> Result<Vec<(&'static str, String)>, ImportError> {
    let rules = rules(site)?;
    let mut out = vec![
        (RULES_FILE, rules),
        ("director.toml", director(site, dir)),
        ("monitord.toml", monitord(site)),
    ];
    if let Some(ha) = &site.ha {
        out.push(("heartbeatd.toml", heartbeatd(site, ha, dir)));
    }
    Ok(out)
}

/// `  # a:1, a:2` for the lines a key came from.
fn src<'a>(at: impl IntoIterator<Item = &'a Origin>) -> String {
    let mut v: Vec<&Origin> = at.into_iter().collect();
    v.sort();
    v.dedup();
    if v.is_empty() {
        return String::new();
    }
    let list: Vec<String> = v.iter().map(ToString::to_string).collect();
    format!("  # {}", list.join(", "))
}

fn header(site: &Site, what: &str) -> String {
    format!(
        "# {what}\n# Imported by `lvsadm --import {kind} {source}`. Each setting names the line of\n\
         # the source it came from; a line that has no equivalent here is a comment saying why.\n\n",
        kind = site.kind,
        source = site.source,
    )
}

fn note(out: &mut String, indent: &str, n: &Note) {
    let _ = writeln!(out, "{indent}# {}: {}", n.at, one_line(&n.text));
    let _ = writeln!(out, "{indent}#   not mapped: {}", one_line(&n.why));
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// A TOML basic string.
pub fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn quote_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| quote(s)).collect();
    format!("[{}]", items.join(", "))
}

/// ADDR:PORT with IPv6 in brackets, as lvsadm and monitord write it.
fn hostport(addr: IpAddr, port: u16) -> String {
    SocketAddr::new(addr, port).to_string()
}

/// `group = ...`: the source's, else keepalived's default VRRP group.
fn group_line<T: std::fmt::Display>(
    out: &mut String,
    group: Option<&Set<T>>,
    default: &str,
    family: &str,
) {
    let _ = match group {
        Some(g) => writeln!(out, "group = \"{}\"{}", g.v, src([&g.at])),
        None => writeln!(
            out,
            "group = \"{default}\"  # keepalived's {family}VRRP group"
        ),
    };
}

/// ADDRESS:PORT for heartbeatd's `[udp]`; a link-local IPv6 address takes its interface.
fn udp_addr(a: IpAddr, scope: Option<&str>) -> String {
    match (a, scope) {
        (IpAddr::V6(v6), Some(dev)) if v6.is_unicast_link_local() => {
            format!("[{v6}%{dev}]:{HEARTBEAT_PORT}")
        }
        _ => SocketAddr::new(a, HEARTBEAT_PORT).to_string(),
    }
}

/// Seconds as monitord reads a duration: a whole number, or milliseconds.
fn duration(secs: f64) -> String {
    let ms = (secs * 1000.0).round();
    if ms % 1000.0 == 0.0 {
        format!("{}", ms / 1000.0)
    } else {
        format!("\"{ms}ms\"")
    }
}

// ---------------------------------------------------------------------------------------------
// The director.

fn rules(site: &Site) -> Result<String, ImportError> {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# The virtual services of {}, in ipvsadm-save format (lvsadm -R reads it too).",
        site.source
    );
    // Which source line each rules line came from, to name it if the director refuses one.
    let mut lines: Vec<Origin> = vec![Origin::new(&site.source, 0)];
    // Notes are comment lines: they take a place in `lines` too.
    let comment = |out: &mut String, lines: &mut Vec<Origin>, n: &Note| {
        note(out, "", n);
        lines.extend([n.at.clone(), n.at.clone()]);
    };
    for s in &site.services {
        let proto = if s.udp { "-u" } else { "-t" };
        let vs = hostport(s.vip, s.port);
        let mut line = format!("-A {proto} {vs}");
        let mut at = vec![&s.at];
        at.extend(&s.also);
        if let Some(sch) = &s.scheduler {
            let _ = write!(line, " -s {}", sch.v);
            at.push(&sch.at);
        }
        if let Some(p) = &s.persistence {
            let _ = write!(line, " -p {}", p.v);
            at.push(&p.at);
        }
        if let Some(m) = &s.netmask {
            let _ = write!(line, " -M {}", m.v);
            at.push(&m.at);
        }
        if !s.sched_flags.is_empty() {
            let flags: Vec<&str> = s.sched_flags.iter().map(|f| f.v.as_str()).collect();
            let _ = write!(line, " -b {}", flags.join(","));
            at.extend(s.sched_flags.iter().map(|f| &f.at));
        }
        let _ = writeln!(out, "{line}{}", src(at));
        lines.push(s.at.clone());
        for n in &s.rules_notes {
            comment(&mut out, &mut lines, n);
        }
        for r in &s.servers {
            let mut line = format!("-a {proto} {vs} -r {}", hostport(r.addr, r.port));
            let mut at = vec![&r.at];
            let fwd = r.fwd.as_ref().or(s.fwd.as_ref());
            match fwd {
                Some(f) => {
                    let _ = write!(line, " {}", f.v.flag());
                    at.push(&f.at);
                }
                None => line.push_str(" -g"),
            }
            let weight = r.weight.as_ref().map_or(1, |w| {
                at.push(&w.at);
                w.v
            });
            let _ = write!(line, " -w {weight}");
            if let Some(x) = &r.uthreshold {
                let _ = write!(line, " -x {}", x.v);
                at.push(&x.at);
            }
            if let Some(y) = &r.lthreshold {
                let _ = write!(line, " -y {}", y.v);
                at.push(&y.at);
            }
            let _ = writeln!(out, "{line}{}", src(at));
            lines.push(r.at.clone());
        }
    }
    // The director reads this file at start: what it would refuse is refused here, naming
    // the source's line.
    if let Err(e) = lvs_control::load_rules(&out, &lvs_control::AnyScheduler) {
        let at = lines
            .get(e.line.saturating_sub(1))
            .cloned()
            .unwrap_or_else(|| Origin::new(&site.source, 0));
        return Err(ImportError::syntax(
            at,
            format!("the director refuses this service: {}", e.kind),
        ));
    }
    Ok(out)
}

fn director(site: &Site, dir: &Path) -> String {
    let mut out = header(site, "/etc/lvs/director.toml for lvs-director");
    let services: Vec<&Origin> = site.services.iter().map(|s| &s.at).collect();
    let _ = writeln!(
        out,
        "# The virtual services, loaded at start and on SIGHUP.\nrules_file = {}{}",
        quote(&dir.join(RULES_FILE).display().to_string()),
        src(services)
    );
    if let Some(t) = &site.timeouts {
        let (tcp, fin, udp) = t.v;
        let _ = writeln!(
            out,
            "\n[timeouts]{}\ntcp = {tcp}\ntcp_fin = {fin}\nudp = {udp}",
            src([&t.at])
        );
    }
    let mut notes: Vec<&Note> = site
        .notes
        .iter()
        .filter(|(t, _)| *t == Target::Director || (*t == Target::Heartbeatd && site.ha.is_none()))
        .map(|(_, n)| n)
        .collect();
    notes.sort_by(|a, b| a.at.cmp(&b.at));
    site_notes(&mut out, site, &notes);
    if !site.blocks.is_empty() {
        let _ = writeln!(
            out,
            "\n# Lines of {} that open a block; each setting inside is mapped or commented on its own:",
            site.source
        );
        for (at, text) in &site.blocks {
            let _ = writeln!(out, "# {at}: {}", one_line(text));
        }
    }
    out
}

fn site_notes(out: &mut String, site: &Site, notes: &[&Note]) {
    if notes.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n# Lines of {} with no equivalent here:", site.source);
    for n in notes {
        note(out, "", n);
    }
}

// ---------------------------------------------------------------------------------------------
// monitord.

fn monitord(site: &Site) -> String {
    let mut out = header(site, "/etc/lvs/monitord.toml for lvs-monitord");
    for s in &site.services {
        service(&mut out, s);
    }
    alerts(&mut out, &site.alerts);
    let mut notes: Vec<&Note> = site
        .notes
        .iter()
        .filter(|(t, _)| *t == Target::Monitord)
        .map(|(_, n)| n)
        .collect();
    notes.sort_by(|a, b| a.at.cmp(&b.at));
    site_notes(&mut out, site, &notes);
    out
}

/// Timing keys, made valid for monitord (a timeout shorter than the interval); `base` is what
/// applies when a value is not given at this level.
fn timing(out: &mut String, indent: &str, own: &Timing, base: (f64, f64)) -> (f64, f64) {
    let interval = own.interval.as_ref().map_or(base.0, |i| i.v);
    let mut timeout = own.timeout.as_ref().map_or(base.1, |t| t.v);
    if let Some(i) = &own.interval {
        let _ = writeln!(out, "{indent}interval = {}{}", duration(i.v), src([&i.at]));
    }
    if timeout >= interval {
        let given = timeout;
        timeout = (interval * 800.0).round() / 1000.0;
        let at: Vec<&Origin> = own.timeout.iter().map(|t| &t.at).collect();
        let _ = writeln!(
            out,
            "{indent}timeout = {}{} (monitord needs a timeout shorter than the interval: {} s was given)",
            duration(timeout),
            if at.is_empty() {
                "  #".to_owned()
            } else {
                src(at)
            },
            given
        );
    } else if let Some(t) = &own.timeout {
        let _ = writeln!(out, "{indent}timeout = {}{}", duration(t.v), src([&t.at]));
    }
    if let Some(f) = &own.fall {
        let _ = writeln!(out, "{indent}fall = {}{}", f.v.clamp(1, 1000), src([&f.at]));
    }
    (interval, timeout)
}

fn service(out: &mut String, s: &Service) {
    let _ = writeln!(out, "[[service]]{}", src([&s.at]));
    if s.udp {
        let _ = writeln!(out, "protocol = \"udp\"{}", src(&s.also));
    }
    let _ = writeln!(
        out,
        "vip = {}\nport = {}",
        quote(&s.vip.to_string()),
        s.port
    );
    let on_failure = match s.on_failure {
        OnFailure::Quiesce => "quiesce",
        OnFailure::Remove => "remove",
    };
    let _ = writeln!(
        out,
        "on_failure = \"{on_failure}\"{}",
        src(&s.on_failure_at)
    );
    if let Some(sorry) = &s.sorry {
        let _ = writeln!(
            out,
            "sorry_server = {}{}",
            quote(&sorry.v.to_string()),
            src([&sorry.at])
        );
    }
    if let Some(q) = &s.quorum {
        // keepalived adds up the weights of the servers up; monitord counts the servers.
        let _ = writeln!(
            out,
            "quorum = {}{} (servers up, not the sum of their weights)",
            q.v,
            src([&q.at])
        );
        if let Some(h) = &s.hysteresis {
            let _ = writeln!(out, "hysteresis = {}{}", h.v, src([&h.at]));
        }
    }
    let base = timing(out, "", &s.timing, (DEFAULT_INTERVAL, DEFAULT_TIMEOUT));
    for n in &s.notes {
        note(out, "", n);
    }
    for r in &s.servers {
        server(out, r, base);
    }
    out.push('\n');
}

fn server(out: &mut String, r: &Server, base: (f64, f64)) {
    let _ = writeln!(out, "\n    [[service.server]]{}", src([&r.at]));
    let _ = writeln!(out, "    address = {}", quote(&hostport(r.addr, r.port)));
    if let Some(w) = &r.weight {
        let _ = writeln!(out, "    weight = {}{}", w.v, src([&w.at]));
    }
    if !r.also.is_empty() {
        let _ = writeln!(
            out,
            "    # also from{}",
            src(&r.also).trim_start_matches("  #")
        );
    }
    for n in &r.notes {
        note(out, "    ", n);
    }
    for c in &r.checks {
        check(out, c, base);
    }
}

fn check(out: &mut String, c: &Check, base: (f64, f64)) {
    let _ = writeln!(out, "        [[service.server.check]]{}", src(&c.at));
    let i = "        ";
    let kind = match &c.kind {
        CheckKind::Tcp => "tcp",
        CheckKind::Icmp => "icmp",
        CheckKind::Http(h) if h.https => "https",
        CheckKind::Http(_) => "http",
        CheckKind::Dns { .. } => "dns",
        CheckKind::Script { .. } => "script",
    };
    let _ = writeln!(out, "{i}type = \"{kind}\"");
    if let Some(p) = &c.port {
        let _ = writeln!(out, "{i}port = {}{}", p.v, src([&p.at]));
    }
    match &c.kind {
        CheckKind::Tcp | CheckKind::Icmp => {}
        CheckKind::Http(h) => {
            if let Some(p) = &h.path {
                let _ = writeln!(out, "{i}path = {}{}", quote(&p.v), src([&p.at]));
            }
            if let Some(host) = &h.host {
                let _ = writeln!(out, "{i}host = {}{}", quote(&host.v), src([&host.at]));
            }
            if let Some(st) = &h.status {
                let codes: Vec<String> = st.v.iter().map(ToString::to_string).collect();
                let _ = writeln!(out, "{i}status = [{}]{}", codes.join(", "), src([&st.at]));
            }
            if let Some(b) = &h.body {
                let _ = writeln!(out, "{i}body = {}{}", quote(&b.v), src([&b.at]));
            }
            if h.https && h.no_verify {
                let _ = writeln!(
                    out,
                    "{i}verify = false  # as the source's checks: any certificate is accepted"
                );
            }
        }
        CheckKind::Dns { name, aaaa, expect } => {
            let _ = writeln!(out, "{i}name = {}{}", quote(&name.v), src([&name.at]));
            if let Some(a) = aaaa {
                let t = if a.v { "AAAA" } else { "A" };
                let _ = writeln!(out, "{i}query_type = \"{t}\"{}", src([&a.at]));
            }
            if let Some(e) = expect {
                let list: Vec<String> = e.v.iter().map(ToString::to_string).collect();
                let _ = writeln!(out, "{i}expect = {}{}", quote_list(&list), src([&e.at]));
            }
        }
        CheckKind::Script { command, args, at } => {
            let _ = writeln!(out, "{i}command = {}{}", quote(command), src([at]));
            if !args.is_empty() {
                let _ = writeln!(out, "{i}args = {}", quote_list(args));
            }
        }
    }
    timing(out, i, &c.timing, base);
    for n in &c.notes {
        note(out, i, n);
    }
}

fn alerts(out: &mut String, a: &Alerts) {
    if a.node.is_none() && a.mail.is_none() && a.notify.is_none() {
        return;
    }
    let _ = writeln!(out, "[alert]");
    if let Some(n) = &a.node {
        let _ = writeln!(out, "node = {}{}", quote(&n.v), src([&n.at]));
    }
    if let Some(m) = &a.mail {
        mail(out, m);
    }
    if let Some((argv, at)) = &a.notify {
        let _ = writeln!(out, "\n[alert.notify]{}", src(at));
        let _ = writeln!(
            out,
            "# Runs as COMMAND... KIND SERVICE SERVER STATE REASON for every change (STATE: up,\n\
             # down, master, backup, fault ...): one command where the source had one per event.\ncommand = {}",
            quote_list(argv)
        );
    }
    out.push('\n');
}

fn mail(out: &mut String, m: &Mail) {
    let _ = writeln!(out, "\n[alert.mail]{}", src(&m.also));
    match &m.from {
        Some(f) => {
            let _ = writeln!(out, "from = {}{}", quote(&f.v), src([&f.at]));
        }
        None => {
            let _ = writeln!(
                out,
                "from = {}  # not in the source: its program's default sender",
                quote(&default_from())
            );
        }
    }
    let to: Vec<String> = m.to.iter().map(|t| t.v.clone()).collect();
    let _ = writeln!(
        out,
        "to = {}{}",
        quote_list(&to),
        src(m.to.iter().map(|t| &t.at))
    );
    let _ = writeln!(
        out,
        "server = {}{}",
        quote(&m.server.v),
        src([&m.server.at])
    );
    if let Some(p) = &m.port {
        let _ = writeln!(out, "port = {}{}", p.v, src([&p.at]));
    }
    let _ = writeln!(
        out,
        "# keepalived and ldirectord send mail in clear text; \"required\" is safer once the\n\
         # relay offers STARTTLS.\nstarttls = \"opportunistic\""
    );
    if let Some(t) = &m.timeout {
        let _ = writeln!(out, "timeout_secs = {}{}", t.v.clamp(1, 600), src([&t.at]));
    }
}

/// keepalived's default sender: keepalived@ this host's name.
fn default_from() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        })
        .unwrap_or_else(|| "localhost".to_owned());
    format!("keepalived@{host}")
}

// ---------------------------------------------------------------------------------------------
// heartbeatd.

fn heartbeatd(site: &Site, ha: &Ha, dir: &Path) -> String {
    let mut out = header(site, "/etc/lvs/heartbeatd.toml for lvs-heartbeatd");
    let _ = writeln!(
        out,
        "# The failover pair, from{}",
        src(&ha.at).trim_start_matches("  #")
    );
    let peer = if ha.node_id == 1 { 2 } else { 1 };
    let role = if ha.node_id == 1 { "MASTER" } else { "BACKUP" };
    let _ = writeln!(
        out,
        "# keepalived has no node ids: the node that starts as MASTER is 1, a BACKUP 2. Give the\n\
         # two directors different ones.\nnode_id = {}{}\npeers = [{peer}]",
        ha.node_id,
        match &ha.state {
            Some(at) => src([at]),
            None => format!("  # no state: {role}"),
        }
    );
    if let Some(p) = &ha.priority {
        let _ = writeln!(out, "priority = {}{}", p.v, src([&p.at]));
    }
    let _ = writeln!(
        out,
        "# The shared key, the same file on both directors (made here if it did not exist):\n\
         #   head -c 32 /dev/urandom > {key} && chmod 600 {key}\nauth_key_file = {}{}",
        quote(&dir.join(KEY_FILE).display().to_string()),
        src(&ha.key_at),
        key = dir.join(KEY_FILE).display()
    );
    let _ = writeln!(
        out,
        "auto_failback = {}{}",
        ha.auto_failback.v,
        src([&ha.auto_failback.at])
    );
    if ha.auto_failback.v {
        let _ = writeln!(
            out,
            "# keepalived preempts at once; heartbeatd gives the addresses back to this node only
             # once its director reports the connection table synced: configure [sync] in
             # director.toml (connection sync), or the addresses stay with the backup."
        );
    }
    if let Some(h) = &ha.hold_down_ms {
        let _ = writeln!(out, "hold_down_ms = {}{}", h.v, src([&h.at]));
    }
    if let Some(k) = &ha.keepalive_ms {
        // keepalived's master-down interval is three adverts.
        let k_ms = k.v.max(1);
        let _ = writeln!(
            out,
            "\n[timers]{}\nkeepalive_ms = {k_ms}\ndeadtime_ms = {}\nwarntime_ms = {}\ninitdead_ms = {}",
            src([&k.at]),
            3 * k_ms,
            2 * k_ms,
            6 * k_ms
        );
    }
    let _ = writeln!(out, "\n[udp]{}", src(&ha.udp_at));
    match &ha.udp {
        Udp::Unicast { bind, peers, scope } => {
            let v4 = bind.as_ref().map_or_else(
                || peers.first().is_none_or(|p| p.v.is_ipv4()),
                |b| b.v.is_ipv4(),
            );
            let any = if v4 {
                IpAddr::from(std::net::Ipv4Addr::UNSPECIFIED)
            } else {
                IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED)
            };
            let b = bind.as_ref().map_or(any, |b| b.v);
            let _ = writeln!(
                out,
                "bind = {}{}",
                quote(&udp_addr(b, scope.as_deref())),
                bind.as_ref().map_or(String::new(), |b| src([&b.at]))
            );
            let list: Vec<String> = peers
                .iter()
                .map(|p| udp_addr(p.v, scope.as_deref()))
                .collect();
            let _ = writeln!(
                out,
                "peers = {}{}",
                quote_list(&list),
                src(peers.iter().map(|p| &p.at))
            );
        }
        Udp::Multicast6 { group, interface } => {
            group_line(&mut out, group.as_ref(), "ff02::12", "IPv6 ");
            let _ = writeln!(
                out,
                "port = {HEARTBEAT_PORT}\ninterface = {}",
                quote(interface)
            );
        }
        Udp::Multicast { group, interface } => {
            group_line(&mut out, group.as_ref(), "224.0.0.18", "");
            let _ = writeln!(out, "port = {HEARTBEAT_PORT}");
            match interface {
                Some(i) => {
                    let _ = writeln!(out, "interface = \"{}\"{}", i.v, src([&i.at]));
                }
                None => {
                    let _ = writeln!(
                        out,
                        "# The source names no address of the interface (mcast_src_ip): 0.0.0.0 lets the\n\
                         # kernel choose by route. Put the interface's own address here.\ninterface = \"0.0.0.0\""
                    );
                }
            }
        }
    }
    if ha.garp_count.is_some() || ha.garp_refresh_ms.is_some() {
        let _ = writeln!(out, "\n[garp]");
        if let Some(c) = &ha.garp_count {
            let _ = writeln!(out, "count = {}{}", c.v.clamp(1, 100), src([&c.at]));
        }
        if let Some(r) = &ha.garp_refresh_ms {
            let _ = writeln!(out, "refresh_ms = {}{}", r.v.max(1000), src([&r.at]));
        }
    }
    for v in &ha.vips {
        let _ = writeln!(
            out,
            "\n[[vip]]{}\naddr = \"{}/{}\"\ninterface = {}",
            src([&v.at]),
            v.addr,
            v.prefix,
            quote(&v.interface)
        );
    }
    out.push('\n');
    alerts(&mut out, &ha.alerts);
    let mut notes: Vec<&Note> = ha.notes.iter().collect();
    notes.extend(
        site.notes
            .iter()
            .filter(|(t, _)| *t == Target::Heartbeatd)
            .map(|(_, n)| n),
    );
    notes.sort_by(|a, b| a.at.cmp(&b.at));
    site_notes(&mut out, site, &notes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the director would refuse is refused at import, naming the source line, also
    /// after comment lines in the rules.
    #[test]
    fn a_service_the_director_refuses_names_its_line() {
        let text = "virtual_server 192.0.2.1 80 {\n  ops\n  lb_algo lblc\n}\n\
                    virtual_server 192.0.2.2 0 {\n  lb_algo rr\n}\n";
        let nodes = super::super::tokens::parse(text, "k.conf", None, 0).unwrap();
        let site = super::super::keepalived::map(&nodes, "k.conf").unwrap();
        let e = render(&site, Path::new("/x")).unwrap_err().to_string();
        assert!(e.starts_with("k.conf:5:"), "{e}");
        assert!(e.contains("the director refuses"), "{e}");
    }

    #[test]
    fn strings_and_durations() {
        assert_eq!(quote("a\"b\\c\u{1}"), "\"a\\\"b\\\\c\\u0001\"");
        assert_eq!(duration(6.0), "6");
        assert_eq!(duration(0.5), "\"500ms\"");
        assert_eq!(duration(4.8), "\"4800ms\"");
        assert_eq!(
            hostport("2001:db8::1".parse().unwrap(), 80),
            "[2001:db8::1]:80"
        );
    }
}
