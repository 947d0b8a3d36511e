//! The sync datagram: a versioned header, fixed-size records, and an HMAC-SHA256 over both,
//! with a boot id and a sequence number checked against replay.
//!
//! Layout of version 1 (integers big-endian):
//!
//! | offset | size | field |
//! | ---: | ---: | --- |
//! | 0 | 4 | magic `LVSY` |
//! | 4 | 1 | version, 1 |
//! | 5 | 1 | kind: 1 updates, 2 bulk request, 3 bulk chunk, 4 bulk end, 5 keepalive |
//! | 6 | 1 | sync id (`[sync] sync_id`; other ids are ignored) |
//! | 7 | 1 | flags: 1 = the sender is active |
//! | 8 | 8 | boot id (random at each start of the sender) |
//! | 16 | 8 | sequence number (1, 2, 3 ... within one boot id) |
//! | 24 | 4 | bulk id (bulk request, chunk, end) |
//! | 28 | 4 | chunk number (chunk) or number of chunks (end) |
//! | 32 | 2 | records that follow |
//! | 34 | 2 | reserved, zero |
//! | 36 | 66 × n | records |
//! | end | 32 | HMAC-SHA256 of everything before it |
//!
//! A record: protocol (6/17), method (0 NAT, 1 DR, 2 TUN), state (IPVS numbering, 11 UDP),
//! flags, client address (16, IPv4 mapped) and port, virtual address and port, real server
//! address and port, milliseconds left, persistence timeout in seconds (templates).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use lvs_conntrack::{Addr, Endpoint, Forward, Proto, State, SyncEntry};
use sha2::Sha256;

pub const MAGIC: [u8; 4] = *b"LVSY";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 36;
pub const RECORD_LEN: usize = 66;
pub const MAC_LEN: usize = 32;
/// Datagrams stay below a 1500-byte MTU with IPv4 and UDP headers.
pub const MAX_DATAGRAM: usize = 1472;
/// Records in one full datagram.
pub const MAX_RECORDS: usize = (MAX_DATAGRAM - HEADER_LEN - MAC_LEN) / RECORD_LEN;
pub const MIN_KEY_LEN: usize = 16;
pub const MAX_KEY_LEN: usize = 1024;
/// The sender is the active director.
pub const FLAG_ACTIVE: u8 = 1;

type HmacSha256 = Hmac<Sha256>;

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

/// A datagram's header, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub sync_id: u8,
    pub flags: u8,
    pub boot_id: u64,
    pub seq: u64,
    pub bulk_id: u32,
    pub chunk: u32,
    pub count: u16,
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// Shorter than its header and MAC, or than the records it announces.
    #[error("truncated")]
    Truncated,
    /// Not a sync datagram, or a version this build does not read.
    #[error("not a sync datagram")]
    BadMagic,
    /// The MAC does not match: another key, forged, or corrupted.
    #[error("bad MAC")]
    BadMac,
    /// Authentic but with values this version does not know.
    #[error("malformed")]
    Malformed,
    /// A sequence number already seen (or too old) for this boot id.
    #[error("replay")]
    Replay,
}

/// The shared key. `Debug` never shows it.
#[derive(Clone)]
pub struct AuthKey {
    mac: HmacSha256,
}

impl std::fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthKey(..)")
    }
}

/// Why the key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("sync key file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("sync key file {path}: not a regular file")]
    NotRegular { path: PathBuf },
    #[error(
        "sync key file {path}: mode {mode:04o} lets group or others read it; refusing a shared key others can read (chmod 600 {path})"
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("sync key file {path}: {len} bytes, must be {MIN_KEY_LEN} to {MAX_KEY_LEN}")]
    Length { path: PathBuf, len: usize },
}

impl AuthKey {
    /// A key from bytes (tests; the daemon reads a file).
    pub fn from_bytes(key: &[u8]) -> AuthKey {
        // HMAC takes a key of any length.
        let mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
        AuthKey { mac }
    }

    /// The whole file less one final line ending. The file must be a regular file that
    /// neither group nor others can access (0600 or 0400); checked on the opened file.
    pub fn from_file(path: &Path) -> Result<AuthKey, KeyError> {
        let p = || path.to_path_buf();
        let io_err = |source| KeyError::Io { path: p(), source };
        let mut file = File::open(path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        if !meta.file_type().is_file() {
            return Err(KeyError::NotRegular { path: p() });
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions { path: p(), mode });
        }
        let mut content = Vec::new();
        file.by_ref()
            .take(MAX_KEY_LEN as u64 + 3)
            .read_to_end(&mut content)
            .map_err(io_err)?;
        let mut key: &[u8] = &content;
        if let Some(rest) = key.strip_suffix(b"\n") {
            key = rest.strip_suffix(b"\r").unwrap_or(rest);
        }
        let result = if (MIN_KEY_LEN..=MAX_KEY_LEN).contains(&key.len()) {
            Ok(AuthKey::from_bytes(key))
        } else {
            Err(KeyError::Length {
                path: p(),
                len: key.len(),
            })
        };
        content.fill(0);
        result
    }

    fn tag(&self, body: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = self.mac.clone();
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    fn verify(&self, body: &[u8], tag: &[u8]) -> bool {
        let mut mac = self.mac.clone();
        mac.update(body);
        mac.verify_slice(tag).is_ok()
    }
}

/// Builds one datagram in a fixed buffer: header, records, then [`Builder::seal`].
#[derive(Debug)]
pub struct Builder {
    buf: [u8; MAX_DATAGRAM],
    count: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            buf: [0; MAX_DATAGRAM],
            count: 0,
        }
    }
}

impl Builder {
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
        b[8..16].copy_from_slice(&h.boot_id.to_be_bytes());
        b[16..24].copy_from_slice(&h.seq.to_be_bytes());
        b[24..28].copy_from_slice(&h.bulk_id.to_be_bytes());
        b[28..32].copy_from_slice(&h.chunk.to_be_bytes());
    }

    /// Records so far.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn is_full(&self) -> bool {
        self.count >= MAX_RECORDS
    }

    /// Change the sequence number (set when the datagram is really sent).
    pub fn set_seq(&mut self, seq: u64) {
        self.buf[16..24].copy_from_slice(&seq.to_be_bytes());
    }

    /// Add a record; false when the datagram is full.
    pub fn push(&mut self, e: &SyncEntry) -> bool {
        if self.is_full() {
            return false;
        }
        let at = HEADER_LEN + self.count * RECORD_LEN;
        encode_record(e, &mut self.buf[at..at + RECORD_LEN]);
        self.count += 1;
        true
    }

    /// Write the record count and the MAC; the datagram to send.
    pub fn seal(&mut self, key: &AuthKey) -> &[u8] {
        let n = u16::try_from(self.count).unwrap_or(u16::MAX);
        self.buf[32..34].copy_from_slice(&n.to_be_bytes());
        let body_len = HEADER_LEN + self.count * RECORD_LEN;
        let tag = key.tag(&self.buf[..body_len]);
        self.buf[body_len..body_len + MAC_LEN].copy_from_slice(&tag);
        &self.buf[..body_len + MAC_LEN]
    }
}

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
    Ok(SyncEntry {
        proto,
        client: ep(&b[4..22]),
        virt: ep(&b[22..40]),
        dest: ep(&b[40..58]),
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

/// Checks length, magic, version and MAC (not replay: see [`Replay`]). Never panics.
pub fn open<'a>(bytes: &'a [u8], key: &AuthKey) -> Result<Opened<'a>, Reject> {
    if bytes.len() < 5 {
        return Err(Reject::Truncated);
    }
    if bytes[0..4] != MAGIC || bytes[4] != VERSION {
        return Err(Reject::BadMagic);
    }
    if bytes.len() < HEADER_LEN + MAC_LEN {
        return Err(Reject::Truncated);
    }
    let count = be16(&bytes[32..34]);
    let body_len = HEADER_LEN + usize::from(count) * RECORD_LEN;
    if bytes.len() < body_len + MAC_LEN {
        return Err(Reject::Truncated);
    }
    if bytes.len() > body_len + MAC_LEN {
        return Err(Reject::Malformed);
    }
    let (body, tag) = bytes.split_at(body_len);
    if !key.verify(body, tag) {
        return Err(Reject::BadMac);
    }
    let kind = Kind::from_code(body[5]).ok_or(Reject::Malformed)?;
    Ok(Opened {
        header: Header {
            kind,
            sync_id: body[6],
            flags: body[7],
            boot_id: be64(&body[8..16]),
            seq: be64(&body[16..24]),
            bulk_id: be32(&body[24..28]),
            chunk: be32(&body[28..32]),
            count,
        },
        records: &body[HEADER_LEN..],
    })
}

/// The sequence window of one sender boot.
#[derive(Debug, Clone, Copy)]
struct Window {
    boot_id: u64,
    top: u64,
    /// Bit i: `top - i` was accepted.
    seen: u64,
}

/// Replay protection: per sender boot id, the highest sequence and a 64-wide window below it
/// (datagrams may arrive a little out of order). Boot ids are remembered for the last few
/// senders, so a datagram captured from an earlier run of a peer is refused as well.
#[derive(Debug, Default)]
pub struct Replay {
    windows: VecDeque<Window>,
}

const REMEMBERED_BOOTS: usize = 64;

impl Replay {
    /// Accepts (and records) `seq` of `boot_id`, or refuses it as a replay. Call only for
    /// authentic datagrams.
    pub fn check(&mut self, boot_id: u64, seq: u64) -> Result<(), Reject> {
        if seq == 0 {
            return Err(Reject::Replay);
        }
        let pos = self.windows.iter().position(|w| w.boot_id == boot_id);
        let Some(pos) = pos else {
            if self.windows.len() >= REMEMBERED_BOOTS {
                self.windows.pop_back();
            }
            self.windows.push_front(Window {
                boot_id,
                top: seq,
                seen: 1,
            });
            return Ok(());
        };
        let w = &mut self.windows[pos];
        if seq > w.top {
            let shift = seq - w.top;
            w.seen = if shift >= 64 { 0 } else { w.seen << shift };
            w.seen |= 1;
            w.top = seq;
        } else {
            let back = w.top - seq;
            if back >= 64 || w.seen & (1 << back) != 0 {
                return Err(Reject::Replay);
            }
            w.seen |= 1 << back;
        }
        if pos != 0 {
            let w = self.windows.remove(pos).unwrap_or_else(|| unreachable!());
            self.windows.push_front(w);
        }
        Ok(())
    }
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
            boot_id: 42,
            seq,
            bulk_id: 0,
            chunk: 0,
            count: 0,
        }
    }

    #[test]
    fn a_full_datagram_round_trips() {
        let key = AuthKey::from_bytes(b"0123456789abcdef");
        let mut b = Builder::default();
        b.start(&header(7));
        let mut n = 0;
        while b.push(&entry(n)) {
            n += 1;
        }
        assert_eq!(usize::from(n), MAX_RECORDS);
        let bytes = b.seal(&key).to_vec();
        assert!(bytes.len() <= MAX_DATAGRAM);
        let o = open(&bytes, &key).unwrap();
        assert_eq!(o.header.seq, 7);
        assert_eq!(o.header.sync_id, 3);
        let got: Vec<SyncEntry> = o.records().map(Result::unwrap).collect();
        assert_eq!(got.len(), MAX_RECORDS);
        assert_eq!(got[5], entry(5));
    }

    #[test]
    fn wrong_key_truncation_and_garbage_are_refused() {
        let key = AuthKey::from_bytes(b"0123456789abcdef");
        let other = AuthKey::from_bytes(b"fedcba9876543210");
        let mut b = Builder::default();
        b.start(&header(1));
        b.push(&entry(1));
        b.push(&entry(2));
        let bytes = b.seal(&key).to_vec();
        assert_eq!(open(&bytes, &other).unwrap_err(), Reject::BadMac);
        for cut in [0, 3, 20, HEADER_LEN + MAC_LEN - 1, bytes.len() - 1] {
            assert_eq!(
                open(&bytes[..cut], &key).unwrap_err(),
                Reject::Truncated,
                "cut {cut}"
            );
        }
        let mut flipped = bytes.clone();
        flipped[40] ^= 1;
        assert_eq!(open(&flipped, &key).unwrap_err(), Reject::BadMac);
        assert_eq!(open(b"GET / HTTP/1.1", &key).unwrap_err(), Reject::BadMagic);
    }

    #[test]
    fn replays_are_refused_and_reordering_is_not() {
        let mut r = Replay::default();
        assert!(r.check(1, 1).is_ok());
        assert!(r.check(1, 3).is_ok());
        assert!(r.check(1, 2).is_ok(), "late but new");
        assert_eq!(r.check(1, 2), Err(Reject::Replay));
        assert_eq!(r.check(1, 3), Err(Reject::Replay));
        assert!(r.check(1, 100).is_ok());
        assert_eq!(r.check(1, 30), Err(Reject::Replay), "too old");
        // A new boot of the sender starts its own window; the old one is still remembered.
        assert!(r.check(2, 1).is_ok());
        assert_eq!(r.check(1, 100), Err(Reject::Replay));
        assert_eq!(r.check(2, 0), Err(Reject::Replay));
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("lvs-sync-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sync.key");
        std::fs::write(&path, "a shared secret of some length\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = AuthKey::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(AuthKey::from_file(&path).is_ok());
        std::fs::write(&path, "short").unwrap();
        assert!(
            AuthKey::from_file(&path)
                .unwrap_err()
                .to_string()
                .contains("5 bytes")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
