//! The Ethernet layer: MAC rewriting in place, and fresh Ethernet headers for built frames.

use etherparse::{EtherType, Ethernet2Header};

use crate::bytes::put_bytes;
use crate::error::RewriteError;
use crate::parse::{ETH_HEADER_LEN, Mac};

/// The MAC addresses of a frame the director sends: its own interface's and the next hop's
/// (a real server, or the router toward the client).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MacPair {
    /// Source: the director's interface.
    pub src: Mac,
    /// Destination: the next hop, from the neighbour table.
    pub dst: Mac,
}

/// Sets the destination and source MAC of `frame` in place (a VLAN tag, if any, is kept).
pub fn set_macs(frame: &mut [u8], macs: MacPair) -> Result<(), RewriteError> {
    let header = frame.get_mut(..12).ok_or(RewriteError::FrameMismatch)?;
    let (dst, src) = header.split_at_mut(6);
    dst.copy_from_slice(&macs.dst);
    src.copy_from_slice(&macs.src);
    Ok(())
}

/// Writes an untagged Ethernet II header carrying `ether_type` at the start of `out`.
pub(crate) fn write_eth(out: &mut [u8], macs: MacPair, ether_type: EtherType) -> Option<usize> {
    let header = Ethernet2Header {
        source: macs.src,
        destination: macs.dst,
        ether_type,
    };
    put_bytes(out, 0, &header.to_bytes())?;
    Some(ETH_HEADER_LEN)
}
