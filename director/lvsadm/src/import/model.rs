//! What a keepalived or ldirectord site is, in the suite's terms: virtual services with their
//! real servers and checks, alerts, and the failover pair. Every value remembers the source
//! line it came from ([`Set`]), and every line that became nothing is a [`Note`], so that
//! what is written names its source line by line.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::Origin;

/// A value and the line that set it.
#[derive(Debug, Clone, PartialEq)]
pub struct Set<T> {
    pub v: T,
    pub at: Origin,
}

impl<T> Set<T> {
    pub fn new(v: T, at: &Origin) -> Set<T> {
        Set { v, at: at.clone() }
    }
}

/// A line of the source that has no equivalent: written as a comment with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub at: Origin,
    /// The line as written (comments removed).
    pub text: String,
    pub why: String,
}

/// Which written file a site-wide note belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Director,
    Monitord,
    Heartbeatd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fwd {
    Nat,
    Dr,
    Tun,
}

impl Fwd {
    /// lvsadm's option.
    pub fn flag(self) -> &'static str {
        match self {
            Fwd::Nat => "-m",
            Fwd::Dr => "-g",
            Fwd::Tun => "-i",
        }
    }
}

/// Check timing; `None`: not given (monitord's default, or the level above).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timing {
    /// Seconds between two checks.
    pub interval: Option<Set<f64>>,
    /// Seconds a check may take.
    pub timeout: Option<Set<f64>>,
    /// Consecutive failures that take a server out.
    pub fall: Option<Set<u32>>,
}

impl Timing {
    /// `self` where given, else `base`.
    pub fn over(&self, base: &Timing) -> Timing {
        Timing {
            interval: self.interval.clone().or_else(|| base.interval.clone()),
            timeout: self.timeout.clone().or_else(|| base.timeout.clone()),
            fall: self.fall.clone().or_else(|| base.fall.clone()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Http {
    pub https: bool,
    pub path: Option<Set<String>>,
    pub host: Option<Set<String>>,
    pub status: Option<Set<Vec<u16>>>,
    pub body: Option<Set<String>>,
    /// Certificates are not verified (keepalived's SSL_GET and ldirectord do not).
    pub no_verify: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    Tcp,
    Icmp,
    Http(Http),
    Dns {
        name: Set<String>,
        aaaa: Option<Set<bool>>,
        expect: Option<Set<Vec<IpAddr>>>,
    },
    Script {
        command: String,
        args: Vec<String>,
        at: Origin,
    },
}

/// One check of one real server.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The checker's line (and its `url` block's).
    pub at: Vec<Origin>,
    pub kind: CheckKind,
    pub port: Option<Set<u16>>,
    pub timing: Timing,
    /// Lines of the check's block that became nothing.
    pub notes: Vec<Note>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub at: Origin,
    pub addr: IpAddr,
    pub port: u16,
    pub weight: Option<Set<u32>>,
    pub fwd: Option<Set<Fwd>>,
    pub uthreshold: Option<Set<u32>>,
    pub lthreshold: Option<Set<u32>>,
    pub checks: Vec<Check>,
    /// Lines mapped into the server's table or rule without a key of their own (e.g.
    /// `inhibit_on_failure`, decided per service).
    pub also: Vec<Origin>,
    pub notes: Vec<Note>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    Quiesce,
    Remove,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub at: Origin,
    pub udp: bool,
    pub vip: IpAddr,
    pub port: u16,
    /// Lines that set what the `-A` line says (protocol ...) besides its own keys.
    pub also: Vec<Origin>,
    pub scheduler: Option<Set<String>>,
    pub sched_flags: Vec<Set<String>>,
    pub persistence: Option<Set<u32>>,
    pub netmask: Option<Set<String>>,
    /// The service's default forwarding method for its servers.
    pub fwd: Option<Set<Fwd>>,
    pub on_failure: OnFailure,
    /// The lines that decided `on_failure`.
    pub on_failure_at: Vec<Origin>,
    pub sorry: Option<Set<SocketAddr>>,
    pub quorum: Option<Set<u32>>,
    pub hysteresis: Option<Set<u32>>,
    /// The service's own timing (its servers' default check uses it).
    pub timing: Timing,
    pub servers: Vec<Server>,
    /// Lines about monitoring that became nothing (written in monitord.toml) ...
    pub notes: Vec<Note>,
    /// ... and about forwarding (written beside the service in the rules file).
    pub rules_notes: Vec<Note>,
}

impl Service {
    /// A TCP service `vip:port` read at `at`, nothing else set yet: each importer fills in
    /// what its source says. `on_failure` is the source's own default (keepalived removes a
    /// failed server, ldirectord quiesces it).
    pub fn new(at: Origin, vip: IpAddr, port: u16, on_failure: OnFailure) -> Service {
        Service {
            at,
            udp: false,
            vip,
            port,
            also: Vec::new(),
            scheduler: None,
            sched_flags: Vec::new(),
            persistence: None,
            netmask: None,
            fwd: None,
            on_failure,
            on_failure_at: Vec::new(),
            sorry: None,
            quorum: None,
            hysteresis: None,
            timing: Timing::default(),
            servers: Vec::new(),
            notes: Vec::new(),
            rules_notes: Vec::new(),
        }
    }
}

/// `[alert.mail]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mail {
    pub from: Option<Set<String>>,
    pub to: Vec<Set<String>>,
    pub server: Set<String>,
    pub port: Option<Set<u16>>,
    pub timeout: Option<Set<u64>>,
    /// Lines that asked for mail (smtp_alert ...).
    pub also: Vec<Origin>,
}

/// `[alert]` of one daemon.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Alerts {
    pub node: Option<Set<String>>,
    pub mail: Option<Mail>,
    /// The notify command: its argv, and the lines it stands for.
    pub notify: Option<(Vec<String>, Vec<Origin>)>,
}

/// The heartbeat media.
#[derive(Debug, Clone, PartialEq)]
pub enum Udp {
    /// Both ends of one family; `scope`: the interface of link-local addresses.
    Unicast {
        bind: Option<Set<IpAddr>>,
        peers: Vec<Set<IpAddr>>,
        scope: Option<String>,
    },
    Multicast {
        group: Option<Set<Ipv4Addr>>,
        /// A local address of the interface.
        interface: Option<Set<Ipv4Addr>>,
    },
    /// An IPv6 group, joined on the interface named.
    Multicast6 {
        group: Option<Set<Ipv6Addr>>,
        interface: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Vip {
    pub addr: IpAddr,
    pub prefix: u8,
    pub interface: String,
    pub at: Origin,
}

/// The failover pair (keepalived's VRRP instances).
#[derive(Debug, Clone, PartialEq)]
pub struct Ha {
    pub at: Vec<Origin>,
    /// 1 for the node that starts as MASTER, 2 for a BACKUP.
    pub node_id: u32,
    pub state: Option<Origin>,
    pub priority: Option<Set<u16>>,
    pub auto_failback: Set<bool>,
    pub hold_down_ms: Option<Set<u64>>,
    pub keepalive_ms: Option<Set<u64>>,
    pub udp: Udp,
    /// Lines that chose the media (interface, unicast_peer ...).
    pub udp_at: Vec<Origin>,
    pub vips: Vec<Vip>,
    pub garp_count: Option<Set<u32>>,
    pub garp_refresh_ms: Option<Set<u64>>,
    pub key_at: Vec<Origin>,
    pub alerts: Alerts,
    pub notes: Vec<Note>,
}

/// A whole site.
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    /// `keepalived` or `ldirectord`.
    pub kind: &'static str,
    pub source: String,
    pub services: Vec<Service>,
    /// `--set tcp tcpfin udp`.
    pub timeouts: Option<Set<(u32, u32, u32)>>,
    pub alerts: Alerts,
    pub ha: Option<Ha>,
    /// Notes that belong to no service.
    pub notes: Vec<(Target, Note)>,
    /// Lines that only open a block (`global_defs {`): listed, since each setting inside is
    /// mapped or noted on its own line.
    pub blocks: Vec<(Origin, String)>,
}

impl Site {
    /// Lines kept as comments.
    pub fn note_count(&self) -> usize {
        let mut n = self.notes.len();
        for s in &self.services {
            n += s.notes.len() + s.rules_notes.len();
            for r in &s.servers {
                n += r.notes.len();
                n += r.checks.iter().map(|c| c.notes.len()).sum::<usize>();
            }
        }
        if let Some(ha) = &self.ha {
            n += ha.notes.len();
        }
        n
    }
}
