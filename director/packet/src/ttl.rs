//! The TTL a router must decrement.

use crate::bytes::{get_u16, put_u16};
use crate::checksum::update16;
use crate::error::RewriteError;
use crate::parse::Packet;

/// Decrements the IPv4 TTL of `pkt` in `frame` and updates the header checksum incrementally.
///
/// A TTL of 1 or 0 gives [`RewriteError::TtlExpired`] and leaves the frame unchanged, so the
/// caller can still quote it in an ICMP "time exceeded" ([`crate::icmp_time_exceeded`]).
/// The TTL is read from the frame, not from `pkt`.
pub fn decrement_ttl(frame: &mut [u8], pkt: &Packet) -> Result<(), RewriteError> {
    pkt.check_frame(frame)?;
    // TTL and protocol form one 16-bit word of the header (bytes 8 and 9).
    let word_off = pkt.l3 + 8;
    let csum_off = pkt.l3 + 10;
    let old = get_u16(frame, word_off).ok_or(RewriteError::FrameMismatch)?;
    if old >> 8 <= 1 {
        return Err(RewriteError::TtlExpired);
    }
    let new = old - 0x100;
    let csum = get_u16(frame, csum_off).ok_or(RewriteError::FrameMismatch)?;
    put_u16(frame, word_off, new).ok_or(RewriteError::FrameMismatch)?;
    put_u16(frame, csum_off, update16(csum, old, new)).ok_or(RewriteError::FrameMismatch)
}
