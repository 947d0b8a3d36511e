//! ldirectord.cf (ldirectord(8)) to a [`Site`]. The file is `key = value` lines: global ones
//! at the start of a line, and `virtual=` sections whose lines are indented. Global settings
//! are the defaults of every virtual service; each is mapped where a service uses it, else
//! noted. ldirectord has no failover of its own (heartbeat ran it), so no heartbeatd file.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use super::keepalived::{SCHEDULERS, valid_host};
use super::model::{
    Alerts, Check, CheckKind, Fwd, Http, Mail, Note, OnFailure, Server, Service, Set, Site, Target,
    Timing,
};
use super::{ImportError, Origin};

/// Real servers one `real=A->B` range may name.
const MAX_RANGE: u32 = 256;

/// One `key=value` line.
#[derive(Debug, Clone)]
pub struct Line {
    pub at: Origin,
    pub key: String,
    pub value: String,
    pub text: String,
    pub indented: bool,
}

fn note(l: &Line, why: impl Into<String>) -> Note {
    Note {
        at: l.at.clone(),
        text: l.text.clone(),
        why: why.into(),
    }
}

fn err(l: &Line, reason: impl Into<String>) -> ImportError {
    ImportError::syntax(l.at.clone(), reason)
}

/// Splits the file into its lines; comments (`#` outside quotes) and blank lines go.
pub fn lines(text: &str, file: &str) -> Result<Vec<Line>, ImportError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let at = Origin::new(file, i + 1);
        let mut in_quote = false;
        let mut end = raw.len();
        for (j, c) in raw.char_indices() {
            match c {
                '"' => in_quote = !in_quote,
                '#' if !in_quote => {
                    end = j;
                    break;
                }
                _ => {}
            }
        }
        let body = &raw[..end];
        if body.trim().is_empty() {
            continue;
        }
        if in_quote {
            return Err(ImportError::syntax(at, "a quoted value is not closed"));
        }
        let indented = body.starts_with([' ', '\t']);
        let Some((k, v)) = body.split_once('=') else {
            return Err(ImportError::syntax(
                at,
                format!("`{}` is not a `key = value` line", body.trim()),
            ));
        };
        let key = k.trim().to_ascii_lowercase();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ImportError::syntax(
                at,
                format!("`{}` is not a key", k.trim()),
            ));
        }
        out.push(Line {
            at,
            key,
            value: unquote(v.trim()),
            text: body.trim().to_owned(),
            indented,
        });
    }
    Ok(out)
}

fn unquote(v: &str) -> String {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
        .to_owned()
}

/// Words of a value, `"quoted"` ones kept whole, separating commas dropped.
fn words(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    let mut quoted = false;
    for c in v.chars() {
        match c {
            '"' => {
                in_quote = !in_quote;
                quoted = true;
            }
            c if !in_quote && (c.is_whitespace() || c == ',') => {
                if !cur.is_empty() || quoted {
                    out.push(std::mem::take(&mut cur));
                }
                quoted = false;
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() || quoted {
        out.push(cur);
    }
    out
}

/// A port number or one of the names ldirectord's examples use.
fn port_of(s: &str) -> Option<u16> {
    s.parse().ok().or(match s {
        "ftp" => Some(21),
        "smtp" => Some(25),
        "domain" | "dns" => Some(53),
        "http" | "www" => Some(80),
        "pop3" => Some(110),
        "imap" | "imap2" => Some(143),
        "ldap" => Some(389),
        "https" => Some(443),
        "imaps" => Some(993),
        "pop3s" => Some(995),
        "mysql" => Some(3306),
        _ => None,
    })
}

/// `ADDR:PORT` or `[V6]:PORT`; `None` for the port when not given.
fn addr_port(l: &Line, s: &str) -> Result<(IpAddr, Option<u16>), ImportError> {
    let bad = || {
        err(
            l,
            format!("`{s}` is not ADDRESS:PORT (host names are not resolved: give the address)"),
        )
    };
    if let Some(rest) = s.strip_prefix('[') {
        let (a, p) = rest.split_once(']').ok_or_else(bad)?;
        let a: IpAddr = a.parse().map_err(|_| bad())?;
        let p = match p.strip_prefix(':') {
            Some(p) => Some(port_of(p).ok_or_else(bad)?),
            None if p.is_empty() => None,
            None => return Err(bad()),
        };
        return Ok((a, p));
    }
    if let Ok(a) = s.parse::<IpAddr>() {
        return Ok((a, None));
    }
    let (a, p) = s.rsplit_once(':').ok_or_else(bad)?;
    Ok((
        a.parse().map_err(|_| bad())?,
        Some(port_of(p).ok_or_else(bad)?),
    ))
}

fn yes(l: &Line) -> Result<bool, ImportError> {
    match l.value.to_ascii_lowercase().as_str() {
        "yes" | "y" | "on" | "1" | "true" => Ok(true),
        "no" | "n" | "off" | "0" | "false" => Ok(false),
        other => Err(err(l, format!("{}: `{other}` is not yes or no", l.key))),
    }
}

fn secs(l: &Line) -> Result<f64, ImportError> {
    match l.value.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 3600.0 => Ok(v),
        _ => Err(err(
            l,
            format!(
                "{}: `{}` is not a time between 0 and 3600 seconds",
                l.key, l.value
            ),
        )),
    }
}

fn count(l: &Line) -> Result<u32, ImportError> {
    l.value
        .parse()
        .map_err(|_| err(l, format!("{}: `{}` is not a number", l.key, l.value)))
}

/// Reads ldirectord.cf at `path`.
pub fn read(path: &Path) -> Result<Site, ImportError> {
    let text = std::fs::read_to_string(path).map_err(|e| ImportError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let file = path.display().to_string();
    map(&lines(&text, &file)?, &file)
}

/// Why a key has no equivalent, for keys ldirectord documents.
fn unmapped(key: &str) -> Option<&'static str> {
    Some(match key {
        "logfile" => "the daemons log to syslog (and stderr in the foreground)",
        "autoreload" => "monitord reads its file again on SIGHUP (systemctl reload lvs-monitord)",
        "callback" => "a reload runs no command; use [alert.notify] for changes",
        "execute" => "one monitord serves every service",
        "supervised" | "fork" => {
            "monitord is one process with one event loop (-f keeps it in the foreground)"
        }
        "cleanstop" => "monitord leaves the director's services as they are when it stops",
        "maintenancedir" => {
            "maintenance is `lvs-monitord ctl maintenance on -t VIP:PORT -r RS:PORT`"
        }
        "readdquiescent" => "a recovered server gets its weight back whatever on_failure is",
        "emailalertfreq" => {
            "monitord mails each change once, deduplicated (alert.dedup_window_secs)"
        }
        "emailalertstatus" => "monitord mails every change (server down/up, sorry server on/off)",
        "checkcount" => "deprecated in ldirectord; use failurecount (fall)",
        "fallbackcommand" => "the sorry server is an address (fallback); no command",
        "monitorfile" => "check results are in the log and `lvs-monitord ctl list`",
        "login" | "passwd" | "database" | "secret" => {
            "monitord has no protocol logins (ftp, imap, mysql, radius ...): use a script check"
        }
        "checkcommand" => "used only with checktype = external",
        _ => return None,
    })
}

struct Mapper {
    site: Site,
    /// Global lines some service used (the rest become notes).
    used: HashSet<Origin>,
    emails: Vec<Set<String>>,
    email_lines: Vec<Origin>,
}

/// The lines that apply to one virtual service: its own, then the globals.
struct Scope<'a> {
    own: &'a [Line],
    global: &'a [Line],
}

impl<'a> Scope<'a> {
    fn get(&self, key: &str, used: &mut HashSet<Origin>) -> Option<&'a Line> {
        if let Some(l) = self.own.iter().rev().find(|l| l.key == key) {
            return Some(l);
        }
        let l = self.global.iter().rev().find(|l| l.key == key)?;
        used.insert(l.at.clone());
        Some(l)
    }
}

/// Maps the lines of one file.
pub fn map(lines: &[Line], source: &str) -> Result<Site, ImportError> {
    let mut m = Mapper {
        site: Site {
            kind: "ldirectord",
            source: source.to_owned(),
            services: Vec::new(),
            timeouts: None,
            alerts: Alerts::default(),
            ha: None,
            notes: Vec::new(),
            blocks: Vec::new(),
        },
        used: HashSet::new(),
        emails: Vec::new(),
        email_lines: Vec::new(),
    };
    let mut global: Vec<Line> = Vec::new();
    let mut virtuals: Vec<(Line, Vec<Line>)> = Vec::new();
    for l in lines {
        if l.key == "virtual" {
            if l.indented {
                return Err(err(
                    l,
                    "virtual= starts a section: write it at the start of the line",
                ));
            }
            virtuals.push((l.clone(), Vec::new()));
        } else if l.indented {
            match virtuals.last_mut() {
                Some((_, own)) => own.push(l.clone()),
                None => {
                    return Err(err(
                        l,
                        "an indented line belongs to a virtual= section, and none came before",
                    ));
                }
            }
        } else if virtuals.is_empty() {
            global.push(l.clone());
        } else {
            return Err(err(
                l,
                "a global setting after a virtual= section: indent it to belong to the section, or move it to the top",
            ));
        }
    }
    for (v, own) in &virtuals {
        m.virtual_service(v, own, &global)?;
    }
    m.finish(&global)
}

impl Mapper {
    fn virtual_service(
        &mut self,
        v: &Line,
        own: &[Line],
        global: &[Line],
    ) -> Result<(), ImportError> {
        let scope = Scope { own, global };
        if v.value.parse::<u32>().is_ok() {
            let why = "firewall-mark services are not imported: the director must be told how packets are marked; set them up by hand";
            self.note(Target::Director, v, why);
            for l in own {
                self.note(Target::Director, l, "inside the virtual= section above");
            }
            return Ok(());
        }
        let (vip, vport) = addr_port(v, &v.value)?;
        let vport = vport.ok_or_else(|| err(v, "virtual= needs ADDRESS:PORT"))?;
        let mut s = Service::new(v.at.clone(), vip, vport, OnFailure::Quiesce);
        let used = &mut self.used;
        if let Some(p) = scope.get("protocol", used) {
            match p.value.to_ascii_lowercase().as_str() {
                "tcp" => s.also.push(p.at.clone()),
                "udp" => {
                    s.udp = true;
                    s.also.push(p.at.clone());
                }
                "fwm" => return Err(err(p, "protocol = fwm needs virtual = MARK")),
                other => {
                    return Err(err(
                        p,
                        format!("protocol: `{other}` is not tcp, udp or fwm"),
                    ));
                }
            }
        }
        if let Some(l) = scope.get("scheduler", used) {
            if SCHEDULERS.contains(&l.value.as_str()) {
                s.scheduler = Some(Set::new(l.value.clone(), &l.at));
            } else {
                s.rules_notes.push(note(
                    l,
                    format!(
                        "the director has no `{}` scheduler plugin ({}): the service uses wlc",
                        l.value,
                        SCHEDULERS.join(", ")
                    ),
                ));
            }
        } else {
            // ldirectord's default scheduler is wrr.
            s.scheduler = Some(Set::new("wrr".to_owned(), &v.at));
        }
        if let Some(l) = scope.get("persistent", used) {
            s.persistence = Some(Set::new(count(l)?, &l.at));
        }
        if let Some(l) = scope.get("netmask", used) {
            s.netmask = Some(Set::new(l.value.clone(), &l.at));
        }
        if let Some(l) = scope.get("quiescent", used) {
            s.on_failure = if yes(l)? {
                OnFailure::Quiesce
            } else {
                OnFailure::Remove
            };
            s.on_failure_at.push(l.at.clone());
        }
        if let Some(l) = scope.get("fallback", used) {
            let w = words(&l.value);
            let first = w
                .first()
                .ok_or_else(|| err(l, "fallback needs ADDRESS[:PORT]"))?;
            let (a, p) = addr_port(l, first)?;
            s.sorry = Some(Set::new(SocketAddr::new(a, p.unwrap_or(vport)), &l.at));
        }
        // Timing: checkinterval, the timeout of the check type, failurecount.
        if let Some(l) = scope.get("checkinterval", used) {
            s.timing.interval = Some(Set::new(secs(l)?, &l.at));
        }
        if let Some(l) = scope.get("failurecount", used) {
            s.timing.fall = Some(Set::new(count(l)?.max(1), &l.at));
        }
        let checktype = scope
            .get("checktype", used)
            .map(|l| (l.value.to_ascii_lowercase(), Some(l)))
            .unwrap_or_else(|| ("negotiate".to_owned(), None));
        let specific = if checktype.0 == "connect" {
            "connecttimeout"
        } else {
            "negotiatetimeout"
        };
        if let Some(l) = scope
            .get(specific, used)
            .or_else(|| scope.get("checktimeout", used))
        {
            s.timing.timeout = Some(Set::new(secs(l)?, &l.at));
        }
        // The service: http, https, dns ... (ldirectord guesses it from the port).
        let service = match scope.get("service", used) {
            Some(l) => (l.value.to_ascii_lowercase(), Some(l)),
            None => (
                match vport {
                    80 => "http",
                    443 => "https",
                    53 => "dns",
                    _ => "none",
                }
                .to_owned(),
                None,
            ),
        };
        let mut notes = Vec::new();
        let check = self.check(&scope, v, &checktype, &service, &mut notes)?;
        s.notes.extend(notes);
        for l in own {
            match l.key.as_str() {
                "real" => self.real(&mut s, l, check.as_ref(), &service.0)?,
                "emailalert" => self.emailalert(l),
                "emailalertfrom" | "smtp" => self.email_lines.push(l.at.clone()),
                "connecttimeout" | "negotiatetimeout" | "checktimeout"
                    if s.timing.timeout.as_ref().is_none_or(|t| t.at != l.at) =>
                {
                    s.notes.push(note(l, "the timeout of another check type"));
                }
                k if is_service_key(k) => {}
                k => match unmapped(k) {
                    Some(why) => s.notes.push(note(l, why)),
                    None => s
                        .notes
                        .push(note(l, "not an ldirectord key lvs-rs has a use for")),
                },
            }
        }
        // The check's own lines, when there is no check to carry them.
        if check.is_none() {
            for k in [
                "checkport",
                "request",
                "receive",
                "virtualhost",
                "httpmethod",
            ] {
                if let Some(l) = own.iter().find(|l| l.key == k) {
                    s.notes.push(note(l, "no check uses it (see checktype)"));
                }
            }
        }
        // Whatever this service did not use (a key of another check type) says so.
        let seen = origins(&s);
        for l in own {
            let mail = ["emailalert", "emailalertfrom", "smtp"].contains(&l.key.as_str());
            if !seen.contains(&l.at) && !mail {
                s.notes.push(note(
                    l,
                    format!(
                        "not used with checktype = {} and service = {}",
                        checktype.0, service.0
                    ),
                ));
            }
        }
        self.site.services.push(s);
        Ok(())
    }

    /// The check every real server of the service gets (a real server's own request and
    /// receive change it); `None`: monitord's default.
    fn check(
        &mut self,
        scope: &Scope<'_>,
        v: &Line,
        checktype: &(String, Option<&Line>),
        service: &(String, Option<&Line>),
        notes: &mut Vec<Note>,
    ) -> Result<Option<Check>, ImportError> {
        let used = &mut self.used;
        let mut at = vec![v.at.clone()];
        at.extend(checktype.1.map(|l| l.at.clone()));
        let mut ch = Check {
            at,
            kind: CheckKind::Tcp,
            port: None,
            timing: Timing::default(),
            notes: Vec::new(),
        };
        if let Some(l) = scope.get("checkport", used) {
            let p = port_of(&l.value).ok_or_else(|| err(l, "checkport: not a port"))?;
            ch.port = Some(Set::new(p, &l.at));
        }
        let mut negotiate = |ch: &mut Check, notes: &mut Vec<Note>| -> Result<(), ImportError> {
            ch.at.extend(service.1.map(|l| l.at.clone()));
            match service.0.as_str() {
                "http" | "https" => {
                    let mut h = Http {
                        https: service.0 == "https",
                        path: None,
                        host: None,
                        // ldirectord passes any 2xx answer: these are the ones HTTP defines.
                        status: Some(Set::new((200..=206).collect(), &v.at)),
                        body: None,
                        no_verify: true,
                    };
                    if let Some(l) = scope.get("request", used) {
                        h.path = Some(Set::new(path(l, &l.value)?, &l.at));
                    }
                    if let Some(l) = scope.get("receive", used) {
                        match body(&l.value) {
                            Some(b) => h.body = Some(Set::new(b, &l.at)),
                            None => notes.push(note(l, REGEX)),
                        }
                    }
                    if let Some(l) = scope.get("virtualhost", used) {
                        if !valid_host(&l.value) {
                            return Err(err(
                                l,
                                format!("virtualhost: `{}` is not a host name", l.value),
                            ));
                        }
                        h.host = Some(Set::new(l.value.clone(), &l.at));
                    }
                    if let Some(l) = scope.get("httpmethod", used) {
                        if l.value.eq_ignore_ascii_case("GET") {
                            ch.at.push(l.at.clone());
                        } else {
                            notes.push(note(l, "monitord's HTTP check sends GET"));
                        }
                    }
                    ch.kind = CheckKind::Http(h);
                }
                "dns" => {
                    let Some(r) = scope.get("request", used) else {
                        return Err(err(v, "a dns negotiate check needs request = NAME"));
                    };
                    let expect = match scope.get("receive", used) {
                        Some(l) => match l.value.parse::<IpAddr>() {
                            Ok(a) => Some(Set::new(vec![a], &l.at)),
                            Err(_) => {
                                notes.push(note(
                                    l,
                                    "monitord expects addresses in the answer, not a pattern",
                                ));
                                None
                            }
                        },
                        None => None,
                    };
                    let aaaa = expect
                        .as_ref()
                        .filter(|e| e.v.iter().all(IpAddr::is_ipv6))
                        .map(|e| Set::new(true, &e.at));
                    ch.kind = CheckKind::Dns {
                        name: Set::new(r.value.trim_end_matches('.').to_owned(), &r.at),
                        aaaa,
                        expect,
                    };
                }
                "none" => {}
                other => {
                    let why = format!(
                        "monitord has no `{other}` protocol check: a TCP connect to the check port instead (a script check can do more)"
                    );
                    if let Some(l) = service.1 {
                        notes.push(note(l, why));
                    }
                    for k in ["request", "receive"] {
                        if let Some(l) = scope.get(k, used) {
                            notes.push(note(l, format!("used by ldirectord's {other} check only")));
                        }
                    }
                }
            }
            Ok(())
        };
        match checktype.0.as_str() {
            "connect" => {}
            "negotiate" => negotiate(&mut ch, notes)?,
            "ping" => ch.kind = CheckKind::Icmp,
            "external" | "external-perl" => {
                let l = scope.get("checkcommand", used).ok_or_else(|| {
                    err(
                        checktype.1.unwrap_or(v),
                        "checktype = external needs checkcommand",
                    )
                })?;
                let w = words(&l.value);
                let Some(cmd) = w
                    .first()
                    .filter(|c| c.starts_with('/') && checktype.0 == "external")
                else {
                    notes.push(note(
                        l,
                        "monitord runs a program by its absolute path (no Perl inside it)",
                    ));
                    return Ok(None);
                };
                ch.kind = CheckKind::Script {
                    command: cmd.clone(),
                    args: w[1..].to_vec(),
                    at: l.at.clone(),
                };
            }
            "on" | "off" => {
                if let Some(l) = checktype.1 {
                    notes.push(note(
                        l,
                        "monitord always checks: the servers get its default check (a TCP connect, ICMP echo for UDP)",
                    ));
                }
                return Ok(None);
            }
            n if n.parse::<u32>().is_ok() || n == "combined" => {
                if let Some(l) = checktype.1 {
                    notes.push(note(
                        l,
                        "every check negotiates here (ldirectord negotiated every Nth and connected otherwise)",
                    ));
                }
                negotiate(&mut ch, notes)?;
            }
            other => {
                return Err(err(
                    checktype.1.unwrap_or(v),
                    format!(
                        "checktype: `{other}` is not connect, negotiate, ping, external, on, off or a number"
                    ),
                ));
            }
        }
        Ok(Some(ch))
    }

    fn real(
        &mut self,
        s: &mut Service,
        l: &Line,
        check: Option<&Check>,
        service: &str,
    ) -> Result<(), ImportError> {
        let w = words(&l.value);
        let first = w
            .first()
            .ok_or_else(|| err(l, "real= needs ADDRESS[:PORT]"))?;
        let (addrs, port) = match first.split_once("->") {
            Some((a, b)) => {
                let (from, _) = addr_port(l, a)?;
                let (to, port) = addr_port(l, b)?;
                let (IpAddr::V4(from), IpAddr::V4(to)) = (from, to) else {
                    return Err(err(l, "address ranges are IPv4"));
                };
                let (f, t) = (u32::from(from), u32::from(to));
                if t < f || t - f >= MAX_RANGE {
                    return Err(err(l, format!("a range of 1 to {MAX_RANGE} addresses")));
                }
                (
                    (f..=t)
                        .map(|a| IpAddr::from(std::net::Ipv4Addr::from(a)))
                        .collect(),
                    port,
                )
            }
            None => {
                let (a, p) = addr_port(l, first)?;
                (vec![a], p)
            }
        };
        let port = port.unwrap_or(s.port);
        let mut fwd = Fwd::Dr;
        let mut weight = None;
        let mut rest: Vec<&String> = Vec::new();
        for x in &w[1..] {
            match x.as_str() {
                "gate" => fwd = Fwd::Dr,
                "masq" => fwd = Fwd::Nat,
                "ipip" => fwd = Fwd::Tun,
                n if weight.is_none() && rest.is_empty() && n.parse::<u32>().is_ok() => {
                    weight = n.parse::<u32>().ok();
                }
                _ => rest.push(x),
            }
        }
        if rest.len() > 2 {
            return Err(err(
                l,
                "real= takes ADDRESS[:PORT] [gate|masq|ipip] [WEIGHT] [\"REQUEST\", \"RECEIVE\"]",
            ));
        }
        for a in addrs {
            if a.is_ipv4() != s.vip.is_ipv4() {
                return Err(err(
                    l,
                    "a real server of another address family than its virtual service",
                ));
            }
            let mut r = Server {
                at: l.at.clone(),
                addr: a,
                port,
                weight: weight.map(|w| Set::new(w.min(65535), &l.at)),
                fwd: Some(Set::new(fwd, &l.at)),
                uthreshold: None,
                lthreshold: None,
                checks: Vec::new(),
                also: Vec::new(),
                notes: Vec::new(),
            };
            if let Some(c) = check {
                let mut c = c.clone();
                if !rest.is_empty() {
                    match &mut c.kind {
                        CheckKind::Http(h) => {
                            h.path = Some(Set::new(path(l, rest[0])?, &l.at));
                            if let Some(b) = rest.get(1) {
                                match body(b) {
                                    Some(b) => h.body = Some(Set::new(b, &l.at)),
                                    None => r.notes.push(note(l, REGEX)),
                                }
                            }
                        }
                        _ => r.notes.push(note(
                            l,
                            format!(
                                "its request and receive are for ldirectord's {service} check only"
                            ),
                        )),
                    }
                }
                r.checks.push(c);
            }
            s.servers.push(r);
        }
        Ok(())
    }

    fn emailalert(&mut self, l: &Line) {
        for a in words(&l.value) {
            if !self.emails.iter().any(|e| e.v == a) {
                self.emails.push(Set::new(a, &l.at));
            } else {
                self.email_lines.push(l.at.clone());
            }
        }
    }

    fn note(&mut self, t: Target, l: &Line, why: &str) {
        self.site.notes.push((t, note(l, why)));
    }

    fn finish(mut self, global: &[Line]) -> Result<Site, ImportError> {
        let mut from = None;
        let mut smtp: Option<(Set<String>, Option<Set<u16>>)> = None;
        for l in global {
            match l.key.as_str() {
                "emailalert" => self.emailalert(l),
                "emailalertfrom" => from = Some(Set::new(l.value.clone(), &l.at)),
                "smtp" => {
                    let (host, p) = match l.value.rsplit_once(':') {
                        Some((h, p)) if !h.contains(':') => {
                            let p = port_of(p).ok_or_else(|| err(l, "smtp: not HOST[:PORT]"))?;
                            (h.to_owned(), Some(Set::new(p, &l.at)))
                        }
                        _ => (l.value.clone(), None),
                    };
                    smtp = Some((Set::new(host, &l.at), p));
                }
                _ => {}
            }
        }
        if !self.emails.is_empty() {
            let (server, port) = smtp.unwrap_or_else(|| {
                // Without smtp= ldirectord hands mail to the local MTA.
                (Set::new("127.0.0.1".to_owned(), &self.emails[0].at), None)
            });
            let mut also = self.email_lines.clone();
            also.extend(from.as_ref().map(|f| f.at.clone()));
            self.site.alerts.mail = Some(Mail {
                from,
                to: self.emails.clone(),
                server,
                port,
                timeout: None,
                also,
            });
        }
        let mailed = self.site.alerts.mail.is_some();
        for l in global {
            let mapped = match l.key.as_str() {
                "emailalert" | "emailalertfrom" | "smtp" => mailed,
                _ => self.used.contains(&l.at),
            };
            if mapped {
                continue;
            }
            let why = match l.key.as_str() {
                "emailalertfrom" | "smtp" => "no emailalert: no mail",
                k => match unmapped(k) {
                    Some(why) => why,
                    None if is_service_key(k) => "no virtual service uses it",
                    None => "not an ldirectord key lvs-rs has a use for",
                },
            };
            self.site.notes.push((Target::Monitord, note(l, why)));
        }
        Ok(self.site)
    }
}

/// Every line a service's written form names.
fn origins(s: &Service) -> HashSet<Origin> {
    let mut o: HashSet<Origin> = HashSet::new();
    o.insert(s.at.clone());
    o.extend(s.also.iter().cloned());
    o.extend(s.on_failure_at.iter().cloned());
    o.extend(s.notes.iter().map(|n| n.at.clone()));
    o.extend(s.rules_notes.iter().map(|n| n.at.clone()));
    let sets = [
        s.scheduler.as_ref().map(|x| &x.at),
        s.persistence.as_ref().map(|x| &x.at),
        s.netmask.as_ref().map(|x| &x.at),
        s.sorry.as_ref().map(|x| &x.at),
        s.timing.interval.as_ref().map(|x| &x.at),
        s.timing.timeout.as_ref().map(|x| &x.at),
        s.timing.fall.as_ref().map(|x| &x.at),
    ];
    o.extend(sets.into_iter().flatten().cloned());
    for r in &s.servers {
        o.insert(r.at.clone());
        o.extend(r.notes.iter().map(|n| n.at.clone()));
        for c in &r.checks {
            o.extend(c.at.iter().cloned());
            o.extend(c.notes.iter().map(|n| n.at.clone()));
            o.extend(c.port.as_ref().map(|p| p.at.clone()));
            match &c.kind {
                CheckKind::Http(h) => {
                    let sets = [
                        h.path.as_ref().map(|x| &x.at),
                        h.host.as_ref().map(|x| &x.at),
                        h.status.as_ref().map(|x| &x.at),
                        h.body.as_ref().map(|x| &x.at),
                    ];
                    o.extend(sets.into_iter().flatten().cloned());
                }
                CheckKind::Dns { name, aaaa, expect } => {
                    o.insert(name.at.clone());
                    o.extend(aaaa.as_ref().map(|x| x.at.clone()));
                    o.extend(expect.as_ref().map(|x| x.at.clone()));
                }
                CheckKind::Script { at, .. } => {
                    o.insert(at.clone());
                }
                CheckKind::Tcp | CheckKind::Icmp => {}
            }
        }
    }
    o
}

fn is_service_key(k: &str) -> bool {
    [
        "protocol",
        "scheduler",
        "persistent",
        "netmask",
        "quiescent",
        "fallback",
        "checkinterval",
        "failurecount",
        "checktype",
        "connecttimeout",
        "negotiatetimeout",
        "checktimeout",
        "service",
        "checkport",
        "request",
        "receive",
        "virtualhost",
        "httpmethod",
        "checkcommand",
    ]
    .contains(&k)
}

const REGEX: &str =
    "ldirectord matched a regular expression; monitord looks for plain text (body = \"...\")";

/// An HTTP request path: ldirectord's `index.html` is `/index.html`.
fn path(l: &Line, v: &str) -> Result<String, ImportError> {
    let p = if v.starts_with('/') {
        v.to_owned()
    } else {
        format!("/{v}")
    };
    if p.chars().any(|c| c.is_ascii_control() || c == ' ') {
        return Err(err(l, "request: a path without spaces"));
    }
    Ok(p)
}

/// A receive pattern monitord can look for as plain text.
fn body(v: &str) -> Option<String> {
    (!v.is_empty() && !v.chars().any(|c| "\\^$.|?*+()[]{}".contains(c))).then(|| v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(text: &str) -> Result<Site, ImportError> {
        map(&lines(text, "l.cf")?, "l.cf")
    }

    #[test]
    fn a_virtual_section() {
        let s = site(
            "checktimeout=3\ncheckinterval=5\nquiescent=no\n\nvirtual=192.0.2.1:80\n\
             \treal=10.0.0.1->10.0.0.3:80 masq 2\n\treal=10.0.0.9:8080 gate \"/x.html\", \"OK\"\n\
             \tservice=http\n\trequest=\"index.html\"\n\treceive=\"Test Page\"\n\tscheduler=wlc\n",
        )
        .unwrap();
        let vs = &s.services[0];
        assert_eq!(vs.servers.len(), 4);
        assert_eq!(vs.on_failure, OnFailure::Remove);
        assert_eq!(vs.servers[0].fwd.as_ref().unwrap().v, Fwd::Nat);
        assert_eq!(vs.servers[3].port, 8080);
        let CheckKind::Http(h) = &vs.servers[0].checks[0].kind else {
            panic!()
        };
        assert_eq!(h.path.as_ref().unwrap().v, "/index.html");
        assert_eq!(h.body.as_ref().unwrap().v, "Test Page");
        let CheckKind::Http(h) = &vs.servers[3].checks[0].kind else {
            panic!()
        };
        assert_eq!(h.path.as_ref().unwrap().v, "/x.html");
        assert_eq!(vs.timing.timeout.as_ref().unwrap().v, 3.0);
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line) in [
            ("\treal=10.0.0.1:80\n", 1),
            ("virtual=192.0.2.1:80\n\treal=host.example:80 gate\n", 2),
            ("virtual=192.0.2.1:80\nnonsense\n", 2),
            ("virtual=192.0.2.1:80\n\tchecktype=sometimes\n", 2),
        ] {
            let e = site(text).unwrap_err().to_string();
            assert!(e.starts_with(&format!("l.cf:{line}:")), "{e}");
        }
    }

    /// Lines made of ldirectord's own keys and values, in any order.
    fn soup() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let key = prop::sample::select(vec![
            "virtual",
            "\treal",
            "\tservice",
            "\tchecktype",
            "\trequest",
            "\treceive",
            "\tscheduler",
            "\tprotocol",
            "\tfallback",
            "\tquiescent",
            "checktimeout",
            "\tcheckport",
            "\tcheckcommand",
            "emailalert",
            "smtp",
            "\tvirtualhost",
            "\tpersistent",
            "\tnetmask",
            "failurecount",
            "\tlogin",
        ]);
        let value = prop::sample::select(vec![
            "192.0.2.1:80",
            "10.0.0.1->10.0.0.3:80 masq 2",
            "[2001:db8::1]:80",
            "1",
            "http",
            "https",
            "dns",
            "smtp",
            "negotiate",
            "connect",
            "external",
            "ping",
            "off",
            "2",
            "\"/x\"",
            "\"^a$\"",
            "yes",
            "no",
            "udp",
            "fwm",
            "/bin/x",
            "a@b",
            "0",
            "3600",
            "10.0.0.9:8080 gate \"/x\", \"OK\"",
        ]);
        prop::collection::vec((key, value), 0..40).prop_map(|v| {
            v.into_iter()
                .map(|(k, v)| format!("{k}={v}\n"))
                .collect::<String>()
        })
    }

    proptest::proptest! {
        #[test]
        fn the_line_parser_never_panics(text in "[ -~\t\n\"#=é]{0,300}") {
            let _ = site(&text);
        }

        #[test]
        fn ldirectord_keys_in_any_order_never_panic(text in soup()) {
            if let Ok(s) = site(&text) {
                let _ = super::super::emit::render(&s, Path::new("/x"));
            }
        }
    }
}
