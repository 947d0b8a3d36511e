//! Network interfaces (RTM_GETLINK).

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};

use crate::error::{NetinfoError, Result};
use crate::mac::MacAddr;
use crate::rtnl::Netlink;

/// One network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Kernel interface index.
    pub ifindex: u32,
    /// Interface name (`eth0`).
    pub name: String,
    /// Hardware address, when the interface has a 6-byte one (Ethernet, veth, loopback's zeros).
    pub mac: Option<MacAddr>,
    /// MTU in bytes.
    pub mtu: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// Operationally up: carrier present (IFF_RUNNING).
    pub running: bool,
    /// The loopback interface (IFF_LOOPBACK).
    pub loopback: bool,
    /// The interface does not use ARP (IFF_NOARP: tunnels, point-to-point links).
    pub noarp: bool,
}

impl Link {
    /// Whether the director forwards on this interface by default: not loopback, Ethernet-like.
    #[must_use]
    pub fn is_forwarding_candidate(&self) -> bool {
        !self.loopback && !self.noarp && self.mac.is_some_and(|m| !m.is_zero())
    }
}

/// Build a [`Link`] from an RTM_NEWLINK message.
pub(crate) fn link_from_message(m: &LinkMessage) -> Link {
    let flags = m.header.flags;
    let mut link = Link {
        ifindex: m.header.index,
        name: String::new(),
        mac: None,
        mtu: 0,
        up: flags.contains(LinkFlags::Up),
        running: flags.contains(LinkFlags::Running),
        loopback: flags.contains(LinkFlags::Loopback),
        noarp: flags.contains(LinkFlags::Noarp),
    };
    for attr in &m.attributes {
        match attr {
            LinkAttribute::IfName(name) => link.name.clone_from(name),
            LinkAttribute::Address(addr) => link.mac = MacAddr::from_slice(addr),
            LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
            _ => {}
        }
    }
    link
}

impl Netlink {
    /// Every interface of this network namespace, sorted by index.
    ///
    /// # Errors
    /// Netlink failures.
    pub fn links(&mut self) -> Result<Vec<Link>> {
        let req = RouteNetlinkMessage::GetLink(LinkMessage::default());
        let mut links: Vec<Link> = self
            .dump(&req, "interface")?
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_from_message(l)),
                _ => None,
            })
            .collect();
        links.sort_by_key(|l| l.ifindex);
        Ok(links)
    }

    /// The interface called `name`.
    ///
    /// # Errors
    /// [`NetinfoError::NoSuchInterface`] when there is none; netlink failures.
    pub fn link_by_name(&mut self, name: &str) -> Result<Link> {
        self.links()?
            .into_iter()
            .find(|l| l.name == name)
            .ok_or_else(|| NetinfoError::NoSuchInterface(name.to_owned()))
    }

    /// The interface with index `ifindex`.
    ///
    /// # Errors
    /// [`NetinfoError::NoSuchIfindex`] when there is none; netlink failures.
    pub fn link_by_index(&mut self, ifindex: u32) -> Result<Link> {
        self.links()?
            .into_iter()
            .find(|l| l.ifindex == ifindex)
            .ok_or(NetinfoError::NoSuchIfindex(ifindex))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtnl::tests::{nla, nlmsg};
    use crate::rtnl::{Frame, classify};

    #[test]
    fn parses_a_raw_newlink() {
        // struct ifinfomsg: family, pad, type (ARPHRD_ETHER=1), index 7, flags UP|RUNNING, change.
        let mut payload = vec![0u8, 0];
        payload.extend(1u16.to_ne_bytes());
        payload.extend(7i32.to_ne_bytes());
        payload.extend((0x1u32 | 0x40).to_ne_bytes());
        payload.extend(0u32.to_ne_bytes());
        payload.extend(nla(3, b"veth0\0")); // IFLA_IFNAME
        payload.extend(nla(1, &[2, 0, 0, 0, 0, 9])); // IFLA_ADDRESS
        payload.extend(nla(4, &1400u32.to_ne_bytes())); // IFLA_MTU
        payload.extend(nla(0x7fff, &[1, 2, 3, 4])); // unknown attribute: ignored
        let raw = nlmsg(16, 2, 1, &payload);
        let Frame::Message(RouteNetlinkMessage::NewLink(m)) = classify(&raw, &String::new).unwrap()
        else {
            panic!("not a link");
        };
        let link = link_from_message(&m);
        assert_eq!(
            link,
            Link {
                ifindex: 7,
                name: "veth0".into(),
                mac: Some(MacAddr([2, 0, 0, 0, 0, 9])),
                mtu: 1400,
                up: true,
                running: true,
                loopback: false,
                noarp: false,
            }
        );
        assert!(link.is_forwarding_candidate());
    }
}
