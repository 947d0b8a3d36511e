//! The heartbeat message: a fixed, versioned binary layout written by hand, sealed with
//! HMAC-SHA256 under a shared key, and verified against replay.
//!
//! Layout of version 1 (all integers big-endian, [`MESSAGE_LEN`] = 88 bytes):
//!
//! | offset | size | field |
//! | ---: | ---: | --- |
//! | 0 | 4 | magic `LVHB` |
//! | 4 | 1 | version, 1 |
//! | 5 | 1 | state: 0 init, 1 backup, 2 master, 3 fault |
//! | 6 | 2 | status flags ([`Status::TABLE_SYNCED`]; unknown bits are ignored, for compatible additions) |
//! | 8 | 4 | node id |
//! | 12 | 2 | priority |
//! | 14 | 1 | medium the message was sealed for: 0 UDP, 1 serial |
//! | 15 | 1 | reserved, zero |
//! | 16 | 8 | boot id (random at each process start) |
//! | 24 | 8 | sequence number (1, 2, 3 ... within one boot id) |
//! | 32 | 8 | mastership epoch |
//! | 40 | 8 | sender's wall clock, milliseconds since the Unix epoch (informational) |
//! | 48 | 4 | connection-table sync generation |
//! | 52 | 4 | reserved, zero |
//! | 56 | 32 | HMAC-SHA256 of bytes 0..56 |
//!
//! The medium is inside the MAC, so a message captured on one medium cannot be replayed on
//! the other; the daemon seals one message per medium (two HMACs per keepalive).
//!
//! Checks, in order, each counted when it fails ([`RejectCounts`]): at least the six bytes of
//! magic and version ([`Reject::BadLength`]), the magic ([`Reject::BadMagic`]), the version
//! ([`Reject::BadVersion`]), the exact length of that version ([`Reject::BadLength`]), the MAC
//! in constant time ([`Reject::BadMac`]), field values ([`Reject::Malformed`]), the sender is
//! a configured peer ([`Reject::UnknownPeer`]), and the sequence ([`Reject::Replay`]).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::Medium;

/// The first four bytes of every heartbeat.
pub const MAGIC: [u8; 4] = *b"LVHB";
/// The layout version this code writes and reads.
pub const VERSION: u8 = 1;
/// Bytes covered by the MAC.
pub const BODY_LEN: usize = 56;
/// Length of the HMAC-SHA256 tag.
pub const MAC_LEN: usize = 32;
/// Length of a version-1 message.
pub const MESSAGE_LEN: usize = BODY_LEN + MAC_LEN;
/// Shortest key accepted.
pub const MIN_KEY_LEN: usize = 16;
/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 1024;
/// By default, a new boot id is accepted only while its sequence is at most this (about
/// 3.6 hours of heartbeats at 200 ms): see [`Verifier::set_restart_window`].
pub const DEFAULT_RESTART_WINDOW: u64 = 1 << 16;
/// How many earlier boot ids of each peer are remembered and refused.
const RETIRED_BOOTS: usize = 16;

type HmacSha256 = Hmac<Sha256>;

/// What a node says it is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeState {
    /// Started, waiting up to initdead to hear the peer.
    Init,
    /// Standing by.
    Backup,
    /// Owns the virtual addresses.
    Master,
    /// Cannot serve (local fault); owns nothing.
    Fault,
}

impl NodeState {
    /// The wire code.
    pub const fn code(self) -> u8 {
        match self {
            NodeState::Init => 0,
            NodeState::Backup => 1,
            NodeState::Master => 2,
            NodeState::Fault => 3,
        }
    }

    /// The state for a wire code.
    pub const fn from_code(code: u8) -> Option<NodeState> {
        match code {
            0 => Some(NodeState::Init),
            1 => Some(NodeState::Backup),
            2 => Some(NodeState::Master),
            3 => Some(NodeState::Fault),
            _ => None,
        }
    }

    /// The name used in logs, alerts and notify commands.
    pub const fn name(self) -> &'static str {
        match self {
            NodeState::Init => "init",
            NodeState::Backup => "backup",
            NodeState::Master => "master",
            NodeState::Fault => "fault",
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The small status a heartbeat carries besides the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Status {
    /// The connection-table sync generation (bumped by each bulk resync).
    pub sync_generation: u32,
    /// Flags, see the constants.
    pub flags: u16,
}

impl Status {
    /// The sender's connection table has been resynchronised from the active director.
    pub const TABLE_SYNCED: u16 = 1;
    /// Every flag this version knows (others are carried but mean nothing to it).
    pub const KNOWN_FLAGS: u16 = Self::TABLE_SYNCED;

    /// Whether [`Status::TABLE_SYNCED`] is set.
    pub const fn table_synced(&self) -> bool {
        self.flags & Self::TABLE_SYNCED != 0
    }
}

/// One heartbeat, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// The sender's node id (unique in the cluster).
    pub node_id: u32,
    /// The sender's priority: the higher wins the initial election.
    pub priority: u16,
    /// The medium this message was sealed for.
    pub medium: Medium,
    /// Random per process start of the sender.
    pub boot_id: u64,
    /// 1, 2, 3 ... within one boot id.
    pub sequence: u64,
    /// The sender's mastership epoch.
    pub epoch: u64,
    /// The sender's state.
    pub state: NodeState,
    /// The sender's status.
    pub status: Status,
    /// The sender's wall clock in milliseconds since the Unix epoch (informational only:
    /// nothing depends on the two clocks agreeing).
    pub timestamp_ms: u64,
}

impl Heartbeat {
    /// The 56 bytes the MAC covers.
    pub fn encode_body(&self) -> [u8; BODY_LEN] {
        let mut b = [0u8; BODY_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = VERSION;
        b[5] = self.state.code();
        b[6..8].copy_from_slice(&self.status.flags.to_be_bytes());
        b[8..12].copy_from_slice(&self.node_id.to_be_bytes());
        b[12..14].copy_from_slice(&self.priority.to_be_bytes());
        b[14] = medium_code(self.medium);
        b[16..24].copy_from_slice(&self.boot_id.to_be_bytes());
        b[24..32].copy_from_slice(&self.sequence.to_be_bytes());
        b[32..40].copy_from_slice(&self.epoch.to_be_bytes());
        b[40..48].copy_from_slice(&self.timestamp_ms.to_be_bytes());
        b[48..52].copy_from_slice(&self.status.sync_generation.to_be_bytes());
        b
    }

    /// The whole message: body and MAC.
    pub fn seal(&self, key: &AuthKey) -> [u8; MESSAGE_LEN] {
        let body = self.encode_body();
        let tag = key.tag(&body);
        let mut out = [0u8; MESSAGE_LEN];
        out[..BODY_LEN].copy_from_slice(&body);
        out[BODY_LEN..].copy_from_slice(&tag);
        out
    }

    /// Checks the layout and the MAC and decodes, without replay checks (that is
    /// [`Verifier::verify`]). Never panics, whatever the bytes.
    pub fn open(bytes: &[u8], key: &AuthKey) -> Result<Heartbeat, Reject> {
        if bytes.len() < 6 {
            return Err(Reject::BadLength);
        }
        if bytes[0..4] != MAGIC {
            return Err(Reject::BadMagic);
        }
        if bytes[4] != VERSION {
            return Err(Reject::BadVersion);
        }
        if bytes.len() != MESSAGE_LEN {
            return Err(Reject::BadLength);
        }
        let (body, tag) = bytes.split_at(BODY_LEN);
        if !key.verify(body, tag) {
            return Err(Reject::BadMac);
        }
        let state = NodeState::from_code(body[5]).ok_or(Reject::Malformed)?;
        let flags = u16::from_be_bytes([body[6], body[7]]);
        let medium = match body[14] {
            0 => Medium::Udp,
            1 => Medium::Serial,
            _ => return Err(Reject::Malformed),
        };
        if body[15] != 0 || body[52..56] != [0; 4] {
            return Err(Reject::Malformed);
        }
        Ok(Heartbeat {
            node_id: be_u32(&body[8..12]),
            priority: u16::from_be_bytes([body[12], body[13]]),
            medium,
            boot_id: be_u64(&body[16..24]),
            sequence: be_u64(&body[24..32]),
            epoch: be_u64(&body[32..40]),
            state,
            status: Status {
                sync_generation: be_u32(&body[48..52]),
                flags,
            },
            timestamp_ms: be_u64(&body[40..48]),
        })
    }
}

fn medium_code(medium: Medium) -> u8 {
    match medium {
        Medium::Udp => 0,
        Medium::Serial => 1,
    }
}

fn be_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    u32::from_be_bytes(a)
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_be_bytes(a)
}

/// Why a key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be opened or read.
    #[error("heartbeat key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The key file is not a regular file.
    #[error("heartbeat key file {path}: not a regular file")]
    NotRegular {
        /// The file.
        path: PathBuf,
    },
    /// Group or others have some access to the key file.
    #[error(
        "heartbeat key file {path}: mode {mode:04o} gives group or others access; refusing a shared key others can read (chmod 600 {path})"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file belongs to a user other than root or the daemon's user.
    #[error("heartbeat key file {path}: owned by uid {owner}, expected root or uid {euid}")]
    Owner {
        /// The file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The daemon's effective uid.
        euid: u32,
    },
    /// The key is too short or too long.
    #[error("heartbeat key{}: {len} bytes, must be {MIN_KEY_LEN} to {MAX_KEY_LEN}", path_suffix(.path))]
    Length {
        /// The file, when the key came from one.
        path: Option<PathBuf>,
        /// The key's length after the final line ending was removed.
        len: usize,
    },
}

fn path_suffix(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!(" file {}", p.display()))
        .unwrap_or_default()
}

/// The shared HMAC-SHA256 key. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct AuthKey {
    mac: HmacSha256,
}

impl fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthKey(..)")
    }
}

impl AuthKey {
    /// A key from bytes ([`MIN_KEY_LEN`] to [`MAX_KEY_LEN`] of them).
    pub fn from_bytes(key: &[u8]) -> Result<AuthKey, KeyError> {
        if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&key.len()) {
            return Err(KeyError::Length {
                path: None,
                len: key.len(),
            });
        }
        // HMAC takes keys of any length: this cannot fail.
        let mac = HmacSha256::new_from_slice(key).map_err(|_| KeyError::Length {
            path: None,
            len: key.len(),
        })?;
        Ok(AuthKey { mac })
    }

    /// Reads the key from a file: the whole content, less one final line ending (`\n` or
    /// `\r\n`). The file must be a regular file that neither group nor others can read,
    /// write or execute (mode `0600` or `0400`), owned by root or by the daemon's user;
    /// anything else is refused with a clear error. The checks use the opened file, so a
    /// rename between check and read cannot slip another file in.
    pub fn from_file(path: &Path) -> Result<AuthKey, KeyError> {
        let io_err = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        if !meta.file_type().is_file() {
            return Err(KeyError::NotRegular {
                path: path.to_path_buf(),
            });
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: path.to_path_buf(),
                mode,
            });
        }
        let euid = nix::unistd::geteuid().as_raw();
        if meta.uid() != 0 && meta.uid() != euid {
            return Err(KeyError::Owner {
                path: path.to_path_buf(),
                owner: meta.uid(),
                euid,
            });
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
        let result = AuthKey::from_bytes(key).map_err(|e| match e {
            KeyError::Length { len, .. } => KeyError::Length {
                path: Some(path.to_path_buf()),
                len,
            },
            other => other,
        });
        content.fill(0);
        result
    }

    fn tag(&self, body: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = self.mac.clone();
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// Constant-time check of `tag` over `body`.
    fn verify(&self, body: &[u8], tag: &[u8]) -> bool {
        let mut mac = self.mac.clone();
        mac.update(body);
        mac.verify_slice(tag).is_ok()
    }
}

/// Why a received message was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Reject {
    /// Too short to hold a header, or not the length of its version.
    #[error("bad length")]
    BadLength,
    /// Not a heartbeat (wrong magic).
    #[error("bad magic")]
    BadMagic,
    /// A layout version this code does not read.
    #[error("bad version")]
    BadVersion,
    /// The MAC does not match: wrong key, forged or corrupted.
    #[error("bad MAC")]
    BadMac,
    /// Authentic, but with a state or medium code this version does not know, or a
    /// reserved byte that is not zero.
    #[error("malformed")]
    Malformed,
    /// A sequence not higher than the last one of the same boot, a boot id seen before, a
    /// new boot id without a sequence restart, or a message sealed for the other medium.
    #[error("replay")]
    Replay,
    /// Authentic, but from a node id that is not a configured peer (or our own).
    #[error("unknown peer")]
    UnknownPeer,
}

/// Rejections counted by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RejectCounts {
    /// [`Reject::BadLength`].
    pub bad_length: u64,
    /// [`Reject::BadMagic`].
    pub bad_magic: u64,
    /// [`Reject::BadVersion`].
    pub bad_version: u64,
    /// [`Reject::BadMac`].
    pub bad_mac: u64,
    /// [`Reject::Malformed`].
    pub malformed: u64,
    /// [`Reject::Replay`].
    pub replay: u64,
    /// [`Reject::UnknownPeer`].
    pub unknown_peer: u64,
}

impl RejectCounts {
    /// The counter for one reason.
    pub fn get(&self, reason: Reject) -> u64 {
        match reason {
            Reject::BadLength => self.bad_length,
            Reject::BadMagic => self.bad_magic,
            Reject::BadVersion => self.bad_version,
            Reject::BadMac => self.bad_mac,
            Reject::Malformed => self.malformed,
            Reject::Replay => self.replay,
            Reject::UnknownPeer => self.unknown_peer,
        }
    }

    /// Each counter with its name (`bad_length`, `bad_magic`, `bad_version`, `bad_mac`,
    /// `malformed`, `replay`, `unknown_peer`).
    pub fn named(&self) -> [(&'static str, u64); 7] {
        [
            ("bad_length", self.bad_length),
            ("bad_magic", self.bad_magic),
            ("bad_version", self.bad_version),
            ("bad_mac", self.bad_mac),
            ("malformed", self.malformed),
            ("replay", self.replay),
            ("unknown_peer", self.unknown_peer),
        ]
    }

    /// Every rejection.
    pub fn total(&self) -> u64 {
        self.bad_length
            + self.bad_magic
            + self.bad_version
            + self.bad_mac
            + self.malformed
            + self.replay
            + self.unknown_peer
    }

    fn bump(&mut self, reason: Reject) {
        let c = match reason {
            Reject::BadLength => &mut self.bad_length,
            Reject::BadMagic => &mut self.bad_magic,
            Reject::BadVersion => &mut self.bad_version,
            Reject::BadMac => &mut self.bad_mac,
            Reject::Malformed => &mut self.malformed,
            Reject::Replay => &mut self.replay,
            Reject::UnknownPeer => &mut self.unknown_peer,
        };
        *c = c.saturating_add(1);
    }
}

/// A heartbeat that passed every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// The message.
    pub heartbeat: Heartbeat,
    /// The peer's boot id changed on this medium (it restarted); logged.
    pub peer_restarted: bool,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    boot_id: u64,
    last_seq: u64,
}

/// Replay state of one peer on one medium (the medium is under the MAC, so the two media
/// are independent streams: a slow serial line may still deliver the last heartbeats of an
/// old boot after UDP has seen the new one).
#[derive(Debug, Default)]
struct MediumReplay {
    /// The current boot id and the highest sequence accepted.
    window: Option<Window>,
    /// Boot ids this peer used before on this medium; never accepted again.
    retired: VecDeque<u64>,
}

impl MediumReplay {
    fn retire(&mut self, boot_id: u64) {
        if !self.retired.contains(&boot_id) {
            if self.retired.len() == RETIRED_BOOTS {
                self.retired.pop_front();
            }
            self.retired.push_back(boot_id);
        }
    }
}

#[derive(Debug, Default)]
struct PeerReplay {
    media: [MediumReplay; 2],
}

/// Verifies received heartbeats: layout, MAC, peer and replay; counts rejections.
///
/// Replay state is kept per peer and per medium: (boot id, highest sequence). A sequence
/// not higher than the last for the same boot id is a replay. A different boot id is the
/// peer restarting: accepted (and logged) only if the sequence restarted (at most the
/// restart window) and the boot id was never used by that peer on that medium before; the
/// old boot id is then retired. The first message from a peer on a medium is accepted whatever its
/// sequence (we may have restarted ourselves).
#[derive(Debug)]
pub struct Verifier {
    key: AuthKey,
    own_node_id: u32,
    peers: HashMap<u32, PeerReplay>,
    restart_window: u64,
    rejects: RejectCounts,
    rejects_on: [RejectCounts; 2],
    accepted: [u64; 2],
}

impl Verifier {
    /// A verifier for `own_node_id` that accepts heartbeats from `peers` (our own id is
    /// never a peer).
    pub fn new(key: AuthKey, own_node_id: u32, peers: &[u32]) -> Verifier {
        let mut v = Verifier {
            key,
            own_node_id,
            peers: HashMap::new(),
            restart_window: DEFAULT_RESTART_WINDOW,
            rejects: RejectCounts::default(),
            rejects_on: [RejectCounts::default(); 2],
            accepted: [0; 2],
        };
        for &p in peers {
            v.add_peer(p);
        }
        v
    }

    /// Accepts heartbeats from one more node; false for our own id.
    pub fn add_peer(&mut self, node_id: u32) -> bool {
        if node_id == self.own_node_id {
            return false;
        }
        self.peers.entry(node_id).or_default();
        true
    }

    /// Sets how high the sequence of a new boot id may be (default [`DEFAULT_RESTART_WINDOW`]).
    pub fn set_restart_window(&mut self, window: u64) {
        self.restart_window = window;
    }

    /// Forgets the (boot id, sequence) window of `node_id` on `medium` (retired boot ids stay
    /// refused): its next heartbeat there is taken as a first contact, whatever its sequence.
    /// The daemon calls this for every medium when the state machine reports the peer dead
    /// ([`crate::fsm::AlertKind::PeerDead`]), so that a peer that restarted while unheard for
    /// longer than the restart window is not refused for ever.
    pub fn forget_window(&mut self, node_id: u32, medium: Medium) {
        if let Some(p) = self.peers.get_mut(&node_id) {
            p.media[medium.index()].window = None;
        }
    }

    /// Rejections so far, by reason.
    pub fn rejects(&self) -> &RejectCounts {
        &self.rejects
    }

    /// Rejections so far on one medium, by reason.
    pub fn rejects_on(&self, medium: Medium) -> &RejectCounts {
        &self.rejects_on[medium.index()]
    }

    /// Heartbeats accepted so far on `medium`.
    pub fn accepted(&self, medium: Medium) -> u64 {
        self.accepted[medium.index()]
    }

    /// Checks one received message. Never panics, whatever the bytes; every `Err` is counted.
    pub fn verify(&mut self, medium: Medium, bytes: &[u8]) -> Result<Accepted, Reject> {
        let result = self.check(medium, bytes);
        match &result {
            Ok(_) => self.accepted[medium.index()] += 1,
            Err(reason) => {
                self.rejects.bump(*reason);
                self.rejects_on[medium.index()].bump(*reason);
                log::debug!("heartbeat on {medium} rejected: {reason}");
            }
        }
        result
    }

    fn check(&mut self, medium: Medium, bytes: &[u8]) -> Result<Accepted, Reject> {
        let hb = Heartbeat::open(bytes, &self.key)?;
        let peer = self.peers.get_mut(&hb.node_id).ok_or(Reject::UnknownPeer)?;
        if hb.medium != medium {
            return Err(Reject::Replay);
        }
        let state = &mut peer.media[medium.index()];
        if state.retired.contains(&hb.boot_id) {
            return Err(Reject::Replay);
        }
        let mut peer_restarted = false;
        match state.window {
            Some(w) if w.boot_id == hb.boot_id && hb.sequence <= w.last_seq => {
                return Err(Reject::Replay);
            }
            Some(w) if w.boot_id == hb.boot_id => {}
            Some(w) => {
                if hb.sequence > self.restart_window {
                    log::warn!(
                        "peer {} on {medium}: new boot id {:016x} without a sequence restart (sequence {}); refused",
                        hb.node_id,
                        hb.boot_id,
                        hb.sequence
                    );
                    return Err(Reject::Replay);
                }
                log::info!(
                    "peer {} restarted (seen on {medium}): boot id {:016x} -> {:016x}, sequence {}",
                    hb.node_id,
                    w.boot_id,
                    hb.boot_id,
                    hb.sequence
                );
                peer_restarted = true;
                state.retire(w.boot_id);
            }
            None => {}
        }
        state.window = Some(Window {
            boot_id: hb.boot_id,
            last_seq: hb.sequence,
        });
        Ok(Accepted {
            heartbeat: hb,
            peer_restarted,
        })
    }
}

/// Builds and seals our own heartbeats: holds the node id, priority, boot id and the next
/// sequence number.
#[derive(Debug)]
pub struct Sealer {
    key: AuthKey,
    node_id: u32,
    priority: u16,
    boot_id: u64,
    next_seq: u64,
}

impl Sealer {
    /// A sealer with a fresh random boot id (from `/dev/urandom`).
    pub fn new(key: AuthKey, node_id: u32, priority: u16) -> io::Result<Sealer> {
        Ok(Sealer::with_boot_id(key, node_id, priority, random_u64()?))
    }

    /// A sealer with a given boot id (tests, simulations).
    pub fn with_boot_id(key: AuthKey, node_id: u32, priority: u16, boot_id: u64) -> Sealer {
        Sealer {
            key,
            node_id,
            priority,
            boot_id,
            next_seq: 1,
        }
    }

    /// This process's boot id.
    pub fn boot_id(&self) -> u64 {
        self.boot_id
    }

    /// The node id.
    pub fn node_id(&self) -> u32 {
        self.node_id
    }

    /// A new priority for the next heartbeats (configuration reload).
    pub fn set_priority(&mut self, priority: u16) {
        self.priority = priority;
    }

    /// The next heartbeat's fields (sequence taken), not yet sealed: seal it once per
    /// medium with [`Heartbeat::seal`] after setting `medium`, or use [`Sealer::seal_for`].
    pub fn next(
        &mut self,
        state: NodeState,
        epoch: u64,
        status: Status,
        timestamp_ms: u64,
    ) -> Heartbeat {
        let sequence = self.next_seq;
        self.next_seq = self.next_seq.saturating_add(1);
        Heartbeat {
            node_id: self.node_id,
            priority: self.priority,
            medium: Medium::Udp,
            boot_id: self.boot_id,
            sequence,
            epoch,
            state,
            status,
            timestamp_ms,
        }
    }

    /// `hb` sealed for one medium.
    pub fn seal_for(&self, hb: &Heartbeat, medium: Medium) -> [u8; MESSAGE_LEN] {
        Heartbeat { medium, ..*hb }.seal(&self.key)
    }
}

/// 8 random bytes from the kernel.
pub fn random_u64() -> io::Result<u64> {
    let mut b = [0u8; 8];
    File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(u64::from_ne_bytes(b))
}

/// The wall clock in milliseconds since the Unix epoch, for [`Heartbeat::timestamp_ms`].
pub fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::os::unix::fs::PermissionsExt;

    fn key() -> AuthKey {
        AuthKey::from_bytes(b"0123456789abcdef-shared-secret").unwrap()
    }

    fn sample(seq: u64) -> Heartbeat {
        Heartbeat {
            node_id: 2,
            priority: 100,
            medium: Medium::Udp,
            boot_id: 0xdead_beef_0000_0001,
            sequence: seq,
            epoch: 7,
            state: NodeState::Master,
            status: Status {
                sync_generation: 3,
                flags: Status::TABLE_SYNCED,
            },
            timestamp_ms: 1_700_000_000_000,
        }
    }

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lvs-hb-wire-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn round_trip_and_layout() {
        let hb = sample(42);
        let msg = hb.seal(&key());
        assert_eq!(msg.len(), MESSAGE_LEN);
        assert_eq!(&msg[0..4], b"LVHB");
        assert_eq!(msg[4], 1);
        assert_eq!(msg[5], 2);
        assert_eq!(&msg[24..32], &42u64.to_be_bytes());
        assert_eq!(Heartbeat::open(&msg, &key()), Ok(hb));
    }

    #[test]
    fn wrong_key_is_bad_mac() {
        let msg = sample(1).seal(&key());
        let other = AuthKey::from_bytes(b"another key, 16+ bytes").unwrap();
        assert_eq!(Heartbeat::open(&msg, &other), Err(Reject::BadMac));
    }

    #[test]
    fn header_checks() {
        let k = key();
        let msg = sample(1).seal(&k);
        assert_eq!(Heartbeat::open(&msg[..5], &k), Err(Reject::BadLength));
        assert_eq!(Heartbeat::open(&msg[..60], &k), Err(Reject::BadLength));
        let mut long = msg.to_vec();
        long.push(0);
        assert_eq!(Heartbeat::open(&long, &k), Err(Reject::BadLength));
        let mut v = msg;
        v[4] = 2;
        assert_eq!(Heartbeat::open(&v, &k), Err(Reject::BadVersion));
        let mut m = msg;
        m[0] = b'X';
        assert_eq!(Heartbeat::open(&m, &k), Err(Reject::BadMagic));
    }

    #[test]
    fn authentic_but_unknown_field_is_malformed() {
        let k = key();
        let mut body = sample(1).encode_body();
        body[5] = 9;
        let mut msg = [0u8; MESSAGE_LEN];
        msg[..BODY_LEN].copy_from_slice(&body);
        msg[BODY_LEN..].copy_from_slice(&k.tag(&body));
        assert_eq!(Heartbeat::open(&msg, &k), Err(Reject::Malformed));
    }

    #[test]
    fn unknown_flags_are_ignored_reserved_bytes_are_not() {
        let k = key();
        let seal = |body: [u8; BODY_LEN]| {
            let mut msg = [0u8; MESSAGE_LEN];
            msg[..BODY_LEN].copy_from_slice(&body);
            msg[BODY_LEN..].copy_from_slice(&k.tag(&body));
            msg
        };
        let hb = Heartbeat {
            status: Status {
                sync_generation: 1,
                flags: 0x8001,
            },
            ..sample(1)
        };
        let opened = Heartbeat::open(&hb.seal(&k), &k).unwrap();
        assert!(opened.status.table_synced());
        let mut body = sample(1).encode_body();
        body[15] = 1;
        assert_eq!(Heartbeat::open(&seal(body), &k), Err(Reject::Malformed));
        let mut body = sample(1).encode_body();
        body[14] = 2;
        assert_eq!(Heartbeat::open(&seal(body), &k), Err(Reject::Malformed));
    }

    #[test]
    fn verifier_counts_every_reason() {
        let k = key();
        let mut v = Verifier::new(k.clone(), 1, &[2]);
        let ok = sample(5).seal(&k);
        assert!(v.verify(Medium::Udp, &ok).is_ok());
        // Replay of the same message.
        assert_eq!(v.verify(Medium::Udp, &ok), Err(Reject::Replay));
        // Older sequence.
        assert_eq!(
            v.verify(Medium::Udp, &sample(4).seal(&k)),
            Err(Reject::Replay)
        );
        // Sealed for UDP, received on serial.
        assert_eq!(
            v.verify(Medium::Serial, &sample(6).seal(&k)),
            Err(Reject::Replay)
        );
        // Unknown peer, and our own id.
        let stranger = Heartbeat {
            node_id: 9,
            ..sample(1)
        };
        assert_eq!(
            v.verify(Medium::Udp, &stranger.seal(&k)),
            Err(Reject::UnknownPeer)
        );
        let me = Heartbeat {
            node_id: 1,
            ..sample(1)
        };
        assert_eq!(
            v.verify(Medium::Udp, &me.seal(&k)),
            Err(Reject::UnknownPeer)
        );
        assert_eq!(v.verify(Medium::Udp, &ok[..10]), Err(Reject::BadLength));
        let mut bad = sample(7).seal(&k);
        bad[30] ^= 1;
        assert_eq!(v.verify(Medium::Udp, &bad), Err(Reject::BadMac));
        let mut ver = ok;
        ver[4] = 0;
        assert_eq!(v.verify(Medium::Udp, &ver), Err(Reject::BadVersion));
        let r = v.rejects();
        assert_eq!(
            (
                r.replay,
                r.unknown_peer,
                r.bad_length,
                r.bad_mac,
                r.bad_version
            ),
            (3, 2, 1, 1, 1)
        );
        assert_eq!(r.total(), 8);
        // Nothing rejected moved the window: the next sequence is still fine.
        assert!(v.verify(Medium::Udp, &sample(6).seal(&k)).is_ok());
        assert_eq!(v.accepted(Medium::Udp), 2);
    }

    #[test]
    fn media_have_separate_windows() {
        let k = key();
        let mut v = Verifier::new(k.clone(), 1, &[2]);
        let s = Sealer::with_boot_id(k, 2, 100, 77);
        let mut s = s;
        let hb = s.next(NodeState::Backup, 1, Status::default(), 0);
        assert!(v.verify(Medium::Udp, &s.seal_for(&hb, Medium::Udp)).is_ok());
        assert!(
            v.verify(Medium::Serial, &s.seal_for(&hb, Medium::Serial))
                .is_ok()
        );
        assert_eq!(hb.sequence, 1);
        assert_eq!(
            s.next(NodeState::Backup, 1, Status::default(), 0).sequence,
            2
        );
    }

    #[test]
    fn boot_change_needs_restart_and_old_boot_is_retired() {
        let k = key();
        let mut v = Verifier::new(k.clone(), 1, &[2]);
        v.set_restart_window(10);
        let boot = |b: u64, seq: u64| {
            Heartbeat {
                boot_id: b,
                ..sample(seq)
            }
            .seal(&k)
        };
        // First contact: any sequence.
        assert!(
            !v.verify(Medium::Udp, &boot(100, 5000))
                .unwrap()
                .peer_restarted
        );
        // New boot id with a high sequence: not a restart.
        assert_eq!(v.verify(Medium::Udp, &boot(200, 11)), Err(Reject::Replay));
        // New boot id with a restarted sequence: accepted, logged, flagged.
        assert!(v.verify(Medium::Udp, &boot(200, 1)).unwrap().peer_restarted);
        // The old boot id is refused from now on, even with a higher sequence.
        assert_eq!(v.verify(Medium::Udp, &boot(100, 5001)), Err(Reject::Replay));
        assert!(v.verify(Medium::Udp, &boot(200, 2)).is_ok());
        assert_eq!(v.rejects().replay, 2);
        // A restart we did not hear for longer than the window: refused until the peer is
        // declared dead and the window forgotten; the retired boot stays refused.
        assert_eq!(v.verify(Medium::Udp, &boot(300, 50)), Err(Reject::Replay));
        v.forget_window(2, Medium::Udp);
        assert_eq!(v.verify(Medium::Udp, &boot(100, 6000)), Err(Reject::Replay));
        assert!(
            !v.verify(Medium::Udp, &boot(300, 51))
                .unwrap()
                .peer_restarted
        );
        assert_eq!(v.verify(Medium::Udp, &boot(300, 51)), Err(Reject::Replay));
    }

    #[test]
    fn a_slow_medium_may_finish_the_old_boot() {
        let k = key();
        let mut v = Verifier::new(k.clone(), 1, &[2]);
        let mut old = Sealer::with_boot_id(k.clone(), 2, 100, 1);
        let hb = old.next(NodeState::Master, 1, Status::default(), 0);
        assert!(
            v.verify(Medium::Udp, &old.seal_for(&hb, Medium::Udp))
                .is_ok()
        );
        assert!(
            v.verify(Medium::Serial, &old.seal_for(&hb, Medium::Serial))
                .is_ok()
        );
        let late = old.next(NodeState::Master, 1, Status::default(), 0);
        // The peer restarts faster than the serial line delivers: UDP sees the new boot first.
        let mut new = Sealer::with_boot_id(k, 2, 100, 2);
        let first = new.next(NodeState::Init, 1, Status::default(), 0);
        assert!(
            v.verify(Medium::Udp, &new.seal_for(&first, Medium::Udp))
                .unwrap()
                .peer_restarted
        );
        assert!(
            v.verify(Medium::Serial, &old.seal_for(&late, Medium::Serial))
                .is_ok()
        );
        assert!(
            v.verify(Medium::Serial, &new.seal_for(&first, Medium::Serial))
                .unwrap()
                .peer_restarted
        );
        // From now on the old boot is refused on both media.
        let stale = old.next(NodeState::Master, 1, Status::default(), 0);
        assert_eq!(
            v.verify(Medium::Serial, &old.seal_for(&stale, Medium::Serial)),
            Err(Reject::Replay)
        );
        assert_eq!(
            v.verify(Medium::Udp, &old.seal_for(&stale, Medium::Udp)),
            Err(Reject::Replay)
        );
    }

    #[test]
    fn key_file_permissions() {
        let d = tmpdir("key");
        let p = d.join("authkey");
        std::fs::write(&p, b"a-long-enough-shared-secret\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = AuthKey::from_file(&p).unwrap_err();
        assert!(
            matches!(e, KeyError::Permissions { mode: 0o644, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            AuthKey::from_file(&p),
            Err(KeyError::Permissions { .. })
        ));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let from_file = AuthKey::from_file(&p).unwrap();
        // The final newline is not part of the key.
        let direct = AuthKey::from_bytes(b"a-long-enough-shared-secret").unwrap();
        let msg = sample(1).seal(&direct);
        assert!(Heartbeat::open(&msg, &from_file).is_ok());
        assert_eq!(format!("{from_file:?}"), "AuthKey(..)");
        // Too short.
        std::fs::write(&p, b"short\n").unwrap();
        let e = AuthKey::from_file(&p).unwrap_err();
        assert!(matches!(e, KeyError::Length { len: 5, .. }), "{e}");
        // Missing, and a directory.
        assert!(matches!(
            AuthKey::from_file(&d.join("nope")),
            Err(KeyError::Io { .. })
        ));
        assert!(matches!(
            AuthKey::from_file(&d),
            Err(KeyError::NotRegular { .. })
        ));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn key_file_owned_by_someone_else_is_refused() {
        if !lvs_testsupport::root_or_skip("key_file_owned_by_someone_else_is_refused") {
            return;
        }
        let d = tmpdir("owner");
        let p = d.join("authkey");
        std::fs::write(&p, b"a-long-enough-shared-secret").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        nix::unistd::chown(&p, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        assert!(matches!(
            AuthKey::from_file(&p),
            Err(KeyError::Owner { owner: 65534, .. })
        ));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn random_boot_ids_differ() {
        assert_ne!(random_u64().unwrap(), random_u64().unwrap());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let k = key();
            let _ = Heartbeat::open(&bytes, &k);
            let mut v = Verifier::new(k, 1, &[2]);
            prop_assert!(v.verify(Medium::Udp, &bytes).is_err());
            prop_assert_eq!(v.rejects().total(), 1);
        }

        #[test]
        fn header_then_random_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..120)) {
            let mut bytes = b"LVHB\x01".to_vec();
            bytes.extend_from_slice(&tail);
            let mut v = Verifier::new(key(), 1, &[2]);
            prop_assert!(v.verify(Medium::Udp, &bytes).is_err());
        }

        #[test]
        fn any_single_bit_flip_fails(seq in 1u64.., epoch in any::<u64>(), bit in 0usize..(MESSAGE_LEN * 8)) {
            let k = key();
            let hb = Heartbeat { sequence: seq, epoch, ..sample(1) };
            let mut msg = hb.seal(&k);
            msg[bit / 8] ^= 1 << (bit % 8);
            // The MAC itself fails on every flip ...
            let (body, tag) = msg.split_at(BODY_LEN);
            prop_assert!(!k.verify(body, tag));
            // ... and the decoder rejects: by MAC unless the header check catches it first.
            let r = Heartbeat::open(&msg, &k);
            if bit < 8 * 5 {
                prop_assert!(matches!(r, Err(Reject::BadMagic | Reject::BadVersion)));
            } else {
                prop_assert_eq!(r, Err(Reject::BadMac));
            }
        }
    }
}
