//! Bounds-checked big-endian field access. Every read and write of the library goes through
//! these, so a wrong offset yields `None`, never a panic or a write outside the buffer.

/// The big-endian `u16` at `off`, if the buffer holds it.
#[inline]
pub(crate) fn get_u16(buf: &[u8], off: usize) -> Option<u16> {
    get_array(buf, off).map(u16::from_be_bytes)
}

/// The `N` bytes at `off`, if the buffer holds them.
#[inline]
pub(crate) fn get_array<const N: usize>(buf: &[u8], off: usize) -> Option<[u8; N]> {
    buf.get(off..off.checked_add(N)?)?.try_into().ok()
}

/// Writes `v` big-endian at `off`; `None` (and nothing written) if it does not fit.
#[inline]
pub(crate) fn put_u16(buf: &mut [u8], off: usize, v: u16) -> Option<()> {
    put_bytes(buf, off, &v.to_be_bytes())
}

/// Writes `bytes` at `off`; `None` (and nothing written) if they do not fit.
#[inline]
pub(crate) fn put_bytes(buf: &mut [u8], off: usize, bytes: &[u8]) -> Option<()> {
    buf.get_mut(off..off.checked_add(bytes.len())?)?
        .copy_from_slice(bytes);
    Some(())
}

/// The low 16 bits of `x`, without a lossy `as` cast.
#[inline]
pub(crate) fn low16(x: u64) -> u16 {
    let b = x.to_be_bytes();
    u16::from_be_bytes([b[6], b[7]])
}

/// `x` as a `u16`, saturating (lengths here are bounded by the IP total length, a `u16`).
#[inline]
pub(crate) fn sat16(x: usize) -> u16 {
    u16::try_from(x).unwrap_or(u16::MAX)
}
