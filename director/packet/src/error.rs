//! Errors of the rewrite and build functions.

use crate::drop::DropReason;

/// Why a rewrite or a build was refused. The frame may be partly rewritten when this is
/// returned (never outside its bounds); the caller drops it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum RewriteError {
    /// The TTL is 1 or 0: forwarding would expire it.
    #[error("TTL expired in transit")]
    TtlExpired,
    /// The frame does not hold the packet the `Packet` describes (shorter, or the `Packet` was
    /// parsed from another frame).
    #[error("frame does not match the parsed packet")]
    FrameMismatch,
    /// An address of another family than the packet's was given.
    #[error("address family does not match the packet")]
    FamilyMismatch,
    /// The rewrite does not apply to this kind of packet (for example a NAT port rewrite of an
    /// ICMP error, or an ICMP error rewrite of a TCP segment).
    #[error("rewrite does not apply to this kind of packet")]
    WrongKind,
    /// RFC 1122 forbids an ICMP error about this packet: it is itself an ICMP error, or its
    /// source is not a unicast host address.
    #[error("no ICMP error may be sent about this packet")]
    IcmpNotAllowed,
    /// The output buffer is too small; `need` bytes are required.
    #[error("output buffer too small: {need} bytes needed")]
    BufferTooSmall {
        /// Bytes the output needs.
        need: usize,
    },
}

impl RewriteError {
    /// The drop counter for a packet that could not be forwarded because of this error.
    pub fn drop_reason(self) -> DropReason {
        match self {
            RewriteError::TtlExpired => DropReason::TtlExpired,
            _ => DropReason::RewriteFailed,
        }
    }
}
