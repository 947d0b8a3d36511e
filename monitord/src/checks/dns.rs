//! DNS over UDP: a minimal RFC 1035 encoder and a bounded decoder (A and AAAA answers), and
//! the probe that asks one question and checks the answer.
//!
//! The decoder never panics and never loops: every read is bounds-checked, a compression
//! pointer must point strictly backwards (before the label it replaces), a name is at most 255
//! bytes on the wire, and at most [`MAX_RECORDS`] records are read.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use mio::net::UdpSocket;

use crate::config::DnsCheck;

/// At most this many records (all sections together) are decoded.
pub const MAX_RECORDS: usize = 256;
/// The longest name on the wire (RFC 1035 2.3.4).
pub const MAX_NAME: usize = 255;
/// Class IN.
pub const CLASS_IN: u16 = 1;

/// Why a name or message is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The message ends in the middle of something.
    #[error("message truncated")]
    Truncated,
    /// A label is longer than 63 bytes, empty in the middle of a name, or a name too long.
    #[error("bad name")]
    BadName,
    /// A compression pointer that does not point backwards.
    #[error("bad compression pointer")]
    BadPointer,
    /// A label type other than 00 (label) or 11 (pointer).
    #[error("bad label type")]
    BadLabel,
    /// More records than [`MAX_RECORDS`].
    #[error("too many records")]
    TooMany,
}

/// Appends `name` in wire format (labels, then the root). `"."` and `""` are the root.
pub fn encode_name(name: &str, out: &mut Vec<u8>) -> Result<(), DnsError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let start = out.len();
    if !name.is_empty() {
        for label in name.split('.') {
            let len = label.len();
            if len == 0 || len > 63 || !label.is_ascii() {
                out.truncate(start);
                return Err(DnsError::BadName);
            }
            out.push(u8::try_from(len).map_err(|_| DnsError::BadName)?);
            out.extend_from_slice(label.as_bytes());
        }
    }
    out.push(0);
    if out.len() - start > MAX_NAME {
        out.truncate(start);
        return Err(DnsError::BadName);
    }
    Ok(())
}

/// A standard query (RD set) for one name and type, class IN.
pub fn encode_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, DnsError> {
    let mut m = Vec::with_capacity(32 + name.len());
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QD=1
    encode_name(name, &mut m)?;
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(m)
}

/// A response to `query`'s first question with `answers` (A or AAAA records by address
/// family, TTL 60), the answer names compressed with a pointer to the question. For test
/// responders, and the property tests of the decoder.
pub fn encode_response(
    query: &Message,
    rcode: u8,
    answers: &[IpAddr],
) -> Result<Vec<u8>, DnsError> {
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(&query.id.to_be_bytes());
    let flags: u16 = 0x8000 | 0x0100 | 0x0080 | u16::from(rcode & 0x0f); // QR RD RA rcode
    m.extend_from_slice(&flags.to_be_bytes());
    let qd = u16::from(!query.questions.is_empty());
    let an = u16::try_from(answers.len()).map_err(|_| DnsError::TooMany)?;
    m.extend_from_slice(&qd.to_be_bytes());
    m.extend_from_slice(&an.to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    if let Some(q) = query.questions.first() {
        encode_name(&q.name, &mut m)?;
        m.extend_from_slice(&q.qtype.to_be_bytes());
        m.extend_from_slice(&q.class.to_be_bytes());
    }
    for a in answers {
        if qd == 1 {
            m.extend_from_slice(&[0xc0, 12]); // pointer to the question's name
        } else {
            m.push(0);
        }
        let (t, data): (u16, Vec<u8>) = match a {
            IpAddr::V4(v) => (1, v.octets().to_vec()),
            IpAddr::V6(v) => (28, v.octets().to_vec()),
        };
        m.extend_from_slice(&t.to_be_bytes());
        m.extend_from_slice(&CLASS_IN.to_be_bytes());
        m.extend_from_slice(&60u32.to_be_bytes());
        let len = u16::try_from(data.len()).map_err(|_| DnsError::TooMany)?;
        m.extend_from_slice(&len.to_be_bytes());
        m.extend_from_slice(&data);
    }
    Ok(m)
}

/// One question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The name, dotted, without the final dot (`""` for the root).
    pub name: String,
    /// Type code.
    pub qtype: u16,
    /// Class code.
    pub class: u16,
}

/// One resource record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Owner name.
    pub name: String,
    /// Type code.
    pub rtype: u16,
    /// Class code.
    pub class: u16,
    /// Time to live.
    pub ttl: u32,
    /// The address, for A and AAAA records of the right length.
    pub addr: Option<IpAddr>,
}

/// A decoded message: header, questions and the answer section (authority and additional
/// records are skipped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Transaction id.
    pub id: u16,
    /// The 16 flag bits (QR, opcode, AA, TC, RD, RA, Z, RCODE).
    pub flags: u16,
    /// The question section.
    pub questions: Vec<Question>,
    /// The answer section.
    pub answers: Vec<Record>,
}

impl Message {
    /// True for a response.
    pub fn is_response(&self) -> bool {
        self.flags & 0x8000 != 0
    }

    /// The response code (0 = no error, 3 = NXDOMAIN ...).
    pub fn rcode(&self) -> u8 {
        u8::try_from(self.flags & 0x000f).unwrap_or(0)
    }

    /// True if the server truncated the answer.
    pub fn truncated(&self) -> bool {
        self.flags & 0x0200 != 0
    }
}

fn u16_at(m: &[u8], pos: usize) -> Result<u16, DnsError> {
    let b = m.get(pos..pos + 2).ok_or(DnsError::Truncated)?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}

fn u32_at(m: &[u8], pos: usize) -> Result<u32, DnsError> {
    let b = m.get(pos..pos + 4).ok_or(DnsError::Truncated)?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Reads the name at `pos`; returns it and the position just after it (after the first
/// pointer, if any).
pub fn read_name(m: &[u8], pos: usize) -> Result<(String, usize), DnsError> {
    let mut name = String::new();
    let mut wire_len = 0usize;
    let mut at = pos;
    let mut end = None;
    loop {
        let len = *m.get(at).ok_or(DnsError::Truncated)?;
        match len & 0xc0 {
            0x00 => {
                let len = usize::from(len);
                wire_len += len + 1;
                if wire_len > MAX_NAME {
                    return Err(DnsError::BadName);
                }
                if len == 0 {
                    return Ok((name, end.unwrap_or(at + 1)));
                }
                let label = m.get(at + 1..at + 1 + len).ok_or(DnsError::Truncated)?;
                if !name.is_empty() {
                    name.push('.');
                }
                for &b in label {
                    // Keep names printable; anything odd is escaped as \DDD (RFC 4343).
                    if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                        name.push(char::from(b));
                    } else {
                        name.push_str(&format!("\\{b:03}"));
                    }
                }
                at += 1 + len;
            }
            0xc0 => {
                let target = usize::from(u16_at(m, at)? & 0x3fff);
                // Strictly backwards: no loops possible, and at most 255/2 hops before the
                // wire length limit or the start of the message stops us.
                if target >= at {
                    return Err(DnsError::BadPointer);
                }
                if end.is_none() {
                    end = Some(at + 2);
                }
                at = target;
            }
            _ => return Err(DnsError::BadLabel),
        }
    }
}

/// Decodes a whole message (bounded; see the module docs).
pub fn decode(m: &[u8]) -> Result<Message, DnsError> {
    let id = u16_at(m, 0)?;
    let flags = u16_at(m, 2)?;
    let qd = usize::from(u16_at(m, 4)?);
    let an = usize::from(u16_at(m, 6)?);
    if qd + an > MAX_RECORDS {
        return Err(DnsError::TooMany);
    }
    let mut pos = 12;
    let mut questions = Vec::with_capacity(qd);
    for _ in 0..qd {
        let (name, next) = read_name(m, pos)?;
        questions.push(Question {
            name,
            qtype: u16_at(m, next)?,
            class: u16_at(m, next + 2)?,
        });
        pos = next + 4;
    }
    let mut answers = Vec::with_capacity(an);
    for _ in 0..an {
        let (name, next) = read_name(m, pos)?;
        let rtype = u16_at(m, next)?;
        let class = u16_at(m, next + 2)?;
        let ttl = u32_at(m, next + 4)?;
        let len = usize::from(u16_at(m, next + 8)?);
        let data = m
            .get(next + 10..next + 10 + len)
            .ok_or(DnsError::Truncated)?;
        let addr = match (rtype, data.len()) {
            (1, 4) => Some(IpAddr::V4(Ipv4Addr::new(
                data[0], data[1], data[2], data[3],
            ))),
            (28, 16) => {
                let mut o = [0u8; 16];
                o.copy_from_slice(data);
                Some(IpAddr::V6(Ipv6Addr::from(o)))
            }
            _ => None,
        };
        answers.push(Record {
            name,
            rtype,
            class,
            ttl,
            addr,
        });
        pos = next + 10 + len;
    }
    Ok(Message {
        id,
        flags,
        questions,
        answers,
    })
}

fn rcode_name(rcode: u8) -> String {
    match rcode {
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        n => format!("rcode {n}"),
    }
}

/// Judges a response to `check`'s query `id`: `None` if it is not the response (ignore it),
/// else pass/fail and a detail.
pub fn judge(check: &DnsCheck, id: u16, msg: &[u8]) -> Option<(bool, String)> {
    let m = match decode(msg) {
        Ok(m) => m,
        Err(e) => return Some((false, format!("malformed DNS response: {e}"))),
    };
    if m.id != id || !m.is_response() {
        return None;
    }
    let want = check.name.trim_end_matches('.');
    match m.questions.first() {
        Some(q) if q.name.eq_ignore_ascii_case(want) && q.qtype == check.qtype.code() => {}
        _ => return None,
    }
    if m.rcode() != 0 {
        return Some((false, format!("DNS answer {}", rcode_name(m.rcode()))));
    }
    if m.truncated() {
        return Some((false, "DNS answer truncated (TC)".into()));
    }
    let got: Vec<IpAddr> = m
        .answers
        .iter()
        .filter(|r| r.rtype == check.qtype.code() && r.class == CLASS_IN)
        .filter_map(|r| r.addr)
        .collect();
    let shown = Addrs(&got);
    if got.is_empty() {
        return Some((
            false,
            format!("no {} record for {}", check.qtype.name(), check.name),
        ));
    }
    if let Some(missing) = check.expect.iter().find(|e| !got.contains(e)) {
        return Some((
            false,
            format!(
                "{} {} is {shown}, expected {missing}",
                check.name,
                check.qtype.name()
            ),
        ));
    }
    Some((
        true,
        format!("{} {} {shown}", check.name, check.qtype.name()),
    ))
}

struct Addrs<'a>(&'a [IpAddr]);

impl fmt::Display for Addrs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

/// One DNS question in flight.
#[derive(Debug)]
pub(crate) struct DnsProbe {
    pub(crate) socket: UdpSocket,
    id: u16,
}

impl DnsProbe {
    /// Opens a connected UDP socket to `server` and sends the query.
    pub(crate) fn start(check: &DnsCheck, server: SocketAddr, id: u16) -> io::Result<DnsProbe> {
        let local: SocketAddr = match server {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local)?;
        socket.connect(server)?;
        let q = encode_query(id, &check.name, check.qtype.code())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        socket.send(&q)?;
        Ok(DnsProbe { socket, id })
    }

    /// Reads what arrived; `Some` once the answer is judged.
    pub(crate) fn ready(&mut self, check: &DnsCheck) -> Option<(bool, String)> {
        let mut buf = [0u8; 4096];
        loop {
            match self.socket.recv(&mut buf) {
                Ok(n) => {
                    if let Some(v) = judge(check, self.id, &buf[..n]) {
                        return Some(v);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // ICMP port unreachable comes back as ECONNREFUSED on a connected socket.
                Err(e) => return Some((false, format!("DNS query failed: {e}"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DnsType;
    use proptest::prelude::*;

    fn check(expect: &[&str]) -> DnsCheck {
        DnsCheck {
            port: 53,
            name: "www.example.com".into(),
            qtype: DnsType::A,
            expect: expect.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn query_round_trip_and_answer() {
        let q = encode_query(0x1234, "www.example.com", 1).unwrap();
        let m = decode(&q).unwrap();
        assert_eq!(m.id, 0x1234);
        assert!(!m.is_response());
        assert_eq!(m.questions[0].name, "www.example.com");
        let r = encode_response(
            &m,
            0,
            &["192.0.2.7".parse().unwrap(), "192.0.2.8".parse().unwrap()],
        )
        .unwrap();
        let d = decode(&r).unwrap();
        assert_eq!(d.answers.len(), 2);
        assert_eq!(d.answers[0].name, "www.example.com");
        assert_eq!(d.answers[1].addr, Some("192.0.2.8".parse().unwrap()));
        assert!(judge(&check(&["192.0.2.8"]), 0x1234, &r).unwrap().0);
        let (ok, detail) = judge(&check(&["192.0.2.9"]), 0x1234, &r).unwrap();
        assert!(!ok);
        assert_eq!(
            detail,
            "www.example.com A is 192.0.2.7,192.0.2.8, expected 192.0.2.9"
        );
        assert!(
            judge(&check(&[]), 0x9999, &r).is_none(),
            "other id is ignored"
        );
        let nx = encode_response(&m, 3, &[]).unwrap();
        assert_eq!(
            judge(&check(&[]), 0x1234, &nx).unwrap().1,
            "DNS answer NXDOMAIN"
        );
    }

    #[test]
    fn names() {
        let mut v = Vec::new();
        assert!(encode_name("a..b", &mut v).is_err());
        assert!(encode_name(&"a".repeat(64), &mut v).is_err());
        assert!(encode_name(&["abcdefgh"; 40].join("."), &mut v).is_err());
        assert!(v.is_empty());
        encode_name("example.com.", &mut v).unwrap();
        assert_eq!(v, b"\x07example\x03com\x00");
        encode_name(".", &mut v).unwrap();
        assert_eq!(read_name(&v, 13).unwrap(), (String::new(), 14));
    }

    #[test]
    fn pointer_loops_and_forward_pointers_are_refused() {
        let mut m = vec![0u8; 12];
        m.extend_from_slice(&[0xc0, 12]); // points at itself
        assert_eq!(read_name(&m, 12), Err(DnsError::BadPointer));
        let mut m = vec![0u8; 12];
        m.extend_from_slice(&[0xc0, 14, 0]);
        assert_eq!(read_name(&m, 12), Err(DnsError::BadPointer));
        let mut m = vec![0u8; 12];
        m.extend_from_slice(&[1, b'a', 0x80]);
        assert_eq!(read_name(&m, 12), Err(DnsError::BadLabel));
    }

    proptest! {
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode(&bytes);
            let _ = judge(&check(&["192.0.2.1"]), 1, &bytes);
        }

        #[test]
        fn decoder_survives_mutated_responses(
            labels in proptest::collection::vec("[a-z0-9-]{1,20}", 1..5),
            addrs in proptest::collection::vec(any::<[u8; 4]>(), 0..8),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        ) {
            let name = labels.join(".");
            let q = decode(&encode_query(7, &name, 1).unwrap()).unwrap();
            let addrs: Vec<IpAddr> = addrs.into_iter().map(|a| IpAddr::V4(a.into())).collect();
            let mut r = encode_response(&q, 0, &addrs).unwrap();
            let d = decode(&r).unwrap();
            prop_assert_eq!(&d.questions[0].name, &name);
            prop_assert_eq!(d.answers.iter().map(|a| a.addr.unwrap()).collect::<Vec<_>>(), addrs);
            for (at, v) in flips {
                let i = at % r.len();
                r[i] ^= v;
            }
            let _ = decode(&r);
        }
    }
}
