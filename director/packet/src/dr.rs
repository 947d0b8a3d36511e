//! VS/DR: the real server holds the VIP on a non-ARPing interface, so only the MACs change.

use crate::checksum::complete_l4_checksum;
use crate::error::RewriteError;
use crate::eth::{MacPair, set_macs};
use crate::parse::Packet;

/// Rewrites `frame` for VS/DR: source MAC = the director's interface, destination MAC = the
/// real server's. The IP packet is untouched, except that with `csum_partial` (the frame
/// arrived with `TP_STATUS_CSUMNOTREADY`) its TCP/UDP checksum is completed, because the real
/// server would otherwise drop it.
pub fn dr_rewrite(
    frame: &mut [u8],
    pkt: &Packet,
    macs: MacPair,
    csum_partial: bool,
) -> Result<(), RewriteError> {
    pkt.check_frame(frame)?;
    if csum_partial && pkt.flow.protocol.has_ports() {
        complete_l4_checksum(frame, pkt)?;
    }
    set_macs(frame, macs)
}
