//! `lvs-heartbeatd`: primary/backup heartbeats and failover — the library core.
//!
//! The daemon (director wiring, VIP takeover, notify, connection sync) stands on these parts:
//!
//! - [`wire`]: the heartbeat message in a fixed, versioned binary layout, sealed with
//!   HMAC-SHA256 under a shared key ([`wire::AuthKey`], read from a file that group and
//!   others cannot read), and [`wire::Verifier`], which checks the MAC in constant time,
//!   refuses heartbeats of a peer's earlier runs (persisted boot generations) and replays
//!   within a run, and counts every rejection by reason; the sealing, key and freshness
//!   code is `lvs_common::authdgram`, shared with the director's connection sync.
//! - [`serial`]: COBS framing with a length and a CRC-32 that resynchronises after line
//!   noise, and the tty set-up (raw mode, configured baud rate, non-blocking).
//! - [`udp`]: the non-blocking UDP socket for a `mio` loop, unicast peers or a multicast group.
//! - [`fsm`]: the deterministic state machine (time is passed in, no clock inside): timers as
//!   Linux-HA has them, takeover only when every medium is silent, a persisted mastership
//!   epoch, both recovery modes. Its outputs are an ordered list of [`fsm::Action`]s.
//! - [`epoch`]: the mastership epoch on disk, written atomically.
//! - [`vipdev`]: the TUN device the virtual addresses live on, so that they die with the
//!   process (a SIGKILLed primary must not go on answering ARP for the VIP).
//! - [`linkwatch`]: carrier of the VIP interfaces over netlink; a link down is a local fault.
//! - [`ndp`]: neighbour discovery for the IPv6 virtual addresses (answers to solicitations
//!   while master, the unsolicited advertisements of a takeover).
//! - [`director`]: the director's control socket on a helper thread (role changes never block
//!   the loop; the director's connection-sync state feeds the `TABLE_SYNCED` flag).
//!
//! How the daemon wires them (one `mio` loop):
//!
//! ```text
//! start:  epoch = EpochStore::load()?; generation = Boot::advance(<epoch>.generation)?
//!         (fsynced before any heartbeat); fsm = Fsm::new(config, epoch, now)?
//!         register UdpHeartbeat (READABLE) and SerialPort (READABLE, + WRITABLE while
//!         wants_write()) with the poll
//! loop:   poll(timeout = fsm.next_deadline() - now)
//!         UDP readable:    recv (at most UDP_BURST per turn) -> Verifier::verify(Medium::Udp, bytes)
//!                          -> fsm.handle(Input::Heartbeat)
//!         serial readable: read_frames -> Verifier::verify(Medium::Serial, frame) -> same
//!         every wake-up:   fsm.handle(now, Input::Tick)
//!         then run the actions in order: PersistEpoch (EpochStore::store, fsync) before
//!         anything after it (a failed store -> fsm.handle(Input::Fault)); SendHeartbeat =
//!         Sealer::next + seal_for(medium) -> UdpHeartbeat::send_all / SerialPort::send_frame
//! ```
//!
//! Failover time with the default timers (keepalive 200 ms, deadtime 1 s): the backup takes
//! over exactly one deadtime after the last heartbeat it received on any medium, so between
//! deadtime - keepalive and deadtime after the peer died (0.8 to 1.0 s), plus the serial
//! frame time when the serial line delivered last (about 51 ms at 19200 baud), plus the
//! takeover actions themselves.

pub mod anycast;
pub mod config;
pub mod daemon;
pub mod director;
pub mod epoch;
pub mod fsm;
pub mod linkwatch;
pub mod ndp;
pub mod serial;
pub mod settings;
mod sys;
pub mod udp;
pub mod vipdev;
pub mod wire;

use std::fmt;

/// A heartbeat medium. Liveness is tracked per medium: the peer is dead only when every
/// configured medium has been silent for the deadtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Medium {
    /// UDP, unicast or multicast.
    Udp,
    /// The serial line (a null-modem cable between the two directors).
    Serial,
}

impl Medium {
    /// Every medium, in index order.
    pub const ALL: [Medium; 2] = [Medium::Udp, Medium::Serial];

    /// A dense index (0 or 1) for per-medium arrays.
    pub const fn index(self) -> usize {
        match self {
            Medium::Udp => 0,
            Medium::Serial => 1,
        }
    }

    /// The name used in logs and alerts.
    pub const fn name(self) -> &'static str {
        match self {
            Medium::Udp => "udp",
            Medium::Serial => "serial",
        }
    }
}

impl fmt::Display for Medium {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
