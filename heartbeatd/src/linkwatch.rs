//! Carrier of the interfaces the virtual addresses are served on, watched over netlink.
//!
//! A director whose link is down cannot serve the VIP, yet it still hears its peer on the
//! serial line, so without this the peer would never take over. A link down is a local
//! fault: the daemon releases the VIPs and tells the peer (its heartbeats say `fault` on
//! every medium still working); when every watched link is back, it returns as backup.

use std::os::fd::RawFd;

use lvs_netinfo::{Netlink, NetlinkMonitor};

/// The watched interfaces and their last known carrier.
#[derive(Debug)]
pub struct LinkWatch {
    monitor: NetlinkMonitor,
    links: Vec<(String, bool)>,
}

impl LinkWatch {
    /// Subscribes to link changes (before the first reading, so no change falls between).
    pub fn open(names: &[String], nl: &mut Netlink) -> lvs_netinfo::Result<LinkWatch> {
        let monitor = NetlinkMonitor::open()?;
        let mut w = LinkWatch {
            monitor,
            links: names.iter().map(|n| (n.clone(), true)).collect(),
        };
        w.refresh(nl);
        Ok(w)
    }

    /// The notification socket, for the poll.
    pub fn raw_fd(&self) -> RawFd {
        use std::os::fd::AsRawFd;
        self.monitor.as_raw_fd()
    }

    /// Reads the pending notifications; true when a watched link's carrier changed.
    pub fn readable(&mut self, nl: &mut Netlink) -> bool {
        match self.monitor.drain() {
            Ok(c) if !(c.links || c.overrun) => false,
            _ => self.refresh(nl),
        }
    }

    /// Reads every watched link's carrier; true when one changed.
    pub fn refresh(&mut self, nl: &mut Netlink) -> bool {
        let mut changed = false;
        for (name, up) in &mut self.links {
            // A missing interface has no carrier.
            let now = nl
                .link_by_name(name)
                .map(|l| l.up && l.running)
                .unwrap_or(false);
            if now != *up {
                *up = now;
                changed = true;
            }
        }
        changed
    }

    /// The links without carrier.
    pub fn down(&self) -> Vec<&str> {
        self.links
            .iter()
            .filter(|(_, up)| !up)
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// Every watched link and its carrier.
    pub fn links(&self) -> &[(String, bool)] {
        &self.links
    }
}
