//! The link to the local director, on a helper thread so that the heartbeat loop never waits
//! for it: a director that is slow, restarting or wedged must not delay a heartbeat (the
//! old blocking `SetRole` could stall the loop for about a second).
//!
//! The loop hands the wanted role over ([`DirectorLink::set_role`], returns at once); the
//! thread tells the director, each request bounded by [`REQUEST_TIMEOUT`], re-tells it after
//! every reconnect (a restarted director learns its role again), and asks every
//! [`POLL_INTERVAL`] whether the director's connection table is synced. The loop reads the
//! answer without waiting ([`DirectorLink::sync_state`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::Level;
use lvs_common::event;
use lvs_proto::{Client, ClientOptions, HaRole, Request, Response, Role};

/// How long one director request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);
/// How often the thread asks for the sync state (and retries a role not yet delivered).
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

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

/// Where the sync state comes from; the daemon asks the director, tests can answer directly.
pub trait SyncSource {
    /// Asks once; `Unknown` when the question cannot be answered, `Err` when the connection
    /// broke (it is then dropped and made again).
    fn table_synced(&mut self, client: &mut Client) -> Result<SyncState, lvs_proto::ProtoError>;
}

/// Asks the director over its control socket (`Request::SyncStatus`). A director without
/// connection sync configured, one that does not know the request, or no answer at all is
/// `Unknown`: a returning primary then never claims a synced table, and `auto_failback` never
/// hands the VIP back to a director that would drop the connections in flight.
#[derive(Debug, Default, Clone, Copy)]
pub struct DirectorSync;

impl SyncSource for DirectorSync {
    fn table_synced(&mut self, client: &mut Client) -> Result<SyncState, lvs_proto::ProtoError> {
        Ok(match client.request(Request::SyncStatus)? {
            Response::Sync(s) if s.enabled => {
                if s.synced {
                    SyncState::Synced
                } else {
                    SyncState::NotSynced
                }
            }
            _ => SyncState::Unknown,
        })
    }
}

enum Cmd {
    Role(HaRole),
    Path(PathBuf),
    Stop,
}

/// The handle the heartbeat loop holds.
#[derive(Debug)]
pub struct DirectorLink {
    tx: Sender<Cmd>,
    sync: Arc<AtomicU8>,
    done: Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl DirectorLink {
    /// Starts the thread for the director at `path`.
    pub fn start(path: PathBuf) -> std::io::Result<DirectorLink> {
        Self::start_with(path, DirectorSync)
    }

    /// Starts the thread with another sync source.
    pub fn start_with<S: SyncSource + Send + 'static>(
        path: PathBuf,
        source: S,
    ) -> std::io::Result<DirectorLink> {
        let (tx, rx) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        let sync = Arc::new(AtomicU8::new(SyncState::Unknown.code()));
        let shared = sync.clone();
        let thread = std::thread::Builder::new()
            .name("director-link".into())
            .spawn(move || {
                Worker {
                    path,
                    client: None,
                    warned: false,
                    wanted: None,
                    delivered: false,
                    sync: shared,
                    source,
                }
                .run(&rx);
                let _ = done_tx.send(());
            })?;
        Ok(DirectorLink {
            tx,
            sync,
            done,
            thread: Some(thread),
        })
    }

    /// Asks for this role; returns at once.
    pub fn set_role(&self, role: HaRole) {
        let _ = self.tx.send(Cmd::Role(role));
    }

    /// Uses another socket (configuration reload).
    pub fn set_path(&self, path: PathBuf) {
        let _ = self.tx.send(Cmd::Path(path));
    }

    /// The last sync state the director reported.
    pub fn sync_state(&self) -> SyncState {
        SyncState::from_code(self.sync.load(Ordering::Relaxed))
    }

    /// Delivers what is queued (e.g. the final standby) within `limit`, then stops the thread.
    pub fn stop(mut self, limit: Duration) {
        let _ = self.tx.send(Cmd::Stop);
        if self.done.recv_timeout(limit).is_ok()
            && let Some(t) = self.thread.take()
        {
            let _ = t.join();
        }
    }
}

struct Worker<S> {
    path: PathBuf,
    client: Option<Client>,
    warned: bool,
    wanted: Option<HaRole>,
    delivered: bool,
    sync: Arc<AtomicU8>,
    source: S,
}

impl<S: SyncSource> Worker<S> {
    fn run(mut self, rx: &Receiver<Cmd>) {
        let mut next_poll = Instant::now();
        loop {
            let wait = next_poll.saturating_duration_since(Instant::now());
            let mut stop = false;
            match rx.recv_timeout(wait) {
                Ok(cmd) => {
                    // Only the latest role matters: take everything queued.
                    let mut cmds = vec![cmd];
                    cmds.extend(rx.try_iter());
                    for c in cmds {
                        match c {
                            Cmd::Role(r) => {
                                self.wanted = Some(r);
                                self.delivered = false;
                            }
                            Cmd::Path(p) => {
                                if p != self.path {
                                    self.path = p;
                                    self.client = None;
                                    self.delivered = false;
                                }
                            }
                            Cmd::Stop => stop = true,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => stop = true,
            }
            if !self.delivered {
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

    fn connect(&mut self) -> bool {
        if self.client.is_some() {
            return true;
        }
        if !self.path.exists() {
            if !self.warned {
                self.warned = true;
                event!(
                    Level::Warn,
                    "director_unreachable",
                    socket = self.path.display(),
                    error = "no socket"
                );
            }
            return false;
        }
        let options = ClientOptions {
            timeout: REQUEST_TIMEOUT,
            ..ClientOptions::default()
        };
        match Client::connect_with(&self.path, Role::Heartbeatd, options) {
            Ok(c) => {
                self.warned = false;
                event!(
                    Level::Info,
                    "director_connected",
                    socket = self.path.display()
                );
                self.client = Some(c);
                // A new connection may be a restarted director: tell it the role again.
                self.delivered = false;
                true
            }
            Err(e) => {
                if !self.warned {
                    self.warned = true;
                    event!(
                        Level::Warn,
                        "director_unreachable",
                        socket = self.path.display(),
                        error = e
                    );
                }
                false
            }
        }
    }

    fn deliver(&mut self) {
        let Some(role) = self.wanted else {
            self.delivered = true;
            return;
        };
        if !self.connect() {
            return;
        }
        let Some(client) = self.client.as_mut() else {
            return;
        };
        let t = Instant::now();
        let result = match client.request(Request::SetRole { role }) {
            Ok(Response::Ok) => {
                self.delivered = true;
                "ok".to_owned()
            }
            Ok(other) => {
                // Refused: retrying would be refused again.
                self.delivered = true;
                format!("refused: {other:?}")
            }
            Err(e) => {
                self.client = None;
                format!("failed: {e}")
            }
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

    fn poll_sync(&mut self) {
        let state = if self.connect() {
            match self.client.as_mut().map(|c| self.source.table_synced(c)) {
                Some(Ok(s)) => s,
                Some(Err(_)) => {
                    self.client = None;
                    SyncState::Unknown
                }
                None => SyncState::Unknown,
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
