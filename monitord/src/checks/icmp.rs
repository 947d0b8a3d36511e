//! ICMP echo: one shared socket per address family for every ICMP check of an engine.
//!
//! A raw socket (`SOCK_RAW`, needs `CAP_NET_RAW`, which the daemon has as root) is tried
//! first; without the privilege an unprivileged ICMP datagram socket (`SOCK_DGRAM`, allowed by
//! `net.ipv4.ping_group_range`) is used. Requests carry our identifier and a sequence number
//! unique among the requests in flight; a reply is matched by identifier (raw sockets see every
//! ICMP packet of the host; datagram sockets only their own, with the kernel's identifier),
//! sequence number and source address. A "destination unreachable" quoting one of our
//! requests fails that check at once.
//!
//! ICMPv6 works alike: the kernel computes the ICMPv6 checksum (it covers the IPv6
//! pseudo-header) on both kinds of socket, and a raw ICMPv6 socket is given a type filter, so
//! that the host's neighbour discovery, router advertisements and echo requests to this host
//! never wake the engine (what gets through, other programs' echo replies among it, is
//! matched as above, and the rest ignored).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn, SockaddrIn6,
    SockaddrLike, SockaddrStorage, recvfrom, sendto, socket,
};

use crate::sys::icmp6_pass_only;

/// Payload after the 8-byte header, so that replies are recognisably ours.
const MAGIC: &[u8; 8] = b"lvs-mon\0";
/// The ICMPv6 types a raw socket lets through: destination unreachable, time exceeded (both
/// may quote our request) and echo reply.
const V6_TYPES: [u8; 3] = [1, 3, 129];

/// What came back for one of our requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpEvent {
    /// An echo reply.
    Reply {
        /// Who answered.
        from: IpAddr,
        /// Our sequence number.
        seq: u16,
    },
    /// Destination unreachable (or time exceeded), quoting our request.
    Unreachable {
        /// The original destination of our request.
        to: IpAddr,
        /// Our sequence number.
        seq: u16,
        /// ICMP type and code of the error.
        kind: (u8, u8),
    },
}

/// The internet checksum (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        sum += u32::from(u16::from_be_bytes([*b, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !u16::try_from(sum).unwrap_or(0xffff)
}

/// An echo request (type 8 for v4, 128 for v6). The v6 checksum is left to the kernel.
pub fn echo_request(v6: bool, ident: u16, seq: u16) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[0] = if v6 { 128 } else { 8 };
    p[4..6].copy_from_slice(&ident.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    p[8..].copy_from_slice(MAGIC);
    if !v6 {
        let c = checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Parses one received IPv4 packet (`raw`: with its IP header, as raw sockets deliver it;
/// otherwise the ICMP message alone). `ident`: our identifier (`None`: do not check, for
/// datagram sockets, where the kernel filters).
pub fn parse_v4(buf: &[u8], from: Ipv4Addr, raw: bool, ident: Option<u16>) -> Option<IcmpEvent> {
    let icmp = if raw {
        let ihl = usize::from(buf.first()? & 0x0f) * 4;
        if ihl < 20 {
            return None;
        }
        buf.get(ihl..)?
    } else {
        buf
    };
    let id_ok = |id: u16| ident.is_none_or(|i| i == id);
    match *icmp.first()? {
        0 => {
            let (id, seq) = (be16(icmp, 4)?, be16(icmp, 6)?);
            (id_ok(id) && icmp.get(8..16) == Some(&MAGIC[..])).then_some(IcmpEvent::Reply {
                from: IpAddr::V4(from),
                seq,
            })
        }
        t @ (3 | 11) => {
            // Quoted: the original IP header, then at least 8 bytes of our ICMP header.
            let inner = icmp.get(8..)?;
            let ihl = usize::from(inner.first()? & 0x0f) * 4;
            let hdr = inner.get(..20)?;
            if ihl < 20 || hdr[9] != 1 {
                return None;
            }
            let to = Ipv4Addr::new(hdr[16], hdr[17], hdr[18], hdr[19]);
            let orig = inner.get(ihl..ihl + 8)?;
            if orig[0] != 8 || !id_ok(be16(orig, 4)?) {
                return None;
            }
            Some(IcmpEvent::Unreachable {
                to: IpAddr::V4(to),
                seq: be16(orig, 6)?,
                kind: (t, icmp[1]),
            })
        }
        _ => None,
    }
}

/// Parses one received ICMPv6 message (never with an IP header).
pub fn parse_v6(icmp: &[u8], from: Ipv6Addr, ident: Option<u16>) -> Option<IcmpEvent> {
    let id_ok = |id: u16| ident.is_none_or(|i| i == id);
    match *icmp.first()? {
        129 => {
            let (id, seq) = (be16(icmp, 4)?, be16(icmp, 6)?);
            (id_ok(id) && icmp.get(8..16) == Some(&MAGIC[..])).then_some(IcmpEvent::Reply {
                from: IpAddr::V6(from),
                seq,
            })
        }
        t @ (1 | 3) => {
            // Quoted: the 40-byte IPv6 header, then our ICMPv6 header.
            let inner = icmp.get(8..)?;
            if *inner.get(6)? != 58 {
                return None;
            }
            let mut to = [0u8; 16];
            to.copy_from_slice(inner.get(24..40)?);
            let orig = inner.get(40..48)?;
            if orig[0] != 128 || !id_ok(be16(orig, 4)?) {
                return None;
            }
            Some(IcmpEvent::Unreachable {
                to: IpAddr::V6(Ipv6Addr::from(to)),
                seq: be16(orig, 6)?,
                kind: (t, icmp[1]),
            })
        }
        _ => None,
    }
}

/// One ICMP socket of one family.
#[derive(Debug)]
pub(crate) struct IcmpSocket {
    fd: OwnedFd,
    v6: bool,
    raw: bool,
    ident: u16,
}

impl IcmpSocket {
    /// Opens a raw socket, or a datagram socket when raw ones are not allowed.
    pub(crate) fn open(v6: bool, ident: u16) -> io::Result<IcmpSocket> {
        let (family, proto) = if v6 {
            (AddressFamily::Inet6, SockProtocol::IcmpV6)
        } else {
            (AddressFamily::Inet, SockProtocol::Icmp)
        };
        let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
        match socket(family, SockType::Raw, flags, proto) {
            Ok(fd) => {
                if v6 {
                    // Only what `parse_v6` looks at; not a correctness matter (anything else
                    // is ignored there), it spares a wake-up per NDP message of the host.
                    icmp6_pass_only(fd.as_fd(), &V6_TYPES)?;
                }
                Ok(IcmpSocket {
                    fd,
                    v6,
                    raw: true,
                    ident,
                })
            }
            Err(raw_err) => match socket(family, SockType::Datagram, flags, proto) {
                Ok(fd) => Ok(IcmpSocket {
                    fd,
                    v6,
                    raw: false,
                    ident,
                }),
                Err(e) => Err(io::Error::other(format!(
                    "cannot open an ICMP socket: raw: {raw_err}, datagram: {e}"
                ))),
            },
        }
    }

    /// Sends an echo request to `dst`.
    pub(crate) fn send(&self, dst: IpAddr, seq: u16) -> io::Result<()> {
        let p = echo_request(self.v6, self.ident, seq);
        let r = match dst {
            IpAddr::V4(a) => sendto(
                self.fd.as_raw_fd(),
                &p,
                &SockaddrIn::from(SocketAddrV4::new(a, 0)),
                MsgFlags::empty(),
            ),
            IpAddr::V6(a) => sendto(
                self.fd.as_raw_fd(),
                &p,
                &SockaddrIn6::from(SocketAddrV6::new(a, 0, 0, 0)),
                MsgFlags::empty(),
            ),
        };
        r.map(|_| ()).map_err(io::Error::from)
    }

    /// Receives one packet: `Ok(None)` when nothing (more) is waiting, `Ok(Some(None))` for a
    /// packet that is not about us.
    pub(crate) fn recv(&self) -> io::Result<Option<Option<IcmpEvent>>> {
        let mut buf = [0u8; 1500];
        let (n, from) = match recvfrom::<SockaddrStorage>(self.fd.as_raw_fd(), &mut buf) {
            Ok(v) => v,
            Err(nix::errno::Errno::EAGAIN) => return Ok(None),
            Err(nix::errno::Errno::EINTR) => return Ok(Some(None)),
            Err(e) => return Err(e.into()),
        };
        let ident = self.raw.then_some(self.ident);
        let ev = match from {
            Some(s) if s.family() == Some(AddressFamily::Inet) && !self.v6 => s
                .as_sockaddr_in()
                .and_then(|a| parse_v4(&buf[..n], a.ip(), self.raw, ident)),
            Some(s) if s.family() == Some(AddressFamily::Inet6) && self.v6 => s
                .as_sockaddr_in6()
                .and_then(|a| parse_v6(&buf[..n], a.ip(), ident)),
            _ => None,
        };
        Ok(Some(ev))
    }
}

impl AsRawFd for IcmpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_a_request_verifies() {
        let p = echo_request(false, 0xbeef, 7);
        assert_eq!(checksum(&p), 0);
        assert_eq!(&p[4..8], &[0xbe, 0xef, 0, 7]);
    }

    #[test]
    fn replies_and_errors_parse() {
        let from = Ipv4Addr::new(192, 0, 2, 9);
        let mut reply = echo_request(false, 0x1111, 42);
        reply[0] = 0;
        let mut raw = vec![0x45u8; 1];
        raw.extend_from_slice(&[0; 19]);
        raw.extend_from_slice(&reply);
        assert_eq!(
            parse_v4(&raw, from, true, Some(0x1111)),
            Some(IcmpEvent::Reply {
                from: IpAddr::V4(from),
                seq: 42
            })
        );
        assert_eq!(parse_v4(&raw, from, true, Some(0x2222)), None);
        assert_eq!(
            parse_v4(&reply, from, false, None),
            Some(IcmpEvent::Reply {
                from: IpAddr::V4(from),
                seq: 42
            })
        );
        // Port unreachable quoting our request.
        let mut err = vec![3u8, 1, 0, 0, 0, 0, 0, 0];
        let mut ip = vec![
            0x45u8, 0, 0, 36, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 1, 192, 0, 2, 77,
        ];
        ip.extend_from_slice(&echo_request(false, 0x1111, 9)[..8]);
        err.extend_from_slice(&ip);
        assert_eq!(
            parse_v4(&err, from, false, Some(0x1111)),
            Some(IcmpEvent::Unreachable {
                to: "192.0.2.77".parse().unwrap(),
                seq: 9,
                kind: (3, 1)
            })
        );
        for n in 0..err.len() {
            let _ = parse_v4(&err[..n], from, false, Some(0x1111));
            let _ = parse_v6(&err[..n], Ipv6Addr::LOCALHOST, None);
        }
    }

    #[test]
    fn icmpv6_replies_and_errors_parse_and_everything_else_is_ignored() {
        let from: Ipv6Addr = "2001:db8::11".parse().unwrap();
        let request = echo_request(true, 0x1111, 42);
        assert_eq!(
            (request[0], &request[2..4]),
            (128, &[0, 0][..]),
            "checksum: the kernel's"
        );
        let mut reply = request;
        reply[0] = 129;
        assert_eq!(
            parse_v6(&reply, from, Some(0x1111)),
            Some(IcmpEvent::Reply {
                from: IpAddr::V6(from),
                seq: 42
            })
        );
        // Someone else's reply (another identifier), unless the kernel filtered (datagram).
        assert_eq!(parse_v6(&reply, from, Some(0x2222)), None);
        assert!(parse_v6(&reply, from, None).is_some());
        // Not ours: a reply without our payload, echo requests, NDP, router advertisements.
        let mut foreign = reply;
        foreign[8] ^= 0xff;
        assert_eq!(parse_v6(&foreign, from, None), None);
        for t in [128u8, 133, 134, 135, 136, 143] {
            let mut m = reply;
            m[0] = t;
            assert_eq!(parse_v6(&m, from, None), None, "type {t}");
        }
        // Address unreachable from a router, quoting the IPv6 header and our request.
        let to: Ipv6Addr = "2001:db8::99".parse().unwrap();
        let mut err = vec![1u8, 3, 0, 0, 0, 0, 0, 0];
        let mut ip6 = vec![0x60u8, 0, 0, 0, 0, 16, 58, 64];
        ip6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        ip6.extend_from_slice(&to.octets());
        err.extend_from_slice(&ip6);
        err.extend_from_slice(&echo_request(true, 0x1111, 9));
        let router: Ipv6Addr = "2001:db8::fe".parse().unwrap();
        assert_eq!(
            parse_v6(&err, router, Some(0x1111)),
            Some(IcmpEvent::Unreachable {
                to: IpAddr::V6(to),
                seq: 9,
                kind: (1, 3)
            })
        );
        assert_eq!(parse_v6(&err, router, Some(0x2222)), None);
        // Quoting something that is not ICMPv6 (next header TCP): not ours.
        let mut tcp = err.clone();
        tcp[8 + 6] = 6;
        assert_eq!(parse_v6(&tcp, router, Some(0x1111)), None);
        for n in 0..err.len() {
            let _ = parse_v6(&err[..n], router, Some(0x1111));
        }
    }
}
