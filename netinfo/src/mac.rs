//! Ethernet MAC addresses.

use std::fmt;
use std::str::FromStr;

/// A 48-bit Ethernet address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// The six bytes, if `bytes` is exactly six long.
    #[must_use]
    pub fn from_slice(bytes: &[u8]) -> Option<MacAddr> {
        <[u8; 6]>::try_from(bytes).ok().map(MacAddr)
    }

    /// The address as bytes.
    #[must_use]
    pub const fn octets(self) -> [u8; 6] {
        self.0
    }

    /// True for 00:00:00:00:00:00 (loopback and some virtual devices).
    #[must_use]
    pub fn is_zero(self) -> bool {
        self.0 == [0; 6]
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The text was not a MAC address of the form `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a MAC address (expected six hex bytes like 02:00:00:00:00:01)")]
pub struct BadMacAddr(pub String);

impl FromStr for MacAddr {
    type Err = BadMacAddr;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadMacAddr(s.to_owned());
        let mut out = [0u8; 6];
        let mut parts = s.trim().split(':');
        for byte in &mut out {
            let part = parts.next().ok_or_else(bad)?;
            if part.is_empty() || part.len() > 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        let m = MacAddr([0x02, 0, 0xab, 0x10, 0xff, 1]);
        assert_eq!(m.to_string(), "02:00:ab:10:ff:01");
        assert_eq!("02:00:AB:10:ff:01".parse::<MacAddr>(), Ok(m));
        assert!("02:00:ab:10:ff".parse::<MacAddr>().is_err());
        assert!("02:00:ab:10:ff:01:02".parse::<MacAddr>().is_err());
        assert!("02:00:ab:10:ff:zz".parse::<MacAddr>().is_err());
        assert_eq!(MacAddr::from_slice(&[1, 2, 3]), None);
    }
}
