//! Is an authentic datagram fresh? Per peer, its generation must not be older than the
//! highest accepted ([`PeerFloors`]); within that generation, its sequence number must be
//! new in a 64-wide window below the highest seen (datagrams may arrive a little out of
//! order). A higher generation is the peer's restart: accepted whatever its sequence, the
//! floor raised and persisted, the peer's windows started afresh.
//!
//! Windows are kept per peer and lane: a sender that numbers one stream but seals it once
//! per medium (lvs-heartbeatd over UDP and serial) gives each medium a lane.
//!
//! After our own restart the window of the peer's current generation is unknown, so its
//! first datagram there cannot be told from a replay of one captured before (of a peer that
//! died meanwhile, say). With [`Freshness::with_challenge`], our own boot generation is the
//! challenge: our datagrams carry it anyway, the peer echoes the last one it accepted from
//! us, and a window of an already-known generation is opened only by a datagram echoing this
//! run's generation ([`Stale::Unconfirmed`] until then). Our generation is higher at each
//! start, so no datagram sealed before this run can carry it; the window opens at that
//! datagram, with everything below it taken as seen (those may have been sealed before this
//! run). A new generation of the peer (it restarted) is accepted as before, echo or not.
//! [`Freshness::check`] (no challenge) accepts that first datagram whatever its sequence (see
//! docs/LOGGING.md).

use super::{PeerFloors, StateError};

/// Windows kept; past this (many peers and lanes) the least recently used goes.
const MAX_WINDOWS: usize = 256;
/// Width of the sequence window.
const WIDTH: u64 = 64;

/// Why a datagram is not fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Stale {
    /// From an earlier run of the peer (a generation below the highest accepted).
    #[error("stale generation")]
    OldGeneration,
    /// A sequence number already accepted, too far below the highest, or zero.
    #[error("replay")]
    Replay,
    /// Of the peer's known generation, heard first since our restart, and not echoing our
    /// generation: maybe a replay of a datagram sealed before we restarted.
    #[error("unconfirmed")]
    Unconfirmed,
}

/// A fresh datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fresh {
    /// The first datagram of a generation higher than the highest accepted before.
    pub new_generation: bool,
    /// The generation accepted before (if any).
    pub previous: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    peer: u64,
    lane: u8,
    generation: u64,
    top: u64,
    /// Bit i: `top - i` was accepted.
    seen: u64,
}

impl Window {
    fn first(peer: u64, lane: u8, generation: u64, seq: u64) -> Window {
        Window {
            peer,
            lane,
            generation,
            top: seq,
            seen: 1,
        }
    }
}

/// The freshness check of one receiver.
#[derive(Debug)]
pub struct Freshness {
    floors: PeerFloors,
    /// Most recently used first.
    windows: Vec<Window>,
    /// The last failure to persist a raised floor, for the caller to log.
    persist_error: Option<StateError>,
    /// Our own generation, which a peer must echo to open a window of a known generation.
    challenge: Option<u64>,
}

impl Freshness {
    /// A check over `floors` (loaded from the receiver's state file).
    pub fn new(floors: PeerFloors) -> Freshness {
        Freshness {
            floors,
            windows: Vec::new(),
            persist_error: None,
            challenge: None,
        }
    }

    /// A check over `floors` that opens a window of a peer's already-known generation only
    /// for a datagram echoing `own_generation` (this run's, from [`super::Boot`]); see
    /// [`Freshness::check_echo`].
    pub fn with_challenge(floors: PeerFloors, own_generation: u64) -> Freshness {
        Freshness {
            challenge: Some(own_generation),
            ..Freshness::new(floors)
        }
    }

    /// The floors.
    pub fn floors(&self) -> &PeerFloors {
        &self.floors
    }

    /// Takes the last error of writing the floors file (the floor held in memory anyway).
    pub fn take_persist_error(&mut self) -> Option<StateError> {
        self.persist_error.take()
    }

    /// Accepts (and records) `seq` of `generation` from `peer` on `lane`, or says why not.
    /// Call only for authentic datagrams; a refusal changes nothing. Without a challenge:
    /// the first datagram of a known generation heard since our start opens its window.
    pub fn check(
        &mut self,
        peer: u64,
        lane: u8,
        generation: u64,
        seq: u64,
    ) -> Result<Fresh, Stale> {
        self.check_echo(peer, lane, generation, seq, None)
    }

    /// [`Freshness::check`] for a datagram that echoes `echo`, the generation of ours the
    /// peer heard last (`None`: the format has no echo). Under a challenge, the first
    /// datagram of the peer's known generation on a lane since our start is refused
    /// ([`Stale::Unconfirmed`]) unless `echo` is our current generation.
    pub fn check_echo(
        &mut self,
        peer: u64,
        lane: u8,
        generation: u64,
        seq: u64,
        echo: Option<u64>,
    ) -> Result<Fresh, Stale> {
        if seq == 0 {
            return Err(Stale::Replay);
        }
        let floor = self.floors.get(peer);
        if floor.is_some_and(|f| generation < f) {
            return Err(Stale::OldGeneration);
        }
        if floor.is_none_or(|f| generation > f) {
            if let Err(e) = self.floors.raise(peer, generation) {
                self.persist_error = Some(e);
            }
            self.windows.retain(|w| w.peer != peer);
            self.push(Window::first(peer, lane, generation, seq));
            return Ok(Fresh {
                new_generation: true,
                previous: floor,
            });
        }
        let fresh = Fresh {
            new_generation: false,
            previous: floor,
        };
        let Some(pos) = self
            .windows
            .iter()
            .position(|w| w.peer == peer && w.lane == lane && w.generation == generation)
        else {
            let mut w = Window::first(peer, lane, generation, seq);
            if let Some(c) = self.challenge {
                if echo != Some(c) {
                    return Err(Stale::Unconfirmed);
                }
                // Below the confirming datagram, the window's unseen numbers may have been
                // sealed before our restart (recorded, replayed now): none of them is new.
                w.seen = u64::MAX;
            }
            self.push(w);
            return Ok(fresh);
        };
        let mut w = self.windows.remove(pos);
        let verdict = if seq > w.top {
            let shift = seq - w.top;
            w.seen = if shift >= WIDTH { 0 } else { w.seen << shift } | 1;
            w.top = seq;
            Ok(fresh)
        } else {
            let back = w.top - seq;
            if back >= WIDTH || w.seen & (1 << back) != 0 {
                Err(Stale::Replay)
            } else {
                w.seen |= 1 << back;
                Ok(fresh)
            }
        };
        self.windows.insert(0, w);
        verdict
    }

    fn push(&mut self, w: Window) {
        self.windows
            .retain(|x| !(x.peer == w.peer && x.lane == w.lane));
        self.windows.insert(0, w);
        self.windows.truncate(MAX_WINDOWS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_and_reordering_within_a_generation() {
        let mut f = Freshness::new(PeerFloors::in_memory());
        assert!(f.check(1, 0, 10, 1).unwrap().new_generation);
        assert!(f.check(1, 0, 10, 3).is_ok());
        assert!(f.check(1, 0, 10, 2).is_ok(), "late but new");
        assert_eq!(f.check(1, 0, 10, 2), Err(Stale::Replay));
        assert_eq!(f.check(1, 0, 10, 3), Err(Stale::Replay));
        assert!(f.check(1, 0, 10, 100).is_ok());
        assert_eq!(f.check(1, 0, 10, 30), Err(Stale::Replay), "too old");
        assert_eq!(f.check(1, 0, 10, 0), Err(Stale::Replay));
        // The other lane numbers the same stream apart.
        assert!(f.check(1, 1, 10, 3).is_ok());
    }

    #[test]
    fn an_earlier_generation_is_refused_for_good() {
        let mut f = Freshness::new(PeerFloors::in_memory());
        assert!(f.check(1, 0, 10, 500).is_ok());
        // The peer restarts: any sequence of the new generation.
        let r = f.check(1, 0, 11, 1).unwrap();
        assert_eq!((r.new_generation, r.previous), (true, Some(10)));
        // The earlier run's datagrams, whatever their sequence, on any lane.
        assert_eq!(f.check(1, 0, 10, 501), Err(Stale::OldGeneration));
        assert_eq!(f.check(1, 1, 10, 501), Err(Stale::OldGeneration));
        // ... and refusing them moved nothing.
        assert!(f.check(1, 0, 11, 2).is_ok());
        assert!(f.check(1, 1, 11, 2).is_ok());
        // Another peer is apart.
        assert!(f.check(2, 0, 3, 1).is_ok());
    }

    #[test]
    fn after_our_restart_a_known_generation_must_echo_our_generation() {
        let mut f = Freshness::with_challenge(PeerFloors::in_memory(), 100);
        // First contact (and any later restart of the peer): a new generation, no echo.
        assert!(f.check_echo(1, 0, 10, 1, None).unwrap().new_generation);
        assert!(f.check_echo(1, 0, 10, 2, Some(99)).is_ok(), "window open");
        // We restart (generation 101) remembering the peer's generation 10.
        let floors = std::mem::take(&mut f.floors);
        let mut g = Freshness::with_challenge(floors, 101);
        // Captured datagrams of the peer's current run echo our earlier run at best.
        for (seq, echo) in [(3, Some(100)), (4, Some(99)), (500, None), (501, Some(0))] {
            assert_eq!(g.check_echo(1, 0, 10, seq, echo), Err(Stale::Unconfirmed));
        }
        // The live peer heard us and echoes 101: its window opens, per lane.
        assert!(g.check_echo(1, 0, 10, 600, Some(101)).is_ok());
        assert!(g.check_echo(1, 0, 10, 601, Some(100)).is_ok(), "open now");
        // Below the confirming datagram, within the window: maybe recorded before, refused.
        assert_eq!(g.check_echo(1, 0, 10, 599, Some(100)), Err(Stale::Replay));
        assert_eq!(g.check_echo(1, 0, 10, 598, Some(101)), Err(Stale::Replay));
        assert_eq!(g.check_echo(1, 1, 10, 600, None), Err(Stale::Unconfirmed));
        assert_eq!(g.check_echo(1, 0, 10, 600, Some(101)), Err(Stale::Replay));
        // An older generation stays stale; a restart of the peer needs no echo.
        assert_eq!(
            g.check_echo(1, 0, 9, 1, Some(101)),
            Err(Stale::OldGeneration)
        );
        assert!(g.check_echo(1, 1, 11, 1, None).unwrap().new_generation);
        // Without a challenge (the earlier behaviour), the first datagram opens the window.
        let mut h = Freshness::new(std::mem::take(&mut g.floors));
        assert!(h.check(1, 0, 11, 77).is_ok());
    }

    #[test]
    fn floors_survive_the_receivers_restart() {
        let d = std::env::temp_dir().join(format!("lvs-fresh-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("peers");
        let mut f = Freshness::new(PeerFloors::load(&p).unwrap());
        f.check(9, 0, 20, 1).unwrap();
        f.check(9, 0, 21, 1).unwrap();
        let mut g = Freshness::new(PeerFloors::load(&p).unwrap());
        assert_eq!(g.check(9, 0, 20, 7), Err(Stale::OldGeneration));
        assert!(
            g.check(9, 0, 21, 900).is_ok(),
            "first contact in the generation"
        );
        std::fs::remove_dir_all(&d).unwrap();
        // A floors file that cannot be written: the floor holds in memory, the error is kept.
        let mut h = Freshness::new(PeerFloors::load(&d.join("gone/peers")).unwrap());
        assert!(h.check(9, 0, 5, 1).is_ok());
        assert!(h.take_persist_error().is_some());
        assert_eq!(h.check(9, 0, 4, 1), Err(Stale::OldGeneration));
    }
}
