//! Authenticated datagrams, written once for every daemon that talks over UDP or a serial
//! line with a shared key (lvs-heartbeatd's heartbeats, the director's connection sync); the
//! key and the tags serve lvs-lockmgr's authenticated TCP peer frames too ([`tag_parts`],
//! [`verify_parts`]).
//!
//! - [`key`]: the shared key, read from a file that only its owner can read (owner and mode
//!   checked on the opened file), the file's bytes zeroed once the HMAC state is built.
//! - [`seal`]: HMAC-SHA256 over everything before the tag, which is the last
//!   [`MAC_LEN`] bytes of the datagram. [`open`] compares the tag in constant time
//!   before the body is parsed at all (only the public magic is looked at first).
//! - [`generation`]: the sender's boot generation, persisted and strictly increasing:
//!   advanced and fsynced at each start before the first datagram is sent.
//! - [`floors`] and [`freshness`]: the receiver keeps, per peer, the highest generation it
//!   accepted (persisted, so it survives the receiver's restarts too) and refuses anything
//!   older; within one generation a 64-wide sequence window refuses replays.
//!
//! A wire format built on this keeps only its body layout: it puts a generation and a
//! sequence number somewhere under the MAC and hands them to [`Freshness::check`].

pub mod floors;
pub mod freshness;
pub mod generation;
pub mod key;
pub mod seal;
pub mod statefile;

pub use floors::PeerFloors;
pub use freshness::{Fresh, Freshness, Stale};
pub use generation::Boot;
pub use key::{AuthKey, KeyError, MAX_KEY_LEN, MIN_KEY_LEN};
pub use seal::{MAC_LEN, OpenError, open, seal_in_place, tag, tag_parts, verify_parts};
pub use statefile::StateError;
