//! The synchronous NETLINK_ROUTE request socket: send one request, read its answer.
//!
//! Every query and change in this crate goes through [`Netlink`]. It is blocking (the kernel
//! answers rtnetlink requests at once; nothing here waits on the network) and meant for the
//! control path only.

use std::io;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NetlinkBuffer, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::error::{NetinfoError, Result};

/// Receive buffer: the kernel never puts more than 32 KiB in one dump datagram.
const RECV_BUF_LEN: usize = 64 * 1024;
/// How often a dump that the kernel flagged as interrupted (NLM_F_DUMP_INTR) is retried.
const DUMP_RETRIES: usize = 5;
/// Length of `struct nlmsghdr`.
const NLMSG_HDR_LEN: usize = 16;
/// NLMSG_ERROR / NLMSG_DONE message types.
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// Flags on an NLMSG_ERROR: the request was capped / extended-ack TLVs follow.
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
/// Extended-ack attribute carrying the kernel's human-readable message.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// A NETLINK_ROUTE socket for requests (dumps, adds, deletes).
///
/// Not `Sync`: one owner (the control thread) at a time. Open one per thread if needed.
#[derive(Debug)]
pub struct Netlink {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

/// One netlink message of a reply, classified.
#[derive(Debug)]
pub(crate) enum Frame {
    /// An RTM_* message answering the request.
    Message(RouteNetlinkMessage),
    /// End of a dump.
    Done,
    /// Positive acknowledgement.
    Ack,
    /// Nothing for us (no-op, or a message the parser did not understand; logged).
    Skip,
}

impl Netlink {
    /// Open a NETLINK_ROUTE socket in the calling thread's network namespace.
    ///
    /// # Errors
    /// [`NetinfoError::Socket`] if the socket cannot be created, bound or connected.
    pub fn open() -> Result<Self> {
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(NetinfoError::Socket)?;
        sock.bind_auto().map_err(NetinfoError::Socket)?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(NetinfoError::Socket)?;
        // Best effort: both only make error replies shorter and clearer.
        if let Err(e) = sock.set_cap_ack(true) {
            log::debug!("netlink: NETLINK_CAP_ACK not available: {e}");
        }
        if let Err(e) = sock.set_ext_ack(true) {
            log::debug!("netlink: NETLINK_EXT_ACK not available: {e}");
        }
        Ok(Self {
            sock,
            seq: 0,
            buf: Vec::with_capacity(RECV_BUF_LEN),
        })
    }

    /// Dump a whole table; retried when the kernel says the dump was interrupted by a change.
    pub(crate) fn dump(
        &mut self,
        msg: &RouteNetlinkMessage,
        table: &'static str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let op = || format!("read the {table} table");
        for attempt in 1..=DUMP_RETRIES {
            let (msgs, interrupted) =
                self.exchange(msg.clone(), NLM_F_REQUEST | NLM_F_DUMP, &op)?;
            if !interrupted {
                return Ok(msgs);
            }
            log::debug!("netlink: {table} dump interrupted (attempt {attempt}), retrying");
        }
        Err(NetinfoError::DumpInterrupted(table))
    }

    /// Dump one table of both families: the IPv4 dump, then the IPv6 one. `request` makes the
    /// dump request for a family; `tables` names the two tables for error messages.
    pub(crate) fn dump_both_families(
        &mut self,
        request: impl Fn(AddressFamily) -> RouteNetlinkMessage,
        tables: [&'static str; 2],
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let mut msgs = self.dump(&request(AddressFamily::Inet), tables[0])?;
        msgs.extend(self.dump(&request(AddressFamily::Inet6), tables[1])?);
        Ok(msgs)
    }

    /// Send a request that the kernel acknowledges; returns any messages sent before the ack.
    pub(crate) fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        extra_flags: u16,
        op: &dyn Fn() -> String,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.exchange(msg, NLM_F_REQUEST | NLM_F_ACK | extra_flags, op)
            .map(|(msgs, _)| msgs)
    }

    fn exchange(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: &dyn Fn() -> String,
    ) -> Result<(Vec<RouteNetlinkMessage>, bool)> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut nl = NetlinkMessage::from(msg);
        nl.header.flags = flags;
        nl.header.sequence_number = seq;
        nl.finalize();
        let mut out = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut out);
        loop {
            match self.sock.send(&out, 0) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(NetinfoError::Io { op: op(), source }),
            }
        }

        let mut msgs = Vec::new();
        let mut interrupted = false;
        loop {
            self.buf.clear();
            let n = match self.sock.recv(&mut self.buf, 0) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(NetinfoError::Io { op: op(), source }),
            };
            if n > self.buf.len() {
                return Err(NetinfoError::Decode {
                    op: op(),
                    detail: format!("a {n}-byte reply did not fit the {RECV_BUF_LEN}-byte buffer"),
                });
            }
            for raw in split_frames(&self.buf) {
                let raw = raw.map_err(|detail| NetinfoError::Decode { op: op(), detail })?;
                let hdr = NetlinkBuffer::new(raw);
                if hdr.sequence_number() != seq {
                    // A late answer to an earlier request that failed half-way.
                    continue;
                }
                if hdr.flags() & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                match classify(raw, op)? {
                    Frame::Message(m) => msgs.push(m),
                    Frame::Skip => {}
                    Frame::Done | Frame::Ack => return Ok((msgs, interrupted)),
                }
            }
        }
    }
}

/// Split one datagram into its netlink messages (each slice is one whole message).
pub(crate) fn split_frames(
    mut buf: &[u8],
) -> impl Iterator<Item = std::result::Result<&[u8], String>> {
    std::iter::from_fn(move || {
        if buf.is_empty() {
            return None;
        }
        if buf.len() < NLMSG_HDR_LEN {
            let n = buf.len();
            buf = &[];
            return Some(Err(format!(
                "{n} trailing bytes are too short for a netlink header"
            )));
        }
        let len = NetlinkBuffer::new(buf).length() as usize;
        if len < NLMSG_HDR_LEN || len > buf.len() {
            let have = buf.len();
            buf = &[];
            return Some(Err(format!(
                "netlink message claims {len} bytes but {have} are left"
            )));
        }
        let (msg, rest) = buf.split_at(len);
        // Messages are 4-byte aligned; the last one may lack its padding.
        let pad = ((len + 3) & !3).min(buf.len()) - len;
        buf = &rest[pad..];
        Some(Ok(msg))
    })
}

/// Decode one whole netlink message of a reply.
pub(crate) fn classify(raw: &[u8], op: &dyn Fn() -> String) -> Result<Frame> {
    let hdr = NetlinkBuffer::new(raw);
    let kind = hdr.message_type();
    let outer_flags = hdr.flags();
    match NetlinkMessage::<RouteNetlinkMessage>::deserialize(raw) {
        Ok(m) => match m.payload {
            NetlinkPayload::InnerMessage(inner) => Ok(Frame::Message(inner)),
            NetlinkPayload::Done(done) if done.code == 0 => Ok(Frame::Done),
            NetlinkPayload::Done(done) => Err(kernel_error(op, done.code, String::new())),
            NetlinkPayload::Error(err) => match err.code {
                None => Ok(Frame::Ack),
                Some(code) => Err(kernel_error(
                    op,
                    code.get(),
                    extack_message(outer_flags, &err.header).unwrap_or_default(),
                )),
            },
            NetlinkPayload::Noop => Ok(Frame::Skip),
            NetlinkPayload::Overrun(_) => Err(NetinfoError::Decode {
                op: op(),
                detail: "the kernel reported a netlink overrun".into(),
            }),
            _ => Ok(Frame::Skip),
        },
        Err(e) if kind == NLMSG_ERROR || kind == NLMSG_DONE => Err(NetinfoError::Decode {
            op: op(),
            detail: format!("bad error/done message: {e}"),
        }),
        Err(e) => {
            // One RTM_* message we cannot parse must not hide the rest of the table.
            lvs_common::event!(
                log::Level::Warn,
                "netlink_message_skipped",
                kind = kind,
                reason = e,
            );
            Ok(Frame::Skip)
        }
    }
}

fn kernel_error(op: &dyn Fn() -> String, code: i32, extack: String) -> NetinfoError {
    let detail = if extack.is_empty() {
        String::new()
    } else {
        format!(" ({extack})")
    };
    NetinfoError::Kernel {
        op: op(),
        source: io::Error::from_raw_os_error(code.saturating_abs()),
        detail,
    }
}

/// The kernel's extended-ack message (NLMSGERR_ATTR_MSG) of an NLMSG_ERROR, if any.
///
/// `after_code` is the error payload after the errno: the offending request's header (whole
/// request unless capped), then TLVs when `NLM_F_ACK_TLVS` is set.
pub(crate) fn extack_message(outer_flags: u16, after_code: &[u8]) -> Option<String> {
    if outer_flags & NLM_F_ACK_TLVS == 0 || after_code.len() < NLMSG_HDR_LEN {
        return None;
    }
    let start = if outer_flags & NLM_F_CAPPED != 0 {
        NLMSG_HDR_LEN
    } else {
        let len = NetlinkBuffer::new(after_code).length() as usize;
        (len + 3) & !3
    };
    let mut tlvs = after_code.get(start..)?;
    while tlvs.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([tlvs[0], tlvs[1]]));
        let kind = u16::from_ne_bytes([tlvs[2], tlvs[3]]) & 0x3fff;
        if len < 4 || len > tlvs.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &tlvs[4..len];
            let text = text.split(|&b| b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        let next = ((len + 3) & !3).min(tlvs.len());
        tlvs = &tlvs[next..];
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Build one netlink message: header + payload, padded to 4 bytes.
    pub(crate) fn nlmsg(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(NLMSG_HDR_LEN + payload.len()).unwrap();
        let mut v = Vec::new();
        v.extend_from_slice(&len.to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(payload);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    /// One netlink attribute, padded.
    pub(crate) fn nla(kind: u16, data: &[u8]) -> Vec<u8> {
        let len = u16::try_from(4 + data.len()).unwrap();
        let mut v = Vec::new();
        v.extend_from_slice(&len.to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(data);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    fn op() -> String {
        "do the test thing".into()
    }

    #[test]
    fn splits_several_messages_and_rejects_bad_lengths() {
        let mut dgram = nlmsg(NLMSG_DONE, 0, 7, &0i32.to_ne_bytes());
        dgram.extend(nlmsg(1, 0, 7, &[1, 2, 3])); // NOOP with odd payload, padded
        let frames: Vec<_> = split_frames(&dgram)
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1].len(), NLMSG_HDR_LEN + 3);

        let mut bad = nlmsg(NLMSG_DONE, 0, 7, &0i32.to_ne_bytes());
        bad[0] = 200; // claims 200 bytes
        assert!(split_frames(&bad).next().unwrap().is_err());
        assert!(split_frames(&[1, 2, 3]).next().unwrap().is_err());
    }

    #[test]
    fn classifies_ack_done_and_errors_with_extack() {
        let ack = nlmsg(NLMSG_ERROR, 0, 1, &[0u8; 4 + NLMSG_HDR_LEN]);
        assert!(matches!(classify(&ack, &op).unwrap(), Frame::Ack));
        let done = nlmsg(NLMSG_DONE, 0, 1, &0i32.to_ne_bytes());
        assert!(matches!(classify(&done, &op).unwrap(), Frame::Done));

        // -EEXIST, capped, with an extended-ack message.
        let mut payload = (-libc::EEXIST).to_ne_bytes().to_vec();
        payload.extend(nlmsg(20, 0x405, 1, &[]));
        payload.extend(nla(NLMSGERR_ATTR_MSG, b"Address already assigned\0"));
        let err = nlmsg(NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, 1, &payload);
        let e = classify(&err, &op).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EEXIST));
        let text = e.to_string();
        assert!(
            text.starts_with("the kernel refused to do the test thing: "),
            "{text}"
        );
        assert!(text.ends_with("(Address already assigned)"), "{text}");

        // Not capped: the TLVs follow the whole echoed request.
        let mut payload = (-libc::EINVAL).to_ne_bytes().to_vec();
        payload.extend(nlmsg(20, 0x405, 1, &[9u8; 8]));
        payload.extend(nla(NLMSGERR_ATTR_MSG, b"bad prefix\0"));
        let err = nlmsg(NLMSG_ERROR, NLM_F_ACK_TLVS, 1, &payload);
        assert!(
            classify(&err, &op)
                .unwrap_err()
                .to_string()
                .ends_with("(bad prefix)")
        );

        // A dump that ends with an error code in NLMSG_DONE.
        let done = nlmsg(NLMSG_DONE, 0, 1, &(-libc::EPERM).to_ne_bytes());
        assert_eq!(classify(&done, &op).unwrap_err().errno(), Some(libc::EPERM));
    }

    #[test]
    fn unparseable_inner_message_is_skipped_not_fatal() {
        // RTM_NEWLINK with a header too short for ifinfomsg.
        let m = nlmsg(16, 0, 1, &[0u8; 4]);
        assert!(matches!(classify(&m, &op).unwrap(), Frame::Skip));
    }
}
