//! Receive offloads (GRO, LRO) via the SIOCETHTOOL ioctl.
//!
//! An AF_PACKET forwarder must see the packets as they were on the wire: with GRO or LRO on,
//! the kernel hands it merged "super-packets" larger than the MTU, which it cannot forward.
//! [`disable_receive_offloads`] turns both off and returns what it changed, so the director can
//! put them back with [`OffloadChange::restore`] when it stops.

use std::os::fd::{AsFd, OwnedFd};

use crate::error::{NetinfoError, Result};
use crate::sys::{IFNAMSIZ, ethtool_value, socket};

/// ethtool commands (linux/ethtool.h).
const ETHTOOL_GFLAGS: u32 = 0x25;
const ETHTOOL_SFLAGS: u32 = 0x26;
const ETHTOOL_GGRO: u32 = 0x2b;
const ETHTOOL_SGRO: u32 = 0x2c;
/// LRO bit of ETHTOOL_GFLAGS/SFLAGS.
const ETH_FLAG_LRO: u32 = 1 << 15;

/// What [`disable_receive_offloads`] changed on one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffloadChange {
    /// Interface name.
    pub ifname: String,
    /// GRO was on and has been turned off.
    pub gro_turned_off: bool,
    /// LRO was on and has been turned off.
    pub lro_turned_off: bool,
}

impl OffloadChange {
    /// True when nothing was changed (both were already off).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        !self.gro_turned_off && !self.lro_turned_off
    }

    /// Turn back on what was turned off.
    ///
    /// # Errors
    /// The interface is gone or the ioctl fails.
    pub fn restore(&self) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let e = Ethtool::open(&self.ifname)?;
        if self.gro_turned_off {
            e.set(ETHTOOL_SGRO, 1, "turn GRO back on")?;
        }
        if self.lro_turned_off {
            let flags = e.get(ETHTOOL_GFLAGS, "read the LRO setting")?;
            e.set(ETHTOOL_SFLAGS, flags | ETH_FLAG_LRO, "turn LRO back on")?;
        }
        Ok(())
    }
}

/// Turn GRO and LRO off on `ifname` and report what was on before.
///
/// # Errors
/// A bad interface name, a missing interface, or missing CAP_NET_ADMIN (EPERM).
pub fn disable_receive_offloads(ifname: &str) -> Result<OffloadChange> {
    let e = Ethtool::open(ifname)?;
    let mut change = OffloadChange {
        ifname: ifname.to_owned(),
        gro_turned_off: false,
        lro_turned_off: false,
    };
    if e.get(ETHTOOL_GGRO, "read the GRO setting")? != 0 {
        e.set(ETHTOOL_SGRO, 0, "turn GRO off")?;
        change.gro_turned_off = true;
    }
    let lro = e.lro_flags()?.filter(|f| f & ETH_FLAG_LRO != 0);
    if let Some(flags) = lro {
        if let Err(err) = e.set(ETHTOOL_SFLAGS, flags & !ETH_FLAG_LRO, "turn LRO off") {
            // Leave the interface as we found it.
            if change.gro_turned_off
                && let Err(back) = e.set(ETHTOOL_SGRO, 1, "turn GRO back on")
            {
                lvs_common::event!(
                    log::Level::Error,
                    "offload_restore_failed",
                    interface = ifname,
                    reason = back,
                );
            }
            return Err(err);
        }
        change.lro_turned_off = true;
    }
    Ok(change)
}

/// Whether GRO is on for `ifname`.
///
/// # Errors
/// A bad interface name or a failed ioctl.
pub fn gro_enabled(ifname: &str) -> Result<bool> {
    Ethtool::open(ifname)?
        .get(ETHTOOL_GGRO, "read the GRO setting")
        .map(|v| v != 0)
}

/// Whether LRO is on for `ifname` (false for drivers without LRO).
///
/// # Errors
/// A bad interface name or a failed ioctl.
pub fn lro_enabled(ifname: &str) -> Result<bool> {
    Ok(Ethtool::open(ifname)?
        .lro_flags()?
        .is_some_and(|f| f & ETH_FLAG_LRO != 0))
}

/// Set GRO on `ifname` on or off (what `ethtool -K <if> gro on|off` does).
///
/// # Errors
/// A bad interface name or a failed ioctl.
pub fn set_gro(ifname: &str, on: bool) -> Result<()> {
    let what = if on { "turn GRO on" } else { "turn GRO off" };
    Ethtool::open(ifname)?.set(ETHTOOL_SGRO, u32::from(on), what)
}

/// An interface name and a socket to run ethtool ioctls on.
struct Ethtool {
    ifname: String,
    name: [u8; IFNAMSIZ],
    fd: OwnedFd,
}

impl Ethtool {
    fn open(ifname: &str) -> Result<Self> {
        let bytes = ifname.as_bytes();
        if bytes.is_empty() || bytes.len() >= IFNAMSIZ || bytes.iter().any(|&b| b == 0 || b == b'/')
        {
            return Err(NetinfoError::BadInterfaceName(ifname.to_owned()));
        }
        let mut name = [0u8; IFNAMSIZ];
        name[..bytes.len()].copy_from_slice(bytes);
        let fd =
            socket(libc::AF_INET, libc::SOCK_DGRAM, 0).map_err(|source| NetinfoError::Ethtool {
                ifname: ifname.to_owned(),
                op: "open a socket for ethtool",
                source,
            })?;
        Ok(Self {
            ifname: ifname.to_owned(),
            name,
            fd,
        })
    }

    fn ioctl(&self, cmd: u32, data: u32, op: &'static str) -> Result<u32> {
        ethtool_value(self.fd.as_fd(), self.name, cmd, data).map_err(|source| {
            if source.raw_os_error() == Some(libc::ENODEV) {
                NetinfoError::NoSuchInterface(self.ifname.clone())
            } else {
                NetinfoError::Ethtool {
                    ifname: self.ifname.clone(),
                    op,
                    source,
                }
            }
        })
    }

    fn get(&self, cmd: u32, op: &'static str) -> Result<u32> {
        self.ioctl(cmd, 0, op)
    }

    fn set(&self, cmd: u32, data: u32, op: &'static str) -> Result<()> {
        self.ioctl(cmd, data, op).map(|_| ())
    }

    /// ETHTOOL_GFLAGS, or `None` when the driver does not support it (so no LRO).
    fn lro_flags(&self) -> Result<Option<u32>> {
        match self.get(ETHTOOL_GFLAGS, "read the LRO setting") {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.errno() == Some(libc::EOPNOTSUPP) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_are_refused_before_any_ioctl() {
        for bad in ["", "a-very-long-interface-name", "a/b", "a\0b"] {
            assert!(matches!(
                Ethtool::open(bad),
                Err(NetinfoError::BadInterfaceName(_))
            ));
        }
    }
}
