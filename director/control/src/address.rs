//! Addresses, ports and netmasks as ipvsadm reads and writes them.

use std::cell::OnceCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lvs_proto::Protocol;

use crate::names::Names;

/// Parses ipvsadm's `host[:port]`: `192.0.2.1`, `192.0.2.1:80`, `192.0.2.1:http`,
/// `www:http`, `2001:db8::1` (no port), `[2001:db8::1]:80`. A host name is looked up in
/// `/etc/hosts` (IPv4, as ipvsadm's `gethostbyname`), a port name in `/etc/services`
/// ([`Names`]); never in DNS, so that a rules file means the same whatever DNS says.
/// Returns `None` if `text` is none of these.
pub fn parse_addr_port(text: &str, protocol: Protocol) -> Option<(IpAddr, Option<u16>)> {
    let names = OnceCell::new();
    parse_addr_port_with(text, protocol, || names.get_or_init(Names::load))
}

/// [`parse_addr_port`] with the names from `names` (read only when a name is given).
pub fn parse_addr_port_with<'a>(
    text: &str,
    protocol: Protocol,
    names: impl Fn() -> &'a Names,
) -> Option<(IpAddr, Option<u16>)> {
    if text.is_empty() || text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port_of = |port: &str| -> Option<u16> {
        if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
            return port.parse().ok();
        }
        names().service_port(port, protocol)
    };
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        let addr: Ipv6Addr = inside.parse().ok()?;
        return Some((IpAddr::V6(addr), Some(port_of(port)?)));
    }
    if let Ok(v6) = text.parse::<Ipv6Addr>() {
        return Some((IpAddr::V6(v6), None));
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host, Some(port_of(port)?)),
        None => (text, None),
    };
    let addr = match host.parse::<Ipv4Addr>() {
        Ok(a) => a,
        Err(_) if !host.is_empty() => names().host_addr(host)?,
        Err(_) => return None,
    };
    Some((IpAddr::V4(addr), port))
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
            "no-such-host.invalid:80",
            "192.0.2.1:-1",
            "192.0.2.1:no-such-service",
            ":80",
        ] {
            assert_eq!(v4(bad), None, "{bad}");
        }
    }

    #[test]
    fn host_and_service_names() {
        let names = Names::from_text(
            "192.0.2.1 www www.example.org\n2001:db8::1 www6\n".into(),
            "# comment\nhttp\t80/tcp\twww # WorldWideWeb\ndomain 53/udp\n".into(),
        );
        let parse = |s, p| parse_addr_port_with(s, p, || &names);
        let www = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(parse("www:http", Protocol::Tcp), Some((www, Some(80))));
        assert_eq!(
            parse("WWW.example.org:www", Protocol::Tcp),
            Some((www, Some(80)))
        );
        assert_eq!(parse("www", Protocol::Udp), Some((www, None)));
        assert_eq!(
            parse("192.0.2.1:domain", Protocol::Udp),
            Some((www, Some(53)))
        );
        assert_eq!(
            parse("[2001:db8::1]:http", Protocol::Tcp).map(|a| a.1),
            Some(Some(80))
        );
        assert_eq!(parse("www:domain", Protocol::Tcp), None);
        assert_eq!(parse("www:http", Protocol::Udp), None);
        // ipvsadm looks host names up for IPv4 only; IPv6 is given as an address.
        assert_eq!(parse("www6:80", Protocol::Tcp), None);
        // Numbers need no file at all.
        let empty = Names::default();
        assert_eq!(
            parse_addr_port_with("192.0.2.1:80", Protocol::Tcp, || &empty),
            Some((www, Some(80)))
        );
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
