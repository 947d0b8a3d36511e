//! The TTL (IPv6: hop limit) a router must decrement.

use crate::bytes::{get_u16, put_u16};
use crate::checksum::update16;
use crate::error::RewriteError;
use crate::family::Family;
use crate::parse::Packet;

/// Decrements the IPv4 TTL of `pkt` in `frame` and updates the header checksum incrementally,
/// or decrements the IPv6 hop limit (which no checksum covers).
///
/// A TTL or hop limit of 1 or 0 gives [`RewriteError::TtlExpired`] and leaves the frame
/// unchanged, so the caller can still quote it in an ICMP "time exceeded"
/// ([`crate::icmp_time_exceeded`]). The TTL is read from the frame, not from `pkt`.
pub fn decrement_ttl(frame: &mut [u8], pkt: &Packet) -> Result<(), RewriteError> {
    pkt.check_frame(frame)?;
    // IPv4: TTL and protocol form one 16-bit word of the header (bytes 8 and 9).
    // IPv6: next header and hop limit (bytes 6 and 7).
    let (word_off, shift) = match pkt.family() {
        Family::V4 => (pkt.l3 + 8, 8),
        Family::V6 => (pkt.l3 + 6, 0),
    };
    let old = get_u16(frame, word_off).ok_or(RewriteError::FrameMismatch)?;
    if (old >> shift) & 0xff <= 1 {
        return Err(RewriteError::TtlExpired);
    }
    let new = old - (1 << shift);
    let Some(csum_off) = pkt.family().header_checksum_offset() else {
        return put_u16(frame, word_off, new).ok_or(RewriteError::FrameMismatch);
    };
    let csum_off = pkt.l3 + csum_off;
    let csum = get_u16(frame, csum_off).ok_or(RewriteError::FrameMismatch)?;
    put_u16(frame, word_off, new).ok_or(RewriteError::FrameMismatch)?;
    put_u16(frame, csum_off, update16(csum, old, new)).ok_or(RewriteError::FrameMismatch)
}
