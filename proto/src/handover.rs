//! The state a running `lvs-director` hands to the binary it re-executes for an upgrade: the
//! control state (as the requests that rebuild it), the counters, what it changed on the
//! interfaces, and the connection table.
//!
//! The handover is a sequence of frames ([`crate::codec`], so one body format everywhere):
//! one [`HandoverFrame::Begin`], any number of [`HandoverFrame::Conns`] (a table of millions
//! of entries does not fit one frame), and one [`HandoverFrame::End`] that counts them, so a
//! truncated handover is told from a complete one. [`HANDOVER_FORMAT`] changes whenever a
//! new binary could misread an old one's frames; the new binary then refuses the handover
//! and the old one goes on running.

use std::net::IpAddr;

use bincode::{Decode, Encode};

use crate::codec;
use crate::director::{ServiceKey, Stats};
use crate::error::{ProtoError, Result};
use crate::frame::{FrameDecoder, FrameLimit};
use crate::message::Request;

/// The version of the handover's frames.
pub const HANDOVER_FORMAT: u32 = 1;

/// Connections per [`HandoverFrame::Conns`] frame: far below the frame limit.
pub const CONNS_PER_FRAME: usize = 50_000;

/// One connection or persistence template, as the director's table exports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct HandedConn {
    /// IP protocol number (6 or 17).
    pub proto: u8,
    pub client: (IpAddr, u16),
    pub virt: (IpAddr, u16),
    pub dest: (IpAddr, u16),
    /// Forwarding method: 0 NAT, 1 DR, 2 TUN.
    pub forward: u8,
    /// The connection table's state number.
    pub state: u8,
    /// The table's flags that travel with an entry.
    pub flags: u8,
    /// Milliseconds left before it expires.
    pub timeout_ms: u32,
    /// Templates: the persistence timeout in seconds; connections: 0.
    pub persist_secs: u32,
}

/// What the old director changed on an interface, to be undone at the final stop.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct HandedOffload {
    pub ifname: String,
    pub gro_turned_off: bool,
    pub lro_turned_off: bool,
}

/// The counters of one service, or of one of its real servers (`dest`).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct HandedCounters {
    pub service: ServiceKey,
    pub dest: Option<(IpAddr, u16)>,
    pub stats: Stats,
}

/// One frame of a handover.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum HandoverFrame {
    Begin {
        format: u32,
        /// The version of the binary that wrote it.
        from_version: String,
        /// Replayed in order on an empty control state, they rebuild the old one: services,
        /// real servers, timeouts, the monitor's verdicts, the role.
        requests: Vec<Request>,
        counters: Vec<HandedCounters>,
        offloads: Vec<HandedOffload>,
    },
    Conns(Vec<HandedConn>),
    End {
        conns: u64,
    },
}

/// A whole handover, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Handover {
    pub from_version: String,
    pub requests: Vec<Request>,
    pub counters: Vec<HandedCounters>,
    pub offloads: Vec<HandedOffload>,
    pub conns: Vec<HandedConn>,
}

impl Handover {
    /// The frames of this handover, one after the other.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let limit = FrameLimit::MAX;
        let mut out = Vec::new();
        codec::encode_frame(
            &HandoverFrame::Begin {
                format: HANDOVER_FORMAT,
                from_version: self.from_version.clone(),
                requests: self.requests.clone(),
                counters: self.counters.clone(),
                offloads: self.offloads.clone(),
            },
            limit,
            &mut out,
        )?;
        for chunk in self.conns.chunks(CONNS_PER_FRAME) {
            codec::encode_frame(&HandoverFrame::Conns(chunk.to_vec()), limit, &mut out)?;
        }
        codec::encode_frame(
            &HandoverFrame::End {
                conns: self.conns.len() as u64,
            },
            limit,
            &mut out,
        )?;
        Ok(out)
    }

    /// Reads the frames [`Handover::encode`] wrote. Anything else (another format, frames out
    /// of order, a missing end, a count that does not match) is an error.
    pub fn decode(mut bytes: &[u8]) -> Result<Handover> {
        let bad = |why: String| ProtoError::Decode(format!("handover: {why}"));
        let limit = FrameLimit::MAX;
        let mut dec = FrameDecoder::new(limit);
        let mut next = || -> Result<Option<HandoverFrame>> {
            match dec.decode(&mut bytes)? {
                Some(body) => codec::decode_body(&body, limit).map(Some),
                None => Ok(None),
            }
        };
        let mut h = match next()? {
            Some(HandoverFrame::Begin {
                format,
                from_version,
                requests,
                counters,
                offloads,
            }) => {
                if format != HANDOVER_FORMAT {
                    return Err(bad(format!(
                        "format {format} from version {from_version}, this binary reads format {HANDOVER_FORMAT}"
                    )));
                }
                Handover {
                    from_version,
                    requests,
                    counters,
                    offloads,
                    conns: Vec::new(),
                }
            }
            _ => return Err(bad("it does not start with its header".into())),
        };
        loop {
            match next()? {
                Some(HandoverFrame::Conns(c)) => h.conns.extend(c),
                Some(HandoverFrame::End { conns }) if conns == h.conns.len() as u64 => break,
                Some(HandoverFrame::End { conns }) => {
                    return Err(bad(format!(
                        "{conns} connections announced, {} found",
                        h.conns.len()
                    )));
                }
                Some(HandoverFrame::Begin { .. }) => return Err(bad("a second header".into())),
                None => return Err(bad("it ends before its last frame".into())),
            }
        }
        if next()?.is_some() || !bytes.is_empty() {
            return Err(bad("bytes after its last frame".into()));
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::director::Protocol;
    use crate::message::HaRole;

    fn conn(i: u32) -> HandedConn {
        let a = |x: u32| IpAddr::from(std::net::Ipv4Addr::from(x));
        HandedConn {
            proto: 6,
            client: (a(0xc633_6400 + i), u16::try_from(i % 60_000).unwrap()),
            virt: (a(0xcb00_7164), 80),
            dest: (a(0xcb00_710b), 80),
            forward: 0,
            state: 1,
            flags: 0,
            timeout_ms: 900_000,
            persist_secs: 0,
        }
    }

    fn sample(n: u32) -> Handover {
        Handover {
            from_version: "0.1.0".into(),
            requests: vec![Request::SetRole {
                role: HaRole::Standby,
            }],
            counters: vec![HandedCounters {
                service: ServiceKey {
                    protocol: Protocol::Tcp,
                    addr: "203.0.113.100".parse().unwrap(),
                    port: 80,
                },
                dest: None,
                stats: Stats {
                    conns: 7,
                    ..Stats::default()
                },
            }],
            offloads: vec![HandedOffload {
                ifname: "eth0".into(),
                gro_turned_off: true,
                lro_turned_off: false,
            }],
            conns: (0..n).map(conn).collect(),
        }
    }

    /// More connections than one frame holds: several frames, read back whole.
    #[test]
    fn round_trip_over_several_frames() {
        let h = sample(u32::try_from(CONNS_PER_FRAME).unwrap() * 2 + 3);
        assert_eq!(Handover::decode(&h.encode().unwrap()).unwrap(), h);
        let empty = sample(0);
        assert_eq!(Handover::decode(&empty.encode().unwrap()).unwrap(), empty);
    }

    /// Cut anywhere, or with bytes after it, it is refused.
    #[test]
    fn truncated_or_padded_is_refused() {
        let bytes = sample(10).encode().unwrap();
        for cut in [0, 1, 4, bytes.len() / 2, bytes.len() - 1] {
            assert!(Handover::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut padded = bytes.clone();
        padded.extend_from_slice(&bytes);
        assert!(Handover::decode(&padded).is_err());
    }

    /// A handover of another format is refused with both formats named.
    #[test]
    fn other_format_is_refused() {
        let mut out = Vec::new();
        codec::encode_frame(
            &HandoverFrame::Begin {
                format: HANDOVER_FORMAT + 1,
                from_version: "9.9.9".into(),
                requests: Vec::new(),
                counters: Vec::new(),
                offloads: Vec::new(),
            },
            FrameLimit::MAX,
            &mut out,
        )
        .unwrap();
        let e = Handover::decode(&out).unwrap_err().to_string();
        assert!(e.contains("9.9.9") && e.contains("format 2"), "{e}");
    }
}
