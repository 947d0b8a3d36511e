//! The order listings and saves use: ipvsadm's `ipvs_cmp_services` / `ipvs_cmp_dests`.

use std::cmp::Ordering;
use std::net::IpAddr;

use lvs_proto::{DestStatus, ServiceStatus};

/// IPv4 before IPv6, then by address (numerically), then by port.
fn cmp_addr_port(a: (IpAddr, u16), b: (IpAddr, u16)) -> Ordering {
    a.0.is_ipv6()
        .cmp(&b.0.is_ipv6())
        .then(a.0.cmp(&b.0))
        .then(a.1.cmp(&b.1))
}

/// Services by firewall mark (address services, mark 0, first), address family, protocol
/// (TCP before UDP), address, port; each service's real servers by address and port.
pub fn sort_services(services: &mut [ServiceStatus]) {
    services.sort_by(|a, b| {
        let (a, b) = (&a.conf.key, &b.conf.key);
        let mark = |k: &lvs_proto::ServiceKey| k.mark().unwrap_or(0);
        mark(a)
            .cmp(&mark(b))
            .then(a.addr.is_ipv6().cmp(&b.addr.is_ipv6()))
            .then(a.protocol.cmp(&b.protocol))
            .then(cmp_addr_port((a.addr, a.port), (b.addr, b.port)))
    });
    for s in services {
        sort_dests(&mut s.dests);
    }
}

/// Real servers by address family, address, port.
pub fn sort_dests(dests: &mut [DestStatus]) {
    dests.sort_by(|a, b| cmp_addr_port((a.conf.addr, a.conf.port), (b.conf.addr, b.conf.port)));
}
