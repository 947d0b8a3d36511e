//! Heartbeats over UDP: unicast to a list of peers (IPv4 or IPv6), or one multicast group
//! (IPv4, or IPv6 joined on a named interface).
//!
//! The socket is non-blocking, for a `mio` loop (it is a [`mio::net::UdpSocket`]; register it
//! with READABLE interest). Sending never waits: a datagram the kernel will not take now is
//! counted as dropped (the next keepalive follows soon). Datagrams are marked DSCP CS6
//! (network control, the TOS byte or the IPv6 traffic class) so that a congested link drops
//! them last. A multicast socket does not loop its own heartbeats back, and uses TTL (hop
//! limit) 1: the peers sit on the same segment.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use mio::net::UdpSocket;

/// The default heartbeat port (Linux-HA's `udpport` is 694).
pub const DEFAULT_PORT: u16 = 694;
/// The largest datagram read; longer ones are truncated (and then fail the length check).
pub const MAX_DATAGRAM: usize = 2048;
/// DSCP CS6 in the TOS byte.
const TOS_CS6: u8 = 0xC0;

/// Where heartbeats go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpConfig {
    /// Listen on `bind`, send to every address of `peers`.
    Unicast {
        /// Local address and port.
        bind: SocketAddr,
        /// The peers' addresses and ports.
        peers: Vec<SocketAddr>,
    },
    /// Join `group` on the interface holding `interface`, listen on `port`, send to the group.
    Multicast {
        /// An IPv4 multicast group (224.0.0.0/4).
        group: Ipv4Addr,
        /// The port, the same on every node.
        port: u16,
        /// The local IPv4 address of the interface to use.
        interface: Ipv4Addr,
    },
    /// Join the IPv6 `group` on `interface`, listen on `port`, send to the group out of
    /// that interface.
    Multicast6 {
        /// An IPv6 multicast group: link-local (ff02::/16, which needs the interface as its
        /// scope) or of a wider scope (ff05::/16 site ...).
        group: Ipv6Addr,
        /// The port, the same on every node.
        port: u16,
        /// The interface's name, resolved to its index when the socket is bound.
        interface: String,
    },
}

/// Counters of one socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UdpStats {
    /// Datagrams sent (one per destination).
    pub sent: u64,
    /// Datagrams the kernel refused or would have blocked on.
    pub send_errors: u64,
    /// Datagrams received.
    pub received: u64,
}

/// The heartbeat socket.
#[derive(Debug)]
pub struct UdpHeartbeat {
    socket: UdpSocket,
    destinations: Vec<SocketAddr>,
    stats: UdpStats,
}

impl UdpHeartbeat {
    /// Binds the socket as configured.
    pub fn bind(config: &UdpConfig) -> io::Result<UdpHeartbeat> {
        let (socket, destinations) = match config {
            UdpConfig::Unicast { bind, peers } => {
                if peers.is_empty() {
                    return Err(io::Error::new(io::ErrorKind::InvalidInput, "no UDP peers"));
                }
                (UdpSocket::bind(*bind)?, peers.clone())
            }
            UdpConfig::Multicast {
                group,
                port,
                interface,
            } => {
                if !group.is_multicast() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{group} is not a multicast group"),
                    ));
                }
                // Bound to the group address: only the group's datagrams arrive here.
                let socket = bind_reusable(SocketAddrV4::new(*group, *port))?;
                lvs_common::mcast::join_group(&socket, *group, *interface)?;
                (
                    socket,
                    vec![SocketAddr::V4(SocketAddrV4::new(*group, *port))],
                )
            }
            UdpConfig::Multicast6 {
                group,
                port,
                interface,
            } => {
                let (socket, dest) = bind_group6(*group, *port, interface)?;
                (socket, vec![SocketAddr::V6(dest)])
            }
        };
        if destinations.iter().any(|d| d.is_ipv4()) {
            // Best effort: an IPv6-only socket has no IP_TOS.
            let _ = nix::sys::socket::setsockopt(
                &socket,
                nix::sys::socket::sockopt::IpTos,
                &libc::c_int::from(TOS_CS6),
            );
        }
        if destinations.iter().any(SocketAddr::is_ipv6) {
            let _ = nix::sys::socket::setsockopt(
                &socket,
                nix::sys::socket::sockopt::Ipv6TClass,
                &libc::c_int::from(TOS_CS6),
            );
        }
        Ok(UdpHeartbeat {
            socket,
            destinations,
            stats: UdpStats::default(),
        })
    }

    /// The socket, to register with a `mio` registry.
    pub fn socket_mut(&mut self) -> &mut UdpSocket {
        &mut self.socket
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Where [`UdpHeartbeat::send_all`] sends.
    pub fn destinations(&self) -> &[SocketAddr] {
        &self.destinations
    }

    /// The counters.
    pub fn stats(&self) -> UdpStats {
        self.stats
    }

    /// Sends `msg` to every destination; returns how many took it. Never blocks; each
    /// failure is counted and logged at debug level.
    pub fn send_all(&mut self, msg: &[u8]) -> usize {
        let mut ok = 0;
        for dest in &self.destinations {
            match self.socket.send_to(msg, *dest) {
                Ok(_) => {
                    ok += 1;
                    self.stats.sent += 1;
                }
                Err(e) => {
                    self.stats.send_errors += 1;
                    log::debug!("heartbeat to {dest}: {e}");
                }
            }
        }
        ok
    }

    /// Receives one datagram: `Ok(Some((len, source)))`, or `Ok(None)` when nothing is
    /// waiting. Call until `None` after each READABLE event.
    pub fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<(usize, SocketAddr)>> {
        loop {
            match self.socket.recv_from(buf) {
                Ok((n, from)) => {
                    self.stats.received += 1;
                    return Ok(Some((n, from)));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // An ICMP port unreachable from an earlier send surfaces here: not ours to fail on.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Receives at most `max` datagrams, handing each to `f`; true when `max` were read and
    /// more may be waiting (the socket is edge-triggered: the caller must come back without
    /// waiting for another READABLE event). A flood thus costs the loop one burst per turn,
    /// never its timers.
    pub fn recv_burst(
        &mut self,
        buf: &mut [u8],
        max: usize,
        mut f: impl FnMut(&[u8]),
    ) -> io::Result<bool> {
        for _ in 0..max {
            match self.recv(buf)? {
                Some((n, _from)) => f(&buf[..n]),
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Whether `from` is one of the configured unicast peers (always true for multicast,
    /// where the MAC and node id decide).
    pub fn is_peer_address(&self, from: &SocketAddr) -> bool {
        match self.destinations.as_slice() {
            [d] if d.ip().is_multicast() => true,
            dests => dests
                .iter()
                .any(|d| d.ip() == from.ip() || same_v4(d.ip(), from.ip())),
        }
    }
}

fn same_v4(a: IpAddr, b: IpAddr) -> bool {
    let v4 = |ip: IpAddr| match ip {
        IpAddr::V4(v) => Some(v),
        IpAddr::V6(v) => v.to_ipv4_mapped(),
    };
    v4(a).is_some() && v4(a) == v4(b)
}

/// The IPv6 group socket: bound to the group (scoped to the interface, which a link-local
/// group needs and a wider one ignores), joined on the interface, sending out of it with hop
/// limit 1 and without loopback. Returns the socket and where heartbeats go.
fn bind_group6(
    group: Ipv6Addr,
    port: u16,
    interface: &str,
) -> io::Result<(UdpSocket, SocketAddrV6)> {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, SockaddrIn6, bind, setsockopt, socket, sockopt,
    };
    if !group.is_multicast() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{group} is not a multicast group"),
        ));
    }
    let ifindex = nix::net::if_::if_nametoindex(interface).map_err(|e| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("interface {interface} for IPv6 group {group}: {e}"),
        )
    })?;
    let dest = SocketAddrV6::new(group, port, 0, ifindex);
    let fd = socket(
        AddressFamily::Inet6,
        SockType::Datagram,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    bind(fd.as_raw_fd(), &SockaddrIn6::from(dest))?;
    let socket = std::net::UdpSocket::from(fd);
    socket.join_multicast_v6(&group, ifindex)?;
    socket.set_multicast_loop_v6(false)?;
    setsockopt(&socket, sockopt::Ipv6MulticastHops, &1)?;
    // A group of wider than link scope is routed like any destination: this keeps it on the
    // configured interface.
    crate::sys::set_ipv6_multicast_if(&socket, ifindex)?;
    Ok((UdpSocket::from_std(socket), dest))
}

/// A non-blocking UDP socket with `SO_REUSEADDR` (so that more than one listener, a
/// capture tool or a second suite, can share the group's port), bound to `addr`.
fn bind_reusable(addr: SocketAddrV4) -> io::Result<UdpSocket> {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, SockaddrIn, bind, setsockopt, socket, sockopt,
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    bind(fd.as_raw_fd(), &SockaddrIn::from(addr))?;
    Ok(UdpSocket::from_std(std::net::UdpSocket::from(fd)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Interest, Poll, Token};
    use std::time::Duration;

    fn recv_one(hb: &mut UdpHeartbeat) -> (Vec<u8>, SocketAddr) {
        let mut poll = Poll::new().unwrap();
        poll.registry()
            .register(hb.socket_mut(), Token(1), Interest::READABLE)
            .unwrap();
        let mut events = Events::with_capacity(4);
        let mut buf = [0u8; MAX_DATAGRAM];
        for _ in 0..50 {
            if let Some((n, from)) = hb.recv(&mut buf).unwrap() {
                return (buf[..n].to_vec(), from);
            }
            poll.poll(&mut events, Some(Duration::from_millis(100)))
                .unwrap();
        }
        panic!("nothing received");
    }

    #[test]
    fn unicast_send_to_all_and_receive_with_source() {
        let loopback = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut b = UdpHeartbeat::bind(&UdpConfig::Unicast {
            bind: loopback(0),
            peers: vec![loopback(9)],
        })
        .unwrap();
        let mut c = UdpHeartbeat::bind(&UdpConfig::Unicast {
            bind: loopback(0),
            peers: vec![loopback(9)],
        })
        .unwrap();
        let mut a = UdpHeartbeat::bind(&UdpConfig::Unicast {
            bind: loopback(0),
            peers: vec![b.local_addr().unwrap(), c.local_addr().unwrap()],
        })
        .unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(b.recv(&mut buf).unwrap(), None, "non-blocking");
        assert_eq!(a.send_all(b"beat"), 2);
        for r in [&mut b, &mut c] {
            let (msg, from) = recv_one(r);
            assert_eq!(msg, b"beat");
            assert_eq!(from, a.local_addr().unwrap());
        }
        assert_eq!(a.stats().sent, 2);
        assert_eq!(b.stats().received, 1);
        assert!(b.is_peer_address(&loopback(9)));
        assert!(!b.is_peer_address(&SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2), 9))));
    }

    #[test]
    fn a_burst_reads_at_most_max_and_says_more_is_waiting() {
        let loopback = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut r = UdpHeartbeat::bind(&UdpConfig::Unicast {
            bind: loopback(0),
            peers: vec![loopback(9)],
        })
        .unwrap();
        let mut s = UdpHeartbeat::bind(&UdpConfig::Unicast {
            bind: loopback(0),
            peers: vec![r.local_addr().unwrap()],
        })
        .unwrap();
        for i in 0..100u8 {
            assert_eq!(s.send_all(&[i]), 1);
        }
        // Wait until the first one is there (loopback delivers in order, at once).
        let _ = recv_one(&mut r);
        let mut buf = [0u8; MAX_DATAGRAM];
        let mut got = Vec::new();
        assert!(r.recv_burst(&mut buf, 64, |d| got.push(d[0])).unwrap());
        assert_eq!(got, (1..65).collect::<Vec<u8>>());
        got.clear();
        assert!(!r.recv_burst(&mut buf, 64, |d| got.push(d[0])).unwrap());
        assert_eq!(got, (65..100).collect::<Vec<u8>>());
    }

    /// Runs `f` on a thread of its own in a fresh network namespace with `lo` up and
    /// multicast routed to it; `None` where namespaces cannot be made (not root).
    fn in_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        std::thread::spawn(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
            // Children forked from this thread inherit its network namespace.
            for args in [
                &["link", "set", "lo", "up"][..],
                &["link", "set", "lo", "multicast", "on"],
                &["route", "add", "224.0.0.0/4", "dev", "lo"],
                &[
                    "-6",
                    "route",
                    "add",
                    "multicast",
                    "ff00::/8",
                    "dev",
                    "lo",
                    "table",
                    "local",
                ],
            ] {
                let ok = std::process::Command::new("ip")
                    .args(args)
                    .status()
                    .ok()?
                    .success();
                if !ok {
                    return None;
                }
            }
            Some(f())
        })
        .join()
        .unwrap()
    }

    #[test]
    fn multicast_group() {
        let got = in_netns(|| {
            let config = UdpConfig::Multicast {
                group: Ipv4Addr::new(239, 192, 0, 94),
                port: 6940,
                interface: Ipv4Addr::LOCALHOST,
            };
            let mut a = UdpHeartbeat::bind(&config).unwrap();
            let mut b = UdpHeartbeat::bind(&config).unwrap();
            assert_eq!(
                a.destinations(),
                &[SocketAddr::from(([239, 192, 0, 94], 6940))]
            );
            assert_eq!(a.send_all(b"group beat"), 1);
            let got = recv_one(&mut b);
            assert!(b.is_peer_address(&got.1));
            got
        });
        match got {
            Some((msg, from)) => {
                assert_eq!(msg, b"group beat");
                assert_eq!(from.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
            }
            None => lvs_testsupport::skip("multicast_group", "cannot make a network namespace"),
        }
    }

    #[test]
    fn ipv6_unicast_on_loopback() {
        let lo6 = |port| SocketAddr::from((Ipv6Addr::LOCALHOST, port));
        let Ok(mut b) = UdpHeartbeat::bind(&UdpConfig::Unicast {
            bind: lo6(0),
            peers: vec![lo6(9)],
        }) else {
            lvs_testsupport::skip("ipv6_unicast_on_loopback", "no IPv6 on lo");
            return;
        };
        let mut a = UdpHeartbeat::bind(&UdpConfig::Unicast {
            bind: lo6(0),
            peers: vec![b.local_addr().unwrap()],
        })
        .unwrap();
        assert_eq!(a.send_all(b"beat6"), 1);
        let (msg, from) = recv_one(&mut b);
        assert_eq!(msg, b"beat6");
        assert_eq!(from, a.local_addr().unwrap());
        assert!(b.is_peer_address(&lo6(9)));
    }

    /// Both IPv6 scopes the configuration offers, between the two ends of a veth pair in a
    /// fresh namespace (each socket joined on its own end): a link-local group (ff02::/16,
    /// scoped by the interface) and a site group (ff05::/16, kept on the interface by
    /// IPV6_MULTICAST_IF).
    #[test]
    fn ipv6_multicast_groups() {
        let got = in_netns(|| {
            // No duplicate-address detection: the link-local source is usable at once.
            for k in ["all", "default"] {
                let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{k}/accept_dad"), "0");
            }
            let _ = std::process::Command::new("ip")
                .args(["link", "add", "va", "type", "veth", "peer", "name", "vb"])
                .status();
            for dev in ["va", "vb"] {
                let _ = std::process::Command::new("ip")
                    .args(["link", "set", dev, "up"])
                    .status();
            }
            let mut out = Vec::new();
            for group in ["ff02::694:1", "ff05::694:2"] {
                let group: Ipv6Addr = group.parse().unwrap();
                let config = |interface: &str| UdpConfig::Multicast6 {
                    group,
                    port: 6942,
                    interface: interface.into(),
                };
                let mut a = UdpHeartbeat::bind(&config("va")).unwrap();
                let mut b = UdpHeartbeat::bind(&config("vb")).unwrap();
                let va = nix::net::if_::if_nametoindex("va").unwrap();
                assert_eq!(
                    a.destinations(),
                    &[SocketAddr::V6(SocketAddrV6::new(group, 6942, 0, va))]
                );
                // Sending fails until the link-local source address is there: send on every
                // poll, take the first datagram that arrives.
                let (msg, from) =
                    lvs_testsupport::wait_for("the group datagram", Duration::from_secs(3), || {
                        a.send_all(b"group beat 6");
                        let mut buf = [0u8; MAX_DATAGRAM];
                        b.recv(&mut buf)
                            .unwrap()
                            .map(|(n, from)| (buf[..n].to_vec(), from))
                    });
                assert!(b.is_peer_address(&from));
                out.push((msg, from));
            }
            out
        });
        match got {
            Some(got) => {
                for (msg, from) in got {
                    assert_eq!(msg, b"group beat 6");
                    assert!(from.is_ipv6(), "{from}");
                }
            }
            None => {
                lvs_testsupport::skip("ipv6_multicast_groups", "cannot make a network namespace")
            }
        }
    }

    #[test]
    fn unicast_without_peers_is_refused() {
        let e = UdpHeartbeat::bind(&UdpConfig::Unicast {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            peers: vec![],
        })
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = UdpHeartbeat::bind(&UdpConfig::Multicast {
            group: Ipv4Addr::new(10, 0, 0, 1),
            port: 0,
            interface: Ipv4Addr::LOCALHOST,
        })
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = UdpHeartbeat::bind(&UdpConfig::Multicast6 {
            group: Ipv6Addr::LOCALHOST,
            port: 0,
            interface: "lo".into(),
        })
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
