//! PROXY protocol headers (haproxy's proxy-protocol.txt), versions 1 and 2, TCP only.

use std::net::SocketAddr;

use crate::buf::Buf;

const V2_SIG: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];

/// Append the header for a connection from `src` to `dst`.
pub(crate) fn write(out: &mut Buf, v2: bool, src: SocketAddr, dst: SocketAddr) {
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
}
