//! PROXY protocol headers (haproxy's proxy-protocol.txt), versions 1 and 2, TCP only. The
//! director only writes them (it never accepts one from a client).
//!
//! The header describes the client's connection to the VIP, whatever the family of the real
//! server's socket it travels on: an IPv6 client reaches an IPv4 server as `TCP6` (v1) or
//! `AF_INET6` with its 36-byte address block (v2). Both ends of that connection share a
//! family (listeners are IPv6-only); should they ever differ, the IPv4 one is written
//! IPv4-mapped, the one form both versions define for it.

use std::net::SocketAddr;

use crate::buf::Buf;

const V2_SIG: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];

/// Append the header for a connection from `src` to `dst`.
pub(crate) fn write(out: &mut Buf, v2: bool, src: SocketAddr, dst: SocketAddr) {
    // An IPv4-mapped address is an IPv4 client seen by an IPv6 socket: it is IPv4.
    let canonical = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    let (src, dst) = (canonical(src), canonical(dst));
    if !v2 {
        let line = match (src, dst) {
            (SocketAddr::V4(s), SocketAddr::V4(d)) => format!(
                "PROXY TCP4 {} {} {} {}\r\n",
                s.ip(),
                d.ip(),
                s.port(),
                d.port()
            ),
            (s, d) => format!(
                "PROXY TCP6 {} {} {} {}\r\n",
                to_v6(s),
                to_v6(d),
                s.port(),
                d.port()
            ),
        };
        out.push(line.as_bytes());
        return;
    }
    let mut h = Vec::with_capacity(52);
    h.extend_from_slice(&V2_SIG);
    h.push(0x21); // version 2, PROXY
    match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            h.push(0x11); // TCP over IPv4
            h.extend_from_slice(&12u16.to_be_bytes());
            h.extend_from_slice(&s.ip().octets());
            h.extend_from_slice(&d.ip().octets());
        }
        (s, d) => {
            h.push(0x21); // TCP over IPv6
            h.extend_from_slice(&36u16.to_be_bytes());
            h.extend_from_slice(&to_v6(s).octets());
            h.extend_from_slice(&to_v6(d).octets());
        }
    }
    h.extend_from_slice(&src.port().to_be_bytes());
    h.extend_from_slice(&dst.port().to_be_bytes());
    out.push(&h);
}

fn to_v6(a: SocketAddr) -> std::net::Ipv6Addr {
    match a {
        SocketAddr::V4(v) => v.ip().to_ipv6_mapped(),
        SocketAddr::V6(v) => *v.ip(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(v2: bool, src: &str, dst: &str) -> Vec<u8> {
        let mut b = Buf::new(128);
        write(&mut b, v2, src.parse().unwrap(), dst.parse().unwrap());
        b.bytes().to_vec()
    }

    #[test]
    fn both_versions() {
        let s: SocketAddr = "198.51.100.2:4000".parse().unwrap();
        let d: SocketAddr = "203.0.113.100:80".parse().unwrap();
        let mut b = Buf::new(128);
        write(&mut b, false, s, d);
        assert_eq!(
            b.bytes(),
            b"PROXY TCP4 198.51.100.2 203.0.113.100 4000 80\r\n"
        );
        let mut b = Buf::new(128);
        write(&mut b, true, s, d);
        assert_eq!(b.len(), 16 + 12);
        assert_eq!(&b.bytes()[12..16], &[0x21, 0x11, 0, 12]);
    }

    #[test]
    fn ipv6_clients() {
        let (s, d) = ("[2001:db8:c::2]:40001", "[2001:db8::100]:81");
        assert_eq!(
            header(false, s, d),
            b"PROXY TCP6 2001:db8:c::2 2001:db8::100 40001 81\r\n"
        );
        let mut want = V2_SIG.to_vec();
        want.extend_from_slice(&[0x21, 0x21, 0, 36]);
        want.extend_from_slice(
            &"2001:db8:c::2"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        want.extend_from_slice(
            &"2001:db8::100"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        want.extend_from_slice(&40001u16.to_be_bytes());
        want.extend_from_slice(&81u16.to_be_bytes());
        assert_eq!(header(true, s, d), want);
        assert_eq!(want.len(), 16 + 36);
    }

    /// An IPv4 client seen through an IPv6 socket is written as the IPv4 client it is; an
    /// IPv4 end beside an IPv6 one is written IPv4-mapped, in the IPv6 family.
    #[test]
    fn mapped_and_mixed_ends() {
        assert_eq!(
            header(
                false,
                "[::ffff:198.51.100.2]:4000",
                "[::ffff:203.0.113.100]:80"
            ),
            header(false, "198.51.100.2:4000", "203.0.113.100:80"),
        );
        assert_eq!(
            header(
                true,
                "[::ffff:198.51.100.2]:4000",
                "[::ffff:203.0.113.100]:80"
            ),
            header(true, "198.51.100.2:4000", "203.0.113.100:80"),
        );
        assert_eq!(
            header(false, "[2001:db8:c::2]:4000", "203.0.113.100:80"),
            b"PROXY TCP6 2001:db8:c::2 ::ffff:203.0.113.100 4000 80\r\n"
        );
        let v2 = header(true, "[2001:db8:c::2]:4000", "203.0.113.100:80");
        assert_eq!(&v2[12..16], &[0x21, 0x21, 0, 36]);
        assert_eq!(
            &v2[32..48],
            &"::ffff:203.0.113.100"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        );
    }
}
