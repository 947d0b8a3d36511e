//! The device the virtual addresses live on while this node is master: a non-persistent TUN
//! device that lvs-heartbeatd creates at start and holds open for as long as it runs.
//!
//! Why not the physical interface: an address added there outlives the process. A primary
//! whose daemons were SIGKILLed (or that crashed) kept its VIP, its kernel went on answering
//! ARP for it, and every client that re-resolved the VIP was pulled back to a dead director.
//! The kernel deletes a non-persistent TUN device, and every address on it, when the last file
//! descriptor on it is closed, which happens however the process ends (SIGKILL, panic, OOM
//! killer). So the addresses die with the process and no cleanup code has to run.
//!
//! Why it still works as before: an address on any interface is a local address of the host.
//! With the default `arp_ignore = 0` the kernel answers ARP for it on the physical interface
//! (with that interface's MAC), delivers packets for it locally (a listener bound to the VIP
//! accepts connections from the physical interface), and the director's raw sockets see the
//! traffic on the physical interface exactly as before (VS/NAT with the real servers'
//! gateway address, VS/DR, VS/TUN). The addresses go on the device as /32, so no subnet route
//! points into it; gratuitous ARP still goes out on the configured physical interface.

use std::fs::{File, OpenOptions};
use std::io;

use crate::sys::{IFNAMSIZ, set_interface_up, tun_set_iff};

/// The default name of the device.
pub const DEFAULT_NAME: &str = "lvs-vip0";

/// A TUN (layer 3) device ...
const IFF_TUN: libc::c_short = 0x0001;
/// ... without the packet-information header.
const IFF_NO_PI: libc::c_short = 0x1000;

/// Why the device could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum VipDeviceError {
    /// Not a usable interface name.
    #[error("vip_device {0:?}: an interface name is 1 to 15 characters, no '/', no space")]
    BadName(String),
    /// `/dev/net/tun` missing (module `tun` not loaded) or not openable.
    #[error("cannot open /dev/net/tun (is the tun module loaded?): {0}")]
    Open(io::Error),
    /// The kernel refused the device (busy: another lvs-heartbeatd holds it).
    #[error("cannot create TUN device {name} (another lvs-heartbeatd running?): {source}")]
    Create {
        /// The device.
        name: String,
        /// The kernel's answer.
        source: io::Error,
    },
    /// It could not be brought up.
    #[error("cannot bring TUN device {name} up: {source}")]
    Up {
        /// The device.
        name: String,
        /// The kernel's answer.
        source: io::Error,
    },
}

/// The open TUN device; dropping it (or the process ending in any way) deletes the device and
/// its addresses.
#[derive(Debug)]
pub struct VipDevice {
    _file: File,
    name: String,
    ifindex: u32,
}

/// Checks an interface name as the kernel would.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < IFNAMSIZ
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
}

impl VipDevice {
    /// Creates the device `name` (non-persistent, owned by this process) and brings it up.
    pub fn create(name: &str) -> Result<VipDevice, VipDeviceError> {
        if !valid_name(name) {
            return Err(VipDeviceError::BadName(name.to_owned()));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .map_err(VipDeviceError::Open)?;
        // CLOEXEC: a notify command must not inherit the descriptor and keep the device
        // (and the VIPs) alive after we die. std opens with O_CLOEXEC already.
        tun_set_iff(&file, name, IFF_TUN | IFF_NO_PI).map_err(|source| VipDeviceError::Create {
            name: name.to_owned(),
            source,
        })?;
        set_interface_up(name).map_err(|source| VipDeviceError::Up {
            name: name.to_owned(),
            source,
        })?;
        let ifindex = nix::net::if_::if_nametoindex(name).map_err(|e| VipDeviceError::Up {
            name: name.to_owned(),
            source: io::Error::from(e),
        })?;
        Ok(VipDevice {
            _file: file,
            name: name.to_owned(),
            ifindex,
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its interface index (for netlink).
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("lvs-vip0"));
        assert!(!valid_name(""));
        assert!(!valid_name("a/b"));
        assert!(!valid_name("sixteen-chars-xx"));
        assert!(valid_name("fifteen-chars-x"));
    }
}
