//! The link to the local director, on a helper thread so that the heartbeat loop never waits
//! for it: a director that is slow, restarting or wedged must not delay a heartbeat (the
//! old blocking `SetRole` could stall the loop for about a second).
//!
//! The loop hands the wanted role over ([`DirectorThread::set_role`], returns at once); the
//! thread (`RoleKeeper`) tells the director over an [`lvs_proto::DirectorLink`], each
//! request bounded by [`REQUEST_TIMEOUT`], re-tells it after every reconnect (a restarted
//! director learns its role again), and asks every [`POLL_INTERVAL`] whether the director's
//! connection table is synced. The loop reads the answer without waiting
//! ([`DirectorThread::sync_state`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::Level;
use lvs_common::event;
use lvs_proto::{Connect, DirectorLink, HaRole, LinkError, LinkOptions, Request, Response, Role};

/// How long one director request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);
/// How often the thread asks for the sync state (and retries a role not yet delivered).
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// heartbeatd's link to the director. No back-off of its own: the thread tries again at every
/// role change and every sync poll, so a restarted director hears its role within
/// [`POLL_INTERVAL`].
const DIRECTOR_LINK: LinkOptions = LinkOptions {
    role: Role::Heartbeatd,
    timeout: REQUEST_TIMEOUT,
    backoff_min: Duration::ZERO,
    backoff_max: Duration::ZERO,
    report: lvs_proto::log_director_link,
};

/// Whether the director's connection table is synced with the active director's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncState {
    /// No answer (no director, or a director without connection sync): not synced.
    Unknown,
    /// Not (yet) synced.
    NotSynced,
    /// Synced: a failback to this node loses no connection.
    Synced,
}

impl SyncState {
    /// Only a definite yes counts: unknown is not synced.
    pub fn is_synced(self) -> bool {
        self == SyncState::Synced
    }

    /// `Some(true/false)`, or `None` when unknown.
    pub fn known(self) -> Option<bool> {
        match self {
            SyncState::Unknown => None,
            SyncState::NotSynced => Some(false),
            SyncState::Synced => Some(true),
        }
    }

    fn code(self) -> u8 {
        match self {
            SyncState::Unknown => 0,
            SyncState::NotSynced => 1,
            SyncState::Synced => 2,
        }
    }

    fn from_code(c: u8) -> SyncState {
        match c {
            1 => SyncState::NotSynced,
            2 => SyncState::Synced,
            _ => SyncState::Unknown,
        }
    }
}

/// What the heartbeat loop asks of the [`RoleKeeper`] thread.
enum RoleOrder {
    /// Tell the director this role (now, and after every reconnect).
    SetRole(HaRole),
    /// The director's socket moved (configuration reload).
    SetPath(PathBuf),
    /// Deliver what is queued, then end.
    Stop,
}

/// The handle the heartbeat loop holds on the director thread.
#[derive(Debug)]
pub struct DirectorThread {
    tx: Sender<RoleOrder>,
    sync: Arc<AtomicU8>,
    done: Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl DirectorThread {
    /// Starts the thread for the director at `path`.
    pub fn start(path: PathBuf) -> std::io::Result<DirectorThread> {
        let (tx, rx) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        let sync = Arc::new(AtomicU8::new(SyncState::Unknown.code()));
        let shared = sync.clone();
        let thread = std::thread::Builder::new()
            .name("director-link".into())
            .spawn(move || {
                RoleKeeper {
                    link: DirectorLink::new(&path, DIRECTOR_LINK),
                    wanted: None,
                    told: false,
                    sync: shared,
                }
                .run(&rx);
                let _ = done_tx.send(());
            })?;
        Ok(DirectorThread {
            tx,
            sync,
            done,
            thread: Some(thread),
        })
    }

    /// Asks for this role; returns at once.
    pub fn set_role(&self, role: HaRole) {
        let _ = self.tx.send(RoleOrder::SetRole(role));
    }

    /// Uses another socket (configuration reload).
    pub fn set_path(&self, path: PathBuf) {
        let _ = self.tx.send(RoleOrder::SetPath(path));
    }

    /// The last sync state the director reported.
    pub fn sync_state(&self) -> SyncState {
        SyncState::from_code(self.sync.load(Ordering::Relaxed))
    }

    /// Delivers what is queued (e.g. the final standby) within `limit`, then stops the thread.
    pub fn stop(mut self, limit: Duration) {
        let _ = self.tx.send(RoleOrder::Stop);
        if self.done.recv_timeout(limit).is_ok()
            && let Some(t) = self.thread.take()
        {
            let _ = t.join();
        }
    }
}

/// The director thread: keeps the director in the role the loop wants, and reads its sync
/// state for the loop.
struct RoleKeeper {
    link: DirectorLink,
    wanted: Option<HaRole>,
    /// The director (this connection to it) was told `wanted`, or refused it.
    told: bool,
    sync: Arc<AtomicU8>,
}

impl RoleKeeper {
    fn run(mut self, orders: &Receiver<RoleOrder>) {
        let mut next_poll = Instant::now();
        loop {
            let wait = next_poll.saturating_duration_since(Instant::now());
            let mut stop = false;
            match orders.recv_timeout(wait) {
                Ok(order) => {
                    // Only the latest role matters: take everything queued.
                    for order in std::iter::once(order).chain(orders.try_iter()) {
                        match order {
                            RoleOrder::SetRole(r) => {
                                self.wanted = Some(r);
                                self.told = false;
                            }
                            // A new socket is a new connection: the role is told again there.
                            RoleOrder::SetPath(p) => self.link.set_path(&p),
                            RoleOrder::Stop => stop = true,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => stop = true,
            }
            if !self.told {
                self.deliver();
            }
            if stop {
                return;
            }
            if Instant::now() >= next_poll {
                next_poll = Instant::now() + POLL_INTERVAL;
                self.poll_sync();
            }
        }
    }

    /// Connected, or connects now; a new connection may be a restarted director, so it is
    /// told the role first.
    fn connect(&mut self) -> bool {
        match self.link.connect_if_due(Instant::now()) {
            Connect::Already => true,
            Connect::Fresh => {
                self.told = false;
                self.tell_role();
                self.link.is_up()
            }
            Connect::No => false,
        }
    }

    fn deliver(&mut self) {
        if self.wanted.is_none() {
            self.told = true;
            return;
        }
        if self.connect() && !self.told {
            self.tell_role();
        }
    }

    fn tell_role(&mut self) {
        let Some(role) = self.wanted else {
            self.told = true;
            return;
        };
        let t = Instant::now();
        let result = match self.link.request(Request::SetRole { role }) {
            Ok(Response::Ok) => {
                self.told = true;
                "ok".to_owned()
            }
            // Refused: retrying would be refused again.
            Ok(other) => {
                self.told = true;
                format!("refused: {other:?}")
            }
            Err(LinkError::Refused { message, .. }) => {
                self.told = true;
                format!("refused: {message}")
            }
            Err(LinkError::Lost(e)) => format!("failed: {e}"),
            Err(LinkError::Down) => return,
        };
        event!(
            Level::Info,
            "director_role",
            role = if role == HaRole::Active {
                "active"
            } else {
                "standby"
            },
            result = result,
            ms = format!("{:.1}", t.elapsed().as_secs_f64() * 1000.0)
        );
    }

    /// Asks the director whether its table is synced. A director without connection sync
    /// configured, one that does not know the request, or no answer at all is `Unknown`: a
    /// returning primary then never claims a synced table, and `auto_failback` never hands
    /// the VIP back to a director that would drop the connections in flight.
    fn poll_sync(&mut self) {
        let state = if self.connect() {
            match self.link.request(Request::SyncStatus) {
                Ok(Response::Sync(s)) if s.enabled && s.synced => SyncState::Synced,
                Ok(Response::Sync(s)) if s.enabled => SyncState::NotSynced,
                _ => SyncState::Unknown,
            }
        } else {
            SyncState::Unknown
        };
        let old = SyncState::from_code(self.sync.swap(state.code(), Ordering::Relaxed));
        if old != state {
            event!(
                Level::Info,
                "director_sync",
                synced = match state {
                    SyncState::Unknown => "unknown",
                    SyncState::NotSynced => "no",
                    SyncState::Synced => "yes",
                }
            );
        }
    }
}
