//! The daemon's configuration file (`/etc/lvs/heartbeatd.toml`, sample in
//! `etc/lvs-heartbeatd.toml`). Validated here, with `FILE[:LINE:COL]: reason` errors.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::path::{Path, PathBuf};

use lvs_common::config::{ConfigError, Source};
use serde::Deserialize;
use toml::Spanned;

use crate::Medium;
use crate::fsm::{DEFAULT_HOLD_DOWN_MS, FsmConfig, Timers};
use crate::serial::{DEFAULT_BAUD, baud_rate};
use crate::udp::{DEFAULT_PORT, UdpConfig};
use crate::wire::AuthKey;

/// Default epoch file.
pub const DEFAULT_EPOCH_FILE: &str = "/var/lib/lvs/heartbeatd.epoch";
/// Default gratuitous ARP burst: keepalived's 5 ...
pub const DEFAULT_GARP_COUNT: u32 = 5;
/// ... 200 ms apart.
pub const DEFAULT_GARP_INTERVAL_MS: u64 = 200;

/// One virtual address this node owns while master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vip {
    /// The address: IPv4, or a global (or unique local) IPv6 unicast address.
    pub addr: IpAddr,
    /// Its prefix length.
    pub prefix: u8,
    /// The interface it goes on.
    pub interface: String,
}

impl std::fmt::Display for Vip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The serial line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serial {
    /// The tty.
    pub device: PathBuf,
    /// Its baud rate.
    pub baud: u32,
}

/// The gratuitous ARP burst after a takeover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Garp {
    /// Frames (a request and a reply each) per address.
    pub count: u32,
    /// Between two of them.
    pub interval_ms: u64,
    /// A new burst this often while master; 0: none.
    pub refresh_ms: u64,
}

impl Config {
    /// This node's boot generation (`lvs_common::authdgram::Boot`): beside the epoch file,
    /// `.generation` for its extension.
    pub fn generation_file(&self) -> PathBuf {
        self.epoch_file.with_extension("generation")
    }

    /// The highest generation accepted from each peer: beside the epoch file, `.peers`
    /// for its extension.
    pub fn peers_file(&self) -> PathBuf {
        self.epoch_file.with_extension("peers")
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The state machine's part (node id, priority, timers, media, recovery mode).
    pub fsm: FsmConfig,
    /// The peers' node ids.
    pub peers: Vec<u32>,
    /// The shared key file.
    pub auth_key_file: PathBuf,
    /// The mastership epoch file.
    pub epoch_file: PathBuf,
    /// The director's control socket; `None`: `<rundir>/director.sock`.
    pub director_socket: Option<PathBuf>,
    /// UDP heartbeats, if configured.
    pub udp: Option<UdpConfig>,
    /// The serial line, if configured.
    pub serial: Option<Serial>,
    /// The virtual addresses.
    pub vips: Vec<Vip>,
    /// The TUN device the virtual addresses live on (see [`crate::vipdev`]).
    pub vip_device: String,
    /// Whether a watched interface without carrier is a local fault (see [`crate::linkwatch`]).
    pub watch_links: bool,
    /// Gratuitous ARP.
    pub garp: Garp,
    /// `[alert]` (syslog, mail, notify command on master/backup/fault).
    pub alert: lvs_alert::AlertConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    /// `"failover"` here (crate::settings chose this parser by it).
    #[allow(dead_code)]
    mode: Option<String>,
    node_id: u32,
    #[serde(default = "default_priority")]
    priority: u16,
    peers: Vec<u32>,
    auth_key_file: PathBuf,
    epoch_file: Option<PathBuf>,
    director_socket: Option<PathBuf>,
    #[serde(default)]
    auto_failback: bool,
    hold_down_ms: Option<u64>,
    #[serde(default)]
    timers: FileTimers,
    udp: Option<FileUdp>,
    serial: Option<FileSerial>,
    #[serde(default)]
    garp: FileGarp,
    #[serde(default)]
    vip: Vec<FileVip>,
    vip_device: Option<String>,
    watch_links: Option<bool>,
    alert: Option<lvs_alert::AlertConfig>,
}

fn default_priority() -> u16 {
    100
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTimers {
    keepalive_ms: Option<u64>,
    deadtime_ms: Option<u64>,
    warntime_ms: Option<u64>,
    initdead_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUdp {
    bind: Option<Spanned<String>>,
    #[serde(default)]
    peers: Vec<Spanned<String>>,
    group: Option<Spanned<String>>,
    port: Option<u16>,
    interface: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSerial {
    device: PathBuf,
    baud: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGarp {
    count: Option<u32>,
    interval_ms: Option<u64>,
    refresh_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileVip {
    addr: Spanned<String>,
    interface: String,
}

/// `udp`: unicast (`bind` + `peers`, either family), or one group (`group` + `interface`: an
/// IPv4 group and a local IPv4 address, or an IPv6 group and an interface name).
fn udp_config(src: &Source, u: FileUdp) -> Result<UdpConfig, ConfigError> {
    match (u.group, u.bind) {
        (Some(group), None) => {
            let gspan = group.span();
            let group_text = group.into_inner();
            let group: IpAddr = group_text.parse().map_err(|_| {
                src.error_at(
                    gspan.clone(),
                    format!("udp.group: {group_text:?} is not an IP address"),
                )
            })?;
            if !group.is_multicast() {
                return Err(src.error_at(gspan, format!("udp.group: {group} is not multicast")));
            }
            let Some(interface) = u.interface else {
                return Err(src.error_at(gspan, "udp.interface: needed with udp.group"));
            };
            if let Some(p) = u.peers.first() {
                return Err(src.error_at(p.span(), "udp: peers and group exclude each other"));
            }
            let ispan = interface.span();
            let interface = interface.into_inner();
            let port = u.port.unwrap_or(DEFAULT_PORT);
            match group {
                IpAddr::V4(group) => {
                    let interface: Ipv4Addr = interface.parse().map_err(|_| {
                        src.error_at(
                            ispan,
                            format!(
                                "udp.interface: {interface:?} is not an IPv4 address (with an IPv4 group, give a local address of the interface)"
                            ),
                        )
                    })?;
                    Ok(UdpConfig::Multicast {
                        group,
                        port,
                        interface,
                    })
                }
                IpAddr::V6(group) => {
                    if !crate::vipdev::valid_name(&interface) {
                        return Err(src.error_at(
                            ispan,
                            format!(
                                "udp.interface: {interface:?} is not an interface name (with an IPv6 group, name the interface to join it on, e.g. \"eth0\")"
                            ),
                        ));
                    }
                    if multicast_scope(group) < 2 {
                        return Err(src.error_at(
                            gspan,
                            format!(
                                "udp.group: {group} has interface-local scope; use a link-local (ff02::/16) or site group"
                            ),
                        ));
                    }
                    Ok(UdpConfig::Multicast6 {
                        group,
                        port,
                        interface,
                    })
                }
            }
        }
        (None, Some(bind)) => {
            if u.peers.is_empty() {
                return Err(src.error_at(
                    bind.span(),
                    "udp.peers: at least one peer address is needed",
                ));
            }
            if u.port.is_some() || u.interface.is_some() {
                return Err(src.error_at(bind.span(), "udp: port and interface go with group only"));
            }
            let bind_addr = socket_addr(bind.get_ref())
                .map_err(|e| src.error_at(bind.span(), format!("udp.bind: {e}")))?;
            let mut peers = Vec::new();
            for p in &u.peers {
                let a = socket_addr(p.get_ref())
                    .map_err(|e| src.error_at(p.span(), format!("udp.peers: {e}")))?;
                if a.is_ipv4() != bind_addr.is_ipv4() {
                    return Err(src.error_at(
                        p.span(),
                        format!(
                            "udp.peers: {} is {} but udp.bind {} is {}; one socket speaks one family",
                            p.get_ref(),
                            family(&a),
                            bind.get_ref(),
                            family(&bind_addr)
                        ),
                    ));
                }
                peers.push(a);
            }
            Ok(UdpConfig::Unicast {
                bind: bind_addr,
                peers,
            })
        }
        (Some(g), Some(_)) => Err(src.error_at(
            g.span(),
            "udp: give either bind + peers, or group + interface",
        )),
        (None, None) => Err(src.error("udp: give either bind + peers, or group + interface")),
    }
}

fn family(a: &SocketAddr) -> &'static str {
    if a.is_ipv4() { "IPv4" } else { "IPv6" }
}

/// The scope field of an IPv6 multicast address (RFC 4291 §2.7): 1 interface, 2 link, 5
/// site, 8 organisation, 14 global.
fn multicast_scope(group: Ipv6Addr) -> u8 {
    group.octets()[1] & 0x0f
}

/// `ADDRESS:PORT` as the configuration writes it: `192.0.2.1:694`, `[2001:db8::1]:694`, or
/// for a link-local address its interface as the scope, `[fe80::1%eth0]:694` (a name, or an
/// interface index); a link-local address without one is refused, since it means nothing
/// without its link. The name is resolved now, in this network namespace.
fn socket_addr(text: &str) -> Result<SocketAddr, String> {
    let hint = "an address and port, as 192.0.2.1:694 or [2001:db8::1]:694";
    if let Some(rest) = text.strip_prefix('[')
        && let Some((inside, port)) = rest.split_once("]:")
        && let Some((ip, scope)) = inside.split_once('%')
    {
        let ip: Ipv6Addr = ip.parse().map_err(|_| format!("{text:?} is not {hint}"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{text:?}: bad port {port:?}"))?;
        if !ip.is_unicast_link_local() {
            return Err(format!(
                "{text:?}: a scope (%{scope}) goes with a link-local address (fe80::/10) only"
            ));
        }
        let index = match scope.parse::<u32>() {
            Ok(i) if i > 0 => i,
            _ => nix::net::if_::if_nametoindex(scope).map_err(|e| {
                format!("{text:?}: no interface {scope:?} here for the scope ({e})")
            })?,
        };
        return Ok(SocketAddr::V6(SocketAddrV6::new(ip, port, 0, index)));
    }
    let a: SocketAddr = text
        .parse()
        .map_err(|_| format!("{text:?} is not {hint}"))?;
    if let SocketAddr::V6(v6) = a
        && v6.ip().is_unicast_link_local()
        && v6.scope_id() == 0
    {
        return Err(format!(
            "{text:?}: a link-local address needs its interface, as [{}%eth0]:{}",
            v6.ip(),
            v6.port()
        ));
    }
    Ok(a)
}

/// A `[[vip]]` address: `ADDRESS[/PREFIX]`, IPv4 or IPv6. An IPv6 virtual address must be a
/// global or unique-local unicast address: a link-local one cannot move between hosts'
/// interfaces, and multicast, loopback or unspecified ones are no host's to take over.
fn vip_addr(text: &str) -> Result<(IpAddr, u8), String> {
    let (a, p) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let addr: IpAddr = a
        .parse()
        .map_err(|_| format!("vip.addr: {text:?} is not an IPv4 or IPv6 address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match p {
        None => max,
        Some(p) => match p.parse::<u8>() {
            Ok(p) if p <= max => p,
            _ => return Err(format!("vip.addr: bad prefix length in {text:?}")),
        },
    };
    if let IpAddr::V6(v6) = addr {
        let why = if v6.is_multicast() {
            Some("a multicast address")
        } else if v6.is_unspecified() || v6.is_loopback() {
            Some("not a unicast address of a link")
        } else if v6.is_unicast_link_local() {
            Some("link-local (fe80::/10): it cannot move to another host")
        } else if v6.to_ipv4_mapped().is_some() {
            Some("an IPv4-mapped address: write the IPv4 address")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(format!("vip.addr: {text:?} is {why}"));
        }
    }
    Ok((addr, prefix))
}

/// Reads and validates `path`: the loader for [`lvs_common::run()`]. A configuration file is
/// required (there is no sensible default node).
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    match path {
        Some(path) => parse(&Source::read(path)?),
        None => Err(ConfigError::Invalid {
            path: PathBuf::from("(none)"),
            location: None,
            reason: "lvs-heartbeatd needs a configuration file (-c FILE)".into(),
        }),
    }
}

/// Validates text already read (`path` only names it in messages).
pub fn parse_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
    parse(&Source::new(path, text))
}

/// Parses and validates a [`Source`].
pub fn parse(src: &Source) -> Result<Config, ConfigError> {
    let f: FileConfig = src.parse()?;
    let mut timers = Timers::default();
    if let Some(v) = f.timers.keepalive_ms {
        timers.keepalive_ms = v;
    }
    if let Some(v) = f.timers.deadtime_ms {
        timers.deadtime_ms = v;
    }
    if let Some(v) = f.timers.warntime_ms {
        timers.warntime_ms = v;
    }
    if let Some(v) = f.timers.initdead_ms {
        timers.initdead_ms = v;
    }
    if f.peers.is_empty() {
        return Err(src.error("peers: at least one peer node id is needed"));
    }
    if f.peers.contains(&f.node_id) {
        return Err(src.error("peers: must not contain our own node_id"));
    }
    if let Err(e) = AuthKey::from_file(&f.auth_key_file, "heartbeat") {
        return Err(src.error(format!("auth_key_file: {e}")));
    }
    let udp = match f.udp {
        None => None,
        Some(u) => Some(udp_config(src, u)?),
    };
    let serial = match f.serial {
        None => None,
        Some(s) => {
            let baud = s.baud.unwrap_or(DEFAULT_BAUD);
            if baud_rate(baud).is_none() {
                return Err(src.error(format!("serial.baud: {baud} is not a supported rate")));
            }
            Some(Serial {
                device: s.device,
                baud,
            })
        }
    };
    let mut media = Vec::new();
    if udp.is_some() {
        media.push(Medium::Udp);
    }
    if serial.is_some() {
        media.push(Medium::Serial);
    }
    let fsm = FsmConfig {
        node_id: f.node_id,
        priority: f.priority,
        timers,
        media,
        auto_failback: f.auto_failback,
        hold_down_ms: f.hold_down_ms.unwrap_or(DEFAULT_HOLD_DOWN_MS),
    };
    fsm.validate().map_err(|e| src.error(e.to_string()))?;
    let mut vips = Vec::new();
    for v in f.vip {
        let span = v.addr.span();
        let text = v.addr.into_inner();
        let (addr, prefix) = vip_addr(&text).map_err(|e| src.error_at(span.clone(), e))?;
        if v.interface.is_empty() {
            return Err(src.error_at(span, format!("vip {text}: interface is empty")));
        }
        if vips.iter().any(|o: &Vip| o.addr == addr) {
            return Err(src.error_at(span, format!("vip {addr}: listed twice")));
        }
        vips.push(Vip {
            addr,
            prefix,
            interface: v.interface,
        });
    }
    let garp = Garp {
        count: f.garp.count.unwrap_or(DEFAULT_GARP_COUNT),
        interval_ms: f.garp.interval_ms.unwrap_or(DEFAULT_GARP_INTERVAL_MS),
        refresh_ms: f.garp.refresh_ms.unwrap_or(0),
    };
    if garp.count > 100 || (garp.count > 1 && garp.interval_ms == 0) {
        return Err(src.error("garp: count at most 100, interval_ms above 0"));
    }
    if garp.refresh_ms != 0 && garp.refresh_ms < 1000 {
        return Err(src.error("garp.refresh_ms: 0 (off) or at least 1000"));
    }
    let vip_device = f
        .vip_device
        .unwrap_or_else(|| crate::vipdev::DEFAULT_NAME.to_owned());
    if !crate::vipdev::valid_name(&vip_device) {
        return Err(src.error(format!(
            "vip_device: {vip_device:?} is not an interface name (1 to 15 characters, no '/', ':' or space)"
        )));
    }
    if vips.iter().any(|v| v.interface == vip_device) {
        return Err(src.error(format!(
            "vip.interface: {vip_device} is the VIP device itself; name the physical interface"
        )));
    }
    let alert = match f.alert {
        Some(a) => {
            if let Err(problems) = a.validate() {
                let reason = problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(src.error(reason));
            }
            a
        }
        None => lvs_alert::AlertConfig::default(),
    };
    Ok(Config {
        fsm,
        peers: f.peers,
        auth_key_file: f.auth_key_file,
        epoch_file: f
            .epoch_file
            .unwrap_or_else(|| PathBuf::from(DEFAULT_EPOCH_FILE)),
        director_socket: f.director_socket,
        udp,
        serial,
        vips,
        vip_device,
        watch_links: f.watch_links.unwrap_or(true),
        garp,
        alert,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration with `udp` and `vips` as given, and its key file.
    fn conf(dir: &Path, udp: &str, vips: &str) -> String {
        let key = dir.join("key");
        if !key.exists() {
            std::fs::write(&key, [7u8; 32]).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        format!(
            "node_id = 1\npeers = [2]\nauth_key_file = \"{}\"\n[udp]\n{udp}\n{vips}",
            key.display()
        )
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hbconf-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn parse_conf(name: &str, udp: &str, vips: &str) -> Result<Config, String> {
        let d = dir(name);
        let r = parse_str(&conf(&d, udp, vips), Path::new("hb.toml")).map_err(|e| e.to_string());
        let _ = std::fs::remove_dir_all(&d);
        r
    }

    const UDP4: &str = "bind = \"10.0.0.1:694\"\npeers = [\"10.0.0.2:694\"]";

    #[test]
    fn ipv6_unicast_peers_and_vips() {
        let c = parse_conf(
            "v6u",
            "bind = \"[2001:db8::1]:694\"\npeers = [\"[2001:db8::2]:694\"]",
            "[[vip]]\naddr = \"2001:db8:1::100\"\ninterface = \"eth0\"\n\
             [[vip]]\naddr = \"10.0.0.100/24\"\ninterface = \"eth0\"\n",
        )
        .unwrap();
        assert_eq!(
            c.udp,
            Some(UdpConfig::Unicast {
                bind: "[2001:db8::1]:694".parse().unwrap(),
                peers: vec!["[2001:db8::2]:694".parse().unwrap()],
            })
        );
        assert_eq!(c.vips[0].addr, "2001:db8:1::100".parse::<IpAddr>().unwrap());
        assert_eq!(c.vips[0].prefix, 128);
        assert_eq!(c.vips[0].to_string(), "2001:db8:1::100/128");
        assert_eq!(c.vips[1].prefix, 24);
    }

    #[test]
    fn a_link_local_peer_takes_its_interface_as_scope() {
        let lo = nix::net::if_::if_nametoindex("lo").unwrap();
        let c = parse_conf(
            "ll",
            "bind = \"[fe80::1%lo]:694\"\npeers = [\"[fe80::2%lo]:694\", \"[fe80::3%1]:694\"]",
            "",
        )
        .unwrap();
        let Some(UdpConfig::Unicast { bind, peers }) = c.udp else {
            panic!("not unicast");
        };
        let SocketAddr::V6(b) = bind else {
            panic!("not IPv6")
        };
        assert_eq!(b.scope_id(), lo);
        assert_eq!(
            peers[1],
            SocketAddr::V6(SocketAddrV6::new("fe80::3".parse().unwrap(), 694, 0, 1))
        );
    }

    #[test]
    fn ipv6_groups() {
        let c = parse_conf(
            "g6",
            "group = \"ff02::694\"\ninterface = \"eth0\"\nport = 6940",
            "",
        )
        .unwrap();
        assert_eq!(
            c.udp,
            Some(UdpConfig::Multicast6 {
                group: "ff02::694".parse().unwrap(),
                port: 6940,
                interface: "eth0".into(),
            })
        );
        let c = parse_conf("g6s", "group = \"ff05::694\"\ninterface = \"bond0\"", "").unwrap();
        assert!(matches!(
            c.udp,
            Some(UdpConfig::Multicast6 { port: 694, .. })
        ));
        // IPv4 groups as before.
        let c = parse_conf("g4", "group = \"239.0.0.18\"\ninterface = \"10.0.0.1\"", "").unwrap();
        assert!(matches!(c.udp, Some(UdpConfig::Multicast { .. })));
    }

    #[test]
    fn the_sample_file_is_valid() {
        let d = dir("sample");
        let _ = conf(&d, "", "");
        let text = include_str!("../../etc/lvs-heartbeatd.toml")
            .replace("/etc/lvs/heartbeat.key", d.join("key").to_str().unwrap());
        let c = parse_str(&text, Path::new("etc/lvs-heartbeatd.toml"));
        let _ = std::fs::remove_dir_all(&d);
        let c = c.unwrap();
        assert!(c.vips.iter().any(|v| v.addr.is_ipv6()));
    }

    /// Each mistake is refused with the file, the line of the value and a reason.
    #[test]
    fn mistakes_name_file_line_and_reason() {
        // Lines: 1-3 ids and key, 4 [udp], 5 and 6 the udp lines, then the vips.
        for (udp, vips, line, reason) in [
            (
                "bind = \"[fe80::1]:694\"\npeers = [\"[fe80::2%lo]:694\"]",
                "",
                5,
                "a link-local address needs its interface",
            ),
            (
                "bind = \"[2001:db8::1]:694\"\npeers = [\"10.0.0.2:694\"]",
                "",
                6,
                "one socket speaks one family",
            ),
            (
                "bind = \"[2001:db8::1]:694\"\npeers = [\"[2001:db8::2%nosuchif0]:694\"]",
                "",
                6,
                "a scope (%nosuchif0) goes with a link-local address",
            ),
            (
                "bind = \"[fe80::1%nosuchif0]:694\"\npeers = [\"[fe80::2%lo]:694\"]",
                "",
                5,
                "no interface \"nosuchif0\"",
            ),
            (
                "bind = \"2001:db8::1:694\"\npeers = [\"[2001:db8::2]:694\"]",
                "",
                5,
                "is not an address and port",
            ),
            (
                "group = \"ff02::694\"\ninterface = \"10.0.0.1/24\"",
                "",
                6,
                "is not an interface name",
            ),
            (
                "group = \"ff01::694\"\ninterface = \"eth0\"",
                "",
                5,
                "interface-local scope",
            ),
            (
                "group = \"2001:db8::694\"\ninterface = \"eth0\"",
                "",
                5,
                "is not multicast",
            ),
            (
                "group = \"239.0.0.18\"\ninterface = \"eth0\"",
                "",
                6,
                "is not an IPv4 address",
            ),
            (
                UDP4,
                "[[vip]]\naddr = \"fe80::100\"\ninterface = \"eth0\"\n",
                8,
                "link-local (fe80::/10)",
            ),
            (
                UDP4,
                "[[vip]]\naddr = \"2001:db8::100/129\"\ninterface = \"eth0\"\n",
                8,
                "bad prefix length",
            ),
            (
                UDP4,
                "[[vip]]\naddr = \"ff05::1\"\ninterface = \"eth0\"\n",
                8,
                "a multicast address",
            ),
            (
                UDP4,
                "[[vip]]\naddr = \"10.0.0.300/24\"\ninterface = \"eth0\"\n",
                8,
                "is not an IPv4 or IPv6 address",
            ),
            (
                UDP4,
                "[[vip]]\naddr = \"2001:db8::1\"\ninterface = \"eth0\"\n\
                 [[vip]]\naddr = \"2001:db8:0::1/64\"\ninterface = \"eth1\"\n",
                11,
                "listed twice",
            ),
        ] {
            let e = parse_conf("bad", udp, vips).unwrap_err();
            assert!(e.starts_with(&format!("hb.toml:{line}:")), "{e}");
            assert!(e.contains(reason), "{e}");
        }
    }
}
