//! The heartbeat message: a fixed, versioned binary layout written by hand, sealed with
//! HMAC-SHA256 under a shared key and checked for freshness, both by
//! [`lvs_common::authdgram`]; this file keeps only the body layout.
//!
//! Layout of version 3 (all integers big-endian, [`MESSAGE_LEN`] = 96 bytes):
//!
//! | offset | size | field |
//! | ---: | ---: | --- |
//! | 0 | 4 | magic `LVHB` |
//! | 4 | 1 | version, 3 |
//! | 5 | 1 | state: 0 init, 1 backup, 2 master, 3 fault |
//! | 6 | 2 | status flags ([`Status::TABLE_SYNCED`]; unknown bits are ignored, for compatible additions) |
//! | 8 | 4 | node id |
//! | 12 | 2 | priority |
//! | 14 | 1 | medium the message was sealed for: 0 UDP, 1 serial |
//! | 15 | 1 | reserved, zero |
//! | 16 | 8 | boot generation (persisted, higher at each start of the sender) |
//! | 24 | 8 | sequence number (1, 2, 3 ... within one generation) |
//! | 32 | 8 | mastership epoch |
//! | 40 | 8 | sender's wall clock, milliseconds since the Unix epoch (informational) |
//! | 48 | 4 | connection-table sync generation |
//! | 52 | 4 | reserved, zero |
//! | 56 | 8 | echo: the boot generation of ours the sender accepted last (0: none yet) |
//! | 64 | 32 | HMAC-SHA256 of bytes 0..64 |
//!
//! The medium is inside the MAC, so a message captured on one medium cannot be replayed on
//! the other; the daemon seals one message per medium (two HMACs per keepalive).
//!
//! Version 1 differed only in bytes 16..24, a random boot id: a heartbeat recorded during
//! any earlier run of a peer could be replayed as a restart (see [`Verifier`]). Version 2
//! had no echo: after the receiver restarted, the first heartbeat of the peer's current run
//! was accepted whatever its sequence, so replaying a dead master's last heartbeats to a
//! restarted backup kept it from taking over. With more than one peer the echo takes each
//! peer's generation in turn ([`Verifier::next_echo`]).
//!
//! Checks, in order, each counted when it fails ([`RejectCounts`]): the length holds the magic
//! and the MAC ([`Reject::BadLength`]), the magic ([`Reject::BadMagic`]), the MAC over
//! everything before it, in constant time, before any other byte is read
//! ([`Reject::BadMac`]); then the version ([`Reject::OldVersion`] for version 1, which an
//! old lvs-heartbeatd with the same key still sends, [`Reject::BadVersion`] otherwise), the
//! exact length ([`Reject::BadLength`]), field values ([`Reject::Malformed`]), the sender is
//! a configured peer ([`Reject::UnknownPeer`]), the generation ([`Reject::StaleGeneration`]),
//! the echo after our restart ([`Reject::Unconfirmed`]) and the sequence ([`Reject::Replay`]).

use std::collections::HashSet;
use std::fmt;

use lvs_common::authdgram::{self, Freshness, OpenError, PeerFloors, Stale};
pub use lvs_common::authdgram::{AuthKey, KeyError, MAC_LEN, MAX_KEY_LEN, MIN_KEY_LEN};

use crate::Medium;

/// The first four bytes of every heartbeat.
pub const MAGIC: [u8; 4] = *b"LVHB";
/// The layout version this code writes and reads.
pub const VERSION: u8 = 3;
/// Bytes covered by the MAC.
pub const BODY_LEN: usize = 64;
/// Length of a message.
pub const MESSAGE_LEN: usize = BODY_LEN + MAC_LEN;

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
    /// The sender's boot generation (higher at each of its starts).
    pub generation: u64,
    /// 1, 2, 3 ... within one generation.
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
    /// The generation of ours the sender accepted last (0: none): a receiver that
    /// restarted opens the window of the sender's known generation only on its own.
    pub echo: u64,
}

impl Heartbeat {
    /// The bytes the MAC covers.
    pub fn encode_body(&self) -> [u8; BODY_LEN] {
        let mut b = [0u8; BODY_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = VERSION;
        b[5] = self.state.code();
        b[6..8].copy_from_slice(&self.status.flags.to_be_bytes());
        b[8..12].copy_from_slice(&self.node_id.to_be_bytes());
        b[12..14].copy_from_slice(&self.priority.to_be_bytes());
        b[14] = medium_code(self.medium);
        b[16..24].copy_from_slice(&self.generation.to_be_bytes());
        b[24..32].copy_from_slice(&self.sequence.to_be_bytes());
        b[32..40].copy_from_slice(&self.epoch.to_be_bytes());
        b[40..48].copy_from_slice(&self.timestamp_ms.to_be_bytes());
        b[48..52].copy_from_slice(&self.status.sync_generation.to_be_bytes());
        b[56..64].copy_from_slice(&self.echo.to_be_bytes());
        b
    }

    /// The whole message: body and MAC.
    pub fn seal(&self, key: &AuthKey) -> [u8; MESSAGE_LEN] {
        let mut out = [0u8; MESSAGE_LEN];
        out[..BODY_LEN].copy_from_slice(&self.encode_body());
        authdgram::seal_in_place(key, &mut out, BODY_LEN);
        out
    }

    /// Checks the layout and the MAC and decodes, without replay checks (that is
    /// [`Verifier::verify`]). Never panics, whatever the bytes.
    pub fn open(bytes: &[u8], key: &AuthKey) -> Result<Heartbeat, Reject> {
        let body = authdgram::open(key, &MAGIC, VERSION, bytes).map_err(Reject::from)?;
        if body.len() != BODY_LEN {
            return Err(Reject::BadLength);
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
            generation: be_u64(&body[16..24]),
            sequence: be_u64(&body[24..32]),
            epoch: be_u64(&body[32..40]),
            state,
            status: Status {
                sync_generation: be_u32(&body[48..52]),
                flags,
            },
            timestamp_ms: be_u64(&body[40..48]),
            echo: be_u64(&body[56..64]),
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

/// Why a received message was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Reject {
    /// Too short to hold a header, or not the length of its version.
    #[error("bad length")]
    BadLength,
    /// Not a heartbeat (wrong magic).
    #[error("bad magic")]
    BadMagic,
    /// A layout version this code does not know (newer).
    #[error("bad version")]
    BadVersion,
    /// Authentic, but in the layout of an older version (1: before the boot generation,
    /// 2: before the echo; an lvs-heartbeatd not yet upgraded, or a replay of one): refused.
    #[error("old version")]
    OldVersion,
    /// The MAC does not match: wrong key, forged or corrupted.
    #[error("bad MAC")]
    BadMac,
    /// Authentic, but with a state or medium code this version does not know, or a
    /// reserved byte that is not zero.
    #[error("malformed")]
    Malformed,
    /// A sequence already accepted (or too far below the highest) within the peer's current
    /// generation, or a message sealed for the other medium.
    #[error("replay")]
    Replay,
    /// From an earlier run of the peer: a generation below the highest accepted from it
    /// (remembered across our restarts too).
    #[error("stale generation")]
    StaleGeneration,
    /// Of the peer's current generation, but the first on this medium since we restarted
    /// and not echoing our generation: maybe recorded before our restart (the live peer
    /// echoes it within a keepalive of hearing us).
    #[error("unconfirmed")]
    Unconfirmed,
    /// Authentic, but from a node id that is not a configured peer (or our own).
    #[error("unknown peer")]
    UnknownPeer,
}

impl From<OpenError> for Reject {
    fn from(e: OpenError) -> Reject {
        match e {
            OpenError::TooShort => Reject::BadLength,
            OpenError::BadMagic => Reject::BadMagic,
            OpenError::BadMac => Reject::BadMac,
            OpenError::OldVersion => Reject::OldVersion,
            OpenError::NewVersion => Reject::BadVersion,
        }
    }
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
    /// [`Reject::OldVersion`].
    pub old_version: u64,
    /// [`Reject::BadMac`].
    pub bad_mac: u64,
    /// [`Reject::Malformed`].
    pub malformed: u64,
    /// [`Reject::Replay`].
    pub replay: u64,
    /// [`Reject::StaleGeneration`].
    pub stale_generation: u64,
    /// [`Reject::UnknownPeer`].
    pub unknown_peer: u64,
    /// [`Reject::Unconfirmed`].
    pub unconfirmed: u64,
}

impl RejectCounts {
    /// The counter for one reason.
    pub fn get(&self, reason: Reject) -> u64 {
        match reason {
            Reject::BadLength => self.bad_length,
            Reject::BadMagic => self.bad_magic,
            Reject::BadVersion => self.bad_version,
            Reject::OldVersion => self.old_version,
            Reject::BadMac => self.bad_mac,
            Reject::Malformed => self.malformed,
            Reject::Replay => self.replay,
            Reject::StaleGeneration => self.stale_generation,
            Reject::UnknownPeer => self.unknown_peer,
            Reject::Unconfirmed => self.unconfirmed,
        }
    }

    /// Each counter with its name (`bad_length`, `bad_magic`, `bad_version`, `old_version`,
    /// `bad_mac`, `malformed`, `replay`, `stale_generation`, `unknown_peer`, `unconfirmed`).
    pub fn named(&self) -> [(&'static str, u64); 10] {
        [
            ("bad_length", self.bad_length),
            ("bad_magic", self.bad_magic),
            ("bad_version", self.bad_version),
            ("old_version", self.old_version),
            ("bad_mac", self.bad_mac),
            ("malformed", self.malformed),
            ("replay", self.replay),
            ("stale_generation", self.stale_generation),
            ("unknown_peer", self.unknown_peer),
            ("unconfirmed", self.unconfirmed),
        ]
    }

    /// Every rejection.
    pub fn total(&self) -> u64 {
        self.named().iter().map(|&(_, c)| c).sum()
    }

    fn bump(&mut self, reason: Reject) {
        let c = match reason {
            Reject::BadLength => &mut self.bad_length,
            Reject::BadMagic => &mut self.bad_magic,
            Reject::BadVersion => &mut self.bad_version,
            Reject::OldVersion => &mut self.old_version,
            Reject::BadMac => &mut self.bad_mac,
            Reject::Malformed => &mut self.malformed,
            Reject::Replay => &mut self.replay,
            Reject::StaleGeneration => &mut self.stale_generation,
            Reject::UnknownPeer => &mut self.unknown_peer,
            Reject::Unconfirmed => &mut self.unconfirmed,
        };
        *c = c.saturating_add(1);
    }
}

/// A heartbeat that passed every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// The message.
    pub heartbeat: Heartbeat,
    /// The first heartbeat of a new generation of a peer heard before (it restarted); logged.
    pub peer_restarted: bool,
}

/// Verifies received heartbeats: layout, MAC, peer and freshness; counts rejections.
///
/// Freshness is [`lvs_common::authdgram::Freshness`] with the node id as the peer and the
/// medium as the lane: per peer the highest generation accepted (persisted in the floors
/// file, so that it holds across our restarts) and, within it, a sequence window per medium
/// (the medium is under the MAC, so the two media are independent streams). A heartbeat of
/// an older generation is refused for good; a higher generation is the peer's restart,
/// accepted whatever its sequence. No heartbeat recorded during an earlier run of a peer can
/// be replayed: neither to get the live peer refused nor to make a dead one look alive.
/// With a challenge ([`Verifier::with_floors`], the daemon), no heartbeat recorded before
/// *our* restart either: a medium's window of the peer's known generation opens only on a
/// heartbeat echoing our generation ([`Reject::Unconfirmed`] before).
#[derive(Debug)]
pub struct Verifier {
    key: AuthKey,
    own_node_id: u32,
    peers: HashSet<u32>,
    fresh: Freshness,
    rejects: RejectCounts,
    rejects_on: [RejectCounts; 2],
    accepted: [u64; 2],
    /// (peer, its generation accepted last), for the echo; `echo_next` takes them in turn.
    heard: Vec<(u32, u64)>,
    echo_next: usize,
}

impl Verifier {
    /// A verifier for `own_node_id` that accepts heartbeats from `peers` (our own id is
    /// never a peer), with peer generations kept in memory only and no echo asked (tests,
    /// simulations).
    pub fn new(key: AuthKey, own_node_id: u32, peers: &[u32]) -> Verifier {
        Verifier::build(
            key,
            own_node_id,
            peers,
            Freshness::new(PeerFloors::in_memory()),
        )
    }

    /// [`Verifier::new`] with the peers' generations loaded from (and saved to) a file, for
    /// a run whose generation is `own_generation`: after a restart, a peer's known
    /// generation is accepted on a medium only once it echoes `own_generation`.
    pub fn with_floors(
        key: AuthKey,
        own_node_id: u32,
        peers: &[u32],
        floors: PeerFloors,
        own_generation: u64,
    ) -> Verifier {
        let fresh = Freshness::with_challenge(floors, own_generation);
        Verifier::build(key, own_node_id, peers, fresh)
    }

    fn build(key: AuthKey, own_node_id: u32, peers: &[u32], fresh: Freshness) -> Verifier {
        let mut v = Verifier {
            key,
            own_node_id,
            peers: HashSet::new(),
            fresh,
            rejects: RejectCounts::default(),
            rejects_on: [RejectCounts::default(); 2],
            accepted: [0; 2],
            heard: Vec::new(),
            echo_next: 0,
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
        self.peers.insert(node_id);
        true
    }

    /// The highest generation accepted from `node_id`.
    pub fn peer_generation(&self, node_id: u32) -> Option<u64> {
        self.fresh.floors().get(u64::from(node_id))
    }

    /// The echo for our next heartbeat: a peer's generation accepted last, each peer in
    /// turn (one echo per keepalive confirms a restarted peer); 0 before any.
    pub fn next_echo(&mut self) -> u64 {
        if self.heard.is_empty() {
            return 0;
        }
        self.echo_next = (self.echo_next + 1) % self.heard.len();
        self.heard[self.echo_next].1
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
        if let Some(e) = self.fresh.take_persist_error() {
            lvs_common::event!(log::Level::Error, "peer_generation_store_failed", error = e);
        }
        result
    }

    fn check(&mut self, medium: Medium, bytes: &[u8]) -> Result<Accepted, Reject> {
        let hb = Heartbeat::open(bytes, &self.key)?;
        if !self.peers.contains(&hb.node_id) {
            return Err(Reject::UnknownPeer);
        }
        if hb.medium != medium {
            return Err(Reject::Replay);
        }
        let lane = u8::try_from(medium.index()).unwrap_or(u8::MAX);
        let peer = u64::from(hb.node_id);
        let fresh = self
            .fresh
            .check_echo(peer, lane, hb.generation, hb.sequence, Some(hb.echo))
            .map_err(|e| match e {
                Stale::OldGeneration => Reject::StaleGeneration,
                Stale::Replay => Reject::Replay,
                Stale::Unconfirmed => Reject::Unconfirmed,
            })?;
        match self.heard.iter_mut().find(|(p, _)| *p == hb.node_id) {
            Some(h) => h.1 = hb.generation,
            None => self.heard.push((hb.node_id, hb.generation)),
        }
        let peer_restarted = fresh.new_generation && fresh.previous.is_some();
        if fresh.new_generation {
            lvs_common::event!(
                log::Level::Info,
                "peer_generation",
                peer = hb.node_id,
                medium = medium,
                generation = hb.generation,
                previous = fresh
                    .previous
                    .map_or_else(|| "none".to_owned(), |g| g.to_string())
            );
        }
        Ok(Accepted {
            heartbeat: hb,
            peer_restarted,
        })
    }
}

/// Builds and seals our own heartbeats: holds the node id, priority, generation and the
/// next sequence number.
#[derive(Debug)]
pub struct Sealer {
    key: AuthKey,
    node_id: u32,
    priority: u16,
    generation: u64,
    next_seq: u64,
}

impl Sealer {
    /// A sealer for this run's `generation` (from
    /// [`lvs_common::authdgram::Boot::advance`], persisted before the first heartbeat).
    pub fn new(key: AuthKey, node_id: u32, priority: u16, generation: u64) -> Sealer {
        Sealer {
            key,
            node_id,
            priority,
            generation,
            next_seq: 1,
        }
    }

    /// This run's generation.
    pub fn generation(&self) -> u64 {
        self.generation
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
            generation: self.generation,
            sequence,
            epoch,
            state,
            status,
            timestamp_ms,
            echo: 0,
        }
    }

    /// `hb` sealed for one medium.
    pub fn seal_for(&self, hb: &Heartbeat, medium: Medium) -> [u8; MESSAGE_LEN] {
        Heartbeat { medium, ..*hb }.seal(&self.key)
    }
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

    fn key() -> AuthKey {
        AuthKey::from_bytes(b"0123456789abcdef-shared-secret").unwrap()
    }

    fn sample(seq: u64) -> Heartbeat {
        Heartbeat {
            node_id: 2,
            priority: 100,
            medium: Medium::Udp,
            generation: 1_700_000_000,
            sequence: seq,
            epoch: 7,
            state: NodeState::Master,
            status: Status {
                sync_generation: 3,
                flags: Status::TABLE_SYNCED,
            },
            timestamp_ms: 1_700_000_000_000,
            echo: 1_699_999_999,
        }
    }

    fn seal_body(k: &AuthKey, body: &[u8]) -> Vec<u8> {
        let mut msg = body.to_vec();
        msg.extend_from_slice(&authdgram::tag(k, body));
        msg
    }

    #[test]
    fn round_trip_and_layout() {
        let hb = sample(42);
        let msg = hb.seal(&key());
        assert_eq!(msg.len(), MESSAGE_LEN);
        assert_eq!(&msg[0..4], b"LVHB");
        assert_eq!(msg[4], 3);
        assert_eq!(msg[5], 2);
        assert_eq!(&msg[56..64], &1_699_999_999u64.to_be_bytes());
        assert_eq!(&msg[16..24], &1_700_000_000u64.to_be_bytes());
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
        // Cut or lengthened: the tag is no longer the last 32 bytes.
        assert_eq!(Heartbeat::open(&msg[..60], &k), Err(Reject::BadMac));
        let mut long = msg.to_vec();
        long.push(0);
        assert_eq!(Heartbeat::open(&long, &k), Err(Reject::BadMac));
        // Changed without the key: the MAC fails before the version is read.
        let mut v = msg;
        v[4] = 4;
        assert_eq!(Heartbeat::open(&v, &k), Err(Reject::BadMac));
        let mut m = msg;
        m[0] = b'X';
        assert_eq!(Heartbeat::open(&m, &k), Err(Reject::BadMagic));
        // Authentic but another version or length.
        let mut body = sample(1).encode_body();
        body[4] = 4;
        assert_eq!(
            Heartbeat::open(&seal_body(&k, &body), &k),
            Err(Reject::BadVersion)
        );
        for old in [1, 2] {
            body[4] = old;
            assert_eq!(
                Heartbeat::open(&seal_body(&k, &body), &k),
                Err(Reject::OldVersion)
            );
        }
        let body = sample(1).encode_body();
        assert_eq!(
            Heartbeat::open(&seal_body(&k, &body[..50]), &k),
            Err(Reject::BadLength)
        );
    }

    #[test]
    fn authentic_but_unknown_field_is_malformed() {
        let k = key();
        let mut body = sample(1).encode_body();
        body[5] = 9;
        assert_eq!(
            Heartbeat::open(&seal_body(&k, &body), &k),
            Err(Reject::Malformed)
        );
    }

    #[test]
    fn unknown_flags_are_ignored_reserved_bytes_are_not() {
        let k = key();
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
        assert_eq!(
            Heartbeat::open(&seal_body(&k, &body), &k),
            Err(Reject::Malformed)
        );
        let mut body = sample(1).encode_body();
        body[14] = 2;
        assert_eq!(
            Heartbeat::open(&seal_body(&k, &body), &k),
            Err(Reject::Malformed)
        );
    }

    #[test]
    fn verifier_counts_every_reason() {
        let k = key();
        let mut v = Verifier::new(k.clone(), 1, &[2]);
        let ok = sample(5).seal(&k);
        assert!(v.verify(Medium::Udp, &ok).is_ok());
        // Replay of the same message.
        assert_eq!(v.verify(Medium::Udp, &ok), Err(Reject::Replay));
        // Sealed for UDP, received on serial.
        assert_eq!(
            v.verify(Medium::Serial, &sample(6).seal(&k)),
            Err(Reject::Replay)
        );
        // An earlier generation.
        let older = Heartbeat {
            generation: 1_600_000_000,
            ..sample(900)
        };
        assert_eq!(
            v.verify(Medium::Udp, &older.seal(&k)),
            Err(Reject::StaleGeneration)
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
        let mut old = sample(8).encode_body();
        old[4] = 1;
        assert_eq!(
            v.verify(Medium::Udp, &seal_body(&k, &old)),
            Err(Reject::OldVersion)
        );
        let r = v.rejects();
        assert_eq!(
            (
                r.replay,
                r.stale_generation,
                r.unknown_peer,
                r.bad_length,
                r.bad_mac,
                r.old_version
            ),
            (2, 1, 2, 1, 1, 1)
        );
        assert_eq!(r.total(), 8);
        assert_eq!(v.rejects_on(Medium::Udp).total(), 7);
        // Nothing rejected moved the window: the next sequence is still fine.
        assert!(v.verify(Medium::Udp, &sample(6).seal(&k)).is_ok());
        assert_eq!(v.accepted(Medium::Udp), 2);
    }

    #[test]
    fn media_have_separate_windows() {
        let k = key();
        let mut v = Verifier::new(k.clone(), 1, &[2]);
        let mut s = Sealer::new(k, 2, 100, 77);
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

    /// The defect of version 1: one heartbeat of an earlier run, with a small sequence, was
    /// taken for a restart and got the live run refused for good.
    #[test]
    fn an_earlier_run_can_never_be_replayed() {
        let k = key();
        let mut v = Verifier::new(k.clone(), 1, &[2]);
        let mut old = Sealer::new(k.clone(), 2, 100, 10);
        let recorded: Vec<_> = (0..5)
            .map(|_| {
                let hb = old.next(NodeState::Master, 1, Status::default(), 0);
                old.seal_for(&hb, Medium::Udp)
            })
            .collect();
        assert!(v.verify(Medium::Udp, &recorded[0]).is_ok());
        let mut live = Sealer::new(k, 2, 100, 11);
        for round in 0..3 {
            let hb = live.next(NodeState::Backup, 2, Status::default(), 0);
            let acc = v
                .verify(Medium::Udp, &live.seal_for(&hb, Medium::Udp))
                .unwrap();
            assert_eq!(acc.peer_restarted, round == 0);
            for r in &recorded {
                assert_eq!(v.verify(Medium::Udp, r), Err(Reject::StaleGeneration));
            }
        }
        assert_eq!(v.peer_generation(2), Some(11));
        assert_eq!(v.rejects().stale_generation, 15);
    }

    #[test]
    fn peer_generations_survive_our_restart() {
        let d = std::env::temp_dir().join(format!("lvs-hb-floors-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let file = d.join("heartbeatd.peers");
        let k = key();
        let floors = PeerFloors::load(&file).unwrap();
        let mut v = Verifier::with_floors(k.clone(), 1, &[2], floors, 500);
        let mut old = Sealer::new(k.clone(), 2, 100, 10);
        let hb = old.next(NodeState::Master, 1, Status::default(), 0);
        let recorded = old.seal_for(&hb, Medium::Udp);
        let mut live = Sealer::new(k.clone(), 2, 100, 11);
        let mut hb = live.next(NodeState::Master, 1, Status::default(), 0);
        v.verify(Medium::Udp, &recorded).unwrap();
        v.verify(Medium::Udp, &live.seal_for(&hb, Medium::Udp))
            .unwrap();
        assert_eq!(v.next_echo(), 11, "the generation heard last is echoed");
        // The live run's later heartbeats, recorded while we are down, echo 500 at best.
        let captured: Vec<_> = (0..3)
            .map(|_| {
                hb = live.next(NodeState::Master, 1, Status::default(), 0);
                hb.echo = 500;
                live.seal_for(&hb, Medium::Udp)
            })
            .collect();
        drop(v);
        let mut w = Verifier::with_floors(k, 1, &[2], PeerFloors::load(&file).unwrap(), 501);
        assert_eq!(
            w.verify(Medium::Udp, &recorded),
            Err(Reject::StaleGeneration)
        );
        for c in &captured {
            assert_eq!(w.verify(Medium::Udp, c), Err(Reject::Unconfirmed));
        }
        assert_eq!(w.next_echo(), 0, "nothing accepted yet");
        // The live peer heard our new run and echoes it.
        hb = live.next(NodeState::Master, 1, Status::default(), 0);
        hb.echo = 501;
        assert!(
            w.verify(Medium::Udp, &live.seal_for(&hb, Medium::Udp))
                .is_ok()
        );
        assert_eq!(w.rejects().unconfirmed, 3);
        std::fs::remove_dir_all(&d).unwrap();
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
            let mut bytes = b"LVHB\x02".to_vec();
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
            // Rejected by the MAC, unless the public magic check catches it first.
            let r = Heartbeat::open(&msg, &k);
            if bit < 8 * 4 {
                prop_assert_eq!(r, Err(Reject::BadMagic));
            } else {
                prop_assert_eq!(r, Err(Reject::BadMac));
            }
        }
    }
}
