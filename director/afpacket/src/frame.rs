//! What a receive queue hands out, whatever the backend: a frame's bytes (mutable, in
//! place) and its metadata.

/// Status flags of a received frame, with the values of the kernel's `TP_STATUS_*` bits
/// (an AF_XDP backend maps its own metadata onto the same bits).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Status(u32);

impl Status {
    /// `TP_STATUS_LOSING`: the socket dropped frames since the last statistics read.
    pub const LOSING: u32 = libc::TP_STATUS_LOSING;
    /// `TP_STATUS_CSUMNOTREADY`: checksum offload; the L4 checksum is unfinished.
    pub const CSUM_NOT_READY: u32 = libc::TP_STATUS_CSUMNOTREADY;
    /// `TP_STATUS_VLAN_VALID`: the VLAN tci was stripped and is in the metadata.
    pub const VLAN_VALID: u32 = libc::TP_STATUS_VLAN_VALID;
    /// `TP_STATUS_VLAN_TPID_VALID`: the VLAN tpid in the metadata is meaningful.
    pub const VLAN_TPID_VALID: u32 = libc::TP_STATUS_VLAN_TPID_VALID;
    /// `TP_STATUS_CSUM_VALID`: the device (or the sender's stack) verified the L4 checksum.
    pub const CSUM_VALID: u32 = libc::TP_STATUS_CSUM_VALID;
    /// `TP_STATUS_GSO_TCP`: a TCP GSO super-frame (larger than the MTU).
    pub const GSO_TCP: u32 = crate::sys::TP_STATUS_GSO_TCP;

    /// Wraps raw `TP_STATUS_*` bits.
    pub const fn from_raw(bits: u32) -> Self {
        Self(bits)
    }

    /// The raw bits.
    pub const fn raw(self) -> u32 {
        self.0
    }

    /// Whether every bit of `flag` is set.
    pub const fn has(self, flag: u32) -> bool {
        self.0 & flag == flag
    }

    /// The L4 checksum is partial (checksum offload): whoever sends this frame on must
    /// finish it.
    pub const fn csum_not_ready(self) -> bool {
        self.has(Self::CSUM_NOT_READY)
    }

    /// The L4 checksum was verified.
    pub const fn csum_valid(self) -> bool {
        self.has(Self::CSUM_VALID)
    }

    /// Frames were dropped recently (the ring was full).
    pub const fn losing(self) -> bool {
        self.has(Self::LOSING)
    }

    /// A TCP GSO super-frame.
    pub const fn gso_tcp(self) -> bool {
        self.has(Self::GSO_TCP)
    }
}

/// An 802.1Q tag that the kernel (or the NIC) removed from the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Vlan {
    /// Tag control information: priority (3 bits), DEI (1), VLAN id (12).
    pub tci: u16,
    /// Tag protocol id (0x8100 or 0x88a8); 0x8100 when the kernel did not say.
    pub tpid: u16,
}

impl Vlan {
    /// The 12-bit VLAN id.
    pub const fn id(self) -> u16 {
        self.tci & 0x0fff
    }
}

/// Metadata of one received frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameMeta {
    /// Bytes captured in the ring (`tp_snaplen`): the length of [`Frame::data`].
    pub len: u32,
    /// Length of the frame on the wire (`tp_len`). Greater than `len` if truncated.
    pub wire_len: u32,
    /// Status flags.
    pub status: Status,
    /// The VLAN tag removed from the frame, if any.
    pub vlan: Option<Vlan>,
    /// The kernel's flow hash, if it computed one (0 otherwise).
    pub rxhash: u32,
    /// Receive time: seconds.
    pub sec: u32,
    /// Receive time: nanoseconds.
    pub nsec: u32,
    /// `sll_pkttype`: `PACKET_HOST`, `PACKET_BROADCAST`, `PACKET_OTHERHOST`, ...
    pub pkttype: u8,
}

impl FrameMeta {
    /// The ring holds only part of the frame: do not forward it.
    pub const fn truncated(&self) -> bool {
        self.len < self.wire_len
    }
}

/// One received frame: its bytes, which may be rewritten in place, and its metadata.
///
/// The buffer may have free headroom before the frame (see [`Frame::headroom`]), so that
/// a header can be prepended in place (IP-in-IP) and the result sent straight from the
/// ring. The lifetime `'b` is the borrow of the batch the frame came from: the frame's
/// bytes can be handed to a transmit batch that lives no longer than that.
#[derive(Debug)]
pub struct Frame<'b> {
    buf: &'b mut [u8],
    start: usize,
    /// The frame's metadata.
    pub meta: FrameMeta,
}

impl<'b> Frame<'b> {
    /// A frame whose bytes are `buf[start..]`; `buf[..start]` is free headroom.
    ///
    /// # Panics
    /// If `start > buf.len()`.
    pub fn new(buf: &'b mut [u8], start: usize, meta: FrameMeta) -> Self {
        assert!(
            start <= buf.len(),
            "frame start {start} beyond buffer of {}",
            buf.len()
        );
        Self { buf, start, meta }
    }

    /// The frame, from its Ethernet header.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// The frame, mutable in place.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..]
    }

    /// Free bytes before the frame that may be used to prepend headers.
    pub fn headroom(&self) -> usize {
        self.start
    }

    /// The frame's bytes for the whole borrow `'b` (to push to a transmit batch).
    pub fn into_data(self) -> &'b mut [u8] {
        let Self { buf, start, .. } = self;
        &mut buf[start..]
    }

    /// The headroom and the frame together, and where the frame starts in it. Write a new
    /// header into `buf[start - n..start]` and send `&buf[start - n..]`.
    pub fn into_buf(self) -> (&'b mut [u8], usize) {
        (self.buf, self.start)
    }
}
