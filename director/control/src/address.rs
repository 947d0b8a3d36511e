//! Addresses, ports and netmasks as ipvsadm reads and writes them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use lvs_proto::Protocol;

/// Where `getservbyname` looks up port names such as `http`.
pub const SERVICES_FILE: &str = "/etc/services";

/// Parses ipvsadm's `host[:port]`: `192.0.2.1`, `192.0.2.1:80`, `192.0.2.1:http`,
/// `2001:db8::1` (no port), `[2001:db8::1]:80`. Host names are not resolved: a rules file
/// must mean the same thing whatever DNS says. Returns `None` if `text` is none of these.
pub fn parse_addr_port(text: &str, protocol: Protocol) -> Option<(IpAddr, Option<u16>)> {
    if text.is_empty() || text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        let addr: Ipv6Addr = inside.parse().ok()?;
        return Some((IpAddr::V6(addr), Some(parse_port(port, protocol)?)));
    }
    if let Ok(v6) = text.parse::<Ipv6Addr>() {
        return Some((IpAddr::V6(v6), None));
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host, Some(parse_port(port, protocol)?)),
        None => (text, None),
    };
    let addr: Ipv4Addr = host.parse().ok()?;
    Some((IpAddr::V4(addr), port))
}

/// A port number (0-65535) or a name from [`SERVICES_FILE`] for `protocol`.
pub fn parse_port(text: &str, protocol: Protocol) -> Option<u16> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    let services = std::fs::read_to_string(Path::new(SERVICES_FILE)).ok()?;
    lookup_service(&services, text, protocol)
}

/// Finds `name` (or one of its aliases) for `protocol` in the text of an `/etc/services`.
pub fn lookup_service(services: &str, name: &str, protocol: Protocol) -> Option<u16> {
    let proto = match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    };
    services.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let first = words.next()?;
        let (port, p) = words.next()?.split_once('/')?;
        let named = first == name || words.any(|alias| alias == name);
        (named && p == proto).then(|| port.parse().ok()).flatten()
    })
}

/// Parses `-M`: a contiguous dotted mask for IPv4 (`255.255.255.0` is 24), a prefix length
/// 1-128 for IPv6. Returns the prefix length.
pub fn parse_netmask(text: &str, v6: bool) -> Option<u8> {
    if v6 {
        let n: u8 = text.parse().ok()?;
        return (1..=128).contains(&n).then_some(n);
    }
    let mask = u32::from(text.parse::<Ipv4Addr>().ok()?);
    let len = mask.leading_ones();
    // Contiguous: everything after the leading ones is zero.
    (mask.checked_shl(len).unwrap_or(0) == 0).then(|| u8::try_from(len).unwrap_or(32))
}

/// How `-M` is written back: dotted for IPv4, the prefix length for IPv6.
pub fn format_netmask(prefix: u8, v6: bool) -> String {
    if v6 {
        return prefix.to_string();
    }
    let bits = u32::from(prefix.min(32));
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    Ipv4Addr::from(mask).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let v4 = |s| parse_addr_port(s, Protocol::Tcp);
        assert_eq!(
            v4("192.0.2.1:80"),
            Some((IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), Some(80)))
        );
        assert_eq!(
            v4("192.0.2.1"),
            Some((IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), None))
        );
        assert_eq!(
            v4("[2001:db8::1]:53"),
            Some((IpAddr::V6("2001:db8::1".parse().unwrap()), Some(53)))
        );
        assert_eq!(
            v4("2001:db8::1"),
            Some((IpAddr::V6("2001:db8::1".parse().unwrap()), None))
        );
        for bad in [
            "",
            "80",
            "192.0.2.1:",
            "192.0.2.1:65536",
            "300.0.0.1:80",
            "[::1]",
            "[::1]80",
            "host:80",
            "192.0.2.1:-1",
        ] {
            assert_eq!(v4(bad), None, "{bad}");
        }
    }

    #[test]
    fn ipv6_addresses_as_ipvsadm_writes_them() {
        let parse = |s| parse_addr_port(s, Protocol::Udp);
        let v6 = |s: &str| IpAddr::V6(s.parse().unwrap());
        assert_eq!(parse("[::1]:0"), Some((v6("::1"), Some(0))));
        assert_eq!(
            parse("[2001:DB8::A]:65535"),
            Some((v6("2001:db8::a"), Some(65535)))
        );
        assert_eq!(
            parse("[::ffff:192.0.2.1]:80"),
            Some((v6("::ffff:192.0.2.1"), Some(80)))
        );
        // Brackets are ipvsadm's only way to give an IPv6 port: they need both halves and
        // a port, and zone ids (`%eth0`) have no meaning for a virtual service.
        for bad in [
            "[::1:80",
            "::1]:80",
            "[::1]:",
            "[::1]:65536",
            "[::1]:80:81",
            "[[::1]]:80",
            "[::1]]:80",
            "[]:80",
            "[2001:db8::1",
            "[fe80::1%eth0]:80",
            "fe80::1%eth0",
            "[fe80::1%2]:80",
            "[2001:db8::g]:80",
            "[192.0.2.1]:80",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn service_names() {
        let services = "# comment\nhttp\t80/tcp\twww # WorldWideWeb\ndomain 53/udp\n";
        assert_eq!(lookup_service(services, "http", Protocol::Tcp), Some(80));
        assert_eq!(lookup_service(services, "www", Protocol::Tcp), Some(80));
        assert_eq!(lookup_service(services, "http", Protocol::Udp), None);
        assert_eq!(lookup_service(services, "domain", Protocol::Udp), Some(53));
    }

    #[test]
    fn netmasks() {
        assert_eq!(parse_netmask("255.255.255.255", false), Some(32));
        assert_eq!(parse_netmask("255.255.255.0", false), Some(24));
        assert_eq!(parse_netmask("0.0.0.0", false), Some(0));
        assert_eq!(parse_netmask("255.0.255.0", false), None);
        assert_eq!(parse_netmask("64", true), Some(64));
        assert_eq!(parse_netmask("0", true), None);
        assert_eq!(parse_netmask("129", true), None);
        for p in 0..=32 {
            assert_eq!(parse_netmask(&format_netmask(p, false), false), Some(p));
        }
        assert_eq!(format_netmask(24, false), "255.255.255.0");
        assert_eq!(format_netmask(48, true), "48");
    }
}
