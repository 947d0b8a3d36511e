//! Addresses, ports and protocols as the table stores them.
//!
//! One 16-byte address type serves IPv4 and IPv6 so that the table never has to be
//! rewritten when IPv6 forwarding arrives: IPv4 addresses are stored v4-mapped
//! (`::ffff:a.b.c.d`), which keeps them distinct from every native IPv6 address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IPv4 or IPv6 address, 16 bytes, IPv4 stored v4-mapped.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Addr(pub [u8; 16]);

impl Addr {
    /// The all-zero address (`::`).
    pub const UNSPECIFIED: Addr = Addr([0; 16]);

    /// An IPv4 address from its four octets.
    pub const fn v4(octets: [u8; 4]) -> Addr {
        let [a, b, c, d] = octets;
        Addr([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d])
    }

    /// An IPv6 address from its sixteen octets.
    pub const fn v6(octets: [u8; 16]) -> Addr {
        Addr(octets)
    }

    /// Whether this is an IPv4 address (stored v4-mapped).
    pub fn is_v4(&self) -> bool {
        self.0[..12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]
    }

    /// The address with every bit outside `mask` cleared (persistence `-M netmask`).
    ///
    /// Build the mask with [`Addr::v4_netmask`] or [`Addr::prefix_mask`]; both keep
    /// the v4-mapped prefix so a masked IPv4 address stays an IPv4 address.
    pub fn masked(&self, mask: &Addr) -> Addr {
        let mut out = [0u8; 16];
        for (o, (a, m)) in out.iter_mut().zip(self.0.iter().zip(mask.0.iter())) {
            *o = a & m;
        }
        Addr(out)
    }

    /// An IPv4 netmask as `ipvsadm -M 255.255.255.0` gives it, in the form [`Addr::masked`] takes.
    pub const fn v4_netmask(octets: [u8; 4]) -> Addr {
        let [a, b, c, d] = octets;
        Addr([
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, a, b, c, d,
        ])
    }

    /// A prefix mask: `bits` leading ones of the IPv4 part (when `v4`) or of the IPv6
    /// address; `bits` beyond the family's width mean "all ones".
    pub fn prefix_mask(v4: bool, bits: u8) -> Addr {
        let (start, width) = if v4 {
            (12usize, 32u32)
        } else {
            (0usize, 128u32)
        };
        let mut out = [0u8; 16];
        out[..start].fill(0xff);
        let mut left = u32::from(bits).min(width);
        for byte in &mut out[start..] {
            let take = left.min(8);
            // `take` is at most 8, so the shifted value fits a byte.
            *byte = u8::try_from((0xff00u32 >> take) & 0xff).unwrap_or(0);
            left -= take;
        }
        Addr(out)
    }
}

impl From<Ipv4Addr> for Addr {
    fn from(a: Ipv4Addr) -> Addr {
        Addr::v4(a.octets())
    }
}

impl From<Ipv6Addr> for Addr {
    fn from(a: Ipv6Addr) -> Addr {
        Addr(a.octets())
    }
}

impl From<IpAddr> for Addr {
    fn from(a: IpAddr) -> Addr {
        match a {
            IpAddr::V4(v4) => v4.into(),
            IpAddr::V6(v6) => v6.into(),
        }
    }
}

impl From<Addr> for IpAddr {
    fn from(a: Addr) -> IpAddr {
        let v6 = Ipv6Addr::from(a.0);
        match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        IpAddr::from(*self).fmt(f)
    }
}

impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An address and a port (host byte order).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Endpoint {
    /// The address.
    pub addr: Addr,
    /// The port; 0 in persistence templates that cover every port.
    pub port: u16,
}

impl Endpoint {
    /// An endpoint from an address and a port.
    pub const fn new(addr: Addr, port: u16) -> Endpoint {
        Endpoint { addr, port }
    }

    /// An IPv4 endpoint, handy in tests and examples.
    pub const fn v4(octets: [u8; 4], port: u16) -> Endpoint {
        Endpoint {
            addr: Addr::v4(octets),
            port,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.addr.is_v4() {
            write!(f, "{}:{}", self.addr, self.port)
        } else {
            write!(f, "[{}]:{}", self.addr, self.port)
        }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The transport protocols the director balances.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Proto {
    /// TCP (IP protocol 6).
    Tcp = 6,
    /// UDP (IP protocol 17).
    Udp = 17,
}

impl Proto {
    /// The name `ipvsadm -L -c` prints in its `pro` column.
    pub const fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_round_trips_and_prints() {
        let a = Addr::v4([192, 168, 1, 20]);
        assert!(a.is_v4());
        assert_eq!(a.to_string(), "192.168.1.20");
        assert_eq!(IpAddr::from(a), IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20)));
        assert_eq!(Endpoint::v4([10, 0, 0, 1], 80).to_string(), "10.0.0.1:80");
        let v6 = Addr::from("2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert!(!v6.is_v4());
        assert_eq!(Endpoint::new(v6, 443).to_string(), "[2001:db8::1]:443");
    }

    #[test]
    fn masks_keep_the_family() {
        let a = Addr::v4([192, 168, 1, 20]);
        let m24 = Addr::v4_netmask([255, 255, 255, 0]);
        assert_eq!(a.masked(&m24), Addr::v4([192, 168, 1, 0]));
        assert_eq!(Addr::prefix_mask(true, 24), m24);
        assert_eq!(Addr::prefix_mask(true, 32), Addr::v4_netmask([255; 4]));
        assert_eq!(Addr::prefix_mask(true, 0), Addr::v4_netmask([0; 4]));
        assert_eq!(
            Addr::prefix_mask(true, 20),
            Addr::v4_netmask([255, 255, 240, 0])
        );
        assert!(a.masked(&Addr::prefix_mask(true, 0)).is_v4());
        let v6 = Addr::from("2001:db8:1:2::7".parse::<Ipv6Addr>().unwrap());
        let want = Addr::from("2001:db8:1::".parse::<Ipv6Addr>().unwrap());
        assert_eq!(v6.masked(&Addr::prefix_mask(false, 48)), want);
    }
}
