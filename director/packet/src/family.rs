//! The two IP families' header layouts, so that each rewrite is written once for both: where
//! an address sits and how long it is, and whether the IP header has a checksum of its own.

use core::net::IpAddr;

use crate::bytes::{get_array, put_bytes};
use crate::error::RewriteError;
use crate::ipv6::IPV6_HEADER_LEN;
use crate::parse::IPV4_HEADER_LEN;

/// An IP version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Family {
    V4,
    V6,
}

/// Which end of a flow a rewrite changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// Source address and port.
    Src,
    /// Destination address and port.
    Dst,
}

impl End {
    /// The other end: a quoted packet travelled the other way.
    pub(crate) const fn opposite(self) -> End {
        match self {
            End::Src => End::Dst,
            End::Dst => End::Src,
        }
    }

    /// Offset of this end's port inside a TCP/UDP header.
    pub(crate) const fn port_offset(self) -> usize {
        match self {
            End::Src => 0,
            End::Dst => 2,
        }
    }
}

impl Family {
    /// The family of `addr`.
    pub(crate) const fn of(addr: IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Length of the IP header without options or extension headers.
    pub(crate) const fn header_len(self) -> usize {
        match self {
            Family::V4 => IPV4_HEADER_LEN,
            Family::V6 => IPV6_HEADER_LEN,
        }
    }

    /// Offset of an address inside the IP header.
    pub(crate) const fn addr_offset(self, end: End) -> usize {
        match (self, end) {
            (Family::V4, End::Src) => 12,
            (Family::V4, End::Dst) => 16,
            (Family::V6, End::Src) => 8,
            (Family::V6, End::Dst) => 24,
        }
    }

    /// Offset of the IPv4 header checksum; IPv6 has none.
    pub(crate) const fn header_checksum_offset(self) -> Option<usize> {
        match self {
            Family::V4 => Some(10),
            Family::V6 => None,
        }
    }

    /// The bytes of `addr`, which must be of this family.
    pub(crate) fn octets(self, addr: IpAddr) -> Result<Octets, RewriteError> {
        match (self, addr) {
            (Family::V4, IpAddr::V4(a)) => Ok(Octets::from_slice(&a.octets())),
            (Family::V6, IpAddr::V6(a)) => Ok(Octets::from_slice(&a.octets())),
            _ => Err(RewriteError::FamilyMismatch),
        }
    }

    /// The address of this family at `off` in `buf`.
    pub(crate) fn read_octets(self, buf: &[u8], off: usize) -> Option<Octets> {
        match self {
            Family::V4 => get_array::<4>(buf, off).map(|a| Octets::from_slice(&a)),
            Family::V6 => get_array::<16>(buf, off).map(|a| Octets::from_slice(&a)),
        }
    }

    /// The address of this family at `off` in `buf`, as an `IpAddr`.
    pub(crate) fn read_addr(self, buf: &[u8], off: usize) -> Option<IpAddr> {
        match self {
            Family::V4 => get_array::<4>(buf, off).map(IpAddr::from),
            Family::V6 => get_array::<16>(buf, off).map(IpAddr::from),
        }
    }
}

/// The bytes of an address of either family, without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Octets {
    buf: [u8; 16],
    len: usize,
}

impl Octets {
    /// At most 16 bytes of `s` (an address is 4 or 16).
    fn from_slice(s: &[u8]) -> Octets {
        let mut buf = [0; 16];
        let len = s.len().min(16);
        buf[..len].copy_from_slice(&s[..len]);
        Octets { buf, len }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Writes the address at `off`; `None` (and nothing written) if it does not fit.
    pub(crate) fn write(&self, buf: &mut [u8], off: usize) -> Option<()> {
        put_bytes(buf, off, self.as_slice())
    }
}
