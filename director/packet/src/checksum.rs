//! The Internet checksum (RFC 1071): full computation, incremental update (RFC 1624), and the
//! frame-level helpers the rewrites and the tests use.
//!
//! The arithmetic is ones' complement over big-endian 16-bit words. Sums are carried in a
//! `u64` and folded at the end; a 32-bit big-endian word adds the same value modulo 0xffff as
//! its two 16-bit halves, so summing four bytes at a time is exact.

use core::net::{IpAddr, Ipv6Addr};

use crate::bytes::{get_u16, low16, put_u16};
use crate::error::RewriteError;
use crate::family::{End, Family};
use crate::parse::{L4Proto, Packet};

/// Bytes summed between two folds: far below the 2^32 words a `u64` can take without overflow.
const FOLD_EVERY: usize = 1 << 20;

/// Adds `data` (big-endian 16-bit words, an odd last byte padded with zero) to `acc`.
///
/// The result is unfolded; pass it to [`fold`]. Split a region only at even offsets, or the
/// words after the split are misaligned.
pub fn sum(data: &[u8], acc: u64) -> u64 {
    let mut acc = acc;
    for block in data.chunks(FOLD_EVERY) {
        let mut words = block.chunks_exact(4);
        for w in &mut words {
            acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
        }
        match *words.remainder() {
            [a, b, c] => acc += u64::from(u16::from_be_bytes([a, b])) + (u64::from(c) << 8),
            [a, b] => acc += u64::from(u16::from_be_bytes([a, b])),
            [a] => acc += u64::from(a) << 8,
            _ => {}
        }
        acc = u64::from(fold(acc));
    }
    acc
}

/// Folds a sum to 16 bits with end-around carry.
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    low16(acc)
}

/// The checksum of a region whose words sum to `acc`: the complement of the folded sum.
#[inline]
pub fn finish(acc: u64) -> u16 {
    !fold(acc)
}

/// The running change to a checksummed region, per RFC 1624 eqn. 3:
/// `HC' = ~(~HC + ~m + m')`, summed over every changed word `m -> m'`.
///
/// One delta can be applied to several checksums that cover the same change (the IP header
/// checksum and the TCP/UDP pseudo-header both cover the addresses).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CsumDelta(u64);

impl CsumDelta {
    /// No change yet.
    pub fn new() -> Self {
        Self(0)
    }

    /// Records that the 16-bit word `old` became `new`.
    #[inline]
    pub fn replace16(&mut self, old: u16, new: u16) {
        self.0 += u64::from(!old) + u64::from(new);
    }

    /// Records that a field changed from `old` to `new` (two slices of one length, starting at
    /// an even offset of the checksummed region: an address of either family).
    #[inline]
    pub fn replace_slice(&mut self, old: &[u8], new: &[u8]) {
        for (o, n) in old.chunks(2).zip(new.chunks(2)) {
            self.replace16(word(o), word(n));
        }
    }

    /// Records that a field of `N` bytes (an address: 4 or 16) changed. The field must start
    /// at an even offset of the checksummed region, as every address and port does.
    #[inline]
    pub fn replace<const N: usize>(&mut self, old: &[u8; N], new: &[u8; N]) {
        self.replace_slice(old, new);
    }

    /// The checksum `csum` updated for every change recorded so far.
    #[inline]
    pub fn apply(&self, csum: u16) -> u16 {
        !fold(u64::from(!csum) + self.0)
    }
}

/// A 1- or 2-byte chunk as a big-endian word (an odd byte is the high half).
#[inline]
fn word(c: &[u8]) -> u16 {
    match *c {
        [a, b] => u16::from_be_bytes([a, b]),
        [a] => u16::from_be_bytes([a, 0]),
        _ => 0,
    }
}

/// RFC 1624 update of `csum` for a 16-bit field changing from `old` to `new`.
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    let mut d = CsumDelta::new();
    d.replace16(old, new);
    d.apply(csum)
}

/// RFC 1624 update of `csum` for a 32-bit field changing from `old` to `new`.
pub fn update32(csum: u16, old: [u8; 4], new: [u8; 4]) -> u16 {
    let mut d = CsumDelta::new();
    d.replace(&old, &new);
    d.apply(csum)
}

/// The IPv4 header checksum of `header` (its checksum field, bytes 10..12, is skipped).
pub fn ipv4_header_checksum(header: &[u8]) -> u16 {
    let (head, rest) = header.split_at(header.len().min(10));
    finish(sum(rest.get(2..).unwrap_or(&[]), sum(head, 0)))
}

/// The unfolded sum of the TCP/UDP pseudo-header for `src`, `dst`, `protocol` and `l4_len`.
/// Addresses of two families sum to nothing (no such pseudo-header exists).
pub fn pseudo_header_sum(src: IpAddr, dst: IpAddr, protocol: u8, l4_len: u32) -> u64 {
    let base = u64::from(protocol) + u64::from(l4_len >> 16) + u64::from(l4_len & 0xffff);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => sum(&d.octets(), sum(&s.octets(), base)),
        (IpAddr::V6(s), IpAddr::V6(d)) => sum(&d.octets(), sum(&s.octets(), base)),
        _ => 0,
    }
}

/// The checksum of the transport segment `l4` under the given pseudo-header sum, skipping the
/// checksum field at `csum_off` (an even offset). UDP's "computed zero" is sent as 0xffff.
pub fn l4_checksum(pseudo: u64, l4: &[u8], csum_off: usize, protocol: L4Proto) -> u16 {
    let (head, rest) = l4.split_at(l4.len().min(csum_off));
    let c = finish(sum(rest.get(2..).unwrap_or(&[]), sum(head, pseudo)));
    if protocol == L4Proto::Udp && c == 0 {
        0xffff
    } else {
        c
    }
}

/// The checksum of a TCP (6), UDP (17) or ICMPv6 (58) message `l4` carried in IPv6 from `src`
/// to `dst`, skipping its checksum field. RFC 8200 section 8.1: the pseudo-header holds both
/// addresses, the upper-layer length as 32 bits and the next header, so it sums the same
/// words as [`pseudo_header_sum`]; `l4` is the message only, after every extension header.
/// UDP's computed zero is sent as 0xffff (a zero checksum is not allowed over IPv6).
///
/// `None` for another protocol or a message too short to hold its checksum field.
pub fn ipv6_l4_checksum(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, l4: &[u8]) -> Option<u16> {
    let protocol = match next_header {
        6 => L4Proto::Tcp,
        17 => L4Proto::Udp,
        58 => L4Proto::Icmpv6,
        _ => return None,
    };
    let off = l4_csum_offset(protocol);
    if l4.len() < off + 2 {
        return None;
    }
    let len = u32::try_from(l4.len()).ok()?;
    let pseudo = pseudo_header_sum(src.into(), dst.into(), next_header, len);
    Some(l4_checksum(pseudo, l4, off, protocol))
}

/// Offset of the checksum field inside a transport header.
pub(crate) fn l4_csum_offset(protocol: L4Proto) -> usize {
    match protocol {
        L4Proto::Tcp => 16,
        L4Proto::Udp => 6,
        L4Proto::Icmp | L4Proto::Icmpv6 => 2,
    }
}

/// The pseudo-header sum of `pkt` as it stands in `frame` now (addresses read from the frame,
/// so it is right after a rewrite). Zero for ICMPv4, which has no pseudo-header; ICMPv6 has
/// one (RFC 4443 section 2.3).
fn frame_pseudo_sum(frame: &[u8], pkt: &Packet) -> Option<u64> {
    let protocol = pkt.flow.protocol;
    if protocol == L4Proto::Icmp {
        return Some(0);
    }
    let family = pkt.family();
    let src = family.read_addr(frame, pkt.l3 + family.addr_offset(End::Src))?;
    let dst = family.read_addr(frame, pkt.l3 + family.addr_offset(End::Dst))?;
    let len = u32::try_from(pkt.l4_end.checked_sub(pkt.l4)?).ok()?;
    Some(pseudo_header_sum(src, dst, protocol.number(), len))
}

/// Recomputes the transport checksum of `pkt` in `frame` from scratch, replacing whatever the
/// field held: the way to finish a packet that arrived with an unfinished checksum (checksum
/// offload, `TP_STATUS_CSUMNOTREADY`, where the field holds only the pseudo-header sum).
pub fn complete_l4_checksum(frame: &mut [u8], pkt: &Packet) -> Result<(), RewriteError> {
    pkt.check_frame(frame)?;
    let pseudo = frame_pseudo_sum(frame, pkt).ok_or(RewriteError::FrameMismatch)?;
    let l4 = frame
        .get(pkt.l4..pkt.l4_end)
        .ok_or(RewriteError::FrameMismatch)?;
    let off = l4_csum_offset(pkt.flow.protocol);
    let c = l4_checksum(pseudo, l4, off, pkt.flow.protocol);
    put_u16(frame, pkt.l4 + off, c).ok_or(RewriteError::FrameMismatch)
}

/// True if the IPv4 header checksum of `pkt` in `frame` verifies. An IPv6 header has no
/// checksum: true if the frame holds it.
pub fn verify_ip_header(frame: &[u8], pkt: &Packet) -> bool {
    match pkt.family() {
        Family::V4 => frame
            .get(pkt.l3..pkt.l4)
            .is_some_and(|h| fold(sum(h, 0)) == 0xffff),
        Family::V6 => frame.get(pkt.l3..pkt.l4).is_some(),
    }
}

/// True if the transport checksum of `pkt` in `frame` verifies. Over IPv4 a UDP checksum of
/// zero ("no checksum") counts as verified; over IPv6 it is invalid (RFC 8200 section 8.1).
/// Addresses are read from the frame, not from `pkt`.
pub fn verify_l4(frame: &[u8], pkt: &Packet) -> bool {
    let Some(l4) = frame.get(pkt.l4..pkt.l4_end) else {
        return false;
    };
    if pkt.flow.protocol == L4Proto::Udp && get_u16(l4, 6) == Some(0) {
        return pkt.family() == Family::V4;
    }
    frame_pseudo_sum(frame, pkt).is_some_and(|pseudo| fold(sum(l4, pseudo)) == 0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 section 3's worked example.
    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data, 0)), 0xddf2);
    }

    #[test]
    fn odd_lengths_pad_with_zero() {
        assert_eq!(fold(sum(&[0xab], 0)), 0xab00);
        assert_eq!(fold(sum(&[0x01, 0x02, 0x03], 0)), 0x0102 + 0x0300);
        assert_eq!(
            fold(sum(&[1, 2, 3, 4, 5, 6, 7], 0)),
            fold(sum(&[1, 2, 3, 4, 5, 6, 7, 0], 0))
        );
    }

    /// RFC 1624 section 4's example: the other header words sum to 0xcd7a, so HC = 0xdd2f;
    /// changing a word from 0x5555 to 0x3285 yields 0x0000 by eqn. 3 (eqn. 2 gave -0).
    #[test]
    fn rfc1624_example() {
        assert_eq!(update16(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    #[test]
    fn ipv4_header_example() {
        // A classic example header, checksum 0xb861.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(ipv4_header_checksum(&h), 0xb861);
        assert_eq!(fold(sum(&h, 0)), 0xffff);
    }

    #[test]
    fn incremental_matches_full_on_header() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let new = [10, 1, 2, 3];
        let c = update32(0xb861, [0xc0, 0xa8, 0x00, 0xc7], new);
        h[16..20].copy_from_slice(&new);
        assert_eq!(c, ipv4_header_checksum(&h));
    }

    /// IPv6 packets built by etherparse, which fills in their checksums: each must equal ours,
    /// and a pinned value guards against both being wrong the same way.
    #[test]
    fn ipv6_known_answers() {
        let src = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let dst = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        let b = || etherparse::PacketBuilder::ipv6(src, dst, 64);
        let (mut udp, mut tcp, mut icmp) = (Vec::new(), Vec::new(), Vec::new());
        let built = [
            b().udp(40000, 53).write(&mut udp, b"hello"),
            b().tcp(40000, 80, 7, 1000).write(&mut tcp, b"GET /"),
            b().icmpv6_echo_request(1, 2).write(&mut icmp, b"ping"),
        ];
        assert!(built.iter().all(Result::is_ok));
        let cases = [(17, 6, udp), (6, 16, tcp), (58, 2, icmp)];
        for (nh, off, pkt) in cases {
            assert_eq!(pkt[6], nh);
            let l4 = &pkt[40..];
            let want = u16::from_be_bytes([l4[off], l4[off + 1]]);
            let got = ipv6_l4_checksum(src.into(), dst.into(), nh, l4);
            assert_eq!(got, Some(want), "next header {nh}");
            let len = u32::try_from(l4.len()).unwrap_or(0);
            let pseudo = pseudo_header_sum(src.into(), dst.into(), nh, len);
            assert_eq!(fold(sum(l4, pseudo)), 0xffff, "next header {nh} verifies");
            if nh == 17 {
                assert_eq!(want, PINNED_UDP);
            }
        }
        assert_eq!(ipv6_l4_checksum(src.into(), dst.into(), 17, &[0; 7]), None);
        assert_eq!(ipv6_l4_checksum(src.into(), dst.into(), 1, &[0; 8]), None);
    }

    /// Worked by hand from RFC 8200 section 8.1 (a Python one-off) for the UDP case above.
    const PINNED_UDP: u16 = 0xc417;

    /// The textbook loop: 16-bit words, fold at the end.
    fn naive(data: &[u8]) -> u16 {
        let mut acc: u64 = 0;
        for pair in data.chunks(2) {
            acc += u64::from(word(pair));
        }
        fold(acc)
    }

    #[test]
    fn huge_input_does_not_overflow() {
        let data: Vec<u8> = (0..3 * FOLD_EVERY + 5)
            .map(|i| u8::try_from(i % 251).unwrap_or(0))
            .collect();
        assert_eq!(fold(sum(&data, 0)), naive(&data));
    }

    proptest::proptest! {
        #[test]
        fn sum_matches_naive(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000)) {
            proptest::prop_assert_eq!(fold(sum(&data, 0)), naive(&data));
        }

        /// Eqn. 3 of RFC 1624 against recomputation, for any region and any changed word.
        #[test]
        fn update16_matches_recompute(
            mut data in proptest::collection::vec(proptest::prelude::any::<u8>(), 2..200),
            at in 0usize..100,
            new in proptest::prelude::any::<u16>(),
        ) {
            let at = (at * 2) % (data.len() & !1);
            let before = finish(sum(&data, 0));
            let old = word(&data[at..at + 2]);
            data[at..at + 2].copy_from_slice(&new.to_be_bytes());
            let after = finish(sum(&data, 0));
            let inc = update16(before, old, new);
            // Both are right; they may differ only as the two zeros of ones' complement.
            proptest::prop_assert!(inc == after || (inc | after == 0xffff && inc & after == 0));
            proptest::prop_assert_eq!(fold(sum(&data, u64::from(inc))), 0xffff);
        }
    }
}
