//! Connection-state sync between directors (IPVS's sync daemon, authenticated).
//!
//! - The active director's workers hand new connections, state changes and periodic
//!   refreshes to the sync thread through one preallocated SPSC ring each ([`spsc`]); a
//!   full ring drops the record and counts it, the worker never waits.
//! - The sync thread ([`engine`]) batches them into HMAC-sealed datagrams ([`wire`]) to the
//!   peers and the multicast group, answers bulk-resync requests with the whole table, and
//!   on a standby puts what it receives into the ring of the worker that the fanout steering
//!   gives the flow to (templates to every worker).
//! - Each worker applies received entries to its own table (`apply_synced` in `dataplane/worker.rs`).

pub mod config;
pub mod control;
pub mod daemons;
pub mod engine;
pub mod wire;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use lvs_conntrack::SyncEntry;

use crate::sys::spsc;

pub use config::SyncConfig;
pub use daemons::Daemons;
pub use engine::SyncEngine;

/// Counters and flags the sync thread and the workers write and the control thread reads.
#[derive(Debug, Default)]
pub struct SyncShared {
    /// A sync thread runs: the workers hand it their changes (none wasted on a full ring
    /// while no daemon runs).
    pub running: AtomicBool,
    pub active: AtomicBool,
    pub bulk_complete: AtomicBool,
    /// Milliseconds since the engine's start when an active director was last heard; 0 never.
    pub last_heard: AtomicU64,
    pub sent: AtomicU64,
    pub entries_sent: AtomicU64,
    pub received: AtomicU64,
    pub entries_applied: AtomicU64,
    pub rejected_mac: AtomicU64,
    pub rejected_replay: AtomicU64,
    pub rejected_truncated: AtomicU64,
    pub rejected_other: AtomicU64,
    pub dropped: AtomicU64,
    pub bulk_resyncs: AtomicU64,
}

impl SyncShared {
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// A worker's end of sync.
#[derive(Debug)]
pub struct WorkerSync {
    /// To the sync thread: what changed in this worker's table.
    pub out: spsc::Producer<SyncEntry>,
    /// From the sync thread: entries to apply (standby).
    pub inbound: spsc::Consumer<SyncEntry>,
    /// Per table slot, the second (worker clock) the connection was last sent.
    pub last_sent: Vec<u32>,
    pub refresh_secs: u32,
    pub shared: Arc<SyncShared>,
}

impl WorkerSync {
    /// Hand `e` to the sync thread; counts a drop when the ring is full.
    #[inline]
    pub fn send(&mut self, e: SyncEntry) -> bool {
        if self.out.push(e) {
            true
        } else {
            SyncShared::bump(&self.shared.dropped);
            false
        }
    }

    /// Whether connection `slot` is due: forced (new, state changed) or not sent for
    /// `refresh_secs`.
    #[inline]
    pub fn due(&self, slot: u32, now_ms: u64, force: bool) -> bool {
        if !self.shared.running.load(Ordering::Relaxed) {
            return false;
        }
        if force {
            return true;
        }
        let now_s = u32::try_from(now_ms / 1000).unwrap_or(u32::MAX);
        self.last_sent
            .get(slot as usize)
            .is_some_and(|&last| now_s.wrapping_sub(last) >= self.refresh_secs)
    }

    #[inline]
    pub fn mark(&mut self, slot: u32, now_ms: u64) {
        if let Some(s) = self.last_sent.get_mut(slot as usize) {
            *s = u32::try_from(now_ms / 1000).unwrap_or(u32::MAX);
        }
    }
}

/// The sync thread's ends for one worker.
#[derive(Debug)]
pub struct EngineSide {
    pub from_worker: spsc::Consumer<SyncEntry>,
    pub to_worker: spsc::Producer<SyncEntry>,
}

/// The rings for `workers` workers with tables of `slots` entries each.
pub fn rings(
    workers: usize,
    slots: usize,
    cfg: &SyncConfig,
    shared: &Arc<SyncShared>,
) -> (Vec<WorkerSync>, Vec<EngineSide>) {
    rings_sized(workers, slots, cfg.ring_size, cfg.refresh_secs, shared)
}

/// [`rings`] of `ring_size` entries, refreshing every `refresh_secs`.
pub fn rings_sized(
    workers: usize,
    slots: usize,
    ring_size: usize,
    refresh_secs: u32,
    shared: &Arc<SyncShared>,
) -> (Vec<WorkerSync>, Vec<EngineSide>) {
    let mut w = Vec::with_capacity(workers);
    let mut e = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (out_p, out_c) = spsc::ring(ring_size);
        let (in_p, in_c) = spsc::ring(ring_size);
        w.push(WorkerSync {
            out: out_p,
            inbound: in_c,
            last_sent: vec![0; slots],
            refresh_secs,
            shared: Arc::clone(shared),
        });
        e.push(EngineSide {
            from_worker: out_c,
            to_worker: in_p,
        });
    }
    (w, e)
}

/// The worker a flow's packets are steered to (both directions): the fanout hash of the
/// client's address and port. Templates (port 0) go to every worker instead.
pub fn worker_of(e: &SyncEntry, workers: usize) -> usize {
    let h = lvs_afpacket::client_hash(std::net::IpAddr::from(e.client.addr), e.client.port);
    (h as usize) % workers.max(1)
}

/// An IPv4 address of an entry's endpoint.
pub fn v4(a: lvs_conntrack::Addr) -> Option<Ipv4Addr> {
    match std::net::IpAddr::from(a) {
        std::net::IpAddr::V4(v) => Some(v),
        std::net::IpAddr::V6(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_conntrack::{Endpoint, Forward, Proto, State};

    fn cfg() -> SyncConfig {
        SyncConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            peers: vec!["127.0.0.1:1".parse().unwrap()],
            multicast: None,
            interface: None,
            key_file: "k".into(),
            sync_id: 0,
            refresh_secs: 30,
            flush_ms: 5,
            ring_size: 64,
            state_dir: "unused".into(),
            autostart: true,
            ttl: 1,
            maxlen: 0,
            many_to_many: false,
        }
    }

    #[test]
    fn a_full_ring_drops_and_counts_and_refresh_is_due_after_its_period() {
        let shared = Arc::new(SyncShared::default());
        let (mut w, _e) = rings(1, 8, &cfg(), &shared);
        let w = &mut w[0];
        assert!(!w.due(3, 0, true), "no sync thread: nothing is due");
        shared.running.store(true, Ordering::Relaxed);
        let e = SyncEntry {
            proto: Proto::Tcp,
            client: Endpoint::v4([198, 51, 100, 2], 1),
            virt: Endpoint::v4([203, 0, 113, 100], 80),
            dest: Endpoint::v4([203, 0, 113, 11], 80),
            forward: Forward::Nat,
            state: State::Established,
            flags: 0,
            timeout_ms: 1,
            persist_secs: 0,
        };
        for _ in 0..64 {
            assert!(w.send(e));
        }
        assert!(!w.send(e), "full: refused at once");
        assert_eq!(shared.dropped.load(Ordering::Relaxed), 1);
        w.mark(3, 100_000);
        assert!(!w.due(3, 129_000, false));
        assert!(w.due(3, 129_000, true));
        assert!(w.due(3, 130_000, false));
    }

    #[test]
    fn both_directions_of_a_flow_go_to_the_worker_the_fanout_picks() {
        let e = SyncEntry {
            proto: Proto::Tcp,
            client: Endpoint::v4([198, 51, 100, 2], 40_000),
            virt: Endpoint::v4([203, 0, 113, 100], 80),
            dest: Endpoint::v4([203, 0, 113, 11], 80),
            forward: Forward::Nat,
            state: State::Established,
            flags: 0,
            timeout_ms: 1,
            persist_secs: 0,
        };
        let want = lvs_afpacket::mix(u32::from(Ipv4Addr::new(198, 51, 100, 2)), 40_000) % 4;
        assert_eq!(worker_of(&e, 4), want as usize);
    }

    /// An Ethernet frame: IPv6 + TCP, ports only (the fanout reads nothing further).
    fn tcp6_frame(src: std::net::Ipv6Addr, dst: std::net::Ipv6Addr, sp: u16, dp: u16) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend([0x86, 0xdd, 0x60, 0, 0, 0, 0, 20, 6, 64]);
        f.extend(src.octets());
        f.extend(dst.octets());
        f.extend(sp.to_be_bytes());
        f.extend(dp.to_be_bytes());
        f.extend([0u8; 16]);
        f
    }

    #[test]
    fn both_directions_of_an_ipv6_flow_go_to_the_worker_the_fanout_picks() {
        let v6 = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap();
        let (client, vip, rs) = (
            v6("2001:db8:c::2"),
            v6("2001:db8:f::100"),
            v6("2001:db8:1::11"),
        );
        let vips = [
            std::net::IpAddr::from(vip),
            Ipv4Addr::new(203, 0, 113, 100).into(),
        ];
        for port in 40_000..40_064 {
            let e = SyncEntry {
                proto: Proto::Tcp,
                client: Endpoint::new(client.into(), port),
                virt: Endpoint::new(vip.into(), 80),
                dest: Endpoint::new(rs.into(), 8080),
                forward: Forward::Nat,
                state: State::Established,
                flags: 0,
                timeout_ms: 1,
                persist_secs: 0,
            };
            let request = lvs_afpacket::fanout_hash(&tcp6_frame(client, vip, port, 80), &vips);
            let reply = lvs_afpacket::fanout_hash(&tcp6_frame(rs, client, 8080, port), &vips);
            for workers in [2, 3, 4] {
                assert_eq!(
                    worker_of(&e, workers),
                    request as usize % workers,
                    "port {port}"
                );
                assert_eq!(
                    worker_of(&e, workers),
                    reply as usize % workers,
                    "port {port}"
                );
            }
        }
    }
}
