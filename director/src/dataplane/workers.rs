//! The worker threads from the control thread's side: opening the rings and starting the
//! workers, the commands they are sent, the fanout programs, connection sync's thread, and
//! stopping it all.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::Level;
use lvs_afpacket::{FanoutConfig, FanoutControl, TxConfig, TxSocket};
use lvs_common::event;
use lvs_conntrack::{ConnInfo, Table};
use mio::{Poll, Waker};

use super::snapshot::Snapshot;
use super::stats::WorkerStats;
use super::worker::{ForwardingWorker, WorkerCommand};
use super::{DataplaneError, Setup, icmp_limit};
use crate::sync::{EngineSide, SyncConfig, SyncEngine, SyncShared};

struct Handle {
    cmds: Sender<WorkerCommand>,
    waker: Arc<Waker>,
    join: Option<JoinHandle<()>>,
}

/// The running workers and what steers packets to them.
pub struct Workers {
    handles: Vec<Handle>,
    fanouts: Vec<FanoutControl>,
    misses: Receiver<IpAddr>,
    /// Connection sync: its configuration and the sync thread's ends of the rings until
    /// `start_sync`, then the running thread.
    sync_setup: Option<(SyncConfig, Vec<EngineSide>)>,
    sync_shared: Option<Arc<SyncShared>>,
    sync: Option<SyncEngine>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("workers", &self.handles.len())
            .finish()
    }
}

impl Workers {
    /// Open every ring and start the workers on `first`. Rings are opened here, on the calling
    /// thread and in worker order, so that member `i` of every interface's fanout group is
    /// worker `i`.
    pub fn start(
        setup: &Setup,
        first: &Arc<Snapshot>,
        stats: &Arc<[Arc<WorkerStats>]>,
    ) -> Result<Self, DataplaneError> {
        let n = stats.len();
        let mut rings_per_worker: Vec<Vec<lvs_afpacket::RxRing>> =
            (0..n).map(|_| Vec::new()).collect();
        let mut fanouts = Vec::new();
        for iface in &setup.interfaces {
            let (rings, control) = lvs_afpacket::open_fanout(
                iface,
                &setup.rx,
                &FanoutConfig {
                    members: n,
                    vips: Vec::new(),
                    group_id: None,
                },
            )?;
            for (w, ring) in rings.into_iter().enumerate() {
                rings_per_worker[w].push(ring);
            }
            fanouts.push(control);
        }
        let (miss_tx, miss_rx): (SyncSender<IpAddr>, Receiver<IpAddr>) = mpsc::sync_channel(1024);
        let per_worker = (setup.conn_table_size / n).max(1024);
        let sync_shared = setup.sync.as_ref().map(|_| Arc::new(SyncShared::default()));
        let (mut worker_syncs, engine_sides) = match (&setup.sync, &sync_shared) {
            (Some(cfg), Some(shared)) => {
                let (w, e) = crate::sync::rings(n, per_worker, cfg, shared);
                (w.into_iter().map(Some).collect::<Vec<_>>(), Some(e))
            }
            _ => ((0..n).map(|_| None).collect(), None),
        };
        let mut handles = Vec::with_capacity(n);
        for (index, rings) in rings_per_worker.into_iter().enumerate() {
            let fail = |reason: String| DataplaneError::Worker {
                worker: index,
                reason,
            };
            let tx = TxSocket::open(&TxConfig::default())?;
            let mut cfg = lvs_conntrack::Config::with_capacity(per_worker);
            cfg.dest_slots = 256;
            cfg.hash_seed = random_seed();
            let now = 0;
            let mut table =
                Table::new(cfg, now).map_err(|e| DataplaneError::Table(e.to_string()))?;
            let (tcp, tcp_fin, udp) = setup.timeouts;
            table.set_timeouts(tcp, tcp_fin, udp);
            let (cmd_tx, cmd_rx) = mpsc::channel();
            let poll = Poll::new().map_err(|e| fail(e.to_string()))?;
            let mut w = ForwardingWorker {
                index,
                rings,
                tx,
                table,
                snap: Arc::clone(first),
                stats: Arc::clone(&stats[index]),
                cmds: cmd_rx,
                misses: miss_tx.clone(),
                poll,
                epoch: Instant::now(),
                sync: worker_syncs[index].take(),
                icmp_limit: icmp_limit::TokenBucket::default(),
            };
            w.register().map_err(|e| fail(e.to_string()))?;
            let waker = w.waker().map_err(|e| fail(e.to_string()))?;
            let join = std::thread::Builder::new()
                .name(format!("lvs-worker-{index}"))
                .spawn(move || w.run())
                .map_err(|e| fail(e.to_string()))?;
            handles.push(Handle {
                cmds: cmd_tx,
                waker: Arc::new(waker),
                join: Some(join),
            });
        }
        Ok(Self {
            handles,
            fanouts,
            misses: miss_rx,
            sync_setup: setup.sync.clone().zip(engine_sides),
            sync_shared,
            sync: None,
        })
    }

    /// Start the sync thread (after `start`, with the key read from `key_file`).
    pub fn start_sync(
        &mut self,
        key: crate::sync::wire::AuthKey,
        active: bool,
    ) -> std::io::Result<()> {
        let (Some((cfg, sides)), Some(shared)) = (self.sync_setup.take(), &self.sync_shared) else {
            return Ok(());
        };
        let links = sides
            .into_iter()
            .zip(&self.handles)
            .map(|(side, w)| crate::sync::engine::WorkerLink {
                side,
                cmds: w.cmds.clone(),
                waker: Arc::clone(&w.waker),
            })
            .collect();
        self.sync = Some(SyncEngine::start(
            cfg,
            key,
            links,
            Arc::clone(shared),
            active,
        )?);
        Ok(())
    }

    /// Connection sync's status (`None`: not configured).
    pub fn sync_status(&self) -> Option<lvs_proto::director::SyncStatus> {
        self.sync.as_ref().map(SyncEngine::status)
    }

    /// Active or standby: connection sync sends, or receives.
    pub fn set_role(&self, active: bool) {
        if let Some(s) = &self.sync {
            s.set_role(active);
        }
    }

    /// Send every worker a command and wake it.
    pub fn send(&self, make: impl Fn() -> WorkerCommand) {
        for w in &self.handles {
            let _ = w.cmds.send(make());
            let _ = w.waker.wake();
        }
    }

    /// Steer packets to these VIPs to the workers (sorted, no duplicates).
    pub fn set_vips(&self, vips: &[IpAddr]) {
        for f in &self.fanouts {
            if let Err(e) = f.set_vips(vips) {
                event!(Level::Error, "fanout_update_failed", reason = e.to_string());
            }
        }
    }

    /// Next hops the workers found without a MAC since the last call.
    pub fn take_misses(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self.misses.try_iter().collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Every worker's connection table.
    pub fn connections(&self) -> Vec<ConnInfo> {
        let mut replies = Vec::new();
        for w in &self.handles {
            let (tx, rx) = mpsc::sync_channel(1);
            if w.cmds.send(WorkerCommand::ListConns(tx)).is_ok() {
                let _ = w.waker.wake();
                replies.push(rx);
            }
        }
        let mut out = Vec::new();
        for rx in replies {
            // A worker answers within one loop turn; a stuck worker must not hang lvsadm.
            if let Ok(list) = rx.recv_timeout(Duration::from_secs(2)) {
                out.extend(list);
            }
        }
        out
    }

    /// Stop every worker (and the sync thread) and wait for them.
    pub fn stop(&mut self) {
        if let Some(mut s) = self.sync.take() {
            s.stop();
        }
        self.send(|| WorkerCommand::Stop);
        for w in &mut self.handles {
            if let Some(j) = w.join.take() {
                let _ = j.join();
            }
        }
    }
}

/// A hash seed per worker table, so that an attacker cannot aim at one bucket.
fn random_seed() -> u64 {
    let mut buf = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut buf);
    }
    u64::from_ne_bytes(buf) ^ lvs_conntrack::DEFAULT_SEED
}
