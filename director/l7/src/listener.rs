//! A content service's listening socket, one per worker, all bound to the same VIP:port with
//! `SO_REUSEPORT` so the kernel spreads connections over the workers. `IP_FREEBIND` lets it bind
//! before the VIP is on the host: heartbeatd adds the address only when this director becomes
//! active, and the listener must already be there then (and an IPv6 VIP may still be tentative,
//! in duplicate-address detection, when it is).
//!
//! An IPv6 listener is always `IPV6_V6ONLY`, whatever `net.ipv6.bindv6only` says: a service on
//! `[::]:80` serves IPv6 clients only, and one on `0.0.0.0:80` beside it serves IPv4. A
//! dual-stack socket would see IPv4 clients as `::ffff:a.b.c.d` and report them so in
//! `X-Forwarded-For`, `Forwarded` and PROXY headers, and would take the port from an IPv4
//! service on the same port; each family is configured as its own service instead.

use std::net::SocketAddr;

use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockProtocol, SockType, SockaddrStorage, bind, listen,
    setsockopt, socket, sockopt,
};

pub(crate) fn bind_reuseport(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        SockProtocol::Tcp,
    )?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    setsockopt(&fd, sockopt::ReusePort, &true)?;
    // IP_FREEBIND (SOL_IP) applies to IPv6 sockets too.
    setsockopt(&fd, sockopt::IpFreebind, &true)?;
    if family == AddressFamily::Inet6 {
        setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    }
    // Accepted connections inherit it: no setsockopt per client connection.
    setsockopt(&fd, sockopt::TcpNoDelay, &true)?;
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrStorage::from(addr),
    )?;
    listen(&fd, Backlog::new(1024).unwrap_or(Backlog::MAXCONN))?;
    Ok(std::net::TcpListener::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A content service starts on a standby director, before its VIP is on the host (an IPv6
    /// VIP may even still be tentative, in DAD, when it is), and every worker gets a listener
    /// on the same address.
    #[test]
    fn binds_an_address_not_on_the_host_once_per_worker() {
        for ip in ["192.0.2.123", "2001:db8::123"] {
            let vip = SocketAddr::new(ip.parse().unwrap(), 0);
            let first = bind_reuseport(vip).expect("freebind");
            let addr = first.local_addr().unwrap();
            assert_eq!(addr.ip().to_string(), ip);
            let second = bind_reuseport(addr).expect("a second listener with SO_REUSEPORT");
            assert_eq!(second.local_addr().unwrap(), addr);
        }
    }

    /// Clients' connections leave the listener with Nagle's algorithm off, as the proxy's
    /// answers must not wait for acknowledgements.
    #[test]
    fn accepted_connections_have_no_delay() {
        for ip in ["127.0.0.1", "::1"] {
            let l = bind_reuseport(SocketAddr::new(ip.parse().unwrap(), 0)).expect("bind");
            let _c = std::net::TcpStream::connect(l.local_addr().unwrap()).expect("connect");
            l.set_nonblocking(false).unwrap();
            let (a, _) = l.accept().expect("accept");
            assert!(a.nodelay().unwrap(), "{ip}");
        }
    }

    /// `[::]` is IPv6 only, deliberately: an IPv4 client of the port is not taken by it (it
    /// is refused here, with no IPv4 listener), while an IPv6 client is served; and an IPv4
    /// service can listen on the same port beside it.
    #[test]
    fn an_ipv6_wildcard_listener_is_ipv6_only() {
        use std::net::{Ipv4Addr, Ipv6Addr, TcpStream};
        let v6 = bind_reuseport("[::]:0".parse().unwrap()).expect("bind [::]");
        let fd = std::os::fd::AsFd::as_fd(&v6);
        assert!(nix::sys::socket::getsockopt(&fd, sockopt::Ipv6V6Only).unwrap());
        let port = v6.local_addr().unwrap().port();
        TcpStream::connect(SocketAddr::from((Ipv6Addr::LOCALHOST, port)))
            .expect("an IPv6 client reaches [::]");
        let err = TcpStream::connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .expect_err("an IPv4 client must not reach an IPv6-only listener");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
        let v4 = bind_reuseport(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))
            .expect("0.0.0.0 beside [::] on the same port");
        TcpStream::connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .expect("the IPv4 listener serves IPv4");
        drop(v4);
    }
}
