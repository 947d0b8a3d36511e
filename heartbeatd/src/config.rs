//! The daemon's configuration file (`/etc/lvs/heartbeatd.toml`, sample in
//! `etc/lvs-heartbeatd.toml`). Validated here, with `FILE[:LINE:COL]: reason` errors.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use lvs_common::config::{ConfigError, Source};
use serde::Deserialize;

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
    /// The address.
    pub addr: Ipv4Addr,
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
    bind: Option<SocketAddr>,
    #[serde(default)]
    peers: Vec<SocketAddr>,
    group: Option<Ipv4Addr>,
    port: Option<u16>,
    interface: Option<Ipv4Addr>,
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
    addr: String,
    interface: String,
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
        Some(u) => Some(match (u.group, u.bind) {
            (Some(group), None) => {
                if !group.is_multicast() {
                    return Err(src.error(format!("udp.group: {group} is not multicast")));
                }
                let Some(interface) = u.interface else {
                    return Err(src.error("udp.interface: needed with udp.group"));
                };
                if !u.peers.is_empty() {
                    return Err(src.error("udp: peers and group exclude each other"));
                }
                UdpConfig::Multicast {
                    group,
                    port: u.port.unwrap_or(DEFAULT_PORT),
                    interface,
                }
            }
            (None, Some(bind)) => {
                if u.peers.is_empty() {
                    return Err(src.error("udp.peers: at least one peer address is needed"));
                }
                if u.port.is_some() || u.interface.is_some() {
                    return Err(src.error("udp: port and interface go with group only"));
                }
                UdpConfig::Unicast {
                    bind,
                    peers: u.peers,
                }
            }
            _ => return Err(src.error("udp: give either bind + peers, or group + interface")),
        }),
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
        let (a, p) = v.addr.split_once('/').unwrap_or((&v.addr, "32"));
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| src.error(format!("vip.addr: {:?} is not an IPv4 address", v.addr)))?;
        let prefix: u8 = match p.parse() {
            Ok(p) if p <= 32 => p,
            _ => return Err(src.error(format!("vip.addr: bad prefix length in {:?}", v.addr))),
        };
        if v.interface.is_empty() {
            return Err(src.error(format!("vip {}: interface is empty", v.addr)));
        }
        if vips.iter().any(|o: &Vip| o.addr == addr) {
            return Err(src.error(format!("vip {addr}: listed twice")));
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
