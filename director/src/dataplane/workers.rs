//! The worker threads from the control thread's side: opening the rings and starting the
//! workers, the commands they are sent, the fanout programs, connection sync's thread, and
//! stopping it all.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::Level;
use lvs_afpacket::{FanoutConfig, FanoutControl, RxFilter, TxConfig, TxSocket};
use lvs_common::event;
use lvs_conntrack::{ConnInfo, Table};
use mio::{Poll, Waker};

use super::snapshot::Snapshot;
use super::stats::WorkerStats;
use super::worker::{ForwardingWorker, WorkerCommand};
use super::{DataplaneError, Setup, icmp_limit};
use crate::sync::SyncShared;

/// Ring size and refresh period of the workers' sync rings without a `[sync]` section (its
/// defaults), for a daemon `lvsadm --start-daemon` starts.
const DEFAULT_SYNC_RING: usize = 16384;
const DEFAULT_SYNC_REFRESH: u32 = 30;

struct Handle {
    cmds: Sender<WorkerCommand>,
    waker: Arc<Waker>,
    join: Option<JoinHandle<()>>,
}

/// The running workers and what steers packets to them.
pub struct Workers {
    handles: Vec<Handle>,
    fanouts: Vec<FanoutControl>,
    /// The addresses the rings' receive filters were last built for (`None`: not yet).
    filter: Option<RxFilter>,
    /// The last filter was too long and every frame is let in (said once, until it fits).
    filter_fallback: bool,
    misses: Receiver<IpAddr>,
    /// Connection sync: the sync thread that runs (from `[sync]` or `lvsadm
    /// --start-daemon`), or its ends of the rings while none does.
    sync: crate::sync::Daemons,
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
        // Installed as each group is formed, so that frames are kept out from the start (the
        // first snapshot has no service yet: every IP frame).
        let first_filter = filter_of(first);
        let first_prog = first_filter.program();
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
            control.set_filter(first_prog.as_deref().unwrap_or(&RxFilter::accept_all()))?;
            for (w, ring) in rings.into_iter().enumerate() {
                rings_per_worker[w].push(ring);
            }
            fanouts.push(control);
        }
        let (miss_tx, miss_rx): (SyncSender<IpAddr>, Receiver<IpAddr>) = mpsc::sync_channel(1024);
        let per_worker = (setup.conn_table_size / n).max(1024);
        // Every worker has its rings, so that `lvsadm --start-daemon` can start a daemon at
        // any time; while none runs, the workers hand them nothing.
        let sync_shared = Arc::new(SyncShared::default());
        let (ring_size, refresh) = setup
            .sync
            .as_ref()
            .map_or((DEFAULT_SYNC_RING, DEFAULT_SYNC_REFRESH), |c| {
                (c.ring_size, c.refresh_secs)
            });
        let (worker_syncs, engine_sides) =
            crate::sync::rings_sized(n, per_worker, ring_size, refresh, &sync_shared);
        let mut worker_syncs: Vec<_> = worker_syncs.into_iter().map(Some).collect();
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
        let links = engine_sides
            .into_iter()
            .zip(&handles)
            .map(|(side, w)| crate::sync::engine::WorkerLink {
                side,
                cmds: w.cmds.clone(),
                waker: Arc::clone(&w.waker),
            })
            .collect();
        Ok(Self {
            handles,
            fanouts,
            filter_fallback: first_prog.is_none(),
            filter: Some(first_filter),
            misses: miss_rx,
            sync: crate::sync::Daemons::new(setup.sync.clone(), links, sync_shared),
        })
    }

    /// With the key read from `[sync] key_file`: the configured sync thread starts (unless
    /// `autostart = false`).
    pub fn start_sync(
        &mut self,
        key: crate::sync::wire::AuthKey,
        active: bool,
    ) -> std::io::Result<()> {
        self.sync.start_configured(key, active)
    }

    /// Connection sync's status (`None`: no sync thread runs).
    pub fn sync_status(&self) -> Option<lvs_proto::director::SyncStatus> {
        self.sync.status()
    }

    /// The sync daemons, for `lvsadm --start-daemon` and `--stop-daemon`.
    pub fn sync_daemons(&mut self) -> &mut crate::sync::Daemons {
        &mut self.sync
    }

    /// Active or standby: connection sync sends, or receives.
    pub fn set_role(&self, active: bool) {
        self.sync.set_role(active);
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

    /// Let into the rings only the frames the workers act on with `snap` (see
    /// [`RxFilter`]): the kernel drops the rest before it copies them or wakes a worker.
    /// Too many addresses for one program: every frame, as without a filter (said once).
    pub fn set_filter(&mut self, snap: &Snapshot) {
        let want = filter_of(snap);
        if self.filter.as_ref() == Some(&want) {
            return;
        }
        let prog = want.program();
        if prog.is_none() && !self.filter_fallback {
            event!(
                Level::Warn,
                "rx_filter_too_long",
                vips = want.vips.len(),
                nat_servers = want.nat_servers.len()
            );
        }
        self.filter_fallback = prog.is_none();
        let prog = prog.unwrap_or_else(RxFilter::accept_all);
        let mut failed = false;
        for f in &self.fanouts {
            if let Err(e) = f.set_filter(&prog) {
                failed = true;
                event!(
                    Level::Error,
                    "rx_filter_update_failed",
                    reason = e.to_string()
                );
            }
        }
        // Tried again with the next snapshot.
        self.filter = (!failed).then_some(want);
    }

    /// Frames the rings of every interface have taken since they were opened (past the
    /// receive filter); an interface whose statistics cannot be read counts none.
    pub fn ring_frames(&mut self) -> u64 {
        self.fanouts
            .iter_mut()
            .filter_map(|f| f.frames().ok())
            .sum()
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
        // A worker answers within one loop turn; a stuck worker must not hang lvsadm.
        let each = std::iter::repeat(WorkerCommand::ListConns as fn(_) -> _);
        self.ask(each, Duration::from_secs(2))
            .into_iter()
            .flatten()
            .collect()
    }

    /// An upgrade: stop the sync thread, then every worker with its table's entries, which
    /// are returned.
    pub fn hand_over(&mut self) -> Vec<lvs_conntrack::SyncEntry> {
        self.sync.stop();
        let each = std::iter::repeat(WorkerCommand::HandOver as fn(_) -> _);
        let dumps = self.ask(each, Duration::from_secs(10));
        self.stop();
        dumps.into_iter().flatten().collect()
    }

    /// After an upgrade: each entry to the worker its flow is steered to (a template to
    /// every worker, as connection sync does); returns how many went in.
    pub fn import(&self, entries: Vec<lvs_conntrack::SyncEntry>) -> usize {
        let n = self.handles.len();
        let mut per: Vec<Vec<lvs_conntrack::SyncEntry>> = vec![Vec::new(); n];
        for e in entries {
            if e.is_template() {
                per.iter_mut().for_each(|v| v.push(e));
            } else {
                per[crate::sync::worker_of(&e, n)].push(e);
            }
        }
        let each = per
            .into_iter()
            .map(|list| move |tx| WorkerCommand::Import(list, tx));
        self.ask(each, Duration::from_secs(10)).into_iter().sum()
    }

    /// Sends worker `i` the command the `i`th of `make` builds around a reply channel, and
    /// collects the answers that come within `wait` each.
    fn ask<T, C>(&self, make: impl IntoIterator<Item = C>, wait: Duration) -> Vec<T>
    where
        C: FnOnce(SyncSender<T>) -> WorkerCommand,
    {
        let mut replies = Vec::new();
        for (w, make) in self.handles.iter().zip(make) {
            let (tx, rx) = mpsc::sync_channel(1);
            if w.cmds.send(make(tx)).is_ok() {
                let _ = w.waker.wake();
                replies.push(rx);
            }
        }
        replies
            .into_iter()
            .filter_map(|rx| rx.recv_timeout(wait).ok())
            .collect()
    }

    /// Stop every worker (and the sync thread) and wait for them.
    pub fn stop(&mut self) {
        self.sync.stop();
        self.send(|| WorkerCommand::Stop);
        for w in &mut self.handles {
            if let Some(j) = w.join.take() {
                let _ = j.join();
            }
        }
    }
}

/// The addresses the data plane acts on in `snap`.
fn filter_of(snap: &Snapshot) -> RxFilter {
    RxFilter {
        vips: snap.vips.clone(),
        nat_servers: snap.nat_servers.clone(),
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
