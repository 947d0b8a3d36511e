//! Firewall marks for `-f MARK` services, given by the director itself.
//!
//! IPVS finds a firewall-mark service by the mark netfilter put on the packet (`iptables -t
//! mangle ... -j MARK`, `nft ... meta mark set`). The director reads packets from its
//! AF_PACKET rings before netfilter sees them, so no such mark exists yet: the director
//! classifies packets itself with the `[[fwmark]]` rules of its configuration, which say what
//! the `MARK` rules of an IPVS director say:
//!
//! ```toml
//! [[fwmark]]
//! mark = 1
//! match = [{ proto = "tcp", daddr = "192.0.2.1", dport = [80, 443] }]
//! ```
//!
//! A packet to a virtual service by address (`-t`/`-u`) never gets here, as in IPVS, which
//! looks a service up by address first and by mark second. The rules are tried in the order
//! written and the first that matches gives the mark; only the rules of marks that have a
//! firewall-mark service of their address's family take part (a mark without a service
//! leaves its packets to the kernel). The lookup allocates nothing and takes no lock.
//!
//! Every address a rule matches must be in the fanout programs' VIP list (a NAT reply must
//! reach the worker of its request), so a prefix may cover at most [`MAX_V4_ADDRESSES`]
//! IPv4 or [`MAX_V6_ADDRESSES`] IPv6 addresses.

use std::fmt;
use std::net::IpAddr;

use lvs_conntrack::Proto;
use serde::Deserialize;

/// The most IPv4 addresses one `daddr` prefix may cover (a /24).
pub const MAX_V4_ADDRESSES: u32 = 256;
/// The most IPv6 addresses one `daddr` prefix may cover (a /122): each IPv6 VIP costs the
/// fanout program eight instructions of its 4096.
pub const MAX_V6_ADDRESSES: u32 = 64;

/// One `[[fwmark]]` table: a mark and the packets that get it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FwmarkConfig {
    /// The mark, as `lvsadm -A -f MARK` names it: 1 to 4294967295.
    pub mark: std::num::NonZeroU32,
    /// What gets the mark: any one of these.
    #[serde(rename = "match")]
    pub matches: Vec<MatchConfig>,
}

/// One match of a `[[fwmark]]`: protocol, destination address (or prefix) and ports.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// `tcp` or `udp`; absent: both.
    #[serde(default)]
    pub proto: Option<L4Name>,
    /// `192.0.2.1`, `192.0.2.0/28`, `2001:db8::1`, `2001:db8::/122`.
    pub daddr: Net,
    /// Ports and ranges (`[80, 443, "8000-8099"]`); absent: every port.
    #[serde(default)]
    pub dport: Vec<PortRange>,
}

/// `tcp` or `udp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum L4Name {
    Tcp,
    Udp,
}

impl L4Name {
    pub fn proto(self) -> Proto {
        match self {
            L4Name::Tcp => Proto::Tcp,
            L4Name::Udp => Proto::Udp,
        }
    }
}

/// An address and prefix length, its host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Net {
    pub addr: IpAddr,
    pub prefix: u8,
}

/// Why a `daddr` or `dport` is refused (serde puts the line in front).
#[derive(Debug, thiserror::Error)]
pub enum MatchError {
    #[error("daddr {0:?} is not an address or address/prefix")]
    BadNet(String),
    #[error(
        "daddr {0} covers more than {max} addresses (every address a rule matches is a VIP \
         the director steers by)",
        max = if .0.addr.is_ipv4() { MAX_V4_ADDRESSES } else { MAX_V6_ADDRESSES }
    )]
    TooWide(Net),
    #[error("daddr {0}: the address has bits set beyond the prefix")]
    HostBits(Net),
    #[error("dport {0:?} is not a port (1-65535) or a range \"first-last\"")]
    BadPort(String),
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix == host_prefix(self.addr) {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

fn host_prefix(a: IpAddr) -> u8 {
    if a.is_ipv4() { 32 } else { 128 }
}

/// The address as 128 bits, IPv4 in the top 32 (so that one mask works for both).
fn bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)) << 96,
        IpAddr::V6(v) => u128::from(v),
    }
}

fn mask(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl Net {
    /// One address.
    pub fn host(addr: IpAddr) -> Net {
        Net {
            addr,
            prefix: host_prefix(addr),
        }
    }

    pub fn parse(text: &str) -> Result<Net, MatchError> {
        let bad = || MatchError::BadNet(text.to_owned());
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let host = host_prefix(addr);
        let prefix = match prefix {
            None => host,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= host)
                .ok_or_else(bad)?,
            Some(_) => return Err(bad()),
        };
        let net = Net { addr, prefix };
        let span = u32::from(host - prefix);
        let max = if addr.is_ipv4() {
            MAX_V4_ADDRESSES
        } else {
            MAX_V6_ADDRESSES
        };
        if 1u64.checked_shl(span).is_none_or(|n| n > u64::from(max)) {
            return Err(MatchError::TooWide(net));
        }
        if bits(addr) & !mask(prefix) != 0 {
            return Err(MatchError::HostBits(net));
        }
        Ok(net)
    }

    /// Whether `a` is in this network.
    #[inline]
    pub fn contains(&self, a: IpAddr) -> bool {
        a.is_ipv4() == self.addr.is_ipv4() && bits(a) & mask(self.prefix) == bits(self.addr)
    }

    /// Every address of the network (a few hundred at most, see [`Net::parse`]).
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let span = u32::from(host_prefix(self.addr) - self.prefix);
        (0..1u32 << span).map(move |i| match self.addr {
            IpAddr::V4(v) => IpAddr::V4((u32::from(v) | i).into()),
            IpAddr::V6(v) => IpAddr::V6((u128::from(v) | u128::from(i)).into()),
        })
    }
}

impl TryFrom<String> for Net {
    type Error = MatchError;
    fn try_from(s: String) -> Result<Self, MatchError> {
        Net::parse(&s)
    }
}

impl<'de> Deserialize<'de> for Net {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Net::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Ports `first..=last`; one port is a range of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    fn parse(text: &str) -> Result<PortRange, MatchError> {
        let port = |t: &str| t.trim().parse::<u16>().ok().filter(|p| *p > 0);
        let range = match text.split_once('-') {
            Some((a, b)) => port(a).zip(port(b)),
            None => port(text).map(|p| (p, p)),
        };
        match range {
            Some((first, last)) if first <= last => Ok(PortRange { first, last }),
            _ => Err(MatchError::BadPort(text.to_owned())),
        }
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = PortRange;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port (1-65535) or a range \"first-last\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<PortRange, E> {
                PortRange::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<PortRange, E> {
                PortRange::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PortRange, E> {
                PortRange::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// One compiled match: the packets it gives `mark`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkRule {
    pub mark: u32,
    /// `None`: TCP and UDP.
    pub proto: Option<Proto>,
    pub net: Net,
    /// Empty: every port.
    pub ports: Vec<PortRange>,
}

impl MarkRule {
    #[inline]
    fn matches(&self, proto: Proto, daddr: IpAddr, dport: u16) -> bool {
        self.proto.is_none_or(|p| p == proto)
            && self.net.contains(daddr)
            && (self.ports.is_empty()
                || self
                    .ports
                    .iter()
                    .any(|r| (r.first..=r.last).contains(&dport)))
    }
}

/// The classifier the workers ask, in the order the rules were written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MarkTable {
    pub rules: Vec<MarkRule>,
}

impl MarkTable {
    /// The rules of a configuration's `[[fwmark]]` tables.
    pub fn new(config: &[FwmarkConfig]) -> MarkTable {
        let rules = config
            .iter()
            .flat_map(|f| {
                f.matches.iter().map(|m| MarkRule {
                    mark: f.mark.get(),
                    proto: m.proto.map(L4Name::proto),
                    net: m.daddr,
                    ports: m.dport.clone(),
                })
            })
            .collect();
        MarkTable { rules }
    }

    /// Only the rules whose mark has a service of their address's family.
    pub fn active(&self, has_service: impl Fn(u32, bool) -> bool) -> MarkTable {
        MarkTable {
            rules: self
                .rules
                .iter()
                .filter(|r| has_service(r.mark, r.net.addr.is_ipv6()))
                .cloned()
                .collect(),
        }
    }

    /// The mark of a packet, if a rule gives it one.
    #[inline]
    pub fn classify(&self, proto: Proto, daddr: IpAddr, dport: u16) -> Option<u32> {
        self.rules
            .iter()
            .find(|r| r.matches(proto, daddr, dport))
            .map(|r| r.mark)
    }

    /// Whether any rule gives `mark` to a packet of this family.
    pub fn defines(&self, mark: u32, ipv6: bool) -> bool {
        self.rules
            .iter()
            .any(|r| r.mark == mark && r.net.addr.is_ipv6() == ipv6)
    }
}

/// Checks serde cannot express: every mark matches something, and no rule takes the TCP
/// port of a content service (the data plane would forward the packets the content service
/// waits for).
pub fn validate(
    config: &[FwmarkConfig],
    content: &[lvs_l7::ContentServiceConfig],
) -> Result<(), String> {
    for f in config {
        if f.matches.is_empty() {
            return Err(format!("fwmark: mark {} has an empty match list", f.mark));
        }
    }
    let table = MarkTable::new(config);
    for c in content {
        if let Some(mark) = table.classify(Proto::Tcp, c.address, c.port) {
            return Err(format!(
                "fwmark: mark {mark} takes TCP {}, where a content service listens: one \
                 address and port is either load balanced or content switched",
                std::net::SocketAddr::new(c.address, c.port)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn table(toml: &str) -> Result<MarkTable, String> {
        #[derive(Deserialize)]
        struct F {
            fwmark: Vec<FwmarkConfig>,
        }
        let f: F = lvs_common::parse_toml(toml, std::path::Path::new("d.toml"))
            .map_err(|e| e.to_string())?;
        validate(&f.fwmark, &[])?;
        Ok(MarkTable::new(&f.fwmark))
    }

    #[test]
    fn the_first_matching_rule_gives_the_mark() {
        let t = table(
            "[[fwmark]]\nmark = 1\nmatch = [{ proto = \"tcp\", daddr = \"192.0.2.1\", dport = [80, 443] }]\n\
             [[fwmark]]\nmark = 2\nmatch = [\n  { daddr = \"192.0.2.0/28\", dport = [\"8000-8099\"] },\n  \
             { proto = \"udp\", daddr = \"2001:db8::/126\" },\n]\n",
        )
        .unwrap();
        let c = |p, a, port| t.classify(p, ip(a), port);
        assert_eq!(c(Proto::Tcp, "192.0.2.1", 80), Some(1));
        assert_eq!(c(Proto::Tcp, "192.0.2.1", 443), Some(1));
        assert_eq!(c(Proto::Udp, "192.0.2.1", 443), None);
        assert_eq!(c(Proto::Tcp, "192.0.2.1", 22), None);
        assert_eq!(c(Proto::Udp, "192.0.2.15", 8099), Some(2));
        assert_eq!(c(Proto::Tcp, "192.0.2.16", 8000), None);
        assert_eq!(c(Proto::Udp, "2001:db8::3", 53), Some(2));
        assert_eq!(c(Proto::Tcp, "2001:db8::3", 53), None);
        assert_eq!(c(Proto::Udp, "2001:db8::4", 53), None);
        // An IPv4 rule never matches an IPv6 packet with the same bits.
        assert_eq!(c(Proto::Tcp, "c000:201::", 80), None);
        let only_1 = t.active(|m, _| m == 1);
        assert_eq!(only_1.classify(Proto::Udp, ip("192.0.2.15"), 8099), None);
        assert!(only_1.defines(1, false) && !only_1.defines(1, true));
        let n = Net::parse("192.0.2.4/30").unwrap();
        let all: Vec<IpAddr> = n.addresses().collect();
        assert_eq!(
            all,
            ["192.0.2.4", "192.0.2.5", "192.0.2.6", "192.0.2.7"].map(ip)
        );
    }

    /// The commented example of the shipped sample configuration is valid, and says what
    /// its comments say.
    #[test]
    fn the_sample_example_parses() {
        let sample = include_str!("../../etc/lvs-director.toml");
        let block: String = sample
            .lines()
            .skip_while(|l| *l != "# [[fwmark]]")
            .map_while(|l| l.strip_prefix("# "))
            .map(|l| format!("{}\n", l.split(" # ").next().unwrap_or(l)))
            .collect();
        let t = table(&block).expect("the sample's [[fwmark]] parses");
        assert_eq!(t.classify(Proto::Tcp, ip("192.0.2.1"), 443), Some(1));
        assert_eq!(t.classify(Proto::Udp, ip("2001:db8::2"), 8000), Some(1));
        assert_eq!(t.classify(Proto::Udp, ip("192.0.2.1"), 443), None);
    }

    #[test]
    fn mistakes_are_refused_with_their_line() {
        let cases = [
            ("daddr = \"192.0.2.300\"", "d.toml:3:", "192.0.2.300"),
            ("daddr = \"192.0.2.0/16\"", "d.toml:3:", "more than 256"),
            ("daddr = \"2001:db8::/64\"", "d.toml:3:", "more than 64"),
            ("daddr = \"192.0.2.1/24\"", "d.toml:3:", "beyond the prefix"),
            ("daddr = \"192.0.2.1\", dport = [0]", "d.toml:3:", "dport"),
            (
                "daddr = \"192.0.2.1\", dport = [\"90-80\"]",
                "d.toml:3:",
                "90-80",
            ),
            (
                "daddr = \"192.0.2.1\", proto = \"sctp\"",
                "d.toml:3:",
                "sctp",
            ),
            ("daddr = \"192.0.2.1\", sport = [1]", "d.toml:3:", "sport"),
        ];
        for (m, at, what) in cases {
            let text = format!("[[fwmark]]\nmark = 1\nmatch = [{{ {m} }}]\n");
            let e = table(&text).unwrap_err();
            assert!(e.contains(at) && e.contains(what), "{m}: {e}");
        }
        let e = table("[[fwmark]]\nmark = 0\nmatch = [{ daddr = \"192.0.2.1\" }]\n").unwrap_err();
        assert!(e.starts_with("d.toml:2:") && e.contains("nonzero"), "{e}");
    }
}
