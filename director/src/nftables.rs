//! The kernel guard, an nftables table: the director host's own kernel must neither answer
//! traffic for a virtual service (no RST, no ICMP port unreachable: the VIP is a local address,
//! so the kernel would) nor forward it a second time (VS/NAT replies from real servers pass
//! through this host).
//!
//! The director sees these packets on its AF_PACKET sockets before netfilter does, so the guard
//! simply drops them in an nftables table of its own, at the `raw` priority of `prerouting`
//! (before connection tracking and routing). VS/NAT replies are dropped only when they are not
//! addressed to this host itself, so that its own connections to the real servers (the health
//! checks of lvs-monitord) still work. The table is rebuilt atomically on every
//! configuration change and deleted when the director stops. No sysctl is needed.
//!
//! The table is of the `inet` family, so one chain sees IPv4 and IPv6: IPv4 VIPs and real
//! servers are matched with `ip daddr`/`ip saddr`, IPv6 ones with `ip6 daddr`/`ip6 saddr`, and
//! the `fib daddr type` test works for both.
//!
//! On the interfaces the director forwards on, packets *to* a virtual service are dropped
//! earlier still, in an `ingress` chain of the same table: the ingress hook runs after the
//! AF_PACKET taps (so the director has its copy) and before the IP stack, which then never
//! spends validation, routing and the prerouting hook on packets it only has to drop. The
//! prerouting chain stays, unchanged, for the other interfaces and for the VS/NAT replies
//! (their `fib` test is not available at ingress). A kernel or nft without `inet` ingress
//! chains (Linux before 5.10, nft before 0.9.7) gets the prerouting chain alone.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::process::{Command, Stdio};

/// The nftables table the director owns. Nothing else is touched.
pub const TABLE: &str = "lvs_director";

/// A transport protocol, as nftables names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum L4 {
    Tcp,
    Udp,
}

/// The nft protocol keyword of an address's family (`ip` or `ip6`).
fn family(addr: IpAddr) -> &'static str {
    match addr {
        IpAddr::V4(_) => "ip",
        IpAddr::V6(_) => "ip6",
    }
}

impl L4 {
    fn nft(self) -> &'static str {
        match self {
            L4::Tcp => "tcp",
            L4::Udp => "udp",
        }
    }
}

/// One address (IPv4 or IPv6), protocol and port the kernel must keep its hands off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub addr: IpAddr,
    pub proto: L4,
    pub port: u16,
}

impl Endpoint {
    /// An endpoint of either family.
    pub fn new(addr: impl Into<IpAddr>, proto: L4, port: u16) -> Self {
        Self {
            addr: addr.into(),
            proto,
            port,
        }
    }
}

/// What the guard drops: packets *to* a virtual service, and VS/NAT replies *from* a real
/// server's service port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NftRules {
    /// Virtual services (VIP, protocol, port). Port 0 means every port of the VIP.
    pub services: Vec<Endpoint>,
    /// VS/NAT real servers (address, protocol, port): their replies reach this host and
    /// must go through the director only.
    pub nat_servers: Vec<Endpoint>,
    /// What the `[[fwmark]]` rules of firewall-mark services match (by destination).
    pub marked: Vec<Marked>,
    /// VS/NAT real servers of firewall-mark services (by source), on the ports of their
    /// mark's rules.
    pub marked_nat: Vec<Marked>,
    /// The interfaces the director forwards on: packets to a virtual service are dropped at
    /// their ingress hook already (none: at prerouting only).
    pub devices: Vec<String>,
}

/// Addresses, protocol (`None`: TCP and UDP) and ports (empty: every port) of a firewall-mark
/// rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marked {
    pub net: crate::fwmark::Net,
    pub proto: Option<L4>,
    pub ports: Vec<crate::fwmark::PortRange>,
}

impl Marked {
    /// `ip daddr 192.0.2.0/28 tcp dport { 80, 8000-8099 }` (`dir` is `d` or `s`).
    fn nft(&self, dir: char) -> String {
        let mut s = format!("{} {dir}addr {}", family(self.net.addr), self.net);
        let ports: Vec<String> = self
            .ports
            .iter()
            .map(|r| {
                if r.first == r.last {
                    r.first.to_string()
                } else {
                    format!("{}-{}", r.first, r.last)
                }
            })
            .collect();
        let (l4, th) = match self.proto {
            Some(p) => (format!(" meta l4proto {}", p.nft()), p.nft()),
            None => (" meta l4proto { tcp, udp }".to_owned(), "th"),
        };
        if ports.is_empty() {
            s.push_str(&l4);
        } else {
            if self.proto.is_none() {
                s.push_str(&l4);
            }
            let _ = write!(s, " {th} {dir}port {{ {} }}", ports.join(", "));
        }
        s
    }
}

/// Why the guard could not be installed or removed.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("cannot run {nft}: {source} (install the nftables package)")]
    Spawn { nft: String, source: std::io::Error },
    #[error("nft refused the director's table {TABLE}: {stderr}")]
    Nft { stderr: String },
}

/// The guard, applied with the `nft` command.
#[derive(Debug)]
pub struct NftTable {
    nft: String,
    installed: bool,
    /// nft refused the ingress chain once: from then on the table has none.
    no_ingress: bool,
}

impl NftTable {
    /// A guard that runs this `nft` binary (normally just `nft`, found on PATH).
    pub fn new(nft: impl Into<String>) -> Self {
        Self {
            nft: nft.into(),
            installed: false,
            no_ingress: false,
        }
    }

    /// Replace the table with one for `rules`, atomically (one nft transaction). If nft
    /// refuses the ingress chain, the table is applied without it (and without it from then
    /// on): the prerouting chain alone keeps the kernel's hands off, at a higher cost.
    pub fn apply(&mut self, rules: &NftRules) -> Result<(), NftError> {
        let ingress = !self.no_ingress && !rules.devices.is_empty();
        match self.run(&ruleset(rules)) {
            Err(NftError::Nft { stderr }) if ingress => {
                let without = NftRules {
                    devices: Vec::new(),
                    ..rules.clone()
                };
                self.run(&ruleset(&without))?;
                self.no_ingress = true;
                lvs_common::event!(
                    log::Level::Warn,
                    "guard_ingress_unavailable",
                    table = TABLE,
                    reason = stderr,
                );
            }
            other => other?,
        }
        self.installed = true;
        Ok(())
    }

    /// Delete the table, if this guard installed it.
    pub fn remove(&mut self) -> Result<(), NftError> {
        if self.installed {
            // Declaring the table first makes the delete succeed even if someone already
            // removed it by hand.
            self.run(&format!("table inet {TABLE}\ndelete table inet {TABLE}\n"))?;
            self.installed = false;
        }
        Ok(())
    }

    fn run(&self, script: &str) -> Result<(), NftError> {
        let spawn_err = |source| NftError::Spawn {
            nft: self.nft.clone(),
            source,
        };
        let mut child = Command::new(&self.nft)
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_err)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(script.as_bytes()).map_err(spawn_err)?;
        }
        let out = child.wait_with_output().map_err(spawn_err)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(NftError::Nft {
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }
}

impl Drop for NftTable {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            lvs_common::event!(
                log::Level::Error,
                "guard_remove_failed",
                table = TABLE,
                reason = e,
            );
        }
    }
}

/// The whole nft script: create-then-delete-then-create, so that applying it is one atomic
/// replacement whether or not the table existed.
pub fn ruleset(rules: &NftRules) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "table inet {TABLE}");
    let _ = writeln!(s, "delete table inet {TABLE}");
    let _ = writeln!(s, "table inet {TABLE} {{");
    let _ = writeln!(
        s,
        "    comment \"lvs-director: packets for virtual services are forwarded in user space\""
    );
    let mut services = rules.services.clone();
    services.sort();
    services.dedup();
    // Packets to a service (or a marked destination), by destination only: the same rules
    // in both chains.
    let mut to_services = String::new();
    for e in &services {
        let ip = family(e.addr);
        if e.port == 0 {
            let _ = writeln!(
                to_services,
                "        {ip} daddr {} meta l4proto {} drop",
                e.addr,
                e.proto.nft()
            );
        } else {
            let _ = writeln!(
                to_services,
                "        {ip} daddr {} {} dport {} drop",
                e.addr,
                e.proto.nft(),
                e.port
            );
        }
    }
    for m in &rules.marked {
        let _ = writeln!(to_services, "        {} drop", m.nft('d'));
    }
    if !rules.devices.is_empty() && !to_services.is_empty() {
        let mut devices: Vec<String> = rules.devices.iter().map(|d| format!("{d:?}")).collect();
        devices.sort();
        devices.dedup();
        let _ = writeln!(s, "    chain ingress {{");
        let _ = writeln!(
            s,
            "        type filter hook ingress devices = {{ {} }} priority filter; policy accept;",
            devices.join(", ")
        );
        s.push_str(&to_services);
        let _ = writeln!(s, "    }}");
    }
    let _ = writeln!(s, "    chain prerouting {{");
    let _ = writeln!(
        s,
        "        type filter hook prerouting priority raw; policy accept;"
    );
    s.push_str(&to_services);
    let mut servers = rules.nat_servers.clone();
    servers.sort();
    servers.dedup();
    for e in &servers {
        // Only replies on their way to a client: answers to this host's own connections
        // (lvs-monitord's health checks of the real servers) go to the local stack.
        let _ = writeln!(
            s,
            "        {} saddr {} {} sport {} fib daddr type != local drop",
            family(e.addr),
            e.addr,
            e.proto.nft(),
            e.port
        );
    }
    for m in &rules.marked_nat {
        let _ = writeln!(s, "        {} fib daddr type != local drop", m.nft('s'));
    }
    let _ = writeln!(s, "    }}");
    let _ = writeln!(s, "}}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::Ipv4Addr;

    #[test]
    fn ruleset_drops_services_and_nat_replies_once_each() {
        let vip = Ipv4Addr::new(203, 0, 113, 100);
        let rs = Ipv4Addr::new(203, 0, 113, 11);
        let rules = NftRules {
            services: vec![
                Endpoint::new(vip, L4::Tcp, 80),
                Endpoint::new(vip, L4::Udp, 0),
                Endpoint::new(vip, L4::Tcp, 80),
            ],
            nat_servers: vec![Endpoint::new(rs, L4::Tcp, 8080)],
            ..NftRules::default()
        };
        let text = ruleset(&rules);
        assert!(text.starts_with("table inet lvs_director\ndelete table inet lvs_director\n"));
        assert_eq!(
            text.matches("ip daddr 203.0.113.100 tcp dport 80 drop")
                .count(),
            1
        );
        assert!(text.contains("ip daddr 203.0.113.100 meta l4proto udp drop"));
        assert!(text.contains("ip saddr 203.0.113.11 tcp sport 8080 fib daddr type != local drop"));
        assert!(text.contains("priority raw"));
    }

    /// With the director's interfaces, the rules by destination are in an ingress chain on
    /// them as well; the VS/NAT reply rules (with `fib`, not available at ingress) are not.
    #[test]
    fn destination_rules_also_drop_at_the_ingress_of_the_directors_interfaces() {
        let vip = Ipv4Addr::new(203, 0, 113, 100);
        let vip6: IpAddr = "2001:db8::100".parse().unwrap();
        let rs = Ipv4Addr::new(203, 0, 113, 11);
        let rules = NftRules {
            services: vec![
                Endpoint::new(vip, L4::Tcp, 80),
                Endpoint::new(vip6, L4::Udp, 0),
            ],
            nat_servers: vec![Endpoint::new(rs, L4::Tcp, 80)],
            devices: vec!["eth1".into(), "eth0".into(), "eth1".into()],
            ..NftRules::default()
        };
        let text = ruleset(&rules);
        let ingress = text
            .split("chain prerouting")
            .next()
            .and_then(|t| t.split("chain ingress").nth(1))
            .unwrap_or_else(|| panic!("no ingress chain before prerouting:\n{text}"));
        assert!(
            ingress.contains(
                "type filter hook ingress devices = { \"eth0\", \"eth1\" } priority filter;"
            ),
            "{text}"
        );
        assert!(ingress.contains("ip daddr 203.0.113.100 tcp dport 80 drop"));
        assert!(ingress.contains("ip6 daddr 2001:db8::100 meta l4proto udp drop"));
        assert!(!ingress.contains("saddr"), "{text}");
        assert_eq!(
            text.matches("ip daddr 203.0.113.100 tcp dport 80 drop")
                .count(),
            2
        );
        assert!(text.contains("ip saddr 203.0.113.11 tcp sport 80 fib daddr type != local drop"));
        // No service to drop: no ingress chain.
        let none = NftRules {
            devices: vec!["eth0".into()],
            ..NftRules::default()
        };
        assert!(!ruleset(&none).contains("ingress"));
    }

    /// A firewall-mark service's rules, both ways, in nft's own syntax (checked by nft in
    /// the fwmark namespace test).
    #[test]
    fn fwmark_rules_drop_what_the_marks_match() {
        use crate::fwmark::{Net, PortRange};
        let ports = |v: &[(u16, u16)]| {
            v.iter()
                .map(|&(first, last)| PortRange { first, last })
                .collect::<Vec<_>>()
        };
        let rules = NftRules {
            marked: vec![
                Marked {
                    net: Net::parse("192.0.2.1").unwrap(),
                    proto: Some(L4::Tcp),
                    ports: ports(&[(80, 80), (443, 443)]),
                },
                Marked {
                    net: Net::parse("2001:db8::/126").unwrap(),
                    proto: None,
                    ports: ports(&[(8000, 8099)]),
                },
                Marked {
                    net: Net::parse("192.0.2.16/28").unwrap(),
                    proto: Some(L4::Udp),
                    ports: Vec::new(),
                },
            ],
            marked_nat: vec![Marked {
                net: Net::parse("10.0.0.2").unwrap(),
                proto: Some(L4::Tcp),
                ports: ports(&[(80, 80), (443, 443)]),
            }],
            ..NftRules::default()
        };
        let text = ruleset(&rules);
        for line in [
            "ip daddr 192.0.2.1 tcp dport { 80, 443 } drop",
            "ip6 daddr 2001:db8::/126 meta l4proto { tcp, udp } th dport { 8000-8099 } drop",
            "ip daddr 192.0.2.16/28 meta l4proto udp drop",
            "ip saddr 10.0.0.2 tcp sport { 80, 443 } fib daddr type != local drop",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
    }

    #[test]
    fn ipv6_endpoints_get_ip6_matches_in_the_same_table() {
        let vip6: IpAddr = "2001:db8:f::100".parse().unwrap();
        let rs6: IpAddr = "2001:db8:1::11".parse().unwrap();
        let vip4: IpAddr = Ipv4Addr::new(203, 0, 113, 100).into();
        let rules = NftRules {
            services: vec![
                Endpoint::new(vip6, L4::Tcp, 80),
                Endpoint::new(vip6, L4::Udp, 0),
                Endpoint::new(vip4, L4::Tcp, 80),
            ],
            nat_servers: vec![Endpoint::new(rs6, L4::Udp, 53)],
            ..NftRules::default()
        };
        let text = ruleset(&rules);
        assert!(text.starts_with("table inet lvs_director\ndelete table inet lvs_director\n"));
        assert!(
            text.contains("ip6 daddr 2001:db8:f::100 tcp dport 80 drop"),
            "{text}"
        );
        assert!(
            text.contains("ip6 daddr 2001:db8:f::100 meta l4proto udp drop"),
            "{text}"
        );
        assert!(
            text.contains("ip daddr 203.0.113.100 tcp dport 80 drop"),
            "{text}"
        );
        assert!(
            text.contains("ip6 saddr 2001:db8:1::11 udp sport 53 fib daddr type != local drop"),
            "{text}"
        );
        assert_eq!(text.matches("table inet").count(), 3, "one table: {text}");
    }
}
