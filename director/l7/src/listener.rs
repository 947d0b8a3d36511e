//! A content service's listening socket, one per worker, all bound to the same VIP:port with
//! `SO_REUSEPORT` so the kernel spreads connections over the workers. `IP_FREEBIND` lets it bind
//! before the VIP is on the host: heartbeatd adds the address only when this director becomes
//! active, and the listener must already be there then.

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
    setsockopt(&fd, sockopt::IpFreebind, &true)?;
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

    /// A content service starts on a standby director, before its VIP is on the host, and
    /// every worker gets a listener on the same address.
    #[test]
    fn binds_an_address_not_on_the_host_once_per_worker() {
        let first = bind_reuseport("192.0.2.123:0".parse().unwrap()).expect("freebind");
        let addr = first.local_addr().unwrap();
        assert_eq!(addr.ip().to_string(), "192.0.2.123");
        let second = bind_reuseport(addr).expect("a second listener with SO_REUSEPORT");
        assert_eq!(second.local_addr().unwrap(), addr);
    }
}
