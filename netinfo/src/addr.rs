//! IPv4 and IPv6 addresses on interfaces (RTM_GETADDR, RTM_NEWADDR, RTM_DELADDR).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::{NetinfoError, Result};
use crate::rtnl::Netlink;

/// One IPv4 address assigned to an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Address {
    /// Interface index.
    pub ifindex: u32,
    /// The address itself (IFA_LOCAL).
    pub addr: Ipv4Addr,
    /// Prefix length (`/24`).
    pub prefix_len: u8,
    /// Label (`eth0:1`), when the kernel reports one.
    pub label: Option<String>,
    /// A secondary address (another address of the same subnet came first).
    pub secondary: bool,
}

/// One IPv6 address assigned to an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Address {
    /// Interface index.
    pub ifindex: u32,
    /// The address itself.
    pub addr: Ipv6Addr,
    /// Prefix length (`/64`).
    pub prefix_len: u8,
    /// Duplicate-address detection has not finished: the kernel neither uses the address as
    /// a source nor accepts it in a bind until it has.
    pub tentative: bool,
    /// Added with `nodad`: usable at once, never probed.
    pub nodad: bool,
    /// Duplicate-address detection found another node using it: the address is dead.
    pub dad_failed: bool,
}

/// What an idempotent add or delete did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressChange {
    /// The address was added.
    Added,
    /// The same address and prefix length were already on the interface; nothing changed.
    AlreadyPresent,
    /// The address was removed.
    Removed,
    /// The address was not on the interface; nothing changed.
    AlreadyAbsent,
}

pub(crate) fn address_from_message(m: &AddressMessage) -> Option<Ipv4Address> {
    if m.header.family != AddressFamily::Inet {
        return None;
    }
    let mut local = None;
    let mut address = None;
    let mut label = None;
    let mut secondary = m.header.flags.contains(AddressHeaderFlags::Secondary);
    for attr in &m.attributes {
        match attr {
            AddressAttribute::Local(IpAddr::V4(a)) => local = Some(*a),
            AddressAttribute::Address(IpAddr::V4(a)) => address = Some(*a),
            AddressAttribute::Label(l) => label = Some(l.clone()),
            AddressAttribute::Flags(f) => secondary |= f.contains(AddressFlags::Secondary),
            _ => {}
        }
    }
    Some(Ipv4Address {
        ifindex: m.header.index,
        addr: local.or(address)?,
        prefix_len: m.header.prefix_len,
        label,
        secondary,
    })
}

pub(crate) fn ipv6_address_from_message(m: &AddressMessage) -> Option<Ipv6Address> {
    if m.header.family != AddressFamily::Inet6 {
        return None;
    }
    // IFA_FLAGS (32 bits) supersedes the header's 8 when present.
    let mut flags = AddressFlags::from_bits_truncate(u32::from(m.header.flags.bits()));
    let mut address = None;
    let mut local = None;
    for attr in &m.attributes {
        match attr {
            AddressAttribute::Address(IpAddr::V6(a)) => address = Some(*a),
            AddressAttribute::Local(IpAddr::V6(a)) => local = Some(*a),
            AddressAttribute::Flags(f) => flags = *f,
            _ => {}
        }
    }
    Some(Ipv6Address {
        ifindex: m.header.index,
        addr: local.or(address)?,
        prefix_len: m.header.prefix_len,
        tentative: flags.contains(AddressFlags::Tentative),
        nodad: flags.contains(AddressFlags::Nodad),
        dad_failed: flags.contains(AddressFlags::Dadfailed),
    })
}

fn ipv6_address_message(
    ifindex: u32,
    addr: Ipv6Addr,
    prefix_len: u8,
    nodad: bool,
) -> Result<AddressMessage> {
    if prefix_len > 128 {
        return Err(NetinfoError::BadIpv6PrefixLength(prefix_len));
    }
    let mut m = AddressMessage::default();
    m.header.family = AddressFamily::Inet6;
    m.header.prefix_len = prefix_len;
    m.header.index = ifindex;
    m.header.scope = if addr.is_loopback() {
        AddressScope::Host
    } else if addr.is_unicast_link_local() {
        AddressScope::Link
    } else {
        AddressScope::Universe
    };
    if nodad {
        m.header.flags = AddressHeaderFlags::Nodad;
        m.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    // IPv6 takes the address as IFA_ADDRESS alone (IFA_LOCAL is for point-to-point peers).
    m.attributes
        .push(AddressAttribute::Address(IpAddr::V6(addr)));
    Ok(m)
}

fn address_message(ifindex: u32, addr: Ipv4Addr, prefix_len: u8) -> Result<AddressMessage> {
    if prefix_len > 32 {
        return Err(NetinfoError::BadPrefixLength(prefix_len));
    }
    let mut m = AddressMessage::default();
    m.header.family = AddressFamily::Inet;
    m.header.prefix_len = prefix_len;
    m.header.index = ifindex;
    m.header.scope = if addr.is_loopback() {
        AddressScope::Host
    } else {
        AddressScope::Universe
    };
    m.attributes.push(AddressAttribute::Local(IpAddr::V4(addr)));
    m.attributes
        .push(AddressAttribute::Address(IpAddr::V4(addr)));
    Ok(m)
}

impl Netlink {
    /// Every address of `family` in this network namespace, as `parse` reads them.
    fn addresses<T>(
        &mut self,
        family: AddressFamily,
        what: &'static str,
        parse: fn(&AddressMessage) -> Option<T>,
    ) -> Result<Vec<T>> {
        let mut req = AddressMessage::default();
        req.header.family = family;
        let msgs = self.dump(&RouteNetlinkMessage::GetAddress(req), what)?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => parse(a),
                _ => None,
            })
            .collect())
    }

    /// RTM_NEWADDR, exclusive: an address already there is no error. `what` says
    /// "ADDR/LEN to interface index N" for messages.
    fn new_address(&mut self, msg: AddressMessage, what: &str) -> Result<AddressChange> {
        let op = || format!("add address {what}");
        match self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            &op,
        ) {
            Ok(_) => Ok(AddressChange::Added),
            Err(e) if e.errno() == Some(libc::EEXIST) => Ok(AddressChange::AlreadyPresent),
            Err(e) => Err(e),
        }
    }

    /// RTM_DELADDR: an address not there is no error. `what` says "ADDR/LEN from interface
    /// index N" for messages.
    fn del_address(&mut self, msg: AddressMessage, what: &str) -> Result<AddressChange> {
        let op = || format!("remove address {what}");
        match self.request(RouteNetlinkMessage::DelAddress(msg), 0, &op) {
            Ok(_) => Ok(AddressChange::Removed),
            Err(e) if e.errno() == Some(libc::EADDRNOTAVAIL) => Ok(AddressChange::AlreadyAbsent),
            Err(e) => Err(e),
        }
    }

    /// Every IPv4 address of this network namespace.
    ///
    /// # Errors
    /// Netlink failures.
    pub fn ipv4_addresses(&mut self) -> Result<Vec<Ipv4Address>> {
        self.addresses(AddressFamily::Inet, "IPv4 address", address_from_message)
    }

    /// Add `addr/prefix_len` to interface `ifindex`, like `ip addr add`.
    ///
    /// Adding an address that is already there with the same prefix length is not an error
    /// ([`AddressChange::AlreadyPresent`]).
    ///
    /// # Errors
    /// A bad prefix length, a missing interface (ENODEV), missing privileges (EPERM) ...
    pub fn add_ipv4_address(
        &mut self,
        ifindex: u32,
        addr: Ipv4Addr,
        prefix_len: u8,
    ) -> Result<AddressChange> {
        let msg = address_message(ifindex, addr, prefix_len)?;
        self.new_address(
            msg,
            &format!("{addr}/{prefix_len} to interface index {ifindex}"),
        )
    }

    /// Remove `addr/prefix_len` from interface `ifindex`, like `ip addr del`.
    ///
    /// Removing an address that is not there is not an error ([`AddressChange::AlreadyAbsent`]).
    /// As with `ip addr del`, removing a primary address also removes the secondaries of its
    /// subnet unless `net.ipv4.conf.<if>.promote_secondaries` is set.
    ///
    /// # Errors
    /// A bad prefix length, a missing interface (ENODEV), missing privileges (EPERM) ...
    pub fn del_ipv4_address(
        &mut self,
        ifindex: u32,
        addr: Ipv4Addr,
        prefix_len: u8,
    ) -> Result<AddressChange> {
        let msg = address_message(ifindex, addr, prefix_len)?;
        self.del_address(
            msg,
            &format!("{addr}/{prefix_len} from interface index {ifindex}"),
        )
    }

    /// Every IPv6 address of this network namespace, with its DAD state.
    ///
    /// # Errors
    /// Netlink failures.
    pub fn ipv6_addresses(&mut self) -> Result<Vec<Ipv6Address>> {
        self.addresses(
            AddressFamily::Inet6,
            "IPv6 address",
            ipv6_address_from_message,
        )
    }

    /// Add `addr/prefix_len` to interface `ifindex`, like `ip -6 addr add` (with `nodad` when
    /// `nodad` is set: the address is usable at once instead of after duplicate-address
    /// detection, about a second with the kernel's defaults).
    ///
    /// Adding an address that is already there is not an error
    /// ([`AddressChange::AlreadyPresent`]).
    ///
    /// # Errors
    /// A bad prefix length, a missing interface (ENODEV), IPv6 disabled on it (EACCES),
    /// missing privileges (EPERM) ...
    pub fn add_ipv6_address(
        &mut self,
        ifindex: u32,
        addr: Ipv6Addr,
        prefix_len: u8,
        nodad: bool,
    ) -> Result<AddressChange> {
        let msg = ipv6_address_message(ifindex, addr, prefix_len, nodad)?;
        self.new_address(
            msg,
            &format!("{addr}/{prefix_len} to interface index {ifindex}"),
        )
    }

    /// Remove `addr/prefix_len` from interface `ifindex`, like `ip -6 addr del`; an address
    /// that is not there is not an error ([`AddressChange::AlreadyAbsent`]).
    ///
    /// # Errors
    /// A bad prefix length, a missing interface (ENODEV), missing privileges (EPERM) ...
    pub fn del_ipv6_address(
        &mut self,
        ifindex: u32,
        addr: Ipv6Addr,
        prefix_len: u8,
    ) -> Result<AddressChange> {
        let msg = ipv6_address_message(ifindex, addr, prefix_len, false)?;
        self.del_address(
            msg,
            &format!("{addr}/{prefix_len} from interface index {ifindex}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtnl::tests::{nla, nlmsg};
    use crate::rtnl::{Frame, classify};

    #[test]
    fn parses_a_raw_newaddr() {
        // struct ifaddrmsg: family AF_INET, prefixlen 24, flags SECONDARY, scope 0, index 3.
        let mut payload = vec![2u8, 24, 0x01, 0];
        payload.extend(3u32.to_ne_bytes());
        payload.extend(nla(1, &[10, 0, 0, 9])); // IFA_ADDRESS
        payload.extend(nla(2, &[10, 0, 0, 9])); // IFA_LOCAL
        payload.extend(nla(3, b"eth0:vip\0")); // IFA_LABEL
        let raw = nlmsg(20, 0, 1, &payload);
        let Frame::Message(RouteNetlinkMessage::NewAddress(m)) =
            classify(&raw, &String::new).unwrap()
        else {
            panic!("not an address");
        };
        assert_eq!(
            address_from_message(&m),
            Some(Ipv4Address {
                ifindex: 3,
                addr: Ipv4Addr::new(10, 0, 0, 9),
                prefix_len: 24,
                label: Some("eth0:vip".into()),
                secondary: true,
            })
        );
    }

    #[test]
    fn parses_a_raw_ipv6_newaddr_with_its_dad_state() {
        // struct ifaddrmsg: family AF_INET6, prefixlen 128, flags 0, scope 0, index 7.
        let mut payload = vec![10u8, 128, 0, 0];
        payload.extend(7u32.to_ne_bytes());
        let addr: Ipv6Addr = "2001:db8::100".parse().unwrap();
        payload.extend(nla(1, &addr.octets())); // IFA_ADDRESS
        payload.extend(nla(8, &0x42u32.to_ne_bytes())); // IFA_FLAGS: NODAD | TENTATIVE
        let raw = nlmsg(20, 0, 1, &payload);
        let Frame::Message(RouteNetlinkMessage::NewAddress(m)) =
            classify(&raw, &String::new).unwrap()
        else {
            panic!("not an address");
        };
        assert_eq!(address_from_message(&m), None, "not IPv4");
        assert_eq!(
            ipv6_address_from_message(&m),
            Some(Ipv6Address {
                ifindex: 7,
                addr,
                prefix_len: 128,
                tentative: true,
                nodad: true,
                dad_failed: false,
            })
        );
    }

    #[test]
    fn an_ipv6_nodad_request_carries_the_flag_both_ways() {
        let m = ipv6_address_message(3, "2001:db8::1".parse().unwrap(), 128, true).unwrap();
        assert_eq!(m.header.family, AddressFamily::Inet6);
        assert!(m.header.flags.contains(AddressHeaderFlags::Nodad));
        assert!(
            m.attributes
                .contains(&AddressAttribute::Flags(AddressFlags::Nodad))
        );
        let e = ipv6_address_message(1, Ipv6Addr::LOCALHOST, 129, false).unwrap_err();
        assert!(matches!(e, NetinfoError::BadIpv6PrefixLength(129)));
    }

    #[test]
    fn rejects_bad_prefix_before_asking_the_kernel() {
        let e = address_message(1, Ipv4Addr::LOCALHOST, 33).unwrap_err();
        assert!(matches!(e, NetinfoError::BadPrefixLength(33)));
        assert!(e.to_string().contains("/33"));
    }
}
