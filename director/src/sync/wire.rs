//! The sync datagram: a versioned header, the sender's echoes, fixed-size records, and an
//! HMAC-SHA256 over all of them, with the sender's id, boot generation and sequence number for
//! the freshness check. The sealing, key and freshness code is [`lvs_common::authdgram`]
//! (shared with lvs-heartbeatd); this file keeps only the layout.
//!
//! Layout of version 3 (integers big-endian):
//!
//! | offset | size | field |
//! | ---: | ---: | --- |
//! | 0 | 4 | magic `LVSY` |
//! | 4 | 1 | version, 3 |
//! | 5 | 1 | kind: 1 updates, 2 bulk request, 3 bulk chunk, 4 bulk end, 5 keepalive |
//! | 6 | 1 | sync id (`[sync] sync_id`; other ids are ignored) |
//! | 7 | 1 | flags: 1 = the sender is active |
//! | 8 | 8 | sender id (random once, kept in `<state_dir>/sync.generation`) |
//! | 16 | 8 | boot generation (higher at each start of the sender) |
//! | 24 | 8 | sequence number (1, 2, 3 ... within one generation) |
//! | 32 | 4 | bulk id (bulk request, chunk, end) |
//! | 36 | 4 | chunk number (chunk) or number of chunks (end) |
//! | 40 | 2 | records that follow |
//! | 42 | 1 | echoes that follow, 0 to [`MAX_ECHOES`] |
//! | 43 | 1 | reserved, zero |
//! | 44 | 16 × e | echoes: a peer's sender id (8) and its generation the sender accepted last (8) |
//! | then | 66 × n | records; a bulk request has none but 18 bytes of reply address instead |
//! | end | 32 | HMAC-SHA256 of everything before it |
//!
//! A record: protocol (6/17), method (0 NAT, 1 DR, 2 TUN), state (IPVS numbering, 11 UDP),
//! flags, client address (16, IPv4 mapped) and port, virtual address and port, real server
//! address and port, milliseconds left, persistence timeout in seconds (templates).
//!
//! The family of a record is the form of its addresses, as in the connection table: an IPv4
//! address is IPv4-mapped (`::ffff:a.b.c.d`), every other value is an IPv6 address. The
//! three addresses of one record are of one family (a service does not mix them); a record
//! mixing them is malformed. IPv6 entries travel in the same version-3 records over either
//! family's socket: version 3 always carried 16-byte addresses, and its senders only ever
//! sent IPv4-mapped ones, so no version bump was needed when IPv6 entries appeared.
//!
//! A datagram is at most [`MAX_DATAGRAM`] bytes over IPv4 and [`MAX_DATAGRAM_V6`] over IPv6
//! (1500-byte MTU less the IP and UDP headers: never fragmented); the receiver takes either.
//!
//! The reply address of a bulk request (16, IPv4 mapped or IPv6, and port) is where the
//! requester wants the table: the active director answers only when it is the datagram's
//! source and a configured peer, or, when it is `0.0.0.0:0`, to the configured multicast
//! group (of either family). Being under the MAC, it cannot be changed to send the table
//! elsewhere.
//!
//! The echoes are the freshness challenge of
//! [`lvs_common::authdgram::Freshness::with_challenge`], for several peers at once: each
//! datagram names the generation the sender accepted last from each of the (at most
//! [`MAX_ECHOES`]) peers it heard most recently. A director that restarted accepts datagrams
//! of a peer's already-known generation only once one echoes its own new generation, which no
//! datagram sealed before its restart can carry; its bulk request (a new generation, accepted
//! at once) tells the active director that generation, whose bulk reply echoes it. With
//! multicast, one list serves every standby.
//!
//! Version 1 had a random boot id and no sender id: a datagram of any earlier run of a peer
//! was accepted. Version 2 had no echoes: after a standby restarted, datagrams of the active
//! director's current run recorded earlier could be replayed to it. Authentic datagrams of
//! both are refused ([`Reject::OldVersion`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use lvs_common::authdgram::{self, OpenError};
pub use lvs_common::authdgram::{AuthKey, KeyError, MAC_LEN, MAX_KEY_LEN, MIN_KEY_LEN};
use lvs_conntrack::{Addr, Endpoint, Forward, Proto, State, SyncEntry};

pub const MAGIC: [u8; 4] = *b"LVSY";
pub const VERSION: u8 = 3;
pub const HEADER_LEN: usize = 44;
pub const RECORD_LEN: usize = 66;
/// One echo: a sender id and a generation.
pub const ECHO_LEN: usize = 16;
/// Echoes in one datagram: the peers heard most recently (a sync cluster is a few
/// directors; a standby past this many is echoed again as soon as it is heard again).
pub const MAX_ECHOES: usize = 8;
/// The reply address of a bulk request: IPv4-mapped address and port.
pub const REPLY_TO_LEN: usize = 18;
/// Datagrams stay below a 1500-byte MTU with IPv4 and UDP headers.
pub const MAX_DATAGRAM: usize = 1472;
/// The same over IPv6, whose header is 20 bytes longer.
pub const MAX_DATAGRAM_V6: usize = 1452;
/// Records in one full datagram without echoes (each echo takes room: [`records_fit`]).
pub const MAX_RECORDS: usize = records_fit(0);

/// Records that fit in one datagram beside `echoes` echoes.
pub const fn records_fit(echoes: usize) -> usize {
    records_fit_in(MAX_DATAGRAM, echoes)
}

/// Records that fit in a datagram of at most `max` bytes beside `echoes` echoes.
pub const fn records_fit_in(max: usize, echoes: usize) -> usize {
    (max - HEADER_LEN - MAC_LEN - echoes * ECHO_LEN) / RECORD_LEN
}
/// The sender is the active director.
pub const FLAG_ACTIVE: u8 = 1;

/// What a datagram is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Updates = 1,
    BulkRequest = 2,
    BulkChunk = 3,
    BulkEnd = 4,
    Keepalive = 5,
}

impl Kind {
    fn from_code(c: u8) -> Option<Kind> {
        Some(match c {
            1 => Kind::Updates,
            2 => Kind::BulkRequest,
            3 => Kind::BulkChunk,
            4 => Kind::BulkEnd,
            5 => Kind::Keepalive,
            _ => return None,
        })
    }
}

/// The generations a sender accepted last from its peers, most recently heard first
/// (at most [`MAX_ECHOES`]; sender ids are distinct and never 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Echoes {
    len: usize,
    items: [(u64, u64); MAX_ECHOES],
}

impl Echoes {
    /// Records that `generation` of `sender` was accepted: it goes first, replacing the
    /// sender's earlier generation; past [`MAX_ECHOES`], the peer heard longest ago goes.
    pub fn note(&mut self, sender: u64, generation: u64) {
        let end = match self.items[..self.len]
            .iter()
            .position(|&(s, _)| s == sender)
        {
            Some(i) => i,
            None => {
                self.len = (self.len + 1).min(MAX_ECHOES);
                self.len - 1
            }
        };
        self.items.copy_within(..end, 1);
        self.items[0] = (sender, generation);
    }

    /// The generation echoed for `sender`.
    pub fn get(&self, sender: u64) -> Option<u64> {
        self.as_slice()
            .iter()
            .find(|&&(s, _)| s == sender)
            .map(|&(_, g)| g)
    }

    /// (sender id, generation), most recently heard first.
    pub fn as_slice(&self) -> &[(u64, u64)] {
        &self.items[..self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A datagram's header, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub sync_id: u8,
    pub flags: u8,
    /// The sender's id (kept across its restarts).
    pub sender: u64,
    /// The sender's boot generation.
    pub generation: u64,
    pub seq: u64,
    pub bulk_id: u32,
    pub chunk: u32,
    pub count: u16,
    /// A bulk request's reply address (`0.0.0.0:0`: the multicast group); `None` otherwise.
    pub reply_to: Option<SocketAddr>,
    /// The generations the sender accepted last from its peers.
    pub echoes: Echoes,
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// Shorter than the magic and the MAC, or than the records it announces.
    #[error("truncated")]
    Truncated,
    /// Not a sync datagram.
    #[error("not a sync datagram")]
    BadMagic,
    /// The MAC does not match: another key, forged, or corrupted.
    #[error("bad MAC")]
    BadMac,
    /// Authentic but with values this version does not know (a newer version among them).
    #[error("malformed")]
    Malformed,
    /// Authentic but of version 1 or 2 (a director from before the boot generation or the
    /// echoes, or a replay of one).
    #[error("old version")]
    OldVersion,
    /// A sequence number already seen (or too old) in the sender's current generation.
    #[error("replay")]
    Replay,
    /// Of the sender's already-known generation, first heard since our restart, and not
    /// echoing our new generation: maybe recorded before our restart (the live active
    /// director echoes it once it has our bulk request).
    #[error("unconfirmed")]
    Unconfirmed,
    /// From an earlier run of the sender (a generation below the highest accepted).
    #[error("stale generation")]
    StaleGeneration,
    /// A bulk request whose reply address is not its source, not a configured peer, or the
    /// multicast group where none is configured: not answered.
    #[error("unknown requester")]
    UnknownRequester,
    /// Another director sends under our sender id (its state directory was copied from
    /// ours, or both were restored from one image): neither hears the other.
    #[error("our sender id")]
    SenderClash,
}

impl Reject {
    /// Every reason, in a fixed order (for per-reason counters).
    pub const ALL: [Reject; 10] = [
        Reject::Truncated,
        Reject::BadMagic,
        Reject::BadMac,
        Reject::Malformed,
        Reject::OldVersion,
        Reject::Replay,
        Reject::Unconfirmed,
        Reject::StaleGeneration,
        Reject::UnknownRequester,
        Reject::SenderClash,
    ];

    /// This reason's place in [`Reject::ALL`].
    pub fn index(self) -> usize {
        Reject::ALL.iter().position(|&r| r == self).unwrap_or(0)
    }
}

/// Builds one datagram in a fixed buffer: header, records, then [`Builder::seal`].
#[derive(Debug)]
pub struct Builder {
    buf: [u8; MAX_DATAGRAM],
    count: usize,
    /// Where the records start (after the echoes), and how many fit.
    records_at: usize,
    capacity: usize,
    reply_to: Option<SocketAddr>,
    /// The largest datagram to build ([`MAX_DATAGRAM`] or [`MAX_DATAGRAM_V6`]).
    limit: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::with_limit(MAX_DATAGRAM)
    }
}

impl Builder {
    /// A builder of datagrams of at most `limit` bytes (at most [`MAX_DATAGRAM`]).
    pub fn with_limit(limit: usize) -> Builder {
        let limit = limit.clamp(
            HEADER_LEN + MAC_LEN + MAX_ECHOES * ECHO_LEN + RECORD_LEN,
            MAX_DATAGRAM,
        );
        Builder {
            buf: [0; MAX_DATAGRAM],
            count: 0,
            records_at: HEADER_LEN,
            capacity: records_fit_in(limit, 0),
            reply_to: None,
            limit,
        }
    }

    /// Start a datagram (records are added with [`Builder::push`]).
    pub fn start(&mut self, h: &Header) {
        self.count = 0;
        let b = &mut self.buf;
        b[..HEADER_LEN].fill(0);
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = VERSION;
        b[5] = h.kind as u8;
        b[6] = h.sync_id;
        b[7] = h.flags;
        b[8..16].copy_from_slice(&h.sender.to_be_bytes());
        b[16..24].copy_from_slice(&h.generation.to_be_bytes());
        b[24..32].copy_from_slice(&h.seq.to_be_bytes());
        b[32..36].copy_from_slice(&h.bulk_id.to_be_bytes());
        b[36..40].copy_from_slice(&h.chunk.to_be_bytes());
        let echoes = h.echoes.as_slice();
        b[42] = u8::try_from(echoes.len()).unwrap_or(0);
        let mut at = HEADER_LEN;
        for &(sender, generation) in echoes {
            b[at..at + 8].copy_from_slice(&sender.to_be_bytes());
            b[at + 8..at + ECHO_LEN].copy_from_slice(&generation.to_be_bytes());
            at += ECHO_LEN;
        }
        self.records_at = at;
        self.capacity = records_fit_in(self.limit, echoes.len());
        self.reply_to = h.reply_to.filter(|_| h.kind == Kind::BulkRequest);
    }

    /// Records so far.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn is_full(&self) -> bool {
        self.count >= self.capacity
    }

    /// Change the sequence number (set when the datagram is really sent).
    pub fn set_seq(&mut self, seq: u64) {
        self.buf[24..32].copy_from_slice(&seq.to_be_bytes());
    }

    /// Add a record; false when the datagram is full.
    pub fn push(&mut self, e: &SyncEntry) -> bool {
        if self.is_full() || self.reply_to.is_some() {
            return false;
        }
        let at = self.records_at + self.count * RECORD_LEN;
        encode_record(e, &mut self.buf[at..at + RECORD_LEN]);
        self.count += 1;
        true
    }

    /// Write the record count and the MAC; the datagram to send.
    pub fn seal(&mut self, key: &AuthKey) -> &[u8] {
        let n = u16::try_from(self.count).unwrap_or(u16::MAX);
        self.buf[40..42].copy_from_slice(&n.to_be_bytes());
        let mut body_len = self.records_at + self.count * RECORD_LEN;
        if let Some(to) = self.reply_to {
            encode_addr(&to, &mut self.buf[body_len..body_len + REPLY_TO_LEN]);
            body_len += REPLY_TO_LEN;
        }
        authdgram::seal_in_place(key, &mut self.buf, body_len)
    }
}

fn encode_addr(a: &SocketAddr, b: &mut [u8]) {
    let ip = match a.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    b[..16].copy_from_slice(&ip.octets());
    b[16..18].copy_from_slice(&a.port().to_be_bytes());
}

fn decode_addr(b: &[u8]) -> SocketAddr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    let v6 = std::net::Ipv6Addr::from(a);
    let ip = v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4);
    SocketAddr::new(ip, be16(&b[16..18]))
}

/// The reply address meaning "answer to the multicast group".
pub const TO_GROUP: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

fn encode_record(e: &SyncEntry, b: &mut [u8]) {
    b[0] = e.proto as u8;
    b[1] = e.forward as u8;
    b[2] = e.state as u8;
    b[3] = e.flags;
    let ep = |b: &mut [u8], ep: &Endpoint| {
        b[..16].copy_from_slice(&ep.addr.0);
        b[16..18].copy_from_slice(&ep.port.to_be_bytes());
    };
    ep(&mut b[4..22], &e.client);
    ep(&mut b[22..40], &e.virt);
    ep(&mut b[40..58], &e.dest);
    b[58..62].copy_from_slice(&e.timeout_ms.to_be_bytes());
    b[62..66].copy_from_slice(&e.persist_secs.to_be_bytes());
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}
fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

fn decode_record(b: &[u8]) -> Result<SyncEntry, Reject> {
    let proto = match b[0] {
        6 => Proto::Tcp,
        17 => Proto::Udp,
        _ => return Err(Reject::Malformed),
    };
    let forward = match b[1] {
        0 => Forward::Nat,
        1 => Forward::DirectRoute,
        2 => Forward::Tunnel,
        _ => return Err(Reject::Malformed),
    };
    let state = match b[2] {
        s if usize::from(s) < State::TCP.len() => State::TCP[usize::from(s)],
        11 => State::Udp,
        _ => return Err(Reject::Malformed),
    };
    let ep = |b: &[u8]| {
        let mut a = [0u8; 16];
        a.copy_from_slice(&b[..16]);
        Endpoint::new(Addr(a), be16(&b[16..18]))
    };
    let (client, virt, dest) = (ep(&b[4..22]), ep(&b[22..40]), ep(&b[40..58]));
    let v4 = client.addr.is_v4();
    if virt.addr.is_v4() != v4 || dest.addr.is_v4() != v4 {
        return Err(Reject::Malformed);
    }
    Ok(SyncEntry {
        proto,
        client,
        virt,
        dest,
        forward,
        state,
        flags: SyncEntry::clean_flags(b[3]),
        timeout_ms: be32(&b[58..62]),
        persist_secs: be32(&b[62..66]),
    })
}

/// An authentic datagram: its header and its records (still to be decoded one by one).
#[derive(Debug)]
pub struct Opened<'a> {
    pub header: Header,
    records: &'a [u8],
}

impl Opened<'_> {
    /// The records; a malformed one ends the iteration with an error.
    pub fn records(&self) -> impl Iterator<Item = Result<SyncEntry, Reject>> + '_ {
        self.records.chunks_exact(RECORD_LEN).map(decode_record)
    }
}

/// Checks the MAC (before anything else of the datagram is read but its public magic), then
/// the version, the header and the length. Not freshness: see
/// [`lvs_common::authdgram::Freshness`]. Never panics.
pub fn open<'a>(bytes: &'a [u8], key: &AuthKey) -> Result<Opened<'a>, Reject> {
    let body = authdgram::open(key, &MAGIC, VERSION, bytes).map_err(|e| match e {
        OpenError::TooShort => Reject::Truncated,
        OpenError::BadMagic => Reject::BadMagic,
        OpenError::BadMac => Reject::BadMac,
        OpenError::OldVersion => Reject::OldVersion,
        // A newer layout than this build reads.
        OpenError::NewVersion => Reject::Malformed,
    })?;
    if body.len() < HEADER_LEN {
        return Err(Reject::Truncated);
    }
    let kind = Kind::from_code(body[5]).ok_or(Reject::Malformed)?;
    let count = be16(&body[40..42]);
    let n_echoes = usize::from(body[42]);
    if n_echoes > MAX_ECHOES || body[43] != 0 {
        return Err(Reject::Malformed);
    }
    let extra = if kind == Kind::BulkRequest {
        REPLY_TO_LEN
    } else {
        0
    };
    let records_at = HEADER_LEN + n_echoes * ECHO_LEN;
    let records_end = records_at + usize::from(count) * RECORD_LEN;
    let want = records_end + extra;
    if body.len() < want {
        return Err(Reject::Truncated);
    }
    if body.len() > want || (extra > 0 && count > 0) {
        return Err(Reject::Malformed);
    }
    let mut echoes = Echoes::default();
    // Read back to front, so that `note` leaves them in the sender's order.
    for e in body[HEADER_LEN..records_at].chunks_exact(ECHO_LEN).rev() {
        let (sender, generation) = (be64(&e[..8]), be64(&e[8..]));
        // Ids are never 0, and a sender echoes each peer once.
        if sender == 0 || echoes.get(sender).is_some() {
            return Err(Reject::Malformed);
        }
        echoes.note(sender, generation);
    }
    let reply_to = (kind == Kind::BulkRequest).then(|| decode_addr(&body[records_end..]));
    Ok(Opened {
        header: Header {
            kind,
            sync_id: body[6],
            flags: body[7],
            sender: be64(&body[8..16]),
            generation: be64(&body[16..24]),
            seq: be64(&body[24..32]),
            bulk_id: be32(&body[32..36]),
            chunk: be32(&body[36..40]),
            count,
            reply_to,
            echoes,
        },
        records: &body[records_at..records_end],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(port: u16) -> SyncEntry {
        SyncEntry {
            proto: Proto::Tcp,
            client: Endpoint::v4([198, 51, 100, 2], port),
            virt: Endpoint::v4([203, 0, 113, 100], 80),
            dest: Endpoint::v4([203, 0, 113, 11], 80),
            forward: Forward::Nat,
            state: State::Established,
            flags: 0,
            timeout_ms: 899_000,
            persist_secs: 0,
        }
    }

    fn header(seq: u64) -> Header {
        Header {
            kind: Kind::Updates,
            sync_id: 3,
            flags: FLAG_ACTIVE,
            sender: 0xfeed,
            generation: 42,
            seq,
            bulk_id: 0,
            chunk: 0,
            count: 0,
            reply_to: None,
            echoes: Echoes::default(),
        }
    }

    fn key() -> AuthKey {
        AuthKey::from_bytes(b"0123456789abcdef").unwrap()
    }

    #[test]
    fn a_full_datagram_round_trips() {
        let mut b = Builder::default();
        b.start(&header(7));
        let mut n = 0;
        while b.push(&entry(n)) {
            n += 1;
        }
        assert_eq!(usize::from(n), MAX_RECORDS);
        let bytes = b.seal(&key()).to_vec();
        assert!(bytes.len() <= MAX_DATAGRAM);
        assert_eq!(bytes[4], 3);
        let o = open(&bytes, &key()).unwrap();
        assert_eq!(
            (o.header.seq, o.header.generation, o.header.sender),
            (7, 42, 0xfeed)
        );
        assert_eq!(o.header.sync_id, 3);
        assert_eq!(o.header.reply_to, None);
        let got: Vec<SyncEntry> = o.records().map(Result::unwrap).collect();
        assert_eq!(got.len(), MAX_RECORDS);
        assert_eq!(got[5], entry(5));
    }

    #[test]
    fn a_bulk_request_carries_its_reply_address_under_the_mac() {
        let to: SocketAddr = "192.0.2.7:8848".parse().unwrap();
        let mut b = Builder::default();
        b.start(&Header {
            kind: Kind::BulkRequest,
            bulk_id: 9,
            reply_to: Some(to),
            ..header(1)
        });
        assert!(!b.push(&entry(1)), "a request holds no records");
        let bytes = b.seal(&key()).to_vec();
        assert_eq!(bytes.len(), HEADER_LEN + REPLY_TO_LEN + MAC_LEN);
        let o = open(&bytes, &key()).unwrap();
        assert_eq!(o.header.reply_to, Some(to));
        assert_eq!(o.records().count(), 0);
        // Another address in its place: the MAC fails.
        let mut other = bytes.clone();
        other[HEADER_LEN + 15] ^= 1;
        assert_eq!(open(&other, &key()).unwrap_err(), Reject::BadMac);
        b.start(&Header {
            kind: Kind::BulkRequest,
            reply_to: Some(TO_GROUP),
            ..header(2)
        });
        let o = open(b.seal(&key()), &key()).unwrap().header;
        assert_eq!(o.reply_to, Some(TO_GROUP));
    }

    #[test]
    fn wrong_key_truncation_old_versions_and_garbage_are_refused() {
        let other = AuthKey::from_bytes(b"fedcba9876543210").unwrap();
        let mut b = Builder::default();
        b.start(&header(1));
        b.push(&entry(1));
        b.push(&entry(2));
        let bytes = b.seal(&key()).to_vec();
        assert_eq!(open(&bytes, &other).unwrap_err(), Reject::BadMac);
        for cut in [0, 3, 20, 4 + MAC_LEN - 1] {
            assert_eq!(
                open(&bytes[..cut], &key()).unwrap_err(),
                Reject::Truncated,
                "cut {cut}"
            );
        }
        // Cut anywhere else: the tag is no longer the last 32 bytes.
        assert_eq!(
            open(&bytes[..bytes.len() - 1], &key()).unwrap_err(),
            Reject::BadMac
        );
        let mut flipped = bytes.clone();
        flipped[40] ^= 1;
        assert_eq!(open(&flipped, &key()).unwrap_err(), Reject::BadMac);
        assert_eq!(
            open(b"GET / HTTP/1.1 and some more bytes to fill a MAC", &key()).unwrap_err(),
            Reject::BadMagic
        );
        // Authentic, but announcing more records than it holds, or of version 1 or 3.
        let reseal = |mut body: Vec<u8>| {
            let t = authdgram::tag(&key(), &body);
            body.extend_from_slice(&t);
            body
        };
        let mut body = bytes[..bytes.len() - MAC_LEN].to_vec();
        body[41] = 3;
        assert_eq!(
            open(&reseal(body.clone()), &key()).unwrap_err(),
            Reject::Truncated
        );
        body[41] = 2;
        for old in [1, 2] {
            body[4] = old;
            assert_eq!(
                open(&reseal(body.clone()), &key()).unwrap_err(),
                Reject::OldVersion
            );
        }
        body[4] = 4;
        assert_eq!(open(&reseal(body), &key()).unwrap_err(), Reject::Malformed);
    }

    fn echoes(list: &[(u64, u64)]) -> Echoes {
        let mut e = Echoes::default();
        for &(s, g) in list.iter().rev() {
            e.note(s, g);
        }
        e
    }

    #[test]
    fn echoes_keep_the_peers_heard_last_once_each() {
        let mut e = Echoes::default();
        assert_eq!(e.get(1), None);
        e.note(1, 10);
        e.note(2, 20);
        e.note(1, 11);
        assert_eq!(e.as_slice(), &[(1, 11), (2, 20)]);
        for peer in 3..=9 {
            e.note(peer, peer * 10);
        }
        // Nine peers heard: the one heard longest ago (2) goes.
        assert_eq!(e.len(), MAX_ECHOES);
        assert_eq!((e.get(2), e.get(1), e.get(9)), (None, Some(11), Some(90)));
        assert_eq!(e.as_slice()[0], (9, 90));
    }

    #[test]
    fn echoes_travel_under_the_mac_and_take_the_room_of_records() {
        let list: Vec<(u64, u64)> = (1..=MAX_ECHOES as u64).map(|p| (p, 1000 + p)).collect();
        let h = Header {
            echoes: echoes(&list),
            ..header(3)
        };
        let mut b = Builder::default();
        b.start(&h);
        let mut n = 0;
        while b.push(&entry(n)) {
            n += 1;
        }
        assert_eq!(usize::from(n), records_fit(MAX_ECHOES));
        assert!(records_fit(MAX_ECHOES) < MAX_RECORDS);
        let bytes = b.seal(&key()).to_vec();
        assert!(bytes.len() <= MAX_DATAGRAM);
        let o = open(&bytes, &key()).unwrap();
        assert_eq!(o.header.echoes.as_slice(), &list[..]);
        assert_eq!(o.header.echoes.get(3), Some(1003));
        assert_eq!(o.records().count(), usize::from(n));
        assert_eq!(o.records().nth(4).unwrap().unwrap(), entry(4));
        // Another generation in an echo: the MAC fails.
        let mut other = bytes.clone();
        other[HEADER_LEN + ECHO_LEN + 15] ^= 1;
        assert_eq!(open(&other, &key()).unwrap_err(), Reject::BadMac);
        // A bulk request: its reply address after the echoes.
        let to: SocketAddr = "192.0.2.7:8848".parse().unwrap();
        b.start(&Header {
            kind: Kind::BulkRequest,
            reply_to: Some(to),
            echoes: echoes(&[(7, 70)]),
            ..header(4)
        });
        let o = open(b.seal(&key()), &key()).unwrap().header;
        assert_eq!(
            (o.reply_to, o.echoes.as_slice()),
            (Some(to), &[(7, 70)][..])
        );

        // Authentic, but with more echoes than allowed, an id 0 or one peer twice.
        let reseal = |mut body: Vec<u8>| {
            let t = authdgram::tag(&key(), &body);
            body.extend_from_slice(&t);
            body
        };
        b.start(&Header {
            echoes: echoes(&[(5, 1), (6, 2)]),
            ..header(5)
        });
        let good = b.seal(&key()).to_vec();
        let body = good[..good.len() - MAC_LEN].to_vec();
        for (at, value) in [
            (42, 9u8),
            (43, 1),
            (HEADER_LEN + 7, 0),
            (HEADER_LEN + ECHO_LEN + 7, 5),
        ] {
            let mut bad = body.clone();
            bad[at] = value;
            if at == 42 {
                bad.resize(HEADER_LEN + 9 * ECHO_LEN, 1);
            }
            assert_eq!(
                open(&reseal(bad), &key()).unwrap_err(),
                Reject::Malformed,
                "{at}"
            );
        }
        let mut short = body.clone();
        short[42] = 3;
        assert_eq!(open(&reseal(short), &key()).unwrap_err(), Reject::Truncated);
    }

    fn entry6(port: u16) -> SyncEntry {
        // 2001:db8:a::last
        let a = |last: u8| Addr::v6([0x20, 1, 0xd, 0xb8, 0, 0xa, 0, 0, 0, 0, 0, 0, 0, 0, 0, last]);
        SyncEntry {
            client: Endpoint::new(a(2), port),
            virt: Endpoint::new(a(100), 80),
            dest: Endpoint::new(a(11), 8080),
            forward: Forward::Tunnel,
            state: State::SynRecv,
            ..entry(port)
        }
    }

    /// IPv6 entries (and a /64 template) in the same records as IPv4 ones, in a datagram
    /// built for an IPv6 socket: fewer records fit, all of them come back whole.
    #[test]
    fn ipv6_entries_round_trip_in_datagrams_sized_for_ipv6() {
        let template = SyncEntry {
            client: Endpoint::new(
                Addr::v6([0x20, 1, 0xd, 0xb8, 0, 0xa, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
                0,
            ),
            dest: entry6(0).dest,
            state: State::None,
            flags: SyncEntry::TEMPLATE_FLAG,
            persist_secs: 300,
            ..entry6(0)
        };
        let mut b = Builder::with_limit(MAX_DATAGRAM_V6);
        b.start(&header(9));
        assert!(b.push(&template));
        assert!(b.push(&entry(1)), "both families in one datagram");
        let mut n = 2u16;
        while b.push(&entry6(n)) {
            n += 1;
        }
        assert_eq!(usize::from(n), records_fit_in(MAX_DATAGRAM_V6, 0));
        assert_eq!(
            usize::from(n) + 1,
            MAX_RECORDS,
            "one record less than over IPv4"
        );
        let bytes = b.seal(&key()).to_vec();
        assert!(bytes.len() <= MAX_DATAGRAM_V6);
        let o = open(&bytes, &key()).unwrap();
        let got: Vec<SyncEntry> = o.records().map(Result::unwrap).collect();
        assert_eq!(got.len(), usize::from(n));
        assert_eq!((got[0], got[1], got[7]), (template, entry(1), entry6(7)));
        assert!(!got[7].client.addr.is_v4());

        // A standby on an IPv6 socket names its IPv6 address for the bulk reply.
        let to: SocketAddr = "[2001:db8:7::2]:8848".parse().unwrap();
        b.start(&Header {
            kind: Kind::BulkRequest,
            reply_to: Some(to),
            ..header(10)
        });
        let o = open(b.seal(&key()), &key()).unwrap().header;
        assert_eq!(o.reply_to, Some(to));
    }

    /// A record whose addresses are not all of one family is malformed (authentic or not,
    /// nothing of it reaches a worker).
    #[test]
    fn a_record_mixing_families_is_malformed() {
        let (v4, v6) = (entry(1), entry6(1));
        for mixed in [
            SyncEntry {
                client: v4.client,
                ..v6
            },
            SyncEntry {
                virt: v4.virt,
                ..v6
            },
            SyncEntry {
                dest: v6.dest,
                ..v4
            },
        ] {
            let mut b = Builder::default();
            b.start(&header(1));
            b.push(&v6);
            b.push(&mixed);
            let bytes = b.seal(&key()).to_vec();
            let o = open(&bytes, &key()).unwrap();
            let got: Vec<_> = o.records().collect();
            assert_eq!(got, vec![Ok(v6), Err(Reject::Malformed)], "{mixed:?}");
        }
    }

    fn any_addr(v4: bool) -> impl proptest::strategy::Strategy<Value = Addr> {
        use proptest::prelude::*;
        any::<[u8; 16]>().prop_map(move |o| {
            if v4 {
                Addr::v4([o[0], o[1], o[2], o[3]])
            } else {
                // Not IPv4-mapped: the first byte is never 0 here.
                let mut o = o;
                o[0] |= 0x20;
                Addr::v6(o)
            }
        })
    }

    fn any_entry() -> impl proptest::strategy::Strategy<Value = SyncEntry> {
        use proptest::prelude::*;
        any::<bool>().prop_flat_map(|v4| {
            (
                (any_addr(v4), any::<u16>(), any_addr(v4), any::<u16>()),
                (
                    any_addr(v4),
                    any::<u16>(),
                    any::<bool>(),
                    0u8..3,
                    0usize..12,
                ),
                (any::<u8>(), any::<u32>(), any::<u32>()),
            )
                .prop_map(|((ca, cp, va, vp), (da, dp, udp, fwd, st), (fl, t, p))| {
                    SyncEntry {
                        proto: if udp { Proto::Udp } else { Proto::Tcp },
                        client: Endpoint::new(ca, cp),
                        virt: Endpoint::new(va, vp),
                        dest: Endpoint::new(da, dp),
                        forward: [Forward::Nat, Forward::DirectRoute, Forward::Tunnel]
                            [usize::from(fwd)],
                        state: if st < State::TCP.len() {
                            State::TCP[st]
                        } else {
                            State::Udp
                        },
                        flags: SyncEntry::clean_flags(fl),
                        timeout_ms: t,
                        persist_secs: p,
                    }
                })
        })
    }

    proptest::proptest! {
        /// Any bytes, under a valid MAC or not: `open` and every record's decoding return,
        /// never panic; a record that decodes is of one family and encodes back to its bytes
        /// (but for flag bits the receiver drops).
        #[test]
        fn random_bytes_never_panic_and_what_decodes_is_canonical(
            head in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..HEADER_LEN + 2 * ECHO_LEN),
            records in proptest::collection::vec(proptest::prelude::any::<[u8; RECORD_LEN]>(), 0..4),
            family in 0u8..3,
            keep_head in proptest::prelude::any::<bool>(),
        ) {
            let mut body = head;
            if keep_head && body.len() >= HEADER_LEN {
                // A plausible header, so that the records are read.
                body[..4].copy_from_slice(&MAGIC);
                body[4] = VERSION;
                body[5] = Kind::Updates as u8;
                body.truncate(HEADER_LEN);
                body[40..42].copy_from_slice(&u16::try_from(records.len()).unwrap().to_be_bytes());
                body[42] = 0;
                body[43] = 0;
            }
            for mut r in records {
                if keep_head {
                    // Mostly valid codes, so that the addresses are what is judged.
                    r[0] = if r[0] & 1 == 0 { 6 } else { 17 };
                    r[1] %= 4;
                    r[2] %= 13;
                }
                for at in [4, 22, 40] {
                    match family {
                        // All three IPv4-mapped, all three native IPv6, or random bytes
                        // (native IPv6, or now and then a mix).
                        0 => {
                            r[at..at + 10].fill(0);
                            r[at + 10..at + 12].fill(0xff);
                        }
                        1 => r[at] |= 0x20,
                        _ => {}
                    }
                }
                body.extend_from_slice(&r);
            }
            let _ = open(&body, &key());
            let mut sealed = body.clone();
            sealed.extend_from_slice(&authdgram::tag(&key(), &body));
            if let Ok(o) = open(&sealed, &key()) {
                for (r, raw) in o.records().zip(o.records.chunks_exact(RECORD_LEN)) {
                    if let Ok(e) = r {
                        let v4 = e.client.addr.is_v4();
                        proptest::prop_assert_eq!(e.virt.addr.is_v4(), v4);
                        proptest::prop_assert_eq!(e.dest.addr.is_v4(), v4);
                        let mut again = [0u8; RECORD_LEN];
                        encode_record(&e, &mut again);
                        let mut want = [0u8; RECORD_LEN];
                        want.copy_from_slice(raw);
                        want[3] = SyncEntry::clean_flags(want[3]);
                        proptest::prop_assert_eq!(&again[..], &want[..]);
                    }
                }
            }
        }

        /// Entries of either family, any values, come back as sent from a datagram built for
        /// either socket family.
        #[test]
        fn entries_of_either_family_round_trip(
            entries in proptest::collection::vec(any_entry(), 0..30),
            over_v6 in proptest::prelude::any::<bool>(),
        ) {
            let limit = if over_v6 { MAX_DATAGRAM_V6 } else { MAX_DATAGRAM };
            let mut b = Builder::with_limit(limit);
            b.start(&header(1));
            let sent: Vec<SyncEntry> = entries.into_iter().take_while(|e| b.push(e)).collect();
            let bytes = b.seal(&key()).to_vec();
            proptest::prop_assert!(bytes.len() <= limit);
            let o = open(&bytes, &key()).unwrap();
            let got: Vec<SyncEntry> = o.records().map(Result::unwrap).collect();
            proptest::prop_assert_eq!(got, sent);
        }
    }

    #[test]
    fn reasons_have_distinct_indexes() {
        for (i, r) in Reject::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
