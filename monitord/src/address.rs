//! Addresses as monitord's configuration file and command line write them: an IP address,
//! optionally with a port.
//!
//! - IPv4: `203.0.113.11`, or `203.0.113.11:80` where a port is allowed.
//! - IPv6: `2001:db8::11` or `[2001:db8::11]`, and with a port always in brackets,
//!   `[2001:db8::11]:80` (RFC 3986; the form `lvsadm -L -n` prints). Without brackets every
//!   colon belongs to the address: `2001:db8::11:80` is the address 2001:db8::11:80, not a
//!   port.
//!
//! A malformed address is refused with the reason a sysadmin can act on (an unclosed bracket,
//! a second `::`, a group of five digits, ...), not just "not an IP address". Zone indexes
//! (`fe80::1%eth0`) are refused: real servers are reached by a routable address.

use std::net::{IpAddr, Ipv4Addr};

/// Why a text is not an address (or not one allowed where it is written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Nothing was written.
    #[error("empty: an IP address is needed")]
    Empty,
    /// `[2001:db8::11` or `[2001:db8::11:80`.
    #[error("`[` without its `]`: write `[IPV6]` or `[IPV6]:PORT`")]
    Unclosed,
    /// A `]` with no `[` before it.
    #[error("`]` without a `[` before it")]
    Unopened,
    /// `[192.0.2.1]`.
    #[error("brackets are for IPv6 addresses only: write {0} without them")]
    BracketedV4(Ipv4Addr),
    /// `[2001:db8::11]x`.
    #[error("`{0}` after `]`: only `:PORT` may follow an IPv6 address in brackets")]
    AfterBracket(String),
    /// `[2001:db8::11]:http`, `:0`, `:65536`.
    #[error("the port `{0}` is not a number between 1 and 65535")]
    BadPort(String),
    /// A port where only an address belongs.
    #[error("a port does not belong here: give the address alone ({0}), the port apart")]
    PortNotAllowed(IpAddr),
    /// `fe80::1%eth0`.
    #[error("zone indexes (`%{0}`) are not supported: use a global or unique local address")]
    Zone(String),
    /// Looks like IPv6 (it has a colon) but is not one; the reason.
    #[error("not an IPv6 address: {0}")]
    BadV6(String),
    /// Anything else.
    #[error("not an IP address (IPv4 like 192.0.2.11, IPv6 like 2001:db8::11)")]
    NotIp,
}

/// An address alone: `ADDR` or `[IPV6]`.
pub fn parse_ip(text: &str) -> Result<IpAddr, AddressError> {
    match parse(text)? {
        (ip, None) => Ok(ip),
        (ip, Some(_)) => Err(AddressError::PortNotAllowed(ip)),
    }
}

/// An address with an optional port: `ADDR`, `[IPV6]`, `IPV4:PORT` or `[IPV6]:PORT`.
pub fn parse(text: &str) -> Result<(IpAddr, Option<u16>), AddressError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(AddressError::Empty);
    }
    if let Some(rest) = text.strip_prefix('[') {
        let Some((inner, after)) = rest.split_once(']') else {
            return Err(AddressError::Unclosed);
        };
        let ip = bare(inner)?;
        if let IpAddr::V4(v4) = ip {
            return Err(AddressError::BracketedV4(v4));
        }
        if after.is_empty() {
            return Ok((ip, None));
        }
        let Some(port) = after.strip_prefix(':') else {
            return Err(AddressError::AfterBracket(after.to_owned()));
        };
        return Ok((ip, Some(port_number(port)?)));
    }
    if text.contains(']') {
        return Err(AddressError::Unopened);
    }
    // One colon after something dotted: IPv4 with a port. Any other colon: IPv6, all of it.
    if let Some((host, port)) = text.split_once(':')
        && !port.contains(':')
        && host.contains('.')
    {
        return match host.parse::<Ipv4Addr>() {
            Ok(v4) => Ok((IpAddr::V4(v4), Some(port_number(port)?))),
            Err(_) => Err(AddressError::NotIp),
        };
    }
    bare(text).map(|ip| (ip, None))
}

fn port_number(text: &str) -> Result<u16, AddressError> {
    match text.parse::<u16>() {
        Ok(p) if p > 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err(AddressError::BadPort(text.to_owned())),
    }
}

/// An address without brackets or port.
fn bare(text: &str) -> Result<IpAddr, AddressError> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(ip);
    }
    if let Some((_, zone)) = text.split_once('%') {
        return Err(AddressError::Zone(zone.to_owned()));
    }
    // Two colons at least: meant as IPv6 (a name with a port, `localhost:80`, has one).
    if text.matches(':').count() >= 2 {
        return Err(AddressError::BadV6(why_not_v6(text)));
    }
    Err(AddressError::NotIp)
}

/// What is wrong with `text`, which has a colon but does not parse as IPv6.
fn why_not_v6(text: &str) -> String {
    if let Some(c) = text
        .chars()
        .find(|c| !(c.is_ascii_hexdigit() || *c == ':' || *c == '.'))
    {
        return format!("`{c}` is not a hexadecimal digit");
    }
    if text.contains(":::") {
        return "three colons in a row".into();
    }
    let compressed = text.matches("::").count();
    if compressed > 1 {
        return "`::` may appear only once".into();
    }
    if (text.starts_with(':') && !text.starts_with("::"))
        || (text.ends_with(':') && !text.ends_with("::"))
    {
        return "a single `:` at the start or the end (`::` stands for zero groups)".into();
    }
    let groups: Vec<&str> = text.split(':').filter(|g| !g.is_empty()).collect();
    let mut count = 0;
    for (i, g) in groups.iter().enumerate() {
        if g.contains('.') {
            if i + 1 != groups.len() || g.parse::<Ipv4Addr>().is_err() {
                return format!(
                    "`{g}`: an embedded IPv4 address comes last and has four numbers 0-255"
                );
            }
            count += 2;
        } else if g.len() > 4 {
            return format!("the group `{g}` has more than four hexadecimal digits");
        } else {
            count += 1;
        }
    }
    match (compressed, count) {
        (0, n) if n != 8 => format!("{n} groups of the eight an address has (or use `::`)"),
        (1, n) if n > 7 => format!("{n} groups and `::`: at most seven with `::`"),
        _ => "malformed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_forms_that_parse() {
        assert_eq!(parse("203.0.113.11"), Ok((ip("203.0.113.11"), None)));
        assert_eq!(
            parse(" 203.0.113.11:80 "),
            Ok((ip("203.0.113.11"), Some(80)))
        );
        assert_eq!(parse("2001:db8::11"), Ok((ip("2001:db8::11"), None)));
        assert_eq!(parse("[2001:db8::11]"), Ok((ip("2001:db8::11"), None)));
        assert_eq!(
            parse("[2001:DB8:0::11]:8080"),
            Ok((ip("2001:db8::11"), Some(8080)))
        );
        assert_eq!(
            parse("::ffff:192.0.2.1"),
            Ok((ip("::ffff:192.0.2.1"), None))
        );
        // Without brackets every colon is the address's.
        assert_eq!(parse("2001:db8::11:80"), Ok((ip("2001:db8::11:80"), None)));
        assert_eq!(parse_ip("[2001:db8::11]"), Ok(ip("2001:db8::11")));
    }

    #[test]
    fn malformed_addresses_say_why() {
        let e = |s: &str| parse(s).unwrap_err().to_string();
        assert_eq!(e(""), "empty: an IP address is needed");
        assert_eq!(
            e("[2001:db8::11:80"),
            "`[` without its `]`: write `[IPV6]` or `[IPV6]:PORT`"
        );
        assert_eq!(e("2001:db8::11]:80"), "`]` without a `[` before it");
        assert_eq!(
            e("[192.0.2.1]:80"),
            "brackets are for IPv6 addresses only: write 192.0.2.1 without them"
        );
        assert_eq!(
            e("[2001:db8::11]80"),
            "`80` after `]`: only `:PORT` may follow an IPv6 address in brackets"
        );
        for bad in [
            "[2001:db8::11]:0",
            "[2001:db8::11]:65536",
            "[2001:db8::11]:http",
        ] {
            assert!(e(bad).starts_with("the port `"), "{bad}: {}", e(bad));
        }
        assert_eq!(
            e("192.0.2.1:+80"),
            "the port `+80` is not a number between 1 and 65535"
        );
        assert_eq!(
            e("fe80::1%eth0"),
            "zone indexes (`%eth0`) are not supported: use a global or unique local address"
        );
        assert_eq!(
            e("2001:db8::zz"),
            "not an IPv6 address: `z` is not a hexadecimal digit"
        );
        assert_eq!(
            e("2001:db8::1::2"),
            "not an IPv6 address: `::` may appear only once"
        );
        assert_eq!(
            e("2001:db8:::1"),
            "not an IPv6 address: three colons in a row"
        );
        assert_eq!(
            e("2001:db8:12345::1"),
            "not an IPv6 address: the group `12345` has more than four hexadecimal digits"
        );
        assert_eq!(
            e("2001:db8:1:2:3:4:5"),
            "not an IPv6 address: 7 groups of the eight an address has (or use `::`)"
        );
        assert_eq!(
            e("1:2:3:4:5:6:7::8"),
            "not an IPv6 address: 8 groups and `::`: at most seven with `::`"
        );
        assert_eq!(
            e(":2001:db8::1"),
            "not an IPv6 address: a single `:` at the start or the end (`::` stands for zero groups)"
        );
        assert_eq!(
            e("::ffff:192.0.2.256"),
            "not an IPv6 address: `192.0.2.256`: an embedded IPv4 address comes last and has four numbers 0-255"
        );
        for name in ["localhost:80", "www.example.com:80", "db8:11"] {
            assert_eq!(
                e(name),
                "not an IP address (IPv4 like 192.0.2.11, IPv6 like 2001:db8::11)",
                "{name}"
            );
        }
        assert_eq!(
            e("www.example.com"),
            "not an IP address (IPv4 like 192.0.2.11, IPv6 like 2001:db8::11)"
        );
        assert_eq!(
            parse_ip("[2001:db8::11]:80").unwrap_err().to_string(),
            "a port does not belong here: give the address alone (2001:db8::11), the port apart"
        );
    }
}
