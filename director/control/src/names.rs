//! Host and service names, as ipvsadm shows them without `-n` and reads them in `-t`/`-r`.
//!
//! ipvsadm asks the C library (`gethostbyaddr`, `getservbyport`, `gethostbyname`,
//! `getservbyname`); lvs-rs reads the two files those consult first, `/etc/hosts` and
//! `/etc/services`, the way glibc's `files` source does: the first line that matches wins,
//! a host is named by its first (canonical) name, a port by the service's first name.
//! There is no DNS: a listing never waits on a resolver, and a rules file means the same on
//! every director that shares its `/etc/hosts`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use lvs_proto::{AddrPort, Protocol, ServiceKey};

/// Where `gethostbyname` and `gethostbyaddr` look first.
pub const HOSTS_FILE: &str = "/etc/hosts";
/// Where `getservbyname` and `getservbyport` look.
pub const SERVICES_FILE: &str = "/etc/services";

/// The text of a hosts file and a services file, with the reverse lookups indexed (a
/// connection listing names three addresses a line).
#[derive(Debug, Clone, Default)]
pub struct Names {
    hosts: String,
    services: String,
    host_names: HashMap<IpAddr, String>,
    service_names: HashMap<(Protocol, u16), String>,
}

impl Names {
    /// Reads [`HOSTS_FILE`] and [`SERVICES_FILE`]; a missing file names nothing.
    pub fn load() -> Self {
        let read = |path: &str| std::fs::read_to_string(Path::new(path)).unwrap_or_default();
        Self::from_text(read(HOSTS_FILE), read(SERVICES_FILE))
    }

    /// Names from the given texts (tests, other files).
    pub fn from_text(hosts: String, services: String) -> Self {
        let mut host_names = HashMap::new();
        for (addr, mut names) in host_lines(&hosts) {
            if let Some(name) = names.next() {
                host_names.entry(addr).or_insert_with(|| name.to_owned());
            }
        }
        let mut service_names = HashMap::new();
        for protocol in [Protocol::Tcp, Protocol::Udp] {
            for (port, mut names) in service_lines(&services, protocol) {
                if let Some(name) = names.next() {
                    service_names
                        .entry((protocol, port))
                        .or_insert_with(|| name.to_owned());
                }
            }
        }
        Self {
            hosts,
            services,
            host_names,
            service_names,
        }
    }

    /// The canonical name of `addr` (`gethostbyaddr`).
    pub fn host_name(&self, addr: IpAddr) -> Option<&str> {
        self.host_names.get(&addr).map(String::as_str)
    }

    /// The IPv4 address of `name` (`gethostbyname`, which ipvsadm asks for IPv4 only).
    pub fn host_addr(&self, name: &str) -> Option<Ipv4Addr> {
        host_lines(&self.hosts).find_map(|(a, mut names)| match a {
            IpAddr::V4(v4) if names.any(|n| n.eq_ignore_ascii_case(name)) => Some(v4),
            _ => None,
        })
    }

    /// The name of `port` for `protocol` (`getservbyport`).
    pub fn service_name(&self, port: u16, protocol: Protocol) -> Option<&str> {
        self.service_names
            .get(&(protocol, port))
            .map(String::as_str)
    }

    /// The port of service `name` (or an alias) for `protocol` (`getservbyname`).
    pub fn service_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        service_lines(&self.services, protocol)
            .find_map(|(p, mut names)| names.any(|n| n == name).then_some(p))
    }

    /// ipvsadm's `addrport_to_anyname` without `-n`: `host:service`, each part numeric where
    /// it has no name; IPv6 bracketed.
    pub fn addr_port(&self, protocol: Protocol, addr: IpAddr, port: u16) -> String {
        let host = self
            .host_name(addr)
            .map_or_else(|| addr.to_string(), str::to_owned);
        let service = self
            .service_name(port, protocol)
            .map_or_else(|| port.to_string(), str::to_owned);
        if addr.is_ipv6() {
            format!("[{host}]:{service}")
        } else {
            format!("{host}:{service}")
        }
    }
}

/// How listings and `-S` write an address and port: numeric with `-n` (`names` is `None`),
/// else named.
pub fn addr_port(names: Option<&Names>, protocol: Protocol, addr: IpAddr, port: u16) -> String {
    match names {
        Some(n) => n.addr_port(protocol, addr, port),
        None => AddrPort(addr, port).to_string(),
    }
}

/// A service as `-S` writes it: `-t 192.0.2.1:80`, or `-f 1` (`-f 1 -6` for IPv6), as
/// ipvsadm 1.31's `print_service_entry` does.
pub fn service_switch(names: Option<&Names>, key: &ServiceKey) -> String {
    service_text(names, key, true)
}

/// A service as listings name it: `TCP  192.0.2.1:80`, or `FWM  1` (`FWM  1 IPv6`).
pub fn service_label(names: Option<&Names>, key: &ServiceKey) -> String {
    service_text(names, key, false)
}

fn service_text(names: Option<&Names>, key: &ServiceKey, rule: bool) -> String {
    let (proto, sep) = if rule {
        (key.protocol.switch(), " ")
    } else {
        (key.protocol.name(), "  ")
    };
    match key.mark() {
        Some(mark) => {
            let v6 = match (key.addr.is_ipv6(), rule) {
                (false, _) => "",
                (true, true) => " -6",
                (true, false) => " IPv6",
            };
            format!("{proto}{sep}{mark}{v6}")
        }
        None => format!(
            "{proto}{sep}{}",
            addr_port(names, key.protocol, key.addr, key.port)
        ),
    }
}

/// The meaningful lines of a hosts file: address, then its names.
fn host_lines(text: &str) -> impl Iterator<Item = (IpAddr, std::str::SplitWhitespace<'_>)> {
    text.lines().filter_map(|line| {
        let mut words = uncomment(line).split_whitespace();
        let addr = words.next()?.parse().ok()?;
        Some((addr, words))
    })
}

/// The lines of a services file for `protocol`: port, then the service's names.
fn service_lines(
    text: &str,
    protocol: Protocol,
) -> impl Iterator<Item = (u16, impl Iterator<Item = &str>)> {
    let proto = match protocol {
        // ipvsadm gives a firewall-mark service TCP as its (unused) protocol.
        Protocol::Tcp | Protocol::Fwmark(_) => "tcp",
        Protocol::Udp => "udp",
    };
    text.lines().filter_map(move |line| {
        let mut words = uncomment(line).split_whitespace();
        let name = words.next()?;
        let (port, p) = words.next()?.split_once('/')?;
        if p != proto {
            return None;
        }
        Some((port.parse().ok()?, std::iter::once(name).chain(words)))
    })
}

fn uncomment(line: &str) -> &str {
    line.split('#').next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;

    const HOSTS: &str = "\
# comment 192.0.2.9 nine
127.0.0.1 localhost
127.0.0.1 other-name
192.0.2.1   www.example.org www   # the web VIP
10.0.0.2 web1
::1 localhost ip6-localhost
2001:db8::10 web6
bogus line
";
    const SERVICES: &str = "\
http		80/tcp		www		# WorldWideWeb HTTP
https		443/tcp
https		443/udp
domain		53/udp
webcache	8080/tcp	http-alt
";

    fn names() -> Names {
        Names::from_text(HOSTS.into(), SERVICES.into())
    }

    #[test]
    fn first_line_and_first_name_win() {
        let n = names();
        let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
        assert_eq!(n.host_name(v4(127, 0, 0, 1)), Some("localhost"));
        assert_eq!(n.host_name(v4(192, 0, 2, 1)), Some("www.example.org"));
        assert_eq!(n.host_name(v4(192, 0, 2, 9)), None);
        assert_eq!(
            n.host_name(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            Some("localhost")
        );
        assert_eq!(n.host_addr("WWW"), Some(Ipv4Addr::new(192, 0, 2, 1)));
        // gethostbyname is IPv4: the IPv6 line of a name does not answer.
        assert_eq!(n.host_addr("web6"), None);
        assert_eq!(n.host_addr("ip6-localhost"), None);
        assert_eq!(n.service_name(80, Protocol::Tcp), Some("http"));
        assert_eq!(n.service_name(80, Protocol::Udp), None);
        assert_eq!(n.service_name(53, Protocol::Udp), Some("domain"));
        assert_eq!(n.service_port("http-alt", Protocol::Tcp), Some(8080));
        assert_eq!(n.service_port("www", Protocol::Tcp), Some(80));
        assert_eq!(n.service_port("HTTP", Protocol::Tcp), None);
    }

    #[test]
    fn addr_port_as_ipvsadm_writes_it() {
        let n = names();
        let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let v6: IpAddr = "2001:db8::10".parse().unwrap();
        let other: IpAddr = "2001:db8::11".parse().unwrap();
        assert_eq!(n.addr_port(Protocol::Tcp, v4, 80), "www.example.org:http");
        assert_eq!(n.addr_port(Protocol::Udp, v4, 80), "www.example.org:80");
        assert_eq!(n.addr_port(Protocol::Tcp, v6, 443), "[web6]:https");
        assert_eq!(n.addr_port(Protocol::Tcp, other, 0), "[2001:db8::11]:0");
        assert_eq!(
            addr_port(None, Protocol::Tcp, v6, 443),
            "[2001:db8::10]:443"
        );
    }
}
