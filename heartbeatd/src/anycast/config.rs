//! The `mode = "anycast"` configuration (sample in `etc/lvs-heartbeatd.toml`, at its end).
//! Validated here, with `FILE[:LINE:COL]: reason` errors.

use std::net::IpAddr;
use std::path::PathBuf;

use lvs_common::config::{ConfigError, Source};
use serde::Deserialize;
use toml::Spanned;

/// The only routing daemon driven so far (docs/ACTIVE-ACTIVE.md says why).
pub const DAEMON_BIRD: &str = "bird";
/// BIRD's control socket where Debian's `bird2` puts it.
pub const DEFAULT_BIRD_SOCKET: &str = "/run/bird/bird.ctl";
/// How often the director, its services and the routing daemon are checked.
pub const DEFAULT_CHECK_INTERVAL_MS: u64 = 200;

/// One virtual address announced while this director can serve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnycastVip {
    /// The address; announced as /32 (IPv4) or /128 (IPv6).
    pub addr: IpAddr,
    /// The routing daemon's protocol that carries its route (a BIRD `static` protocol holding
    /// `route ADDR/32 via "<vip_device>"`): enabled to announce, disabled to withdraw.
    pub protocol: String,
}

impl AnycastVip {
    /// `addr/32` or `addr/128`.
    pub fn prefix(&self) -> String {
        let len = if self.addr.is_ipv4() { 32 } else { 128 };
        format!("{}/{len}", self.addr)
    }
}

/// The validated anycast configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct AnycastConfig {
    /// This node's id (`node-<id>` in the state and on the console).
    pub node_id: u32,
    /// The director's control socket; `None`: `<rundir>/director.sock`.
    pub director_socket: Option<PathBuf>,
    /// The TUN device the virtual addresses live on (they die with the process, and so do the
    /// routing daemon's routes through it).
    pub vip_device: String,
    /// Between two checks.
    pub check_interval_ms: u64,
    /// The routing daemon: `bird`.
    pub daemon: String,
    /// Its control socket.
    pub control_socket: PathBuf,
    /// The BGP sessions (BIRD protocol names) to watch; empty: every BGP protocol.
    pub sessions: Vec<String>,
    /// The virtual addresses.
    pub vips: Vec<AnycastVip>,
    /// `[alert]` (syslog, mail, notify command on announce and withdraw).
    pub alert: lvs_alert::AlertConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAnycast {
    #[allow(dead_code)] // read by crate::settings to choose this parser
    mode: String,
    node_id: Option<u32>,
    director_socket: Option<PathBuf>,
    vip_device: Option<String>,
    check_interval_ms: Option<Spanned<u64>>,
    bgp: Spanned<FileBgp>,
    #[serde(default)]
    vip: Vec<FileVip>,
    alert: Option<lvs_alert::AlertConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBgp {
    daemon: Option<Spanned<String>>,
    control_socket: Option<Spanned<PathBuf>>,
    #[serde(default)]
    sessions: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileVip {
    addr: Spanned<String>,
    protocol: Option<Spanned<String>>,
}

/// The protocol name a VIP gets when the file names none: `vip_` and the address with every
/// `.` and `:` as `_` (`vip_192_0_2_10`, `vip_2001_db8__10`).
pub fn default_protocol(addr: IpAddr) -> String {
    let text: String = addr
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("vip_{text}")
}

/// A BIRD symbol: a letter or `_`, then letters, digits and `_` (at most 64, BIRD's limit).
pub fn valid_symbol(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

/// A virtual address to announce: one host, IPv4 or a global (or unique local) IPv6 unicast
/// address. `/32` or `/128` may be written; a shorter prefix is refused (a director announces
/// the addresses it serves, not a subnet).
fn vip_addr(text: &str) -> Result<IpAddr, String> {
    let (a, p) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let addr: IpAddr = a
        .parse()
        .map_err(|_| format!("vip.addr: {text:?} is not an IPv4 or IPv6 address"))?;
    let host = if addr.is_ipv4() { "32" } else { "128" };
    if let Some(p) = p
        && p != host
    {
        return Err(format!(
            "vip.addr: {text:?}: an anycast VIP is announced as one host (/{host}); write the address alone"
        ));
    }
    let unusable = match addr {
        IpAddr::V4(v4) => v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => {
            v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || v6.is_unicast_link_local()
                || v6.to_ipv4_mapped().is_some()
        }
    } || addr.is_loopback();
    if unusable {
        return Err(format!(
            "vip.addr: {text:?} is not a unicast address that routers can carry"
        ));
    }
    Ok(addr)
}

/// Parses and validates an anycast file.
pub fn parse(src: &Source) -> Result<AnycastConfig, ConfigError> {
    let f: FileAnycast = src.parse()?;
    let bgp_span = f.bgp.span();
    let bgp = f.bgp.into_inner();
    let daemon = match bgp.daemon {
        None => DAEMON_BIRD.to_owned(),
        Some(d) if d.get_ref() == DAEMON_BIRD => d.into_inner(),
        Some(d) => {
            return Err(src.error_at(
                d.span(),
                format!(
                    "bgp.daemon: {:?} is not supported; lvs-heartbeatd drives \"bird\" (BIRD 2, over its control socket)",
                    d.get_ref()
                ),
            ));
        }
    };
    let control_socket = match bgp.control_socket {
        None => PathBuf::from(DEFAULT_BIRD_SOCKET),
        Some(s) if s.get_ref().is_absolute() => s.into_inner(),
        Some(s) => {
            return Err(src.error_at(
                s.span(),
                format!(
                    "bgp.control_socket: {} is not an absolute path",
                    s.get_ref().display()
                ),
            ));
        }
    };
    let mut sessions = Vec::new();
    for s in bgp.sessions {
        if !valid_symbol(s.get_ref()) {
            return Err(src.error_at(
                s.span(),
                format!(
                    "bgp.sessions: {:?} is not a BIRD protocol name (a letter or _, then letters, digits, _)",
                    s.get_ref()
                ),
            ));
        }
        sessions.push(s.into_inner());
    }
    let check_interval_ms = match f.check_interval_ms {
        None => DEFAULT_CHECK_INTERVAL_MS,
        Some(v) if (50..=10_000).contains(v.get_ref()) => v.into_inner(),
        Some(v) => {
            return Err(src.error_at(
                v.span(),
                "check_interval_ms: between 50 and 10000 (a withdrawal waits at most this long)",
            ));
        }
    };
    let mut vips: Vec<AnycastVip> = Vec::new();
    for v in f.vip {
        let span = v.addr.span();
        let addr = vip_addr(v.addr.get_ref()).map_err(|e| src.error_at(span.clone(), e))?;
        let protocol = match v.protocol {
            None => default_protocol(addr),
            Some(p) if valid_symbol(p.get_ref()) => p.into_inner(),
            Some(p) => {
                return Err(src.error_at(
                    p.span(),
                    format!(
                        "vip.protocol: {:?} is not a BIRD protocol name (a letter or _, then letters, digits, _)",
                        p.get_ref()
                    ),
                ));
            }
        };
        if vips.iter().any(|o| o.addr == addr) {
            return Err(src.error_at(span, format!("vip {addr}: listed twice")));
        }
        if let Some(o) = vips.iter().find(|o| o.protocol == protocol) {
            return Err(src.error_at(
                span,
                format!(
                    "vip {addr}: protocol {protocol} already carries {}; one static protocol per VIP, so that each is withdrawn alone",
                    o.addr
                ),
            ));
        }
        if sessions.contains(&protocol) {
            return Err(src.error_at(
                span,
                format!("vip {addr}: protocol {protocol} is listed as a BGP session too"),
            ));
        }
        vips.push(AnycastVip { addr, protocol });
    }
    if vips.is_empty() {
        return Err(src.error_at(
            bgp_span,
            "vip: an anycast director needs at least one [[vip]] to announce",
        ));
    }
    let vip_device = f
        .vip_device
        .unwrap_or_else(|| crate::vipdev::DEFAULT_NAME.to_owned());
    if !crate::vipdev::valid_name(&vip_device) {
        return Err(src.error(format!(
            "vip_device: {vip_device:?} is not an interface name (1 to 15 characters, no '/', ':' or space)"
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
    Ok(AnycastConfig {
        node_id: f.node_id.unwrap_or(1),
        director_socket: f.director_socket,
        vip_device,
        check_interval_ms,
        daemon,
        control_socket,
        sessions,
        vips,
        alert,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse_text(text: &str) -> Result<AnycastConfig, String> {
        parse(&Source::new(Path::new("hb.toml"), text)).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_names() {
        let c = parse_text(
            "mode = \"anycast\"\n[bgp]\nsessions = [\"upstream\"]\n\
             [[vip]]\naddr = \"192.0.2.10\"\n[[vip]]\naddr = \"2001:db8::10/128\"\nprotocol = \"web6\"\n",
        )
        .unwrap();
        assert_eq!(c.daemon, "bird");
        assert_eq!(c.control_socket, PathBuf::from(DEFAULT_BIRD_SOCKET));
        assert_eq!(c.check_interval_ms, DEFAULT_CHECK_INTERVAL_MS);
        assert_eq!(c.vips[0].protocol, "vip_192_0_2_10");
        assert_eq!(c.vips[0].prefix(), "192.0.2.10/32");
        assert_eq!(c.vips[1].protocol, "web6");
        assert_eq!(c.vips[1].prefix(), "2001:db8::10/128");
        assert_eq!(
            default_protocol("2001:db8::10".parse().unwrap()),
            "vip_2001_db8__10"
        );
    }

    /// The commented anycast block at the end of the sample file, uncommented, is valid.
    #[test]
    fn the_sample_block_is_valid() {
        let sample = include_str!("../../../etc/lvs-heartbeatd.toml");
        let block = sample
            .split_once("# mode = \"anycast\"\n")
            .expect("the sample has an anycast block")
            .1;
        let text: String = std::iter::once("mode = \"anycast\"")
            .chain(block.lines().map(|l| l.strip_prefix("# ").unwrap_or("")))
            .map(|l| format!("{l}\n"))
            .collect();
        let c = parse_text(&text).unwrap();
        assert_eq!(c.vips.len(), 2);
        assert_eq!(c.vips[0].protocol, "vip_203_0_113_100");
        assert_eq!(c.vips[1].prefix(), "2001:db8::100/128");
        assert_eq!(c.sessions, ["upstream"]);
        // The BIRD sample names the same protocol.
        assert!(
            include_str!("../../../etc/bird/lvs-anycast.conf")
                .contains("protocol static vip_203_0_113_100 {")
        );
    }

    /// Each mistake is refused with the file, the line of the value and a reason.
    #[test]
    fn mistakes_name_file_line_and_reason() {
        let head = "mode = \"anycast\"\n";
        for (body, line, reason) in [
            ("[bgp]\ndaemon = \"exabgp\"\n", 3, "is not supported"),
            (
                "[bgp]\ncontrol_socket = \"bird.ctl\"\n",
                3,
                "not an absolute path",
            ),
            (
                "[bgp]\nsessions = [\"up-stream\"]\n",
                3,
                "not a BIRD protocol",
            ),
            ("[bgp]\n", 2, "at least one [[vip]]"),
            (
                "[bgp]\n[[vip]]\naddr = \"192.0.2.0/24\"\n",
                4,
                "announced as one host",
            ),
            (
                "[bgp]\n[[vip]]\naddr = \"fe80::1\"\n",
                4,
                "not a unicast address",
            ),
            (
                "[bgp]\n[[vip]]\naddr = \"192.0.2.1\"\nprotocol = \"1x\"\n",
                5,
                "not a BIRD protocol",
            ),
            (
                "[bgp]\n[[vip]]\naddr = \"192.0.2.1\"\n[[vip]]\naddr = \"192.0.2.1/32\"\n",
                6,
                "listed twice",
            ),
            (
                "[bgp]\n[[vip]]\naddr = \"192.0.2.1\"\nprotocol = \"p\"\n[[vip]]\naddr = \"192.0.2.2\"\nprotocol = \"p\"\n",
                7,
                "one static protocol per VIP",
            ),
            (
                "check_interval_ms = 5\n[bgp]\n[[vip]]\naddr = \"192.0.2.1\"\n",
                2,
                "between 50 and 10000",
            ),
            (
                "[bgp]\n[[vip]]\naddr = \"192.0.2.1\"\ninterface = \"eth0\"\n",
                5,
                "unknown field `interface`",
            ),
        ] {
            let e = parse_text(&format!("{head}{body}")).unwrap_err();
            assert!(e.starts_with(&format!("hb.toml:{line}:")), "{body}: {e}");
            assert!(e.contains(reason), "{body}: {e}");
        }
    }
}
