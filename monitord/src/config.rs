//! The monitord configuration file (`/etc/lvs/monitord.toml`, sample in `etc/lvs-monitord.toml`).
//!
//! It mirrors the director's virtual services and real servers. Each `[[service]]` is one
//! virtual service (protocol, VIP, port) with `on_failure`, an optional `sorry_server` and an
//! optional quorum; each `[[service.server]]` one real server (address, port, weight) with its
//! list of `[[service.server.check]]`s.
//!
//! # Defaults and the detection-time arithmetic
//!
//! `interval`, `timeout`, `rise` and `fall` may be set at the top level, per service and per
//! check; the most specific wins, then the built-in defaults [`DEFAULT_INTERVAL`] (1 s),
//! [`DEFAULT_TIMEOUT`] (800 ms), [`DEFAULT_RISE`] (2) and [`DEFAULT_FALL`] (3).
//!
//! A check starts every `interval` at a fixed rate (the next start is the previous start plus the
//! interval, never "end plus interval"), so with `fall = 3` a server that dies at time 0 gives
//! its third failure at:
//!
//! - a server that refuses or resets (process died, port closed): the next start comes within
//!   one interval, then two more intervals: **at most 3 s, 2.5 s on average**;
//! - a silent host (powered off, cable pulled): each failing check needs its `timeout` too:
//!   at most 2 x 1 s + 1 s + 0.8 s = **3.8 s**.
//!
//! A recovered server comes back after `rise = 2` passes: within 2 s. One lost packet
//! (one failure) never takes a server out. HAProxy's defaults (`inter 2s fall 3 rise 2`) take
//! 4 to 6 s; keepalived's and ldirectord's tens of seconds.
//!
//! A server with no checks of its own gets the service's `[[service.check]]` list, and a
//! service without one gets [`Check::default_with`]: a TCP probe of the server's port for a
//! TCP service (`tcp_probe`: a connect by default, or a half-open SYN probe), an ICMP echo for
//! a UDP service.
//!
//! # Addresses
//!
//! IPv4 and IPv6 alike, as [`crate::address`] reads them: `vip` is an address (`192.0.2.1`,
//! `2001:db8::100` or `[2001:db8::100]`); a server's `address` may carry its port
//! (`192.0.2.11:8080`, `[2001:db8::11]:8080`, the form `lvsadm -L -n` prints) instead of
//! `port`; `sorry_server` is an address with an optional port. An IPv6 address with a port is
//! always in brackets. A check's `host` holds an IPv6 address only in brackets, as an HTTP
//! Host header must.
//!
//! # Errors
//!
//! Everything is validated here, with `FILE:LINE:COL: reason` errors (see
//! [`lvs_common::config`]): unknown keys, keys that do not belong to a check's type, bad
//! addresses, zero or negative intervals and timeouts, `timeout >= interval`, duplicate
//! services or servers, out-of-range ports and weights.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lvs_common::config::{ConfigError, Source};
use lvs_proto::director::{AddrPort, Protocol, ServiceKey};
use serde::Deserialize;
use toml::Spanned;

use crate::address;

/// Default time between two starts of one check.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// Default time a check may take before it counts as failed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(800);
/// Default consecutive passes that bring a server back.
pub const DEFAULT_RISE: u32 = 2;
/// Default consecutive failures that take a server out.
pub const DEFAULT_FALL: u32 = 3;
/// The longest interval or timeout accepted.
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);
/// The largest `rise`, `fall` or quorum accepted.
pub const MAX_COUNT: u32 = 1000;
/// The largest weight (IPVS's limit).
pub const MAX_WEIGHT: u32 = 65535;

/// The validated configuration: nothing unvalidated reaches the engine.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// The virtual services, in file order.
    pub services: Vec<Service>,
    /// `director_socket`: the director's control socket; `None`: `<rundir>/director.sock`.
    pub director_socket: Option<PathBuf>,
    /// `[alert]`: syslog, mail and notify command on every state change (see `lvs-alert`).
    pub alert: lvs_alert::AlertConfig,
    /// `tcp_probe`: how the implicit TCP check (a server without checks of a TCP service, or
    /// one found at the director) probes.
    pub tcp_probe: TcpProbe,
}

/// How a TCP check probes a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TcpProbe {
    /// A full `connect()`, closed with a reset (`type = "tcp"`). The default: what every other
    /// monitor calls a TCP check, needs no raw socket, and sees ICMP errors at once.
    #[default]
    Connect,
    /// A half-open probe: SYN from a raw socket, SYN-ACK passes, RST fails (`type = "syn"`).
    /// Proves what a connect proves on a Linux server at a fraction of the cost; see
    /// [`crate::checks::syn`].
    Syn,
}

/// What to do with a failed real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OnFailure {
    /// Weight 0: no new connections, existing ones finish. The default.
    #[default]
    Quiesce,
    /// Delete the server from the service: its connections expire at once.
    Remove,
}

/// Pool-level quorum with hysteresis, as keepalived's `quorum` / `hysteresis`.
///
/// Parsed and validated; [`crate::health::QuorumState`] computes it, and the daemon acts on it
/// (alerts; the sorry server takes the traffic while it is lost, see [`crate::daemon`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quorum {
    /// Servers that must be up for the service to be "up".
    pub min_up: u32,
    /// The quorum is gained at `min_up + hysteresis` servers up and lost below
    /// `min_up - hysteresis`.
    pub hysteresis: u32,
}

/// One virtual service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The virtual IP address.
    pub vip: IpAddr,
    /// The virtual port (0: every port, persistent services only).
    pub port: u16,
    /// What happens to a failed server.
    pub on_failure: OnFailure,
    /// Takes the traffic (weight 1) when every real server of the service is down.
    pub sorry_server: Option<SocketAddr>,
    /// Optional quorum.
    pub quorum: Option<Quorum>,
    /// The real servers, in file order.
    pub servers: Vec<RealServer>,
}

impl Service {
    /// The director's key for this service.
    pub fn key(&self) -> ServiceKey {
        ServiceKey {
            protocol: self.protocol,
            addr: self.vip,
            port: self.port,
        }
    }
}

/// One real server of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServer {
    /// Its address.
    pub addr: IpAddr,
    /// Its port (the service's port when not given).
    pub port: u16,
    /// The weight it gets back on recovery.
    pub weight: u32,
    /// Its checks (never empty): all must pass.
    pub checks: Vec<Check>,
}

/// One check with its timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What it does.
    pub kind: CheckKind,
    /// Time between two starts (fixed rate).
    pub interval: Duration,
    /// A check still running after this long has failed. Always less than `interval`.
    pub timeout: Duration,
    /// Consecutive passes that make this check "up".
    pub rise: u32,
    /// Consecutive failures that make this check "down".
    pub fall: u32,
}

impl Check {
    /// The check a server gets when none is configured: TCP connect to `port` for a TCP
    /// service, ICMP echo for a UDP service and for a firewall-mark one (its servers are on
    /// port 0: no port to connect to); default timing.
    pub fn default_for(protocol: Protocol, port: u16) -> Check {
        Check::default_with(protocol, port, TcpProbe::Connect)
    }

    /// [`Check::default_for`] with the TCP probe of `tcp_probe`.
    pub fn default_with(protocol: Protocol, port: u16, probe: TcpProbe) -> Check {
        let kind = match (protocol, probe) {
            (Protocol::Tcp, TcpProbe::Connect) => CheckKind::Tcp { port },
            (Protocol::Tcp, TcpProbe::Syn) => CheckKind::Syn { port },
            (Protocol::Udp | Protocol::Fwmark(_), _) => CheckKind::Icmp,
        };
        Check {
            kind,
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            rise: DEFAULT_RISE,
            fall: DEFAULT_FALL,
        }
    }
}

/// What a check does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// ICMP (or ICMPv6) echo request; passes on the matching echo reply.
    Icmp,
    /// TCP connect; passes when the handshake completes (then closed with a reset).
    Tcp {
        /// Port to connect to.
        port: u16,
    },
    /// Half-open TCP probe from a raw socket: passes on the SYN-ACK, fails on a RST
    /// ([`crate::checks::syn`]).
    Syn {
        /// Port to probe.
        port: u16,
    },
    /// HTTP/1.1 GET.
    Http(HttpCheck),
    /// HTTP/1.1 GET over TLS (rustls).
    Https(HttpCheck),
    /// A DNS query over UDP.
    Dns(DnsCheck),
    /// An external program: exit code 0 passes.
    Script(ScriptCheck),
}

impl CheckKind {
    /// `icmp`, `tcp`, `http`, `https`, `dns` or `script`, as in the file.
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::Icmp => "icmp",
            CheckKind::Tcp { .. } => "tcp",
            CheckKind::Syn { .. } => "syn",
            CheckKind::Http(_) => "http",
            CheckKind::Https(_) => "https",
            CheckKind::Dns(_) => "dns",
            CheckKind::Script(_) => "script",
        }
    }
}

impl fmt::Display for CheckKind {
    /// A short label for logs: `tcp:80`, `http:80/health`, `dns:53 www.example.com A`, ...
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckKind::Icmp => f.write_str("icmp"),
            CheckKind::Tcp { port } => write!(f, "tcp:{port}"),
            CheckKind::Syn { port } => write!(f, "syn:{port}"),
            CheckKind::Http(h) => write!(f, "http:{}{}", h.port, h.path),
            CheckKind::Https(h) => write!(f, "https:{}{}", h.port, h.path),
            CheckKind::Dns(d) => write!(f, "dns:{} {} {}", d.port, d.name, d.qtype.name()),
            CheckKind::Script(s) => write!(f, "script:{}", s.command.display()),
        }
    }
}

/// An HTTP or HTTPS GET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    /// Port (the server's by default).
    pub port: u16,
    /// Request path, starting with `/`.
    pub path: String,
    /// The `Host` header, also the TLS server name (SNI and certificate name); the server's
    /// address when not given.
    pub host: Option<String>,
    /// Status codes that pass (default `[200]`).
    pub status: Vec<u16>,
    /// The body must contain this text (a plain substring: no regex crate is vetted).
    pub body: Option<String>,
    /// The body's SHA-256 must be this.
    pub body_sha256: Option<[u8; 32]>,
    /// HTTPS only: verify the certificate chain and name (default true). `false` accepts any
    /// certificate (the handshake signature is still checked against the presented key).
    pub verify: bool,
    /// HTTPS only: trust these PEM certificates instead of the built-in Mozilla roots.
    pub ca_file: Option<PathBuf>,
}

/// DNS record types the check can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DnsType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
}

impl DnsType {
    /// `A` or `AAAA`.
    pub fn name(self) -> &'static str {
        match self {
            DnsType::A => "A",
            DnsType::Aaaa => "AAAA",
        }
    }

    /// The RFC 1035 / 3596 type code.
    pub fn code(self) -> u16 {
        match self {
            DnsType::A => 1,
            DnsType::Aaaa => 28,
        }
    }
}

/// A DNS query over UDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsCheck {
    /// Port (the server's by default).
    pub port: u16,
    /// The name to ask for.
    pub name: String,
    /// `A` (default) or `AAAA`.
    pub qtype: DnsType,
    /// Every one of these must be among the answers; empty: any answer of the type passes.
    pub expect: Vec<IpAddr>,
}

/// An external program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptCheck {
    /// Absolute path of the program.
    pub command: PathBuf,
    /// Its arguments. The environment also has `LVS_SERVER_ADDR` and `LVS_SERVER_PORT`.
    pub args: Vec<String>,
}

/// Reads and validates `path`: the loader for [`lvs_common::run()`]. Without a path: no
/// services.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    match path {
        Some(path) => parse(&Source::read(path)?),
        None => Ok(Config::default()),
    }
}

/// Validates text already read (`path` only names it in messages).
pub fn parse_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
    parse(&Source::new(path, text))
}

/// Parses and validates a [`Source`].
pub fn parse(src: &Source) -> Result<Config, ConfigError> {
    let file: FileConfig = src.parse()?;
    let mut v = Validator {
        src,
        tcp_probe: TcpProbe::Connect,
    };
    v.tcp_probe = match &file.tcp_probe {
        None => TcpProbe::Connect,
        Some(t) => match t.get_ref().as_str() {
            "connect" => TcpProbe::Connect,
            "syn" => TcpProbe::Syn,
            other => {
                return v.err(
                    span_of(t),
                    format!("tcp_probe must be \"connect\" or \"syn\", not \"{other}\""),
                );
            }
        },
    };
    v.config(file)
}

// ---------------------------------------------------------------------------------------------
// The file as serde sees it.

/// A duration: a number of seconds (`1`, `0.5`) or text with a unit (`"800ms"`, `"1s"`, `"2m"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum DurationRepr {
    Secs(f64),
    Text(String),
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Timing {
    interval: Option<Spanned<DurationRepr>>,
    timeout: Option<Spanned<DurationRepr>>,
    rise: Option<Spanned<i64>>,
    fall: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    interval: Option<Spanned<DurationRepr>>,
    timeout: Option<Spanned<DurationRepr>>,
    rise: Option<Spanned<i64>>,
    fall: Option<Spanned<i64>>,
    #[serde(default, rename = "service")]
    services: Vec<FileService>,
    director_socket: Option<Spanned<String>>,
    tcp_probe: Option<Spanned<String>>,
    alert: Option<Spanned<lvs_alert::AlertConfig>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileService {
    protocol: Option<Spanned<String>>,
    vip: Spanned<String>,
    port: Spanned<i64>,
    on_failure: Option<Spanned<String>>,
    sorry_server: Option<Spanned<String>>,
    quorum: Option<Spanned<i64>>,
    hysteresis: Option<Spanned<i64>>,
    interval: Option<Spanned<DurationRepr>>,
    timeout: Option<Spanned<DurationRepr>>,
    rise: Option<Spanned<i64>>,
    fall: Option<Spanned<i64>>,
    #[serde(default, rename = "check")]
    checks: Vec<FileCheck>,
    #[serde(default, rename = "server")]
    servers: Vec<FileServer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileServer {
    address: Spanned<String>,
    port: Option<Spanned<i64>>,
    weight: Option<Spanned<i64>>,
    #[serde(default, rename = "check")]
    checks: Vec<FileCheck>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCheck {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    port: Option<Spanned<i64>>,
    interval: Option<Spanned<DurationRepr>>,
    timeout: Option<Spanned<DurationRepr>>,
    rise: Option<Spanned<i64>>,
    fall: Option<Spanned<i64>>,
    path: Option<Spanned<String>>,
    host: Option<Spanned<String>>,
    status: Option<Spanned<Vec<i64>>>,
    body: Option<Spanned<String>>,
    body_sha256: Option<Spanned<String>>,
    verify: Option<Spanned<bool>>,
    ca_file: Option<Spanned<String>>,
    name: Option<Spanned<String>>,
    query_type: Option<Spanned<String>>,
    expect: Option<Spanned<Vec<String>>>,
    command: Option<Spanned<String>>,
    args: Option<Spanned<Vec<String>>>,
}

// ---------------------------------------------------------------------------------------------
// Validation.

/// A resolved timing value and where it was set (None: built-in default).
#[derive(Debug, Clone, Copy)]
struct At<T> {
    value: T,
    span: Option<(usize, usize)>,
}

#[derive(Debug, Clone, Copy)]
struct Resolved {
    interval: At<Duration>,
    timeout: At<Duration>,
    rise: At<u32>,
    fall: At<u32>,
}

impl Resolved {
    fn builtin() -> Resolved {
        Resolved {
            interval: At {
                value: DEFAULT_INTERVAL,
                span: None,
            },
            timeout: At {
                value: DEFAULT_TIMEOUT,
                span: None,
            },
            rise: At {
                value: DEFAULT_RISE,
                span: None,
            },
            fall: At {
                value: DEFAULT_FALL,
                span: None,
            },
        }
    }
}

fn range(s: (usize, usize)) -> Range<usize> {
    s.0..s.1
}

fn span_of<T>(s: &Spanned<T>) -> (usize, usize) {
    let r = s.span();
    (r.start, r.end)
}

struct Validator<'a> {
    src: &'a Source,
    tcp_probe: TcpProbe,
}

impl Validator<'_> {
    fn err<T>(&self, span: (usize, usize), reason: impl Into<String>) -> Result<T, ConfigError> {
        Err(self.src.error_at(range(span), reason))
    }

    fn config(&self, file: FileConfig) -> Result<Config, ConfigError> {
        let top = self.timing(
            Resolved::builtin(),
            Timing {
                interval: file.interval,
                timeout: file.timeout,
                rise: file.rise,
                fall: file.fall,
            },
            false,
        )?;
        let mut seen = HashSet::new();
        let mut services = Vec::with_capacity(file.services.len());
        for s in file.services {
            let vip_span = span_of(&s.vip);
            let service = self.service(top, s)?;
            if !seen.insert(service.key()) {
                return self.err(
                    vip_span,
                    format!("service {} is listed twice", service.key()),
                );
            }
            services.push(service);
        }
        let director_socket = match file.director_socket {
            Some(p) if p.get_ref().is_empty() => {
                return self.err(span_of(&p), "director_socket must not be empty");
            }
            Some(p) => Some(PathBuf::from(p.into_inner())),
            None => None,
        };
        let alert = match file.alert {
            Some(a) => {
                let span = span_of(&a);
                let alert = a.into_inner();
                if let Err(problems) = alert.validate() {
                    let reason = problems
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ");
                    return self.err(span, reason);
                }
                alert
            }
            None => lvs_alert::AlertConfig::default(),
        };
        Ok(Config {
            services,
            director_socket,
            alert,
            tcp_probe: self.tcp_probe,
        })
    }

    /// Applies one level of timing on top of `base`; `check_level` also enforces
    /// `timeout < interval` (done once per check, after every level is known).
    fn timing(
        &self,
        base: Resolved,
        t: Timing,
        check_level: bool,
    ) -> Result<Resolved, ConfigError> {
        let mut r = base;
        if let Some(i) = t.interval {
            r.interval = At {
                value: self.duration(&i, "interval")?,
                span: Some(span_of(&i)),
            };
        }
        if let Some(i) = t.timeout {
            r.timeout = At {
                value: self.duration(&i, "timeout")?,
                span: Some(span_of(&i)),
            };
        }
        if let Some(v) = t.rise {
            r.rise = At {
                value: self.count(&v, "rise", 1)?,
                span: Some(span_of(&v)),
            };
        }
        if let Some(v) = t.fall {
            r.fall = At {
                value: self.count(&v, "fall", 1)?,
                span: Some(span_of(&v)),
            };
        }
        if check_level && r.timeout.value >= r.interval.value {
            let reason = format!(
                "timeout ({} ms) must be shorter than interval ({} ms)",
                r.timeout.value.as_millis(),
                r.interval.value.as_millis()
            );
            // Point at the most specific of the two that the file set.
            let span = match (r.timeout.span, r.interval.span) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            return match span {
                Some(span) => self.err(span, reason),
                None => Err(self.src.error(reason)),
            };
        }
        Ok(r)
    }

    fn duration(&self, d: &Spanned<DurationRepr>, what: &str) -> Result<Duration, ConfigError> {
        let span = span_of(d);
        let secs = match d.get_ref() {
            DurationRepr::Secs(s) => *s,
            DurationRepr::Text(t) => match parse_duration_text(t) {
                Some(s) => s,
                None => {
                    return self.err(
                        span,
                        format!(
                            "{what}: `{t}` is not a duration (a number of seconds, or e.g. \"800ms\", \"1s\", \"2m\")"
                        ),
                    );
                }
            },
        };
        if !secs.is_finite() || secs <= 0.0 {
            return self.err(span, format!("{what} must be greater than zero"));
        }
        if secs > MAX_INTERVAL.as_secs_f64() {
            return self.err(
                span,
                format!("{what} must be at most {} s", MAX_INTERVAL.as_secs()),
            );
        }
        let d = Duration::from_secs_f64(secs);
        if d < Duration::from_millis(1) {
            return self.err(span, format!("{what} must be at least 1 ms"));
        }
        Ok(d)
    }

    fn count(&self, v: &Spanned<i64>, what: &str, min: u32) -> Result<u32, ConfigError> {
        let n = *v.get_ref();
        match u32::try_from(n) {
            Ok(n) if (min..=MAX_COUNT).contains(&n) => Ok(n),
            _ => self.err(
                span_of(v),
                format!("{what} must be between {min} and {MAX_COUNT}, not {n}"),
            ),
        }
    }

    fn port(&self, v: &Spanned<i64>, min: u16) -> Result<u16, ConfigError> {
        let n = *v.get_ref();
        match u16::try_from(n) {
            Ok(p) if p >= min => Ok(p),
            _ => self.err(
                span_of(v),
                format!("port must be between {min} and 65535, not {n}"),
            ),
        }
    }

    fn ip(&self, v: &Spanned<String>, what: &str) -> Result<IpAddr, ConfigError> {
        address::parse_ip(v.get_ref())
            .or_else(|e| self.err(span_of(v), format!("{what} `{}`: {e}", v.get_ref())))
    }

    /// An address with an optional port (`[IPV6]:PORT`, `IPV4:PORT`).
    fn ip_port(
        &self,
        v: &Spanned<String>,
        what: &str,
    ) -> Result<(IpAddr, Option<u16>), ConfigError> {
        address::parse(v.get_ref())
            .or_else(|e| self.err(span_of(v), format!("{what} `{}`: {e}", v.get_ref())))
    }

    fn service(&self, top: Resolved, s: FileService) -> Result<Service, ConfigError> {
        let protocol = match &s.protocol {
            None => Protocol::Tcp,
            Some(p) => match p.get_ref().to_ascii_lowercase().as_str() {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                other => {
                    return self.err(
                        span_of(p),
                        format!("protocol must be \"tcp\" or \"udp\", not \"{other}\""),
                    );
                }
            },
        };
        let vip = self.ip(&s.vip, "vip")?;
        let port = self.port(&s.port, 0)?;
        let on_failure = match &s.on_failure {
            None => OnFailure::Quiesce,
            Some(v) => match v.get_ref().as_str() {
                "quiesce" => OnFailure::Quiesce,
                "remove" => OnFailure::Remove,
                other => {
                    return self.err(
                        span_of(v),
                        format!("on_failure must be \"quiesce\" or \"remove\", not \"{other}\""),
                    );
                }
            },
        };
        let sorry_server = match &s.sorry_server {
            None => None,
            Some(v) => {
                let (ip, p) = self.ip_port(v, "sorry_server")?;
                Some(SocketAddr::new(ip, p.unwrap_or(port)))
            }
        };
        let timing = self.timing(
            top,
            Timing {
                interval: s.interval,
                timeout: s.timeout,
                rise: s.rise,
                fall: s.fall,
            },
            false,
        )?;

        let mut servers = Vec::with_capacity(s.servers.len());
        let mut seen = HashSet::new();
        for fs in &s.servers {
            let (addr, port_in_address) = self.ip_port(&fs.address, "address")?;
            let sport = match (&fs.port, port_in_address) {
                (Some(p), Some(_)) => {
                    return self.err(
                        span_of(p),
                        format!(
                            "the port is given twice: in `address` ({}) and as `port`",
                            fs.address.get_ref()
                        ),
                    );
                }
                (Some(p), None) => self.port(p, 1)?,
                (None, Some(p)) => p,
                (None, None) if port == 0 => {
                    return self.err(
                        span_of(&fs.address),
                        "the service has port 0: give the server a port",
                    );
                }
                (None, None) => port,
            };
            if !seen.insert((addr, sport)) {
                return self.err(
                    span_of(&fs.address),
                    format!("server {} is listed twice", AddrPort(addr, sport)),
                );
            }
            let weight = match &fs.weight {
                None => 1,
                Some(w) => {
                    let n = *w.get_ref();
                    match u32::try_from(n) {
                        Ok(n) if n <= MAX_WEIGHT => n,
                        _ => {
                            return self.err(
                                span_of(w),
                                format!("weight must be between 0 and {MAX_WEIGHT}, not {n}"),
                            );
                        }
                    }
                }
            };
            let source = if fs.checks.is_empty() {
                &s.checks
            } else {
                &fs.checks
            };
            let mut checks = Vec::with_capacity(source.len().max(1));
            for c in source {
                checks.push(self.check(timing, c, sport)?);
            }
            if checks.is_empty() {
                let mut c = Check::default_with(protocol, sport, self.tcp_probe);
                let r = self.timing(timing, Timing::default(), true)?;
                c.interval = r.interval.value;
                c.timeout = r.timeout.value;
                c.rise = r.rise.value;
                c.fall = r.fall.value;
                checks.push(c);
            }
            servers.push(RealServer {
                addr,
                port: sport,
                weight,
                checks,
            });
        }

        let quorum = match &s.quorum {
            None => {
                if let Some(h) = &s.hysteresis {
                    return self.err(span_of(h), "hysteresis needs a quorum");
                }
                None
            }
            Some(q) => {
                let min_up = self.count(q, "quorum", 1)?;
                let hysteresis = match &s.hysteresis {
                    None => 0,
                    Some(h) => {
                        let v = self.count(h, "hysteresis", 0)?;
                        if v >= min_up {
                            return self.err(span_of(h), "hysteresis must be less than quorum");
                        }
                        v
                    }
                };
                Some(Quorum { min_up, hysteresis })
            }
        };

        Ok(Service {
            protocol,
            vip,
            port,
            on_failure,
            sorry_server,
            quorum,
            servers,
        })
    }

    fn check(&self, base: Resolved, c: &FileCheck, server_port: u16) -> Result<Check, ConfigError> {
        let kind_name = c.kind.get_ref().as_str();
        let allowed: &[&str] = match kind_name {
            "icmp" => &[],
            "tcp" | "syn" => &["port"],
            "http" => &["port", "path", "host", "status", "body", "body_sha256"],
            "https" => &[
                "port",
                "path",
                "host",
                "status",
                "body",
                "body_sha256",
                "verify",
                "ca_file",
            ],
            "dns" => &["port", "name", "query_type", "expect"],
            "script" => &["command", "args"],
            other => {
                return self.err(
                    span_of(&c.kind),
                    format!(
                        "unknown check type \"{other}\" (icmp, tcp, syn, http, https, dns or script)"
                    ),
                );
            }
        };
        let present: [(&str, Option<(usize, usize)>); 13] = [
            ("port", c.port.as_ref().map(span_of)),
            ("path", c.path.as_ref().map(span_of)),
            ("host", c.host.as_ref().map(span_of)),
            ("status", c.status.as_ref().map(span_of)),
            ("body", c.body.as_ref().map(span_of)),
            ("body_sha256", c.body_sha256.as_ref().map(span_of)),
            ("verify", c.verify.as_ref().map(span_of)),
            ("ca_file", c.ca_file.as_ref().map(span_of)),
            ("name", c.name.as_ref().map(span_of)),
            ("query_type", c.query_type.as_ref().map(span_of)),
            ("expect", c.expect.as_ref().map(span_of)),
            ("command", c.command.as_ref().map(span_of)),
            ("args", c.args.as_ref().map(span_of)),
        ];
        for (key, span) in present {
            if let Some(span) = span
                && !allowed.contains(&key)
            {
                return self.err(
                    span,
                    format!("`{key}` does not apply to a {kind_name} check"),
                );
            }
        }

        let timing = self.timing(
            base,
            Timing {
                interval: c.interval.as_ref().map(clone_spanned_duration),
                timeout: c.timeout.as_ref().map(clone_spanned_duration),
                rise: c.rise.clone(),
                fall: c.fall.clone(),
            },
            true,
        )?;
        let port = match &c.port {
            Some(p) => self.port(p, 1)?,
            None => server_port,
        };

        let kind = match kind_name {
            "icmp" => CheckKind::Icmp,
            "tcp" => CheckKind::Tcp { port },
            "syn" => CheckKind::Syn { port },
            "http" | "https" => {
                let h = self.http(c, port)?;
                if kind_name == "http" {
                    CheckKind::Http(h)
                } else {
                    CheckKind::Https(h)
                }
            }
            "dns" => CheckKind::Dns(self.dns(c, port)?),
            _ => {
                let Some(command) = &c.command else {
                    return self.err(span_of(&c.kind), "a script check needs `command`");
                };
                let path = PathBuf::from(command.get_ref());
                if !path.is_absolute() {
                    return self.err(
                        span_of(command),
                        "command must be an absolute path (no shell, no PATH search)",
                    );
                }
                CheckKind::Script(ScriptCheck {
                    command: path,
                    args: c
                        .args
                        .as_ref()
                        .map(|a| a.get_ref().clone())
                        .unwrap_or_default(),
                })
            }
        };
        Ok(Check {
            kind,
            interval: timing.interval.value,
            timeout: timing.timeout.value,
            rise: timing.rise.value,
            fall: timing.fall.value,
        })
    }

    fn http(&self, c: &FileCheck, port: u16) -> Result<HttpCheck, ConfigError> {
        let path = match &c.path {
            None => "/".to_owned(),
            Some(p) => {
                let v = p.get_ref();
                if !v.starts_with('/') || v.chars().any(|ch| ch.is_ascii_control() || ch == ' ') {
                    return self.err(
                        span_of(p),
                        "path must start with `/` and contain no spaces or control characters",
                    );
                }
                v.clone()
            }
        };
        let host = match &c.host {
            None => None,
            Some(h) => {
                let v = h.get_ref();
                if v.is_empty()
                    || v.len() > 255
                    || !v
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || "-._:[]".contains(ch))
                {
                    return self.err(span_of(h), format!("host: `{v}` is not a host name"));
                }
                if let Ok(v6) = v.parse::<std::net::Ipv6Addr>() {
                    return self.err(
                        span_of(h),
                        format!("host: an IPv6 address takes brackets in a Host header: [{v6}]"),
                    );
                }
                if v.contains(['[', ']']) {
                    self.ip_port(h, "host")?;
                }
                Some(v.clone())
            }
        };
        let status = match &c.status {
            None => vec![200],
            Some(list) => {
                if list.get_ref().is_empty() {
                    return self.err(span_of(list), "status needs at least one code");
                }
                let mut out = Vec::new();
                for &code in list.get_ref() {
                    match u16::try_from(code) {
                        Ok(c) if (100..=599).contains(&c) => out.push(c),
                        _ => {
                            return self.err(
                                span_of(list),
                                format!("status: {code} is not an HTTP status code (100-599)"),
                            );
                        }
                    }
                }
                out
            }
        };
        let body_sha256 = match &c.body_sha256 {
            None => None,
            Some(d) => match parse_hex32(d.get_ref()) {
                Some(v) => Some(v),
                None => {
                    return self.err(span_of(d), "body_sha256 must be 64 hexadecimal digits");
                }
            },
        };
        let ca_file = match &c.ca_file {
            None => None,
            Some(p) => {
                let path = PathBuf::from(p.get_ref());
                if !path.is_absolute() {
                    return self.err(span_of(p), "ca_file must be an absolute path");
                }
                Some(path)
            }
        };
        Ok(HttpCheck {
            port,
            path,
            host,
            status,
            body: c.body.as_ref().map(|b| b.get_ref().clone()),
            body_sha256,
            verify: c.verify.as_ref().is_none_or(|v| *v.get_ref()),
            ca_file,
        })
    }

    fn dns(&self, c: &FileCheck, port: u16) -> Result<DnsCheck, ConfigError> {
        let Some(name) = &c.name else {
            return self.err(span_of(&c.kind), "a dns check needs `name`");
        };
        if crate::checks::dns::encode_name(name.get_ref(), &mut Vec::new()).is_err() {
            return self.err(
                span_of(name),
                format!("name: `{}` is not a valid DNS name", name.get_ref()),
            );
        }
        let qtype = match &c.query_type {
            None => DnsType::A,
            Some(t) => match t.get_ref().to_ascii_uppercase().as_str() {
                "A" => DnsType::A,
                "AAAA" => DnsType::Aaaa,
                other => {
                    return self.err(
                        span_of(t),
                        format!("query_type must be \"A\" or \"AAAA\", not \"{other}\""),
                    );
                }
            },
        };
        let mut expect = Vec::new();
        if let Some(list) = &c.expect {
            for a in list.get_ref() {
                let ip = match address::parse_ip(a) {
                    Ok(ip) => ip,
                    Err(e) => return self.err(span_of(list), format!("expect `{a}`: {e}")),
                };
                if ip.is_ipv4() != (qtype == DnsType::A) {
                    return self.err(
                        span_of(list),
                        format!(
                            "expect: {ip} cannot be the answer to a {} query",
                            qtype.name()
                        ),
                    );
                }
                expect.push(ip);
            }
        }
        Ok(DnsCheck {
            port,
            name: name.get_ref().clone(),
            qtype,
            expect,
        })
    }
}

fn clone_spanned_duration(d: &Spanned<DurationRepr>) -> Spanned<DurationRepr> {
    let v = match d.get_ref() {
        DurationRepr::Secs(s) => DurationRepr::Secs(*s),
        DurationRepr::Text(t) => DurationRepr::Text(t.clone()),
    };
    Spanned::new(d.span(), v)
}

/// `"800ms"`, `"1s"`, `"1.5s"`, `"2m"`, `"0.25"` (seconds) -> seconds.
fn parse_duration_text(t: &str) -> Option<f64> {
    let t = t.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    let num = num.trim();
    if num.is_empty()
        || !num
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '-')
    {
        return None;
    }
    num.parse::<f64>().ok().map(|n| n * scale)
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    let s = s.strip_prefix("sha256:").unwrap_or(s);
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Config, ConfigError> {
        parse_str(text, Path::new("/etc/lvs/monitord.toml"))
    }

    fn err(text: &str) -> String {
        p(text).unwrap_err().to_string()
    }

    const BASE: &str = "[[service]]\nvip = \"192.0.2.1\"\nport = 80\n";

    #[test]
    fn tcp_probe_picks_the_implicit_check_and_syn_is_a_check_type() {
        let c = p(&format!(
            "{BASE}[[service.server]]\naddress = \"192.0.2.11\"\n"
        ))
        .unwrap();
        assert_eq!(c.tcp_probe, TcpProbe::Connect);
        assert_eq!(
            c.services[0].servers[0].checks[0].kind,
            CheckKind::Tcp { port: 80 }
        );
        let c = p(&format!(
            "tcp_probe = \"syn\"\n{BASE}[[service.server]]\naddress = \"192.0.2.11\"\n"
        ))
        .unwrap();
        assert_eq!(c.tcp_probe, TcpProbe::Syn);
        assert_eq!(
            c.services[0].servers[0].checks[0].kind,
            CheckKind::Syn { port: 80 }
        );
        let c = p(&format!(
            "{BASE}[[service.server]]\naddress = \"192.0.2.11\"\n[[service.server.check]]\ntype = \"syn\"\nport = 8080\n"
        ))
        .unwrap();
        let check = &c.services[0].servers[0].checks[0];
        assert_eq!(check.kind, CheckKind::Syn { port: 8080 });
        assert_eq!(check.kind.to_string(), "syn:8080");
        let e = err(&format!("tcp_probe = \"half\"\n{BASE}"));
        assert!(e.contains(":1:13: tcp_probe must be"), "{e}");
        let e = err(&format!(
            "{BASE}[[service.check]]\ntype = \"syn\"\npath = \"/\"\n[[service.server]]\naddress = \"192.0.2.11\"\n"
        ));
        assert!(e.contains("`path` does not apply to a syn check"), "{e}");
    }

    #[test]
    fn sample_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../etc/lvs-monitord.toml");
        let c = load(Some(&path)).unwrap_or_else(|e| panic!("{e}"));
        assert!(!c.services.is_empty());
        let kinds: HashSet<&str> = c
            .services
            .iter()
            .flat_map(|s| s.servers.iter())
            .flat_map(|s| s.checks.iter())
            .map(|c| c.kind.name())
            .collect();
        for k in ["icmp", "tcp", "http", "https", "dns", "script"] {
            assert!(kinds.contains(k), "sample lacks a {k} check");
        }
    }

    #[test]
    fn defaults_and_default_check() {
        let c = p(&format!(
            "{BASE}[[service.server]]\naddress = \"192.0.2.11\"\n"
        ))
        .unwrap();
        let s = &c.services[0];
        assert_eq!(s.protocol, Protocol::Tcp);
        assert_eq!(s.on_failure, OnFailure::Quiesce);
        let rs = &s.servers[0];
        assert_eq!((rs.port, rs.weight), (80, 1));
        assert_eq!(rs.checks, vec![Check::default_for(Protocol::Tcp, 80)]);
        assert_eq!(rs.checks[0].interval, Duration::from_secs(1));
        assert_eq!(rs.checks[0].timeout, Duration::from_millis(800));
        assert_eq!((rs.checks[0].rise, rs.checks[0].fall), (2, 3));
    }

    #[test]
    fn timing_levels_inherit() {
        let text = "interval = 2\nfall = 5\n[[service]]\nvip = \"192.0.2.1\"\nport = 80\ntimeout = \"300ms\"\n\
                    [[service.check]]\ntype = \"http\"\npath = \"/h\"\nrise = 4\n\
                    [[service.server]]\naddress = \"192.0.2.11\"\n\
                    [[service.server]]\naddress = \"192.0.2.12\"\nport = 8080\n\
                    [[service.server.check]]\ntype = \"tcp\"\ninterval = \"500ms\"\n";
        let c = p(text).unwrap();
        let a = &c.services[0].servers[0].checks[0];
        assert_eq!(a.interval, Duration::from_secs(2));
        assert_eq!(a.timeout, Duration::from_millis(300));
        assert_eq!((a.rise, a.fall), (4, 5));
        let CheckKind::Http(h) = &a.kind else {
            panic!()
        };
        assert_eq!(
            (h.port, h.path.as_str(), h.status.as_slice()),
            (80, "/h", &[200][..])
        );
        let b = &c.services[0].servers[1].checks[0];
        assert_eq!(b.kind, CheckKind::Tcp { port: 8080 });
        assert_eq!(b.interval, Duration::from_millis(500));
        assert_eq!((b.rise, b.fall), (2, 5));
    }

    #[test]
    fn unknown_key_is_refused_at_its_line() {
        let e = err(&format!(
            "{BASE}[[service.server]]\naddress = \"192.0.2.11\"\nwieght = 3\n"
        ));
        assert!(e.starts_with("/etc/lvs/monitord.toml:6:1: "), "{e}");
        assert!(e.contains("unknown field `wieght`"), "{e}");
    }

    #[test]
    fn bad_address_is_refused() {
        let e = err(&format!(
            "{BASE}[[service.server]]\naddress = \"192.0.2.300\"\n"
        ));
        assert!(e.starts_with("/etc/lvs/monitord.toml:5:11: "), "{e}");
        assert!(e.contains("not an IP address"), "{e}");
        let e = err("[[service]]\nvip = \"nope\"\nport = 80\n");
        assert!(e.starts_with("/etc/lvs/monitord.toml:2:7: "), "{e}");
        let e = err(&format!("{BASE}sorry_server = \"1.2.3\"\n"));
        assert!(e.contains(":4:16: sorry_server"), "{e}");
    }

    #[test]
    fn ipv6_services_and_servers_in_every_written_form() {
        let c = p("[[service]]\nvip = \"[2001:db8::100]\"\nport = 80\n\
                   sorry_server = \"[2001:db8::50]:8080\"\n\
                   [[service.server]]\naddress = \"2001:db8::11\"\n\
                   [[service.server]]\naddress = \"[2001:DB8:0::12]\"\nport = 8080\n\
                   [[service.server]]\naddress = \"[2001:db8::13]:8081\"\nweight = 2\n\
                   [[service.server]]\naddress = \"192.0.2.14:8082\"\n\
                   [[service]]\nvip = \"2001:db8::100\"\nport = 443\nsorry_server = \"2001:db8::50\"\n")
        .unwrap();
        let s = &c.services[0];
        assert_eq!(s.vip, "2001:db8::100".parse::<IpAddr>().unwrap());
        assert_eq!(s.sorry_server, Some("[2001:db8::50]:8080".parse().unwrap()));
        let servers: Vec<(String, u16, u32)> = s
            .servers
            .iter()
            .map(|r| (r.addr.to_string(), r.port, r.weight))
            .collect();
        assert_eq!(
            servers,
            [
                ("2001:db8::11".into(), 80, 1),
                ("2001:db8::12".into(), 8080, 1),
                ("2001:db8::13".into(), 8081, 2),
                ("192.0.2.14".into(), 8082, 1),
            ]
        );
        // The sorry server's port defaults to the service's.
        assert_eq!(
            c.services[1].sorry_server,
            Some("[2001:db8::50]:443".parse().unwrap())
        );
    }

    #[test]
    fn an_ipv6_host_header_needs_its_brackets() {
        let check = |host: &str| {
            p(&format!(
                "{BASE}[[service.check]]\ntype = \"http\"\nhost = \"{host}\"\n\
                 [[service.server]]\naddress = \"2001:db8::11\"\n"
            ))
        };
        for good in [
            "[2001:db8::11]",
            "[2001:db8::11]:8080",
            "www.example.com:8080",
        ] {
            assert!(check(good).is_ok(), "{good}");
        }
        let e = check("2001:db8::11").unwrap_err().to_string();
        assert!(
            e.ends_with("host: an IPv6 address takes brackets in a Host header: [2001:db8::11]"),
            "{e}"
        );
        let e = check("[2001:db8::11").unwrap_err().to_string();
        assert!(
            e.contains("host `[2001:db8::11`: `[` without its `]`"),
            "{e}"
        );
        let e = check("[192.0.2.1]").unwrap_err().to_string();
        assert!(e.contains("brackets are for IPv6 addresses only"), "{e}");
    }

    #[test]
    fn malformed_ipv6_is_refused_with_line_and_reason() {
        let server = |addr: &str| err(&format!("{BASE}[[service.server]]\naddress = \"{addr}\"\n"));
        let e = server("2001:db8::zz");
        assert_eq!(
            e,
            "/etc/lvs/monitord.toml:5:11: address `2001:db8::zz`: not an IPv6 address: `z` is not a hexadecimal digit"
        );
        let e = server("[2001:db8::11:80");
        assert!(e.starts_with("/etc/lvs/monitord.toml:5:11: "), "{e}");
        assert!(
            e.ends_with("`[` without its `]`: write `[IPV6]` or `[IPV6]:PORT`"),
            "{e}"
        );
        let e = server("2001:db8::1::2");
        assert!(e.ends_with("`::` may appear only once"), "{e}");
        let e = server("fe80::1%eth0");
        assert!(
            e.contains("zone indexes (`%eth0`) are not supported"),
            "{e}"
        );
        let e = server("[2001:db8::11]:0");
        assert!(
            e.ends_with("the port `0` is not a number between 1 and 65535"),
            "{e}"
        );
        let e = err(&format!(
            "{BASE}[[service.server]]\naddress = \"[2001:db8::11]:81\"\nport = 82\n"
        ));
        assert_eq!(
            e,
            "/etc/lvs/monitord.toml:6:8: the port is given twice: in `address` ([2001:db8::11]:81) and as `port`"
        );
        let e = err("[[service]]\nvip = \"[2001:db8::100]:80\"\nport = 80\n");
        assert_eq!(
            e,
            "/etc/lvs/monitord.toml:2:7: vip `[2001:db8::100]:80`: a port does not belong here: give the address alone (2001:db8::100), the port apart"
        );
        let e = err(&format!("{BASE}sorry_server = \"[2001:db8::50]x\"\n"));
        assert!(
            e.contains(":4:16: sorry_server `[2001:db8::50]x`: `x` after `]`"),
            "{e}"
        );
        // Both servers are the same one, whichever way they are written.
        let e = err(&format!(
            "{BASE}[[service.server]]\naddress = \"[2001:db8::11]:80\"\n\
             [[service.server]]\naddress = \"2001:DB8::11\"\n"
        ));
        assert!(
            e.ends_with("server [2001:db8::11]:80 is listed twice"),
            "{e}"
        );
    }

    #[test]
    fn bad_intervals_are_refused() {
        let e = err("interval = -1\n");
        assert_eq!(
            e,
            "/etc/lvs/monitord.toml:1:12: interval must be greater than zero"
        );
        let e = err("interval = 0\n");
        assert!(e.contains("greater than zero"), "{e}");
        let e = err("timeout = \"5 parsecs\"\n");
        assert!(
            e.contains(":1:11: timeout: `5 parsecs` is not a duration"),
            "{e}"
        );
        let e = err(&format!(
            "{BASE}[[service.server]]\naddress = \"192.0.2.11\"\n[[service.server.check]]\ntype = \"tcp\"\ntimeout = \"1s\"\n"
        ));
        assert!(e.starts_with("/etc/lvs/monitord.toml:8:11: timeout (1000 ms) must be shorter than interval (1000 ms)"), "{e}");
        let e = err("fall = 0\n");
        assert!(e.contains(":1:8: fall must be between 1 and 1000"), "{e}");
    }

    #[test]
    fn keys_must_fit_the_check_type() {
        let e = err(&format!(
            "{BASE}[[service.server]]\naddress = \"192.0.2.11\"\n[[service.server.check]]\ntype = \"tcp\"\npath = \"/\"\n"
        ));
        assert!(
            e.contains(":8:8: `path` does not apply to a tcp check"),
            "{e}"
        );
        let e = err(&format!(
            "{BASE}[[service.server]]\naddress = \"192.0.2.11\"\n[[service.server.check]]\ntype = \"gopher\"\n"
        ));
        assert!(e.contains(":7:8: unknown check type \"gopher\""), "{e}");
        let e = err(&format!(
            "{BASE}[[service.server]]\naddress = \"192.0.2.11\"\n[[service.server.check]]\ntype = \"http\"\nverify = false\n"
        ));
        assert!(e.contains("`verify` does not apply to a http check"), "{e}");
    }

    #[test]
    fn check_specific_validation() {
        let srv = format!(
            "{BASE}[[service.server]]\naddress = \"192.0.2.11\"\n[[service.server.check]]\n"
        );
        assert!(err(&format!("{srv}type = \"dns\"\n")).contains("needs `name`"));
        assert!(
            err(&format!("{srv}type = \"dns\"\nname = \"a..b\"\n"))
                .contains("not a valid DNS name")
        );
        assert!(
            err(&format!(
                "{srv}type = \"dns\"\nname = \"a.b\"\nexpect = [\"::1\"]\n"
            ))
            .contains("cannot be the answer to a A query")
        );
        assert!(
            err(&format!("{srv}type = \"script\"\ncommand = \"check.sh\"\n"))
                .contains("absolute path")
        );
        assert!(
            err(&format!("{srv}type = \"http\"\nstatus = [99]\n")).contains("not an HTTP status")
        );
        assert!(
            err(&format!("{srv}type = \"http\"\nbody_sha256 = \"abc\"\n"))
                .contains("64 hexadecimal")
        );
        assert!(err(&format!("{srv}type = \"http\"\npath = \"x\"\n")).contains("path must start"));
        let c = p(&format!(
            "{srv}type = \"https\"\nverify = false\nhost = \"www.example.com\"\nstatus = [200, 204]\nbody_sha256 = \"{}\"\n",
            "ab".repeat(32)
        ))
        .unwrap();
        let CheckKind::Https(h) = &c.services[0].servers[0].checks[0].kind else {
            panic!()
        };
        assert!(!h.verify);
        assert_eq!(h.body_sha256, Some([0xab; 32]));
        assert_eq!(h.host.as_deref(), Some("www.example.com"));
    }

    #[test]
    fn services_and_servers_are_checked() {
        assert!(
            err(&format!("{BASE}{BASE}"))
                .contains(":5:7: service TCP 192.0.2.1:80 is listed twice")
        );
        let two = format!(
            "{BASE}[[service.server]]\naddress = \"192.0.2.11\"\n[[service.server]]\naddress = \"192.0.2.11\"\n"
        );
        assert!(err(&two).contains(":7:11: server 192.0.2.11:80 is listed twice"));
        assert!(err(&format!("{BASE}on_failure = \"panic\"\n")).contains("on_failure must be"));
        assert!(err(&format!("{BASE}protocol = \"sctp\"\n")).contains("protocol must be"));
        assert!(
            err("[[service]]\nvip = \"192.0.2.1\"\nport = 70000\n").contains(":3:8: port must be")
        );
        assert!(
            err(&format!(
                "{BASE}[[service.server]]\naddress = \"192.0.2.11\"\nweight = 70000\n"
            ))
            .contains("weight must be")
        );
        assert!(
            err(&format!("{BASE}quorum = 2\nhysteresis = 2\n"))
                .contains("hysteresis must be less than quorum")
        );
        assert!(err(&format!("{BASE}hysteresis = 1\n")).contains("hysteresis needs a quorum"));
        let c = p(&format!("{BASE}quorum = 2\nhysteresis = 1\non_failure = \"remove\"\nsorry_server = \"192.0.2.99\"\n")).unwrap();
        let s = &c.services[0];
        assert_eq!(
            s.quorum,
            Some(Quorum {
                min_up: 2,
                hysteresis: 1
            })
        );
        assert_eq!(s.on_failure, OnFailure::Remove);
        assert_eq!(s.sorry_server, Some("192.0.2.99:80".parse().unwrap()));
    }

    #[test]
    fn udp_default_check_is_icmp() {
        let c = p("[[service]]\nprotocol = \"udp\"\nvip = \"192.0.2.1\"\nport = 53\n[[service.server]]\naddress = \"192.0.2.11\"\n").unwrap();
        assert_eq!(c.services[0].servers[0].checks[0].kind, CheckKind::Icmp);
    }

    #[test]
    fn duration_text() {
        assert_eq!(parse_duration_text("800ms"), Some(0.8));
        assert_eq!(parse_duration_text("2m"), Some(120.0));
        assert_eq!(parse_duration_text(" 1.5s "), Some(1.5));
        assert_eq!(parse_duration_text("0.25"), Some(0.25));
        assert_eq!(parse_duration_text("s"), None);
        assert_eq!(parse_duration_text("1h"), None);
    }
}
